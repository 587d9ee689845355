"""jobs/worker_preload.py: processes forked after the preload use the parent's Spark driver, one at a time.

The fork test runs in its own interpreter (a local[2] session of its own): the at-fork hook it
registers is for the life of a process, and pytest's process must not carry it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conf.settings import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import gc, json, os, sys, time
    from conf.settings import load_settings
    from jobs import worker_preload
    from jobs.spark import get_spark

    cfg = load_settings("tiny", [f"home={sys.argv[1]}", "spark.master=local[2]"])
    spark = get_spark(cfg)
    kept = spark.range(3)  # a Java object made before the forks, dropped by a child, used after
    worker_preload.share_with_forks()
    out = {}

    def fork(name, body, kill_after=None):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                value = body()
            except BaseException as exc:  # reported, not raised: a fork must _exit
                value = f"error: {exc!r}"
            os.write(w, json.dumps(value, default=str).encode())
            os._exit(0)
        os.close(w)
        if kill_after is not None:
            time.sleep(kill_after)
            os.kill(pid, 9)
        os.waitpid(pid, 0)
        with os.fdopen(r) as fh:
            out[name] = json.loads(fh.read() or "null")

    def first():
        s = get_spark(cfg)  # the inherited session, found through the child's own connection
        return {"same": s is spark, "sum": s.range(1000).selectExpr("sum(id)").first()[0]}

    def drop_parent_objects():
        global kept
        n = kept.count()
        kept = None
        gc.collect()
        return n

    def killed_mid_call():  # killed while it waits on the JVM for a long job
        return get_spark(cfg).range(10**11).selectExpr("count(*)").first()[0]

    fork("first", first)
    fork("dropped", drop_parent_objects)
    fork("killed", killed_mid_call, kill_after=3)
    spark.sparkContext.cancelAllJobs()
    fork("after_kill", lambda: [get_spark(cfg).range(7).count(), kept.count()])
    out["parent"] = [spark.range(5).count(), kept.count()]
    print(json.dumps(out))
    """
)


@pytest.mark.timeout(600)
def test_forked_processes_share_the_parents_session(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=540, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["first"] == {"same": True, "sum": 499500}
    assert out["dropped"] == 3
    assert out["killed"] is None  # killed: wrote nothing
    # a child killed in the middle of a py4j call leaves nothing behind for the next one, and the
    # Java object a child dropped still exists for the parent and the later children
    assert out["after_kill"] == [7, 3]
    assert out["parent"] == [5, 3]


def test_install_connects_only_when_asked(monkeypatch):
    from celery.signals import worker_init

    from jobs import worker_preload

    before = len(worker_init.receivers)
    monkeypatch.delenv(worker_preload.ENV, raising=False)
    worker_preload.install()
    assert len(worker_init.receivers) == before
    monkeypatch.setenv(worker_preload.ENV, "imports")
    worker_preload.install()
    try:
        assert len(worker_init.receivers) == before + 1
    finally:
        worker_init.disconnect(worker_preload.on_worker_init)
