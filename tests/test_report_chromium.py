#!/usr/bin/python3
"""report.html in a real browser: Debian's headless Chromium, driven over the DevTools protocol
on a pipe (--remote-debugging-pipe: no port, no network, no npm).

Usage: test_report_chromium.py GRADCAM WORKDIR [CHROMIUM]

Runs `gradcam explain` on the fixtures of test_cli.py (made if missing) with a batch holding a
corrupt file and a file name full of HTML and JSON specials, opens WORKDIR/report/report.html at
a laptop's 1366x768, and checks: every <img> decoded (naturalWidth > 0) and is a data: URI, no
request left the page (every URL file: or data:), no script, the sections / prediction tables /
rows / panels in the order of the Grad-CAM paper's Figure 1, the file names shown as text
(escaped), the failure listed, no horizontal scrolling, and the localisation box from
results.json drawn on the Grad-CAM panel. Screenshots: WORKDIR/report_screenshot.png (the first
screen) and WORKDIR/report_fullpage.png.
"""
import base64
import fcntl
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import Checks  # noqa: E402
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
check = Checks('FAIL: ')


class Chromium:
    """A headless Chromium and one page, spoken to in CDP messages (JSON, NUL-terminated) on
    fds 3 (commands in) and 4 (replies and events out)."""

    def __init__(self, exe, profile, log):
        cmd_r, self.cmd_w = os.pipe()
        self.out_r, out_w = os.pipe()
        # the child must see them as exactly fds 3 and 4: move them out of the way first
        hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(out_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_r)
        os.close(out_w)

        def child_fds():
            os.dup2(hi_r, 3)  # dup2 clears close-on-exec on the copy
            os.dup2(hi_w, 4)

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--no-default-browser-check",
                 "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank"]
        self.p = subprocess.Popen([exe] + flags, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  close_fds=False, preexec_fn=child_fds)
        os.close(hi_r)
        os.close(hi_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            r, _, _ = select.select([self.out_r], [], [], left)
            if r:
                chunk = os.read(self.out_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the pipe (exit %r)" % self.p.poll())
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None, timeout=60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method, timeout=60):
        deadline = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        os.close(self.cmd_w)
        os.close(self.out_r)


PAGE_FACTS = r"""
(() => {
  const imgs = Array.from(document.images);
  const text = el => (el ? el.textContent : null);
  return JSON.stringify({
    title: document.title,
    scripts: document.scripts.length,
    n_img: imgs.length,
    not_loaded: imgs.filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)).map(i => i.alt),
    non_data: imgs.filter(i => !i.src.startsWith('data:image/png;base64,')).length,
    links: Array.from(document.querySelectorAll('link,iframe,object,embed,video,audio')).length,
    sections: Array.from(document.querySelectorAll('section.input')).map(s => ({
      path: text(s.querySelector('h2')),
      preds: Array.from(s.querySelectorAll('table.preds tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent)),
      rows: Array.from(s.querySelectorAll('div.row')).map(r => ({
        title: text(r.querySelector('h3')),
        panels: Array.from(r.querySelectorAll('figure')).map(f => ({
          title: f.querySelector('figcaption').firstChild.textContent,
          w: f.querySelector('img') ? f.querySelector('img').naturalWidth : 0,
          h: f.querySelector('img') ? f.querySelector('img').naturalHeight : 0,
          shown: f.querySelector('img') ? Math.round(f.querySelector('img').getBoundingClientRect().width) : 0,
        })),
      })),
    })),
    failures: Array.from(document.querySelectorAll('section.failures li')).map(l => l.textContent),
    scroll_w: document.documentElement.scrollWidth,
    inner_w: window.innerWidth,
    body_font_px: parseFloat(getComputedStyle(document.body).fontSize),
    resources: performance.getEntriesByType('resource').map(e => e.name),
  });
})()
"""


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    gradcam, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    exe = sys.argv[3] if len(sys.argv) > 3 else "/usr/bin/chromium"
    if not os.access(exe, os.X_OK):
        print("FAIL: %s not found: install Debian's 'chromium' package (deps/debian-packages.txt)" % exe)
        return 1
    os.makedirs(work, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(HERE, "test_cli.py"), "fixtures", work], check=True,
                   stdout=subprocess.DEVNULL)
    fx = os.path.join(work, "fixtures")

    # inputs: two photos (one with a name made of specials), a corrupt file
    inputs = os.path.join(work, "report_inputs")
    shutil.rmtree(inputs, ignore_errors=True)
    os.makedirs(inputs)
    odd = "<i onclick=x>bold & \"q\" 'cat'<i>.png"
    shutil.copy(os.path.join(fx, "photo.png"), os.path.join(inputs, "a_photo.png"))
    shutil.copy(os.path.join(fx, "batch", "b.JPG"), os.path.join(inputs, odd))
    shutil.copy(os.path.join(fx, "batch", "corrupt.jpg"), os.path.join(inputs, "z_corrupt.jpg"))
    out = os.path.join(work, "report")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [gradcam, "explain", os.path.join(fx, "r18.onnx"), inputs, "-k", "2", "-m",
           "gradcam,guided-backprop,guided-gradcam,gradcam++,gradient", "-o", out, "--threads", "1", "-q"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    check(p.returncode == 3 and "z_corrupt.jpg" in p.stderr, "explain with a corrupt input: exit 3 (%d %r)" % (p.returncode, p.stderr))
    page = os.path.join(out, "report.html")
    if not check(os.path.isfile(page), "report.html written"):
        return 1
    html = open(page, encoding="utf-8").read()
    res = json.load(open(os.path.join(out, "results.json")))
    check("<script" not in html and "<i onclick" not in html, "no script element, no markup from a file name")
    check(not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html), "no external resource referenced")
    check("&lt;i onclick=x&gt;bold &amp; &quot;q&quot; &#39;cat&#39;&lt;i&gt;.png" in html, "file name escaped in HTML")

    profile = tempfile.mkdtemp(prefix="gcam-chromium-")
    log = open(os.path.join(work, "chromium.log"), "wb")
    br = Chromium(exe, profile, log)
    try:
        target = br.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sess = br.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        br.send("Page.enable", session=sess)
        br.send("Network.enable", session=sess)
        br.send("Emulation.setDeviceMetricsOverride",
                {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False}, session=sess)
        br.events.clear()
        br.send("Page.navigate", {"url": "file://" + page}, session=sess)
        br.wait_event("Page.loadEventFired", timeout=120)
        time.sleep(0.5)
        facts = json.loads(br.send("Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True},
                                   session=sess)["result"]["value"])
        urls = [e["params"]["request"]["url"] for e in br.events if e.get("method") == "Network.requestWillBeSent"]
        shot = br.send("Page.captureScreenshot", {"format": "png"}, session=sess)["data"]
        with open(os.path.join(work, "report_screenshot.png"), "wb") as f:
            f.write(base64.b64decode(shot))
        metrics = br.send("Page.getLayoutMetrics", session=sess)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        full = br.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                  "clip": {"x": 0, "y": 0, "width": 1366,
                                                           "height": min(size["height"], 8000), "scale": 1}},
                       session=sess, timeout=120)["data"]
        with open(os.path.join(work, "report_fullpage.png"), "wb") as f:
            f.write(base64.b64decode(full))
    finally:
        br.close()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)

    # ---- what the browser saw ----
    check(facts["scripts"] == 0 and facts["links"] == 0, "no scripts, no embedded external objects")
    check(facts["n_img"] > 0 and facts["not_loaded"] == [], "every <img> decoded (%d images; not loaded: %r)" % (
        facts["n_img"], facts["not_loaded"]))
    check(facts["non_data"] == 0, "every image is an inline PNG data URI")
    check(all(u.startswith(("file:", "data:")) for u in urls + facts["resources"]),
          "no request leaves the page: %r" % [u[:60] for u in urls + facts["resources"]][:5])
    check(facts["scroll_w"] <= facts["inner_w"], "no horizontal scrolling at 1366 px (%d)" % facts["scroll_w"])
    check(facts["body_font_px"] >= 14, "body text at least 14 px (%r)" % facts["body_font_px"])
    secs = facts["sections"]
    want_paths = sorted([os.path.join(inputs, "a_photo.png"), os.path.join(inputs, odd)])
    check([s["path"] for s in secs] == want_paths == [i["path"] for i in res["inputs"]],
          "one section per explained input, the file names as text: %r" % [s["path"] for s in secs])
    check(len(facts["failures"]) == 1 and "z_corrupt.jpg" in facts["failures"][0], "the failure listed: %r" % facts["failures"])
    order = ["Model input", "Guided Backprop", "Grad-CAM", "Guided Grad-CAM", "Grad-CAM++", "Gradient", "Grad-CAM on the photo"]
    for s, r in zip(secs, res["inputs"]):
        check(len(s["preds"]) == 5, "%s: 5 predictions in the table" % s["path"])
        if s["preds"]:
            top = r["predictions"][0]
            check(s["preds"][0][1] == str(top["index"]) and s["preds"][0][2] == top["label"],
                  "prediction row matches results.json: %r" % s["preds"][0])
        check(len(s["rows"]) == 2, "%s: one row per explained class" % s["path"])
        for row, cls in zip(s["rows"], [m["class"] for m in r["maps"][::5]]):
            check(row["title"].startswith("class %d" % cls["index"]) and cls["label"] in row["title"],
                  "row title names the class: %r" % row["title"])
            check([q["title"] for q in row["panels"]] == order, "panels in Figure 1 order: %r" % [q["title"] for q in row["panels"]])
            for q in row["panels"][:-1]:
                check((q["w"], q["h"]) == (224, 224), "%s panel is the 224x224 model view (%r)" % (q["title"], (q["w"], q["h"])))
            check(all(150 <= q["shown"] <= 400 for q in row["panels"]), "panels shown at a readable size: %r" %
                  [q["shown"] for q in row["panels"]])

    # ---- the box on the Grad-CAM panel (decoded from the page itself) ----
    figs = re.findall(r'<figure><img[^>]*alt="([^"]*)" src="data:image/png;base64,([^"]+)">', html)
    gc_panels = [b for alt, b in figs if alt == "Grad-CAM"]
    gc_maps = [m for r in res["inputs"] for m in r["maps"] if m["method"] == "gradcam"]
    check(len(gc_panels) == len(gc_maps) == 4, "one Grad-CAM panel per map (%d, %d)" % (len(gc_panels), len(gc_maps)))
    for b64, m in zip(gc_panels, gc_maps):
        img = np.array(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")).astype(int)
        box = m["box"]
        if not check(box is not None, "Grad-CAM map has a box"):
            continue
        green = np.array([0, 230, 64])
        edge = np.concatenate([img[box["y0"], box["x0"]:box["x1"] + 1], img[box["y1"], box["x0"]:box["x1"] + 1],
                               img[box["y0"]:box["y1"] + 1, box["x0"]], img[box["y0"]:box["y1"] + 1, box["x1"]]])
        check((np.abs(edge - green).max(axis=1) <= 2).mean() > 0.99, "box %r drawn in green on the Grad-CAM panel" % box)
        overlay = np.array(Image.open(os.path.join(out, m["overlay"])).convert("RGB")).astype(int)
        inside = (slice(box["y0"] + 3, box["y1"] - 2), slice(box["x0"] + 3, box["x1"] - 2))
        check(np.array_equal(img[inside], overlay[inside]), "the panel is the overlay written to disk (inside the box)")

    print("screenshots: %s, %s" % (os.path.join(work, "report_screenshot.png"), os.path.join(work, "report_fullpage.png")))
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
