"""A service in another language that honours the aiods telemetry contract with the official
clients: server spans and the OTel-semconv HTTP histogram over OTLP (OpenTelemetry Python SDK),
and `/metrics` (prometheus_client). The platform neither starts it nor routes its traffic.

    PORT=0 [UPSTREAM=http://host:port] python3 telemetry_app.py [--no-otlp] [--no-metrics-endpoint]

Prints `{"event": "listening", "port": N}` once bound. GET /work answers 200, or 500 with the
configured share, after the configured latency; POST /admin/mode {"error_rate": 0.3,
"latency_ms": 300} changes both. /health/live answers UP. With UPSTREAM, each /work first
calls the upstream's /work with the W3C trace context (so the platform learns the call), and
fails when it fails.
"""

import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OTLP = "--no-otlp" not in sys.argv
UPSTREAM = os.environ.get("UPSTREAM")
METRICS_ENDPOINT = "--no-metrics-endpoint" not in sys.argv

mode = {"error_rate": 0.0, "latency_ms": 0.0}
lock = threading.Lock()

if OTLP:
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    metrics.set_meter_provider(meter_provider)
    tracer = trace.get_tracer("telemetry_app")
    duration = metrics.get_meter("telemetry_app").create_histogram(
        "http.server.request.duration", unit="s", description="Duration of HTTP server requests."
    )

if METRICS_ENDPOINT:
    import prometheus_client

    registry = prometheus_client.CollectorRegistry()
    prom_duration = prometheus_client.Histogram(
        "http_server_request_duration_seconds",
        "Duration of HTTP server requests.",
        ["http_request_method", "http_route", "http_response_status_code"],
        registry=registry,
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health/live" or self.path == "/health/ready":
            return self.answer(200, '{"status":"UP"}')
        if self.path == "/metrics" and METRICS_ENDPOINT:
            return self.answer(
                200, prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST
            )
        if self.path == "/work":
            return self.work()
        return self.answer(404, '{"title":"Not Found"}')

    def do_POST(self):
        if self.path == "/admin/mode":
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with lock:
                mode.update({k: float(v) for k, v in body.items() if k in mode})
            return self.answer(200, json.dumps(mode))
        return self.answer(404, '{"title":"Not Found"}')

    def work(self):
        started = time.time()
        with lock:
            error_rate, latency_ms = mode["error_rate"], mode["latency_ms"]
        status = 500 if random.random() < error_rate else 200
        if OTLP:
            parent = propagate.extract(self.headers)
            span = tracer.start_span("GET /work", kind=SpanKind.SERVER, context=parent)
        if latency_ms > 0:
            time.sleep(latency_ms / 1000.0)
        if UPSTREAM:
            headers = {}
            if OTLP:
                with trace.use_span(span, end_on_exit=False):
                    propagate.inject(headers)
            try:
                urllib.request.urlopen(
                    urllib.request.Request(UPSTREAM + "/work", headers=headers), timeout=10
                ).read()
            except (urllib.error.URLError, OSError):
                status = 502
        self.answer(status, '{"ok":%s}' % ("false" if status >= 500 else "true"))
        elapsed = time.time() - started
        attrs = {"http.request.method": "GET", "http.route": "/work", "http.response.status_code": status}
        if OTLP:
            for k, v in attrs.items():
                span.set_attribute(k, v)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            duration.record(elapsed, attrs)
        if METRICS_ENDPOINT:
            prom_duration.labels("GET", "/work", str(status)).observe(elapsed)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
    server.daemon_threads = True
    print(json.dumps({"event": "listening", "port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
