/* Evaluation metrics of explanation maps (docs/evaluation.md): localisation (Grad-CAM paper),
 * pointing game and its energy variant, class discrimination, deletion / insertion (Petsiuk et
 * al.), and the map comparisons of the sanity check (Spearman, SSIM). Pure functions on maps,
 * boxes and score curves; no model in sight except for gc_model_randomize (randomize.c).
 *
 * Maps here are saliency maps S (h, w): float, non-negative where it matters (gc_saliency makes
 * them from a gcam_map). Boxes are in the map's pixels, x1 and y1 exclusive. */
#ifndef GC_METRICS_H
#define GC_METRICS_H

#include "../common.h"

/* One map (h, w) from an explanation at input resolution: CAM family (c == 1): max(up, 0);
 * pixel space (c channels): max over channels of |up|. NaN becomes 0. */
void gc_saliency(float *s /* (h, w) */, const float *up /* (c, h, w) */, int64_t c, int64_t h, int64_t w, int is_cam);


/* ---- localisation ---------------------------------------------------------------------------- */

/* The localisation box of a map is report.h's gc_localize_box. */
/* Intersection over union of two pixel boxes (0 when both are empty). */
double gc_box_iou(const gc_box *a, const gc_box *b);
/* Area of a box (0 when empty). */
int64_t gc_box_area(const gc_box *b);

/* ---- pointing game --------------------------------------------------------------------------- */

/* Index of the largest value (the first in row-major order on ties), -1 when no value is > 0. */
int64_t gc_argmax_pos(const float *s, int64_t n);
/* Euclidean distance from pixel (x, y) to the nearest pixel of box b (0 inside). */
double gc_box_distance(int64_t x, int64_t y, const gc_box *b);
/* 1 when the maximum of s lies within tol pixels of one of the boxes, else 0 (also when s has
 * no positive value). */
int gc_pointing_hit(const float *s, int64_t h, int64_t w, const gc_box *boxes, int n_boxes, double tol);
/* Positive mass of s inside the union of the boxes (each pixel counted once). */
double gc_mass_in(const float *s, int64_t h, int64_t w, const gc_box *boxes, int n_boxes);
/* Positive mass of s. */
double gc_mass(const float *s, int64_t n);
/* Energy-based pointing game: gc_mass_in / gc_mass; NaN when s has no positive mass. */
double gc_energy_in(const float *s, int64_t h, int64_t w, const gc_box *boxes, int n_boxes);

/* ---- deletion / insertion ---------------------------------------------------------------------- */

/* order[0..n) = pixel indices by decreasing s (ties: lower index first). -1 when out of memory. */
int gc_rank_order(int64_t *order, const float *s, int64_t n);
/* Pixels changed after step i of `steps`: floor(i * n / steps). */
int64_t gc_step_pixels(int64_t i, int64_t steps, int64_t n);
/* Step image: x (c, h*w planes) with the first k pixels of order taken from `from`, the others
 * from `base` (deletion: base = the image, from = the substrate; insertion: the reverse). */
void gc_perturb(float *dst, const float *base, const float *from, const int64_t *order, int64_t k, int64_t c,
                int64_t plane);
/* Area under y[0..n) on x = 0, 1/(n-1), ..., 1 by the trapezoid rule (n >= 2; n == 1: y[0]). */
double gc_auc(const double *y, int n);
/* Gaussian blur of each (h, w) plane, kernel radius ceil(3 sigma), edges clamped. -1 on OOM. */
int gc_gaussian_blur(float *dst, const float *src, int64_t c, int64_t h, int64_t w, double sigma);

/* ---- comparisons (sanity check) ---------------------------------------------------------------- */

/* Spearman's rank correlation (average ranks for ties); NaN when either map is constant; -2
 * when out of memory. */
double gc_spearman(const float *a, const float *b, int64_t n);
/* Mean SSIM (Wang et al. 2004) of two maps in [0, 1]: 11x11 Gaussian window, sigma 1.5, C1 =
 * 0.01^2, C2 = 0.03^2, over every position where the window fits (MATLAB 'valid'; equal to
 * skimage's gaussian_weights=True, use_sample_covariance=False, data_range=1). Maps smaller
 * than 11 pixels use a window of their size. -2 when out of memory. */
double gc_ssim(const float *a, const float *b, int64_t h, int64_t w);

/* ---- statistics ------------------------------------------------------------------------------- */

/* Median of v[0..n) (sorted in place; NaN for n == 0; mean of the middle two for even n). */
double gc_median(double *v, int64_t n);

/* ---- randomised weights (randomize.c) ----------------------------------------------------------
 * Proposed public API (the header belongs to the lead):
 *   int gcam_model_num_param_layers(const gcam_model *m);
 *   const char *gcam_model_param_layer(const gcam_model *m, int i);   // from the output down
 *   gcam_status gcam_model_randomize_weights(gcam_model **out, const gcam_model *m,
 *                                            int top_k_layers, uint64_t seed);
 */

/* Parameterised layers: Conv, ConvTranspose, Gemm, MatMul and BatchNormalization nodes with at
 * least one constant float input (directly an initialiser, or folded from initialisers). */
int gc_model_num_param_layers(const gcam_model *m);
/* Name of the i-th such layer counting from the output (0: the last layer), or NULL. */
const char *gc_model_param_layer(const gcam_model *m, int i);
/* A new model equal to m except that the float weights of its last top_k parameterised layers
 * are random: each initialiser feeding them (Conv/Gemm/MatMul weights and biases,
 * BatchNormalization scale and bias; not its running mean and variance) is replaced by normals
 * with that tensor's own mean and standard deviation. The values of layer j (1 = the last) come
 * from a generator seeded by (seed, j, input slot), so k and k + 1 randomise the top k layers
 * alike (a cascade). top_k <= 0 gives an unchanged copy; top_k above the count randomises all.
 * Constants computed from the weights at load are recomputed. *out is set even on failure
 * (gcam_model_error). */
gcam_status gc_model_randomize(gcam_model **out, const gcam_model *m, int top_k, uint64_t seed);

#endif
