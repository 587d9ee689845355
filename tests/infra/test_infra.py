"""infra/: the deployment files parse, pin their images, keep secrets out, and agree with the code.

No Docker engine or Kubernetes cluster runs here, so everything is checked statically:
YAML parsed (multi-document, duplicate keys rejected), compose variables interpolated
the way ``docker compose`` does with the placeholder values of ``.env.example``, the
Dockerfile read instruction by instruction, shell scripts through ``bash -n``; then the
environment each deployment gives the pipeline is fed to ``conf.load_settings`` and the
DAG folder is parsed under it.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from conf.settings import REPO_ROOT, SparkSettings, load_settings

INFRA = REPO_ROOT / "infra"
COMPOSE_FILE = INFRA / "compose" / "docker-compose.yaml"
ENV_EXAMPLE = INFRA / "compose" / ".env.example"
DOCKER_DIR = INFRA / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
K8S = INFRA / "k8s"
HELM_VALUES = K8S / "airflow-values.yaml"
K8S_MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p != HELM_VALUES)
ALL_YAML = sorted([*INFRA.rglob("*.yaml"), *INFRA.rglob("*.yml")])
SHELL_SCRIPTS = sorted(INFRA.rglob("*.sh"))

REQUIRED_COMPOSE_SERVICES = {
    "postgres",
    "redis",
    "feast-redis",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "spark-master",
    "trainer",
}
CODE_DIRS = ("conf", "dags", "jobs", "features", "models", "serving", "expectations")
# Names whose value is a credential wherever they appear (env keys, config keys).
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|FERNET|PRIVATE_KEY|ACCESS_KEY|API_KEY|REDISCLI_AUTH", re.I)
COMPOSE_REQUIRED_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}$")
K8S_REF = re.compile(r"^\$\([A-Za-z_][A-Za-z0-9_]*\)$")
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
POD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
SAMPLE_DS = {"{{ ds }}": "2026-11-26", "{{ ds_nodash }}": "20261126"}


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (``<<`` merges may override)."""

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


@cache
def _docs(path: Path) -> tuple[Any, ...]:
    return tuple(d for d in yaml.safe_load_all(path.read_text()) if d is not None)


def _walk(node: Any, path: str = ""):
    """Yield (dotted path, key, value) for every mapping entry and list item, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield f"{path}[{i}]", None, value
            yield from _walk(value, f"{path}[{i}]")


def _strings(node: Any):
    for where, _, value in _walk(node):
        if isinstance(value, str):
            yield where, value


_COMPOSE_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _interpolate(text: str, env: dict[str, str]) -> str:
    """``docker compose`` variable interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        value = env.get(name)
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise KeyError(f"compose would stop: {name} unset ({arg})")
        return value or ""

    return _COMPOSE_VAR.sub(sub, text)


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env) for v in node]
    return _interpolate(node, env) if isinstance(node, str) else node


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _compose_raw() -> dict:
    return _docs(COMPOSE_FILE)[0]


def _compose() -> dict:
    """The compose file as ``docker compose config`` would see it with .env.example's values."""
    return _interpolate_tree(_compose_raw(), _env_example())


def _env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _assert_pinned(image: str, where: str) -> None:
    assert image and "${" not in image and "$(" not in image, f"{where}: image {image!r} is not resolved"
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    assert tag or digest, f"{where}: image {image!r} has no tag (means :latest)"
    assert tag.lower() != "latest", f"{where}: image {image!r} uses :latest"
    assert not re.fullmatch(r"\d+", tag) or digest, f"{where}: image {image!r} pins only a major version"


def _is_reference(value: str) -> bool:
    """``${VAR...}`` (compose), ``$(VAR)`` (Kubernetes) or ``"$VAR"`` (shell): a value taken from a variable."""
    return bool(re.match(r'"?\$(\$?\{|\(|\$?[A-Za-z_])', value))


def _literal_credentials(text: str) -> list[str]:
    """Credentials written inline in a string: URL passwords, password= and --requirepass values not from a variable."""
    found = []
    for m in re.finditer(r"[a-z][a-z0-9+.-]*://([^/@\s]*)@", text):
        password = m.group(1).partition(":")[2]
        if password and not _is_reference(password):
            found.append(m.group(0))
    for pattern in (r"password=([^,\s]+)", r"--requirepass\s+(\S+)"):
        for m in re.finditer(pattern, text, re.I):
            if not _is_reference(m.group(1)):
                found.append(m.group(0))
    return found


def _host_port(address: str) -> tuple[str, int]:
    """'spark://h:7077' / 'postgresql+psycopg2://u:p@h:5432/db' / 'h:6379,password=..' -> (h, port)."""
    if "://" in address:
        parts = urlsplit(address)
        return parts.hostname or "", parts.port or 0
    host, _, port = address.split(",", 1)[0].partition(":")
    return host, int(port or 0)


def _settings_under(monkeypatch, env: dict[str, str], config: str = "cluster"):
    """load_settings() in a process whose environment is ``env`` (plus ONEREC_CONFIG), nothing else of ours."""
    import os

    for key in list(os.environ):
        if key.startswith("ONEREC"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ONEREC_CONFIG", config)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def _onerec_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("ONEREC")}


def _pod_specs(doc: dict) -> list[dict]:
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        return [spec]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if kind in POD_KINDS:
        return [spec["template"]["spec"]]
    return []


def _containers(pod_spec: dict) -> list[dict]:
    return [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]


def _k8s_docs() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in K8S_MANIFESTS for doc in _docs(path)]


def _k8s_doc(kind: str, name: str | None = None) -> dict:
    matches = [d for _, d in _k8s_docs() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''} in infra/k8s, found {len(matches)}"
    return matches[0]


def _requirement(name: str) -> str:
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(rf"^{re.escape(name)}(\[[^\]]*\])?==([^\s#]+)", line.strip(), re.I)
        if m:
            return m.group(2)
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        op, _, args = current.partition(" ")
        instructions.append((op.upper(), args.strip()))
        current = ""
    return instructions


def _dockerfile_env() -> dict[str, str]:
    env = {}
    for op, args in _dockerfile():
        if op == "ENV":
            for token in shlex.split(args):
                key, sep, value = token.partition("=")
                if sep:
                    env[key] = value
    return env


def _helm() -> dict:
    return _docs(HELM_VALUES)[0]


def _helm_env() -> dict[str, str]:
    """The env every Airflow container / task pod gets from the values, $(VAR) expanded like Kubernetes does."""
    values = _helm()
    fake_from_cluster = {
        "POD_IP": "10.1.2.3",
        "POD_NAME": "onerec-daily-sequences-abc12",
        "POD_NAMESPACE": "onerec",
    }
    env: dict[str, str] = {}
    for item in values.get("env") or []:
        env[item["name"]] = str(item["value"])
    for item in values.get("secret") or []:
        env[item["envName"]] = f"secret:{item['secretName']}/{item['secretKey']}"
    for item in yaml.safe_load(values.get("extraEnv") or "[]") or []:
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m.group(1)], str(item["value"]))
        else:
            env[item["name"]] = fake_from_cluster[item["name"]]
    return env


# ---------------------------------------------------------------------------------------
# every YAML file
# ---------------------------------------------------------------------------------------
def test_infra_has_the_expected_files():
    for rel in (
        "docker/Dockerfile",
        "compose/docker-compose.yaml",
        "compose/.env.example",
        "k8s/airflow-values.yaml",
        "k8s/spark-application.yaml",
        "k8s/train-job.yaml",
        "k8s/feast-redis.yaml",
        "README.md",
    ):
        assert (INFRA / rel).is_file(), rel


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(INFRA)))
def test_yaml_parses_and_is_clean(path: Path):
    text = path.read_text()
    docs = list(yaml.safe_load_all(text))
    assert any(d is not None for d in docs), f"{path} holds no document"
    list(yaml.load_all(text, Loader=_StrictLoader))  # duplicate keys
    # yamllint-style basics, by hand (no new dependency)
    assert text.endswith("\n"), "no newline at end of file"
    for n, line in enumerate(text.splitlines(), 1):
        assert "\t" not in line, f"{path.name}:{n}: tab"
        assert line == line.rstrip(), f"{path.name}:{n}: trailing whitespace"
        assert len(line) <= 160, f"{path.name}:{n}: line longer than 160"


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(INFRA)))
def test_shell_scripts_parse(path: Path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    subprocess.run([bash, "-n", str(path)], check=True, timeout=10)
    assert path.read_text().startswith("#!"), "no shebang"


# ---------------------------------------------------------------------------------------
# compose
# ---------------------------------------------------------------------------------------
def test_compose_has_the_services_and_two_spark_workers():
    services = _compose()["services"]
    assert REQUIRED_COMPOSE_SERVICES <= set(services), REQUIRED_COMPOSE_SERVICES - set(services)
    workers = [n for n, s in services.items() if _command(s)[:1] == ["spark-worker"]]
    assert len(workers) >= 2, workers
    master_url = _env_of(services["airflow-worker"])["ONEREC__SPARK__MASTER"]
    for name in workers:
        assert master_url in _command(services[name]), f"{name} does not join {master_url}"
    for name, service in services.items():
        for dep in service.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_compose_airflow_is_celery_with_postgres_redis_and_auth():
    services = _compose()["services"]
    airflow = {n: s for n, s in services.items() if "AIRFLOW__CORE__EXECUTOR" in _env_of(s)}
    assert {n for n in REQUIRED_COMPOSE_SERVICES if n.startswith("airflow-")} <= set(airflow)
    for name, service in airflow.items():
        env = _env_of(service)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        db = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert db.scheme.startswith("postgresql") and db.hostname in services, name
        assert "postgres" in services[db.hostname]["image"], name
        broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
        assert broker.scheme == "redis" and broker.hostname in services, name
        assert services[broker.hostname]["image"].startswith("redis:"), name
        assert urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"]).hostname == db.hostname, name
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("AuthManager"), name
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
            assert env[key], f"{name}: {key}"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/"), name
        assert env["ONEREC_CONFIG"] == "cluster", name
    # one image for all Airflow services: the same code everywhere
    assert len({s["image"] for s in airflow.values()}) == 1


def test_compose_init_migrates_and_creates_the_gpu_pool():
    services = _compose()["services"]
    script = " ".join(_command(services["airflow-init"]))
    assert "airflow db migrate" in script
    assert re.search(r'airflow pools set gpu 1 "GPU training"', script)
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-worker"):
        condition = services[name]["depends_on"]["airflow-init"]["condition"]
        assert condition == "service_completed_successfully", name


def test_compose_images_are_pinned_and_ours_is_built_from_the_dockerfile():
    for name, service in _compose()["services"].items():
        assert "image" in service, f"{name}: no image"
        _assert_pinned(service["image"], f"compose service {name}")
        if "build" in service:
            build = service["build"]
            context = (COMPOSE_FILE.parent / build["context"]).resolve()
            assert context == REPO_ROOT, f"{name}: build context {context}"
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_has_no_literal_secrets():
    raw = _compose_raw()
    for where, key, value in _walk(raw):
        if isinstance(key, str) and SECRET_NAME.search(key) and not isinstance(value, dict | list):
            assert isinstance(value, str) and COMPOSE_REQUIRED_REF.match(value), (
                f"{where}: a secret must come from ${{VAR:?...}}, found {value!r}"
            )
    for where, text in _strings(raw):
        assert not _literal_credentials(text), f"{where}: literal credential in {text!r}"


def test_env_example_names_every_required_variable_with_placeholders_only():
    values = " ".join(text for _, text in _strings(_compose_raw()))
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", values))
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "FEAST_REDIS_PASSWORD", "AIRFLOW_FERNET_KEY"} <= required
    example = _env_example()
    assert required <= set(example), f"missing in .env.example: {sorted(required - set(example))}"
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value in {"", "change-me"}, f".env.example {key} must be a placeholder, found {value!r}"
    _compose()  # interpolates with exactly these values: no required variable left unset
    assert (INFRA / "compose" / ".gitignore").read_text().split() == [".env"]


def test_compose_healthchecks():
    services = _compose()["services"]
    for name in ("postgres", "redis", "feast-redis"):
        test = services[name]["healthcheck"]["test"]
        assert test and test[0] in {"CMD", "CMD-SHELL"}, name
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "ping" in services["redis"]["healthcheck"]["test"]
    for name, service in services.items():  # every long-running service reports its health
        if service.get("restart") != "no":
            assert service.get("healthcheck"), f"{name} has no healthcheck"


def test_compose_gpu_trainer_requests_nvidia_and_runs_torchrun():
    services = _compose()["services"]
    trainer = services["trainer"]
    devices = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    cmd = _command(trainer)
    assert cmd[0] == "torchrun" and any(a.startswith("--nproc_per_node") for a in cmd)
    assert cmd[cmd.index("-m") + 1] == "models.train"
    assert (REPO_ROOT / "models" / "train.py").is_file()
    data = cmd[cmd.index("--data") + 1]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in trainer["volumes"]}
    assert any(data.startswith(path + "/") for path in mounts), f"trainer reads {data} outside its volumes"


def test_compose_lake_is_shared_by_the_spark_driver_and_executors():
    """The driver (in the Celery worker) and the executors must see the lake at the same path."""
    services = _compose()["services"]
    lake = _env_of(services["airflow-worker"])["ONEREC__LAKE_ROOT"]
    raw = _env_of(services["airflow-worker"])["ONEREC__SOURCE__PATH"]
    spark_workers = [s for s in services.values() if _command(s)[:1] == ["spark-worker"]]
    for service in [services["airflow-worker"], *spark_workers]:
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        for path in (lake, raw):
            owners = [vol for mount, vol in mounts.items() if path.startswith(mount + "/")]
            assert owners == ["onerec-data"], f"{path} is not on the shared volume in {service['command']}"


# ---------------------------------------------------------------------------------------
# conf/cluster.yaml <-> compose
# ---------------------------------------------------------------------------------------
def test_cluster_conf_loads_and_matches_compose():
    cfg = load_settings("cluster")
    services = _compose()["services"]
    env = _env_of(services["airflow-worker"])
    # the master the DAG's Spark sessions connect to is the compose master
    assert cfg.spark.master == env["ONEREC__SPARK__MASTER"]
    host, port = _host_port(cfg.spark.master)
    master_cmd = _command(services[host])
    assert master_cmd[0] == "spark-master" and master_cmd[master_cmd.index("--port") + 1] == str(port)
    # the metadata DB: same scheme, user, host, port and database as compose (password comes from env)
    ours, theirs = urlsplit(cfg.airflow.sql_alchemy_conn), urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (ours.scheme, ours.username, ours.hostname, ours.port, ours.path) == (
        theirs.scheme,
        theirs.username,
        theirs.hostname,
        theirs.port,
        theirs.path,
    )
    assert ours.password is None, "cluster.yaml must not hold the DB password"
    assert cfg.airflow.executor == env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # the online store is Redis, and compose runs one for it
    assert cfg.feast.online_store == "redis"
    feast_host, feast_port = _host_port(env["ONEREC__FEAST__REDIS_CONNECTION"])
    assert services[feast_host]["image"].startswith("redis:") and feast_port == 6379


def test_compose_environment_gives_a_valid_cluster_config(monkeypatch):
    services = _compose()["services"]
    env = _env_of(services["airflow-worker"])
    cfg = _settings_under(monkeypatch, _onerec_env(env))
    cluster = load_settings("cluster")
    assert cfg.spark.master == "spark://spark-master:7077"
    # compose keeps its lake on the shared volume by default; cluster.yaml's s3a:// lake is the other
    # choice (the compose header says how), and runs for real in tests/cluster (conf/cluster-loopback.yaml)
    assert cfg.home == cluster.home and cfg.resolve(cfg.lake_root) in {"/data/onerec/lake", cluster.lake_root}
    # the env override replaces spark.extra_conf as a whole: it must keep cluster.yaml's keys
    assert set(cluster.spark.extra_conf) <= set(cfg.spark.extra_conf)
    # Feast: its own Redis (not the Celery broker), SQL registry in the compose Postgres
    broker_host = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname
    feast_host, _ = _host_port(cfg.feast.redis_connection)
    assert feast_host == "feast-redis" != broker_host
    assert _host_port(cfg.feast.registry)[0] == "postgres" and cfg.feast.registry.startswith("postgresql")
    assert _host_port(cfg.airflow.sql_alchemy_conn)[0] == "postgres"


def test_dag_imports_under_the_cluster_config(monkeypatch):
    """The same DAG file, unchanged, under ONEREC_CONFIG=cluster and the compose environment."""
    from airflow.dag_processing.dagbag import DagBag

    env = _onerec_env(_env_of(_compose()["services"]["airflow-worker"]))
    _settings_under(monkeypatch, env)
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    assert "onerec_daily" in bag.dag_ids
    from jobs import stages

    cfg = stages.settings_for_run(None)  # what each task resolves at run time
    assert cfg.spark.master == "spark://spark-master:7077" and cfg.feast.online_store == "redis"


# ---------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------
def test_dockerfile_base_is_pinned_and_matches_requirements():
    froms = [args for op, args in _dockerfile() if op == "FROM"]
    assert len(froms) == 1, froms
    image = froms[0].split()[0]
    _assert_pinned(image, "Dockerfile FROM")
    repo, tag = image.split("@")[0].rsplit(":", 1)
    assert repo == "apache/airflow"
    m = re.fullmatch(r"(\d+\.\d+\.\d+)-python(\d+\.\d+)", tag)
    assert m, f"tag {tag} should read <airflow version>-python<x.y>"
    assert m.group(1) == _requirement("apache-airflow"), "image Airflow != requirements.txt"
    target = re.search(r'target-version\s*=\s*"py(\d)(\d+)"', (REPO_ROOT / "pyproject.toml").read_text())
    assert m.group(2) == f"{target.group(1)}.{target.group(2)}", "image Python != pyproject target"


def test_dockerfile_installs_java_requirements_and_the_code():
    instructions = _dockerfile()
    runs = " ".join(args for op, args in instructions if op == "RUN")
    copies = [args.split() for op, args in instructions if op == "COPY"]
    assert "openjdk-17-jre-headless" in runs
    assert any("requirements.txt" in c for c in copies), "requirements.txt not copied"
    assert re.search(r"pip install [^&]*-r \S*requirements\.txt", runs), "requirements.txt not installed"
    env = _dockerfile_env()
    root = env["PYTHONPATH"]
    copied = {Path(c[-1]).as_posix(): c[-2] for c in copies}
    for name in CODE_DIRS:
        assert copied.get(f"{root}/{name}") == name, f"{name}/ is not copied to {root}/{name}"
    assert env["ONEREC_CONFIG"] == "cluster"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == f"{root}/dags"
    assert env["SPARK_HOME"] and env["JAVA_HOME"]


def test_dockerfile_runs_as_non_root_without_secrets():
    users = [args for op, args in _dockerfile() if op == "USER"]
    assert users, "no USER line"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"final USER is {users[-1]}"
    for op, args in _dockerfile():
        if op in {"ENV", "ARG"}:
            for token in shlex.split(args):
                key = token.split("=", 1)[0]
                assert not SECRET_NAME.search(key), f"{op} {key}: secrets are runtime env, never image layers"
    ignore = (DOCKER_DIR / "Dockerfile.dockerignore").read_text().split()
    assert {"var", ".git", "infra/compose/.env"} <= set(ignore)


def test_dockerfile_entrypoint_and_helpers():
    instructions = _dockerfile()
    entry = yaml.safe_load([args for op, args in instructions if op == "ENTRYPOINT"][-1])
    script = entry[-1]
    assert script.startswith("/opt/onerec/infra/docker/")
    local = DOCKER_DIR / Path(script).name
    assert local.is_file() and any(local.name in args for op, args in instructions if op == "COPY")
    roles = set(re.findall(r"^\s*([a-z|-]+)\)\s*$", local.read_text(), re.M))
    roles = {r for group in roles for r in group.split("|")}
    # roles used by compose (spark-master/-worker, torchrun) and by Spark on Kubernetes (driver/executor)
    assert {"driver", "executor", "spark-master", "spark-worker", "torchrun"} <= roles
    # the build-time Ivy cache is the one jobs/spark.py reads
    spec = importlib.util.spec_from_file_location("prefetch_jars", DOCKER_DIR / "prefetch_jars.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.IVY_DIR == SparkSettings().ivy_dir


# ---------------------------------------------------------------------------------------
# Kubernetes manifests
# ---------------------------------------------------------------------------------------
def test_k8s_manifests_are_objects_with_valid_names():
    assert {p.name for p in K8S_MANIFESTS} >= {"spark-application.yaml", "train-job.yaml", "feast-redis.yaml"}
    for path, doc in _k8s_docs():
        assert isinstance(doc, dict), path
        for field in ("apiVersion", "kind", "metadata"):
            assert doc.get(field), f"{path.name}: {field} missing"
        name = doc["metadata"].get("name")
        assert name, f"{path.name}: {doc['kind']} without metadata.name"
        for template, value in SAMPLE_DS.items():
            name = name.replace(template, value)
        assert DNS1123.match(name) and len(name) <= 63, f"{path.name}: bad name {name!r}"
        assert "namespace" not in doc["metadata"], f"{path.name}: choose the namespace with kubectl -n"
        assert doc["kind"] != "Secret", f"{path.name}: Secrets are created out of band, never committed"


def test_k8s_containers_have_resources_and_pinned_images():
    seen = 0
    for path, doc in _k8s_docs():
        for pod in _pod_specs(doc):
            for c in _containers(pod):
                seen += 1
                where = f"{path.name} {doc['kind']}/{doc['metadata']['name']} container {c['name']}"
                _assert_pinned(c["image"], where)
                res = c.get("resources") or {}
                assert {"cpu", "memory"} <= set(res.get("requests") or {}), f"{where}: requests"
                assert "memory" in (res.get("limits") or {}), f"{where}: memory limit"
        if doc["kind"] == "SparkApplication":
            _assert_pinned(doc["spec"]["image"], f"{path.name} SparkApplication")
            for role in ("driver", "executor"):
                assert doc["spec"][role].get("cores") and doc["spec"][role].get("memory"), role
    assert seen >= 3


def test_k8s_secrets_only_by_reference():
    for path, doc in _k8s_docs():
        for where, key, value in _walk(doc):
            if key == "env":
                for item in value:
                    if SECRET_NAME.search(item["name"]):
                        assert "value" not in item, f"{path.name}{where}: {item['name']} as a literal"
                        assert "secretKeyRef" in item["valueFrom"], f"{path.name}{where}: {item['name']}"
            elif isinstance(key, str) and SECRET_NAME.search(key) and isinstance(value, str):
                # Spark's secretKeyRef confs name a Secret and a key ("secret:key"); anything else is a leak
                assert "secretKeyRef" in key and re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9_.-]+", value), (
                    f"{path.name}{where}: {value!r}"
                )
        for where, text in _strings(doc):
            assert not _literal_credentials(text), f"{path.name}{where}: literal credential"


def test_k8s_gpu_training_job():
    job = _k8s_doc("Job", "onerec-train")
    pod = job["spec"]["template"]["spec"]
    trainer = next(c for c in pod["containers"] if c["name"] == "trainer")
    gpus = trainer["resources"]["limits"]["nvidia.com/gpu"]
    assert int(gpus) >= 1 and trainer["resources"]["requests"]["nvidia.com/gpu"] == gpus
    argv = shlex.split(trainer["args"][-1])
    assert argv[:2] == ["exec", "torchrun"] and argv[argv.index("-m") + 1] == "models.train"
    assert int(argv[argv.index("--nproc_per_node") + 1]) == int(gpus)
    assert int(argv[argv.index("--nnodes") + 1]) == job["spec"]["completions"] == job["spec"]["parallelism"]
    assert job["spec"]["completionMode"] == "Indexed"
    # rendezvous on pod 0 through the headless service the pods belong to
    host = argv[argv.index("--rdzv_endpoint") + 1].split(":")[0]
    assert host == f"{job['metadata']['name']}-0.{pod['subdomain']}"
    service = _k8s_doc("Service", pod["subdomain"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": job["metadata"]["name"]}
    # checkpoints on a persistent volume claim defined alongside; --out and --resume point there
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    mounts = {m["mountPath"]: m["name"] for m in trainer["volumeMounts"]}
    out = argv[argv.index("--out") + 1]
    volume = next(name for path, name in mounts.items() if out.startswith(path + "/"))
    _k8s_doc("PersistentVolumeClaim", claims[volume])
    assert "--resume" in argv
    assert any(t["key"] == "nvidia.com/gpu" for t in pod.get("tolerations", []))


def test_k8s_spark_application_matches_the_pipeline():
    app = _k8s_doc("SparkApplication")
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    spec = app["spec"]
    assert spec["type"] == "Python" and spec["mode"] == "cluster"
    assert spec["sparkVersion"] == _requirement("pyspark")
    # the Delta coordinate is exactly what jobs/spark.py asks for (configure_spark_with_delta_pip)
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    expected = configure_spark_with_delta_pip(SparkSession.builder)._options["spark.jars.packages"]
    assert expected == f"io.delta:delta-spark_4.2_2.13:{_requirement('delta-spark')}"
    assert spec["sparkConf"]["spark.jars.packages"] == expected
    assert spec["sparkConf"]["spark.jars.ivy"] == "/home/airflow/.cache/onerec/ivy"
    # `python -m jobs.<stage> --ds {{ ds }}` through the launcher baked into the image
    assert spec["mainApplicationFile"] == "local:///opt/onerec/infra/docker/run_module.py"
    module, *args = spec["arguments"]
    assert (REPO_ROOT / (module.replace(".", "/") + ".py")).is_file(), module
    assert args[:1] == ["--ds"] and args[1] == "{{ ds }}"
    # the driver builds its own session from cluster.yaml: master = this cluster, executor memory = cluster.yaml's
    conf = spec["sparkConf"]
    assert conf["spark.kubernetes.driverEnv.ONEREC__SPARK__MASTER"].startswith("k8s://https://")
    cluster = load_settings("cluster")
    assert spec["executor"]["memory"] == cluster.spark.extra_conf["spark.executor.memory"]
    assert spec["driver"]["memory"] == cluster.spark.driver_memory
    _k8s_doc("ServiceAccount", spec["driver"]["serviceAccount"])
    claims = {v for k, v in conf.items() if k.endswith(".options.claimName")}
    for claim in claims:
        _k8s_doc("PersistentVolumeClaim", claim)


def test_k8s_feast_redis():
    service = _k8s_doc("Service", "feast-redis")
    sts = _k8s_doc("StatefulSet", "feast-redis")
    assert service["spec"]["ports"][0]["port"] == 6379
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    redis = sts["spec"]["template"]["spec"]["containers"][0]
    assert redis["image"].startswith("redis:")
    assert "--requirepass" in redis["args"] and redis["readinessProbe"]
    assert sts["spec"]["volumeClaimTemplates"], "the online store should survive a restart"


# ---------------------------------------------------------------------------------------
# Helm values (official chart)
# ---------------------------------------------------------------------------------------
def test_helm_values_image_executor_and_database():
    values = _helm()
    assert values["executor"] in {"KubernetesExecutor", "CeleryExecutor"}
    ours = None
    for key in ("airflow", "pod_template"):
        image = values["images"][key]
        ref = f"{image['repository']}:{image['tag']}"
        _assert_pinned(ref, f"images.{key}")
        assert ours in (None, ref), "images.airflow and images.pod_template differ"
        ours = ref
    assert f"{values['defaultAirflowRepository']}:{values['defaultAirflowTag']}" == ours
    assert values["airflowVersion"] == _requirement("apache-airflow")
    assert values["postgresql"]["enabled"] is False
    assert values["data"]["metadataSecretName"]
    assert "metadataConnection" not in values["data"], "the DB URL (with its password) lives in the Secret"
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert values[key], key
    assert values["createUserJob"]["enabled"] is False
    # DAGs baked into the image
    assert values["dags"]["gitSync"]["enabled"] is False and values["dags"]["persistence"]["enabled"] is False
    assert values["config"]["core"]["dags_folder"] == _dockerfile_env()["AIRFLOW__CORE__DAGS_FOLDER"]
    assert values["config"]["core"]["auth_manager"].endswith("AuthManager")


def test_helm_values_secrets_only_by_reference():
    values = _helm()
    assert not values.get("extraSecrets"), "extraSecrets would put secret values in this file"
    for item in values["secret"]:
        assert set(item) == {"envName", "secretName", "secretKey"}, item
    for item in values.get("env") or []:
        assert not SECRET_NAME.search(item["name"]), f"env {item['name']}: use `secret:`"
    for item in yaml.safe_load(values["extraEnv"]):
        if SECRET_NAME.search(item["name"]):
            assert "secretKeyRef" in item.get("valueFrom", {}), item["name"]
    for where, key, value in _walk(values):
        if isinstance(key, str) and SECRET_NAME.search(key) and isinstance(value, str) and key != "extraEnv":
            assert key.endswith("SecretName") or key in {"secretName", "secretKey"}, f"{where}: {value!r}"
    for where, text in _strings(values):
        assert not _literal_credentials(text), f"{where}: literal credential"
    assert "{{" not in values["extraEnv"], "extraEnv is passed through tpl"


def test_helm_environment_gives_a_valid_cluster_config(monkeypatch):
    values = _helm()
    env = _helm_env()
    assert env["ONEREC_CONFIG"] == "cluster"
    cfg = _settings_under(monkeypatch, _onerec_env(env))
    cluster = load_settings("cluster")
    assert cfg.spark.master.startswith("k8s://https://")
    assert set(cluster.spark.extra_conf) <= set(cfg.spark.extra_conf)
    extra = cfg.spark.extra_conf
    pod_template = values["images"]["pod_template"]
    assert extra["spark.kubernetes.container.image"] == f"{pod_template['repository']}:{pod_template['tag']}"
    assert extra["spark.driver.host"] == "10.1.2.3"
    assert cfg.lake_root == cluster.lake_root  # the object-store lake of cluster.yaml
    # Feast: the Redis of feast-redis.yaml, its password from the Secret
    host, port = _host_port(cfg.feast.redis_connection)
    service = _k8s_doc("Service", host)
    assert port == service["spec"]["ports"][0]["port"]
    assert cfg.feast.redis_connection.endswith("password=secret:onerec-feast/redis-password")
    # task pods: the Spark service account and the shared PVC exist in infra/k8s
    _k8s_doc("ServiceAccount", values["workers"]["serviceAccount"]["name"])
    for volume in values["workers"]["extraVolumes"]:
        _k8s_doc("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    claim = extra["spark.kubernetes.executor.volumes.persistentVolumeClaim.onerec-data.options.claimName"]
    _k8s_doc("PersistentVolumeClaim", claim)
    mount = values["workers"]["extraVolumeMounts"][0]["mountPath"]
    assert cfg.home == mount and cfg.source.path.startswith(mount + "/")


def test_cluster_loopback_conf_is_cluster_yaml_on_loopback():
    """conf/cluster-loopback.yaml (tests/cluster runs it) differs from cluster.yaml only in hosts and sizes."""
    cluster, loop = load_settings("cluster"), load_settings("cluster-loopback")
    assert loop.lake_root == cluster.lake_root and loop.lake_root.startswith("s3a://")
    assert loop.spark.master.startswith("spark://127.0.0.1:") and cluster.spark.master.startswith("spark://")
    assert loop.spark.extra_packages[0] == cluster.spark.extra_packages[0] == "org.apache.hadoop:hadoop-aws:3.5.0"
    assert (loop.airflow.executor, loop.feast.online_store) == (cluster.airflow.executor, cluster.feast.online_store)
    assert loop.airflow.lake_pool == cluster.airflow.lake_pool == "lake_writer"
    assert urlsplit(loop.airflow.sql_alchemy_conn).scheme == urlsplit(cluster.airflow.sql_alchemy_conn).scheme
    assert urlsplit(loop.airflow.sql_alchemy_conn).password is None, "the password comes with the test's override"
    extra = loop.spark.extra_conf
    assert extra["spark.driver.host"] == "127.0.0.1" and "127.0.0.1" in extra["spark.hadoop.fs.s3a.endpoint"]
    assert not any("secret" in k.lower() or "access.key" in k.lower() for k in extra), "credentials come from env"
