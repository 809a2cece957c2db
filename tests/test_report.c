/* Unit tests of src/report/: the JSON writer and its escaping, HTML escaping, base64, files
 * written through a temporary name, the localisation box, thumbnails and report.html. */
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report/report.h"

static int checks, failures;

#define CHECK(cond, ...)                                         \
    do {                                                         \
        checks++;                                                \
        if (!(cond)) {                                           \
            failures++;                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);          \
            printf(__VA_ARGS__);                                 \
            printf("\n");                                        \
        }                                                        \
    } while (0)

static void check_str(const char *got, const char *want, const char *what) {
    CHECK(got && strcmp(got, want) == 0, "%s: got [%s] want [%s]", what, got ? got : "(null)", want);
}

static void test_escape(void) {
    static const struct {
        const char *in, *json;
    } cases[] = {
        {"plain", "\"plain\""},
        {"", "\"\""},
        {"q\"b\\s/", "\"q\\\"b\\\\s/\""},
        {"\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\""},
        {"\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\""},
        {"caf\xC3\xA9 \xF0\x9F\x98\x80 \xE2\x82\xAC", "\"caf\xC3\xA9 \xF0\x9F\x98\x80 \xE2\x82\xAC\""}, /* é 😀 € kept */
        {"a\x80z", "\"a\xEF\xBF\xBDz\""},                       /* lone continuation byte */
        {"\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\""},           /* overlong '/' */
        {"\xED\xA0\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""}, /* UTF-16 surrogate */
        {"\xF5\x80\x80\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""}, /* above U+10FFFF */
        {"end\xE2\x82", "\"end\xEF\xBF\xBD\xEF\xBF\xBD\""},   /* truncated at the end */
        {"\xF4\x8F\xBF\xBF", "\"\xF4\x8F\xBF\xBF\""},           /* U+10FFFF itself is fine */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gc_buf b = {0};
        gc_json_escape(&b, cases[i].in);
        check_str(b.p, cases[i].json, "json escape");
        gc_buf_free(&b);
    }
    gc_buf b = {0};
    gc_json_escape(&b, NULL);
    check_str(b.p, "null", "json escape NULL");
    gc_buf_free(&b);

    static const struct {
        const char *in, *html;
    } h[] = {
        {"<a href=\"x\">'&amp;", "&lt;a href=&quot;x&quot;&gt;&#39;&amp;amp;"},
        {"tab\tnl\nbell\x07.", "tab\tnl\nbell."},
        {"bad\xFF", "bad\xEF\xBF\xBD"},
        {"c1\xC2\x85", "c1\xEF\xBF\xBD"},
        {"\xC3\xA9t\xC3\xA9", "\xC3\xA9t\xC3\xA9"},
    };
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        gc_buf hb = {0};
        gc_buf_puts(&hb, "");
        gc_html_escape(&hb, h[i].in);
        check_str(hb.p, h[i].html, "html escape");
        gc_buf_free(&hb);
    }
    int len;
    CHECK(gc_utf8_decode((const unsigned char *)"\xE2\x82\xAC", 3, &len) == 0x20AC && len == 3, "decode euro");
    CHECK(gc_utf8_decode((const unsigned char *)"\xE0\x80\x80", 3, &len) == -1 && len == 1, "overlong 3-byte");
    CHECK(gc_utf8_decode((const unsigned char *)"\xF0\x8F\xBF\xBF", 4, &len) == -1, "overlong 4-byte");
}

static void test_base64(void) {
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        gc_buf b = {0};
        gc_buf_puts(&b, "");
        gc_base64(&b, in[i], strlen(in[i]));
        check_str(b.p, out[i], "base64 (RFC 4648 vectors)");
        gc_buf_free(&b);
    }
    unsigned char bin[256];
    for (int i = 0; i < 256; i++) bin[i] = (unsigned char)i;
    gc_buf b = {0};
    gc_base64(&b, bin, 256);
    CHECK(b.n == 344 && strncmp(b.p, "AAECAwQF", 8) == 0 && strcmp(b.p + 340, "/w==") == 0, "base64 of 0..255");
    gc_buf_free(&b);
}

static void test_json_writer(void) {
    gc_buf b = {0};
    gc_json j;
    gc_json_init(&j, &b, 0);
    gc_json_begin_object(&j);
    gc_json_key(&j, "a");
    gc_json_int(&j, -9223372036854775807LL - 1);
    gc_json_key(&j, "b");
    gc_json_begin_array(&j);
    gc_json_number(&j, NAN);
    gc_json_number(&j, INFINITY);
    gc_json_number(&j, -INFINITY);
    gc_json_number(&j, -0.0);
    gc_json_number(&j, 0.1);
    gc_json_number(&j, 1e300);
    gc_json_number(&j, 1.0 / 3.0);
    gc_json_number_f(&j, 0.1f);
    gc_json_number_f(&j, 16777217.0f);
    gc_json_number_f(&j, NAN);
    gc_json_bool(&j, 1);
    gc_json_null(&j);
    gc_json_string(&j, NULL);
    gc_json_begin_object(&j);
    gc_json_end_object(&j);
    gc_json_begin_array(&j);
    gc_json_end_array(&j);
    gc_json_end_array(&j);
    gc_json_key(&j, "k\"ey");
    gc_json_raw(&j, "{\"x\":1}");
    gc_json_end_object(&j);
    CHECK(!j.bad, "compact document well formed");
    check_str(b.p,
              "{\"a\":-9223372036854775808,\"b\":[null,null,null,0,0.1,1e+300,0.33333333333333331,0.1,16777216,null,"
              "true,null,null,{},[]],\"k\\\"ey\":{\"x\":1}}",
              "compact JSON");
    gc_buf_free(&b);

    gc_json_init(&j, &b, 2);
    gc_json_begin_object(&j);
    gc_json_key(&j, "shape");
    gc_json_begin_array_inline(&j);
    gc_json_int(&j, 1);
    gc_json_int(&j, 3);
    gc_json_end_array(&j);
    gc_json_key(&j, "list");
    gc_json_begin_array(&j);
    gc_json_string(&j, "x");
    gc_json_end_array(&j);
    gc_json_end_object(&j);
    CHECK(!j.bad, "indented document well formed");
    check_str(b.p, "{\n  \"shape\": [1, 3],\n  \"list\": [\n    \"x\"\n  ]\n}", "indented JSON");
    gc_buf_free(&b);

    /* a part written for splicing at depth 1 */
    gc_json_init(&j, &b, 2);
    j.base = 1;
    gc_json_begin_object(&j);
    gc_json_key(&j, "p");
    gc_json_int(&j, 1);
    gc_json_end_object(&j);
    check_str(b.p, "{\n    \"p\": 1\n  }", "indentation base");
    gc_buf_free(&b);

    /* misuse is flagged, never crashes */
    gc_json_init(&j, &b, 0);
    gc_json_begin_object(&j);
    gc_json_int(&j, 1); /* a value where a key is due */
    CHECK(j.bad, "value without key flagged");
    gc_buf_free(&b);
    gc_json_init(&j, &b, 0);
    gc_json_begin_array(&j);
    gc_json_key(&j, "k");
    CHECK(j.bad, "key in an array flagged");
    gc_buf_free(&b);
    gc_json_init(&j, &b, 0);
    gc_json_end_object(&j);
    CHECK(j.bad, "unbalanced end flagged");
    gc_buf_free(&b);
    gc_json_init(&j, &b, 0);
    for (int i = 0; i < GC_JSON_MAX_DEPTH + 4; i++) gc_json_begin_array(&j);
    CHECK(j.bad, "too deep flagged");
    gc_buf_free(&b);
    gc_json_init(&j, &b, 0);
    gc_json_int(&j, 1);
    gc_json_int(&j, 2);
    CHECK(j.bad, "two top-level values flagged");
    gc_buf_free(&b);
}

static void test_box(void) {
    gc_box box; /* x1, y1 exclusive */
    int64_t area = 0;
    float z[12] = {0};
    CHECK(gc_localize_box(z, 3, 4, 0.15f, &box, &area) == 0, "zero map: no box");
    float neg[4] = {-1, -2, -3, -4};
    CHECK(gc_localize_box(neg, 2, 2, 0.15f, &box, &area) == 0, "negative map: no box");
    float nan4[4] = {NAN, NAN, NAN, NAN};
    CHECK(gc_localize_box(nan4, 2, 2, 0.15f, &box, &area) == 0, "NaN map: no box");
    CHECK(gc_localize_box(z, 0, 4, 0.15f, &box, &area) == 0, "empty map: no box");
    float inf4[4] = {INFINITY, 1, 0, 0};
    CHECK(gc_localize_box(inf4, 2, 2, 0.15f, &box, &area) == 0, "infinite maximum: no box");

    /* one pixel */
    float one[12] = {0};
    one[1 * 4 + 2] = 5;
    CHECK(gc_localize_box(one, 3, 4, 0.15f, &box, &area) == 1 && box.x0 == 2 && box.x1 == 3 && box.y0 == 1 && box.y1 == 2 &&
              area == 1, "single pixel box");

    /* diagonal neighbours join (8-connectivity); the threshold includes exactly 15% of the max */
    float d[25] = {0};
    d[0] = 1.0f;
    d[6] = 0.15f;
    d[12] = 0.5f;
    d[4] = 0.1499f; /* below */
    CHECK(gc_localize_box(d, 5, 5, 0.15f, &box, &area) == 1 && area == 3 && box.x0 == 0 && box.y0 == 0 && box.x1 == 3 &&
              box.y1 == 3, "diagonal chain is one region (area %lld, box %lld,%lld..%lld,%lld)", (long long)area,
          (long long)box.x0, (long long)box.y0, (long long)box.x1, (long long)box.y1);

    /* the largest region wins even when a smaller one holds the maximum */
    float m[6 * 8] = {0};
    m[0] = 10;                                      /* small region with the max: (0,0) */
    for (int y = 3; y < 6; y++)
        for (int x = 4; x < 8; x++) m[y * 8 + x] = 2; /* 12 pixels */
    CHECK(gc_localize_box(m, 6, 8, 0.15f, &box, &area) == 1 && area == 12 && box.x0 == 4 && box.x1 == 8 && box.y0 == 3 &&
              box.y1 == 6, "largest region chosen");

    /* ties go to the region met first in row-major order; a U shape is one region */
    float t[5 * 5] = {0};
    t[0 * 5 + 3] = t[0 * 5 + 4] = 1; /* first, area 2 */
    t[4 * 5 + 0] = t[4 * 5 + 1] = 1; /* second, area 2 */
    CHECK(gc_localize_box(t, 5, 5, 0.5f, &box, &area) == 1 && box.y0 == 0 && box.x0 == 3, "tie: first region");
    float u[4 * 4] = {1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0};
    CHECK(gc_localize_box(u, 4, 4, 0.5f, &box, &area) == 1 && area == 8 && box.x0 == 0 && box.x1 == 4 && box.y1 == 3,
          "U shape is one region");

    /* a big filled map: no recursion, no overflow */
    int64_t H = 1200, W = 1100;
    float *big = malloc(sizeof(float) * (size_t)(H * W));
    for (int64_t i = 0; i < H * W; i++) big[i] = 2.0f + (float)(i % 7); /* all above 15% of the maximum 8 */
    CHECK(gc_localize_box(big, H, W, 0.15f, &box, &area) == 1 && area == H * W && box.x1 == W && box.y1 == H,
          "large map filled");
    /* a snake of one-pixel-wide rows joined at alternating ends: a very long path */
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            big[y * W + x] = (y % 2 == 0) || (y % 4 == 1 && x == W - 1) || (y % 4 == 3 && x == 0) ? 1.0f : 0.0f;
    int64_t want = (H / 2) * W + H / 2;
    CHECK(gc_localize_box(big, H, W, 0.15f, &box, &area) == 1 && area == want, "snake: area %lld want %lld", (long long)area,
          (long long)want);
    free(big);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    gc_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) gc_buf_put(&b, chunk, n);
    fclose(f);
    return b.p;
}

static void test_linked_page(const char *dir, const gc_image *img);

static void test_files_and_report(void) {
    char dir[] = "/tmp/gcam-report-test-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char path[512];
    gc_err err = {0};
    snprintf(path, sizeof path, "%s/a.txt", dir);
    CHECK(gc_write_file_atomic(path, "hello", 5, &err) == GCAM_OK, "atomic write: %s", err.msg);
    char *s = slurp(path);
    check_str(s, "hello", "atomic write content");
    free(s);
    struct stat st;
    mode_t um = umask(0);
    umask(um);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == (0666 & ~um), "file mode follows the umask (%o)", st.st_mode & 0777);
    gc_afile a;
    snprintf(path, sizeof path, "%s/b.txt", dir);
    CHECK(gc_afile_open(&a, path, &err) == GCAM_OK, "afile open");
    gc_afile_write(&a, "partial", 7);
    CHECK(count_entries(dir) == 2, "temporary file exists while writing");
    gc_afile_abort(&a);
    CHECK(access(path, F_OK) != 0 && count_entries(dir) == 1, "abort leaves nothing");
    gc_err_clear(&err);
    snprintf(path, sizeof path, "%s/no/such/dir/c.txt", dir);
    CHECK(gc_write_file_atomic(path, "x", 1, &err) == GCAM_E_IO && strstr(err.msg, path), "unwritable path: %s", err.msg);

    /* thumbnails */
    gc_image img = {.w = 100, .h = 50, .px = malloc(100 * 50 * 3)}, th;
    for (int i = 0; i < 100 * 50 * 3; i++) img.px[i] = (uint8_t)(i % 3 == 0 ? 200 : i % 3 == 1 ? 100 : 7);
    gc_err_clear(&err);
    CHECK(gc_image_thumbnail(&th, &img, 40, &err) == GCAM_OK && th.w == 40 && th.h == 20, "thumbnail size");
    int same = 1;
    for (int64_t i = 0; th.px && i < th.w * th.h; i++)
        same &= th.px[i * 3] == 200 && th.px[i * 3 + 1] == 100 && th.px[i * 3 + 2] == 7;
    CHECK(same, "thumbnail of a flat image is flat");
    gc_image_free(&th);
    CHECK(gc_image_thumbnail(&th, &img, 448, &err) == GCAM_OK && th.w == 100 && th.h == 50 &&
              memcmp(th.px, img.px, 100 * 50 * 3) == 0, "small image copied as is");
    gc_image_free(&th);

    /* a page */
    gc_report r;
    snprintf(path, sizeof path, "%s/report.html", dir);
    const char *keys[] = {"model"}, *vals[] = {"m<1>.onnx"};
    CHECK(gc_report_begin(&r, path, GC_REPORT_EMBED, "t & <t>", keys, vals, 1, &err) == GCAM_OK, "report begin: %s",
          err.msg);
    gc_report_pred preds[2] = {{.index = 3, .label = "cat \"x\"", .score = 2.5, .probability = 0.75},
                               {.index = 1, .label = NULL, .score = 1, .probability = NAN}};
    gc_report_panel panels[2] = {{.title = "Grad-CAM", .caption = "layer <l>", .img = &img, .box_caption = 1, .box = {1, 2, 5, 6}},
                                 {.title = "none"}};
    gc_report_row row = {.title = "class 3 · cat", .panels = panels, .n_panels = 2};
    const char *warn[] = {"w&"};
    gc_report_input in = {.path = "a/<b>.png", .note = "n", .preds = preds, .n_preds = 2, .rows = &row, .n_rows = 1,
                          .warnings = warn, .n_warnings = 1};
    CHECK(gc_report_add(&r, &in, &err) == GCAM_OK, "report add: %s", err.msg);
    CHECK(access(path, F_OK) != 0, "page not visible before finish");
    const char *fails[] = {"x.jpg: bad <data>"};
    CHECK(gc_report_finish(&r, fails, 1, &err) == GCAM_OK, "report finish: %s", err.msg);
    char *html = slurp(path);
    CHECK(html && strstr(html, "<title>t &amp; &lt;t&gt;</title>") && strstr(html, "m&lt;1&gt;.onnx") &&
              strstr(html, "<h2>a/&lt;b&gt;.png</h2>") && strstr(html, "cat &quot;x&quot;") &&
              strstr(html, "layer &lt;l&gt;; box x 1..5, y 2..6</small>") && strstr(html, "x.jpg: bad &lt;data&gt;") && strstr(html, "w&amp;") &&
              strstr(html, "src=\"data:image/png;base64,iVBORw0KGgo") && strstr(html, "</html>\n") &&
              !strstr(html, "http") && !strstr(html, "<script"),
          "page content escaped and complete");
    free(html);
    CHECK(count_entries(dir) == 2, "no temporary files left (%d entries)", count_entries(dir));
    test_linked_page(dir, &img);
    CHECK(count_entries(dir) == 3, "no temporary files left (%d entries)", count_entries(dir));
    free(img.px);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

/* A linked page: records in JSON tables, strings written once then numbered, pictures named
 * by file (templates, the row's class as \1), nothing inline; memory bounded over many inputs. */
static void test_linked_page(const char *dir, const gc_image *img) {
    char path[512];
    gc_err err;
    gc_err_clear(&err);
    gc_report r;
    snprintf(path, sizeof path, "%s/linked.html", dir);
    const char *keys[] = {"model"}, *vals[] = {"m"};
    CHECK(gc_report_begin(&r, path, GC_REPORT_LINK, "t", keys, vals, 1, &err) == GCAM_OK, "linked begin: %s", err.msg);
    gc_report_pred preds[1] = {{.index = 3, .label = "cat</script>", .score = 2.5, .probability = 0.75}};
    gc_report_panel panels[3] = {{.title = "Grad-CAM", .caption = "layer l", .img = img, .file = "a_c3_gradcam_overlay.png",
                                  .file_w = 100, .file_h = 50, .box_caption = 1, .box_drawn = 1, .box = {1, 2, 5, 6}},
                                 {.title = "Other", .file = "elsewhere.png", .file_w = 100, .file_h = 50},
                                 {.title = "T", .caption = "x\x02y", .file = "a_input.png", .file_w = 10, .file_h = 20}};
    gc_report_row row = {.title = "class 3 \xC2\xB7 cat</script> (score 2.5)", .cls = 3, .label = "cat</script>",
                         .panels = panels, .n_panels = 3};
    gc_report_input in = {.path = "d/a.png", .stem = "a", .note = "n", .preds = preds, .n_preds = 1, .rows = &row, .n_rows = 1};
    CHECK(gc_report_add(&r, &in, &err) == GCAM_OK, "linked add: %s", err.msg);
    in.path = "d/b<1>.png"; /* another stem than the file name's: written out */
    CHECK(gc_report_add(&r, &in, &err) == GCAM_OK, "linked add 2: %s", err.msg);
    /* many inputs, each with a new label: the page streams, the kept strings stop at their cap */
    char label[64];
    preds[0].label = label;
    in.n_rows = 0;
    in.path = "d/a.png";
    for (int i = 0; i < 3 * GC_REPORT_MAX_STRINGS; i++) {
        snprintf(label, sizeof label, "label %d", i);
        CHECK(gc_report_add(&r, &in, &err) == GCAM_OK, "linked add %d: %s", i, err.msg);
    }
    CHECK(r.strings.n == GC_REPORT_MAX_STRINGS && r.strings.next == 5 + 3 * GC_REPORT_MAX_STRINGS &&
              r.buf.cap <= (1u << 17) && r.strs.cap <= (1u << 17),
          "bounded memory: %d strings kept, buffers %zu %zu", r.strings.n, r.buf.cap, r.strs.cap);
    CHECK(gc_report_finish(&r, NULL, 0, &err) == GCAM_OK, "linked finish: %s", err.msg);
    char *html = slurp(path);
    CHECK(html && !strstr(html, "data:image") && !strstr(html, "cat</script>"), "linked page: no inline picture, '<' escaped");
    CHECK(html && strstr(html, "<script type=\"application/json\" class=\"gc-s\">[\"d/\",\"n\",\"cat\\u003c/script>\","
                               "\"Grad-CAM\\u0002=_c\\u0001_gradcam_overlay.png\\u0002layer l\\u0002100\\u000250\","
                               "\"Other\\u0002!elsewhere.png\\u0002\\u0002100\\u000250\",\"label 0\","),
          "the first batch's strings: folder, note, label, panel templates: %s", html ? strstr(html, "gc-s") : "");
    CHECK(html && strstr(html, "]</script>\n<script type=\"application/json\" class=\"gc-r\">[\n"
                               "[0,\"a.png\",null,1,null,[3,2,2.5,0.75],[[[3,2,\" (score 2.5)\"],[3,[1,2,5,6,3]],4,"
                               "[\"T\",\"a_input.png\",\"x\\u0002y\",10,20]]],null],\n"
                               "[0,\"b\\u003c1>.png\",\"a\",1,null,[3,2,2.5,0.75],[[[3,2,\" (score 2.5)\"],[3,[1,2,5,6,3]],4,"),
          "records: strings by number, the folder once, the stem derived or written, the class's templates, the long form");
    snprintf(label, sizeof label, ",\"label %d\"]</script>", 3 * GC_REPORT_MAX_STRINGS - 1);
    CHECK(html && strstr(html, label), "past the cap, new strings are still numbered");
    snprintf(label, sizeof label, "[0,\"a.png\",null,1,null,[3,%d,2.5,0.75],[],null]\n]", 4 + 3 * GC_REPORT_MAX_STRINGS);
    CHECK(html && strstr(html, label), "the last record");
    CHECK(html && strstr(html, "</script>\n<footer>") && strstr(html, "id=\"gc-pager\"") && strstr(html, "</html>\n"),
          "the tables closed, the pager, the page complete");
    free(html);
}

int main(void) {
    test_escape();
    test_base64();
    test_json_writer();
    test_box();
    test_files_and_report();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
