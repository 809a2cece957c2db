"""gradcam serve under load on loopback, then under faults.
Load: 8 concurrent clients x 200 explain requests on the demo model (keep-alive connections), no
error, every answer the same, latency percentiles printed; an overfull queue answers 503 with
Retry-After and the server recovers. Faults: truncated uploads, slow senders, clients that leave
mid-request, garbage bodies and request lines, huge headers, many idle connections: after each,
/healthz and the next explain are answered.
Usage: serve_load.py GRADCAM WORKDIR [CLIENTS REQUESTS]   (bounded: the watchdog stops it)"""
import http.client
import json
import os
import shutil
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import DEMO_ARGS, DEMO_PICTURE, Checks, Server, first_line_of, percentiles, recv_until, watchdog  # noqa: E402

watchdog(int(os.environ.get("SERVE_TEST_TIMEOUT", "900")))
GRADCAM, WORK = sys.argv[1], sys.argv[2]
CLIENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 8
REQUESTS = int(sys.argv[4]) if len(sys.argv) > 4 else 200
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
C = Checks()
PIC = open(DEMO_PICTURE, "rb").read()
QUERY = "/v1/explain?k=1&methods=gradcam"


def load(S):
    lat, errors, answers = [], [], set()
    lock = threading.Lock()

    def client(i):
        c = S.conn(120)
        for _ in range(REQUESTS):
            t0 = time.perf_counter()
            try:
                c.request("POST", QUERY, PIC, {"Content-Type": "image/png"})
                r = c.getresponse()
                body = r.read()
                dt = time.perf_counter() - t0
                with lock:
                    if r.status != 200:
                        errors.append((r.status, body[:200]))
                    else:
                        lat.append(dt)
                        answers.add(json.loads(body)["maps"][0]["png"]["heatmap"])
            except Exception as e:  # noqa: BLE001 - a failed request is counted
                with lock:
                    errors.append(repr(e))
                c.close()
                c = S.conn(120)
        c.close()
    t0 = time.perf_counter()
    ths = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.perf_counter() - t0
    n = CLIENTS * REQUESTS
    p = percentiles(lat) if lat else {50: 0, 90: 0, 99: 0}
    print(f"load: {CLIENTS} clients x {REQUESTS} requests: {len(lat)} ok, {len(errors)} errors in {wall:.1f} s = "
          f"{len(lat) / wall:.1f} requests/s; latency p50 {p[50] * 1e3:.1f} ms, p90 {p[90] * 1e3:.1f} ms, "
          f"p99 {p[99] * 1e3:.1f} ms, max {max(lat or [0]) * 1e3:.1f} ms", flush=True)
    C.ok(not errors and len(lat) == n, f"load: errors {errors[:3]}")
    C.ok(len(answers) == 1, f"load: {len(answers)} different answers to one picture")


def overfull():
    """One worker, a queue of 2, 24 slow requests at once: some 503 with Retry-After, the rest 200;
    then the server answers again."""
    S = Server([GRADCAM, "serve", *DEMO_ARGS, "--port", "0", "-q", "--workers", "1", "--queue", "2"],
               log=os.path.join(WORK, "overfull.log"))
    try:
        res = []
        lock = threading.Lock()

        def one():
            st, h, d = S.explain("k=6&methods=gradcam,guided-backprop,guided-gradcam,scorecam", timeout=300)
            with lock:
                res.append((st, h.get("retry-after"), d))
        ths = [threading.Thread(target=one) for _ in range(24)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        n503 = sum(1 for st, ra, d in res if st == 503 and ra == "1" and "queue is full" in d["error"])
        n200 = sum(1 for st, _, _ in res if st == 200)
        print(f"overfull: {n200} answered, {n503} refused with 503", flush=True)
        C.ok(n503 > 0 and n200 >= 3 and n503 + n200 == 24, f"overfull: {[(st, d.get('error')) for st, _, d in res]}")
        st, _, _ = S.explain("k=1")
        C.ok(st == 200 and S.alive(), "overfull: recovered")
        text = S.settled_metrics()
        C.ok(f'gradcam_requests_total{{code="503"}} {n503}'.encode() in text, "overfull: 503s in /metrics")
    finally:
        C.ok(S.stop() == 0, "overfull server exit 0")


def raw(S, data, read=True, close_after=0.0, timeout=10):
    """Sends bytes on a fresh socket; the answer's first line (or '' when closed without one)."""
    s = socket.create_connection(("127.0.0.1", S.port), timeout=timeout)
    try:
        s.sendall(data)
        if close_after:
            time.sleep(close_after)
            return ""
        if not read:
            return ""
        try:
            return first_line_of(recv_until(s, b"\r\n"))
        except (ConnectionResetError, socket.timeout):
            return ""
    finally:
        s.close()


def still_fine(S, what):
    ok = S.alive()
    st, _, _ = S.explain("k=1")
    C.ok(ok and st == 200, f"after {what}: healthz {ok}, explain {st}")


def head(n, extra=b""):
    return (b"POST /v1/explain?k=1 HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: %d\r\n" % n
            + extra + b"\r\n")


def faults():
    S = Server([GRADCAM, "serve", *DEMO_ARGS, "--port", "0", "-q", "--workers", "2", "--deadline", "3",
                "--idle-timeout", "2", "--max-header", "16K"], log=os.path.join(WORK, "faults.log"))
    try:
        # truncated uploads: the body shorter than announced, then the client leaves
        for cut in (0, 10, len(PIC) // 2):
            raw(S, head(len(PIC)) + PIC[:cut], close_after=0.05)
        still_fine(S, "truncated uploads")
        # a slow sender: one byte every 0.3 s; the deadline (3 s) closes it, others are served meanwhile
        s = socket.create_connection(("127.0.0.1", S.port), timeout=20)
        s.sendall(head(len(PIC)))
        t0, closed, served = time.time(), False, 0
        for i in range(40):
            try:
                s.sendall(PIC[i:i + 1])
            except OSError:
                closed = True
                break
            if i % 5 == 0:
                served += S.alive()
            time.sleep(0.3)
        C.ok(closed and time.time() - t0 < 11 and served >= 2, f"slow sender: closed {closed} after "
             f"{time.time() - t0:.1f} s, {served} healthz served meanwhile")
        s.close()
        still_fine(S, "a slow sender")
        # slow headers: a request line and nothing more; the idle timeout closes it
        line = raw(S, b"POST /v1/explain HTTP/1.1\r\nHost: x\r\n", timeout=10)
        C.ok(line == "" or line.startswith("HTTP/1.1 4") or line.startswith("HTTP/1.1 5"), f"slow headers: {line!r}")
        # clients that leave while their request waits or runs
        for _ in range(6):
            raw(S, head(len(PIC)) + PIC, close_after=0.01)
        time.sleep(1)
        still_fine(S, "clients leaving mid-request")
        # garbage: bodies, request lines, chunk sizes
        for body in (os.urandom(5000), b"\x89PNG\r\n\x1a\n" + os.urandom(2000), b"\xff\xd8\xff" + os.urandom(999)):
            st, _, d = S.explain("", body)
            # 400; or 413 when the random bytes after the signature read as a header declaring more
            # pixels than --max-pixels (a JPEG SOF marker comes up about once in a hundred runs)
            C.ok("error" in d and (st == 400 or (st == 413 and "pixels" in str(d.get("error")))),
                 f"garbage body: {st} {d}")
        for junk in (b"GARBAGE\r\n\r\n", os.urandom(300) + b"\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                     b"POST /v1/explain HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                     b"POST /v1/explain HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"):
            line = raw(S, junk)
            C.ok(not line.startswith("HTTP/1.1 2"), f"garbage request {junk[:20]!r}: {line!r}")
        still_fine(S, "garbage")
        # huge headers: one of 100 KB, many small ones
        line = raw(S, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
        C.ok(line == "" or line.split(" ")[1] in ("413", "414", "431", "400"), f"huge header: {line!r}")
        line = raw(S, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n")
        C.ok(line == "" or line.split(" ")[1] in ("413", "414", "431", "400"), f"many headers: {line!r}")
        line = raw(S, b"GET /" + b"a" * 50000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        C.ok(line == "" or line.split(" ")[1] in ("413", "414", "431", "400", "404"), f"huge URL: {line!r}")
        still_fine(S, "huge headers")
        # many idle connections
        idle = [socket.create_connection(("127.0.0.1", S.port), timeout=10) for _ in range(120)]
        still_fine(S, "120 idle connections")
        for s in idle:
            s.close()
        text = S.settled_metrics()
        C.ok(b"\ngradcam_requests_in_flight 0\n" in text, "no request left in flight")
    finally:
        rc = S.stop()
        C.ok(rc == 0, f"faults server exit {rc}")


S = Server([GRADCAM, "serve", *DEMO_ARGS, "--port", "0", "-q"] + os.environ.get("SERVE_ARGS", "").split(),
           log=os.path.join(WORK, "load.log"))
try:
    C.ok(S.alive(), "alive")
    load(S)
finally:
    rc = S.stop()
    C.ok(rc == 0, f"load server exit {rc}")
overfull()
faults()
C.done()
