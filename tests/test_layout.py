"""The code's layering, read from the source (AST, nothing imported).

* ``models/`` is the numerical layer: it imports nothing from ``jobs/``, ``serving/``, ``dags/``
  or ``bench/``; ``jobs/`` imports nothing from ``serving/``, ``dags/`` or ``bench/``; no project
  module imports ``tests/``.
* No two project modules import each other, directly or round a longer circle (function-level
  imports count: they are how circles hide; ``if TYPE_CHECKING:`` imports do not, they never run).
* No absolute path of a machine (a workspace, root's or a user's home folder) in the code or its docs.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("conf", "dags", "jobs", "features", "models", "serving", "expectations", "bench")
FORBIDDEN = {
    "models": {"jobs", "serving", "dags", "bench", "tests"},
    "jobs": {"serving", "dags", "bench", "tests"},
    "features": {"serving", "dags", "bench", "tests"},
    "expectations": {"serving", "dags", "bench", "tests"},
    "conf": {"jobs", "models", "serving", "dags", "features", "expectations", "bench", "tests"},
    "serving": {"dags", "bench", "tests"},
    "dags": {"bench", "tests"},
}
# Import circles tolerated for now: none (a new one fails the test).
KNOWN_CYCLES: set[frozenset[str]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules ``name`` imports (``from pkg import mod`` resolves to ``pkg.mod``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    # keep the longest project-module prefix of each name
    resolved = set()
    for target in found:
        parts = target.split(".")
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in known:
                resolved.add(".".join(parts[:n]))
                break
        if parts[0] == "tests":
            resolved.add("tests")
    return resolved - {name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def test_scan_sees_the_imports(graph):
    """The scan itself works: known arrows are found (a scan that finds nothing would pass everything)."""
    assert "models.generator" in graph["models.lazy_decoder"]
    assert "models.lazy_decoder" in graph["models.onerec"]  # a function-level import
    assert "serving.recommend" in graph["serving.serve"]
    assert "jobs.feature_store_check" in graph["jobs.feature_store"]


def test_lower_layers_never_import_upper_ones(graph):
    bad = [
        f"{mod} imports {dep}"
        for mod, deps in sorted(graph.items())
        for dep in sorted(deps)
        if dep.split(".")[0] in FORBIDDEN.get(mod.split(".")[0], set())
    ]
    assert bad == []


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            for dep in it:
                if dep not in graph:
                    continue
                if dep not in index:
                    index[dep] = low[dep] = counter
                    counter += 1
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(sorted(graph[dep]))))
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index[dep])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp.add(member)
                        if member == node:
                            break
                    if len(comp) > 1:
                        out.append(frozenset(comp))
    return out


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles(graph):
    found = set(_cycles(graph))
    assert found == KNOWN_CYCLES, f"import circles: {[sorted(c) for c in found - KNOWN_CYCLES]}"


MACHINE_PATH = re.compile(r"(?<![\w.{}$-])/(?:work|root|home)/")
# The container image's own home (infra/docker/Dockerfile, user airflow) is the project's, not a machine's.
IMAGE_PATH = re.compile(r"(?<=/)home/airflow/")  # the leading slash is matched, not spelt here


def test_no_absolute_machine_paths():
    """Code, config and docs name paths relative to the repo or ``{home}``, never one machine's."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for rel in files:
        if not rel.endswith((".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".cfg", ".txt")) and rel != "Makefile":
            continue
        if rel == "tests/test_layout.py":
            continue
        path = REPO / rel
        if not path.is_file():
            continue
        for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(IMAGE_PATH.sub("image/", line)):
                hits.append(f"{rel}:{no}: {line.strip()[:100]}")
    assert hits == []
