"""The run page in a real headless browser (Debian's chromium): it renders, without console errors, every
image loads, every section is there; a screenshot of it is saved ($AFFECTFLOW_SCREENSHOT, else tmp)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from affectflow.stages.index_page import run_index_page
from affectflow.testing.run_page import page_files

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WIDTH = 1400
SECTIONS = ("metrics", "predictions", "problems", "videos", "problems-table")


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed: run `make test`, which installs chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--window-size={WIDTH},1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)  # no Selenium Manager download
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot_path(tmp_path: Path) -> Path:
    return Path(os.environ.get("AFFECTFLOW_SCREENSHOT") or tmp_path / "index_page.png")


def check_page(driver, page: Path, screenshot: Path, sections=SECTIONS) -> dict:
    """Open ``page``, check it as a reader's browser shows it, save a full-page screenshot; the image counts."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(page.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.className, i.complete, i.naturalWidth, i.alt])")
    broken = [i for i in images if not (i[1] and i[2] > 0)]
    assert images and not broken, broken
    missing = [s for s in sections if not driver.execute_script(f"return !!document.getElementById('{s}')")]
    assert not missing, missing
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(int(height) + 150, 16000))
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
    counts: dict[str, int] = {}
    for cls, *_ in images:
        counts[cls] = counts.get(cls, 0) + 1
    return counts


def test_the_page_of_a_demo_run_renders_in_chromium(browser, run_results: Path, tmp_path: Path) -> None:
    files = page_files(run_results, tmp_path / "run")
    page = run_index_page(tmp_path / "run" / "index.html", **files)
    counts = check_page(browser, page, _screenshot_path(tmp_path),
                        (*SECTIONS, "table-expr", "table-emi", "table-ah", "table-ah_video", "sweeps-expr"))
    n_units = len((tmp_path / "run" / "units.tsv").read_text().splitlines()) - 1
    assert counts["timeline"] == counts["sheet"] == n_units
    assert counts["sweep"] >= len(files["fusion_dirs"])


def test_a_page_without_trained_tasks_renders_too(browser, run_results: Path, tmp_path: Path) -> None:
    files = page_files(run_results, tmp_path / "run", with_tasks=False)
    page = run_index_page(tmp_path / "run" / "index.html", options={"max_videos": 3}, **files)
    counts = check_page(browser, page, tmp_path / "no_tasks.png", (*SECTIONS, "left-out"))
    assert counts == {"timeline": 3, "sheet": 3}


def test_the_workflow_writes_its_run_page_done(browser, done, tmp_path: Path) -> None:
    """The real workflow's own index.html (rule index_page)."""
    page = done.results() / "index.html"
    assert page.is_file()
    counts = check_page(browser, page, tmp_path / "workflow.png", (*SECTIONS, "table-expr"))
    assert counts.get("timeline", 0) > 0 and counts.get("sweep", 0) > 0
