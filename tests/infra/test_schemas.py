"""infra/ against schemas: Kubernetes objects through ``kubernetes-validate`` (kubeconform's job,
offline: the OpenAPI schemas ship in the wheel), the compose file through the keys the
Compose Specification allows, and the torchrun training job's shape.

``test_infra.py`` checks what the files mean for this project; this file checks that a
cluster or ``docker compose`` would accept them at all.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from conf.settings import REPO_ROOT

K8S = REPO_ROOT / "infra" / "k8s"
HELM_VALUES = K8S / "airflow-values.yaml"
COMPOSE_FILE = REPO_ROOT / "infra" / "compose" / "docker-compose.yaml"
# The oldest Kubernetes minor the manifests promise to work on (Indexed Jobs, pod-index labels: 1.28+).
K8S_VERSION = "1.30.0"
# Custom resources: their schema comes with their operator, not with Kubernetes.
CRDS = {("sparkoperator.k8s.io/v1beta2", "SparkApplication")}

# Compose Specification (compose-spec.io), the keys this project may use.
COMPOSE_TOP = {"version", "name", "services", "networks", "volumes", "configs", "secrets", "include", "models"}
COMPOSE_SERVICE = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "volumes", "ports", "expose",
    "depends_on", "healthcheck", "restart", "deploy", "profiles", "user", "working_dir", "networks", "labels",
    "container_name", "hostname", "shm_size", "ulimits", "init", "stop_grace_period", "logging", "extra_hosts",
    "cap_add", "cap_drop", "security_opt", "read_only", "tmpfs", "runtime", "gpus", "mem_limit", "cpus",
}  # fmt: skip
HEALTHCHECK = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
RESTART = {"no", "always", "on-failure", "unless-stopped"}


def _k8s_objects() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path == HELM_VALUES:
            continue
        out += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


@pytest.fixture(scope="module")
def kv():
    return pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in requirements.txt")


@pytest.mark.parametrize(
    "name,doc", _k8s_objects(), ids=lambda v: v if isinstance(v, str) else f"{v['kind']}/{v['metadata']['name']}"
)
def test_k8s_objects_match_the_kubernetes_schema(kv, name, doc):
    if (doc["apiVersion"], doc["kind"]) in CRDS:
        pytest.skip(f"{doc['kind']} is a custom resource (schema ships with its operator)")
    # strict: unknown fields are errors too (a typo'd key would otherwise be silently ignored)
    kv.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_broken_object(kv):
    job = next(d for _, d in _k8s_objects() if d["kind"] == "Job")
    broken = yaml.safe_load(yaml.safe_dump(job))
    broken["spec"]["template"]["spec"]["containers"][0]["resourcez"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_VERSION, strict=True)


def test_spark_application_pod_fields_are_valid_kubernetes(kv):
    """The CRD embeds core types (volumes, env): check those against Kubernetes' own schema."""
    app = next(d for _, d in _k8s_objects() if d["kind"] == "SparkApplication")
    spec = app["spec"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"}, "spec": {"containers": []}}
    pod["spec"]["volumes"] = spec.get("volumes", [])
    for role in ("driver", "executor"):
        container = {"name": role, "image": spec["image"]}
        for key in ("env", "envFrom", "volumeMounts"):
            if spec[role].get(key):
                container[key] = spec[role][key]
        pod["spec"]["containers"].append(container)
    kv.validate(pod, K8S_VERSION, strict=True)


def test_torchrun_gpu_job_is_one_pod_per_node_with_every_gpu():
    job = next(d for _, d in _k8s_objects() if d["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    trainer = next(c for c in pod["containers"] if "torchrun" in " ".join(c.get("command", []) + c.get("args", [])))
    argv = shlex.split(" ".join(trainer.get("command", []) + trainer.get("args", [])).split("torchrun", 1)[1])
    flag = next(a for a in argv if a.replace("_", "-").startswith("--nproc-per-node"))
    nproc = flag.split("=", 1)[1] if "=" in flag else argv[argv.index(flag) + 1]
    assert int(nproc) == int(trainer["resources"]["limits"]["nvidia.com/gpu"])
    assert pod.get("restartPolicy") in {"Never", "OnFailure"}
    assert job["spec"].get("backoffLimit") is not None, "a failing trainer must not restart forever"


# ---------------------------------------------------------------------------------------
# Compose
# ---------------------------------------------------------------------------------------
def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_uses_only_specification_keys():
    compose = _compose()
    top = {k for k in compose if not k.startswith("x-")}
    assert top <= COMPOSE_TOP, top - COMPOSE_TOP
    for name, svc in compose["services"].items():
        assert set(svc) <= COMPOSE_SERVICE, f"{name}: unknown keys {set(svc) - COMPOSE_SERVICE}"
        assert "image" in svc or "build" in svc, name
        assert svc.get("restart", "no") in RESTART, name
        if "healthcheck" in svc:
            assert set(svc["healthcheck"]) <= HEALTHCHECK, name
            test = svc["healthcheck"]["test"]
            assert isinstance(test, str) or test[0] in {"CMD", "CMD-SHELL", "NONE"}, f"{name}: healthcheck.test"
        deps = svc.get("depends_on", {})
        if isinstance(deps, dict):
            for dep, spec in deps.items():
                assert dep in compose["services"], f"{name} depends on unknown {dep}"
                assert spec.get("condition", "service_started") in DEPENDS_CONDITIONS, f"{name} -> {dep}"
        else:
            assert set(deps) <= set(compose["services"]), name
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source and not source.startswith((".", "/", "~")):
                assert source in (compose.get("volumes") or {}), f"{name}: undeclared named volume {source}"
            elif source.startswith("."):
                assert (COMPOSE_FILE.parent / source).exists(), f"{name}: bind source {source} missing"


def test_compose_is_airflow3_celery_postgres_redis_spark_and_feast_redis():
    services = _compose()["services"]
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert "@redis:" in env["AIRFLOW__CELERY__BROKER_URL"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert {"airflow-apiserver", "airflow-dag-processor", "airflow-worker", "airflow-triggerer"} <= set(services)
    assert any("spark-master" in str(s.get("command")) for s in services.values())
    workers = [n for n, s in services.items() if "spark-worker" in str(s.get("command"))]
    assert len(workers) >= 2, workers
    assert env["ONEREC__FEAST__REDIS_CONNECTION"].startswith("feast-redis:") and "feast-redis" in services
    image = Path(REPO_ROOT / "infra" / "docker" / "Dockerfile").read_text()
    assert "FROM apache/airflow:3." in image
