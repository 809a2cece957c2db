/* The op registry: one table, indexed by gc_op_id, filled from GC_OP_LIST. */
#include "ops.h"

#include <assert.h>

static const gc_opdef *const g_ops[] = {
#define GC_X_ROW(name) &gc_def_##name,
    GC_OP_LIST(GC_X_ROW)
#undef GC_X_ROW
};
static_assert(GC_ARRAY_LEN(g_ops) == GC_OP_COUNT, "registry table out of step with GC_OP_LIST");

/* ONNX input/output counts (min_in, max_in, min_out, max_out) at the op's latest opset; V: variadic.
 * Ops whose counts changed across opsets are adjusted in gc_op_arity. One row per op of
 * GC_OP_LIST: the count is static_assert'ed, a duplicate row is an initializer-override error. */
#define V GC_MAX_IO
#define GC_ARITY_LIST(X)                                                                           \
    X(Conv, 2, 3, 1, 1) X(ConvTranspose, 2, 3, 1, 1) X(Gemm, 2, 3, 1, 1) X(MatMul, 2, 2, 1, 1)       \
    X(Relu, 1, 1, 1, 1) X(LeakyRelu, 1, 1, 1, 1) X(PRelu, 2, 2, 1, 1) X(Elu, 1, 1, 1, 1)             \
    X(Selu, 1, 1, 1, 1) X(Clip, 1, 3, 1, 1) X(Sigmoid, 1, 1, 1, 1) X(HardSigmoid, 1, 1, 1, 1)        \
    X(HardSwish, 1, 1, 1, 1) X(Tanh, 1, 1, 1, 1) X(Erf, 1, 1, 1, 1) X(Softplus, 1, 1, 1, 1)          \
    X(Sqrt, 1, 1, 1, 1) X(Exp, 1, 1, 1, 1) X(Log, 1, 1, 1, 1) X(Neg, 1, 1, 1, 1) X(Abs, 1, 1, 1, 1)  \
    X(Reciprocal, 1, 1, 1, 1) X(Identity, 1, 1, 1, 1) X(Dropout, 1, 3, 1, 2) X(Floor, 1, 1, 1, 1)    \
    X(Ceil, 1, 1, 1, 1) X(Not, 1, 1, 1, 1) X(Softsign, 1, 1, 1, 1) X(Sin, 1, 1, 1, 1)                \
    X(Cos, 1, 1, 1, 1) X(Celu, 1, 1, 1, 1) X(ThresholdedRelu, 1, 1, 1, 1)                            \
    X(Add, 2, 2, 1, 1) X(Sub, 2, 2, 1, 1) X(Mul, 2, 2, 1, 1) X(Div, 2, 2, 1, 1) X(Pow, 2, 2, 1, 1)   \
    X(Min, 1, V, 1, 1) X(Max, 1, V, 1, 1) X(Sum, 1, V, 1, 1) X(Mean, 1, V, 1, 1)                     \
    X(Where, 3, 3, 1, 1) X(Equal, 2, 2, 1, 1) X(Less, 2, 2, 1, 1) X(Greater, 2, 2, 1, 1)             \
    X(LessOrEqual, 2, 2, 1, 1) X(GreaterOrEqual, 2, 2, 1, 1) X(And, 2, 2, 1, 1) X(Or, 2, 2, 1, 1)    \
    X(Mod, 2, 2, 1, 1)                                                                             \
    X(MaxPool, 1, 1, 1, 2) X(AveragePool, 1, 1, 1, 1) X(GlobalAveragePool, 1, 1, 1, 1)               \
    X(GlobalMaxPool, 1, 1, 1, 1)                                                                   \
    X(BatchNormalization, 5, 5, 1, 3) X(InstanceNormalization, 3, 3, 1, 1)                         \
    X(LayerNormalization, 2, 3, 1, 3) X(LRN, 1, 1, 1, 1) X(Softmax, 1, 1, 1, 1)                      \
    X(LogSoftmax, 1, 1, 1, 1)                                                                      \
    X(ReduceMean, 1, 2, 1, 1) X(ReduceSum, 1, 2, 1, 1) X(ReduceMax, 1, 2, 1, 1)                      \
    X(ReduceMin, 1, 2, 1, 1) X(ReduceL2, 1, 2, 1, 1) X(ReduceProd, 1, 2, 1, 1)                       \
    X(ReduceSumSquare, 1, 2, 1, 1) X(ArgMax, 1, 1, 1, 1) X(ArgMin, 1, 1, 1, 1)                       \
    X(Concat, 1, V, 1, 1) X(Split, 1, 2, 1, V) X(Flatten, 1, 1, 1, 1) X(Reshape, 2, 2, 1, 1)         \
    X(Transpose, 1, 1, 1, 1) X(Squeeze, 1, 2, 1, 1) X(Unsqueeze, 2, 2, 1, 1) X(Slice, 3, 5, 1, 1)    \
    X(Gather, 2, 2, 1, 1) X(Expand, 2, 2, 1, 1) X(Tile, 2, 2, 1, 1) X(Shape, 1, 1, 1, 1)             \
    X(Cast, 1, 1, 1, 1) X(Constant, 0, 0, 1, 1) X(ConstantOfShape, 1, 1, 1, 1) X(Range, 3, 3, 1, 1)  \
    X(Size, 1, 1, 1, 1)                                                                            \
    X(Pad, 2, 4, 1, 1) X(Resize, 1, 4, 1, 1) X(Upsample, 2, 2, 1, 1)                                \
    X(LSTM, 3, 8, 0, 3) X(GRU, 3, 6, 0, 2) X(RNN, 3, 6, 0, 2)                                      \
    X(ScatterND, 3, 3, 1, 1) X(Einsum, 1, V, 1, 1)

#define GC_X_ARITY(name, a, b, c, d) [GC_OP_##name] = {a, b, c, d},
static const gc_arity g_arity[GC_OP_COUNT] = {GC_ARITY_LIST(GC_X_ARITY)};
#undef GC_X_ARITY
#define GC_X_ONE(name, a, b, c, d) +1
static_assert(0 GC_ARITY_LIST(GC_X_ONE) == GC_OP_COUNT, "arity table out of step with GC_OP_LIST");
#undef GC_X_ONE
#undef V

gc_arity gc_op_arity(int id, int opset) {
    if (id < 0 || id >= GC_OP_COUNT) return (gc_arity){0, 0, 0, 0};
    gc_arity a = g_arity[id];
    switch (id) { /* counts of earlier opsets (inputs that were attributes then) */
    case GC_OP_Gemm: if (opset < 11) a.min_in = 3; break;
    case GC_OP_Clip: if (opset < 11) a.max_in = 1; break;
    case GC_OP_Dropout: if (opset < 12) a.max_in = 1; break;
    case GC_OP_MaxPool: if (opset < 8) a.max_out = 1; break;
    case GC_OP_BatchNormalization: if (opset < 14) a.max_out = 5; break;
    case GC_OP_ReduceSum: if (opset < 13) a.max_in = 1; break;
    case GC_OP_ReduceMean: case GC_OP_ReduceMax: case GC_OP_ReduceMin: case GC_OP_ReduceL2:
    case GC_OP_ReduceProd: case GC_OP_ReduceSumSquare: if (opset < 18) a.max_in = 1; break;
    case GC_OP_Split: if (opset > 1 && opset < 13) a.max_in = 1; break;
    case GC_OP_Reshape: if (opset < 5) a.min_in = a.max_in = 1; break;
    case GC_OP_Squeeze: if (opset < 13) a.max_in = 1; break;
    case GC_OP_Unsqueeze: if (opset < 13) a.min_in = a.max_in = 1; break;
    case GC_OP_Slice: if (opset < 10) a.min_in = a.max_in = 1; break;
    case GC_OP_Pad: if (opset < 11) a.min_in = a.max_in = 1; else if (opset < 18) a.max_in = 3; break;
    case GC_OP_Resize: if (opset < 11) a.min_in = a.max_in = 2; else if (opset < 13) a.min_in = 3; break;
    case GC_OP_Upsample: if (opset < 9) a.min_in = a.max_in = 1; break;
    default: break;
    }
    return a;
}

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

const gc_tuning *gc_ktune(const gc_kctx *k) {
    static const gc_tuning off; /* kernels read only the on/off knobs, all off by default */
    return k->tune ? k->tune : &off;
}
