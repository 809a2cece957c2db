"""libgradcam through ctypes for the parity tests (tests/rnn_parity.py, tests/transformers_parity.py):
load a model, run it forward on named feeds, backward from a seed, read the gradients. The engine's
own C API, not the Python package, so that these tests check the engine alone."""
import ctypes as C

import numpy as np

MAXD = 8


class Feed(C.Structure):
    _fields_ = [("name", C.c_char_p), ("dtype", C.c_int), ("ndim", C.c_int), ("dims", C.POINTER(C.c_int64)),
                ("data", C.c_void_p)]


class View(C.Structure):
    _fields_ = [("name", C.c_char_p), ("dtype", C.c_int), ("ndim", C.c_int), ("dims", C.c_int64 * MAXD),
                ("numel", C.c_size_t), ("data", C.c_void_p)]


class CtxOptions(C.Structure):
    _fields_ = [("n_threads", C.c_int), ("max_memory", C.c_size_t), ("keep", C.POINTER(C.c_char_p)),
                ("n_keep", C.c_int), ("seed", C.c_char_p), ("grad_of", C.POINTER(C.c_char_p)),
                ("n_grad_of", C.c_int), ("const_int_inputs", C.c_int)]


class Engine:
    def __init__(self, path):
        lib = C.CDLL(path)
        lib.gcam_model_load.argtypes = [C.POINTER(C.c_void_p), C.c_char_p, C.c_void_p]
        lib.gcam_model_error.restype = C.c_char_p
        lib.gcam_model_error.argtypes = [C.c_void_p]
        lib.gcam_model_free.argtypes = [C.c_void_p]
        lib.gcam_ctx_create.argtypes = [C.POINTER(C.c_void_p), C.c_void_p, C.POINTER(Feed), C.c_int,
                                        C.POINTER(CtxOptions)]
        lib.gcam_ctx_error.restype = C.c_char_p
        lib.gcam_ctx_error.argtypes = [C.c_void_p]
        lib.gcam_ctx_free.argtypes = [C.c_void_p]
        lib.gcam_ctx_run.argtypes = [C.c_void_p, C.POINTER(Feed), C.c_int]
        lib.gcam_ctx_output.argtypes = [C.c_void_p, C.c_int, C.POINTER(View)]
        lib.gcam_ctx_backward.argtypes = [C.c_void_p, C.POINTER(C.c_float), C.c_int, C.c_void_p, C.c_int]
        lib.gcam_ctx_grad.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(View)]
        self.lib = lib

    @staticmethod
    def _view(v):
        shape = tuple(v.dims[i] for i in range(v.ndim))
        buf = (C.c_float * v.numel).from_address(v.data)
        return np.ctypeslib.as_array(buf).reshape(shape).copy()

    def run(self, onnx_path, feeds, seed_name, seed_grad, grad_of):
        """Forward on feeds {name: array}, backward from seed_grad (an array, or a function of the
        output); returns (output 0, {name: grad}). seed_name None: an inference context (no backward
        planned, so every forward fusion applies); returns (output 0, {})."""
        lib, m, c = self.lib, C.c_void_p(), C.c_void_p()
        keep = []
        arr = (Feed * len(feeds))()
        for i, (name, a) in enumerate(feeds.items()):
            a = np.ascontiguousarray(a)
            dims = (C.c_int64 * max(a.ndim, 1))(*a.shape)
            keep += [a, dims]
            arr[i] = Feed(name.encode(), 2 if a.dtype == np.int64 else 1, a.ndim, dims, a.ctypes.data)
        names = (C.c_char_p * len(grad_of))(*[g.encode() for g in grad_of])
        opts = (CtxOptions(n_threads=2) if seed_name is None else
                CtxOptions(n_threads=2, seed=seed_name.encode(), grad_of=names, n_grad_of=len(grad_of)))
        try:
            if lib.gcam_model_load(C.byref(m), onnx_path.encode(), None):
                raise RuntimeError("load: %s" % lib.gcam_model_error(m).decode())
            if lib.gcam_ctx_create(C.byref(c), m, arr, len(feeds), C.byref(opts)) or lib.gcam_ctx_run(c, arr, len(feeds)):
                raise RuntimeError("run: %s" % lib.gcam_ctx_error(c).decode())
            v = View()
            lib.gcam_ctx_output(c, 0, C.byref(v))
            out = self._view(v)
            if seed_name is None:
                return out, {}
            g = np.ascontiguousarray(seed_grad(out) if callable(seed_grad) else seed_grad, dtype=np.float32)
            if lib.gcam_ctx_backward(c, g.ctypes.data_as(C.POINTER(C.c_float)), 0, None, 0):
                raise RuntimeError("backward: %s" % lib.gcam_ctx_error(c).decode())
            grads = {}
            for name in grad_of:
                if lib.gcam_ctx_grad(c, name.encode(), C.byref(v)):
                    raise RuntimeError("grad %s: %s" % (name, lib.gcam_ctx_error(c).decode()))
                grads[name] = self._view(v)
            return out, grads
        finally:
            lib.gcam_ctx_free(c)
            lib.gcam_model_free(m)
