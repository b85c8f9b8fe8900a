"""The explorer page in a real browser: Debian's headless Chromium through Selenium (never a
downloaded browser). Each control is changed as a user would, and the plotted data, read back
from plotly's graph divs, are compared with the saved run of that configuration."""

import os
import time
from pathlib import Path

import numpy as np
import pytest

from figures import explorer
from tests.test_explorer import saved, tiny_grid  # noqa: F401  (session fixture)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HINT = "apt-get install chromium chromium-driver"

pytestmark = pytest.mark.slow


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install selenium)")
    if missing:
        message = f"browser tests need {', '.join(missing)}: {HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def page(tiny_grid):  # noqa: F811
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2300"):
        opts.add_argument(arg)
    # an explicit Service path: Selenium Manager never runs, nothing is downloaded
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    # selenium waits 120 s for each driver reply; on a loaded 2-core machine parsing the page
    # can take longer
    driver.command_executor.client_config.timeout = 600
    driver.set_script_timeout(60)
    driver.get((tiny_grid / "explorer.html").resolve().as_uri())
    _wait(driver, "return document.body.getAttribute('data-ready') === '1'", 300)
    yield driver
    driver.quit()


def _wait(driver, script, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if driver.execute_script(script):
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {script}")


def _choose(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, element_id)).select_by_value(value)


def _traces(driver, div: str) -> list[dict]:
    return driver.execute_script(
        f"return document.getElementById('{div}').data.map(t => ({{name: t.name, "
        "x: Array.from(t.x || []), y: Array.from(t.y || [])}))"
    )


def _check(driver, grid_dir) -> None:
    """The policy and curve traces of A and B equal the saved runs behind the current controls."""
    step = driver.execute_script("return explorer.state.step")
    pol, cur = _traces(driver, "policy"), _traces(driver, "curves")
    for k, side in enumerate("AB"):
        key = driver.execute_script(f"return explorer.key('{side}')")
        seed = driver.execute_script(f"return document.getElementById('{side}-seed').value")
        (mean, lo, hi), curves = saved(grid_dir, key, step, seed)
        for trace, want in zip((1, 2, 3), (lo, hi, mean), strict=True):
            got = np.asarray(pol[4 * k + trace]["y"], dtype=float)
            np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-4, err_msg=f"{key} {side}")
        for m in range(4):
            base = 6 * m + 3 * k
            for trace, want in zip(
                (0, 1, 2), (curves[m][1], curves[m][2], curves[m][0]), strict=True
            ):
                got = np.asarray(cur[base + trace]["y"], dtype=float)
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=key)


CONTROLS = [
    ("landscape", "bimodal"),
    ("A-objective", "lad:kl"),
    ("B-objective", "lad_theory:js"),
    ("A-eta", "0.5"),
    ("B-lr", "0.02"),
    ("A-mu", "5"),
    ("A-sampling", "G16"),
    ("A-seed", "1"),
    ("B-objective", "reinforce"),
    ("B-sampling", "G16"),  # after lad_theory, which is exact whatever the sampling
    ("B-seed", "0"),
]


def _set_step(driver, index: int) -> None:
    driver.execute_script(
        "const s = document.getElementById('step'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('input'))",
        index,
    )


def test_every_control_shows_the_saved_run(page, tiny_grid):  # noqa: F811
    _check(page, tiny_grid)
    _set_step(page, 3)  # the last saved step: every configuration has moved away from uniform
    seen = set()
    for element_id, value in CONTROLS:
        before = [_traces(page, d) for d in ("policy", "curves")]
        _choose(page, element_id, value)
        _check(page, tiny_grid)
        after = [_traces(page, d) for d in ("policy", "curves")]
        # every choice differs from the one before it, so the picture must change
        assert before != after, element_id
        seen.add(element_id.split("-")[-1])
    assert seen == {"landscape", "objective", "eta", "lr", "mu", "sampling", "seed"}


def test_step_slider_and_play(page, tiny_grid):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    slider = page.find_element(By.ID, "step")
    _set_step(page, 0)
    slider.send_keys(Keys.ARROW_RIGHT)
    assert page.execute_script("return explorer.state.step") == 1
    assert page.find_element(By.ID, "step-label").text == "step 10"
    _check(page, tiny_grid)
    shapes = page.execute_script("return document.getElementById('curves').layout.shapes")
    assert [s["x0"] for s in shapes] == [10] * 4  # the current step marked on every curve
    play = page.find_element(By.ID, "play")
    play.click()
    _wait(page, "return explorer.state.step !== 1", timeout=10)
    play.click()  # pause
    assert play.text == "play"
    stopped = page.execute_script("return explorer.state.step")
    time.sleep(0.6)
    assert page.execute_script("return explorer.state.step") == stopped
    _check(page, tiny_grid)


def test_divergence_panel_and_figure2(page):
    _choose(page, "divergence", "kl")
    theory = _traces(page, "theory")
    want = explorer.divergence_curves("kl")
    np.testing.assert_allclose(theory[0]["y"], want["f"], rtol=1e-12)
    np.testing.assert_allclose(theory[1]["y"], want["fp"], rtol=1e-12)
    np.testing.assert_allclose(theory[2]["y"], want["w"], rtol=1e-12)
    np.testing.assert_allclose(theory[4]["y"], want["push"], rtol=1e-12)
    np.testing.assert_allclose(theory[5]["y"], explorer.grpo_push()["push"])
    fig2 = _traces(page, "fig2")
    assert [t["name"] for t in fig2[1:4]] == [
        "GRPO unclipped",
        "LAD theoretical (kl)",
        "LAD practical (kl)",
    ]
    assert all(len(t["x"]) == 201 for t in fig2[1:4])  # 200 SGD steps and the start


def test_screenshot(page, tmp_path):
    path = tmp_path / "explorer.png"
    assert page.save_screenshot(str(path))
    assert path.stat().st_size > 20_000
