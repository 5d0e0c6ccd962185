"""The example service, correct: the naive one (naive.py) plus a SIGTERM sequence.

On SIGTERM: /readyz answers 503 at once and every answer says `Connection: close`, while
everything is still served for DRAIN_DELAY (default 5s: the routers learn of the pod's removal
late); then the listener closes (new connections are refused), the requests in flight finish,
idle keep-alive connections end, and the process exits 0. A second SIGTERM exits at once (1).

Environment: PORT, BIND, APP_VERSION, DRAIN_DELAY ("500ms", "5s").
"""

import json
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

VERSION = os.environ.get("APP_VERSION", "v1")
HOST = os.environ.get("HOSTNAME", socket.gethostname())


def seconds(text):
    """ "500ms" or "5s" as seconds."""
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))


DRAIN_DELAY = seconds(os.environ.get("DRAIN_DELAY", "5s"))
draining = threading.Event()


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive (Python's default, HTTP/1.0, closes each one).
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection ends after 2 s: after the drain, the wait for them is bounded.
    timeout = 2

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/":
            self.answer(200, {"version": VERSION, "host": HOST})
        elif url.path == "/work":
            ms = int(parse_qs(url.query).get("ms", ["0"])[0])
            time.sleep(ms / 1000)
            self.answer(200, {"version": VERSION, "host": HOST, "worked_ms": ms})
        elif url.path == "/healthz":
            self.answer(200, "ok")
        elif url.path == "/readyz":
            self.answer(503 if draining.is_set() else 200, "draining" if draining.is_set() else "ready")
        else:
            self.answer(404, {"error": "not found"})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if draining.is_set():
            # The client opens its next connection elsewhere, to a pod that is not leaving.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    # server_close() waits for the requests in flight (the standard library's default does not).
    daemon_threads = False


server = Server((os.environ.get("BIND", "0.0.0.0"), int(os.environ.get("PORT", "8080"))), Handler)


def drain_then_stop():
    time.sleep(DRAIN_DELAY)
    server.shutdown()


def on_sigterm(signum, frame):
    if draining.is_set():
        os._exit(1)
    draining.set()
    threading.Thread(target=drain_then_stop, daemon=True).start()


signal.signal(signal.SIGTERM, on_sigterm)
signal.signal(signal.SIGINT, on_sigterm)
server.serve_forever()
server.server_close()  # the listener closes first, then the requests in flight are waited for
