"""What the fault tests break on purpose: a private PostgreSQL server (stopped and started at
will, unlike the shared one other tests use) and a small tmpfs as the master's data dir (filled
up, or remounted read-only)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import free_port
from tests.requires import missing


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        missing(f"no PostgreSQL server binary {name!r} on this machine")
    return found


class PrivatePostgres:
    """A PostgreSQL server of its own (initdb in a temp dir, a free port, trust auth)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.sockets = root / "sock"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._pg_ctl = _pg_bin("pg_ctl")
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            runuser = shutil.which("runuser")
            if runuser is None:
                missing("running as root without runuser: cannot start a private PostgreSQL")
            self._as_user = [runuser, "-u", "postgres", "--"]
            shutil.chown(root, "postgres")
        for path in (self.data, self.sockets):
            path.mkdir()
            if self._as_user:
                shutil.chown(path, "postgres")
        self._run(
            _pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"
        )

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self._as_user, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run(self._pg_ctl, "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(self._pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="mlbench-pg-"))
    try:
        server = PrivatePostgres(root)
        server.start()
        try:
            yield server
        finally:
            if server.running():
                server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


class SmallDisk:
    """A tmpfs of ``size`` mounted at ``path``: a real ENOSPC when full, a real EROFS when
    remounted read-only."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.size = size

    def _mount(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)

    def resize(self, size: str) -> None:
        """Grow (or shrink) the tmpfs in place: space freed, as an operator would."""
        done = self._mount("-o", f"remount,size={size}", str(self.path))
        if done.returncode != 0:
            raise RuntimeError(f"resize failed: {done.stderr.strip()}")
        self.size = size

    def read_only(self, on: bool) -> None:
        mode = "ro" if on else "rw"
        done = self._mount("-o", f"remount,{mode},size={self.size}", str(self.path))
        if done.returncode != 0:
            raise RuntimeError(f"remount {mode} failed: {done.stderr.strip()}")


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[SmallDisk]:
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        missing("no mount binary: cannot make a small or read-only disk")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "mlbench-test", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        missing(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield SmallDisk(path, size)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
