"""Helpers of the browser tests: Debian's headless Chromium via Selenium, uvicorn in a thread."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


INSTALL_HINT = "the browser tests need Debian's chromium + chromium-driver (apt-get install -y chromium chromium-driver)"


def in_ci() -> bool:
    """True in CI (``CI=true``), where the browser tests must run: a missing Chromium fails them."""
    return os.environ.get("CI", "").lower() == "true"


def chromium_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) from PATH, or None."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium(width: int = 1400, height: int = 1000, command_timeout: float = 120) -> Iterator[Any]:
    """A headless Chromium driven by Selenium, with a throw-away profile.

    ``command_timeout``: seconds one WebDriver command may take. Software WebGL on a 2-core machine can keep
    the page busy for minutes while NiiVue uploads a 512 x 512 x 310 scan and its meshes, and a script
    run waits for the page.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError(f"Chromium or chromedriver is not on PATH: {INSTALL_HINT}")
    browser, driver_path = paths
    profile = tempfile.mkdtemp(prefix="limbseg-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.command_executor.client_config.timeout = command_timeout  # read at every request
    driver.set_script_timeout(command_timeout)  # a busy page delays even a synchronous script
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 and a free port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > end or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until(driver: Any, script: str, timeout: float = 60.0) -> Any:
    """Run a JS expression until it is truthy; its value is returned."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        if driver.execute_script("return !document.getElementById('seg-error').classList.contains('hidden')"):
            break
        time.sleep(0.2)
    error = driver.execute_script("return document.getElementById('seg-error').textContent")
    raise AssertionError(f"gave up waiting for {script!r}; page error: {error!r}")


FETCH_ZIP = """
const done = arguments[arguments.length - 1];
fetch(document.getElementById('seg-zip').href).then(r => r.arrayBuffer()).then(b => {
  const u = new Uint8Array(b); done([u.length, u[0], u[1]]); }).catch(e => done(String(e)));
"""
