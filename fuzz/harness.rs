//! The fuzzing harness: one function per input the platform parses from outside, each taking
//! arbitrary bytes and driving the same code the platform runs on them. The `cargo fuzz`
//! targets in `fuzz_targets/` call these; `aiops-platform/tests/fuzz_regressions.rs` replays
//! every saved input in `fuzz/regressions/<target>/` through them on each `cargo test`.
//!
//! A harness function must never panic on any input: a panic is a bug found.

use std::sync::OnceLock;

use aiops_platform::config::{RetentionConfig, Topology};
use aiops_platform::receive::body::decode_body;
use aiops_platform::receive::otlp::{self, Encoding};
use aiops_platform::receive::sentry;
use aiops_platform::store::{Signal, Store};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Largest decompressed body, as the platform's default would be, scaled down for speed.
const MAX_DECOMPRESSED: usize = 1 << 20;

/// One store for a whole fuzzing run: inputs accumulate as they would in the platform, so the
/// budgets and evictions are exercised too.
fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| Store::new(RetentionConfig::default(), None))
}

/// What the harness's store holds now (the regression test checks the seeds reach it).
#[allow(dead_code)] // used by the regression test, not by the fuzz targets
pub(crate) fn stored() -> aiops_platform::store::StoredCounts {
    store().counts()
}

/// The body after `Content-Encoding` handling: when the first byte's bit 0 is set, the rest
/// is taken as a gzip body and decompressed with the platform's limit.
fn body(flags: u8, rest: &[u8]) -> Option<Bytes> {
    let mut headers = HeaderMap::new();
    if flags & 1 != 0 {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    decode_body(&headers, Bytes::copy_from_slice(rest), MAX_DECOMPRESSED).ok()
}

/// OTLP/HTTP as the receivers decode it (`decode_body`, then `decode_message`): the first
/// byte picks gzip (bit 0) and the signal (bits 1–2: traces, logs, metrics). Accepted items go
/// to the store.
fn otlp(data: &[u8], encoding: Encoding) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some(body) = body(flags, rest) else {
        return;
    };
    match (flags >> 1) % 3 {
        0 => {
            if let Ok(r) = otlp::decode_message::<ExportTraceServiceRequest>(encoding, body) {
                store().insert_spans(otlp::convert_spans(r).items);
            }
        }
        1 => {
            if let Ok(r) = otlp::decode_message::<ExportLogsServiceRequest>(encoding, body) {
                store().insert_logs(otlp::convert_logs(r).items);
            }
        }
        _ => {
            if let Ok(r) = otlp::decode_message::<ExportMetricsServiceRequest>(encoding, body) {
                store().insert_samples(otlp::convert_metrics(r).items, Signal::Metrics);
            }
        }
    }
}

/// OTLP/HTTP protobuf.
pub(crate) fn otlp_protobuf(data: &[u8]) {
    otlp(data, Encoding::Protobuf);
}

/// OTLP/HTTP JSON.
pub(crate) fn otlp_json(data: &[u8]) {
    otlp(data, Encoding::Json);
}

/// A Sentry envelope: parsed, each event or transaction item decoded and turned into what
/// the store keeps (an exception event with its fingerprint, or spans).
pub(crate) fn sentry_envelope(data: &[u8]) {
    let Ok(envelope) = sentry::parse_envelope(&Bytes::copy_from_slice(data)) else {
        return;
    };
    for item in envelope.items {
        let kind = item.kind().to_owned();
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(&item.payload) else {
            continue;
        };
        if !event.is_object() {
            continue;
        }
        if kind == "transaction" {
            let (spans, _) = sentry::transaction_spans(&event);
            store().insert_spans(spans);
        } else {
            let _ = sentry::event_service(&event);
            let _ = sentry::fingerprint(&event);
            store().record_exception(sentry::exception_event(event));
        }
    }
}

/// A Prometheus text exposition, as a scrape reads it.
pub(crate) fn prometheus_exposition(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = aiops_platform::common::exposition::parse(&text);
}

/// A topology file (`aiods.toml`): parsed and validated.
pub(crate) fn topology(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Topology::parse(text);
    }
}

/// `aiops detect`'s input: `timestamp,value` rows read, then scored by the default detector.
pub(crate) fn detect_csv(data: &[u8]) {
    use aiops_platform::anomaly::DetectorKind;
    use aiops_platform::cli::detect::{read_rows, write_scores};
    if let Ok(rows) = read_rows(data, "fuzz") {
        let _ = write_scores(&rows, DetectorKind::default(), &mut std::io::sink());
    }
}
