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

/// Top-level domains that mark a dotted word as a host name.
const TLDS: [&str; 36] = [
    "com",
    "net",
    "org",
    "edu",
    "gov",
    "mil",
    "io",
    "hk",
    "cn",
    "us",
    "uk",
    "de",
    "jp",
    "fr",
    "ru",
    "info",
    "biz",
    "local",
    "lan",
    "internal",
    "cloud",
    "dev",
    "tv",
    "me",
    "co",
    "ai",
    "app",
    "eu",
    "ca",
    "au",
    "kr",
    "tw",
    "br",
    "nl",
    "ch",
    "localdomain",
];

/// File name extensions that mark a dotted word as a file name.
const FILE_EXTENSIONS: [&str; 30] = [
    "java",
    "py",
    "go",
    "rs",
    "c",
    "cc",
    "cpp",
    "h",
    "js",
    "ts",
    "rb",
    "php",
    "scala",
    "kt",
    "log",
    "txt",
    "json",
    "xml",
    "yaml",
    "yml",
    "conf",
    "cfg",
    "ini",
    "properties",
    "so",
    "dll",
    "exe",
    "jar",
    "class",
    "sh",
];

/// Time units absorbed into the number before them (`3 ms`, `<1 sec`): a duration printed
/// by a humaniser changes unit with its value. Size units stay words (`1.2 KB` and `3.4 MB`
/// usually come from different format strings).
const UNITS: [&str; 12] = [
    "ms", "s", "sec", "secs", "us", "µs", "ns", "min", "mins", "h", "hrs", "msec",
];

/// Keys whose value is the message text itself, tokenised rather than masked.
const MESSAGE_KEYS: [&str; 5] = ["msg", "message", "Message", "MESSAGE", "event"];

/// Whether a token is variable and should be masked.
#[inline]
pub(crate) fn is_variable(tok: &str) -> bool {
    let b = tok.as_bytes();
    let n = b.len();
    let (mut digits, mut letters, mut run, mut longest_run) = (0usize, 0usize, 0usize, 0usize);
    let (mut dots, mut slashes) = (0usize, 0usize);
    let mut all_hex = true;
    for &c in b {
        if c.is_ascii_digit() {
            digits += 1;
            run += 1;
            longest_run = longest_run.max(run);
        } else {
            run = 0;
            if c.is_ascii_alphabetic() {
                letters += 1;
            }
            dots += usize::from(c == b'.');
            slashes += usize::from(c == b'/' || c == b'\\');
        }
        all_hex &= c.is_ascii_hexdigit();
    }
    if digits > 0 {
        // numbers, ids and codes; words with a short version suffix (`ssh2`, `SOCKS5`,
        // `HTTP/1.1`, `en0`) stay words
        if digits >= letters || longest_run >= 3 || (all_hex && n >= 6) {
            return true;
        }
        if b.starts_with(b"0x") {
            return true;
        }
    } else if n >= 8 && all_hex {
        return true;
    }
    if n == 3 && MONTHS_DAYS.contains(&tok) {
        return true;
    }
    if tok.eq_ignore_ascii_case("true") || tok.eq_ignore_ascii_case("false") {
        return true;
    }
    // fully qualified names (Java frames, FQDNs) with three or more dots
    if dots >= 3 {
        return true;
    }
    // host names (`www.example.com`, `d.dropbox.com`) and file names (`Repo.java`)
    if dots >= 1
        && let Some(last) = tok.rsplit('.').next()
        && (TLDS.contains(&last) || FILE_EXTENSIONS.contains(&last))
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
    {
        return true;
    }
    // paths and URLs: two or more separators
    slashes >= 2 || (slashes == 1 && (b[0] == b'/' || b[0] == b'\\') && n > 1)
}

/// End of the value that starts at `j` (after `key=` or `"key":`), or `None` when there is no
/// value to mask there (nothing, or a JSON object, whose keys are read as words).
fn value_end(b: &[u8], j: usize, json: bool) -> Option<usize> {
    let n = b.len();
    let first = *b.get(j)?;
    if first == b'"' {
        let mut k = j + 1;
        while k < n && (b[k] != b'"' || b[k - 1] == b'\\') {
            k += 1;
        }
        return Some((k + 1).min(n));
    }
    if first == b'{' && json {
        return None;
    }
    let mut depth = 0usize;
    let mut k = j;
    while k < n {
        let c = b[k];
        match c {
            b'[' | b'{' | b'(' => depth += 1,
            b']' | b'}' | b')' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
                if depth == 0 && matches!(first, b'[' | b'{' | b'(') {
                    k += 1;
                    break;
                }
            }
            b' ' | b'\t' | b',' | b';' if depth == 0 => break,
            b'"' if json && depth == 0 => break,
            _ => {}
        }
        k += 1;
    }
    (k > j).then_some(k)
}

/// Splits `line` into tokens, calling `f(token, is_variable)` for each.
///
/// Besides the per-token classes of [`is_variable`]: the value of a `key=value` or JSON
/// `"key": value` pair is one variable token, whatever its length (a quoted string, a list, a
/// nested `Name{…}`), unless the key names the message; a unit after a variable (`3 ms`) is
/// part of it; and a run of variables is one variable, so `lifetime 00:01` and
/// `lifetime 01:02:03`, or lists of numbers of any length, have one shape.
#[inline]
pub(crate) fn for_each_token<'a>(line: &'a str, mut f: impl FnMut(&'a str, bool)) {
    for_each_token_enclosed(line, |t, var, _| f(t, var));
}

/// Words after which a word names something (`for root`, `user cyrus`, `from NEW`): a value
/// more often than a message word. Not `to`, which an infinitive follows as often (`took 3 s
/// to spawn`, `to destroy`).
const NAMING_WORDS: [&str; 9] = [
    "user", "User", "for", "by", "from", "host", "process", "client", "node",
];

/// [`for_each_token`], also telling whether a word is likely a value although it looks like a
/// word: alone in brackets or parentheses (`(java)`, `[enabled]`), or after a naming word
/// (`for root`, `user cyrus`).
#[inline]
pub(crate) fn for_each_token_enclosed<'a>(line: &'a str, mut f: impl FnMut(&'a str, bool, bool)) {
    let b = line.as_bytes();
    let mut i = 0;
    let n = b.len();
    let mut prev_var = false;
    let mut prev_naming = false;
    let mut emit = |tok: &'a str, var: bool, enclosed: bool| {
        if var {
            if !prev_var {
                f(tok, true, enclosed);
            }
            prev_var = true;
            prev_naming = false;
        } else if !(prev_var && UNITS.contains(&tok)) {
            f(tok, false, enclosed || prev_naming);
            prev_var = false;
            prev_naming = NAMING_WORDS.contains(&tok);
        }
    };
    while i < n {
        while i < n && is_delim(b[i]) {
            i += 1;
        }
        let start = i;
        while i < n && !is_delim(b[i]) {
            i += 1;
        }
        if start == i {
            break;
        }
        // delimiters are ASCII, so slicing at them keeps UTF-8 boundaries
        let raw = &line[start..i];
        let trimmed = raw.trim_end_matches(['.', '!', '?']);
        let tok = if trimmed.is_empty() { raw } else { trimmed };
        let enclosed = start > 0
            && matches!(b[start - 1], b'(' | b'[')
            && i < n
            && matches!(b[i], b')' | b']');
        emit(tok, is_variable(tok), enclosed);
        // `key=value` (no space around `=`) and JSON `"key": value`
        let value_at = if i + 1 < n && b[i] == b'=' && !matches!(b[i + 1], b' ' | b'\t' | b'=') {
            Some((i + 1, false))
        } else if i + 1 < n && b[i] == b'"' && b[i + 1] == b':' {
            let mut j = i + 2;
            while j < n && b[j] == b' ' {
                j += 1;
            }
            Some((j, true))
        } else {
            None
        };
        if let Some((j, json)) = value_at
            && !MESSAGE_KEYS.contains(&tok)
            && let Some(end) = value_end(b, j, json)
        {
            // `end` is at an ASCII byte or the end, so a char boundary
            if let Some(value) = line.get(j..end) {
                emit(value, true, false);
                i = end;
            }
        }
    }
}

/// Level words that end a header (or precede its component).
const LEVELS: [&str; 17] = [
    "INFO", "WARN", "WARNING", "ERROR", "DEBUG", "TRACE", "FATAL", "SEVERE", "FAILURE", "NOTICE",
    "CRITICAL", "Info", "Warning", "Error", "[notice]", "[error]", "[warn]",
];

/// Whether a word looks like a date, a time, an epoch or a compact date stamp.
fn is_time_like(w: &[u8]) -> bool {
    let w = w.strip_prefix(b"[").unwrap_or(w);
    if w.len() == 3 && MONTHS_DAYS.iter().any(|m| m.as_bytes() == w) {
        return true;
    }
    let lead = w.iter().take_while(|c| c.is_ascii_digit()).count();
    if lead == w.len() && lead >= 6 {
        return true; // 081109, epochs
    }
    // HH:MM anywhere
    if w.windows(4).any(|x| {
        x[0].is_ascii_digit() && x[1] == b':' && x[2].is_ascii_digit() && x[3].is_ascii_digit()
    }) {
        return true;
    }
    // dates: 2016-09-28, 17/06/09, 2005.06.03, 03-17, 10.30
    (1..=4).contains(&lead)
        && w.len() > lead + 1
        && matches!(w[lead], b'-' | b'/' | b'.')
        && w[lead + 1].is_ascii_digit()
}

fn is_level(w: &[u8]) -> bool {
    LEVELS.iter().any(|l| l.as_bytes() == w) || (w.len() == 1 && b"VDIWEF".contains(&w[0]))
}

/// Byte offset where the message starts after a recognisable header (timestamp, host,
/// process, level, component), or 0 when the line has none. The header is left out of the
/// template: lines of one message under different processes, hosts or request contexts share
/// a template.
///
/// A header starts with a timestamp, a month, a bracket or a `-` flag, holds a date or time,
/// and ends at the first of, within its first 12 words: a `process[pid]:`-style word ending
/// with `:`; a lone `-` (unless a level follows it); a level word, together with a component
/// after it (`INFO comp:`, `INFO [thread] comp:`, `INFO comp [context …]`). A word with a
/// quote ends the search: quotes belong to messages.
pub(crate) fn content_start(line: &str) -> usize {
    let b = line.as_bytes();
    // word spans
    let mut words: [(usize, usize); 14] = [(0, 0); 14];
    let mut count = 0;
    let mut i = 0;
    while count < words.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        if start == i {
            break;
        }
        words[count] = (start, i);
        count += 1;
    }
    let words = &words[..count];
    let word = |k: usize| words.get(k).map(|&(s, e)| &b[s..e]);
    let Some(w0) = word(0) else {
        return 0;
    };
    let month = w0.len() == 3 && MONTHS_DAYS.iter().any(|m| m.as_bytes() == w0);
    // an alert tag before a timestamp (`KERNDTLB 1118536327 …`, `VAPI 1131566461 …`)
    let tag = w0.len() <= 12
        && w0
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
        && word(1).is_some_and(is_time_like);
    if !(w0.iter().any(u8::is_ascii_digit) || month || tag || w0[0] == b'[' || w0 == b"-") {
        return 0; // headers start with a timestamp, a bracketed time or a `-` flag
    }
    if w0.contains(&b'|') {
        return 0; // `time|component|pid|message` glued by pipes: no word-level header
    }
    let end_of = |k: usize| words.get(k).map_or(b.len(), |&(_, e)| e);
    // the end of a bracket group starting at word k (a word ending with `]`)
    let group_end = |k: usize| -> Option<usize> {
        (k..words.len().min(k + 8)).find(|&j| word(j).is_some_and(|w| w.ends_with(b"]")))
    };
    let mut timed = false;
    for k in 0..words.len().min(12) {
        let Some(w) = word(k) else { break };
        if w.contains(&b'"') {
            return 0;
        }
        timed |= is_time_like(w);
        if k == 0 || !timed {
            continue;
        }
        if is_level(w) {
            let next = word(k + 1);
            if next.is_some_and(|n| n.len() > 1 && n.ends_with(b":")) {
                return end_of(k + 1);
            }
            if next.is_some_and(|n| n.starts_with(b"[")) {
                let Some(g) = group_end(k + 1) else {
                    return end_of(k);
                };
                return match word(g + 1) {
                    Some(n) if n.len() > 1 && n.ends_with(b":") && !n.contains(&b'"') => {
                        end_of(g + 1)
                    }
                    Some(b"-") => end_of(g + 1),
                    _ => end_of(g),
                };
            }
            // a component and a bracketed context: `INFO nova.compute.manager [req-… - - -]`
            if next.is_some_and(|n| !n.contains(&b'"'))
                && word(k + 2).is_some_and(|n| n.starts_with(b"["))
                && let Some(g) = group_end(k + 2)
            {
                return end_of(g);
            }
            return end_of(k);
        }
        if w == b"-" {
            if word(k + 1).is_some_and(is_level) {
                continue;
            }
            return end_of(k);
        }
        if w.len() > 1 && w.ends_with(b":") {
            return end_of(k);
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
            toks("flag=true user=\"bob smith\" msg=\"user created\" ids=[1, 2, 3]"),
            vec![
                "flag", "<*>", "user", "<*>", "msg", "user", "created", "ids", "<*>"
            ]
        );
        // a short version suffix stays a word; ids and host names do not
        assert_eq!(
            toks("open through proxy.cse.cuhk.edu.hk SOCKS5 ssh2 HTTP/1.1 node-246 d.dropbox.com"),
            vec![
                "open", "through", "<*>", "SOCKS5", "ssh2", "HTTP/1.1", "<*>"
            ]
        );
        // units and runs of variables: one variable, whatever the length
        assert_eq!(toks("lifetime <1 sec"), toks("lifetime 01:02:03"));
        assert_ne!(toks("size 1.2 KB"), toks("size 3.4 MB"));
        assert_eq!(
            toks("at Repo.find(Repo.java:42)"),
            vec!["at", "Repo.find", "<*>"]
        );
        assert_eq!(
            toks(r#"{"message":"slow query","duration":"35 ms","rows":[1,2]}"#),
            vec!["message", "slow", "query", "duration", "<*>", "rows", "<*>"]
        );
    }

    fn message(l: &str) -> &str {
        l[content_start(l)..].trim_start()
    }

    #[test]
    fn headers() {
        for (line, msg) in [
            (
                "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user x from 1.2.3.4",
                "Invalid user x from 1.2.3.4",
            ),
            (
                "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1",
                "PacketResponder 1",
            ),
            (
                "[10.30 16:49:06] chrome.exe - proxy.cse.cuhk.edu.hk:5070 close, 0 bytes sent",
                "proxy.cse.cuhk.edu.hk:5070 close, 0 bytes sent",
            ),
            (
                "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
                "Notification time out: 3200",
            ),
            (
                "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-38101a0b-2096 113d3a99 54fadb41 - - -] 10.11.10.1 \"GET /v2 HTTP/1.1\" status: 200",
                "10.11.10.1 \"GET /v2 HTTP/1.1\" status: 200",
            ),
            (
                "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster",
                "Created MRAppMaster",
            ),
            (
                "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
                "instruction cache parity error corrected",
            ),
            (
                "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505 with Core: C:\\x.dll",
                "CBS    Loaded Servicing Stack v6.1.7601.23505 with Core: C:\\x.dll",
            ),
            (
                "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app",
                "printFreezingDisplayLogsopening app",
            ),
            (
                "KERNDTLB 1118536327 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-17.32.07.581048 R30-M0-N9-C:J16-U01 RAS KERNEL FATAL data TLB error interrupt",
                "data TLB error interrupt",
            ),
            (
                "nova-compute.log.1.2017-05-16_13:55:31 2017-05-16 00:00:04.562 2931 INFO os_vif [req-3ea4052c - - - - -] Successfully unplugged vif",
                "Successfully unplugged vif",
            ),
            (
                "nova-compute.log.1.2017-05-16_13:55:31 2017-05-16 00:00:04.562 2931 INFO nova.compute.manager [-] [instance: b9000564-fe1a] VM Started (Lifecycle Event)",
                "[instance: b9000564-fe1a] VM Started (Lifecycle Event)",
            ),
        ] {
            assert_eq!(message(line), msg, "{line}");
        }
        for plain in [
            "Invalid user: bob",
            "10.11.10.1 \"GET /v2 HTTP/1.1\" status: 200 len: 1893",
            "[instance: b9000564-fe1a-409b-b8cc-1e88b294cd1d] Attempting claim: memory 2048 MB",
            "ts=2024-05-01T10:00:00Z level=info msg=\"cache refreshed\" took=3ms",
            "Received disconnect from 1.2.3.4: 11: Bye Bye [preauth]",
            "20171223-22:15:29:633|Step_StandReportReceiver|30002312|onReceive action: android.intent.action.SCREEN_ON",
        ] {
            assert_eq!(content_start(plain), 0, "{plain}");
        }
    }
}
