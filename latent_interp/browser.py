"""Debian's Chromium, headless, driven by Selenium with the network off: how the report is tested in a real
browser (tests/test_report_browser.py), timed (bench/report_scale.py) and photographed for the docs
(tools/report_screenshots.py). No stage imports it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def available() -> bool:
    return bool(CHROMIUM and CHROMEDRIVER)


def open_browser(width: int = 1600, height: int = 1000):
    """A headless Chromium that cannot reach any network: every host resolves to nothing, every request goes to a
    closed proxy, and DevTools' offline mode is on."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND",
                     "--proxy-server=http://127.0.0.1:9", "--allow-file-access-from-files"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                           {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    driver.set_page_load_timeout(120)
    return driver


def load(driver, page: Path) -> float:
    """Open ``page`` from disk and wait until every embedding is drawn; the seconds from navigation to then."""
    start = time.perf_counter()
    driver.get(Path(page).resolve().as_uri())
    deadline = start + 120
    while time.perf_counter() < deadline:
        done = driver.execute_script(
            "const plots = document.querySelectorAll('.embedding-plot');"
            "return document.readyState === 'complete' && [...plots].every(p => p.dataset.rendered === '1');")
        if done:
            return time.perf_counter() - start
        time.sleep(0.05)
    raise TimeoutError(f"{page}: the embeddings were not drawn within 120 s")


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def point_offset(driver, plot, trace: int = 0, point: int = 0) -> tuple[int, int]:
    """Where plotly drew a point, as an offset from the plot element's centre (what ActionChains moves by)."""
    x, y, width, height = driver.execute_script("""
        const [gd, trace, point] = arguments;
        const xaxis = gd._fullLayout.xaxis, yaxis = gd._fullLayout.yaxis, data = gd._fullData[trace];
        const box = gd.getBoundingClientRect();
        return [xaxis._offset + xaxis.l2p(data.x[point]), yaxis._offset + yaxis.l2p(data.y[point]),
                box.width, box.height];""", plot, trace, point)
    return round(x - width / 2), round(y - height / 2)


# Where the page's layout fails a reader: elements that stick out of the content column (unless inside a box that
# scrolls sideways, as wide tables do), scrolling boxes that stick out themselves, and labels squeezed so narrow that
# they wrap letter by letter (less than 6 characters a line).
LAYOUT_FAULTS = """
const main = document.querySelector('main');
const right = main.getBoundingClientRect().right - parseFloat(getComputedStyle(main).paddingRight);
const shown = (n) => !n.closest('[hidden]') && !n.closest('details:not([open])') && n.offsetParent !== null;
const scrolls = (n) => ['auto', 'scroll'].includes(getComputedStyle(n).overflowX);
const describe = (n) => `${n.closest('section')?.id}: <${n.tagName.toLowerCase()} class="${n.getAttribute('class') || ''}">`;
const outside = [], narrow = [];
for (const n of main.querySelectorAll('*')) {
  if (!shown(n)) continue;
  let box = n.parentElement;
  while (box !== main && !scrolls(box)) box = box.parentElement;
  const edge = (box === main ? n : box).getBoundingClientRect().right;
  if (edge > right + 1) outside.push(`${describe(n)} ends at ${Math.round(edge)} px, the column at ${Math.round(right)}`);
}
for (const n of main.querySelectorAll('.gallery .name, .tile .label, th, .card dt')) {
  if (!shown(n) || !n.textContent.trim()) continue;
  const em = parseFloat(getComputedStyle(n).fontSize);
  const width = n.getBoundingClientRect().width;
  if (width < Math.min(6, n.textContent.trim().length) * 0.55 * em) narrow.push(`${describe(n)} "${n.textContent.trim()}" is ${Math.round(width)} px wide`);
}
return {column_right: right, outside: outside, narrow: narrow,
        figures: [...main.querySelectorAll('figure img, .embedding-plot')].filter(shown).length};
"""


def layout_faults(driver) -> dict:
    """``LAYOUT_FAULTS`` measured on the open page."""
    return driver.execute_script(LAYOUT_FAULTS)
