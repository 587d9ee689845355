"""``make mlflow-ui``: the MLflow UI over the config's store, on loopback, in a real headless browser.

A registered model with a ``champion`` alias is written to a private store, ``jobs.mlflow_ui``'s
command serves it on a free loopback port, the REST API behind the UI names the alias, and
chromium (every non-loopback request sent to a dead proxy) renders the model's page, which must
show the model and its champion.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from jobs.mlflow_ui import command, environment
from models.registry import registry_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (loopback)
            return r.status, r.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_cfg):
    """A store with ``onerec_generator`` v1 (champion) and v2, served by ``jobs.mlflow_ui``."""
    home = tmp_path_factory.mktemp("mlflow-ui")
    cfg = tiny_cfg.model_copy(update={"home": str(home)})
    reg = registry_for(cfg)
    for name in ("a", "b"):
        ckpt = home / "ckpt" / name
        ckpt.mkdir(parents=True)
        (ckpt / "model.safetensors").write_text(name)
        (ckpt / "config.json").write_text("{}")
        reg.register(ckpt, {"ndcg@10": 0.1}, {"ds": "2026-10-01"})
    reg.set_alias("champion", "1", "first")
    port = _free_port()
    cmd = command(cfg, port)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"  # loopback only
    log = open(home / "ui.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, env=environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # a loaded 2-core box can take minutes to import mlflow
        while _get(f"{base}/health")[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow ui did not start (rc {proc.poll()}):\n{(home / 'ui.log').read_text()[-3000:]}")
            time.sleep(1)
        yield base, reg.name, home
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def test_the_ui_api_names_the_champion(ui):
    base, name, _ = ui
    status, body = _get(f"{base}/ajax-api/2.0/mlflow/registered-models/get?name={name}")
    assert status == 200
    model = json.loads(body)["registered_model"]
    assert model["name"] == name and {"alias": "champion", "version": "1"} in model["aliases"]


def test_the_ui_page_shows_the_model_and_its_champion(ui, tmp_path):
    from tests.ops.test_report_browser import chromium

    base, name, _ = ui
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        # loopback reaches the UI; anything else goes to a port nothing listens on
        "--proxy-server=127.0.0.1:9", "--disable-background-networking", "--disable-component-update",
        "--window-size=1280,2000", "--virtual-time-budget=30000", "--dump-dom", f"{base}/#/models/{name}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    text = re.sub(r"<[^>]+>", " ", out.stdout)
    assert name in text, f"rc {out.returncode}: {out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    assert re.search(r"champion", text), text[-3000:]
    assert re.search(r"Version\s*1", text), text[-3000:]


def test_no_telemetry_or_files_outside_home(ui):
    """The UI process runs with MLflow's telemetry off and writes nothing into the current directory."""
    env = environment()
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["DO_NOT_TRACK"] == "true"
    assert not [n for n in ("mlruns", "mlartifacts", "mlflow.db") if (Path.cwd() / n).exists()]
