//! Digest authentication for SIP (RFC 7616, RFC 8760, RFC 3261 §22), sans-IO.
//!
//! This module works on header *values* (`&str`), so it needs nothing from the message model:
//!
//! - [`parse_challenges`] / [`parse_credentials`] read `WWW-Authenticate` / `Proxy-Authenticate`
//!   and `Authorization` / `Proxy-Authorization` values. Schemes other than `Digest` (and `Digest`
//!   challenges with an algorithm we do not know) come back as [`AuthParams`] so a server can still
//!   answer with a challenge it understands (RFC 4475 regaut01).
//! - [`DigestServer`] issues challenges and verifies credentials. Nonces are stateless:
//!   `timestamp | salt | HMAC-SHA256(secret, timestamp | salt | realm)`, lowercase hex (64
//!   characters; hex cannot spell a header name, see [`crate::ids`]). An expired nonce with an
//!   otherwise correct response yields [`VerifyError::Stale`], answered with a `stale=true`
//!   challenge. A bounded in-memory [`NonceCountTracker`] rejects a repeated or lower `nc` for a
//!   nonce.
//! - [`DigestClient`] answers challenges (picks the strongest algorithm, `qop=auth`, keeps `nc`
//!   counting across requests that reuse a nonce). [`answer_challenge`] is the same computation
//!   with `nc` and `cnonce` from the caller, for clients that keep their own state (engine `uac`).
//!
//! Passwords are never needed by the server: it takes the stored `HA1 = H(user:realm:password)`
//! (see [`ha1`]) for the algorithm the client chose, so a user row keeps one HA1 per algorithm.
//!
//! RFC 2069 style responses (no `qop`, hence no `nc`/`cnonce`) are rejected by default: without
//! `nc` nothing stops a captured `Authorization` from being replayed for the whole nonce
//! lifetime. [`DigestServerConfig::allow_rfc2069`] turns them on for old phones.
//!
//! No clock is read: `now` is a [`SystemTime`] handed in by the caller, and randomness (nonce
//! salt, `cnonce`) comes from a caller-provided [`rand::RngCore`].
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use sip::auth::{
//!     ha1, parse_challenges, parse_credentials, Algorithm, AuthorizationValue, ChallengeValue,
//!     DigestClient, DigestRequest, DigestServer, DigestServerConfig,
//! };
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(7);
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let mut server = DigestServer::new(DigestServerConfig::new("pbx.example"), b"server secret");
//!
//! // Server: 401 with one WWW-Authenticate header per challenge (SHA-256 first, then MD5).
//! let headers: Vec<String> =
//!     server.challenges(now, false, &mut rng).iter().map(|c| c.to_string()).collect();
//!
//! // Client: parse the challenges and answer.
//! let offered: Vec<_> = headers
//!     .iter()
//!     .flat_map(|h| parse_challenges(h).unwrap())
//!     .filter_map(|c| match c {
//!         ChallengeValue::Digest(c) => Some(c),
//!         ChallengeValue::Other(_) => None,
//!     })
//!     .collect();
//! let mut client = DigestClient::new("1001", "secret");
//! let request = DigestRequest { method: "REGISTER", uri: "sip:pbx.example", body: b"" };
//! let creds = client.respond(&offered, &request, &mut rng).unwrap();
//! let header = creds.to_string();
//!
//! // Server: parse, look up the user's HA1 for the chosen algorithm, verify.
//! let AuthorizationValue::Digest(creds) = parse_credentials(&header).unwrap() else { panic!() };
//! assert_eq!(creds.algorithm, Algorithm::Sha256);
//! let stored = ha1(creds.algorithm, "1001", "pbx.example", "secret");
//! assert!(server.verify(&creds, &request, &stored, now).is_ok());
//! // The same header again is a replay.
//! assert!(server.verify(&creds, &request, &stored, now).is_err());
//! ```

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::Md5;
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512_256};

/// Errors from parsing authentication header values or building credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The header value is empty.
    #[error("empty authentication header value")]
    Empty,
    /// The value does not follow the auth-param grammar.
    #[error("malformed authentication header at byte {0}")]
    Syntax(usize),
    /// A quoted string is not valid UTF-8.
    #[error("authentication parameter is not valid UTF-8")]
    Utf8,
    /// A Digest parameter appears twice.
    #[error("duplicate parameter `{0}`")]
    Duplicate(String),
    /// A parameter the Digest scheme requires is missing.
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    /// A parameter has a value that the Digest scheme does not allow.
    #[error("invalid value for parameter `{0}`")]
    Invalid(&'static str),
    /// The credentials name an algorithm this implementation does not support.
    #[error("unsupported digest algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// No usable Digest challenge was offered.
    #[error("no usable Digest challenge")]
    NoUsableChallenge,
}

/// Why [`DigestServer::verify`] refused credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The `realm` parameter is not this server's realm.
    #[error("realm does not match")]
    RealmMismatch,
    /// The `uri` parameter differs from the request's Request-URI.
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
    /// The `opaque` parameter is missing or not the one we issued.
    #[error("opaque does not match")]
    OpaqueMismatch,
    /// The client used an algorithm this server did not offer.
    #[error("algorithm {0} was not offered")]
    AlgorithmNotOffered(Algorithm),
    /// The client used a qop this server did not offer, or omitted qop when RFC 2069 is off.
    #[error("qop not acceptable")]
    QopNotAcceptable,
    /// `qop` was given without `cnonce` or `nc`.
    #[error("qop given without cnonce/nc")]
    MissingCnonceOrNc,
    /// The nonce was not issued by this server (undecodable, bad MAC, or from the future).
    #[error("nonce was not issued by this server")]
    BadNonce,
    /// The response hash is wrong (wrong password, wrong HA1, or tampered parameters).
    #[error("wrong digest response")]
    WrongResponse,
    /// The response is right but the nonce has expired: challenge again with `stale=true`.
    #[error("nonce is stale")]
    Stale,
    /// The nonce count was already used (or is lower than one already seen).
    #[error("nonce count replayed")]
    Replay,
    /// The stored HA1 is not a hex digest of the right length for the algorithm.
    #[error("stored HA1 has the wrong format for the algorithm")]
    BadHa1,
}

impl VerifyError {
    /// True when the right answer is a fresh challenge with `stale=true` (RFC 7616 §3.3).
    pub fn is_stale(&self) -> bool {
        matches!(self, VerifyError::Stale)
    }
}

/// Digest hash algorithm (RFC 7616 §3.1, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617, still the common denominator among SIP phones).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616 / RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// The token used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Parses a wire token, case-insensitively.
    pub fn from_token(token: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(token))
    }

    /// True for the `-sess` variants, whose HA1 also covers nonce and cnonce.
    pub fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// The plain variant: the one whose HA1 is stored (`MD5-sess` -> `MD5`).
    pub fn base(self) -> Algorithm {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Algorithm::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => Algorithm::Sha256,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => Algorithm::Sha512_256,
        }
    }

    /// Preference when a client has a choice: stronger hashes first.
    fn strength(self) -> u8 {
        match self.base() {
            Algorithm::Md5 => 1,
            Algorithm::Sha256 => 2,
            _ => 3,
        }
    }

    /// Length of the lowercase hex digest.
    fn hex_len(self) -> usize {
        match self.base() {
            Algorithm::Md5 => 32,
            _ => 64,
        }
    }

    /// Lowercase hex digest of `parts` joined by `:`.
    fn hash_parts(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            hex::encode(d.finalize())
        }
        match self.base() {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            _ => run::<Sha512_256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of protection (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: method and URI are covered.
    Auth,
    /// `auth-int`: the body is covered as well.
    AuthInt,
}

impl Qop {
    /// The token used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    fn from_token(token: &str) -> Option<Qop> {
        if token.eq_ignore_ascii_case("auth") {
            Some(Qop::Auth)
        } else if token.eq_ignore_ascii_case("auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }
}

/// The request facts a digest response covers.
#[derive(Debug, Clone, Copy)]
pub struct DigestRequest<'a> {
    /// Request method, e.g. `REGISTER`.
    pub method: &'a str,
    /// Request-URI as text (the `uri` parameter must equal it, or be an equivalent SIP URI).
    pub uri: &'a str,
    /// Message body (only hashed for `qop=auth-int`).
    pub body: &'a [u8],
}

/// `HA1 = H(username:realm:password)` as lowercase hex, for the plain variant of `algorithm`.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm
        .base()
        .hash_parts(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// Inputs of a digest response computation beyond HA1 and the request.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInputs<'a> {
    /// Algorithm (decides the hash and the `-sess` HA1 rule).
    pub algorithm: Algorithm,
    /// Server nonce.
    pub nonce: &'a str,
    /// Chosen qop, or `None` for RFC 2069 style.
    pub qop: Option<Qop>,
    /// Nonce count (ignored without qop).
    pub nc: u32,
    /// Client nonce (ignored without qop unless `-sess`).
    pub cnonce: &'a str,
}

/// Computes the `response` parameter from a stored HA1 (RFC 7616 §3.4.1).
pub fn compute_response(
    ha1_hex: &str,
    inputs: &ResponseInputs<'_>,
    req: &DigestRequest<'_>,
) -> String {
    let alg = inputs.algorithm;
    let ha1_eff = if alg.is_sess() {
        alg.hash_parts(&[
            ha1_hex.as_bytes(),
            inputs.nonce.as_bytes(),
            inputs.cnonce.as_bytes(),
        ])
    } else {
        ha1_hex.to_owned()
    };
    let ha2 = match inputs.qop {
        Some(Qop::AuthInt) => {
            let hbody = alg.hash_parts(&[req.body]);
            alg.hash_parts(&[req.method.as_bytes(), req.uri.as_bytes(), hbody.as_bytes()])
        }
        _ => alg.hash_parts(&[req.method.as_bytes(), req.uri.as_bytes()]),
    };
    match inputs.qop {
        Some(q) => {
            let nc = format!("{:08x}", inputs.nc);
            alg.hash_parts(&[
                ha1_eff.as_bytes(),
                inputs.nonce.as_bytes(),
                nc.as_bytes(),
                inputs.cnonce.as_bytes(),
                q.as_str().as_bytes(),
                ha2.as_bytes(),
            ])
        }
        None => alg.hash_parts(&[ha1_eff.as_bytes(), inputs.nonce.as_bytes(), ha2.as_bytes()]),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing of auth-param lists
// ---------------------------------------------------------------------------------------------

/// One `scheme param=value, ...` element of an authentication header value, scheme-agnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    /// The auth scheme as written (compare case-insensitively).
    pub scheme: String,
    /// Parameters in order; names lowercased, quoted values unescaped.
    pub params: Vec<(String, String)>,
    /// A token68 credential (e.g. `Basic dXNlcjpwYXNz`), when the scheme uses one.
    pub token68: Option<String>,
}

impl AuthParams {
    /// The value of parameter `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }

    fn is_digest(&self) -> bool {
        is_digest_scheme(&self.scheme)
    }
}

/// The value of parameter `name` (case-insensitive) in a parsed parameter list.
fn find_param<'p, N: AsRef<str>, V: AsRef<str>>(
    params: &'p [(N, V)],
    name: &str,
) -> Option<&'p str> {
    params
        .iter()
        .find(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_ref())
}

fn is_digest_scheme(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("Digest")
}

/// [`AuthParams`] borrowed from the header value where it can be: parsing the credentials of
/// every REGISTER and INVITE must not cost two allocations per parameter.
struct RawAuth<'a> {
    scheme: &'a str,
    params: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    token68: Option<String>,
}

impl RawAuth<'_> {
    fn into_owned(self) -> AuthParams {
        AuthParams {
            scheme: self.scheme.to_owned(),
            params: self
                .params
                .into_iter()
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect(),
            token68: self.token68,
        }
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.i += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        // Only ASCII bytes pass the predicates used here, so this cannot split a char.
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default()
    }

    fn token(&mut self) -> &'a str {
        self.take_while(is_token_byte)
    }

    /// Reads a quoted-string starting at `"`, undoing `\` escapes (borrowed when it has none).
    fn quoted(&mut self) -> Result<Cow<'a, str>, AuthError> {
        let start = self.i;
        let body = start + 1;
        let plain = self.s[body..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20 && b != b'\t' || b == 0x7f);
        if let Some(n) = plain
            && self.s[body + n] == b'"'
        {
            self.i = body + n + 1;
            return std::str::from_utf8(&self.s[body..body + n])
                .map(Cow::Borrowed)
                .map_err(|_| AuthError::Utf8);
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(AuthError::Syntax(start)),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    let Some(next) = self.s.get(self.i + 1).copied() else {
                        return Err(AuthError::Syntax(self.i));
                    };
                    if next == b'\r' || next == b'\n' {
                        return Err(AuthError::Syntax(self.i));
                    }
                    out.push(next);
                    self.i += 2;
                }
                Some(b) if b < 0x20 && b != b'\t' && b != b'\r' && b != b'\n' || b == 0x7f => {
                    return Err(AuthError::Syntax(self.i));
                }
                Some(b) => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out)
            .map(Cow::Owned)
            .map_err(|_| AuthError::Utf8)
    }

    /// Reads `name SWS "=" SWS (token / quoted-string)`; the name comes back lowercased.
    fn param(&mut self) -> Result<(Cow<'a, str>, Cow<'a, str>), AuthError> {
        let at = self.i;
        let name = self.token();
        if name.is_empty() {
            return Err(AuthError::Syntax(at));
        }
        self.skip_ws();
        if self.peek() != Some(b'=') {
            return Err(AuthError::Syntax(self.i));
        }
        self.i += 1;
        self.skip_ws();
        let value = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            let at = self.i;
            let v = self.token();
            if v.is_empty() {
                return Err(AuthError::Syntax(at));
            }
            Cow::Borrowed(v)
        };
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        Ok((name, value))
    }

    /// After a comma: does a parameter (`token =`) follow, rather than a new scheme?
    fn param_follows(&mut self) -> bool {
        let save = self.i;
        let tok = self.token();
        self.skip_ws();
        let mut is_param = !tok.is_empty() && self.peek() == Some(b'=');
        if is_param {
            // `name=value` needs a value; `abc==` is a token68 with padding instead.
            self.i += 1;
            self.skip_ws();
            is_param = self.peek().is_some_and(|b| b == b'"' || is_token_byte(b));
        }
        self.i = save;
        is_param
    }

    /// Tries a token68 value (`1*(ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/") *"="`)
    /// that is followed only by whitespace, a comma or the end.
    fn token68(&mut self) -> Option<String> {
        let save = self.i;
        let body = self.take_while(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
        let pad = self.take_while(|b| b == b'=');
        let end = self.i;
        self.skip_ws();
        let terminated = matches!(self.peek(), None | Some(b','));
        if !body.is_empty() && terminated {
            // `name=value` looks like a token68 with one `=` only when value is empty, which a
            // param cannot be, so this reading is unambiguous.
            let out = format!("{body}{pad}");
            self.i = end;
            Some(out)
        } else {
            self.i = save;
            None
        }
    }
}

/// Parses a header value holding one or more `scheme params` elements (RFC 3261 §25.1,
/// RFC 7235 §2.1). Quoted values are unescaped and parameter names lowercased.
pub fn parse_auth_list(value: &str) -> Result<Vec<AuthParams>, AuthError> {
    Ok(parse_raw_list(value)?
        .into_iter()
        .map(RawAuth::into_owned)
        .collect())
}

fn parse_raw_list(value: &str) -> Result<Vec<RawAuth<'_>>, AuthError> {
    let mut c = Cursor {
        s: value.as_bytes(),
        i: 0,
    };
    c.skip_ws();
    if c.peek().is_none() {
        return Err(AuthError::Empty);
    }
    let mut out = Vec::new();
    loop {
        let at = c.i;
        let scheme = c.token();
        if scheme.is_empty() {
            return Err(AuthError::Syntax(at));
        }
        let mut item = RawAuth {
            scheme,
            params: Vec::with_capacity(10),
            token68: None,
        };
        let had_ws = c.peek().is_some_and(is_ws);
        c.skip_ws();
        match c.peek() {
            None | Some(b',') => {}
            Some(_) if !had_ws => return Err(AuthError::Syntax(c.i)),
            Some(_) => {
                if !c.param_follows() {
                    match c.token68() {
                        Some(t) => item.token68 = Some(t),
                        None => return Err(AuthError::Syntax(c.i)),
                    }
                } else {
                    item.params.push(c.param()?);
                }
            }
        }
        let mut next_scheme = false;
        loop {
            c.skip_ws();
            match c.peek() {
                None => break,
                Some(b',') => {
                    c.i += 1;
                    c.skip_ws();
                    if c.peek().is_none() {
                        return Err(AuthError::Syntax(c.i));
                    }
                    if c.peek() == Some(b',') {
                        // Empty list elements are allowed by the #rule.
                        continue;
                    }
                    if c.param_follows() && item.token68.is_none() {
                        item.params.push(c.param()?);
                    } else {
                        next_scheme = true;
                        break;
                    }
                }
                Some(_) => return Err(AuthError::Syntax(c.i)),
            }
        }
        out.push(item);
        if !next_scheme {
            return Ok(out);
        }
    }
}

fn check_duplicates<N: AsRef<str>, V>(params: &[(N, V)]) -> Result<(), AuthError> {
    for (i, (n, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(m, _)| m.as_ref() == n.as_ref()) {
            return Err(AuthError::Duplicate(n.as_ref().to_owned()));
        }
    }
    Ok(())
}

/// Writes `value` as a quoted-string, escaping `"` and `\`.
fn write_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_str("\"")?;
    let mut rest = value;
    while let Some(i) = rest.find(['"', '\\']) {
        f.write_str(&rest[..i])?;
        f.write_str("\\")?;
        f.write_str(&rest[i..i + 1])?;
        rest = &rest[i + 1..];
    }
    f.write_str(rest)?;
    f.write_str("\"")
}

// ---------------------------------------------------------------------------------------------
// Challenges
// ---------------------------------------------------------------------------------------------

/// A Digest challenge (`WWW-Authenticate` / `Proxy-Authenticate` value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque string the client echoes back.
    pub opaque: Option<String>,
    /// Hash algorithm (absent on the wire means MD5).
    pub algorithm: Algorithm,
    /// Offered qop values; empty means RFC 2069 style.
    pub qop: Vec<Qop>,
    /// The previous nonce was stale; the client may retry without asking the user.
    pub stale: bool,
    /// `domain` parameter, kept verbatim.
    pub domain: Option<String>,
    /// `userhash=true` was offered (RFC 7616 §3.4.4).
    pub userhash: bool,
}

/// One element of a challenge header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeValue {
    /// A Digest challenge with an algorithm we support.
    Digest(Challenge),
    /// Another scheme, or Digest with an unknown algorithm: the client ignores it.
    Other(AuthParams),
}

impl Challenge {
    /// Builds a challenge from parsed auth-params (scheme must be Digest).
    pub fn from_params(p: &AuthParams) -> Result<Challenge, AuthError> {
        if !p.is_digest() {
            return Err(AuthError::Invalid("scheme"));
        }
        check_duplicates(&p.params)?;
        let realm = p
            .get("realm")
            .ok_or(AuthError::Missing("realm"))?
            .to_owned();
        let nonce = p
            .get("nonce")
            .ok_or(AuthError::Missing("nonce"))?
            .to_owned();
        let algorithm = match p.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(a)
                .ok_or_else(|| AuthError::UnsupportedAlgorithm(a.to_owned()))?,
        };
        // Unknown qop options are ignored (RFC 7616 §3.3: "unrecognized options MUST be ignored").
        let qop = p
            .get("qop")
            .map(|q| {
                q.split(',')
                    .filter_map(|t| Qop::from_token(t.trim()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Challenge {
            realm,
            nonce,
            opaque: p.get("opaque").map(str::to_owned),
            algorithm,
            qop,
            stale: p
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
            domain: p.get("domain").map(str::to_owned),
            userhash: p
                .get("userhash")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

/// Parses a `WWW-Authenticate` / `Proxy-Authenticate` value into its challenges.
pub fn parse_challenges(value: &str) -> Result<Vec<ChallengeValue>, AuthError> {
    parse_auth_list(value)?
        .into_iter()
        .map(|p| {
            if !p.is_digest() {
                return Ok(ChallengeValue::Other(p));
            }
            match Challenge::from_params(&p) {
                Ok(c) => Ok(ChallengeValue::Digest(c)),
                Err(AuthError::UnsupportedAlgorithm(_)) => Ok(ChallengeValue::Other(p)),
                Err(e) => Err(e),
            }
        })
        .collect()
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest realm=")?;
        write_quoted(f, &self.realm)?;
        if let Some(d) = &self.domain {
            f.write_str(", domain=")?;
            write_quoted(f, d)?;
        }
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        if let Some(o) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, o)?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if !self.qop.is_empty() {
            let list: Vec<&str> = self.qop.iter().map(|q| q.as_str()).collect();
            write!(f, ", qop=\"{}\"", list.join(","))?;
        }
        if self.userhash {
            f.write_str(", userhash=true")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

/// Digest credentials (`Authorization` / `Proxy-Authorization` value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name (or its hash when `userhash` is set).
    pub username: String,
    /// Protection space.
    pub realm: String,
    /// Server nonce being answered.
    pub nonce: String,
    /// Digest URI; must equal the Request-URI.
    pub uri: String,
    /// Response hash, lowercase hex.
    pub response: String,
    /// Algorithm (absent on the wire means MD5).
    pub algorithm: Algorithm,
    /// Client nonce (with qop).
    pub cnonce: Option<String>,
    /// Echoed opaque.
    pub opaque: Option<String>,
    /// Chosen qop; `None` is RFC 2069 style.
    pub qop: Option<Qop>,
    /// Nonce count (with qop); sent as 8 lowercase hex digits.
    pub nc: Option<u32>,
    /// `userhash=true` was given.
    pub userhash: bool,
}

/// A parsed `Authorization` / `Proxy-Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationValue {
    /// Digest credentials.
    Digest(Credentials),
    /// Another scheme: answer with a Digest challenge.
    Other(AuthParams),
}

impl Credentials {
    /// Builds credentials from parsed auth-params (scheme must be Digest).
    pub fn from_params(p: &AuthParams) -> Result<Credentials, AuthError> {
        Credentials::from_list(&p.scheme, &p.params)
    }

    /// The Digest credentials of one parsed element, owned or borrowed from the header value.
    fn from_list<N: AsRef<str>, V: AsRef<str>>(
        scheme: &str,
        params: &[(N, V)],
    ) -> Result<Credentials, AuthError> {
        if !is_digest_scheme(scheme) {
            return Err(AuthError::Invalid("scheme"));
        }
        check_duplicates(params)?;
        let get = |name: &str| find_param(params, name);
        let req = |name: &'static str| get(name).map(str::to_owned).ok_or(AuthError::Missing(name));
        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(a)
                .ok_or_else(|| AuthError::UnsupportedAlgorithm(a.to_owned()))?,
        };
        let qop = match get("qop") {
            None => None,
            Some(q) => Some(Qop::from_token(q.trim()).ok_or(AuthError::Invalid("qop"))?),
        };
        let nc = match get("nc") {
            None => None,
            Some(n) => {
                // nc-value = 8LHEX; the hash covers the literal text, so insist on the canonical form.
                if n.len() != 8
                    || !n
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(AuthError::Invalid("nc"));
                }
                Some(u32::from_str_radix(n, 16).map_err(|_| AuthError::Invalid("nc"))?)
            }
        };
        let response = req("response")?;
        if response.is_empty() || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::Invalid("response"));
        }
        Ok(Credentials {
            username: req("username")?,
            realm: req("realm")?,
            nonce: req("nonce")?,
            uri: req("uri")?,
            response: response.to_ascii_lowercase(),
            algorithm,
            cnonce: get("cnonce").map(str::to_owned),
            opaque: get("opaque").map(str::to_owned),
            qop,
            nc,
            userhash: get("userhash").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

/// Parses an `Authorization` / `Proxy-Authorization` value (exactly one element).
pub fn parse_credentials(value: &str) -> Result<AuthorizationValue, AuthError> {
    let mut list = parse_raw_list(value)?;
    if list.len() != 1 {
        return Err(AuthError::Syntax(0));
    }
    let p = list.remove(0);
    if is_digest_scheme(p.scheme) {
        Credentials::from_list(p.scheme, &p.params).map(AuthorizationValue::Digest)
    } else {
        Ok(AuthorizationValue::Other(p.into_owned()))
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest username=")?;
        write_quoted(f, &self.username)?;
        f.write_str(", realm=")?;
        write_quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        f.write_str(", uri=")?;
        write_quoted(f, &self.uri)?;
        f.write_str(", response=")?;
        write_quoted(f, &self.response)?;
        write!(f, ", algorithm={}", self.algorithm)?;
        if let Some(c) = &self.cnonce {
            f.write_str(", cnonce=")?;
            write_quoted(f, c)?;
        }
        if let Some(o) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, o)?;
        }
        if let Some(q) = self.qop {
            write!(f, ", qop={}", q.as_str())?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        if self.userhash {
            f.write_str(", userhash=true")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// Settings of a [`DigestServer`].
#[derive(Debug, Clone)]
pub struct DigestServerConfig {
    /// The realm challenged and required in credentials.
    pub realm: String,
    /// How long a nonce stays fresh; older nonces are answered with `stale=true`.
    pub nonce_lifetime: Duration,
    /// Algorithms offered, in order (one challenge each); default SHA-256 then MD5.
    pub algorithms: Vec<Algorithm>,
    /// qop values offered; default `auth`.
    pub qop: Vec<Qop>,
    /// Accept RFC 2069 responses (no qop, so no nonce-count replay protection). Default off.
    pub allow_rfc2069: bool,
    /// Upper bound of nonces whose counts are remembered.
    pub max_tracked_nonces: usize,
}

impl DigestServerConfig {
    /// Defaults for `realm`: 300 s nonces, SHA-256 + MD5, qop=auth, no RFC 2069, 262 144 nonces.
    pub fn new(realm: impl Into<String>) -> DigestServerConfig {
        DigestServerConfig {
            realm: realm.into(),
            nonce_lifetime: Duration::from_secs(300),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            qop: vec![Qop::Auth],
            allow_rfc2069: false,
            max_tracked_nonces: 262_144,
        }
    }
}

/// Nonce layout: 8-byte timestamp, 8-byte salt, 16-byte truncated HMAC-SHA256.
const NONCE_BYTES: usize = 32;
const NONCE_TAG: usize = 16;
/// A nonce stamped this far in the future still passes (clock steps between HA peers).
const FUTURE_SKEW_SECS: u64 = 5;

/// Bounded record of the highest `nc` seen per nonce; evicts the oldest entries first.
///
/// A nonce that is not (or no longer) tracked is accepted on first use only if it was issued
/// after every evicted nonce; otherwise it is reported stale, so eviction can never reopen a
/// replay window — the client just gets a fresh nonce.
///
/// Entries are compact (16 bytes: 8 bytes of the nonce's MAC as the key, the count and the issue
/// second), so the default bound of 262,144 nonces costs about 10 MB when full. That holds 20 s
/// of a 13,000 registrations/s storm: a REGISTER answered late in a storm still finds its nonce,
/// where a few seconds' worth turned queueing delay into `stale=true` challenges. Nonces past
/// their lifetime are dropped first ([`NonceCountTracker::forget_expired`]) and never count as
/// evicted, since the lifetime check rejects them anyway.
#[derive(Debug)]
pub struct NonceCountTracker {
    max: usize,
    map: HashMap<u64, (u32, u32), TagHasher>,
    order: VecDeque<u64>,
    evicted_upto: Option<u64>,
}

/// The map's keys are already uniformly random (MAC output the server minted and verified), so
/// hashing them again would be wasted work.
#[derive(Debug, Default, Clone, Copy)]
struct TagHasher;

impl std::hash::BuildHasher for TagHasher {
    type Hasher = TagHash;
    fn build_hasher(&self) -> TagHash {
        TagHash(0)
    }
}

#[derive(Debug)]
struct TagHash(u64);

impl std::hash::Hasher for TagHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Outcome of [`NonceCountTracker::check_and_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCountCheck {
    /// The count is new and higher than any before: recorded.
    Fresh,
    /// The count was already used (or is lower).
    Replay,
    /// The nonce may have been evicted: make the client fetch a new one.
    Forgotten,
}

fn tag_key(tag: &[u8; NONCE_TAG]) -> u64 {
    let mut k = [0u8; 8];
    k.copy_from_slice(&tag[..8]);
    u64::from_le_bytes(k)
}

/// Issue times are kept as 32-bit Unix seconds (enough until 2106).
fn secs32(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

impl NonceCountTracker {
    /// A tracker remembering at most `max` nonces (at least 1).
    pub fn new(max: usize) -> NonceCountTracker {
        NonceCountTracker {
            max: max.max(1),
            map: HashMap::with_hasher(TagHasher),
            order: VecDeque::new(),
            evicted_upto: None,
        }
    }

    /// Number of nonces tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops the oldest entries of nonces issued before `oldest_live` (Unix seconds): they are
    /// past their lifetime and fail verification on age alone. Entries are kept in first-use
    /// order, so this stops at the first live one.
    pub fn forget_expired(&mut self, oldest_live: u64) {
        while let Some(&old) = self.order.front() {
            match self.map.get(&old) {
                Some(&(_, ts)) if u64::from(ts) >= oldest_live => break,
                _ => {
                    self.order.pop_front();
                    self.map.remove(&old);
                }
            }
        }
    }

    /// Checks `nc` for the nonce identified by `key` (issued at `issued`), recording it if fresh.
    pub fn check_and_record(
        &mut self,
        key: [u8; NONCE_TAG],
        issued: u64,
        nc: u32,
    ) -> NonceCountCheck {
        let key = tag_key(&key);
        if let Some((last, _)) = self.map.get_mut(&key) {
            if nc <= *last {
                return NonceCountCheck::Replay;
            }
            *last = nc;
            return NonceCountCheck::Fresh;
        }
        if self.evicted_upto.is_some_and(|t| issued <= t) {
            return NonceCountCheck::Forgotten;
        }
        while self.map.len() >= self.max {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((_, ts)) = self.map.remove(&old) {
                let ts = u64::from(ts);
                self.evicted_upto = Some(self.evicted_upto.map_or(ts, |t| t.max(ts)));
            }
        }
        self.map.insert(key, (nc, secs32(issued)));
        self.order.push_back(key);
        NonceCountCheck::Fresh
    }
}

/// Issues Digest challenges and verifies credentials (the registrar / proxy side).
#[derive(Debug)]
pub struct DigestServer {
    config: DigestServerConfig,
    key: Vec<u8>,
    opaque: String,
    tracker: NonceCountTracker,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Does the digest `uri` parameter name the Request-URI? Equal text, or equivalent SIP URIs
/// under RFC 3261 §19.1.4 (case of host and scheme, escaping, parameter order may differ).
fn uri_matches(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    match (
        crate::uri::Uri::parse(digest_uri),
        crate::uri::Uri::parse(request_uri),
    ) {
        (Ok(crate::uri::Uri::Sip(a)), Ok(crate::uri::Uri::Sip(b))) => a.equivalent(&b),
        _ => false,
    }
}

/// Constant-time equality for equal-length byte strings (length itself is not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl DigestServer {
    /// A server for `config.realm` whose nonces are keyed by `secret` (share it between HA peers
    /// so a nonce issued by one verifies on the other).
    pub fn new(config: DigestServerConfig, secret: &[u8]) -> DigestServer {
        let tracker = NonceCountTracker::new(config.max_tracked_nonces);
        let mut server = DigestServer {
            config,
            key: secret.to_vec(),
            opaque: String::new(),
            tracker,
        };
        let tag = server.mac(&[b"opaque", server.config.realm.as_bytes()]);
        server.opaque = hex::encode(&tag[..12]);
        server
    }

    /// The configuration in use.
    pub fn config(&self) -> &DigestServerConfig {
        &self.config
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this never fails.
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return [0; 32],
        };
        for p in parts {
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Mints a fresh nonce stamped `now`.
    pub fn new_nonce(&self, now: SystemTime, rng: &mut impl RngCore) -> String {
        let ts = unix_secs(now).to_be_bytes();
        let mut salt = [0u8; 8];
        rng.fill_bytes(&mut salt);
        let tag = self.mac(&[b"nonce", &ts, &salt, self.config.realm.as_bytes()]);
        let mut raw = [0u8; NONCE_BYTES];
        raw[..8].copy_from_slice(&ts);
        raw[8..16].copy_from_slice(&salt);
        raw[16..].copy_from_slice(&tag[..NONCE_TAG]);
        hex::encode(raw)
    }

    /// Decodes and authenticates a nonce: `(issued_at_secs, tag)`.
    fn open_nonce(&self, nonce: &str) -> Option<(u64, [u8; NONCE_TAG])> {
        let raw = lower_hex_decode(nonce)?;
        if raw.len() != NONCE_BYTES {
            return None;
        }
        let (ts, rest) = raw.split_at(8);
        let (salt, tag) = rest.split_at(8);
        let want = self.mac(&[b"nonce", ts, salt, self.config.realm.as_bytes()]);
        if !ct_eq(&want[..NONCE_TAG], tag) {
            return None;
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(ts);
        let mut k = [0u8; NONCE_TAG];
        k.copy_from_slice(tag);
        Some((u64::from_be_bytes(t), k))
    }

    /// One challenge for `algorithm` with a fresh nonce.
    pub fn challenge(
        &self,
        algorithm: Algorithm,
        now: SystemTime,
        stale: bool,
        rng: &mut impl RngCore,
    ) -> Challenge {
        let nonce = self.new_nonce(now, rng);
        self.challenge_with_nonce(algorithm, nonce, stale)
    }

    fn challenge_with_nonce(&self, algorithm: Algorithm, nonce: String, stale: bool) -> Challenge {
        Challenge {
            realm: self.config.realm.clone(),
            nonce,
            opaque: Some(self.opaque.clone()),
            algorithm,
            qop: self.config.qop.clone(),
            stale,
            domain: None,
            userhash: false,
        }
    }

    /// One challenge per configured algorithm (SHA-256 first by default), sharing one nonce.
    /// Send each as its own `WWW-Authenticate` / `Proxy-Authenticate` header, in order.
    pub fn challenges(
        &self,
        now: SystemTime,
        stale: bool,
        rng: &mut impl RngCore,
    ) -> Vec<Challenge> {
        let nonce = self.new_nonce(now, rng);
        self.config
            .algorithms
            .iter()
            .map(|&a| self.challenge_with_nonce(a, nonce.clone(), stale))
            .collect()
    }

    /// Verifies `creds` for `request` against the stored `ha1_hex` (HA1 of the plain variant of
    /// `creds.algorithm`, looked up by the caller from `creds.username` and `creds.realm`).
    ///
    /// On success the nonce count is recorded, so the same credentials cannot be used twice.
    pub fn verify(
        &mut self,
        creds: &Credentials,
        request: &DigestRequest<'_>,
        ha1_hex: &str,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        if creds.realm != self.config.realm {
            return Err(VerifyError::RealmMismatch);
        }
        if !uri_matches(&creds.uri, request.uri) {
            return Err(VerifyError::UriMismatch);
        }
        if creds.opaque.as_deref() != Some(self.opaque.as_str()) {
            return Err(VerifyError::OpaqueMismatch);
        }
        if !self.config.algorithms.contains(&creds.algorithm) {
            return Err(VerifyError::AlgorithmNotOffered(creds.algorithm));
        }
        let (cnonce, nc) = match creds.qop {
            Some(q) if self.config.qop.contains(&q) => match (&creds.cnonce, creds.nc) {
                (Some(c), Some(n)) => (c.as_str(), n),
                _ => return Err(VerifyError::MissingCnonceOrNc),
            },
            Some(_) => return Err(VerifyError::QopNotAcceptable),
            None if self.config.allow_rfc2069 && !creds.algorithm.is_sess() => ("", 0),
            None => return Err(VerifyError::QopNotAcceptable),
        };
        let (issued, key) = self.open_nonce(&creds.nonce).ok_or(VerifyError::BadNonce)?;
        let now_secs = unix_secs(now);
        if issued > now_secs.saturating_add(FUTURE_SKEW_SECS) {
            return Err(VerifyError::BadNonce);
        }
        let ha1_ok = ha1_hex.len() == creds.algorithm.hex_len()
            && ha1_hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !ha1_ok {
            return Err(VerifyError::BadHa1);
        }
        let inputs = ResponseInputs {
            algorithm: creds.algorithm,
            nonce: &creds.nonce,
            qop: creds.qop,
            nc,
            cnonce,
        };
        // A2 covers the `uri` parameter as the client wrote it (RFC 7616 §3.4.3), which may be
        // spelled differently from our re-serialised Request-URI.
        let hashed = DigestRequest {
            uri: &creds.uri,
            ..*request
        };
        let expected = compute_response(&ha1_hex.to_ascii_lowercase(), &inputs, &hashed);
        if !ct_eq(expected.as_bytes(), creds.response.as_bytes()) {
            return Err(VerifyError::WrongResponse);
        }
        if now_secs.saturating_sub(issued) > self.config.nonce_lifetime.as_secs() {
            return Err(VerifyError::Stale);
        }
        if creds.qop.is_some() {
            let lifetime = self.config.nonce_lifetime.as_secs();
            self.tracker
                .forget_expired(now_secs.saturating_sub(lifetime));
            match self.tracker.check_and_record(key, issued, nc) {
                NonceCountCheck::Fresh => {}
                NonceCountCheck::Replay => return Err(VerifyError::Replay),
                NonceCountCheck::Forgotten => return Err(VerifyError::Stale),
            }
        }
        Ok(())
    }

    /// Number of nonces whose counts are currently remembered.
    pub fn tracked_nonces(&self) -> usize {
        self.tracker.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ClientSession {
    challenge: Challenge,
    nc: u32,
    cnonce: String,
}

/// Answers Digest challenges for one user (the phone / trunk side).
///
/// Remembers the last challenge per realm so later requests can be authorized up front with
/// [`DigestClient::authorize`], counting `nc` up while the nonce stays the same.
#[derive(Debug, Clone)]
pub struct DigestClient {
    username: String,
    password: String,
    sessions: Vec<ClientSession>,
}

impl DigestClient {
    /// A client for `username` / `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> DigestClient {
        DigestClient {
            username: username.into(),
            password: password.into(),
            sessions: Vec::new(),
        }
    }

    /// The challenge a client should answer: strongest algorithm, ties to the first offered.
    pub fn select(challenges: &[Challenge]) -> Option<&Challenge> {
        let mut best: Option<&Challenge> = None;
        for c in challenges {
            if best.is_none_or(|b| c.algorithm.strength() > b.algorithm.strength()) {
                best = Some(c);
            }
        }
        best
    }

    /// Answers the best of `challenges` for `request`.
    pub fn respond(
        &mut self,
        challenges: &[Challenge],
        request: &DigestRequest<'_>,
        rng: &mut impl RngCore,
    ) -> Result<Credentials, AuthError> {
        let chosen = Self::select(challenges).ok_or(AuthError::NoUsableChallenge)?;
        let pos = self
            .sessions
            .iter()
            .position(|s| s.challenge.realm == chosen.realm);
        match pos {
            Some(i) if self.sessions[i].challenge.nonce == chosen.nonce => {
                self.sessions[i].challenge = chosen.clone();
            }
            Some(i) => self.sessions[i] = Self::new_session(chosen.clone(), rng),
            None => self.sessions.push(Self::new_session(chosen.clone(), rng)),
        }
        let realm = chosen.realm.clone();
        self.authorize(&realm, request)
            .ok_or(AuthError::NoUsableChallenge)
    }

    fn new_session(challenge: Challenge, rng: &mut impl RngCore) -> ClientSession {
        let mut raw = [0u8; 12];
        rng.fill_bytes(&mut raw);
        ClientSession {
            challenge,
            nc: 0,
            cnonce: hex::encode(raw),
        }
    }

    /// Credentials for another request in `realm` reusing the remembered nonce with the next
    /// `nc`; `None` if no challenge for that realm was answered yet.
    pub fn authorize(&mut self, realm: &str, request: &DigestRequest<'_>) -> Option<Credentials> {
        let s = self
            .sessions
            .iter_mut()
            .find(|s| s.challenge.realm == realm)?;
        if s.challenge.chosen_qop().is_some() {
            s.nc = s.nc.wrapping_add(1);
        }
        let login = Login {
            username: &self.username,
            password: &self.password,
        };
        Some(answer_challenge(
            &s.challenge,
            &login,
            request,
            s.nc,
            &s.cnonce,
        ))
    }
}

impl Challenge {
    /// The qop a client answers with: `auth` when offered, else `auth-int`, else none
    /// (RFC 2069 style).
    pub fn chosen_qop(&self) -> Option<Qop> {
        if self.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else if self.qop.contains(&Qop::AuthInt) {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }
}

/// Who answers a challenge: the username and password of a client.
#[derive(Clone, Copy)]
pub struct Login<'a> {
    /// Username sent in the credentials.
    pub username: &'a str,
    /// Password (only its hash leaves the process).
    pub password: &'a str,
}

impl fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Credentials answering `challenge` for `request` (RFC 7616 §3.4), the client side with every
/// input from the caller: the qop is [`Challenge::chosen_qop`], `nc` and `cnonce` are used as
/// given (`cnonce` only with a qop or a `-sess` algorithm), `opaque` is echoed.
pub fn answer_challenge(
    challenge: &Challenge,
    login: &Login<'_>,
    request: &DigestRequest<'_>,
    nc: u32,
    cnonce: &str,
) -> Credentials {
    let c = challenge;
    let qop = c.chosen_qop();
    let ha1_hex = ha1(c.algorithm, login.username, &c.realm, login.password);
    let inputs = ResponseInputs {
        algorithm: c.algorithm,
        nonce: &c.nonce,
        qop,
        nc,
        cnonce,
    };
    let response = compute_response(&ha1_hex, &inputs, request);
    Credentials {
        username: login.username.to_owned(),
        realm: c.realm.clone(),
        nonce: c.nonce.clone(),
        uri: request.uri.to_owned(),
        response,
        algorithm: c.algorithm,
        cnonce: (qop.is_some() || c.algorithm.is_sess()).then(|| cnonce.to_owned()),
        opaque: c.opaque.clone(),
        qop,
        nc: qop.map(|_| nc),
        userhash: false,
    }
}

/// Lowercase hex only, so one nonce has one spelling (the replay tracker keys on its bytes).
fn lower_hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    hex::decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_hex_has_one_spelling() {
        assert_eq!(lower_hex_decode("00ff"), Some(vec![0, 255]));
        assert!(lower_hex_decode("00FF").is_none());
        assert!(lower_hex_decode("0f0").is_none());
        assert!(lower_hex_decode("zz").is_none());
        assert_eq!(lower_hex_decode(""), Some(vec![]));
    }

    /// A server for realm `carrier`, its clock and RNG, and the request a client answers for.
    fn carrier(
        qop: Vec<Qop>,
        rfc2069: bool,
    ) -> (
        DigestServer,
        SystemTime,
        rand::rngs::StdRng,
        DigestRequest<'static>,
    ) {
        let mut cfg = DigestServerConfig::new("carrier");
        cfg.qop = qop;
        cfg.allow_rfc2069 = rfc2069;
        let req = DigestRequest {
            method: "REGISTER",
            uri: "sip:carrier.example",
            body: b"",
        };
        (
            DigestServer::new(cfg, b"k"),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1),
            req,
        )
    }

    #[test]
    fn answer_challenge_with_caller_cnonce_verifies() {
        let (mut server, now, mut rng, req) = carrier(vec![Qop::Auth], false);
        let login = Login {
            username: "trunk1",
            password: "pw",
        };
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let ch = server.challenge(alg, now, false, &mut rng);
            let creds = answer_challenge(&ch, &login, &req, 7, "c0ffee");
            assert_eq!(creds.cnonce.as_deref(), Some("c0ffee"));
            assert_eq!(creds.nc, Some(7));
            assert_eq!(creds.qop, Some(Qop::Auth));
            assert_eq!(creds.opaque, ch.opaque);
            let stored = ha1(alg, "trunk1", "carrier", "pw");
            assert_eq!(server.verify(&creds, &req, &stored, now), Ok(()));
            let wrong = Login {
                password: "nope",
                ..login
            };
            let bad = answer_challenge(&ch, &wrong, &req, 8, "c0ffee");
            assert_eq!(
                server.verify(&bad, &req, &stored, now),
                Err(VerifyError::WrongResponse)
            );
        }
    }

    #[test]
    fn answer_challenge_without_qop_is_rfc2069() {
        let (mut server, now, mut rng, req) = carrier(vec![], true);
        let ch = server.challenge(Algorithm::Md5, now, false, &mut rng);
        assert_eq!(ch.chosen_qop(), None);
        let login = Login {
            username: "u",
            password: "p",
        };
        let creds = answer_challenge(&ch, &login, &req, 1, "ignored");
        assert_eq!(
            (creds.qop, creds.nc, creds.cnonce.as_deref()),
            (None, None, None)
        );
        let stored = ha1(Algorithm::Md5, "u", "carrier", "p");
        assert_eq!(server.verify(&creds, &req, &stored, now), Ok(()));
        assert!(format!("{login:?}").contains("<hidden>"));
    }

    #[test]
    fn ct_eq_behaves() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn tracker_evicts_oldest_and_forgets_safely() {
        let mut t = NonceCountTracker::new(2);
        assert_eq!(t.check_and_record([1; 16], 100, 1), NonceCountCheck::Fresh);
        assert_eq!(t.check_and_record([2; 16], 101, 1), NonceCountCheck::Fresh);
        assert_eq!(t.check_and_record([1; 16], 100, 1), NonceCountCheck::Replay);
        assert_eq!(t.check_and_record([3; 16], 102, 1), NonceCountCheck::Fresh);
        assert_eq!(t.len(), 2);
        // Nonce 1 was evicted; reusing it must not be accepted as fresh.
        assert_eq!(
            t.check_and_record([1; 16], 100, 1),
            NonceCountCheck::Forgotten
        );
        // A nonce issued after every evicted one is fine on first use.
        assert_eq!(t.check_and_record([4; 16], 103, 1), NonceCountCheck::Fresh);
        assert_eq!(t.check_and_record([4; 16], 103, 3), NonceCountCheck::Fresh);
        assert_eq!(t.check_and_record([4; 16], 103, 2), NonceCountCheck::Replay);
    }

    #[test]
    fn expired_nonces_leave_without_making_others_stale() {
        let mut t = NonceCountTracker::new(2);
        assert_eq!(t.check_and_record([1; 16], 100, 1), NonceCountCheck::Fresh);
        assert_eq!(t.check_and_record([2; 16], 400, 1), NonceCountCheck::Fresh);
        // Nonce 1 is past its lifetime at 401 (300 s): dropped, nonce 2 kept.
        t.forget_expired(101);
        assert_eq!(t.len(), 1);
        assert_eq!(t.check_and_record([2; 16], 400, 1), NonceCountCheck::Replay);
        // Room was made by expiry, not eviction: a nonce issued earlier than nonce 2 but still
        // alive is fresh on first use.
        assert_eq!(t.check_and_record([3; 16], 399, 1), NonceCountCheck::Fresh);
        assert_eq!(t.len(), 2);
    }
}
