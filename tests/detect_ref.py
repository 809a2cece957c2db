#!/usr/bin/python3
"""Reference detections for tests/test_detect.c (gcam_detect_decode, src/explain/detect.c).

Usage: /usr/bin/python3 tests/detect_ref.py OUTDIR

Run with Debian's /usr/bin/python3 (numpy, python3-torch 1.13, torchvision 0.14). Every case is a
seeded or hand-made float32 detector output (CASE.npy) and the detections expected from it,
computed here with PyTorch / torchvision.ops:
  - scores: YOLOv8 (N, 4 + C, A): the class scores; YOLOv5 (N, A, 5 + C): objectness x class score
    (float32 products); restricted to the class filter; the best class per anchor, ties to the
    lower class (np.argmax returns the first maximum);
  - dropped: NaN in any used field (box, objectness, allowed class scores), a score not finite or
    < threshold, a box not finite, w <= 0 or h <= 0, corners (torchvision box_convert cxcywh ->
    xyxy, float32) not finite;
  - order: score descending, ties to the lower anchor (stable sort), at most MAX_NMS per sample;
  - class-wise greedy NMS (ref_nms): IoU in float64 on the float32 corners, rounded to float32,
    suppress when > the float32 threshold; then the first max_detections.
torchvision.ops.batched_nms must keep the same set wherever its answer is defined the same way:
no equal scores within a class (its order among ties is unspecified) and no same-class IoU near
the threshold (it computes IoU in float32; see tv_defined). Random cases require that check ("tv must");
the adversarial ones run it when it applies ("tv auto"). A disagreement fails the script.

Writes OUTDIR/manifest.txt (whitespace separated, '#' comments, floats as C99 hex literals):
  case NAME NPY LAYOUT SCORE_THR IOU_THR MAX_DET CLASSES EXPECT_LAYOUT N_DETS
       LAYOUT: auto|yolov8|yolov5 (the option); CLASSES: "-" or comma-separated class indices
  det  SAMPLE ANCHOR CLS SCORE X0 Y0 X1 Y1          (N_DETS lines after their case)
Fails (exit 1), never skips, when numpy/torch/torchvision cannot be imported.
"""
import os
import sys

try:
    import numpy as np
    import torch
    import torchvision
    from torchvision.ops import batched_nms, box_convert
except ImportError as e:  # fail loudly: the C test would otherwise compare nothing
    sys.stderr.write("detect_ref.py: FAILED: cannot import numpy/torch/torchvision (%s); install "
                     "python3-numpy, python3-torch and python3-torchvision for /usr/bin/python3\n" % e)
    sys.exit(1)

MAX_NMS = 30000  # GC_DET_MAX_NMS in src/explain/detect.c
F32 = np.float32


# ---- the reference ------------------------------------------------------------------------------

def split(out, layout):
    """(N, A, 4) boxes, (N, A) objectness or None, (N, A, C) class scores, as torch float32."""
    t = torch.from_numpy(out)
    x = t.transpose(1, 2) if layout == "yolov8" else t  # (N, A, 4 + C) or (N, A, 5 + C)
    if layout == "yolov8":
        return x[..., :4], None, x[..., 4:]
    return x[..., :4], x[..., 4], x[..., 5:]


def candidates(out, layout, thr, classes):
    """Per sample: anchors, classes, scores, xyxy corners (float32) of the survivors, sorted."""
    box, obj, cls = split(out, layout)
    allowed = sorted(set(classes)) if classes else list(range(cls.shape[-1]))
    sc = cls[..., allowed]
    if obj is not None:
        sc = obj[..., None] * sc
    nan = torch.isnan(box).any(-1) | torch.isnan(sc).any(-1)
    if obj is not None:
        nan |= torch.isnan(obj)
    first = np.argmax(np.nan_to_num(sc.numpy(), nan=-np.inf, posinf=np.inf, neginf=-np.inf), axis=-1)
    best = torch.from_numpy(first)  # the first maximum: ties to the lower class
    score = torch.gather(sc, -1, best[..., None])[..., 0]
    xyxy = box_convert(box, "cxcywh", "xyxy")
    ok = (~nan & torch.isfinite(score) & (score >= thr) & torch.isfinite(box).all(-1)
          & (box[..., 2] > 0) & (box[..., 3] > 0) & torch.isfinite(xyxy).all(-1))
    res = []
    for n in range(out.shape[0]):
        a = torch.nonzero(ok[n])[:, 0].numpy()
        s = score[n][ok[n]].numpy()
        order = np.lexsort((a, -s))[:MAX_NMS]  # score descending, then anchor ascending
        a = a[order]
        res.append((a, np.array(allowed)[best[n].numpy()[a]], s[order], xyxy[n].numpy()[a]))
    return res


def iou64(b, rest):
    """IoU in float64 of float32 corners, 0 when the union is empty (as detect.c)."""
    b, rest = b.astype(np.float64), rest.astype(np.float64)
    iw = np.minimum(b[2], rest[:, 2]) - np.maximum(b[0], rest[:, 0])
    ih = np.minimum(b[3], rest[:, 3]) - np.maximum(b[1], rest[:, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    u = ((b[2] - b[0]) * (b[3] - b[1]) + (rest[:, 2] - rest[:, 0]) * (rest[:, 3] - rest[:, 1])) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(u > 0, inter / np.where(u > 0, u, 1.0), 0.0)


def ref_nms(cls, xyxy, iou_thr):
    """Greedy class-wise NMS over candidates already in order; the kept positions, in order."""
    k = len(cls)
    suppressed = np.zeros(k, bool)
    keep = []
    for i in range(k):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = np.arange(i + 1, k)
        rest = rest[~suppressed[i + 1:] & (cls[i + 1:] == cls[i])]
        if len(rest):
            iou = iou64(xyxy[i], xyxy[rest]).astype(F32)
            suppressed[rest[iou > F32(iou_thr)]] = True
    return np.array(keep, dtype=np.int64)


def tv_defined(cls, score, xyxy, iou_thr):
    """Whether batched_nms's answer is defined like ours: no tie within a class, no same-class IoU
    near the threshold (an IoU of exactly 0, disjoint boxes, is exact in both). Near: within 1e-4
    when batched_nms offsets boxes by class (up to 1000 boxes: its "coordinate trick" rounds the
    corners again), 1e-5 otherwise (float32 IoU on our corners). None when a class is too large to
    check pairwise."""
    near = 1e-4 if len(cls) * 4 <= 4000 else 1e-5
    for c in np.unique(cls):
        m = cls == c
        if m.sum() > 5000:
            return None
        if len(np.unique(score[m])) != m.sum():
            return False
        b = xyxy[m]
        for i in range(len(b)):
            iou = iou64(b[i], b[i + 1:])
            if ((np.abs(iou - float(F32(iou_thr))) < near) & (iou != 0)).any():
                return False
    return True


def reference(out, layout, thr, iou_thr, max_det, classes, tv, name):
    dets = []
    checked = 0
    for n, (a, c, s, xyxy) in enumerate(candidates(out, layout, thr, classes)):
        keep = ref_nms(c, xyxy, iou_thr)
        defined = tv_defined(c, s, xyxy, iou_thr)
        if tv == "must" and not defined:
            raise SystemExit("detect_ref.py: FAILED: case %s sample %d: torchvision check does not apply "
                             "(ties or IoU at the threshold): change the case" % (name, n))
        if defined:
            got = batched_nms(torch.from_numpy(xyxy), torch.from_numpy(s), torch.from_numpy(c.astype(np.int64)),
                              float(iou_thr)).numpy()
            if set(a[got].tolist()) != set(a[keep].tolist()):
                raise SystemExit("detect_ref.py: FAILED: case %s sample %d: torchvision batched_nms keeps "
                                 "anchors %s, the reference %s" % (name, n, sorted(a[got]), sorted(a[keep])))
            checked += 1
        for i in keep[:max_det]:
            dets.append((n, int(a[i]), int(c[i]), s[i], xyxy[i]))
    return dets, checked


# ---- the cases ----------------------------------------------------------------------------------

def pack(layout, boxes, cls, obj=None):
    """(N, A, 4) boxes, (N, A, C) class scores, (N, A) objectness -> the layout's float32 array."""
    if layout == "yolov8":
        x = np.concatenate([boxes, cls], axis=-1).transpose(0, 2, 1)
    else:
        x = np.concatenate([boxes, obj[..., None], cls], axis=-1)
    return np.ascontiguousarray(x, dtype=F32)


def random_case(rng, layout, n, c, a, size=64.0, smin=2.0, smax=30.0, lo=0.0, hi=1.0):
    """Uniform boxes, scores a permutation of distinct levels in [lo, hi) (no ties)."""
    cxcy = rng.uniform(0, size, (n, a, 2))
    wh = rng.uniform(smin, smax, (n, a, 2))
    levels = lo + (hi - lo) * rng.permutation(n * a * c).reshape(n, a, c) / (n * a * c)
    obj = None
    if layout == "yolov5":
        obj = rng.uniform(0.3, 1.0, (n, a))  # products of distinct levels and random reals: no ties
    return pack(layout, np.concatenate([cxcy, wh], -1), levels, obj)


def clustered_case(rng, layout, n, c, a, objects=20, size=640.0):
    """COCO-like: most anchors below threshold, a few clusters of high scores around objects."""
    cxcy = rng.uniform(0, size, (n, a, 2))
    wh = rng.uniform(8, 200, (n, a, 2))
    logits = rng.normal(-7.0, 1.5, (n, a, c))
    for i in range(n):
        for _ in range(objects):
            center, k = rng.uniform(50, size - 50, 2), rng.integers(0, c)
            near = rng.choice(a, 15, replace=False)
            cxcy[i, near] = center + rng.normal(0, 4, (15, 2))
            wh[i, near] = rng.uniform(60, 120, 2) + rng.normal(0, 3, (15, 2))
            logits[i, near, k] = rng.normal(2.0, 1.0, 15)
    cls = 1 / (1 + np.exp(-logits))
    obj = None if layout == "yolov8" else 1 / (1 + np.exp(-rng.normal(3, 1, (n, a))))
    return pack(layout, np.concatenate([cxcy, wh], -1), cls, obj)


def hand(layout, rows, c):
    """rows: (cx, cy, w, h, [obj,] scores...) per anchor, one sample. Anchors of score -1, far
    away, are added until the layout is the automatic choice (A > 4 + C, A > 5 + C)."""
    rows = list(rows)
    while len(rows) <= (4 if layout == "yolov8" else 5) + c:
        i = len(rows)
        rows.append([1000 + 10 * i, 1000, 1, 1] + ([-1.0] * c if layout == "yolov8" else [-1.0] + [1.0] * c))
    x = np.array(rows, dtype=np.float64)[None]
    return pack(layout, x[..., :4], x[..., -c:], x[..., 4] if layout == "yolov5" else None)


def adversarial_cases():
    nan, inf = float("nan"), float("inf")
    cases = []
    # equal scores, same class, disjoint boxes: all kept, lower anchor first; max 2 cuts at the tie
    rows = [[10 + 20 * i, 10, 8, 8] + ([0.8, 0.1] if i % 2 else [0.1, 0.2]) for i in range(8)]
    cases.append(("tie_disjoint", "yolov8", hand("yolov8", rows, 2), 0.25, 0.45, 100, None, "auto"))
    cases.append(("tie_disjoint_max2", "yolov8", hand("yolov8", rows, 2), 0.25, 0.45, 2, None, "auto"))
    # equal scores, overlapping (IoU 0.8): the lower anchor is kept; a lower score overlapping is
    # suppressed; the same box in another class at the same score is kept (class-wise)
    rows = [[20, 20, 10, 10, 0.7, 0.0], [50, 50, 10, 10, 0.1, 0.1], [20, 21, 10, 10, 0.9, 0.0],
            [20, 20, 10, 10, 0.0, 0.9], [20, 22, 10, 10, 0.9, 0.0], [80, 80, 10, 10, 0.9, 0.0]]
    cases.append(("tie_overlap", "yolov8", hand("yolov8", rows, 2), 0.25, 0.45, 100, None, "auto"))
    # IoU exactly at the threshold: box [0,0,4,4] and [0,0,4,2] have IoU 0.5; at 0.5 both kept, at
    # the float below 0.5 the second is suppressed; IoU 9/20 at 0.45 (0.45f) is equal: kept
    at = [[2, 2, 4, 4, 0.9], [2, 1, 4, 2, 0.8], [30, 0.5, 20, 1, 0.7], [34.5, 0.5, 9, 1, 0.6]]
    at += [[100 + i, 100, 1, 1, 0.01] for i in range(4)]  # so that D1 < D2
    cases.append(("iou_at_threshold", "yolov8", hand("yolov8", at, 1), 0.25, 0.5, 100, None, "auto"))
    cases.append(("iou_below_threshold", "yolov8", hand("yolov8", at, 1), 0.25, float(np.nextafter(F32(0.5), F32(0))),
                  100, None, "auto"))
    cases.append(("iou_045", "yolov8", hand("yolov8", at, 1), 0.25, 0.45, 100, None, "auto"))
    # just above / below: IoU 0.5 +- 1e-3 at threshold 0.5
    near = [[2, 2, 4, 4, 0.9], [2, 1.004, 4, 2.008, 0.8], [20, 2, 4, 4, 0.9], [20, 0.996, 4, 1.992, 0.8]]
    near += [[100 + i, 100, 1, 1, 0.01] for i in range(4)]
    cases.append(("iou_near_threshold", "yolov8", hand("yolov8", near, 1), 0.25, 0.5, 100, None, "auto"))
    # everything below the threshold, and all-NaN scores: no detection
    rng = np.random.default_rng(7)
    cases.append(("empty", "yolov8", random_case(rng, "yolov8", 2, 3, 40, hi=0.2), 0.25, 0.45, 100, None, "auto"))
    allnan = random_case(rng, "yolov5", 1, 2, 12)
    allnan[..., 5:] = nan
    cases.append(("all_nan", "yolov5", allnan, 0.25, 0.45, 100, None, "auto"))
    # identical boxes, one class: one survives (distinct scores: the best; equal: anchor 0)
    same = [[32, 32, 10, 12, 0.9, 0.5 + 0.01 * i] for i in range(10)]
    cases.append(("identical", "yolov5", hand("yolov5", same, 1), 0.25, 0.45, 100, None, "auto"))
    same = [[32, 32, 10, 12, 0.5, 0.8] for i in range(10)]
    cases.append(("identical_tied", "yolov5", hand("yolov5", same, 1), 0.25, 0.45, 100, None, "auto"))
    # degenerate boxes: w or h 0 or negative (dropped), tiny w (kept; zero-area corners, IoU 0)
    deg = [[10, 10, 0, 5, 0.9, 0.9], [20, 10, 5, 0, 0.9, 0.9], [30, 10, -5, 5, 0.9, 0.9], [40, 10, 5, -1, 0.9, 0.9],
           [50, 10, 1e-30, 5, 0.9, 0.9], [50, 10, 1e-30, 5, 0.8, 0.9], [60, 10, 4, 4, 0.9, 0.9]]
    cases.append(("degenerate", "yolov5", hand("yolov5", deg, 1), 0.25, 0.45, 100, None, "auto"))
    # NaN / Inf in boxes, objectness and scores; corners that overflow
    bad = [[nan, 10, 4, 4, 0.9, 0.9, 0.1], [10, 10, nan, 4, 0.9, 0.9, 0.1], [10, 10, 4, inf, 0.9, 0.9, 0.1],
           [-inf, 10, 4, 4, 0.9, 0.9, 0.1], [10, 10, 4, 4, nan, 0.9, 0.1], [10, 10, 4, 4, inf, 0.0, 0.0],
           [10, 10, 4, 4, 0.9, nan, 0.9], [10, 10, 4, 4, 0.9, 0.2, inf], [100, 10, 4, 4, 0.9, -inf, 0.8],
           [3e38, 10, 3e38, 4, 0.9, 0.9, 0.1], [200, 10, 4, 4, 0.9, 0.9, 0.1], [10, 10, 4, 4, 0.9, inf, -inf]]
    cases.append(("nan_inf", "yolov5", hand("yolov5", bad, 2), 0.25, 0.45, 100, None, "auto"))
    # a NaN in a class the filter leaves out is not used: the candidate stays
    cases.append(("nan_filtered_out", "yolov5", hand("yolov5", bad, 2), 0.25, 0.45, 100, [1], "auto"))
    # YOLOv5 products equal across classes: the lower class; with a filter, the allowed one
    prod = [[10 + 10 * i, 10, 4, 4, 0.5, 0.6, 0.6, 0.3] for i in range(8)]
    cases.append(("class_tie", "yolov5", hand("yolov5", prod, 3), 0.25, 0.45, 100, None, "auto"))
    cases.append(("class_tie_filter", "yolov5", hand("yolov5", prod, 3), 0.25, 0.45, 100, [2, 1], "auto"))
    cases.append(("class_filter_below", "yolov5", hand("yolov5", prod, 3), 0.25, 0.45, 100, [2], "auto"))
    # a threshold of 0 keeps zero scores; negative scores stay out
    zero = [[10 + 10 * i, 10, 4, 4, (i % 3) * 0.5 - 0.5] for i in range(9)]
    cases.append(("threshold_zero", "yolov8", hand("yolov8", zero, 1), 0.0, 0.45, 100, None, "auto"))
    # named layout against the automatic one on the same (1, 10, 6) output
    rng = np.random.default_rng(11)
    x = rng.uniform(0.3, 1.0, (1, 10, 6)).astype(F32)
    x[0, 2:4, :] = 3.0  # w, h of yolov8's anchors
    x[0, :, 2:4] = 3.0  # w, h of yolov5's anchors
    cases.append(("named_yolov8", "yolov8", x, 0.25, 0.45, 100, None, "yolov8"))
    cases.append(("auto_as_yolov5", "yolov5", x, 0.25, 0.45, 100, None, "auto"))
    # more than MAX_NMS survivors: the best 30000 are one box, the 10000 below are disjoint boxes
    a = 40000
    boxes = np.zeros((1, a, 4))
    boxes[0, :, :] = [320, 320, 50, 50]
    k = np.arange(a - MAX_NMS)
    boxes[0, MAX_NMS:, 0], boxes[0, MAX_NMS:, 1] = 1000 + 10 * (k % 100), 1000 + 10 * (k // 100)
    boxes[0, MAX_NMS:, 2:] = 5
    scores = (1.0 - np.arange(a) / (2.0 * a))[None, :, None]
    cases.append(("cap_30000", "yolov8", pack("yolov8", boxes, scores), 0.25, 0.45, 1000, None, "auto"))
    return [c + ("auto",) for c in cases]


def random_cases():
    rng = np.random.default_rng(2024)
    cases = []
    for i, (layout, n, c, a, thr, iou, mx, cl) in enumerate([
            ("yolov8", 2, 3, 50, 0.25, 0.45, 100, None), ("yolov8", 1, 1, 200, 0.5, 0.3, 100, None),
            ("yolov8", 3, 5, 120, 0.1, 0.6, 7, None), ("yolov8", 1, 4, 80, 0.3, 0.0, 100, None),
            ("yolov8", 2, 6, 90, 0.2, 0.5, 100, [0, 3, 5]), ("yolov8", 4, 2, 30, 0.4, 0.45, 1, None),
            ("yolov5", 3, 4, 60, 0.2, 0.5, 100, None), ("yolov5", 1, 1, 100, 0.1, 0.7, 100, None),
            ("yolov5", 2, 7, 150, 0.3, 0.45, 5, None), ("yolov5", 1, 3, 70, 0.05, 1.0, 100, None),
            ("yolov5", 2, 5, 90, 0.25, 0.4, 100, [1, 4])]):
        x = random_case(rng, layout, n, c, a)
        name = "rand%d_%s_n%d_c%d_a%d" % (i, layout, n, c, a)
        cases.append((name, layout, x, thr, iou, mx, cl, "auto", "must"))
    # COCO-sized: few survivors out of 8400 (yolov8) and 25200 (yolov5) anchors, 80 classes
    cases.append(("coco_yolov8", "yolov8", clustered_case(rng, "yolov8", 2, 80, 8400), 0.25, 0.45, 100, None,
                  "auto", "auto"))
    cases.append(("coco_yolov5", "yolov5", clustered_case(rng, "yolov5", 1, 80, 25200), 0.25, 0.45, 100, None,
                  "auto", "auto"))
    # every anchor above the threshold: NMS over 8400 candidates, 300 kept (a seed of its own: with
    # 8400 boxes some seeds put a same-class IoU within 1e-5 of the threshold, where torchvision's
    # float32 IoU may decide otherwise)
    x = random_case(np.random.default_rng(1), "yolov8", 1, 2, 8400, size=640.0, smin=10, smax=100, lo=0.3)
    cases.append(("dense_yolov8", "yolov8", x, 0.25, 0.45, 300, None, "auto", "must"))
    return cases


def hexf(v):
    return float(F32(v)).hex()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: detect_ref.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    lines = ["# detect_ref.py: numpy %s, torch %s, torchvision %s" % (np.__version__, torch.__version__,
                                                                      torchvision.__version__)]
    n_tv = n_dets = 0
    cases = random_cases() + adversarial_cases()
    for name, layout, x, thr, iou, mx, cl, opt_layout, tv in cases:
        x = np.ascontiguousarray(x, dtype=F32)
        dets, checked = reference(x, layout, float(F32(thr)), float(F32(iou)), mx, cl, tv, name)
        n_tv += checked
        n_dets += len(dets)
        path = os.path.join(outdir, name + ".npy")
        np.save(path + ".tmp.npy", x)
        os.replace(path + ".tmp.npy", path)
        lines.append("# %s: %d of %d samples also checked against torchvision batched_nms" % (name, checked, x.shape[0]))
        lines.append("case %s %s %s %s %s %d %s %s %d" % (name, name + ".npy", opt_layout, hexf(thr), hexf(iou), mx,
                                                           ",".join(map(str, cl)) if cl else "-", layout, len(dets)))
        for n, a, c, s, b in dets:
            lines.append("det %d %d %d %s %s" % (n, a, c, hexf(s), " ".join(hexf(v) for v in b)))
    manifest = os.path.join(outdir, "manifest.txt")
    with open(manifest + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(manifest + ".tmp", manifest)
    print("detect_ref.py: %d cases, %d detections, %d samples checked against torchvision batched_nms"
          % (len(cases), n_dets, n_tv))


if __name__ == "__main__":
    main()
