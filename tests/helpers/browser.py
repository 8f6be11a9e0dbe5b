"""Headless Chromium for the page tests: Debian's ``chromium``, driven by playwright, with a
profile of its own removed afterwards (``make test`` installs it with apt as root:
scripts/ensure-browser.sh)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Skips a test where Chromium is not installed, saying how to install it.
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: run scripts/ensure-browser.sh"
)


@contextlib.contextmanager
def chromium_page(timeout_s: float) -> Iterator[tuple]:
    """``(page, errors)``: a page of a fresh headless Chromium (1500 x 1200) whose every wait
    is bounded by ``timeout_s``, and the list its uncaught script errors go to."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="xanes-chromium-")
    errors: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=BROWSER_ARGS,
                viewport={"width": 1500, "height": 1200},
            )
            try:
                browser.set_default_timeout(timeout_s * 1000)
                page = browser.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                yield page, errors
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
