"""gradcam serve's limits and guarantees that serve_api.py does not reach (issue #22, docs/serve.md):
- the default body cap (20 MiB) decided from Content-Length before the body is sent;
- the /v1/results store bounded by --results-memory: an older answer's files dropped (404) when a
  newer one needs the room, 507 for an answer larger than the whole store;
- --deadline over the whole request: an explanation running past it is stopped by the engine's
  abort check (503 with Retry-After, soon after the deadline), requests queued behind it get 503
  too, and the server answers the next one;
- --max-connections: a connection beyond the limit is closed unanswered, and served again once
  the others are gone;
- /metrics counts exactly what was answered (by status; the histogram's buckets cumulative, +Inf
  equal to the count and to the sum over the statuses; the gauges at rest);
- a non-loopback --host passes the start-up check with --token-file or --insecure (it then fails
  to bind a documentation address, TEST-NET, that no machine holds: nothing listens beyond
  127.0.0.1);
- nothing from a request touches the file system: the server runs under strace (every path-taking
  syscall, after its listen()), answers explains with files by URL, .npy maps, multipart, JPEG,
  garbage and a hostile name; no file is opened for writing, created, renamed or removed, no path
  named by a request appears, and its working folder stays empty;
- SIGTERM with one request being explained and one queued (seen in /metrics first): both answered
  200, new connections refused, exit 0.
Servers listen on 127.0.0.1 with a port the system picks; the watchdog bounds the whole script.
Usage: serve_limits.py GRADCAM WORKDIR"""
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import DEMO_ARGS, DEMO_PICTURE, Checks, Server, first_line_of, recv_until, server_env, watchdog  # noqa: E402

watchdog(600)
GRADCAM, WORK = os.path.abspath(sys.argv[1]), sys.argv[2]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
C = Checks()
PIC = open(DEMO_PICTURE, "rb").read()
# 0.5 to 1.5 s of work on the demo model at 1 thread here (Score-CAM: a forward per channel, for 6
# classes); six of them queued on one worker: the last waits 5 of them unless some were dropped for
# waiting too long, so a deadline of 0.5 s is passed on any machine where one takes over 0.1 s
SLOW = "k=6&methods=gradcam,guided-backprop,scorecam"
# 1.8 to 2 s of work here at 2 threads (Score-CAM, Ablation-CAM, SmoothGrad's 25 and Integrated
# Gradients' 50 backward passes, for 6 classes): over a deadline of 0.3 s on any machine
HEAVY = "k=6&methods=scorecam,ablationcam,smoothgrad,integrated-gradients"


def serve(*extra, log, cmd_prefix=(), cwd=None, env=None):
    return Server([*cmd_prefix, GRADCAM, "serve", *DEMO_ARGS, "--port", "0", "-q", *extra], log=os.path.join(WORK, log),
                  env=env, start_timeout=300, cwd=cwd)


def first_line(port, head, timeout=30):
    """Sends a request's head only; the status line of the answer ('' if the connection closes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        return first_line_of(recv_until(s, b"\r\n"))
    except (ConnectionResetError, socket.timeout):
        return ""
    finally:
        s.close()


def metrics(S):
    st, _, text = S.request("GET", "/metrics")
    assert st == 200, f"/metrics {st}"
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def check_default_body_cap():
    S = serve(log="default.log")
    try:
        cap = 20 << 20
        head = b"POST /v1/explain HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: %d\r\n" \
               b"Expect: 100-continue\r\n\r\n"
        line = first_line(S.port, head % (cap + 1))
        C.ok(line.startswith("HTTP/1.1 413"), f"default --max-body: 20 MiB + 1 refused before it is sent: {line!r}")
        line = first_line(S.port, head % cap)
        C.ok(line.startswith("HTTP/1.1 100"), f"default --max-body: 20 MiB accepted: {line!r}")
        m = metrics(S)
        C.ok(m.get("gradcam_queue_capacity") == 64, f"default --queue 64: {m.get('gradcam_queue_capacity')}")
        C.ok(S.alive(), "default server alive")
    finally:
        C.ok(S.stop() == 0, "default server exit 0")


def check_results_store():
    """One k=1 answer's files (picture, 3 methods' PNGs) are about 110 KB; the store holds 150 KB."""
    S = serve("--results-memory", "150K", "--workers", "1", log="store.log")
    try:
        st, _, a = S.explain("k=1&inline=0&name=first")
        C.ok(st == 200 and "id" in a, f"store: first answer {st}")
        urls_a = list(a["url"].values()) + [u for m in a["maps"] for u in m["url"].values()]
        C.ok(all(S.request("GET", u)[0] == 200 for u in urls_a), "store: the first answer's files served")
        st, _, b = S.explain("k=1&inline=0&name=second")
        C.ok(st == 200 and b["id"] != a["id"], f"store: second answer {st}")
        C.ok(all(S.request("GET", u)[0] == 404 for u in urls_a),
             "store: the first answer's files dropped to make room for the second's (least recently used)")
        urls_b = list(b["url"].values()) + [u for m in b["maps"] for u in m["url"].values()]
        C.ok(all(S.request("GET", u)[0] == 200 for u in urls_b), "store: the second answer's files served")
        held = metrics(S)["gradcam_results_bytes"]
        C.ok(0 < held <= 150 << 10, f"store: {held:.0f} bytes held, within --results-memory")
        st, h, d = S.explain("k=6&npy=1&inline=0")
        C.ok(st == 507 and "--results-memory" in d.get("error", ""), f"store: an answer larger than the store: {st} {d}")
        C.ok(all(S.request("GET", u)[0] == 200 for u in urls_b), "store: a refused answer drops nothing")
        st, _, d = S.explain("k=6&npy=0")
        C.ok(st == 200 and "png" in d, f"store: inline answers need no store: {st}")
    finally:
        C.ok(S.stop() == 0, "store server exit 0")


def check_deadline():
    S = serve("--workers", "1", "--deadline", "0.3", log="deadline.log")
    try:
        # one explanation longer than the deadline: stopped between two of the engine's steps
        t = time.monotonic()
        st, h, d = S.explain(HEAVY, timeout=120)
        took = time.monotonic() - t
        C.ok(st == 503 and h.get("retry-after") == "1" and "ran over the deadline" in d.get("error", ""),
             f"deadline: a long explanation stopped: {st} {d.get('error')}")
        C.ok(took < 0.3 + 2.0, f"deadline: answered {took:.2f} s after it was sent (deadline 0.3 s)")
        st, _, d = S.explain("k=1")
        C.ok(st == 200 and "maps" in d, f"deadline: the next request answered {st}")
        # six at once on one worker: each stopped at its deadline or refused when a worker takes it
        res, lock = [], threading.Lock()

        def one():
            r = S.explain(HEAVY, timeout=120)
            with lock:
                res.append(r)
        t = time.monotonic()
        ths = [threading.Thread(target=one) for _ in range(6)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(150)
        took = time.monotonic() - t
        late = [r for r in res if r[0] == 503 and r[1].get("retry-after") == "1" and "deadline" in r[2].get("error", "")]
        C.ok(len(res) == 6 and len(late) == 6, f"deadline: six at once: {[(st, d.get('error')) for st, _, d in res]}")
        C.ok(took < 6 * 0.3 + 5.0, f"deadline: six at once answered within {took:.2f} s")
        st, _, _ = S.explain("k=1")
        C.ok(st == 200, f"deadline: then the next request answered {st}")
    finally:
        C.ok(S.stop() == 0, "deadline server exit 0")


def check_connections():
    S = serve("--max-connections", "3", log="conns.log")
    try:
        idle = [socket.create_connection(("127.0.0.1", S.port), timeout=10) for _ in range(3)]
        time.sleep(0.3)
        try:
            st = S.request("GET", "/healthz", timeout=10)[0]
        except (OSError, Exception) as e:  # noqa: BLE001 - closed unanswered is what is wanted
            st = type(e).__name__
        C.ok(st != 200, f"connections: a fourth connection beyond --max-connections 3 not served ({st})")
        for s in idle:
            s.close()
        served = False
        for _ in range(50):  # the server notices the closed sockets at its next poll
            try:
                served = S.alive()
            except (OSError, Exception):  # noqa: BLE001
                served = False
            if served:
                break
            time.sleep(0.1)
        C.ok(served, "connections: served again once the others closed")
        st, _, _ = S.explain("k=1")
        C.ok(st == 200, f"connections: explain {st}")
    finally:
        C.ok(S.stop() == 0, "connections server exit 0")


def check_metrics_exact():
    S = serve("--workers", "1", "--queue", "5", log="metrics.log")
    try:
        for _ in range(3):
            S.alive()
        S.request("GET", "/nothing")
        S.explain("k=1")
        S.explain("k=2&methods=gradcam")
        S.explain("methods=nosuch")
        # a request is counted (and ends) once its answer has gone out, in its connection's thread:
        # the last may lag behind its answer. Poll until nothing else is in flight; each earlier poll
        # is a 200 of its own by then.
        m, polls = {}, 0
        for polls in range(40):
            m = metrics(S)
            if m["gradcam_requests_in_flight"] == 0:
                break
            time.sleep(0.05)
        want = {"200": 5 + polls, "404": 1, "400": 1}
        got = {k: v for k, v in m.items() if k.startswith("gradcam_requests_total")}
        C.ok(len(got) == 3 and all(got.get(f'gradcam_requests_total{{code="{c}"}}') == n for c, n in want.items()),
             f"metrics: requests by status {got}, {polls} polls before")
        buckets = [(k, v) for k, v in m.items() if k.startswith("gradcam_request_duration_seconds_bucket")]
        counts = [v for _, v in buckets]
        C.ok(len(buckets) == 16 and buckets[-1][0].endswith('le="+Inf"}') and counts == sorted(counts),
             f"metrics: cumulative buckets {counts}")
        C.ok(counts[-1] == m["gradcam_request_duration_seconds_count"] == sum(got.values()) == 7 + polls,
             f"metrics: +Inf {counts[-1]}, count {m['gradcam_request_duration_seconds_count']}")
        C.ok(m["gradcam_request_duration_seconds_sum"] > 0 and m["gradcam_requests_aborted_total"] == 0,
             "metrics: latency sum, nothing aborted")
        C.ok(m["gradcam_queue_depth"] == 0 and m["gradcam_workers_busy"] == 0 and m["gradcam_workers"] == 1
             and m["gradcam_queue_capacity"] == 5 and m["gradcam_requests_in_flight"] == 0,
             f"metrics: gauges at rest {[(k, v) for k, v in m.items() if 'requests_total' not in k and 'bucket' not in k]}")
    finally:
        C.ok(S.stop() == 0, "metrics server exit 0")


def unassigned_address():
    """A documentation address (RFC 5737) this machine does not hold: binding it fails."""
    for a in ("192.0.2.1", "198.51.100.1", "203.0.113.1"):
        s = socket.socket()
        try:
            s.bind((a, 0))
        except OSError:
            return a
        finally:
            s.close()
    return None


def check_non_loopback():
    addr = unassigned_address()
    if not C.ok(addr is not None, "non-loopback: every documentation address is assigned here: cannot check"):
        return
    tok = os.path.join(WORK, "token")
    open(tok, "w").write("a-token-of-twenty-chars\n")

    def run(extra):
        return subprocess.run([GRADCAM, "serve", *DEMO_ARGS, "--host", addr, "--port", "0", *extra], capture_output=True,
                              timeout=300, env=server_env())
    r = run([])
    C.ok(r.returncode == 2 and b"--token-file" in r.stderr and b"listening" not in r.stdout,
         f"non-loopback without a token refused: {r.returncode} {r.stderr[-200:]!r}")
    for extra in (["--insecure"], ["--token-file", tok]):
        r = run(extra)
        # past the check: the models loaded, then the bind of an address nobody holds fails
        C.ok(r.returncode != 0 and b"cannot listen on " + addr.encode() in r.stderr and b"--token-file (or" not in r.stderr
             and r.stderr.count(b"\n") == 1 and b"listening" not in r.stdout,
             f"non-loopback with {extra[0]}: allowed ({r.returncode} {r.stderr[-200:]!r})")


WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
CHANGE_CALLS = re.compile(r"^\d+\s+(mkdir|mkdirat|unlink|unlinkat|rmdir|rename|renameat2?|link|linkat|symlink|"
                          r"symlinkat|creat|truncate|chmod|fchmodat|chown|fchownat|mknod|mknodat|utimensat)\(")


def check_no_files():
    """Every path-taking syscall of the server after it listens, while it answers requests."""
    if not C.ok(shutil.which("strace"), "no-files: strace is not installed (apt-get install strace)"):
        return
    cwd = os.path.join(WORK, "cwd")
    os.makedirs(cwd)
    trace = os.path.join(WORK, "strace.log")
    env = server_env({"OMP_WAIT_POLICY": "passive", "TMPDIR": cwd})
    S = serve("--workers", "1", log="nofiles.log", cwd=cwd, env=env,
              cmd_prefix=["strace", "-f", "-qq", "-e", "trace=%file,listen", "-o", trace])
    marker = "zqxv-request-name"
    try:
        st, _, d = S.explain(f"k=2&npy=1&inline=0&name={marker}")
        C.ok(st == 200, f"no-files: explain by URL {st}")
        for u in list(d.get("url", {}).values()) + [u for m in d.get("maps", []) for u in m.get("url", {}).values()]:
            S.request("GET", u)
        jpg = io.BytesIO()
        Image.open(DEMO_PICTURE).convert("RGB").save(jpg, "JPEG", quality=90)
        C.ok(S.explain(f"k=1&name={marker}2", jpg.getvalue(), "image/jpeg")[0] == 200, "no-files: JPEG")
        body = (b"--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"/etc/" + marker.encode() +
                b".png\"\r\nContent-Type: image/png\r\n\r\n" + PIC + b"\r\n--B--\r\n")
        C.ok(S.explain("k=1", body, "multipart/form-data; boundary=B")[0] == 200, "no-files: multipart")
        for name in ("../" + marker, "/tmp/" + marker, ".."):
            st, _, d = S.explain("name=" + name.replace("/", "%2F"))
            C.ok(st == 400 and "error" in d, f"no-files: name={name!r} refused: {st}")
        C.ok(S.explain("", os.urandom(4000))[0] == 400, "no-files: garbage")
        C.ok(S.explain("feed=/etc/passwd")[0] == 400, "no-files: a file option refused")
    finally:
        # SIGTERM to the server itself: strace, sent one, would detach and leave it running
        kids = open(f"/proc/{S.proc.pid}/task/{S.proc.pid}/children").read().split()
        if kids:
            os.kill(int(kids[0]), signal.SIGTERM)
        try:
            S.proc.wait(120)
        except subprocess.TimeoutExpired:
            pass
        C.ok(kids and S.stop(timeout=30) == 0, "no-files server exit 0 (strace gives its exit status)")
    lines = open(trace, errors="replace").read().splitlines()
    start = next((i for i, l in enumerate(lines) if re.search(r"\blisten\(", l)), None)
    C.ok(start is not None, "no-files: the server's listen() traced")
    after = lines[(start or 0) + 1:]
    bad = [l for l in after if (re.search(r"\bopen(at)?\(", l) and WRITE_FLAGS.search(l)) or CHANGE_CALLS.match(l)
           or marker in l]
    print(f"no-files: {len(after)} path syscalls traced after listen(): {sorted(set(re.sub(r'^[0-9]+ +', '', l)[:60] for l in after))[:8]}")
    C.ok(not bad, f"no-files: syscalls touching files after listen(): {bad[:5]}")
    C.ok(os.listdir(cwd) == [], f"no-files: the working folder stays empty: {os.listdir(cwd)}")


def check_sigterm_drain():
    S = serve("--workers", "1", log="drain.log")
    out = {}

    def one(key, query):
        out[key] = S.explain(query, timeout=120)
    a = threading.Thread(target=one, args=("running", SLOW))
    a.start()
    seen = False
    b = None
    end = time.time() + 30
    while time.time() < end:
        m = metrics(S)
        if m["gradcam_workers_busy"] == 1 and b is None:
            b = threading.Thread(target=one, args=("queued", "k=1"))
            b.start()
        if m["gradcam_workers_busy"] == 1 and m["gradcam_queue_depth"] == 1:
            seen = True
            break
        time.sleep(0.02)
    C.ok(seen, "sigterm: one request explained and one queued before the signal")
    S.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    refused = False
    try:
        socket.create_connection(("127.0.0.1", S.port), timeout=5).close()
    except OSError:
        refused = True
    a.join(120)
    if b:
        b.join(120)
    rc = S.stop(timeout=120)
    C.ok(out.get("running", (0,))[0] == 200 and len(out["running"][2]["maps"]) == 18,
         f"sigterm: the request being explained answered ({out.get('running', (None,))[0]})")
    C.ok(out.get("queued", (0,))[0] == 200, f"sigterm: the queued request answered ({out.get('queued', (None,))[0]})")
    C.ok(refused, "sigterm: new connections refused while draining")
    C.ok(rc == 0, f"sigterm: exit {rc}")


check_default_body_cap()
check_results_store()
check_deadline()
check_connections()
check_metrics_exact()
check_non_loopback()
check_no_files()
check_sigterm_drain()
C.done()
