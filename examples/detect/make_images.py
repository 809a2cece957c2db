#!/usr/bin/python3
"""Pick the 4 detection demo pictures for the trained detector (deterministic).

    /usr/bin/python3 examples/detect/make_images.py    # reads shapes_detector.onnx, writes images/

Candidates are scenes from scenes.py with seed 7, taken in order:
    det_1.png  two shapes of different classes
    det_2.png  three shapes
    det_3.png  four shapes, all three classes among them
    det_4.png  exactly two shapes of the same class (scenes.same_class_scene): the instance test
A candidate is kept when every shape's box is at least 16 px on its shorter side and the detector
(score >= 0.25, class-wise NMS at IoU 0.45) finds every shape with the right class, a score of at
least 0.5 and an IoU of at least 0.75 with its box, and nothing else. Prints, for each shape, its
detection's score, IoU and output0 column (the cell that made it).
Writes images/det_1.png .. det_4.png and images/boxes.csv (image,class,x0,y0,x1,y1; x1, y1 exclusive).
"""
import argparse
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402
from train_detector import Detector, predict, to_input, xyxy  # noqa: E402

DEMO_SEED = 7


def column(model, rgb, box, cls):
    """The output0 column (cell) that made this detection: the best score of its class among the
    cells whose box is this box."""
    with torch.no_grad():
        out = model(to_input(rgb[None]))[0]
    same = (xyxy(out[:4].T) - box).abs().max(1).values < 1e-3
    return int(torch.where(same, out[4 + cls], torch.tensor(-1.0)).argmax())


def good(model, rgb, boxes, classes, min_side=16, min_score=0.5, min_iou=0.75):
    if (boxes[:, 2:] - boxes[:, :2]).min() < min_side:
        return False, "small"
    b, s, c = predict(model, rgb[None])[0]
    if len(b) != len(boxes):
        return False, "%d detections for %d shapes" % (len(b), len(boxes))
    iou = box_iou(b, torch.from_numpy(boxes))
    notes = []
    for j in range(len(boxes)):
        i = int(iou[:, j].argmax())
        if int(c[i]) != classes[j] or float(s[i]) < min_score or float(iou[i, j]) < min_iou:
            return False, "missed"
        notes.append("%s %.2f (IoU %.2f, column %d)" % (scenes.CLASSES[classes[j]], float(s[i]), float(iou[i, j]),
                                                         column(model, rgb, b[i], int(c[i]))))
    return True, ", ".join(notes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(HERE, "shapes_detector.onnx"))
    ap.add_argument("--out", default=os.path.join(HERE, "images"))
    ap.add_argument("--seed", type=int, default=DEMO_SEED)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = Detector.from_onnx(a.model)

    rows = []
    os.makedirs(a.out, exist_ok=True)
    for k in (1, 2, 3, 4):
        i = 0
        while True:
            if k == 4:
                rgb, boxes, classes, _, _ = scenes.same_class_scene((a.seed, k, i))
            else:
                rgb, boxes, classes, _, _ = scenes.scene((a.seed, k, i), n=k + 1)
            i += 1
            if not scenes.demo_wanted(k, classes):
                continue
            ok, why = good(model, rgb, boxes, classes)
            if ok:
                break
        name = "det_%d.png" % k
        Image.fromarray(rgb).save(os.path.join(a.out, name), optimize=True)
        rows += [(name, scenes.CLASSES[c]) + tuple(int(v) for v in b) for b, c in zip(boxes, classes)]
        print("%s: candidate %d: %s" % (name, i - 1, why))
    scenes.write_csv(os.path.join(a.out, "boxes.csv"), rows)
    print("wrote 4 pictures and boxes.csv to %s" % a.out)


if __name__ == "__main__":
    main()
