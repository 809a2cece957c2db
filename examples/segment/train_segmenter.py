#!/usr/bin/python3
"""Train the small shape segmenter and export it to ONNX (run with Debian's /usr/bin/python3).

    nice -n 10 /usr/bin/python3 examples/segment/train_segmenter.py    # writes shapes_segmenter.onnx, labels.txt

Semantic segmentation of the detection demo's scenes (examples/detect/scenes.py): input "images"
(1, 3, 128, 128), RGB, pixel / 255, no mean/std; output "out" (1, 4, 128, 128), class logits per
pixel: 0 background, 1 circle, 2 square, 3 triangle. An encoder of conv-bn-relu blocks down to 8x8,
a decoder with bilinear upsampling and skip connections back to 64x64, and a transposed
convolution as the last layer (64x64 -> 128x128, straight to the class logits).

Data: scenes (1, i) for training, (2, i) validation, (3, i) the held-out test set (200 scenes);
random flips and transposes, and random crops in the first epochs. Deterministic: fixed seeds,
one thread, torch.use_deterministic_algorithms.
"""
import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "detect"))
import onnx_weights  # noqa: E402
import scenes  # noqa: E402

SIZE = 128
LABELS = ["background"] + scenes.CLASSES
NCLS = len(LABELS)
TRAIN_SEED, VAL_SEED, TEST_SEED = 1, 2, 3


class Block(nn.Module):
    """Conv + BatchNorm + ReLU (fused: conv with bias, no BN, as exported)."""

    def __init__(self, cin, cout, s=1, fused=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, s, 1, bias=fused)
        self.bn = nn.Identity() if fused else nn.BatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Segmenter(nn.Module):
    def __init__(self, w=(16, 32, 48, 64), d=(48, 32, 16), fused=False, aux=False):
        super().__init__()
        b = lambda i, o, s=1: Block(i, o, s, fused)  # noqa: E731
        self.enc1 = nn.Sequential(b(3, w[0], 2), b(w[0], w[0]))        # 64x64
        self.enc2 = nn.Sequential(b(w[0], w[1], 2), b(w[1], w[1]))     # 32x32
        self.enc3 = nn.Sequential(b(w[1], w[2], 2), b(w[2], w[2]))     # 16x16
        self.enc4 = nn.Sequential(b(w[2], w[3], 2), b(w[3], w[3]))     # 8x8
        self.dec3 = b(w[3] + w[2], d[0])                               # 16x16
        self.dec2 = b(d[0] + w[1], d[1])                               # 32x32
        self.dec1 = b(d[1] + w[0], d[2])                               # 64x64
        self.classifier = nn.ConvTranspose2d(d[2], NCLS, 4, stride=2, padding=1)   # 128x128 logits
        # training only (not exported): class logits at 16x16 from dec3, like FCN's auxiliary classifier
        self.aux = nn.Conv2d(d[0], NCLS, 1) if aux else None

    @staticmethod
    def up(x):
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def decode(self, x):
        """The 64x64 decoder output (input of the last layer) and dec3's 16x16 output."""
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        y3 = self.dec3(torch.cat([self.up(e4), e3], 1))
        y = self.dec2(torch.cat([self.up(y3), e2], 1))
        return self.dec1(torch.cat([self.up(y), e1], 1)), y3

    def forward(self, x):
        return self.classifier(self.decode(x)[0])

    def forward_train(self, x):
        """Logits (N, 4, H, W) and the auxiliary classifier's (N, 4, H/8, W/8) or None."""
        y, y3 = self.decode(x)
        return self.classifier(y), (self.aux(y3) if self.aux is not None else None)

    @classmethod
    def from_onnx(cls, path):
        """The exported model back in PyTorch (batch norms folded), from the ONNX file's weights."""
        init, convs = onnx_weights.conv_nodes(path)
        out = lambda k: int(init[convs[k].input[1]].shape[0])  # noqa: E731
        m = cls(tuple(out("enc%d.0.conv" % i) for i in (1, 2, 3, 4)),
                tuple(out("dec%d.conv" % i) for i in (3, 2, 1)), fused=True)
        return onnx_weights.load_convs(m, init, convs, (nn.Conv2d, nn.ConvTranspose2d))


def to_input(imgs):
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in 0..1: the model's whole preprocessing."""
    return torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)


def augment(imgs, masks, k, crop, gen):
    """Flip/transpose k (0..7) of images (N, H, W, 3) and masks (N, H, W), then one random
    crop x crop window per picture."""
    if k & 1:
        imgs, masks = imgs[:, :, ::-1], masks[:, :, ::-1]
    if k & 2:
        imgs, masks = imgs[:, ::-1], masks[:, ::-1]
    if k & 4:
        imgs, masks = imgs.transpose(0, 2, 1, 3), masks.transpose(0, 2, 1)
    if crop < SIZE:
        o = torch.randint(0, SIZE - crop + 1, (len(imgs), 2), generator=gen).numpy()
        imgs = np.stack([im[y:y + crop, x:x + crop] for im, (y, x) in zip(imgs, o)])
        masks = np.stack([m[y:y + crop, x:x + crop] for m, (y, x) in zip(masks, o)])
    return np.ascontiguousarray(imgs), np.ascontiguousarray(masks)


@torch.no_grad()
def predict(model, imgs, bs=50):
    model.eval()
    return np.concatenate([model(to_input(imgs[i:i + bs])).argmax(1).numpy().astype(np.uint8)
                           for i in range(0, len(imgs), bs)])


def confusion(pred, truth):
    return np.bincount(truth.astype(np.int64).ravel() * NCLS + pred.ravel(), minlength=NCLS * NCLS).reshape(NCLS, NCLS)


def metrics(cm):
    """IoU per class (intersection over union, pixels summed over all pictures), mean IoU over the
    4 classes and over the 3 shapes, pixel accuracy."""
    tp = np.diag(cm).astype(np.float64)
    iou = tp / np.maximum(cm.sum(0) + cm.sum(1) - tp, 1)
    return {"iou": iou, "miou": float(iou.mean()), "miou_shapes": float(iou[1:].mean()),
            "acc": float(tp.sum() / cm.sum())}


def evaluate(model, imgs, masks):
    return metrics(confusion(predict(model, imgs), masks))


def fmt(m):
    return "mIoU %.4f (shapes only %.4f; %s), pixel accuracy %.4f" % (
        m["miou"], m["miou_shapes"], ", ".join("%s %.3f" % (n, v) for n, v in zip(LABELS, m["iou"])), m["acc"])


def load_set(seed, n):
    imgs, _, _, sems = scenes.scene_set(seed, n, size=SIZE)
    return imgs, sems


def export(model, path):
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), path, input_names=["images"], output_names=["out"],
                      opset_version=17, do_constant_folding=True)
    try:
        import onnx
    except ImportError:
        print("onnx not installed: the exported file was not checked")
        return
    m = onnx.load(path)
    onnx.checker.check_model(m)
    dims = [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    assert m.graph.output[0].name == "out" and dims == [1, NCLS, SIZE, SIZE], dims
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    for n in m.graph.node[-6:]:
        print("  %s %s: %s -> %s" % (n.op_type, n.name, list(n.input)[:1], list(n.output)))


def main():
    ap = argparse.ArgumentParser(description="train the demo shape segmenter")
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--schedule", default="96,96,128,128,128,128,128",
                    help="one epoch per entry: the side of the random crop trained on")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--bg-weight", type=float, default=0.3, help="weight of background pixels in the loss")
    ap.add_argument("--aux", type=float, default=0.4,
                    help="weight of the auxiliary 16x16 classifier's loss (training only; 0: none)")
    ap.add_argument("--seed", type=int, default=0, help="torch seed (weights, batch order, augmentation)")
    ap.add_argument("--out", default=HERE, help="where shapes_segmenter.onnx and labels.txt go")
    ap.add_argument("--save-pt", default=None, help="also save the PyTorch state_dict here")
    a = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    t0, c0 = time.time(), time.process_time()
    xtr, mtr = load_set(TRAIN_SEED, a.n_train)
    xva, mva = load_set(VAL_SEED, a.n_val)
    print("data: %d train, %d val scenes, %.0f s CPU" % (len(xtr), len(xva), time.process_time() - c0), flush=True)

    model = Segmenter(aux=a.aux > 0)
    nparam = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("aux."))
    print("parameters: %d" % nparam)
    phases = [int(v) for v in a.schedule.split(",")]
    nb = len(xtr) // a.batch
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=len(phases) * nb, pct_start=0.15)
    gen = torch.Generator().manual_seed(a.seed + 1)
    cw = torch.tensor([a.bg_weight] + [1.0] * (NCLS - 1))
    c1 = time.process_time()
    for ep, crop in enumerate(phases):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen).numpy()
        tot = 0.0
        for i in range(nb):
            idx = perm[i * a.batch:(i + 1) * a.batch]
            imgs, masks = augment(xtr[idx], mtr[idx], int(torch.randint(0, 8, (), generator=gen)), crop, gen)
            out, aux = model.forward_train(to_input(imgs))
            t = torch.from_numpy(masks.astype(np.int64))
            loss = F.cross_entropy(out, t, weight=cw)
            if aux is not None:     # the centre pixel of each 8x8 cell
                loss = loss + a.aux * F.cross_entropy(aux, t[:, 4::8, 4::8], weight=cw)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
        print("epoch %d (%dx%d): loss %.4f, val %s, %.0f s CPU" %
              (ep + 1, crop, crop, tot / nb, fmt(evaluate(model, xva, mva)), time.process_time() - c1), flush=True)
    train_cpu = time.process_time() - c1
    print("training: %.0f s CPU, %.0f s wall in all" % (train_cpu, time.time() - t0))
    if a.save_pt:
        torch.save(model.state_dict(), a.save_pt)

    xte, mte = load_set(TEST_SEED, a.n_test)
    print("test (%d held-out scenes, seed %d): %s" % (a.n_test, TEST_SEED, fmt(evaluate(model, xte, mte))))

    path = os.path.join(a.out, "shapes_segmenter.onnx")
    export(model, path)
    with open(os.path.join(a.out, "labels.txt"), "w") as f:
        f.write("\n".join(LABELS) + "\n")
    print("wrote %s (%d bytes, %d parameters before folding) and labels.txt" % (path, os.path.getsize(path), nparam))
    back = Segmenter.from_onnx(path)
    x = to_input(xte[:8])
    with torch.no_grad():
        err = float((back(x) - model.eval()(x)).abs().max())
    print("ONNX weights reloaded in PyTorch: max abs difference %.2e" % err)


if __name__ == "__main__":
    main()
