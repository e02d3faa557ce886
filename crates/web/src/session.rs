//! Panel sessions (in memory, per node), cookies and CSRF tokens.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use store::AdminRole;

use crate::{Web, lock};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "denwa_session";
/// Name of the pre-session CSRF cookie (sign-in and setup forms).
pub const PRE_COOKIE: &str = "denwa_pre";
/// Name of the language cookie.
pub const LANG_COOKIE: &str = "denwa_lang";
/// Idle time after which a session ends.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// Most sessions kept; the oldest are dropped beyond this (bounds memory under abuse).
const MAX_SESSIONS: usize = 10_000;

/// A signed-in administrator.
#[derive(Debug, Clone)]
pub struct Session {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: AdminRole,
    /// Token every form of this session must carry.
    pub csrf: String,
    /// Last use.
    pub seen: Instant,
}

/// A fresh random token (hex).
pub fn token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Compares secrets without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// True when the request reached us over HTTPS (through a proxy that says so).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure behind HTTPS.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if is_https(headers) {
        c.push_str("; Secure");
    }
    c
}

impl Web {
    /// Starts a session; returns its cookie value.
    pub(crate) fn open_session(&self, username: &str, role: AdminRole) -> String {
        let id = token();
        let mut m = lock(&self.inner.sessions);
        let now = Instant::now();
        m.retain(|_, s| now.duration_since(s.seen) < IDLE);
        if m.len() >= MAX_SESSIONS
            && let Some(oldest) = m.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| k.clone())
        {
            m.remove(&oldest);
        }
        m.insert(
            id.clone(),
            Session {
                username: username.to_string(),
                role,
                csrf: token(),
                seen: now,
            },
        );
        id
    }

    /// The live session of a request, refreshed.
    pub(crate) fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let mut m = lock(&self.inner.sessions);
        let s = m.get_mut(&id)?;
        if s.seen.elapsed() >= IDLE {
            m.remove(&id);
            return None;
        }
        s.seen = Instant::now();
        Some(s.clone())
    }

    /// Ends the request's session.
    pub(crate) fn close_session(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            lock(&self.inner.sessions).remove(&id);
        }
    }

    /// Ends every session of a user (deleted administrator).
    pub(crate) fn close_sessions_of(&self, username: &str) {
        lock(&self.inner.sessions).retain(|_, s| s.username != username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; denwa_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(!set_cookie(&h, "x", "y", None).contains("Secure"));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let c = set_cookie(&h, "x", "y", Some(5));
        assert!(c.contains("Secure") && c.contains("HttpOnly") && c.contains("SameSite=Strict"));
    }

    #[test]
    fn constant_time() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
