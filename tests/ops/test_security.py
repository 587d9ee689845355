"""Security rules of the repository, checked over what git tracks.

* No secrets: no password-like literal outside placeholders that name an environment
  variable (``${X}``, ``$(X)``, ``change-me``, ``<...>``) or a Secret reference; no key
  material (private keys, cloud access keys, tokens).
* The cluster config names every endpoint without credentials: they come from the
  environment (``ONEREC__...``) or Airflow connections.
* Checkpoints only as safetensors: nothing under ``models/`` unpickles or pickles.
* Airflow's auth manager is on: the simple one locally (its generated passwords file
  outside the clone), FAB in ``infra/``.
"""

from __future__ import annotations

import ast
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from conf.settings import REPO_ROOT, load_settings

# A value is a placeholder when it points at where the secret really comes from.
PLACEHOLDER = re.compile(
    r"""^(\$\{[A-Za-z_][A-Za-z0-9_]*[^}]*\}|\$\([A-Za-z_][A-Za-z0-9_]*\)|\$[A-Za-z_][A-Za-z0-9_]*|change-me|\.\.\.|<[^>]*>|"""
    r"""secret:[\w./-]+|:'?[a-z_]+'?|\*+|xxx+)$""",
    re.I,
)
SECRET_KEY = r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|fernet[_-]?key)"
# Keys that name where a secret lives (a Secret, a key inside it, a file), not the secret itself.
REFERENCE_KEY = re.compile(r"(?i)(secret_?name|secret_?key|secretkeyref|_file|_path|_provider|_manager)$|secretkeyref")
# key: value / key=value / "key": "value" in config-like text (yaml, env, ini, shell, docs).
ASSIGNMENT = re.compile(rf"""(?i)\b([\w.-]*{SECRET_KEY}[\w.-]*)["']?\s*[:=]\s*["']?([^\s"',;)]+)""")
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:([^@\s/'\"]+)@")
KEY_MATERIAL = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36}\b|\bsk-[A-Za-z0-9]{32,}\b"
    r"|\bxox[abp]-[A-Za-z0-9-]{10,}"
)
VARIABLE_REF = re.compile(r"\$\{[^}]*\}|\$\([^)]*\)|:'[A-Za-z_]\w*'")  # shell, make, psql :'var'
CONFIG_SUFFIXES = {".yaml", ".yml", ".env", ".example", ".cfg", ".ini", ".toml", ".json", ".sh", ".conf", ".txt"}
CODE_SUFFIXES = {".py"}


@cache
def tracked_files() -> tuple[Path, ...]:
    """Text files git tracks (the test is about what would be pushed)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
    paths = [REPO_ROOT / p for p in out.stdout.decode().split("\0") if p]
    return tuple(p for p in paths if p.is_file() and p.stat().st_size < 2_000_000)


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def _is_placeholder(value: str) -> bool:
    """A reference, a marked placeholder, a regex or a one-letter example ('u:p@h'), not a credential."""
    value = value.strip().rstrip("`")
    return len(value) < 4 or bool(PLACEHOLDER.match(value)) or value.startswith(("${", "$(", "{{", "(", "["))


def config_leaks(text: str) -> list[str]:
    """Password-like literals in config-like text (one line each)."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith(("#", "//")) and "://" not in line:
            continue
        # ${VAR:?message} / $(VAR) / psql's :'var' are references, whatever their inside says.
        line = VARIABLE_REF.sub("${VAR}", line)
        for m in ASSIGNMENT.finditer(line):
            if not REFERENCE_KEY.search(m.group(1)) and not _is_placeholder(m.group(2)):
                found.append(line.strip())
        for m in URL_CREDENTIALS.finditer(line):
            if not _is_placeholder(m.group(1)):
                found.append(line.strip())
    return found


def code_leaks(text: str) -> list[str]:
    """Credentials inside Python string literals (URLs with passwords, password=... fragments)."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [f"{node.lineno}: {hit}" for hit in config_leaks(node.value) if "://" in hit or "password=" in hit]
    return found


def test_the_scanner_catches_literals_and_allows_placeholders():
    assert config_leaks("POSTGRES_PASSWORD=hunter2")
    assert config_leaks("url: postgresql://airflow:hunter2@db:5432/airflow")
    assert config_leaks('  "api_key": "3f9a0c"')
    assert code_leaks('URL = "redis://:s3cr3t@redis:6379/0"\n')
    for ok in (
        "POSTGRES_PASSWORD=change-me",
        "conn: postgresql+psycopg2://airflow:${POSTGRES_PASSWORD:?set it}@postgres:5432/airflow",
        "redis: feast-redis:6379,password=$(FEAST_REDIS_PASSWORD)",
        "secretName: onerec-airflow",
        "url: postgresql://airflow:...@<host>:5432/airflow",
    ):
        assert not config_leaks(ok), ok
    # spelled in pieces so this file itself holds no key-shaped literal
    assert KEY_MATERIAL.search("-----BEGIN RSA " + "PRIVATE KEY-----")
    assert KEY_MATERIAL.search("AKIA" + "ABCDEFGHIJKLMNOP")


def test_no_secrets_in_tracked_files():
    leaks = []
    for path in tracked_files():
        text = _text(path)
        if text is None:
            continue
        rel = path.relative_to(REPO_ROOT)
        leaks += [f"{rel}: key material" for _ in KEY_MATERIAL.finditer(text)][:1]
        if path.suffix in CODE_SUFFIXES:
            # this file spells leaks on purpose to test the scanner
            if rel != Path(__file__).relative_to(REPO_ROOT):
                leaks += [f"{rel}:{hit}" for hit in code_leaks(text)]
        elif path.suffix in CONFIG_SUFFIXES or path.name.startswith(("Dockerfile", ".env")) or path.suffix == "":
            leaks += [f"{rel}: {hit}" for hit in config_leaks(text)]
    assert not leaks, "secrets must come from the environment or Airflow connections:\n" + "\n".join(leaks)


def test_secret_holding_files_are_git_ignored():
    for name in ("infra/compose/.env", "var/airflow/simple_auth_manager_passwords.json.generated", ".env"):
        out = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO_ROOT, check=False)
        assert out.returncode == 0, f"{name} is not git-ignored"


def test_cluster_config_names_endpoints_without_credentials():
    cfg = load_settings("cluster")
    raw = yaml.safe_load((REPO_ROOT / "conf" / "cluster.yaml").read_text())
    assert not config_leaks(yaml.safe_dump(raw))
    for url in (cfg.airflow.sql_alchemy_conn, cfg.feast.registry):
        assert "@" in url and ":" not in url.split("://", 1)[1].split("@", 1)[0], f"{url}: password belongs in env"
    assert "password" not in cfg.feast.redis_connection


def test_cluster_credentials_come_from_the_environment(monkeypatch):
    secret = "from-the-env-" + "x" * 8
    url = f"postgresql+psycopg2://airflow:{secret}@postgres:5432/airflow"
    monkeypatch.setenv("ONEREC__AIRFLOW__SQL_ALCHEMY_CONN", url)
    assert load_settings("cluster").airflow.sql_alchemy_conn == url


# ---------------------------------------------------------------------------------------
# Checkpoints: safetensors only
# ---------------------------------------------------------------------------------------
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            yield owner, name, {k.arg: k.value for k in node.keywords}, node.lineno


def unsafe_deserialisation(source: str) -> list[str]:
    """Pickle-based loads or saves in ``source``."""
    tree = ast.parse(source)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.split(".")[0] in {"pickle", "cPickle", "dill", "joblib", "cloudpickle"} for n in names):
                hits.append(f"{node.lineno}: imports a pickle library")
    for owner, name, kwargs, line in _calls(tree):
        if owner == "torch" and name == "load":
            flag = kwargs.get("weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                hits.append(f"{line}: torch.load without weights_only=True")
        if owner == "torch" and name == "save":
            hits.append(f"{line}: torch.save pickles; use safetensors")
        if name == "load" and owner in {"np", "numpy"}:
            flag = kwargs.get("allow_pickle")
            if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                hits.append(f"{line}: np.load with allow_pickle")
        if name in {"read_pickle", "to_pickle"}:
            hits.append(f"{line}: pandas pickle")
    return hits


def test_the_pickle_check_catches_unsafe_loads():
    assert unsafe_deserialisation("import torch\ntorch.load('x')")
    assert unsafe_deserialisation("import torch\ntorch.load('x', weights_only=False)")
    assert unsafe_deserialisation("import pickle")
    assert unsafe_deserialisation("import numpy as np\nnp.load('x', allow_pickle=True)")
    assert not unsafe_deserialisation("import torch\ntorch.load('x', weights_only=True)")


@pytest.mark.parametrize("folder", ["models", "serving", "jobs", "features", "dags", "bench"])
def test_no_pickle_in_code(folder):
    hits = []
    for path in sorted((REPO_ROOT / folder).rglob("*.py")):
        hits += [f"{path.relative_to(REPO_ROOT)}:{h}" for h in unsafe_deserialisation(path.read_text())]
    assert not hits, "checkpoints are safetensors + JSON, never pickle:\n" + "\n".join(hits)


# ---------------------------------------------------------------------------------------
# Airflow auth manager
# ---------------------------------------------------------------------------------------
def test_local_airflow_runs_the_simple_auth_manager_with_generated_passwords(tiny_cfg, tmp_path):
    """Under the runner's environment Airflow uses SimpleAuthManager, not 'everyone is admin'.

    Its passwords file is generated on first start under AIRFLOW_HOME (inside $ONEREC_HOME,
    git-ignored), never committed.
    """
    import os
    import sys

    from dags.runner import airflow_env

    cfg = tiny_cfg.model_copy(update={"home": str(tmp_path)})
    env = {**os.environ, **airflow_env(cfg)}
    script = (
        "from airflow.configuration import conf;"
        "print(conf.get('core','auth_manager'));"
        "print(conf.getboolean('core','simple_auth_manager_all_admins'));"
        "print(conf.get('core','simple_auth_manager_users'));"
        "print(conf.get('core','simple_auth_manager_passwords_file', fallback=''))"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    manager, all_admins, users, passwords = out.stdout.splitlines()[-4:]
    assert manager.endswith("SimpleAuthManager"), manager
    assert all_admins == "False", "simple_auth_manager_all_admins would switch login off"
    assert users, "no users configured"
    passwords_file = Path(passwords or Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated")
    assert passwords_file.resolve().is_relative_to(tmp_path.resolve()), passwords_file


def test_cluster_airflow_uses_an_auth_manager():
    compose = yaml.safe_load((REPO_ROOT / "infra" / "compose" / "docker-compose.yaml").read_text())
    env = compose["x-airflow-common"]["environment"] if "x-airflow-common" in compose else {}
    values = yaml.safe_load((REPO_ROOT / "infra" / "k8s" / "airflow-values.yaml").read_text())
    managers = [env.get("AIRFLOW__CORE__AUTH_MANAGER", ""), values["config"]["core"]["auth_manager"]]
    for manager in managers:
        assert manager.endswith(("FabAuthManager", "SimpleAuthManager")), manager
