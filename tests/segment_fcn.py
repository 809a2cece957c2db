#!/usr/bin/python3
"""--task segment on torchvision's FCN with its out/aux pair (issue #18), against PyTorch.

Usage: /usr/bin/python3 tests/segment_fcn.py GRADCAM_BINARY WORKDIR

fcn_resnet50 (num_classes 4, aux_loss: two outputs "out" and "aux"), seeded random weights and
BatchNorm statistics, exported at 64x64 (opset 13). `gradcam explain --task segment --npy`:
  - explains the first output, "out", unless --output aux;
  - its segments are the classes of PyTorch's per-pixel argmax, with PyTorch's pixel counts;
  - every segment's CAM maps (gradcam, hirescam, layercam, gradcam++) at the automatic layer (the
    head's last Conv, before the upsampling) equal the formulas of docs/methods.md on PyTorch
    autograd within 1e-4 of the maximum. Between that layer and the output there is only the
    (linear) Resize, so no ReLU kink can make float32 rounding flip an answer; the input is drawn
    until every pixel's best class leads the second by >= 1e-4 of max|out| (a flip would move a
    pixel between segments).
"""
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torchvision
except ImportError as e:  # fail, never skip
    sys.stderr.write("segment_fcn.py: FAILED: cannot import numpy/torch/torchvision (%s)\n" % e)
    sys.exit(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import methods_ref as mr  # noqa: E402  (cam_family, upsample)

SIZE, K, TOL, GAP = 64, 4, 1e-4, 1e-4
METHODS = ["gradcam", "hirescam", "layercam", "gradcam++"]
FAILS = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        FAILS.append(msg)


class Pair(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        r = self.m(x)
        return r["out"], r["aux"]


def build():
    torch.manual_seed(1801)
    m = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=K, aux_loss=True)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(1)
    model = build()
    pair = Pair(model).eval()
    x = out = None
    with torch.no_grad():
        for attempt in range(100):
            xa = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1802 * 1000 + attempt))
            o = pair(xa)[0]
            top2 = o[0].topk(2, dim=0).values
            if float((top2[0] - top2[1]).min()) >= GAP * float(o.abs().max()) and len(o[0].argmax(0).unique()) >= 2:
                x, out = xa, o
                break
    check(x is not None, "an input whose per-pixel argmax leads by >= %g of max|out| (draw %d)" % (GAP, attempt))
    if x is None:
        return 1
    onnx_path = os.path.join(work, "fcn.onnx")
    import warnings
    with warnings.catch_warnings():  # the exporter's shape-inference notes on prim::Constant
        warnings.simplefilter("ignore")
        torch.onnx.export(pair, x, onnx_path, opset_version=13, do_constant_folding=True, input_names=["input"],
                          output_names=["out", "aux"])
    np.save(os.path.join(work, "x.npy"), x.numpy())
    am = out[0].argmax(0).numpy()
    for extra, name in (([], "out"), (["--output", "aux"], "aux")):
        od = os.path.join(work, "o_" + name)
        p = subprocess.run([binary, "explain", onnx_path, os.path.join(work, "x.npy"), "--task", "segment", "--npy", "-q",
                            "-m", ",".join(METHODS), "-o", od] + extra, capture_output=True, text=True, timeout=600)
        check(p.returncode == 0, "%s: exit 0 (%d %s)" % (name, p.returncode, p.stderr.strip()))
        if p.returncode:
            continue
        res = json.load(open(os.path.join(od, "results.json")))
        check(res["model"]["output"] == name and res["model"]["score"] == name,
              "%s: explains output %r (score %r)" % (name, res["model"]["output"], res["model"]["score"]))
        if name == "aux":
            continue
        segs = res["inputs"][0]["segments"]
        want = [(int(c), int((am == c).sum())) for c in np.unique(am)]
        check([(s["class"]["index"], s["pixels"]) for s in segs] == want,
              "segments and pixels equal PyTorch's argmax %r" % want)
        layer = res["model"]["layers"][0]
        check(layer == "/m/classifier/classifier.4/Conv_output_0", "automatic layer: the head's last Conv (%s)" % layer)
        keep = {}
        model.classifier[4].register_forward_hook(lambda mod, i, o: keep.__setitem__("A", o))
        for s in segs:
            c = s["class"]["index"]
            xr = x.clone().double().requires_grad_(True)
            m64 = Pair(model.double())
            y = (m64(xr)[0][0, c] * torch.from_numpy((am == c).astype(np.float64))).sum()
            (g,) = torch.autograd.grad(y, [keep["A"]])
            A, G = keep["A"].detach().numpy()[0], g.numpy()[0]
            with np.errstate(invalid="ignore", divide="ignore"):  # Eigen-CAM's gap, unused here
                ref = mr.cam_family(A, G)[0]
            for m in s["maps"]:
                ours = np.load(os.path.join(od, m["npy"])).astype(np.float64)
                r = ref[m["method"]]
                err, scale = float(np.abs(ours - r).max()), float(np.abs(r).max())
                check(scale > 0 and err <= TOL * scale, "class %d %s: max|ours - ref| %.1e <= %g x %.2e" %
                      (c, m["method"], err, TOL, scale))
            model.float()
    print("segment_fcn: %d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
