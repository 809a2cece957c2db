#!/usr/bin/python3
"""Deterministic scenes of 2-3 coloured shapes with a caption (numpy + PIL only), for the captioning
and VQA demos (examples/caption, examples/vqa).

A scene is a 128x128 RGB picture: a muted, low-saturation textured background (so that the colour
names stay unambiguous) with 2 or 3 shapes of distinct shapes and distinct colours, 18-40 px across
(the diameter of the circumscribed circle), at random places and rotations, never overlapping.

The caption describes two shapes: those whose colours come first in the order of COLORS (red,
green, blue, yellow, purple), in that order, and where the first is relative to the second:
"a red star above a blue circle", "a green square left of a yellow triangle". Those two are placed
so that one axis clearly dominates their offset (|dy| >= 1.5 |dx| or the reverse). Each shape word
names one shape of the picture (shapes are distinct within a scene). The rule is arbitrary but
visual and deterministic, so that a small model learns it in minutes.

    s = scene(seed)         # dict: rgb uint8 (H, W, 3), boxes float32 (n, 4) x0, y0, x1, y1 (x1, y1
                            # exclusive), colors, shapes (indices into COLORS / SHAPES), caption (str),
                            # order (the shapes in the caption's order: subject, object; always
                            # 0, 1: shapes are listed by colour), inst int8 (H, W): -1 background,
                            # k on the pixels of shape k

`seed` is an int or a sequence of ints; sets use (set_seed, index). Command line, to look at some:

    scenes.py OUTDIR --n 16 --seed 3      # PNGs + captions.txt
"""
import argparse
import math
import os

import numpy as np
from PIL import Image, ImageDraw

COLORS = ["red", "green", "blue", "yellow", "purple"]
RGB = np.array([(215, 35, 35), (35, 170, 55), (40, 80, 225), (235, 210, 35), (145, 45, 195)], np.float32)
SHAPES = ["circle", "square", "triangle", "star"]
RELATIONS = ["above", "below", "left of", "right of"]
SIZES = (18.0, 40.0)                                 # shape diameter range, pixels
SS = 4                                               # supersampling of the shapes' edges
TAG = 0xCA9710                                       # mixed into every seed: unlike other generators'


def rng_for(seed):
    seq = list(seed) if isinstance(seed, (tuple, list)) else [seed]
    return np.random.default_rng([TAG] + [int(s) for s in seq])


def background(rng, size):
    """Muted texture (float32 0..255): a grey-ish base, smooth noise and a gradient, low saturation."""
    grey = rng.uniform(70, 185)
    base = grey + rng.uniform(-12, 12, size=3)
    k = int(rng.integers(3, 8))
    cells = base + rng.uniform(-25, 25, size=(k, k, 1)) + rng.uniform(-8, 8, size=(k, k, 3))
    img = np.asarray(Image.fromarray(np.clip(cells, 0, 255).astype(np.uint8)).resize((size, size), Image.BICUBIC),
                     np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    ang = rng.uniform(0, 2 * math.pi)
    img += (np.cos(ang) * xx + np.sin(ang) * yy)[..., None] * np.float32(rng.uniform(-30, 30))
    return img


def coverage(shape, cx, cy, dia, angle, size):
    """Anti-aliased coverage float32 (size, size) in 0..1 of one shape."""
    r = dia / 2.0
    x0, y0 = max(int(cx - r) - 2, 0), max(int(cy - r) - 2, 0)
    x1, y1 = min(int(cx + r) + 3, size), min(int(cy + r) + 3, size)
    big = Image.new("L", ((x1 - x0) * SS, (y1 - y0) * SS), 0)
    d = ImageDraw.Draw(big)
    X, Y, R = (cx - x0) * SS, (cy - y0) * SS, r * SS
    name = SHAPES[shape]
    if name == "circle":
        d.ellipse([X - R, Y - R, X + R, Y + R], fill=255)
    else:
        if name == "square":
            pts = [(R, math.pi / 4 + k * math.pi / 2) for k in range(4)]
        elif name == "triangle":
            pts = [(R, -math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
        else:  # five-pointed star, inner radius 0.45 R
            pts = [(R if k % 2 == 0 else 0.45 * R, -math.pi / 2 + k * math.pi / 5) for k in range(10)]
        d.polygon([(X + rr * math.cos(t + angle), Y + rr * math.sin(t + angle)) for rr, t in pts], fill=255)
    out = np.zeros((size, size), np.float32)
    out[y0:y1, x0:x1] = np.asarray(big.resize((x1 - x0, y1 - y0), Image.BOX), np.float32) / 255.0
    return out


def relation(a, b):
    """Where centre a is relative to centre b (image y down), or None when no axis dominates."""
    dx, dy = a[0] - b[0], a[1] - b[1]
    if abs(dy) >= 1.5 * abs(dx):
        return "above" if dy < 0 else "below"
    if abs(dx) >= 1.5 * abs(dy):
        return "left of" if dx < 0 else "right of"
    return None


def _place(rng, dias, size, gap=3.0, tries=400):
    """Centres whose bounding squares are `gap` px apart, the first two with a dominant axis."""
    for _ in range(tries):
        placed = []
        for dia in dias:
            lo, hi = dia / 2 + 1, size - dia / 2 - 1
            for _ in range(100):
                c = rng.uniform(lo, hi, size=2)
                if all(abs(c[0] - p[0]) >= (dia + pd) / 2 + gap or abs(c[1] - p[1]) >= (dia + pd) / 2 + gap
                       for p, pd in placed):
                    placed.append((c, dia))
                    break
        if len(placed) == len(dias) and relation(placed[0][0], placed[1][0]) is not None:
            return [p for p, _ in placed]
    raise RuntimeError("no layout found")


def scene(seed, size=128, n=None):
    rng = rng_for(seed)
    n = int(rng.integers(2, 4)) if n is None else int(n)
    shapes = [int(v) for v in rng.permutation(len(SHAPES))[:n]]
    colors = sorted(int(v) for v in rng.permutation(len(COLORS))[:n])   # the described two first
    dias = [rng.uniform(*SIZES) for _ in range(n)]
    centres = _place(rng, dias, size)
    img = background(rng, size)
    boxes = []
    inst = np.full((size, size), -1, np.int8)
    for k in range(n):
        alpha = coverage(shapes[k], centres[k][0], centres[k][1], dias[k], rng.uniform(0, 2 * math.pi), size)
        col = RGB[colors[k]] + rng.uniform(-18, 18, size=3).astype(np.float32)
        img += (col - img) * alpha[..., None]
        ys, xs = np.nonzero(alpha >= 0.5)
        inst[alpha >= 0.5] = k
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    img += rng.standard_normal(size=img.shape).astype(np.float32) * np.float32(rng.uniform(0, 6))
    rgb = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    cap = "a %s %s %s a %s %s" % (COLORS[colors[0]], SHAPES[shapes[0]], relation(centres[0], centres[1]),
                                  COLORS[colors[1]], SHAPES[shapes[1]])
    return {"rgb": rgb, "boxes": np.asarray(boxes, np.float32), "colors": colors, "shapes": shapes,
            "caption": cap, "order": [0, 1], "inst": inst}


def cell_labels(s, cell=8):
    """Per cell of a (size / cell)^2 grid: the shape index (1 + SHAPES index) and colour index
    (1 + COLORS index) of the shape covering at least a quarter of the cell, else 0 (background):
    dense targets for the train scripts' auxiliary loss."""
    inst = s["inst"]
    g = inst.shape[0] // cell
    shp = np.zeros((g, g), np.int64)
    col = np.zeros((g, g), np.int64)
    for k in range(len(s["shapes"])):
        frac = (inst == k).reshape(g, cell, g, cell).mean((1, 3))
        on = frac >= 0.25
        shp[on], col[on] = s["shapes"][k] + 1, s["colors"][k] + 1
    return shp, col


def vocabulary():
    """The caption vocabulary: specials, then every word of the grammar (vocab.txt's lines)."""
    words = ["a"] + COLORS + SHAPES + ["above", "below", "left", "right", "of"]
    return ["<pad>", "<bos>", "<eos>", "<unk>"] + words


def main():
    ap = argparse.ArgumentParser(description="write some scenes as PNGs with their captions")
    ap.add_argument("outdir")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    with open(os.path.join(a.outdir, "captions.txt"), "w") as f:
        for i in range(a.n):
            s = scene((a.seed, i))
            name = "scene_%04d.png" % i
            Image.fromarray(s["rgb"]).save(os.path.join(a.outdir, name))
            f.write("%s\t%s\n" % (name, s["caption"]))
    print("wrote %d pictures to %s" % (a.n, a.outdir))


if __name__ == "__main__":
    main()
