//! Structured logs: one JSON object per line on stdout.
//!
//! Each line carries `timestamp` (RFC 3339, UTC), `level`, `message`, `target`, `service`, the
//! event's own fields, and `trace_id` / `span_id` when emitted inside a traced request. Lines
//! are formatted on the calling thread into a small buffer and written by a background thread
//! in batches, so a slow terminal or pipe never blocks a request; lines dropped because the
//! queue was full are counted (`aiods_telemetry_dropped_total{signal="logs"}`).

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::log_writer::{LogWriter, LogWriterGuard};
use crate::telemetry::dropped::Signal;

/// The W3C ids of the span an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    /// The 16-byte trace id.
    pub trace_id: [u8; 16],
    /// The 8-byte span id.
    pub span_id: [u8; 8],
}

/// The ids of the OpenTelemetry span current on this thread (the request's server span, or a
/// span opened inside it), if any.
pub fn current_trace_ids() -> Option<TraceIds> {
    use opentelemetry::trace::TraceContextExt;
    opentelemetry::Context::map_current(|cx| {
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| TraceIds {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
        })
    })
}

/// The buffered stdout writer, and the guard that flushes it when dropped. The lines it drops
/// are counted in the shared `logs` drop counter.
pub(crate) fn stdout_writer() -> std::io::Result<(LogWriter, LogWriterGuard)> {
    LogWriter::start_counting(std::io::stdout(), Signal::Logs.counter())
}

/// Where [`JsonLogLayer`] puts each finished line.
pub trait LineSink: Send + Sync + 'static {
    /// Takes one complete line, newline included.
    fn write_line(&self, line: &[u8]);
}

impl LineSink for LogWriter {
    fn write_line(&self, line: &[u8]) {
        LogWriter::write_line(self, line);
    }
}

/// A [`Layer`] that writes each event as one JSON line.
pub struct JsonLogLayer<W> {
    /// The service name as a JSON string, quotes included (escaped once, not per line).
    service: Box<[u8]>,
    writer: W,
}

impl<W> JsonLogLayer<W> {
    /// A layer that tags every line with `service` and writes to `writer`.
    pub fn new(service: impl Into<String>, writer: W) -> Self {
        Self {
            service: json_string(&service.into()),
            writer,
        }
    }
}

/// `s` as a JSON string, quotes included.
fn json_string(s: &str) -> Box<[u8]> {
    let mut out = Vec::new();
    write_json_str(&mut out, s);
    out.into_boxed_slice()
}

thread_local! {
    static LINE: std::cell::RefCell<(Vec<u8>, String)> =
        std::cell::RefCell::new((Vec::with_capacity(512), String::with_capacity(128)));
}

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: LineSink,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let ids = current_trace_ids();
        write_with_line_buffer(&self.writer, |buf, scratch| {
            format_line(buf, scratch, &self.service, event, ids.as_ref());
        });
    }
}

/// The target of access log lines.
pub(crate) const ACCESS_TARGET: &str = "aiods::access";

/// Where access log lines go when they can be written directly: the chassis's own JSON
/// subscriber is the global one and no OTLP log bridge needs the event.
///
/// The access line is the one line every request writes. Through `tracing` (dispatch, the
/// field visitor, an escape test per key) it cost ~3,400 instructions per request under
/// `valgrind --tool=callgrind` (the overhead benchmark, `bench/overhead.py`); written here
/// from its typed fields, the same bytes (a test compares them) cost ~2,100, the filter's
/// decision included.
pub(crate) struct AccessLog {
    /// The service name as a JSON string.
    service: Box<[u8]>,
    writer: LogWriter,
    /// Whether the filter lets access lines through, decided once: `RUST_LOG` is read at
    /// start and not reloaded, and the line is written outside any `tracing` span, so the
    /// answer cannot change (asking per line cost ~290 instructions, the per-layer filters
    /// making every event's interest "sometimes").
    enabled: bool,
}

static ACCESS_LOG: std::sync::OnceLock<AccessLog> = std::sync::OnceLock::new();

/// Sends access lines straight to `writer`, tagged with `service`, when the global
/// subscriber's filter lets them through (`enabled`).
pub(crate) fn install_access_log(service: &str, writer: LogWriter, enabled: bool) {
    let _ = ACCESS_LOG.set(AccessLog {
        service: json_string(service),
        writer,
        enabled,
    });
}

/// Writes an access line: straight to the JSON log when [`install_access_log`] said so, as a
/// `tracing` event otherwise.
pub(crate) fn write_access_line(fields: &AccessFields<'_>) {
    match ACCESS_LOG.get() {
        Some(log) => log.write(fields),
        None => access_event(fields),
    }
}

/// Whether the current subscriber's filter lets access lines through (what it decides for
/// the event [`access_event`] makes: same target, level and fields).
pub(crate) fn access_lines_enabled() -> bool {
    tracing::enabled!(
        target: "aiods::access",
        tracing::Level::INFO,
        message,
        method,
        route,
        path,
        status,
        duration_ms
    )
}

/// The access line as a `tracing` event.
fn access_event(fields: &AccessFields<'_>) {
    // The message as a `&str` field rather than format arguments: it reaches the JSON
    // writer as a string, not through the formatting machinery (same line out).
    tracing::info!(
        target: "aiods::access",
        message = "request completed",
        method = fields.method,
        route = fields.route,
        path = fields.path,
        status = fields.status,
        duration_ms = fields.duration_ms,
    );
}

/// The fields of one access line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccessFields<'a> {
    pub(crate) method: &'a str,
    pub(crate) route: &'a str,
    /// The path, for a request no route matched.
    pub(crate) path: Option<&'a str>,
    pub(crate) status: u16,
    pub(crate) duration_ms: f64,
    /// When the request was answered (the line's timestamp).
    pub(crate) at: std::time::SystemTime,
}

impl AccessLog {
    /// Writes one line, as [`JsonLogLayer`] writes the access log's `tracing` event, when
    /// the filter lets access lines through.
    pub(crate) fn write(&self, fields: &AccessFields<'_>) {
        if !self.enabled {
            return;
        }
        let ids = current_trace_ids();
        write_with_line_buffer(&self.writer, |buf, _| {
            format_access_line(buf, &self.service, fields, ids.as_ref());
        });
    }
}

/// Formats an access line as [`format_line`] formats the access log's `tracing` event.
fn format_access_line(
    buf: &mut Vec<u8>,
    service: &[u8],
    fields: &AccessFields<'_>,
    ids: Option<&TraceIds>,
) {
    write_head(buf, &tracing::Level::INFO, fields.at);
    buf.extend_from_slice(b",\"message\":\"request completed\",\"method\":");
    write_json_str(buf, fields.method);
    buf.extend_from_slice(b",\"route\":");
    write_json_str(buf, fields.route);
    if let Some(path) = fields.path {
        buf.extend_from_slice(b",\"path\":");
        write_json_str(buf, path);
    }
    buf.extend_from_slice(b",\"status\":");
    write_u64(buf, u64::from(fields.status));
    buf.extend_from_slice(b",\"duration_ms\":");
    write_json_f64(buf, fields.duration_ms);
    buf.extend_from_slice(b",\"target\":");
    write_json_str(buf, ACCESS_TARGET);
    write_tail(buf, service, ids);
}

/// Formats a line with `format` into this thread's line buffer (cleared first) and hands it
/// to `sink`; a line formatted while another is (a `Debug` impl that logs) is skipped.
fn write_with_line_buffer(sink: &impl LineSink, format: impl FnOnce(&mut Vec<u8>, &mut String)) {
    LINE.with(|cell| {
        let Ok(mut cell) = cell.try_borrow_mut() else {
            return;
        };
        let (buf, scratch) = &mut *cell;
        buf.clear();
        format(buf, scratch);
        sink.write_line(buf);
    });
}

/// Formats one event as a JSON line (with the trailing newline) into `buf`; `service` is the
/// service name as a JSON string.
pub(crate) fn format_line(
    buf: &mut Vec<u8>,
    scratch: &mut String,
    service: &[u8],
    event: &Event<'_>,
    ids: Option<&TraceIds>,
) {
    let meta = event.metadata();
    write_head(buf, meta.level(), std::time::SystemTime::now());
    let mut visitor = JsonFields {
        buf,
        scratch,
        has_message: false,
    };
    event.record(&mut visitor);
    let has_message = visitor.has_message;
    if !has_message {
        buf.extend_from_slice(b",\"message\":\"\"");
    }
    buf.extend_from_slice(b",\"target\":");
    write_json_str(buf, meta.target());
    write_tail(buf, service, ids);
}

/// `{"timestamp":"<now>","level":"<level>"`.
fn write_head(buf: &mut Vec<u8>, level: &tracing::Level, at: std::time::SystemTime) {
    buf.extend_from_slice(b"{\"timestamp\":\"");
    write_time(buf, at);
    buf.extend_from_slice(b"\",\"level\":\"");
    buf.extend_from_slice(level.as_str().as_bytes());
    buf.extend_from_slice(b"\"");
}

/// `,"service":<service>`, the trace ids when there are some, and the end of the line.
fn write_tail(buf: &mut Vec<u8>, service: &[u8], ids: Option<&TraceIds>) {
    buf.extend_from_slice(b",\"service\":");
    buf.extend_from_slice(service);
    if let Some(ids) = ids {
        // `,"trace_id":"<32 hex>","span_id":"<16 hex>"` assembled on the stack, copied once.
        const TRACE: &[u8] = b",\"trace_id\":\"";
        const SPAN: &[u8] = b"\",\"span_id\":\"";
        let mut ids_json = [0u8; TRACE.len() + 32 + SPAN.len() + 16 + 1];
        let (trace, rest) = ids_json.split_at_mut(TRACE.len());
        trace.copy_from_slice(TRACE);
        let (trace_hex, rest) = rest.split_at_mut(32);
        write_hex(trace_hex, &ids.trace_id);
        let (span, rest) = rest.split_at_mut(SPAN.len());
        span.copy_from_slice(SPAN);
        let (span_hex, end) = rest.split_at_mut(16);
        write_hex(span_hex, &ids.span_id);
        end[0] = b'"';
        buf.extend_from_slice(&ids_json);
    }
    buf.extend_from_slice(b"}\n");
}

/// Writes `bytes` as lowercase hex into `out` (twice as long).
pub(crate) fn write_hex(out: &mut [u8], bytes: &[u8]) {
    // Both digits of a byte from one table entry: half the lookups and stores of a digit
    // table (trace and span ids are written twice per traced request).
    static PAIRS: [[u8; 2]; 256] = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut table = [[0u8; 2]; 256];
        let mut b = 0;
        while b < 256 {
            table[b] = [HEX[b >> 4], HEX[b & 0xf]];
            b += 1;
        }
        table
    };
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&PAIRS[usize::from(*b)]);
    }
}

fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    // Most strings (keys, targets, routes, methods) need no escape: copied as they are. The
    // others go through serde_json, which escapes per RFC 8259 (writing to a Vec cannot fail).
    if !needs_escape(s.as_bytes()) {
        buf.reserve(s.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *buf, s);
    }
}

/// Whether `bytes` holds a control character, `"` or `\\`: eight bytes at a time (the
/// byte-by-byte test was ~1,500 instructions of a traced request's ~40,000 under callgrind,
/// the overhead benchmark's access-log line).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The classic word tests (non-zero iff some byte is zero, or below 0x20): exact for the
    // word as a whole, since a borrow only marks bytes above one that matched.
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let word_needs = |v: u64| {
        // Control characters: bytes below 0x20 (0x80 and above are not, hence `& !v`).
        let control = v.wrapping_sub(ONES * 0x20) & !v & HIGH;
        control | has_zero(v ^ (ONES * u64::from(b'"'))) | has_zero(v ^ (ONES * u64::from(b'\\')))
            != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if word_needs(u64::from_le_bytes(word)) {
            return true;
        }
    }
    // The tail as one more word, padded with a byte that needs no escape.
    let tail = chunks.remainder();
    let mut word = [b'a'; 8];
    word[..tail.len()].copy_from_slice(tail);
    word_needs(u64::from_le_bytes(word))
}

/// Writes `value` as JSON: the shortest decimal that reads back as `value`, as `{}` formats
/// it, with a fast path for values of at most three decimals (durations in milliseconds,
/// rounded to the microsecond) that are whole thousandths.
fn write_json_f64(buf: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        buf.extend_from_slice(b"null");
        return;
    }
    let thousandths = (value * 1000.0).round();
    if value >= 0.0 && thousandths < 1e12 && thousandths / 1000.0 == value {
        // `k / 1000` with k whole: its shortest round-tripping decimal is k's digits with the
        // point three places left, trailing zeros (and a bare point) dropped.
        let k = thousandths as u64;
        write_u64(buf, k / 1000);
        let frac = k % 1000;
        if frac != 0 {
            let digits = [
                b'0' + (frac / 100) as u8,
                b'0' + (frac / 10 % 10) as u8,
                b'0' + (frac % 10) as u8,
            ];
            let len = 3 - digits.iter().rev().take_while(|d| **d == b'0').count();
            buf.push(b'.');
            buf.extend_from_slice(&digits[..len]);
        }
        return;
    }
    let _ = write!(buf, "{value}");
}

/// Writes `v` in decimal without the formatting machinery.
fn write_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

/// `YYYY-MM-DDTHH:MM:SS` of `t`.
fn second_text(t: time::OffsetDateTime) -> [u8; 19] {
    let mut out = *b"0000-00-00T00:00:00";
    let two = |out: &mut [u8], v: u8| {
        out[0] = b'0' + v / 10;
        out[1] = b'0' + v % 10;
    };
    let year = t.year().clamp(0, 9999) as u32;
    two(&mut out[0..2], (year / 100) as u8);
    two(&mut out[2..4], (year % 100) as u8);
    two(&mut out[5..7], t.month() as u8);
    two(&mut out[8..10], t.day());
    two(&mut out[11..13], t.hour());
    two(&mut out[14..16], t.minute());
    two(&mut out[17..19], t.second());
    out
}

/// Writes `<second>.<micros>Z`.
fn write_second_and_micros(buf: &mut Vec<u8>, second: &[u8; 19], micros: u32) {
    let mut out = [0u8; 27];
    out[..19].copy_from_slice(second);
    out[19] = b'.';
    let mut m = micros;
    for at in (20..26).rev() {
        out[at] = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out[26] = b'Z';
    buf.extend_from_slice(&out);
}

/// Writes `t` as RFC 3339 with microseconds, UTC (what [`write_time`] writes).
#[cfg(test)]
fn write_timestamp(buf: &mut Vec<u8>, t: time::OffsetDateTime) {
    write_second_and_micros(buf, &second_text(t), t.microsecond());
}

thread_local! {
    /// The Unix second of this thread's last line and its text: the calendar arithmetic is
    /// done once a second rather than per line (~300 instructions of every access-log line
    /// under callgrind, the overhead benchmark).
    static SECOND: std::cell::Cell<(u64, [u8; 19])> =
        const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

/// Writes `at` as `write_timestamp` does.
fn write_time(buf: &mut Vec<u8>, at: std::time::SystemTime) {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    write_at(buf, since.as_secs(), since.subsec_micros());
}

/// Writes Unix time `secs` + `micros` as `write_timestamp` does, through the per-thread cache.
fn write_at(buf: &mut Vec<u8>, secs: u64, micros: u32) {
    let second = SECOND.with(|cached| {
        let (at, text) = cached.get();
        if at == secs {
            return text;
        }
        let t = i64::try_from(secs)
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let text = second_text(t);
        cached.set((secs, text));
        text
    });
    write_second_and_micros(buf, &second, micros);
}

struct JsonFields<'a> {
    buf: &'a mut Vec<u8>,
    scratch: &'a mut String,
    has_message: bool,
}

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        let name = field.name();
        if name == "message" {
            self.has_message = true;
        }
        self.buf.push(b',');
        // `r#type` style raw identifiers keep their prefix in tracing; drop it.
        write_json_str(self.buf, name.strip_prefix("r#").unwrap_or(name));
        self.buf.push(b':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        write_json_str(self.buf, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.key(field);
        self.scratch.clear();
        let _ = write!(self.scratch, "{value:?}");
        write_json_str(self.buf, self.scratch);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.buf, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        write_u64(self.buf, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        write_json_f64(self.buf, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.buf
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        let chain = crate::error::error_chain(value);
        write_json_str(self.buf, &chain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_escape_agrees_with_the_byte_by_byte_test() {
        let slow = |b: &[u8]| b.iter().any(|c| *c < 0x20 || *c == b'"' || *c == b'\\');
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"request completed".to_vec(),
            "héllo wörld ✓ 日本".as_bytes().to_vec(),
            b"/hello/{name}".to_vec(),
        ];
        // Every byte value at every position of 17-byte strings (two words and a tail).
        for at in 0..17 {
            for byte in 0..=255u8 {
                let mut s = b"abcdefghijklmnopq".to_vec();
                s[at] = byte;
                cases.push(s);
            }
        }
        // A borrow across bytes: 0x00 after 0x01, 0x20 after 0x21, high bytes around.
        cases.push(vec![0x01, 0x00, b'a', b'b', b'c', b'd', b'e', b'f']);
        cases.push(vec![0x21, 0x20, 0x80, 0xff, 0x1f, b'x', b'y', b'z', b'w']);
        for case in cases {
            assert_eq!(needs_escape(&case), slow(&case), "{case:?}");
        }
    }

    #[test]
    fn floats_are_written_as_display_writes_them() {
        let mut values = vec![
            0.0,
            1.0,
            0.001,
            0.01,
            0.1,
            0.123,
            1.5,
            12.34,
            999.999,
            1000.0,
            0.25,
            3.1e-7,
            123456.789,
            1e15,
            0.1 + 0.2,
            -2.5,
            4.0000001,
        ];
        // Durations as the access log computes them, over a range of microseconds.
        values.extend(
            (0..200_000u64)
                .step_by(7)
                .map(|us| (us as f64).round() / 1000.0),
        );
        for v in values {
            let mut buf = Vec::new();
            write_json_f64(&mut buf, v);
            assert_eq!(
                String::from_utf8(buf).expect("utf-8"),
                format!("{v}"),
                "{v}"
            );
        }
        let mut buf = Vec::new();
        write_json_f64(&mut buf, f64::NAN);
        assert_eq!(buf, b"null");
    }

    #[test]
    fn cached_seconds_write_what_the_calendar_says() {
        // Across second, day, month and year boundaries, the cache reused and refreshed.
        for secs in [
            0_u64,
            1,
            59,
            60,
            86_399,
            86_400,
            951_782_399, // 2000-02-28T23:59:59
            951_782_400,
            1_709_251_199, // 2024-02-29T23:59:59
            1_767_225_599, // 2025-12-31T23:59:59
            1_767_225_600,
            1_796_169_600,
        ] {
            for micros in [0, 7, 999_999] {
                let mut ours = Vec::new();
                write_at(&mut ours, secs, micros);
                write_at(&mut ours, secs, micros);
                let t = time::OffsetDateTime::from_unix_timestamp(secs as i64).expect("in range")
                    + time::Duration::microseconds(i64::from(micros));
                let mut expected = Vec::new();
                write_timestamp(&mut expected, t);
                let twice = [expected.clone(), expected].concat();
                assert_eq!(ours, twice, "{secs}.{micros}");
            }
        }
        let mut now = Vec::new();
        write_time(&mut now, std::time::SystemTime::now());
        assert_eq!(now.len(), 27);
        assert!(
            time::OffsetDateTime::parse(
                std::str::from_utf8(&now).expect("ascii"),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let t = time::macros::datetime!(2026-03-04 05:06:07.008_009 UTC);
        let mut buf = Vec::new();
        write_timestamp(&mut buf, t);
        assert_eq!(buf, b"2026-03-04T05:06:07.008009Z");
        let t = time::macros::datetime!(0987-12-31 23:59:59.999_999 UTC);
        buf.clear();
        write_timestamp(&mut buf, t);
        assert_eq!(buf, b"0987-12-31T23:59:59.999999Z");
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        for v in [0, 7, 10, 200, 65_535, 1_000_000_007, u64::MAX] {
            let mut buf = Vec::new();
            write_u64(&mut buf, v);
            assert_eq!(buf, v.to_string().into_bytes());
        }
    }

    #[test]
    fn strings_are_escaped_only_when_needed() {
        for s in [
            "plain",
            "",
            "GET /orders/{id}",
            "quote \" here",
            "back\\slash",
            "tab\t",
            "é ✓",
        ] {
            let mut buf = Vec::new();
            write_json_str(&mut buf, s);
            assert_eq!(buf, serde_json::to_vec(s).expect("json"), "{s}");
        }
    }
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// A sink that keeps what it is given.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl LineSink for Capture {
        fn write_line(&self, line: &[u8]) {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(line);
            }
        }
    }

    #[test]
    fn lines_are_json_with_contract_fields() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry()
            .with(JsonLogLayer::new("order-service", capture.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                user = "ann \"quoted\"",
                count = 3,
                ok = true,
                ratio = 0.5,
                "hello {}",
                "world"
            );
        });
        let bytes = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8(bytes).expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(v["message"], "hello world");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["service"], "order-service");
        assert_eq!(v["user"], "ann \"quoted\"");
        assert_eq!(v["count"], 3);
        assert_eq!(v["ok"], true);
        let ts = v["timestamp"].as_str().expect("timestamp");
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
        assert!(ts.ends_with('Z'));
    }

    mod access {
        use super::*;
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        };
        use std::time::SystemTime;

        /// The line without its timestamp (the two lines are written microseconds apart).
        fn untimed(line: &[u8]) -> String {
            let text = String::from_utf8(line.to_vec()).expect("utf-8");
            let at = text.find("Z\",").expect("a timestamp");
            text[at..].to_owned()
        }

        #[test]
        fn the_direct_line_is_the_line_the_tracing_event_makes() {
            let cases = [
                ("GET", "/hello/{name}", None, 200, 0.123),
                ("POST", "", Some("/no/such \"route\"/é"), 404, 12.5),
                ("_OTHER", "/a\\b", None, 503, 1500.0),
                ("DELETE", "/x", Some("/x"), 204, 0.000_1),
            ];
            let ids = TraceIds {
                trace_id: [0xab; 16],
                span_id: [0xcd; 8],
            };
            let remote = SpanContext::new(
                TraceId::from_bytes(ids.trace_id),
                SpanId::from_bytes(ids.span_id),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            );
            for traced in [false, true] {
                for (method, route, path, status, duration_ms) in cases {
                    let capture = Capture::default();
                    let subscriber = tracing_subscriber::registry()
                        .with(JsonLogLayer::new("svc \"q\"", capture.clone()));
                    let fields = AccessFields {
                        method,
                        route,
                        path,
                        status,
                        duration_ms,
                        at: SystemTime::now(),
                    };
                    tracing::subscriber::with_default(subscriber, || {
                        let _entered = traced.then(|| {
                            opentelemetry::Context::new()
                                .with_remote_span_context(remote.clone())
                                .attach()
                        });
                        access_event(&fields);
                    });
                    let event = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
                    let mut direct = Vec::new();
                    format_access_line(
                        &mut direct,
                        &json_string("svc \"q\""),
                        &fields,
                        traced.then_some(&ids),
                    );
                    assert_eq!(
                        untimed(&direct),
                        untimed(&event),
                        "{method} {route} {path:?}"
                    );
                    assert!(direct.ends_with(b"}\n"));
                }
            }
        }
    }
}
