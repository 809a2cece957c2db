/* The op registry: one table, indexed by gc_op_id, filled from GC_OP_LIST. */
#include "ops.h"

#include <assert.h>

static const gc_opdef *const g_ops[] = {
#define GC_X_ROW(name) &gc_def_##name,
    GC_OP_LIST(GC_X_ROW)
#undef GC_X_ROW
};
static_assert(GC_ARRAY_LEN(g_ops) == GC_OP_COUNT, "registry table out of step with GC_OP_LIST");

const gc_opdef *gc_op_get(int id) {
    if (id < 0 || id >= GC_OP_COUNT) return NULL;
    return g_ops[id];
}

int gc_op_find(const char *op_type) {
    for (int i = 0; i < GC_OP_COUNT; i++)
        if (g_ops[i]->forward && strcmp(g_ops[i]->name, op_type) == 0) return i;
    return -1;
}

gcam_status gc_kfail(gc_kctx *k, gcam_status code, const char *fmt, ...) {
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    const gc_node *n = k->node;
    return gc_fail(k->err, code, "node '%s' (%s): %s", n && n->name ? n->name : "?",
                   n && n->op_type ? n->op_type : "?", text);
}
