"""The web viewer (``GET /viewer``) in a real headless browser: Debian's Chromium driven by Playwright, against the
real service. Upload a detector file, wait for playback, check the joints drawn and that neither view is blank, and
save a screenshot (``MOTIONLIFT_SCREENSHOT=path`` keeps it, ``MOTIONLIFT_VIEWER_URL`` points the browser at another
running service: the README's picture is made that way, on the default model)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import Served
from tests.data import FIXTURES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (.ci/setup installs Debian's)"),
]


@pytest.fixture
def page(served: Served) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{os.environ.get('MOTIONLIFT_VIEWER_URL', served.rest_url)}/viewer")
            yield page
            assert errors == [], errors  # no script error in the page
        finally:
            browser.close()


def canvas_pixels(page: Any, selector: str, path: Path) -> np.ndarray:  # type: ignore[type-arg]
    page.locator(selector).screenshot(path=str(path))
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.int64)


def test_a_detector_file_is_lifted_and_played_in_the_browser(page: Any, tmp_path: Path) -> None:
    page.fill("#width", "1920")
    page.fill("#height", "1080")
    page.set_input_files("#file", str(FIXTURES / "martial_request.json"))
    page.wait_for_function("window.motionlift.ready === true || window.motionlift.error !== null", timeout=60_000)
    state = page.evaluate("({frames: motionlift.frames, tracks: motionlift.tracks.length, error: motionlift.error})")
    assert state == {"frames": 150, "tracks": 1, "error": None}
    start = page.evaluate("motionlift.frame")
    page.wait_for_function(f"motionlift.playing && motionlift.frame > {start} + 5", timeout=20_000)
    assert page.evaluate("motionlift.jointsDrawn") == 17  # one skeleton of 17 joints on screen
    assert page.text_content("#latency").startswith("service ")
    for selector in ("#view3d", "#view2d"):
        pixels = canvas_pixels(page, selector, tmp_path / "canvas.png")
        background = np.array([0x12, 0x12, 0x18])
        drawn = (np.abs(pixels - background).sum(axis=-1) > 60).sum()
        assert drawn > 300, selector  # a skeleton (and the 3D grid) on a dark background
    page.click("#play")  # pause, then scrub
    page.fill("#timeline", "10")
    page.dispatch_event("#timeline", "input")
    assert page.evaluate("[motionlift.playing, motionlift.frame]") == [False, 10]
    assert page.text_content("#frame") == "11 / 150"
    shot = Path(os.environ.get("MOTIONLIFT_SCREENSHOT", tmp_path / "viewer.png"))
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_a_refused_file_is_shown_with_its_reason(page: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": "world"}')
    page.set_input_files("#file", str(bad))
    page.wait_for_function("motionlift.error !== null", timeout=30_000)
    assert page.text_content("#status").startswith("422 invalid_input at file: unknown layout")
