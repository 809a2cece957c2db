/* Tuning knobs: one struct, read from the environment once when a context (or explainer) is
 * created and kept in it; kernels read it through their gc_kctx, the planner and the explainer
 * through their handle. Every knob is an A/B switch or a developer's aid, never needed for a
 * correct result: the table in tuning.c (and docs/architecture.md) lists them. Tests set them
 * with gc_tuning_set_default, not setenv. */
#ifndef GC_TUNING_H
#define GC_TUNING_H

#include <stddef.h>

typedef struct gc_tuning {
    int no_fusion;               /* GCAM_NO_FUSION: every op on its own (no Relu, Add, Concat, SiLU fusion) */
    int no_add_fusion;           /* GCAM_NO_ADD_FUSION: residual Adds not fused into their Conv */
    int no_act_fusion;           /* GCAM_NO_ACT_FUSION: Clips and SiLUs not fused into their Conv */
    int no_winograd;             /* GCAM_NO_WINOGRAD: im2col for every 3x3 convolution */
    int no_winograd4;            /* GCAM_NO_WINOGRAD4: Winograd F(2x2) only, never F(4x4) */
    int no_dw_gather;            /* GCAM_NO_DW_GATHER: stride-1 depthwise data gradient as a scatter */
    int profile;                 /* GCAM_PROFILE: time per op type, printed when the context is freed */
    int profile_steps;           /* GCAM_PROFILE_STEPS: also the slowest steps, node by node */
    int no_sgemm;                /* GCAM_NO_SGEMM: cblas_sgemm for every GEMM (not src/ops/sgemm.c's kernels) */
    int no_pool_separable;       /* GCAM_NO_POOL_SEPARABLE: MaxPool's 2-D windows tap by tap (pool.c) */
    int isa;                     /* GCAM_ISA=avx512|avx2|generic: sgemm.c's kernels on this path or a lower
                                    one (what the CPU runs); 0 (unset): the CPU's best */
    size_t tail_batch_min_bytes; /* GCAM_TAIL_BATCH_MIN_BYTES: weight bytes after the layer from which
                                    gcam_explain_many batches targets (default 16 MiB) */
} gc_tuning;

/* The tuning a new context or explainer takes: the default set below, else the environment's
 * (unset or invalid values: the defaults). */
void gc_tuning_get(gc_tuning *t);
/* The defaults, whatever the environment says. */
void gc_tuning_defaults(gc_tuning *t);
/* Tests: the tuning every context and explainer created afterwards takes instead of the
 * environment's (NULL: back to the environment). Not thread-safe: set it before creating. */
void gc_tuning_set_default(const gc_tuning *t);

#endif
