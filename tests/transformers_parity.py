#!/usr/bin/python3
"""PyTorch parity of vision transformers: the ops their ONNX exports need (ScatterND, Einsum, and the
attention graphs around them) forward and backward.

Usage: /usr/bin/python3 tests/transformers_parity.py LIBGRADCAM_SO WORKDIR

Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision, python3-onnx). Small
configurations of the architectures of torchvision's vit_b_16/vit_l_16, swin_t/s/b, swin_v2_t and
maxvit_t, and a DeiT-like ViT (a distillation token after the class token, two heads averaged),
with seeded random weights (the ViT heads, zero by default, are drawn too), are exported to ONNX at
opsets 13 and 17 (Swin's shifted-window mask is built with ScatterND, MaxViT's attention with
Einsum) and run through libgradcam (ctypes). The truth is the same model in float64. Checks: the
output within 1e-4 of the reference's max |value| (from the context that runs the backward, and from
an inference context, where the forward fusions apply), and the input gradient of the top class within
1e-3 of the reference gradient's max |value|. The functions are smooth where the input reaches
them (GELU, softmax, LayerNorm; Swin v2's ReLU only sees constant tables): no kink can flip
between float32 and float64. Exits 1 on any failure."""
import copy
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_ctypes import Engine  # noqa: E402

OUT_TOL, GRAD_TOL = 1e-4, 1e-3


class Attention(nn.Module):
    """Multi-head self-attention written out (qkv Linear, scaled softmax), not nn.MultiheadAttention."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5, dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.norm1, self.attn, self.norm2 = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads), nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DeiT(nn.Module):
    """DeiT's layout: patch embedding, class and distillation tokens, two heads averaged at inference."""

    def __init__(self, image_size=64, patch=16, dim=64, layers=2, heads=2, mlp=128, classes=10):
        super().__init__()
        n = (image_size // patch) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.dist_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n + 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head, self.head_dist = nn.Linear(dim, classes), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        b = x.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), x], 1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2


def zero_symbolic():
    """Swin v2 zeroes a slice of its qkv bias in place (aten::zero), which PyTorch 1.13 cannot export:
    write it as a multiplication by 0 (the bias is a constant, folded)."""
    from torch.onnx import register_custom_op_symbolic

    def zero(g, self):
        return g.op("Mul", self, g.op("Constant", value_t=torch.tensor(0.0)))

    for opset in (13, 17):
        register_custom_op_symbolic("aten::zero", zero, opset)


def models():
    from torchvision.models.maxvit import MaxVit
    from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2
    from torchvision.models.vision_transformer import VisionTransformer

    def vit():
        m = VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128,
                              num_classes=10)
        nn.init.normal_(m.heads.head.weight, std=0.2)  # zero by default
        nn.init.normal_(m.heads.head.bias, std=0.2)
        return m

    swin = dict(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4], num_classes=10)
    return [
        ("vit (vit_b_16 layout)", vit, "Softmax"),
        ("deit-like (class + distillation tokens)", DeiT, "Softmax"),
        ("swin (swin_t layout)", lambda: SwinTransformer(**swin), "ScatterND"),
        ("swin v2 (swin_v2_t layout)", lambda: SwinTransformer(**swin, block=SwinTransformerBlockV2,
                                                               downsample_layer=PatchMergingV2), "ScatterND"),
        ("maxvit (maxvit_t layout)", lambda: MaxVit(input_size=(64, 64), stem_channels=16, partition_size=2,
                                                    block_channels=[16, 32], block_layers=[1, 1], head_dim=8,
                                                    stochastic_depth_prob=0.0, num_classes=10), "Einsum"),
    ]


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def check(eng, label, path, model, x, opset, needs):
    """Exports model(x) to path, compares the output and the top class's input gradient."""
    import onnx
    model.eval()  # with autograd on: under no_grad, nn.MultiheadAttention takes a fast path that does not export
    torch.onnx.export(model, (x,), path, opset_version=opset, input_names=["x"], output_names=["out"],
                      do_constant_folding=True)
    n_op = sum(n.op_type == needs for n in onnx.load(path).graph.node)
    ref = copy.deepcopy(model).double()
    xd = x.clone().double().requires_grad_(True)
    out = ref(xd)
    top = int(out[0].argmax())
    out[0, top].backward()

    def seed(o):
        s = np.zeros_like(o)
        s[0, top] = 1
        return s

    got_out, grads = eng.run(path, {"x": x.numpy()}, "out", seed, ["x"])
    got_grad = grads["x"]
    eo, eg = rel(got_out, out.detach().numpy()), rel(got_grad, xd.grad.numpy())
    # an inference context too: the forward fusions (GELU, its bias, views) apply only without a backward
    inf_out, _ = eng.run(path, {"x": x.numpy()}, None, None, [])
    ei = rel(inf_out, out.detach().numpy())
    eo = max(eo, ei)
    ok = eo <= OUT_TOL and eg <= GRAD_TOL and n_op > 0
    print("%-4s %-44s opset %d  %3d x %-9s out %.1e (inference %.1e)  input grad %.1e" % (
        "ok" if ok else "FAIL", label, opset, n_op, needs, eo, ei, eg), flush=True)
    return (not ok), eo, eg


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    eng, work = Engine(sys.argv[1]), sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(2)
    zero_symbolic()
    fails, worst_o, worst_g, n, t0 = 0, 0.0, 0.0, 0, time.time()
    for i, (label, make, needs) in enumerate(models()):
        for opset in (13, 17):
            torch.manual_seed(100 + i)
            m = make()
            x = torch.randn(1, 3, 64, 64)
            path = os.path.join(work, "model%d_%d.onnx" % (i, opset))
            try:
                f, eo, eg = check(eng, label, path, m, x, opset, needs)
            except Exception as e:  # an export or engine failure is a test failure, with its reason
                print("FAIL %-44s opset %d  %s" % (label, opset, e), flush=True)
                f, eo, eg = 1, 0.0, 0.0
            fails, worst_o, worst_g, n = fails + f, max(worst_o, eo), max(worst_g, eg), n + 1
    print("%d models: worst output error %.2e (tol %.0e), worst input gradient error %.2e (tol %.0e); %d failed; %.0f s"
          % (n, worst_o, OUT_TOL, worst_g, GRAD_TOL, fails, time.time() - t0))
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
