"""A tiny HTTP server on 127.0.0.1 (a free port) for HTTP trigger tests: it answers every request with
the status and body the test sets, and counts the requests."""
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Answer:
    def __init__(self, status: int, body: str):
        self.status, self.body, self.requests = status, body, 0


@contextmanager
def answering(status: int = 200, body: str = '{"ready": true}'):
    """Yields (url, answer); change `answer.status` and `answer.body` to change what it says."""
    answer = Answer(status, body)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            answer.requests += 1
            payload = answer.body.encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Answer", "test")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/status", answer
    finally:
        server.shutdown()
        server.server_close()
