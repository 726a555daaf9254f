"""The explorer page driven end to end in headless Chromium (Debian's chromium and
chromium-driver, through Selenium; nothing is downloaded): type a sentence and click, see the
decoded text and the map, drag the traversal slider and see the text change. A screenshot is
kept in ``$LMVAE_ARTIFACTS`` (else the test's temporary folder).

Skipped where Chromium, its driver or Selenium is missing, unless ``LMVAE_REQUIRE_BROWSER=1``
(CI), where that fails: ``make browser`` installs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from lmvae.explorer import Sentence


def _browser_or_skip() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        driver = None
    if browser is None or driver is None:
        if os.environ.get("LMVAE_REQUIRE_BROWSER") == "1":
            pytest.fail(
                "chromium, chromium-driver or selenium is missing (make test installs them)"
            )
        pytest.skip("chromium, chromium-driver or selenium is not installed")
    return browser, driver


@pytest.fixture
def server(app):
    """The app on a free loopback port, served by uvicorn in a thread."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def driver(tmp_path):
    browser, chromedriver = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-extensions", "--no-first-run", "--window-size=1400,1500",
                 f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    d = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _changing_dim(explorer, text: str) -> int:
    """A dimension whose far end decodes differently from the posterior mean."""
    for dim in range(int(explorer.vae.latent_size)):
        mean = explorer.traverse(Sentence(text), dim, None, "greedy", 0)
        end = explorer.traverse(Sentence(text), dim, -3.0, "greedy", 0)
        if mean["decoded"] != end["decoded"]:
            return dim
    raise AssertionError("no dimension changes the decoding of the tiny model")


def test_type_decode_map_and_drag_the_slider(server, driver, explorer, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    sentence = "the cat sat on the mat"
    dim = _changing_dim(explorer, sentence)
    wait = WebDriverWait(driver, 60)
    driver.get(server)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("data-ready") == "1")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#map circle")) == 80)

    # Type a sentence, click: its reconstruction appears and it is placed on the map.
    driver.find_element(By.ID, "sentences").send_keys(sentence)
    driver.find_element(By.ID, "encode").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#recon .recon-text"))
    decoded = driver.find_element(By.CSS_SELECTOR, "#recon .recon-text").text
    assert decoded == explorer.traverse(Sentence(sentence), 0, None, "greedy", 0)["decoded"]
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#map circle.placed"))

    # Hover a point to read it, click it to select it.
    point = driver.find_elements(By.CSS_SELECTOR, "#map circle")[5]
    ActionChains(driver).move_to_element(point).perform()
    wait.until(lambda d: d.find_element(By.ID, "tooltip").is_displayed())
    assert explorer.corpus.texts[5] in driver.find_element(By.ID, "tooltip").text
    Select(driver.find_element(By.ID, "click-target")).select_by_value("interp-a")
    point.click()
    assert driver.find_element(By.ID, "interp-a").get_attribute("value") == explorer.corpus.texts[5]

    # The traversal starts at the typed sentence's posterior mean; drag the slider to its left end.
    Select(driver.find_element(By.ID, "traverse-dim")).select_by_value(str(dim))
    wait.until(lambda d: d.find_element(By.ID, "traverse-value").text.startswith(f"z{dim} "))
    wait.until(lambda d: d.find_element(By.ID, "status").text == "")
    before = driver.find_element(By.ID, "traverse-text").text
    slider = driver.find_element(By.ID, "traverse-slider")
    width = slider.size["width"]
    drag = ActionChains(driver).click_and_hold(slider)
    for _ in range(10):
        drag.move_by_offset(-width // 20, 0)
    drag.move_by_offset(-4, 0).release().perform()  # just past the left end
    wait.until(lambda d: d.find_element(By.ID, "traverse-value").text == f"z{dim} = -3.00")
    after = driver.find_element(By.ID, "traverse-text").text
    assert after and after != before

    artifacts = Path(os.environ.get("LMVAE_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "explorer.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000  # a page of controls, text and a coloured map
