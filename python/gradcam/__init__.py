"""gradcam: visual explanations (Grad-CAM and friends) of ONNX models, numpy in, maps out, over the C
engine of libgradcam (ctypes: no compiled extension; the GIL is released while the engine computes).

    m = gradcam.Model("model.onnx")
    e = gradcam.Explainer(m, input_shape=x.shape)
    e.forward(x)
    mp = e.explain("gradcam", target=281)      # mp.raw, mp.upsampled, mp.normalized, mp.layer

The guide: docs/python.md.
"""
from .core import (Error, Explainer, LayerInfo, Map, Method, Model, NodeInfo, Target, TensorInfo, methods,
                   version)

__version__ = version()

__all__ = ["Error", "Model", "Explainer", "Map", "Target", "Method", "TensorInfo", "LayerInfo", "NodeInfo",
           "methods", "version"]

try:  # the picture side and the one-call explain (python/gradcam/_tool.py), when present
    from ._tool import *  # noqa: F401,F403
    from . import _tool as _t
    __all__ += list(getattr(_t, "__all__", []))
    del _t
except ImportError as _e:  # only a missing _tool module is tolerated, never a broken one
    if getattr(_e, "name", None) != __name__ + "._tool":
        raise
