#!/usr/bin/python3
"""Cold start (issue #23): what a user waits for before the first result, and the memory it takes.

  bench/cold_start.py BUILD_DIR [--baseline OTHER_BUILD_DIR] [--models resnet50,vit_b_16] [--runs 5]

For each model (/work/models/NAME.onnx, or $GCAM_MODELS/NAME.onnx):
  - `gradcam info MODEL`: wall time (median of --runs after one warm-up that brings the file into
    the page cache) and peak RSS (the child's ru_maxrss);
  - `gradcam run MODEL x.npy` on one 224x224 picture: peak RSS, against the file's size + the
    activation memory a context plans for that run (gcam_ctx_planned_bytes through libgradcam.so)
    + 30 MiB, the issue's bound.
With --baseline, the other build's gradcam runs turn by turn with this one (alternating, the same
warm-up), so that both columns see the same machine. Targets: info <= 0.15 s (resnet50), <= 0.4 s
(vit_b_16); run's peak RSS within the bound. Prints a markdown table; exit status 1 if a target is missed.
"""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGET_INFO_S = {"resnet50": 0.15, "vit_b_16": 0.4}
SLACK = 30 << 20


def child(argv):
    """(wall seconds, peak RSS bytes, exit status) of one run."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_maxrss * 1024, p.returncode


class Feed(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("ndim", ctypes.c_int),
                ("dims", ctypes.POINTER(ctypes.c_int64)), ("data", ctypes.c_void_p)]


def planned_bytes(lib_path, model, shape):
    """Activation bytes a default inference context plans for the model's first input at shape."""
    lib = ctypes.CDLL(lib_path)
    lib.gcam_model_load.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_void_p]
    lib.gcam_ctx_create.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.POINTER(Feed),
                                    ctypes.c_int, ctypes.c_void_p]
    lib.gcam_ctx_planned_bytes.argtypes = [ctypes.c_void_p]
    lib.gcam_ctx_planned_bytes.restype = ctypes.c_size_t
    lib.gcam_ctx_free.argtypes = [ctypes.c_void_p]
    lib.gcam_model_free.argtypes = [ctypes.c_void_p]
    m, c = ctypes.c_void_p(), ctypes.c_void_p()
    if lib.gcam_model_load(ctypes.byref(m), model.encode(), None) != 0:
        raise SystemExit(f"cannot load {model}")
    dims = (ctypes.c_int64 * len(shape))(*shape)
    feed = Feed(None, 1, len(shape), dims, None)  # GCAM_FLOAT32 = 1
    if lib.gcam_ctx_create(ctypes.byref(c), m, ctypes.byref(feed), 1, None) != 0:
        raise SystemExit(f"cannot plan {model}")
    n = lib.gcam_ctx_planned_bytes(c)
    lib.gcam_ctx_free(c)
    lib.gcam_model_free(m)
    return n


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--planned":  # a child's job: see planned_in_child
        print(planned_bytes(sys.argv[2], sys.argv[3], [1, 3, 224, 224]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--baseline")
    ap.add_argument("--models", default="resnet50,vit_b_16")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    sides = [("this", os.path.abspath(a.build))] + ([("baseline", os.path.abspath(a.baseline))] if a.baseline else [])
    model_dir = os.environ.get("GCAM_MODELS", "/work/models")
    tmp = tempfile.mkdtemp(prefix="cold_start_")
    x = os.path.join(tmp, "x.npy")
    np.save(x, np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))
    with open("/proc/loadavg") as f:
        load_before = f.read().split()[:3]
    rows, missed = [], 0
    for name in a.models.split(","):
        model = os.path.join(model_dir, name + ".onnx")
        size = os.path.getsize(model)
        info = {s: [] for s, _ in sides}
        rss_info, rss_run = {}, {}
        for s, b in sides:  # warm-up: the file in the page cache for everyone
            child([os.path.join(b, "gradcam"), "info", model])
        for _ in range(a.runs):
            for s, b in sides:
                wall, rss, rc = child([os.path.join(b, "gradcam"), "info", model])
                if rc:
                    raise SystemExit(f"{s}: gradcam info {name} failed ({rc})")
                info[s].append(wall)
                rss_info[s] = max(rss_info.get(s, 0), rss)
        for s, b in sides:
            _, rss, rc = child([os.path.join(b, "gradcam"), "run", model, x, "--threads", "2"])
            if rc:
                raise SystemExit(f"{s}: gradcam run {name} failed ({rc})")
            rss_run[s] = rss
        # in a process of its own: a model loaded here would grow this process, and a child's
        # ru_maxrss starts from the size of the process it was forked from
        plan = int(subprocess.run([sys.executable, __file__, "--planned", os.path.join(sides[0][1], "libgradcam.so"),
                                   model], capture_output=True, text=True, check=True).stdout)
        bound = size + plan + SLACK
        for s, _ in sides:
            med = statistics.median(info[s])
            t_ok = med <= TARGET_INFO_S.get(name, float("inf"))
            r_ok = rss_run[s] <= bound
            if s == "this":
                missed += (not t_ok) + (not r_ok)
            rows.append(f"| {name} | {s} | {med * 1e3:.0f} ms [{min(info[s]) * 1e3:.0f}–{max(info[s]) * 1e3:.0f}]"
                        f"{'' if name not in TARGET_INFO_S else (' ok' if t_ok else ' MISSED')} | "
                        f"{rss_info[s] / 2**20:.0f} MiB | {rss_run[s] / 2**20:.0f} MiB | "
                        f"{size / 2**20:.0f} + {plan / 2**20:.0f} + 30 = {bound / 2**20:.0f} MiB"
                        f"{' ok' if r_ok else ' over'} |")
    with open("/proc/loadavg") as f:
        load_after = f.read().split()[:3]
    print(f"load average before / after: {' '.join(load_before)} / {' '.join(load_after)}; "
          f"info: median of {a.runs} after a warm-up")
    print("| model | build | `gradcam info` | info peak RSS | `gradcam run` peak RSS | file + planned + 30 MiB |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
