"""gradcam serve's API over loopback (http.client): every endpoint and every error, the explain
answer equal to `gradcam explain` on the same picture (every PNG and .npy byte-identical), the
token, TLS with a certificate made now, start-up refusals, and SIGTERM finishing a request.
Usage: serve_api.py GRADCAM WORKDIR"""
import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import (DEMO_ARGS, DEMO_LABELS, DEMO_MODEL, DEMO_PICTURE, Checks, Server, server_env,  # noqa: E402
                        watchdog)

watchdog(600)
GRADCAM, WORK = sys.argv[1], sys.argv[2]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
C = Checks()
PIC = open(DEMO_PICTURE, "rb").read()


def serve(*extra, log="server.log", **kw):
    return Server([GRADCAM, "serve", *DEMO_ARGS, "--port", "0", "-q", *extra], log=os.path.join(WORK, log), **kw)


def command_files(extra, out):
    """`gradcam explain` on the demo picture: its results.json record and its folder."""
    cmd = [GRADCAM, "explain", DEMO_MODEL, DEMO_PICTURE, "--labels", DEMO_LABELS, "--preprocess", "raw", "-q",
           "-o", out, *extra]
    subprocess.run(cmd, check=True, timeout=120, env=server_env())
    res = json.load(open(os.path.join(out, "results.json")))
    return res["inputs"][0]


def png_fields(rec):
    """(file name, base64) of every inline PNG of a record."""
    out = [(rec["input_image"], rec["png"]["input_image"])]
    for m in rec["maps"]:
        for kind, b64 in m.get("png", {}).items():
            out.append((m[kind], b64))
    return out


def check_identical():
    """The answer's PNGs and .npy maps are the command's files, byte for byte."""
    # the server explains with --threads 1 (its default): the command with the same split of the sums
    ref = command_files(["-k", "2", "--npy", "--threads", "1"], os.path.join(WORK, "cmd"))
    st, _, rec = S.explain("k=2&name=demo_1")
    C.ok(st == 200, f"explain: status {st}")
    C.ok(rec.get("model") == "shapes_cnn", "explain: the model named")
    C.ok(rec["predictions"] == ref["predictions"], "explain: predictions as the command's")
    C.ok(len(rec["maps"]) == len(ref["maps"]) == 6, f"explain: {len(rec['maps'])} maps")
    pngs = png_fields(rec)
    C.ok(len(pngs) == 1 + 2 * (3 + 1 + 1), f"explain: {len(pngs)} inline PNGs")
    for name, b64 in pngs:
        C.ok(base64.b64decode(b64) == open(os.path.join(WORK, "cmd", name), "rb").read(),
             f"explain: {name} differs from the command's")
    # the .npy maps by URL (inline=0 keeps every file in memory under /v1/results)
    st, _, rec = S.explain("k=2&name=demo_1&npy=1&inline=0")
    C.ok(st == 200 and "id" in rec and "png" not in rec, f"explain inline=0: {st}")
    # every file named by URL in the record ("url": {key: URL}, as docs/serve.md says), each URL the
    # command's file of that name
    prefix = f"/v1/results/{rec.get('id')}/"
    named = [(rec, "input_image")] + [(m, k) for m in rec.get("maps", [])
                                      for k in ("npy", "heatmap", "overlay", "photo", "image") if k in m]
    n = 0
    for obj, key in named:
        url = obj.get("url", {}).get(key)
        C.ok(url == prefix + obj[key], f"results: {key} {obj[key]} named by URL {url!r}")
        if not url:
            continue
        st2, h, data = S.request("GET", url)
        C.ok(st2 == 200 and data == open(os.path.join(WORK, "cmd", obj[key]), "rb").read(),
             f"results: {url}: {st2}, not the command's bytes")
        C.ok(h.get("content-type") == ("application/octet-stream" if key == "npy" else "image/png"),
             f"results: {key} content type {h.get('content-type')}")
        n += 1
    # the picture; per class Grad-CAM npy + 3 PNGs, Guided Backprop and Guided Grad-CAM npy + 1 PNG each
    C.ok(n == 1 + 2 * (4 + 2 + 2), f"results: {n} files fetched by URL")
    st, _, _ = S.request("GET", f"/v1/results/{rec['id']}/nope.png")
    C.ok(st == 404, f"results: unknown file {st}")
    st, _, _ = S.request("GET", "/v1/results/0123456789abcdef0123456789abcdef/x.png")
    C.ok(st == 404, f"results: unknown id {st}")


def multipart(field, data, ctype="image/png", boundary="XyZzY42"):
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"image.png\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def check_endpoints():
    st, h, d = S.json("GET", "/healthz")
    C.ok(st == 200 and d == {"status": "ok"}, f"healthz {st} {d}")
    st, h, page = S.request("GET", "/")
    C.ok(st == 200 and h["content-type"].startswith("text/html") and b"/v1/explain" in page, f"page {st}")
    C.ok("default-src 'none'" in h.get("content-security-policy", ""), "page: CSP keeps it to itself")
    C.ok(b"http://" not in page and b"https://" not in page, "page: nothing fetched from elsewhere")
    st, _, d = S.json("GET", "/v1/models")
    m = d["models"][0]
    C.ok(st == 200 and m["name"] == "shapes_cnn", f"models {st}")
    C.ok(m["labels"] == open(DEMO_LABELS).read().split(), "models: labels")
    C.ok(m["default_layers"] == ["/block5/block5.2/Relu_output_0"], f"models: default layer {m['default_layers']}")
    C.ok("/block3/block3.2/Relu_output_0" in m["layers"], "models: usable layers")
    C.ok(m["inputs"][0]["shape"] == ["batch", 3, 128, 128] and m["outputs"][0]["shape"] == ["batch", 6],
         "models: shapes")
    C.ok("gradcam" in m["methods"] and m["explain"]["options"]["preprocess"] == "raw", "models: methods, options")
    st, h, text = S.request("GET", "/metrics")
    C.ok(st == 200 and b"gradcam_requests_total{code=\"200\"}" in text and b"gradcam_queue_depth" in text
         and b"gradcam_workers_busy" in text and b"gradcam_request_duration_seconds_bucket" in text, "metrics")
    st, _, _ = S.request("HEAD", "/healthz")
    C.ok(st == 200, f"HEAD healthz {st}")


def check_inputs():
    body, ct = multipart("image", PIC)
    st, _, a = S.explain("k=2&name=demo_1", body, ct)
    st0, _, b = S.explain("k=2&name=demo_1")
    C.ok(st == 200 and png_fields(a) == png_fields(b), f"multipart: {st}, same maps as a raw body")
    jpg = io.BytesIO()
    Image.open(DEMO_PICTURE).convert("RGB").save(jpg, "JPEG", quality=95)
    st, _, a = S.explain("", jpg.getvalue(), "image/jpeg")
    C.ok(st == 200 and a["predictions"][0]["label"] in ("circle", "ring"), f"jpeg: {st}")
    st, _, a = S.explain("classes=ring&methods=gradcam&layer=/block4/block4.2/Relu_output_0")
    C.ok(st == 200 and len(a["maps"]) == 1 and a["maps"][0]["class"]["label"] == "ring"
         and a["maps"][0]["layer"] == "/block4/block4.2/Relu_output_0", f"class by name, layer: {st}")
    st, _, a = S.explain("model=shapes_cnn&classes=1,3&methods=hirescam,guided-backprop&colormap=viridis&alpha=0.3")
    C.ok(st == 200 and len(a["maps"]) == 4, f"classes by index, methods, colormap: {st}")


def check_errors():
    def err(query, want, what, body=PIC, ctype="image/png", method="POST", path="/v1/explain"):
        st, h, d = S.json(method, path + ("?" + query if query else ""), body, {"Content-Type": ctype})
        C.ok(st == want and isinstance(d.get("error"), str) and d["error"], f"{what}: {st} {d}")
        return h, d
    err("methods=nosuch", 400, "unknown method")
    err("k=abc", 400, "bad k")
    err("k=0", 400, "k 0")
    err("classes=unicorn", 400, "unknown class")
    err("classes=99", 400, "class out of range")
    err("layer=/no/such", 400, "unknown layer")
    err("alpha=7", 400, "alpha out of range")
    err("colour=red", 400, "unknown query parameter")
    err("model=other", 400, "unknown model")
    err("feed=x.npy", 400, "a file option")
    err("inline=maybe", 400, "bad inline")
    err("", 400, "undecodable picture", body=b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    err("", 400, "random bytes", body=os.urandom(3000))
    err("", 400, "empty body", body=b"")
    err("", 415, "text body", ctype="text/plain")
    body, ct = multipart("picture", PIC)
    err("", 400, "multipart without 'image'", body=body, ctype=ct)
    err("", 400, "multipart cut short", body=body[:len(body) // 2], ctype=ct)
    h, _ = err("", 405, "GET explain", method="GET", body=None)
    C.ok(h.get("allow") == "POST", "405 names POST")
    h, _ = err("", 405, "POST healthz", path="/healthz")
    C.ok(h.get("allow") == "GET, HEAD", "405 names GET")
    err("", 404, "unknown path", method="GET", path="/v2/nothing", body=None)
    st, _, _ = S.request("DELETE", "/v1/models")
    C.ok(st == 405, f"DELETE models {st}")
    C.ok(S.alive(), "alive after the errors")


def check_limits():
    L = serve("--max-body", "30K", "--max-pixels", "10000", log="limits.log")
    try:
        st, h, d = L.explain("", b"\0" * 40000)
        C.ok(st == 413 and "max-body" in d["error"], f"413 body: {st} {d}")
        st, h, d = L.explain("")
        C.ok(st == 413 and "max-pixels" in d["error"], f"413 pixels: {st} {d}")
        line = L.post_expect("/v1/explain", b"\0" * (4 << 20))
        C.ok(line.startswith("HTTP/1.1 413"), f"413 before a large body is sent (Expect: 100-continue): {line!r}")
        line = L.post_expect("/v1/explain?k=1", b"not a picture" * 100)
        C.ok(line.startswith("HTTP/1.1 400"), f"100-continue then the body: {line!r}")
        small = io.BytesIO()
        Image.open(DEMO_PICTURE).resize((64, 64)).save(small, "PNG")
        st, _, d = L.explain("", small.getvalue())
        C.ok(st == 200, f"under the limits: {st}")
        # a chunked body over the cap (no Content-Length): read, then 413
        c = L.conn()
        c.putrequest("POST", "/v1/explain")
        c.putheader("Content-Type", "image/png")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        for _ in range(5):
            c.send(b"2000\r\n" + b"\0" * 0x2000 + b"\r\n")
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        C.ok(r.status == 413, f"413 chunked: {r.status}")
        c.close()
        C.ok(L.alive(), "alive after 413s")
    finally:
        C.ok(L.stop() == 0, "limits server exit 0")


def check_token():
    tok = os.path.join(WORK, "token")
    secret = "s3cret-token-0123456789abcdef"
    open(tok, "w").write(secret + "\n")
    T = serve("--token-file", tok, log="token.log")
    try:
        C.ok(T.alive(), "token: /healthz open")
        st, _, _ = T.request("GET", "/")
        C.ok(st == 200, "token: the page open (it holds no data and asks for the token)")
        for what, auth in [("missing", None), ("wrong", "Bearer " + "x" * len(secret)),
                           ("truncated", "Bearer " + secret[:-1]), ("longer", "Bearer " + secret + "0"),
                           ("no scheme", secret), ("basic", "Basic " + secret), ("empty", "")]:
            h = {} if auth is None else {"Authorization": auth}
            for path in ("/v1/models", "/metrics"):
                st, hd, d = T.json("GET", path, headers=h)
                C.ok(st == 401 and hd.get("www-authenticate", "").startswith("Bearer") and "error" in d,
                     f"token {what} {path}: {st}")
            st, _, _ = T.explain("", headers=h)
            C.ok(st == 401, f"token {what} explain: {st}")
        good = {"Authorization": "Bearer " + secret}
        st, _, _ = T.json("GET", "/v1/models", headers=good)
        C.ok(st == 200, f"token right: models {st}")
        st, _, d = T.explain("inline=0", headers=good)
        C.ok(st == 200, f"token right: explain {st}")
        url = f"/v1/results/{d['id']}/{d['input_image']}"
        C.ok(T.request("GET", url)[0] == 401 and T.request("GET", url, headers=good)[0] == 200, "token: results")
    finally:
        C.ok(T.stop() == 0, "token server exit 0")
    short = os.path.join(WORK, "short")
    open(short, "w").write("abc\n")
    r = subprocess.run([GRADCAM, "serve", *DEMO_ARGS, "--token-file", short, "--port", "0"], capture_output=True,
                       timeout=60, env=server_env())
    C.ok(r.returncode == 3 and b"shorter than 16" in r.stderr, f"short token refused: {r.returncode}")


def check_tls():
    key, cert, tmpl = (os.path.join(WORK, n) for n in ("key.pem", "cert.pem", "cert.cfg"))
    open(tmpl, "w").write('cn = "127.0.0.1"\nip_address = "127.0.0.1"\nexpiration_days = 2\ntls_www_server\n'
                          'signing_key\nencryption_key\nca\ncert_signing_key\n')
    subprocess.run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile", key], check=True,
                   capture_output=True, timeout=60)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key, "--template", tmpl, "--outfile", cert],
                   check=True, capture_output=True, timeout=60)
    T = serve("--tls-cert", cert, "--tls-key", key, log="tls.log", tls_ca=cert)
    try:
        C.ok(T.scheme == "https", "tls: https in the listening line")
        C.ok(T.alive(), "tls: healthz")
        st, _, d = T.explain("k=2&name=demo_1")
        C.ok(st == 200 and len(d["maps"]) == 6, f"tls: explain {st}")
        # plain HTTP on the TLS port: no answer as HTTP, and the server goes on
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", T.port, timeout=10)
        try:
            c.request("GET", "/healthz")
            plain = c.getresponse().status
        except Exception:
            plain = None
        c.close()
        C.ok(plain != 200, f"tls: plain HTTP refused ({plain})")
        C.ok(T.alive(), "tls: alive after a plain-HTTP client")
    finally:
        C.ok(T.stop() == 0, "tls server exit 0")


def check_startup():
    def run(args, want, text, env=None):
        r = subprocess.run([GRADCAM, "serve", *args], capture_output=True, timeout=120, env=env or server_env())
        C.ok(r.returncode == want and text.encode() in r.stderr and r.stderr.count(b"\n") <= 2,
             f"serve {' '.join(args)}: exit {r.returncode}, {r.stderr[-300:]!r}")
    run(["--port", "0"], 2, "no MODEL")
    run(["--labels", DEMO_LABELS, DEMO_MODEL], 2, "after its MODEL")
    run([*DEMO_ARGS, "--host", "0.0.0.0", "--port", "0"], 2, "--token-file")
    run([*DEMO_ARGS, "--bogus"], 2, "unknown option")
    run([*DEMO_ARGS, "--workers", "0"], 2, "--workers")
    run([DEMO_MODEL, "--preprocess", "sideways"], 2, "sideways")
    run([os.path.join(WORK, "missing.onnx")], 3, "missing.onnx")
    run([*DEMO_ARGS, DEMO_MODEL], 2, "two models named")
    run([*DEMO_ARGS, "--tls-cert", "x.pem"], 2, "--tls-key")
    r = subprocess.run([GRADCAM, "serve", "--help"], capture_output=True, timeout=30)
    C.ok(r.returncode == 0 and b"--token-file" in r.stdout and b"--preprocess" in r.stdout, "serve --help")


def check_two_models():
    M = Server([GRADCAM, "serve", *DEMO_ARGS, DEMO_MODEL, "--name", "second", "--preprocess", "raw", "-m", "hirescam",
                "--port", "0", "-q"], log=os.path.join(WORK, "two.log"))
    try:
        st, _, d = M.json("GET", "/v1/models")
        C.ok([m["name"] for m in d["models"]] == ["shapes_cnn", "second"], "two models listed")
        st, _, d = M.explain("")
        C.ok(st == 400 and "model=" in d["error"], f"two models: model needed {st}")
        st, _, d = M.explain("model=second")
        C.ok(st == 200 and [m["method"] for m in d["maps"]] == ["hirescam"], f"two models: the second's defaults {st}")
    finally:
        C.ok(M.stop() == 0, "two-model server exit 0")


def check_reexec():
    env = server_env()
    env.pop("OMP_WAIT_POLICY", None)
    R = Server([GRADCAM, "serve", *DEMO_ARGS, "--port", "0", "-q"], env=env, log=os.path.join(WORK, "reexec.log"))
    try:
        environ = open(f"/proc/{R.proc.pid}/environ", "rb").read().split(b"\0")
        C.ok(b"OMP_WAIT_POLICY=passive" in environ, "re-executed with OMP_WAIT_POLICY=passive")
    finally:
        rc = R.stop()
        C.ok(rc == 0, f"re-executed server exit {rc}")


def check_sigterm():
    """SIGTERM while a request is being explained: it is answered, then exit 0."""
    T = serve("--workers", "1", log="sigterm.log")
    out = {}

    def slow():
        out["r"] = T.explain("k=6&methods=all", timeout=120)
    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)
    T.proc.send_signal(signal.SIGTERM)
    th.join(150)
    rc = T.stop()
    C.ok("r" in out and out["r"][0] == 200 and len(out["r"][2]["maps"]) > 6, "sigterm: the request in flight answered")
    C.ok(rc == 0, f"sigterm: exit {rc}")


S = serve()
try:
    check_endpoints()
    check_identical()
    check_inputs()
    check_errors()
    text = S.settled_metrics()
    C.ok(b"gradcam_requests_total{code=\"400\"}" in text and b"gradcam_requests_total{code=\"415\"}" in text,
         "metrics count the errors")
finally:
    C.ok(S.stop() == 0, "server exit 0")
check_limits()
check_token()
check_tls()
check_startup()
check_two_models()
check_reexec()
check_sigterm()
C.done()
