//! How `aiops up` writes its own log lines on stderr: text for a person (coloured only on a
//! terminal), or one JSON object per line like the aiods services' (`timestamp`, `level`,
//! `message`, the event's fields, `target`, `service`).

use std::io::IsTerminal as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The format of `aiops`'s log lines (`--log-format`, `AIOPS_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, as the aiods services write.
    Json,
}

/// Installs the global subscriber writing to stderr in `format`, filtered by `RUST_LOG`
/// (default `info`). Colours only when stderr is a terminal and `NO_COLOR` is unset.
pub fn install(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            ))
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .event_format(JsonLine { service: "aiops" })
            .try_init(),
    };
    // Another subscriber already installed (a test harness): keep it.
    let _ = installed;
}

/// Whether to colour log lines: only for a person at a terminal who has not said `NO_COLOR`.
pub fn use_colour(terminal: bool, no_color: bool) -> bool {
    terminal && !no_color
}

/// Formats an event as one JSON line.
#[derive(Debug, Clone, Copy)]
pub struct JsonLine {
    /// The `service` field of every line.
    pub service: &'static str,
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        writeln!(writer, "{}", json_line(self.service, event))
    }
}

/// The JSON object of one event.
pub fn json_line(service: &str, event: &Event<'_>) -> serde_json::Value {
    let meta = event.metadata();
    let mut fields = serde_json::Map::new();
    fields.insert(
        "timestamp".into(),
        timestamp(time::OffsetDateTime::now_utc()).into(),
    );
    fields.insert("level".into(), meta.level().as_str().into());
    event.record(&mut JsonFields(&mut fields));
    fields.entry("message").or_insert_with(|| "".into());
    fields.insert("target".into(), meta.target().into());
    fields.insert("service".into(), service.into());
    serde_json::Value::Object(fields)
}

/// RFC 3339, UTC, microseconds, `Z`: the services' timestamp format.
fn timestamp(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl JsonFields<'_> {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        let name = field.name();
        self.0
            .insert(name.strip_prefix("r#").unwrap_or(name).to_owned(), value);
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        self.put(field, text.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn colour_only_for_a_terminal_without_no_color() {
        assert!(use_colour(true, false));
        assert!(!use_colour(false, false));
        assert!(!use_colour(true, true));
    }

    #[test]
    fn json_lines_carry_the_services_fields() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .event_format(JsonLine { service: "aiops" })
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(service_name = "kitchen", restarts = 3, "instance restarted");
        });
        let bytes = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8(bytes).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_default();
        assert_eq!(v["message"], "instance restarted", "{text}");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["service"], "aiops");
        assert_eq!(v["service_name"], "kitchen");
        assert_eq!(v["restarts"], 3);
        assert!(
            v["target"]
                .as_str()
                .is_some_and(|t| t.contains("log_format"))
        );
        let ts = v["timestamp"].as_str().unwrap_or_default();
        assert!(
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok()
                && ts.ends_with('Z'),
            "{ts}"
        );
    }
}
