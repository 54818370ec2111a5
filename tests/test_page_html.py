"""`peakrec query ... --html FILE`: the page as HTML with titles, brands, prices, scores and reasons,
escaped, and rendered by headless Chromium (the DOM it builds is read back, and a screenshot taken)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_engine import write_bundle
from peakrec.service.client import Item, Page
from peakrec.service.pagehtml import page_html
from service_harness import Server


def _page(**over) -> Page:
    items = [
        Item("A1", 1.25, "found by ann; member", "Nike 跑步鞋 <b>carbon</b>", "Nike", 591.9),
        Item("B2", 0.5, "found by region-popular", "Tee & shorts", "安踏", None),
    ]
    fields = {"items": items, "bundle_version": "v3", "eligible_count": 160000} | over
    return Page(**fields)


def test_html_has_every_column_and_escapes_text():
    html = page_html(_page(), "Storefront for u1 <x>")
    assert "<title>Storefront for u1 &lt;x&gt;</title>" in html
    assert "Nike 跑步鞋 &lt;b&gt;carbon&lt;/b&gt;" in html and "<b>" not in html
    assert "Tee &amp; shorts" in html and ">591.90<" in html and ">1.2500<" in html
    assert "found by ann; member" in html and "bundle v3" in html and "eligible 160,000" in html
    assert "<script" not in html and "http" not in html  # self-contained


def test_html_flags_cold_and_degraded_pages():
    html = page_html(_page(cold=True, degraded=True), "x")
    assert "cold shopper" in html and '<span class="warn">DEGRADED</span>' in html
    assert "no items" in page_html(_page(items=[]), "x")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no chromium here (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    bundles = tmp_path_factory.mktemp("html") / "bundles"
    write_bundle(bundles, "v1")
    with Server(bundles, workers=1, engine="fake_engine") as s:
        yield s


@pytest.mark.slow
def test_query_html_renders_in_headless_chromium(server: Server, tmp_path: Path):
    chromium = _chromium()
    out = tmp_path / "page.html"
    cmd = [sys.executable, "-m", "peakrec.cli", "query", "storefront", "--target", server.target]
    done = subprocess.run(
        [*cmd, "--user", "u42", "--size", "5", "--html", str(out)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split()[:2] == ["#", "item"]  # the table is still printed
    headless = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    home = {**os.environ, "HOME": str(tmp_path)}  # chromium writes its profile there
    dom = subprocess.run(
        [*headless, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120, env=home
    ).stdout
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td>", dom)
    assert rows == ["1", "2", "3", "4", "5"], dom[:2000]
    assert "item 0 (v1)" in dom and "acme" in dom and "9.90" in dom and "popular" in dom
    assert "<h1>Storefront for u42</h1>" in dom
    shot = tmp_path / "page.png"
    subprocess.run(
        [*headless, f"--screenshot={shot}", "--window-size=1000,500", out.as_uri()],
        capture_output=True,
        timeout=120,
        env=home,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
