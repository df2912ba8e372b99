"""The report in a real browser: Debian's Chromium, headless, with the network off, opening the report that the
workflow wrote for the tiny demo config (the session's shared run).

Without Chromium these tests skip, except where LATENT_INTERP_REQUIRE_BROWSER is set (CI sets it): there a missing
browser fails. Screenshots go to test-artifacts/ (or $TEST_ARTIFACTS).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latent_interp import browser
from conftest import BASE, EQUIVARIANT, FINETUNED, REPO, SECOND, TRIPLETS

pytestmark = [pytest.mark.workflow, pytest.mark.browser]

if not browser.available():
    if os.environ.get("LATENT_INTERP_REQUIRE_BROWSER"):
        raise RuntimeError("LATENT_INTERP_REQUIRE_BROWSER is set but chromium or chromedriver is not installed "
                           "(Debian: apt-get install chromium chromium-driver)")
    pytest.skip("chromium and chromedriver are not installed", allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="module")
def page(workflow_run):
    driver = browser.open_browser()
    seconds = browser.load(driver, workflow_run / "results" / "report.html")
    yield driver, seconds
    driver.quit()


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def test_the_page_opens_offline_without_errors_and_fetches_nothing(page):
    driver, seconds = page
    assert browser.console_errors(driver) == []
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert driver.execute_script("return typeof Plotly") == "object"  # inlined, not fetched
    screenshot(driver, "report-top")
    assert seconds < 60  # a sanity bound only; bench/report_scale.py measures load times


def test_every_embedding_is_drawn_with_every_point(page):
    driver, _ = page
    counts = driver.execute_script("""
        return [...document.querySelectorAll('.embedding-plot')].map(
            plot => plot.querySelectorAll('.scatterlayer .trace .points path').length);""")
    frames = 3 * sum(TRIPLETS.values())
    # PCA, UMAP and t-SNE of each latent space (tiny-kl, tiny-taesd, tiny-kl-equivariant): the points, and
    # trajectory markers
    assert len(counts) == 3 * 3 and all(count >= frames for count in counts)


def test_colouring_by_psnr_redraws_with_a_colour_scale(page):
    driver, _ = page
    select = driver.find_element(By.ID, "colour-by")
    driver.execute_script("arguments[0].value = 'psnr:tiny-kl'; arguments[0].dispatchEvent(new Event('change'))",
                          select)
    time.sleep(0.5)
    assert driver.execute_script("return document.querySelectorAll('.embedding-plot .colorbar').length") == 3 * 3
    driver.execute_script("arguments[0].value = 'split'; arguments[0].dispatchEvent(new Event('change'))", select)
    time.sleep(0.5)
    legend = driver.execute_script("return [...document.querySelector('.embedding-plot .legend')"
                                   ".querySelectorAll('.legendtext')].map(t => t.textContent)")
    assert legend == ["split test", "split train", "split val"]


def test_the_vae_switcher_shows_one_vaes_embeddings_and_galleries(page):
    driver, _ = page
    select = driver.find_element(By.CSS_SELECTOR, "#comparison .vae-switch")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", driver.find_element(By.ID, "comparison"))
    screenshot(driver, "report-comparison")

    def choose(name):
        driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'))",
                              select, name)
        time.sleep(0.3)
        return driver.execute_script("""
            const shown = (selector) => [...document.querySelectorAll(selector)].filter((n) => !n.closest('[hidden]'));
            return {plots: shown('.embedding-plot').map((n) => n.getBoundingClientRect().width),
                    galleries: shown('.gallery[data-kind="interp"]').map((n) => n.dataset.model),
                    switches: [...document.querySelectorAll('.vae-switch')].map((s) => s.value)};""")

    every = choose("")
    assert len(every["plots"]) == 3 * 3
    assert sorted(set(every["galleries"])) == sorted([BASE, SECOND, FINETUNED, EQUIVARIANT])
    taesd = choose(SECOND)
    assert len(taesd["plots"]) == 3 and set(taesd["galleries"]) == {SECOND} and len(taesd["galleries"]) == 2
    assert taesd["switches"] == [SECOND] * 3  # every copy of the switcher follows
    finetuned = choose(FINETUNED)  # its embeddings are tiny-kl's: it shares that latent space
    assert len(finetuned["plots"]) == 3 and set(finetuned["galleries"]) == {FINETUNED}
    equivariant = choose(EQUIVARIANT)  # a latent space of its own: its own embeddings
    assert len(equivariant["plots"]) == 3 and set(equivariant["galleries"]) == {EQUIVARIANT}
    again = choose("")
    assert len(again["plots"]) == 3 * 3 and min(again["plots"]) > 100  # shown again at full width
    assert browser.console_errors(driver) == []


def test_hovering_a_point_shows_its_frame_and_clicking_opens_its_triplet(page):
    driver, _ = page
    plot = driver.find_element(By.CSS_SELECTOR, ".embedding-plot")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
    time.sleep(0.3)
    ActionChains(driver).move_to_element_with_offset(plot, *browser.point_offset(driver, plot)).perform()
    time.sleep(0.5)
    box = driver.find_element(By.ID, "hover-thumb")
    assert box.is_displayed()
    hovered = box.get_attribute("data-key")  # split/name/frame of the first point of the first trace
    expected = driver.execute_script("""
        const gd = arguments[0], index = gd._fullData[0].customdata[0];
        const data = JSON.parse(document.getElementById('report-data').textContent).embeddings[0];
        const record = JSON.parse(document.getElementById('report-data').textContent).triplets[data.triplet[index]];
        return `${record.key}/${data.frame[index]}`;""", plot)
    assert hovered == expected
    assert box.find_element(By.TAG_NAME, "img").get_attribute("src").startswith("data:image/jpeg;base64,")
    screenshot(driver, "embedding-hover")
    ActionChains(driver).click().perform()
    time.sleep(0.5)
    panel = driver.find_element(By.ID, "triplet-panel")
    assert panel.is_displayed() and panel.get_attribute("data-key") == hovered.rsplit("/", 1)[0]
    chosen = driver.execute_script("return arguments[0].data.filter(t => (t.name || '').startsWith('chosen')).length",
                                   plot)
    assert chosen == 1  # the chosen triplet's path is drawn on the embedding
    driver.find_element(By.ID, "panel-close").click()
    assert not panel.is_displayed()


def test_searching_a_triplet_shows_its_panel_with_images_and_error_maps(page):
    driver, _ = page
    key = driver.execute_script("""
        const data = JSON.parse(document.getElementById('report-data').textContent);
        return data.triplets.find(t => t.split === 'test').key;""")
    search = driver.find_element(By.ID, "triplet-search")
    search.clear()
    search.send_keys(key + "\n")
    panel = driver.find_element(By.ID, "triplet-panel")
    assert panel.is_displayed() and panel.get_attribute("data-key") == key
    time.sleep(1)
    text = panel.text
    assert "Reconstructions and error maps" in text and "In-betweens" in text and "latent_lerp" in text
    assert "Motion: the estimated flow 1 → 3" in text and "pixel_flow_oracle †" in text  # oracles are marked
    # 3 frames, the flow and its occlusion mask, 4 models x 3 reconstructions, and per model the truth and the
    # in-between of every method of panel_methods (the warps inside the decoder are in its score table only)
    methods = driver.execute_script("return JSON.parse(document.getElementById('report-data').textContent)"
                                    ".panel_methods.length")
    assert len(panel.find_elements(By.TAG_NAME, "img")) == 3 + 2 + 4 * 3 + 4 * (1 + methods)
    maps = panel.find_elements(By.CSS_SELECTOR, "canvas.error-map")
    assert len(maps) == 4 * 3 + 4 * methods and all(m.get_attribute("data-ready") == "1" for m in maps)
    screenshot(driver, "triplet-panel")
    driver.find_element(By.ID, "panel-close").click()


def test_every_in_between_plays_between_its_ends_and_the_controls_pause_and_step(page):
    """Offline: each method's tile of a gallery row cycles frame 1 -> in-between -> frame 3 -> in-between on one clock
    (its image is one of the three the page holds for it), pause stops every preview, step moves them one phase."""
    driver, _ = page

    def frames():
        return driver.execute_script("""
            return [...document.querySelectorAll('.gallery img.previewing')].map(
                (img) => [img.dataset.frame, img.previewFrames[img.dataset.frame] === img.getAttribute('src')]);""")

    first = frames()
    rows = len(driver.find_elements(By.CSS_SELECTOR, ".gallery[data-kind=interp] .row"))
    assert rows and len(first) >= rows * 3
    assert all(shown for _, shown in first)  # the image shown is the phase's own (frame 1, the in-between, frame 3)
    seen = {first[0][0]}
    for _ in range(8):  # playing: the phase advances (450 ms a step)
        time.sleep(0.3)
        seen.add(frames()[0][0])
    assert seen == {"0", "1", "2"}
    play = driver.find_element(By.CSS_SELECTOR, ".gallery .preview-play")
    driver.execute_script("arguments[0].scrollIntoView()", play)
    play.click()  # pause
    paused = frames()
    time.sleep(1.0)
    assert frames() == paused and len({frame for frame, _ in paused}) == 1  # stopped, and all in step
    driver.find_element(By.CSS_SELECTOR, ".gallery .preview-step").click()
    order = ["0", "1", "2", "1"]
    stepped = frames()[0][0]
    assert stepped in {order[(k + 1) % 4] for k, phase in enumerate(order) if phase == paused[0][0]}
    assert "play previews" in play.text
    play.click()  # playing again for the tests after this one
    assert browser.console_errors(driver) == []


def test_a_table_row_opens_its_triplet_and_tables_sort(page):
    driver, _ = page
    table = driver.find_element(By.CSS_SELECTOR, "#recon-triplets table")
    driver.execute_script("arguments[0].scrollIntoView()", table)
    header = table.find_elements(By.TAG_NAME, "th")[4]  # tiny-kl's PSNR
    header.click()
    values = [float(row.find_elements(By.TAG_NAME, "td")[4].text)
              for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert values == sorted(values) and len(values) == sum(TRIPLETS.values())
    row = table.find_element(By.CSS_SELECTOR, "tbody tr")
    row.click()
    panel = driver.find_element(By.ID, "triplet-panel")
    assert panel.is_displayed() and panel.get_attribute("data-key") == row.get_attribute("data-key")
    driver.find_element(By.ID, "panel-close").click()


def test_the_table_of_contents_lands_on_every_section(page):
    driver, _ = page
    links = driver.find_elements(By.CSS_SELECTOR, "#toc a")
    assert len(links) >= 8
    for link in links:
        target = link.get_attribute("href").split("#", 1)[1]
        link.click()
        time.sleep(0.1)
        top = driver.execute_script("return document.getElementById(arguments[0]).getBoundingClientRect().top",
                                    target)
        at_bottom = driver.execute_script(
            "return window.innerHeight + window.scrollY >= document.body.scrollHeight - 2")
        assert abs(top) < 20 or (at_bottom and top > 0), target
    assert browser.console_errors(driver) == []


@pytest.mark.parametrize("width", [1280, 1920])
def test_nothing_is_cut_off_at_a_laptops_width_and_a_wide_screen(workflow_run, width):
    """Every element ends inside the content column, or inside a box that scrolls sideways (the wide tables), and no
    label is squeezed into wrapping letter by letter; measured on the element boxes the browser laid out."""
    driver = browser.open_browser(width, 900)
    try:
        browser.load(driver, workflow_run / "results" / "report.html")
        faults = browser.layout_faults(driver)
        screenshot(driver, f"report-top-{width}px")
    finally:
        driver.quit()
    assert faults["figures"] >= 6 and faults["column_right"] < width
    assert faults["outside"] == [] and faults["narrow"] == []


@pytest.mark.readme("python tools/report_screenshots.py results/report.html docs/img")
def test_the_screenshot_tool_takes_the_docs_pictures_and_records_what_they_show(workflow_run, tmp_path):
    report = workflow_run / "results" / "report.html"
    result = subprocess.run([sys.executable, str(REPO / "tools" / "report_screenshots.py"), str(report), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    shown = json.loads((tmp_path / "screenshots.json").read_text())
    assert shown["models"] == [BASE, SECOND, FINETUNED, EQUIVARIANT] and "embeddings" in shown["sections"]
    for name in ("report-top", "report-embedding-hover", "report-triplet-panel", "report-triplet-panel-inbetweens"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
