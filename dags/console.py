"""The runner's quiet console: one line per task, the full logs in a file.

Airflow's ``dag.test()`` runs every task in this process and logs to the console, and
the JVM behind Spark writes to the process's stderr. :class:`QuietConsole` points file
descriptors 1 and 2 at ``<log_dir>/run-<time>.log`` (so everything lands there, the JVM
that starts later included) and keeps a private copy of the terminal for the progress
lines. A listener (Airflow's public listener hooks, called in-process by ``dag.test()``)
prints ``task  state  seconds`` as each task ends; a failure prints the task's last log
lines and the log's path. ``verbose``: nothing is redirected, the progress lines are
printed among the logs.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TextIO

TAIL_LINES = 25


class QuietConsole:
    """Context manager: logs to a file (unless ``verbose``), progress lines to the terminal."""

    def __init__(self, log_dir: Path, verbose: bool = False) -> None:
        self.verbose = verbose
        self.log_path: Path | None = None
        if not verbose:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = log_dir / f"run-{datetime.now():%Y%m%d-%H%M%S}.log"
        self._saved: tuple[int, int] | None = None
        self._streams: tuple[TextIO, TextIO] = (sys.stdout, sys.stderr)
        self.term: TextIO = sys.stdout
        self._task_start: dict[str, tuple[float, int]] = {}

    def __enter__(self) -> QuietConsole:
        if self.log_path is None:
            return self
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        self.term = os.fdopen(os.dup(self._saved[0]), "w", buffering=1)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        # Python-level writers too (print, logging set up later), even where sys.stdout was replaced.
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = os.fdopen(os.dup(1), "w", buffering=1)
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
        latest = self.log_path.parent / "latest.log"
        latest.unlink(missing_ok=True)
        latest.symlink_to(self.log_path.name)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        # Left open: loggers configured inside the run keep these streams, and late messages
        # (shutdown hooks) still land in the log file instead of failing on a closed file.
        sys.stdout, sys.stderr = self._streams
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        self._saved = None
        self.term.close()
        self.term = sys.stdout

    def say(self, text: str) -> None:
        """One line on the terminal (never into the log file)."""
        print(text, file=self.term, flush=True)

    def _log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path and self.log_path.exists() else 0

    # --- listener hooks (registered with Airflow by ``listen``) -----------------------------
    def task_started(self, task_id: str) -> None:
        """Remember when (and where in the log) ``task_id`` started."""
        sys.stdout.flush()
        sys.stderr.flush()
        self._task_start[task_id] = (time.perf_counter(), self._log_size())

    def task_ended(self, task_id: str, state: str, error: object = None) -> None:
        """Print the task's line; on failure its last log lines and the log's path."""
        started, offset = self._task_start.pop(task_id, (time.perf_counter(), self._log_size()))
        self.say(f"    {task_id:<28} {state:<12} {time.perf_counter() - started:6.1f}s")
        if state != "success":
            self.show_tail(offset, error)

    def show_tail(self, offset: int = 0, error: object = None) -> None:
        """The last lines written to the log since ``offset`` (and the error), then the log's path."""
        if error:
            text = str(error).strip()
            self.say(f"      error: {text.splitlines()[-1] if text else repr(error)}")
        if self.log_path is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        with open(self.log_path, "rb") as fh:
            fh.seek(offset)
            lines = fh.read().decode("utf-8", "replace").splitlines()
        for line in lines[-TAIL_LINES:]:
            self.say(f"      | {line[:240]}")
        self.say(f"      full log: {self.log_path}")


_current: QuietConsole | None = None
_registered = False


def _hooks():
    from airflow.listeners import hookimpl

    class Hooks:
        """Task-instance listener forwarding to the console of the run in progress."""

        @hookimpl
        def on_task_instance_running(self, previous_state, task_instance):
            if _current:
                _current.task_started(task_instance.task_id)

        @hookimpl
        def on_task_instance_success(self, previous_state, task_instance):
            if _current:
                _current.task_ended(task_instance.task_id, "success")

        @hookimpl
        def on_task_instance_skipped(self, previous_state, task_instance):
            if _current:
                _current.task_ended(task_instance.task_id, "skipped")

        @hookimpl
        def on_task_instance_failed(self, previous_state, task_instance, error):
            if _current:
                state = str(getattr(task_instance, "state", "") or "").rsplit(".", 1)[-1].lower()
                _current.task_ended(task_instance.task_id, "up_for_retry" if "retry" in state else "failed", error)

    return Hooks()


def listen(console: QuietConsole | None) -> None:
    """Send this process's task events to ``console`` (None: to nobody); registers the hooks once."""
    global _current, _registered
    _current = console
    if not _registered:
        from airflow.sdk.listener import get_listener_manager

        get_listener_manager().add_listener(_hooks())
        _registered = True
