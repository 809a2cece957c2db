#!/usr/bin/python3
"""Segmentation maps against PyTorch: `gradcam explain --task segment --npy`, every segment's raw
maps compared with the formulas of docs/methods.md written again on PyTorch autograd (float64).

Usage: /usr/bin/python3 tests/segment_maps_ref.py GRADCAM_BINARY WORKDIR

A segment is a class present in the per-pixel argmax of the output (N, C, H, W); its target is the
sum of that class's scores (the output as is) over the pixels predicted as that class
(GCAM_TARGET_MASK). Checked per segment, in both cases:
  - the segments are the classes of PyTorch's argmax, in class order, and "pixels" is PyTorch's
    count of pixels predicted as that class;
  - the CAM layer named in results.json is the tensor hooked here;
  - gradcam, hirescam, gradcam++, xgradcam, layercam, gradient, guided-backprop, guided-gradcam:
    max|ours - ref| <= 1e-4 max|ref|; scorecam (masked inputs scored by the segment's target,
    the mask fixed): 1e-3.
Guided Backpropagation changes only ReLU (tests/methods_ref.py's install_rules replaces the nn.ReLU
modules; the number of ReLU module calls is checked against the Relu nodes of the ONNX file, so
that no functional relu escapes the rule). Hardswish, Hardsigmoid and Sigmoid keep their derivative.

Cases:
  (a) the demo segmenter (examples/segment/shapes_segmenter.onnx, rebuilt in PyTorch by
      Segmenter.from_onnx) on one generated scene (examples/detect/scenes.py, DEMO_SCENE), input
      given as .npy (RGB / 255), automatic layer (/dec1/act/Relu_output_0, the ConvTranspose's input).
  (b) torchvision's lraspp_mobilenet_v3_large, 4 classes, seeded random weights (weights_backbone
      None; BatchNorm affine parameters seeded, running statistics from a seeded batch; eval mode),
      exported here at 96x96 (opset 13, output "out" only), on a seeded random .npy input; run twice:
      the automatic layer (/m/classifier/Add_output_0: the class scores at 1/8 before the final
      Resize) and -l the backbone's "high" feature map (the input of the head's cbr Conv,
      960 x 6 x 6: ReLU, Sigmoid, Mul, Resize, Conv, Add, Resize after it). Score-CAM at the
      automatic layer only (960 channels would be 960 forwards).

Kinks (tests/methods_ref.py's rule): float32 rounding must not put a unit on the other side of a
kink than float64 does. Checked in float64: every ReLU input (distance from 0), every Hardswish /
Hardsigmoid input (distance from -3 and 3) relative to its tensor's max|.|, and the per-pixel argmax
(gap between the two best scores relative to max|output|; a flipped pixel changes the target).
  - lraspp: the input is drawn until all of them are >= 1e-4. With plain random BatchNorm about 70
    of its 430k ReLU inputs lie within 1e-4 in every draw, so the BatchNorms before a ReLU are set
    to centre each channel 3.5-4.5 standard deviations (of the calibration batch) away from 0, on
    a seeded random side (channels mostly on or off), and those before a Hardswish to a small scale.
  - demo segmenter: a trained network on a picture. Every scene has 220-500 of its 340k ReLU
    inputs within 1e-4 of their tensor's max (20 scenes measured; 322 in DEMO_SCENE), so the 1e-4
    rule cannot hold for any scene; DEMO_SCENE is, of the scenes (18100, 0..2999) in which all four
    classes are predicted with an argmax gap >= 1e-4, the one whose smallest ReLU margin is the
    largest (2.13e-6), and the test asserts DEMO_KINK_MARGIN = 2e-6: 5x PyTorch's float32 forward
    error on this model (3.6e-7 .. 5.7e-7 of the tensor's max, 8 scenes measured). The CAM-family
    maps at the automatic layer do not depend on it (no ReLU after that layer); the pixel-space
    maps do.
"""
import copy
import json
import math
import os
import subprocess
import sys
import time

try:
    import numpy as np
    import onnx
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError as e:  # fail, never skip
    sys.stderr.write("segment_maps_ref.py: FAILED: cannot import numpy/onnx/torch/torchvision (%s)\n" % e)
    sys.exit(1)

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
SEG = os.path.join(TOP, "examples", "segment")
sys.path.insert(0, HERE)
sys.path.insert(0, SEG)
sys.path.insert(0, os.path.join(TOP, "examples", "detect"))
import methods_ref as mr  # noqa: E402  (the formulas: cam_family, upsample, minmax, ReLU rules)

TOL, TOL_SLOW = 1e-4, 1e-3
KINK_MARGIN = 1e-4
DEMO_SCENE = (18100, 2110)
DEMO_KINK_MARGIN = 2e-6
LR_SIZE, LR_CLASSES, LR_SEED = 96, 4, 7
CAM = ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam"]
PIXEL = ["gradient", "guided-backprop", "guided-gradcam"]
HIGH_METHODS = ["gradcam", "hirescam", "layercam", "guided-gradcam"]  # see pole_note
FAILS = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg, flush=True)
    if not ok:
        FAILS.append(msg)


def compare(name, ours, ref, tol):
    err = float(np.abs(ours - ref).max())
    scale = float(np.abs(ref).max())
    check(err <= tol * max(scale, 1e-30) and scale > 0,
          "%s: max|ours - ref| / max|ref| = %.1e <= %g (max|ref| %.3g)" % (name, err / max(scale, 1e-30), tol, scale))


# ---- kinks ------------------------------------------------------------------------------------

def kink_margins(model, forward, x):
    """float64 forward: (smallest ReLU margin, smallest Hardswish/Hardsigmoid margin, ReLU inputs
    within KINK_MARGIN, ReLU module calls), margins relative to each tensor's max|.|."""
    st = {"relu": math.inf, "hard": math.inf, "near": 0, "calls": 0}

    def on_relu(mod, inp):  # before the call: torchvision's ReLUs work in place
        v = inp[0].detach().abs()
        mx = v.max()
        st["relu"] = min(st["relu"], float(v.min() / mx))
        st["near"] += int((v < KINK_MARGIN * mx).sum())
        st["calls"] += 1

    def on_hard(mod, inp):
        v = inp[0].detach()
        d = torch.minimum((v - 3).abs(), (v + 3).abs())
        st["hard"] = min(st["hard"], float(d.min() / v.abs().max()))

    hs = [m.register_forward_pre_hook(on_relu) for m in model.modules() if isinstance(m, (nn.ReLU, mr.RuleReLU))]
    hs += [m.register_forward_pre_hook(on_hard) for m in model.modules()
           if isinstance(m, (nn.Hardswish, nn.Hardsigmoid))]
    with torch.no_grad():
        out = forward(x.double())
    for h in hs:
        h.remove()
    return st, out


def argmax_gap(out):
    """Smallest gap between the best and second-best score of a pixel, over max|output|."""
    top2 = out[0].topk(2, 0).values
    return float((top2[0] - top2[1]).min() / out.abs().max())


def onnx_relus(path):
    g = onnx.load(path).graph
    return sum(n.op_type == "Relu" for n in g.node), sum(n.op_type == "Clip" for n in g.node)


def producer(path, tensor):
    for n in onnx.load(path).graph.node:
        if tensor in n.output:
            return n.name
    return None


# ---- the reference ----------------------------------------------------------------------------

class Case:
    """forward(x, keep) -> the output (1, K, H, W); keep[i] set to the hooked tensors."""

    def __init__(self, name, forward, nlayers):
        self.name, self.forward, self.nlayers = name, forward, nlayers

    def grads(self, x, c, mask, rule="standard"):
        """A_l, dy/dA_l (numpy float64) for every hooked layer, and dy/dx; y = sum of class c's
        scores over mask (numpy bool (H, W))."""
        mr.RULE[0] = rule
        xr = x.double().clone().requires_grad_(True)
        keep = [None] * self.nlayers
        out = self.forward(xr, keep)
        y = (out[0, c] * torch.from_numpy(mask.astype(np.float64))).sum()
        g = torch.autograd.grad(y, keep + [xr])
        mr.RULE[0] = "standard"
        return ([a.detach().numpy()[0] for a in keep], [t.numpy()[0] for t in g[:-1]], g[-1].numpy()[0])

    def score(self, x, c, mask):
        with torch.no_grad():
            return float((self.forward(x.double(), [None] * self.nlayers)[0, c] *
                          torch.from_numpy(mask.astype(np.float64))).sum())


def scorecam(case, x, c, mask, A):
    """docs/methods.md: A (K, h, w) float64; masks upsampled bilinearly to the input, min-max
    normalised per channel (constant -> 0); s_k = the segment's target on x * M_k (mask fixed)."""
    H, W = x.shape[2:]
    up = mr.upsample(A[None], H, W)[0]
    s = []
    for k in range(A.shape[0]):
        lo, hi = up[k].min(), up[k].max()
        m = (up[k] - lo) / (hi - lo) if hi > lo else np.zeros_like(up[k])
        s.append(case.score(x.double() * torch.from_numpy(m)[None, None], c, mask))
    return mr.relu(np.tensordot(np.array(s), A, 1))


def refs(case, x, c, mask, li, with_scorecam):
    """Every method's reference map for the segment (class c, pixels mask) at hooked layer li."""
    As, Gs, gx = case.grads(x, c, mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = dict(mr.cam_family(As[li], Gs[li])[0])
    ref = {m: ref[m] for m in CAM}
    H, W = x.shape[2:]
    ref["gradient"] = gx
    _, _, gg = case.grads(x, c, mask, "guided")
    ref["guided-backprop"] = gg
    ref["guided-gradcam"] = gg * mr.upsample(ref["gradcam"][None, None], H, W)[0]
    if with_scorecam:
        ref["scorecam"] = scorecam(case, x, c, mask, As[li])
    return ref


def explain(binary, onnx_path, xnpy, outdir, methods, extra=()):
    p = subprocess.run([binary, "explain", onnx_path, xnpy, "--task", "segment", "--npy", "-q", "-m",
                        ",".join(methods), "-o", outdir] + list(extra), capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, "%s: gradcam explain exits 0 (%d: %s)" % (outdir, p.returncode, p.stderr.strip()))
    if p.returncode:
        return None
    return json.load(open(os.path.join(outdir, "results.json")))


def check_run(tag, case, x, out, res, outdir, layer, li, methods):
    """The segments of results.json against PyTorch's argmax, and every map against its reference."""
    check(res["model"]["layers"] == [layer], "%s: CAM layer %s is the hooked tensor %s" %
          (tag, res["model"]["layers"], layer))
    am = out[0].argmax(0).numpy()
    present = [int(c) for c in np.unique(am)]
    segs = res["inputs"][0]["segments"]
    got = [s["class"]["index"] for s in segs]
    check(got == present, "%s: segments %s are the classes of PyTorch's argmax %s" % (tag, got, present))
    for s in segs:
        c = s["class"]["index"]
        mask = am == c
        check(s["pixels"] == int(mask.sum()), "%s segment %d: pixels %d == PyTorch's argmax count %d" %
              (tag, c, s["pixels"], int(mask.sum())))
        t0 = time.time()
        ref = refs(case, x, c, mask, li, "scorecam" in methods)
        maps = {m["method"]: m for m in s["maps"]}
        check(sorted(maps) == sorted(methods), "%s segment %d: maps of %s" % (tag, c, sorted(maps)))
        for meth in methods:
            if meth not in maps:
                continue
            if meth in CAM + ["scorecam"]:
                check(maps[meth]["layer"] == layer, "%s segment %d %s: layer %s" % (tag, c, meth, maps[meth]["layer"]))
            ours = np.load(os.path.join(outdir, maps[meth]["npy"])).astype(np.float64)
            compare("%s segment %d %s" % (tag, c, meth), ours.reshape(ref[meth].shape), ref[meth],
                    TOL_SLOW if meth == "scorecam" else TOL)
        print("     (%s segment %d: reference %.1fs)" % (tag, c, time.time() - t0), flush=True)


# ---- (a) the demo segmenter -------------------------------------------------------------------

def demo_case(binary, work):
    import scenes
    import train_segmenter as ts
    d = os.path.join(work, "demo")
    os.makedirs(d, exist_ok=True)
    onnx_path = os.path.join(SEG, "shapes_segmenter.onnx")
    model = ts.Segmenter.from_onnx(onnx_path).double()
    rgb = scenes.scene(DEMO_SCENE)[0]
    x = ts.to_input(rgb[None])  # float32 (1, 3, 128, 128): RGB / 255, the model's preprocessing
    xnpy = os.path.join(d, "scene.npy")
    np.save(xnpy, x.numpy())

    n_rules = mr.install_rules(model)
    st, out = kink_margins(model, lambda t: model(t), x)
    nrelu, nclip = onnx_relus(onnx_path)
    check(nclip == 0 and st["calls"] == nrelu and n_rules == nrelu,
          "demo: %d ReLU module calls (%d modules) carry the rule, the ONNX file has %d Relu, %d Clip" %
          (st["calls"], n_rules, nrelu, nclip))
    check(st["relu"] >= DEMO_KINK_MARGIN, "demo scene %s: smallest ReLU margin %.2e >= %g of its tensor's max "
          "(%d units within 1e-4)" % (DEMO_SCENE, st["relu"], DEMO_KINK_MARGIN, st["near"]))
    gap = argmax_gap(out)
    check(gap >= KINK_MARGIN, "demo: argmax gap %.2e >= %g of max|output|" % (gap, KINK_MARGIN))
    check(len(np.unique(out[0].argmax(0).numpy())) == 4, "demo: all four classes predicted")

    layer = "/dec1/act/Relu_output_0"
    check(producer(onnx_path, layer) == "/dec1/act/Relu", "demo: %s is dec1's ReLU output" % layer)

    def forward(t, keep):
        h = model.dec1.register_forward_hook(lambda mod, i, o: keep.__setitem__(0, o))
        try:
            return model(t)
        finally:
            h.remove()

    case = Case("demo", forward, 1)
    t0 = time.time()
    methods = CAM + PIXEL + ["scorecam"]
    outdir = os.path.join(d, "out")
    res = explain(binary, onnx_path, xnpy, outdir, methods)
    print("     (demo: gradcam explain %.1fs)" % (time.time() - t0))
    if res:
        check_run("demo", case, x, out, res, outdir, layer, 0, methods)


# ---- (b) torchvision LR-ASPP ------------------------------------------------------------------

def lraspp_build():
    torch.manual_seed(LR_SEED)
    m = torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                    num_classes=LR_CLASSES)
    after = {}  # BatchNorm -> the module right after it
    for mod in m.modules():
        if isinstance(mod, nn.Sequential):
            ch = list(mod.children())
            for a, b in zip(ch, ch[1:]):
                if isinstance(a, nn.BatchNorm2d):
                    after[a] = b
    g = torch.Generator().manual_seed(LR_SEED + 1)
    with torch.no_grad():
        for bn in (b for b in m.modules() if isinstance(b, nn.BatchNorm2d)):
            c = bn.num_features
            u = lambda lo, hi: torch.empty(c).uniform_(lo, hi, generator=g)  # noqa: E731
            nxt = after.get(bn)
            if isinstance(nxt, nn.ReLU):  # each channel 3.5..4.5 sd on a random side of 0
                gam = u(0.5, 1.5)
                side = torch.where(torch.rand(c, generator=g) < 0.5, -1.0, 1.0)
                bn.weight.copy_(gam)
                bn.bias.copy_(side * gam * u(3.5, 4.5))
            elif isinstance(nxt, nn.Hardswish):  # mostly inside (-3, 3), away from its kinks
                bn.weight.copy_(u(0.3, 0.6))
                bn.bias.copy_(u(-0.3, 0.3))
            else:
                bn.weight.copy_(u(0.5, 1.5))
                bn.bias.copy_(u(-0.3, 0.3))
            bn.reset_running_stats()
            bn.momentum = None  # one batch: the running statistics are that batch's
        m.train()
        m(torch.rand(8, 3, LR_SIZE, LR_SIZE, generator=g))
    return m.eval()


class OutOnly(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


def lraspp_forward(m, x, keep):
    """LRASPP.forward written out (torchvision 0.14), keeping [the backbone's 'high' map, the class
    scores before the final Resize]."""
    f = m.backbone(x)
    low, high = f["low"], f["high"]
    h = m.classifier
    t = h.cbr(high) * h.scale(high)
    t = F.interpolate(t, size=low.shape[-2:], mode="bilinear", align_corners=False)
    a = h.low_classifier(low) + h.high_classifier(t)
    keep[0], keep[1] = high, a
    return F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False)


def lraspp_case(binary, work):
    d = os.path.join(work, "lraspp")
    os.makedirs(d, exist_ok=True)
    t0 = time.time()
    model = lraspp_build()
    onnx_path = os.path.join(d, "lraspp.onnx")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(OutOnly(model).eval(), torch.zeros(1, 3, LR_SIZE, LR_SIZE), onnx_path, opset_version=13,
                          do_constant_folding=True, input_names=["input"], output_names=["out"])
    n_rules = mr.install_rules(model)  # forward unchanged (the export is done)
    m32 = copy.deepcopy(model)
    m64 = model.double()
    fwd = lambda t: lraspp_forward(m64, t, [None, None])  # noqa: E731
    x = st = out = None
    for attempt in range(300):
        gen = torch.Generator().manual_seed(LR_SEED * 1000 + attempt)
        xa = torch.rand(1, 3, LR_SIZE, LR_SIZE, generator=gen)
        s, o = kink_margins(m64, fwd, xa)
        if (s["relu"] >= KINK_MARGIN and s["hard"] >= KINK_MARGIN and argmax_gap(o) >= KINK_MARGIN
                and len(np.unique(o[0].argmax(0).numpy())) >= 3):
            x, st, out = xa, s, o
            break
    check(x is not None, "lraspp: an input keeping every margin >= %g within 300 draws (draw %d)" %
          (KINK_MARGIN, attempt))
    if x is None:
        return
    print("     (lraspp: build, export and %d draws %.1fs)" % (attempt + 1, time.time() - t0))
    print("lraspp: ReLU margin %.2e, Hardswish/Hardsigmoid margin %.2e, argmax gap %.2e, %d classes predicted, "
          "max|out| %.3g" % (st["relu"], st["hard"], argmax_gap(out), len(np.unique(out[0].argmax(0).numpy())),
                             float(out.abs().max())))
    with torch.no_grad():
        err = float((OutOnly(m64)(x.double()) - out).abs().max())
    check(err <= 1e-12 * float(out.abs().max()), "lraspp: the written-out forward equals LRASPP's (%.1e)" % err)
    nrelu, nclip = onnx_relus(onnx_path)
    check(nclip == 0 and st["calls"] == nrelu and n_rules == nrelu,
          "lraspp: %d ReLU module calls (%d modules) carry the rule, the ONNX file has %d Relu, %d Clip" %
          (st["calls"], n_rules, nrelu, nclip))
    xnpy = os.path.join(d, "x.npy")
    np.save(xnpy, x.numpy())
    case = Case("lraspp", lambda t, keep: lraspp_forward(m64, t, keep), 2)

    auto = "/m/classifier/Add_output_0"
    check(producer(onnx_path, auto) == "/m/classifier/Add", "lraspp: %s is the head's Add" % auto)
    cbr = [n for n in onnx.load(onnx_path).graph.node if n.name == "/m/classifier/cbr/cbr.0/Conv"]
    high = cbr[0].input[0] if len(cbr) == 1 else None
    check(high is not None and producer(onnx_path, high).startswith("/m/backbone/backbone.16/"),
          "lraspp: the head's cbr Conv reads %s, made in backbone.16" % high)
    for tag, layer, li, extra, methods in (("lraspp auto", auto, 1, [], CAM + PIXEL + ["scorecam"]),
                                           ("lraspp high", high, 0, ["-l", high], HIGH_METHODS)):
        outdir = os.path.join(d, "out_" + tag.split()[1])
        t1 = time.time()
        res = explain(binary, onnx_path, xnpy, outdir, methods, extra)
        print("     (%s: gradcam explain %.1fs)" % (tag, time.time() - t1))
        if res:
            check_run(tag, case, x, out, res, outdir, layer, li, methods)
    pole_note(m32, m64, x, out)


def pole_note(m32, m64, x, out):
    """Why X-Grad-CAM and Grad-CAM++ are not compared at the 'high' layer: PyTorch in float32
    against PyTorch in float64, same formulas (printed, not asserted)."""
    am = out[0].argmax(0).numpy()
    worst = {"xgradcam": 0.0, "gradcam++": 0.0}
    sums = np.inf
    for c in np.unique(am):
        mask = am == c
        r = []
        for m, dt in ((m64, torch.float64), (m32, torch.float32)):
            xr = x.to(dt).clone().requires_grad_(True)
            keep = [None, None]
            y = (lraspp_forward(m, xr, keep)[0, c] * torch.from_numpy(mask).to(dt)).sum()
            (g,) = torch.autograd.grad(y, [keep[0]])
            A = keep[0].detach().double().numpy()[0]
            sums = min(sums, float(np.abs(A.sum(axis=(1, 2))).min() / np.abs(A).max()))
            with np.errstate(invalid="ignore", divide="ignore"):
                r.append(mr.cam_family(A, g.double().numpy()[0])[0])
        for meth in worst:
            worst[meth] = max(worst[meth], float(np.abs(r[0][meth] - r[1][meth]).max() / np.abs(r[0][meth]).max()))
    print("info lraspp high: not compared, X-Grad-CAM and Grad-CAM++ (poles: sum_ij A_k is %.1e of max|A| on a "
          "Hardswish channel): PyTorch float32 vs float64 differ by %.1e and %.1e of max|ref|" %
          (sums, worst["xgradcam"], worst["gradcam++"]))


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.time()
    demo_case(binary, work)
    lraspp_case(binary, work)
    print("segment_maps_ref: %d failed, %.1fs" % (len(FAILS), time.time() - t0))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
