#!/usr/bin/python3
"""Exports the torchvision parity suite: seeded random-weight models as ONNX plus PyTorch's own
outputs on seeded random inputs, for tests/test_model_parity.c.

Usage: /usr/bin/python3 tests/export_models.py OUTDIR [--only NAME[,NAME...]] [--force] [--check-f64]
  --only       export just these models (for debugging; no stamp is written)
  --force      re-export even when the stamp says the files are up to date
  --check-f64  also run each model in float64 and fail when torch's own float32 output is more
               than 5e-5 (relative to max|y|) away: the suite's conditioning check (slow)

Run with Debian's /usr/bin/python3 (python3-torch 1.13, torchvision 0.14). Writes into OUTDIR:
  NAME.op13.onnx    opset 13, TrainingMode.EVAL, constant folding on (BN folded into Conv)
  NAME.op17bn.onnx  opset 17, TrainingMode.PRESERVE, no constant folding: BatchNormalization
                    nodes stay in the graph (inference form, since the model is in eval mode);
                    named NAME.op17.onnx for models without BatchNorm (alexnet, squeezenet,
                    convnext: same export, nothing to fold)
  NAME.in.TAG.npy / NAME.out.TAG.npy   float32 input and PyTorch's output (TAG = b1, b2, ...)
  manifest.tsv      one line per parity check: name, variant, model, input, expected
  stamp             hash of this script + torch version; when it matches and every file listed
                    in the manifest exists, nothing is re-exported (fast repeated `make test`).

Weights: torch.manual_seed per model, weights=None. Random init leaves BatchNorm at mean 0 /
var 1, weight 1, bias 0 (a no-op), so every BN gets running statistics measured on a seeded
calibration batch, then perturbed, and a random weight and bias (see randomise_bn): non-trivial,
with activations at a sane scale through deep nets. The last layer is rescaled when the logits
come out tiny or huge (rescale_head). Logits are checked finite and not degenerate. Inputs are
seeded multi-scale noise images (make_input). With all this, torch's own float32 output is
within 1e-5 (relative to max|y|) of float64 for every model (--check-f64).

The dynamic-size check: resnet18 exported with batch, height and width dynamic, run at
(1,3,224,224) and (1,3,256,320) (H=256, W=320: non-square, so a swapped H/W would show).
"""
import copy
import hashlib
import os
import sys
import time
import warnings

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torchvision
except ImportError as e:  # must fail loudly: the parity test would otherwise test nothing
    sys.stderr.write("export_models.py: FAILED: cannot import torch/torchvision/numpy (%s); "
                     "install python3-torch and python3-torchvision for /usr/bin/python3\n" % e)
    sys.exit(1)

CLASSIFIERS = [
    # name, input size
    ("alexnet", 224),
    ("vgg11_bn", 224),
    ("resnet18", 224),
    ("resnext50_32x4d", 224),
    ("densenet121", 224),
    ("googlenet", 224),
    ("inception_v3", 299),
    ("squeezenet1_1", 224),
    ("mobilenet_v2", 224),
    ("mobilenet_v3_small", 224),
    ("mnasnet0_5", 224),
    ("shufflenet_v2_x0_5", 224),
    ("efficientnet_b0", 224),
    ("regnet_x_400mf", 224),
    ("convnext_tiny", 224),
]
SEGMENTATION = [("lraspp_mobilenet_v3_large", 160), ("fcn_resnet50", 160)]
SEG_SIZE_NOTE = "segmentation models run at 160x160 to keep time down"


def script_hash():
    h = hashlib.sha256()
    with open(os.path.abspath(__file__), "rb") as f:
        h.update(f.read())
    h.update(torch.__version__.encode())
    h.update(torchvision.__version__.encode())
    return h.hexdigest()


def seed_of(name, salt=0):
    # Stable across runs and Python versions (hash() is randomised per process).
    return (int(hashlib.md5(name.encode()).hexdigest()[:8], 16) + salt) % (2 ** 31)


class SegOut(nn.Module):
    """Segmentation models return a dict; the parity test wants one tensor."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


def build(name):
    tv = torchvision.models
    if name in ("googlenet", "inception_v3"):
        return getattr(tv, name)(weights=None, aux_logits=False, init_weights=True)
    if name == "lraspp_mobilenet_v3_large":
        return SegOut(tv.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None))
    if name == "fcn_resnet50":
        return SegOut(tv.segmentation.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=False))
    return getattr(tv, name)(weights=None)


def make_input(shape, g):
    """Seeded random image-like input: white noise plus smooth noise at coarser scales. Pure
    white noise averages out in deep receptive fields, leaving features nearly constant over
    space and images; BN calibrated on that divides by tiny variances, which amplifies rounding
    (torch's own float32 result then drifts 1e-4 from float64). Returns float32, std 1."""
    n, c, h, w = shape
    x = torch.zeros(shape)
    for s, a in ((1, 0.3), (4, 0.5), (16, 0.8), (64, 1.0)):
        z = torch.randn(n, c, max(1, h // s), max(1, w // s), generator=g)
        x += a * nn.functional.interpolate(z, size=(h, w), mode="bilinear", align_corners=False)
    return (x / x.std()).float()


def randomise_bn(model, size, seed):
    """Makes every BatchNorm a real, non-trivial affine map at inference (random init leaves
    mean 0 / var 1 / weight 1 / bias 0: a no-op). Running stats are first set to the statistics
    of a seeded calibration batch (one pass with only the BN layers in training mode, so that
    dropout / stochastic depth act as at inference), then perturbed (seeded): mean shifted by
    0.3 std * N(0,1), var scaled by U(0.5, 2), weight U(0.5, 1.5), bias 0.3 * N(0,1).
    Measured (--check-f64): torch's own float32 output is within 1e-5 relative of float64 for
    every model with this scheme and make_input() images, so a 1e-4 tolerance has margin.
    (Calibrating each layer after perturbing the ones above it gave worse conditioning, up to
    3e-5 for fcn_resnet50; calibrating with the whole model in training mode made
    efficientnet's activations explode through its stochastic-depth blocks.)"""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, running stats = batch stats
    g = torch.Generator().manual_seed(seed)
    calib = make_input((4, 3, size, size), g)
    model.eval()
    for m in bns:
        m.train()
    with torch.no_grad():
        model(calib)
        for m in bns:
            c = m.num_features
            std = m.running_var.clamp_min(1e-6).sqrt()
            m.running_mean.add_(0.3 * std * torch.randn(c, generator=g))
            m.running_var.mul_(torch.empty(c).uniform_(0.5, 2.0, generator=g))
            if m.affine:
                m.weight.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=g))
                m.bias.copy_(0.3 * torch.randn(c, generator=g))
            m.momentum = 0.1
    model.eval()
    return len(bns)


def rescale_head(model, size, seed):
    """Scales the last Linear/Conv (weight and bias) so that max|logits| lands near 10: a random
    head over thousands of features gives logits of 1e3+ or 1e-2, which hides nothing from a
    relative comparison but makes unreadable numbers. Returns the factor applied."""
    last = None
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            last = m
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mx = float(model(make_input((1, 3, size, size), g)).abs().max())
        if last is None or not np.isfinite(mx) or mx == 0 or 1.0 <= mx <= 100.0:
            return 1.0
        k = 10.0 / mx
        last.weight.mul_(k)
        if last.bias is not None:
            last.bias.mul_(k)
    return k


def check_logits(name, y):
    a = y.detach().numpy()
    if not np.all(np.isfinite(a)):
        raise RuntimeError("%s: non-finite outputs" % name)
    mx = float(np.abs(a).max())
    sd = float(a.std())
    if mx < 1e-3 or sd < 1e-4 * max(mx, 1e-30) or mx > 1e4:
        raise RuntimeError("%s: degenerate outputs (max abs %g, std %g)" % (name, mx, sd))
    return mx, sd


def export(model, x, path, opset, preserve, dyn_hw=False):
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}}
    if dyn_hw:
        axes["input"].update({2: "height", 3: "width"})
        if model_output_is_spatial(model, x):
            axes["logits"].update({2: "height", 3: "width"})
    tmp = path + ".tmp"
    mode = torch.onnx.TrainingMode.PRESERVE if preserve else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(model, x, tmp, opset_version=opset, training=mode,
                      do_constant_folding=not preserve, input_names=["input"],
                      output_names=["logits"], dynamic_axes=axes)
    os.replace(tmp, path)


def model_output_is_spatial(model, x):
    with torch.no_grad():
        return model(x).dim() == 4


def save(path, a):
    tmp = path + ".tmp.npy"
    np.save(tmp, np.ascontiguousarray(a, dtype=np.float32))
    os.replace(tmp, path)


def do_model(outdir, name, real, size, variants, shapes, rows, dyn_hw=False):
    """Exports model `real` (seeded by its own name) under the file names of `name`."""
    t0 = time.time()
    torch.manual_seed(seed_of(real))
    model = build(real)
    nbn = randomise_bn(model, size, seed_of(real, 1))
    model.eval()
    k = rescale_head(model, size, seed_of(real, 3))
    g = torch.Generator().manual_seed(seed_of(name, 2))
    ios = []
    m64 = copy.deepcopy(model).double() if CHECK_F64 else None
    cond = []
    for shp in shapes:
        x = make_input(shp, g)
        with torch.no_grad():
            y = model(x)
            if m64 is not None:
                y64 = m64(x.double())
                cond.append(float((y.double() - y64).abs().max() / y64.abs().max()))
        mx, sd = check_logits(name, y)
        tag = "b%d" % shp[0] if shp[2] == shp[3] == size else "%dx%dx%d" % (shp[0], shp[2], shp[3])
        fin = "%s.in.%s.npy" % (name, tag)
        fout = "%s.out.%s.npy" % (name, tag)
        save(os.path.join(outdir, fin), x.numpy())
        save(os.path.join(outdir, fout), y.numpy())
        ios.append((fin, fout, mx, sd))
    t1 = time.time()
    x0 = make_input(shapes[0], g)
    for var in variants:
        if var == "op17bn" and nbn == 0:
            var = "op17"  # same export; the name tells the parity test there is no BN to fold
        fmodel = "%s.%s.onnx" % (name, var)
        export(model, x0, os.path.join(outdir, fmodel), 13 if var == "op13" else 17,
               var != "op13", dyn_hw)
        for fin, fout, _, _ in ios:
            rows.append((name, var, fmodel, fin, fout))
    t2 = time.time()
    print("%-26s bn=%-3d head*%-7.3g max|y|=%-7.3g std=%-7.3g torch %5.1fs, export %5.1fs%s" %
          (name, nbn, k, ios[0][2], ios[0][3], t1 - t0, t2 - t1,
           "  torch f32 vs f64: %.2e" % max(cond) if cond else ""), flush=True)
    if cond and max(cond) > 5e-5:
        raise RuntimeError("%s: torch's own float32 result is %.2e from float64: too ill-conditioned "
                           "for a 1e-4 parity test" % (name, max(cond)))


CHECK_F64 = False


def main():
    global CHECK_F64
    args = [a for a in sys.argv[1:]]
    force = "--force" in args
    CHECK_F64 = "--check-f64" in args
    only = None
    if "--only" in args:
        i = args.index("--only")
        only = set(args[i + 1].split(","))
        del args[i:i + 2]
    args = [a for a in args if a not in ("--force", "--check-f64")]
    if len(args) != 1:
        sys.stderr.write(__doc__)
        return 2
    outdir = args[0]
    os.makedirs(outdir, exist_ok=True)
    manifest = os.path.join(outdir, "manifest.tsv")
    stamp = os.path.join(outdir, "stamp")
    h = script_hash()
    if not force and only is None and os.path.exists(stamp) and os.path.exists(manifest):
        with open(stamp) as f:
            same = f.read().strip() == h
        files_ok = True
        with open(manifest) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                for p in line.rstrip("\n").split("\t")[2:5]:
                    files_ok = files_ok and os.path.exists(os.path.join(outdir, p))
        if same and files_ok:
            print("export_models: %s is up to date (stamp %s)" % (outdir, h[:12]))
            return 0
    if os.path.exists(stamp):
        os.remove(stamp)

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    print("export_models: torch %s, torchvision %s, numpy %s -> %s" %
          (torch.__version__, torchvision.__version__, np.__version__, outdir), flush=True)
    t_all = time.time()
    rows = []
    jobs = []
    for name, size in CLASSIFIERS:
        jobs.append((name, size, ["op13", "op17bn"], [(1, 3, size, size), (2, 3, size, size)], False))
    for name, size in SEGMENTATION:
        jobs.append((name, size, ["op13", "op17bn"], [(1, 3, size, size)], False))
    jobs.append(("resnet18_dynhw", 224, ["op13"], [(1, 3, 224, 224), (1, 3, 256, 320)], True))
    warnings.filterwarnings("ignore")  # the exporter's TracerWarnings drown the timings
    for name, size, variants, shapes, dyn in jobs:
        if only is not None and name not in only:
            continue
        real = "resnet18" if name == "resnet18_dynhw" else name
        do_model(outdir, name, real, size, variants, shapes, rows, dyn)
    tmp = manifest + ".tmp"
    with open(tmp, "w") as f:
        f.write("# name\tvariant\tmodel\tinput\texpected\n")
        f.write("# %s; inputs are seeded multi-scale noise images (make_input), float32; %s\n" % (
            "generated by tests/export_models.py", SEG_SIZE_NOTE))
        for r in rows:
            f.write("\t".join(r) + "\n")
    os.replace(tmp, manifest)
    if only is None:
        with open(stamp, "w") as f:
            f.write(h + "\n")
    print("export_models: %d checks in manifest, total %.1fs" % (len(rows), time.time() - t_all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
