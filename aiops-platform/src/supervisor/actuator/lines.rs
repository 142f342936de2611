//! [`LineSplitter`]: a child's output bytes as lines, whatever it writes — invalid UTF-8 is
//! replaced (U+FFFD), not an end of reading (a reader that stopped would leave the child
//! writing into a full pipe, or dying of a broken one), and a line longer than the cap is
//! handed on in pieces of the cap, so a child that never writes a newline holds at most the
//! cap of the platform's memory. Nothing is dropped.

/// The longest line kept whole: longer ones go on in pieces of this many bytes.
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024;

/// Splits a byte stream into lines of at most `max` bytes.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    /// A splitter cutting lines longer than `max` bytes (at least 1).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            pending: Vec::new(),
            max: max.max(1),
        }
    }

    /// The complete lines (and full pieces) that `bytes` ends, without their line ends.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                out.push(self.take());
            } else {
                self.pending.push(b);
                if self.pending.len() >= self.max {
                    out.push(self.take());
                }
            }
        }
        out
    }

    /// What is left when the stream ends (a last line without a newline).
    pub(crate) fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.pending)
            .trim_end_matches('\r')
            .to_owned();
        self.pending.clear();
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads_and_crlf_ends() {
        let mut s = LineSplitter::new(MAX_LINE_BYTES);
        assert!(s.push(b"hel").is_empty());
        assert_eq!(s.push(b"lo\r\nwor"), ["hello"]);
        assert_eq!(s.push(b"ld\n\n"), ["world", ""]);
        assert_eq!(s.finish(), None);
        s.push(b"tail");
        assert_eq!(s.finish().as_deref(), Some("tail"));
    }

    #[test]
    fn invalid_utf8_is_replaced_and_reading_goes_on() {
        let mut s = LineSplitter::new(MAX_LINE_BYTES);
        assert_eq!(
            s.push(b"bad \xff byte\nnext\n"),
            ["bad \u{fffd} byte", "next"]
        );
    }

    #[test]
    fn a_line_without_end_is_handed_on_in_pieces_of_the_cap() {
        let mut s = LineSplitter::new(4);
        assert_eq!(s.push(b"abcdefghij"), ["abcd", "efgh"]);
        assert_eq!(s.pending.len(), 2, "never more than the cap held");
        assert_eq!(s.push(b"\n"), ["ij"]);
    }
}
