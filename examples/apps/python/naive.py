"""The example service, naive: Python's standard library with its defaults.

GET / (the version and host), GET /work?ms=N (answers after N ms), GET /healthz and GET /readyz
(always 200). Listens on $BIND:$PORT (default 0.0.0.0:8080).

Nothing here handles SIGTERM, so its default action applies: the process dies at once, with
whatever requests it was serving, while the routers still send it traffic. `zdd check` shows it.
"""

import json
import os
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

VERSION = os.environ.get("APP_VERSION", "v1")
HOST = os.environ.get("HOSTNAME", socket.gethostname())


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/":
            self.answer(200, {"version": VERSION, "host": HOST})
        elif url.path == "/work":
            ms = int(parse_qs(url.query).get("ms", ["0"])[0])
            time.sleep(ms / 1000)
            self.answer(200, {"version": VERSION, "host": HOST, "worked_ms": ms})
        elif url.path in ("/healthz", "/readyz"):
            self.answer(200, "ok")
        else:
            self.answer(404, {"error": "not found"})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(
    (os.environ.get("BIND", "0.0.0.0"), int(os.environ.get("PORT", "8080"))), Handler
)
server.serve_forever()
