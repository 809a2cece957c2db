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
 * Explaining (Grad-CAM and the rest of docs/methods.md) on the same input (examples/explain.c is the
 * complete program):
 *
 *   gcam_explainer *e = NULL;                      // NULL options: automatic target layer
 *   gcam_explainer_create(&e, m, &in, 1, NULL);    // plans forward + the short backward
 *   gcam_explainer_forward(e, &in, 1);             // one forward shared by every method
 *   gcam_target t = {.kind = GCAM_TARGET_CLASS, .cls = 281};
 *   gcam_map map;
 *   if (gcam_explain(e, GCAM_GRADCAM, &t, &map) == GCAM_OK) {
 *       // map.raw (layer resolution), map.upsampled and map.normalized (input size, [0,1])
 *       gcam_map_free(&map);
 *   }
 *   gcam_explainer_free(e);
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
    GCAM_E_INTERNAL,    /* a bug in gradcam: please report it */
    GCAM_E_ABORTED      /* stopped by the caller's abort check (gcam_ctx_set_abort) */
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
    /* Cap on the bytes of constants computed at load (sub-graphs of weights and constants are
     * folded once: a tiny initialiser expanded by ConstantOfShape/Expand/Tile would otherwise be
     * allocated whatever its size). 0: the default, 8 GiB. Exceeding it fails with GCAM_E_LIMIT. */
    size_t max_memory;
} gcam_load_options;

/* Loads an ONNX model file. External data files are resolved relative to the model's folder and
 * must stay inside it (no "..", no absolute path, no symbolic link leading out, regular files only).
 * *out is set even on failure (unless out is NULL or memory ran out) so that gcam_model_error()
 * can say why; free it with gcam_model_free() in both cases. opts may be NULL.
 * The file (and its external data files) are mapped read-only, not read: weights stored aligned
 * for their type are used where they lie. While the model lives, replace such a file by renaming a
 * new one into place, never by rewriting or truncating it (a mapped page past a new end faults). */
gcam_status gcam_model_load(gcam_model **out, const char *path, const gcam_load_options *opts);
/* The same from memory; base_dir (may be NULL) is where external data files are looked for. The
 * weights are copied: data may be freed as soon as this returns. */
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
    int n_threads;        /* 0: one per CPU this process may run on (its affinity mask) */
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
    /* 1: int64/bool inputs whose data is given to gcam_ctx_create become constants of the context
     * (for models that take shape arguments such as Reshape's shape as graph inputs); their values
     * are then fixed for the context's life and need not be fed again. */
    int const_int_inputs;
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
/* An abort check: called by the thread running a pass before each step of the forward and the
 * backward (between kernels: a kernel itself is not interrupted); nonzero stops the pass with
 * GCAM_E_ABORTED. The context stays usable: the next pass runs whole (a server's per-request
 * deadline; an interactive stop). fn NULL removes it. */
typedef int (*gcam_abort_fn)(void *user);
gcam_status gcam_ctx_set_abort(gcam_ctx *c, gcam_abort_fn fn, void *user);

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

/* ---- Explanations ------------------------------------------------------------------------------ */

typedef enum gcam_method {
    GCAM_GRADCAM = 0,        /* "gradcam": Selvaraju et al. */
    GCAM_GRADCAM_COUNTER,    /* "counterfactual": Grad-CAM with negated gradients */
    GCAM_CAM,                /* "cam": Zhou et al., GAP + linear heads only */
    GCAM_GRADCAMPP,          /* "gradcam++": Chattopadhay et al. */
    GCAM_XGRADCAM,           /* "xgradcam": Fu et al. */
    GCAM_HIRESCAM,           /* "hirescam": Draelos & Carin */
    GCAM_LAYERCAM,           /* "layercam": Jiang et al. */
    GCAM_EIGENCAM,           /* "eigencam": Muhammad & Yeasin (first principal component of A) */
    GCAM_EIGENGRADCAM,       /* "eigengradcam": first principal component of A * dA */
    GCAM_SCORECAM,           /* "scorecam": Wang et al. */
    GCAM_ABLATIONCAM,        /* "ablationcam": Desai & Ramaswamy */
    GCAM_GUIDED_BACKPROP,    /* "guided-backprop": Springenberg et al. (pixel space) */
    GCAM_DECONVNET,          /* "deconvnet": Zeiler & Fergus (pixel space) */
    GCAM_GUIDED_GRADCAM,     /* "guided-gradcam": guided backprop x upsampled Grad-CAM (pixel space) */
    GCAM_GRADIENT,           /* "gradient": vanilla saliency (pixel space) */
    GCAM_GRAD_X_INPUT,       /* "gradient-x-input" (pixel space) */
    GCAM_SMOOTHGRAD,         /* "smoothgrad": Smilkov et al., averaged over noisy inputs (pixel space) */
    GCAM_INTEGRATED_GRADIENTS, /* "integrated-gradients": Sundararajan et al. (pixel space) */
    GCAM_ATTENTION_ROLLOUT,  /* "attention-rollout": Abnar & Zuidema 2020, transformers with global
                                attention (a map on the token grid; class-agnostic) */
    GCAM_GRAD_ROLLOUT,       /* "grad-rollout": gradient-weighted rollout, Chefer et al. 2021 */
    GCAM_METHOD_COUNT
} gcam_method;

const char *gcam_method_name(gcam_method m);
/* Method by name (as above, case-insensitive); -1 if unknown. */
int gcam_method_from_name(const char *name);
/* 1 for methods that give a map at a layer's resolution (the CAM family), 0 for pixel space. */
int gcam_method_is_cam(gcam_method m);

typedef enum gcam_target_kind {
    GCAM_TARGET_CLASS = 0,   /* score of class `cls` (axis 1 of the output) for every sample, or
                                classes[n] per sample when `classes` is set */
    GCAM_TARGET_ELEMENT,     /* one element of the output: `index` (full index, batch first) */
    GCAM_TARGET_REGION,      /* sum of class `cls`'s scores over rows y0..y1-1, cols x0..x1-1 of a
                                spatial output (N, C, H, W): segmentation */
    GCAM_TARGET_WEIGHTS,     /* any weighting: `weights` has the output's shape (seed as is) */
    GCAM_TARGET_PRODUCT,     /* the product of n_elements (1..GCAM_MAX_TARGET_ELEMENTS) elements of
                                the output, `elements` as flat indices (batch first): one detection's
                                score, e.g. YOLOv5's objectness x class score */
    GCAM_TARGET_MASK         /* sum of class `cls`'s scores over the pixels where `mask` (H, W of
                                a spatial output (N, C, H, W), row-major) is nonzero, every sample:
                                a segment, e.g. the pixels predicted as that class */
} gcam_target_kind;

#define GCAM_MAX_TARGET_ELEMENTS 4

typedef struct gcam_target {
    gcam_target_kind kind;
    int64_t cls;
    const int64_t *classes;            /* optional, one per sample (CLASS) */
    int64_t index[GCAM_MAX_DIMS];      /* ELEMENT */
    int64_t y0, x0, y1, x1;            /* REGION, in output pixels, end exclusive */
    const float *weights;              /* WEIGHTS */
    int64_t elements[GCAM_MAX_TARGET_ELEMENTS]; /* PRODUCT: flat indices into the output */
    int n_elements;                    /* PRODUCT */
    const uint8_t *mask;               /* MASK: (H, W) */
} gcam_target;

/* ---- detector outputs --------------------------------------------------------------------------
 *
 * Candidates decoded from a detector's output, filtered by score and class, class-wise NMS, and for
 * each kept detection the target that explains its score (gcam_explain on an explainer created
 * with explain_probability = 1, so that its score is the output itself). Boxes are in the model
 * input's pixels; map them to the picture with the preprocessing geometry. */

typedef enum gcam_det_layout {
    GCAM_DET_AUTO = 0,  /* from the output's shape, when only one layout fits */
    GCAM_DET_YOLOV8,    /* "yolov8": one output (N, 4 + C, A): cx, cy, w, h, then C class scores
                           (after their sigmoid), no objectness (YOLOv8, YOLO11) */
    GCAM_DET_YOLOV5     /* "yolov5": one output (N, A, 5 + C): cx, cy, w, h, objectness, C class
                           scores; a candidate's score is objectness x class score (YOLOv5, v7) */
} gcam_det_layout;

const char *gcam_det_layout_name(gcam_det_layout l);
/* Layout by name (case-insensitive); -1 if unknown. */
int gcam_det_layout_from_name(const char *name);

typedef struct gcam_detect_options {
    gcam_det_layout layout;      /* GCAM_DET_AUTO (0) unless named */
    float score_threshold;       /* keep scores >= this (gcam_detect_options_init: 0.25) */
    float iou_threshold;         /* NMS within a class: suppress when IoU (computed in double, rounded
                                    to float) > this (0.45) */
    int max_detections;          /* per sample, the best first (100) */
    const int64_t *classes;      /* only these classes; NULL: all */
    int n_classes;
} gcam_detect_options;

/* The defaults above. */
void gcam_detect_options_init(gcam_detect_options *o);

typedef struct gcam_detection {
    int64_t sample;              /* batch index */
    int64_t anchor;              /* candidate index in the output */
    int64_t cls;
    float score;                 /* class score, x objectness where the layout has it */
    float x0, y0, x1, y1;        /* box corners in input pixels: x0 = cx - w/2, x1 = cx + w/2 */
    gcam_target target;          /* GCAM_TARGET_PRODUCT of the elements whose product is score */
} gcam_detection;

/* Decodes `out` (a detector output, float32) into *dets (malloc'd, free with free(); NULL when
 * *n_dets is 0, and on failure; sorted by sample, then score descending, ties to the lower anchor)
 * and *n_dets. At most 30000 candidates per sample, the best, enter NMS. GCAM_E_ARG for NULL
 * out/dets/n_dets, a NaN threshold, max_detections < 1, or a class filter naming a class the
 * output does not have. Candidates whose box or
 * score is not finite, or whose width or height is <= 0, are dropped. *layout_used (may be NULL)
 * says which layout was read. GCAM_E_SHAPE with a message in err (may be NULL; at least 256
 * bytes) naming the output, its shape and the layouts accepted when the output fits none (or
 * both, for GCAM_DET_AUTO). */
gcam_status gcam_detect_decode(const gcam_tensor_view *out, const gcam_detect_options *opts, gcam_detection **dets,
                               int64_t *n_dets, gcam_det_layout *layout_used, char *err, size_t err_size);
/* The layout `out` is read with (`layout`, or found from the shape for GCAM_DET_AUTO) and its
 * number of classes C; the checks and messages of gcam_detect_decode. */
gcam_status gcam_detect_layout(const gcam_tensor_view *out, gcam_det_layout layout, gcam_det_layout *used,
                               int64_t *num_classes, char *err, size_t err_size);

typedef struct gcam_explain_options {
    const char *output;          /* model output to explain; NULL: the first */
    /* Target layers (tensor or node names) for the CAM family; several: maps averaged, as
     * pytorch-grad-cam does. Maps (N, C, H, W), channel-last maps (N, H, W, C) or tokens (N, T, C)
     * (see tokens_h below). None: automatic (the last 4-D activation with spatial size > 1 that
     * the target depends on; for a classifier the input of its global pooling; for a detector whose
     * 3-D output concatenates several flattened pyramid levels, per level the neck's feature map
     * feeding that level's head, as several layers; for a transformer, when later than those, the
     * last LayerNormalization whose tokens are still mixed by attention on the way to the target
     * (ViT: the last block's first norm) or that is channel-last maps (Swin: the final norm)). */
    const char *const *layers;
    int n_layers;
    /* 0 (default): explain the score before a final Softmax / LogSoftmax / Sigmoid (the paper's
     * y^c); 1: the probability after it. */
    int explain_probability;
    int n_threads;
    size_t max_memory;
    int smoothgrad_samples;      /* default 25 */
    float smoothgrad_sigma;      /* noise std as a fraction of the input's range; default 0.15 */
    gcam_method smoothgrad_base; /* the gradient method averaged; default GCAM_GRADIENT */
    uint64_t noise_seed;         /* SmoothGrad noise; deterministic given the seed */
    int ig_steps;                /* Integrated Gradients steps M; default 50 */
    const float *ig_baseline;    /* input-shaped baseline; NULL: black (zeros) */
    int batch_size;              /* Score-CAM: masked inputs per forward; default 16. (Ablation-CAM
                                    re-runs only the layers after the target layer, one channel at a time.) */
    /* 1: plan the gradient down to the input from the start, for pixel-space methods to come. By
     * default the first pixel-space method re-plans (and re-runs the forward) once; a plan keeps
     * some tensors that the other fuses away, so maps computed before and after that differ in the
     * last bits. With 1 every map is computed on one plan whatever the order of the calls (the
     * command sets it when any pixel-space method is asked for). */
    int input_gradient;
    /* Token layers (vision transformers; docs/methods.md, "Transformers"). A target layer
     * (N, T, C) is read as maps (N, C, h, w) from its last h * w tokens, the first T - h * w
     * (a class token, DeiT's distillation token) dropped; a layer (N, H, W, C) that is channel-last
     * (Swin) is read transposed. tokens_h x tokens_w: the grid; 0: from the input's size (the grid
     * with the input's aspect ratio after skip_tokens special tokens, or after 0, 1 or 2 when
     * skip_tokens is 0). */
    int64_t tokens_h, tokens_w;
    int skip_tokens;
} gcam_explain_options;

typedef struct gcam_explainer gcam_explainer;

/* Plans everything the methods need on one context: the forward keeps the target layers'
 * activations, the backward runs only between them (or the input) and the score. *out is set
 * even on failure (gcam_explainer_error). input_shapes as for gcam_ctx_create. */
gcam_status gcam_explainer_create(gcam_explainer **out, const gcam_model *m, const gcam_feed *input_shapes,
                                  int n_shapes, const gcam_explain_options *opts);
const char *gcam_explainer_error(const gcam_explainer *e);
void gcam_explainer_free(gcam_explainer *e);
int gcam_explainer_num_layers(const gcam_explainer *e);
const char *gcam_explainer_layer(const gcam_explainer *e, int i);
/* How a tensor or node (its first output) would be read as a CAM layer by this explainer (its input
 * size and token options): GCAM_OK with a description in how ("(N, C, H, W) maps: 512 channels of
 * 7x7", "tokens: 1 special + a 14x14 grid of 768 channels", "channel-last maps: ..."), else
 * GCAM_E_ARG or GCAM_E_NOT_FOUND with the reason in how (n bytes; may be NULL). */
gcam_status gcam_explainer_layer_check(const gcam_explainer *e, const char *name, char *how, size_t n);
/* Name of the tensor whose elements are the explained scores (e.g. the logits before Softmax). */
const char *gcam_explainer_score_name(const gcam_explainer *e);

/* The abort check (gcam_ctx_set_abort) of every context the explainer runs, now and later:
 * an explanation stopped by it fails with GCAM_E_ABORTED; the explainer stays usable after a new
 * gcam_explainer_forward. */
gcam_status gcam_explainer_set_abort(gcam_explainer *e, gcam_abort_fn fn, void *user);

/* One forward pass on new inputs; every explanation until the next call shares it. */
gcam_status gcam_explainer_forward(gcam_explainer *e, const gcam_feed *inputs, int n_inputs);
/* The explained scores (shape of the score tensor) and, for classifiers, the probabilities. The
 * view's data belongs to the explainer and stays valid until its next gcam_explainer_forward.
 * (The explainer plans the backward to the target layers first; the first pixel-space method
 * re-plans it with the input gradient and re-runs the forward once.) */
gcam_status gcam_explainer_scores(gcam_explainer *e, gcam_tensor_view *scores);

/* A map: raw at the layer's resolution (CAM family) or the input's (pixel space), upsampled to the
 * input (bilinear, half-pixel centres) and normalised to [0,1] per sample and channel (min-max; a
 * constant map becomes all zeros, never NaN). Buffers are owned by the map. */
typedef struct gcam_map {
    gcam_method method;
    const char *layer;           /* CAM family: the layer (or the first of several); NULL otherwise */
    int64_t n, c;                /* samples; channels (1 for CAM maps, the input's C in pixel space) */
    int64_t h, w;                /* raw resolution */
    int64_t H, W;                /* input resolution */
    float *raw;                  /* (n, c, h, w) */
    float *upsampled;            /* (n, c, H, W) */
    float *normalized;           /* (n, c, H, W) */
} gcam_map;

/* Explains the target with one method on the last forward. */
gcam_status gcam_explain(gcam_explainer *e, gcam_method method, const gcam_target *target, gcam_map *out);
/* Explains n_targets targets (top-k classes, say) with one method on the last forward: outs[i] is
 * what gcam_explain(e, method, &targets[i], &outs[i]) gives (within float rounding), for any
 * method. The gradient CAM methods (gradcam, counterfactual, gradcam++, xgradcam, hirescam,
 * layercam, eigengradcam) run one backward for several targets at once when the layers after the
 * target layer(s) read many weight bytes (VGG's fully-connected head): each weight matrix is then
 * read twice instead of once per target. Otherwise, and for the other methods, it is the loop.
 * outs has n_targets maps, each freed with gcam_map_free. On failure every map is freed and zeroed
 * and the error (gcam_explainer_error) names the target at fault ("target 3 of 5: ..."). */
gcam_status gcam_explain_many(gcam_explainer *e, gcam_method method, const gcam_target *targets, int n_targets,
                              gcam_map *outs);
void gcam_map_free(gcam_map *m);

#ifdef __cplusplus
}
#endif
#endif
