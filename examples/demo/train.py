#!/usr/bin/python3
"""Train the demo's small shape classifier and export it to ONNX (run with Debian's /usr/bin/python3).

    /usr/bin/python3 examples/demo/train.py            # writes shapes_cnn.onnx and labels.txt here

Data: single-shape 128x128 images from shapes.py (training seed 1, validation seed 2), with random
flips and 90-degree rotations (no class changes under them).  Input: RGB, pixel/255 (0..1), NCHW,
no mean/std ("raw" preprocessing).  Deterministic: fixed seeds, 2 threads, deterministic algorithms.
"""
import argparse
import os
import sys
import time

import numpy as np

# Idle OpenMP threads sleep instead of spinning: on a shared, loaded machine spinning
# costs several times the useful CPU time.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import shapes  # noqa: E402

TRAIN_SEED, VAL_SEED = 1, 2
WIDTHS, KERNELS = (16, 32, 48, 64, 96), (3, 3, 3, 3, 3)


class ShapesCNN(nn.Module):
    """conv-bn-relu blocks; the last block (`block5`, 16x16 for a 128x128 input) feeds a global
    average pool and one linear layer, so CAM and Grad-CAM both apply to it."""

    def __init__(self, widths=WIDTHS, kernels=KERNELS, ncls=len(shapes.CLASSES), fused=False):
        super().__init__()
        w, k = widths, kernels

        def blk(i, o, k, stride=1):
            if fused:       # as exported: batch norm folded into the conv
                return nn.Sequential(nn.Conv2d(i, o, k, stride, k // 2), nn.ReLU())
            return nn.Sequential(nn.Conv2d(i, o, k, stride, k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU())

        self.block1 = blk(3, w[0], k[0], 2)   # 128 -> 64
        self.pool1 = nn.MaxPool2d(2)          # 64 -> 32
        self.block2 = blk(w[0], w[1], k[1])
        self.pool2 = nn.MaxPool2d(2)          # 32 -> 16
        self.block3 = blk(w[1], w[2], k[2])
        self.block4 = blk(w[2], w[3], k[3])
        self.block5 = blk(w[3], w[4], k[4])   # (N, w4, 16, 16): the Grad-CAM layer
        self.gap = nn.AdaptiveAvgPool2d(1)    # exports as GlobalAveragePool
        self.fc = nn.Linear(w[4], ncls)

    def features(self, x):
        x = self.pool1(self.block1(x))
        x = self.pool2(self.block2(x))
        return self.block5(self.block4(self.block3(x)))

    def forward(self, x):
        return self.fc(torch.flatten(self.gap(self.features(x)), 1))

    @classmethod
    def from_onnx(cls, path):
        """The exported model back in PyTorch (batch norm folded), from the ONNX file's weights."""
        import onnx
        from onnx import numpy_helper
        g = onnx.load(path).graph
        init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
        convs = [n for n in g.node if n.op_type == "Conv"]
        gemm = [n for n in g.node if n.op_type == "Gemm"][0]
        widths = tuple(int(init[n.input[1]].shape[0]) for n in convs)
        kernels = tuple(int(init[n.input[1]].shape[2]) for n in convs)
        m = cls(widths, kernels, int(init[gemm.input[1]].shape[0]), fused=True)
        for blk, n in zip((m.block1, m.block2, m.block3, m.block4, m.block5), convs):
            blk[0].weight.data.copy_(init[n.input[1]])
            blk[0].bias.data.copy_(init[n.input[2]])
        m.fc.weight.data.copy_(init[gemm.input[1]])
        m.fc.bias.data.copy_(init[gemm.input[2]])
        return m.eval()


def to_input(imgs):
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in 0..1: the model's whole preprocessing."""
    return torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)


def dihedral(x, k):
    """One of the 8 flips/rotations of a batch (N, C, H, W)."""
    if k & 4:
        x = x.flip(3)
    return torch.rot90(x, k & 3, dims=(2, 3))


def load_set(seed, n, cache):
    path = os.path.join(cache, "single_s%d_n%d.npz" % (seed, n)) if cache else None
    if path and os.path.exists(path):
        z = np.load(path)
        return z["x"], z["y"], z["b"]
    x, y, b = shapes.single_set(seed, n)
    if path:
        os.makedirs(cache, exist_ok=True)
        np.savez(path, x=x, y=y, b=b)
    return x, y, b


def crop_batch(x, b, size, gen):
    """Random size x size windows of images x (N, H, W, 3), each holding its whole shape box b (N, 4)."""
    out = np.empty((len(x), size, size, 3), np.uint8)
    lo_x = np.maximum(b[:, 2] - size, 0)
    hi_x = np.minimum(b[:, 0], shapes.SIZE - size)
    lo_y = np.maximum(b[:, 3] - size, 0)
    hi_y = np.minimum(b[:, 1], shapes.SIZE - size)
    u = torch.rand(len(x), 2, generator=gen).numpy()
    ox = (lo_x + u[:, 0] * (hi_x - lo_x + 1)).astype(np.int64)
    oy = (lo_y + u[:, 1] * (hi_y - lo_y + 1)).astype(np.int64)
    for i in range(len(x)):
        out[i] = x[i, oy[i]:oy[i] + size, ox[i]:ox[i] + size]
    return out


@torch.no_grad()
def accuracy(model, x, y, bs=256):
    model.eval()
    correct = 0
    for i in range(0, len(x), bs):
        correct += (model(to_input(x[i:i + bs])).argmax(1).numpy() == y[i:i + bs]).sum()
    return correct / len(x)


def export(model, out_dir):
    model.eval()
    onnx_path = os.path.join(out_dir, "shapes_cnn.onnx")
    torch.onnx.export(model, torch.zeros(1, 3, shapes.SIZE, shapes.SIZE), onnx_path,
                      input_names=["input"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    with open(os.path.join(out_dir, "labels.txt"), "w") as f:
        f.write("\n".join(shapes.CLASSES) + "\n")
    return onnx_path


def main():
    ap = argparse.ArgumentParser(description="train the demo shape classifier")
    ap.add_argument("--n-train", type=int, default=12000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--schedule", default="64,64,96,128,128",
                    help="one epoch per entry: the side of the random crop (around the shape) trained on")
    ap.add_argument("--loss", choices=["ce", "bce"], default="ce",
                    help="ce: softmax cross-entropy; bce: one-vs-all logistic loss (fragile here: often collapses)")
    ap.add_argument("--pos-weight", type=float, default=1.0,
                    help="bce: weight of the positive term (1: plain one-vs-all logistic loss)")
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)), help="channels of the 5 conv blocks")
    ap.add_argument("--kernels", default=",".join(map(str, KERNELS)), help="kernel sizes of the 5 conv blocks")
    ap.add_argument("--nonneg-fc", type=int, default=0,
                    help="1: keep the last layer's weights >= 0 (a class's evidence is then only what its own "
                         "features add; but block5's channels become class-specific and Guided Backprop "
                         "with them, so the shipped model leaves this off)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--seed", type=int, default=0, help="torch seed (weights, batch order, augmentation)")
    ap.add_argument("--out", default=HERE, help="where shapes_cnn.onnx, labels.txt go")
    ap.add_argument("--cache", default=None, help="directory to cache generated training arrays")
    ap.add_argument("--save-pt", default=None, help="also save the PyTorch state_dict here")
    a = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)

    t0, c0 = time.time(), time.process_time()
    xtr, ytr, btr = load_set(TRAIN_SEED, a.n_train, a.cache)
    xva, yva, _ = load_set(VAL_SEED, a.n_val, a.cache)
    print("data: %d train, %d val images, %.0f s CPU" % (len(xtr), len(xva), time.process_time() - c0), flush=True)

    model = ShapesCNN(tuple(int(v) for v in a.widths.split(",")), tuple(int(v) for v in a.kernels.split(",")))
    print("parameters: %d" % sum(p.numel() for p in model.parameters()))
    # first epochs on crops around the shape (cheap, strong signal), the last on whole images
    # (the GAP then sees as much background as at test time)
    nb = len(xtr) // a.batch
    phases = [int(v) for v in a.schedule.split(",")]
    steps = len(phases) * nb
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(a.seed + 1)
    if a.nonneg_fc:
        with torch.no_grad():
            model.fc.weight.abs_()
    if a.loss == "bce":     # one-vs-all: each logit says "this shape is here", whatever else is
        pw = torch.full((len(shapes.CLASSES),), a.pos_weight)

        def criterion(z, y):
            return F.binary_cross_entropy_with_logits(z, F.one_hot(y, z.shape[1]).float(), pos_weight=pw,
                                                      reduction="sum") / len(y)
    else:
        criterion = F.cross_entropy
    ytr_t = torch.from_numpy(ytr)
    c1 = time.process_time()
    for ep, size in enumerate(phases):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen).numpy()
        tot = run = 0.0
        for i in range(nb):
            idx = perm[i * a.batch:(i + 1) * a.batch]
            imgs = xtr[idx] if size == shapes.SIZE else crop_batch(xtr[idx], btr[idx], size, gen)
            x = dihedral(to_input(imgs), int(torch.randint(0, 8, (), generator=gen)))
            loss = criterion(model(x), ytr_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if a.nonneg_fc:
                with torch.no_grad():
                    model.fc.weight.clamp_(min=0)
            tot += loss.item()
            run += loss.item()
            if a.verbose and (i + 1) % 25 == 0:
                print("  step %d: loss %.3f, %.0f s CPU" % (i + 1, run / 25, time.process_time() - c1), flush=True)
                run = 0.0
        print("epoch %d (%dx%d): loss %.4f, val acc %.4f, %.0f s CPU" %
              (ep + 1, size, size, tot / nb, accuracy(model, xva, yva), time.process_time() - c1), flush=True)
    train_cpu, wall = time.process_time() - c1, time.time() - t0
    acc = accuracy(model, xva, yva)
    print("training: %.0f s CPU (%.0f s wall in all), validation accuracy %.2f%% on %d single-shape images"
          % (train_cpu, wall, 100 * acc, len(xva)))
    if a.save_pt:
        torch.save(model.state_dict(), a.save_pt)
    path = export(model, a.out)
    print("wrote %s (%d bytes) and labels.txt" % (path, os.path.getsize(path)))


if __name__ == "__main__":
    main()
