#!/usr/bin/python3
"""Deterministic generator of the demo's synthetic images (numpy + PIL only).

128x128 RGB images: a textured background (smooth colour noise, stripes or a
gradient, random colours) with shapes of six classes at random places, sizes,
rotations and colours.  Colour never depends on the class: only the shape does.

Every image is drawn from its own generator seeded by (seed, index), so image i
is the same whatever n is and in whichever order images are made.

Library use:
    img, cls, box = make_single(rng)          # training image, one shape
    img, objs = make_pair(rng)                # two shapes of different classes
    # img: (128, 128, 3) uint8; box = (x0, y0, x1, y1), x1/y1 exclusive;
    # objs = [(cls, box), (cls, box)]

Command line:
    shapes.py eval OUTDIR --n 500 --seed 2024     # two-shape images + boxes.csv
    shapes.py train OUTDIR --n 100 --seed 1       # one-shape images + boxes.csv
CSV: header `image,class,x0,y0,x1,y1`, one row per object, class as label name,
box in pixels with x1, y1 exclusive (x0 <= x < x1, y0 <= y < y1).
"""
import argparse
import csv
import math
import os

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["circle", "square", "triangle", "star", "cross", "ring"]
SIZE = 128          # image side, pixels
SS = 4              # supersampling factor for anti-aliased shape edges
TRAIN_SIZES = (22, 50)   # shape diameter range (pixels) for training images
PAIR_SIZES = (24, 46)    # shape diameter range for two-shape images
MARGIN = 8          # minimum gap (pixels) between the two shapes' boxes
BORDER = 6          # minimum gap (pixels) between a shape's circumscribed circle and the image edge
EVAL_SEED = 2024    # default seed of the evaluation set (training uses others)


def rng_for(seed, index):
    """The generator of image `index` of the set seeded by `seed`."""
    return np.random.default_rng([int(seed), int(index)])


# ---------------------------------------------------------------- background

def _rand_colour(rng):
    return rng.uniform(0, 255, size=3).astype(np.float32)


_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def _mix(c0, c1, t):
    """(SIZE, SIZE, 3): colour c0 where t = 0, c1 where t = 1."""
    return c0 + (c1 - c0) * t[..., None]


def _pair(rng, base, amp):
    """Two colours around base, at most amp apart from it per channel."""
    d = rng.uniform(-1, 1, size=3).astype(np.float32) * np.float32(amp)
    return base - d, base + d


def _smooth_noise(rng, base, amp):
    k = int(rng.integers(2, 7))
    grid = np.clip(base + rng.uniform(-amp, amp, size=(k, k, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(grid).resize((SIZE, SIZE), Image.BICUBIC)
    return np.asarray(im, dtype=np.float32)


def _stripes(rng, base, amp):
    c0, c1 = _pair(rng, base, amp)
    period = rng.uniform(6, 40)
    theta = rng.uniform(0, math.pi)
    phase = (_XX * math.cos(theta) + _YY * math.sin(theta)) * (2 * math.pi / period) + rng.uniform(0, 2 * math.pi)
    sharp = rng.uniform(0.5, 3.0)          # 0.5: soft waves, 3: nearly square stripes
    t = np.clip(np.sin(phase) * np.float32(sharp), -1, 1) * 0.5 + 0.5
    return _mix(c0, c1, t)


def _gradient(rng, base, amp):
    c0, c1 = _pair(rng, base, amp * 1.5)
    yy, xx = _YY / (SIZE - 1), _XX / (SIZE - 1)
    if rng.random() < 0.7:                  # linear
        theta = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(theta) + yy * math.sin(theta)
    else:                                   # radial
        cx, cy = rng.uniform(0, 1, size=2)
        t = np.hypot(xx - cx, yy - cy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return _mix(c0, c1, t.astype(np.float32))


_TEXTURES = (_smooth_noise, _stripes, _gradient)


def background(rng):
    """(SIZE, SIZE, 3) float32 in 0..255: textures of moderate contrast around a random colour,
    so that the shapes (painted far from the colour under them) are the image's salient objects."""
    base = rng.uniform(40, 215, size=3).astype(np.float32)
    amp = rng.uniform(15, 60)
    bg = _TEXTURES[int(rng.integers(0, 3))](rng, base, amp)
    if rng.random() < 0.3:                  # sometimes a second texture on top
        other = _TEXTURES[int(rng.integers(0, 3))](rng, base, amp)
        a = np.float32(rng.uniform(0.2, 0.5))
        bg = bg * (1 - a) + other * a
    return np.clip(bg, 0, 255).astype(np.float32)


# -------------------------------------------------------------------- shapes

def _rot(points, theta, cx, cy):
    c, s = math.cos(theta), math.sin(theta)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _polygon_points(cls, r, rng):
    """Outline(s) of a shape of radius r centred on 0, as lists of points, or None for round ones."""
    if cls == "square":
        a = r / math.sqrt(2) * rng.uniform(0.9, 1.0)   # a rotated square fits in the circle of radius r
        return [(-a, -a), (a, -a), (a, a), (-a, a)]
    if cls == "triangle":
        return [(r * math.cos(t), r * math.sin(t)) for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if cls == "star":
        inner = r * rng.uniform(0.38, 0.5)
        pts = []
        for i in range(10):
            t = -math.pi / 2 + i * math.pi / 5
            rr = r if i % 2 == 0 else inner
            pts.append((rr * math.cos(t), rr * math.sin(t)))
        return pts
    if cls == "cross":
        w = r * rng.uniform(0.28, 0.4)                 # half arm width
        L = r / math.sqrt(1 + (w / r) ** 2) * 0.98      # arm tips stay inside the circle
        return [(-w, -L), (w, -L), (w, -w), (L, -w), (L, w), (w, w), (w, L), (-w, L),
                (-w, w), (-L, w), (-L, -w), (-w, -w)]
    return None


def shape_alpha(cls, cx, cy, diameter, rng):
    """Anti-aliased coverage (SIZE, SIZE) float32 in 0..1 of one shape."""
    r = diameter / 2.0
    # draw only the window around the shape, SS times finer, then average down
    x0, y0 = max(int(cx - r) - 2, 0), max(int(cy - r) - 2, 0)
    x1, y1 = min(int(cx + r) + 3, SIZE), min(int(cy + r) + 3, SIZE)
    big = Image.new("L", ((x1 - x0) * SS, (y1 - y0) * SS), 0)
    d = ImageDraw.Draw(big)
    X, Y, R = (cx - x0) * SS, (cy - y0) * SS, r * SS
    if cls == "circle":
        d.ellipse([X - R, Y - R, X + R, Y + R], fill=255)
    elif cls == "ring":
        ri = R * rng.uniform(0.45, 0.65)
        d.ellipse([X - R, Y - R, X + R, Y + R], fill=255)
        d.ellipse([X - ri, Y - ri, X + ri, Y + ri], fill=0)
    else:
        pts = _polygon_points(cls, R, rng)
        d.polygon(_rot(pts, rng.uniform(0, 2 * math.pi), X, Y), fill=255)
    alpha = np.zeros((SIZE, SIZE), np.float32)
    alpha[y0:y1, x0:x1] = np.asarray(big.resize((x1 - x0, y1 - y0), Image.BOX), dtype=np.float32) / 255.0
    return alpha


def box_of(alpha):
    """Tight box (x0, y0, x1, y1) of pixels at least half covered; x1, y1 exclusive."""
    ys, xs = np.nonzero(alpha >= 0.5)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _paint(img, alpha, rng):
    """Composite one shape of a random colour that stands out from the background under it."""
    ys, xs = np.nonzero(alpha)
    win = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    a, sub = alpha[win], img[win]           # views: writing sub writes img
    under = sub[a > 0.5].mean(axis=0)
    col = _rand_colour(rng)
    for _ in range(50):
        if np.linalg.norm(col - under) >= 120:
            break
        col = _rand_colour(rng)
    fill = col
    if rng.random() < 0.3:                  # sometimes a slight shading across the shape
        c2 = np.clip(col + rng.normal(0, 30, size=3), 0, 255).astype(np.float32)
        t = np.linspace(0, 1, SIZE, dtype=np.float32)
        t = t[None, win[1], None] if rng.random() < 0.5 else t[win[0], None, None]
        fill = col + (c2 - col) * t
    sub += (fill - sub) * a[..., None]


def _finish(img, rng):
    sigma = np.float32(rng.uniform(0, 10))
    img += rng.standard_normal(size=img.shape, dtype=np.float32) * sigma
    np.rint(img, out=img)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


def _rand_centre(rng, diameter):
    lo, hi = diameter / 2 + BORDER, SIZE - diameter / 2 - BORDER
    return rng.uniform(lo, hi), rng.uniform(lo, hi)


def make_single(rng, sizes=TRAIN_SIZES):
    """Training image with one shape: (img uint8 (H, W, 3), class index, box)."""
    img = background(rng)
    cls = int(rng.integers(0, len(CLASSES)))
    dia = rng.uniform(*sizes)
    cx, cy = _rand_centre(rng, dia)
    alpha = shape_alpha(CLASSES[cls], cx, cy, dia, rng)
    _paint(img, alpha, rng)
    return _finish(img, rng), cls, box_of(alpha)


def _apart(b0, b1, margin):
    return (b0[2] + margin <= b1[0] or b1[2] + margin <= b0[0] or
            b0[3] + margin <= b1[1] or b1[3] + margin <= b0[1])


def make_pair(rng, sizes=PAIR_SIZES, margin=MARGIN):
    """Image with two shapes of different classes whose boxes are at least `margin` apart:
    (img uint8 (H, W, 3), [(class, box), (class, box)])."""
    img = background(rng)
    c0, c1 = (int(c) for c in rng.choice(len(CLASSES), size=2, replace=False))
    while True:
        d0, d1 = rng.uniform(*sizes, size=2)
        (x0, y0), (x1, y1) = _rand_centre(rng, d0), _rand_centre(rng, d1)
        # circumscribed boxes (shapes lie inside their circle)
        b0 = (x0 - d0 / 2, y0 - d0 / 2, x0 + d0 / 2, y0 + d0 / 2)
        b1 = (x1 - d1 / 2, y1 - d1 / 2, x1 + d1 / 2, y1 + d1 / 2)
        if _apart(b0, b1, margin):
            break
    objs = []
    for cls, cx, cy, dia in ((c0, x0, y0, d0), (c1, x1, y1, d1)):
        alpha = shape_alpha(CLASSES[cls], cx, cy, dia, rng)
        _paint(img, alpha, rng)
        objs.append((cls, box_of(alpha)))
    return _finish(img, rng), objs


# ---------------------------------------------------------------------- sets

def single_set(seed, n, start=0):
    """n training images as arrays: (uint8 (n, H, W, 3), int64 (n,) classes, int64 (n, 4) boxes)."""
    xs = np.empty((n, SIZE, SIZE, 3), np.uint8)
    ys = np.empty(n, np.int64)
    bs = np.empty((n, 4), np.int64)
    for i in range(n):
        xs[i], ys[i], bs[i] = make_single(rng_for(seed, start + i))
    return xs, ys, bs


def write_set(outdir, kind, n, seed, prefix=None):
    os.makedirs(outdir, exist_ok=True)
    prefix = prefix or kind
    rows = []
    for i in range(n):
        rng = rng_for(seed, i)
        if kind == "eval":
            img, objs = make_pair(rng)
        else:
            img, cls, box = make_single(rng)
            objs = [(cls, box)]
        name = "%s_%04d.png" % (prefix, i)
        Image.fromarray(img).save(os.path.join(outdir, name), optimize=True)
        rows += [(name, CLASSES[c]) + tuple(b) for c, b in objs]
    write_csv(os.path.join(outdir, "boxes.csv"), rows)
    return rows


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["image", "class", "x0", "y0", "x1", "y1"])
        w.writerows(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=["eval", "train"], help="eval: two shapes per image; train: one")
    ap.add_argument("outdir")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    a = ap.parse_args()
    rows = write_set(a.outdir, a.kind, a.n, a.seed)
    print("wrote %d images, %d boxes to %s" % (a.n, len(rows), a.outdir))


if __name__ == "__main__":
    main()
