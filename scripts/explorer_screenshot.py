"""Screenshot of an explorer page in Debian's headless Chromium (the docs' docs/figures/explorer.png).

    python scripts/explorer_screenshot.py results/explorer/explorer.html docs/figures/explorer.png

Needs `apt-get install chromium chromium-driver` and selenium; nothing is downloaded.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from labkit.io import atomic_write


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 1500) -> Path:
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.command_executor.client_config.timeout = 600  # a 15 MB page on a busy machine
    try:
        driver.get(page.resolve().as_uri())
        end = time.monotonic() + 120
        while not driver.execute_script("return document.body.getAttribute('data-ready') === '1'"):
            if time.monotonic() > end:
                raise TimeoutError(f"{page} did not finish loading")
            time.sleep(0.2)
        # the step a reader sees: the last one
        driver.execute_script(
            "const s = document.getElementById('step'); s.value = s.max;"
            "s.dispatchEvent(new Event('input'))"
        )
        time.sleep(1.0)
        atomic_write(out, driver.get_screenshot_as_png())
    finally:
        driver.quit()
    return out


if __name__ == "__main__":
    print(screenshot(Path(sys.argv[1]), Path(sys.argv[2])))
