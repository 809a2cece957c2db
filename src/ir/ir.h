/* The in-memory graph (IR) every part of gradcam works on: values (tensors with names), nodes
 * (op applications) and the model that owns them. Built by src/onnx/, planned and run by
 * src/graph/. */
#ifndef GC_IR_H
#define GC_IR_H

#include "../common.h"

#define GC_MAX_DIMS GCAM_MAX_DIMS

typedef gcam_dtype gc_dtype;
#define GC_F32 GCAM_FLOAT32
#define GC_I64 GCAM_INT64
#define GC_BOOL GCAM_BOOL

typedef struct gc_shape {
    int ndim;                 /* -1: rank unknown */
    int64_t d[GC_MAX_DIMS];   /* -1: unknown extent */
} gc_shape;

/* A runtime tensor: dtype, shape and a data pointer (NULL when only the shape is known). */
typedef struct gc_tensor {
    gc_dtype dtype;
    gc_shape shape;
    void *data;
} gc_tensor;

size_t gc_dtype_size(gc_dtype t);
/* "float32", "int64", "bool" or "undefined". */
const char *gc_dtype_name(gc_dtype t);
/* Element count of a known shape; -1 if unknown, negative extent, or overflow. */
int64_t gc_shape_numel(const gc_shape *s);
/* Bytes of a tensor of that dtype/shape, overflow-checked: 0 on error (an empty tensor gives 0
 * too, with *ok set to 1). */
size_t gc_tensor_bytes(gc_dtype t, const gc_shape *s, int *ok);
int gc_shape_eq(const gc_shape *a, const gc_shape *b);
/* "(1, 3, 224, 224)" into buf. */
const char *gc_shape_str(const gc_shape *s, char *buf, size_t n);
/* Number of elements of a tensor (its shape is known by construction). */
static inline int64_t gc_numel(const gc_tensor *t) { return gc_shape_numel(&t->shape); }

typedef enum gc_attr_type {
    GC_ATTR_NONE = 0,
    GC_ATTR_FLOAT,
    GC_ATTR_INT,
    GC_ATTR_STRING,
    GC_ATTR_TENSOR,
    GC_ATTR_FLOATS,
    GC_ATTR_INTS,
    GC_ATTR_STRINGS,
    GC_ATTR_GRAPH /* sub-graphs are not supported; kept so the op can say so */
} gc_attr_type;

typedef struct gc_attr {
    char *name;
    gc_attr_type type;
    float f;
    int64_t i;
    char *s;           /* NUL-terminated copy (STRING) */
    float *floats;     /* FLOATS, n entries */
    int64_t *ints;     /* INTS, n entries */
    char **strings;    /* STRINGS, n entries */
    size_t n;
    gc_tensor t;       /* TENSOR (data owned by the attribute) */
} gc_attr;

/* A named value in the graph. */
typedef struct gc_value {
    char *name;
    gc_dtype dtype;            /* GCAM_UNDEFINED until known */
    gc_shape shape;            /* as declared / inferred at load; -1 where unknown */
    char *dim_names[GC_MAX_DIMS];
    int producer;              /* node index, -1 for graph inputs and initialisers */
    int is_input;              /* a graph input (fed by the caller) */
    int is_output;             /* a graph output */
    /* Constant data known at load (initialisers, Constant nodes, and values folded from them).
     * Owned by the model. NULL for activations. */
    void *const_data;
    /* const_data lies in one of the model's regions (its file's mapping, an external data
     * window, the arena of copies): read-only, not freed on its own. */
    int const_in_region;
} gc_value;

typedef struct gc_node {
    char *name;
    char *op_type;
    char *domain;
    int opset;                 /* version of the node's domain imported by the model */
    int op;                    /* index in the op registry; -1 if unsupported */
    int n_in, n_out;
    int *in;                   /* value indices; -1 for an omitted optional input */
    int *out;                  /* value indices; -1 for an omitted optional output */
    int n_attrs;
    gc_attr *attrs;
    void *params;              /* op-specific parsed attributes (one malloc block), or NULL */
    int folded;                /* all inputs constant: evaluated at load, not run */
    /* An op's preprocessed copy of its constant inputs (Conv: Winograd-transformed weights), built
     * on first use by whichever context runs the node first and shared by all contexts of the
     * model; written once under gc_kcache_lock(), freed with the model. */
    void *kcache;
} gc_node;

/* Memory the model maps and unmaps as a whole (munmap in gc_model_destroy). */
typedef struct gc_region {
    void *base;
    size_t size;
    int file; /* a read-only mapping of a file: pages dropped (gc_model_release) are read again */
} gc_region;

typedef struct gc_model {
    gc_err err;
    int opset;                 /* default domain */
    int fold_bn;               /* load option: fold BatchNormalization into Conv */
    size_t fold_max;           /* load option: cap on the bytes of folded constants (0: default) */
    char *producer;
    int n_values, cap_values;
    gc_value *values;
    int n_nodes;
    gc_node *nodes;            /* in a valid topological order (sorted at load) */
    int n_inputs, n_outputs;
    int *inputs, *outputs;     /* value indices */
    /* value name -> index, open addressing */
    int *name_index;
    size_t name_index_cap;
    char **unsupported;        /* lines describing unsupported ops */
    int n_unsupported;
    /* Names handed out through the public API (node inputs/outputs as const char **). */
    const char ***node_in_names, ***node_out_names;
    gc_region *regions;
    int n_regions, cap_regions;
    /* What the load did with the constants' bytes: pointed into the file's mapping (or an
     * external data file's), copied as they are (not aligned for their type in the file, or loaded
     * from memory), converted to another type (allocated). Tests check that weights are not copied. */
    size_t bytes_mapped, bytes_copied, bytes_converted;
} gc_model;

/* Gives back the resident pages wholly inside [p, p + n) when they lie in one of the model's
 * read-only file mappings (weights a kernel keeps converted: Winograd's U); they are read from
 * the file again if touched. Memory the model allocated is left alone. */
void gc_model_release(const gc_model *m, const void *p, size_t n);

/* Attribute look-ups; return the default when the attribute is absent. */
const gc_attr *gc_attr_find(const gc_node *n, const char *name);
int64_t gc_attr_int(const gc_node *n, const char *name, int64_t def);
float gc_attr_float(const gc_node *n, const char *name, float def);
const char *gc_attr_str(const gc_node *n, const char *name, const char *def);
/* INTS attribute: returns the count (0 if absent) and points *v at the values. */
size_t gc_attr_ints(const gc_node *n, const char *name, const int64_t **v);
size_t gc_attr_floats(const gc_node *n, const char *name, const float **v);

int gc_model_find_value(const gc_model *m, const char *name);

#endif
