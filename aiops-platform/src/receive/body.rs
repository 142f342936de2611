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
    BodyReader::new(body, limit).finish().await
}

/// Reads a request body in steps: a prefix first (to look at before accepting the rest), then
/// the rest, within one limit.
#[derive(Debug)]
pub struct BodyReader {
    body: axum::body::Body,
    buf: Vec<u8>,
    seen: usize,
    limit: usize,
    ended: bool,
}

impl BodyReader {
    /// A reader of at most `limit` bytes of `body`.
    pub fn new(body: axum::body::Body, limit: usize) -> Self {
        Self {
            body,
            buf: Vec::new(),
            seen: 0,
            limit,
            ended: false,
        }
    }

    /// Reads one more frame; false once the body has ended (or passed the limit).
    pub async fn read_more(&mut self) -> Result<bool, IngestError> {
        if !self.ended && self.seen <= self.limit {
            self.next_frame().await?;
        }
        Ok(!self.ended && self.seen <= self.limit)
    }

    /// What is buffered so far.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads the rest and answers the whole body.
    pub async fn finish(mut self) -> Result<Bytes, IngestError> {
        while !self.ended && self.seen <= self.limit.saturating_add(OVERSIZE_DRAIN_BYTES) {
            match self.next_frame().await {
                // Past the drain allowance the connection's own limit cuts the body off.
                Err(IngestError::PayloadTooLarge(_)) => break,
                other => other?,
            }
        }
        if self.seen > self.limit {
            return Err(IngestError::PayloadTooLarge(format!(
                "body exceeds {} bytes",
                self.limit
            )));
        }
        Ok(Bytes::from(self.buf))
    }

    async fn next_frame(&mut self) -> Result<(), IngestError> {
        use http_body_util::BodyExt as _;
        let Some(frame) = self.body.frame().await else {
            self.ended = true;
            return Ok(());
        };
        let frame = frame.map_err(|e| {
            // A chunked body longer than the listener's limit ends in this error.
            if caused_by_length_limit(&e) {
                self.seen = self.seen.max(self.limit.saturating_add(1));
                IngestError::PayloadTooLarge(format!("body exceeds {} bytes", self.limit))
            } else {
                IngestError::BadRequest(format!("cannot read the request body: {e}"))
            }
        })?;
        if let Ok(data) = frame.into_data() {
            self.seen = self.seen.saturating_add(data.len());
            if self.seen <= self.limit {
                self.buf.extend_from_slice(&data);
            }
        }
        Ok(())
    }
}

fn caused_by_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The first line of a body that may be compressed, from a prefix of it: `None` when the
/// prefix holds no complete line within `max` decompressed bytes.
pub fn first_line(headers: &HeaderMap, prefix: &[u8], max: usize) -> Option<Vec<u8>> {
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .unwrap_or_default();
    let until_newline = |mut reader: Box<dyn Read + '_>| -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 512];
        while out.len() <= max {
            if let Some(end) = out.iter().position(|b| *b == b'\n') {
                out.truncate(end);
                return Some(out);
            }
            // A truncated stream ends in an error: what came before it still counts.
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
        None
    };
    match encoding.as_str() {
        "" | "identity" => until_newline(Box::new(prefix)),
        "gzip" | "x-gzip" => until_newline(Box::new(flate2::read::MultiGzDecoder::new(prefix))),
        "deflate" => until_newline(Box::new(flate2::read::ZlibDecoder::new(prefix)))
            .or_else(|| until_newline(Box::new(flate2::read::DeflateDecoder::new(prefix)))),
        _ => None,
    }
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
    fn the_first_line_comes_from_a_truncated_prefix() {
        // Padding that does not compress, so the prefix is a small part of the body.
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                x.to_be_bytes()[1]
            })
            .collect();
        let envelope = [b"{\"dsn\":\"http://k@h/1\"}\n".as_slice(), &noise].concat();
        let whole = gzip(&envelope);
        // Only the first kilobyte of the compressed body has arrived.
        let line = first_line(&headers("gzip"), &whole[..1024], 64 * 1024).expect("a line");
        assert_eq!(line, b"{\"dsn\":\"http://k@h/1\"}");
        let plain = first_line(&HeaderMap::new(), &envelope[..100], 64 * 1024).expect("a line");
        assert_eq!(plain, b"{\"dsn\":\"http://k@h/1\"}");
        // No newline within the bound: nothing.
        assert_eq!(
            first_line(&HeaderMap::new(), &envelope[30..5000], 1000),
            None
        );
        assert_eq!(first_line(&headers("br"), &whole, 1000), None);
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
