#!/usr/bin/python3
"""Pick the 4 demo images (two shapes of different classes each) for the trained model.

    /usr/bin/python3 examples/demo/make_images.py     # reads shapes_cnn.onnx, writes images/

Candidates are two-shape images from shapes.py with seed 7, taken in order.  One is kept when the
model's top-2 classes are exactly the two present, and, for each of the two classes, the Grad-CAM
argmax (block5, bilinear to 128x128) lies in that class's box and most of the map's mass over the
two boxes is on that class's box; both shapes are at least 28 pixels wide for visibility.  The
first three kept images use six different classes, the fourth a new pair.
Writes images/demo_1.png .. demo_4.png and images/boxes.csv (image,class,x0,y0,x1,y1; x1, y1
exclusive).
"""
import argparse
import os
import sys

import numpy as np

# Idle OpenMP threads sleep instead of spinning: on a shared, loaded machine spinning
# costs several times the useful CPU time.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from PIL import Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import shapes  # noqa: E402
from check_gradcam import gradcam, in_box, load_model  # noqa: E402
from train import to_input  # noqa: E402

DEMO_SEED = 7


def box_mass(cam, box):
    return float(cam[box[1]:box[3], box[0]:box[2]].sum())


def good(model, img, objs, min_side=28, min_share=0.8):
    """(ok, description) for one candidate image."""
    if min(min(b[2] - b[0], b[3] - b[1]) for _, b in objs) < min_side:
        return False, "small"
    x = to_input(img[None])
    notes = []
    for k, (cls, box) in enumerate(objs):
        cam, logits = gradcam(model, x, cls)
        if set(logits.topk(2).indices.tolist()) != {c for c, _ in objs}:
            return False, "top-2"
        am = np.unravel_index(int(cam.argmax()), cam.shape)
        if not in_box(am, box):
            return False, "pointing"
        other = objs[1 - k][1]
        share = box_mass(cam, box) / (box_mass(cam, box) + box_mass(cam, other) + 1e-12)
        if share < min_share:
            return False, "share"
        p = torch.softmax(logits, 0)
        notes.append("%s p=%.2f share %.2f" % (shapes.CLASSES[cls], float(p[cls]), share))
    return True, ", ".join(notes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(HERE, "shapes_cnn.onnx"))
    ap.add_argument("--out", default=os.path.join(HERE, "images"))
    ap.add_argument("--seed", type=int, default=DEMO_SEED)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(a.model)

    kept, used, pairs = [], set(), set()
    i = 0
    while len(kept) < 4:
        img, objs = shapes.make_pair(shapes.rng_for(a.seed, i))
        i += 1
        classes = {c for c, _ in objs}
        if (len(kept) < 3 and classes & used) or frozenset(classes) in pairs:
            continue
        ok, why = good(model, img, objs)
        if not ok:
            continue
        kept.append((img, objs))
        used |= classes
        pairs.add(frozenset(classes))
        print("candidate %d kept: %s" % (i - 1, why))
    print("looked at %d candidates" % i)

    os.makedirs(a.out, exist_ok=True)
    rows = []
    for k, (img, objs) in enumerate(kept, 1):
        name = "demo_%d.png" % k
        Image.fromarray(img).save(os.path.join(a.out, name), optimize=True)
        rows += [(name, shapes.CLASSES[c]) + tuple(b) for c, b in objs]
    shapes.write_csv(os.path.join(a.out, "boxes.csv"), rows)
    print("wrote %d images and boxes.csv to %s" % (len(kept), a.out))


if __name__ == "__main__":
    main()
