"""gradcam serve's page in real headless Chromium driven by Selenium: the form filled from
/v1/models, the demo picture uploaded, a class picked by name, the panels drawn (the Grad-CAM
overlay's pixels read back from its canvas: the heat map's colours over the picture), the
opacity slider moved from the keyboard (the pixels follow), the top-k table, keyboard use
(Tab reaches the controls, Enter on a table row switches the class shown), no console error.
Usage: serve_page.py GRADCAM WORKDIR"""
import os
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import DEMO_ARGS, DEMO_PICTURE, Checks, Server, watchdog  # noqa: E402

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


def browser(profile):
    o = webdriver.ChromeOptions()
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1300,1000"):
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


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


S = Server([GRADCAM, "serve", *DEMO_ARGS, "--port", "0", "-q"], log=os.path.join(WORK, "server.log"))
profile = tempfile.mkdtemp(prefix="serve-page-", dir=WORK)
d = None
try:
    d = browser(profile)
    d.set_page_load_timeout(60)
    d.set_script_timeout(60)
    run(S, d)
finally:
    if d:
        d.quit()
    C.ok(S.stop() == 0, "server exit 0")
C.done()
