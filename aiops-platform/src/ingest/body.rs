//! Request bodies: content encodings with a decompressed-size limit (a gzip bomb stops there).

use std::io::Read;

use bytes::Bytes;
use http::HeaderMap;

use super::IngestError;

/// How much of an over-limit body is still read (and discarded) before answering 413, so a
/// client that is still writing sees the 413 instead of a broken pipe.
pub const OVERSIZE_DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// Reads a request body of at most `limit` bytes; a larger one is drained (up to
/// [`OVERSIZE_DRAIN_BYTES`] more) and refused with 413.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, IngestError> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| IngestError::BadRequest(format!("cannot read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= limit {
                buf.extend_from_slice(&data);
            } else if seen > limit.saturating_add(OVERSIZE_DRAIN_BYTES) {
                break;
            }
        }
    }
    if seen > limit {
        return Err(IngestError::PayloadTooLarge(format!(
            "body exceeds {limit} bytes"
        )));
    }
    Ok(Bytes::from(buf))
}

/// Decompresses `body` per its `Content-Encoding`, refusing more than `max` bytes of output.
pub fn decode_body(headers: &HeaderMap, body: Bytes, max: usize) -> Result<Bytes, IngestError> {
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => {
            if body.len() > max {
                return Err(too_large(max));
            }
            Ok(body)
        }
        "gzip" | "x-gzip" => {
            read_limited(flate2::read::MultiGzDecoder::new(&body[..]), max, "gzip")
        }
        "deflate" => {
            // HTTP "deflate" is zlib-wrapped, but some clients send raw deflate.
            match read_limited(flate2::read::ZlibDecoder::new(&body[..]), max, "deflate") {
                Err(IngestError::BadRequest(_)) => {
                    read_limited(flate2::read::DeflateDecoder::new(&body[..]), max, "deflate")
                }
                other => other,
            }
        }
        other => Err(IngestError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {other:?}; use gzip, deflate or none"
        ))),
    }
}

fn too_large(max: usize) -> IngestError {
    IngestError::PayloadTooLarge(format!("body exceeds {max} bytes after decompression"))
}

fn read_limited(reader: impl Read, max: usize, what: &str) -> Result<Bytes, IngestError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::BadRequest(format!("invalid {what} body: {e}")))?;
    if out.len() > max {
        return Err(too_large(max));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).expect("in memory");
        Bytes::from(enc.finish().expect("in memory"))
    }

    fn headers(enc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, enc.parse().expect("valid"));
        h
    }

    #[test]
    fn gzip_round_trip_and_bomb_stopped() {
        let out = decode_body(&headers("gzip"), gzip(b"hello"), 10).expect("small");
        assert_eq!(&out[..], b"hello");
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 16 * 1024);
        assert!(matches!(
            decode_body(&headers("gzip"), bomb, 1000),
            Err(IngestError::PayloadTooLarge(_))
        ));
        assert!(matches!(
            decode_body(&headers("gzip"), Bytes::from_static(b"nope"), 1000),
            Err(IngestError::BadRequest(_))
        ));
        assert!(matches!(
            decode_body(&headers("br"), Bytes::new(), 1000),
            Err(IngestError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn deflate_zlib_and_raw() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(b"abc").expect("in memory");
        let out = decode_body(
            &headers("deflate"),
            Bytes::from(z.finish().expect("mem")),
            10,
        )
        .expect("zlib");
        assert_eq!(&out[..], b"abc");
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        d.write_all(b"xyz").expect("in memory");
        let out = decode_body(
            &headers("deflate"),
            Bytes::from(d.finish().expect("mem")),
            10,
        )
        .expect("raw");
        assert_eq!(&out[..], b"xyz");
    }
}
