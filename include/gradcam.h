/* gradcam.h — visual explanations (Grad-CAM and friends) for ONNX CNNs, in C.
 *
 * USAGE GUIDE
 * -----------
 *   #include <gradcam.h>
 *
 *   gcam_model *m = NULL;
 *   if (gcam_model_load(&m, "resnet18.onnx", NULL) != GCAM_OK) {
 *       fprintf(stderr, "%s\n", gcam_model_error(m));  // m is valid even on failure
 *       gcam_model_free(m);
 *       return 1;
 *   }
 *   int64_t dims[4] = {1, 3, 224, 224};
 *   gcam_feed in = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = pixels};
 *   gcam_ctx *c = NULL;
 *   if (gcam_ctx_create(&c, m, &in, 1, NULL) != GCAM_OK ||  // binds dynamic dims to 1x3x224x224
 *       gcam_ctx_run(c, &in, 1) != GCAM_OK) {               // forward pass
 *       fprintf(stderr, "%s\n", gcam_ctx_error(c));
 *   }
 *   gcam_tensor_view logits;
 *   gcam_ctx_output(c, 0, &logits);                         // (1, 1000) floats, owned by c
 *   gcam_ctx_free(c);
 *   gcam_model_free(m);
 *
 * Rules that hold everywhere:
 *  - Every function returns a gcam_status; GCAM_OK is 0. The handle involved keeps one line of text
 *    saying what went wrong (gcam_model_error, gcam_ctx_error). The library never exits or prints.
 *  - A gcam_model is immutable once loaded: any number of gcam_ctx, in any threads, may share it.
 *    A gcam_ctx is used by one thread at a time.
 *  - Tensors are float32 NCHW unless said otherwise; shapes are int64 dims, outermost first.
 *  - Pointers returned inside views stay valid until the next run on the same context or its free.
 */
#ifndef GRADCAM_H
#define GRADCAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GCAM_VERSION_MAJOR 0
#define GCAM_VERSION_MINOR 1
#define GCAM_VERSION_PATCH 0
#define GCAM_VERSION_STRING "0.1.0"

/* Largest tensor rank handled. */
#define GCAM_MAX_DIMS 8

typedef enum gcam_status {
    GCAM_OK = 0,
    GCAM_E_ARG,         /* a bad argument from the caller */
    GCAM_E_IO,          /* a file could not be opened, read or written */
    GCAM_E_FORMAT,      /* malformed model, tensor or image data */
    GCAM_E_UNSUPPORTED, /* a valid model using an op or feature not implemented */
    GCAM_E_SHAPE,       /* shapes that do not fit together */
    GCAM_E_NOMEM,       /* allocation failed */
    GCAM_E_LIMIT,       /* a configured limit (memory, pixels) would be exceeded */
    GCAM_E_NUMERIC,     /* NaN or Inf where a finite value is required */
    GCAM_E_NOT_FOUND,   /* no tensor, input or output of that name */
    GCAM_E_STATE,       /* call out of order (e.g. reading a tensor before any run) */
    GCAM_E_INTERNAL     /* a bug in gradcam: please report it */
} gcam_status;

/* A short constant name for a status ("ok", "format error", ...). */
const char *gcam_status_str(gcam_status s);
const char *gcam_version(void);

typedef enum gcam_dtype {
    GCAM_UNDEFINED = 0,
    GCAM_FLOAT32 = 1,
    GCAM_INT64 = 2, /* int32/int16/int8/uint8 model tensors are widened to int64 */
    GCAM_BOOL = 3   /* one byte per element, 0 or 1 */
} gcam_dtype;

const char *gcam_dtype_str(gcam_dtype t);

typedef struct gcam_model gcam_model;
typedef struct gcam_ctx gcam_ctx;

/* ---- Loading ---------------------------------------------------------------------------------- */

typedef struct gcam_load_options {
    /* Load a model even when some ops are unsupported (for inspection, e.g. `gradcam info`):
     * gcam_model_num_unsupported() lists them and gcam_ctx_create() then fails. Default 0: loading
     * fails with one message naming every unsupported op at once. */
    int allow_unsupported;
    /* Fold inference BatchNormalization into the preceding Conv at load (faster; the BN output
     * tensor then no longer exists on its own). Default 0. */
    int fold_batchnorm;
} gcam_load_options;

/* Loads an ONNX model file. External data files are resolved relative to the model's folder.
 * *out is set even on failure (unless out is NULL or memory ran out) so that gcam_model_error()
 * can say why; free it with gcam_model_free() in both cases. opts may be NULL. */
gcam_status gcam_model_load(gcam_model **out, const char *path, const gcam_load_options *opts);
/* The same from memory; base_dir (may be NULL) is where external data files are looked for. */
gcam_status gcam_model_load_memory(gcam_model **out, const void *data, size_t size,
                                   const char *base_dir, const gcam_load_options *opts);
const char *gcam_model_error(const gcam_model *m);
void gcam_model_free(gcam_model *m);

typedef struct gcam_tensor_info {
    const char *name;
    gcam_dtype dtype;
    int ndim;                          /* -1 when not known before binding the input shape */
    int64_t dims[GCAM_MAX_DIMS];       /* -1 for a dimension not known before binding */
    const char *dim_names[GCAM_MAX_DIMS]; /* symbolic names ("batch", "height") or NULL */
    const char *producer;              /* name of the node that computes it; NULL for inputs */
    const char *op_type;               /* that node's op type; NULL for inputs and weights */
    int is_weight;                     /* an initialiser or a value computed only from them */
} gcam_tensor_info;

typedef struct gcam_node_info {
    const char *name;
    const char *op_type;
    const char *domain; /* "" for the default ONNX domain */
    int opset;          /* opset version in force for this node's domain */
    int n_inputs, n_outputs;
    const char *const *inputs;  /* tensor names; "" for an omitted optional input */
    const char *const *outputs;
} gcam_node_info;

int gcam_model_num_inputs(const gcam_model *m);  /* graph inputs that are not initialisers */
int gcam_model_num_outputs(const gcam_model *m);
int gcam_model_num_nodes(const gcam_model *m);
int gcam_model_num_tensors(const gcam_model *m); /* every named value: inputs, weights, activations */
gcam_status gcam_model_input(const gcam_model *m, int i, gcam_tensor_info *out);
gcam_status gcam_model_output(const gcam_model *m, int i, gcam_tensor_info *out);
gcam_status gcam_model_node(const gcam_model *m, int i, gcam_node_info *out);
gcam_status gcam_model_tensor(const gcam_model *m, int i, gcam_tensor_info *out);
/* Looks a tensor up by name; GCAM_E_NOT_FOUND if there is none. */
gcam_status gcam_model_find_tensor(const gcam_model *m, const char *name, gcam_tensor_info *out);
/* Unsupported ops found at load (only with allow_unsupported): one line each,
 * "OpType (node 'name', domain '', opset N): reason". */
int gcam_model_num_unsupported(const gcam_model *m);
const char *gcam_model_unsupported(const gcam_model *m, int i);
int gcam_model_opset(const gcam_model *m); /* default-domain opset */
const char *gcam_model_producer(const gcam_model *m); /* "pytorch 1.13.1", or "" */

/* ---- Running ------------------------------------------------------------------------------------ */

/* A tensor handed in by the caller. name NULL means "the i-th graph input" (the position in the
 * array). data may be NULL when only the shape matters (gcam_ctx_create). */
typedef struct gcam_feed {
    const char *name;
    gcam_dtype dtype;
    int ndim;
    const int64_t *dims;
    const void *data;
} gcam_feed;

/* A tensor read back; data is owned by the context. */
typedef struct gcam_tensor_view {
    const char *name;
    gcam_dtype dtype;
    int ndim;
    int64_t dims[GCAM_MAX_DIMS];
    size_t numel;
    const void *data;
} gcam_tensor_view;

/* How gradients pass ReLU-like non-linearities (Relu, and Clip with min 0 such as ReLU6) in a
 * backward pass. Every other op always uses its true derivative. */
typedef enum gcam_rule {
    GCAM_RULE_STANDARD = 0, /* the true derivative: pass where the forward input > 0 */
    GCAM_RULE_GUIDED = 1,   /* Guided Backpropagation (Springenberg et al. 2014): pass where the
                               forward input > 0 and the incoming gradient > 0 */
    GCAM_RULE_DECONV = 2    /* Deconvnet (Zeiler & Fergus 2014): pass where the incoming gradient > 0 */
} gcam_rule;

typedef struct gcam_ctx_options {
    int n_threads;        /* 0: as many as cores */
    size_t max_memory;    /* bytes of planned buffers allowed; 0: the default cap (8 GiB) */
    /* Names of intermediate tensors to keep readable after a run (gcam_ctx_tensor). Outputs are
     * always kept; other activations are freed (their memory reused) once no later node reads
     * them. The single name "*" keeps everything. */
    const char *const *keep;
    int n_keep;
    /* Backward plan. seed: the tensor a backward pass starts from (a model output, or an internal
     * tensor such as the logits feeding a final Softmax); NULL for inference only. grad_of: the
     * tensors whose gradients are wanted (activations by name, or a graph input's name for the
     * input gradient). Only nodes on a path from them to the seed are ever differentiated, and
     * the forward keeps exactly what those backward kernels read. */
    const char *seed;
    const char *const *grad_of;
    int n_grad_of;
} gcam_ctx_options;

/* Creates an execution context for the given input shapes: every symbolic dimension is bound,
 * shape sub-graphs are evaluated, memory is planned and allocated once. Inputs not listed must
 * have fully known shapes in the model. *out is set even on failure (see gcam_ctx_error). */
gcam_status gcam_ctx_create(gcam_ctx **out, const gcam_model *m, const gcam_feed *shapes,
                            int n_shapes, const gcam_ctx_options *opts);
const char *gcam_ctx_error(const gcam_ctx *c);
void gcam_ctx_free(gcam_ctx *c);
/* Bytes of activation memory planned for this context. */
size_t gcam_ctx_planned_bytes(const gcam_ctx *c);

/* Runs the forward pass. Every graph input must be fed (same shapes as bound at creation). */
gcam_status gcam_ctx_run(gcam_ctx *c, const gcam_feed *feeds, int n_feeds);
int gcam_ctx_num_outputs(const gcam_ctx *c);
gcam_status gcam_ctx_output(gcam_ctx *c, int i, gcam_tensor_view *out);
/* Any tensor kept (see gcam_ctx_options.keep), any output, input or weight, by name. */
gcam_status gcam_ctx_tensor(gcam_ctx *c, const char *name, gcam_tensor_view *out);
/* The shape a tensor has in this context (known for every tensor after creation). */
gcam_status gcam_ctx_tensor_shape(const gcam_ctx *c, const char *name, gcam_tensor_view *out);

/* ---- Backward (needs gcam_ctx_options.seed and grad_of) ------------------------------------- */

/* Runs a backward pass on the last forward: seed_grad holds one float per element of the seed
 * tensor (a one-hot on a class, a mask over a region, a weight per output...). want/n_want
 * restrict it to some of the planned grad_of tensors (NULL/0: all of them): the pass stops as
 * soon as those are complete. Several backward passes may follow one forward. */
gcam_status gcam_ctx_backward(gcam_ctx *c, const float *seed_grad, gcam_rule rule,
                              const char *const *want, int n_want);
/* The gradient of the seed with respect to a planned grad_of tensor (same shape as it). */
gcam_status gcam_ctx_grad(gcam_ctx *c, const char *name, gcam_tensor_view *out);
/* Nodes the last backward pass differentiated (for checking that pruning works). */
int gcam_ctx_backward_node_count(const gcam_ctx *c);
/* The seed tensor's shape (to build seed_grad). */
gcam_status gcam_ctx_seed_shape(const gcam_ctx *c, gcam_tensor_view *out);

#ifdef __cplusplus
}
#endif
#endif
