"""Helpers of the `gradcam serve` tests: start a server on 127.0.0.1 with a port the system picks
(--port 0, read back from its listening line), talk to it with http.client, stop it with SIGTERM.
Every wait is bounded."""
import http.client
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEMO = os.path.join(ROOT, "examples", "demo")
DEMO_MODEL = os.path.join(DEMO, "shapes_cnn.onnx")
DEMO_LABELS = os.path.join(DEMO, "labels.txt")
DEMO_PICTURE = os.path.join(DEMO, "images", "demo_1.png")
DEMO_ARGS = [DEMO_MODEL, "--labels", DEMO_LABELS, "--preprocess", "raw"]


def watchdog(seconds):
    """The whole script dies after `seconds` (a hung server must not hang the suite)."""
    def fire(*_):
        print(f"FAIL: test still running after {seconds} s", flush=True)
        os._exit(1)
    signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)


def server_env(extra=None):
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "passive")
    if extra:
        env.update(extra)
    return env


def recv_until(s, marker, got=b""):
    """Reads socket s until marker is in what came (got: bytes already read), or the peer closes."""
    while marker not in got:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def first_line_of(got):
    """An answer's status line ('' when nothing came)."""
    return got.split(b"\r\n")[0].decode(errors="replace")


class Server:
    def __init__(self, cmd, env=None, start_timeout=120, tls_ca=None, log=None, cwd=None):
        self.log = log or "/dev/null"
        self.errf = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errf, env=env or server_env(), cwd=cwd)
        self.port = None
        self.tls_ca = tls_ca
        line = b""
        end = time.time() + start_timeout
        while time.time() < end and b"\n" not in line:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                ch = os.read(self.proc.stdout.fileno(), 1)
                if not ch:
                    break
                line += ch
            elif self.proc.poll() is not None:
                break
        text = line.decode(errors="replace")
        if "listening on" not in text:
            self.proc.kill()
            self.proc.wait(10)
            self.errf.close()
            err = open(self.log, "rb").read().decode(errors="replace")[-2000:] if self.log != "/dev/null" else ""
            raise RuntimeError(f"server did not start: {text!r} {err}")
        self.port = int(text.rsplit(":", 1)[1].strip().rstrip("/"))
        self.scheme = "https" if text.split("listening on ")[1].startswith("https") else "http"

    def conn(self, timeout=60):
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.tls_ca)
            ctx.check_hostname = False
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None, timeout=60):
        st, h, data = self.request(method, path, body, headers, timeout)
        try:
            return st, h, json.loads(data)
        except ValueError:
            raise AssertionError(f"{method} {path}: {st} not JSON: {data[:200]!r}")

    def explain(self, query="", picture=None, ctype="image/png", headers=None, timeout=60):
        if picture is None:
            picture = open(DEMO_PICTURE, "rb").read()
        h = {"Content-Type": ctype}
        h.update(headers or {})
        return self.json("POST", "/v1/explain" + (("?" + query) if query else ""), picture, h, timeout)

    def post_expect(self, path, body, ctype="image/png", timeout=30):
        """POST with 'Expect: 100-continue' (as curl does for large bodies): the body goes only
        after '100 Continue'; a refusal (413) comes instead. The final status line."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                      b"Expect: 100-continue\r\n\r\n" % (path.encode(), ctype.encode(), len(body)))
            got = recv_until(s, b"\r\n\r\n")
            status = first_line_of(got)
            if " 100 " in status + " ":
                s.sendall(body)
                status = first_line_of(recv_until(s, b"\r\n", got.split(b"\r\n\r\n", 1)[1]))
            return status
        finally:
            s.close()

    def alive(self):
        st, _, data = self.request("GET", "/healthz", timeout=10)
        return st == 200 and json.loads(data)["status"] == "ok"

    def settled_metrics(self, headers=None, tries=40):
        """/metrics once no other request is in flight: each connection's thread counts its request
        when the answer has gone out, which may be just after the client read it."""
        text = b""
        for _ in range(tries):
            _, _, text = self.request("GET", "/metrics", headers=headers)
            if b"\ngradcam_requests_in_flight 0\n" in text:
                break
            time.sleep(0.05)
        return text

    def log_tail(self, n=3000):
        try:
            return open(self.log, "rb").read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=60):
        """SIGTERM; the exit status (and the server's last words when it is not 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            rc = "killed after timeout"
        self.errf.close()
        if rc != 0:
            print(f"server exit {rc}; its stderr ends with:\n{self.log_tail()}", flush=True)
        return rc


class Checks:
    """Counts passed and failed checks; one line per failure."""
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}", flush=True)
        return cond

    def done(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def percentiles(xs, ps=(50, 90, 99)):
    s = sorted(xs)
    return {p: s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] for p in ps}
