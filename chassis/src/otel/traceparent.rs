//! W3C Trace Context (`traceparent`, `tracestate`) read without the propagator's detour.
//!
//! `TraceContextPropagator::extract` asks its `Extractor` for each header by name, splits the
//! value into a `Vec`, parses each part through `from_str_radix` and scans it again for
//! capitals. On a NATS message, whose header map hashes a freshly built header name per lookup,
//! that cost ~4,200 instructions per message under `valgrind --tool=callgrind`, a tenth of the
//! chassis consumer's whole path (`python3 bench/consumer.py`); this parser reads the 55 bytes
//! in place (~300).
//!
//! It follows the [W3C recommendation](https://www.w3.org/TR/trace-context/#traceparent-header):
//! `version-traceid-parentid-flags`, lowercase hex of exactly 2, 32, 16 and 2 digits; version
//! `ff` is invalid; version `00` has nothing after the flags; a later version may carry more
//! after a `-`, which is ignored; all-zero ids are invalid. Surrounding whitespace is trimmed, as
//! the SDK does. Only the sampled flag is kept, and `tracestate` is parsed by the SDK's
//! `TraceState` (an invalid one is dropped, the parent kept), as the propagator does. The SDK
//! is laxer on one point: it takes ids shorter than their length (`u128::from_str_radix`).

use std::str::FromStr as _;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

/// The remote parent described by `traceparent` (and `tracestate`), or `None` when the header
/// is malformed or names no valid span.
pub(crate) fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let b = traceparent.trim().as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = hex::<1>(&b[0..2])?[0];
    if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let trace_id = TraceId::from_bytes(hex::<16>(&b[3..35])?);
    let span_id = SpanId::from_bytes(hex::<8>(&b[36..52])?);
    let flags = hex::<1>(&b[53..55])?[0];
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let state = tracestate
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        state,
    ))
}

/// `parent` with the remote span `traceparent` names as its span, or `parent` itself.
pub(crate) fn extract_into(
    parent: &opentelemetry::Context,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> opentelemetry::Context {
    match traceparent.and_then(|tp| parse(tp, tracestate)) {
        Some(sc) => parent.with_remote_span_context(sc),
        None => parent.clone(),
    }
}

/// `sc` as a version-00 `traceparent` value, `00-<trace>-<span>-<flags>` (the ids written by
/// hand: `format!` of them showed in the request path's profile).
pub(crate) fn format(sc: &SpanContext) -> [u8; 55] {
    let mut header = [0u8; 55];
    header[..3].copy_from_slice(b"00-");
    crate::logging::write_hex(&mut header[3..35], &sc.trace_id().to_bytes());
    header[35] = b'-';
    crate::logging::write_hex(&mut header[36..52], &sc.span_id().to_bytes());
    header[52] = b'-';
    crate::logging::write_hex(&mut header[53..55], &[sc.trace_flags().to_u8()]);
    header
}

/// `N` bytes from `2 * N` lowercase hex digits.
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        *out.get_mut(i)? = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    /// What the SDK's propagator makes of the same headers.
    fn sdk(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
        let mut headers = HashMap::new();
        headers.insert("traceparent".to_owned(), traceparent.to_owned());
        if let Some(s) = tracestate {
            headers.insert("tracestate".to_owned(), s.to_owned());
        }
        let cx = TraceContextPropagator::new().extract(&headers);
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    }

    #[test]
    fn agrees_with_the_sdk_propagator_on_valid_headers() {
        // The SDK's own test vectors, and a few more.
        for (tp, ts) in [
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                Some("foo=bar"),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("foo=bar"),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                Some("foo=bar"),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
                Some("foo=bar"),
            ),
            (
                "02-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("foo=bar"),
            ),
            (
                "02-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-08",
                Some("foo=bar"),
            ),
            (
                "02-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-XYZxsf09",
                Some("foo=bar"),
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-",
                Some("foo=bar"),
            ),
            (
                "  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("a=1,b=2"),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("not a state"),
            ),
            (
                "00-00000000000000000000000000000001-0000000000000001-01",
                None,
            ),
        ] {
            let ours = parse(tp, ts);
            assert!(ours.is_some(), "{tp}");
            assert_eq!(ours, sdk(tp, ts), "{tp} {ts:?}");
        }
    }

    #[test]
    fn rejects_what_the_recommendation_rejects() {
        for tp in [
            "",
            "00",
            "0000-00000000000000000000000000000000-0000000000000000-01",
            "00-ab00000000000000000000000000000000-cd00000000000000-01",
            "00-ab000000000000000000000000000000-cd0000000000000000-01",
            "00-ab000000000000000000000000000000-cd00000000000000-0100",
            "qw-00000000000000000000000000000000-0000000000000000-01",
            "00-qw000000000000000000000000000000-cd00000000000000-01",
            "00-ab000000000000000000000000000000-qw00000000000000-01",
            "00-ab000000000000000000000000000000-cd00000000000000-q1",
            "00-AB000000000000000000000000000000-cd00000000000000-01",
            "00-ab000000000000000000000000000000-CD00000000000000-01",
            "00-ab000000000000000000000000000000-cd00000000000000-0A",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(tp, None), None, "{tp:?}");
            // Where the SDK is as strict, it agrees (it takes short ids, and nothing here is
            // shorter than its field).
            assert_eq!(sdk(tp, None), None, "the SDK takes {tp:?}");
        }
    }

    #[test]
    fn format_writes_what_parse_reads_and_the_sdk_injects() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse(tp, None).expect("valid");
        assert_eq!(&format(&sc)[..], tp.as_bytes());
        let mut injected = HashMap::new();
        let cx = opentelemetry::Context::new().with_remote_span_context(sc.clone());
        TraceContextPropagator::new().inject_context(&cx, &mut injected);
        assert_eq!(injected["traceparent"].as_bytes(), &format(&sc)[..]);
    }

    #[test]
    fn extract_into_keeps_the_parent_when_there_is_nothing_to_continue() {
        let root = opentelemetry::Context::new();
        assert!(!extract_into(&root, None, None).has_active_span());
        assert!(!extract_into(&root, Some("garbage"), None).has_active_span());
        let cx = extract_into(
            &root,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None,
        );
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex")
        );
    }
}
