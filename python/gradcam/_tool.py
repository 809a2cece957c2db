"""The command's side in process (include/gradcam_tool.h): pictures decoded and preprocessed as
`gradcam explain` does, colour maps and PNGs, and the command itself kept open on a model
(`Pipeline`), which writes or returns exactly what the command writes.

    p = gradcam.Pipeline("resnet50.onnx", preprocess="imagenet", methods=["gradcam"], top_k=2)
    r = p.explain("cat.jpg")                       # nothing written: r.files holds the PNGs
    r.record["predictions"][0], r.image(r.record["maps"][0]["overlay"])
    p.explain("cat.jpg", out_dir="out")            # out/cat_c281_gradcam_heatmap.png ... as the command

Options are the command's, by keyword: methods=, classes=, top_k=, layers=, targets=, output=,
probability=, colormap=, alpha=, npy=, preprocess=, size=(w, h), resize_mode=, mean=, std=, scale=,
labels=, task=, detections=, score_threshold=, iou_threshold=, max_detections=, box=, mask=,
seed=, threads=, max_memory=, feed={name: path}. `gradcam explain --help` says what each does.
"""
import ctypes
import io
import os
import threading

import numpy as np

from . import _lib
from ._lib import lib
from .core import Error, Model

__all__ = ["Pipeline", "Result", "explain", "load_image", "colorize", "overlay", "to_png", "options_to_argv",
           "list_inputs"]


class _Request(ctypes.Structure):
    _fields_ = [("path", ctypes.c_char_p), ("data", ctypes.c_void_p), ("size", ctypes.c_size_t),
                ("name", ctypes.c_char_p), ("out_dir", ctypes.c_char_p), ("inline_png", ctypes.c_int),
                ("url_prefix", ctypes.c_char_p), ("argc", ctypes.c_int), ("argv", ctypes.POINTER(ctypes.c_char_p))]


class _File(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class _Result(ctypes.Structure):
    _fields_ = [("record", ctypes.c_char_p), ("failed", ctypes.c_int), ("exit_code", ctypes.c_int),
                ("files", ctypes.POINTER(_File)), ("n_files", ctypes.c_int)]


def _proto(name, res, args):
    f = getattr(lib, name, None)
    if f is None:
        raise ImportError("%s has no %s: it is libgradcam, not libgradcam_tool" % (_lib.path, name))
    f.restype, f.argtypes = res, args


_vp, _cp, _i64p = ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)
_proto("gcam_tool_open", ctypes.c_int, [ctypes.POINTER(_vp), _cp, ctypes.c_int, ctypes.POINTER(_cp)])
_proto("gcam_tool_open_model", ctypes.c_int, [ctypes.POINTER(_vp), _vp, _cp, ctypes.c_int, ctypes.POINTER(_cp)])
_proto("gcam_tool_error", _cp, [_vp])
_proto("gcam_tool_free", None, [_vp])
_proto("gcam_tool_explain", ctypes.c_int, [_vp, ctypes.POINTER(_Request), ctypes.POINTER(_Result)])
_proto("gcam_tool_result_free", None, [ctypes.POINTER(_Result)])
_proto("gcam_tool_describe", _cp, [_vp])
_proto("gcam_tool_decode", ctypes.c_int, [_cp, _vp, ctypes.c_size_t, ctypes.POINTER(_vp), _i64p, _i64p, _cp,
                                         ctypes.c_size_t])
_proto("gcam_tool_preprocess", ctypes.c_int, [_vp, _vp, ctypes.c_int64, ctypes.c_int64, ctypes.POINTER(_vp),
                                             _i64p, ctypes.POINTER(ctypes.c_int)])
_proto("gcam_tool_colorize", ctypes.c_int, [_vp, ctypes.c_int64, ctypes.c_int64, _cp, _vp, ctypes.c_float, _vp])
_proto("gcam_tool_png", ctypes.c_int, [_vp, ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.POINTER(_vp),
                                      ctypes.POINTER(ctypes.c_size_t)])
_proto("gcam_tool_buffer_free", None, [_vp])
_proto("gcam_tool_inputs", ctypes.c_int, [ctypes.POINTER(_cp), ctypes.c_int, _cp, ctypes.POINTER(ctypes.POINTER(_vp)),
                                         ctypes.POINTER(ctypes.POINTER(_vp)), ctypes.POINTER(ctypes.c_int)])
_proto("gcam_tool_inputs_free", None, [ctypes.POINTER(_vp), ctypes.POINTER(_vp), ctypes.c_int])

# keywords whose option is not --the-keyword-with-dashes
_SPELLING = {"methods": "--method", "method": "--method", "classes": "--class", "layers": "--layer",
             "targets": "--target", "top_k": "--top-k", "detections": "--detections", "threads": "--threads"}
_REPEATED = {"targets"}  # one option per item (the others take a comma-separated list)


def options_to_argv(**options):
    """The command-line options of `gradcam explain` for keyword options: True gives a flag, False and
    None leave the option out, lists are comma-joined (targets=[...] repeat --target), size=(w, h)
    gives WxH, feed={name: path} repeats --feed."""
    argv = []
    for key, val in options.items():
        if val is None or val is False:
            continue
        opt = _SPELLING.get(key, "--" + key.replace("_", "-"))
        if val is True:
            argv.append(opt)
        elif key == "feed":
            for name, path in dict(val).items():
                argv += [opt, "%s=%s" % (name, os.fspath(path))]
        elif key == "size" and isinstance(val, (tuple, list)):
            argv += [opt, "%dx%d" % (int(val[0]), int(val[1]))]
        elif key in _REPEATED and isinstance(val, (tuple, list)):
            for v in val:
                argv += [opt, str(v)]
        elif isinstance(val, (tuple, list)):
            argv += [opt, ",".join(str(v) for v in val)]
        else:
            argv += [opt, os.fspath(val) if isinstance(val, os.PathLike) else str(val)]
    return argv


def _argv(strings):
    enc = [s.encode() for s in strings]
    arr = (ctypes.c_char_p * max(1, len(enc)))(*enc)
    return len(enc), arr, enc


class Result:
    """One input explained: .record (its record in results.json, a dict), .failed and .exit_code (as
    the command's: 0, or 3 for an input that could not be explained; .record["error"] says why), and
    in memory mode .files, every file the command would write, by name (bytes)."""

    def __init__(self, record, failed, exit_code, files):
        self.record, self.failed, self.exit_code, self.files = record, bool(failed), exit_code, files

    def image(self, name):
        """A PNG of .files decoded: uint8 (h, w, 3)."""
        return load_image(self.files[name])

    def array(self, name):
        """A .npy of .files as an ndarray."""
        return np.load(io.BytesIO(self.files[name]), allow_pickle=False)

    def __repr__(self):
        return "<gradcam.Result %s%s, %d files>" % (self.record.get("path"), " FAILED" if self.failed else "",
                                                    len(self.files))


class Pipeline:
    """`gradcam explain MODEL [options]` kept open: the model loaded once (or a gradcam.Model shared),
    then inputs one at a time, each written or returned as the command writes it. One thread at a
    time per Pipeline (one per thread; they may share a Model)."""

    def __init__(self, model, options=(), model_path=None, **kw):
        self._lock = threading.Lock()
        self._h = None
        self._model_h = None
        argv = list(options) + options_to_argv(**kw)
        n, arr, keep = _argv(argv)
        p = ctypes.c_void_p()
        if isinstance(model, Model):
            self.model_path = os.fspath(model_path or getattr(model, "path", None) or "model.onnx")
            self._model_h = model._ptr()  # referenced: closing the Model never frees it under us
            rc = lib.gcam_tool_open_model(ctypes.byref(p), self._model_h.ptr, os.fsencode(self.model_path), n, arr)
        else:
            self.model_path = os.fspath(model)
            rc = lib.gcam_tool_open(ctypes.byref(p), os.fsencode(self.model_path), n, arr)
        if rc:
            msg = _lib.text(lib.gcam_tool_error(p)) if p else "out of memory"
            lib.gcam_tool_free(p)
            self._release_model()
            raise Error(rc, msg)
        self._h = p
        self.options = argv

    def _release_model(self):
        if self._model_h is not None:
            self._model_h.release()
            self._model_h = None

    def _handle(self):
        if self._h is None:
            raise Error("state", "the pipeline is closed")
        return self._h

    def explain(self, source, out_dir=None, name=None, inline_png=False, url_prefix=None, options=(), **kw):
        """Explains one input: a path (picture or .npy), picture bytes (PNG/JPEG) or .npy bytes, or an
        ndarray (uint8 (h, w, 3): a picture; float32: the model input as is). out_dir: write the
        files there as the command does; None: nothing is written, Result.files holds them (with
        inline_png, each PNG also base64 in the record; with url_prefix, named by URL). options /
        keywords: this input's methods=, classes=, top_k=, layers=, ... over the pipeline's."""
        req = _Request()
        keep = []
        if isinstance(source, (str, os.PathLike)):
            req.path = os.fsencode(source)
        else:
            data = np.frombuffer(_as_bytes(source), np.uint8)  # the bytes themselves, not a copy
            keep.append(data)
            req.data, req.size = data.ctypes.data, data.size
        req.name = os.fsencode(name) if name else None
        req.out_dir = os.fsencode(out_dir) if out_dir is not None else None
        req.inline_png = 1 if inline_png else 0
        req.url_prefix = url_prefix.encode() if url_prefix else None
        n, arr, enc = _argv(list(options) + options_to_argv(**kw))
        keep += [arr, enc]
        req.argc, req.argv = n, arr
        res = _Result()
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("this Pipeline is in use by another thread: make one per thread")
        try:
            h = self._handle()
            rc = lib.gcam_tool_explain(h, ctypes.byref(req), ctypes.byref(res))
            if rc:
                raise Error(rc, _lib.text(lib.gcam_tool_error(h)))
            try:
                import json
                record = json.loads(res.record.decode("utf-8"))
                files = {}
                for i in range(res.n_files):
                    f = res.files[i]
                    files[f.name.decode("utf-8", "replace")] = ctypes.string_at(f.data, f.size) if f.size else b""
                return Result(record, res.failed, res.exit_code, files)
            finally:
                lib.gcam_tool_result_free(ctypes.byref(res))
        finally:
            self._lock.release()

    def __reduce__(self):
        raise TypeError("a gradcam.Pipeline cannot be pickled: open one in each process (gradcam.dask opens one "
                        "per worker thread)")

    def describe(self):
        """results.json's "model" and "options" objects (the layers and class count once an input was
        explained)."""
        import json
        with self._lock:
            t = lib.gcam_tool_describe(self._handle())
            if not t:
                raise Error("nomem", _lib.text(lib.gcam_tool_error(self._h)))
            return json.loads(t.decode("utf-8"))

    def preprocess(self, picture):
        """The model input the pipeline's preprocessing makes of a picture (path, bytes or uint8
        (h, w, 3) array): float32, batch of 1, in the model's layout."""
        rgb = picture if isinstance(picture, np.ndarray) else load_image(picture)
        rgb = _rgb_array(rgb, "picture")
        if not rgb.size:
            raise ValueError("picture: empty (%dx%d)" % (rgb.shape[1], rgb.shape[0]))
        x = ctypes.c_void_p()
        dims = (ctypes.c_int64 * 8)()
        nd = ctypes.c_int()
        with self._lock:
            h = self._handle()
            rc = lib.gcam_tool_preprocess(h, rgb.ctypes.data, rgb.shape[0], rgb.shape[1], ctypes.byref(x), dims,
                                          ctypes.byref(nd))
            if rc:
                raise Error(rc, _lib.text(lib.gcam_tool_error(h)))
        shape = tuple(int(dims[i]) for i in range(nd.value))
        try:
            return _copy_out(x.value, shape, np.float32)
        finally:
            lib.gcam_tool_buffer_free(x)

    def close(self):
        """Frees the pipeline (and lets go of a shared Model). Idempotent."""
        with self._lock:
            h, self._h = self._h, None
        if h is not None:
            lib.gcam_tool_free(h)
        self._release_model()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_lock", None) is not None:
            self.close()


def _copy_out(addr, shape, dtype):
    """A new array of `shape` copied from a buffer of the tool's (freed by the caller). By address, not
    ctypes.cast: a cast puts its source in a reference cycle, which holds memory until the cyclic
    garbage collector runs (the RSS tests saw megabytes of it)."""
    a = np.empty(shape, dtype)
    if a.nbytes:
        if not addr:
            raise Error("internal", "an empty buffer for %s" % (shape,))
        ctypes.memmove(a.ctypes.data, addr, a.nbytes)
    return a


def _rgb_array(a, what):
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise TypeError("%s: expected a uint8 array (h, w, 3), got %s" % (
            what, "%s %s" % (a.dtype, a.shape) if isinstance(a, np.ndarray) else type(a).__name__))
    return np.ascontiguousarray(a)


def _as_bytes(source):
    """Bytes the command reads as a file: pictures and .npy as they are, arrays encoded."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, np.ndarray):
        if source.dtype == np.uint8:
            return to_png(source)
        if source.dtype == np.float32:
            b = io.BytesIO()
            np.save(b, np.ascontiguousarray(source), allow_pickle=False)
            return b.getvalue()
        raise TypeError("an input array must be uint8 (h, w, 3) (a picture) or float32 (the model input); got %s"
                        % source.dtype)
    raise TypeError("an input is a path, bytes or a numpy array, not %s" % type(source).__name__)


def list_inputs(paths, out_dir=None):
    """The inputs `gradcam explain` takes for these paths (folders walked for .png/.jpg/.jpeg/.npy, sorted by path;
    out_dir skipped) and the stem naming each one's output files: [(path, stem), ...]."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    enc = [os.fsencode(p) for p in paths]
    arr = (ctypes.c_char_p * max(1, len(enc)))(*enc)
    pp, ss, n = ctypes.POINTER(_vp)(), ctypes.POINTER(_vp)(), ctypes.c_int()
    rc = lib.gcam_tool_inputs(arr, len(enc), os.fsencode(out_dir) if out_dir else None, ctypes.byref(pp),
                              ctypes.byref(ss), ctypes.byref(n))
    if rc:
        raise Error(rc, "listing the inputs failed (out of memory)")
    try:
        return [(os.fsdecode(ctypes.string_at(pp[i])), os.fsdecode(ctypes.string_at(ss[i]))) for i in range(n.value)]
    finally:
        lib.gcam_tool_inputs_free(pp, ss, n.value)


def load_image(source):
    """A picture (path or PNG/JPEG bytes) decoded as the command does: uint8 (h, w, 3), RGB."""
    rgb, h, w = ctypes.c_void_p(), ctypes.c_int64(), ctypes.c_int64()
    err = ctypes.create_string_buffer(1024)
    if isinstance(source, (str, os.PathLike)):
        rc = lib.gcam_tool_decode(os.fsencode(source), None, 0, ctypes.byref(rgb), ctypes.byref(h), ctypes.byref(w),
                                  err, len(err))
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = np.frombuffer(source if isinstance(source, bytes) else bytes(source), np.uint8)
        if not data.size:
            raise Error("format", "picture: empty")
        rc = lib.gcam_tool_decode(None, data.ctypes.data, data.size, ctypes.byref(rgb), ctypes.byref(h),
                                  ctypes.byref(w), err, len(err))
    else:
        raise TypeError("load_image: a path or the picture's bytes, not %s" % type(source).__name__)
    if rc:
        raise Error(rc, err.value.decode("utf-8", "replace"))
    try:
        return _copy_out(rgb.value, (h.value, w.value, 3), np.uint8)
    finally:
        lib.gcam_tool_buffer_free(rgb)


def _map2d(m):
    m = np.asarray(m)
    if m.ndim > 2:
        m = m.reshape(m.shape[-2:]) if int(np.prod(m.shape[:-2])) == 1 else None
    if m is None or m.ndim != 2:
        raise ValueError("a map is (h, w) (or (1, 1, h, w)); for several, call once per map")
    return np.ascontiguousarray(m, dtype=np.float32)


def colorize(heat, colormap="jet"):
    """A map in [0, 1] (h, w) in colour, as the command's heat maps: uint8 (h, w, 3)."""
    m = _map2d(heat)
    out = np.empty(m.shape + (3,), np.uint8)
    rc = lib.gcam_tool_colorize(m.ctypes.data, m.shape[0], m.shape[1], colormap.encode(), None, 0.0, out.ctypes.data)
    if rc:
        raise Error(rc, "colorize: bad map, size or colour map '%s' (jet, viridis, inferno, turbo, gray)" % colormap)
    return out


def overlay(picture, heat, alpha=0.5, colormap="jet"):
    """A map in [0, 1] (h, w) blended over a picture of the same size (uint8 (h, w, 3)), as the
    command's overlays: (1 - alpha) picture + alpha colour."""
    m = _map2d(heat)
    rgb = _rgb_array(picture, "picture")
    if rgb.shape[:2] != m.shape:
        raise ValueError("the picture is %dx%d, the map %dx%d: give the map upsampled to the picture (Map.normalized)"
                         % (rgb.shape[1], rgb.shape[0], m.shape[1], m.shape[0]))
    out = np.empty(rgb.shape, np.uint8)
    rc = lib.gcam_tool_colorize(m.ctypes.data, m.shape[0], m.shape[1], colormap.encode(), rgb.ctypes.data,
                                float(alpha), out.ctypes.data)
    if rc:
        raise Error(rc, "overlay: bad alpha %r (0..1) or colour map '%s'" % (alpha, colormap))
    return out


def to_png(image):
    """PNG bytes of a uint8 picture, (h, w, 3) RGB or (h, w) grey."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3))):
        raise TypeError("to_png: expected uint8 (h, w, 3) or (h, w), got %s %s" % (a.dtype, a.shape))
    a = np.ascontiguousarray(a)
    ch = 3 if a.ndim == 3 and a.shape[2] == 3 else 1
    png, size = ctypes.c_void_p(), ctypes.c_size_t()
    rc = lib.gcam_tool_png(a.ctypes.data, a.shape[0], a.shape[1], ch, ctypes.byref(png), ctypes.byref(size))
    if rc:
        raise Error(rc, "to_png: cannot encode a %s picture" % (a.shape,))
    try:
        return ctypes.string_at(png, size.value)
    finally:
        lib.gcam_tool_buffer_free(png)


_cache_lock = threading.Lock()
_cache = {}  # (model path, options) -> Pipeline, for explain(); a few kept
_CACHE_MAX = 4


def explain(model, image, methods=("gradcam", "guided-backprop", "guided-gradcam"), top_k=1, out_dir=None, **options):
    """One call: explains `image` (path, bytes or array) with `model` (a path, kept loaded for the next
    calls with the same options, or a gradcam.Model) as `gradcam explain` would, by keyword options
    (methods=, top_k=, classes=, preprocess=, labels=, npy=, ...). Returns a Result: .record as in
    results.json, .files the PNGs (and .npy) in memory unless out_dir is given."""
    options = dict(options, methods=list(methods), top_k=top_k if not options.get("classes") else None)
    if isinstance(model, Model):
        with Pipeline(model, **options) as p:
            return p.explain(image, out_dir=out_dir)
    key = (os.path.abspath(os.fspath(model)), tuple(options_to_argv(**options)))
    with _cache_lock:
        p = _cache.pop(key, None)
    if p is None:
        p = Pipeline(model, **options)
    try:
        return p.explain(image, out_dir=out_dir)
    finally:
        with _cache_lock:
            old = _cache.pop(key, None)
            _cache[key] = p
            while len(_cache) > _CACHE_MAX:
                _cache.pop(next(iter(_cache))).close()
        if old is not None and old is not p:
            old.close()
