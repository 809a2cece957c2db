#!/usr/bin/python3
"""End-to-end tests of `gradcam explain MODEL INPUTS... --task detect` (docs/detection.md).

Usage: test_detect_cli.py GRADCAM WORKDIR [CHROMIUM [GROUP,...]]
  (groups: parity gradients options exact letterbox zero box errors chromium; default all)

Models are exported here, at test time, with seeded random weights (no download):
  det8   a tiny YOLOv8-style detector: two pyramid levels (strides 8, 16), each forking into a box
         and a class branch; output "output0" (1, 4 + 3, 80): boxes in input pixels, sigmoid scores
  det5   a tiny YOLOv5-style detector (YOLOv5's Detect head: one 1x1 Conv per level, 3 anchors);
         output (1, 240, 5 + 3) with objectness
  exact  a hand-made output: a Constant plus a bias-free 1x1 Conv of the input, fed zeros, so the
         output is exactly the constant: the detections are known without any arithmetic
  and, for the errors, a classifier (1, 10), an ambiguous (1, 84, 84) output and a (1, 6, 5) one.

The truth is computed here, independently of the C code: the same torch modules on the same input
(a .npy tensor, or the letterboxed picture built with Pillow), decoded with torchvision's
box_convert and batched_nms; the automatic layers from the ONNX graph (python3-onnx); report.html
in Debian's headless Chromium, driven over the DevTools protocol on a pipe (as
test_report_chromium.py does; no Selenium/chromedriver needed).

Checks (one line per failure, then "N passed, M failed"):
  1. results.json: per input "layout" and "detections" [{box, box_input, class{index,label},
     score, anchor, maps}], options.task and the thresholds; the detections equal the torch decode
     for both layouts; --score-threshold/--iou-threshold/--max-detections/--class (index, label)
  2. letterbox geometry of a 96x64 picture into the 64x64 model: box = (box_input - pad) / scale
  3. every file named in results.json exists and is a PNG of the right size; --npy raw maps
  4. no detection (--score-threshold 1): exit 0, "detections": [], "No detection" in report.html
  5. --box: docs/detection.md's rule (all candidates, no NMS, no threshold: the best score at IoU
     >= 0.5 with the box, else the highest IoU); a box
     overlapping nothing fails that input (exit 3), leaving none of its files
  6. bad options, models and layouts: the exit status of --help, one message line, no crash, the
     output folder unchanged
  7. report.html in Chromium: one table row and one SVG <rect> per detection, placed on the box
  8. default methods hirescam,guided-backprop,guided-gradcam; automatic layers = the neck outputs
     feeding each level's head
  and: each detection's gradient map is d(score)/d(input) (yolov5: objectness x class score); the
  exact model's rules (IoU exactly 0.45 kept, equal scores to the lower anchor, class ties to the
  lower index, w <= 0 / h < 0 dropped, a score equal to the threshold kept, --box on it).

A missing dependency (numpy, torch, torchvision, PIL, onnx, chromium) fails the test. Comparisons
use tolerances (boxes 1e-3 px, scores 1e-5) and the fixtures are checked to keep every decision
(threshold, class, NMS, order) away from float rounding, so the outcome does not depend on the CPU.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checks import Checks  # noqa: E402

try:
    import numpy as np
    import onnx
    import torch
    import torch.nn as nn
    import torchvision
    from PIL import Image
except ImportError as e:
    print("FAIL: /usr/bin/python3 lacks numpy/torch/torchvision/PIL/onnx (%s): install python3-numpy, "
          "python3-torch, python3-torchvision, python3-pil, python3-onnx (deps/debian-packages.txt)" % e)
    sys.exit(1)

check = Checks("FAIL: ")
GRADCAM = None
BOX_TOL = 1e-3    # px
SCORE_TOL = 1e-5
GRAD_TOL = 1e-4   # max|ours - torch| <= GRAD_TOL * max|torch|
MARGIN_SCORE = 1e-4   # fixture sanity: no score this close to a threshold
MARGIN_ORDER = 1e-5   # ... no two listed or overlapping candidates' scores this close
MARGIN_IOU = 1e-4     # ... no same-class IoU this close to the NMS threshold
DEFAULT_METHODS = ["hirescam", "guided-backprop", "guided-gradcam"]
LABELS = ["cat", "dog", "bird"]
HINT = "Try 'gradcam --help'."

# ---- models -----------------------------------------------------------------------------------


def cbs(i, o, s=1):
    return nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.BatchNorm2d(o), nn.SiLU())


class Backbone(nn.Module):
    """64x64 -> p3 (16, 8, 8) and p4 (32, 4, 4); p4 reads p3 through two convs (b2, down)."""

    def __init__(self):
        super().__init__()
        self.b1 = nn.Sequential(cbs(3, 8, 2), cbs(8, 16, 2), cbs(16, 16, 2))
        self.b2 = cbs(16, 32, 2)
        self.down = cbs(16, 32, 2)
        self.p4 = cbs(64, 32)

    def forward(self, x):
        p3 = self.b1(x)
        p4 = self.p4(torch.cat([self.b2(p3), self.down(p3)], 1))
        return p3, p4


def grid(h, w):
    return torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")


class Det8(nn.Module):
    """YOLOv8 layout (1, 4 + C, A): per level a box branch and a class branch forking off the neck."""

    def __init__(self, C=3):
        super().__init__()
        self.C = C
        self.bb = Backbone()
        self.box = nn.ModuleList([nn.Sequential(cbs(16, 16), nn.Conv2d(16, 4, 1)), nn.Sequential(cbs(32, 16), nn.Conv2d(16, 4, 1))])
        self.cls = nn.ModuleList([nn.Sequential(cbs(16, 16), nn.Conv2d(16, C, 1)), nn.Sequential(cbs(32, 16), nn.Conv2d(16, C, 1))])

    def forward(self, x):
        outs = []
        for lv, (p, st) in enumerate(zip(self.bb(x), (8, 16))):
            b = self.box[lv](p)
            c = torch.sigmoid(self.cls[lv](p))
            n, _, h, w = b.shape
            gy, gx = grid(h, w)
            cx = (gx + 0.5 + torch.tanh(b[:, 0])) * st
            cy = (gy + 0.5 + torch.tanh(b[:, 1])) * st
            bw = torch.exp(b[:, 2].clamp(-4, 4)) * st * 3
            bh = torch.exp(b[:, 3].clamp(-4, 4)) * st * 3
            outs.append(torch.cat([torch.stack([cx, cy, bw, bh], 1), c], 1).reshape(n, 4 + self.C, h * w))
        return torch.cat(outs, 2)


class Det5(nn.Module):
    """YOLOv5 layout (1, A, 5 + C): YOLOv5's Detect head, one 1x1 Conv per level, 3 anchors each."""

    def __init__(self, C=3, na=3):
        super().__init__()
        self.C, self.na, self.no = C, na, 5 + C
        self.bb = Backbone()
        self.m = nn.ModuleList([nn.Conv2d(16, na * self.no, 1), nn.Conv2d(32, na * self.no, 1)])
        self.register_buffer("anchors", torch.tensor([[[10., 13], [16, 30], [33, 23]], [[30., 61], [62, 45], [59, 119]]]))

    def forward(self, x):
        z = []
        for lv, (p, st) in enumerate(zip(self.bb(x), (8, 16))):
            o = self.m[lv](p)
            bs, _, ny, nx = o.shape
            o = o.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            gy, gx = grid(ny, nx)
            g = torch.stack((gx, gy), 2).view(1, 1, ny, nx, 2)
            xy, wh, conf = o.sigmoid().split((2, 2, self.C + 1), 4)
            xy = (xy * 2 - 0.5 + g) * st
            wh = (wh * 2) ** 2 * self.anchors[lv].view(1, self.na, 1, 1, 2)
            z.append(torch.cat((xy, wh, conf), 4).view(bs, self.na * ny * nx, self.no))
        return torch.cat(z, 1)


class ConstOut(nn.Module):
    """(1, 3, 1, D2) -> const (1, D1, D2) + a bias-free 1x1 Conv of the input: exactly const for x = 0."""

    def __init__(self, const, gain=0.01):
        super().__init__()
        d1, d2 = const.shape
        self.c = nn.Conv2d(3, d1, 1, bias=False)
        nn.init.normal_(self.c.weight, 0, gain)
        self.register_buffer("const", torch.from_numpy(np.asarray(const, np.float32))[None])

    def forward(self, x):
        y = self.c(x)
        return y.reshape(1, y.shape[1], y.shape[3]) + self.const


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.c(x)).mean((2, 3)))


def he_init(model, gain):
    """Weights with the scale of He's init (PyTorch's default shrinks the activations layer by layer,
    leaving every score near one value): scores spread over (0, 1)."""
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            fan = mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
            nn.init.normal_(mod.weight, 0, gain * math.sqrt(2.0 / fan))
            nn.init.normal_(mod.bias, 0, 0.1)


def export(model, x, path, out_name="output0"):
    torch.onnx.export(model, x, path, input_names=["images"], output_names=[out_name], opset_version=17,
                      do_constant_folding=True)


# The exact model's output (yolov8 layout, 2 classes, 8 anchors). Fields: cx, cy, w, h, class 0, class 1.
#   a0 [0,0,20,10]   c0 0.9                    kept first
#   a1 [0,0,9,10]    c0 0.8  IoU(a0) = 90/200 = 0.45 exactly: kept at --iou-threshold 0.45, not at 0.44
#   a2 [30,30,40,40] c1 0.7                    kept
#   a3 [31,30,41,40] c1 0.7  the same score as a2 (ties: the lower anchor first), IoU 0.818: suppressed
#   a4 [50,0,60,10]  c0 = c1 = 0.6             tie between classes: class 0
#   a5 w = 0, 0.95;  a6 score 0.2 (below 0.25);  a7 h < 0, 0.99: all three dropped
EXACT = np.array([
    # a0    a1    a2    a3    a4    a5    a6    a7
    [10.0, 4.5, 35.0, 36.0, 55.0, 70.0, 5.0, 80.0],   # cx
    [5.0, 5.0, 35.0, 35.0, 5.0, 70.0, 60.0, 80.0],    # cy
    [20.0, 9.0, 10.0, 10.0, 10.0, 0.0, 4.0, 5.0],     # w
    [10.0, 10.0, 10.0, 10.0, 10.0, 8.0, 4.0, -1.0],   # h
    [0.9, 0.8, 0.1, 0.05, 0.6, 0.95, 0.2, 0.99],      # class 0
    [0.05, 0.1, 0.7, 0.7, 0.6, 0.1, 0.1, 0.1],        # class 1
], np.float32)


def synthetic_image(w, h, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, d = rng.uniform(-1, 1, 3)
        img[..., c] = 128 + 90 * np.sin(a * xx / w * 6 + b * yy / h * 6 + d * 3)
    for _ in range(3):
        cx, cy, r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h, rng.uniform(0.1, 0.25) * min(w, h)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


class Fixtures:
    pass


def make_fixtures(work):
    fx = Fixtures()
    d = fx.dir = os.path.join(work, "fixtures")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    torch.manual_seed(2)  # seeds chosen so that no decision is within float rounding (fragile() checks it)
    fx.det8 = Det8().eval()
    he_init(fx.det8, 1.0)
    export(fx.det8, torch.rand(1, 3, 64, 64), os.path.join(d, "det8.onnx"))
    torch.manual_seed(12)
    fx.det5 = Det5().eval()
    he_init(fx.det5, 1.5)
    export(fx.det5, torch.rand(1, 3, 64, 64), os.path.join(d, "det5.onnx"))
    torch.manual_seed(3)
    fx.exact = ConstOut(EXACT).eval()
    export(fx.exact, torch.zeros(1, 3, 1, 8), os.path.join(d, "exact.onnx"))
    np.save(os.path.join(d, "zeros8.npy"), np.zeros((1, 3, 1, 8), np.float32))
    # the error cases
    torch.manual_seed(4)
    export(Classifier().eval(), torch.rand(1, 3, 64, 64), os.path.join(d, "cls10.onnx"), "logits")
    rng = np.random.default_rng(5)
    amb = rng.uniform(0, 1, (84, 84)).astype(np.float32)
    amb[:2] *= 80  # cx, cy
    amb[2:4] = amb[2:4] * 20 + 4  # w, h > 0
    amb[4:] = rng.permutation(80 * 84).reshape(80, 84) / np.float32(80 * 84)  # distinct scores
    fx.amb = ConstOut(amb).eval()
    export(fx.amb, torch.zeros(1, 3, 1, 84), os.path.join(d, "amb84.onnx"))
    np.save(os.path.join(d, "zeros84.npy"), np.zeros((1, 3, 1, 84), np.float32))
    s65 = np.array([[5, 15, 25, 35, 45], [5, 5, 5, 5, 5], [8, 8, 8, 8, 8], [8, 8, 8, 8, 8],
                    [0.9, 0.1, 0.8, 0.2, 0.7], [0.1, 0.9, 0.1, 0.3, 0.2]], np.float32)  # yolov8: 2 classes, 5 anchors
    export(ConstOut(s65).eval(), torch.zeros(1, 3, 1, 5), os.path.join(d, "s65.onnx"))
    np.save(os.path.join(d, "zeros5.npy"), np.zeros((1, 3, 1, 5), np.float32))
    # inputs: a tensor, a 96x64 picture (letterboxed into 64x64), a 640x640 one
    fx.x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    np.save(os.path.join(d, "x.npy"), fx.x.numpy())
    synthetic_image(96, 64, 6).save(os.path.join(d, "pic.png"))
    synthetic_image(640, 640, 7).save(os.path.join(d, "big.png"))
    with open(os.path.join(d, "labels.txt"), "w") as f:
        f.write("\n".join(LABELS) + "\n")
    for name in ("det8", "det5", "exact", "cls10", "amb84", "s65", "x", "zeros8", "zeros84", "zeros5", "pic", "big", "labels"):
        ext = {"x": ".npy", "zeros8": ".npy", "zeros84": ".npy", "zeros5": ".npy", "pic": ".png", "big": ".png",
               "labels": ".txt"}.get(name, ".onnx")
        setattr(fx, name + "_path", os.path.join(d, name + ext))
    return fx


# ---- the truth ------------------------------------------------------------------------------------


def candidates(out, layout, classes=None):
    """Every candidate of a (1, D1, D2) output: xyxy box (torchvision), best allowed class (the lower
    index on ties), its score (yolov5: objectness x class score, in float32), validity."""
    o = out.detach()[0].float()
    if layout == "yolov8":
        o = o.t()
    box = o[:, :4]
    sc = (o[:, 4:] if layout == "yolov8" else o[:, 4:5] * o[:, 5:]).numpy().copy()
    if classes is not None:
        banned = np.ones(sc.shape[1], bool)
        banned[list(classes)] = False
        sc[:, banned] = -np.inf
    cls = np.argmax(sc, 1)  # the first maximum
    score = sc[np.arange(len(cls)), cls]
    xyxy = torchvision.ops.box_convert(box, "cxcywh", "xyxy")
    valid = ((box[:, 2] > 0) & (box[:, 3] > 0) & torch.isfinite(xyxy).all(1)).numpy() & np.isfinite(score)
    return {"box": xyxy, "score": torch.from_numpy(score.astype(np.float32)), "cls": torch.from_numpy(cls),
            "valid": valid, "sc": sc}


def reference(c, thr=0.25, iou=0.45, maxdet=32):
    """The kept anchors, best first: threshold, torchvision's batched_nms, the best maxdet."""
    idx = np.nonzero(c["valid"] & (c["score"].numpy() >= np.float32(thr)))[0]
    keep = torchvision.ops.batched_nms(c["box"][idx], c["score"][idx], c["cls"][idx], float(np.float32(iou)))
    return [int(a) for a in idx[keep.numpy()][:maxdet]]


def iou_np(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def fragile(c, thr, iou_thr, maxdet):
    """Why float rounding (another CPU, another engine) could change the decode; [] when it cannot."""
    why = []
    s = c["score"].numpy().astype(np.float64)
    v = c["valid"]
    near = v & (np.abs(s - thr) < MARGIN_SCORE)
    if near.any():
        why.append("scores %r within %g of the threshold %g" % (s[near][:3].tolist(), MARGIN_SCORE, thr))
    sc = np.sort(np.where(np.isfinite(c["sc"]), c["sc"], -1.0), 1)
    tight = v & (s >= thr - MARGIN_SCORE) & (sc[:, -1] - sc[:, -2] < MARGIN_SCORE)
    if tight.any():
        why.append("anchors %r: two classes within %g" % (np.nonzero(tight)[0][:3].tolist(), MARGIN_SCORE))
    above = np.nonzero(v & (s >= thr))[0]
    b = c["box"].numpy().astype(np.float64)
    cl = c["cls"].numpy()
    # the order matters between the detections listed (and the first one cut) and between
    # candidates that can suppress each other
    kept = reference(c, thr, iou_thr, maxdet + 1)
    gaps = np.abs(np.diff(s[kept]))
    if len(gaps) and gaps.min() < MARGIN_ORDER:
        why.append("two listed detections score within %g" % MARGIN_ORDER)
    for i in range(len(above)):
        for j in range(i + 1, len(above)):
            p, q = above[i], above[j]
            if cl[p] != cl[q]:
                continue
            o = iou_np(b[p], b[q])
            if abs(o - iou_thr) < MARGIN_IOU:
                why.append("anchors %d, %d: IoU %.6f near %g" % (p, q, o, iou_thr))
            elif o > iou_thr and abs(s[p] - s[q]) < MARGIN_ORDER:
                why.append("anchors %d, %d overlap with scores within %g" % (p, q, MARGIN_ORDER))
            if len(why) > 3:
                return why
    return why


def letterbox_truth(path, W=64, H=64):
    """The default --task detect input of a picture, by hand with Pillow: the scale min(W/w, H/h),
    the scaled side rounded (half up), the rest padded with 0 evenly (the odd pixel after), RGB/255."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = min(W / w, H / h)
    rw, rh = (W, int(math.floor(h * s + 0.5))) if W / w <= H / h else (int(math.floor(w * s + 0.5)), H)
    px, py = (W - rw) // 2, (H - rh) // 2
    canvas = Image.new("RGB", (W, H), (0, 0, 0))
    canvas.paste(im.resize((rw, rh), Image.BILINEAR), (px, py))
    x = torch.from_numpy(np.asarray(canvas, np.float32).transpose(2, 0, 1).copy() / np.float32(255))[None]
    return {"x": x, "seen": np.asarray(canvas), "pad": (px, py), "scale": (rw / w, rh / h), "size": (w, h)}


def to_picture(box_in, geo):
    (px, py), (sx, sy), (w, h) = geo["pad"], geo["scale"], geo["size"]
    b = [(box_in[0] - px) / sx, (box_in[1] - py) / sy, (box_in[2] - px) / sx, (box_in[3] - py) / sy]
    return [min(max(b[0], 0), w), min(max(b[1], 0), h), min(max(b[2], 0), w), min(max(b[3], 0), h)]


def identity_clip(box_in, W=64, H=64):
    return [min(max(box_in[0], 0), W), min(max(box_in[1], 0), H), min(max(box_in[2], 0), W), min(max(box_in[3], 0), H)]


# ---- harness --------------------------------------------------------------------------------------


def run(args):
    """gradcam explain ... with --threads 1 unless told (spinning threads cost more than they save)."""
    t = time.time()
    if args and args[0] == "explain" and not any(a.startswith("--threads") for a in args):
        args = args + ["--threads", "1"]
    p = subprocess.run([GRADCAM] + args, capture_output=True, text=True, errors="replace")
    print("  $ gradcam %s  -> %d (%.1f s)" % (" ".join(os.path.basename(a) if os.sep in a else a for a in args)[:150],
                                              p.returncode, time.time() - t), flush=True)
    return p


def message_lines(stderr):
    """The error's lines, without the usage hint that follows every usage error."""
    return [ln for ln in stderr.splitlines() if ln.strip() and ln.strip() != HINT]


def fresh(work, name):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    return d


def load(out):
    with open(os.path.join(out, "results.json"), "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def explain_ok(what, args):
    """Runs an explain that must succeed; its results.json, or None (the failure counted)."""
    p = run(args)
    if not check(p.returncode == 0 and os.path.isfile(os.path.join(args[args.index("-o") + 1], "results.json")),
                 "%s: exit 0 with results.json (got %d: %r)" % (what, p.returncode, p.stderr[-400:])):
        return None
    return load(args[args.index("-o") + 1])


def maxdiff(a, b):
    return max(abs(float(x) - float(y)) for x, y in zip(a, b))


def compare_dets(what, dets, c, anchors, picture):
    """results.json detections against the reference anchors (in order)."""
    got = [(d["anchor"], d["class"]["index"]) for d in dets]
    want = [(a, int(c["cls"][a])) for a in anchors]
    if not check(got == want, "%s: detections (anchor, class) best first %r, torch + batched_nms says %r" % (what, got, want)):
        return
    worst_box = worst_score = worst_pic = 0.0
    for d, a in zip(dets, anchors):
        ref = c["box"][a].tolist()
        worst_box = max(worst_box, maxdiff(d["box_input"], ref))
        worst_score = max(worst_score, abs(d["score"] - float(c["score"][a])))
        worst_pic = max(worst_pic, maxdiff(d["box"], picture(d["box_input"])))
    check(worst_box <= BOX_TOL, "%s: box_input vs torch: max |diff| %.3g px > %g" % (what, worst_box, BOX_TOL))
    check(worst_score <= SCORE_TOL, "%s: scores vs torch: max |diff| %.3g > %g" % (what, worst_score, SCORE_TOL))
    check(worst_pic <= BOX_TOL, "%s: box (picture) vs box_input mapped back and clipped: max |diff| %.3g px" % (what, worst_pic))


def sane(what, c, thr=0.25, iou=0.45, maxdet=32):
    why = fragile(c, thr, iou, maxdet)
    return check(not why, "fixture %s: the decode is not robust to float rounding: %s" % (what, "; ".join(why)))


def onnx_head_inputs(path):
    """Per level, from the ONNX graph, the input of the Conv making the class scores
    (docs/detection.md): det8: the class branch's last Conv; det5: the level's one Conv."""
    g = onnx.load(path).graph
    convs = [(n.name, n.input[0]) for n in g.node if n.op_type == "Conv"]
    levels = []
    for lv in range(2):
        cls = [i for n, i in convs if "/cls.%d/" % lv in n]
        head = [i for n, i in convs if n.startswith("/m.%d/" % lv)]
        levels.append(cls[-1] if cls else head[0] if len(head) == 1 else None)
    return levels


def folder_state(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else None


def png_size(path):
    try:
        with Image.open(path) as im:
            im.load()
            return im.format, im.size
    except Exception as e:  # noqa: BLE001 (a broken file is a failed check, not a crash)
        return "error: %s" % e, None


# ---- 1, 3, 8: results.json against torch, the files, the default methods and layers -----------------


def test_parity(fx, work):
    out = fresh(work, "p8")
    res = explain_ok("det8 default", ["explain", fx.det8_path, fx.x_path, "--task", "detect", "--npy", "-o", out])
    with torch.no_grad():
        c = candidates(fx.det8(fx.x), "yolov8")
    sane("det8 on x.npy", c)
    if res:
        opt = res.get("options", {})
        check(opt.get("task") == "detect", "options.task is 'detect' (%r)" % opt.get("task"))
        dopt = opt.get("detections", {})
        check(abs(dopt.get("score_threshold", -1) - 0.25) < 1e-7 and abs(dopt.get("iou_threshold", -1) - 0.45) < 1e-7
              and dopt.get("max_detections") == 32 and dopt.get("layout") in ("auto", "yolov8"),
              "options.detections has the default thresholds 0.25 / 0.45 / 32: %r" % dopt)
        check(opt.get("methods") == DEFAULT_METHODS, "8: default methods with --task detect are %r (got %r)" % (DEFAULT_METHODS, opt.get("methods")))
        want_layers = onnx_head_inputs(fx.det8_path)
        check(None not in want_layers and res["model"].get("layers") is not None
              and sorted(res["model"]["layers"]) == sorted(want_layers) and len(res["model"]["layers"]) == 2,
              "8: det8 automatic layers are the two levels' neck maps read by both the box and class branch: want %r, got %r"
              % (want_layers, res["model"].get("layers")))
        check(res["failures"] == [] and len(res["inputs"]) == 1, "one input, no failure")
        inp = res["inputs"][0]
        check(inp.get("layout") == "yolov8", "input layout 'yolov8' (%r)" % inp.get("layout"))
        dets = inp.get("detections")
        if check(isinstance(dets, list), "input has a 'detections' list"):
            want = reference(c)
            check(len(want) == 32, "fixture: det8 has more than 32 NMS survivors (--max-detections 32 cuts): %d" % len(want))
            keys_ok = all(set(d) >= {"box", "box_input", "class", "score", "anchor", "maps"} and set(d["class"]) >= {"index", "label"}
                          and len(d["box"]) == 4 and len(d["box_input"]) == 4 for d in dets)
            check(keys_ok, "every detection has box[4], box_input[4], class{index,label}, score, anchor, maps")
            if keys_ok:
                compare_dets("det8 default", dets, c, want, identity_clip)
                check_files(out, inp, dets, (64, 64), None, True, DEFAULT_METHODS)
                check_target_record(fx, "det8", dets, "yolov8", 7, 80)
            check("predictions" not in inp and "maps" not in inp, "a detection input has no classification 'predictions'/'maps'")
    # the same on the yolov5 layout (HiResCAM only: the decode is what is compared)
    out = fresh(work, "p5")
    res = explain_ok("det5 default", ["explain", fx.det5_path, fx.x_path, "--task", "detect", "-m", "hirescam", "-o", out])
    with torch.no_grad():
        c5 = candidates(fx.det5(fx.x), "yolov5")
    sane("det5 on x.npy", c5)
    if res:
        inp = res["inputs"][0]
        check(inp.get("layout") == "yolov5", "det5: input layout 'yolov5' (%r)" % inp.get("layout"))
        compare_dets("det5 default", inp.get("detections", []), c5, reference(c5), identity_clip)
        want_layers = onnx_head_inputs(fx.det5_path)
        check(sorted(res["model"].get("layers") or []) == sorted(want_layers),
              "8: det5 (YOLOv5 Detect head) automatic layers are the inputs of each level's head Conv: want %r, got %r"
              % (want_layers, res["model"].get("layers")))


def check_target_record(fx, name, dets, layout, d1, d2):
    """A detection's maps must not claim another target than the detection's score elements."""
    bad = []
    for d in dets:
        a, k = d["anchor"], d["class"]["index"]
        score_elems = [[0, 4 + k, a]] if layout == "yolov8" else [[0, a, 5 + k], [0, a, 4]]
        for m in d["maps"]:
            t = m.get("target")
            if t is None:
                continue
            idx = t.get("index") or t.get("elements")
            if not (isinstance(idx, list) and (idx in score_elems or idx == score_elems or sorted(idx) == sorted(score_elems))):
                bad.append((a, m["method"], t))
    check(not bad, "%s: a detection's map names a target that is not the detection's score (output element [0, 4+class, "
          "anchor]): %d maps, e.g. %r" % (name, len(bad), bad[:2]))


def check_files(out, inp, dets, view, photo, npy, methods):
    """3: the files results.json names exist and are PNGs (or .npy) of the right size; nothing else."""
    named = {"results.json", "report.html"}
    if inp.get("input_image"):
        named.add(inp["input_image"])
        check(png_size(os.path.join(out, inp["input_image"])) == ("PNG", view), "input image PNG %r" % (view,))
    bad = []
    for rank, d in enumerate(dets):
        if [m["method"] for m in d["maps"]] != methods:
            bad.append("detection %d: methods %r, want %r" % (rank, [m["method"] for m in d["maps"]], methods))
        for m in d["maps"]:
            if m["class"]["index"] != d["class"]["index"]:
                bad.append("detection %d: map class %r" % (rank, m["class"]))
            keys = {"heatmap": view, "overlay": view, "image": view, "photo": photo}
            wanted = ["heatmap", "overlay"] if m["method"] in ("hirescam", "gradcam", "layercam") else ["image"]
            if photo and m["method"] in ("hirescam", "gradcam", "layercam"):
                wanted.append("photo")
            for k in wanted:
                f = m.get(k)
                if not f:
                    bad.append("detection %d %s: no %r" % (rank, m["method"], k))
                    continue
                named.add(f)
                if "_d%d_" % rank not in f:
                    bad.append("%s is not tagged d%d" % (f, rank))
                got = png_size(os.path.join(out, f))
                if got != ("PNG", keys[k]):
                    bad.append("%s: %r, want a %r PNG" % (f, got, keys[k]))
            if npy:
                f = m.get("npy")
                if not f or not os.path.isfile(os.path.join(out, f)):
                    bad.append("detection %d %s: no .npy (%r)" % (rank, m["method"], f))
                    continue
                named.add(f)
                a = np.load(os.path.join(out, f))
                if a.dtype != np.float32 or list(a.shape) != m["raw_shape"] or not np.isfinite(a).all():
                    bad.append("%s: %s %r (raw_shape %r), finite %r" % (f, a.dtype, a.shape, m["raw_shape"], bool(np.isfinite(a).all())))
    check(not bad, "3: every file of every detection and method exists, decodes, has the right size: %r" % bad[:4])
    extra = sorted(set(os.listdir(out)) - named)
    check(not extra, "3: the output folder holds only the files results.json names (extra: %r)" % extra[:5])


def test_gradients(fx, work):
    """What is explained is the detection's score: yolov5 objectness x class score (a product)."""
    for name, model, path, layout in (("det8", fx.det8, fx.det8_path, "yolov8"), ("det5", fx.det5, fx.det5_path, "yolov5")):
        out = fresh(work, "g_" + name)
        res = explain_ok(name + " -m gradient", ["explain", path, fx.x_path, "--task", "detect", "-m", "gradient", "--npy",
                                                 "--max-detections", "3", "-o", out, "-q"])
        if not res:
            continue
        worst = 0.0
        for d in res["inputs"][0]["detections"]:
            a, k = d["anchor"], d["class"]["index"]
            x = fx.x.clone().requires_grad_(True)
            y = model(x)
            s = y[0, 4 + k, a] if layout == "yolov8" else y[0, a, 4] * y[0, a, 5 + k]
            s.backward()
            g = x.grad[0].double().numpy()
            ours = np.load(os.path.join(out, d["maps"][0]["npy"])).astype(np.float64)
            worst = max(worst, float(np.abs(ours - g).max() / max(np.abs(g).max(), 1e-30)) if ours.shape == g.shape else 1e9)
        check(worst <= GRAD_TOL, "%s: the gradient map of each detection is d(score)/d(input) (%s score), rel err %.3g" % (
            name, "objectness x class" if layout == "yolov5" else "class", worst))


def test_options(fx, work):
    """--score-threshold / --iou-threshold / --max-detections / --class (index, label with --labels)."""
    with torch.no_grad():
        y = fx.det8(fx.x)
    cases = [
        ("thresholds", ["--score-threshold", "0.55", "--iou-threshold", "0.3", "--max-detections", "5"], 0.55, 0.3, 5, None),
        ("iou 0.7", ["--iou-threshold", "0.7", "--max-detections", "64"], 0.25, 0.7, 64, None),
        ("class 2", ["-c", "2"], 0.25, 0.45, 32, [2]),
        ("class bird (label)", ["-c", "bird", "--labels", fx.labels_path], 0.25, 0.45, 32, [2]),
        ("class cat,1", ["-c", "cat,1", "--labels", fx.labels_path, "--max-detections", "40"], 0.25, 0.45, 40, [0, 1]),
    ]
    for what, extra, thr, iou, maxdet, classes in cases:
        c = candidates(y, "yolov8", classes)
        sane("det8 " + what, c, thr, iou, maxdet)
        out = fresh(work, "opt")
        res = explain_ok(what, ["explain", fx.det8_path, fx.x_path, "--task", "detect", "-m", "hirescam", "-o", out, "-q"] + extra)
        if not res:
            continue
        dopt = res["options"].get("detections", {})
        check(abs(dopt.get("score_threshold", -1) - thr) < 1e-6 and abs(dopt.get("iou_threshold", -1) - iou) < 1e-6
              and dopt.get("max_detections") == maxdet, "%s: options.detections records %r, %r, %r: %r" % (what, thr, iou, maxdet, dopt))
        dets = res["inputs"][0]["detections"]
        want = reference(c, thr, iou, maxdet)
        if what == "thresholds":
            check(len(reference(c, thr, iou, 64)) > maxdet, "fixture: --max-detections %d cuts the list" % maxdet)
        if what == "iou 0.7":
            check(len(want) > 32, "fixture: more than 32 detections at IoU 0.7 (%d)" % len(want))
        compare_dets("det8 " + what, dets, c, want, identity_clip)
        if classes:
            check(all(d["class"]["index"] in classes for d in dets) and dets, "%s: only classes %r" % (what, classes))
        if "--labels" in extra:
            check(all(d["class"]["label"] == LABELS[d["class"]["index"]] and
                      all(m["class"]["label"] == LABELS[d["class"]["index"]] for m in d["maps"]) for d in dets),
                  "%s: labels from --labels on detections and maps" % what)
        else:
            check(all(d["class"]["label"] is None for d in dets), "%s: no labels without --labels (3 classes)" % what)
    p = run(["explain", fx.det8_path, fx.x_path, "--task", "detect", "-c", "fish", "--labels", fx.labels_path, "-o", fresh(work, "optbad")])
    check(p.returncode == 2 and "fish" in p.stderr and len(message_lines(p.stderr)) == 1,
          "--class fish (no such label): exit 2, one line naming it (%d %r)" % (p.returncode, p.stderr))
    p = run(["explain", fx.det8_path, fx.x_path, "--task", "detect", "-c", "3", "-o", fresh(work, "optbad")])
    check(p.returncode == 2 and "3" in p.stderr and len(message_lines(p.stderr)) == 1,
          "--class 3 of 3 classes: refused in one line (%d %r)" % (p.returncode, p.stderr))


def test_exact(fx, work):
    """Known detections from a constant output: the rules of docs/detection.md, exactly."""
    base = ["explain", fx.exact_path, fx.zeros8_path, "--task", "detect", "-m", "gradient", "-q"]
    cases = [
        ("default", [], [(0, 0), (1, 0), (2, 1), (4, 0)]),
        ("iou 0.44", ["--iou-threshold", "0.44"], [(0, 0), (2, 1), (4, 0)]),
        ("max 2", ["--max-detections", "2"], [(0, 0), (1, 0)]),
        ("class 1", ["-c", "1"], [(2, 1), (4, 1)]),
        ("score 0.65", ["--score-threshold", "0.65"], [(0, 0), (1, 0), (2, 1)]),
        ("score 0.7 (equal is kept)", ["--score-threshold", "0.7"], [(0, 0), (1, 0), (2, 1)]),
    ]
    boxes = {0: [0, 0, 20, 10], 1: [0, 0, 9, 10], 2: [30, 30, 40, 40], 4: [50, 0, 60, 10]}
    for what, extra, want in cases:
        out = fresh(work, "exact")
        res = explain_ok("exact " + what, base + ["-o", out] + extra)
        if not res:
            continue
        dets = res["inputs"][0]["detections"]
        got = [(d["anchor"], d["class"]["index"]) for d in dets]
        check(got == want, "exact %s: (anchor, class) %r, want %r" % (what, got, want))
        if got == want:
            # a tensor input's "picture" is the model input itself, 8 wide and 1 high: box is box_input clipped
            check(all(d["box_input"] == boxes[d["anchor"]] and d["box"] == identity_clip(boxes[d["anchor"]], 8, 1) for d in dets),
                  "exact %s: boxes exactly (box_input, box) %r" % (what, [(d["box_input"], d["box"]) for d in dets]))
            check(all(np.float32(d["score"]) == EXACT[4 + d["class"]["index"], d["anchor"]] for d in dets),
                  "exact %s: scores exactly the output's values %r" % (what, [d["score"] for d in dets]))
    # --box: the best score at IoU >= 0.5 (a1 at IoU 1, not a0 at 0.45 whatever its score; a2 and a3 both
    # at 0.905 with one score: the lower anchor), else the highest IoU (a3 at 0.3 over a2 at 0.24)
    for box, anchor in (("0,0,9,10", 1), ("30.5,30,40.5,40", 2), ("35,35,41,40", 3), ("51,1,59,9", 4)):
        out = fresh(work, "exact")
        res = explain_ok("exact --box " + box, base + ["-o", out, "--box", box])
        if res:
            got = [d["anchor"] for d in res["inputs"][0]["detections"]]
            check(got == [anchor], "exact --box %s: explains anchor %d only (got %r)" % (box, anchor, got))


# ---- 2: letterbox ---------------------------------------------------------------------------------


def test_letterbox(fx, work):
    geo = letterbox_truth(fx.pic_path)
    check(geo["pad"] == (0, 10) and abs(geo["scale"][1] - 43 / 64) < 1e-12, "hand letterbox of 96x64 into 64x64: 64x43 at y 10 (%r)" % (geo,))
    out = fresh(work, "lb")
    res = explain_ok("letterbox", ["explain", fx.det8_path, fx.pic_path, "--task", "detect", "-o", out, "-m",
                                   "hirescam,guided-backprop", "--max-detections", "8"])
    with torch.no_grad():
        c = candidates(fx.det8(geo["x"]), "yolov8")
    sane("det8 on the letterboxed pic.png", c, 0.25, 0.45, 8)
    if not res:
        return
    inp = res["inputs"][0]
    check(inp.get("width") == 96 and inp.get("height") == 64 and inp.get("input_shape") == [1, 3, 64, 64],
          "picture 96x64, model input 64x64 (%r)" % {k: inp.get(k) for k in ("width", "height", "input_shape")})
    seen = np.asarray(Image.open(os.path.join(out, inp["input_image"])).convert("RGB"))
    same = seen.shape == geo["seen"].shape and np.array_equal(seen, geo["seen"])
    check(same, "the model's view is the picture letterboxed by hand (Pillow bilinear, black padding): max |diff| %s" % (
        int(np.abs(seen.astype(int) - geo["seen"].astype(int)).max()) if seen.shape == geo["seen"].shape else seen.shape))
    dets = inp["detections"]
    compare_dets("letterbox", dets, c, reference(c, maxdet=8), lambda b: to_picture(b, geo))
    clipped = sum(1 for d in dets for v, lim in zip(d["box"], (0, 0, 96, 64)) if v == lim)
    check(clipped > 0, "fixture: some box reaches beyond the picture (clipping exercised)")
    check(all(0 <= d["box"][0] < d["box"][2] <= 96 and 0 <= d["box"][1] < d["box"][3] <= 64 for d in dets),
          "boxes inside the 96x64 picture")
    check_files(out, inp, dets, (64, 64), (96, 64), False, ["hirescam", "guided-backprop"])


# ---- 4: no detection --------------------------------------------------------------------------------


def test_zero(fx, work):
    out = fresh(work, "zero")
    res = explain_ok("--score-threshold 1", ["explain", fx.det8_path, fx.pic_path, "--task", "detect", "--score-threshold", "1", "-o", out])
    if not res:
        return
    inp = res["inputs"][0]
    check(inp.get("detections") == [] and inp.get("layout") == "yolov8", "no detection: 'detections': [] (%r)" % inp.get("detections"))
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    check("No detection" in html, "report.html says 'No detection'")
    check(sorted(os.listdir(out)) == sorted(["results.json", "report.html", inp["input_image"]]),
          "no map files without a detection: %r" % sorted(os.listdir(out)))


# ---- 5: --box ----------------------------------------------------------------------------------------


def best_overlap(c, box_in, classes=None):
    """docs/detection.md's --box rule: of the candidates overlapping box_in by IoU >= 0.5 (double)
    the best score (ties: the lower anchor); without any, the highest IoU (ties: the higher score).
    Returns (anchor, its IoU, margin): margin > 0 when no float rounding can change the choice
    (every IoU away from 0.5, the winner's score or IoU clear of the runner-up's)."""
    b = c["box"].numpy().astype(np.float64)
    s = c["score"].numpy().astype(np.float64)
    ious = [(iou_np(box_in, b[a]), float(s[a]), a) for a in range(len(b)) if c["valid"][a]]
    edge = min(abs(t[0] - 0.5) for t in ious)
    over = sorted((t for t in ious if t[0] >= 0.5), key=lambda t: (-t[1], t[2]))
    if over:
        gap = over[0][1] - over[1][1] if len(over) > 1 else 1.0
        return over[0][2], over[0][0], min(edge, gap)
    ious.sort(key=lambda t: (-t[0], -t[1]))
    return ious[0][2], ious[0][0], min(edge, ious[0][0] - ious[1][0])


def test_box(fx, work):
    geo = letterbox_truth(fx.pic_path)
    with torch.no_grad():
        c = candidates(fx.det8(geo["x"]), "yolov8")
        cx = candidates(fx.det8(fx.x), "yolov8")
    (px, py), (sx, sy) = geo["pad"], geo["scale"]
    # a candidate that NMS drops, and its box: --box must still find it, whatever the thresholds
    kept = set(reference(cx, maxdet=10 ** 6))
    s = cx["score"].numpy()
    dropped = [a for a in np.argsort(-s, kind="stable") if cx["valid"][a] and a not in kept]
    check(bool(dropped), "fixture: NMS drops some candidate of det8 on x.npy")
    sup = int(dropped[0]) if dropped else 0
    sup_box = tuple(round(v, 2) for v in cx["box"][sup].tolist())
    top = int(np.argmax(np.where(c["valid"], c["score"].numpy(), -1)))
    picked = []
    for what, inp_path, cand, box, to_in, extra in (
            ("pic.png", fx.pic_path, c, (30, 20, 60, 45), lambda b: [b[0] * sx + px, b[1] * sy + py, b[2] * sx + px, b[3] * sy + py], []),
            ("pic.png", fx.pic_path, c, (2, 40, 20, 62), lambda b: [b[0] * sx + px, b[1] * sy + py, b[2] * sx + px, b[3] * sy + py], []),
            ("x.npy", fx.x_path, cx, (40, 5, 60, 20), lambda b: list(b), []),
            ("x.npy, a candidate NMS drops, --score-threshold 0.99", fx.x_path, cx, sup_box, lambda b: list(b),
             ["--score-threshold", "0.99"])):
        anchor, best, margin = best_overlap(cand, to_in(box))
        check(best > 0 and margin > 1e-4, "fixture %s --box %r: one clear choice (IoU %.5f, margin %.5f)" % (what, box, best, margin))
        picked.append((inp_path, anchor))
        out = fresh(work, "box")
        spec = ",".join("%g" % v for v in box)
        res = explain_ok("%s --box %s" % (what, spec), ["explain", fx.det8_path, inp_path, "--task", "detect", "--box", spec,
                                                       "-m", "hirescam", "-o", out, "-q"] + extra)
        if not res:
            continue
        dets = res["inputs"][0]["detections"]
        check(len(dets) == 1 and dets[0]["anchor"] == anchor and dets[0]["class"]["index"] == int(cand["cls"][anchor]),
              "%s --box %s: exactly the --box rule's candidate, anchor %d (IoU %.3f, score %.3f); got %r" % (
                  what, spec, anchor, best, float(cand["score"][anchor]), [(d["anchor"], d["class"]["index"]) for d in dets]))
        if len(dets) == 1 and dets[0]["anchor"] == anchor:
            check(maxdiff(dets[0]["box_input"], cand["box"][anchor].tolist()) <= BOX_TOL
                  and abs(dets[0]["score"] - float(cand["score"][anchor])) <= SCORE_TOL,
                  "%s --box %s: its box and score" % (what, spec))
    check(any(a != top for p_, a in picked if p_ == fx.pic_path) and float(cx["score"][picked[-1][1]]) < 0.99,
          "fixture: the --box cases pick other candidates than the best-scoring one, and one under the score threshold "
          "(%r, top %d, dropped %d)" % (picked, top, sup))
    # a box overlapping nothing: that input fails (exit 3), its files are gone; the folder is as it was
    out = fresh(work, "boxnone")
    os.makedirs(out)
    open(os.path.join(out, "keep.txt"), "w").close()
    before = folder_state(out)
    p = run(["explain", fx.det8_path, fx.pic_path, "--task", "detect", "--box", "2000,2000,2010,2010", "-o", out])
    lines = message_lines(p.stderr)
    check(p.returncode == 3 and len(lines) == 1 and "pic.png" in lines[0] and "--box" in lines[0] and "overlap" in lines[0],
          "--box overlapping nothing: exit 3, one line naming the input and the box (%d %r)" % (p.returncode, p.stderr))
    check(folder_state(out) == before, "--box overlapping nothing: the output folder unchanged (%r)" % folder_state(out))
    # in a batch: the other input is explained, the failed one leaves no file
    out = fresh(work, "boxbatch")
    p = run(["explain", fx.det8_path, fx.pic_path, fx.big_path, "--task", "detect", "--box", "500,500,600,600", "-m",
             "hirescam", "-o", out, "-q"])
    check(p.returncode == 3 and "pic.png" in p.stderr and "big.png" not in p.stderr,
          "--box in a batch: exit 3, the failing input named (%d %r)" % (p.returncode, p.stderr))
    if os.path.isfile(os.path.join(out, "results.json")):
        r = load(out)
        check([os.path.basename(i["path"]) for i in r["inputs"]] == ["big.png"] and len(r["inputs"][0]["detections"]) == 1
              and [os.path.basename(f["path"]) for f in r["failures"]] == ["pic.png"],
              "--box in a batch: big.png explained (one detection), pic.png listed as failed")
        check(not [f for f in os.listdir(out) if f.startswith("pic")], "no file of the failed input: %r" % os.listdir(out))
    else:
        check(False, "--box in a batch: results.json written for the input that worked")


# ---- 6: errors -----------------------------------------------------------------------------------------


def test_errors(fx, work):
    out = fresh(work, "err")
    os.makedirs(out)
    open(os.path.join(out, "keep.txt"), "w").close()
    before = folder_state(out)
    det, x = fx.det8_path, fx.x_path
    p = run(["explain", "--help"])
    check(p.returncode == 0 and "2 usage error" in p.stdout and "3 bad model" in p.stdout and "--task" in p.stdout
          and "--box" in p.stdout, "6: explain --help documents --task, --box and the exit status 2 (usage) and 3 (bad model/input)")
    usage = [
        (["--task", "bogus"], "--task"),
        (["--task", "detect", "--detections", "bogus"], "--detections"),
        (["--task", "detect", "--score-threshold", "2"], "--score-threshold"),
        (["--task", "detect", "--iou-threshold", "-0.5"], "--iou-threshold"),
        (["--task", "detect", "--max-detections", "0"], "--max-detections"),
        (["--task", "detect", "--max-detections", "65"], "--max-detections"),
        (["--task", "detect", "--box", "1,2,3"], "--box"),
        (["--task", "detect", "--box", "5,5,1,1"], "--box"),
        (["--box", "1,2,3,4"], "--box needs --task detect"),
        (["--task", "detect", "--target", "class:1"], "--target"),
    ]
    for extra, text in usage:
        p = run(["explain", det, x, "-o", out] + extra)
        lines = message_lines(p.stderr)
        check(p.returncode == 2 and len(lines) == 1 and text in lines[0] and p.stdout == "",
              "6: %s: exit 2 (usage), one line with %r (got %d: %r)" % (" ".join(extra), text, p.returncode, p.stderr))
        check(folder_state(out) == before, "6: %s: output folder unchanged" % " ".join(extra))
    layouts = ("yolov8", "yolov5")
    bad = [
        ("a classifier", [fx.cls10_path, x], [], ["'logits'", "(1, 10)"] + list(layouts)),
        ("an ambiguous (1, 84, 84)", [fx.amb84_path, fx.zeros84_path], [], ["'output0'", "(1, 84, 84)", "cannot tell"] + list(layouts)),
        ("yolov5 on (1, 6, 5)", [fx.s65_path, fx.zeros5_path], ["--detections", "yolov5"], ["'output0'", "(1, 6, 5)", "yolov5", "fit"]),
        ("auto on (1, 6, 5)", [fx.s65_path, fx.zeros5_path], [], ["(1, 6, 5)", "cannot tell"]),
    ]
    for what, pos, extra, texts in bad:
        p = run(["explain"] + pos + ["--task", "detect", "-o", out] + extra)
        lines = message_lines(p.stderr)
        check(p.returncode == 3 and len(lines) == 1 and all(t in lines[0] for t in texts),
              "6: %s: exit 3 (bad model), one line with %r (got %d: %r)" % (what, texts, p.returncode, p.stderr))
        check(folder_state(out) == before, "6: %s: output folder unchanged (%r)" % (what, folder_state(out)))
    # naming the layout settles a shape auto cannot read
    for what, model, xin, layout, ref_model, zeros in (
            ("(1, 84, 84) with --detections yolov8", fx.amb84_path, fx.zeros84_path, "yolov8", fx.amb, (1, 3, 1, 84)),
            ("(1, 6, 5) with --detections yolov8", fx.s65_path, fx.zeros5_path, "yolov8", None, None)):
        o2 = fresh(work, "settle")
        res = explain_ok(what, ["explain", model, xin, "--task", "detect", "--detections", layout, "-m", "gradient",
                                "--max-detections", "4", "-o", o2, "-q"])
        if not res:
            continue
        inp = res["inputs"][0]
        check(inp.get("layout") == layout and res["options"]["detections"].get("layout") == layout,
              "%s: layout %s in results.json" % (what, layout))
        if ref_model is not None:
            with torch.no_grad():
                c = candidates(ref_model(torch.zeros(*zeros)), layout)
            sane(what, c, 0.25, 0.45, 4)
            compare_dets(what, inp["detections"], c, reference(c, maxdet=4), lambda b: identity_clip(b, 84, 1))
        else:
            check([d["anchor"] for d in inp["detections"]] == [0, 1, 2, 4], "%s: anchors 0, 1, 2, 4 (%r)" % (
                what, [d["anchor"] for d in inp["detections"]]))


# ---- 7: report.html in Chromium ------------------------------------------------------------------------

REPORT_FACTS = r"""
(() => {
  const sec = Array.from(document.querySelectorAll('section.input')).map(s => {
    const img = s.querySelector('div.det img');
    const svg = s.querySelector('div.det svg');
    let pic = null;
    if (img) {
      const r = img.getBoundingClientRect(), cs = getComputedStyle(img);
      pic = {nw: img.naturalWidth, nh: img.naturalHeight, complete: img.complete,
             left: r.left + parseFloat(cs.borderLeftWidth) + parseFloat(cs.paddingLeft),
             top: r.top + parseFloat(cs.borderTopWidth) + parseFloat(cs.paddingTop),
             w: parseFloat(cs.width) - (cs.boxSizing === 'border-box' ? parseFloat(cs.borderLeftWidth) + parseFloat(cs.borderRightWidth) : 0),
             h: parseFloat(cs.height) - (cs.boxSizing === 'border-box' ? parseFloat(cs.borderTopWidth) + parseFloat(cs.borderBottomWidth) : 0)};
    }
    const rects = svg ? Array.from(svg.querySelectorAll('rect')).map(e => {
      const m = e.getScreenCTM(), bb = e.getBBox();
      const p0 = new DOMPoint(bb.x, bb.y).matrixTransform(m), p1 = new DOMPoint(bb.x + bb.width, bb.y + bb.height).matrixTransform(m);
      return [p0.x, p0.y, p1.x, p1.y];
    }) : [];
    const sr = svg ? svg.getBoundingClientRect() : null;
    return {
      path: s.querySelector('h2').textContent,
      svg_rect: sr ? [sr.left, sr.top, sr.width, sr.height] : null,
      rows: Array.from(s.querySelectorAll('table.dets tbody tr')).map(tr => Array.from(tr.cells).map(c => c.textContent)),
      pic: pic, rects: rects,
      svg_labels: svg ? Array.from(svg.querySelectorAll('text')).map(t => t.textContent) : [],
      maprows: Array.from(s.querySelectorAll('div.row')).map(r => ({
        title: r.querySelector('h3').textContent,
        imgs: Array.from(r.querySelectorAll('img')).map(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)})),
      nodet: s.textContent.includes('No detection'),
    };
  });
  return JSON.stringify({sections: sec, scroll_w: document.documentElement.scrollWidth, inner_w: window.innerWidth,
                         not_loaded: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length});
})()
"""


def test_chromium(fx, work, exe):
    if not check(os.access(exe, os.X_OK), "7: %s not found: install Debian's 'chromium' package (deps/debian-packages.txt)" % exe):
        return
    try:
        from test_report_chromium import Chromium  # the project's DevTools-over-a-pipe driver
    except Exception as e:  # noqa: BLE001
        check(False, "7: cannot import the Chromium driver of tests/test_report_chromium.py: %r" % e)
        return
    out = fresh(work, "html")
    res = explain_ok("report", ["explain", fx.det8_path, fx.pic_path, fx.x_path, "--task", "detect", "--labels", fx.labels_path,
                                "-m", "hirescam,guided-backprop", "--max-detections", "5", "-o", out, "-q"])
    if not res:
        return
    page = os.path.join(out, "report.html")
    profile = tempfile.mkdtemp(prefix="gcam-chromium-")
    log = open(os.path.join(work, "chromium_detect.log"), "wb")
    facts = None
    br = Chromium(exe, profile, log)
    try:
        target = br.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sess = br.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        br.send("Page.enable", session=sess)
        br.send("Emulation.setDeviceMetricsOverride", {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False},
                session=sess)
        br.events.clear()
        br.send("Page.navigate", {"url": "file://" + page}, session=sess)
        br.wait_event("Page.loadEventFired", timeout=60)
        facts = json.loads(br.send("Runtime.evaluate", {"expression": REPORT_FACTS, "returnByValue": True}, session=sess)["result"]["value"])
    except Exception as e:  # noqa: BLE001
        check(False, "7: Chromium could not load report.html: %r" % e)
    finally:
        br.close()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
    if not facts:
        return
    secs = facts["sections"]
    check(len(secs) == len(res["inputs"]) == 2, "7: one section per input (%d)" % len(secs))
    check(facts["not_loaded"] == 0, "7: every image of the page decoded (%d not)" % facts["not_loaded"])
    check(facts["scroll_w"] <= facts["inner_w"], "7: no horizontal scrolling at 1366 px (%d)" % facts["scroll_w"])
    for s, inp in zip(secs, res["inputs"]):
        name = os.path.basename(inp["path"])
        dets = inp["detections"]
        check(len(dets) == 5, "fixture: 5 detections on %s (%d)" % (name, len(dets)))
        rows = s["rows"]
        check(len(rows) == len(dets) and all(r[2] == LABELS[d["class"]["index"]] and r[1] == str(d["class"]["index"])
                                            for r, d in zip(rows, dets)),
              "7 %s: the detections table has one row per detection with its class and label: %r" % (name, rows))
        pic = s["pic"]
        W, H = (inp["width"], inp["height"]) if inp["kind"] == "image" else (64, 64)
        if not check(pic is not None and pic["complete"] and (pic["nw"], pic["nh"]) == (W, H),
                     "7 %s: the picture is shown at its %dx%d pixels (%r)" % (name, W, H, pic)):
            continue
        check(len(s["rects"]) == len(dets), "7 %s: one SVG <rect> per detection (%d for %d)" % (name, len(s["rects"]), len(dets)))
        sv = s["svg_rect"]
        check(sv is not None and maxdiff(sv, (pic["left"], pic["top"], pic["w"], pic["h"])) <= 0.5,
              "7 %s: the SVG's viewBox lies on the picture's pixels (left, top, width, height): SVG %r, picture %r" % (
                  name, sv and [round(v, 2) for v in sv], [round(v, 2) for v in (pic["left"], pic["top"], pic["w"], pic["h"])]))
        kx, ky = pic["w"] / W, pic["h"] / H
        worst, where = 0.0, None
        for r, d in zip(s["rects"], dets):
            want = [pic["left"] + d["box"][0] * kx, pic["top"] + d["box"][1] * ky, pic["left"] + d["box"][2] * kx,
                    pic["top"] + d["box"][3] * ky]
            e = maxdiff(r, want)
            if e > worst:
                worst, where = e, (r, want)
        check(worst <= 1.0, "7 %s: each <rect> lies on its box as the picture is displayed (to 1 CSS px): worst %.3f px, "
              "rect %r vs box %r; the SVG covers %r, the picture's pixels %r" % (
                  name, worst, [round(v, 2) for v in where[0]], [round(v, 2) for v in where[1]], [round(v, 2) for v in s["svg_rect"]],
                  [round(v, 2) for v in (pic["left"], pic["top"], pic["w"], pic["h"])]))
        check(all(lb.split(" ")[1] == LABELS[d["class"]["index"]] for lb, d in zip(s["svg_labels"], dets)),
              "7 %s: each box is labelled with its class name: %r" % (name, s["svg_labels"]))
        mr = s["maprows"]
        check(len(mr) == len(dets) and all(m["title"].startswith("detection %d" % i) and LABELS[d["class"]["index"]] in m["title"]
                                          for i, (m, d) in enumerate(zip(mr, dets))),
              "7 %s: one row of maps per detection, titled with its rank and label: %r" % (name, [m["title"] for m in mr]))
        check(all(m["imgs"] and all(m["imgs"]) for m in mr), "7 %s: every map row shows loaded images (naturalWidth > 0)" % name)


def main():
    global GRADCAM
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    GRADCAM, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    exe = sys.argv[3] if len(sys.argv) > 3 else "/usr/bin/chromium"
    only = sys.argv[4].split(",") if len(sys.argv) > 4 else None
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.time()
    fx = make_fixtures(work)
    print("fixtures: %.1f s" % (time.time() - t0), flush=True)
    tests = [test_parity, test_gradients, test_options, test_exact, test_letterbox, test_zero, test_box, test_errors,
             lambda f, w: test_chromium(f, w, exe)]
    names = ["parity", "gradients", "options", "exact", "letterbox", "zero", "box", "errors", "chromium"]
    for name, t in zip(names, tests):
        if only and name not in only:
            continue
        print("== " + name, flush=True)
        t1 = time.time()
        try:
            t(fx, work)
        except Exception as e:  # a crash in one group is a failure; the others still run
            import traceback
            traceback.print_exc()
            check(False, "%s raised %r" % (name, e))
        print("   (%.1f s)" % (time.time() - t1), flush=True)
    print("total %.1f s" % (time.time() - t0))
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
