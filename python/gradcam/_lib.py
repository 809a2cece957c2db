"""ctypes bindings of include/gradcam.h: the library loader, the structs and every gcam_ prototype.

Nothing here is compiled against Python: one package for every Python 3. ctypes.CDLL releases the GIL
for the duration of each foreign call, so other Python threads run while the engine computes.
"""
import ctypes
import ctypes.util
import os

c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_float_p = ctypes.POINTER(ctypes.c_float)
c_char_pp = ctypes.POINTER(ctypes.c_char_p)

GCAM_MAX_DIMS = 8
GCAM_MAX_TARGET_ELEMENTS = 4

# gcam_status, in the header's order; the names are what gradcam.Error.status holds
STATUS_NAMES = ("ok", "arg", "io", "format", "unsupported", "shape", "nomem", "limit", "numeric",
                "not_found", "state", "internal", "aborted")

# gcam_dtype
UNDEFINED, FLOAT32, INT64, BOOL = 0, 1, 2, 3

# gcam_target_kind
TARGET_CLASS, TARGET_ELEMENT, TARGET_REGION, TARGET_WEIGHTS, TARGET_PRODUCT, TARGET_MASK = range(6)


class LoadOptions(ctypes.Structure):
    _fields_ = [("allow_unsupported", ctypes.c_int), ("fold_batchnorm", ctypes.c_int),
                ("max_memory", ctypes.c_size_t)]


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("ndim", ctypes.c_int),
                ("dims", ctypes.c_int64 * GCAM_MAX_DIMS), ("dim_names", ctypes.c_char_p * GCAM_MAX_DIMS),
                ("producer", ctypes.c_char_p), ("op_type", ctypes.c_char_p), ("is_weight", ctypes.c_int)]


class NodeInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("op_type", ctypes.c_char_p), ("domain", ctypes.c_char_p),
                ("opset", ctypes.c_int), ("n_inputs", ctypes.c_int), ("n_outputs", ctypes.c_int),
                ("inputs", c_char_pp), ("outputs", c_char_pp)]


class Feed(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("ndim", ctypes.c_int),
                ("dims", c_int64_p), ("data", ctypes.c_void_p)]


class TensorView(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("ndim", ctypes.c_int),
                ("dims", ctypes.c_int64 * GCAM_MAX_DIMS), ("numel", ctypes.c_size_t), ("data", ctypes.c_void_p)]


class CtxOptions(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_int), ("max_memory", ctypes.c_size_t), ("keep", c_char_pp),
                ("n_keep", ctypes.c_int), ("seed", ctypes.c_char_p), ("grad_of", c_char_pp),
                ("n_grad_of", ctypes.c_int), ("const_int_inputs", ctypes.c_int)]


class Target(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("cls", ctypes.c_int64), ("classes", c_int64_p),
                ("index", ctypes.c_int64 * GCAM_MAX_DIMS), ("y0", ctypes.c_int64), ("x0", ctypes.c_int64),
                ("y1", ctypes.c_int64), ("x1", ctypes.c_int64), ("weights", c_float_p),
                ("elements", ctypes.c_int64 * GCAM_MAX_TARGET_ELEMENTS), ("n_elements", ctypes.c_int),
                ("mask", ctypes.POINTER(ctypes.c_uint8))]


class DetectOptions(ctypes.Structure):
    _fields_ = [("layout", ctypes.c_int), ("score_threshold", ctypes.c_float), ("iou_threshold", ctypes.c_float),
                ("max_detections", ctypes.c_int), ("classes", c_int64_p), ("n_classes", ctypes.c_int)]


class Detection(ctypes.Structure):
    _fields_ = [("sample", ctypes.c_int64), ("anchor", ctypes.c_int64), ("cls", ctypes.c_int64),
                ("score", ctypes.c_float), ("x0", ctypes.c_float), ("y0", ctypes.c_float), ("x1", ctypes.c_float),
                ("y1", ctypes.c_float), ("target", Target)]


class ExplainOptions(ctypes.Structure):
    _fields_ = [("output", ctypes.c_char_p), ("layers", c_char_pp), ("n_layers", ctypes.c_int),
                ("explain_probability", ctypes.c_int), ("n_threads", ctypes.c_int), ("max_memory", ctypes.c_size_t),
                ("smoothgrad_samples", ctypes.c_int), ("smoothgrad_sigma", ctypes.c_float),
                ("smoothgrad_base", ctypes.c_int), ("noise_seed", ctypes.c_uint64), ("ig_steps", ctypes.c_int),
                ("ig_baseline", c_float_p), ("batch_size", ctypes.c_int), ("input_gradient", ctypes.c_int),
                ("tokens_h", ctypes.c_int64), ("tokens_w", ctypes.c_int64), ("skip_tokens", ctypes.c_int)]


class Map(ctypes.Structure):
    _fields_ = [("method", ctypes.c_int), ("layer", ctypes.c_char_p), ("n", ctypes.c_int64), ("c", ctypes.c_int64),
                ("h", ctypes.c_int64), ("w", ctypes.c_int64), ("H", ctypes.c_int64), ("W", ctypes.c_int64),
                ("raw", c_float_p), ("upsampled", c_float_p), ("normalized", c_float_p)]


# Handles are opaque: void pointers.
P = ctypes.c_void_p
PP = ctypes.POINTER(ctypes.c_void_p)
S = ctypes.c_int  # gcam_status
I = ctypes.c_int
CS = ctypes.c_char_p

# name: (restype, argtypes) for every function of include/gradcam.h (tests/python/test_package.py
# checks this list against the header).
PROTOTYPES = {
    "gcam_status_str": (CS, [I]),
    "gcam_version": (CS, []),
    "gcam_dtype_str": (CS, [I]),
    "gcam_model_load": (S, [PP, CS, ctypes.POINTER(LoadOptions)]),
    "gcam_model_load_memory": (S, [PP, ctypes.c_void_p, ctypes.c_size_t, CS, ctypes.POINTER(LoadOptions)]),
    "gcam_model_error": (CS, [P]),
    "gcam_model_free": (None, [P]),
    "gcam_model_num_inputs": (I, [P]),
    "gcam_model_num_outputs": (I, [P]),
    "gcam_model_num_nodes": (I, [P]),
    "gcam_model_num_tensors": (I, [P]),
    "gcam_model_input": (S, [P, I, ctypes.POINTER(TensorInfo)]),
    "gcam_model_output": (S, [P, I, ctypes.POINTER(TensorInfo)]),
    "gcam_model_node": (S, [P, I, ctypes.POINTER(NodeInfo)]),
    "gcam_model_tensor": (S, [P, I, ctypes.POINTER(TensorInfo)]),
    "gcam_model_find_tensor": (S, [P, CS, ctypes.POINTER(TensorInfo)]),
    "gcam_model_num_unsupported": (I, [P]),
    "gcam_model_unsupported": (CS, [P, I]),
    "gcam_model_opset": (I, [P]),
    "gcam_model_producer": (CS, [P]),
    "gcam_ctx_create": (S, [PP, P, ctypes.POINTER(Feed), I, ctypes.POINTER(CtxOptions)]),
    "gcam_ctx_error": (CS, [P]),
    "gcam_ctx_free": (None, [P]),
    "gcam_ctx_planned_bytes": (ctypes.c_size_t, [P]),
    "gcam_ctx_set_abort": (S, [P, P, P]),  # (the package does not set one: a C callback)
    "gcam_ctx_run": (S, [P, ctypes.POINTER(Feed), I]),
    "gcam_ctx_num_outputs": (I, [P]),
    "gcam_ctx_output": (S, [P, I, ctypes.POINTER(TensorView)]),
    "gcam_ctx_tensor": (S, [P, CS, ctypes.POINTER(TensorView)]),
    "gcam_ctx_tensor_shape": (S, [P, CS, ctypes.POINTER(TensorView)]),
    "gcam_ctx_backward": (S, [P, c_float_p, I, c_char_pp, I]),
    "gcam_ctx_grad": (S, [P, CS, ctypes.POINTER(TensorView)]),
    "gcam_ctx_backward_node_count": (I, [P]),
    "gcam_ctx_seed_shape": (S, [P, ctypes.POINTER(TensorView)]),
    "gcam_method_name": (CS, [I]),
    "gcam_method_from_name": (I, [CS]),
    "gcam_method_is_cam": (I, [I]),
    "gcam_det_layout_name": (CS, [I]),
    "gcam_det_layout_from_name": (I, [CS]),
    "gcam_detect_options_init": (None, [ctypes.POINTER(DetectOptions)]),
    "gcam_detect_decode": (S, [ctypes.POINTER(TensorView), ctypes.POINTER(DetectOptions),
                               ctypes.POINTER(ctypes.POINTER(Detection)), c_int64_p, ctypes.POINTER(I),
                               ctypes.c_char_p, ctypes.c_size_t]),
    "gcam_detect_layout": (S, [ctypes.POINTER(TensorView), I, ctypes.POINTER(I), c_int64_p, ctypes.c_char_p,
                               ctypes.c_size_t]),
    "gcam_explainer_create": (S, [PP, P, ctypes.POINTER(Feed), I, ctypes.POINTER(ExplainOptions)]),
    "gcam_explainer_error": (CS, [P]),
    "gcam_explainer_set_abort": (S, [P, P, P]),
    "gcam_explainer_free": (None, [P]),
    "gcam_explainer_num_layers": (I, [P]),
    "gcam_explainer_layer": (CS, [P, I]),
    "gcam_explainer_score_name": (CS, [P]),
    "gcam_explainer_layer_check": (S, [P, CS, ctypes.c_char_p, ctypes.c_size_t]),
    "gcam_explainer_forward": (S, [P, ctypes.POINTER(Feed), I]),
    "gcam_explainer_scores": (S, [P, ctypes.POINTER(TensorView)]),
    "gcam_explain": (S, [P, I, ctypes.POINTER(Target), ctypes.POINTER(Map)]),
    "gcam_explain_many": (S, [P, I, ctypes.POINTER(Target), I, ctypes.POINTER(Map)]),
    "gcam_map_free": (None, [ctypes.POINTER(Map)]),
}

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    """Where the library is looked for, in order: (description, path or None)."""
    out = []
    env = os.environ.get("GRADCAM_LIBRARY")
    out.append(("$GRADCAM_LIBRARY", env or None))
    txt = os.path.join(_PKG_DIR, "_libpath.txt")  # written by the install
    path = None
    if os.path.isfile(txt):
        with open(txt, encoding="utf-8") as f:
            path = f.read().strip() or None
    out.append((txt, path))
    out.append(('ctypes.util.find_library("gradcam_tool")', ctypes.util.find_library("gradcam_tool")))
    return out


def _load():
    tried = []
    for what, path in _candidates():
        if not path:
            tried.append("%s: not set / not found" % what)
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s = %s: %s" % (what, path, e))
            continue
        missing = [n for n in PROTOTYPES if not hasattr(lib, n)]
        if missing:
            tried.append("%s = %s: lacks %s" % (what, path, ", ".join(missing[:5])))
            continue
        for name, (res, args) in PROTOTYPES.items():
            f = getattr(lib, name)
            f.restype = res
            f.argtypes = args
        return lib, path
    raise ImportError("gradcam: cannot load libgradcam_tool; tried, in order:\n  " + "\n  ".join(tried) +
                      "\n(set GRADCAM_LIBRARY to the path of libgradcam_tool.so, or install with `make install`)")


lib, path = _load()


def text(b):
    """A C string (bytes or None) as str."""
    return None if b is None else b.decode("utf-8", "replace")


def status_name(code):
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else "status %d" % code
