#!/usr/bin/python3
"""Deterministic multi-shape scenes for the detection and segmentation demos (numpy + PIL only).

A scene is a size x size RGB picture (default 128): a textured background (smooth colour noise,
stripes, a colour gradient or a mix, a few faint distractor strokes, pixel noise) with 1 to 4
shapes of three classes (circle, square, triangle) at random places, sizes (14-40 px across, the
diameter of the shape's circumscribed circle), rotations and colours. A shape's colour does not
depend on its class, only its outline does; it is kept far from the colour under it. The shapes'
circumscribed circles do not overlap (their bounding squares are at least `gap` px apart).

    rgb, boxes, classes, inst, sem = scene(seed)
    rgb, boxes, classes, inst, sem = same_class_scene(seed)     # exactly two shapes, one class

    rgb      uint8 (H, W, 3)
    boxes    float32 (n, 4): x0, y0, x1, y1 in pixels, tight box of the pixels the shape covers at
             least half, x0 <= x < x1 and y0 <= y < y1 (x1, y1 exclusive edges)
    classes  int64 (n,): 0 circle, 1 square, 2 triangle (CLASSES, labels.txt)
    inst     int32 (H, W): 0 background, i + 1 on the pixels of shape i
    sem      uint8 (H, W): 0 background, c + 1 on the pixels of a shape of class c

`seed` is an int or a sequence of ints; sets use (set_seed, index), so picture i of a set does
not depend on the set's size. Command line, to look at some:

    scenes.py OUTDIR --n 16 --seed 3 [--same-class]     # PNGs + boxes.csv (image,class,x0,y0,x1,y1)
"""
import argparse
import csv
import math
import os

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["circle", "square", "triangle"]
SIZES = (14.0, 40.0)    # shape diameter range (circumscribed circle), pixels
SS = 4                  # supersampling factor of the shapes' edges
TAG = 0x5CE4E           # mixed into every seed, so these pictures differ from other generators'


def rng_for(seed):
    seq = list(seed) if isinstance(seed, (tuple, list)) else [seed]
    return np.random.default_rng([TAG] + [int(s) for s in seq])


# ---------------------------------------------------------------------------------- background

def _grid(size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _two_colours(rng, base, amp):
    d = rng.uniform(-1.0, 1.0, size=3).astype(np.float32) * np.float32(amp)
    return base - d, base + d


def _noise_texture(rng, size, base, amp):
    k = int(rng.integers(3, 9))
    cells = np.clip(base + rng.uniform(-amp, amp, size=(k, k, 3)), 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(cells).resize((size, size), Image.BICUBIC), dtype=np.float32)


def _stripe_texture(rng, size, base, amp):
    yy, xx = _grid(size)
    c0, c1 = _two_colours(rng, base, amp)
    period = rng.uniform(5.0, 32.0)
    ang = rng.uniform(0.0, math.pi)
    ph = (xx * math.cos(ang) + yy * math.sin(ang)) * np.float32(2 * math.pi / period) + rng.uniform(0, 2 * math.pi)
    t = np.clip(np.sin(ph) * np.float32(rng.uniform(0.5, 3.0)), -1, 1) * 0.5 + 0.5
    return c0 + (c1 - c0) * t[..., None]


def _gradient_texture(rng, size, base, amp):
    yy, xx = _grid(size)
    c0, c1 = _two_colours(rng, base, 1.5 * amp)
    if rng.random() < 0.6:
        ang = rng.uniform(0.0, 2 * math.pi)
        t = xx * math.cos(ang) + yy * math.sin(ang)
    else:
        px, py = rng.uniform(0, size, size=2)
        t = np.hypot(xx - px, yy - py)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return c0 + (c1 - c0) * t[..., None].astype(np.float32)


TEXTURES = (_noise_texture, _stripe_texture, _gradient_texture)


def background(rng, size):
    """float32 (size, size, 3) in 0..255."""
    base = rng.uniform(40, 215, size=3).astype(np.float32)
    amp = rng.uniform(15, 60)
    bg = TEXTURES[int(rng.integers(len(TEXTURES)))](rng, size, base, amp)
    if rng.random() < 0.35:
        a = np.float32(rng.uniform(0.2, 0.5))
        bg = bg * (1 - a) + TEXTURES[int(rng.integers(len(TEXTURES)))](rng, size, base, amp) * a
    # faint distractor strokes: straight lines and arcs, of low contrast
    n = int(rng.integers(0, 4))
    if n:
        layer = Image.new("L", (size, size), 0)
        d = ImageDraw.Draw(layer)
        for _ in range(n):
            p = rng.uniform(0, size, size=4)
            w = int(rng.integers(1, 3))
            if rng.random() < 0.5:
                d.line([float(v) for v in p], fill=255, width=w)
            else:
                x0, y0 = min(p[0], p[2]), min(p[1], p[3])
                d.arc([x0, y0, x0 + abs(p[2] - p[0]) + 8, y0 + abs(p[3] - p[1]) + 8],
                      float(rng.uniform(0, 360)), float(rng.uniform(0, 360)), fill=255, width=w)
        a = np.asarray(layer, np.float32)[..., None] / 255.0 * np.float32(rng.uniform(0.15, 0.4))
        col = rng.uniform(0, 255, size=3).astype(np.float32)
        bg = bg * (1 - a) + col * a
    return np.clip(bg, 0, 255).astype(np.float32)


# -------------------------------------------------------------------------------------- shapes

def coverage(cls, cx, cy, dia, angle, size):
    """Anti-aliased coverage float32 (size, size) in 0..1 of one shape of class index cls."""
    r = dia / 2.0
    x0, y0 = max(int(cx - r) - 2, 0), max(int(cy - r) - 2, 0)
    x1, y1 = min(int(cx + r) + 3, size), min(int(cy + r) + 3, size)
    big = Image.new("L", ((x1 - x0) * SS, (y1 - y0) * SS), 0)
    d = ImageDraw.Draw(big)
    X, Y, R = (cx - x0) * SS, (cy - y0) * SS, r * SS
    if CLASSES[cls] == "circle":
        d.ellipse([X - R, Y - R, X + R, Y + R], fill=255)
    else:
        if CLASSES[cls] == "square":
            corners = [math.pi / 4 + k * math.pi / 2 for k in range(4)]
        else:
            corners = [-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        d.polygon([(X + R * math.cos(t + angle), Y + R * math.sin(t + angle)) for t in corners], fill=255)
    out = np.zeros((size, size), np.float32)
    out[y0:y1, x0:x1] = np.asarray(big.resize((x1 - x0, y1 - y0), Image.BOX), np.float32) / 255.0
    return out


def _paint(img, alpha, rng):
    """Composite a shape of a random colour far (>= 110 in RGB distance) from the colour under it."""
    ys, xs = np.nonzero(alpha)
    win = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    a, sub = alpha[win], img[win]
    under = sub[a >= 0.5].mean(axis=0)
    col = rng.uniform(0, 255, size=3).astype(np.float32)
    for _ in range(60):
        if np.linalg.norm(col - under) >= 110:
            break
        col = rng.uniform(0, 255, size=3).astype(np.float32)
    fill = col
    if rng.random() < 0.3:      # a slight shading across the shape
        c2 = np.clip(col + rng.normal(0, 30, size=3), 0, 255).astype(np.float32)
        if rng.random() < 0.5:
            t = np.linspace(0, 1, sub.shape[1], dtype=np.float32)[None, :, None]
        else:
            t = np.linspace(0, 1, sub.shape[0], dtype=np.float32)[:, None, None]
        fill = col + (c2 - col) * t
    sub += (fill - sub) * a[..., None]


def _place(rng, dias, size, gap, border=1.0, tries=200):
    """Centres for shapes of these diameters whose bounding squares are `gap` px apart, or fewer
    shapes when they do not fit (the last ones are dropped)."""
    placed = []
    for dia in dias:
        lo, hi = dia / 2 + border, size - dia / 2 - border
        for _ in range(tries):
            cx, cy = rng.uniform(lo, hi, size=2)
            if all(abs(cx - px) >= (dia + pd) / 2 + gap or abs(cy - py) >= (dia + pd) / 2 + gap
                   for px, py, pd in placed):
                placed.append((cx, cy, dia))
                break
    return placed


def _compose(rng, size, classes, sizes, gap):
    img = background(rng, size)
    dias = rng.uniform(sizes[0], sizes[1], size=len(classes))
    where = _place(rng, dias, size, gap)
    inst = np.zeros((size, size), np.int32)
    sem = np.zeros((size, size), np.uint8)
    boxes, kept = [], []
    for (cx, cy, dia), cls in zip(where, classes):
        alpha = coverage(cls, cx, cy, dia, rng.uniform(0, 2 * math.pi), size)
        _paint(img, alpha, rng)
        on = alpha >= 0.5
        ys, xs = np.nonzero(on)
        inst[on] = len(kept) + 1
        sem[on] = cls + 1
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        kept.append(cls)
    img += rng.standard_normal(size=img.shape, dtype=np.float32) * np.float32(rng.uniform(0, 10))
    rgb = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return (rgb, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(kept, np.int64),
            inst, sem)


def scene(seed, size=128, n=None, classes=None, sizes=SIZES, gap=2.0):
    """A scene of 1-4 shapes (n of them if given; of the given classes if given)."""
    rng = rng_for(seed)
    if classes is None:
        n = int(rng.integers(1, 5)) if n is None else int(n)
        classes = [int(c) for c in rng.integers(0, len(CLASSES), size=n)]
    return _compose(rng, size, list(classes), sizes, gap)


def same_class_scene(seed, size=128, cls=None, sizes=(20.0, 36.0), gap=10.0):
    """Exactly two shapes of the same class (random unless cls is given), at least `gap` px apart:
    for instance tests (explaining one object's box must point at that object, not its twin)."""
    rng = rng_for([1 << 20] + (list(seed) if isinstance(seed, (tuple, list)) else [seed]))
    c = int(rng.integers(0, len(CLASSES))) if cls is None else int(cls)
    out = _compose(rng, size, [c, c], sizes, gap)
    assert len(out[2]) == 2, "two shapes did not fit"
    return out


def demo_wanted(k, classes):
    """The demo pictures' mix (make_images.py of examples/detect and examples/segment): picture k
    (0-based) has two shapes of distinct classes (k = 1), three (k = 2), or four of all three classes
    (k = 3); picture 0 anything."""
    if k == 1:
        return len(classes) == 2 and classes[0] != classes[1]
    if k == 2:
        return len(classes) == 3
    if k == 3:
        return len(classes) == 4 and len(set(classes.tolist())) == 3
    return True


def scene_set(seed, n, start=0, size=128):
    """n scenes (seed, start + i) as lists: images (n, H, W, 3) uint8, boxes, classes, sem (n, H, W)."""
    imgs = np.empty((n, size, size, 3), np.uint8)
    sems = np.empty((n, size, size), np.uint8)
    boxes, classes = [], []
    for i in range(n):
        imgs[i], b, c, _, sems[i] = scene((seed, start + i), size)
        boxes.append(b)
        classes.append(c)
    return imgs, boxes, classes, sems


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["image", "class", "x0", "y0", "x1", "y1"])
        w.writerows(rows)


def main():
    ap = argparse.ArgumentParser(description="write some scenes as PNGs with boxes.csv")
    ap.add_argument("outdir")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--same-class", action="store_true", help="two shapes of one class per picture")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    rows = []
    for i in range(a.n):
        rgb, boxes, classes, _, _ = (same_class_scene if a.same_class else scene)((a.seed, i))
        name = "scene_%04d.png" % i
        Image.fromarray(rgb).save(os.path.join(a.outdir, name))
        rows += [(name, CLASSES[c]) + tuple(int(v) for v in b) for b, c in zip(boxes, classes)]
    write_csv(os.path.join(a.outdir, "boxes.csv"), rows)
    print("wrote %d pictures, %d boxes to %s" % (a.n, len(rows), a.outdir))


if __name__ == "__main__":
    main()
