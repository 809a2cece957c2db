#!/usr/bin/python3
"""The command's cost per input against the C API's (issue #23): `gradcam explain MODEL FOLDER -m gradcam`
on a folder of 16 .npy inputs against bench/bench_gradcam.c's Grad-CAM row (forward + scores + the top
class + its map, raw, upsampled and normalised: the same work per input through include/gradcam.h).

  bench_command.py BUILD_DIR [--model NAME] [--inputs N] [--runs R] [--threads T] [--batch B] [--clock wall|cpu]
                   [--files 1]

The model is exported by bench/bench_torch.py export (seeded weights, dynamic batch axis) into
BUILD_DIR/bench/models. The command's cost per input is what an input adds to a run: (time of a
folder of N inputs - time of a folder of 1) / (N - 1), so that loading the model and planning once
are left out, as they are from the API's figure; the run writes everything it writes by default
(model-view, heat-map and overlay PNGs, results.json, report.html). Rows: one by one (the default),
and with --batch B (B inputs per forward). Turn by turn (the 1-input run, the N-input run, the
batched run and an API process of 3 runs, in that order, R times); medians. Prints the per-input
times, the ratios and PASS / FAIL against the target (command <= 1.15 x API). Exit status 0 even
on FAIL (a measurement); 1 when a side fails. --clock cpu measures CPU time (user + system) instead of
wall time on both sides (the API's through BENCH_CLOCK=cpu): with --threads 1 the figure a loaded,
shared machine still gives (spinning OpenMP threads and waits for the disk left out). --batch 1 leaves
the batched row out; --files 1 names the inputs one by one instead of the folder (for builds from before
folders of .npy were accepted).
"""
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
TARGET = 1.15


def opts(argv):
    o = {"model": "resnet50", "inputs": 16, "runs": 5, "threads": 2, "batch": 8, "clock": "wall", "files": 0}
    if not argv:
        sys.exit(__doc__)
    o["build"] = os.path.abspath(argv[0])
    i = 1
    while i < len(argv):
        k = argv[i].lstrip("-")
        if k not in o or i + 1 >= len(argv):
            sys.exit("bench_command: unknown option %s\n%s" % (argv[i], __doc__))
        o[k] = argv[i + 1] if k in ("model", "clock") else int(argv[i + 1])
        i += 2
    return o


def make_inputs(work, n):
    """Folders of n seeded (1, 3, 224, 224) float32 .npy inputs and of the first of them alone."""
    import numpy as np
    rng = np.random.default_rng(23)
    xs = [rng.standard_normal((1, 3, 224, 224)).astype(np.float32) for _ in range(n)]
    for d, k in (("one", 1), ("many", n)):
        p = os.path.join(work, d)
        shutil.rmtree(p, ignore_errors=True)
        os.makedirs(p)
        for i in range(k):
            np.save(os.path.join(p, "x%03d.npy" % i), xs[i])


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_command(gradcam, model, folder, out, threads, extra, clock):
    shutil.rmtree(out, ignore_errors=True)
    if FILES:
        folder = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    else:
        folder = [folder]
    now = cpu_children if clock == "cpu" else time.perf_counter
    t = now()
    p = subprocess.run([gradcam, "explain", model] + folder + ["-m", "gradcam", "--threads", str(threads), "-q", "-o", out]
                       + extra, capture_output=True, text=True)
    dt = now() - t
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit("bench_command: gradcam explain failed (%d)" % p.returncode)
    return dt * 1000


def time_api(driver, model, name, threads, clock):
    env = dict(os.environ, BENCH_CLOCK="cpu") if clock == "cpu" else None
    p = subprocess.run([driver, model, "--name", name, "--batch", "1", "--runs", "3", "--threads", str(threads),
                        "--rows", "gradcam"], capture_output=True, text=True, env=env)
    for line in p.stdout.splitlines():
        f = line.split("\t")
        if f[0] == "RESULT" and f[3] == "gradcam":
            return float(f[4])
    sys.stderr.write(p.stdout + p.stderr)
    raise SystemExit("bench_command: bench_gradcam failed (%d)" % p.returncode)


FILES = 0


def main(argv):
    global FILES
    o = opts(argv)
    FILES = o["files"]
    build = o["build"]
    gradcam = os.path.join(build, "gradcam")
    driver = os.path.join(build, "bench", "bench_gradcam")
    for exe in (gradcam, driver):
        if not os.access(exe, os.X_OK):
            raise SystemExit("bench_command: %s is missing (build the project first)" % exe)
    models = os.path.join(build, "bench", "models")
    subprocess.run([PY, os.path.join(SRC, "bench", "bench_torch.py"), "export", o["model"], models], check=True)
    model = os.path.join(models, o["model"] + ".onnx")
    work = os.path.join(build, "bench", "command")
    os.makedirs(work, exist_ok=True)
    make_inputs(work, o["inputs"])
    one, many, out = (os.path.join(work, d) for d in ("one", "many", "out"))
    n = o["inputs"]
    load0 = os.getloadavg()
    t1, tn, tb, api = [], [], [], []
    for r in range(o["runs"] + 1):  # the first turn warms the caches and is not counted
        a = time_command(gradcam, model, one, out, o["threads"], [], o["clock"])
        b = time_command(gradcam, model, many, out, o["threads"], [], o["clock"])
        c = time_command(gradcam, model, many, out, o["threads"], ["--batch", str(o["batch"])], o["clock"]) \
            if o["batch"] > 1 else float("nan")
        d = time_api(driver, model, o["model"], o["threads"], o["clock"])
        if r:
            t1.append(a)
            tn.append(b)
            tb.append(c)
            api.append(d)
        print("bench_command: turn %d: 1 input %.0f ms, %d inputs %.0f ms, --batch %d %.0f ms, API %.1f ms per input%s"
              % (r, a, n, b, o["batch"], c, d, " (warm-up)" if not r else ""), flush=True)
    per = [(b - a) / (n - 1) for a, b in zip(t1, tn)]
    perb = [(c - a) / (n - 1) for a, c in zip(t1, tb)]
    m_api, m_per, m_perb = statistics.median(api), statistics.median(per), statistics.median(perb)
    print()
    print("Command vs API, %s, %d .npy inputs, Grad-CAM, %d thread%s, %s time, medians of %d turns (load average "
          "%.2f before, %.2f after)" % (o["model"], n, o["threads"], "s" if o["threads"] > 1 else "",
                                        "CPU" if o["clock"] == "cpu" else "wall", o["runs"], load0[0], os.getloadavg()[0]))
    print()
    print("| row | per input | vs API | target |")
    print("|---|---:|---:|---|")
    print("| API (bench_gradcam, batch 1) | %.1f ms | 1.000 | |" % m_api)
    for label, v in (("command, one by one", m_per), ("command, --batch %d" % o["batch"], m_perb))[:2 if o["batch"] > 1 else 1]:
        ratio = v / m_api
        print("| %s | %.1f ms | %.3f | %s (<= %.2f) |" % (label, v, ratio, "PASS" if ratio <= TARGET else "FAIL", TARGET))
    print()
    print("(command per input = (time of %d inputs - time of 1) / %d; runs of 1 input: median %.0f ms)"
          % (n, n - 1, statistics.median(t1)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
