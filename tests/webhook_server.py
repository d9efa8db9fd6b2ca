"""A local HTTP server standing in for the weekly digest's webhooks (tests only)."""

from __future__ import annotations

import http.server
import threading
from typing import Any


class Hooks:
    """A local HTTP server standing in for webhooks: records every post; answers
    each path's next status from ``fail`` (then 200)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.fail: dict[str, list[int]] = {}
        hooks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hooks.posts.append((self.path, dict(self.headers), body))
                statuses = hooks.fail.get(self.path) or [200]
                status = statuses.pop(0)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
