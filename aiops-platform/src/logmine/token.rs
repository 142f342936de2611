//! Tokenisation and masking of log lines.

/// The wildcard that replaces variable tokens in templates.
pub const WILDCARD: &str = "<*>";

/// Bytes that separate tokens (besides whitespace). They are not kept as tokens.
#[inline]
fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\r'
            | b'\n'
            | b'='
            | b':'
            | b','
            | b';'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'"'
            | b'\''
            | b'|'
            | b'<'
            | b'>'
    )
}

const MONTHS_DAYS: [&str; 19] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Mon",
    "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
];

/// Whether a token is variable and should be masked.
#[inline]
pub(crate) fn is_variable(tok: &str) -> bool {
    let b = tok.as_bytes();
    if b.iter().any(u8::is_ascii_digit) {
        return true;
    }
    let n = b.len();
    if n >= 8 && b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    if n == 3 && MONTHS_DAYS.contains(&tok) {
        return true;
    }
    if tok.eq_ignore_ascii_case("true") || tok.eq_ignore_ascii_case("false") {
        return true;
    }
    // fully qualified names (Java frames, FQDNs) with three or more dots
    if b.iter().filter(|&&c| c == b'.').count() >= 3 {
        return true;
    }
    // paths and URLs: two or more separators
    let slashes = b.iter().filter(|&&c| c == b'/' || c == b'\\').count();
    slashes >= 2 || (slashes == 1 && b[0] == b'/' && n > 1)
}

/// Splits `line` into tokens, calling `f(token, is_variable)` for each.
#[inline]
pub(crate) fn for_each_token<'a>(line: &'a str, mut f: impl FnMut(&'a str, bool)) {
    let b = line.as_bytes();
    let mut i = 0;
    let n = b.len();
    while i < n {
        while i < n && is_delim(b[i]) {
            i += 1;
        }
        let start = i;
        while i < n && !is_delim(b[i]) {
            i += 1;
        }
        if start < i {
            // delimiters are ASCII, so slicing at them keeps UTF-8 boundaries
            let tok = &line[start..i];
            let tok = tok.trim_end_matches(['.', '!', '?']);
            let tok = if tok.is_empty() { &line[start..i] } else { tok };
            f(tok, is_variable(tok));
        }
    }
}

/// Byte length of a recognisable header (timestamp, host, process, level) that ends with a
/// `word:` within the first few whitespace-separated words and contains a digit; 0 if none.
pub(crate) fn header_end(line: &str) -> usize {
    let b = line.as_bytes();
    let mut saw_digit = false;
    let mut i = 0;
    for word in 0..9 {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        if start == i {
            return 0;
        }
        let w = &b[start..i];
        if w.iter().any(u8::is_ascii_digit) {
            saw_digit = true;
        }
        let month = w.len() == 3 && MONTHS_DAYS.iter().any(|m| m.as_bytes() == w);
        if word == 0 && !saw_digit && !month && w[0] != b'[' && w != b"-" {
            return 0; // headers start with a timestamp, a bracketed time or a `-` flag
        }
        if w.len() > 1 && w[w.len() - 1] == b':' && saw_digit {
            return i;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(line: &str) -> Vec<String> {
        let mut v = Vec::new();
        for_each_token(line, |t, var| {
            v.push(if var {
                WILDCARD.to_string()
            } else {
                t.to_string()
            })
        });
        v
    }

    #[test]
    fn masks_variables() {
        assert_eq!(
            toks("Connection from 10.0.0.1:5070 took 35ms, id=0xdeadbeef path=/var/log/x.log ok"),
            vec![
                "Connection",
                "from",
                "<*>",
                "<*>",
                "took",
                "<*>",
                "id",
                "<*>",
                "path",
                "<*>",
                "ok"
            ]
        );
        assert_eq!(
            toks("uuid 123e4567-e89b-12d3-a456-426614174000 done."),
            vec!["uuid", "<*>", "done"]
        );
        assert_eq!(
            toks("flag=true user=\"bob\""),
            vec!["flag", "<*>", "user", "bob"]
        );
    }

    #[test]
    fn headers() {
        let l = "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user x from 1.2.3.4";
        assert_eq!(&l[header_end(l)..], " Invalid user x from 1.2.3.4");
        let l = "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1";
        assert_eq!(&l[header_end(l)..], " PacketResponder 1");
        assert_eq!(header_end("Invalid user: bob"), 0);
    }
}
