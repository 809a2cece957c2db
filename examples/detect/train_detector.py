#!/usr/bin/python3
"""Train the small shape detector and export it to ONNX (run with Debian's /usr/bin/python3).

    nice -n 10 /usr/bin/python3 examples/detect/train_detector.py    # writes shapes_detector.onnx, labels.txt

A YOLOv8-like anchor-free detector in miniature, for 128x128 scenes of scenes.py (classes circle,
square, triangle). Input "images" (1, 3, 128, 128): RGB, pixel / 255, no mean/std. Output
"output0" (1, 4 + 3, A), A = 16*16 + 8*8 = 320 cells: rows 0-3 the box centre x, centre y, width,
height in input pixels, rows 4-6 the class scores after a sigmoid (no objectness); columns are the
stride-8 cells (row-major) then the stride-16 cells.

Data: scenes (1, i) for training, (2, i) validation, (3, i) the held-out test set (200 scenes),
(4, i) same-class pairs; random flips and transposes. Deterministic: fixed seeds, one thread,
torch.use_deterministic_algorithms.
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
from torchvision.ops import batched_nms, box_iou, generalized_box_iou_loss  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import onnx_weights  # noqa: E402
import scenes  # noqa: E402

SIZE = 128
NC = len(scenes.CLASSES)
STRIDES = (8, 16)
TRAIN_SEED, VAL_SEED, TEST_SEED, PAIR_SEED = 1, 2, 3, 4
# a box goes to the stride-8 level when its longer side is <= 30 px, to the stride-16 level when
# it is >= 22 px (both in between)
LEVEL_RANGES = ((0.0, 30.0), (22.0, 1e9))
CONF, NMS_IOU = 0.25, 0.45


# ------------------------------------------------------------------------------------- model

class ConvBN(nn.Module):
    """Conv + BatchNorm + SiLU, as YOLOv8's Conv (fused: conv with bias, no BN, as exported)."""

    def __init__(self, cin, cout, k=3, s=1, fused=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=fused)
        self.bn = nn.Identity() if fused else nn.BatchNorm2d(cout)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Detector(nn.Module):
    def __init__(self, w=(16, 32, 40, 56), head=24, fused=False):
        super().__init__()
        c = lambda i, o, k=3, s=1: ConvBN(i, o, k, s, fused)  # noqa: E731
        # backbone: 128 -> 64 -> 32 -> 16 (P3, stride 8) -> 8 (P4, stride 16)
        self.stem = c(3, w[0], 3, 2)
        self.stage2 = nn.Sequential(c(w[0], w[1], 3, 2), c(w[1], w[1]))
        self.stage3 = nn.Sequential(c(w[1], w[2], 3, 2), c(w[2], w[2]))
        self.stage4 = nn.Sequential(c(w[2], w[3], 3, 2), c(w[3], w[3]))
        # neck (PAN): top-down P4 -> P3, then bottom-up from the stride-8 output to stride 16
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.neck3 = c(w[3] + w[2], w[2])       # -> N3: the stride-8 level's neck output
        self.down = c(w[2], w[2], 3, 2)
        self.neck4 = c(w[2] + w[3], w[3])       # -> N4: the stride-16 level's neck output
        chans = (w[2], w[3])
        # heads: per level a box branch (cv2) and a class branch (cv3), both from the neck output
        self.cv2 = nn.ModuleList(nn.Sequential(c(ch, head), c(head, head), nn.Conv2d(head, 4, 1)) for ch in chans)
        self.cv3 = nn.ModuleList(nn.Sequential(c(ch, head), c(head, head), nn.Conv2d(head, NC, 1)) for ch in chans)
        for s, n in zip(STRIDES, ("anchors0", "anchors1")):
            g = SIZE // s
            yy, xx = torch.meshgrid(torch.arange(g, dtype=torch.float32), torch.arange(g, dtype=torch.float32),
                                    indexing="ij")
            self.register_buffer(n, torch.stack([xx, yy])[None].add(0.5).mul(s))   # (1, 2, g, g) cell centres
        if not fused:
            for m in self.cv3:
                nn.init.constant_(m[-1].bias, -4.6)      # initial scores ~0.01
            for m in self.cv2:
                nn.init.constant_(m[-1].bias, 0.5)       # initial distances ~1 stride

    def neck(self, x):
        p3 = self.stage3(self.stage2(self.stem(x)))
        p4 = self.stage4(p3)
        n3 = self.neck3(torch.cat([self.up(p4), p3], 1))
        n4 = self.neck4(torch.cat([self.down(n3), p4], 1))
        return n3, n4

    def levels(self, x):
        """Per level: decoded boxes (N, 4, h, w) as cx, cy, w, h pixels and class logits (N, NC, h, w)."""
        out = []
        for i, (n, s, a) in enumerate(zip(self.neck(x), STRIDES, (self.anchors0, self.anchors1))):
            d = F.softplus(self.cv2[i](n)) * s      # distances left, top, right, bottom, pixels
            lt, rb = d[:, :2], d[:, 2:]
            box = torch.cat([a + (rb - lt) * 0.5, lt + rb], 1)
            out.append((box, self.cv3[i](n)))
        return out

    def forward(self, x):
        ys = [torch.cat([b, torch.sigmoid(z)], 1).reshape(-1, 4 + NC, b.shape[2] * b.shape[3])
              for b, z in self.levels(x)]
        return torch.cat(ys, 2)

    @classmethod
    def from_onnx(cls, path):
        """The exported model back in PyTorch (batch norms folded), from the ONNX file's weights:
        each Conv node's name gives the path of its module (/stage2/stage2.0/conv/Conv)."""
        init, convs = onnx_weights.conv_nodes(path)
        widths = tuple(int(init[convs[k].input[1]].shape[0]) for k in
                       ("stem.conv", "stage2.0.conv", "stage3.0.conv", "stage4.0.conv"))
        m = cls(widths, int(init[convs["cv2.0.0.conv"].input[1]].shape[0]), fused=True)
        return onnx_weights.load_convs(m, init, convs, nn.Conv2d)


module_path = onnx_weights.module_path


# ----------------------------------------------------------------------------------- targets

def anchor_table():
    """Cell centres (A, 2), strides (A,), levels (A,) in the output's column order."""
    pts, st, lv = [], [], []
    for i, s in enumerate(STRIDES):
        g = SIZE // s
        yy, xx = np.mgrid[0:g, 0:g].astype(np.float32)
        pts.append(np.stack([xx.ravel(), yy.ravel()], 1) * s + s / 2)
        st.append(np.full(g * g, s, np.float32))
        lv.append(np.full(g * g, i))
    return np.concatenate(pts), np.concatenate(st), np.concatenate(lv)


ANCHORS, ASTRIDE, ALEVEL = anchor_table()


def assign(boxes, classes):
    """Targets of one picture: class (A, NC) 0/1, box (A, 4) x0, y0, x1, y1, positive (A,) bool.
    A cell is positive for a box of its level when the cell centre lies in the box's central region
    (within max(0.3 * side, 0.75 * stride) of the box centre on both axes, and inside the box); a
    cell claimed by two boxes goes to the smaller."""
    A = len(ANCHORS)
    cls_t = np.zeros((A, NC), np.float32)
    box_t = np.zeros((A, 4), np.float32)
    if len(boxes) == 0:
        return cls_t, box_t, np.zeros(A, bool)
    b = np.asarray(boxes, np.float32)
    wh = b[:, 2:] - b[:, :2]
    ctr = (b[:, :2] + b[:, 2:]) / 2
    side = wh.max(1)
    lo = np.array([r[0] for r in LEVEL_RANGES], np.float32)[ALEVEL]
    hi = np.array([r[1] for r in LEVEL_RANGES], np.float32)[ALEVEL]
    ok_level = (side[:, None] >= lo[None]) & (side[:, None] <= hi[None])             # (G, A)
    rad = np.maximum(0.3 * wh[:, None, :], 0.75 * ASTRIDE[None, :, None])            # (G, A, 2)
    near = (np.abs(ANCHORS[None] - ctr[:, None]) <= rad).all(2)
    inside = ((ANCHORS[None] > b[:, None, :2]) & (ANCHORS[None] < b[:, None, 2:])).all(2)
    match = ok_level & near & inside
    cost = np.where(match, (wh[:, 0] * wh[:, 1])[:, None], np.inf)
    g = cost.argmin(0)
    pos = np.isfinite(cost.min(0))
    cls_t[pos, np.asarray(classes)[g[pos]]] = 1
    box_t[pos] = b[g[pos]]
    return cls_t, box_t, pos


def dihedral(imgs, boxes, k):
    """Flip/transposes k in 0..7 of uint8 images (N, H, W, 3) and their boxes (list of (n, 4))."""
    out_b = []
    for b in boxes:
        b = b.copy()
        if k & 1:                               # horizontal flip
            b[:, [0, 2]] = SIZE - b[:, [2, 0]]
        if k & 2:                               # vertical flip
            b[:, [1, 3]] = SIZE - b[:, [3, 1]]
        if k & 4:                               # transpose
            b = b[:, [1, 0, 3, 2]]
        out_b.append(b)
    if k & 1:
        imgs = imgs[:, :, ::-1]
    if k & 2:
        imgs = imgs[:, ::-1]
    if k & 4:
        imgs = imgs.transpose(0, 2, 1, 3)
    return np.ascontiguousarray(imgs), out_b


def to_input(imgs):
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in 0..1: the model's whole preprocessing."""
    return torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)


def xyxy(b):
    """(..., 4) cx, cy, w, h -> x0, y0, x1, y1."""
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


def loss_fn(model, x, boxes, classes, iou_targets=True):
    """BCE on the class scores (target 0 except at positive cells: there, for the box's class, the
    IoU of the cell's predicted box with it when iou_targets, else 1), GIoU and L1 on the boxes
    of the positive cells; all summed over cells and divided by the number of positive cells."""
    lv = model.levels(x)
    logits = torch.cat([z.flatten(2) for _, z in lv], 2).permute(0, 2, 1)          # (N, A, NC)
    pred = xyxy(torch.cat([b.flatten(2) for b, _ in lv], 2).permute(0, 2, 1))      # (N, A, 4)
    t = [assign(b, c) for b, c in zip(boxes, classes)]
    cls_t = torch.from_numpy(np.stack([v[0] for v in t]))
    box_t = torch.from_numpy(np.stack([v[1] for v in t]))
    pos = torch.from_numpy(np.stack([v[2] for v in t]))
    npos = max(int(pos.sum()), 1)
    pb, tb = pred[pos], box_t[pos]
    if iou_targets:     # scores say how well the box fits, as YOLOv8's task-aligned targets do
        with torch.no_grad():
            cls_t[pos] *= box_iou(pb, tb).diagonal().clamp(min=0.05)[:, None]
    l_cls = F.binary_cross_entropy_with_logits(logits, cls_t, reduction="sum") / npos
    stride = torch.from_numpy(ASTRIDE)[None].expand(len(x), -1)[pos][:, None]
    l_giou = generalized_box_iou_loss(pb, tb, reduction="sum") / npos
    l_l1 = ((pb - tb).abs() / stride).sum() / (4 * npos)
    return l_cls + 2.0 * l_giou + 0.5 * l_l1, (l_cls.item(), l_giou.item(), l_l1.item())


# -------------------------------------------------------------------------------- evaluation

@torch.no_grad()
def predict(model, imgs, conf=CONF, iou=NMS_IOU, bs=50, max_det=100):
    """Detections per picture: (boxes (k, 4) x0, y0, x1, y1, scores (k,), classes (k,)): the best
    class of each cell, kept when its score is >= conf, then class-wise NMS at IoU `iou`."""
    model.eval()
    res = []
    for i in range(0, len(imgs), bs):
        out = model(to_input(imgs[i:i + bs]))
        for o in out:
            b = xyxy(o[:4].T)
            s, c = o[4:].max(0)
            keep = s >= conf
            b, s, c = b[keep], s[keep], c[keep]
            k = batched_nms(b, s, c, iou)[:max_det]
            res.append((b[k], s[k], c[k]))
    return res


def match(dets, boxes, classes, thr=0.5):
    """Per detection, best-scored first: score, class, true positive (IoU >= thr with a not yet
    matched box of its class), that IoU."""
    rows = []
    for (b, s, c), gb, gc in zip(dets, boxes, classes):
        gb, gc = torch.from_numpy(np.asarray(gb, np.float32).reshape(-1, 4)), torch.from_numpy(np.asarray(gc))
        used = torch.zeros(len(gb), dtype=torch.bool)
        ious = box_iou(b, gb) if len(gb) and len(b) else torch.zeros(len(b), len(gb))
        for j in torch.argsort(s, descending=True).tolist():
            cand = (~used) & (gc == c[j])
            v = torch.where(cand, ious[j], torch.tensor(-1.0)) if len(gb) else torch.zeros(0)
            best = float(v.max()) if len(gb) else 0.0
            tp = best >= thr
            if tp:
                used[int(v.argmax())] = True
            rows.append((float(s[j]), int(c[j]), tp, best))
    return rows


def average_precision(rows, ngt):
    """Area under the interpolated precision-recall curve (VOC, all points) of one class."""
    if ngt == 0:
        return float("nan")
    rows = sorted(rows, key=lambda r: -r[0])
    tp = np.cumsum([r[2] for r in rows], dtype=np.float64)
    fp = np.cumsum([not r[2] for r in rows], dtype=np.float64)
    rec = np.concatenate([[0.0], tp / ngt, [1.0]]) if len(rows) else np.array([0.0, 1.0])
    prec = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1e-9), [0.0]]) if len(rows) else np.array([1.0, 0.0])
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    return float(np.sum((rec[1:] - rec[:-1]) * prec[1:]))


def evaluate(model, imgs, boxes, classes):
    """Precision and recall at score 0.25 + NMS 0.45 (IoU >= 0.5 with a box of the same class),
    mAP@0.5 (scores >= 0.001), per-class AP."""
    rows = match(predict(model, imgs), boxes, classes)
    ngt = sum(len(b) for b in boxes)
    tp = sum(r[2] for r in rows)
    all_rows = match(predict(model, imgs, conf=0.001), boxes, classes)
    gcs = np.concatenate([np.asarray(c) for c in classes])
    aps = [average_precision([r for r in all_rows if r[1] == k], int((gcs == k).sum())) for k in range(NC)]
    ious = [r[3] for r in rows if r[2]]
    return {"precision": tp / max(len(rows), 1), "recall": tp / max(ngt, 1), "tp": tp, "dets": len(rows),
            "gt": ngt, "map50": float(np.nanmean(aps)), "ap50": aps, "iou": float(np.mean(ious)) if ious else 0.0}


def fmt(m):
    return ("precision %.4f (%d/%d), recall %.4f (%d/%d), mean IoU of the matches %.3f, mAP@0.5 %.4f (AP %s)" %
            (m["precision"], m["tp"], m["dets"], m["recall"], m["tp"], m["gt"], m["iou"], m["map50"],
             ", ".join("%s %.3f" % (n, a) for n, a in zip(scenes.CLASSES, m["ap50"]))))


def load_scenes(seed, n, same_class=False):
    imgs = np.empty((n, SIZE, SIZE, 3), np.uint8)
    boxes, classes = [], []
    for i in range(n):
        r = (scenes.same_class_scene if same_class else scenes.scene)((seed, i), SIZE)
        imgs[i] = r[0]
        boxes.append(r[1])
        classes.append(r[2])
    return imgs, boxes, classes


# ------------------------------------------------------------------------------------ export

def export(model, path):
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), path, input_names=["images"],
                      output_names=["output0"], opset_version=17, do_constant_folding=True)
    try:
        import onnx
    except ImportError:
        print("onnx not installed: the exported file was not checked")
        return
    m = onnx.load(path)
    onnx.checker.check_model(m)
    out = m.graph.output[0]
    dims = [d.dim_value for d in out.type.tensor_type.shape.dim]
    assert out.name == "output0" and dims == [1, 4 + NC, sum((SIZE // s) ** 2 for s in STRIDES)], dims
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    for n in m.graph.node:      # the tensors each level's head reads: the neck outputs
        if n.op_type == "Conv" and module_path(n.name) in ("cv2.0.0.conv", "cv3.0.0.conv", "cv2.1.0.conv",
                                                           "cv3.1.0.conv"):
            print("  level %s head conv %s reads %s" % (module_path(n.name)[4], n.name, n.input[0]))


def main():
    ap = argparse.ArgumentParser(description="train the demo shape detector")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--iou-targets", type=int, default=1,
                    help="1: a positive cell's class target is its box's IoU (scores stay below 1, so their "
                         "gradients do not vanish); 0: target 1")
    ap.add_argument("--seed", type=int, default=0, help="torch seed (weights, batch order, augmentation)")
    ap.add_argument("--out", default=HERE, help="where shapes_detector.onnx and labels.txt go")
    ap.add_argument("--save-pt", default=None, help="also save the PyTorch state_dict here")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    t0, c0 = time.time(), time.process_time()
    xtr, btr, ctr = load_scenes(TRAIN_SEED, a.n_train)
    xva, bva, cva = load_scenes(VAL_SEED, a.n_val)
    print("data: %d train, %d val scenes, %.0f s CPU" % (len(xtr), len(xva), time.process_time() - c0), flush=True)

    model = Detector()
    nparam = sum(p.numel() for p in model.parameters())
    print("parameters: %d" % nparam)
    nb = len(xtr) // a.batch
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.epochs * nb, pct_start=0.1)
    gen = torch.Generator().manual_seed(a.seed + 1)
    c1 = time.process_time()
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen).numpy()
        tot = np.zeros(4)
        for i in range(nb):
            idx = perm[i * a.batch:(i + 1) * a.batch]
            imgs, boxes = dihedral(xtr[idx], [btr[j] for j in idx], int(torch.randint(0, 8, (), generator=gen)))
            loss, parts = loss_fn(model, to_input(imgs), boxes, [ctr[j] for j in idx], bool(a.iou_targets))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += (loss.item(),) + parts
            if a.verbose and (i + 1) % 25 == 0:
                print("  step %d: loss %.3f, %.0f s CPU" % (i + 1, tot[0] / (i + 1), time.process_time() - c1),
                      flush=True)
        m = evaluate(model, xva, bva, cva)
        print("epoch %d: loss %.3f (cls %.3f, giou %.3f, l1 %.3f), val %s, %.0f s CPU" %
              ((ep + 1,) + tuple(tot / nb) + (fmt(m), time.process_time() - c1)), flush=True)
    train_cpu = time.process_time() - c1
    print("training: %.0f s CPU, %.0f s wall in all" % (train_cpu, time.time() - t0))
    if a.save_pt:
        torch.save(model.state_dict(), a.save_pt)

    xte, bte, cte = load_scenes(TEST_SEED, a.n_test)
    print("test (%d held-out scenes, seed %d): %s" % (a.n_test, TEST_SEED, fmt(evaluate(model, xte, bte, cte))))
    xp, bp, cp = load_scenes(PAIR_SEED, 100, same_class=True)
    print("same-class pairs (100 scenes, seed %d): %s" % (PAIR_SEED, fmt(evaluate(model, xp, bp, cp))))

    path = os.path.join(a.out, "shapes_detector.onnx")
    export(model, path)
    with open(os.path.join(a.out, "labels.txt"), "w") as f:
        f.write("\n".join(scenes.CLASSES) + "\n")
    print("wrote %s (%d bytes, %d parameters before folding) and labels.txt" % (path, os.path.getsize(path), nparam))
    # the file, read back, computes what the model computes
    back = Detector.from_onnx(path)
    x = to_input(xte[:8])
    with torch.no_grad():
        err = float((back(x) - model.eval()(x)).abs().max())
    print("ONNX weights reloaded in PyTorch: max abs difference %.2e" % err)


if __name__ == "__main__":
    main()
