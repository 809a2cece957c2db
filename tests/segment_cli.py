#!/usr/bin/python3
"""gradcam explain --task segment's region options and errors on the demo segmenter (examples/segment).

Usage: /usr/bin/python3 tests/segment_cli.py GRADCAM_BINARY WORKDIR

--box (picture pixels) and --mask (a picture-sized PNG) name one segment: its pixels are the
output pixels whose centre falls in the box / on a nonzero mask pixel (the demo's 128x128 picture,
model input and output coincide, so the count is known exactly); its class is --class, else the
class the model predicts most there. Bad uses: one line, exit 2 (usage) or 3 (input), nothing
written for a failed input.
"""
import json
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
    from PIL import Image
except ImportError as e:  # fail, never skip
    sys.stderr.write("segment_cli.py: FAILED: cannot import numpy/PIL (%s)\n" % e)
    sys.exit(1)

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEG = os.path.join(TOP, "examples", "segment")
MODEL = os.path.join(SEG, "shapes_segmenter.onnx")
PIC = os.path.join(SEG, "images", "seg_1.png")
LABELS = os.path.join(SEG, "labels.txt")
FAILS = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        FAILS.append(msg)


def run(binary, args):
    return subprocess.run([binary, "explain", MODEL] + args, capture_output=True, text=True, timeout=300)


def one_line(p):
    return len([l for l in p.stderr.splitlines() if l.strip() and not l.startswith("Try '")]) == 1


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    g, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    base = [PIC, "--task", "segment", "--labels", LABELS, "-m", "hirescam", "-q"]
    # --box with --class: the pixels whose centre (x + 0.5, y + 0.5) is inside [x0, x1) x [y0, y1)
    box = (40.5, 10, 70, 33.2)
    xs = np.arange(128) + 0.5
    want = int(((xs >= box[0]) & (xs < box[2])).sum() * ((xs >= box[1]) & (xs < box[3])).sum())
    out = os.path.join(work, "box")
    p = run(g, base + ["--box", ",".join("%g" % v for v in box), "-c", "square", "-o", out])
    check(p.returncode == 0, "--box -c square: exit 0 (%d %s)" % (p.returncode, p.stderr.strip()))
    if p.returncode == 0:
        segs = json.load(open(os.path.join(out, "results.json")))["inputs"][0]["segments"]
        check(len(segs) == 1 and segs[0]["class"] == {"index": 2, "label": "square"} and segs[0]["pixels"] == want,
              "--box: one segment, class square, %d pixels (%r)" % (want, [(s["class"], s["pixels"]) for s in segs]))
    # --mask: the demo's true class mask (nonzero on both shapes); class: the most predicted there
    mask = np.array(Image.open(os.path.join(SEG, "masks", "seg_1.png")))
    out = os.path.join(work, "mask")
    p = run(g, base + ["--mask", os.path.join(SEG, "masks", "seg_1.png"), "-o", out])
    check(p.returncode == 0, "--mask: exit 0 (%d %s)" % (p.returncode, p.stderr.strip()))
    if p.returncode == 0:
        segs = json.load(open(os.path.join(out, "results.json")))["inputs"][0]["segments"]
        vals, counts = np.unique(mask[mask > 0], return_counts=True)
        check(len(segs) == 1 and segs[0]["pixels"] == int((mask > 0).sum()),
              "--mask: one segment of the mask's %d pixels (%r)" % (int((mask > 0).sum()), segs and segs[0]["pixels"]))
        check(len(segs) == 1 and segs[0]["class"]["index"] == int(vals[np.argmax(counts)]),
              "--mask: the class predicted most on it is its largest shape's %d (%r)" % (int(vals[np.argmax(counts)]),
                                                                                        segs and segs[0]["class"]))
    # bad uses
    small = os.path.join(work, "small.png")
    Image.fromarray(np.ones((10, 12), np.uint8)).save(small)
    cases = [(["--box", "500,500,600,600"], 3, "covers no pixel"),
             (["--mask", small], 3, "12x10"),
             (["--mask", os.path.join(work, "nosuch.png")], 3, "nosuch.png"),
             (["--box", "1,1,9,9", "--mask", small], 2, "not both"),
             (["--box", "1,1,9,9", "-c", "square,circle"], 2, "at most one --class"),
             (["--target", "region:1:0,0,4,4"], 2, "--target")]
    for extra, code, text in cases:
        out = os.path.join(work, "bad")
        shutil.rmtree(out, ignore_errors=True)
        p = run(g, base + extra + ["-o", out])
        check(p.returncode == code and one_line(p) and text in p.stderr,
              "%s: exit %d, one line with %r (%d %r)" % (" ".join(extra), code, text, p.returncode, p.stderr.strip()))
        check(not os.path.exists(os.path.join(out, "results.json")), "%s: no results.json" % " ".join(extra))
    p = subprocess.run([g, "explain", MODEL, PIC, "--mask", small], capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and "--mask needs --task segment" in p.stderr, "--mask without --task segment: exit 2 (%r)" % p.stderr)
    print("segment_cli: %d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
