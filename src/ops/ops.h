/* The op interface and registry.
 *
 * Every op lives in one family file (src/ops/<family>.c) that holds, a few lines apart, its
 * attribute parsing, shape inference, forward kernel and backward (vector-Jacobian product).
 * The registry (registry.c) is one table indexed by gc_op_id, built from GC_OP_LIST below.
 *
 * Conventions for kernels:
 *  - Arguments come through gc_kctx: in[] (inputs), out[] (outputs), gout[] (gradients arriving
 *    at the outputs), gin[] (gradients to produce for the inputs).
 *  - infer(): in[i] has dtype and shape; in[i]->data is non-NULL iff the value is known at
 *    planning time (a weight, a constant, a folded shape computation). It sets out[j]->dtype and
 *    out[j]->shape, and checks everything about the inputs that forward relies on, so forward
 *    never sees a shape it cannot handle. Ops whose output shape depends on an input's values
 *    (Reshape's shape, Slice's starts...) require that input to be constant and say so otherwise.
 *  - forward(): out[j]->data is allocated (not zeroed) with the shape infer() gave.
 *  - backward(): gout[j] may be NULL (no gradient reaches that output: treat as zero). gin[i] is
 *    NULL when that input's gradient is not wanted; otherwise the kernel ADDS its contribution
 *    into gin[i]->data (it is zeroed before the first contribution), so fan-out needs no copies.
 *    Only data gradients exist: weights never get one. Backward may read in[i]->data only for
 *    the inputs in bw_in, out[j]->data only for outputs in bw_out (the others may already be
 *    freed), and always every shape.
 *  - Ops that want to hand something from forward to backward (MaxPool's argmax) declare
 *    aux_bytes(); forward writes k->aux when it is non-NULL (only when a backward is planned).
 *  - Errors: return gc_kfail(k, code, "...") which names the node and op.
 */
#ifndef GC_OPS_H
#define GC_OPS_H

#include "../ir/ir.h"
#include "../tuning.h"
#include "kmath.h"

#define GC_MAX_IO 64 /* Concat in DenseNet-201 takes 49 inputs */

/* Backward rule for ReLU-like non-linearities (Relu; Clip with min 0, e.g. ReLU6). */
typedef enum gc_rule {
    GC_RULE_STANDARD = 0, /* the true derivative */
    GC_RULE_GUIDED = 1,   /* pass where forward input > 0 AND incoming gradient > 0 */
    GC_RULE_DECONV = 2    /* pass where incoming gradient > 0 */
} gc_rule;

/* What the planner fused into a step (src/graph/fuse.c); all zero for a step on its own. */
typedef struct gc_kfuse {
    int relu;                      /* forward: apply max(y, 0) to out[0] (a following Relu fused in;
                                      only ops with .fuse_relu); backward (ops with .fuse_relu_bw):
                                      that Relu's VJP comes first */
    gc_tensor *mul;                /* Sigmoid forward: also write in[0] * out[0] here (a following
                                      Mul fused in: SiLU) */
    int silu;                      /* Sigmoid with mul: out[0] has no buffer; forward writes only mul;
                                      backward's gout[0] is mul's gradient and the kernel applies
                                      SiLU's VJP, reading in[0] */
    gc_tensor *const *cat_in;      /* BatchNormalization forward: in[0] is not computed; it is the
                                      concatenation along axis 1 of these n_cat tensors (a Concat
                                      fused in) */
    int n_cat;
    gc_tensor *const *gcat_in;     /* BatchNormalization backward with cat_in: gin[0] is not planned;
                                      the gradient goes straight into these n_cat tensors, the fused
                                      Concat inputs' gradients (NULL: not wanted) */
    uint64_t gcat_fresh;           /* bit i: gcat_in[i] is first written here: assign */
    int relu_dx;                   /* Conv backward (.fuse_relu_dx): in[0] is a Relu's output read
                                      only here; gin[0] is that Relu's input gradient: the kernel
                                      applies the Relu's VJP (under k->rule, at in[0]) to dX;
                                      2: a Clip's with constant bounds dx_lo <= dx_hi instead
                                      (its rule as Clip's backward: k->rule when dx_lo == 0) */
    float dx_lo, dx_hi;
    const gc_tensor *res;          /* Conv forward: added to out[0] (its shape) before relu: a
                                      following Add fused in (out[0] then holds the Add's output;
                                      no backward reads the Conv's own) */
    int act;                       /* forward, ops whose .fuse_act has bit act (Conv): applied to out[0]
                                      after res, with relu 0: GC_ACT_CLAMP (kmath.h), a following Clip
                                      with constant bounds act_lo <= act_hi fused in (its backward
                                      step still runs, reading its output: the shared buffer), or
                                      GC_ACT_SILU, a following Sigmoid + Mul fused in, in steps no
                                      backward passes (its VJP would need the pre-activation) */
    float act_lo, act_hi;
    const gc_tensor *gelu_x;       /* Erf forward: GELU fused in, in steps no backward passes:
                                      gelu_y = (x * (erf(x / c[0]) + c[1])) * c[2], the exported
                                      Div, Erf, Add, Mul, Mul in one pass (fuse.c); in[0] and
                                      out[0] then have no buffers */
    gc_tensor *gelu_y;
    float gelu_c[3];
    const gc_tensor *gelu_b;       /* NULL, or a bias over gelu_x's last axis added first (the
                                      Linear's bias Add before the GELU fused in too) */
} gc_kfuse;

typedef struct gc_kctx {
    const gc_node *node;
    const struct gc_model *model;  /* the node's model (gc_model_release), NULL in op tests */
    const void *params;            /* node->params */
    int n_in, n_out;               /* node->n_in / n_out (optional inputs may be NULL below) */
    gc_tensor *in[GC_MAX_IO];      /* NULL for an omitted optional input */
    gc_tensor *out[GC_MAX_IO];     /* NULL for an omitted optional output */
    const gc_tensor *gout[GC_MAX_IO];
    gc_tensor *gin[GC_MAX_IO];
    void *scratch;                 /* scratch_bytes()/bscratch_bytes() bytes, 64-byte aligned */
    size_t scratch_size;
    void *aux;                     /* aux_bytes() bytes, or NULL */
    uint64_t const_in;             /* bit i: in[i] is a model constant (fixed for the model's life) */
    gc_kfuse fuse;                 /* neighbours fused into this step (plan.c's fusion passes) */
    int exact;                     /* forward: a planned backward passes through this step, so no
                                      path whose larger rounding could flip the kinks a pixel-space
                                      gradient sees (F(4x4) Winograd, conv.c; see plan.c) */
    uint64_t gin_fresh;            /* backward, ops with .bw_assign: bit i: gin[i] is first written
                                      here and holds garbage; assign every element, do not add */
    gc_rule rule;
    int nthreads;
    const gc_tuning *tune;         /* the context's knobs (NULL: the defaults); see gc_ktune */
    gc_err *err;
} gc_kctx;

typedef struct gc_opdef {
    const char *name;              /* ONNX op type */
    int min_opset;                 /* first default-domain opset version handled (usually 1) */
    /* Checks attributes (opset-aware) and may set node->params. Optional. */
    gcam_status (*parse)(gc_node *node, gc_err *err);
    gcam_status (*infer)(gc_kctx *k);
    size_t (*scratch_bytes)(const gc_kctx *k);   /* optional: forward workspace */
    gcam_status (*forward)(gc_kctx *k);
    size_t (*bscratch_bytes)(const gc_kctx *k);  /* optional: backward workspace */
    gcam_status (*backward)(gc_kctx *k);         /* NULL: not differentiable (shape/int ops) */
    size_t (*aux_bytes)(const gc_kctx *k);       /* optional */
    uint64_t bw_in;                /* bit i: backward reads in[i]->data (GC_MAX_IO <= 64 bits) */
    uint64_t bw_out;               /* bit j: backward reads out[j]->data */
    uint64_t diff_in;              /* bit i: a gradient can flow to input i */
    int fuse_relu;                 /* forward honours k->fuse.relu (and backward never reads out[0],
                                      unless .fuse_relu_bw and fuse.relu: then it is the Relu's output) */
    int fuse_concat;               /* forward honours k->fuse.cat_in (and backward never reads in[0]) */
    int bw_assign;                 /* backward honours k->gin_fresh (else fresh buffers are zeroed) */
    unsigned fuse_act;             /* bit a: forward honours k->fuse.act == a (GC_ACT_*); backward never
                                      reads out[0] */
    int fuse_relu_bw;              /* backward honours k->fuse.relu too: gout[0] is the fused Relu's
                                      output gradient, out[0] its output; the kernel applies the
                                      Relu's VJP under k->rule first (plan.c skips the Relu's step) */
    int fuse_relu_dx;              /* backward honours k->fuse.relu_dx (reading in[0] then) */
} gc_opdef;

/* Every input (variadic ops: Concat, Sum, Max...). */
#define GC_ALL_INPUTS (~(uint64_t)0)

/* Every supported op, with the family file that defines gc_def_<Name>. */
#define GC_OP_LIST(X)                                                                              \
    /* conv.c */                                                                                   \
    X(Conv) X(ConvTranspose)                                                                       \
    /* gemm.c */                                                                                   \
    X(Gemm) X(MatMul)                                                                              \
    /* act.c: unary element-wise */                                                                \
    X(Relu) X(LeakyRelu) X(PRelu) X(Elu) X(Selu) X(Clip) X(Sigmoid) X(HardSigmoid) X(HardSwish)    \
    X(Tanh) X(Erf) X(Softplus) X(Sqrt) X(Exp) X(Log) X(Neg) X(Abs) X(Reciprocal) X(Identity)      \
    X(Dropout) X(Floor) X(Ceil) X(Not) X(Softsign) X(Sin) X(Cos) X(Celu) X(ThresholdedRelu)       \
    /* binary.c: broadcasting element-wise */                                                      \
    X(Add) X(Sub) X(Mul) X(Div) X(Pow) X(Min) X(Max) X(Sum) X(Mean) X(Where) X(Equal) X(Less)     \
    X(Greater) X(LessOrEqual) X(GreaterOrEqual) X(And) X(Or) X(Mod)                               \
    /* pool.c */                                                                                   \
    X(MaxPool) X(AveragePool) X(GlobalAveragePool) X(GlobalMaxPool)                                \
    /* norm.c */                                                                                   \
    X(BatchNormalization) X(InstanceNormalization) X(LayerNormalization) X(LRN) X(Softmax)        \
    X(LogSoftmax)                                                                                  \
    /* reduce.c */                                                                                 \
    X(ReduceMean) X(ReduceSum) X(ReduceMax) X(ReduceMin) X(ReduceL2) X(ReduceProd)                \
    X(ReduceSumSquare) X(ArgMax) X(ArgMin)                                                         \
    /* shape.c */                                                                                  \
    X(Concat) X(Split) X(Flatten) X(Reshape) X(Transpose) X(Squeeze) X(Unsqueeze) X(Slice)         \
    X(Gather) X(Expand) X(Tile) X(Shape) X(Cast) X(Constant) X(ConstantOfShape) X(Range) X(Size)   \
    /* resize.c */                                                                                 \
    X(Pad) X(Resize) X(Upsample)                                                                   \
    /* rnn.c */                                                                                    \
    X(LSTM) X(GRU) X(RNN)                                                                          \
    /* scatter.c, einsum.c */                                                                      \
    X(ScatterND) X(Einsum)

typedef enum gc_op_id {
#define GC_X_ENUM(name) GC_OP_##name,
    GC_OP_LIST(GC_X_ENUM)
#undef GC_X_ENUM
    GC_OP_COUNT
} gc_op_id;

#define GC_X_DECL(name) extern const gc_opdef gc_def_##name;
GC_OP_LIST(GC_X_DECL)
#undef GC_X_DECL

/* The registry: NULL entries never occur (static_assert'ed in registry.c). */
const gc_opdef *gc_op_get(int id);
/* How many inputs and outputs (counting omitted optional ones, "") ONNX allows for op `id` at a
 * default-domain opset; checked once when a model's nodes are bound (gc_model_finish), so kernels
 * never meet extra inputs they would silently ignore. */
typedef struct gc_arity {
    int min_in, max_in, min_out, max_out;
} gc_arity;
gc_arity gc_op_arity(int id, int opset);
/* Op id for an ONNX op type in the default domain, or -1. */
int gc_op_find(const char *op_type);

/* The knobs a kernel runs under: its context's, or the defaults when it has none. */
const gc_tuning *gc_ktune(const gc_kctx *k);

/* Fails with a message naming the node: "node 'conv1' (Conv): <text>". Returns code. */
gcam_status gc_kfail(gc_kctx *k, gcam_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- shared helpers (util.c) ---- */

/* numpy broadcasting of two shapes; GCAM_E_SHAPE if incompatible. */
gcam_status gc_broadcast_shape(gc_shape *out, const gc_shape *a, const gc_shape *b);
/* Strides (in elements) to read `in` while iterating over `out`'s index space: 0 on broadcast
 * axes. in's rank may be lower than out's (right-aligned). */
void gc_broadcast_strides(int64_t *strides, const gc_shape *in, const gc_shape *out);
/* Contiguous row-major strides of a shape. */
void gc_shape_strides(int64_t *strides, const gc_shape *s);
/* Reads a constant int tensor (int64 or bool) of at most max elements into v; returns count or
 * -1 if it is not constant / too long. */
int64_t gc_tensor_ints(const gc_tensor *t, int64_t *v, int64_t max);
/* Normalises an axis in [-ndim, ndim) to [0, ndim); -1 if out of range. */
int gc_norm_axis(int64_t axis, int ndim);

#endif
