#!/usr/bin/python3
"""Pick the 4 segmentation demo pictures for the trained segmenter (deterministic).

    /usr/bin/python3 examples/segment/make_images.py    # reads shapes_segmenter.onnx, writes images/, masks/

Candidates are scenes from examples/detect/scenes.py with seed 7, taken in order:
    seg_1.png  two shapes of different classes
    seg_2.png  three shapes
    seg_3.png  four shapes, all three classes among them
    seg_4.png  exactly two shapes of the same class (scenes.same_class_scene)
A candidate is kept when every shape's box is at least 16 px on its shorter side and the
segmenter's IoU with the true mask is at least 0.9 for every class present (background included).
Writes images/seg_1.png .. seg_4.png, their true class masks masks/seg_1.png .. seg_4.png (8-bit
grey, pixel value = class index of labels.txt: 0 background, 1 circle, 2 square, 3 triangle) and
images/boxes.csv (image,class,x0,y0,x1,y1; x1, y1 exclusive).
"""
import argparse
import os
import sys

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from PIL import Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train_segmenter import Segmenter, confusion, predict, scenes  # noqa: E402

DEMO_SEED = 7


def good(model, rgb, boxes, sem, min_side=16, min_iou=0.9):
    if (boxes[:, 2:] - boxes[:, :2]).min() < min_side:
        return False, "small"
    cm = confusion(predict(model, rgb[None]), sem[None])
    tp = np.diag(cm)
    iou = tp / np.maximum(cm.sum(0) + cm.sum(1) - tp, 1)
    present = np.unique(sem)
    if iou[present].min() < min_iou:
        return False, "iou"
    return True, ", ".join("IoU %d %.3f" % (c, iou[c]) for c in present)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(HERE, "shapes_segmenter.onnx"))
    ap.add_argument("--out", default=os.path.join(HERE, "images"))
    ap.add_argument("--masks", default=os.path.join(HERE, "masks"))
    ap.add_argument("--seed", type=int, default=DEMO_SEED)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = Segmenter.from_onnx(a.model)

    rows = []
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.masks, exist_ok=True)
    for k in (1, 2, 3, 4):
        i = 0
        while True:
            if k == 4:
                rgb, boxes, classes, _, sem = scenes.same_class_scene((a.seed, 10 + k, i))
            else:
                rgb, boxes, classes, _, sem = scenes.scene((a.seed, 10 + k, i), n=k + 1)
            i += 1
            if not scenes.demo_wanted(k, classes):
                continue
            ok, why = good(model, rgb, boxes, sem)
            if ok:
                break
        name = "seg_%d.png" % k
        Image.fromarray(rgb).save(os.path.join(a.out, name), optimize=True)
        Image.fromarray(sem).save(os.path.join(a.masks, name), optimize=True)
        rows += [(name, scenes.CLASSES[c]) + tuple(int(v) for v in b) for b, c in zip(boxes, classes)]
        print("%s: candidate %d: %s" % (name, i - 1, why))
    scenes.write_csv(os.path.join(a.out, "boxes.csv"), rows)
    print("wrote 4 pictures, their masks and boxes.csv")


if __name__ == "__main__":
    main()
