"""A real HTTP server on 127.0.0.1 that serves generated files and counts the requests.

It runs in a thread of the test process; the code under test talks to it over TCP like to any
download host. ``failures[path] = [503, 503]`` makes the next two GETs of ``path`` answer
503 before the file is served (a transient outage); ``chunk_delay_s`` slows every response so
that concurrent downloaders overlap.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class FileServer:
    def __init__(self, files: dict[str, bytes], chunk_delay_s: float = 0.0) -> None:
        self.files = dict(files)
        self.chunk_delay_s = chunk_delay_s
        self.failures: dict[str, list[int]] = {}
        self.gets: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.gets[self.path] += 1
                    queued = server.failures.get(self.path)
                    status = queued.pop(0) if queued else None
                if status is not None:
                    self.send_error(status)
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                step = max(1, len(body) // 10)
                for start in range(0, len(body), step):
                    if server.chunk_delay_s:
                        time.sleep(server.chunk_delay_s)
                    self.wfile.write(body[start : start + step])

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output clean

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
