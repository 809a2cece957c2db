#!/usr/bin/python3
"""End-to-end tests of `gradcam eval --task detect` (docs/evaluation.md, "Detectors").

Usage: /usr/bin/python3 tests/test_eval_detect.py GRADCAM WORKDIR

Everything is made here, seeded: a tiny detector whose detections are known exactly, exported
with torch.onnx.export in the YOLOv8 layout (1, 4 + C, A) and the YOLOv5 layout (1, A, 5 + C),
a classifier (for the bad-input case), two pictures (one 128x64, letterboxed into the 64x64 input;
one 64x64) and their boxes as Pascal VOC XML (and the same as CSV).

The detector: conv 8x8 / 8 -> ReLU -> 1x1 conv head -> (1, F, 64) -> out = CONST + EPS * head.
Its box rows have zero weights, so the boxes are exactly CONST's; its score rows add a small
positive input-dependent term, so the scores are CONST's within 1e-2 and every detection has a
gradient. The head's output at cell a feeds only anchor a: HiResCAM's map of a detection (at
the head's output, the automatic layer) is one positive cell, the anchor's, so its upsampled map
is known from the formula (bilinear, half-pixel centres: torch's interpolate) whatever its scale.

Checked: matched / missed / false-positive counts, overall and per class, and recall, on
hand-computed cases (a box matched; one missed because the detection on it has another class;
one missed at IoU 1/3; a box losing its detection to a better-overlapping box; detections
matching nothing); each matched box's pointing game and energy against the formula (HiResCAM) and
against the raw maps of `gradcam explain --task detect --npy` upsampled here (HiResCAM, Grad-CAM,
gradient), and the per-method means; the letterbox geometry (boxes mapped into the input and
detections back to the picture); the YOLOv5 layout and CSV ground truth give the same counts;
--iou-threshold (a duplicate kept, losing the tie to the higher score), --max-detections and
--score-threshold (no detection: exit 0, every box missed); eval.csv / eval.html carry the same
numbers; bad input (a classifier with --task detect; bad option values) gives one line and exit
3 / 2.

Run with Debian's /usr/bin/python3 (numpy, torch, PIL). A missing dependency FAILS the test.
Prints one line per check and "N passed, M failed"; exits non-zero on any failure.
"""
import csv
import glob
import html.parser
import json
import math
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from PIL import Image
except ImportError as e:  # fail, never skip
    sys.stderr.write("test_eval_detect.py: FAILED: /usr/bin/python3 lacks numpy/torch/PIL (%s)\n" % e)
    sys.exit(1)

EPS = 1e-3
SIZE, GRID = 64, 8          # input 64x64, an 8x8 grid of 8-pixel cells: 64 anchors, a = row * 8 + col
LABELS = ["cat", "dog"]
METHODS = ["hirescam", "gradcam", "gradient"]
FAILS = []
PASSED = [0]


def check(ok, msg):
    if ok:
        PASSED[0] += 1
        print("ok   " + msg)
    else:
        FAILS.append(msg)
        print("FAIL " + msg)


def close(a, b, tol=1e-6):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(b))


# ---- the detector ----------------------------------------------------------------------------------

# (name, class, score, anchor cell (col, row), box x0, y0, x1, y1 in input pixels)
DETS = [
    ("Da", 0, 0.9, (1, 3), (4, 20, 20, 36)),
    ("Db", 0, 0.8, (4, 3), (40, 20, 56, 36)),
    ("Dc", 1, 0.7, (4, 2), (30, 16, 46, 30)),
    ("Dd", 1, 0.6, (0, 7), (2, 40, 10, 47)),
    ("De", 0, 0.3, (7, 7), (4, 20, 20, 36)),  # Da's duplicate: NMS removes it unless --iou-threshold 1
]


def det_const(v5):
    """CONST (F, 64): cx, cy, w, h[, objectness], class scores; 0.01 everywhere else."""
    nf = 4 + (1 if v5 else 0) + len(LABELS)
    c = np.zeros((nf, GRID * GRID), np.float32)
    c[0:2] = 4
    c[2:4] = 4
    c[nf - len(LABELS):] = 0.01
    if v5:
        c[4] = 1.0
    for _, cls, score, (col, row), (x0, y0, x1, y1) in DETS:
        a = row * GRID + col
        c[0:4, a] = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
        c[nf - len(LABELS) + cls, a] = score
    return c


class TinyDet(nn.Module):
    def __init__(self, v5):
        super().__init__()
        self.v5 = v5
        const = det_const(v5)
        self.nf = const.shape[0]
        self.conv = nn.Conv2d(3, 4, 8, stride=8)
        self.head = nn.Conv2d(4, self.nf, 1)
        self.register_buffer("const", torch.from_numpy(const)[None])
        with torch.no_grad():
            self.conv.weight.uniform_(0, 0.01)   # ReLU input >= 1: every unit on
            self.conv.bias.fill_(1.0)
            self.head.weight.uniform_(0.1, 1.0)  # score rows: a positive term
            self.head.bias.fill_(0.5)
            self.head.weight[0:4] = 0            # box rows: exactly CONST
            self.head.bias[0:4] = 0

    def forward(self, x):
        h = self.head(torch.relu(self.conv(x))).reshape(1, self.nf, GRID * GRID)
        out = self.const + EPS * h
        return out.transpose(1, 2) if self.v5 else out


class TinyCls(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def export(m, path, out_name):
    torch.onnx.export(m.eval(), torch.rand(1, 3, SIZE, SIZE), path, input_names=["images"],
                      output_names=[out_name], opset_version=13)


# ---- pictures and ground truth ---------------------------------------------------------------------

# picture -> input: a.png (128 x 64) is letterboxed: scale 1/2, 16 rows of padding above
# (x_in = x / 2, y_in = y / 2 + 16); b.png (64 x 64) is the input as is.
GEOM = {"a.png": (128, 64, 2.0, 0.0, -32.0), "b.png": (64, 64, 1.0, 0.0, 0.0),  # w, h, scale, x0, y0
        "c.png": (64, 64, 1.0, 0.0, 0.0)}
# ground truth per picture: (class, box in picture pixels, x1/y1 exclusive)
GT = {
    "a.png": [(0, (8, 8, 40, 40)),      # = Da's box: matched (IoU 1)
              (1, (80, 8, 112, 40)),    # = Db's box, but Db is a cat: missed
              (1, (44, 0, 76, 28))],    # Dc overlaps it at IoU 1/3: missed
    "b.png": [(0, (40, 20, 56, 36)),    # = Db's box: matched; Db's anchor is 5 px left of it
              (1, (30, 16, 46, 30)),    # = Dc's box: matched (IoU 1)
              (1, (32, 16, 46, 30))],   # Dc at IoU 0.875, but taken by the box above: missed
}
GT_EMPTY = {"a.png": GT["a.png"], "c.png": []}  # c.png's annotation has no object: all false positives


def write_pictures(d):
    rng = np.random.default_rng(18)
    for name, (w, h, _, _, _) in GEOM.items():
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(os.path.join(d, name))


def write_voc(d, gt, names=None):
    os.makedirs(d, exist_ok=True)
    for img, objs in gt.items():
        w, h = GEOM[img][:2] if img in GEOM else (64, 64)
        body = "".join(
            "  <object><name>%s</name><difficult>0</difficult><bndbox><xmin>%d</xmin><ymin>%d</ymin>"
            "<xmax>%d</xmax><ymax>%d</ymax></bndbox></object>\n"
            % ((names or LABELS)[c], b[0] + 1, b[1] + 1, b[2], b[3]) for c, b in objs)
        with open(os.path.join(d, os.path.splitext(img)[0] + ".xml"), "w") as f:
            f.write("<annotation>\n  <filename>%s</filename>\n  <size><width>%d</width><height>%d</height>"
                    "<depth>3</depth></size>\n%s</annotation>\n" % (img, w, h, body))


def write_csv(path, gt):
    with open(path, "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["image", "class", "x0", "y0", "x1", "y1"])
        for img, objs in gt.items():
            for c, b in objs:
                wr.writerow([img, LABELS[c]] + list(b))


# ---- expectations -----------------------------------------------------------------------------------

def to_input_px(img, b):
    """eval's mapping of a picture box into input pixels (docs/evaluation.md)."""
    _, _, s, gx, gy = GEOM[img]
    ax0, ax1 = (b[0] - gx) / s - 0.5, (b[2] - gx) / s - 0.5
    ay0, ay1 = (b[1] - gy) / s - 0.5, (b[3] - gy) / s - 0.5
    return [max(math.ceil(ax0), 0), max(math.ceil(ay0), 0), min(math.ceil(ax1), SIZE), min(math.ceil(ay1), SIZE)]


def to_picture(img, b):
    w, h, s, gx, gy = GEOM[img]
    return [min(max(gx + b[0] * s, 0), w), min(max(gy + b[1] * s, 0), h),
            min(max(gx + b[2] * s, 0), w), min(max(gy + b[3] * s, 0), h)]


def iou(a, b):
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def expected_matching(kept, gt=GT):
    """Per picture: detections (names, best first), det_of_gt, best IoU per box; computed here
    with the rule of docs/evaluation.md (greedy by IoU, ties to the higher score)."""
    out = {}
    for img, objs in gt.items():
        dets = [d for d in DETS if d[0] in kept]
        dbox = [to_picture(img, d[4]) for d in dets]
        pairs = sorted(((iou(b, dbox[k]), d[2], g, k) for g, (c, b) in enumerate(objs)
                        for k, d in enumerate(dets) if d[1] == c and iou(b, dbox[k]) >= 0.5),
                       key=lambda p: (-p[0], -p[1], p[2], p[3]))
        dog, god = [None] * len(objs), [None] * len(dets)
        for _, _, g, k in pairs:
            if dog[g] is None and god[k] is None:
                dog[g], god[k] = k, g
        best = [max([iou(b, dbox[k]) for k, d in enumerate(dets) if d[1] == c] + [0.0]) for c, b in objs]
        out[img] = ([d[0] for d in dets], dog, god, best)
    return out


def counts_of(match, gt):
    tot = {"gt": 0, "matched": 0, "dets": 0, "fp": 0}
    per = {c: dict(tot) for c in range(len(LABELS))}
    for img, (names, dog, god, _) in match.items():
        for g, (c, _) in enumerate(gt[img]):
            for t in (tot, per[c]):
                t["gt"] += 1
                t["matched"] += dog[g] is not None
        for k, n in enumerate(names):
            c = next(d[1] for d in DETS if d[0] == n)
            for t in (tot, per[c]):
                t["dets"] += 1
                t["fp"] += god[k] is None
    return tot, per


def spike_map(col, row):
    """HiResCAM's upsampled map of a detection: one positive cell, bilinear (half-pixel) to 64x64."""
    m = torch.zeros(1, 1, GRID, GRID)
    m[0, 0, row, col] = 1.0
    return F.interpolate(m, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0].numpy()


def point_energy(S, box, tol):
    """The pointing game and energy of a saliency map S (H, W) on one box (x1, y1 exclusive)."""
    S = np.maximum(np.nan_to_num(S.astype(np.float64)), 0)
    flat = S.reshape(-1)
    hit = False
    if flat.max() > 0:
        p = int(np.argmax(flat))
        py, px = divmod(p, S.shape[1])
        dx = max(box[0] - px, 0, px - (box[2] - 1))
        dy = max(box[1] - py, 0, py - (box[3] - 1))
        hit = math.sqrt(dx * dx + dy * dy) <= tol
    tot = S.sum()
    en = S[box[1]:box[3], box[0]:box[2]].sum() / tot if tot > 0 else None
    return hit, en


def saliency_from_raw(raw, method):
    """eval's S from a raw map (.npy): CAM maps upsampled (bilinear, half-pixel) and ReLU'd;
    pixel-space maps max over channels of |.|."""
    t = torch.from_numpy(np.asarray(raw, np.float32))
    while t.dim() < 4:
        t = t[None]
    if t.shape[-1] != SIZE or t.shape[-2] != SIZE:
        t = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    a = t[0].numpy()
    if method in ("hirescam", "gradcam"):
        return np.maximum(a[0], 0)
    return np.abs(a).max(axis=0)


# ---- running ------------------------------------------------------------------------------------------

def run(cmd, expect_rc=0, what=""):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    ok = r.returncode == expect_rc
    check(ok, "%s: exit %d (want %d)%s" % (what or " ".join(cmd[1:4]), r.returncode, expect_rc,
                                           "" if ok else ": " + (r.stderr.strip() or r.stdout.strip())[-600:]))
    return r


def load(out):
    with open(os.path.join(out, "eval.json")) as f:
        return json.load(f)


def check_counts(J, match, what, gt=GT):
    tot, per = counts_of(match, gt)
    D = J["detection"]
    got = (D["ground_truth_boxes"], D["matched"], D["missed"], D["detections"], D["false_positives"])
    want = (tot["gt"], tot["matched"], tot["gt"] - tot["matched"], tot["dets"], tot["fp"])
    check(got == want, "%s: boxes/matched/missed/detections/false positives %s (want %s)" % (what, got, want))
    check(close(D["recall"], tot["matched"] / tot["gt"]), "%s: recall %s (want %s)" % (what, D["recall"], tot["matched"] / tot["gt"]))
    pc = {e["class"]: e for e in D["per_class"]}
    for c in range(len(LABELS)):
        e = pc.get(c, {})
        got = (e.get("ground_truth_boxes"), e.get("matched"), e.get("missed"), e.get("detections"), e.get("false_positives"))
        want = (per[c]["gt"], per[c]["matched"], per[c]["gt"] - per[c]["matched"], per[c]["dets"], per[c]["fp"])
        check(got == want and e.get("label") == LABELS[c], "%s: class %d (%s) %s (want %s)" % (what, c, e.get("label"), got, want))


def check_records(J, match, what, GT=GT):
    """Every picture's detections and ground-truth records: boxes, partners, IoU."""
    cases = {c["image"]: c for c in J["cases"]}
    check(sorted(cases) == sorted(GT), "%s: one record per picture (%s)" % (what, sorted(cases)))
    for img, (names, dog, god, best) in match.items():
        c = cases.get(img)
        if not c:
            continue
        dets = [next(d for d in DETS if d[0] == n) for n in names]
        got = [(d["class"], d["ground_truth"]) for d in c["detections"]]
        check(got == [(d[1], god[k]) for k, d in enumerate(dets)],
              "%s %s: detections (class, matched box) %s (want %s)" % (what, img, got, [(d[1], god[k]) for k, d in enumerate(dets)]))
        ok = len(c["detections"]) == len(dets) and all(
            np.allclose(r["box_input"], d[4], atol=0) and np.allclose(r["box"], to_picture(img, d[4]), atol=1e-9)
            and r["anchor"] == d[3][1] * GRID + d[3][0] and abs(r["score"] - d[2]) < 2e-2
            for r, d in zip(c["detections"], dets))
        check(ok, "%s %s: detection boxes (input and picture pixels), anchors and scores" % (what, img))
        gts = c["ground_truth"]
        want = [(GT[img][g][0], dog[g]) for g in range(len(GT[img]))]
        check([(g["class"], g["detection"]) for g in gts] == want,
              "%s %s: boxes (class, matched detection) %s (want %s)" % (what, img, [(g["class"], g["detection"]) for g in gts], want))
        check(all(close(g["iou"], best[k], 1e-9) for k, g in enumerate(gts)),
              "%s %s: each box's IoU %s (want %s)" % (what, img, [g["iou"] for g in gts], best))
        geo = all(g["box"] == list(GT[img][k][1]) and g["box_input"] == to_input_px(img, GT[img][k][1]) for k, g in enumerate(gts))
        check(geo, "%s %s: boxes mapped into the input %s (want %s)" % (what, img, [g["box_input"] for g in gts],
                                                                    [to_input_px(img, b) for _, b in GT[img]]))


def check_formula(J, match, tol, what):
    """HiResCAM's pointing game and energy of each matched box against the one-cell map."""
    cases = {c["image"]: c for c in J["cases"]}
    hits, ens = [], []
    for img, (names, dog, _, _) in match.items():
        for g, gt in enumerate(cases[img]["ground_truth"]):
            if dog[g] is None:
                check("methods" not in gt, "%s %s: missed box %d has no maps" % (what, img, g))
                continue
            col, row = next(d[3] for d in DETS if d[0] == names[dog[g]])
            hit, en = point_energy(spike_map(col, row), gt["box_input"], tol)
            m = gt["methods"]["hirescam"]
            check(m["pointing"] == hit and close(m["energy"], en, 1e-5),
                  "%s %s box %d: hirescam pointing %s energy %.6f (formula: %s %.6f)" % (what, img, g, m["pointing"], m["energy"], hit, en))
            hits.append(hit)
            ens.append(en)
    D = {m["method"]: m for m in J["detection"]["methods"]}["hirescam"]
    check(D["matched_cases"] == len(hits) and close(D["pointing_accuracy"], sum(hits) / len(hits))
          and close(D["energy_mean"], sum(ens) / len(ens)),
          "%s: hirescam over %d matched boxes: pointing %.4f energy %.6f (formula %.4f %.6f)"
          % (what, len(hits), D["pointing_accuracy"], D["energy_mean"], sum(hits) / len(hits), sum(ens) / len(ens)))
    return hits, ens


def check_against_explain(gradcam, work, model, J, match, tol):
    """Each matched box's numbers recomputed from `gradcam explain --task detect --npy` raw maps."""
    out = os.path.join(work, "explain_npy")
    shutil.rmtree(out, ignore_errors=True)
    run([gradcam, "explain", model, os.path.join(work, "img", "a.png"), os.path.join(work, "img", "b.png"),
         "--task", "detect", "-m", ",".join(METHODS), "--npy", "-q", "--threads", "1", "-o", out],
        what="explain --task detect --npy")
    cases = {c["image"]: c for c in J["cases"]}
    sums = {m: [0, 0.0, 0] for m in METHODS}
    for img, (names, dog, _, _) in match.items():
        stem = os.path.splitext(img)[0]
        for g, gt in enumerate(cases[img]["ground_truth"]):
            if dog[g] is None:
                continue
            for m in METHODS:
                pat = os.path.join(out, "%s_d%d_%s*.npy" % (stem, dog[g], m))
                files = [f for f in glob.glob(pat) if os.path.basename(f)[len("%s_d%d_%s" % (stem, dog[g], m))] in "._"]
                if len(files) != 1:
                    check(False, "explain wrote one raw map %s (found %s)" % (pat, files))
                    continue
                hit, en = point_energy(saliency_from_raw(np.load(files[0]), m), gt["box_input"], tol)
                r = gt["methods"][m]
                check(r["pointing"] == hit and close(r["energy"], en, 1e-4),
                      "%s box %d, %s: pointing %s energy %.6f (from explain's raw map: %s %.6f)"
                      % (img, g, m, r["pointing"], r["energy"], hit, en))
                sums[m][0] += hit
                sums[m][1] += en
                sums[m][2] += 1
    per = {m["method"]: m for m in J["detection"]["methods"]}
    for m in METHODS:
        h, e, n = sums[m]
        check(n and close(per[m]["pointing_accuracy"], h / n) and close(per[m]["energy_mean"], e / n, 1e-4),
              "%s over %d matched boxes: pointing %s energy %s (recomputed %s %s)"
              % (m, n, per[m]["pointing_accuracy"], per[m]["energy_mean"], h / n if n else None, e / n if n else None))


def check_csv_html(out, J):
    with open(os.path.join(out, "eval.csv")) as f:
        rows = list(csv.DictReader(f))
    D = J["detection"]
    per = {m["method"]: m for m in D["methods"]}
    ok = len(rows) == len(per) and all(
        int(r["matched"]) == D["matched"] and int(r["missed"]) == D["missed"] and int(r["false_positives"]) == D["false_positives"]
        and int(r["gt_boxes"]) == D["ground_truth_boxes"] and int(r["detections"]) == D["detections"]
        and close(float(r["recall"]), D["recall"], 1e-8) and close(float(r["pointing_game"]), per[r["method"]]["pointing_accuracy"], 1e-8)
        and close(float(r["pointing_energy"]), per[r["method"]]["energy_mean"], 1e-8) for r in rows)
    check(ok, "eval.csv has the JSON's counts, recall, pointing and energy per method")
    with open(os.path.join(out, "eval.html"), encoding="utf-8") as f:
        page = f.read()
    check("<h2>Detections</h2>" in page and "results detection" in page and "false positives" in page
          and "<script" not in page, "eval.html has the detection section (no script)")

    class Tags(html.parser.HTMLParser):  # every element closed in order
        VOID = {"meta", "br", "line", "rect", "polyline", "img"}

        def __init__(self):
            super().__init__()
            self.stack, self.bad = [], 0

        def handle_starttag(self, t, a):
            if t not in self.VOID:
                self.stack.append(t)

        def handle_endtag(self, t):
            if t in self.VOID:
                return
            if self.stack and self.stack[-1] == t:
                self.stack.pop()
            else:
                self.bad += 1
    p = Tags()
    p.feed(page)
    check(not p.bad and not p.stack, "eval.html: every element closed in order")


# ---- the checks ---------------------------------------------------------------------------------------

def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    gradcam, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "img"))
    torch.manual_seed(18)
    v8, v5, cls = (os.path.join(work, n) for n in ("det_v8.onnx", "det_v5.onnx", "classifier.onnx"))
    export(TinyDet(False), v8, "output0")
    export(TinyDet(True), v5, "output0")
    export(TinyCls(), cls, "logits")
    img, voc, csvf, labels = (os.path.join(work, n) for n in ("img", "voc", "boxes.csv", "labels.txt"))
    write_pictures(img)
    write_voc(voc, GT)
    write_csv(csvf, GT)
    with open(labels, "w") as f:
        f.write("\n".join(LABELS) + "\n")
    base = ["--images", img, "--labels", labels, "--threads", "1", "-q"]
    default_kept = ["Da", "Db", "Dc", "Dd"]

    # 1. YOLOv8 layout, VOC ground truth, three methods, tolerance 2 px
    out = os.path.join(work, "v8")
    run([gradcam, "eval", v8, "--task", "detect", "--boxes", voc, "-m", ",".join(METHODS), "--tolerance", "2",
         "--sanity-depths", "1", "-o", out] + base, what="eval --task detect (yolov8, VOC)")
    J = load(out)
    match = expected_matching(default_kept)
    check(J["task"] == "detect" and J["detection"]["layout"] == "yolov8" and J["options"]["score_threshold"] == 0.25
          and J["options"]["iou_threshold"] == 0.45 and J["options"]["max_detections"] == 32,
          "eval.json: task detect, layout yolov8, defaults 0.25 / 0.45 / 32")
    check("letterbox" in J["preprocessing"] and "raw" in J["preprocessing"], "default preprocessing for detect: %s" % J["preprocessing"])
    check_counts(J, match, "v8")
    check(J["detection"]["matched"] == 3 and J["detection"]["missed"] == 3 and J["detection"]["false_positives"] == 5
          and J["detection"]["recall"] == 0.5, "v8: by hand: 3 matched, 3 missed, 5 false positives, recall 0.5")
    check_records(J, match, "v8")
    hits, ens = check_formula(J, match, 2, "v8")
    check(hits == [True, False, True] and ens[0] == 1.0 and 0 < ens[1] < 0.5 and 0 < ens[2] < 1,
          "v8: by hand: Da points into its box (all its mass in it), Db's anchor is 5 px outside its box, Dc inside")
    check(J["counts"]["cases"] == 3, "counts.cases = matched boxes (%s)" % J["counts"]["cases"])
    san = {m["method"]: m for m in J["methods"]}["hirescam"].get("sanity", [])
    check(len(san) == 1 and san[0]["cases"] == 3, "sanity check on the 3 matched detections (%s)" % san)
    check(set(J["detection"]["not_applicable"]) >= {"class discrimination", "deletion", "insertion"},
          "not applicable metrics listed")
    check_against_explain(gradcam, work, v8, J, match, 2)
    check_csv_html(out, J)

    # 2. default tolerance (15 px): Db's map now points within reach of its box
    out = os.path.join(work, "v8_tol")
    run([gradcam, "eval", v8, "--task", "detect", "--boxes", voc, "--metrics", "pointing", "-o", out] + base,
        what="eval --task detect (default method and tolerance)")
    J = load(out)
    ms = [m["method"] for m in J["methods"]]
    check(ms == ["hirescam"], "default method for --task detect: %s" % ms)
    check(J["detection"]["methods"][0]["pointing_accuracy"] == 1.0, "tolerance 15: every matched box is hit")

    # 3. YOLOv5 layout and CSV ground truth: the same matching
    for model, gt, what in ((v5, voc, "v5 (VOC)"), (v8, csvf, "v8 (CSV)")):
        out = os.path.join(work, "other")
        shutil.rmtree(out, ignore_errors=True)
        run([gradcam, "eval", model, "--task", "detect", "--boxes", gt, "--tolerance", "2", "--metrics", "pointing",
             "-o", out] + base, what="eval --task detect " + what)
        J = load(out)
        check_counts(J, match, what)
        check_records(J, match, what)
        check_formula(J, match, 2, what)
    check(J["detection"]["layout"] == "yolov8", "CSV run: layout yolov8")

    # 4. --iou-threshold 1: Da's duplicate De survives NMS, ties with Da on IoU 1, loses on score
    out = os.path.join(work, "v8_dup")
    run([gradcam, "eval", v8, "--task", "detect", "--boxes", voc, "--iou-threshold", "1", "--metrics", "pointing",
         "-o", out] + base, what="eval --iou-threshold 1")
    J = load(out)
    m5 = expected_matching(default_kept + ["De"])
    check_counts(J, m5, "iou-threshold 1")
    check_records(J, m5, "iou-threshold 1")
    check(J["detection"]["detections"] == 10 and J["detection"]["false_positives"] == 7,
          "iou-threshold 1: 10 detections, 7 false positives")

    # 5. --max-detections 2: only Da and Db
    out = os.path.join(work, "v8_max")
    run([gradcam, "eval", v8, "--task", "detect", "--boxes", voc, "--max-detections", "2", "--metrics", "pointing",
         "-o", out] + base, what="eval --max-detections 2")
    J = load(out)
    m2 = expected_matching(["Da", "Db"])
    check_counts(J, m2, "max-detections 2")
    check(J["detection"]["matched"] == 2 and J["detection"]["false_positives"] == 2, "max-detections 2: 2 matched, 2 false positives")

    # 6. a picture whose annotation has no object: no failure, its detections are false positives
    out = os.path.join(work, "v8_empty")
    voc_e = os.path.join(work, "voc_empty")
    write_voc(voc_e, GT_EMPTY)
    run([gradcam, "eval", v8, "--task", "detect", "--boxes", voc_e, "--metrics", "pointing", "-o", out] + base,
        what="eval with an empty annotation")
    J = load(out)
    me = expected_matching(default_kept, GT_EMPTY)
    check_counts(J, me, "empty annotation", GT_EMPTY)
    check_records(J, me, "empty annotation", GT_EMPTY)
    check(J["counts"]["images"] == 2 and J["counts"]["failed"] == 0 and J["detection"]["false_positives"] == 7,
          "empty annotation: 2 images, none failed, 3 + 4 false positives")

    # 7. no detection at all: exit 0, every box missed
    out = os.path.join(work, "v8_none")
    r = run([gradcam, "eval", v8, "--task", "detect", "--boxes", voc, "--score-threshold", "0.95", "-o", out,
             "--images", img, "--labels", labels, "--threads", "1"], what="eval with no detection")
    J = load(out)
    D = J["detection"]
    check((D["ground_truth_boxes"], D["matched"], D["missed"], D["detections"], D["false_positives"], D["recall"])
          == (6, 0, 6, 0, 0, 0), "no detection: 6 boxes, all missed, recall 0")
    check(D["methods"][0]["pointing_accuracy"] is None and J["counts"]["cases"] == 0, "no detection: no case, pointing null")
    check("recall 0.000" in r.stdout, "no detection: the table says recall 0")

    # 8. bad input
    out = os.path.join(work, "bad")
    r = run([gradcam, "eval", cls, "--task", "detect", "--boxes", voc, "-o", out, "--images", img, "--threads", "1"],
            3, "a classifier with --task detect")
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    check(len(lines) == 1 and "logits" in lines[0] and "(1, 4)" in lines[0],
          "classifier with --task detect: one line naming the output and its shape: %r" % r.stderr)
    bad = [["--score-threshold", "2"], ["--score-threshold", "x"], ["--iou-threshold", "-0.1"],
           ["--max-detections", "0"], ["--max-detections", "1001"], ["--detections", "ssd"], ["--task", "segment"],
           ["--metrics", "faithfulness"], ["--metrics", "discrimination"]]
    for extra in bad:
        r = run([gradcam, "eval", v8, "--task", "detect", "--boxes", voc, "-o", out, "--images", img] + extra, 2,
                "eval --task detect " + " ".join(extra))
        msg = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("Try '")]
        check(len(msg) == 1 and msg[0].startswith("gradcam: " + extra[0]), "  one line naming %s: %r" % (extra[0], r.stderr.strip()))
    r = run([gradcam, "eval", v8, "--boxes", voc, "-o", out, "--images", img, "--score-threshold", "0.5"], 2,
            "--score-threshold without --task detect")
    check("needs --task detect" in r.stderr, "  says so: %r" % r.stderr.strip())

    print("%d passed, %d failed" % (PASSED[0], len(FAILS)))
    for f in FAILS:
        print("FAILED: " + f)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
