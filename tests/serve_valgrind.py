"""A short `gradcam serve` session under valgrind (memcheck): start, every endpoint, explains
(inline and by URL), errors (bad option, undecodable picture, 404, 405, 413), a client that
leaves mid-request, then SIGTERM. Any memory error, or a definite or indirect leak, fails.
OMP_WAIT_POLICY is set so that the server does not re-execute itself out of valgrind's hands;
one worker, one thread (valgrind serialises threads anyway).
Usage: serve_valgrind.py GRADCAM WORKDIR"""
import os
import re
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import DEMO_ARGS, Checks, Server, server_env, watchdog  # noqa: E402

watchdog(900)
GRADCAM, WORK = sys.argv[1], sys.argv[2]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
C = Checks()
if not shutil.which("valgrind"):
    print("FAIL: valgrind is not installed (apt-get install valgrind)")
    sys.exit(1)
env = server_env({"OMP_WAIT_POLICY": "passive", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
# valgrind runs no AVX-512 (see tests/valgrind_explain.sh)
if env.get("OPENBLAS_CORETYPE", "").lower() in ("skylakex", "cooperlake", "sapphirerapids"):
    env["OPENBLAS_CORETYPE"] = "Haswell"
log = os.path.join(WORK, "valgrind.log")
S = Server(["valgrind", "--tool=memcheck", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect", "--error-exitcode=99", f"--log-file={log}",
            GRADCAM, "serve", *DEMO_ARGS, "--port", "0", "-q", "--workers", "1", "--max-body", "1M"],
           env=env, start_timeout=600, log=os.path.join(WORK, "server.log"))
try:
    C.ok(S.alive(), "healthz")
    for path in ("/", "/v1/models", "/metrics"):
        C.ok(S.request("GET", path, timeout=120)[0] == 200, f"GET {path}")
    st, _, d = S.explain("k=2", timeout=300)
    C.ok(st == 200, f"explain {st}")
    st, _, d = S.explain("k=1&inline=0&npy=1", timeout=300)
    C.ok(st == 200 and S.request("GET", f"/v1/results/{d['id']}/{d['input_image']}", timeout=60)[0] == 200,
         f"explain by URL {st}")
    C.ok(S.explain("methods=nosuch", timeout=120)[0] == 400, "bad option")
    C.ok(S.explain("", b"\x89PNG\r\n\x1a\nbroken" * 9, timeout=120)[0] == 400, "undecodable picture")
    line = S.post_expect("/v1/explain", b"\0" * (2 << 20), timeout=120)
    C.ok(line.startswith("HTTP/1.1 413"), f"413: {line!r}")
    C.ok(S.request("GET", "/nope", timeout=60)[0] == 404, "404")
    C.ok(S.request("GET", "/v1/explain", timeout=60)[0] == 405, "405")
    s = socket.create_connection(("127.0.0.1", S.port), timeout=30)
    pic = open(os.path.join(os.path.dirname(DEMO_ARGS[0]), "images", "demo_2.png"), "rb").read()
    s.sendall(b"POST /v1/explain HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n"
              % len(pic) + pic)
    s.close()
    time.sleep(2)
    C.ok(S.alive(), "alive after a client left")
finally:
    rc = S.stop(timeout=300)
text = open(log).read() if os.path.exists(log) else ""
m = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
errors = int(m[-1]) if m else -1
print(f"valgrind: exit {rc}, {errors} errors (log {log})")
for line in text.splitlines():
    if "definitely lost" in line or "indirectly lost" in line:
        print(line)
C.ok(rc == 0 and errors == 0, "valgrind: exit 0, no error and no definite/indirect leak")
if rc != 0 or errors != 0:
    print("\n".join(text.splitlines()[-80:]))
C.done()
