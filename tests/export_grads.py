#!/usr/bin/python3
"""Exports the gradient parity suite for tests/test_grad_parity.c: seeded random-weight
torchvision models as ONNX plus PyTorch autograd gradients of a seeded scalar.

Usage: /usr/bin/python3 tests/export_grads.py OUTDIR [--only NAME[,NAME...]] [--force]

Run with Debian's /usr/bin/python3 (python3-torch 1.13, torchvision 0.14, python3-onnx).
Every model is exported at opset 13 with constant folding (BatchNorm folded into Conv where it
follows one) and input name "input", output name "logits".

Checks written (one manifest line each, see MANIFEST FORMAT below):
  * every torchvision classifier family: d logits[0, c] / d input and d logits[0, c] / d F,
    where c is the argmax class and F the output of the last feature block (the Grad-CAM layer,
    captured with a forward hook; its ONNX tensor is found by node scope names and its value is
    written too, so the C test proves it picked the right tensor);
  * resnet18 at batch 2, a different class per sample, one backward;
  * lraspp_mobilenet_v3_large (segmentation) with a region seed: d sum(out[0, k, rect]) / d input;
  * Guided Backpropagation and Deconvnet (vgg11_bn, resnet18, mobilenet_v2): every nn.ReLU /
    nn.ReLU6 module replaced by an autograd.Function implementing the rule of src/ops/act.c;
  * pruning on resnet50 (224x224): backward node counts expected from the ONNX graph.
Classifiers run at 160x160 (not 224; inception_v3 not at 299) to keep the export + reference time
modest on 2 cores, except where noted in CLASSIFIERS.

KINKS. A whole-model gradient goes through millions of ReLU-like units. Ours and PyTorch's forward
differ by float32 rounding (~1e-6 of a layer's range: other summation orders, BN folded into Conv),
so a unit whose input lies that close to a kink (ReLU at 0, ReLU6 at 0 and 6, HardSigmoid at +-3,
a MaxPool window whose two largest values nearly tie) may take the other branch in our engine. One
such flip moves a blob of the input gradient by up to a few % of its maximum: a max-abs comparison
then fails with no bug anywhere. So for every kink op the PyTorch forward runs through, this script
lists the near-kink units (distance < KINK_TAU x the tensor's max |value|) with PyTorch's input
value(s) and its gradient at the op's output, mapped to the op's input tensor in the ONNX graph
(kink ops are matched one to one, in graph order, with the calls PyTorch made). The C test reads
our values of those tensors, decides which units really took the other branch, and when any did,
runs the forward again with PyTorch's values written at every listed unit (so every kink op takes
PyTorch's branch) and compares the backward run in that forward. Units further than
KINK_TAU from a kink cannot flip while the forwards agree to KINK_TAU / 2, which the C test asserts
on every listed unit (this also proves the mapping picked the right tensors). MaxPool windows
tied exactly (zeros of ReLU outputs, copies of one element through a second MaxPool) are listed
only where a near-kink unit could break the tie (see Recorder).

MANIFEST FORMAT (manifest.tsv, tab separated, '#' comments):
  name  model  input  seed  rule  output  count  kinks  [tensor  grad  value]...
  rule:   standard | guided | deconv
  output: expected model output 0 (PyTorch forward), float32 .npy
  count:  "-" (backward over every grad_of tensor, count not checked),
          "want:N" (backward with want = the first tensor only; exactly N nodes differentiated;
          only that tensor's gradient is compared), "all:N" (want = all; exactly N nodes).
  kinks:  the near-kink unit list (format below), or "-" (none: no kink op on the path)
  each triple: ONNX tensor name (planned as grad_of), expected gradient .npy, expected forward
          value .npy or "-" (the tensor is then not compared forward, e.g. the graph input).
The seed .npy has the shape of the model output (one-hot per sample, or a region mask).

KINKS FILE FORMAT (text, one record a line, space separated; floats printed exactly (%.9g)):
  K tau                         first record: KINK_TAU
  T name kind a b scale         a kink op's input tensor; kind relu | clip (a = min, b = max) |
                                hsig (HardSigmoid: a = alpha, b = beta) | maxpool; scale = max
                                |value| of the tensor
  U index value g               a unit of the last T: flat index, PyTorch's input value, and the
                                gradient PyTorch has at the op's output there (for a HardSwish,
                                whose ONNX form is x * HardSigmoid(x), the gradient at that
                                HardSigmoid's output)
  W g choice n index value ...  a MaxPool window of the last T: the gradient at its output, the
                                position in the list PyTorch's argmax took, then the n candidates
                                (flat input index, PyTorch's value), in the window's scan order

Weights: torch.manual_seed per model, weights=None. Random init leaves BatchNorm at mean 0 /
var 1 (trivial), so every BN is calibrated on a seeded batch (running stats = batch stats) and
then perturbed; the last Linear/Conv is rescaled so that max|logits| is about 10.
A stamp file (hash of this script + versions) skips re-export when nothing changed.
"""
import copy
import hashlib
import os
import sys
import time

try:
    import numpy as np
    import onnx
    import onnx.numpy_helper
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError as e:  # fail loudly: the C test would otherwise test nothing
    sys.stderr.write("export_grads.py: FAILED: cannot import numpy/onnx/torch/torchvision (%s); "
                     "install python3-torch, python3-torchvision and python3-onnx for /usr/bin/python3\n" % e)
    sys.exit(1)

OPSET = 13
SIZE = 160  # classifiers (all at 224, inception at 299: ~17 min of export + reference on the
            # shared, heavily loaded 2 cores; ~4 min of CPU)

# name, input size, dotted module path of the Grad-CAM layer (last feature block)
CLASSIFIERS = [
    ("alexnet", 224, "features"),   # AdaptiveAvgPool to 6x6 / 7x7 exports only when the
    ("vgg11_bn", 224, "features"),  # feature map is a multiple of it: 224, not 160
    ("resnet18", SIZE, "layer4"),
    ("resnext50_32x4d", SIZE, "layer4"),
    ("densenet121", SIZE, "features"),
    ("googlenet", SIZE, "inception5b"),
    ("inception_v3", SIZE, "Mixed_7c"),
    ("squeezenet1_1", SIZE, "features"),
    ("mobilenet_v2", SIZE, "features"),
    ("mobilenet_v3_small", SIZE, "features"),
    ("mnasnet0_5", SIZE, "layers"),
    ("shufflenet_v2_x0_5", SIZE, "conv5"),
    ("efficientnet_b0", 224, "features"),  # random-weight EfficientNet at 160 is ill-conditioned:
                                           # PyTorch's own float32 vs float64 input gradient differs
                                           # by 2e-3 there, by 5e-5 at 224
    ("regnet_x_400mf", SIZE, "trunk_output"),
    ("convnext_tiny", SIZE, "features"),
]
KINK_TAU = 2e-4  # near-kink distance listed, relative to the tensor's max |value|
RULE_MODELS = ["vgg11_bn", "resnet18", "mobilenet_v2"]  # every ReLU is an nn.ReLU/nn.ReLU6 module
SEG = ("lraspp_mobilenet_v3_large", 160, 7)  # name, size, class k of the region seed
PRUNE = ("resnet50", 224, "layer4")


def script_hash():
    h = hashlib.sha256()
    with open(os.path.abspath(__file__), "rb") as f:
        h.update(f.read())
    for v in (torch.__version__, torchvision.__version__, onnx.__version__, np.__version__):
        h.update(v.encode())
    return h.hexdigest()


def seed_of(name, salt=0):
    # Stable across processes (hash() is randomised per process).
    return (int(hashlib.md5(name.encode()).hexdigest()[:8], 16) + salt) % (2 ** 31)


class SegOut(nn.Module):
    """Segmentation models return a dict; keep out['out'] only."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


def build(name):
    tv = torchvision.models
    if name in ("googlenet", "inception_v3"):
        m = getattr(tv, name)(weights=None, aux_logits=False, init_weights=True)
    elif name == "lraspp_mobilenet_v3_large":
        m = SegOut(tv.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None))
    else:
        m = getattr(tv, name)(weights=None)
    for mod in m.modules():  # in-place ops would rewrite hooked activations under autograd
        if hasattr(mod, "inplace"):
            mod.inplace = False
    return m


def calibrate_bn(model, size, seed):
    """Running stats from a seeded batch, then seeded perturbation: BN becomes a real affine map."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    g = torch.Generator().manual_seed(seed)
    if bns:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative: after one batch the running stats are that batch's
        model.train()
        with torch.no_grad():
            model(torch.randn(2, 3, size, size, generator=g))
        with torch.no_grad():
            for m in bns:
                c = m.num_features
                sd = m.running_var.clamp_min(1e-6).sqrt()
                m.running_mean.add_(0.2 * sd * torch.randn(c, generator=g))
                m.running_var.mul_(torch.empty(c).uniform_(0.6, 1.6, generator=g))
                if m.affine:
                    m.weight.copy_(torch.empty(c).uniform_(0.6, 1.4, generator=g))
                    m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.momentum = 0.1
    model.eval()
    return len(bns)


def rescale_head(model, x):
    """Scales the last Linear/Conv so that max|output| is about 10 (readable numbers)."""
    last = None
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            last = m
    with torch.no_grad():
        mx = float(model(x).abs().max())
        if last is None or not np.isfinite(mx) or mx == 0 or 1.0 <= mx <= 100.0:
            return 1.0
        k = 10.0 / mx
        last.weight.mul_(k)
        if last.bias is not None:
            last.bias.mul_(k)
    return k


def get_module(model, path):
    m = model
    for p in path.split("."):
        m = getattr(m, p)
    return m


def scope_prefix(path):
    """torch 1.13 names ONNX nodes after module scopes, one level each: a named child by its
    attribute name, a numbered child (of a Sequential) by its parent's level name + '.' + number.
    So 'layer4.1.relu' -> '/layer4/layer4.1/relu/...', 'features.6.0.block.1' ->
    '/features/features.6/features.6.0/block/block.1/...'."""
    levels = []
    for p in path.split("."):
        levels.append(levels[-1] + "." + p if p.isdigit() and levels else p)
    return "/" + "/".join(levels) + "/"


def find_layer_tensor(graph, path):
    """The output of the last node (graph order is topological) in the module's scope."""
    prefix = scope_prefix(path)
    last = None
    for n in graph.node:
        if n.name.startswith(prefix):
            last = n
    if last is None:
        raise RuntimeError("no ONNX node in scope %s" % prefix)
    return last.output[0]


def save(outdir, fname, a):
    path = os.path.join(outdir, fname)
    tmp = path + ".tmp.npy"
    np.save(tmp, np.ascontiguousarray(a.detach().numpy() if torch.is_tensor(a) else a, dtype=np.float32))
    os.replace(tmp, path)
    return fname


def check_finite(name, what, t, nonzero=True):
    a = t.detach().numpy()
    if not np.all(np.isfinite(a)):
        raise RuntimeError("%s: non-finite %s" % (name, what))
    if nonzero and float(np.abs(a).max()) == 0.0:
        raise RuntimeError("%s: %s is identically zero (a useless reference)" % (name, what))


def export(model, x, path, dyn_batch=True):
    tmp = path + ".tmp"
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dyn_batch else None
    torch.onnx.export(model, x, tmp, opset_version=OPSET, training=torch.onnx.TrainingMode.EVAL,
                      do_constant_folding=True, input_names=["input"], output_names=["logits"],
                      dynamic_axes=axes)
    os.replace(tmp, path)
    return onnx.load(path)


class Recorder:
    """Records every kink op PyTorch runs (ReLU, ReLU6/Hardtanh, Hardswish, Hardsigmoid, MaxPool),
    whether called through a module or functionally (densenet, googlenet and inception call F.relu),
    by wrapping the torch.nn.functional entry points while active. Never in place, so the recorded
    tensors stay valid for autograd. Also tracks, through torch.cat and MaxPool, which exact zeros
    of ReLU outputs could become positive in another float32 forward (the ReLU input within
    KINK_TAU of 0): MaxPool windows tied at 0 elsewhere cannot change."""
    active = None
    orig = {k: getattr(F, k) for k in ("relu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "max_pool2d")}
    orig_cat = torch.cat

    def __init__(self):
        self.calls = []  # (kind, input, output, params)
        self.live = {}   # id(tensor) -> (tensor, bool mask of its zeros that could turn positive)
        self.src = {}    # id(tensor) -> (tensor, float64 id of the element each MaxPool output copies)

    def add(self, kind, x, y, params=()):
        self.calls.append((kind, x, y, params))
        if kind == "relu" or (kind == "clip" and params[0] == 0.0):
            xd = x.detach()
            self.live[id(y)] = (y, xd.abs() < KINK_TAU * float(xd.abs().max()))
        return y

    def live_of(self, t):
        e = self.live.get(id(t))
        return e[1] if e is not None and e[0] is t else None

    def src_of(self, t):
        e = self.src.get(id(t))
        return e[1] if e is not None and e[0] is t else None

    def __enter__(self):
        o = Recorder.orig

        def relu(input, inplace=False):
            return self.add("relu", input, o["relu"](input))

        def relu6(input, inplace=False):
            return self.add("clip", input, o["hardtanh"](input, 0.0, 6.0), (0.0, 6.0))

        def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
            return self.add("clip", input, o["hardtanh"](input, min_val, max_val), (float(min_val), float(max_val)))

        def hardswish(input, inplace=False):
            return self.add("hswish", input, o["hardswish"](input), (1.0 / 6.0, 0.5))

        def hardsigmoid(input, inplace=False):
            return self.add("hsig", input, o["hardsigmoid"](input), (1.0 / 6.0, 0.5))

        def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
            if return_indices:
                raise RuntimeError("max_pool2d with return_indices is not handled")
            y, idx = o["max_pool2d"](input, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                                     return_indices=True)
            lv = self.live_of(input)
            if lv is not None:  # a zero output could turn positive if a zero in its window could
                lp = o["max_pool2d"](lv.float(), kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)
                self.live[id(y)] = (y, (y.detach() == 0) & (lp > 0))
            # which input element each output copies (ids unique across tensors, exact in float64)
            src = self.src_of(input)
            if src is None:
                N, C, H, W = input.shape
                src = torch.arange(N * C * H * W, dtype=torch.float64).view(input.shape) + len(self.calls) * 2.0 ** 40
            self.src[id(y)] = (y, src.flatten(2).gather(2, idx.flatten(2)).view(y.shape))
            return self.add("maxpool", input, y, (kernel_size, stride, padding, dilation, ceil_mode, idx))

        def cat(tensors, dim=0, **kw):
            y = Recorder.orig_cat(tensors, dim, **kw)
            lives = [self.live_of(t) for t in tensors]
            if lives and all(v is not None for v in lives):
                self.live[id(y)] = (y, Recorder.orig_cat(lives, dim))
            srcs = [self.src_of(t) for t in tensors]
            if srcs and all(v is not None for v in srcs):
                self.src[id(y)] = (y, Recorder.orig_cat(srcs, dim))
            return y

        for k, f in (("relu", relu), ("relu6", relu6), ("hardtanh", hardtanh), ("hardswish", hardswish),
                     ("hardsigmoid", hardsigmoid), ("max_pool2d", max_pool2d)):
            setattr(F, k, f)
        torch.cat = cat
        Recorder.active = self
        return self

    def __exit__(self, *exc):
        for k, f in Recorder.orig.items():
            setattr(F, k, f)
        torch.cat = Recorder.orig_cat
        Recorder.active = None
        return False


def grads_with_hook(model, x, layer, scalar_fn):
    """Forward with a hook on module `layer` (None: no hook) and every kink op recorded.
    Returns (output, feat, [d/dx, d/dfeat], the Recorder, [d/d(kink output) per call])."""
    box = {}

    def hook(mod, inp, out):
        box["feat"] = out
        return out.clone()  # later in-place ops then cannot touch `out`

    h = get_module(model, layer).register_forward_hook(hook) if layer else None
    xr = x.clone().requires_grad_(True)
    try:
        with Recorder() as rec:
            y = model(xr)
    finally:
        if h is not None:
            h.remove()
    wrt = [xr] + ([box["feat"]] if layer else [])
    outs = [c[2] for c in rec.calls]
    gs = torch.autograd.grad(scalar_fn(y), wrt + outs, allow_unused=True)
    gouts = [None if g is None else g.detach() for g in gs[len(wrt):]]
    return (y.detach(), (box["feat"].detach() if layer else None), [g.detach() for g in gs[:len(wrt)]],
            rec, gouts)


ONNX_KINK = {"relu": "Relu", "clip": "Clip", "hsig": "HardSigmoid", "hswish": "HardSigmoid", "maxpool": "MaxPool"}


def onnx_const(graph, name):
    for t in graph.initializer:
        if t.name == name:
            return onnx.numpy_helper.to_array(t)
    for n in graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return onnx.numpy_helper.to_array(n.attribute[0].t)
    return None


def pool_windows(x, params, y_shape):
    """Per MaxPool output: the window's values (N, C, K, OH*OW), with -inf at padding, and the
    flat input index of each window position."""
    k, s, p, d, ceil, _ = params
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    k, p, d = pair(k), pair(p), pair(d)
    s = k if s is None or (not isinstance(s, int) and len(s) == 0) else pair(s)
    N, C, H, W = x.shape
    OH, OW = y_shape[2], y_shape[3]
    pb = max(0, (OH - 1) * s[0] + d[0] * (k[0] - 1) + 1 - H - p[0])
    pr = max(0, (OW - 1) * s[1] + d[1] * (k[1] - 1) + 1 - W - p[1])
    xp = F.pad(x, (p[1], pr, p[0], pb), value=float("-inf"))
    cols = F.unfold(xp, k, dilation=d, stride=s)  # (N, C*K, L)
    L = cols.shape[-1]
    if L != OH * OW:
        raise RuntimeError("max_pool2d window count %d != %d x %d" % (L, OH, OW))
    cols = cols.view(N, C, k[0] * k[1], OH, OW)
    ki = torch.arange(k[0] * k[1])
    rows = (torch.arange(OH).view(1, OH, 1) * s[0] - p[0] + (ki // k[1]).view(-1, 1, 1) * d[0])
    colsi = (torch.arange(OW).view(1, 1, OW) * s[1] - p[1] + (ki % k[1]).view(-1, 1, 1) * d[1])
    pos = rows * W + colsi  # (K, OH, OW) index inside one H x W plane
    return cols, pos


def write_kinks(outdir, fname, graph, rec, gouts):
    """Maps the recorded kink calls onto the ONNX kink nodes and writes the near-kink units (see
    KINKS FILE FORMAT). Returns (file name or '-', number of units, number of kink ops)."""
    calls = rec.calls
    nodes = [(i, n) for i, n in enumerate(graph.node) if n.op_type in ("Relu", "Clip", "HardSigmoid", "MaxPool")]
    kinds = [ONNX_KINK[c[0]] for c in calls]
    if [n.op_type for _, n in nodes] != kinds:
        raise RuntimeError("kink ops: PyTorch ran %d (%s...), the ONNX graph has %d (%s...): cannot map them"
                           % (len(kinds), ",".join(kinds[:8]), len(nodes), ",".join(n.op_type for _, n in nodes[:8])))
    lines, n_units = [], 0
    f9 = lambda v: "%.9g" % float(v)
    for ci, ((_, node), (kind, x, y, params), g) in enumerate(zip(nodes, calls, gouts)):
        if g is None:
            continue  # not on the path to the seed
        x = x.detach()
        scale = float(x.abs().max())
        if scale == 0:
            continue
        tau = KINK_TAU * scale
        if kind == "clip":
            lo, hi = onnx_const(graph, node.input[1]), onnx_const(graph, node.input[2])
            if lo is None or hi is None or (float(lo), float(hi)) != params:
                raise RuntimeError("Clip %s bounds %s/%s differ from PyTorch's %s" % (node.name, lo, hi, params))
            a, b = params
        elif kind in ("hsig", "hswish"):
            at = {t.name: t.f for t in node.attribute}
            a, b = at.get("alpha", 0.2), at.get("beta", 0.5)
            if abs(a - params[0]) > 1e-7 or abs(b - params[1]) > 1e-7:
                raise RuntimeError("HardSigmoid %s alpha/beta %g/%g differ from PyTorch's" % (node.name, a, b))
        else:
            a, b = 0.0, 0.0
        recs = []
        if kind == "maxpool":
            cols, pos = pool_windows(x, params, y.shape)
            top = cols.max(dim=2, keepdim=True).values
            cand = cols >= top - tau
            amb = (cand.sum(dim=2) >= 2) & (g != 0)
            live = rec.live_of(calls[ci][1])
            if live is not None:
                # The input is made of ReLU outputs: windows tied at exactly 0 (common) can only
                # change where a ReLU input within tau of 0 may turn positive here.
                lcols, _ = pool_windows(live.float(), params, y.shape)
                amb &= ~((top.squeeze(2) == 0) & ((lcols > 0) & cand).sum(dim=2).eq(0))
            src = rec.src_of(calls[ci][1])
            if src is not None:
                # The input copies another MaxPool's outputs: candidates that are copies of one
                # element tie exactly in any forward, so only windows with 2+ sources can flip.
                scols, _ = pool_windows(src, params, y.shape)
                inf = float("inf")
                amb &= torch.where(cand, scols, inf).amin(dim=2) != torch.where(cand, scols, -inf).amax(dim=2)
            N, C, H, W = x.shape
            sel = amb.nonzero()  # (M, 4): n, c, oy, ox
            if len(sel):
                n_, c_, oy, ox = sel.unbind(1)
                cm = cand[n_, c_, :, oy, ox].tolist()  # (M, K)
                vals = cols[n_, c_, :, oy, ox].tolist()
                base = ((n_ * C + c_) * H * W).view(-1, 1)
                flat = (base + pos[:, oy, ox].t()).tolist()
                chosen = (params[5][n_, c_, oy, ox] + base.view(-1)).tolist()  # PyTorch's argmax, flat
                gw = g[n_, c_, oy, ox].tolist()
                for m in range(len(gw)):
                    ks = [q for q, on in enumerate(cm[m]) if on]
                    fl = [flat[m][q] for q in ks]
                    if chosen[m] not in fl:
                        raise RuntimeError("MaxPool %s: PyTorch's argmax is not among the candidates" % node.name)
                    cands = " ".join("%d %s" % (fl[j], f9(vals[m][q])) for j, q in enumerate(ks))
                    recs.append("W %s %d %d %s" % (f9(gw[m]), fl.index(chosen[m]), len(fl), cands))
        else:
            if kind == "relu":
                dist = x.abs()
            elif kind == "clip":
                dist = torch.minimum((x - a).abs(), (x - b).abs())
            else:  # the HardSigmoid's kinks: alpha x + beta = 0 or 1
                dist = torch.minimum((x + b / a).abs(), (x - (1 - b) / a).abs())
                if kind == "hswish":  # gradient at the HardSigmoid output of x * HardSigmoid(x)
                    g = g * x
            xf, gf = x.flatten(), g.flatten()
            sel = ((dist.flatten() < tau) & (gf != 0)).nonzero().flatten()
            for i, xv, gv in zip(sel.tolist(), xf[sel].tolist(), gf[sel].tolist()):
                recs.append("U %d %s %s" % (i, f9(xv), f9(gv)))
        if recs:
            lines.append("T %s %s %s %s %s" % (node.input[0], "hsig" if kind == "hswish" else kind, f9(a), f9(b),
                                              f9(scale)))
            lines.extend(recs)
            n_units += len(recs)
    if not lines:
        return "-", 0, len(nodes)
    path = os.path.join(outdir, fname)
    with open(path + ".tmp", "w") as f:
        f.write("# near-kink units (|distance| < tau x max|tensor|), see tests/export_grads.py\nK %g\n" % KINK_TAU)
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    return fname, n_units, len(nodes)


def one_hot(shape, classes):
    s = torch.zeros(shape)
    for b, c in enumerate(classes):
        s[b, c] = 1.0
    return s


class RuleFn(torch.autograd.Function):
    """ReLU (hi = inf) or ReLU6 (hi = 6) with the backward rule of src/ops/act.c:
    guided: gx = gy * [0 < x < hi] * [gy > 0];  deconv: gx = gy * [gy > 0] (the forward input,
    and so the max clip of ReLU6, is ignored)."""

    @staticmethod
    def forward(ctx, x, hi, rule):
        ctx.save_for_backward(x)
        ctx.hi, ctx.rule = hi, rule
        return x.clamp(min=0.0) if hi is None else x.clamp(0.0, hi)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        gpos = gy.clamp(min=0.0)
        if ctx.rule == "deconv":
            return gpos, None, None
        mask = x > 0
        if ctx.hi is not None:
            mask = mask & (x < ctx.hi)
        return gpos * mask, None, None


class RuleAct(nn.Module):
    calls = 0

    def __init__(self, hi, rule):
        super().__init__()
        self.hi, self.rule = hi, rule

    def forward(self, x):
        RuleAct.calls += 1
        y = RuleFn.apply(x, self.hi, self.rule)
        if Recorder.active is not None:
            kind, params = ("relu", ()) if self.hi is None else ("clip", (0.0, self.hi))
            Recorder.active.add(kind, x, y, params)
        return y


def replace_relus(model, rule):
    """Swaps every nn.ReLU / nn.ReLU6 module for RuleAct; returns how many were replaced."""
    n = 0
    for parent in list(model.modules()):
        for cname, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(parent, cname, RuleAct(6.0, rule))
                n += 1
            elif isinstance(child, nn.ReLU):
                setattr(parent, cname, RuleAct(None, rule))
                n += 1
            elif isinstance(child, nn.Hardtanh):
                raise RuntimeError("unexpected Hardtanh module %s" % cname)
    return n


def count_rule_nodes(graph):
    """Relu nodes plus Clip nodes with min 0 (ReLU6) in the exported graph."""
    k = 0
    for n in graph.node:
        if n.op_type == "Relu":
            k += 1
        elif n.op_type == "Clip":
            lo = onnx_const(graph, n.input[1]) if len(n.input) > 1 and n.input[1] else None
            for a in n.attribute:
                if a.name == "min":
                    lo = a.f
            if lo is not None and float(lo) == 0.0:
                k += 1
    return k


def path_nodes(graph, src, dst):
    """Nodes that are descendants of tensor src and ancestors of tensor dst (both through any
    edge), excluding Shape/Constant-like nodes that carry no gradient."""
    prod = {}
    for i, n in enumerate(graph.node):
        for o in n.output:
            prod[o] = i
    desc_t = {src}
    desc_n = set()
    for i, n in enumerate(graph.node):  # topological order
        if any(t in desc_t for t in n.input):
            desc_n.add(i)
            desc_t.update(n.output)
    anc_n = set()
    stack = [dst]
    seen = set()
    while stack:
        t = stack.pop()
        if t in seen or t not in prod:
            continue
        seen.add(t)
        i = prod[t]
        anc_n.add(i)
        stack.extend(graph.node[i].input)
    both = desc_n & anc_n
    skip = {"Shape", "Constant", "ConstantOfShape", "Size"}
    return sorted(i for i in both if graph.node[i].op_type not in skip)


class Manifest:
    def __init__(self):
        self.rows = []

    def add(self, name, model, inp, seed, rule, out, count, kinks, triples):
        fields = [name, model, inp, seed, rule, out, count, kinks]
        for t in triples:
            fields.extend(t)
        for f in fields:
            if "\t" in f or "\n" in f or not f:
                raise RuntimeError("bad manifest field %r" % f)
        self.rows.append("\t".join(fields))


def prepare(name, size, batch=1):
    torch.manual_seed(seed_of(name))
    model = build(name)
    nbn = calibrate_bn(model, size, seed_of(name, 1))
    g = torch.Generator().manual_seed(seed_of(name, 2))
    x = torch.randn(batch, 3, size, size, generator=g)
    k = rescale_head(model, x)
    return model, x, nbn, k


def do_classifier(outdir, man, name, size, layer, timing):
    t0 = time.time()
    model, x, nbn, k = prepare(name, size)
    with torch.no_grad():
        c = int(model(x)[0].argmax())
    y, feat, (gx, gf), rec, gouts = grads_with_hook(model, x, layer, lambda y: y[0, c])
    for what, t in (("logits", y), ("input gradient", gx), ("layer gradient", gf)):
        check_finite(name, what, t)
    t1 = time.time()
    fmodel = "%s.onnx" % name
    g = export(model, x, os.path.join(outdir, fmodel)).graph
    t2 = time.time()
    lname = find_layer_tensor(g, layer)
    fk, nu, nk = write_kinks(outdir, name + ".kinks.txt", g, rec, gouts)
    del rec, gouts
    fin = save(outdir, name + ".in.npy", x)
    fseed = save(outdir, name + ".seed.npy", one_hot(y.shape, [c]))
    fout = save(outdir, name + ".out.npy", y)
    fgx = save(outdir, name + ".gx.npy", gx)
    fgf = save(outdir, name + ".gf.npy", gf)
    ffeat = save(outdir, name + ".feat.npy", feat)
    man.add(name, fmodel, fin, fseed, "standard", fout, "-", fk,
            [("input", fgx, "-"), (lname, fgf, ffeat)])
    extra = ""
    if name in RULE_MODELS:
        n_rule = count_rule_nodes(g)
        for rule in ("guided", "deconv"):
            rm = copy.deepcopy(model)
            nrep = replace_relus(rm, rule)
            rm.eval()
            RuleAct.calls = 0
            yr, featr, (gxr, gfr), rec, gouts = grads_with_hook(rm, x, layer, lambda y: y[0, c])
            if RuleAct.calls != n_rule:  # every ONNX ReLU/ReLU6 must have run through the rule
                raise RuntimeError("%s: %d rule activations ran, the ONNX graph has %d Relu/Clip(min 0)"
                                   % (name, RuleAct.calls, n_rule))
            if not torch.allclose(yr, y, rtol=1e-5, atol=1e-5 * float(y.abs().max())):
                raise RuntimeError("%s: the %s model's forward differs from the original" % (name, rule))
            check_finite(name, rule + " input gradient", gxr)
            fk_r, _, _ = write_kinks(outdir, "%s.%s.kinks.txt" % (name, rule), g, rec, gouts)
            del rec, gouts
            fgx_r = save(outdir, "%s.%s.gx.npy" % (name, rule), gxr)
            fgf_r = save(outdir, "%s.%s.gf.npy" % (name, rule), gfr)
            man.add("%s/%s" % (name, rule), fmodel, fin, fseed, rule, fout, "-", fk_r,
                    [("input", fgx_r, "-"), (lname, fgf_r, ffeat)])
        extra = " rules: %d ReLU modules, %d ONNX Relu/Clip" % (nrep, n_rule)
    if name == "resnet18":  # batch 2, a different class per sample, one backward
        g2 = torch.Generator().manual_seed(seed_of(name, 5))
        x2 = torch.randn(2, 3, size, size, generator=g2)
        with torch.no_grad():
            y2 = model(x2)
        c0 = int(y2[0].argmax())
        order = [int(i) for i in torch.argsort(y2[1], descending=True)]
        c1 = order[0] if order[0] != c0 else order[1]
        y2, feat2, (gx2, gf2), rec, gouts = grads_with_hook(model, x2, layer, lambda y: y[0, c0] + y[1, c1])
        check_finite(name, "batch-2 input gradient", gx2)
        fk2, _, _ = write_kinks(outdir, "resnet18.b2.kinks.txt", g, rec, gouts)
        del rec, gouts
        man.add("resnet18/batch2", fmodel, save(outdir, "resnet18.b2.in.npy", x2),
                save(outdir, "resnet18.b2.seed.npy", one_hot(y2.shape, [c0, c1])), "standard",
                save(outdir, "resnet18.b2.out.npy", y2), "-", fk2,
                [("input", save(outdir, "resnet18.b2.gx.npy", gx2), "-"),
                 (lname, save(outdir, "resnet18.b2.gf.npy", gf2),
                  save(outdir, "resnet18.b2.feat.npy", feat2))])
        extra += " batch2 classes %d,%d" % (c0, c1)
    t3 = time.time()
    timing[name] = t3 - t0
    print("%-20s %3d bn head*%-7.3g class %-4d %3d kink ops %5d near-kink units; layer %s; torch %5.1fs export "
          "%5.1fs total %5.1fs%s" % (name, nbn, k, c, nk, nu, lname, (t1 - t0) + (t3 - t2), t2 - t1, t3 - t0, extra),
          flush=True)


def do_segmentation(outdir, man, timing):
    name, size, k = SEG
    t0 = time.time()
    model, x, nbn, _ = prepare(name, size)
    with torch.no_grad():
        y = model(x)
    mask = torch.zeros(y.shape)
    r0, r1, c0, c1 = size // 4, size * 5 // 8, size * 5 // 16, size * 3 // 4  # a non-square rectangle
    mask[0, k, r0:r1, c0:c1] = 1.0
    y, _, (gx,), rec, gouts = grads_with_hook(model, x, None, lambda y: (y * mask).sum())
    check_finite(name, "input gradient", gx)
    fmodel = name + ".onnx"
    g = export(model, x, os.path.join(outdir, fmodel)).graph
    fk, nu, nk = write_kinks(outdir, name + ".kinks.txt", g, rec, gouts)
    del rec, gouts
    man.add(name + "/region", fmodel, save(outdir, name + ".in.npy", x), save(outdir, name + ".seed.npy", mask),
            "standard", save(outdir, name + ".out.npy", y), "-", fk,
            [("input", save(outdir, name + ".gx.npy", gx), "-")])
    timing[name] = time.time() - t0
    print("%-20s %3d bn %3d kink ops %5d near-kink units; region class %d rows [%d,%d) cols [%d,%d) of %s "
          "total %5.1fs" % (name, nbn, nk, nu, k, r0, r1, c0, c1, tuple(y.shape), timing[name]), flush=True)


def do_prune(outdir, man, timing):
    name, size, layer = PRUNE
    t0 = time.time()
    model, x, nbn, _ = prepare(name, size)
    with torch.no_grad():
        c = int(model(x)[0].argmax())
    y, feat, (gx, gf), rec, gouts = grads_with_hook(model, x, layer, lambda y: y[0, c])
    check_finite(name, "layer gradient", gf)
    fmodel = name + ".onnx"
    g = export(model, x, os.path.join(outdir, fmodel), dyn_batch=False).graph
    lname = find_layer_tensor(g, layer)
    fk, nu, nk = write_kinks(outdir, name + ".kinks.txt", g, rec, gouts)
    del rec, gouts
    after = path_nodes(g, lname, g.output[0].name)
    whole = path_nodes(g, g.input[0].name, g.output[0].name)
    ops_after = [g.node[i].op_type for i in after]
    fin = save(outdir, name + ".in.npy", x)
    fseed = save(outdir, name + ".seed.npy", one_hot(y.shape, [c]))
    fout = save(outdir, name + ".out.npy", y)
    fgx = save(outdir, name + ".gx.npy", gx)
    fgf = save(outdir, name + ".gf.npy", gf)
    ffeat = save(outdir, name + ".feat.npy", feat)
    lay = (lname, fgf, ffeat)
    inp = ("input", fgx, "-")
    # grad_of = {layer4} only: the pass differentiates exactly the nodes after layer4.
    man.add(name + "/prune-layer", fmodel, fin, fseed, "standard", fout, "want:%d" % len(after), fk, [lay])
    # grad_of = {layer4, input}, want = {layer4}: stops as soon as layer4's gradient is complete.
    man.add(name + "/prune-want", fmodel, fin, fseed, "standard", fout, "want:%d" % len(after), fk, [lay, inp])
    # grad_of = {input}: every node on a path from the input to the logits.
    man.add(name + "/prune-input", fmodel, fin, fseed, "standard", fout, "all:%d" % len(whole), fk, [inp])
    timing[name] = time.time() - t0
    print("%-20s %3d bn %3d kink ops %5d near-kink units; layer %s; %d nodes after it (%s); %d of %d nodes from "
          "input to logits; total %5.1fs" % (name, nbn, nk, nu, lname, len(after), ",".join(ops_after), len(whole),
                                             len(g.node), timing[name]), flush=True)


def main():
    args = list(sys.argv[1:])
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
    manifest = os.path.join(outdir, "manifest.tsv")
    stamp = os.path.join(outdir, "stamp")
    h = script_hash()
    if not force and only is None and os.path.exists(stamp) and os.path.exists(manifest):
        with open(stamp) as f:
            same = f.read().strip() == h
        ok = True
        with open(manifest) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                fl = line.rstrip("\n").split("\t")
                files = fl[1:4] + [fl[5]] + [p for p in [fl[7]] if p != "-"] + \
                    [p for i, p in enumerate(fl[8:]) if i % 3 and p != "-"]
                ok = ok and all(os.path.exists(os.path.join(outdir, p)) for p in files)
        if same and ok:
            print("export_grads: %s is up to date (stamp %s)" % (outdir, h[:12]))
            return 0
    if os.path.exists(stamp):
        os.remove(stamp)

    import warnings
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    print("export_grads: torch %s, torchvision %s, onnx %s -> %s" %
          (torch.__version__, torchvision.__version__, onnx.__version__, outdir), flush=True)
    t_all = time.time()
    man = Manifest()
    timing = {}
    for name, size, layer in CLASSIFIERS:
        if only is None or name in only:
            do_classifier(outdir, man, name, size, layer, timing)
    if only is None or SEG[0] in only:
        do_segmentation(outdir, man, timing)
    if only is None or PRUNE[0] in only:
        do_prune(outdir, man, timing)
    tmp = manifest + ".tmp"
    with open(tmp, "w") as f:
        f.write("# name\tmodel\tinput\tseed\trule\toutput\tcount\tkinks\t[tensor\tgrad\tvalue]...\n")
        f.write("# generated by tests/export_grads.py (opset %d, constant folding); inputs seeded N(0,1)\n" % OPSET)
        for r in man.rows:
            f.write(r + "\n")
    os.replace(tmp, manifest)
    if only is None:
        with open(stamp, "w") as f:
            f.write(h + "\n")
    print("export_grads: %d checks in manifest, export + reference total %.1fs" % (len(man.rows), time.time() - t_all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
