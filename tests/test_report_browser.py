"""The HTML report in a real browser: headless Chromium loads it offline, and a probe script reports whether the
verdict matrix and every figure are present, decoded (non-zero natural size) and laid out visibly.

Needs Debian's ``chromium`` (``apt-get install -y chromium``) or ``$LALM_BENCH_CHROMIUM``; skipped, saying so,
only when no such browser is installed.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import pytest

from benchmark.report import write_report
from tests.test_report import synthetic_records

PROBE = """<script>
window.addEventListener('load', () => {
  const visible = el => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.display !== 'none' && s.visibility !== 'hidden' && +s.opacity > 0; };
  const table = document.getElementById('verdict-matrix');
  const images = [...document.images].map(i => ({alt: i.alt.slice(0, 60), complete: i.complete,
    width: i.naturalWidth, height: i.naturalHeight, visible: visible(i),
    kind: i.closest('figure') ? i.closest('figure').dataset.kind : null}));
  document.body.setAttribute('data-probe', JSON.stringify({
    matrix: !!table && visible(table), rows: table ? table.tBodies[0].rows.length : 0,
    header: table ? [...table.tHead.rows[0].cells].map(c => c.textContent) : [],
    unexpected: document.querySelectorAll('#verdict-matrix td.unexpected').length,
    dependent: document.querySelectorAll('#verdict-matrix .dependent').length, images}));
});
</script>"""


def _chromium() -> str | None:
    candidates = [os.environ.get("LALM_BENCH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
    return next((path for name in candidates if name and (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "no headless Chromium installed (apt-get install -y chromium, or set LALM_BENCH_CHROMIUM)"
        )
    out = tmp_path_factory.mktemp("browser")
    records = [r for r in synthetic_records() if r.claim_id.startswith(("T3", "S2"))]
    page = write_report(records, out, compare_to="gemma-3-270m-q4km")["html"]
    probe_page = out / "probe.html"
    probe_page.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    profile = out / "chromium-profile"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe_page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    match = re.search(r'data-probe="([^"]*)"', result.stdout)
    assert match, f"the probe did not run (exit {result.returncode}): {result.stderr[-2000:]}"
    return {
        "probe": json.loads(html.unescape(match.group(1))),
        "figures": sorted((out / "figures").glob("*.png")),
    }


def test_matrix_is_rendered_and_visible(probed: dict) -> None:
    probe = probed["probe"]
    assert probe["matrix"], "the verdict matrix is missing or not visible"
    assert probe["rows"] == 2  # T3 and S2
    assert {
        "gemma-3-270m-q4km [bare]",
        "gemma-3-270m-q4km [shared-suffix]",
        "smollm2-135m-q41 [shared-suffix]",
        "reproduces the paper",
    } <= set(probe["header"])
    assert probe["dependent"] == 2  # T3 on smollm2: holds under bare, fails under shared-suffix


def test_every_figure_is_decoded_and_visible(probed: dict) -> None:
    images = probed["probe"]["images"]
    assert len(images) == len(probed["figures"]) > 0
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, (
            f"figure not decoded: {image}"
        )
        assert image["visible"], f"figure not visible: {image}"
    assert {"effect", "curves", "compare", "tsne", "dendrogram"} <= {image["kind"] for image in images}
