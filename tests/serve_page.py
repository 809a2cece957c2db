"""gradcam serve's page in real headless Chromium driven by Selenium: the form filled from
/v1/models, the demo picture uploaded, a class picked by name, the panels drawn (the Grad-CAM
overlay's pixels read back from its canvas: the heat map's colours over the picture), the
opacity slider moved from the keyboard (the pixels follow), the top-k table, keyboard use
(Tab reaches the controls, Enter on a table row switches the class shown), no console error; then a
second picture dropped on the drop zone (a real drop event carrying a File), the second model, two
other methods and another layer chosen (the answer and the panels follow), and with --token-file the
page asking for the token and working once it is typed.
Usage: serve_page.py GRADCAM WORKDIR"""
import base64
import os
import shutil
import sys
import tempfile

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chromium import chromium  # noqa: E402
from serve_util import DEMO, DEMO_ARGS, DEMO_PICTURE, Checks, Server, watchdog  # noqa: E402

watchdog(600)
GRADCAM, WORK = sys.argv[1], sys.argv[2]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
C = Checks()

PIXELS = """
const c = document.getElementById(arguments[0]);
if (!c) return null;
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let sum = [0, 0, 0], n = c.width * c.height, blue = 0, red = 0, rx = 0, ry = 0;
for (let i = 0; i < d.length; i += 4) {
  sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2];
  if (d[i + 2] > 100 && d[i + 2] > d[i] + 60 && d[i + 2] > d[i + 1] + 60) blue++;
  if (d[i] > 150 && d[i] > d[i + 1] + 60 && d[i] > d[i + 2] + 60) {
    red++; rx += (i / 4) % c.width; ry += Math.floor(i / 4 / c.width);
  }
}
return {w: c.width, h: c.height, mean: sum.map((v) => v / n), blue: blue / n, red: red / n,
        rx: red ? rx / red : -1, ry: red ? ry / red : -1, data: Array.from(d)};
"""




def run(S, d):
    wait = WebDriverWait(d, 60)
    d.get(f"http://127.0.0.1:{S.port}/")
    wait.until(lambda d: "Ready" in d.find_element(By.ID, "status").text)
    C.ok(Select(d.find_element(By.ID, "model")).first_selected_option.text == "shapes_cnn", "page: the model listed")
    labels = [o.text for o in Select(d.find_element(By.ID, "classes")).options]
    C.ok(labels == ["0: circle", "1: square", "2: triangle", "3: star", "4: cross", "5: ring"], f"page: labels {labels}")
    layers = [o.get_attribute("value") for o in Select(d.find_element(By.ID, "layer")).options]
    C.ok(layers[0] == "" and "/block4/block4.2/Relu_output_0" in layers, "page: layers")
    checked = [c.get_attribute("value") for c in d.find_elements(By.CSS_SELECTOR, "#methods input:checked")]
    C.ok(checked == ["gradcam", "guided-backprop", "guided-gradcam"], f"page: default methods {checked}")
    C.ok(not d.find_element(By.ID, "go").is_enabled(), "page: Explain waits for a picture")

    d.find_element(By.ID, "file").send_keys(DEMO_PICTURE)
    wait.until(lambda d: d.find_element(By.ID, "go").is_enabled())
    # a class by name: 'ring' (the demo picture's second shape), and the top-2 ('circle' first)
    Select(d.find_element(By.ID, "classes")).select_by_visible_text("5: ring")
    C.ok(d.find_element(By.ID, "mode-names").is_selected(), "page: picking a class selects 'these classes'")
    d.find_element(By.ID, "go").click()
    wait.until(lambda d: "Explained" in d.find_element(By.ID, "status").text or "err" in
               d.find_element(By.ID, "status").get_attribute("class"))
    C.ok("Explained" in d.find_element(By.ID, "status").text, f"page: {d.find_element(By.ID, 'status').text}")
    shown = [o.text for o in Select(d.find_element(By.ID, "shown")).options]
    C.ok(shown == ["5: ring"], f"page: the class explained {shown}")
    panels = [c.get_attribute("id") for c in d.find_elements(By.CSS_SELECTOR, "#panels canvas")]
    C.ok(panels == ["panel-input", "panel-guided-backprop", "panel-gradcam", "panel-guided-gradcam"],
         f"page: the paper's panels {panels}")
    rows = d.find_elements(By.CSS_SELECTOR, "#topk tbody tr")
    C.ok(len(rows) >= 2 and rows[0].find_elements(By.TAG_NAME, "td")[1].text == "circle", "page: top-k table")

    pic = d.execute_script(PIXELS, "panel-input")
    ov = d.execute_script(PIXELS, "panel-gradcam")
    C.ok(ov and ov["w"] == 128 and ov["h"] == 128, f"page: overlay size {ov and (ov['w'], ov['h'])}")
    diff = sum(abs(a - b) for a, b in zip(ov["data"], pic["data"])) / len(pic["data"])
    C.ok(diff > 10, f"page: the overlay differs from the picture (mean difference {diff:.1f})")
    gb = d.execute_script(PIXELS, "panel-guided-backprop")
    C.ok(gb and max(gb["mean"]) > 5, "page: Guided Backprop drawn")

    # the slider from the keyboard: Home = 0 (the bare picture), End = 1 (the heat map alone)
    slider = d.find_element(By.ID, "alpha")
    slider.send_keys(Keys.HOME)
    at0 = d.execute_script(PIXELS, "panel-gradcam")
    C.ok(d.find_element(By.ID, "alphav").text == "0.00" and at0["data"] == pic["data"],
         "page: opacity 0 shows the picture alone")
    slider.send_keys(Keys.END)
    at1 = d.execute_script(PIXELS, "panel-gradcam")
    C.ok(d.find_element(By.ID, "alphav").text == "1.00", "page: opacity 1")
    # jet alone: blue far from the ring, red on it (the ring is the demo picture's lower-left shape,
    # Grad-CAM's box x 0..71, y 57..127)
    C.ok(at1["red"] > 0.02 and at1["blue"] > 0.05, f"page: heat map colours (red {at1['red']:.3f}, blue {at1['blue']:.3f})")
    C.ok(at1["rx"] < 64 and at1["ry"] > 64, f"page: the heat on the ring (red centre {at1['rx']:.0f}, {at1['ry']:.0f})")
    for _ in range(10):
        slider.send_keys(Keys.ARROW_LEFT)
    C.ok(d.find_element(By.ID, "alphav").text == "0.90", f"page: arrow keys move the slider "
         f"({d.find_element(By.ID, 'alphav').text})")

    # top-2 by keyboard: Tab from the k field, Enter on the form's button; then a table row by Enter
    kf = d.find_element(By.ID, "k")
    kf.clear()
    kf.send_keys("2")
    C.ok(d.find_element(By.ID, "mode-topk").is_selected(), "page: typing k selects 'the top'")
    kf.send_keys(Keys.ENTER)  # submits the form
    wait.until(lambda d: len(Select(d.find_element(By.ID, "shown")).options) == 2)
    row = d.find_elements(By.CSS_SELECTOR, "#topk tbody tr.pick")[1]
    row.send_keys(Keys.ENTER)
    C.ok(Select(d.find_element(By.ID, "shown")).first_selected_option.text == "5: ring", "page: Enter on a row")
    C.ok("sel" in row.get_attribute("class"), "page: the row shown is marked")
    # Tab order reaches the file picker, the model, the methods and the button
    seen = []
    d.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    ActionChains(d).send_keys(Keys.TAB).perform()
    for _ in range(45):
        seen.append(d.execute_script("const a = document.activeElement; return a.id || a.value || a.tagName;"))
        ActionChains(d).send_keys(Keys.TAB).perform()
    C.ok(all(x in seen for x in ("file", "model", "gradcam", "k", "layer", "go")), f"page: Tab order {seen}")
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    C.ok(not errors, f"page: console errors {errors}")
    d.save_screenshot(os.path.join(WORK, "page.png"))


DROP = """
const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
const dt = new DataTransfer();
dt.items.add(new File([bytes], arguments[1], {type: "image/png"}));
const zone = document.getElementById("drop");
zone.dispatchEvent(new DragEvent("dragenter", {dataTransfer: dt, bubbles: true, cancelable: true}));
const over = zone.classList.contains("over");
zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
return {over: over, after: zone.classList.contains("over")};
"""


def explained(d, wait):
    wait.until(lambda d: "Explained" in d.find_element(By.ID, "status").text or "err" in
               d.find_element(By.ID, "status").get_attribute("class"))
    return d.find_element(By.ID, "status").text


def run_choices(S, d):
    """A picture dropped, the second model, other methods and another layer."""
    wait = WebDriverWait(d, 60)
    pic2 = os.path.join(DEMO, "images", "demo_2.png")
    before = d.execute_script(PIXELS, "panel-input")
    got = d.execute_script(DROP, base64.b64encode(open(pic2, "rb").read()).decode(), "demo_2.png")
    C.ok(got["over"] and not got["after"], f"page: the drop zone marks a drag over it {got}")
    C.ok(d.execute_script("return picture && picture.name") == "demo_2.png"
         and d.find_element(By.ID, "thumb").get_attribute("alt") == "demo_2.png", "page: the dropped picture taken")
    Select(d.find_element(By.ID, "model")).select_by_visible_text("second")
    for c in d.find_elements(By.CSS_SELECTOR, "#methods input"):
        if c.is_selected() != (c.get_attribute("value") in ("hirescam", "guided-backprop")):
            c.click()
    layer = "/block4/block4.2/Relu_output_0"
    Select(d.find_element(By.ID, "layer")).select_by_value(layer)
    kf = d.find_element(By.ID, "k")
    kf.clear()
    kf.send_keys("1")
    d.find_element(By.ID, "go").click()
    st = explained(d, wait)
    C.ok("Explained" in st, f"page: second explain: {st}")
    a = d.execute_script("return {model: answer.model, maps: answer.maps.map((m) => [m.method, m.layer || null])};")
    C.ok(a["model"] == "second", f"page: the model chosen ({a['model']})")
    C.ok(sorted(m for m, _ in a["maps"]) == ["guided-backprop", "hirescam"] and dict(a["maps"])["hirescam"] == layer,
         f"page: the methods and layer chosen {a['maps']}")
    panels = [c.get_attribute("id") for c in d.find_elements(By.CSS_SELECTOR, "#panels canvas")]
    C.ok(panels == ["panel-input", "panel-guided-backprop", "panel-hirescam"], f"page: panels of the methods chosen {panels}")
    caps = [f.text for f in d.find_elements(By.CSS_SELECTOR, "#panels figcaption")]
    C.ok(any("HiResCAM" in c and layer in c for c in caps), f"page: the layer named under its panel {caps}")
    after = d.execute_script(PIXELS, "panel-input")
    C.ok(after["data"] != before["data"], "page: the dropped picture is the one explained")
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    C.ok(not errors, f"page: console errors {errors}")


def run_token(S, d, secret):
    wait = WebDriverWait(d, 60)
    d.get(f"http://127.0.0.1:{S.port}/")
    wait.until(lambda d: "err" in d.find_element(By.ID, "status").get_attribute("class"))
    box = d.find_element(By.ID, "tokenbox")
    C.ok(box.is_displayed() and "token" in d.find_element(By.ID, "status").text,
         f"page with a token: asks for it ({d.find_element(By.ID, 'status').text!r})")
    t = d.find_element(By.ID, "token")
    t.send_keys("wrong-token-0000000000")
    t.send_keys(Keys.TAB)  # change
    wait.until(lambda d: "err" in d.find_element(By.ID, "status").get_attribute("class"))
    C.ok(not d.find_element(By.ID, "model").find_elements(By.TAG_NAME, "option"), "page with a token: a wrong one loads nothing")
    t.clear()
    t.send_keys(secret)
    t.send_keys(Keys.TAB)
    wait.until(lambda d: "Ready" in d.find_element(By.ID, "status").text)
    d.find_element(By.ID, "file").send_keys(DEMO_PICTURE)
    wait.until(lambda d: d.find_element(By.ID, "go").is_enabled())
    d.find_element(By.ID, "go").click()
    st = explained(d, wait)
    C.ok("Explained" in st, f"page with a token: explained once it is typed ({st!r})")
    # the connections the browser keeps open would hold the server's drain for its 10 s
    d.get("about:blank")


S = Server([GRADCAM, "serve", *DEMO_ARGS, DEMO_ARGS[0], "--name", "second", "--labels", DEMO_ARGS[2], "--preprocess",
            "raw", "--port", "0", "-q"], log=os.path.join(WORK, "server.log"))
profile = tempfile.mkdtemp(prefix="serve-page-", dir=WORK)
d = None
try:
    d = chromium(profile)
    d.set_page_load_timeout(60)
    d.set_script_timeout(60)
    run(S, d)
    run_choices(S, d)
finally:
    if d:
        d.quit()
    C.ok(S.stop() == 0, "server exit 0")

secret = "page-token-0123456789abcdef"
tok = os.path.join(WORK, "token")
open(tok, "w").write(secret + "\n")
T = Server([GRADCAM, "serve", *DEMO_ARGS, "--token-file", tok, "--port", "0", "-q"], log=os.path.join(WORK, "token.log"))
d = None
try:
    d = chromium(tempfile.mkdtemp(prefix="serve-page-", dir=WORK))
    d.set_page_load_timeout(60)
    run_token(T, d, secret)
finally:
    if d:
        d.quit()
    C.ok(T.stop() == 0, "token server exit 0")
C.done()
