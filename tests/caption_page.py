"""gradcam serve's page with the demo captioner and VQA model (issue #19; docs/captioning.md), in
headless Chromium driven by Selenium, the server on 127.0.0.1 with a port the system picks:
  * the captioner: the text field offered (classes hidden); the model's own caption with one row per
    word and one for the whole caption, equal to the API's answer for the same request; a row picked
    (click, Enter) shows that word's panels, and the Grad-CAM overlay differs between two words; a
    caption typed is explained teacher-forced;
  * the VQA model: no question is one clear line on the page (nothing sent); a question's answers,
    its text above them, the answers' maps drawn;
  * no console error.
Usage: caption_page.py GRADCAM WORKDIR"""
import json
import os
import shutil
import sys
import tempfile
import urllib.parse

from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(TOP, "examples", "caption"))
from chromium import chromium  # noqa: E402
from serve_util import Checks, Server, watchdog  # noqa: E402
import scenes  # noqa: E402

# a canvas's size and pixels (serve_page.py runs on import, so its helpers are not imported)
PIXELS = """
const c = document.getElementById(arguments[0]);
if (!c) return null;
return {w: c.width, h: c.height, data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)};
"""



watchdog(600)
GRADCAM, WORK = sys.argv[1], sys.argv[2]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
C = Checks()
CAP, VQA = os.path.join(TOP, "examples", "caption"), os.path.join(TOP, "examples", "vqa")


def finished(d):
    st = d.find_element(By.ID, "status")
    return "Explained" in st.text or "err" in st.get_attribute("class")


def explain(d, wait):
    d.find_element(By.ID, "go").click()
    wait.until(lambda d: "Explaining" not in d.find_element(By.ID, "status").text and finished(d))
    return d.find_element(By.ID, "status").text


def captioner(S, d, wait, pic, truth):
    Select(d.find_element(By.ID, "model")).select_by_visible_text("captioner")
    C.ok(d.find_element(By.ID, "text").is_displayed() and not d.find_element(By.ID, "classbox").is_displayed(),
         "page: a captioner offers the text field, not the classes")
    d.find_element(By.ID, "file").send_keys(pic)
    wait.until(lambda d: d.find_element(By.ID, "go").is_enabled())
    st = explain(d, wait)
    C.ok("Explained" in st, f"page: the model's caption explained ({st})")
    _, _, api = S.json("POST", "/v1/explain?model=captioner", open(pic, "rb").read(), {"Content-Type": "image/png"})
    words = api["caption"]["words"]
    cap = d.find_element(By.CSS_SELECTOR, "#topk caption").text
    C.ok(cap == "The model's caption: " + api["caption"]["text"], f"page: the caption ({cap!r}; truth {truth!r})")
    rows = d.find_elements(By.CSS_SELECTOR, "#topk tbody tr.pick")
    cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]
    want = [[str(w["step"]), w["word"], "%.3f" % w["logprob"]] for w in words]
    C.ok(cells[:-1] == want and cells[-1][1] == "(the whole caption)", f"page: a row per word {cells}")
    shown = [o.text for o in Select(d.find_element(By.ID, "shown")).options]
    C.ok(len(shown) == len(words) + 1 and shown[1].startswith("word 2: " + words[1]["word"]), f"page: {shown}")
    panels = [c.get_attribute("id") for c in d.find_elements(By.CSS_SELECTOR, "#panels canvas")]
    C.ok(panels == ["panel-input", "panel-guided-backprop", "panel-gradcam", "panel-guided-gradcam"],
         f"page: the paper's panels for a word {panels}")
    rows[1].click()  # the subject's colour word
    first = d.execute_script(PIXELS, "panel-gradcam")
    rows[len(words) - 1].send_keys(Keys.ENTER)  # the object's shape word
    C.ok(Select(d.find_element(By.ID, "shown")).first_selected_option.get_attribute("value") == "w%d" % (len(words) - 1)
         and "sel" in rows[len(words) - 1].get_attribute("class"), "page: Enter on a word's row shows it")
    last = d.execute_script(PIXELS, "panel-gradcam")
    diff = sum(abs(a - b) for a, b in zip(first["data"], last["data"])) / len(first["data"])
    C.ok(diff > 5, f"page: two words' Grad-CAM overlays differ (mean difference {diff:.1f})")
    # a caption typed: teacher-forced
    d.find_element(By.ID, "text").send_keys("A red star, above a blue circle.")
    st = explain(d, wait)
    cap = d.find_element(By.CSS_SELECTOR, "#topk caption").text
    C.ok("Explained" in st and cap == "Caption: a red star above a blue circle", f"page: a caption typed ({cap!r})")
    C.ok(len(d.find_elements(By.CSS_SELECTOR, "#topk tbody tr.pick")) == 8, "page: its 7 words and the whole")


def vqa(S, d, wait, shape):
    Select(d.find_element(By.ID, "model")).select_by_visible_text("vqa")
    C.ok(d.find_element(By.ID, "textlabel").text == "Question" and d.find_element(By.ID, "classbox").is_displayed(),
         "page: a VQA model asks for a question, and keeps the top-k answers")
    d.find_element(By.ID, "text").clear()
    d.find_element(By.ID, "go").click()
    wait.until(finished)
    st = d.find_element(By.ID, "status")
    C.ok("err" in st.get_attribute("class") and "question" in st.text, f"page: no question: {st.text!r}")
    q = "what color is the " + shape
    d.find_element(By.ID, "text").send_keys(q)
    k = d.find_element(By.ID, "k")
    k.clear()
    k.send_keys("2")
    st = explain(d, wait)
    C.ok("Explained" in st, f"page: the question explained ({st})")
    C.ok(d.find_element(By.ID, "question").text == "Question: " + q, "page: the question above the answers")
    _, _, api = S.json("POST", "/v1/explain?model=vqa&k=2&question=" + urllib.parse.quote(q),
                       open(PIC, "rb").read(), {"Content-Type": "image/png"})
    shown = [o.text for o in Select(d.find_element(By.ID, "shown")).options]
    C.ok(shown == ["%d: %s" % (a["index"], a["label"]) for a in api["answers"]], f"page: the answers {shown}")
    gc = d.execute_script(PIXELS, "panel-gradcam")
    C.ok(gc and gc["w"] == 128, "page: the answer's Grad-CAM drawn")


s = scenes.scene((3, 0))
PIC = os.path.join(WORK, "scene.png")
Image.fromarray(s["rgb"]).save(PIC)
S = Server([GRADCAM, "serve", os.path.join(CAP, "captioner.onnx"), "--task", "caption", "--vocab",
            os.path.join(CAP, "vocab.txt"), "--preprocess", "raw", os.path.join(VQA, "vqa.onnx"), "--task", "vqa",
            "--vocab", os.path.join(VQA, "vocab.txt"), "--labels", os.path.join(VQA, "answers.txt"), "--preprocess",
            "raw", "--port", "0", "-q"], log=os.path.join(WORK, "server.log"))
profile = tempfile.mkdtemp(prefix="caption-page-", dir=WORK)
d = None
try:
    d = chromium(profile)
    d.set_page_load_timeout(60)
    d.set_script_timeout(60)
    wait = WebDriverWait(d, 120)
    d.get(f"http://127.0.0.1:{S.port}/")
    wait.until(lambda d: "Ready" in d.find_element(By.ID, "status").text)
    captioner(S, d, wait, PIC, s["caption"])
    vqa(S, d, wait, scenes.SHAPES[s["shapes"][0]])
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    C.ok(not errors, f"page: console errors {json.dumps(errors)[:500]}")
    d.save_screenshot(os.path.join(WORK, "page.png"))
finally:
    if d:
        d.quit()
    C.ok(S.stop() == 0, "server exit 0")
C.done()
