"""Screenshots of a report for the docs: its top, an embedding point hovered, and a triplet's panel.

    python tools/report_screenshots.py results/report.html docs/img

Uses Debian's chromium headless with the network off, as the browser tests do (latent_interp.browser), at a laptop's
1280 px. Beside the images it writes screenshots.json: the models and sections the report had, which
tests/test_report_browser.py compares with today's demo, so that screenshots of an older demo are caught.
"""

import json
import sys
import time
from pathlib import Path

from latent_interp import browser
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

page, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
driver = browser.open_browser(1280, 850)
try:
    print(f"loaded in {browser.load(driver, page):.2f} s")
    shown = driver.execute_script("""return {
        models: JSON.parse(document.getElementById('report-data').textContent).models,
        sections: [...document.querySelectorAll('main > section')].map((s) => s.id)};""")
    (out / "screenshots.json").write_text(json.dumps({"report": str(page), "width": 1280, **shown}, indent=2) + "\n")
    driver.save_screenshot(str(out / "report-top.png"))
    plot = driver.find_element(By.CSS_SELECTOR, ".embedding-plot")
    driver.execute_script("document.getElementById('embeddings').scrollIntoView()")
    time.sleep(0.5)
    ActionChains(driver).move_to_element_with_offset(plot, *browser.point_offset(driver, plot, 0, 5)).perform()
    time.sleep(0.5)
    driver.save_screenshot(str(out / "report-embedding-hover.png"))
    ActionChains(driver).click().perform()
    time.sleep(1.5)  # the error maps are drawn once their images decode
    driver.save_screenshot(str(out / "report-triplet-panel.png"))
    driver.execute_script("document.getElementById('triplet-panel').scrollTop = 10000")
    time.sleep(0.5)
    driver.save_screenshot(str(out / "report-triplet-panel-inbetweens.png"))
    errors = browser.console_errors(driver)
    if errors:
        raise SystemExit(f"console errors: {errors}")
finally:
    driver.quit()
