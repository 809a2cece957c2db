"""The command in process (gradcam.Pipeline over libgradcam_tool) against the command itself: the same
files byte for byte, in a folder or in memory, the same records; the picture side (decode, preprocess,
colour maps, PNG) against the command's own pictures and Pillow; bad input as clear exceptions."""
import base64
import json
import os
import shutil
import subprocess
import threading

import numpy as np
import pytest
from PIL import Image

import gradcam
from memcheck import rss_growth

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(SRC, "examples", "demo", "shapes_cnn.onnx")
PICS = os.path.join(SRC, "examples", "demo", "images")
PIC1 = os.path.join(PICS, "demo_1.png")
OPTS = ["-m", "gradcam,gradcam++,guided-backprop,guided-gradcam", "-k", "2", "--npy", "--threads", "1"]


def run_cli(cli, args, out):
    shutil.rmtree(out, ignore_errors=True)
    p = subprocess.run([cli, "explain"] + args + ["-o", out, "-q"], capture_output=True, text=True, timeout=300)
    return p


@pytest.fixture(scope="module")
def cmd_out(cli, work):
    out = os.path.join(work, "cmd")
    p = run_cli(cli, [DEMO, PIC1] + OPTS, out)
    assert p.returncode == 0, p.stderr
    return out


def files_of(d):
    return sorted(f for f in os.listdir(d) if f not in ("results.json", "report.html"))


def test_folder_mode_equals_command(cmd_out, work):
    out = os.path.join(work, "tool")
    shutil.rmtree(out, ignore_errors=True)
    with gradcam.Pipeline(DEMO, OPTS) as p:
        r = p.explain(PIC1, out_dir=out)
        d = p.describe()
    assert not r.failed and r.exit_code == 0 and r.files == {}
    assert files_of(out) == files_of(cmd_out)
    for f in files_of(out):
        with open(os.path.join(out, f), "rb") as a, open(os.path.join(cmd_out, f), "rb") as b:
            assert a.read() == b.read(), f
    doc = json.load(open(os.path.join(cmd_out, "results.json")))
    assert r.record == doc["inputs"][0]
    assert d["model"] == doc["model"] and d["options"] == doc["options"]


def test_memory_mode_equals_command(cmd_out):
    with gradcam.Pipeline(DEMO, OPTS) as p:
        data = open(PIC1, "rb").read()
        r = p.explain(data, name="demo_1", inline_png=True, url_prefix="/v1/results/x/")
    assert sorted(r.files) == files_of(cmd_out)
    for f, b in r.files.items():
        assert b == open(os.path.join(cmd_out, f), "rb").read(), f
    doc = json.load(open(os.path.join(cmd_out, "results.json")))["inputs"][0]
    # the record is the command's plus "png" (base64 of each PNG) and "url" objects
    for m, mc in zip(r.record["maps"], doc["maps"]):
        for k, name in m["url"].items():
            assert name == "/v1/results/x/" + mc[k]
        for k, b64 in m["png"].items():
            assert base64.b64decode(b64) == r.files[mc[k]]
        assert {k: v for k, v in m.items() if k not in ("png", "url")} == mc
    assert r.record["path"] == "demo_1" and doc["path"] == PIC1
    assert r.image(doc["input_image"]).shape == (128, 128, 3)
    np.testing.assert_array_equal(r.array(doc["maps"][0]["npy"]), np.load(os.path.join(cmd_out, doc["maps"][0]["npy"])))


def test_request_options_and_their_limits():
    with gradcam.Pipeline(DEMO, OPTS) as p:
        r = p.explain(PIC1, methods=["hirescam"], top_k=3)
        assert [m["method"] for m in r.record["maps"]] == ["hirescam"] * 3
        r = p.explain(PIC1, options=["-c", "4"])
        assert {m["class"]["index"] for m in r.record["maps"]} == {4}
        r = p.explain(PIC1)  # back to the pipeline's own
        assert len(r.record["maps"]) == 8
        for bad in (["--labels", "x.txt"], ["--preprocess", "imagenet"], ["-o", "x"], ["--mask", "m.png"], ["x.png"]):
            with pytest.raises(gradcam.Error) as e:
                p.explain(PIC1, options=bad)
            assert e.value.status == "arg" and "per input" in e.value.message
        with pytest.raises(gradcam.Error) as e:
            p.explain(PIC1, methods=["nope"])
        assert e.value.status == "arg" and "nope" in e.value.message
        with pytest.raises(gradcam.Error) as e:
            p.explain(PIC1, name="../x")
        assert e.value.status == "arg"


def test_bad_inputs_are_records_not_crashes(work):
    bad = os.path.join(work, "bad.png")
    open(bad, "wb").write(b"\x89PNG\r\n\x1a\nnot really")
    with gradcam.Pipeline(DEMO, OPTS) as p:
        for src in (bad, b"garbage", os.path.join(work, "missing.png"), np.zeros((4, 5), np.float32)):
            r = p.explain(src)
            assert r.failed and r.exit_code == 3 and set(r.record) == {"path", "error"} and r.files == {}
        assert not p.explain(PIC1).failed  # and the next input goes on
        with pytest.raises(gradcam.Error):
            p.explain(b"")
        with pytest.raises(TypeError):
            p.explain(np.zeros((4, 4), np.float64))


def test_open_errors():
    with pytest.raises(gradcam.Error) as e:
        gradcam.Pipeline("/nonexistent/model.onnx")
    assert e.value.status == "io" and "cannot open" in e.value.message
    with pytest.raises(gradcam.Error) as e:
        gradcam.Pipeline(DEMO, ["--size", "bad"])
    assert e.value.status == "arg" and "--size" in e.value.message
    with pytest.raises(gradcam.Error) as e:
        gradcam.Pipeline(DEMO, out="x")
    assert e.value.status == "arg"
    p = gradcam.Pipeline(DEMO)
    p.close()
    p.close()
    with pytest.raises(gradcam.Error) as e:
        p.explain(PIC1)
    assert e.value.status == "state"


def test_shared_model_and_threads(cmd_out):
    """Pipelines sharing one loaded Model, one per thread, give the command's files; one Pipeline used
    by two threads at once refuses."""
    m = gradcam.Model(DEMO)
    pipes = [gradcam.Pipeline(m, OPTS, model_path=DEMO) for _ in range(2)]
    m.close()  # the pipelines keep it alive
    outs = [None, None]

    def work(i):
        outs[i] = [pipes[i].explain(PIC1, name="demo_1").files for _ in range(3)]

    ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    for files in outs[0] + outs[1]:
        for f, b in files.items():
            assert b == open(os.path.join(cmd_out, f), "rb").read(), f
    busy = threading.Event()
    release = threading.Event()
    errors = []

    def slow():
        pipes[0]._lock.acquire()  # as if another thread were inside explain()
        busy.set()
        release.wait(5)
        pipes[0]._lock.release()

    t = threading.Thread(target=slow)
    t.start()
    busy.wait(5)
    try:
        pipes[0].explain(PIC1)
    except RuntimeError as e:
        errors.append(str(e))
    release.set()
    t.join()
    assert errors and "another thread" in errors[0]
    for p in pipes:
        p.close()


def test_picture_side(cmd_out):
    rgb = gradcam.load_image(PIC1)
    ref = np.asarray(Image.open(PIC1).convert("RGB"))
    np.testing.assert_array_equal(rgb, ref)
    np.testing.assert_array_equal(gradcam.load_image(open(PIC1, "rb").read()), ref)
    png = gradcam.to_png(rgb)
    np.testing.assert_array_equal(gradcam.load_image(png), rgb)
    grey = gradcam.to_png(rgb[:, :, 0])
    np.testing.assert_array_equal(gradcam.load_image(grey)[:, :, 1], rgb[:, :, 0])
    with gradcam.Pipeline(DEMO, ["--threads", "1"]) as p:
        x = p.preprocess(PIC1)
        # the demo's preprocessing is "raw": RGB / 255 in (1, 3, H, W); the command's division
        np.testing.assert_array_equal(x, (ref.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None])
        np.testing.assert_array_equal(p.preprocess(rgb), x)
    # the command's heat map and overlay PNGs from the package's own map
    doc = json.load(open(os.path.join(cmd_out, "results.json")))["inputs"][0]
    gm = next(m for m in doc["maps"] if m["method"] == "gradcam")
    m = gradcam.Model(DEMO)
    e = gradcam.Explainer(m, input_shape=x.shape, n_threads=1, input_gradient=True)
    e.forward(x)
    mp = e.explain("gradcam", target=gm["class"]["index"])
    heat = mp.normalized[0, 0]
    np.testing.assert_array_equal(gradcam.colorize(heat), np.asarray(Image.open(os.path.join(cmd_out, gm["heatmap"]))))
    seen = np.asarray(Image.open(os.path.join(cmd_out, doc["input_image"])))
    np.testing.assert_array_equal(gradcam.overlay(seen, heat, alpha=0.5),
                                  np.asarray(Image.open(os.path.join(cmd_out, gm["overlay"]))))
    e.close()
    m.close()
    with pytest.raises(ValueError):
        gradcam.overlay(seen, heat[:10])
    with pytest.raises(gradcam.Error):
        gradcam.colorize(heat, "nope")
    with pytest.raises(gradcam.Error) as err:
        gradcam.load_image(b"nothing")
    assert err.value.status == "format"
    for bad in (5, None, rgb):  # not a path or bytes (an array is already a picture)
        with pytest.raises(TypeError, match="path or the picture's bytes"):
            gradcam.load_image(bad)
    with gradcam.Pipeline(DEMO) as p:
        with pytest.raises(ValueError, match="empty"):
            p.preprocess(np.zeros((0, 0, 3), np.uint8))


def test_one_call_explain(cmd_out):
    rgb = gradcam.load_image(PIC1)
    a = gradcam.explain(DEMO, PIC1, methods=["gradcam", "guided-backprop"], top_k=2, npy=True, threads=1)
    b = gradcam.explain(DEMO, rgb, methods=["gradcam", "guided-backprop"], top_k=2, npy=True, threads=1)
    assert a.record["predictions"] == b.record["predictions"]
    for ma, mb in zip(a.record["maps"], b.record["maps"]):
        np.testing.assert_array_equal(a.array(ma["npy"]), b.array(mb["npy"]))
    # the model input itself (float32) gives the same maps again
    with gradcam.Pipeline(DEMO) as p:
        x = p.preprocess(PIC1)
    c = gradcam.explain(DEMO, x, methods=["gradcam", "guided-backprop"], top_k=2, npy=True, threads=1)
    for ma, mc in zip(a.record["maps"], c.record["maps"]):
        np.testing.assert_array_equal(a.array(ma["npy"]), c.array(mc["npy"]))
    # a loaded gradcam.Model instead of a path: the same record and maps
    with gradcam.Model(DEMO) as m:
        d = gradcam.explain(m, PIC1, methods=["gradcam", "guided-backprop"], top_k=2, npy=True, threads=1)
    assert d.record["predictions"] == a.record["predictions"]
    for ma, md in zip(a.record["maps"], d.record["maps"]):
        np.testing.assert_array_equal(a.array(ma["npy"]), d.array(md["npy"]))
    cmd = {m["npy"]: m for m in json.load(open(os.path.join(cmd_out, "results.json")))["inputs"][0]["maps"]}
    for ma in a.record["maps"]:
        if ma["npy"] in cmd:
            np.testing.assert_array_equal(a.array(ma["npy"]), np.load(os.path.join(cmd_out, ma["npy"])))


def test_list_inputs_names_as_the_command(work):
    d = os.path.join(work, "pics")
    for sub in ("a", "b"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
        shutil.copy(PIC1, os.path.join(d, sub, "same.png"))
    open(os.path.join(d, "notes.txt"), "w").write("x")
    got = gradcam.list_inputs([d, PIC1])
    assert [s for _, s in got] == ["same", "same-2", "demo_1"]
    assert got[0][0].endswith("a/same.png") and got[1][0].endswith("b/same.png")


def test_options_to_argv():
    assert gradcam.options_to_argv(methods=["gradcam", "hirescam"], top_k=2, npy=True, probability=False,
                                   size=(224, 160), targets=["class:3", "element:0,1"], labels=None,
                                   feed={"mask": "/m.npy"}) == [
        "--method", "gradcam,hirescam", "--top-k", "2", "--npy", "--size", "224x160", "--target", "class:3",
        "--target", "element:0,1", "--feed", "mask=/m.npy"]


def test_rss_flat_over_1000_pipeline_explains(work):
    """The command in process, 1000 inputs after a warm-up of 100, files returned in memory (PNGs, .npy,
    the record), one in ten a picture that fails: resident memory grows by less than 2 MB."""
    bad = open(PIC1, "rb").read()[:200]  # cut short
    data = open(PIC1, "rb").read()
    with gradcam.Pipeline(DEMO, ["-m", "gradcam", "-k", "1", "--npy", "--threads", "1"]) as p:
        def loop(n):
            for i in range(n):
                r = p.explain(bad if i % 10 == 3 else data, name="pic")
                assert r.failed == (i % 10 == 3) and (r.failed or len(r.files) == 5)
        grown = rss_growth(loop)
    print("RSS growth over 1000 pipeline explains: %d bytes" % grown)
    assert grown < 2 << 20, "RSS grew by %d bytes over 1000 pipeline explains" % grown
