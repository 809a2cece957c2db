"""Model, Explainer, Map, Target and Error over the C library (see docs/python.md).

Arrays go in by pointer (float32 or int64, C-contiguous, never copied; the engine only reads them). Maps
come out without a copy (a gcam_map's buffers are the caller's: the arrays take them over); tensors read
from a context (run(), scores()) are copied, since the context reuses its buffers on the next call.
"""
import collections
import ctypes
import enum
import os
import threading

import numpy as np

from . import _lib
from ._lib import lib

__all__ = ["Error", "Model", "Explainer", "Map", "Target", "Method", "TensorInfo", "LayerInfo", "NodeInfo",
           "methods", "version"]


class Error(Exception):
    """A failure reported by the engine: .status is the status's name ("io", "format", "unsupported",
    "shape", "arg", "state", ...), .code its gcam_status number, .message the engine's one line."""

    def __init__(self, status, message):
        if isinstance(status, int):
            self.code = status
            status = _lib.status_name(status)
        else:
            self.code = _lib.STATUS_NAMES.index(status) if status in _lib.STATUS_NAMES else -1
        self.status = status
        self.message = message
        super().__init__(status, message)

    def __str__(self):
        return "%s (%s)" % (self.message, self.status)


def _method_names():
    out = []
    while True:  # gcam_method's values in order, up to the first the library calls "unknown"
        n = _lib.text(lib.gcam_method_name(len(out)))
        if n == "unknown":
            return out
        out.append(n)


Method = enum.IntEnum("Method", [(n.upper().replace("-", "_").replace("+", "P"), i)
                                 for i, n in enumerate(_method_names())])
Method.__doc__ = "The methods of gcam_method (gradcam.h), e.g. Method.GRADCAM, Method.GRADCAMPP."


def methods():
    """Every method's name, in gcam_method's order."""
    return [_lib.text(lib.gcam_method_name(int(m))) for m in Method]


def version():
    return _lib.text(lib.gcam_version())


_DTYPES = {_lib.FLOAT32: np.dtype(np.float32), _lib.INT64: np.dtype(np.int64), _lib.BOOL: np.dtype(np.bool_)}
_CODES = {v: k for k, v in _DTYPES.items()}

TensorInfo = collections.namedtuple("TensorInfo", "name dtype shape")
TensorInfo.__doc__ = ("A graph input or output: dtype a numpy dtype (None if undefined), shape a tuple whose "
                      "entries are ints, a symbolic dimension's name (str) or None (unknown)")
LayerInfo = collections.namedtuple("LayerInfo", "name op_type shape")
LayerInfo.__doc__ = ("An activation usable as a CAM layer (4-D float): its tensor name, the op producing it, its "
                     "shape with symbolic dimensions bound as `gradcam info` binds them (batch 1, 224x224)")
NodeInfo = collections.namedtuple("NodeInfo", "name op_type inputs outputs")


class _Handle:
    """A C handle shared by its owner and its dependants: freed when the last of them lets go, so
    closing a Model while Explainers use it never frees memory under them."""

    def __init__(self, ptr, free):
        self.ptr = ptr
        self._free = free
        self._refs = 1
        self._lock = threading.Lock()

    def acquire(self, what):
        with self._lock:
            if self._refs == 0:
                raise Error("state", "%s is closed" % what)
            self._refs += 1

    def release(self):
        with self._lock:
            self._refs -= 1
            if self._refs:
                return
            ptr, self.ptr = self.ptr, None
        self._free(ptr)


def _shape_of(info):
    if info.ndim < 0:
        return None
    out = []
    for d in range(info.ndim):
        if info.dims[d] >= 0:
            out.append(int(info.dims[d]))
        else:
            out.append(_lib.text(info.dim_names[d]))
    return tuple(out)


def _check_array(x, what, dtype, shape=None):
    """The checks that make passing x by pointer safe; raises TypeError / ValueError saying what to do."""
    if not isinstance(x, np.ndarray):
        raise TypeError("%s: expected a numpy.ndarray of %s, got %s" % (what, dtype.name, type(x).__name__))
    if x.dtype != dtype:
        raise TypeError("%s: dtype %s, expected %s (convert with x.astype(np.%s))" % (what, x.dtype, dtype.name,
                                                                                      dtype.name))
    if not x.flags.c_contiguous or not x.flags.aligned:
        raise ValueError("%s: the array is not C-contiguous (pass np.ascontiguousarray(x))" % what)
    if x.ndim > _lib.GCAM_MAX_DIMS:
        raise ValueError("%s: %d dimensions, at most %d" % (what, x.ndim, _lib.GCAM_MAX_DIMS))
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError("%s: shape %s, expected %s" % (what, tuple(x.shape), tuple(shape)))
    return x


class _Feeds:
    """gcam_feed array over numpy arrays (kept referenced as long as this lives)."""

    def __init__(self, items, with_data=True):
        n = len(items)
        self.arr = (_lib.Feed * max(n, 1))()
        self.n = n
        self._keep = []
        for i, (name, dtype, shape, x) in enumerate(items):
            nb = name.encode()
            dims = (ctypes.c_int64 * max(len(shape), 1))(*shape)
            self._keep += [nb, dims, x]
            data = x.__array_interface__["data"][0] if (with_data and x is not None) else None
            self.arr[i] = _lib.Feed(nb, _CODES[dtype], len(shape), dims, data)


def _copy_view(v):
    """A fresh array holding a tensor view's data."""
    dt = _DTYPES.get(v.dtype)
    if dt is None:
        raise Error("internal", "tensor '%s' has an unknown dtype %d" % (_lib.text(v.name), v.dtype))
    shape = tuple(int(v.dims[d]) for d in range(v.ndim))
    a = np.empty(shape, dt)
    if a.size != v.numel:
        raise Error("internal", "tensor '%s': %d elements for shape %s" % (_lib.text(v.name), v.numel, shape))
    if a.nbytes:
        ctypes.memmove(a.ctypes.data, v.data, a.nbytes)
    return a


class Model:
    """A loaded ONNX model: Model(path) or Model(bytes_of_the_file). Immutable, shared by any number of
    threads and Explainers. close() (or a with-block) lets go of it; Explainers made from it keep it
    alive until they are closed too."""

    def __init__(self, source, *, allow_unsupported=False, fold_batchnorm=False, max_memory=0, base_dir=None):
        opts = _lib.LoadOptions(int(bool(allow_unsupported)), int(bool(fold_batchnorm)), int(max_memory))
        self._load_kw = dict(allow_unsupported=bool(allow_unsupported), fold_batchnorm=bool(fold_batchnorm),
                             max_memory=int(max_memory))
        p = ctypes.c_void_p()
        if isinstance(source, (bytes, bytearray, memoryview)):
            buf = bytes(source)
            bd = os.fsencode(base_dir) if base_dir is not None else None
            rc = lib.gcam_model_load_memory(ctypes.byref(p), buf, len(buf), bd, ctypes.byref(opts))
            self.path = None
        elif isinstance(source, (str, os.PathLike)):
            self.path = os.fspath(source)
            rc = lib.gcam_model_load(ctypes.byref(p), os.fsencode(self.path), ctypes.byref(opts))
        else:
            raise TypeError("Model: expected a path or the model's bytes, got %s" % type(source).__name__)
        if rc:
            msg = _lib.text(lib.gcam_model_error(p)) if p else "out of memory"
            lib.gcam_model_free(p)
            raise Error(rc, msg)
        self._h = _Handle(p, lib.gcam_model_free)
        self._closed = False
        self._lock = threading.Lock()
        self._pool = {}  # run contexts by (shapes, kept tensors, threads): idle ones, reused
        self._layers = None
        self.inputs = [self._info(lib.gcam_model_input, i) for i in range(lib.gcam_model_num_inputs(p))]
        self.outputs = [self._info(lib.gcam_model_output, i) for i in range(lib.gcam_model_num_outputs(p))]
        self.opset = lib.gcam_model_opset(p)
        self.producer = _lib.text(lib.gcam_model_producer(p))
        self.unsupported = [_lib.text(lib.gcam_model_unsupported(p, i))
                            for i in range(lib.gcam_model_num_unsupported(p))]

    def _info(self, fn, i):
        ti = _lib.TensorInfo()
        fn(self._h.ptr, i, ctypes.byref(ti))
        return TensorInfo(_lib.text(ti.name), _DTYPES.get(ti.dtype), _shape_of(ti))

    # ---- life ----
    def _ptr(self):
        """The handle, referenced for the caller's use (release it after)."""
        if self._closed:
            raise Error("state", "the model is closed")
        self._h.acquire("the model")
        return self._h

    def close(self):
        """Frees the model once no Explainer uses it any more; using this object afterwards raises
        gradcam.Error. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, {}
        for ctxs in pool.values():
            for c in ctxs:
                lib.gcam_ctx_free(c)
        self._h.release()

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None:
            self.close()

    def __repr__(self):
        return "gradcam.Model(%r%s)" % (self.path or "<bytes>", ", closed" if self._closed else "")

    def __reduce__(self):
        """Pickled as its path and load options: unpickling (in another process: a Dask task, a
        multiprocessing worker) loads the file again there."""
        if self.path is None:
            raise TypeError("a gradcam.Model loaded from bytes cannot be pickled: load it from a file, or "
                            "load it in each process")
        if self._closed:
            raise Error("state", "the model is closed")
        return (_load_model, (self.path, self._load_kw))

    # ---- what the model holds ----
    @property
    def nodes(self):
        """Every node: name, op type, input and output tensor names."""
        h = self._ptr()
        try:
            out = []
            ni = _lib.NodeInfo()
            for i in range(lib.gcam_model_num_nodes(h.ptr)):
                lib.gcam_model_node(h.ptr, i, ctypes.byref(ni))
                out.append(NodeInfo(_lib.text(ni.name), _lib.text(ni.op_type),
                                    tuple(_lib.text(ni.inputs[j]) for j in range(ni.n_inputs)),
                                    tuple(_lib.text(ni.outputs[j]) for j in range(ni.n_outputs))))
            return out
        finally:
            h.release()

    @property
    def layers(self):
        """The activations usable as CAM layers: every node output that is a 4-D float activation (not
        a weight) once the input shapes are bound as `gradcam info` binds them (symbolic batch 1,
        height and width 224), in graph order."""
        with self._lock:
            if self._layers is not None:
                return list(self._layers)
        h = self._ptr()
        try:
            layers = self._find_layers(h.ptr)
        finally:
            h.release()
        with self._lock:
            self._layers = layers
        return list(layers)

    def _find_layers(self, p):
        items = []
        for t in self.inputs:
            shape = t.shape or ()
            bound = [d if isinstance(d, int) else (224 if len(shape) == 4 and k >= 2 else 1)
                     for k, d in enumerate(shape)]
            items.append((t.name, t.dtype or np.dtype(np.float32), bound, None))
        feeds = _Feeds(items, with_data=False)
        c = ctypes.c_void_p()
        ok = not self.unsupported and lib.gcam_ctx_create(ctypes.byref(c), p, feeds.arr, feeds.n, None) == 0
        out = []
        ti, v = _lib.TensorInfo(), _lib.TensorView()
        for node in self.nodes:
            for name in node.outputs:
                if not name or lib.gcam_model_find_tensor(p, name.encode(), ctypes.byref(ti)) or ti.is_weight:
                    continue
                if ok and lib.gcam_ctx_tensor_shape(c, name.encode(), ctypes.byref(v)) == 0:
                    dtype, shape = v.dtype, tuple(int(v.dims[d]) for d in range(v.ndim))
                else:  # shapes not inferable: what the file declares
                    dtype, shape = ti.dtype, _shape_of(ti)
                if dtype == _lib.FLOAT32 and shape is not None and len(shape) == 4:
                    out.append(LayerInfo(name, node.op_type, shape))
        lib.gcam_ctx_free(c)
        return out

    # ---- running ----
    def _feed_items(self, x, shapes=None):
        """[(name, dtype, shape, array)] for every graph input, checked."""
        if isinstance(x, dict):
            names = {t.name for t in self.inputs}
            extra = [k for k in x if k not in names]
            if extra:
                raise ValueError("no model input named %s; the inputs are %s" % (", ".join(map(repr, extra)),
                                                                                 sorted(names)))
            given = x
        else:
            if not self.inputs:
                raise ValueError("the model has no inputs")
            given = {self.inputs[0].name: x}
        missing = [t.name for t in self.inputs if t.name not in given]
        if missing:
            raise ValueError("model inputs not fed: %s (pass a dict {name: array})" % ", ".join(missing))
        items = []
        for t in self.inputs:
            a = given[t.name]
            dt = t.dtype or np.dtype(np.float32)
            want = shapes.get(t.name) if shapes else None
            _check_array(a, "input '%s'" % t.name, dt, want)
            if want is None and t.shape is not None:
                if len(t.shape) != a.ndim or any(isinstance(d, int) and d != s for d, s in zip(t.shape, a.shape)):
                    raise ValueError("input '%s': shape %s does not fit the model's %s" % (t.name, a.shape, t.shape))
            items.append((t.name, dt, tuple(a.shape), a))
        return items

    def run(self, x, outputs=None, *, n_threads=0):
        """Forward pass. x: an array for the first input, or {input name: array}. Returns {name: array}
        for the model's outputs, or for the tensors named in `outputs` (any activation)."""
        items = self._feed_items(x)
        if isinstance(outputs, str):
            outputs = [outputs]
        keep = tuple(outputs) if outputs is not None else ()
        bad = [k for k in keep if not isinstance(k, str)]
        if bad:
            raise TypeError("outputs: tensor names (str), got %r" % (bad[0],))
        key = (tuple((n, s) for n, _, s, _ in items), keep, int(n_threads))
        feeds = _Feeds(items)
        h = self._ptr()
        try:
            with self._lock:
                idle = self._pool.get(key)
                c = idle.pop() if idle else None
            if c is None:
                c = self._new_ctx(h.ptr, feeds, keep, n_threads)
            try:
                rc = lib.gcam_ctx_run(c, feeds.arr, feeds.n)
                if rc:
                    raise Error(rc, _lib.text(lib.gcam_ctx_error(c)))
                return self._read(c, keep)
            finally:
                with self._lock:
                    if self._closed:
                        lib.gcam_ctx_free(c)
                    else:
                        self._pool.setdefault(key, []).append(c)
        finally:
            h.release()

    def _new_ctx(self, p, feeds, keep, n_threads):
        kb = [k.encode() for k in keep]
        karr = (ctypes.c_char_p * max(len(kb), 1))(*kb)
        opts = _lib.CtxOptions(n_threads=int(n_threads), keep=karr if kb else None, n_keep=len(kb))
        c = ctypes.c_void_p()
        rc = lib.gcam_ctx_create(ctypes.byref(c), p, feeds.arr, feeds.n, ctypes.byref(opts))
        if rc:
            msg = _lib.text(lib.gcam_ctx_error(c)) if c else "out of memory"
            lib.gcam_ctx_free(c)
            raise Error(rc, msg)
        return c

    def _read(self, c, keep):
        v = _lib.TensorView()
        out = {}
        if keep:
            for name in keep:
                rc = lib.gcam_ctx_tensor(c, name.encode(), ctypes.byref(v))
                if rc:
                    raise Error(rc, _lib.text(lib.gcam_ctx_error(c)))
                out[name] = _copy_view(v)
        else:
            for i in range(lib.gcam_ctx_num_outputs(c)):
                rc = lib.gcam_ctx_output(c, i, ctypes.byref(v))
                if rc:
                    raise Error(rc, _lib.text(lib.gcam_ctx_error(c)))
                out[_lib.text(v.name)] = _copy_view(v)
        return out


def _load_model(path, kw):
    return Model(path, **kw)


class Target:
    """What to explain. An int (a class for every sample) or a list of ints (one class per sample) may be
    given instead; the constructors below give every other kind of gradcam.h's gcam_target."""

    __slots__ = ("kind", "cls", "classes", "index", "bounds", "weights_array", "elements", "mask_array")

    def __init__(self, kind, cls=0, classes=None, index=None, bounds=None, weights=None, elements=None, mask=None):
        self.kind, self.cls, self.classes, self.index, self.bounds = kind, cls, classes, index, bounds
        self.weights_array, self.elements, self.mask_array = weights, elements, mask

    def __repr__(self):
        names = {_lib.TARGET_CLASS: "class", _lib.TARGET_ELEMENT: "element", _lib.TARGET_REGION: "region",
                 _lib.TARGET_WEIGHTS: "weights", _lib.TARGET_PRODUCT: "product", _lib.TARGET_MASK: "mask"}
        return "gradcam.Target.%s(...)" % names[self.kind]

    @staticmethod
    def class_(c):
        """Class c's score (axis 1 of the score tensor) for every sample."""
        return Target(_lib.TARGET_CLASS, cls=_int(c, "class"))

    @staticmethod
    def classes_(cs):
        """One class per sample."""
        return Target(_lib.TARGET_CLASS, classes=np.array([_int(c, "class") for c in cs], np.int64))

    @staticmethod
    def element(index):
        """One element of the score tensor: its full index, batch first."""
        idx = tuple(_int(i, "element index") for i in index)
        if not 1 <= len(idx) <= _lib.GCAM_MAX_DIMS:
            raise ValueError("Target.element: an index of 1 to %d integers" % _lib.GCAM_MAX_DIMS)
        return Target(_lib.TARGET_ELEMENT, index=idx)

    @staticmethod
    def region(cls, y0, x0, y1, x1):
        """Class cls's scores summed over rows y0..y1-1 and columns x0..x1-1 of a spatial score
        (N, C, H, W), every sample (segmentation)."""
        return Target(_lib.TARGET_REGION, cls=_int(cls, "class"),
                      bounds=tuple(_int(v, "region bound") for v in (y0, x0, y1, x1)))

    @staticmethod
    def weights(w):
        """Any weighting of the score tensor: w has its shape (copied as float32)."""
        return Target(_lib.TARGET_WEIGHTS, weights=np.ascontiguousarray(w, dtype=np.float32))

    @staticmethod
    def product(elements):
        """The product of 1 to 4 elements of the score tensor, as flat indices (batch first): one
        detection's score, e.g. objectness x class score."""
        el = tuple(_int(i, "element") for i in elements)
        if not 1 <= len(el) <= _lib.GCAM_MAX_TARGET_ELEMENTS:
            raise ValueError("Target.product: 1 to %d flat indices" % _lib.GCAM_MAX_TARGET_ELEMENTS)
        return Target(_lib.TARGET_PRODUCT, elements=el)

    @staticmethod
    def mask(cls, mask):
        """Class cls's scores summed over the pixels where mask (H, W of a spatial score) is nonzero."""
        m = np.asarray(mask)
        if m.ndim != 2:
            raise ValueError("Target.mask: a 2-D mask (H, W), got shape %s" % (m.shape,))
        return Target(_lib.TARGET_MASK, cls=_int(cls, "class"), mask=np.ascontiguousarray(m != 0, dtype=np.uint8))


def _int(v, what):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError("%s: expected an integer, got %r (%s)" % (what, v, type(v).__name__))
    v = int(v)
    if not -(1 << 63) <= v < (1 << 63):  # ctypes would wrap it into the int64 field silently
        raise ValueError("%s: %d does not fit in 64 bits" % (what, v))
    return v


def _as_target(t):
    """A Target from what explain() accepts."""
    if isinstance(t, Target):
        return t
    if isinstance(t, (bool, np.bool_)):
        raise TypeError("target: expected a class (int), a list of classes or a gradcam.Target, got %r" % t)
    if isinstance(t, (int, np.integer)):
        return Target.class_(t)
    if isinstance(t, (list, tuple, np.ndarray)):
        return Target.classes_(list(np.asarray(t).ravel()) if isinstance(t, np.ndarray) else t)
    raise TypeError("target: expected a class (int), a list of classes (one per sample) or a gradcam.Target "
                    "(Target.region/element/weights/product/mask), got %s" % type(t).__name__)


def _c_target(t, score_shape):
    """The gcam_target of t, checked against the score tensor's shape where the C side would read past an
    array; returns (struct, arrays to keep alive)."""
    ct = _lib.Target()
    ct.kind = t.kind
    ct.cls = t.cls
    keep = []
    n_score = int(np.prod(score_shape)) if score_shape is not None else None
    if t.kind == _lib.TARGET_CLASS and t.classes is not None:
        if score_shape is not None and len(t.classes) != score_shape[0]:
            raise ValueError("target: %d classes for %d samples (one class per sample)" % (len(t.classes),
                                                                                          score_shape[0]))
        keep.append(t.classes)
        ct.classes = t.classes.ctypes.data_as(_lib.c_int64_p)
    elif t.kind == _lib.TARGET_ELEMENT:
        if score_shape is not None and len(t.index) != len(score_shape):
            raise ValueError("Target.element: an index of %d integers for the score tensor %s, got %d" %
                             (len(score_shape), tuple(score_shape), len(t.index)))
        for d, i in enumerate(t.index):
            ct.index[d] = i
    elif t.kind == _lib.TARGET_REGION:
        ct.y0, ct.x0, ct.y1, ct.x1 = t.bounds
    elif t.kind == _lib.TARGET_WEIGHTS:
        w = t.weights_array
        if score_shape is None or w.size != n_score:
            raise ValueError("Target.weights: shape %s, the score tensor is %s" % (w.shape, score_shape))
        keep.append(w)
        ct.weights = w.ctypes.data_as(_lib.c_float_p)
    elif t.kind == _lib.TARGET_PRODUCT:
        for k, e in enumerate(t.elements):
            ct.elements[k] = e
        ct.n_elements = len(t.elements)
    elif t.kind == _lib.TARGET_MASK:
        m = t.mask_array
        if score_shape is None or len(score_shape) != 4 or m.shape != tuple(score_shape[2:]):
            raise ValueError("Target.mask: mask %s, needs the (H, W) of a spatial score tensor (N, C, H, W); it "
                             "is %s" % (m.shape, score_shape))
        keep.append(m)
        ct.mask = m.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
    return ct, keep


def _method(m):
    if isinstance(m, (bool, np.bool_)):
        raise TypeError("method: expected a name or gradcam.Method, got %r" % m)
    if isinstance(m, (int, np.integer)):
        if not 0 <= int(m) < len(Method):
            raise ValueError("method %d: no such method (0..%d)" % (m, len(Method) - 1))
        return int(m)
    if isinstance(m, str):
        i = lib.gcam_method_from_name(m.encode())
        if i < 0:
            raise ValueError("unknown method '%s'; the methods are %s" % (m, ", ".join(methods())))
        return i
    raise TypeError("method: expected a name (e.g. 'gradcam') or gradcam.Method, got %s" % type(m).__name__)


class Map:
    """One explanation: raw (n, c, h, w) at the layer's resolution (CAM family; c = 1) or the input's
    (pixel space; c = the input's channels), upsampled and normalized (n, c, H, W), the latter min-max
    scaled to [0, 1] per sample. layer: the CAM layer (the first of several), else None.

    The three arrays are the engine's own buffers of this map, not copies: a gcam_map's buffers belong
    to whoever asked for it (gcam_map_free), so the arrays take them over and they are freed when the
    last array over them (or a view of one) is gone."""

    __slots__ = ("method", "layer", "raw", "upsampled", "normalized")

    def __init__(self, cmap):
        """Takes over cmap's buffers (cmap is left empty: gcam_map_free on it does nothing)."""
        n, c, h, w, H, W = (int(v) for v in (cmap.n, cmap.c, cmap.h, cmap.w, cmap.H, cmap.W))
        self.method = _lib.text(lib.gcam_method_name(cmap.method))
        self.layer = _lib.text(cmap.layer)  # the explainer's string: copied
        mem = _MapMemory(cmap)
        self.raw = mem.array("raw", (n, c, h, w))
        self.upsampled = mem.array("upsampled", (n, c, H, W))
        self.normalized = mem.array("normalized", (n, c, H, W))

    def __repr__(self):
        return "gradcam.Map(%s, layer=%r, raw %s, upsampled %s)" % (self.method, self.layer, self.raw.shape,
                                                                   self.upsampled.shape)


class _MapMemory:
    """The buffers of one gcam_map, moved out of the caller's struct: gcam_map_free'd when the last
    array over them is collected (each array's base is a _Buffer referencing this)."""

    __slots__ = ("cmap",)
    _free = lib.gcam_map_free  # bound now: __del__ may run late at interpreter exit

    def __init__(self, cmap):
        self.cmap = _lib.Map.from_buffer_copy(cmap)
        ctypes.memset(ctypes.addressof(cmap), 0, ctypes.sizeof(cmap))

    def array(self, field, shape):
        """A float32 array of `shape` over the buffer of the gcam_map's `field`, keeping this memory
        alive. (The address read as a void pointer at the field's offset: a ctypes.cast would hold
        the struct in a reference cycle.)"""
        count = 1
        for d in shape:
            count *= d
        if count == 0:
            return np.empty(shape, np.float32)
        addr = ctypes.c_void_p.from_buffer(self.cmap, getattr(_lib.Map, field).offset).value
        if not addr:
            raise Error("internal", "a map without data")
        return np.asarray(_Buffer(addr, shape, self))

    def __del__(self):
        cmap, self.cmap = getattr(self, "cmap", None), None
        if cmap is not None:
            self._free(ctypes.byref(cmap))


class _Buffer:
    """numpy's view of one buffer of a _MapMemory (the array's .base)."""

    __slots__ = ("__array_interface__", "_mem")

    def __init__(self, addr, shape, mem):
        self._mem = mem
        self.__array_interface__ = {"version": 3, "shape": tuple(shape), "typestr": "<f4", "data": (addr, False)}


class Explainer:
    """The engine planned for one input shape: forward once, then any number of explanations.

    One Explainer per thread (a Model may be shared): a second thread calling into an Explainer while
    another is inside it gets a RuntimeError instead of corrupting it."""

    def __init__(self, model, input_shape=None, layers=None, *, output=None, explain_probability=False,
                 n_threads=0, max_memory=0, smoothgrad_samples=0, smoothgrad_sigma=0.0, smoothgrad_base=None,
                 noise_seed=0, ig_steps=0, ig_baseline=None, batch_size=0, input_gradient=False, tokens_grid=None,
                 skip_tokens=0):
        if not isinstance(model, Model):
            raise TypeError("Explainer: expected a gradcam.Model, got %s" % type(model).__name__)
        self._busy = threading.Lock()
        self._e = None
        self.model = model
        self.input_shapes = self._shapes(model, input_shape)
        if isinstance(layers, str):
            layers = [layers]
        lb = [str(s).encode() for s in (layers or [])]
        self._keep = [lb]
        opts = _lib.ExplainOptions()
        if output is not None:
            ob = str(output).encode()
            self._keep.append(ob)
            opts.output = ob
        if lb:
            arr = (ctypes.c_char_p * len(lb))(*lb)
            self._keep.append(arr)
            opts.layers, opts.n_layers = arr, len(lb)
        opts.explain_probability = int(bool(explain_probability))
        opts.n_threads = int(n_threads)
        opts.max_memory = int(max_memory)
        opts.smoothgrad_samples = int(smoothgrad_samples)
        opts.smoothgrad_sigma = float(smoothgrad_sigma)
        opts.smoothgrad_base = _method(smoothgrad_base) if smoothgrad_base is not None else 0
        opts.noise_seed = int(noise_seed)
        opts.ig_steps = int(ig_steps)
        opts.batch_size = int(batch_size)
        opts.input_gradient = int(bool(input_gradient))  # one plan for every map (the command's, with pixel methods)
        if tokens_grid is not None:  # token layers (transformers): the grid (h, w) of their last h * w tokens
            opts.tokens_h, opts.tokens_w = (int(v) for v in tokens_grid)
        opts.skip_tokens = int(skip_tokens)
        if ig_baseline is not None:
            first = model.inputs[0]
            b = np.ascontiguousarray(ig_baseline, dtype=np.float32).copy()  # ours: the C side keeps the pointer
            if b.shape != tuple(self.input_shapes[first.name]):
                raise ValueError("ig_baseline: shape %s, the input is %s" % (b.shape, self.input_shapes[first.name]))
            self._keep.append(b)
            opts.ig_baseline = b.ctypes.data_as(_lib.c_float_p)
        items = [(t.name, t.dtype or np.dtype(np.float32), self.input_shapes[t.name], None) for t in model.inputs
                 if t.name in self.input_shapes]
        feeds = _Feeds(items, with_data=False)
        h = model._ptr()
        e = ctypes.c_void_p()
        rc = lib.gcam_explainer_create(ctypes.byref(e), h.ptr, feeds.arr, feeds.n, ctypes.byref(opts))
        if rc:
            msg = _lib.text(lib.gcam_explainer_error(e)) if e else "out of memory"
            lib.gcam_explainer_free(e)
            h.release()
            raise Error(rc, msg)
        self._e, self._mh = e, h
        self.layers = [_lib.text(lib.gcam_explainer_layer(e, i)) for i in range(lib.gcam_explainer_num_layers(e))]
        self.score_name = _lib.text(lib.gcam_explainer_score_name(e))

    def layer_check(self, name):
        """How the tensor (or node) `name` would be read as a CAM layer: (True, "tokens: 1 special + a
        14x14 grid of 768 channels"), or (False, the reason)."""
        if self._e is None:
            raise Error("state", "the explainer is closed")
        how = ctypes.create_string_buffer(300)
        rc = lib.gcam_explainer_layer_check(self._e, str(name).encode(), how, len(how))
        return rc == 0, how.value.decode("utf-8", "replace")

    def __reduce__(self):
        raise TypeError("a gradcam.Explainer cannot be pickled: it is the engine planned for one thread; make "
                        "one in each process from its Model (a Model loaded from a file pickles as its path)")

    @staticmethod
    def _shapes(model, input_shape):
        """{input name: shape} for every input whose shape is known."""
        given = {}
        if isinstance(input_shape, dict):
            given = {k: tuple(_int(d, "input_shape") for d in v) for k, v in input_shape.items()}
            names = {t.name for t in model.inputs}
            bad = [k for k in given if k not in names]
            if bad:
                raise ValueError("input_shape: no model input named %s" % ", ".join(map(repr, bad)))
        elif input_shape is not None:
            if not model.inputs:
                raise ValueError("the model has no inputs")
            given = {model.inputs[0].name: tuple(_int(d, "input_shape") for d in input_shape)}
        out = {}
        for t in model.inputs:
            if t.name in given:
                out[t.name] = given[t.name]
            elif t.shape is not None and all(isinstance(d, int) for d in t.shape):
                out[t.name] = t.shape
            else:
                raise ValueError("input '%s' has the shape %s: give input_shape (e.g. x.shape)" % (t.name, t.shape))
        return out

    # ---- life ----
    def _enter(self):
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("gradcam.Explainer used by two threads at once: create one Explainer per thread "
                               "(they may share one Model)")
        if self._e is None:
            self._busy.release()
            raise Error("state", "the explainer is closed")

    def close(self):
        """Frees the explainer (and lets go of its Model). Idempotent."""
        if self._e is None:
            return
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("gradcam.Explainer.close(): another thread is using it")
        try:
            e, self._e = self._e, None
            if e is not None:
                lib.gcam_explainer_free(e)
                self._mh.release()
        finally:
            self._busy.release()

    @property
    def closed(self):
        return self._e is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_e", None) is not None:
            try:
                self.close()
            except RuntimeError:
                pass

    def _fail(self, rc):
        raise Error(rc, _lib.text(lib.gcam_explainer_error(self._e)))

    # ---- work ----
    def forward(self, x):
        """One forward pass (x: an array for the first input, or {input name: array}, each of the shape
        the explainer was made for); every explanation until the next forward shares it."""
        items = self.model._feed_items(x, self.input_shapes)
        feeds = _Feeds(items)
        self._enter()
        try:
            rc = lib.gcam_explainer_forward(self._e, feeds.arr, feeds.n)
            if rc:
                self._fail(rc)
        finally:
            self._busy.release()

    def _scores_view(self):
        v = _lib.TensorView()
        rc = lib.gcam_explainer_scores(self._e, ctypes.byref(v))
        if rc:
            self._fail(rc)
        return v

    def scores(self):
        """The explained scores of the last forward (the tensor named score_name: by default the logits
        before a final Softmax/Sigmoid), as a fresh array."""
        self._enter()
        try:
            return _copy_view(self._scores_view())
        finally:
            self._busy.release()

    def _targets(self, targets):
        v = self._scores_view()
        shape = tuple(int(v.dims[d]) for d in range(v.ndim))
        out = []
        for t in targets:
            if t is None:  # the top class of each sample
                if len(shape) != 2:
                    raise ValueError("target None (the top class) needs scores (N, classes); '%s' is %s: give a "
                                     "gradcam.Target" % (self.score_name, shape))
                s = _copy_view(v)
                t = Target(_lib.TARGET_CLASS, classes=np.ascontiguousarray(s.argmax(axis=1).astype(np.int64)))
            out.append(_c_target(_as_target(t), shape))
        return out

    def explain(self, method="gradcam", target=None):
        """One map of one method on the last forward. target: a class (int), one class per sample (a
        list), a gradcam.Target, or None for each sample's top class."""
        m = _method(method)
        self._enter()
        try:
            (ct, keep), = self._targets([target])
            cmap = _lib.Map()
            rc = lib.gcam_explain(self._e, m, ctypes.byref(ct), ctypes.byref(cmap))
            if rc:
                self._fail(rc)
            try:
                return Map(cmap)  # takes the buffers over
            finally:
                lib.gcam_map_free(ctypes.byref(cmap))  # (only if Map() failed before taking them)
        finally:
            self._busy.release()

    def explain_many(self, method="gradcam", targets=()):
        """One map per target on the last forward (gcam_explain_many: the gradient CAM methods push
        several targets through the layers after the CAM layer at once when that pays)."""
        m = _method(method)
        targets = list(targets)
        if not targets:
            return []
        self._enter()
        try:
            conv = self._targets(targets)
            arr = (_lib.Target * len(conv))(*[c for c, _ in conv])
            maps = (_lib.Map * len(conv))()
            rc = lib.gcam_explain_many(self._e, m, arr, len(conv), maps)
            if rc:
                self._fail(rc)
            try:
                return [Map(maps[i]) for i in range(len(conv))]  # each takes its buffers over
            finally:  # the maps not taken over when one failed
                for i in range(len(conv)):
                    lib.gcam_map_free(ctypes.byref(maps[i]))
        finally:
            self._busy.release()
