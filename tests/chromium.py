"""Debian's headless Chromium driven by Selenium through Debian's chromedriver: the one browser set-up
of the page tests (serve_page, caption_page, report_link) and bench/bench_report.py."""
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium(profile, window="1300,1000", console=True):
    """A headless Chromium with its own profile folder (nothing shared between runs), no network of
    its own (no updates, sync or QUIC), the window size the checks assume, and the browser console
    kept for d.get_log("browser") when console is set."""
    o = webdriver.ChromeOptions()
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={window}"):
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    if console:
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
