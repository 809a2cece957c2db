"""gradcam serve's throughput and latency (docs/performance.md, section "gradcam serve").
For each split of the cores (workers x threads per request) a server on 127.0.0.1 takes
CLIENTS concurrent keep-alive clients posting the same picture for SECONDS: requests/s, p50 and
p99 latency. Then one client, one request at a time, one worker: the latency seen by the client
against the time the worker spent in gcam_tool_explain (the server's Server-Timing header): the
difference is what the server adds (HTTP, queue, JSON) over the C API call itself.
Usage: bench_serve.py GRADCAM NAME MODEL PICTURE [--seconds S] [--splits 1x1,2x1,4x1,1x2]
                      [--clients N] [--query Q] [-- MODEL OPTIONS...]"""
import argparse
import http.client
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from serve_util import Server, percentiles, server_env  # noqa: E402


def hammer(S, pic, query, clients, seconds):
    lat, errors = [], []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client():
        c = S.conn(300)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            c.request("POST", "/v1/explain?" + query, pic, {"Content-Type": "image/png"})
            r = c.getresponse()
            r.read()
            with lock:
                (lat if r.status == 200 else errors).append(time.perf_counter() - t0)
        c.close()
    t0 = time.perf_counter()
    ths = [threading.Thread(target=client) for _ in range(clients)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    return lat, errors, time.perf_counter() - t0


def overhead(S, pic, query, n):
    """Per request: client latency, and the worker's explain time (Server-Timing)."""
    c = S.conn(300)
    tot, exp = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        c.request("POST", "/v1/explain?" + query, pic, {"Content-Type": "image/png"})
        r = c.getresponse()
        r.read()
        tot.append(time.perf_counter() - t0)
        m = re.search(r"explain;dur=([0-9.]+)", r.getheader("Server-Timing") or "")
        exp.append(float(m.group(1)) / 1e3)
    c.close()
    return tot, exp


def main():
    argv = sys.argv[1:]
    model_opts = []
    if "--" in argv:
        i = argv.index("--")
        argv, model_opts = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser()
    ap.add_argument("gradcam")
    ap.add_argument("name")
    ap.add_argument("model")
    ap.add_argument("picture")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--splits", default="1x1,2x1,4x1,1x2")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--query", default="k=1")
    ap.add_argument("--overhead-runs", type=int, default=50)
    a = ap.parse_args(argv)
    pic = open(a.picture, "rb").read()
    print(f"| model | workers x threads | clients | requests/s | p50 ms | p99 ms | errors |")
    print(f"|---|---|---|---|---|---|---|")
    for split in a.splits.split(","):
        w, t = split.split("x")
        S = Server([a.gradcam, "serve", a.model, *model_opts, "--port", "0", "-q", "--workers", w, "--threads", t,
                    "--queue", "256"], env=server_env(), start_timeout=600)
        try:
            hammer(S, pic, a.query, 2, min(3, a.seconds / 4))  # warm
            lat, err, wall = hammer(S, pic, a.query, a.clients, a.seconds)
            p = percentiles(lat)
            print(f"| {a.name} | {w} x {t} | {a.clients} | {len(lat) / wall:.1f} | {p[50] * 1e3:.1f} | "
                  f"{p[99] * 1e3:.1f} | {len(err)} |", flush=True)
        finally:
            S.stop()
    S = Server([a.gradcam, "serve", a.model, *model_opts, "--port", "0", "-q", "--workers", "1", "--threads", "1"],
               env=server_env(), start_timeout=600)
    try:
        overhead(S, pic, a.query, 3)
        tot, exp = overhead(S, pic, a.query, a.overhead_runs)
    finally:
        S.stop()
    pt, pe = percentiles(tot), percentiles(exp)
    mt, me = sum(tot) / len(tot), sum(exp) / len(exp)
    print(f"\n{a.name}, one client, 1 worker x 1 thread, {len(tot)} requests: client latency p50 {pt[50] * 1e3:.2f} ms "
          f"(mean {mt * 1e3:.2f}), gcam_tool_explain p50 {pe[50] * 1e3:.2f} ms (mean {me * 1e3:.2f}): the server adds "
          f"{(pt[50] - pe[50]) * 1e3:.2f} ms = {100 * (pt[50] - pe[50]) / pe[50]:.1f}% at p50, "
          f"{100 * (mt - me) / me:.1f}% on the mean", flush=True)


if __name__ == "__main__":
    main()
