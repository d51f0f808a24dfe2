"""Blocking API calls off Bokeh's event loop, results applied on the document's thread.

Bokeh runs every session of a server on one tornado loop; an HTTP call made there would freeze
all browsers for its duration (up to the timeout when the master is down). So calls run in a
shared thread pool and come back via ``doc.add_next_tick_callback``, the one Document method
that is safe to call from another thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from bokeh.document import Document
from bokeh.server.callbacks import PeriodicCallback

from bokeh_app.common.api import ApiError, MasterUnreachable
from bokeh_app.common.layout import Banner

log = logging.getLogger(__name__)

T = TypeVar("T")
OnDone = Callable[[Any], None]
OnError = Callable[[Exception], None]

_POOL_SIZE = 8
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The process-wide pool every session shares (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_POOL_SIZE, thread_name_prefix="mlb-dashboard-api")
        return _pool


def shutdown_pool() -> None:
    """End the pool's threads (DashboardServer.stop); a later ``pool()`` makes a new one."""
    global _pool
    with _pool_lock:
        current, _pool = _pool, None
    if current is not None:
        current.shutdown(wait=True, cancel_futures=True)


class Background:
    """Runs ``fn()`` off the loop and ``on_done(result)`` / ``on_error(exc)`` on the document.

    Every outcome also drives the banner: ``MasterUnreachable`` shows it, any answer from the
    master (even an ``ApiError``) hides it, so the page recovers by itself once the master is
    back. ``on_error`` gets every exception, ``MasterUnreachable`` included (e.g. to re-enable
    a submit button); unexpected ones are logged with their traceback too.
    """

    def __init__(self, doc: Document, banner: Banner | None = None) -> None:
        self.doc = doc
        self.banner = banner
        self._closed = False
        self._periodic: list[PeriodicCallback] = []

    # -- outcome handling (document thread) ------------------------------------------------

    def _apply(
        self,
        result: Any,
        exc: BaseException | None,
        on_done: OnDone,
        on_error: OnError | None,
    ) -> None:
        if self._closed:
            return
        if isinstance(exc, MasterUnreachable):
            if self.banner is not None:
                self.banner.show()
        elif self.banner is not None:
            self.banner.hide()
        if exc is None:
            on_done(result)
            return
        if not isinstance(exc, Exception):  # KeyboardInterrupt and the like: not ours to eat
            raise exc
        if not isinstance(exc, MasterUnreachable | ApiError):
            log.error("dashboard call failed", exc_info=exc)
        if on_error is not None:
            on_error(exc)

    # -- public ----------------------------------------------------------------------------

    def run_now(
        self, fn: Callable[[], T], on_done: Callable[[T], None], on_error: OnError | None = None
    ) -> None:
        """The same, synchronously on the caller's thread: for ``load()`` in tests and before
        the document is served (no event loop to block yet)."""
        try:
            result = fn()
        except Exception as exc:
            self._apply(None, exc, on_done, on_error)
            return
        self._apply(result, None, on_done, on_error)

    def submit(
        self, fn: Callable[[], T], on_done: Callable[[T], None], on_error: OnError | None = None
    ) -> Future[T]:
        """Run ``fn`` in the pool; its outcome is applied on the next tick of the document."""
        future = pool().submit(fn)

        def finished(done: Future[T]) -> None:
            if self._closed or done.cancelled():
                return
            exc = done.exception()
            result = None if exc is not None else done.result()
            try:
                self.doc.add_next_tick_callback(lambda: self._apply(result, exc, on_done, on_error))
            except Exception:  # the session ended while the call ran
                log.debug("dropped a result for a closed session", exc_info=True)

        future.add_done_callback(finished)
        return future

    def every(
        self,
        period_ms: int,
        fn: Callable[[], T],
        on_done: Callable[[T], None] | None = None,
        on_error: OnError | None = None,
    ) -> PeriodicCallback:
        """``doc.add_periodic_callback`` for a blocking ``fn``: a tick is skipped while the
        previous call (and the application of its result) has not finished, so a slow master
        never piles calls up."""
        busy = threading.Event()

        def done(result: T) -> None:
            busy.clear()
            if on_done is not None:
                on_done(result)

        def failed(exc: Exception) -> None:
            busy.clear()
            if on_error is not None:
                on_error(exc)

        def tick() -> None:
            if busy.is_set() or self._closed:
                return
            busy.set()
            try:
                self.submit(fn, done, failed)
            except RuntimeError:  # pool shut down: the server is stopping
                busy.clear()

        callback = self.doc.add_periodic_callback(tick, period_ms)
        self._periodic.append(callback)
        return callback

    def call(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[Exception], None] | None = None,
        *,
        served: bool,
    ) -> None:
        """``submit`` once the view is served (off the event loop); ``run_now`` before, so a
        test's ``load()`` returns with the data applied."""
        if served:
            self.submit(fn, on_done, on_error)
        else:
            self.run_now(fn, on_done, on_error)

    def close(self) -> None:
        """Stop the periodic calls and drop results still in flight (session destroyed)."""
        self._closed = True
        for callback in self._periodic:
            # Bokeh removes a destroyed session's callbacks itself and then tears down the
            # document's callback manager: removing ours again raises ValueError, or
            # AttributeError once the manager is gone.
            with contextlib.suppress(ValueError, AttributeError):
                self.doc.remove_periodic_callback(callback)
        self._periodic.clear()
