"""The run report in a real headless browser (Debian's chromium) with no network.

The page of the first day run by ``daily_run`` (tests/conftest.py) is copied with one
probe script appended: after the ``load`` event it writes, into the DOM, what the
browser really laid out (every img/svg: decoded, natural and rendered size; the text
of the page). ``--dump-dom`` prints that DOM. Chromium runs with every request sent
to a dead proxy (127.0.0.1:9), so the page must work offline, as the report promises.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PROBE = """<script>
window.addEventListener("load", () => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
  const out = {
    images: [...document.images].map((im) => ({alt: im.alt, complete: im.complete, natural: [im.naturalWidth,
      im.naturalHeight], rendered: box(im), data_uri: im.src.startsWith("data:")})),
    svgs: [...document.querySelectorAll("svg")].map((s) => ({rendered: box(s)})),
    text: document.body.innerText,
  };
  const pre = document.createElement("pre");
  pre.id = "onerec-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium on this machine; .ci/run installs Debian's `chromium`")


def render(page: Path, work: Path) -> dict:
    """Load ``page`` (with the probe appended) in headless chromium, offline; the probe's JSON."""
    probed = work / page.name
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={work / 'profile'}",
        # no network: every request goes to a port nothing listens on (loopback too)
        "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        "--disable-background-networking", "--disable-component-update",
        "--window-size=1280,2000", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri(),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="onerec-probe">(.*?)</pre>', out.stdout, re.S)
    assert found, f"no probe output (rc {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    import html

    return json.loads(html.unescape(found.group(1)))


def test_the_browser_has_no_network(tmp_path):
    """Sanity check of the sandbox: a remote image does not load."""
    page = tmp_path / "remote.html"
    page.write_text('<html><body><img alt="remote" src="http://example.com/a.png"></body></html>')
    (probe,) = render(page, tmp_path)["images"]
    assert probe["natural"] == [0, 0]


def _day1_page(daily_run, cfg) -> tuple[str, Path]:
    ds = daily_run["days"][0].isoformat()
    return ds, Path(cfg.resolve(cfg.reports_dir)) / "runs" / ds / "index.html"


def test_plots_render(daily_run, tiny_cfg, tmp_path):
    _, page = _day1_page(daily_run, tiny_cfg)
    assert not re.search(r"""(src|href)=["']?https?://""", page.read_text()), "the report must work offline"
    probe = render(page, tmp_path)
    plots = probe["images"] + probe["svgs"]
    assert len(plots) >= 2, probe["images"]
    for im in probe["images"]:
        assert im["complete"] and im["data_uri"], im
        assert min(im["natural"]) > 10 and min(im["rendered"]) > 10, f"plot {im['alt']} did not render: {im}"
    for svg in probe["svgs"]:
        assert min(svg["rendered"]) > 0, svg


def test_key_numbers_render(daily_run, tmp_path, tiny_cfg):
    ds, page = _day1_page(daily_run, tiny_cfg)
    text = render(page, tmp_path)["text"]
    books = json.loads((page.parent / "ingest.json").read_text())["events"]
    m = re.search(r"(\d+) raw rows = (\d+) accepted \+ (\d+) quarantined", text)
    assert m, text[:2000]
    raw, accepted, quarantined = map(int, m.groups())
    assert (raw, accepted, quarantined) == (books["raw"], books["accepted"], books["quarantined"])
    assert raw == accepted + quarantined and quarantined >= tiny_cfg.sample.broken_rows_per_day
    # the tables section shows the day's event count
    events = re.search(r"bronze\.events\[ds\]\s+(\d+)", text)
    assert events and int(events.group(1)) == accepted
    assert ds in text
