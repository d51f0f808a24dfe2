"""The metrics client's spool: batches and reports kept on local disk until the master answers.

File: ``<spool_dir>/run<id>-rank<r>.jsonl``; one JSON object per line, either a
``MetricBatch`` (``{"batch_id", "points"}``) or a report
(``{"report": "status"|"result"|"manifest", "method", "path", "body"}``). Lines are replayed in
the order they were written, with the same batch ids, so the master stores a replayed batch once.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mlbench_core.reports import ClientStats, Report, log


class Spool:
    """Append-only JSON-lines file, replayed in order; safe to append to from any thread."""

    def __init__(self, directory: Path, name: str, stats: ClientStats) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / name
        self.replay_path = self.path.with_name(self.path.name + ".replaying")
        self._stats = stats
        self._lock = threading.Lock()

    def has_data(self) -> bool:
        """True when a line waits in the spool or in an unfinished replay."""
        for path in (self.replay_path, self.path):
            try:
                if path.stat().st_size > 0:
                    return True
            except FileNotFoundError:
                continue
        return False

    def append(self, lines: list[dict[str, Any]]) -> None:
        """Write lines at the end; counted in ``stats.spooled_batches``."""
        if not lines:
            return
        data = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(data)
            self._stats.spooled_batches += len(lines)

    def replay(self, deliver: Callable[[dict[str, Any]], bool]) -> bool:
        """Hand every line to ``deliver`` in order; True when the spool is empty afterwards.

        ``deliver`` returns False for a line it could not get rid of (neither delivered nor
        dropped): that line and the rest stay spooled, in order, and the replay stops.

        The spool file is first renamed to ``.replaying`` so that new spooling (from ``log``
        on overflow) goes to a fresh file meanwhile; whatever cannot be delivered is put back
        in front of it, keeping the original order.
        """
        with self._lock:
            if self.replay_path.exists():
                # Left over from an interrupted replay (or a crashed process): it comes first.
                if self.path.exists():
                    with open(self.replay_path, "ab") as out, open(self.path, "rb") as src:
                        shutil.copyfileobj(src, out)
                    self.path.unlink()
            elif self.path.exists():
                os.replace(self.path, self.replay_path)
            else:
                return True
        with open(self.replay_path, "rb") as fh:
            while True:
                raw = fh.readline()
                if not raw:
                    break
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                    if "batch_id" not in line and "report" not in line:
                        raise ValueError("neither a batch nor a report")
                except ValueError:
                    log.warning("skipping a corrupt spool line in %s", self.replay_path)
                    continue
                if not deliver(line):
                    self._put_back(raw, fh)
                    return False
        self.replay_path.unlink()
        return True

    def _put_back(self, current: bytes, rest: IO[bytes]) -> None:
        """Put the undelivered part of the replay file back in front of the spool."""
        with self._lock:
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as out:
                out.write(current)
                shutil.copyfileobj(rest, out)
                if self.path.exists():
                    with open(self.path, "rb") as src:
                        shutil.copyfileobj(src, out)
            os.replace(tmp, self.path)
            self.replay_path.unlink()


def batch_line(points: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``MetricBatch`` body with a fresh ``batch_id``."""
    # The id is fixed here, once: every retry and every replay of this batch reuses it.
    return {"batch_id": uuid.uuid4().hex, "points": points}


def report_line(report: Report) -> dict[str, Any]:
    """A status/result report as a spool line (and as the sender's unit of delivery)."""
    return {
        "report": report.kind,
        "method": report.method,
        "path": report.path,
        "body": report.body,
    }
