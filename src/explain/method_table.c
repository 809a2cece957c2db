/* The method table (method_table.h). Rows in gcam_method's order (checked below). */
#include "method_table.h"

#include <assert.h>
#include <strings.h>

#define CAM_GRAD(name, title, plain) {name, title, plain, 1, 1, GCAM_RULE_STANDARD, 1}
#define CAM_NOGRAD(name, title, plain) {name, title, plain, 1, 0, GCAM_RULE_STANDARD, 0}
#define PIXEL(name, title, plain, rule) {name, title, plain, 0, 1, rule, 0}
static const gc_method_info g_methods[] = {
    [GCAM_GRADCAM] = CAM_GRAD("gradcam", "Grad-CAM", "Grad-CAM"),
    [GCAM_GRADCAM_COUNTER] = CAM_GRAD("counterfactual", "Counterfactual Grad-CAM", "Counterfactual"),
    [GCAM_CAM] = CAM_NOGRAD("cam", "CAM", "CAM"),
    [GCAM_GRADCAMPP] = CAM_GRAD("gradcam++", "Grad-CAM++", "Grad-CAM++"),
    [GCAM_XGRADCAM] = CAM_GRAD("xgradcam", "XGrad-CAM", "XGrad-CAM"),
    [GCAM_HIRESCAM] = CAM_GRAD("hirescam", "HiResCAM", "HiResCAM"),
    [GCAM_LAYERCAM] = CAM_GRAD("layercam", "LayerCAM", "LayerCAM"),
    [GCAM_EIGENCAM] = CAM_NOGRAD("eigencam", "Eigen-CAM", "Eigen-CAM"),
    [GCAM_EIGENGRADCAM] = CAM_GRAD("eigengradcam", "Eigen-Grad-CAM", "Eigen-Grad-CAM"),
    [GCAM_SCORECAM] = CAM_NOGRAD("scorecam", "Score-CAM", "Score-CAM"),
    [GCAM_ABLATIONCAM] = CAM_NOGRAD("ablationcam", "Ablation-CAM", "Ablation-CAM"),
    [GCAM_GUIDED_BACKPROP] = PIXEL("guided-backprop", "Guided Backprop", "Guided Backprop", GCAM_RULE_GUIDED),
    [GCAM_DECONVNET] = PIXEL("deconvnet", "Deconvnet", "Deconvnet", GCAM_RULE_DECONV),
    /* guided backprop (its own pass) times the upsampled Grad-CAM (standard backward) */
    [GCAM_GUIDED_GRADCAM] = PIXEL("guided-gradcam", "Guided Grad-CAM", "Guided Grad-CAM", GCAM_RULE_STANDARD),
    [GCAM_GRADIENT] = PIXEL("gradient", "Gradient", "Gradient", GCAM_RULE_STANDARD),
    [GCAM_GRAD_X_INPUT] = PIXEL("gradient-x-input", "Gradient \xC3\x97 input", "Gradient x input", GCAM_RULE_STANDARD),
    /* the rule of its base method (gcam_explain_options.smoothgrad_base) */
    [GCAM_SMOOTHGRAD] = PIXEL("smoothgrad", "SmoothGrad", "SmoothGrad", GCAM_RULE_STANDARD),
    [GCAM_INTEGRATED_GRADIENTS] = PIXEL("integrated-gradients", "Integrated Gradients", "Integrated Gradients",
                                        GCAM_RULE_STANDARD),
    /* maps on the token grid, drawn as CAM maps; from the attention Softmax outputs, not a layer */
    [GCAM_ATTENTION_ROLLOUT] = CAM_NOGRAD("attention-rollout", "Attention Rollout", "Attention Rollout"),
    [GCAM_GRAD_ROLLOUT] = {"grad-rollout", "Gradient Attention Rollout", "Grad Rollout", 1, 1, GCAM_RULE_STANDARD, 0},
};
#undef CAM_GRAD
#undef CAM_NOGRAD
#undef PIXEL
static_assert(sizeof g_methods / sizeof *g_methods == GCAM_METHOD_COUNT, "one row per gcam_method");

const gc_method_info *gc_method_info_of(gcam_method m) {
    return (unsigned)m < GCAM_METHOD_COUNT && g_methods[m].name ? &g_methods[m] : NULL;
}

const char *gcam_method_name(gcam_method m) {
    const gc_method_info *i = gc_method_info_of(m);
    return i ? i->name : "unknown";
}

int gcam_method_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < GCAM_METHOD_COUNT; i++)
        if (strcasecmp(name, g_methods[i].name) == 0) return i;
    /* a few spellings people use */
    static const struct {
        const char *alias;
        gcam_method m;
    } aliases[] = {
        {"gradcampp", GCAM_GRADCAMPP},         {"gradcamplusplus", GCAM_GRADCAMPP}, {"guidedbackprop", GCAM_GUIDED_BACKPROP},
        {"gbp", GCAM_GUIDED_BACKPROP},         {"guided-grad-cam", GCAM_GUIDED_GRADCAM},
        {"guidedgradcam", GCAM_GUIDED_GRADCAM}, {"saliency", GCAM_GRADIENT},        {"ig", GCAM_INTEGRATED_GRADIENTS},
        {"rollout", GCAM_ATTENTION_ROLLOUT},   {"gradient-rollout", GCAM_GRAD_ROLLOUT},
    };
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
        if (strcasecmp(name, aliases[i].alias) == 0) return (int)aliases[i].m;
    return -1;
}

int gcam_method_is_cam(gcam_method m) {
    const gc_method_info *i = gc_method_info_of(m);
    return i && i->cam;
}
