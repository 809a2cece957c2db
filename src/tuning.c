/* The tuning knobs' one table: environment variable, field, default, what it is for. */
#include "tuning.h"

#include <stdlib.h>
#include <string.h>

typedef struct setting {
    const char *env;
    size_t offset;
    int kind; /* K_ON_OFF: an int, 1 when set and not "0"; K_SIZE: a size_t (a byte count);
                 K_ISA: an int, the index of a name in isa_names (0 when unset or unknown) */
    size_t def;
} setting;
enum { K_ON_OFF, K_SIZE, K_ISA };

/* GCAM_ISA's values: the GC_ISA_* numbers of src/ops/sgemm.h (1 generic, 2 avx2, 3 avx512) */
static const char *const isa_names[] = {"", "generic", "avx2", "avx512"};

#define ON_OFF(env, field) {env, offsetof(gc_tuning, field), K_ON_OFF, 0}
static const setting g_settings[] = {
    ON_OFF("GCAM_NO_FUSION", no_fusion),
    ON_OFF("GCAM_NO_ADD_FUSION", no_add_fusion),
    ON_OFF("GCAM_NO_ACT_FUSION", no_act_fusion),
    ON_OFF("GCAM_NO_WINOGRAD", no_winograd),
    ON_OFF("GCAM_NO_WINOGRAD4", no_winograd4),
    ON_OFF("GCAM_NO_DW_GATHER", no_dw_gather),
    ON_OFF("GCAM_PROFILE", profile),
    ON_OFF("GCAM_PROFILE_STEPS", profile_steps),
    ON_OFF("GCAM_NO_SGEMM", no_sgemm),
    ON_OFF("GCAM_NO_POOL_SEPARABLE", no_pool_separable),
    {"GCAM_ISA", offsetof(gc_tuning, isa), K_ISA, 0},
    {"GCAM_TAIL_BATCH_MIN_BYTES", offsetof(gc_tuning, tail_batch_min_bytes), K_SIZE, (size_t)16 << 20},
};
#undef ON_OFF

static const gc_tuning *g_default; /* tests only */
static gc_tuning g_default_copy;

void gc_tuning_set_default(const gc_tuning *t) {
    if (t) g_default_copy = *t;
    g_default = t ? &g_default_copy : NULL;
}

static void fill(gc_tuning *t, int from_env) {
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < sizeof g_settings / sizeof *g_settings; i++) {
        const setting *s = &g_settings[i];
        const char *v = from_env ? getenv(s->env) : NULL;
        char *field = (char *)t + s->offset;
        if (s->kind == K_ISA) {
            int isa = 0;
            for (int j = 1; v && j < (int)(sizeof isa_names / sizeof *isa_names); j++)
                if (strcmp(v, isa_names[j]) == 0) isa = j;
            memcpy(field, &isa, sizeof isa);
        } else if (s->kind == K_SIZE) {
            size_t n = s->def;
            if (v && *v) {
                char *end = NULL;
                unsigned long long u = strtoull(v, &end, 10);
                if (end && *end == 0 && v[0] != '-') n = (size_t)u;
            }
            memcpy(field, &n, sizeof n);
        } else {
            int on = v && *v && strcmp(v, "0") != 0; /* set, and not "0" */
            memcpy(field, &on, sizeof on);
        }
    }
}

void gc_tuning_defaults(gc_tuning *t) { fill(t, 0); }

void gc_tuning_get(gc_tuning *t) {
    if (g_default) *t = *g_default;
    else fill(t, 1);
}
