#!/usr/bin/python3
"""report.html of large runs (issue #23): the linked page in real headless Chromium (Selenium and
Debian's chromium-driver), its size per input, the command's peak RSS, and small runs still embedded.

Usage: report_link.py GRADCAM WORKDIR [N]   (N inputs, default 1000)

A tiny seeded CNN (report_link_model.py) explains N 32x32 pictures plus a corrupt file and a file
named with HTML specials, top-2, Grad-CAM / Guided Backprop / Guided Grad-CAM (-q; default
--report auto, so linked past 20 inputs). Checked:
  - exit 3 (the corrupt file), no temporary file left, report.html names no data: URI;
  - size: (bytes of the N-input page - bytes of a 4-input linked page) / (N - 4) <= 400;
  - peak RSS (ru_maxrss, run_rss) of the N-input run within 4 MB of the 4-input run's;
  - in Chromium: 50 sections on page 1 of ceil((N + 1) / 50), in results.json's order; every <img>
    of the page decodes (naturalWidth > 0, scrolled into view: they load lazily) from a relative
    file beside the page that results.json names for that input and panel; the Grad-CAM box drawn
    where results.json says; the right arrow key, the Next and Last buttons (Enter) and the page
    number field (typed, Enter) page as they should, the left arrow back; Find narrows to the file
    with specials, and to the inputs explaining a class; the failure listed; no console error;
  - the folder moved elsewhere: the page still shows its pictures (relative names);
  - a 4-input run with --report auto is embedded as before: every picture a data: URI, no script;
  - the bundled detector and segmenter with --report link: every picture decodes; detections listed
    and boxed on STEM_picture.png, each row's box drawn over the model input; segments' tinted views
    from STEM_TAG_segment.png.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checks import Checks  # noqa: E402
from chromium import chromium  # noqa: E402
import report_link_model  # noqa: E402

check = Checks('FAIL: ')
ODD = "<b onclick=x>odd & 'name' \"q\"<b>.png"
ARGS = ["-k", "2", "-m", "gradcam,guided-backprop,guided-gradcam", "-q", "--threads", "1"]


# The command's peak RSS: ru_maxrss from wait4 in a small launcher (a child keeps its parent's
# ru_maxrss across exec as a floor: this test's own, with Chromium's driver loaded, is ~60 MB; a bare
# interpreter's ~10 MB is below any gradcam run's). Prints "maxrss KB" last; exits as the command.
LAUNCH = ("import os, sys\n"
          "pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)\n"
          "_, st, ru = os.wait4(pid, 0)\n"
          "print('maxrss', ru.ru_maxrss, flush=True)\n"
          "sys.exit(os.waitstatus_to_exitcode(st))\n")


def run_rss(gradcam, model, inputs, out, extra=()):
    """The command's exit status, peak RSS (KB) and stderr."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [gradcam, "explain", model] + inputs + ["--labels", os.path.join(os.path.dirname(model), "labels.txt"),
                                                  "-o", out] + ARGS + list(extra)
    p = subprocess.run(["/usr/bin/python3", "-S", "-c", LAUNCH] + cmd, capture_output=True, text=True)
    last = p.stdout.strip().split("\n")[-1].split()
    return p.returncode, int(last[1]) if last[:1] == ["maxrss"] else -1, p.stderr




PAGE = """
const secs = Array.from(document.querySelectorAll('section.input'));
return {
  page: +document.documentElement.getAttribute('data-page'),
  pages: document.getElementById('gc-pages').textContent,
  count: document.getElementById('gc-count').textContent,
  paths: secs.map(s => s.querySelector('h2').textContent),
  n_img: document.images.length,
  failures: Array.from(document.querySelectorAll('section.failures li')).map(l => l.textContent),
  scroll_w: document.documentElement.scrollWidth, inner_w: window.innerWidth,
};
"""

# every image of the page scrolled into view, then the ones not decoded
IMAGES = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
let i = 0;
function step() {
  if (i < imgs.length) { imgs[i].scrollIntoView(); i += 5; setTimeout(step, 20); return; }
  const t0 = performance.now();
  (function wait() {
    const bad = imgs.filter(m => !(m.complete && m.naturalWidth > 0));
    if (!bad.length || performance.now() - t0 > 30000)
      done({n: imgs.length, bad: bad.map(m => m.getAttribute('src')), srcs: imgs.map(m => m.getAttribute('src')),
            alts: imgs.map(m => m.alt)});
    else setTimeout(wait, 100);
  })();
}
step();
"""

BOXES = """
return Array.from(document.querySelectorAll('section.input')).map(s => Array.from(s.querySelectorAll('div.row')).map(r => {
  const f = Array.from(r.querySelectorAll('figure')).find(f => f.querySelector('img') && f.querySelector('img').alt === 'Grad-CAM');
  const b = f && f.querySelector('.box');
  return b ? [b.style.left, b.style.top, b.style.width, b.style.height, f.querySelector('small').textContent] : null;
}));
"""


def wait_page(d, n):
    WebDriverWait(d, 60).until(lambda d: d.execute_script("return +document.documentElement.getAttribute('data-page')") == n)


def browse(d, page, res, out, n_inputs):
    d.get("file://" + page)
    WebDriverWait(d, 120).until(lambda d: d.execute_script("return document.documentElement.getAttribute('data-ready')"))
    f = d.execute_script(PAGE)
    order = [i["path"] for i in res["inputs"]]
    pages = -(-len(order) // 50)
    check(f["page"] == 1 and f["pages"] == "of %d" % pages, "page 1 of %d: %r %r" % (pages, f["page"], f["pages"]))
    check(f["paths"] == order[:50], "page 1: the first 50 inputs in results.json's order (%d shown)" % len(f["paths"]))
    check(f["count"] == "inputs 1\u201350 of %d" % len(order), "count: %r" % f["count"])
    check(len(f["failures"]) == 1 and "zz_corrupt.png" in f["failures"][0], "the failure listed: %r" % f["failures"])
    check(f["scroll_w"] <= f["inner_w"], "no horizontal scrolling (%d > %d)" % (f["scroll_w"], f["inner_w"]))
    d.set_script_timeout(120)
    im = d.execute_async_script(IMAGES)
    check(im["n"] == 50 * 10 and not im["bad"], "page 1: all %d images decoded (not: %r)" % (im["n"], im["bad"][:5]))
    check(all(s and not s.startswith(("data:", "/", "file:", "http")) and os.path.isfile(os.path.join(out, s))
              for s in im["srcs"]), "every image a relative name of a file beside the page")
    # the files results.json names, panel by panel (Model input, Guided Backprop, Grad-CAM, Guided Grad-CAM, photo)
    want = []
    for rec in res["inputs"][:50]:
        m = {x["method"]: x for x in rec["maps"][0:3]}, {x["method"]: x for x in rec["maps"][3:6]}
        for row in m:
            want += [rec["input_image"], row["guided-backprop"]["image"], row["gradcam"]["overlay"],
                     row["guided-gradcam"]["image"], row["gradcam"]["photo"]]
    check(im["srcs"] == want, "the pictures are the files results.json names: %r" %
          [(a, b) for a, b in zip(im["srcs"], want) if a != b][:3])
    boxes = d.execute_script(BOXES)
    bad = []
    for sec, rec in zip(boxes, res["inputs"][:50]):
        for got, mp in zip(sec, [x for x in rec["maps"] if x["method"] == "gradcam"]):
            b = mp["box"]
            exp = ["%g%%" % (100 * b["x0"] / 32), "%g%%" % (100 * b["y0"] / 32), "%g%%" % (100 * (b["x1"] - b["x0"] + 1) / 32),
                   "%g%%" % (100 * (b["y1"] - b["y0"] + 1) / 32)]
            if not got or [float(v[:-1]) for v in got[:4]] != [float(v[:-1]) for v in exp] or \
                    "box x %d..%d, y %d..%d" % (b["x0"], b["x1"], b["y0"], b["y1"]) not in got[4]:
                bad.append((got, exp))
    check(not bad, "the Grad-CAM box drawn and said where results.json puts it: %r" % bad[:2])

    # keyboard: arrows, buttons (Enter), the page number
    body = d.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_RIGHT)
    wait_page(d, 2)
    check(d.execute_script(PAGE)["paths"] == order[50:100], "right arrow: page 2 shows inputs 51..100")
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
    wait_page(d, 1)
    check(True, "left arrow: back to page 1")
    d.find_element(By.ID, "gc-next").send_keys(Keys.ENTER)
    wait_page(d, 2)
    check(d.switch_to.active_element.get_attribute("id") == "gc-next", "Next by keyboard: page 2, focus kept")
    d.find_element(By.ID, "gc-last").send_keys(Keys.ENTER)
    wait_page(d, pages)
    f = d.execute_script(PAGE)
    check(f["paths"] == order[(pages - 1) * 50:], "Last: the last page's %d inputs" % len(f["paths"]))
    pg = d.find_element(By.ID, "gc-page")
    pg.send_keys(Keys.CONTROL, "a")
    k = min(7, pages - 1)
    pg.send_keys(str(k), Keys.ENTER)
    wait_page(d, k)
    check(d.execute_script(PAGE)["paths"] == order[(k - 1) * 50:k * 50], "page number typed: page %d" % k)
    im = d.execute_async_script(IMAGES)
    check(not im["bad"], "page %d: its images decoded (not: %r)" % (k, im["bad"][:3]))
    # find
    fi = d.find_element(By.ID, "gc-find")
    fi.send_keys("odd & 'name'")
    WebDriverWait(d, 30).until(lambda d: len(d.execute_script(PAGE)["paths"]) == 1)
    f = d.execute_script(PAGE)
    check(f["paths"][0].endswith(ODD) and f["page"] == 1, "Find by name: the file with specials, shown as text: %r" % f["paths"])
    label = "tri<angle> & \"co\""
    n_cls = sum(1 for r in res["inputs"] if r["predictions"][0]["label"] == label or
                any(m["class"]["label"] == label for m in r["maps"]))
    fi.send_keys(Keys.CONTROL, "a")
    fi.send_keys(label)
    WebDriverWait(d, 30).until(lambda d: d.execute_script(PAGE)["count"].endswith("(%d in all)" % len(order)))
    f = d.execute_script(PAGE)
    check(f["count"].startswith("inputs 1\u2013%d of %d found" % (min(50, n_cls), n_cls)) and n_cls > 0,
          "Find by class: %d inputs predict or explain it: %r" % (n_cls, f["count"]))
    logs = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    check(not logs, "no console error: %r" % logs[:3])


SMALL = """
return Array.from(document.querySelectorAll('section.input')).map(s => ({
  dets: s.querySelectorAll('table.dets tbody tr').length,
  rects: s.querySelectorAll('.det svg rect').length,
  det_img: s.querySelector('.det img') ? s.querySelector('.det img').getAttribute('src') : null,
  rows: Array.from(s.querySelectorAll('div.row')).map(r => {
    const f = r.querySelector('figure');
    return [f.querySelector('img').getAttribute('src'), !!f.querySelector('.box')];
  }),
}));
"""


def detect_segment(d, gradcam, work):
    """The bundled detector and segmenter, linked: their own pictures written and shown."""
    ex = os.path.join(HERE, "..", "examples")
    for task, model in (("detect", "detect/shapes_detector.onnx"), ("segment", "segment/shapes_segmenter.onnx")):
        out = os.path.join(work, "link_" + task)
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.run([gradcam, "explain", os.path.join(ex, model), os.path.join(ex, task, "images"), "--task", task,
                            "--labels", os.path.join(ex, task, "labels.txt"), "-o", out, "-q", "--report", "link"],
                           capture_output=True, text=True)
        if not check(p.returncode == 0, "%s, --report link: exit 0 (%r)" % (task, p.stderr)):
            continue
        res = json.load(open(os.path.join(out, "results.json"), encoding="utf-8"))
        d.get("file://" + os.path.join(out, "report.html"))
        WebDriverWait(d, 60).until(lambda d: d.execute_script("return document.documentElement.getAttribute('data-ready')"))
        im = d.execute_async_script(IMAGES)
        check(im["n"] > 0 and not im["bad"], "%s: every image decoded (%d; not: %r)" % (task, im["n"], im["bad"][:3]))
        secs = d.execute_script(SMALL)
        check(len(secs) == len(res["inputs"]) == 4, "%s: 4 sections" % task)
        for sec, rec in zip(secs, res["inputs"]):
            stem = os.path.basename(rec["input_image"])[:-len("_input.png")]
            if task == "detect":
                n = len(rec["detections"])
                check(sec["dets"] == sec["rects"] == n and sec["det_img"] == stem + "_picture.png",
                      "detect: %d detections listed and boxed on %s: %r" % (n, stem + "_picture.png", sec))
                check(len(sec["rows"]) == n and all(r[0] == rec["input_image"] and r[1] for r in sec["rows"]),
                      "detect: each row's model input with the detection's box drawn: %r" % sec["rows"])
            else:
                check(len(sec["rows"]) == len(rec["segments"]) > 0 and
                      all(r[0].startswith(stem + "_") and r[0].endswith("_segment.png") for r in sec["rows"]),
                      "segment: each row's tinted view from STEM_TAG_segment.png: %r" % sec["rows"])
    logs = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    check(not logs, "detect, segment: no console error: %r" % logs[:3])


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    gradcam, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    for exe in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.access(exe, os.X_OK):
            print("FAIL: %s not found: install Debian's chromium and chromium-driver (deps/debian-packages.txt)" % exe)
            return 1
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    report_link_model.main(work)
    model = os.path.join(work, "tiny.onnx")
    big = os.path.join(work, "big")
    report_link_model.pictures(big, n - 1)
    shutil.copy(os.path.join(big, "img_00000.png"), os.path.join(big, ODD))
    with open(os.path.join(big, "zz_corrupt.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really")
    small = os.path.join(work, "small")
    os.makedirs(small)
    for i in range(4):
        shutil.copy(os.path.join(big, "img_%05d.png" % i), small)

    # small runs: embedded as before (auto), or linked on request
    out4e, out4, outn = os.path.join(work, "out4e"), os.path.join(work, "out4"), os.path.join(work, "outn")
    rc, rss4e, err = run_rss(gradcam, model, [small], out4e)
    html = open(os.path.join(out4e, "report.html"), encoding="utf-8").read()
    check(rc == 0 and html.count("src=\"data:image/png;base64,") == 4 * 10 and "<script" not in html,
          "4 inputs, --report auto: embedded, no script (exit %d, %r)" % (rc, err))
    rc, rss4, err = run_rss(gradcam, model, [small], out4, ["--report", "link"])
    size4 = os.path.getsize(os.path.join(out4, "report.html"))
    check(rc == 0 and "data:image" not in open(os.path.join(out4, "report.html"), encoding="utf-8").read(),
          "4 inputs, --report link: linked (exit %d)" % rc)
    rc, _, err = run_rss(gradcam, model, [small], os.path.join(work, "bad"), ["--report", "inline"])
    check(rc == 2 and "--report" in err and "auto, embed or link" in err, "--report inline: a usage error: %r" % err)

    # the large run
    rc, rssn, err = run_rss(gradcam, model, [big], outn)
    check(rc == 3 and "zz_corrupt.png" in err, "%d inputs with a corrupt one: exit 3 (%d, %r)" % (n + 1, rc, err[-300:]))
    page = os.path.join(outn, "report.html")
    if not check(os.path.isfile(page), "report.html written"):
        return check.summary()
    sizen = os.path.getsize(page)
    per = (sizen - size4) / (n - 4)
    print("report.html: %d bytes for %d inputs, %d for 4: %.0f bytes per further input" % (sizen, n, size4, per))
    check(per <= 400, "at most 400 bytes per input (%.0f)" % per)
    check("data:image" not in open(page, encoding="utf-8").read(), "large run: no picture inline")
    check(not [f for f in os.listdir(outn) if ".tmp" in f or "inputs-" in f], "no temporary file left")
    print("peak RSS: %d KB for 4 inputs (linked), %d KB (embedded), %d KB for %d" % (rss4, rss4e, rssn, n))
    check(rssn - rss4 <= 4096, "peak RSS flat: %d inputs %d KB vs 4 inputs %d KB" % (n, rssn, rss4))
    res = json.load(open(os.path.join(outn, "results.json"), encoding="utf-8"))
    check(len(res["inputs"]) == n and len(res["failures"]) == 1, "results.json: %d inputs, 1 failure" % len(res["inputs"]))

    profile = tempfile.mkdtemp(prefix="gcam-report-")
    d = chromium(profile, "1366,900")
    try:
        browse(d, page, res, outn, n)
        # moved: relative names still resolve
        moved = os.path.join(work, "moved")
        shutil.rmtree(moved, ignore_errors=True)
        os.rename(outn, moved)
        d.get("file://" + os.path.join(moved, "report.html") + "#page=2")
        wait_page(d, 2)
        im = d.execute_async_script(IMAGES)
        check(im["n"] == 500 and not im["bad"], "moved folder, page 2 from the URL: images decoded (not: %r)" % im["bad"][:3])
        detect_segment(d, gradcam, work)
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
