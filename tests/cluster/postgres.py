"""A throwaway PostgreSQL server on loopback for tests (no system service, no packages installed here).

The server lives in its own temp folder, listens on 127.0.0.1 at a free port, keeps
its socket in that folder and requires a password generated per run (scram-sha-256),
so it never meets a developer's own Postgres. PostgreSQL refuses to run as root: as
root the binaries run as the unprivileged ``postgres`` account (created by the
Debian package) through ``runuser``. ``.ci/run`` installs the package on CI.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL binaries or account on this machine (the tests skip with this reason)."""


def find_bindir() -> Path:
    """Folder with ``initdb``/``pg_ctl``: ``pg_config --bindir``, Debian's versioned folders, or PATH."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    # Debian puts the server binaries beside pg_config's client ones only for the newest version.
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).resolve().parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; .ci/run installs `postgresql`")


def _run_as() -> list[str]:
    """Command prefix that drops root to the ``postgres`` account; nothing for a normal user."""
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root and there is no `postgres` account to run the server") from None
    if not shutil.which("runuser"):
        raise PostgresUnavailable("running as root without `runuser` to drop privileges")
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server: its folder, port, superuser and generated password."""

    root: Path
    port: int
    user: str
    password: str
    bindir: Path

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL for ``database`` on this server."""
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        """CREATE DATABASE ``name`` (psycopg2, autocommit: CREATE DATABASE can't run in a transaction)."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def stop(self) -> None:
        """Fast shutdown, then remove the folder."""
        subprocess.run(
            [*_run_as(), str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start(user: str = "onerec") -> PostgresServer:
    """initdb + pg_ctl start in a fresh temp folder; raises PostgresUnavailable if it can't."""
    bindir = find_bindir()
    prefix = _run_as()
    # /tmp itself, not pytest's tmp_path: that one is private to root and postgres must own its folder.
    root = Path(tempfile.mkdtemp(prefix="onerec-pg-"))
    password = secrets.token_hex(16)
    (root / "pwfile").write_text(password + "\n")
    if prefix:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pwfile", "postgres")
    os.chmod(root, 0o700)
    data = root / "data"
    initdb = [
        *prefix, str(bindir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={root / 'pwfile'}",
        "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
    ]  # fmt: skip
    out = subprocess.run(initdb, capture_output=True, text=True, check=False)
    if out.returncode:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"initdb failed: {out.stderr.strip()[-500:]}")
    (root / "pwfile").unlink()
    port = _free_port()
    # fsync off and a small footprint: a test database, thrown away afterwards.
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off -c shared_buffers=32MB"
    )
    started = subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", opts, "-w", "-t", "60",
         "start"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    server = PostgresServer(root=root, port=port, user=user, password=password, bindir=bindir)
    if started.returncode:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else started.stderr
        server.stop()
        raise PostgresUnavailable(f"pg_ctl start failed: {log.strip()[-500:]}")
    _wait_ready(server)
    return server


def _wait_ready(server: PostgresServer, timeout: float = 30.0) -> None:
    import psycopg2

    deadline = time.time() + timeout
    while True:
        try:
            psycopg2.connect(
                host="127.0.0.1", port=server.port, user=server.user, password=server.password, dbname="postgres"
            ).close()
            return
        except psycopg2.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
