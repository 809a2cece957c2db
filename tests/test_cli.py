#!/usr/bin/python3
"""End-to-end tests of `gradcam explain` (and the default layer of `gradcam info`).

Usage:
  test_cli.py fixtures WORKDIR          export the test models and write the test images
  test_cli.py run GRADCAM WORKDIR       run every check (makes the fixtures first if missing)

Models (seeded random weights, so no download): torchvision resnet18 exported twice (fixed
3x224x224 with a dynamic batch; dynamic height and width), a tiny fully convolutional
"segmentation" net (region and element targets), a tiny classifier ending in Softmax (score vs
probability) and a two-input net (--feed). The PyTorch truth is recomputed here from the same
weights (saved next to each model): Grad-CAM from the layer's activations and gradients, Guided
Backpropagation with every ReLU replaced by the guided rule, Guided Grad-CAM as their product.

Run with Debian's /usr/bin/python3 (numpy, torch, torchvision, onnx, PIL). Prints one line per
failed check and "N passed, M failed"; exits non-zero on any failure.
"""
import copy
import hashlib
import json
import os
import pty
import select
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import Checks  # noqa: E402
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
    from PIL import Image
except ImportError as e:
    sys.stderr.write("test_cli.py: FAILED: /usr/bin/python3 lacks numpy/torch/torchvision/PIL (%s)\n" % e)
    sys.exit(1)

TOL = 1e-4  # max|ours - torch| <= TOL * max|torch|
FIXTURE_VERSION = "5"

# ---- fixtures ------------------------------------------------------------------------------------


class Seg(nn.Module):
    """(N, 3, H, W) -> (N, 4, H/2, W/2) class scores per pixel."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.r2 = nn.ReLU()
        self.c3 = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.c3(self.r2(self.c2(self.r1(self.c1(x)))))


class SmallCNN(nn.Module):
    """conv-relu-conv-relu -> global average pooling -> linear: every method applies (CAM too)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.r2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.r2(self.c2(self.r1(self.c1(x))))), 1))


class NHWC(nn.Module):
    """Takes (N, H, W, C) like a TensorFlow export."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.permute(0, 3, 1, 2))


class Gray(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.r1 = nn.ReLU()
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(self.r1(self.c1(x)).mean((2, 3)))


class TinySoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.r1 = nn.ReLU()
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        a = self.r1(self.c1(x))
        return torch.softmax(self.fc(a.mean((2, 3))), dim=1)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.r1 = nn.ReLU()
        self.fc = nn.Linear(6, 3)

    def forward(self, x, bias):
        a = self.r1(self.c1(x))
        return self.fc(a.mean((2, 3))) + bias


def export(model, args, path, names, dyn):
    torch.onnx.export(model, args, path, input_names=names, output_names=["out"], opset_version=13,
                      dynamic_axes=dyn, do_constant_folding=True)


def synthetic_image(w, h, seed, mode="RGB"):
    """Smooth colour gradients and a few shapes: compresses like a photo, looks like something."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, d = rng.uniform(-1, 1, 3)
        img[..., c] = 128 + 90 * np.sin(a * xx / w * 6 + b * yy / h * 6 + d * 3)
    for _ in range(3):
        cx, cy, r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h, rng.uniform(0.08, 0.25) * min(w, h)
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        img[mask] = rng.uniform(0, 255, 3)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if mode == "L":
        im = im.convert("L")
    elif mode == "RGBA":
        im = im.convert("RGBA")
        px = np.array(im)
        px[: h // 3, :, 3] = 60
        im = Image.fromarray(px)
    return im


def make_fixtures(work):
    fx = os.path.join(work, "fixtures")
    stamp = os.path.join(fx, "stamp")
    if os.path.exists(stamp) and open(stamp).read() == FIXTURE_VERSION:
        return fx
    shutil.rmtree(fx, ignore_errors=True)
    os.makedirs(fx)
    torch.manual_seed(1234)
    r18 = torchvision.models.resnet18(weights=None).eval()
    torch.save(r18.state_dict(), os.path.join(fx, "r18.pt"))
    x = torch.randn(1, 3, 224, 224)
    export(r18, x, os.path.join(fx, "r18.onnx"), ["input"], {"input": {0: "batch"}, "out": {0: "batch"}})
    export(r18, x, os.path.join(fx, "r18dyn.onnx"), ["input"],
           {"input": {0: "batch", 2: "height", 3: "width"}, "out": {0: "batch"}})
    np.save(os.path.join(fx, "x.npy"), x.numpy()[0])  # without the batch axis
    torch.manual_seed(7)
    seg = Seg().eval()
    torch.save(seg.state_dict(), os.path.join(fx, "seg.pt"))
    export(seg, torch.randn(1, 3, 32, 32), os.path.join(fx, "seg.onnx"), ["input"], None)
    np.save(os.path.join(fx, "seg_x.npy"), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)).numpy())
    torch.manual_seed(10)
    small = SmallCNN().eval()
    export(small, torch.randn(1, 3, 32, 32), os.path.join(fx, "small.onnx"), ["input"], None)
    export(NHWC(small).eval(), torch.randn(1, 32, 32, 3), os.path.join(fx, "nhwc.onnx"), ["input"], None)
    torch.manual_seed(11)
    export(Gray().eval(), torch.randn(1, 1, 28, 28), os.path.join(fx, "gray.onnx"), ["input"], None)
    with open(os.path.join(fx, "labels5.txt"), "w") as f:
        f.write("circle\nsquare\ntriangle\r\nstar\nhexagon\n\n")
    torch.manual_seed(8)
    tiny = TinySoftmax().eval()
    torch.save(tiny.state_dict(), os.path.join(fx, "tiny.pt"))
    export(tiny, torch.randn(1, 3, 16, 16), os.path.join(fx, "tiny.onnx"), ["input"], None)
    np.save(os.path.join(fx, "tiny_x.npy"), torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(4)).numpy())
    torch.manual_seed(9)
    two = TwoInputs().eval()
    export(two, (torch.randn(1, 3, 16, 16), torch.zeros(1, 3)), os.path.join(fx, "two.onnx"), ["input", "bias"], None)
    np.save(os.path.join(fx, "bias.npy"), np.array([[0.0, 5.0, -5.0]], np.float32))
    # images
    synthetic_image(320, 240, 1).save(os.path.join(fx, "photo.png"))
    synthetic_image(48, 40, 2).save(os.path.join(fx, "small.png"))
    batch = os.path.join(fx, "batch")
    os.makedirs(os.path.join(batch, "sub"))
    synthetic_image(80, 60, 3).save(os.path.join(batch, "a.png"))
    synthetic_image(60, 90, 4).save(os.path.join(batch, "b.JPG"), quality=90)
    synthetic_image(70, 70, 5, "L").save(os.path.join(batch, "sub", "c.png"))
    synthetic_image(50, 50, 6, "RGBA").save(os.path.join(batch, "sub", "d.png"))
    with open(os.path.join(batch, "corrupt.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(200)))
    with open(os.path.join(batch, "notes.txt"), "w") as f:
        f.write("not an image\n")
    synthetic_image(20, 20, 7).save(os.path.join(batch, ".hidden.png"))
    with open(stamp, "w") as f:
        f.write(FIXTURE_VERSION)
    return fx


# ---- the PyTorch truth ------------------------------------------------------------------------------


class GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(g.dtype) * (g > 0).to(g.dtype)


class GuidedReLUModule(nn.Module):
    def forward(self, x):
        return GuidedReLU.apply(x)


def guided_copy(model):
    m = copy.deepcopy(model)
    for name, mod in list(m.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(mod, cname, GuidedReLUModule())
    return m


def torch_gradcam(model, layer, x, score_fn):
    """Grad-CAM raw map (h, w) at `layer` (a module whose output is A)."""
    store = {}

    def hook(_m, _i, o):
        o.retain_grad()
        store["A"] = o

    h = layer.register_forward_hook(hook)
    y = model(x)
    h.remove()
    score_fn(y).backward()
    A, G = store["A"].detach()[0].double(), store["A"].grad[0].double()
    alpha = G.mean((1, 2))
    return F.relu((alpha[:, None, None] * A).sum(0)).numpy()


def torch_guided(model, x, score_fn):
    gm = guided_copy(model)
    xi = x.clone().requires_grad_(True)
    score_fn(gm(xi)).backward()
    return xi.grad[0].double().numpy()


def upsample(raw, H, W):
    t = torch.from_numpy(np.ascontiguousarray(raw, np.float64))[None, None]
    return F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)[0, 0].numpy()


def localize(m, frac=0.15):
    """The paper's box: threshold at frac * max, largest 8-connected region (first in row-major on ties)."""
    h, w = m.shape
    thr = frac * m.max()
    seen = np.zeros((h, w), bool)
    best = None
    for sy in range(h):
        for sx in range(w):
            if seen[sy, sx] or not m[sy, sx] >= thr:
                continue
            stack, seen[sy, sx] = [(sy, sx)], True
            area, box = 0, [sx, sy, sx, sy]
            while stack:
                y, x = stack.pop()
                area += 1
                box = [min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y)]
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < h and 0 <= xx < w and not seen[yy, xx] and m[yy, xx] >= thr:
                            seen[yy, xx] = True
                            stack.append((yy, xx))
            if best is None or area > best[0]:
                best = (area, box)
    return best


# ---- harness -----------------------------------------------------------------------------------------

check = Checks('FAIL: ')


def run(args, **kw):
    """Runs gradcam; explain gets --threads 1 unless told (OpenMP threads spinning on a busy
    machine cost far more CPU than they save)."""
    t = time.time()
    if args and args[0] == "explain" and not any(a.startswith("--threads") for a in args) and "--help" not in args:
        args = args + ["--threads", "1"]
    p = subprocess.run([GRADCAM] + args, capture_output=True, text=True, errors="replace", **kw)
    print("  $ gradcam %s  -> %d (%.1f s)" % (" ".join(args)[:160], p.returncode, time.time() - t), flush=True)
    return p


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def png_size(path):
    with Image.open(path) as im:
        return im.size, im.mode


def no_temp_files(d):
    return not [f for f in os.listdir(d) if ".tmp-" in f]


def load_results(out):
    with open(os.path.join(out, "results.json"), "rb") as f:
        raw = f.read()
    raw.decode("utf-8")  # strictly valid UTF-8
    return json.loads(raw)


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


# ---- the checks ----------------------------------------------------------------------------------------


def test_usage(fx, work):
    r18 = os.path.join(fx, "r18.onnx")
    img = os.path.join(fx, "photo.png")
    p = run(["explain"])
    check(p.returncode == 2 and "no MODEL" in p.stderr, "no arguments: exit 2 (%d) %r" % (p.returncode, p.stderr))
    p = run(["explain", "--help"])
    check(p.returncode == 0 and "Examples:" in p.stdout and "gradcam explain " in p.stdout and "--target" in p.stdout,
          "--help shows usage and examples")
    p = run(["--help"])
    check(p.returncode == 0 and "explain MODEL" in p.stdout, "main help names explain")
    cases = [
        (["explain", r18], "no INPUT"),
        (["explain", r18, img, "--bogus"], "unknown option"),
        (["explain", r18, img, "-m", "gradcam,nosuch"], "unknown method 'nosuch'"),
        (["explain", r18, img, "--size", "12"], "--size"),
        (["explain", r18, img, "--alpha", "2"], "--alpha"),
        (["explain", r18, img, "-k", "0"], "not a positive number"),
        (["explain", r18, img, "-k", "65"], "at most 64"),
        (["explain", r18, img, "--target", "region:1:2,3"], "--target"),
        (["explain", r18, img, "--target", "class:1", "-c", "2"], "either --class or --target"),
        (["explain", r18, img, "--preprocess", "fancy"], "--preprocess"),
        (["explain", r18, img, "--resize-mode", "zoom"], "--resize-mode"),
        (["explain", r18, img, "--colormap", "rainbow"], "--colormap"),
        (["explain", r18, img, "--mean", "1,2"], "--mean"),
        (["explain", r18, img, "--max-memory", "lots"], "--max-memory"),
        (["explain", r18, img, "--layer", "no/such/layer"], "no tensor or node"),
        (["explain", r18, img, "--output", "nosuch"], "--output"),
        (["explain", r18, img, "--size", "100x100"], "fixed at 224x224"),
        (["explain", r18, img, "-c", "5000", "-o", os.path.join(work, "u1")], "out of range"),
        (["explain", r18, img, "-c", "no such animal", "-o", os.path.join(work, "u2")], "no label"),
        (["explain", r18, img, "--target", "region:1:0,0,2,2", "-o", os.path.join(work, "u3")], "spatial output"),
        (["explain", r18, img, "--threads=0"], "--threads"),
        (["explain", r18, img, "--npy=yes"], "takes no value"),
    ]
    for args, text in cases:
        p = run(args)
        check(p.returncode == 2 and text in p.stderr, "%s: exit 2 with %r (got %d: %r)" % (args[2:], text, p.returncode, p.stderr))


def test_bad_model_and_input(fx, work):
    bad = os.path.join(work, "garbage.onnx")
    with open(bad, "wb") as f:
        f.write(b"this is not a model at all" * 10)
    img = os.path.join(fx, "photo.png")
    for model in (bad, os.path.join(work, "missing.onnx")):
        p = run(["explain", model, img, "-o", os.path.join(work, "bm")])
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 3 and len(lines) == 1 and model in lines[0],
              "bad model %s: exit 3, one line naming it (got %d: %r)" % (model, p.returncode, p.stderr))
    r18 = os.path.join(fx, "r18.onnx")
    out = os.path.join(work, "bi")
    for inp, text in ((os.path.join(work, "nosuch.png"), "no such file"),
                      (os.path.join(fx, "batch", "corrupt.jpg"), "JPEG"),
                      (os.path.join(fx, "seg_x.npy"), "does not fit"),
                      (os.path.join(work, "ints.npy"), "float32")):
        if inp.endswith("ints.npy"):
            np.save(inp, np.zeros((3, 224, 224), np.int64))
        p = run(["explain", r18, inp, "-o", out])
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 3 and len(lines) == 1 and inp in lines[0] and text in lines[0],
              "bad input %s: exit 3, one line with the file and %r (got %d: %r)" % (inp, text, p.returncode, p.stderr))
    p = run(["explain", r18, os.path.join(fx, "x.npy"), "-o", out, "--max-memory", "64K", "-q"])
    check(p.returncode == 3 and "x.npy" in p.stderr or "memory" in p.stderr.lower(),
          "--max-memory 64K: exit 3 with a reason (%d: %r)" % (p.returncode, p.stderr))


def test_parity(fx, work):
    """results.json and the raw maps against PyTorch on the same weights and the same input."""
    r18 = torchvision.models.resnet18(weights=None)
    r18.load_state_dict(torch.load(os.path.join(fx, "r18.pt")))
    r18.eval()
    x = torch.from_numpy(np.load(os.path.join(fx, "x.npy")))[None]
    with torch.no_grad():
        logits = r18(x)[0].double().numpy()
    prob = np.exp(logits - logits.max())
    prob /= prob.sum()
    top = list(np.argsort(-logits, kind="stable")[:5])

    outs = []
    for k in range(2):
        out = os.path.join(work, "parity%d" % k)
        shutil.rmtree(out, ignore_errors=True)
        p = run(["explain", os.path.join(fx, "r18.onnx"), os.path.join(fx, "x.npy"), "-k", "2", "--npy", "-o", out, "-q"])
        check(p.returncode == 0 and p.stdout == "" and p.stderr == "", "parity run %d: exit 0, quiet (%d %r)" % (k, p.returncode, p.stderr))
        outs.append(out)
    out = outs[0]
    res = load_results(out)
    check(set(res) >= {"gradcam_version", "model", "options", "inputs", "failures"}, "results.json top-level keys")
    check(res["model"]["layers"] == ["/layer4/layer4.1/relu_1/Relu_output_0"], "default layer %r" % res["model"]["layers"])
    check(res["model"]["num_classes"] == 1000 and res["model"]["input"]["shape"] == ["batch", 3, 224, 224],
          "model facts %r" % res["model"])
    check(res["failures"] == [] and len(res["inputs"]) == 1, "one input, no failure")
    inp = res["inputs"][0]
    check(inp["path"].endswith("x.npy") and inp["kind"] == "tensor" and inp["input_shape"] == [1, 3, 224, 224],
          "input entry %r" % {k: inp[k] for k in ("path", "kind", "input_shape")})
    preds = inp["predictions"]
    check([p_["index"] for p_ in preds] == [int(t) for t in top], "top-5 indices %r vs torch %r" % ([p_["index"] for p_ in preds], top))
    check(all(abs(p_["score"] - logits[p_["index"]]) <= 1e-4 * abs(logits).max() for p_ in preds), "top-5 scores match torch")
    check(all(abs(p_["probability"] - prob[p_["index"]]) <= 1e-5 + 1e-4 * prob[p_["index"]] for p_ in preds),
          "probabilities are the softmax")
    import_labels = [p_["label"] for p_ in preds]
    check(all(isinstance(l, str) and l for l in import_labels), "ImageNet labels on a 1000-class output")

    maps = inp["maps"]
    check([(m["method"], m["class"]["index"]) for m in maps] ==
          [(meth, int(c)) for c in top[:2] for meth in ("gradcam", "guided-backprop", "guided-gradcam")],
          "maps: 3 default methods x top-2 classes, in order")
    for m in maps:
        cls = m["class"]["index"]
        check(m["class"]["label"] == preds[[p_["index"] for p_ in preds].index(cls)]["label"], "map class label")
        for key in ("heatmap", "overlay", "image", "npy", "photo"):
            if key in m:
                check(os.path.isfile(os.path.join(out, m[key])), "%s file %s exists" % (key, m[key]))
        ours = np.load(os.path.join(out, m["npy"]))
        again = np.load(os.path.join(outs[1], m["npy"]))
        check(ours.dtype == np.float32 and np.array_equal(ours, again), "%s: raw map identical in a second run" % m["npy"])
        score = lambda y, c=cls: y[0, c]
        cam = torch_gradcam(r18, r18.layer4, x, score)
        if m["method"] == "gradcam":
            check(m["layer"] == "/layer4/layer4.1/relu_1/Relu_output_0" and m["raw_shape"] == [7, 7], "gradcam layer/raw_shape")
            check(ours.shape == (7, 7), "gradcam npy shape %r" % (ours.shape,))
            e = rel_err(ours, cam)
            check(e <= TOL, "gradcam class %d vs PyTorch: rel err %.3g" % (cls, e))
            check(png_size(os.path.join(out, m["heatmap"])) == ((224, 224), "RGB"), "heatmap PNG 224x224 RGB")
            check(png_size(os.path.join(out, m["overlay"])) == ((224, 224), "RGB"), "overlay PNG 224x224 RGB")
            check("photo" not in m and "box_photo" not in m, "no photo for a tensor input")
            box = m["box"]
            area, pb = localize(upsample(ours, 224, 224))
            check(box is not None and all(abs(a - b) <= 1 for a, b in zip([box["x0"], box["y0"], box["x1"], box["y1"]], pb))
                  and abs(box["area"] - area) <= 0.02 * area + 8,
                  "box %r vs the paper's rule on the map %r (area %d)" % (box, pb, area))
        else:
            gbp = torch_guided(r18, x, score)
            check(m["image"] and png_size(os.path.join(out, m["image"])) == ((224, 224), "RGB"), "%s PNG 224x224" % m["method"])
            check(ours.shape == (3, 224, 224) and m["raw_shape"] == [3, 224, 224], "%s raw shape" % m["method"])
            if m["method"] == "guided-backprop":
                check(m["layer"] is None, "guided-backprop layer is null")
                e = rel_err(ours, gbp)
            else:
                check(m["layer"] is None and m["gradcam_layer"] == "/layer4/layer4.1/relu_1/Relu_output_0",
                      "guided-gradcam: layer null, gradcam_layer names its Grad-CAM layer")
                e = rel_err(ours, gbp * upsample(cam, 224, 224)[None])
            check(e <= TOL, "%s class %d vs PyTorch: rel err %.3g" % (m["method"], cls, e))
    check(png_size(os.path.join(out, inp["input_image"])) == ((224, 224), "RGB"), "input PNG 224x224")
    with open(os.path.join(outs[0], "results.json"), "rb") as a, open(os.path.join(outs[1], "results.json"), "rb") as b:
        check(a.read().replace(b"parity0", b"parity1") == b.read(), "results.json identical in a second run")
    check(no_temp_files(out), "no temporary files left")
    # classes by name and index, on two threads
    out2 = os.path.join(work, "byname")
    p = run(["explain", os.path.join(fx, "r18.onnx"), os.path.join(fx, "x.npy"), "-c", "tabby,7", "-m", "gradcam",
             "--npy", "-o", out2, "--threads", "2", "-q"])
    res2 = load_results(out2) if p.returncode == 0 else {"inputs": [{"maps": []}]}
    got = [(m["class"]["index"], m["class"]["label"]) for m in res2["inputs"][0]["maps"]]
    check(got == [(281, "tabby"), (7, "cock")], "-c tabby,7 -> %r" % got)
    for m in res2["inputs"][0]["maps"]:
        cam = torch_gradcam(r18, r18.layer4, x, lambda y, c=m["class"]["index"]: y[0, c])
        check(rel_err(np.load(os.path.join(out2, m["npy"])), cam) <= TOL, "gradcam class %d (--threads 2) vs PyTorch" % m["class"]["index"])


def test_image(fx, work):
    out = os.path.join(work, "image")
    shutil.rmtree(out, ignore_errors=True)
    photo = os.path.join(fx, "photo.png")
    p = run(["explain", os.path.join(fx, "r18.onnx"), photo, "-o", out, "-m", "gradcam,gradcam++,gradient"])
    check(p.returncode == 0, "image run exit 0 (%d %r)" % (p.returncode, p.stderr))
    check("results.json" in p.stdout and "report.html" in p.stdout, "summary names the outputs: %r" % p.stdout)
    res = load_results(out)
    inp = res["inputs"][0]
    check(inp["kind"] == "image" and inp["width"] == 320 and inp["height"] == 240 and inp["input_shape"] == [1, 3, 224, 224],
          "image entry %r" % {k: inp.get(k) for k in ("kind", "width", "height", "input_shape")})
    check(res["options"]["preprocess"] == "imagenet", "imagenet preprocessing by default for 3x224x224")
    for m in inp["maps"]:
        if m["method"] in ("gradcam", "gradcam++"):
            check(png_size(os.path.join(out, m["photo"])) == ((320, 240), "RGB"), "%s photo overlay at the photo's size" % m["method"])
            if m["box"]:
                bp = m["box_photo"]
                check(0 <= bp["x0"] <= bp["x1"] < 320 and 0 <= bp["y0"] <= bp["y1"] < 240, "box_photo inside the photo %r" % bp)
        else:
            check(m["layer"] is None and "image" in m, "gradient: pixel-space entry")
    # colour maps and alpha: gray heat is grey; alpha 0 leaves the model's view as is
    out2 = os.path.join(work, "image_gray")
    p = run(["explain", os.path.join(fx, "r18.onnx"), photo, "-o", out2, "-m", "gradcam", "--colormap", "gray",
             "--alpha", "0", "-q"])
    if check(p.returncode == 0, "gray/alpha 0 run"):
        m = load_results(out2)["inputs"][0]["maps"][0]
        heat = np.array(Image.open(os.path.join(out2, m["heatmap"])))
        check((heat[..., 0] == heat[..., 1]).all() and (heat[..., 1] == heat[..., 2]).all(), "gray colour map gives grey")
        seen = np.array(Image.open(os.path.join(out2, load_results(out2)["inputs"][0]["input_image"])))
        ov = np.array(Image.open(os.path.join(out2, m["overlay"])))
        check(np.abs(seen.astype(int) - ov.astype(int)).max() <= 1, "alpha 0: overlay equals the model's view")


def test_batch(fx, work):
    out = os.path.join(work, "batch_out")
    shutil.rmtree(out, ignore_errors=True)
    batch = os.path.join(fx, "batch")
    before = {f: md5(os.path.join(dp, f)) for dp, _, fs in os.walk(batch) for f in fs}
    p = run(["explain", os.path.join(fx, "r18dyn.onnx"), batch, "--size", "64x64", "-o", out, "-k", "2"])
    check(p.returncode == 3, "batch with a corrupt file: exit 3 (%d)" % p.returncode)
    err = p.stderr
    check("1 of 5 inputs failed" in err and "corrupt.jpg" in err.split("inputs failed")[-1],
          "failures listed at the end: %r" % err[-300:])
    check("[1/5]" in err and "[5/5]" in err, "plain progress lines when stderr is not a terminal")
    res = load_results(out)
    paths = [os.path.relpath(i["path"], batch) for i in res["inputs"]]
    check(paths == ["a.png", "b.JPG", "sub/c.png", "sub/d.png"], "processed in sorted order, others kept: %r" % paths)
    check([os.path.relpath(f["path"], batch) for f in res["failures"]] == ["corrupt.jpg"] and
          "corrupt.jpg" in res["failures"][0]["error"], "failures in results.json: %r" % res["failures"])
    for i in res["inputs"]:
        check(i["input_shape"] == [1, 3, 64, 64] and len(i["maps"]) == 6, "%s: 64x64 input, 6 maps" % i["path"])
        check(png_size(os.path.join(out, i["input_image"]))[0] == (64, 64), "%s: model view 64x64" % i["path"])
        for m in i["maps"]:
            if m["method"] == "gradcam":
                check(png_size(os.path.join(out, m["photo"]))[0] == (i["width"], i["height"]), "photo overlay size")
    check(res["options"]["preprocess"] == "raw", "raw preprocessing by default for a dynamic model")
    check(os.path.isfile(os.path.join(out, "report.html")) and no_temp_files(out), "report written, no temporary files")
    after = {f: md5(os.path.join(dp, f)) for dp, _, fs in os.walk(batch) for f in fs}
    check(before == after, "inputs untouched")
    # the image's own size on a dynamic model
    out2 = os.path.join(work, "own_size")
    p = run(["explain", os.path.join(fx, "r18dyn.onnx"), os.path.join(fx, "small.png"), "-m", "gradcam", "-o", out2, "-q"])
    if check(p.returncode == 0, "dynamic model, own size: exit 0 (%r)" % p.stderr):
        i = load_results(out2)["inputs"][0]
        check(i["input_shape"] == [1, 3, 40, 48], "own size: input shape %r" % i["input_shape"])
        check(png_size(os.path.join(out2, i["maps"][0]["heatmap"]))[0] == (48, 40), "own size: heat map 48x40")


def test_progress(fx, work):
    """A progress bar on a terminal; plain lines otherwise; nothing with -q."""
    imgs = os.path.join(work, "two")
    shutil.rmtree(imgs, ignore_errors=True)
    os.makedirs(imgs)
    for k in range(2):
        synthetic_image(40, 40, 20 + k).save(os.path.join(imgs, "i%d.png" % k))
    args = [GRADCAM, "explain", os.path.join(fx, "r18dyn.onnx"), imgs, "-m", "gradcam", "-o", os.path.join(work, "two_out"),
            "--threads", "1"]
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    data = b""
    while True:
        r, _, _ = select.select([master], [], [], 120)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    rc = p.wait()
    os.close(master)
    text = data.decode("utf-8", "replace")
    check(rc == 0 and "img/s" in text and "left" in text and "\r" in text and "[1/2]" not in text,
          "progress bar on a terminal (%d): %r" % (rc, text[-300:]))
    p = run(args[1:] + ["-q"])
    check(p.returncode == 0 and p.stdout == "" and p.stderr == "", "-q: silent (%r %r)" % (p.stdout, p.stderr))


def test_clobber(fx, work):
    d = os.path.join(work, "clob")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    synthetic_image(40, 40, 30).save(os.path.join(d, "cat.png"))
    synthetic_image(40, 40, 31).save(os.path.join(d, "cat_c1_gradcam_heatmap.png"))
    synthetic_image(40, 40, 32).save(os.path.join(d, "cat_2.png"))
    before = {f: md5(os.path.join(d, f)) for f in os.listdir(d)}
    model = os.path.join(fx, "r18dyn.onnx")
    p = run(["explain", model, d, "-o", d, "-m", "gradcam"])
    check(p.returncode == 2 and "--out" in p.stderr and "cat_c1_gradcam_heatmap.png" in p.stderr,
          "an --out where an output could overwrite an input is refused (%d %r)" % (p.returncode, p.stderr))
    check(before == {f: md5(os.path.join(d, f)) for f in os.listdir(d)}, "nothing written after the refusal")
    os.remove(os.path.join(d, "cat_c1_gradcam_heatmap.png"))
    p = run(["explain", model, os.path.join(d, "cat.png"), os.path.join(d, "cat_2.png"), "-o", d, "-m", "gradcam", "-q"])
    check(p.returncode == 0, "--out next to inputs with no name clash is fine (%d %r)" % (p.returncode, p.stderr))
    check(md5(os.path.join(d, "cat.png")) == before["cat.png"] and md5(os.path.join(d, "cat_2.png")) == before["cat_2.png"],
          "inputs unchanged")
    # the walk skips the output folder inside the input folder
    d2 = os.path.join(work, "clob2")
    shutil.rmtree(d2, ignore_errors=True)
    os.makedirs(d2)
    for k in range(2):
        synthetic_image(40, 40, 33 + k).save(os.path.join(d2, "p%d.png" % k))
    p = run(["explain", model, d2, "-o", os.path.join(d2, "out"), "-m", "gradcam", "-q"])
    p2 = run(["explain", model, d2, "-o", os.path.join(d2, "out"), "-m", "gradcam", "-q"])
    if check(p.returncode == 0 and p2.returncode == 0, "out inside the input folder"):
        check(len(load_results(os.path.join(d2, "out"))["inputs"]) == 2, "the output folder is not walked as input")


def test_names_and_json(fx, work):
    d = os.path.join(work, "names")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    weird = "quote\"back\\slash<b>&amp;'é\tτ.png"
    synthetic_image(30, 30, 40).save(os.path.join(d, weird))
    bad_utf8 = os.path.join(d.encode(), b"bad\xff\xfename.png")
    synthetic_image(30, 30, 41).save(bad_utf8.decode("utf-8", "surrogateescape"))
    same1 = os.path.join(d, "x", "same.png")
    same2 = os.path.join(d, "y", "same.png")
    for s in (same1, same2):
        os.makedirs(os.path.dirname(s))
        synthetic_image(30, 30, 42).save(s)
    out = os.path.join(work, "names_out")
    shutil.rmtree(out, ignore_errors=True)
    p = run(["explain", os.path.join(fx, "r18dyn.onnx"), d, "-m", "gradcam", "-o", out, "-q"])
    check(p.returncode == 0, "odd file names: exit 0 (%r)" % p.stderr)
    res = load_results(out)
    paths = [i["path"] for i in res["inputs"]]
    check(os.path.join(d, weird) in paths, "JSON escapes quotes, backslashes, tabs; keeps UTF-8: %r" % paths)
    check(any("bad\ufffd\ufffdname.png" in q for q in paths), "invalid UTF-8 becomes U+FFFD")
    stems = sorted(os.path.basename(i["input_image"]) for i in res["inputs"])
    check("same_input.png" in stems and "same-2_input.png" in stems, "equal file names get distinct stems: %r" % stems)
    check(any(s.startswith("bad__name") for s in stems), "invalid bytes in names become '_' in outputs: %r" % stems)
    for i in res["inputs"]:
        check(os.path.isfile(os.path.join(out, i["input_image"])), "output for %r exists" % i["path"])
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    check("<b>&amp;amp;" not in html and "&lt;b&gt;&amp;amp;" in html, "HTML escapes the file name")


def test_targets(fx, work):
    seg = Seg()
    seg.load_state_dict(torch.load(os.path.join(fx, "seg.pt")))
    seg.eval()
    x = torch.from_numpy(np.load(os.path.join(fx, "seg_x.npy")))
    out = os.path.join(work, "targets")
    shutil.rmtree(out, ignore_errors=True)
    p = run(["explain", os.path.join(fx, "seg.onnx"), os.path.join(fx, "seg_x.npy"), "--target", "region:2:3,4,9,12",
             "--target", "element:1,5,6", "--target", "class:3", "-m", "gradcam,guided-backprop", "--npy", "-o", out, "-q"])
    if not check(p.returncode == 0, "targets run: exit 0 (%d %r)" % (p.returncode, p.stderr)):
        return
    res = load_results(out)
    maps = res["inputs"][0]["maps"]
    check(res["model"]["layers"] == [res["inputs"][0]["maps"][0]["layer"]], "layer named")
    truths = [lambda y: y[0, 2, 3:9, 4:12].sum(), lambda y: y[0, 1, 5, 6], lambda y: y[0, 3].sum()]
    kinds = [("region", 2), ("element", 1), (None, 3)]
    for k, ((kind, cls), fn) in enumerate(zip(kinds, truths)):
        for m in maps[2 * k: 2 * k + 2]:
            check(m["class"]["index"] == cls and (m.get("target", {}).get("kind") == kind), "target %d entry %r" % (k, m.get("target")))
            ours = np.load(os.path.join(out, m["npy"]))
            if m["method"] == "gradcam":
                ref = torch_gradcam(seg, seg.r2, x, fn)
            else:
                ref = torch_guided(seg, x, fn)
            e = rel_err(ours, ref)
            check(e <= TOL, "%s %s target vs PyTorch: rel err %.3g" % (m["method"], kind or "class", e))
    check(maps[0]["target"] == {"kind": "region", "y0": 3, "x0": 4, "y1": 9, "x1": 12}, "region in JSON %r" % maps[0]["target"])
    check(maps[2]["target"] == {"kind": "element", "index": [0, 1, 5, 6]}, "element in JSON %r" % maps[2]["target"])
    p = run(["explain", os.path.join(fx, "seg.onnx"), os.path.join(fx, "seg_x.npy"), "--target", "region:2:3,4,99,12",
             "-o", out])
    check(p.returncode == 2 and "do not fit" in p.stderr, "region outside the output: exit 2 (%r)" % p.stderr)


def test_probability_and_feeds(fx, work):
    out = os.path.join(work, "prob")
    for flag, name in (([], "score"), (["--probability"], "probability")):
        shutil.rmtree(out, ignore_errors=True)
        p = run(["explain", os.path.join(fx, "tiny.onnx"), os.path.join(fx, "tiny_x.npy"), "-k", "5", "-m", "gradcam",
                 "--npy", "-o", out, "-q"] + flag)
        if not check(p.returncode == 0, "tiny softmax %s: exit 0 (%r)" % (name, p.stderr)):
            continue
        res = load_results(out)
        preds = res["inputs"][0]["predictions"]
        check(abs(sum(q["probability"] for q in preds) - 1) < 1e-5, "%s: probabilities of all 5 classes sum to 1" % name)
        check(res["options"]["explained"] == name, "explained = %s" % name)
        if name == "score":
            check(res["model"]["score"] != res["model"]["output"], "score is the tensor before Softmax")
        else:
            check(res["model"]["score"] == res["model"]["output"], "--probability explains the Softmax output")
            check(all(abs(q["score"] - q["probability"]) < 1e-6 for q in preds), "score = probability after Softmax")
    two = os.path.join(fx, "two.onnx")
    out2 = os.path.join(work, "feeds")
    p = run(["explain", two, os.path.join(fx, "tiny_x.npy"), "--feed", "bias=" + os.path.join(fx, "bias.npy"), "-m", "gradcam",
             "-o", out2, "-q"])
    if check(p.returncode == 0, "--feed: exit 0 (%r)" % p.stderr):
        check(load_results(out2)["inputs"][0]["predictions"][0]["index"] == 1, "--feed bias moves the top class to 1")
    p = run(["explain", two, os.path.join(fx, "tiny_x.npy"), "--feed", "nosuch=" + os.path.join(fx, "bias.npy"), "-o", out2])
    check(p.returncode == 3 and "nosuch" in p.stderr, "--feed of an unknown input: exit 3 (%r)" % p.stderr)


def test_all_methods(fx, work):
    out = os.path.join(work, "all")
    shutil.rmtree(out, ignore_errors=True)
    p = run(["explain", os.path.join(fx, "small.onnx"), os.path.join(fx, "photo.png"), "-m", "all", "-k", "2",
             "--npy", "-o", out, "-q", "--seed", "5"])
    if not check(p.returncode == 0, "-m all: exit 0 (%r)" % p.stderr):
        return
    res = load_results(out)
    check(res["options"]["preprocess"] == "raw" and res["inputs"][0]["input_shape"] == [1, 3, 32, 32],
          "raw preprocessing, stretched to the model's 32x32")
    maps = res["inputs"][0]["maps"]
    names = [m["method"] for m in maps]
    check(len(names) == 36 and len(set(names)) == 18, "-m all gives all 18 methods for 2 classes: %r" % names)
    for m in maps:
        a = np.load(os.path.join(out, m["npy"]))
        check(np.isfinite(a).all() and list(a.shape) == m["raw_shape"], "%s: finite raw map of shape %r" % (m["method"], m["raw_shape"]))
        check(("box" in m) == (m["layer"] is not None), "%s: box (and a layer) only for CAM maps" % m["method"])
        for key in ("heatmap", "overlay", "photo", "image"):
            if key in m:
                size = png_size(os.path.join(out, m[key]))[0]
                check(size == ((320, 240) if key == "photo" else (32, 32)), "%s %s PNG size %r" % (m["method"], key, size))
    # the same seed gives the same SmoothGrad map; another seed another one
    sg = [m for m in maps if m["method"] == "smoothgrad"][0]
    out2 = os.path.join(work, "all_seed")
    p = run(["explain", os.path.join(fx, "small.onnx"), os.path.join(fx, "photo.png"), "-m", "smoothgrad", "-k", "2",
             "--npy", "-o", out2, "-q", "--seed", "6"])
    if check(p.returncode == 0, "--seed 6 run"):
        check(not np.array_equal(np.load(os.path.join(out, sg["npy"])), np.load(os.path.join(out2, sg["npy"]))),
              "--seed changes the SmoothGrad noise")


def test_layouts(fx, work):
    """NHWC and grey models, --labels, letterbox, --bgr."""
    photo = os.path.join(fx, "photo.png")
    res = {}
    for name, model, extra in (("nchw", "small.onnx", []), ("nhwc", "nhwc.onnx", []),
                               ("gray", "gray.onnx", ["--mean", "0.5", "--std", "0.25"]),
                               ("letterbox", "small.onnx", ["--resize-mode", "letterbox"]),
                               ("bgr", "small.onnx", ["--bgr"])):
        out = os.path.join(work, "layout_" + name)
        shutil.rmtree(out, ignore_errors=True)
        p = run(["explain", os.path.join(fx, model), photo, "-m", "gradcam,guided-backprop", "--npy", "-o", out, "-q"] + extra)
        if check(p.returncode == 0, "%s: exit 0 (%r)" % (name, p.stderr)):
            res[name] = (out, load_results(out))
    if "nhwc" in res and "nchw" in res:
        (o1, r1), (o2, r2) = res["nchw"], res["nhwc"]
        check(r2["model"]["input"]["layout"] == "NHWC" and r2["inputs"][0]["input_shape"] == [1, 32, 32, 3], "NHWC input found")
        check([p_["index"] for p_ in r1["inputs"][0]["predictions"]] == [p_["index"] for p_ in r2["inputs"][0]["predictions"]],
              "NHWC and NCHW versions predict alike")
        for m1, m2 in zip(r1["inputs"][0]["maps"], r2["inputs"][0]["maps"]):
            a, b = np.load(os.path.join(o1, m1["npy"])), np.load(os.path.join(o2, m2["npy"]))
            check(a.shape == b.shape and rel_err(b, a) <= 1e-4, "%s: NHWC map equals the NCHW one (%r %r)" % (m1["method"], a.shape, b.shape))
    if "gray" in res:
        out, r = res["gray"]
        check(r["inputs"][0]["input_shape"] == [1, 1, 28, 28], "grey model fed one channel")
        gbp = [m for m in r["inputs"][0]["maps"] if m["method"] == "guided-backprop"][0]
        check(gbp["raw_shape"] == [1, 28, 28] and png_size(os.path.join(out, gbp["image"]))[0] == (28, 28), "grey pixel map")
    if "letterbox" in res:
        out, r = res["letterbox"]
        m = r["inputs"][0]["maps"][0]
        if m["box"]:
            bp = m["box_photo"]
            check(0 <= bp["x0"] <= bp["x1"] < 320 and 0 <= bp["y0"] <= bp["y1"] < 240, "letterbox: box inside the photo")
        view = np.array(Image.open(os.path.join(out, r["inputs"][0]["input_image"])))
        check(view.shape == (32, 32, 3), "letterbox view 32x32")
    if "bgr" in res and "nchw" in res:
        a = np.load(os.path.join(res["nchw"][0], res["nchw"][1]["inputs"][0]["maps"][1]["npy"]))
        b = np.load(os.path.join(res["bgr"][0], res["bgr"][1]["inputs"][0]["maps"][1]["npy"]))
        check(not np.array_equal(a, b), "--bgr changes what the model sees")
    # labels
    out = os.path.join(work, "labels")
    p = run(["explain", os.path.join(fx, "small.onnx"), photo, "-m", "gradcam", "-o", out, "-q", "--labels",
             os.path.join(fx, "labels5.txt"), "-c", "Star,circle"])
    if check(p.returncode == 0, "--labels: exit 0 (%r)" % p.stderr):
        r = load_results(out)
        check([(m["class"]["index"], m["class"]["label"]) for m in r["inputs"][0]["maps"]] == [(3, "star"), (0, "circle")],
              "classes by label from --labels (case-insensitive, CRLF and trailing blank lines ignored)")
        check(all(p_["label"] for p_ in r["inputs"][0]["predictions"]), "labels in the predictions")
    p = run(["explain", os.path.join(fx, "r18.onnx"), photo, "-o", out, "--labels", os.path.join(fx, "labels5.txt")])
    check(p.returncode == 3 and "5 labels for the 1000 classes" in p.stderr, "--labels of the wrong length: exit 3 (%r)" % p.stderr)


def make_npy_folder(fx, work):
    """A folder of r18 inputs: tensors with and without the batch axis, a picture, a sub-folder, and
    inputs that fail (a corrupt .npy, a wrong shape, a NaN tensor); hidden and other files skipped."""
    d = os.path.join(work, "npy_folder")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "sub"))
    g = np.random.default_rng(23)
    x = lambda *s: g.standard_normal(s).astype(np.float32)
    np.save(os.path.join(d, "a.npy"), x(3, 224, 224))
    np.save(os.path.join(d, "b.npy"), x(1, 3, 224, 224))
    synthetic_image(80, 60, 3).save(os.path.join(d, "c.png"))
    np.save(os.path.join(d, "sub", "d.npy"), x(1, 3, 224, 224))
    np.save(os.path.join(d, "f.npy"), x(1, 3, 224, 224))
    with open(os.path.join(d, "bad.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00garbage")
    np.save(os.path.join(d, "e.npy"), x(1, 3, 32, 32))  # the wrong size for r18's fixed 224x224
    nan = x(1, 3, 224, 224)
    nan[0, 1, 100:110, 100:110] = np.nan
    np.save(os.path.join(d, "g_nan.npy"), nan)
    np.save(os.path.join(d, ".hidden.npy"), x(1, 3, 224, 224))
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("not an input\n")
    return d


def test_npy_folders(fx, work):
    d = make_npy_folder(fx, work)
    out = os.path.join(work, "npy_folder_out")
    shutil.rmtree(out, ignore_errors=True)
    r18 = os.path.join(fx, "r18.onnx")
    p = run(["explain", r18, d, "-m", "gradcam", "--npy", "-o", out])
    check(p.returncode == 3, "a folder with bad .npy files: exit 3 (%d: %s)" % (p.returncode, p.stderr[-300:]))
    res = load_results(out)
    paths = [os.path.relpath(i["path"], d) for i in res["inputs"]]
    check(paths == ["a.npy", "b.npy", "c.png", "f.npy", "sub/d.npy"],
          "pictures and tensors in one list, sorted by path: %r" % paths)
    check([i["kind"] for i in res["inputs"]] == ["tensor", "tensor", "image", "tensor", "tensor"], "kinds")
    fails = [os.path.relpath(f["path"], d) for f in res["failures"]]
    check(fails == ["bad.npy", "e.npy", "g_nan.npy"], "each bad .npy is its own failure record: %r" % fails)
    check(all(i["input_shape"] == [1, 3, 224, 224] for i in res["inputs"]), "input shapes")
    # a tensor from a folder is explained as the same file given alone
    one = os.path.join(work, "npy_folder_one")
    shutil.rmtree(one, ignore_errors=True)
    p = run(["explain", r18, os.path.join(d, "b.npy"), "-m", "gradcam", "--npy", "-o", one, "-q"])
    if check(p.returncode == 0, "b.npy alone: exit 0 (%s)" % p.stderr[-300:]):
        m = [f for f in os.listdir(one) if f.endswith(".npy")]
        check(len(m) == 1 and open(os.path.join(one, m[0]), "rb").read() == open(os.path.join(out, m[0]), "rb").read(),
              "b.npy's raw map from the folder run equals the run of the file alone, bit for bit")
    # a folder of tensors only
    only = os.path.join(work, "npy_only")
    shutil.rmtree(only, ignore_errors=True)
    os.makedirs(only)
    for f in ("a.npy", "b.npy"):
        shutil.copy(os.path.join(d, f), only)
    out2 = os.path.join(work, "npy_only_out")
    shutil.rmtree(out2, ignore_errors=True)
    p = run(["explain", r18, only, "-m", "gradcam", "-o", out2, "-q"])
    check(p.returncode == 0 and len(load_results(out2)["inputs"]) == 2, "a folder of .npy files only: exit 0, 2 inputs")
    empty = os.path.join(work, "npy_empty")
    shutil.rmtree(empty, ignore_errors=True)
    os.makedirs(empty)
    p = run(["explain", r18, empty, "-o", out2 + "_e"])
    check(p.returncode == 3 and "no .png, .jpg, .jpeg or .npy file" in p.stderr, "an empty folder: %r" % p.stderr[-200:])


def compare_runs(a, b, tol):
    """Two runs' results.json (without the options) and files: the same records, names and failures;
    scores and raw maps within the tolerances tol = (scores, CAM maps, pixel maps: share of elements
    off by more than 1e-3 of the map's max); PNGs of the same size. Returns (exact, worst figures)."""
    ra, rb = load_results(a), load_results(b)
    worst = {"score": 0.0, "cam": 0.0, "pixel_off": 0.0}
    check([f["path"] for f in ra["failures"]] == [f["path"] for f in rb["failures"]] and
          [f["error"] for f in ra["failures"]] == [f["error"] for f in rb["failures"]], "the same failures, the same errors")
    check(len(ra["inputs"]) == len(rb["inputs"]), "the same inputs")
    for ia, ib in zip(ra["inputs"], rb["inputs"]):
        check([q["index"] for q in ia["predictions"]] == [q["index"] for q in ib["predictions"]], "%s: the same classes" % ia["path"])
        for qa, qb in zip(ia["predictions"], ib["predictions"]):
            worst["score"] = max(worst["score"], abs(qa["score"] - qb["score"]) / max(abs(qa["score"]), 1e-30))
        strip = lambda i: [{k: v for k, v in m.items() if k not in ("box",)} for m in i["maps"]]
        check(strip(ia) == strip(ib), "%s: the same maps and files named" % ia["path"])
    fa, fb = sorted(os.listdir(a)), sorted(os.listdir(b))
    check(fa == fb, "the same files")
    exact = True
    for f in fa:
        if f in ("results.json", "report.html"):
            continue
        ba, bb = open(os.path.join(a, f), "rb").read(), open(os.path.join(b, f), "rb").read()
        exact &= ba == bb
        if f.endswith(".png"):
            check(png_size(os.path.join(a, f)) == png_size(os.path.join(b, f)), "%s: the same size" % f)
        elif f.endswith(".npy"):
            x, y = np.load(os.path.join(a, f)).astype(np.float64), np.load(os.path.join(b, f)).astype(np.float64)
            scale = max(np.abs(x).max(), 1e-30)
            if "_gradcam" in f or "_hirescam" in f:
                worst["cam"] = max(worst["cam"], float(np.abs(x - y).max() / scale))
            else:
                worst["pixel_off"] = max(worst["pixel_off"], float((np.abs(x - y) > 1e-3 * scale).mean()))
    check(worst["score"] <= tol[0] and worst["cam"] <= tol[1] and worst["pixel_off"] <= tol[2],
          "batched vs one by one within (scores %g, CAM maps %g of max, pixel maps %g of elements off by > 1e-3 of "
          "max): %r" % (tol + (worst,)))
    return exact, worst


def test_batching(fx, work):
    """--batch: the same records, files and failures as one by one; maps within float rounding (the
    engine's batched convolutions sum in another order: Winograd tile blocks across images, 1x1
    convolutions of small maps as one GEMM). Tolerances: scores 1e-5 relative, CAM maps 1e-4 of their
    max, pixel-space maps (ReLU kinks flip under rounding) at most 1% of elements off by more than
    1e-3 of their max. A model with a fixed batch axis runs one by one: bit for bit."""
    d = make_npy_folder(fx, work)
    r18 = os.path.join(fx, "r18.onnx")
    # the whole folder (a NaN input sends its batch back one by one) and its inputs but the NaN one
    # (one batch of 5: the picture, 4 tensors with and without the batch axis; 2 failed loads)
    some = [os.path.join(d, f) for f in ("a.npy", "b.npy", "bad.npy", "c.png", "e.npy", "f.npy", "sub/d.npy")]
    outs = {}
    for key, inputs, b in (("1", [d], "1"), ("3", [d], "3"), ("some1", some, "1"), ("auto", some, "auto")):
        out = os.path.join(work, "batch_%s" % key)
        shutil.rmtree(out, ignore_errors=True)
        p = run(["explain", r18] + inputs + ["-m", "gradcam,guided-backprop", "-k", "2", "--npy", "--batch", b, "-o", out])
        check(p.returncode == 3, "--batch %s: exit 3 for the bad inputs (%d: %s)" % (b, p.returncode, p.stderr[-300:]))
        check(no_temp_files(out), "--batch %s: no temporary files" % b)
        outs[key] = out
    for a, b in (("1", "3"), ("some1", "auto")):
        exact, worst = compare_runs(outs[a], outs[b], (1e-5, 1e-4, 1e-2))
        print("   --batch %s vs one by one: files bit for bit: %s; worst %r" % (b, exact, worst))
    # the NaN input's failure does not spoil its batch: the others explained, it fails alone
    res = load_results(outs["3"])
    check(len(res["inputs"]) == 5 and any("g_nan.npy" in f["path"] for f in res["failures"]),
          "a NaN input inside a batch fails alone")
    # methods not computed per sample: one by one, said once
    out = os.path.join(work, "batch_smooth")
    shutil.rmtree(out, ignore_errors=True)
    p = run(["explain", r18, os.path.join(d, "a.npy"), os.path.join(d, "b.npy"), "-m", "smoothgrad", "--batch", "2",
             "-o", out])
    check(p.returncode == 0 and "inputs run one by one (a method asked for is not computed per sample)" in p.stderr,
          "smoothgrad: one by one, with a note: %r" % p.stderr[-300:])
    # a fixed batch axis: one by one, every file as without --batch
    small = os.path.join(fx, "small.onnx")
    sd = os.path.join(work, "small_npy")
    shutil.rmtree(sd, ignore_errors=True)
    os.makedirs(sd)
    g = np.random.default_rng(5)
    for i in range(3):
        np.save(os.path.join(sd, "s%d.npy" % i), g.standard_normal((1, 3, 32, 32)).astype(np.float32))
    so = {}
    for b in ("1", "4"):
        so[b] = os.path.join(work, "small_batch_%s" % b)
        shutil.rmtree(so[b], ignore_errors=True)
        p = run(["explain", small, sd, "--npy", "--batch", b, "-o", so[b]])
        check(p.returncode == 0, "static batch, --batch %s: exit 0 (%s)" % (b, p.stderr[-300:]))
    check("inputs run one by one (the model's batch axis is fixed)" in p.stderr, "static batch: the note: %r" % p.stderr[-300:])
    exact, _ = compare_runs(so["1"], so["4"], (0, 0, 0))
    check(exact, "static batch: every file bit for bit as without --batch")
    check(run(["explain", small, sd, "--batch", "0"]).returncode == 2, "--batch 0: usage error")


def test_info(fx, work):
    p = run(["info", os.path.join(fx, "r18.onnx")])
    check(p.returncode == 0 and "default explanation layer: /layer4/layer4.1/relu_1/Relu_output_0" in p.stdout,
          "info names the default layer")


def main():
    global GRADCAM
    if len(sys.argv) == 3 and sys.argv[1] == "fixtures":
        make_fixtures(sys.argv[2])
        print("fixtures ready in", os.path.join(sys.argv[2], "fixtures"))
        return 0
    if len(sys.argv) < 4 or sys.argv[1] != "run":
        sys.stderr.write(__doc__)
        return 2
    GRADCAM, work = os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
    only = sys.argv[4].split(",") if len(sys.argv) > 4 else None
    os.makedirs(work, exist_ok=True)
    fx = make_fixtures(work)
    torch.set_num_threads(1)
    tests = [test_usage, test_bad_model_and_input, test_info, test_parity, test_image, test_batch, test_progress,
             test_clobber, test_names_and_json, test_targets, test_probability_and_feeds, test_all_methods, test_layouts,
             test_npy_folders, test_batching]
    for t in tests:
        if only and t.__name__[5:] not in only:
            continue
        print("==", t.__name__, flush=True)
        t0 = time.time()
        try:
            t(fx, work)
        except Exception as e:  # a crash in one group is a failure, the others still run
            import traceback
            traceback.print_exc()
            check(False, "%s raised %r" % (t.__name__, e))
        print("   (%.1f s)" % (time.time() - t0), flush=True)
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
