#!/usr/bin/python3
"""Reference maps for every explanation method of docs/methods.md, for tests/test_methods.c.

Usage: /usr/bin/python3 tests/methods_ref.py OUTDIR [--force] [--only NAME[,NAME...]]

Run with Debian's /usr/bin/python3 (python3-torch 1.13, torchvision 0.14, python3-onnx). Every
formula is written here again, straight from docs/methods.md, on PyTorch autograd (A and G = dy/dA
from an explicit split of the network at the target layer, checked against the full model);
Guided Backpropagation / Deconvnet replace every nn.ReLU / nn.ReLU6 (and DenseNet's functional
final relu) by an autograd.Function with the rule of src/ops/act.c.

Models: seeded random-weight torchvision classifiers (BatchNorm calibrated on a seeded batch then
perturbed, head rescaled so max|logits| ~ 10), exported at opset 13 (constant folding, input
"input", output "logits", dynamic batch), plus "tiny": conv-relu x3 -> GAP -> Linear, for the
property checks (CAM ~ Grad-CAM, Guided Grad-CAM, IG completeness, class sensitivity). See MODELS
for sizes and which method runs where, and TOL_FLIP for why deep input gradients are compared in
L2. Eigen-CAM's sign: see eigen_sign (docs/methods.md's rule is degenerate).

Writes OUTDIR/manifest.tsv (tab separated, '#' comments):
  model NAME ONNX INPUT AUTO_LAYER          AUTO_LAYER: tensor the automatic layer choice must name
  layer NAME TENSOR ACT_NPY                 the engine's value of TENSOR must equal ACT_NPY
  map   NAME LAYERS METHOD CLASS NPY TOL OPTS [UPSAMPLED_NPY NORMALIZED_NPY]
        LAYERS: comma-separated tensor names; NPY "ERROR": gcam_explain must fail;
        TOL: max|ours - ref| <= TOL * max|ref| on the raw map (and the optional ones);
             "l2:X": ||ours - ref||_2 <= X * ||ref||_2 instead (see TOL_FLIP);
        OPTS: "-" or comma-separated key=value: samples, sigma, seed (SmoothGrad), steps (IG),
              batch (Score-CAM)
  prop  NAME ONNX INPUT LAYER CLASS1 CLASS2
and a stamp (hash of this script + versions): when it matches and every listed file exists,
nothing is recomputed.
"""
import copy
import hashlib
import math
import os
import sys
import time

try:
    import numpy as np
    import onnx
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError as e:  # fail loudly: the C test would otherwise compare nothing
    sys.stderr.write("methods_ref.py: FAILED: cannot import numpy/onnx/torch/torchvision (%s); "
                     "install python3-torch, python3-torchvision and python3-onnx for /usr/bin/python3\n" % e)
    sys.exit(1)

OPSET = 13
TOL = 1e-4      # gradient-based maps
TOL_SLOW = 1e-3  # Score-CAM, Ablation-CAM, SmoothGrad, Integrated Gradients (many passes summed)
# Input gradients of the deep models: float32 rounding puts a few units on the other side of a
# ReLU/ReLU6 kink than PyTorch does (or than float64: PyTorch itself, 1 thread vs 2, differs by 3%
# on mobilenet_v2, and float64 sides with one of them), and one flipped unit deep in the net moves
# the gradient over its whole receptive field. So those maps are compared by relative L2 error,
# which still sees any wrong rule, scale or missing path (those give 0.1 .. 1). The exact check
# of the pixel-space methods is on "tiny" and "resnet18_63", which have no such flips.
TOL_FLIP = "l2:3e-2"

# name, architecture, input size, Score-CAM (one forward per channel, so only where that is
# cheap: tiny, and resnet18 at 63x63 at layer3), SmoothGrad (samples, sigma, seed) and Integrated
# Gradients steps (None: not compared on that model; its input gradient is compared anyway).
# tiny runs every method with the library's defaults (see do_tiny).
# resnet18 is exported once with dynamic height/width and explained at 224 and at 63.
MODELS = [
    ("resnet18", "resnet18", 224, False, (8, 0.15, 12345), 16),
    ("resnet18_63", "resnet18", 63, True, (5, 0.25, 99), 10),  # odd numel: noise pairs span samples;
                                                               # no kink flips: exact pixel checks
    ("vgg11_bn", "vgg11_bn", 224, False, None, None),  # 224: avgpool(7x7) exports only from 7x7
    ("mobilenet_v2", "mobilenet_v2", 160, False, None, None),
    ("densenet121", "densenet121", 160, False, None, None),
    ("efficientnet_b0", "efficientnet_b0", 160, False, None, None),
]
DYN_HW = {"resnet18"}
STRICT_PIXEL = {"tiny", "resnet18_63"}
# CAM maps at a layer with ReLUs after it (resnet18_63's layer3, vgg11_bn's features before its
# fully-connected head) are compared at TOL: exact only while no unit between the layer and the
# logits lies so close to its kink that float32 rounding (ours, or PyTorch's, which depends on the
# CPU's kernels) can put it on the other side. One flipped layer4 unit moved resnet18_63's layer3
# gradient by 6e-4 of its maximum with OpenBLAS's SkylakeX kernels. So the input is drawn until
# every ReLU input under these modules is at least KINK_MARGIN x max|that tensor| from 0 in float64
# (the two forwards agree to ~2e-6 of it: test_grad_parity's kink noise), which no rounding can
# cross. At 224x224, resnet18's layer4 has 100k such units: no input keeps them all clear (its
# first draw came within 2.6e-6), so its layer3 maps are compared at 63x63 only.
KINK_MARGIN = 1e-4
MARGIN_UNDER = {"resnet18_63": "layer4", "vgg11_bn": "classifier"}

U64 = 0xFFFFFFFFFFFFFFFF
GAMMA = 0x9E3779B97F4A7C15


def script_hash():
    h = hashlib.sha256()
    with open(os.path.abspath(__file__), "rb") as f:
        h.update(f.read())
    for v in (torch.__version__, torchvision.__version__, np.__version__, onnx.__version__):
        h.update(v.encode())
    return h.hexdigest()


def seed_of(name, salt=0):
    return (int(hashlib.md5(name.encode()).hexdigest()[:8], 16) + salt) % (2 ** 31)


# ---- noise: splitmix64 + Box-Muller, as docs/methods.md says ---------------------------------

def splitmix64_py(seed, n):
    """Plain Python ints (the specification, used to check the vectorised one)."""
    s, out = seed & U64, []
    for _ in range(n):
        s = (s + GAMMA) & U64
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
        out.append(z ^ (z >> 31))
    return out


def splitmix64_np(seed, start, n):
    """Outputs start..start+n-1 of the generator: output i mixes seed + (i+1)*GAMMA (mod 2^64)."""
    with np.errstate(over="ignore"):
        i = np.arange(start + 1, start + n + 1, dtype=np.uint64)
        z = np.uint64(seed & U64) + i * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def normals(seed, start, n):
    """Standard normals start..start+n-1 of the stream (float64). Normal 2j and 2j+1 come from
    uniforms 2j, 2j+1."""
    p0, p1 = start // 2, (start + n + 1) // 2
    r = splitmix64_np(seed, 2 * p0, 2 * (p1 - p0))
    u = (r >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)
    u1, u2 = u[0::2], u[1::2]
    rad = np.sqrt(-2.0 * np.log(1.0 - u1))
    z = np.empty(2 * (p1 - p0))
    z[0::2] = rad * np.cos(2.0 * np.pi * u2)
    z[1::2] = rad * np.sin(2.0 * np.pi * u2)
    return z[start - 2 * p0:start - 2 * p0 + n]


def check_noise():
    seed = 0x0123456789ABCDEF
    ref = splitmix64_py(seed, 1000)
    got = [int(v) for v in splitmix64_np(seed, 0, 1000)]
    if ref != got:
        raise RuntimeError("vectorised splitmix64 disagrees with the Python-int one")
    a = normals(5, 0, 1001)
    b = np.concatenate([normals(5, 0, 301), normals(5, 301, 700)])
    if not np.array_equal(a, b):
        raise RuntimeError("normal stream is not contiguous across calls")


def smooth_input(x, sigma_frac, seed, s):
    """Noisy input of sample s (0-based) for x (N, C, H, W) float32: sample s takes normals
    s*numel .. (s+1)*numel - 1 of the stream in row-major order (the doc's "next N*C*H*W
    normals", so an odd count shares a Box-Muller pair across samples). float32 arithmetic as in
    src/explain: sigma = f32(sigma) * (max - min) per sample, x + sigma * f32(z)."""
    n = x.numel()
    z = normals(seed, s * n, n).astype(np.float32).reshape(tuple(x.shape))
    xs = x.numpy()
    out = np.empty_like(xs)
    for i in range(xs.shape[0]):
        sig = np.float32(sigma_frac) * (xs[i].max() - xs[i].min())
        out[i] = xs[i] + sig * z[i]
    return torch.from_numpy(out)


# ---- models -------------------------------------------------------------------------------------

def calibrate(model, size, seed):
    """Random init leaves BatchNorm as a no-op: set running stats from a seeded batch, perturb them
    and the affine parameters, then scale the head so that max|logits| is about 10."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    g = torch.Generator().manual_seed(seed)
    if bns:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            model(torch.randn(4, 3, size, size, generator=g))
            for m in bns:
                c = m.num_features
                sd = m.running_var.clamp_min(1e-6).sqrt()
                m.running_mean.add_(0.3 * sd * torch.randn(c, generator=g))
                m.running_var.mul_(torch.empty(c).uniform_(0.5, 2.0, generator=g))
                m.weight.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=g))
                m.bias.copy_(0.3 * torch.randn(c, generator=g))
                m.momentum = 0.1
    model.eval()
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        mx = float(model(torch.randn(1, 3, size, size, generator=g)).abs().max())
        if math.isfinite(mx) and mx > 0:
            last.weight.mul_(10.0 / mx)
            last.bias.mul_(10.0 / mx)


class Tiny(nn.Module):
    """GAP + linear head: CAM applies, and A is not right after an activation-free conv."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.r2 = nn.ReLU()
        self.c3 = nn.Conv2d(16, 16, 3, padding=1)
        self.r3 = nn.ReLU()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        a = self.r3(self.c3(self.r2(self.c2(self.r1(self.c1(x))))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))


def build(name):
    if name == "tiny":
        return Tiny()
    return getattr(torchvision.models, name)(weights=None)


def stages(name, m):
    """The network as a chain of functions; a target layer is the output of stage i. The split
    lets A be an explicit leaf of the graph (G = dy/dA by autograd) and lets Ablation-CAM re-run
    only the stages after A. Returns {layer_key: index} too."""
    pool_fc = lambda fc: (lambda a: fc(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1)))
    if name == "resnet18":
        stem = lambda x: m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x)))))))
        return [stem, m.layer4, pool_fc(m.fc)], {"layer3": 0, "auto": 1}
    if name == "vgg11_bn":
        return [m.features, lambda a: m.classifier(torch.flatten(m.avgpool(a), 1))], {"auto": 0}
    if name == "densenet121":
        return [lambda x: rule_relu(m.features(x)), pool_fc(m.classifier)], {"auto": 0}
    if name in ("mobilenet_v2", "efficientnet_b0"):
        return [m.features, pool_fc(m.classifier)], {"auto": 0}
    if name == "tiny":
        return [lambda x: m.r3(m.c3(m.r2(m.c2(m.r1(m.c1(x)))))), pool_fc(m.fc)], {"auto": 0}
    raise ValueError(name)


def run_from(st, i, a):
    for f in st[i:]:
        a = f(a)
    return a


def head(st, i, x):
    for f in st[:i + 1]:
        x = f(x)
    return x


# ---- ReLU rules (src/ops/act.c: Relu and Clip with min 0) ---------------------------------------

RULE = ["standard"]


class RuleClamp(torch.autograd.Function):
    """y = clamp(x, 0, hi). Backward, with inside = 0 < y < hi:
    standard: gy * inside; guided: gy * inside * [gy > 0]; deconv: gy * [gy > 0]."""

    @staticmethod
    def forward(ctx, x, hi):
        y = x.clamp(0.0, hi)
        ctx.save_for_backward(y)
        ctx.hi = hi
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        inside = (y > 0) & (y < ctx.hi)
        if RULE[0] == "guided":
            mask = inside & (gy > 0)
        elif RULE[0] == "deconv":
            mask = gy > 0
        else:
            mask = inside
        return torch.where(mask, gy, torch.zeros_like(gy)), None


def rule_relu(x):
    return RuleClamp.apply(x, math.inf)


class RuleReLU(nn.Module):
    def __init__(self, hi):
        super().__init__()
        self.hi = hi

    def forward(self, x):
        return RuleClamp.apply(x, self.hi)


def install_rules(model):
    """Replaces every nn.ReLU / nn.ReLU6 module (after the ONNX export). Returns the count."""
    n = 0
    for parent in model.modules():
        for cname, ch in list(parent.named_children()):
            if isinstance(ch, nn.ReLU6):
                setattr(parent, cname, RuleReLU(6.0))
                n += 1
            elif isinstance(ch, nn.ReLU):
                setattr(parent, cname, RuleReLU(math.inf))
                n += 1
    return n


# ---- ONNX ---------------------------------------------------------------------------------------

def export(model, x, path, dyn_hw=False):
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}}
    if dyn_hw:
        axes["input"].update({2: "height", 3: "width"})
    tmp = path + ".tmp"
    torch.onnx.export(model, x, tmp, opset_version=OPSET, training=torch.onnx.TrainingMode.EVAL,
                      do_constant_folding=True, input_names=["input"], output_names=["logits"],
                      dynamic_axes=axes)
    os.replace(tmp, path)


GRAPHS = {}  # onnx path -> node list (loaded once: vgg11_bn's file is 0.5 GB)


def find_tensor(path, name, key):
    """The ONNX tensor of a split point, by the exporter's scope names. Its value is written next
    to it and the C test checks that the library's tensor of that name equals it."""
    if path not in GRAPHS:
        GRAPHS[path] = list(onnx.load(path).graph.node)
    nodes = GRAPHS[path]
    if key == "layer3":
        cands = [n.output[0] for n in nodes if n.name == "/layer3/layer3.1/relu_1/Relu"]
    elif name == "vgg11_bn":
        cands = [n.input[0] for n in nodes if n.name == "/avgpool/AveragePool"]
    else:  # the input of the last global pooling (EfficientNet's SE blocks have their own)
        cands = [n.input[0] for n in nodes if n.op_type == "GlobalAveragePool"][-1:]
    if len(cands) != 1:
        raise RuntimeError("%s: cannot find the %s tensor in %s (%d candidates)" % (name, key, path, len(cands)))
    t = cands[0]
    prod = [n for n in nodes if t in n.output][0]
    want_scope = {"resnet18": "/layer", "vgg11_bn": "/features/", "densenet121": "/Relu",
                  "mobilenet_v2": "/features/", "efficientnet_b0": "/features/", "tiny": "/r3/"}[name]
    if not prod.name.startswith(want_scope):
        raise RuntimeError("%s: tensor %s is made by %s, expected scope %s" % (name, t, prod.name, want_scope))
    return t


# ---- the methods --------------------------------------------------------------------------------

def relu(a):
    return np.maximum(a, 0.0)


def upsample(a, H, W):
    """(n, c, h, w) float64 -> (n, c, H, W): bilinear, half-pixel centres."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    return F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False).numpy()


def minmax(a):
    """Per sample over all other axes; constant -> zeros."""
    out = np.zeros_like(a)
    for i in range(a.shape[0]):
        lo, hi = a[i].min(), a[i].max()
        if hi > lo:
            out[i] = (a[i] - lo) / (hi - lo)
    return out


def eigen(m3):
    """m3: (K, h, w) float64. First principal component of the positions, sign per eigen_sign."""
    K, h, w = m3.shape
    M = m3.reshape(K, h * w).T
    M = M - M.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(M, full_matrices=False)
    v = vt[0]
    p = M @ v
    if eigen_sign(m3.reshape(K, h * w).T, M, v) < 0:
        p = -p
    gap = s[1] / s[0] if len(s) > 1 else 0.0
    return relu(p).reshape(h, w), gap


def eigen_sign(raw, centred, v):
    """docs/methods.md: sign so that sum(M v) >= 0 with M centred -- but that sum is always 0 (the
    columns of M are centred), so it cannot decide. Used here: sum over positions of the
    projection of the uncentred rows, raw @ v (i.e. the mean activation projects positively)."""
    return float((raw @ v).sum())


def cam_family(A, G, fcw=None):
    """A, G: (K, h, w) float64 -> dict of raw maps (h, w)."""
    K, h, w = A.shape
    hw = h * w
    out = {}
    alpha = G.sum(axis=(1, 2)) / hw
    out["gradcam"] = relu(np.tensordot(alpha, A, 1))
    out["counterfactual"] = relu(np.tensordot(-alpha, A, 1))
    if fcw is not None:
        out["cam"] = relu(np.tensordot(fcw, A, 1))
    g2, g3 = G ** 2, G ** 3
    sumA = A.sum(axis=(1, 2))
    den = 2 * g2 + sumA[:, None, None] * g3 + 1e-6
    aij = np.where(G != 0, g2 / np.where(G != 0, den, 1.0), 0.0)
    wpp = (aij * relu(G)).sum(axis=(1, 2))
    out["gradcam++"] = relu(np.tensordot(wpp, A, 1))
    wx = (G * A).sum(axis=(1, 2)) / (sumA + 1e-7)
    out["xgradcam"] = relu(np.tensordot(wx, A, 1))
    out["hirescam"] = relu((G * A).sum(axis=0))
    out["layercam"] = relu((relu(G) * A).sum(axis=0))
    out["eigencam"], gap1 = eigen(A)
    out["eigengradcam"], gap2 = eigen(G * A)
    return out, (gap1, gap2)


class Ref:
    """One model, one input: forward/backward helpers on the stage chain."""

    def __init__(self, name, model, st, x):
        self.name, self.model, self.st, self.x = name, model, st, x

    def grads(self, i, c, rule="standard", x=None):
        """A_i, dy/dA_i, dy/dx for class c (float32 numpy), under a ReLU rule."""
        RULE[0] = rule
        x = (self.x if x is None else x).clone().requires_grad_(True)
        a = head(self.st, i, x)
        y = run_from(self.st, i + 1, a)[:, c].sum()
        ga, gx = torch.autograd.grad(y, [a, x])
        RULE[0] = "standard"
        return a.detach().numpy(), ga.numpy(), gx.numpy()

    def input_grads(self, xs, c, chunk):
        """dy/dx for a batch of inputs (eval mode: samples are independent), in chunks."""
        out = []
        for j in range(0, xs.shape[0], chunk):
            xb = xs[j:j + chunk].clone().requires_grad_(True)
            y = run_from(self.st, 0, xb)[:, c].sum()
            (g,) = torch.autograd.grad(y, [xb])
            out.append(g.double().numpy())
        return np.concatenate(out)

    def logits(self, xs, chunk=32):
        out = []
        with torch.no_grad():
            for j in range(0, xs.shape[0], chunk):
                out.append(run_from(self.st, 0, xs[j:j + chunk]).double().numpy())
        return np.concatenate(out)


def scorecam(r, A, c, chunk=32):
    """A: (1, K, h, w) float32 tensor."""
    H, W = r.x.shape[2:]
    up = F.interpolate(A, size=(H, W), mode="bilinear", align_corners=False)[0]  # (K, H, W) float32
    lo = up.amin(dim=(1, 2), keepdim=True)
    hi = up.amax(dim=(1, 2), keepdim=True)
    const = (hi <= lo)
    m = torch.where(const, torch.zeros_like(up), (up - lo) / torch.where(const, torch.ones_like(hi), hi - lo))
    s = []
    for j in range(0, m.shape[0], chunk):
        xs = r.x * m[j:j + chunk, None]  # (B, C, H, W)
        lg = r.logits(xs, chunk)
        p = np.exp(lg - lg.max(axis=1, keepdims=True))
        s.append(p[:, c] / p.sum(axis=1))
    s = np.concatenate(s)
    A64 = A[0].double().numpy()
    return relu(np.tensordot(s, A64, 1)), float(s.max()), float(s.min())


def ablationcam(r, i, A, c):
    """Channel k of A zeroed, only the stages after i re-run."""
    K = A.shape[1]
    with torch.no_grad():
        y = float(run_from(r.st, i + 1, A)[0, c])
        yk = []
        for j in range(0, K, 64):
            idx = torch.arange(j, min(K, j + 64))
            ab = A.repeat(len(idx), 1, 1, 1)
            ab[torch.arange(len(idx)), idx] = 0.0
            yk.append(run_from(r.st, i + 1, ab)[:, c].double().numpy())
    wk = (y - np.concatenate(yk)) / y
    return relu(np.tensordot(wk, A[0].double().numpy(), 1))


def smoothgrad(r, c, samples, sigma, seed, chunk=8):
    xs = torch.cat([smooth_input(r.x, sigma, seed, s) for s in range(samples)])
    g = r.input_grads(xs, c, chunk)
    return g.mean(axis=0, keepdims=True)


def integrated_gradients(r, c, steps, chunk=8):
    x = r.x
    base = torch.zeros_like(x)
    xn, bn = x.numpy(), base.numpy()  # float32 as src/explain: x' + f32(m / M) * (x - x')
    xs = torch.from_numpy(np.concatenate([bn + (np.float32(m) / np.float32(steps)) * (xn - bn)
                                          for m in range(steps + 1)]))
    g = r.input_grads(xs, c, chunk)
    wts = np.ones(steps + 1)
    wts[0] = wts[-1] = 0.5
    avg = np.tensordot(wts, g, 1)[None] / steps
    return (x - base).double().numpy() * avg, g


# ---- driver -------------------------------------------------------------------------------------

class Out:
    def __init__(self, outdir):
        self.dir, self.rows = outdir, []

    def save(self, fname, a):
        p = os.path.join(self.dir, fname)
        np.save(p + ".tmp.npy", np.ascontiguousarray(a, dtype=np.float32))
        os.replace(p + ".tmp.npy", p)
        return fname

    def map(self, name, layers, method, cls, a, tol, opts="-", extra=(), tag=""):
        a = np.asarray(a)
        if not np.all(np.isfinite(a)):
            raise RuntimeError("%s %s: non-finite reference" % (name, method))
        if np.abs(a).max() == 0:
            print("  note: %s %s class %d: the reference map is all zeros" % (name, method, cls))
        f = self.save("%s.%s%s.%s.c%d.npy" % (name, method.replace("+", "p"), tag,
                                             "_".join(layers_key(layers)), cls), a)
        tol = tol if isinstance(tol, str) else "%g" % tol
        self.rows.append(["map", name, ",".join(layers), method, str(cls), f, tol, opts] + list(extra))


def layers_key(layers):
    return [l.strip("/").replace("/", "_").replace(".", "")[-24:] for l in layers]


ARCH = {}  # arch -> (model with rule modules, onnx file name)


def get_arch(arch, size, outdir):
    """Builds, calibrates and exports an architecture once (the ONNX is written before the ReLU
    modules are replaced for the rule-aware reference)."""
    if arch in ARCH:
        return ARCH[arch]
    torch.manual_seed(seed_of(arch))
    model = build(arch)
    if arch == "tiny":
        model.eval()
        with torch.no_grad():  # logits of a few units, so that Score-CAM's softmax scores vary
            model.fc.weight.mul_(20.0)
            model.fc.bias.mul_(20.0)
    else:
        calibrate(model, size, seed_of(arch, 1))
    onnx_f = "%s.onnx" % arch
    export(model, torch.zeros(1, 3, size, size), os.path.join(outdir, onnx_f), arch in DYN_HW)
    ARCH[arch] = (model, onnx_f)
    return ARCH[arch]


def kink_margin(model, x, prefix):
    """Smallest |v| / max|v| over the inputs of the ReLU modules under `prefix`, in float64."""
    m64 = copy.deepcopy(model).double().eval()
    worst = [math.inf]

    def hook(mod, inp):  # before the call: torchvision's ReLUs work in place
        v = inp[0].detach().abs()
        worst[0] = min(worst[0], float(v.min() / v.max()))

    hs = [mod.register_forward_pre_hook(hook) for n, mod in m64.named_modules()
          if n.startswith(prefix) and isinstance(mod, (nn.ReLU, RuleReLU))]
    if not hs:
        raise RuntimeError("no ReLU module under %s" % prefix)
    with torch.no_grad():
        m64(x.double())
    for h in hs:
        h.remove()
    return worst[0]


def draw_input(name, model, size):
    """The seeded input; for MARGIN_UNDER models the first seed whose units there keep KINK_MARGIN."""
    for attempt in range(200):
        g = torch.Generator().manual_seed(seed_of(name, 2 + 1000 * attempt))
        x = torch.randn(1, 3, size, size, generator=g)
        if name not in MARGIN_UNDER:
            return x
        margin = kink_margin(model, x, MARGIN_UNDER[name])
        if margin >= KINK_MARGIN:
            print("%-16s input draw %d: ReLU margin under %s %.2e of max" % (name, attempt, MARGIN_UNDER[name], margin))
            return x
    raise RuntimeError("%s: no input in 200 draws keeps a ReLU margin of %g" % (name, KINK_MARGIN))


def prepare(name, arch, size, outdir, out, x=None):
    t0 = time.time()
    model, onnx_f = get_arch(arch, size, outdir)
    if x is None:
        x = draw_input(name, model, size)
    RULE[0] = "standard"
    n_rules = install_rules(model)  # rule modules behave as ReLU / ReLU6 in forward
    with torch.no_grad():
        y_full = model(x)
    st, keys = stages(arch, model)
    with torch.no_grad():
        y_split = run_from(st, 0, x)
    err = float((y_split - y_full).abs().max())
    if err > 1e-5 * float(y_full.abs().max()):
        raise RuntimeError("%s: the stage split does not reproduce the model (%g)" % (name, err))
    in_f = out.save("%s.input.npy" % name, x.numpy())
    tensors = {}
    for key, i in keys.items():
        with torch.no_grad():
            a = head(st, i, x)
        t = find_tensor(os.path.join(outdir, onnx_f), arch, key)
        tensors[key] = (t, i)
        out.rows.append(["layer", name, t, out.save("%s.act.%s.npy" % (name, key), a.numpy())])
    out.rows.append(["model", name, onnx_f, in_f, tensors["auto"][0]])
    n_rules = sum(isinstance(m, RuleReLU) for m in model.modules())
    print("%-16s %3dx%-3d relus=%-3d logits max %.3g, setup %.1fs" %
          (name, size, size, n_rules, float(y_full.abs().max()), time.time() - t0), flush=True)
    return Ref(name, model, st, x), tensors, y_full[0].double().numpy()


def linear_head_weight(model, arch):
    fc = {"resnet18": lambda: model.fc, "densenet121": lambda: model.classifier,
          "mobilenet_v2": lambda: model.classifier[1], "efficientnet_b0": lambda: model.classifier[1],
          "tiny": lambda: model.fc}.get(arch)
    return None if fc is None else fc().weight.detach().double().numpy()


def opts_str(smooth=None, steps=None, batch=None):
    o = []
    if smooth:
        o.append("samples=%d,sigma=%g,seed=%d" % smooth)
    if steps:
        o.append("steps=%d" % steps)
    if batch:
        o.append("batch=%d" % batch)
    return ",".join(o) or "-"


def do_model(name, arch, size, with_scorecam, smooth, steps, outdir, out, x=None, full=False):
    """Every method at the automatic layer (class 1: all; class 2: the CAM family and gradients,
    plus guided backprop when full). full: SmoothGrad and IG with `smooth`/`steps` (None: the
    library defaults: 25 samples, sigma 0.15, seed 0; 50 steps)."""
    t0 = time.process_time()
    r, tensors, logits = prepare(name, arch, size, outdir, out, x)
    order = np.argsort(-logits)
    classes = [int(order[0]), int(order[1])]
    H, W = r.x.shape[2:]
    lay, li = tensors["auto"]
    fcw = linear_head_weight(r.model, arch)
    x64 = r.x.double().numpy()
    gaps = None
    ptol = TOL if name in STRICT_PIXEL else TOL_FLIP
    # SmoothGrad / IG run 10+ perturbed inputs: flips can happen on resnet18_63 too (IG: 1.1e-3
    # max, 8e-4 L2 at its small-alpha inputs); exact on tiny
    ptol_slow = TOL_SLOW if arch == "tiny" else "l2:1e-2" if name in STRICT_PIXEL else TOL_FLIP
    for ci, c in enumerate(classes):
        A, G, gx = r.grads(li, c)
        maps, g = cam_family(A[0].astype(np.float64), G[0].astype(np.float64),
                             None if fcw is None else fcw[c])
        gaps = gaps or g
        for meth, mp in maps.items():
            if meth == "eigencam" and ci > 0:
                continue  # does not depend on the class
            extra = ()
            if meth == "gradcam" and ci == 0:  # the upsampled and normalised forms too
                up = upsample(mp[None, None], H, W)
                extra = (out.save("%s.gradcam.up.npy" % name, up), out.save("%s.gradcam.norm.npy" % name, minmax(up)))
            out.map(name, [lay], meth, c, mp[None, None], TOL, "-", extra)
        if fcw is None:
            out.rows.append(["map", name, lay, "cam", str(c), "ERROR", "0", "-"])
        out.map(name, [lay], "gradient", c, gx, ptol)
        out.map(name, [lay], "gradient-x-input", c, x64 * gx, ptol)
        if ci > 0 and not full:
            continue
        _, _, gg = r.grads(li, c, "guided")
        gextra = ()
        if ci == 0:  # raw is at H x W already (upsampled == raw); normalised over all channels
            gextra = (out.save("%s.guided.up.npy" % name, gg),
                      out.save("%s.guided.norm.npy" % name, minmax(gg.astype(np.float64))))
        out.map(name, [lay], "guided-backprop", c, gg, ptol, "-", gextra)
        if ci == 0:
            up = upsample(maps["gradcam"][None, None], H, W)
            out.map(name, [lay], "guided-gradcam", c, gg.astype(np.float64) * up, ptol)
            _, _, gd = r.grads(li, c, "deconv")
            out.map(name, [lay], "deconvnet", c, gd, ptol)
    c = classes[0]
    t1 = time.process_time()
    A, _, _ = r.grads(li, c)
    if arch != "vgg11_bn":  # 512 re-runs of a 120M-weight head: minutes in the library (one per channel)
        out.map(name, [lay], "ablationcam", c, ablationcam(r, li, torch.from_numpy(A), c)[None, None], TOL_SLOW)
    if "layer3" in tensors and name in MARGIN_UNDER:  # layers after it: G is not a broadcast head weight
        l3, i3 = tensors["layer3"]
        A3, G3, _ = r.grads(i3, c)
        maps3, _ = cam_family(A3[0].astype(np.float64), G3[0].astype(np.float64))
        for meth in ("gradcam", "counterfactual", "gradcam++", "xgradcam", "hirescam", "layercam",
                     "eigencam", "eigengradcam"):
            out.map(name, [l3], meth, c, maps3[meth][None, None], TOL)
        out.map(name, [l3], "ablationcam", c, ablationcam(r, i3, torch.from_numpy(A3), c)[None, None], TOL_SLOW)
        # several layers: each raw map normalised, upsampled, then averaged (raw is that average)
        A4, G4, _ = r.grads(li, c)
        m4 = cam_family(A4[0].astype(np.float64), G4[0].astype(np.float64))[0]["gradcam"]
        avg = (upsample(minmax(maps3["gradcam"][None, None]), H, W) +
               upsample(minmax(m4[None, None]), H, W)) / 2
        out.map(name, [l3, lay], "gradcam", c, avg, TOL)
    t2 = time.process_time()
    sc_note = ""
    if with_scorecam:  # at layer3 where there is one (256 channels, half of layer4's forwards)
        sl, si = tensors.get("layer3", (lay, li))
        As = A if si == li else r.grads(si, c)[0]
        sm, smax, smin = scorecam(r, torch.from_numpy(As), c)
        for batch in ((None, 5) if arch == "tiny" else (None,)):
            out.map(name, [sl], "scorecam", c, sm[None, None], TOL_SLOW, opts_str(batch=batch),
                    tag="" if batch is None else "_b%d" % batch)
        sc_note = " (scores %.3g..%.3g)" % (smin, smax)
    t3 = time.process_time()
    if not full:
        print("  classes %s, eigen s2/s1 %.3f %.3f; cpu: setup+grads %.1fs, ablation+layer3 %.1fs" %
              (classes, gaps[0], gaps[1], t1 - t0, t2 - t1), flush=True)
        return r, lay, logits
    S, sig, seed = smooth or (25, 0.15, 0)
    sg = smoothgrad(r, c, S, sig, seed)
    out.map(name, [lay], "smoothgrad", c, sg, ptol_slow, opts_str(smooth=smooth))
    M = steps or 50
    ig, _ = integrated_gradients(r, c, M)
    f0 = float(r.logits(torch.zeros_like(r.x))[0, c])
    compl = (ig.sum() - (logits[c] - f0)) / abs(logits[c] - f0)
    out.map(name, [lay], "integrated-gradients", c, ig, ptol_slow, opts_str(steps=steps))
    t4 = time.process_time()
    print("  classes %s, eigen s2/s1 %.3f %.3f, IG(%d) completeness err %.2f%%; cpu: setup+grads %.1fs, "
          "ablation+layer3 %.1fs, scorecam %.1fs%s, smooth+ig %.1fs" %
          (classes, gaps[0], gaps[1], M, 100 * compl, t1 - t0, t2 - t1, t3 - t2, sc_note, t4 - t3), flush=True)
    return r, lay, logits


def do_tiny(outdir, out):
    """Every method with the library's defaults, plus the property checks, which test_methods.c
    runs on the library's own maps; the margins they rely on are checked here first."""
    name, size = "tiny", 32
    g = torch.Generator().manual_seed(seed_of(name, 2))
    x = torch.rand(1, 3, size, size, generator=g)  # non-negative, image-like
    r, lay, lg = do_model(name, "tiny", size, True, None, None, outdir, out, x, True)
    order = np.argsort(-lg)
    c1, c2 = int(order[0]), int(order[-1])
    fcw = linear_head_weight(r.model, "tiny")
    A, G, _ = r.grads(0, c1)
    m = cam_family(A[0].astype(np.float64), G[0].astype(np.float64), fcw[c1])[0]
    corr = np.corrcoef(m["cam"].ravel(), m["gradcam"].ravel())[0, 1]
    ig, _ = integrated_gradients(r, c1, 64)
    f0 = float(r.logits(torch.zeros_like(x))[0, c1])
    compl = (ig.sum() - (lg[c1] - f0)) / abs(lg[c1] - f0)
    A2, G2, _ = r.grads(0, c2)
    m2 = cam_family(A2[0].astype(np.float64), G2[0].astype(np.float64))[0]
    n1 = minmax(upsample(m["gradcam"][None, None], size, size))
    n2 = minmax(upsample(m2["gradcam"][None, None], size, size))
    print("  properties: corr(CAM, Grad-CAM) %.6f, IG(64) completeness err %.3f%%, class %d vs %d "
          "normalised Grad-CAM mean|diff| %.3f" % (corr, 100 * compl, c1, c2, np.abs(n1 - n2).mean()), flush=True)
    if not (corr > 0.9999 and abs(compl) < 0.005 and np.abs(n1 - n2).mean() > 0.1):
        raise RuntimeError("tiny: the property margins do not hold on the reference itself")
    out.rows.append(["prop", name, "tiny.onnx", "tiny.input.npy", lay, str(c1), str(c2)])


def up_to_date(outdir, h):
    stamp, manifest = os.path.join(outdir, "stamp"), os.path.join(outdir, "manifest.tsv")
    if not (os.path.exists(stamp) and os.path.exists(manifest)):
        return False
    with open(stamp) as f:
        if f.read().strip() != h:
            return False
    with open(manifest) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            for p in line.rstrip("\n").split("\t"):
                if p.endswith(".npy") or p.endswith(".onnx"):
                    if not os.path.exists(os.path.join(outdir, p)):
                        return False
    return True


def main():
    args = sys.argv[1:]
    force = "--force" in args
    args = [a for a in args if a != "--force"]
    only = None
    if "--only" in args:
        i = args.index("--only")
        only = set(args[i + 1].split(","))
        del args[i:i + 2]
    if len(args) != 1:
        sys.stderr.write(__doc__)
        return 2
    outdir = args[0]
    os.makedirs(outdir, exist_ok=True)
    h = script_hash()
    if not force and only is None and up_to_date(outdir, h):
        print("methods_ref: %s is up to date (stamp %s)" % (outdir, h[:12]))
        return 0
    stamp = os.path.join(outdir, "stamp")
    if os.path.exists(stamp):
        os.remove(stamp)
    import warnings
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    check_noise()
    t0, c0 = time.time(), time.process_time()
    print("methods_ref: torch %s, torchvision %s -> %s" % (torch.__version__, torchvision.__version__, outdir),
          flush=True)
    out = Out(outdir)
    if only is None or "tiny" in only:
        do_tiny(outdir, out)
    for name, arch, size, sc, smooth, steps in MODELS:
        if only is None or name in only:
            do_model(name, arch, size, sc, smooth, steps, outdir, out, full=smooth is not None)
    manifest = os.path.join(outdir, "manifest.tsv")
    with open(manifest + ".tmp", "w") as f:
        f.write("# generated by tests/methods_ref.py (see its docstring for the format)\n")
        for row in out.rows:
            f.write("\t".join(row) + "\n")
    os.replace(manifest + ".tmp", manifest)
    if only is None:
        with open(stamp, "w") as f:
            f.write(h + "\n")
    print("methods_ref: %d manifest lines, total %.1fs (cpu %.1fs)" %
          (len(out.rows), time.time() - t0, time.process_time() - c0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
