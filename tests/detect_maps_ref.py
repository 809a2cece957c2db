#!/usr/bin/python3
"""Detection maps against PyTorch (issue #18): `gradcam explain --task detect --npy` on seeded
random-weight detectors, every detection's raw maps compared with the formulas of
docs/methods.md written again on PyTorch autograd.

Usage: /usr/bin/python3 tests/detect_maps_ref.py GRADCAM_BINARY WORKDIR

Models (exported here, opset 13): two-level detectors in miniature (a backbone, a neck whose
stride-8 map also feeds the stride-16 level, per level a box branch and a class branch reading the
level's neck map), ReLU activations (so that Guided Backpropagation's rule matters), BatchNorm with
seeded statistics; "v8" writes YOLOv8's (1, 4 + C, A), "v5" YOLOv5's (1, A, 5 + C) with objectness,
whose detection score is a product of two outputs (a GCAM_TARGET_PRODUCT); and the committed demo
detector (examples/detect/shapes_detector.onnx, its PyTorch twin rebuilt from the file by
train_detector.Detector.from_onnx) on a generated scene.

Checked per detection (the same list as torchvision's batched_nms on PyTorch's output):
  - the automatic layers are, per level, the input of the Conv making the class scores
    (docs/detection.md);
  - gradcam, hirescam, gradcam++, xgradcam, layercam (two layers: each layer's map min-max
    normalised at its resolution, upsampled bilinearly, averaged), gradient, guided-backprop,
    guided-gradcam: max|ours - ref| <= 1e-4 max|ref|; scorecam (the product scored on masked
    inputs): 1e-3.
The input is drawn (seeded) until every ReLU input is at least 1e-4 of its tensor's maximum away
from 0 in float64, so float32 rounding on any CPU cannot flip a unit (tests/methods_ref.py's rule).
"""
import json
import math
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError as e:  # fail, never skip
    sys.stderr.write("detect_maps_ref.py: FAILED: cannot import numpy/torch/torchvision (%s)\n" % e)
    sys.exit(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import methods_ref as mr  # noqa: E402  (the formulas: cam_family, upsample, minmax, ReLU rules)

SIZE, C = 64, 3
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_ONNX = os.path.join(TOP, "examples", "detect", "shapes_detector.onnx")
TOL, TOL_SLOW = 1e-4, 1e-3
KINK_MARGIN = 1e-4
METHODS = ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "gradient", "guided-backprop",
           "guided-gradcam", "scorecam"]
FAILS = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        FAILS.append(msg)


def cbr(i, o, s=1):
    return nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.BatchNorm2d(o), nn.ReLU())


class Det(nn.Module):
    def __init__(self, layout):
        super().__init__()
        self.layout = layout
        self.b1 = nn.Sequential(cbr(3, 8, 2), cbr(8, 16, 2), cbr(16, 16, 2))  # stride 8
        self.b2 = cbr(16, 24, 2)                                              # stride 16
        self.down = cbr(16, 24, 2)
        self.p4 = cbr(48, 24)
        nobj = 1 if layout == "v5" else 0
        self.box = nn.ModuleList([nn.Sequential(cbr(16, 16), nn.Conv2d(16, 4, 1)),
                                  nn.Sequential(cbr(24, 16), nn.Conv2d(16, 4, 1))])
        self.cls = nn.ModuleList([nn.Sequential(cbr(16, 16), nn.Conv2d(16, C + nobj, 1)),
                                  nn.Sequential(cbr(24, 16), nn.Conv2d(16, C + nobj, 1))])
        self.feats = []

    def forward(self, x):
        p3 = self.b1(x)
        p4 = self.p4(torch.cat([self.b2(p3), self.down(p3)], 1))
        self.feats = []  # per level the class branch's map under its last Conv: the CAM layers
        outs = []
        for lv, (p, st) in enumerate([(p3, 8), (p4, 16)]):
            hid = self.cls[lv][0](p)
            self.feats.append(hid)
            b, c = self.box[lv](p), torch.sigmoid(self.cls[lv][1](hid))
            n, _, h, w = b.shape
            gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                    indexing="ij")
            cx, cy = (gx + 0.5 + torch.tanh(b[:, 0])) * st, (gy + 0.5 + torch.tanh(b[:, 1])) * st
            bw, bh = torch.exp(b[:, 2].clamp(-3, 3)) * st * 2, torch.exp(b[:, 3].clamp(-3, 3)) * st * 2
            o = torch.cat([torch.stack([cx, cy, bw, bh], 1), c], 1)
            outs.append(o.reshape(n, o.shape[1], h * w))
        out = torch.cat(outs, 2)  # (1, 4 + C [+ 1], A)
        if self.layout == "v5":  # fields: cx cy w h obj classes
            out = out.transpose(1, 2)
        return out


def build(layout, seed):
    torch.manual_seed(seed)
    m = Det(layout)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.1, 0.3)
    return m.eval()


def relu_margin(model, x):
    worst = [math.inf]
    m64 = build(model.layout, 0).double()
    m64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()})

    def hook(mod, inp):
        v = inp[0].detach().abs()
        worst[0] = min(worst[0], float(v.min() / v.max()))

    hs = [mod.register_forward_pre_hook(hook) for mod in m64.modules() if isinstance(mod, nn.ReLU)]
    with torch.no_grad():
        m64(x.double())
    for h in hs:
        h.remove()
    return worst[0]


def draw_input(model, seed):
    for attempt in range(200):
        g = torch.Generator().manual_seed(seed * 1000 + attempt)
        x = torch.rand(1, 3, SIZE, SIZE, generator=g)
        if relu_margin(model, x) >= KINK_MARGIN:
            return x
    raise RuntimeError("no input in 200 draws keeps a ReLU margin of %g" % KINK_MARGIN)


def head_names(onnx_path):
    """Per level the input of the Conv making the class scores (docs/detection.md)."""
    import onnx
    g = onnx.load(onnx_path).graph
    want = {}
    for n in g.node:
        for lv in (0, 1):
            if n.op_type == "Conv" and n.name == "/cls.%d.1/Conv" % lv:
                want[lv] = n.input[0]
    return [want[0], want[1]]


def decode(out, layout, thr, iou):
    """PyTorch's detections: (anchor, class, score, box) best first (torchvision batched_nms)."""
    o = out[0] if layout == "v5" else out[0].T  # (A, fields)
    box, rest = o[:, :4], o[:, 4:]
    if layout == "v5":
        sc = rest[:, :1] * rest[:, 1:]
    else:
        sc = rest
    score, cls = sc.max(1)
    keep = score >= thr
    idx = torch.nonzero(keep).flatten()
    xyxy = torchvision.ops.box_convert(box[idx], "cxcywh", "xyxy")
    k = torchvision.ops.batched_nms(xyxy.double(), score[idx].double(), cls[idx], iou)
    return [(int(idx[j]), int(cls[idx[j]]), float(score[idx[j]])) for j in k]


def target_value(out, layout, a, c):
    if layout == "v8":
        return out[0, 4 + c, a]
    return out[0, a, 4] * out[0, a, 5 + c]


def grads(model, x, layout, a, c, rule="standard"):
    mr.RULE[0] = rule
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    feats = model.feats
    y = target_value(out, layout, a, c)
    g = torch.autograd.grad(y, feats + [xr])
    mr.RULE[0] = "standard"
    return [f.detach().double().numpy()[0] for f in feats], [t.double().numpy()[0] for t in g[:2]], g[2].double().numpy()


def multi(layer_maps, size):
    """docs/methods.md: each layer normalised, upsampled to the input, averaged."""
    acc = np.zeros((1, 1, size, size))
    for m in layer_maps:
        acc += mr.upsample(mr.minmax(m[None, None]), size, size) / len(layer_maps)
    return acc[0, 0]


def scorecam_layer(model, x, layout, a, c, A):
    """A: (K, h, w) float64 numpy of one layer. Masks as in methods_ref.scorecam; target = the product."""
    At = torch.from_numpy(A[None]).float()
    up = F.interpolate(At, size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)[0]
    lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
    const = hi <= lo
    m = torch.where(const, torch.zeros_like(up), (up - lo) / torch.where(const, torch.ones_like(hi), hi - lo))
    s = []
    with torch.no_grad():
        for k in range(m.shape[0]):
            s.append(float(target_value(model(x * m[k][None, None]), layout, a, c)))
    return mr.relu(np.tensordot(np.array(s), A, 1))


def compare(name, ours, ref, tol):
    err = float(np.abs(ours - ref).max())
    scale = float(np.abs(ref).max())
    check(err <= tol * max(scale, 1e-30) and scale > 0,
          "%s: max|ours - ref| %.2e <= %g x max|ref| (%.2e)" % (name, err, tol, scale))


class Demo(nn.Module):
    """The demo detector (examples/detect, rebuilt from its ONNX file), its CAM layers hooked: per
    level the class branch's map under its last Conv. SiLU only: no ReLU rule applies."""

    def __init__(self):
        super().__init__()
        sys.path.insert(0, os.path.join(TOP, "examples", "detect"))
        import train_detector
        self.m = train_detector.Detector.from_onnx(DEMO_ONNX)
        self.layout, self.feats = "v8", []
        for br in self.m.cv3:
            br[1].register_forward_hook(lambda mod, i, o: self.feats.append(o))

    def forward(self, x):
        self.feats = []
        return self.m(x)


def demo_case(binary, work):
    """The committed demo detector on a generated scene (x = RGB / 255, fed as .npy)."""
    sys.path.insert(0, os.path.join(TOP, "examples", "detect"))
    import scenes
    d = os.path.join(work, "demo")
    os.makedirs(d, exist_ok=True)
    rgb = scenes.scene((18004, 0), classes=[0, 1, 2])[0]
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])).float() / 255.0
    np.save(os.path.join(d, "x.npy"), x.numpy())
    want = ["/cv3.0/cv3.0.1/act/Mul_output_0", "/cv3.1/cv3.1.1/act/Mul_output_0"]
    compare_case(binary, d, "demo", Demo().eval(), x, DEMO_ONNX, 0.25, want, 3)


def run_case(binary, work, layout, seed, thr):
    d = os.path.join(work, layout)
    os.makedirs(d, exist_ok=True)
    model = build(layout, seed)
    x = draw_input(model, seed)
    onnx_path = os.path.join(d, "det.onnx")
    torch.onnx.export(model, x, onnx_path, opset_version=13, do_constant_folding=True, input_names=["images"],
                      output_names=["output0"])
    np.save(os.path.join(d, "x.npy"), x.numpy())
    mr.install_rules(model)  # ReLU modules now carry the backward rules (forward unchanged)
    compare_case(binary, d, layout, model, x, onnx_path, thr, head_names(onnx_path), 3)


def compare_case(binary, d, name, model, x, onnx_path, thr, want_layers, min_dets):
    layout = model.layout
    with torch.no_grad():
        out = model(x)
    dets = decode(out, layout, thr, 0.45)
    outdir = os.path.join(d, "out")
    p = subprocess.run([binary, "explain", onnx_path, os.path.join(d, "x.npy"), "--task", "detect", "--npy", "-q",
                        "--score-threshold", str(thr), "-m", ",".join(METHODS), "-o", outdir],
                       capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, "%s: gradcam explain exits 0 (%d: %s)" % (name, p.returncode, p.stderr.strip()))
    if p.returncode:
        return
    res = json.load(open(os.path.join(outdir, "results.json")))
    check(res["model"]["layers"] == want_layers,
          "%s: automatic layers %s are the maps the class scores are computed from" % (name, res["model"]["layers"]))
    got = res["inputs"][0]["detections"]
    check(len(dets) >= min_dets, "%s: the case has %d detections (>= %d)" % (name, len(dets), min_dets))
    check([(g["anchor"], g["class"]["index"]) for g in got] == [(a, c) for a, c, _ in dets],
          "%s: detections (anchor, class) equal torchvision's batched_nms" % name)
    for di, (a, c, sc) in enumerate(dets[:len(got)]):
        feats, G, gx = grads(model, x, layout, a, c)
        with np.errstate(invalid="ignore", divide="ignore"):  # Eigen-CAM's gap, unused here
            per = [mr.cam_family(A, g)[0] for A, g in zip(feats, G)]
        ref = {m: multi([pl[m] for pl in per], x.shape[2]) for m in ("gradcam", "hirescam", "gradcam++", "xgradcam", "layercam")}
        ref["gradient"] = gx[0]
        _, _, gg = grads(model, x, layout, a, c, "guided")
        ref["guided-backprop"] = gg[0]
        ref["guided-gradcam"] = gg[0] * ref["gradcam"][None]
        ref["scorecam"] = multi([scorecam_layer(model, x, layout, a, c, A) for A in feats], x.shape[2])
        maps = {m["method"]: m for m in got[di]["maps"]}
        for meth in METHODS:
            ours = np.load(os.path.join(outdir, maps[meth]["npy"])).astype(np.float64)
            compare("%s d%d (anchor %d, class %d) %s" % (name, di, a, c, meth), ours.reshape(ref[meth].shape),
                    ref[meth], TOL_SLOW if meth == "scorecam" else TOL)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(1)
    run_case(binary, work, "v8", 1, 0.55)
    run_case(binary, work, "v5", 2, 0.3)
    demo_case(binary, work)
    print("detect_maps_ref: %d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
