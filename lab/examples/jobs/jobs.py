#!/usr/bin/env python3
"""A small job service in plain Python, for experiments on a topology that is not food
delivery: the platform links nothing of it and watches it by the contract's health endpoints
and its process alone.

  POST /jobs {"size": N}   202 {"id": ..., "state": "RUNNING"}; N < 1 or no JSON: 422
  GET  /jobs/{id}          200 {"id": ..., "state": "RUNNING" | "DONE"}; unknown id: 404
  GET  /health/live, /health/ready

A job of size N is DONE N * 20 ms after it was accepted. The id carries its acceptance time
and size, so any instance answers for any job, even after a restart (no state to lose).
Listens on $PORT (127.0.0.1).
"""
import http.server
import json
import os
import time
import uuid

STEP_MS = 20


def now_ms():
    return int(time.time() * 1000)


class Jobs(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in ("/health/live", "/health/ready", "/health"):
            return self.answer(200, {"status": "UP"})
        if self.path.startswith("/jobs/"):
            job = self.path[len("/jobs/"):]
            try:
                accepted, size, _ = job.split("-", 2)
                due = int(accepted) + int(size) * STEP_MS
            except ValueError:
                return self.answer(404, {"title": "Not Found", "status": 404})
            state = "DONE" if now_ms() >= due else "RUNNING"
            return self.answer(200, {"id": job, "state": state})
        return self.answer(404, {"title": "Not Found", "status": 404})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        if self.path != "/jobs":
            return self.answer(404, {"title": "Not Found", "status": 404})
        try:
            size = int(json.loads(raw)["size"])
        except (ValueError, KeyError, TypeError):
            size = 0
        if size < 1:
            return self.answer(422, {"title": "size must be at least 1", "status": 422})
        job = f"{now_ms()}-{size}-{uuid.uuid4().hex[:8]}"
        return self.answer(202, {"id": job, "state": "RUNNING"})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    http.server.ThreadingHTTPServer.daemon_threads = True
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Jobs)
    print(json.dumps({"message": "jobs service listening", "port": server.server_port}), flush=True)
    server.serve_forever()
