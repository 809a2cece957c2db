"""gradcam serve's throughput and latency (docs/performance.md, section "gradcam serve").
For each split of the cores (workers x threads per request) a server on 127.0.0.1 takes
CLIENTS concurrent keep-alive clients posting the same picture for SECONDS: requests/s, p50 and
p99 latency. Then one request at a time, one worker, two clients in turn (a lean HTTP/1.1 client on
a raw socket, and http.client): the latency each sees against the time the worker spent in
gcam_tool_explain (the server's Server-Timing header): the difference is what the server adds
(HTTP, queue, JSON) over the C API call itself, plus the client's own time. The same call is
also timed outside any server, in a process of its own (the anchor: gcam_tool_explain through
ctypes on libgradcam_tool.so beside GRADCAM, the same model options, --threads 1, the picture in
memory, PNGs inline as the server asks them), turn by turn with the server's requests.
Usage: bench_serve.py GRADCAM NAME MODEL PICTURE [--seconds S] [--splits 1x1,2x1,4x1,1x2|none]
                      [--clients N] [--query Q] [--resize N] [-- MODEL OPTIONS...]"""
import argparse
import ctypes
import http.client
import os
import re
import socket
import subprocess
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


class LeanClient:
    """HTTP/1.1 over one keep-alive socket with nothing else: the request sent in one write, the
    answer read to its Content-Length. What a C client (curl, a load balancer) costs, so that the
    time measured around it is the server's and the kernel's; http.client adds its own header
    parsing (email.parser) and buffered reads, which is the client's time, printed apart."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(1 << 16)

    def post(self, path, body, ctype):
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.s.sendall(head + body)
        data = bytearray()
        while True:
            n = self.s.recv_into(self.buf)
            if not n:
                raise SystemExit("bench_serve: the server closed the connection")
            data += self.buf[:n]
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                break
        lines = bytes(data[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdr = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        want = end + 4 + int(hdr.get("content-length", "0"))
        while len(data) < want:
            n = self.s.recv_into(self.buf)
            if not n:
                raise SystemExit("bench_serve: the answer was cut short")
            data += self.buf[:n]
        return status, hdr, bytes(data[end + 4:want])

    def close(self):
        self.s.close()


def explain_ms(timing):
    m = re.search(r"explain;dur=([0-9.]+)", timing or "")
    if not m:
        raise SystemExit("bench_serve: no Server-Timing in the answer")
    return float(m.group(1)) / 1e3


def overhead(S, pic, query, n, anchor=None):
    """Per turn: one request by the lean client, one by http.client and the same call in the
    anchor's process (which waits while the server works, and back). Returns, per client, the
    latencies and the worker's explain times (Server-Timing), and the anchor's times."""
    lean, c = LeanClient(S.port), S.conn(300)
    out = {"lean": ([], []), "http.client": ([], [])}
    api = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, hdr, _body = lean.post("/v1/explain?" + query, pic, "image/png")
        out["lean"][0].append(time.perf_counter() - t0)
        out["lean"][1].append(explain_ms(hdr.get("server-timing")))
        if status != 200:
            raise SystemExit(f"bench_serve: status {status}")
        t0 = time.perf_counter()
        c.request("POST", "/v1/explain?" + query, pic, {"Content-Type": "image/png"})
        r = c.getresponse()
        r.read()
        out["http.client"][0].append(time.perf_counter() - t0)
        out["http.client"][1].append(explain_ms(r.getheader("Server-Timing")))
        if anchor:
            anchor.stdin.write("go\n")
            anchor.stdin.flush()
            api.append(float(anchor.stdout.readline()))
    lean.close()
    c.close()
    return out, api


# the server's query keys as explain options (those a bench query uses)
QUERY_OPTS = {"k": "-k", "methods": "-m", "method": "-m", "classes": "-c", "layer": "-l"}


def api_anchor(gradcam, model, pic_path, query, model_opts):
    """In this process: gcam_tool_explain on the picture bytes, once per line read from stdin (turn
    by turn with the server's requests), printing the seconds of the call (the result freed outside
    the timing)."""
    os.environ["GRADCAM_LIBRARY"] = os.path.join(os.path.dirname(os.path.abspath(gradcam)), "libgradcam_tool.so")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    from gradcam import _tool  # noqa: E402 - after GRADCAM_LIBRARY
    pic = open(pic_path, "rb").read()
    per_req = []
    for kv in filter(None, query.split("&")):
        k, v = kv.split("=", 1)
        per_req += [QUERY_OPTS[k], v]
    p = _tool.Pipeline(model, options=list(model_opts) + ["--threads", "1"])
    h = p._handle()
    buf = ctypes.create_string_buffer(pic, len(pic))
    n, arr, keep = _tool._argv(per_req)
    req = _tool._Request()
    req.data, req.size, req.inline_png, req.argc, req.argv = ctypes.cast(buf, ctypes.c_void_p), len(pic), 1, n, arr
    req.name = b"input"
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        res = _tool._Result()
        t0 = time.perf_counter()
        rc = _tool.lib.gcam_tool_explain(h, ctypes.byref(req), ctypes.byref(res))
        dt = time.perf_counter() - t0
        failed = res.failed
        _tool.lib.gcam_tool_result_free(ctypes.byref(res))
        if rc or failed:
            raise SystemExit(f"api anchor: gcam_tool_explain failed ({rc}, {failed})")
        print(repr(dt), flush=True)
    p.close()


def resized(path, size, out):
    from PIL import Image
    Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR).save(out, "PNG")
    return out


def main():
    argv = sys.argv[1:]
    if argv and argv[0] == "api-anchor":  # the anchor's own process: GRADCAM MODEL PICTURE QUERY OPTS...
        api_anchor(argv[1], argv[2], argv[3], argv[4], argv[5:])
        return
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
    ap.add_argument("--resize", type=int, default=0, help="send the picture resized to N x N (a PNG)")
    a = ap.parse_args(argv)
    if a.resize:
        a.picture = resized(a.picture, a.resize, os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                              f"bench_serve_{os.getpid()}_{a.resize}.png"))
    pic = open(a.picture, "rb").read()
    print(f"| model | workers x threads | clients | requests/s | p50 ms | p99 ms | errors |")
    print(f"|---|---|---|---|---|---|---|")
    for split in ([] if a.splits == "none" else a.splits.split(",")):
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
    anchor = subprocess.Popen([sys.executable, os.path.abspath(__file__), "api-anchor", a.gradcam, a.model, a.picture,
                               a.query, *model_opts], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=server_env())
    try:
        if anchor.stdout.readline().strip() != "ready":
            raise SystemExit("api anchor did not start")
        overhead(S, pic, a.query, 3, anchor)
        out, api = overhead(S, pic, a.query, a.overhead_runs, anchor)
    finally:
        S.stop()
        anchor.stdin.close()
        anchor.wait(60)
    pa, ma = percentiles(api)[50], sum(api) / len(api)
    print(f"\n{a.name}, one client at a time, 1 worker x 1 thread, {len(api)} turns (a request by each client, then the "
          f"C API alone: gcam_tool_explain in a process of its own). The C API: p50 {pa * 1e3:.2f} ms "
          f"(mean {ma * 1e3:.2f})", flush=True)
    for name, (tot, exp) in out.items():
        pt, pe = percentiles(tot)[50], percentiles(exp)[50]
        mt, me = sum(tot) / len(tot), sum(exp) / len(exp)
        print(f"{a.name}, {name} client: latency p50 {pt * 1e3:.2f} ms (mean {mt * 1e3:.2f}), gcam_tool_explain in "
              f"the server p50 {pe * 1e3:.2f} ms (mean {me * 1e3:.2f}); added over the server's own call "
              f"{(pt - pe) * 1e3:.2f} ms = {100 * (pt - pe) / pe:.1f}% at p50, {100 * (mt - me) / me:.1f}% on the mean; "
              f"over the C API alone {100 * (pt - pa) / pa:+.1f}% at p50, {100 * (mt - ma) / ma:+.1f}% on the mean",
              flush=True)


if __name__ == "__main__":
    main()
