/* The planner's working state, shared by its passes (plan.c) and the fusions (fuse.c); freed when
 * planning ends. The timeline: forward steps 0..F-1, the seed at F, backward steps F+1..F+B,
 * END = F+B+1; a buffer lives over [first, last] on it. */
#ifndef GC_PLANNER_H
#define GC_PLANNER_H

#include "plan.h"

typedef struct gc_planner {
    gcam_ctx *c;
    const gc_model *m;
    int F, B, END, has_bw;
    int *first, *last;      /* (n_values) forward buffer lifetimes; first -1: no buffer */
    int *gfirst, *glast;    /* (n_values) gradient buffer lifetimes */
    uint8_t *gneed;         /* (n_values) the value carries a gradient */
    uint8_t *active;        /* (F) the step is differentiated */
    int *step_of;           /* (n_nodes) forward step of a node */
    int *bstep_of;          /* (F) backward step of a forward step, -1: none */
    int *fused_from;        /* (n_values) shares that value's buffer (a fused output), -1: its own */
    int *gshare;            /* (n_values) its gradient shares that value's gradient buffer (an Add's
                               input, whose gradient is its output's: fuse.c), -1: its own */
    /* per backward step, -1 when none: the fused Relu output whose gradient it reads instead of its
     * own output's (.fuse_relu_bw); the fused SiLU Mul's output; the fused Concat's backward step */
    int *bw_relu, *bw_silu, *bw_cat;
    int *bw_relu_dx;        /* per backward step: the input gradient it writes instead of in[0]'s (the
                               Relu before it, whose VJP it applies: .fuse_relu_dx), -1: none */
    int *bw_dx_clip;        /* per backward step with bw_relu_dx: 1: that op is a Clip with constant */
    float *bw_dx_lo, *bw_dx_hi; /* bounds bw_dx_lo <= bw_dx_hi (not a Relu) */
} gc_planner;

/* The fusions, in this order (each is one pass over the forward steps; they mark steps fused,
 * set the producers' k.fuse, and adjust lifetimes, gneed, gshare and the bw_ maps). None runs with
 * tune.no_fusion; the Add's also not with tune.no_add_fusion. */
gcam_status gc_fuse(gc_planner *p);

#endif
