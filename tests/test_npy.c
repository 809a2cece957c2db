/* Tests for src/image/npy.c: files written by numpy (tests/export_npy_fixtures.py, run at test
 * time with the system python), malformed files, write -> read round trips (also read back by
 * numpy), and that a failed write leaves nothing behind.
 * Usage: test_npy PYTHON FIXTURE_SCRIPT */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/npy.h"

static int n_checks, n_fail;
static char g_dir[256];

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        n_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            n_fail++;                                                                              \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static const char *fx(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* Reads a fixture expecting success with the given dtype and shape. */
static int load_ok(const char *name, gc_tensor *t, gc_dtype dt, int ndim, const int64_t *dims) {
    gc_err err = {0};
    gcam_status st = gc_npy_read(fx(name), t, &err);
    CHECK(st == GCAM_OK, "%s: read failed: %s", name, err.msg);
    if (st) return 0;
    int ok = t->dtype == dt && t->shape.ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape.d[i] == dims[i];
    char sb[128];
    CHECK(ok, "%s: dtype %d shape %s, expected dtype %d", name, (int)t->dtype,
          gc_shape_str(&t->shape, sb, sizeof sb), (int)dt);
    if (!ok) {
        free(t->data);
        t->data = NULL;
    }
    return ok;
}

/* Expects failure with the status and a message starting with the file name and containing sub. */
static void expect_fail_mem(const char *what, const void *buf, size_t n, gcam_status want, const char *sub) {
    gc_err err = {0};
    gc_tensor t = {.data = (void *)1};
    gcam_status st = gc_npy_read_memory(buf, n, what, &t, &err);
    CHECK(st == want, "%s: status %d (%s), expected %d", what, (int)st, err.msg, (int)want);
    CHECK(t.data == NULL, "%s: data not NULL on failure", what);
    CHECK(strncmp(err.msg, what, strlen(what)) == 0, "%s: message does not name the file: %s", what, err.msg);
    if (sub) CHECK(strstr(err.msg, sub) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, sub);
    if (st == GCAM_OK) free(t.data);
}

static void expect_fail_file(const char *name, gcam_status want, const char *sub) {
    gc_err err = {0};
    gc_tensor t = {0};
    const char *p = fx(name);
    gcam_status st = gc_npy_read(p, &t, &err);
    CHECK(st == want, "%s: status %d (%s), expected %d", name, (int)st, err.msg, (int)want);
    CHECK(strncmp(err.msg, p, strlen(p)) == 0, "%s: message does not name the file: %s", name, err.msg);
    if (sub) CHECK(strstr(err.msg, sub) != NULL, "%s: message '%s' lacks '%s'", name, err.msg, sub);
    if (st == GCAM_OK) free(t.data);
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* A .npy in memory with the given version and header text (padded like numpy). */
static size_t make_npy(uint8_t *buf, size_t cap, int major, const char *dict, size_t ndata) {
    size_t pre = major == 1 ? 10 : 12, len = strlen(dict);
    size_t total = (pre + len + 1 + 63) / 64 * 64;
    if (total + ndata > cap) return 0;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (uint8_t)major;
    buf[7] = 0;
    size_t hl = total - pre;
    for (size_t i = 0; i < pre - 8; i++) buf[8 + i] = (uint8_t)(hl >> (8 * i));
    memcpy(buf + pre, dict, len);
    memset(buf + pre + len, ' ', total - pre - len - 1);
    buf[total - 1] = '\n';
    for (size_t i = 0; i < ndata; i++) buf[total + i] = (uint8_t)i;
    return total + ndata;
}

static void test_numpy_fixtures(void) {
    gc_tensor t;
    int64_t d234[] = {2, 3, 4};
    if (load_ok("f4.npy", &t, GC_F32, 3, d234)) {
        const float *v = t.data;
        int ok = 1;
        for (int i = 0; i < 24; i++) ok &= v[i] == (float)(i * 0.5 - 3.0);
        CHECK(ok, "f4.npy values");
        free(t.data);
    }
    int64_t d6[] = {6};
    if (load_ok("f8.npy", &t, GC_F32, 1, d6)) {
        const float *v = t.data;
        CHECK(v[0] == 1.5f && v[1] == -2.25f, "f8 values %g %g", v[0], v[1]);
        CHECK(isinf(v[2]) && v[2] > 0 && isinf(v[3]) && v[3] < 0, "f8 out of range -> inf: %g %g", v[2], v[3]);
        CHECK(isnan(v[4]) && v[5] == 0.0f, "f8 nan / underflow: %g %g", v[4], v[5]);
        free(t.data);
    }
    struct {
        const char *name;
        int n;
        int64_t v[5];
    } ints[] = {
        {"i8.npy", 5, {INT64_MIN, INT64_MAX, 0, -1, 5}},
        {"i4.npy", 3, {INT32_MIN, INT32_MAX, -7}},
        {"i2.npy", 3, {-32768, 32767, 3}},
        {"i1.npy", 3, {-128, 127, 0}},
        {"u1.npy", 3, {0, 255, 17}},
        {"u2.npy", 2, {0, 65535}},
        {"u4.npy", 2, {0, 4294967295LL}},
    };
    for (size_t k = 0; k < GC_ARRAY_LEN(ints); k++) {
        int64_t dn[] = {ints[k].n};
        if (!load_ok(ints[k].name, &t, GC_I64, 1, dn)) continue;
        const int64_t *v = t.data;
        int ok = 1;
        for (int i = 0; i < ints[k].n; i++) ok &= v[i] == ints[k].v[i];
        CHECK(ok, "%s values", ints[k].name);
        free(t.data);
    }
    int64_t d22[] = {2, 2};
    if (load_ok("b1.npy", &t, GC_BOOL, 2, d22)) {
        const uint8_t *v = t.data;
        CHECK(v[0] == 1 && v[1] == 0 && v[2] == 1 && v[3] == 1, "b1 values");
        free(t.data);
    }
    if (load_ok("fortran_f4.npy", &t, GC_F32, 3, d234)) {
        const float *v = t.data;
        int ok = 1;
        for (int i = 0; i < 24; i++) ok &= v[i] == (float)(i * 0.5 - 3.0);
        CHECK(ok, "fortran_f4.npy transposed to C order");
        free(t.data);
    }
    int64_t d32[] = {3, 2};
    if (load_ok("fortran_i4.npy", &t, GC_I64, 2, d32)) {
        const int64_t *v = t.data;
        int ok = 1;
        for (int i = 0; i < 6; i++) ok &= v[i] == i - 2;
        CHECK(ok, "fortran_i4.npy transposed to C order");
        free(t.data);
    }
    if (load_ok("scalar.npy", &t, GC_F32, 0, NULL)) {
        CHECK(*(float *)t.data == 3.25f, "scalar value");
        free(t.data);
    }
    int64_t d03[] = {0, 3};
    if (load_ok("empty.npy", &t, GC_F32, 2, d03)) {
        CHECK(t.data != NULL, "empty array has non-NULL data");
        free(t.data);
    }
    int64_t dbig[] = {100003};
    if (load_ok("big_f4.npy", &t, GC_F32, 1, dbig)) {
        const float *v = t.data;
        int ok = 1;
        for (int i = 0; i < 100003; i++) ok &= v[i] == (float)i;
        CHECK(ok, "big_f4.npy values (crosses read chunks)");
        free(t.data);
    }
    int64_t dbig8[] = {10007};
    if (load_ok("big_f8.npy", &t, GC_F32, 1, dbig8)) {
        const float *v = t.data;
        int ok = 1;
        for (int i = 0; i < 10007; i++) ok &= v[i] == (float)(i * 0.25);
        CHECK(ok, "big_f8.npy values (crosses read chunks)");
        free(t.data);
    }
    int64_t d23[] = {2, 3};
    const char *vs[] = {"v1.npy", "v2.npy", "v3.npy"};
    for (int k = 0; k < 3; k++) {
        if (!load_ok(vs[k], &t, GC_F32, 2, d23)) continue;
        const float *v = t.data;
        int ok = 1;
        for (int i = 0; i < 6; i++) ok &= v[i] == (float)(i * 0.5 - 3.0);
        CHECK(ok, "%s values", vs[k]);
        free(t.data);
    }
    expect_fail_file("be_f4.npy", GCAM_E_UNSUPPORTED, "big-endian");
    expect_fail_file("f2.npy", GCAM_E_UNSUPPORTED, "'<f2' is not supported");
    expect_fail_file("u8.npy", GCAM_E_UNSUPPORTED, "'<u8' is not supported");
    expect_fail_file("struct.npy", GCAM_E_FORMAT, "structured");
    expect_fail_file("object.npy", GCAM_E_UNSUPPORTED, "'|O' is not supported");
    expect_fail_file("does_not_exist.npy", GCAM_E_IO, "cannot open");
}

static void test_truncation(void) {
    size_t n;
    uint8_t *b = slurp(fx("f4.npy"), &n); /* 128-byte header + 96 bytes of data */
    CHECK(b && n == 224, "f4.npy size %zu", n);
    if (!b) return;
    spit(fx("trunc.npy"), b, n - 6);
    expect_fail_file("trunc.npy", GCAM_E_FORMAT, "truncated: expected 96 bytes of data, found 90");
    expect_fail_mem("trunc_mem.npy", b, n - 6, GCAM_E_FORMAT, "truncated: expected 96 bytes of data, found 90");
    expect_fail_mem("no_data.npy", b, 128, GCAM_E_FORMAT, "expected 96 bytes of data, found 0");
    uint8_t *big = malloc(n + 3);
    memcpy(big, b, n);
    memset(big + n, 0, 3);
    expect_fail_mem("trailing.npy", big, n + 3, GCAM_E_FORMAT, "3 unexpected bytes");
    spit(fx("trailing.npy"), big, n + 3);
    expect_fail_file("trailing.npy", GCAM_E_FORMAT, "3 unexpected bytes");
    free(big);
    /* Every prefix must fail cleanly (no crash, no leak under ASan); the full file reads. */
    int ok = 1;
    for (size_t k = 0; k < n; k++) {
        gc_err err = {0};
        gc_tensor t;
        if (gc_npy_read_memory(b, k, "prefix", &t, &err) == GCAM_OK) {
            ok = 0;
            free(t.data);
        }
    }
    CHECK(ok, "some strict prefix of f4.npy was accepted");
    /* Random byte corruption: any outcome but a crash; success only with a sane tensor. */
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int sane = 1;
    for (int it = 0; it < 4000; it++) {
        uint8_t c[224];
        memcpy(c, b, n);
        for (int m = 0; m < 1 + it % 4; m++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            c[(s >> 33) % 128] = (uint8_t)(s >> 20); /* the header is where parsing happens */
        }
        gc_err err = {0};
        gc_tensor t;
        if (gc_npy_read_memory(c, n, "fuzz", &t, &err) == GCAM_OK) {
            int bok;
            size_t by = gc_tensor_bytes(t.dtype, &t.shape, &bok);
            sane &= bok && by <= 96 && t.data != NULL;
            free(t.data);
        } else {
            sane &= err.msg[0] != 0;
        }
    }
    CHECK(sane, "corrupted headers gave an insane tensor or an empty message");
    free(b);
}

static void test_malformed(void) {
    uint8_t buf[1024];
    size_t n;
    expect_fail_mem("empty", buf, 0, GCAM_E_FORMAT, "bad magic");
    expect_fail_mem("short", "\x93NU", 3, GCAM_E_FORMAT, "bad magic");
    expect_fail_mem("magic", "\x93NUMPZ\x01\x00\x10\x00", 10, GCAM_E_FORMAT, "bad magic");
    expect_fail_mem("pre", "\x93NUMPY\x01\x00\x10", 9, GCAM_E_FORMAT, "truncated");
    expect_fail_mem("ver4", "\x93NUMPY\x04\x00\x10\x00", 10, GCAM_E_UNSUPPORTED, "version 4.0");
    expect_fail_mem("ver11", "\x93NUMPY\x01\x01\x10\x00", 10, GCAM_E_UNSUPPORTED, "version 1.1");
    expect_fail_mem("hlen0", "\x93NUMPY\x01\x00\x00\x00", 10, GCAM_E_FORMAT, "header length is 0");
    expect_fail_mem("hlenhuge", "\x93NUMPY\x02\x00\xff\xff\xff\xff", 12, GCAM_E_FORMAT, "exceeds the limit");
    expect_fail_mem("hlenshort", "\x93NUMPY\x01\x00\x40\x00{}", 12, GCAM_E_FORMAT, "truncated");

    struct {
        const char *dict;
        gcam_status st;
        const char *sub;
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }", GCAM_E_FORMAT,
         "element count"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }", GCAM_E_FORMAT, "byte count"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", GCAM_E_FORMAT, "too large"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", GCAM_E_FORMAT,
         "truncated: expected 4000000000000 bytes of data, found 8"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", GCAM_E_FORMAT, "negative dimension -3"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", GCAM_E_UNSUPPORTED, "rank"},
        {"{'descr': '<f4', 'fortran_order': False}", GCAM_E_FORMAT, "missing key 'shape'"},
        {"{'fortran_order': False, 'shape': (2,), }", GCAM_E_FORMAT, "missing key 'descr'"},
        {"{'descr': '<f4', 'shape': (2,), }", GCAM_E_FORMAT, "missing key 'fortran_order'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", GCAM_E_FORMAT, "duplicate"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", GCAM_E_FORMAT, "unknown key 'extra'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", GCAM_E_FORMAT, "bad header"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", GCAM_E_FORMAT, "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", GCAM_E_FORMAT, "must be a tuple"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", GCAM_E_FORMAT, "True or False"},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }", GCAM_E_FORMAT, "bad header"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (2,), }", GCAM_E_FORMAT, "expected ',' or '}'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", GCAM_E_FORMAT, "after the dict"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", GCAM_E_FORMAT, "structured"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,,), }", GCAM_E_FORMAT, "expected an integer"},
        {"{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,), }", GCAM_E_FORMAT, "escape"},
        {"{'descr': 'f4x', 'fortran_order': False, 'shape': (2,), }", GCAM_E_UNSUPPORTED, "not supported"},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }", GCAM_E_FORMAT, "no byte order"},
        {"{'descr': '>i8', 'fortran_order': False, 'shape': (1,), }", GCAM_E_UNSUPPORTED, "big-endian"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", GCAM_E_FORMAT, "found 8"}, /* 2 floats */
        {"['descr', '<f4']", GCAM_E_FORMAT, "expected '{'"},
        {"", GCAM_E_FORMAT, "expected '{'"},
    };
    for (size_t k = 0; k < GC_ARRAY_LEN(cases); k++) {
        char what[32];
        snprintf(what, sizeof what, "case%zu", k);
        if (k == GC_ARRAY_LEN(cases) - 3) { /* the one valid header: 8 bytes given, 8 needed -> ok */
            n = make_npy(buf, sizeof buf, 1, cases[k].dict, 8);
            gc_err err = {0};
            gc_tensor t;
            gcam_status st = gc_npy_read_memory(buf, n, what, &t, &err);
            CHECK(st == GCAM_OK && t.shape.ndim == 1 && t.shape.d[0] == 2, "%s: %s", what, err.msg);
            if (st == GCAM_OK) free(t.data);
            n = make_npy(buf, sizeof buf, 1, cases[k].dict, 12);
            expect_fail_mem(what, buf, n, GCAM_E_FORMAT, "4 unexpected bytes");
            continue;
        }
        n = make_npy(buf, sizeof buf, k % 2 ? 2 : 1, cases[k].dict, 8);
        expect_fail_mem(what, buf, n, cases[k].st, cases[k].sub);
    }
    /* NUL byte inside the header */
    n = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
    buf[20] = 0;
    expect_fail_mem("nul", buf, n, GCAM_E_FORMAT, "NUL");
    /* lenient but valid forms: double quotes, no trailing comma, Python 2 long, odd spacing */
    const char *okd[] = {
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,)}",
        "{ 'shape' : ( 1 , 2L ) , 'fortran_order':True,'descr':'<f4' }",
        "{'descr': '=f4', 'fortran_order': False, 'shape': (2,)}",
    };
    for (size_t k = 0; k < GC_ARRAY_LEN(okd); k++) {
        n = make_npy(buf, sizeof buf, 3, okd[k], 8);
        gc_err err = {0};
        gc_tensor t;
        gcam_status st = gc_npy_read_memory(buf, n, "lenient", &t, &err);
        CHECK(st == GCAM_OK && gc_shape_numel(&t.shape) == 2, "lenient header %zu: %s", k, err.msg);
        if (st == GCAM_OK) free(t.data);
    }
}

static int count_tmp_files(void) {
    DIR *d = opendir(g_dir);
    int c = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp-")) c++;
    if (d) closedir(d);
    return c;
}

static void roundtrip(const char *name, gc_dtype dt, int ndim, const int64_t *dims, const void *data) {
    gc_tensor t = {.dtype = dt, .shape = {.ndim = ndim}, .data = (void *)data};
    for (int i = 0; i < ndim; i++) t.shape.d[i] = dims[i];
    gc_err err = {0};
    gcam_status st = gc_npy_write(fx(name), &t, &err);
    CHECK(st == GCAM_OK, "write %s: %s", name, err.msg);
    gc_tensor r;
    st = gc_npy_read(fx(name), &r, &err);
    CHECK(st == GCAM_OK, "read back %s: %s", name, err.msg);
    if (st) return;
    int ok;
    size_t nb = gc_tensor_bytes(dt, &t.shape, &ok);
    CHECK(r.dtype == dt && gc_shape_eq(&r.shape, &t.shape) && (nb == 0 || memcmp(r.data, data, nb) == 0),
          "round trip %s differs", name);
    size_t fsz;
    uint8_t *raw = slurp(fx(name), &fsz);
    CHECK(raw && (fsz - nb) % 64 == 0 && raw[fsz - nb - 1] == '\n', "%s: header not padded to 64", name);
    free(raw);
    free(r.data);
}

static void test_write(const char *python, const char *script) {
    float f[24], big[70001], one[5];
    for (int i = 0; i < 24; i++) f[i] = (float)(i * 0.25 - 1.0);
    for (int i = 0; i < 70001; i++) big[i] = (float)i;
    for (int i = 0; i < 5; i++) one[i] = (float)i;
    int64_t iv[] = {INT64_MIN, INT64_MAX, 7};
    uint8_t bv[] = {1, 0, 0, 1, 1, 0};
    float sc = -0.5f;
    roundtrip("rt_f32.npy", GC_F32, 3, (int64_t[]){2, 3, 4}, f);
    roundtrip("rt_i64.npy", GC_I64, 2, (int64_t[]){1, 3}, iv);
    roundtrip("rt_bool.npy", GC_BOOL, 3, (int64_t[]){3, 1, 2}, bv);
    roundtrip("rt_scalar.npy", GC_F32, 0, NULL, &sc);
    roundtrip("rt_1d.npy", GC_F32, 1, (int64_t[]){5}, one);
    roundtrip("rt_empty.npy", GC_F32, 3, (int64_t[]){4, 0, 2}, NULL);
    roundtrip("rt_big.npy", GC_F32, 1, (int64_t[]){70001}, big);
    roundtrip("rt_rank8.npy", GC_F32, 8, (int64_t[]){1, 2, 1, 3, 1, 2, 1, 2}, f);
    /* overwrite an existing file */
    roundtrip("rt_f32.npy", GC_F32, 3, (int64_t[]){2, 3, 4}, f);
    CHECK(count_tmp_files() == 0, "temporary files left after successful writes");

    /* numpy reads what we wrote */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s' check '%s'", python, script, g_dir);
    CHECK(system(cmd) == 0, "numpy could not read the files gc_npy_write wrote");

    /* failed writes leave nothing behind */
    gc_tensor t = {.dtype = GC_F32, .shape = {.ndim = 1, .d = {5}}, .data = one};
    gc_err err = {0};
    char p[512];
    snprintf(p, sizeof p, "%s/no/such/dir/x.npy", g_dir);
    CHECK(gc_npy_write(p, &t, &err) == GCAM_E_IO && strncmp(err.msg, p, strlen(p)) == 0, "write into missing dir: %s",
          err.msg);
    snprintf(p, sizeof p, "%s/adir", g_dir);
    mkdir(p, 0755);
    gc_err_clear(&err);
    CHECK(gc_npy_write(p, &t, &err) == GCAM_E_IO, "write over a directory should fail: %s", err.msg);
    CHECK(count_tmp_files() == 0, "a failed write left its temporary file behind");
    rmdir(p);
    struct stat sb;
    gc_tensor bad = t;
    bad.dtype = GCAM_UNDEFINED;
    gc_err_clear(&err);
    CHECK(gc_npy_write(fx("bad_dtype.npy"), &bad, &err) == GCAM_E_ARG && stat(fx("bad_dtype.npy"), &sb) != 0,
          "invalid dtype: %s", err.msg);
    bad = t;
    bad.shape.d[0] = -1;
    gc_err_clear(&err);
    CHECK(gc_npy_write(fx("bad_shape.npy"), &bad, &err) == GCAM_E_ARG && stat(fx("bad_shape.npy"), &sb) != 0,
          "negative shape: %s", err.msg);
    bad = t;
    bad.data = NULL;
    gc_err_clear(&err);
    CHECK(gc_npy_write(fx("bad_data.npy"), &bad, &err) == GCAM_E_ARG && stat(fx("bad_data.npy"), &sb) != 0,
          "NULL data: %s", err.msg);
    CHECK(count_tmp_files() == 0, "temporary files left after failed writes");
}

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0) rmdir(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PYTHON export_npy_fixtures.py\n", argv[0]);
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/gc_test_npy_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s' write '%s'", argv[1], argv[2], g_dir);
    int rc = system(cmd);
    CHECK(rc == 0, "fixture generation failed (%s): numpy fixtures missing", cmd);
    if (rc == 0) test_numpy_fixtures();
    test_truncation();
    test_malformed();
    test_write(argv[1], argv[2]);
    rm_tree(g_dir);
    printf("test_npy: %d passed, %d failed\n", n_checks - n_fail, n_fail);
    return n_fail != 0;
}
