"""Run the master with uvicorn, in the foreground (``mlbench serve``) or embedded in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import uvicorn

from master.settings import Settings

if TYPE_CHECKING:
    from master.executors.base import Executor


def _server(settings: Settings, executors: Mapping[str, Executor] | None = None) -> uvicorn.Server:
    from master.app import create_app

    config = uvicorn.Config(
        create_app(settings, executors),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    """Serve until interrupted; the lifespan stops the runs this master started."""
    _server(settings).run()


class EmbeddedMaster:
    """A master in a background thread, for ``mlbench run`` when none is running."""

    def __init__(
        self,
        settings: Settings,
        start_timeout_s: float = 60.0,
        executors: Mapping[str, Executor] | None = None,
    ) -> None:
        """``executors`` as for ``create_app`` (default: built from the settings); they report
        exits to ``self.app.state.on_exit``."""
        self.settings = settings
        self.start_timeout_s = start_timeout_s
        self._server = _server(settings, executors)
        self.app = self._server.config.app
        self._thread = threading.Thread(target=self._server.run, name="mlbench-master", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self) -> EmbeddedMaster:
        self._thread.start()
        end = time.monotonic() + self.start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the embedded master could not start on {self.url}")
            if time.monotonic() > end:
                self.stop()
                raise RuntimeError(
                    f"the embedded master did not start within {self.start_timeout_s}s"
                )
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)

    def __enter__(self) -> EmbeddedMaster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
