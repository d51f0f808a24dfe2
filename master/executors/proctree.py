"""The launcher of a run and every process below it, remembered while they are linked.

torch.distributed.run starts each worker in a session of its own, so a signal to the
launcher's process group does not reach the workers, and a worker whose launcher died is
re-parented out of the tree. The tree is therefore re-read on every poll while the launcher
lives, and what was seen once is still signalled later; psutil's identity check (pid plus
start time) keeps a reused pid from being hit.
"""

from __future__ import annotations

import contextlib
import os
import signal

import psutil


class ProcessTree:
    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self._seen: dict[int, psutil.Process] = {}

    def refresh(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
            self._seen.setdefault(root.pid, root)
            for child in root.children(recursive=True):
                self._seen.setdefault(child.pid, child)
        except psutil.Error:
            pass  # the launcher is gone: keep what was seen

    def alive(self) -> list[psutil.Process]:
        self.refresh()
        living = []
        for proc in self._seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    living.append(proc)
            except psutil.Error:
                continue
        return living

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the launcher's group and to every process of the tree still alive."""
        living = self.alive()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.root_pid, sig)
        for proc in living:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                continue
        return bool(living)
