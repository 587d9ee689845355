"""Run ``python -m <module> ARGS`` where only a file can be named (spark-submit, SparkApplication).

``spark-submit jobs/sequences.py`` would put ``jobs/`` first on ``sys.path``, where
``jobs/delta.py`` and ``jobs/spark.py`` shadow the ``delta`` (delta-spark) package.
This launcher lives in a folder with nothing else importable and runs the module the
way ``python -m`` does::

    spark-submit local:///opt/onerec/infra/docker/run_module.py jobs.sequences --ds 2026-11-26
"""

from __future__ import annotations

import runpy
import sys


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: run_module.py MODULE [ARGS...]")
    module = sys.argv.pop(1)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
