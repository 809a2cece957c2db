#!/usr/bin/python3
"""Check the paper's point in PyTorch on the demo model (Grad-CAM with hooks on the last conv block).

    /usr/bin/python3 examples/demo/check_gradcam.py              # shapes_cnn.onnx: held-out accuracy,
                                                                 # demo images + 100 random pairs
    /usr/bin/python3 examples/demo/check_gradcam.py --n 500 --model other.onnx   (or a train.py --save-pt state_dict)

For every two-shape image and each of its two classes: Grad-CAM on `block5` (ReLU output, 16x16),
upsampled bilinearly to 128x128; a hit when its argmax lies in that class's box (pointing game).
Also reports how often the model's top-2 classes are exactly the two present, and, for guided
backprop vs Guided Grad-CAM, how much of the saliency energy falls in the asked-for box.
"""
import argparse
import csv
import os
import sys

import numpy as np

# Idle OpenMP threads sleep instead of spinning: on a shared, loaded machine spinning
# costs several times the useful CPU time.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import shapes  # noqa: E402
from train import ShapesCNN, to_input  # noqa: E402


def load_model(path):
    if path.endswith(".onnx"):
        return ShapesCNN.from_onnx(path)
    model = ShapesCNN()
    model.load_state_dict(torch.load(path))
    return model.eval()


def gradcam(model, x, cls):
    """x (1, 3, H, W) -> (Grad-CAM (H, W) upsampled, logits (ncls,)) for class index cls."""
    feats = {}

    def keep(module, inputs, out):
        out.retain_grad()
        feats["a"] = out
    h = model.block5.register_forward_hook(keep)
    x = x.clone().requires_grad_(True)
    logits = model(x)[0]
    h.remove()
    model.zero_grad()
    logits[cls].backward()
    a, g = feats["a"][0], feats["a"].grad[0]           # (C, h, w)
    w = g.mean(dim=(1, 2))                              # (C,)
    cam = F.relu((w[:, None, None] * a).sum(0))         # (h, w)
    cam = F.interpolate(cam[None, None], size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0]
    return cam.detach(), logits.detach()


def guided_backprop(model, x, cls):
    """Gradient of logit cls wrt the input, ReLUs passing only positive gradients where the input was positive."""
    hooks = [m.register_full_backward_hook(lambda m, gi, go: (gi[0].clamp(min=0),))
             for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    x = x.clone().requires_grad_(True)
    model(x)[0, cls].backward()
    for h in hooks:
        h.remove()
    return x.grad[0].detach()                           # (3, H, W)


def in_box(yx, box):
    y, x = yx
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def box_share(sal, box):
    """Fraction of the saliency's total that lies in the box. sal (H, W) >= 0."""
    tot = float(sal.sum()) + 1e-12
    return float(sal[box[1]:box[3], box[0]:box[2]].sum()) / tot


def evaluate(model, img, objs, verbose=False, name=""):
    x = to_input(img[None])
    hits, top2ok, gb_share, ggc_share = 0, None, [], []
    for cls, box in objs:
        cam, logits = gradcam(model, x, cls)
        if top2ok is None:
            top2 = set(logits.topk(2).indices.tolist())
            top2ok = top2 == {c for c, _ in objs}
        am = np.unravel_index(int(cam.argmax()), cam.shape)
        hit = in_box(am, box)
        hits += hit
        gb = guided_backprop(model, x, cls)
        gbm = gb.abs().amax(0)                          # (H, W)
        ggc = (gb * cam[None]).abs().amax(0)
        gb_share.append(box_share(gbm, box))
        ggc_share.append(box_share(ggc, box))
        if verbose:
            p = torch.softmax(logits, 0)
            print("  %-10s %-8s box %-18s p=%.3f argmax(y,x)=%-10s %s  GB share %.2f  GGC share %.2f" % (
                name, shapes.CLASSES[cls], tuple(box), float(p[cls]), tuple(int(v) for v in am),
                "HIT " if hit else "MISS", gb_share[-1], ggc_share[-1]))
    return hits, top2ok, gb_share, ggc_share


def read_boxes(path):
    objs = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            objs.setdefault(r["image"], []).append(
                (shapes.CLASSES.index(r["class"]), tuple(int(r[k]) for k in ("x0", "y0", "x1", "y1"))))
    return objs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(HERE, "shapes_cnn.onnx"),
                    help="the exported .onnx, or a state_dict saved by train.py --save-pt")
    ap.add_argument("--images", default=os.path.join(HERE, "images"), help="directory with PNGs + boxes.csv")
    ap.add_argument("--n", type=int, default=100, help="random two-shape images for the pointing game")
    ap.add_argument("--seed", type=int, default=shapes.EVAL_SEED)
    ap.add_argument("--n-single", type=int, default=2000, help="held-out one-shape images for the accuracy")
    ap.add_argument("--single-seed", type=int, default=3, help="their seed (training used 1, validation 2)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(a.model)

    if a.n_single:
        from train import accuracy
        xs, ys, _ = shapes.single_set(a.single_seed, a.n_single)
        print("held-out one-shape images (seed %d, n=%d): accuracy %.2f%%" % (
            a.single_seed, a.n_single, 100 * accuracy(model, xs, ys)))

    csv_path = os.path.join(a.images, "boxes.csv")
    if os.path.exists(csv_path):
        print("demo images (%s):" % a.images)
        for name, objs in read_boxes(csv_path).items():
            img = np.asarray(Image.open(os.path.join(a.images, name)).convert("RGB"))
            _, top2ok, _, _ = evaluate(model, img, objs, verbose=True, name=name)
            print("  %-10s top-2 = the two classes present: %s" % (name, top2ok))

    if not a.n:
        return
    hits = top2 = 0
    gbs, ggcs = [], []
    for i in range(a.n):
        img, objs = shapes.make_pair(shapes.rng_for(a.seed, i))
        h, t, gb, ggc = evaluate(model, img, objs)
        hits += h
        top2 += t
        gbs += gb
        ggcs += ggc
    print("random pairs (seed %d, n=%d): pointing game %d/%d = %.1f%%, top-2 exact %d/%d = %.1f%%" % (
        a.seed, a.n, hits, 2 * a.n, 50.0 * hits / a.n, top2, a.n, 100.0 * top2 / a.n))
    print("saliency share in the asked-for box: guided backprop %.2f, Guided Grad-CAM %.2f (mean)" % (
        np.mean(gbs), np.mean(ggcs)))


if __name__ == "__main__":
    main()
