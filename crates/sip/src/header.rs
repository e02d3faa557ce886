//! Header names (with compact forms), raw header values and the ordered header list.
//!
//! Values are kept as `Bytes` slices of the received message, so parsing allocates no memory per
//! header; typed views (see [`crate::values`]) are parsed on demand from the raw text.

use bytes::Bytes;
use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal, $lower:literal, $compact:expr; )*) => {
        /// A header field name: the headers Denwa knows, or any other name kept byte-exact.
        #[derive(Debug, Clone)]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canon, "`")]
                $variant,
            )*
            /// Any other header; the name is kept as received.
            Other(Bytes),
        }

        impl HeaderName {
            /// Canonical (long form) name as written by the serializer.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(b) => std::str::from_utf8(b).unwrap_or(""),
                }
            }

            /// The compact form letter, if the header has one (RFC 3261 §7.3.3 and extensions).
            pub fn compact(&self) -> Option<char> {
                match self {
                    $( HeaderName::$variant => $compact, )*
                    HeaderName::Other(_) => None,
                }
            }

            fn from_lower(lower: &[u8]) -> Option<HeaderName> {
                match lower {
                    $( $lower => Some(HeaderName::$variant), )*
                    _ => None,
                }
            }

            fn from_compact(c: u8) -> Option<HeaderName> {
                $( if $compact == Some(c as char) { return Some(HeaderName::$variant); } )*
                None
            }

            fn index(&self) -> usize {
                let mut _i = 0usize;
                $(
                    if matches!(self, HeaderName::$variant) { return _i; }
                    _i += 1;
                )*
                usize::MAX
            }
        }
    };
}

header_names! {
    Via => "Via", b"via", Some('v');
    From => "From", b"from", Some('f');
    To => "To", b"to", Some('t');
    CallId => "Call-ID", b"call-id", Some('i');
    CSeq => "CSeq", b"cseq", None;
    Contact => "Contact", b"contact", Some('m');
    MaxForwards => "Max-Forwards", b"max-forwards", None;
    Route => "Route", b"route", None;
    RecordRoute => "Record-Route", b"record-route", None;
    Expires => "Expires", b"expires", None;
    MinExpires => "Min-Expires", b"min-expires", None;
    ContentType => "Content-Type", b"content-type", Some('c');
    ContentLength => "Content-Length", b"content-length", Some('l');
    ContentEncoding => "Content-Encoding", b"content-encoding", Some('e');
    ContentDisposition => "Content-Disposition", b"content-disposition", None;
    Authorization => "Authorization", b"authorization", None;
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate", None;
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate", None;
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization", None;
    AuthenticationInfo => "Authentication-Info", b"authentication-info", None;
    Allow => "Allow", b"allow", None;
    Supported => "Supported", b"supported", Some('k');
    Require => "Require", b"require", None;
    ProxyRequire => "Proxy-Require", b"proxy-require", None;
    Unsupported => "Unsupported", b"unsupported", None;
    UserAgent => "User-Agent", b"user-agent", None;
    Server => "Server", b"server", None;
    Event => "Event", b"event", Some('o');
    AllowEvents => "Allow-Events", b"allow-events", Some('u');
    SubscriptionState => "Subscription-State", b"subscription-state", None;
    ReferTo => "Refer-To", b"refer-to", Some('r');
    ReferredBy => "Referred-By", b"referred-by", Some('b');
    Replaces => "Replaces", b"replaces", None;
    RSeq => "RSeq", b"rseq", None;
    RAck => "RAck", b"rack", None;
    SessionExpires => "Session-Expires", b"session-expires", Some('x');
    MinSe => "Min-SE", b"min-se", None;
    PAssertedIdentity => "P-Asserted-Identity", b"p-asserted-identity", None;
    PPreferredIdentity => "P-Preferred-Identity", b"p-preferred-identity", None;
    Reason => "Reason", b"reason", None;
    Subject => "Subject", b"subject", Some('s');
    Accept => "Accept", b"accept", None;
    AcceptEncoding => "Accept-Encoding", b"accept-encoding", None;
    AcceptLanguage => "Accept-Language", b"accept-language", None;
    Date => "Date", b"date", None;
    Timestamp => "Timestamp", b"timestamp", None;
    Warning => "Warning", b"warning", None;
    RetryAfter => "Retry-After", b"retry-after", None;
    Path => "Path", b"path", None;
    ServiceRoute => "Service-Route", b"service-route", None;
    Identity => "Identity", b"identity", Some('y');
}

impl HeaderName {
    /// Recognises a received name (case-insensitive, compact forms included).
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if name.len() == 1
            && let Some(h) = HeaderName::from_compact(name[0].to_ascii_lowercase())
        {
            return h;
        }
        let mut buf = [0u8; 24];
        if name.len() <= buf.len() {
            for (d, s) in buf.iter_mut().zip(name) {
                *d = s.to_ascii_lowercase();
            }
            if let Some(h) = HeaderName::from_lower(&buf[..name.len()]) {
                return h;
            }
        }
        HeaderName::Other(Bytes::copy_from_slice(name))
    }

    /// Like [`HeaderName::from_bytes`] but keeps a slice of the received buffer for unknown names.
    pub(crate) fn from_shared(buf: &Bytes, start: usize, end: usize) -> HeaderName {
        match HeaderName::from_bytes(&buf[start..end]) {
            HeaderName::Other(_) => HeaderName::Other(buf.slice(start..end)),
            known => known,
        }
    }

    /// True when this is a name Denwa knows (not [`HeaderName::Other`]).
    pub fn is_known(&self) -> bool {
        !matches!(self, HeaderName::Other(_))
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a.index() == b.index() && a.is_known() && b.is_known(),
        }
    }
}

impl Eq for HeaderName {}

impl std::hash::Hash for HeaderName {
    /// Consistent with the case-insensitive `PartialEq`.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            HeaderName::Other(b) => {
                state.write_u8(1);
                for c in b.iter() {
                    state.write_u8(c.to_ascii_lowercase());
                }
            }
            known => {
                state.write_u8(0);
                state.write_usize(known.index());
            }
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for HeaderName {
    fn from(s: &str) -> Self {
        HeaderName::from_bytes(s.as_bytes())
    }
}

/// A raw header value: the text after the colon, trimmed, with line folds replaced by one SP.
/// Always valid UTF-8.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HeaderValue(Bytes);

impl HeaderValue {
    /// A value from text (used when building messages). CR and LF become SP, so a value taken
    /// from user input cannot inject header lines.
    pub fn new(s: impl Into<String>) -> HeaderValue {
        let s = s.into();
        if memchr::memchr2(b'\r', b'\n', s.as_bytes()).is_some() {
            return HeaderValue(Bytes::from(s.replace(['\r', '\n'], " ")));
        }
        HeaderValue(Bytes::from(s))
    }

    /// A value from a static string, without copying (CR/LF are replaced as in [`HeaderValue::new`]).
    pub fn from_static(s: &'static str) -> HeaderValue {
        if memchr::memchr2(b'\r', b'\n', s.as_bytes()).is_some() {
            return HeaderValue::new(s);
        }
        HeaderValue(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps bytes the parser has already checked to be UTF-8.
    pub(crate) fn from_checked(b: Bytes) -> HeaderValue {
        HeaderValue(b)
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        // Constructors only accept UTF-8 (the parser validates the whole header section).
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The value as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for HeaderValue {
    fn from(s: &str) -> Self {
        HeaderValue::new(s)
    }
}

impl From<String> for HeaderValue {
    fn from(s: String) -> Self {
        HeaderValue::new(s)
    }
}

/// One header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name.
    pub name: HeaderName,
    /// Raw field value.
    pub value: HeaderValue,
}

/// The ordered header list of a message. Order is kept exactly, duplicates included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty list.
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// An empty list with room for `n` headers.
    pub fn with_capacity(n: usize) -> Headers {
        Headers(Vec::with_capacity(n))
    }

    /// Number of header fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no header fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over all header fields in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }

    /// Mutable iteration over all header fields in order.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Header> {
        self.0.iter_mut()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.0.iter().find(|h| &h.name == name).map(|h| &h.value)
    }

    /// The first value of `name` as text.
    pub fn get_str(&self, name: &HeaderName) -> Option<&str> {
        self.get(name).map(HeaderValue::as_str)
    }

    /// All values of `name`, in order.
    pub fn get_all<'a>(
        &'a self,
        name: &HeaderName,
    ) -> impl Iterator<Item = &'a HeaderValue> + use<'a> {
        let name = name.clone();
        self.0
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| &h.value)
    }

    /// Number of header fields named `name`.
    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }

    /// True when at least one field is named `name`.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.0.iter().any(|h| &h.name == name)
    }

    /// Index of the first field named `name`.
    pub fn position(&self, name: &HeaderName) -> Option<usize> {
        self.0.iter().position(|h| &h.name == name)
    }

    /// Appends a field.
    pub fn push(&mut self, name: HeaderName, value: impl Into<HeaderValue>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts a field at `index` (clamped to the end).
    pub fn insert(&mut self, index: usize, name: HeaderName, value: impl Into<HeaderValue>) {
        let i = index.min(self.0.len());
        self.0.insert(
            i,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Inserts a field before the first field of the same name (or at the top when there is none):
    /// how a proxy adds its Via or a Record-Route.
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<HeaderValue>) {
        let i = self.position(&name).unwrap_or(0);
        self.insert(i, name, value);
    }

    /// Replaces all fields named `name` by one field with `value`, at the position of the first
    /// one (or appended when there was none).
    pub fn set(&mut self, name: HeaderName, value: impl Into<HeaderValue>) {
        let value = value.into();
        match self.position(&name) {
            Some(i) => {
                self.0[i].value = value;
                let mut idx = 0;
                self.0.retain(|h| {
                    let keep = idx <= i || h.name != name;
                    idx += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    /// Removes all fields named `name`; returns how many were removed.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        let before = self.0.len();
        self.0.retain(|h| &h.name != name);
        before - self.0.len()
    }

    /// Removes and returns the field at `index`.
    pub fn remove_at(&mut self, index: usize) -> Option<Header> {
        (index < self.0.len()).then(|| self.0.remove(index))
    }

    /// The field at `index`.
    pub fn at(&self, index: usize) -> Option<&Header> {
        self.0.get(index)
    }

    /// Mutable access to the field at `index`.
    pub fn at_mut(&mut self, index: usize) -> Option<&mut Header> {
        self.0.get_mut(index)
    }

    pub(crate) fn push_header(&mut self, h: Header) {
        self.0.push(h);
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_case_and_compact() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"VIA"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"cAlL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"L"), HeaderName::ContentLength);
        assert_eq!(
            HeaderName::from_bytes(b"x-Foo"),
            HeaderName::from_bytes(b"X-FOO")
        );
        assert_ne!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Contact);
        assert_ne!(HeaderName::Via, HeaderName::To);
        assert_eq!(
            HeaderName::Other(Bytes::from_static(b"X-A")).as_str(),
            "X-A"
        );
        assert_eq!(HeaderName::CallId.compact(), Some('i'));
    }

    #[test]
    fn built_values_cannot_inject_lines() {
        let v = HeaderValue::new("evil\r\nVia: x");
        assert_eq!(v.as_str(), "evil  Via: x");
        assert_eq!(HeaderValue::from_static("a\nb").as_str(), "a b");
    }

    #[test]
    fn set_remove_push_front() {
        let mut h = Headers::new();
        h.push(HeaderName::Via, "a");
        h.push(HeaderName::To, "t");
        h.push(HeaderName::Via, "b");
        h.push_front(HeaderName::Via, "new");
        let vias: Vec<_> = h.get_all(&HeaderName::Via).map(|v| v.as_str()).collect();
        assert_eq!(vias, ["new", "a", "b"]);
        h.set(HeaderName::Via, "only");
        assert_eq!(h.count(&HeaderName::Via), 1);
        assert_eq!(h.at(0).map(|x| x.value.as_str()), Some("only"));
        assert_eq!(h.remove(&HeaderName::Via), 1);
        assert_eq!(h.len(), 1);
        h.set(HeaderName::CallId, "c");
        assert_eq!(h.get_str(&HeaderName::CallId), Some("c"));
    }
}
