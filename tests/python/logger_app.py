"""A supervised program that logs JSON lines on demand (the chassis's log shape), for the
log-template tests: POST /log {"level": "ERROR", "message": "..."} prints one line on stdout
and answers the timestamp it carried. Serves /health/live and /health/ready. Port from
AIODS_PORT.
"""

import datetime
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def emit(level, message):
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    line = {"timestamp": stamp, "level": level, "message": message, "target": "logger_app"}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    return stamp


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in ("/health/live", "/health/ready"):
            return self.answer(200, '{"status":"UP"}')
        return self.answer(404, "{}")

    def do_POST(self):
        if self.path != "/log":
            return self.answer(404, "{}")
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        stamp = emit(body.get("level", "ERROR"), body.get("message", ""))
        return self.answer(200, json.dumps({"timestamp": stamp}))


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("AIODS_PORT", "0"))), Handler)
    server.daemon_threads = True
    emit("INFO", "service started on port %d" % server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
