/* Test harness for single ops: build a node with attributes, run infer/forward/backward through
 * the registry, and check backward against central finite differences computed in double. */
#ifndef GC_OPCHECK_H
#define GC_OPCHECK_H

#include "ops/ops.h"

/* Failure counter: every check that fails increments it and prints one line. main() returns
 * oc_failures != 0. */
extern int oc_failures;
extern int oc_checks;

gc_node *oc_node(const char *op_type, int opset, int n_in, int n_out);
void oc_attr_i(gc_node *n, const char *name, int64_t v);
void oc_attr_f(gc_node *n, const char *name, float v);
void oc_attr_s(gc_node *n, const char *name, const char *v);
void oc_attr_ints(gc_node *n, const char *name, int count, const int64_t *v);
void oc_attr_floats(gc_node *n, const char *name, int count, const float *v);
void oc_node_free(gc_node *n);

/* Tensors owned by the harness. */
gc_tensor oc_tensor(gc_dtype t, int ndim, const int64_t *dims);      /* zeroed */
gc_tensor oc_rand(int ndim, const int64_t *dims, float lo, float hi); /* uniform float32 */
gc_tensor oc_ints(int n, const int64_t *v);                           /* 1-D int64 */
void oc_tensor_free(gc_tensor *t);
/* Deterministic uniform in [0,1). */
double oc_urand(void);
void oc_seed(uint64_t s);

/* Parses, infers and runs forward. in[i] with const_mask bit i set is visible to infer (weights,
 * shape inputs) and marked constant (gc_kctx.const_in: an op may cache what it derives from it in
 * the node, so a test must not change such an input between runs of the same node). outs[] receive freshly allocated outputs (free with oc_tensor_free). Returns the
 * status; on failure prints the error unless expect_fail. */
gcam_status oc_forward(gc_node *n, gc_tensor *in, int n_in, uint32_t const_mask, gc_tensor *outs,
                       int n_out, gc_err *err);

/* Gradient check of every float input i with bit i in grad_mask: the analytic VJP (with a random
 * upstream gradient, added on top of a random prefill to test accumulation) against central
 * differences with step h of L = sum(gout * out), accumulated in double. Passes when
 * max|analytic - numeric| <= tol * max(max|numeric|, 1e-2). At most max_elems elements of each
 * input are probed (spread over the tensor). Prints and counts failures. Returns the error. */
double oc_gradcheck(const char *label, gc_node *n, gc_tensor *in, int n_in, uint32_t const_mask,
                    int n_out, uint32_t grad_mask, double h, double tol, int max_elems);

/* Fraction of the upstream gradient's elements oc_gradcheck leaves nonzero (default 1): a one-hot
 * class target's gradient is mostly zeros, and ops may take a sparse path for it. */
void oc_set_gout_density(double p);

/* Compares two float arrays; |a-b| <= atol + rtol*|b|. Prints the worst element on failure. */
int oc_close(const char *label, const float *a, const float *b, int64_t n, double atol, double rtol);
/* Records a boolean check. */
int oc_check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
