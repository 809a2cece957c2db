"""The package's core (python/gradcam: Model, Explainer, Map, Target, Error) against the command and the
header: maps bit for bit equal to `gradcam explain --npy`, bindings equal to include/gradcam.h, clear
exceptions for every misuse, flat memory, and the thread rules."""
import ctypes
import gc
import json
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

import gradcam
from gradcam import _lib
from conftest import DEMO, SRC, demo_input, run_cli
from memcheck import rss_growth

HEADER = os.path.join(SRC, "include", "gradcam.h")


# ---- the bindings against the header -------------------------------------------------------------

def test_every_header_function_has_a_prototype():
    text = re.sub(r"/\*.*?\*/", "", open(HEADER).read(), flags=re.S)
    declared = set(re.findall(r"\b(gcam_\w+)\s*\(", text))
    assert declared == set(_lib.PROTOTYPES), (declared ^ set(_lib.PROTOTYPES))


STRUCTS = {"gcam_load_options": _lib.LoadOptions, "gcam_tensor_info": _lib.TensorInfo,
           "gcam_node_info": _lib.NodeInfo, "gcam_feed": _lib.Feed, "gcam_tensor_view": _lib.TensorView,
           "gcam_ctx_options": _lib.CtxOptions, "gcam_target": _lib.Target,
           "gcam_detect_options": _lib.DetectOptions, "gcam_detection": _lib.Detection,
           "gcam_explain_options": _lib.ExplainOptions, "gcam_map": _lib.Map}


def test_struct_fields_equal_the_headers():
    text = re.sub(r"/\*.*?\*/", "", open(HEADER).read(), flags=re.S)
    for cname, st in STRUCTS.items():
        body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (cname, cname), text, flags=re.S).group(1)
        fields = [re.search(r"(\w+)\s*(\[[^]]*\])?\s*$", part).group(1)
                  for d in body.split(";") if d.strip() for part in d.split(",")]  # "int a, b;" too
        assert fields == [f for f, _ in st._fields_], cname


def test_struct_layouts_equal_the_compilers(work):
    """sizeof and every field's offset, as the C compiler lays the header's structs out."""
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "gradcam.h"', "int main(void) {"]
    for cname, st in STRUCTS.items():
        lines.append('printf("%s %%zu\\n", sizeof(%s));' % (cname, cname))
        for f, _ in st._fields_:
            lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (cname, f, cname, f))
    lines.append("return 0; }")
    c = os.path.join(work, "layout.c")
    exe = os.path.join(work, "layout")
    with open(c, "w") as f:
        f.write("\n".join(lines))
    subprocess.run(["cc", "-std=c17", "-I", os.path.join(SRC, "include"), c, "-o", exe], check=True)
    got = dict(l.split() for l in subprocess.run([exe], capture_output=True, text=True, check=True).stdout.splitlines())
    for cname, st in STRUCTS.items():
        assert int(got[cname]) == ctypes.sizeof(st), cname
        for f, _ in st._fields_:
            assert int(got[cname + "." + f]) == getattr(st, f).offset, cname + "." + f


def test_methods_and_version():
    assert gradcam.version() == gradcam.__version__
    names = gradcam.methods()
    assert names[0] == "gradcam" and "integrated-gradients" in names and len(names) == len(gradcam.Method)
    assert gradcam.Method.GRADCAMPP == names.index("gradcam++")


# ---- maps equal the command's --npy, bit for bit ---------------------------------------------------

def demo_picture():
    """demo_1.png as --preprocess raw makes it: RGB in [0, 1], (1, 3, 128, 128)."""
    px = np.asarray(Image.open(os.path.join(SRC, "examples", "demo", "images", "demo_1.png")).convert("RGB"))
    assert px.shape == (128, 128, 3)
    return np.ascontiguousarray((px.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None])


def cli_maps(cli, model, x, classes, out):
    """Runs `gradcam explain MODEL x.npy -m all -c C1,C2 --npy`; returns {(method, class): raw map}."""
    os.makedirs(out, exist_ok=True)
    xp = os.path.join(out, "x.npy")
    np.save(xp, x)
    run_cli(cli, "explain", model, xp, "-m", "all", "-c", ",".join(map(str, classes)), "--npy", "--seed", "7",
            "-o", out, "-q")
    rec = json.load(open(os.path.join(out, "results.json")))["inputs"][0]
    maps = {}
    for m in rec["maps"]:
        assert "error" not in m, m
        maps[(m["method"], m["class"]["index"])] = np.load(os.path.join(out, m["npy"]))
    return maps


@pytest.mark.parametrize("which", ["demo", "resnet18", "mobilenet_v2"])
def test_maps_equal_the_command(which, cli, fx, mnv2, work):
    if which == "demo":
        model, x, classes = DEMO, demo_picture(), [1, 4]
    elif which == "resnet18":  # tests/test_cli.py's seeded resnet18, at 64x64 (dynamic height and width)
        model, x, classes = os.path.join(fx, "r18dyn.onnx"), demo_input(3, (1, 3, 64, 64)), [7, 281]
    else:
        model, x, classes = mnv2, demo_input(4, (1, 3, 64, 64)), [2, 5]
    ref = cli_maps(cli, model, x, classes, os.path.join(work, "parity_" + which))
    # the command's options (pixel-space methods asked: input_gradient, one plan for every map) and
    # order of calls: the batchable gradient CAM methods over every class at once (gcam_explain_many),
    # then class by class every other method
    names = [k for k in gradcam.methods() if not k.endswith("rollout")]  # (transformers only: the command skips them)
    with gradcam.Model(model) as m, gradcam.Explainer(m, input_shape=x.shape, noise_seed=7, input_gradient=True) as e:
        e.forward(x)
        pre = {k: e.explain_many(k, targets=classes) for k in names if k in BATCHABLE}
        n = 0
        for i, c in enumerate(classes):
            for k in names:
                mp = pre[k][i] if k in pre else e.explain(k, target=c)
                r = ref[(k, c)]
                # the command's .npy: (h, w) for CAM maps, (c, h, w) in pixel space
                got = mp.raw[0, 0] if _lib.lib.gcam_method_is_cam(names.index(k)) else mp.raw[0]
                assert got.shape == r.shape and np.array_equal(got, r), (which, k, c)
                assert mp.normalized.shape == mp.upsampled.shape == (1, mp.raw.shape[1]) + x.shape[2:]
                assert 0 <= mp.normalized.min() and mp.normalized.max() <= 1
                n += 1
        assert n == 2 * len(names) == len(ref)
    with gradcam.Model(model) as m, gradcam.Explainer(m, input_shape=x.shape, input_gradient=True) as e:
        e.forward(x)  # one target alone, after a pixel-space method: the same map as within explain_many
        e.explain("gradient", classes[0])
        assert np.array_equal(e.explain("gradcam", classes[1]).raw, pre["gradcam"][1].raw)


BATCHABLE = {"gradcam", "counterfactual", "gradcam++", "xgradcam", "hirescam", "layercam", "eigengradcam"}


def test_model_info_run_and_layers(cli):
    m = gradcam.Model(DEMO)
    assert [t.name for t in m.inputs] == ["input"] and m.inputs[0].dtype == np.float32
    assert m.inputs[0].shape == ("batch", 3, 128, 128)
    assert m.outputs[0].name == "logits" and m.outputs[0].shape == ("batch", 6)
    assert m.layers and all(len(l.shape) == 4 and l.shape[0] == 1 for l in m.layers)
    x = demo_picture()
    y = m.run(x)
    assert list(y) == ["logits"] and y["logits"].shape == (1, 6) and y["logits"].dtype == np.float32
    assert np.array_equal(m.run({"input": x})["logits"], y["logits"])
    e = gradcam.Explainer(m, input_shape=x.shape)
    e.forward(x)
    assert np.array_equal(e.scores(), y["logits"])
    # the default layer is `gradcam info`'s and one of m.layers; any of them can be explained
    info = subprocess.run([cli, "info", DEMO], capture_output=True, text=True, check=True).stdout
    assert "default explanation layer: %s " % e.layers[0] in info
    names = [l.name for l in m.layers]
    assert e.layers[0] in names
    inner = m.run(x, outputs=[names[2], "logits"])
    assert inner[names[2]].shape == m.layers[2].shape
    e2 = gradcam.Explainer(m, input_shape=x.shape, layers=names[2])
    e2.forward(x)
    mp = e2.explain("gradcam", 1)
    assert mp.layer == names[2] and mp.raw.shape[2:] == m.layers[2].shape[2:]
    # from memory: the same model
    with open(DEMO, "rb") as f:
        mb = gradcam.Model(f.read())
    assert np.array_equal(mb.run(x)["logits"], y["logits"])
    # batches: one class per sample, or None for each sample's top class
    xb = np.concatenate([x, demo_input(5)])
    eb = gradcam.Explainer(m, input_shape=xb.shape)
    eb.forward(xb)
    top = eb.scores().argmax(1)
    a = eb.explain("gradcam", target=list(top))
    b = eb.explain("gradcam")
    assert a.raw.shape[0] == 2 and np.array_equal(a.raw, b.raw)
    assert np.array_equal(eb.explain("gradcam", target=gradcam.Target.classes_(top)).raw, a.raw)
    for o in (e, e2, eb, m, mb):
        o.close()


def test_targets_on_a_spatial_output(fx):
    """Region, mask, element, weights and product targets on tests/test_cli.py's segmenter (N, 4, 16, 16)."""
    m = gradcam.Model(os.path.join(fx, "seg.onnx"))
    x = np.load(os.path.join(fx, "seg_x.npy"))
    e = gradcam.Explainer(m, input_shape=x.shape)
    e.forward(x)
    s = e.scores()
    assert s.shape == (1, 4, 16, 16)
    region = e.explain("hirescam", gradcam.Target.region(2, 3, 4, 9, 12))
    mask = np.zeros((16, 16), bool)
    mask[3:9, 4:12] = True
    w = np.zeros(s.shape, np.float32)
    w[0, 2, 3:9, 4:12] = 1
    for t in (gradcam.Target.mask(2, mask), gradcam.Target.weights(w)):
        assert np.array_equal(e.explain("hirescam", t).raw, region.raw)
    el = e.explain("gradient", gradcam.Target.element((0, 1, 5, 6)))
    w = np.zeros(s.shape, np.float32)
    w[0, 1, 5, 6] = 1
    assert np.array_equal(el.raw, e.explain("gradient", gradcam.Target.weights(w)).raw)
    flat = np.ravel_multi_index((0, 1, 5, 6), s.shape)
    assert np.array_equal(e.explain("gradient", gradcam.Target.product([flat])).raw, el.raw)
    # wrong kinds for this output: clear errors
    with pytest.raises(ValueError, match="mask"):
        e.explain("gradcam", gradcam.Target.mask(2, np.ones((8, 8))))
    with pytest.raises(ValueError, match="weights"):
        e.explain("gradcam", gradcam.Target.weights(np.ones((1, 4))))
    with pytest.raises(ValueError, match="index"):
        e.explain("gradcam", gradcam.Target.element((0, 1)))
    with pytest.raises(gradcam.Error) as ei:
        e.explain("gradcam", gradcam.Target.region(2, 3, 4, 99, 12))
    assert ei.value.status == "arg" and "region" in ei.value.message
    e.close()
    m.close()


# ---- misuse: clear exceptions, never a crash -------------------------------------------------------

def test_bad_inputs_raise():
    m = gradcam.Model(DEMO)
    x = demo_picture()
    e = gradcam.Explainer(m, input_shape=x.shape)
    with pytest.raises(gradcam.Error) as ei:
        e.explain("gradcam", 1)  # before any forward
    assert ei.value.status == "state"
    with pytest.raises(TypeError, match="float64.*float32"):
        e.forward(x.astype(np.float64))
    with pytest.raises(TypeError, match="int64.*float32"):
        m.run(x.astype(np.int64))
    with pytest.raises(TypeError, match="ndarray"):
        e.forward(x.tolist())
    with pytest.raises(ValueError, match="ascontiguousarray"):
        e.forward(np.asfortranarray(x))
    with pytest.raises(ValueError, match="ascontiguousarray"):
        e.forward(np.zeros((1, 3, 128, 256), np.float32)[..., ::2])
    with pytest.raises(ValueError, match="shape"):
        e.forward(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(ValueError, match="shape"):
        m.run(np.zeros((1, 3, 64), np.float32))
    with pytest.raises(ValueError, match="no model input"):
        m.run({"nope": x})
    with pytest.raises(ValueError, match="does not fit"):  # not the model's fixed 128x128
        m.run(np.zeros((1, 3, 64, 64), np.float32))
    # read-only arrays are fine: the engine only reads them
    ro = x.copy()
    ro.setflags(write=False)
    e.forward(ro)
    a = e.explain("gradcam", 1).raw
    e.forward(x)
    assert np.array_equal(a, e.explain("gradcam", 1).raw)
    assert np.array_equal(m.run(ro)["logits"], m.run(x)["logits"])
    # targets and methods
    for bad in ("cat", 1.5, True, None.__class__, {"a": 1}):
        with pytest.raises(TypeError):
            e.explain("gradcam", bad)
    with pytest.raises(gradcam.Error) as ei:
        e.explain("gradcam", 6)
    assert ei.value.status == "arg" and "out of range" in ei.value.message
    with pytest.raises(ValueError, match="per sample"):
        e.explain("gradcam", [1, 2])
    for big in (2 ** 70, [2 ** 64]):  # refused, not wrapped into the int64 field (2 ** 70 was class 0)
        with pytest.raises(ValueError, match="64 bits"):
            e.explain("gradcam", big)
    with pytest.raises(ValueError, match="64 bits"):
        gradcam.Target.element((0, 2 ** 63))
    with pytest.raises(TypeError, match="tensor names"):
        m.run(x, outputs=[3])
    with pytest.raises(ValueError, match="64 bits"):
        gradcam.Explainer(m, input_shape=(2 ** 64 + 1, 3, 128, 128))  # (was wrapped to a batch of 1)
    with pytest.raises(TypeError, match="input_shape"):
        gradcam.Explainer(m, input_shape=(1, 3, 128.0, 128))
    with pytest.raises(gradcam.Error, match="spatial"):
        e.explain("gradcam", gradcam.Target.region(1, 0, 0, 2, 2))
    with pytest.raises(ValueError, match="mask"):
        e.explain("gradcam", gradcam.Target.mask(1, np.ones((4, 4))))
    with pytest.raises(ValueError, match="unknown method 'gradkam'"):
        e.explain("gradkam", 1)
    with pytest.raises(ValueError):
        e.explain(99, 1)
    with pytest.raises(TypeError):
        e.explain(None, 1)
    with pytest.raises(gradcam.Error) as ei:
        gradcam.Explainer(m, input_shape=x.shape, layers=["no_such_tensor"])
    assert "no_such_tensor" in ei.value.message
    with pytest.raises(ValueError, match="input_shape"):
        gradcam.Explainer(m)  # symbolic batch: the shape must be given
    with pytest.raises(TypeError):
        gradcam.Explainer("model.onnx", input_shape=x.shape)
    e.close()
    m.close()


def test_bad_files_raise(work):
    with pytest.raises(gradcam.Error) as ei:
        gradcam.Model(os.path.join(work, "missing.onnx"))
    assert ei.value.status == "io" and "missing.onnx" in ei.value.message
    bad = os.path.join(work, "garbage.onnx")
    with open(bad, "wb") as f:
        f.write(b"\x08\x07garbage, not a model" * 10)
    for src in (bad, open(bad, "rb").read(), b""):
        with pytest.raises(gradcam.Error) as ei:
            gradcam.Model(src)
        assert ei.value.status in ("format", "io", "arg") and ei.value.message
    with pytest.raises(TypeError):
        gradcam.Model(12)


def test_closed_objects_raise_and_explainers_keep_their_model():
    m = gradcam.Model(DEMO)
    x = demo_picture()
    e = gradcam.Explainer(m, input_shape=x.shape)
    m.run(x)
    m.close()
    m.close()  # idempotent
    for call in (lambda: m.run(x), lambda: m.layers, lambda: m.nodes,
                 lambda: gradcam.Explainer(m, input_shape=x.shape)):
        with pytest.raises(gradcam.Error) as ei:
            call()
        assert ei.value.status == "state" and "closed" in ei.value.message
    e.forward(x)  # the explainer still holds the model
    assert e.explain("gradcam", 1).raw.shape == (1, 1, 16, 16)
    e.close()
    for call in (lambda: e.forward(x), lambda: e.explain("gradcam", 1), lambda: e.scores()):
        with pytest.raises(gradcam.Error, match="closed"):
            call()
    with gradcam.Model(DEMO) as m2:
        with gradcam.Explainer(m2, input_shape=x.shape) as e2:
            e2.forward(x)
        assert e2.closed
    assert m2.closed


def test_pickling():
    """A Model pickles as its path and load options (a Dask task or a multiprocessing worker loads it
    again); what cannot cross a process says so instead of failing on a lock or a pointer."""
    import pickle
    m = gradcam.Model(DEMO, fold_batchnorm=True)
    x = demo_picture()
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.path == DEMO and m2._load_kw == m._load_kw and m2.inputs == m.inputs
    assert np.array_equal(m2.run(x)["logits"], m.run(x)["logits"])
    with open(DEMO, "rb") as f:
        mb = gradcam.Model(f.read())
    with pytest.raises(TypeError, match="from bytes cannot be pickled"):
        pickle.dumps(mb)
    e = gradcam.Explainer(m, input_shape=x.shape)
    with pytest.raises(TypeError, match="Explainer cannot be pickled"):
        pickle.dumps(e)
    e.forward(x)
    mp = e.explain("gradcam", 1)  # a map pickles with its arrays (a Dask task may return one)
    mq = pickle.loads(pickle.dumps(mp))
    assert (mq.method, mq.layer) == (mp.method, mp.layer)
    assert all(np.array_equal(getattr(mq, k), getattr(mp, k)) for k in ("raw", "upsampled", "normalized"))
    p = gradcam.Pipeline(m, model_path=DEMO)
    with pytest.raises(TypeError, match="Pipeline cannot be pickled"):
        pickle.dumps(p)
    for o in (p, e, m, m2, mb):
        o.close()
    with pytest.raises(gradcam.Error, match="closed"):
        pickle.dumps(m)


# ---- memory -------------------------------------------------------------------------------------

def test_rss_flat_over_1000_explains():
    """1000 explanations (single, several targets, failing ones, a forward every 10) after a warm-up
    of 100: resident memory grows by less than 2 MB."""
    m = gradcam.Model(DEMO)
    x = demo_picture()
    e = gradcam.Explainer(m, input_shape=x.shape)

    def loop(n):
        for i in range(n):
            if i % 10 == 0:
                e.forward(x)
                m.run(x)
            if i % 10 == 5:
                e.explain_many("gradcam", [1, 2])
            elif i % 10 == 7:
                with pytest.raises(gradcam.Error):
                    e.explain("gradcam", 99)
            else:
                e.explain("gradcam++" if i % 2 else "gradcam", i % 6)

    grown = rss_growth(loop)
    assert grown < 2 << 20, "RSS grew by %d bytes over 1000 explains" % grown
    print("RSS growth over 1000 explains: %d bytes" % grown)
    e.close()
    m.close()


# ---- threads ------------------------------------------------------------------------------------

def test_threads_share_a_model():
    """Two threads, one Model, an Explainer each: the maps of one thread alone."""
    m = gradcam.Model(DEMO)
    xs = [demo_picture(), demo_input(9)]

    def maps_of(x):
        with gradcam.Explainer(m, input_shape=x.shape, n_threads=1) as e:
            out = []
            for _ in range(5):
                e.forward(x)
                out.append([e.explain(k, 2).raw for k in ("gradcam", "layercam", "guided-backprop")])
            return out

    want = [maps_of(x) for x in xs]
    got = [None, None]
    errors = []

    def worker(i):
        try:
            got[i] = maps_of(xs[i])
        except Exception as ex:  # reported below
            errors.append(ex)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    for i in range(2):
        for a, b in zip(want[i], got[i]):
            assert all(np.array_equal(p, q) for p, q in zip(a, b))
    m.close()


def test_one_explainer_two_threads_raises():
    """While one thread is inside an Explainer (the GIL released by ctypes), a second gets a clear
    RuntimeError instead of a corrupted explainer."""
    m = gradcam.Model(DEMO)
    x = demo_picture()
    e = gradcam.Explainer(m, input_shape=x.shape, ig_steps=400)
    e.forward(x)
    inside = threading.Event()
    result = {}

    def slow():
        inside.set()
        result["map"] = e.explain("integrated-gradients", 1)

    t = threading.Thread(target=slow)
    t.start()
    inside.wait()
    while not e._busy.locked() and t.is_alive():
        pass
    with pytest.raises(RuntimeError, match="one Explainer per thread"):
        e.explain("gradcam", 1)
    with pytest.raises(RuntimeError):
        e.close()
    t.join()
    assert result["map"].raw.shape == (1, 3, 128, 128)
    e.explain("gradcam", 1)  # usable again
    e.close()
    m.close()


def test_the_gil_is_released_while_the_engine_computes():
    """With the switch interval raised to 100 s, a thread holding the GIL keeps it until it blocks or
    releases it. This thread sleeps 50 ms after starting one that runs 400 Integrated Gradients steps
    (about a second): it can only wake, and run Python, while the other is inside the engine if the
    calls into the engine release the GIL. Then the other must still be inside (its Explainer busy)."""
    m = gradcam.Model(DEMO)
    x = demo_picture()
    e = gradcam.Explainer(m, input_shape=x.shape, ig_steps=400, n_threads=1)
    e.forward(x)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("map", e.explain("integrated-gradients", 1)))
    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        t.start()
        time.sleep(0.05)
        count = sum(1 for _ in range(100000))  # Python run by this thread meanwhile
        inside = e._busy.locked() and t.is_alive()
    finally:
        sys.setswitchinterval(old)
    t.join()
    assert count == 100000 and inside, "the engine call held the GIL: this thread ran only after it"
    assert result["map"].raw.shape == (1, 3, 128, 128)
    e.close()
    m.close()


def test_maps_are_not_copies():
    """A map's arrays are the engine's buffers taken over (gcam_map's are the caller's), not copies:
    each array's base is the buffer's owner, they stay valid after the Explainer and the Model are
    closed, and views of them keep them alive (freed with the last one: test_rss_flat_over_1000_explains)."""
    m = gradcam.Model(DEMO)
    x = demo_picture()
    e = gradcam.Explainer(m, input_shape=x.shape, n_threads=1)
    e.forward(x)
    mp = e.explain("gradcam", 1)
    many = e.explain_many("gradcam", [1, 2])
    want = [a.copy() for a in (mp.raw, mp.upsampled, mp.normalized)]
    for a in (mp.raw, mp.upsampled, mp.normalized, many[0].raw, many[1].normalized):
        assert not a.flags.owndata and type(a.base).__name__ == "_Buffer" and a.flags.writeable
        assert a.flags.c_contiguous and a.flags.aligned and a.dtype == np.float32
    assert len({id(a.base._mem) for a in (mp.raw, mp.upsampled, mp.normalized)}) == 1
    assert mp.raw.base._mem is not many[0].raw.base._mem is not many[1].raw.base._mem
    assert np.array_equal(many[0].raw, mp.raw)
    view = mp.normalized[0, 0, ::2]
    e.close()
    m.close()
    del mp
    gc.collect()
    assert np.array_equal(view, want[2][0, 0, ::2])
    assert np.array_equal(many[0].upsampled, want[1])
