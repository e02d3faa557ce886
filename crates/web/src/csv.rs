//! CSV export of call records (RFC 4180 quoting).

use std::fmt::Write;

/// Header line of [`cdr_row`].
pub const CDR_HEADER: &str = "id,start_time,answer_time,end_time,caller,caller_name,callee,disposition,duration_s,billsec,hangup_by,hangup_cause,codec,call_id\r\n";

/// Quotes a field when it holds a comma, quote or line break. A leading `=`, `+`, `-` or `@`
/// is prefixed with `'` so spreadsheets do not run caller-controlled text as a formula.
pub fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One CSV line of a call record.
pub fn cdr_row(out: &mut String, c: &store::Cdr) {
    let r = &c.record;
    let t =
        |d: &chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let _ = write!(
        out,
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
        c.id,
        t(&r.start_time),
        r.answer_time.as_ref().map(t).unwrap_or_default(),
        t(&r.end_time),
        field(&r.caller),
        field(&r.caller_name),
        field(&r.callee),
        field(r.disposition.as_str()),
        r.duration_s,
        r.billsec,
        r.hangup_by.as_str(),
        field(&r.hangup_cause),
        field(&r.codec),
        field(&r.call_id),
    );
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn quoting() {
        assert_eq!(field("1001"), "1001");
        assert_eq!(field("+8131234"), "+8131234");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=cmd()"), "'=cmd()");
        assert_eq!(field("NO ANSWER"), "NO ANSWER");
    }
}
