#!/usr/bin/python3
"""The Python package's overhead over the C API (issue #21): the Grad-CAM row of bench/bench_gradcam.c
(forward + scores + each sample's top class + the map, raw, upsampled and normalised) through
`gradcam.Explainer`, turn by turn with the C driver (bench/lockstep.py), the same model, input and
threads.

  bench_python.py compare BUILD_DIR MODEL.onnx [--name NAME] [--batch N] [--size S] [--runs R] [--threads T]
      runs both sides and prints their medians and minimums, the ratio of the medians and PASS
      (package / C - 1 <= 5%) or FAIL
  bench_python.py run MODEL.onnx [same options]
      the package's side alone (speaks lockstep.py's turn protocol when BENCH_TURN_FDS is set); prints
      RESULT NAME N python_gradcam MEDIAN_MS MIN_MS MAX_MS RUNS, as bench_gradcam does

The package is imported from the source tree (python/) and loads BUILD_DIR's libgradcam_tool, unless
GRADCAM_LIBRARY says otherwise. Exit status 0 even on FAIL (a measurement, like the other rows); 1 when
a side fails.
"""
import os
import subprocess
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = 0.05


def opts(argv):
    o = {"name": None, "batch": 1, "size": 224, "runs": 10, "threads": 2}
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and a[2:] in o:
            o[a[2:]] = argv[i + 1] if a == "--name" else int(argv[i + 1])
            i += 2
        else:
            rest.append(a)
            i += 1
    return o, rest


class Turns:
    """bench/lockstep.py's protocol (bench_util.h's turn()): give the machine back, wait for a turn."""

    def __init__(self):
        v = os.environ.get("BENCH_TURN_FDS")
        self.fds = tuple(int(s) for s in v.split(",")) if v else None

    def __call__(self):
        if self.fds:
            r, w = self.fds
            if os.write(w, b"t") != 1 or len(os.read(r, 1)) != 1:
                sys.exit("bench_python.py: the turn pipe of bench/lockstep.py closed")


def bench_input(np, batch, size):
    """bench_gradcam.c's input: image-like values, different per sample."""
    i = np.arange(batch * 3 * size * size, dtype=np.uint64)
    v = (i * np.uint64(7919) + i // np.uint64(50177) * np.uint64(104729)) % np.uint64(1000)
    return (v.astype(np.float64) / 500.0 - 1.0).astype(np.float32).reshape(batch, 3, size, size)


def run(model, o):
    turn = Turns()
    turn()  # nothing heavy before the first turn
    sys.path.insert(0, os.path.join(SRC, "python"))
    import numpy as np
    import gradcam
    x = bench_input(np, o["batch"], o["size"])
    m = gradcam.Model(model)
    e = gradcam.Explainer(m, input_shape=x.shape, n_threads=o["threads"])

    def one():
        e.forward(x)
        top = e.scores().argmax(1)
        return e.explain("gradcam", target=list(top))

    turn()
    one()  # warm-up, as the C side's
    t = []
    for _ in range(o["runs"]):
        turn()
        a = time.perf_counter()
        one()
        t.append(time.perf_counter() - a)
    t.sort()
    n = len(t)
    med = t[n // 2] if n % 2 else 0.5 * (t[n // 2 - 1] + t[n // 2])
    print("RESULT\t%s\t%d\tpython_gradcam\t%.3f\t%.3f\t%.3f\t%d" % (o["name"] or model, o["batch"], med * 1e3,
                                                                     t[0] * 1e3, t[-1] * 1e3, n))
    e.close()
    m.close()


def result_of(path, row):
    """(median ms, min ms, runs) of a RESULT line."""
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if f[0] == "RESULT" and f[3] == row:
            return float(f[4]), float(f[5]), int(f[7])
    raise SystemExit("bench_python.py: no %s RESULT in %s" % (row, path))


def compare(build, model, o):
    driver = os.path.join(build, "bench", "bench_gradcam")
    if not os.access(driver, os.X_OK):
        sys.exit("bench_python.py: %s is missing (cmake --build %s --target bench_gradcam)" % (driver, build))
    env = dict(os.environ)
    env.setdefault("GRADCAM_LIBRARY", os.path.join(build, "libgradcam_tool.so"))
    name = o["name"] or os.path.splitext(os.path.basename(model))[0]
    common = ["--batch", str(o["batch"]), "--size", str(o["size"]), "--runs", str(o["runs"]), "--threads",
              str(o["threads"])]
    out = os.path.join(build, "bench", "python")
    os.makedirs(out, exist_ok=True)
    files = [os.path.join(out, f) for f in ("c.out", "c.err", "py.out", "py.err")]
    cmd = [sys.executable, os.path.join(SRC, "bench", "lockstep.py"), "--first", "a"] + files + ["--", driver, model,
           "--name", name, "--rows", "gradcam", "--budget", "0"] + common + \
        ["::", sys.executable, os.path.abspath(__file__), "run", model, "--name", name] + common
    if subprocess.run(cmd, env=env).returncode:
        for f in files:
            sys.stderr.write(open(f).read())
        sys.exit("bench_python.py: FAILED: a side failed")
    c, cmin, nc = result_of(files[0], "gradcam")
    p, pmin, npy = result_of(files[2], "python_gradcam")
    # the verdict on the medians, as the other rows; the minimums and the load are printed too: on a
    # machine shared with other jobs both sides' times move with their load, turn by turn or not
    ratio, mratio = p / c, pmin / cmin
    verdict = "PASS" if ratio - 1 <= LIMIT else "FAIL"
    print("| %s | %d | Grad-CAM, C API | %.1f ms (min %.1f) | %d runs |" % (name, o["batch"], c, cmin, nc))
    print("| %s | %d | Grad-CAM, Python package | %.1f ms (min %.1f) | %d runs |" % (name, o["batch"], p, pmin, npy))
    print("bench: python package / C API, %s batch %d Grad-CAM (forward + explain): %.3f (overhead %+.1f%%, "
          "target <= %d%%; fastest runs %.3f, load %s): %s" %
          (name, o["batch"], ratio, 100 * (ratio - 1), 100 * LIMIT, mratio,
           open("/proc/loadavg").read().split()[0], verdict))


def main(argv):
    if len(argv) >= 2 and argv[0] == "run":
        o, rest = opts(argv[2:])
        if rest:
            sys.exit(__doc__)
        run(argv[1], o)
    elif len(argv) >= 3 and argv[0] == "compare":
        o, rest = opts(argv[3:])
        if rest:
            sys.exit(__doc__)
        compare(argv[1], argv[2], o)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
