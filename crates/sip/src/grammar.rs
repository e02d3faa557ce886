//! Character classes and small scanners for the RFC 3261 §25 grammar.
//!
//! Scanners work on `&str` positions and never allocate: the parser uses them to validate every
//! typed header on the hot path, and the typed parsers reuse them (with a callback) to build values.

// Character classes as bits of one 256-entry table: one load and a mask per byte on the hot path.
const UNRESERVED: u8 = 1;
const TOKEN: u8 = 2;
const WORD: u8 = 4;
const USER: u8 = 8;
const PASSWORD: u8 = 16;
const PARAMCHAR: u8 = 32;
const HNV: u8 = 64;

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mark = matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        );
        let unreserved = alnum || mark;
        let token = alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        let word = token
            || matches!(
                b,
                b'(' | b')'
                    | b'<'
                    | b'>'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'{'
                    | b'}'
            );
        let user = unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/');
        let password = unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b',');
        let paramchar = unreserved || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$');
        let hnv = unreserved || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$');
        let flags = [
            (unreserved, UNRESERVED),
            (token, TOKEN),
            (word, WORD),
            (user, USER),
            (password, PASSWORD),
            (paramchar, PARAMCHAR),
            (hnv, HNV),
        ];
        let mut k = 0;
        while k < flags.len() {
            if flags[k].0 {
                t[c] |= flags[k].1;
            }
            k += 1;
        }
        c += 1;
    }
    t
}

static CLASSES: [u8; 256] = build_classes();

/// `alphanum` / `mark` from RFC 3261 `unreserved`.
#[inline]
pub(crate) fn is_unreserved(b: u8) -> bool {
    CLASSES[b as usize] & UNRESERVED != 0
}

/// `token` characters.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    CLASSES[b as usize] & TOKEN != 0
}

/// `word` characters (Call-ID).
#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    CLASSES[b as usize] & WORD != 0
}

/// `user-unreserved` plus unreserved (escapes are checked separately).
#[inline]
pub(crate) fn is_user(b: u8) -> bool {
    CLASSES[b as usize] & USER != 0
}

/// `password` characters (escapes are checked separately).
#[inline]
pub(crate) fn is_password(b: u8) -> bool {
    CLASSES[b as usize] & PASSWORD != 0
}

/// `paramchar` without escapes.
#[inline]
pub(crate) fn is_paramchar(b: u8) -> bool {
    CLASSES[b as usize] & PARAMCHAR != 0
}

/// `hnv-unreserved` / unreserved (URI header names and values) without escapes.
#[inline]
pub(crate) fn is_hnv(b: u8) -> bool {
    CLASSES[b as usize] & HNV != 0
}

/// Whitespace inside a header value (folds are already turned into a single SP).
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Skips SP/HTAB from `pos`.
#[inline]
pub(crate) fn skip_ws(s: &[u8], mut pos: usize) -> usize {
    while pos < s.len() && is_ws(s[pos]) {
        pos += 1;
    }
    pos
}

/// Scans a run of characters accepted by `class`, allowing `%HH` escapes when `escapes` is set.
/// Returns the end position, or an error for a broken escape.
#[inline]
pub(crate) fn scan_run(
    s: &[u8],
    mut pos: usize,
    class: fn(u8) -> bool,
    escapes: bool,
) -> Result<usize, &'static str> {
    while pos < s.len() {
        let b = s[pos];
        if class(b) && b != b'%' {
            pos += 1;
        } else if b == b'%' && escapes {
            if pos + 2 < s.len() && s[pos + 1].is_ascii_hexdigit() && s[pos + 2].is_ascii_hexdigit()
            {
                pos += 3;
            } else {
                return Err("bad % escape");
            }
        } else if b == b'%' && class(b) {
            pos += 1;
        } else {
            break;
        }
    }
    Ok(pos)
}

/// Scans a token; returns its end (== pos when empty).
#[inline]
pub(crate) fn scan_token(s: &[u8], mut pos: usize) -> usize {
    while pos < s.len() && is_token(s[pos]) {
        pos += 1;
    }
    pos
}

/// Scans a quoted-string starting at the opening DQUOTE; returns the position after the closing one.
pub(crate) fn scan_quoted(s: &[u8], pos: usize) -> Result<usize, &'static str> {
    debug_assert!(s.get(pos) == Some(&b'"'));
    let mut i = pos + 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Ok(i + 1),
            b'\\' => {
                // quoted-pair excludes CR and LF only.
                match s.get(i + 1) {
                    Some(b'\r') | Some(b'\n') | None => return Err("bad escape in quoted string"),
                    Some(_) => i += 2,
                }
            }
            b'\r' | b'\n' => return Err("line break in quoted string"),
            b if b < 0x20 && b != b'\t' => return Err("control character in quoted string"),
            0x7f => return Err("control character in quoted string"),
            _ => i += 1,
        }
    }
    Err("unterminated quoted string")
}

/// Removes the quotes and `\` escapes of a quoted string (input includes the quotes).
pub(crate) fn unquote(q: &str) -> String {
    let inner = q
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(q);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Quotes `s` as a quoted-string, escaping `"` and `\`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            // CR and LF cannot be escaped in a quoted-pair.
            '\r' | '\n' => out.push(' '),
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // Other controls are legal only as quoted-pairs.
            c if c.is_ascii_control() && c != '\t' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Decodes `%HH` escapes; invalid escapes are kept literally.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Scans a `host` (hostname, IPv4 or `[IPv6]`); returns its end.
pub(crate) fn scan_host(s: &[u8], pos: usize) -> Result<usize, &'static str> {
    if s.get(pos) == Some(&b'[') {
        let mut i = pos + 1;
        while i < s.len() && (s[i].is_ascii_hexdigit() || s[i] == b':' || s[i] == b'.') {
            i += 1;
        }
        if s.get(i) != Some(&b']') || i == pos + 1 {
            return Err("bad IPv6 reference");
        }
        let inner = &s[pos + 1..i];
        let text = std::str::from_utf8(inner).map_err(|_| "bad IPv6 reference")?;
        if text.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("bad IPv6 address");
        }
        return Ok(i + 1);
    }
    let mut i = pos;
    let mut prev = b'.';
    // Underscores are not in the grammar but appear in real deployments' hostnames.
    while i < s.len() && (s[i].is_ascii_alphanumeric() || matches!(s[i], b'-' | b'.' | b'_')) {
        // A label cannot be empty or start with '-' (covers a leading '.', '-' and "..").
        if prev == b'.' && (s[i] == b'.' || s[i] == b'-') {
            return Err("bad host name");
        }
        prev = s[i];
        i += 1;
    }
    if i == pos {
        return Err("missing host");
    }
    Ok(i)
}

/// Scans an optional `:port` after a host; returns (end, port).
pub(crate) fn scan_port(s: &[u8], pos: usize) -> Result<(usize, Option<u16>), &'static str> {
    if s.get(pos) != Some(&b':') {
        return Ok((pos, None));
    }
    let start = pos + 1;
    let mut i = start;
    let mut v: u32 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v * 10 + u32::from(s[i] - b'0');
        if v > 65535 {
            return Err("port out of range");
        }
        i += 1;
    }
    if i == start {
        return Err("missing port");
    }
    Ok((i, Some(v as u16)))
}

/// Parses 1*DIGIT into u32, failing on overflow.
pub(crate) fn parse_u32_strict(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected digits");
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v * 10 + u64::from(b - b'0');
        if v > u64::from(u32::MAX) {
            return Err("number out of range");
        }
    }
    Ok(v as u32)
}

/// Parses 1*DIGIT into u32, saturating on overflow (Expires, Max-Forwards: RFC 4475 §3.1.2.4).
pub(crate) fn parse_u32_saturating(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected digits");
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = (v * 10 + u64::from(b - b'0')).min(u64::from(u32::MAX) + 1);
    }
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

/// Scans `*( SEMI generic-param )` header parameters from `pos`, calling `f(name, value)` for each
/// (value raw: token, host or quoted string with its quotes). Stops before a `,` or at the end.
pub(crate) fn scan_generic_params<'a>(
    s: &'a str,
    mut pos: usize,
    mut f: impl FnMut(&'a str, Option<&'a str>),
) -> Result<usize, &'static str> {
    let b = s.as_bytes();
    loop {
        let p = skip_ws(b, pos);
        if p >= b.len() || b[p] == b',' {
            return Ok(p);
        }
        if b[p] != b';' {
            return Err("expected ';' before parameter");
        }
        let ns = skip_ws(b, p + 1);
        let ne = scan_token(b, ns);
        if ne == ns {
            return Err("empty parameter name");
        }
        let name = &s[ns..ne];
        let q = skip_ws(b, ne);
        if q < b.len() && b[q] == b'=' {
            let vs = skip_ws(b, q + 1);
            let ve = if b.get(vs) == Some(&b'"') {
                scan_quoted(b, vs)?
            } else {
                // token or host: token chars cover names and IPv4; ':' and brackets admit IPv6
                // (Via received= carries an unbracketed IPv6address).
                let mut e = vs;
                while e < b.len() && (is_token(b[e]) || matches!(b[e], b':' | b'[' | b']')) {
                    e += 1;
                }
                e
            };
            if ve == vs {
                return Err("empty parameter value");
            }
            f(name, Some(&s[vs..ve]));
            pos = ve;
        } else {
            f(name, None);
            pos = ne;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_roundtrip() {
        let q = quote("a \"b\" \\c");
        assert_eq!(q, "\"a \\\"b\\\" \\\\c\"");
        assert_eq!(unquote(&q), "a \"b\" \\c");
        assert_eq!(scan_quoted(q.as_bytes(), 0), Ok(q.len()));
        assert!(scan_quoted(b"\"abc", 0).is_err());
        assert_eq!(quote("a\0b\r\nc"), "\"a\\\0b  c\"");
    }

    #[test]
    fn unescape_keeps_nulls_and_bad_escapes() {
        assert_eq!(unescape("a%00b"), b"a\0b");
        assert_eq!(unescape("%Z%45"), b"%ZE");
        assert_eq!(unescape("%4"), b"%4");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32_strict("4294967295"), Ok(u32::MAX));
        assert!(parse_u32_strict("4294967296").is_err());
        assert_eq!(parse_u32_saturating("99999999999999999999"), Ok(u32::MAX));
        assert!(parse_u32_saturating("-1").is_err());
    }

    #[test]
    fn classes_match_the_grammar() {
        assert!(is_token(b'!') && is_token(b'%') && !is_token(b':') && !is_token(b' '));
        assert!(is_word(b'"') && is_word(b'}') && !is_word(b'@') && !is_word(b';'));
        assert!(is_user(b';') && is_user(b'?') && !is_user(b':') && !is_user(b'@'));
        assert!(is_password(b'$') && !is_password(b';'));
        assert!(is_paramchar(b'[') && !is_paramchar(b';') && !is_paramchar(b'='));
        assert!(is_hnv(b'?') && !is_hnv(b'&') && !is_hnv(b'='));
        assert!(is_unreserved(b'~') && !is_unreserved(b'%') && !is_unreserved(0x80));
    }

    #[test]
    fn hosts() {
        assert_eq!(scan_host(b"[2001:db8::10]:5060", 0), Ok(14));
        assert!(scan_host(b"[2001:db8::zz]", 0).is_err());
        assert_eq!(scan_host(b"example.com;x", 0), Ok(11));
        assert!(scan_host(b";", 0).is_err());
        for bad in [&b"a..b"[..], b".a", b"-a", b"a.-b"] {
            assert!(scan_host(bad, 0).is_err(), "{bad:?}");
        }
        assert_eq!(scan_host(b"a-b.c_d.example.", 0), Ok(16));
    }
}
