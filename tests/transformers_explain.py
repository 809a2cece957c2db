"""Transformers explained like the CNNs (issue #20), against PyTorch: small ViT, DeiT-style (class and
distillation tokens), channel-last and Swin models with seeded weights, exported here.

- `gradcam info`: the automatic layer is the last block's first norm (ViT, DeiT) or the channel-last
  norm; the CAM layer kinds are listed.
- Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM and Ablation-CAM on the token layer against the formulas on
  pytorch-grad-cam's reshape_transform of the hooked activations and gradients: within 1e-3 of the
  map's maximum.
- Attention rollout and its gradient variant against the papers' formulas on the attention maps
  PyTorch computes: within 1e-4 of the maximum.
- The input gradient and Guided Backprop (no ReLU in these models: the same) against autograd: 1e-3.
- --tokens-grid / --skip-tokens given explicitly give the same maps; a grid that does not fit is
  refused with one line.

    /usr/bin/python3 tests/transformers_explain.py GRADCAM_BINARY WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import EncoderBlock, VisionTransformer

FAILS = []
COUNT = [0]


def check(ok, what):
    COUNT[0] += 1
    if not ok:
        FAILS.append(what)
        print("FAIL:", what)
    return ok


class DeiTLike(nn.Module):
    """A ViT with DeiT's class and distillation tokens; the two heads' logits averaged (DeiT's
    inference)."""

    def __init__(self, size=64, patch=16, dim=64, layers=2, heads=2, classes=10):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)
        n = (size // patch) ** 2
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.2)
        self.dist = nn.Parameter(torch.randn(1, 1, dim) * 0.2)
        self.pos = nn.Parameter(torch.randn(1, n + 2, dim) * 0.2)
        self.blocks = nn.Sequential(*[EncoderBlock(heads, dim, 2 * dim, 0.0, 0.0) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        self.head_dist = nn.Linear(dim, classes)

    def forward(self, x):
        t = self.proj(x).flatten(2).transpose(1, 2)  # (N, hw, dim)
        b = t.shape[0]
        t = torch.cat([self.cls.expand(b, -1, -1), self.dist.expand(b, -1, -1), t], 1) + self.pos
        t = self.norm(self.blocks(t))
        return (self.head(t[:, 0]) + self.head_dist(t[:, 1])) / 2


class ChannelLast(nn.Module):
    """Swin's shape of maps: (N, H, W, C) normalised over C, then pooled into a linear head."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 4, 4)
        self.mix = nn.Linear(32, 32)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        t = self.conv(x).permute(0, 2, 3, 1)  # (N, h, w, C)
        t = self.norm(F.gelu(self.mix(t)))
        return self.head(t.mean(dim=(1, 2)))


def models():
    torch.manual_seed(20)
    vit = VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128,
                            num_classes=10).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.2)  # (zeros by default: every score would be 0)
    deit = DeiTLike().eval()
    cl = ChannelLast().eval()
    swin = SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                           num_classes=10).eval()
    return [("vit", vit, vit.encoder.layers[-1].ln_1, 1, (4, 4)),
            ("deit", deit, deit.blocks[-1].ln_1, 2, (4, 4)),
            ("channel_last", cl, cl.norm, None, (16, 16)),
            ("swin", swin, swin.norm, None, (8, 8))]


def reshape_transform(t, skip, grid):
    """pytorch-grad-cam's: tokens (N, T, C) -> (N, C, h, w) after the special tokens; channel-last
    (N, h, w, C) -> (N, C, h, w)."""
    if skip is None:
        return t.permute(0, 3, 1, 2)
    r = t[:, skip:, :].reshape(t.size(0), grid[0], grid[1], t.size(2))
    return r.transpose(2, 3).transpose(1, 2)


def cam_refs(A, G):
    """(C, h, w) float64 -> {method: map (h, w)}, pytorch-grad-cam's formulas."""
    relu = lambda z: np.maximum(z, 0)
    out = {"gradcam": relu((G.mean(axis=(1, 2))[:, None, None] * A).sum(0))}
    g2, g3 = G ** 2, G ** 3
    sa = A.sum(axis=(1, 2))[:, None, None]
    aij = np.where(G != 0, g2 / (2 * g2 + sa * g3 + 1e-6), 0)
    out["gradcam++"] = relu(((relu(G) * aij).sum(axis=(1, 2))[:, None, None] * A).sum(0))
    out["xgradcam"] = relu((((G * A).sum(axis=(1, 2)) / (A.sum(axis=(1, 2)) + 1e-7))[:, None, None] * A).sum(0))
    out["hirescam"] = relu((G * A).sum(0))
    out["layercam"] = relu((relu(G) * A).sum(0))
    return out


def torch_reference(model, layer, x, skip, grid):
    """The hooked layer's A and G, the attention maps and their gradients, the input gradient, for
    the top class."""
    store, attn = {}, []
    orig = F.softmax

    def sm(t, *a, **k):
        o = orig(t, *a, **k)
        if t.dim() == 3 and t.shape[-1] == t.shape[-2]:
            o.retain_grad()
            attn.append(o)
        return o

    def hook(mod, i, o):
        store["a"] = o
        o.register_hook(lambda g: store.__setitem__("g", g))

    h = layer.register_forward_hook(hook)
    F.softmax = sm
    try:
        xt = torch.from_numpy(x).requires_grad_(True)
        y = model(xt)
        c = int(y[0].argmax())
        y[0, c].backward()
    finally:
        F.softmax = orig
        h.remove()
    A = reshape_transform(store["a"].detach(), skip, grid)[0].double().numpy()
    G = reshape_transform(store["g"], skip, grid)[0].double().numpy()
    return c, A, G, attn, xt.grad[0].double().numpy()


def ablation_ref(model, layer, x, c, skip, grid):
    """Ablation-CAM (Desai & Ramaswamy): channel k of the layer zeroed at every grid position (the
    special tokens kept), w_k = (y - y_k) / y, map = ReLU(sum_k w_k A_k)."""
    st = {}

    def hook(mod, i, o):
        st["a"] = o.detach().clone()
        if "k" in st:
            o = o.clone()
            if skip is None:
                o[..., st["k"]] = 0
            else:
                o[:, skip:, st["k"]] = 0
            return o
        return None

    h = layer.register_forward_hook(hook)
    xt = torch.from_numpy(x)
    try:
        with torch.no_grad():
            y = float(model(xt)[0, c])
            A = reshape_transform(st["a"], skip, grid)[0].double().numpy()
            w = np.zeros(A.shape[0])
            for k in range(A.shape[0]):
                st["k"] = k
                w[k] = (y - float(model(xt)[0, c])) / y
    finally:
        h.remove()
    return np.maximum((w[:, None, None] * A).sum(0), 0)


def rollout_refs(attn, skip, grid):
    if not attn:
        return {}
    T = attn[0].shape[-1]
    out = {}
    for name, grad in (("attention-rollout", False), ("grad-rollout", True)):
        R = torch.eye(T, dtype=torch.float64)
        for w in attn:  # (heads, T, T) at batch 1
            A = w.detach().double()
            if grad:
                R = R + (w.grad.double() * A).clamp(min=0).mean(0) @ R
            else:
                M = 0.5 * A.mean(0) + 0.5 * torch.eye(T, dtype=torch.float64)
                R = (M / M.sum(-1, keepdim=True)) @ R
        out[name] = R[0, skip:].reshape(grid).numpy()
    return out


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def explain(cli, model, xp, out, extra):
    shutil.rmtree(out, ignore_errors=True)
    return subprocess.run([cli, "explain", model, xp, "--npy", "--threads", "1", "-q", "-o", out] + extra,
                          capture_output=True, text=True, timeout=300)


def run_model(cli, work, name, model, layer, skip, grid):
    path = os.path.join(work, name + ".onnx")
    torch.manual_seed(3)
    x = torch.randn(1, 3, 64, 64).numpy()
    # (with gradients enabled: under no_grad PyTorch takes its fused attention, which ONNX cannot export)
    torch.onnx.export(model, torch.from_numpy(x), path, input_names=["input"], output_names=["logits"], opset_version=17)
    xp = os.path.join(work, name + "_x.npy")
    np.save(xp, x)
    c, A, G, attn, gx = torch_reference(model, layer, x, skip, grid)
    info = subprocess.run([cli, "info", path], capture_output=True, text=True, timeout=120).stdout
    # (torchvision's Swin permutes its final norm to (N, C, H, W) right after: that tensor, the same values)
    want = {"vit": ["encoder_layer_1/ln_1/"], "deit": ["blocks/blocks.1/ln_1/"], "channel_last": ["/norm/"],
            "swin": ["/norm/LayerNorm", "/permute/Transpose_output_0"]}[name]
    line = [ln for ln in info.splitlines() if ln.startswith("default explanation layer")]
    check(line and any(w in line[0] for w in want), "%s: the automatic layer (last block's first norm, or the "
          "final channel-last norm): %r" % (name, line))
    check(("tokens (N, T, C)" if skip else "channel-last maps") in info, "%s: info lists the layer kind" % name)
    methods = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "ablationcam", "gradient", "guided-backprop"]
    if skip:
        methods += ["attention-rollout", "grad-rollout"]
    out = os.path.join(work, name + "_out")
    p = explain(cli, path, xp, out, ["-m", ",".join(methods), "-c", str(c)])
    if not check(p.returncode == 0, "%s: explain exits 0 (%s)" % (name, p.stderr.strip())):
        return
    maps = {m["method"]: np.load(os.path.join(out, m["npy"])) for m in
            json.load(open(os.path.join(out, "results.json")))["inputs"][0]["maps"]}
    refs = cam_refs(A, G)
    refs["ablationcam"] = ablation_ref(model, layer, x, c, skip, grid)
    refs.update(rollout_refs(attn, skip or 0, grid))
    for k, ref in refs.items():
        tol = 1e-4 if "rollout" in k else 1e-3
        e = rel(maps[k].astype(np.float64), ref)
        check(maps[k].shape == ref.shape and e <= tol, "%s %s: %.2e of the max (<= %g)" % (name, k, e, tol))
    for k in ("gradient", "guided-backprop"):  # no ReLU-like op: guided backprop is the gradient
        e = rel(maps[k].astype(np.float64), gx)
        check(e <= 1e-3, "%s %s against autograd: %.2e of the max" % (name, k, e))
    if skip:
        out2 = out + "_grid"
        p = explain(cli, path, xp, out2, ["-m", "gradcam", "-c", str(c), "--tokens-grid", "%dx%d" % grid,
                                          "--skip-tokens", str(skip)])
        same = p.returncode == 0 and np.array_equal(
            np.load(os.path.join(out2, "%s_x_c%d_gradcam.npy" % (name, c))), maps["gradcam"])
        check(same, "%s: --tokens-grid %dx%d --skip-tokens %d gives the same map" % ((name,) + grid + (skip,)))
        p = explain(cli, path, xp, out2, ["-m", "gradcam", "--tokens-grid", "3x3", "--skip-tokens", "1"])
        check(p.returncode != 0 and "grid" in p.stderr and len(p.stderr.strip().splitlines()) <= 2,
              "%s: a grid that does not fit is one line (%r)" % (name, p.stderr.strip()))


def run_eval(cli, work, name):
    """`gradcam eval` on a token model: every method scored at the automatic token layer, and the
    sanity check's property of rollout (it reads only the attention maps, so randomising the head
    leaves it unchanged: Spearman exactly 1), where Grad-CAM (through the head) moves."""
    from PIL import Image
    d = os.path.join(work, name + "_eval")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "img"))
    rng = np.random.default_rng(5)
    rows = ["image,class,x0,y0,x1,y1"]
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(os.path.join(d, "img", "p%d.png" % i))
        rows.append("p%d.png,%d,8,8,40,40" % (i, i))
    with open(os.path.join(d, "boxes.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    methods = ["gradcam", "layercam", "guided-backprop", "attention-rollout"]
    p = subprocess.run([cli, "eval", os.path.join(work, name + ".onnx"), "--images", os.path.join(d, "img"),
                        "--boxes", os.path.join(d, "boxes.csv"), "-m", ",".join(methods), "--preprocess", "raw",
                        "--steps", "5", "--sanity-depths", "1", "--threads", "1", "-o", os.path.join(d, "out")],
                       capture_output=True, text=True, timeout=300)
    if not check(p.returncode == 0, "%s: eval exits 0 (%s)" % (name, p.stderr.strip()[-300:])):
        return
    ev = json.load(open(os.path.join(d, "out", "eval.json")))
    got = {m["method"]: m for m in ev["methods"]}
    check(sorted(got) == sorted(methods) and all(got[m]["localisation"]["images"] == 3 for m in methods),
          "%s: eval scores every method on the 3 pictures (%s)" % (name, sorted(got)))
    check("ln_1" in json.dumps(ev["layers"]), "%s: eval's layer is the token layer (%s)" % (name, ev["layers"]))
    sp = {m: got[m]["sanity"][0]["spearman"] for m in ("attention-rollout", "gradcam")}
    check(sp["attention-rollout"] == 1.0 and sp["gradcam"] < 0.9,
          "%s: head randomised: rollout unchanged (Spearman %r), Grad-CAM moved (%r)" % (name, sp["attention-rollout"],
                                                                                     sp["gradcam"]))


def main():
    cli, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    for name, model, layer, skip, grid in models():
        run_model(cli, work, name, model, layer, skip, grid)
        if name == "vit":
            run_eval(cli, work, name)
    print("transformers_explain: %d passed, %d failed" % (COUNT[0] - len(FAILS), len(FAILS)))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
