//! `auth`: digest authentication of REGISTER and INVITE (RFC 7616/8760), with the `pike`
//! brute-force throttle and a bound on the database work an unauthenticated peer can cause.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use rand::RngCore;
use sip::auth::{
    AuthorizationValue, DigestRequest, DigestServer, DigestServerConfig, VerifyError,
    parse_credentials,
};
use sip::{HeaderName, Request, Response, Uri};
use tracing::{debug, info, warn};

use crate::config::{Absent, ExtEntry, Snapshot};
use crate::peerlog::{PeerLog, PeerLogConfig};
use crate::pike::{Throttle, ThrottleConfig, Verdict};

/// Result of authenticating a request.
#[derive(Debug)]
pub enum AuthOutcome {
    /// The credentials are right: the extension.
    Ok(ExtEntry),
    /// No (usable) credentials: send a challenge.
    Challenge {
        /// The nonce was stale (or from before a restart).
        stale: bool,
    },
    /// Refuse with 403 and this reason.
    Forbidden(&'static str),
    /// The source is banned: say nothing.
    Ignore,
    /// The user is not in the cache: look it up, then authenticate again.
    Lookup((i64, String)),
}

/// Digest servers (one per tenant realm), the throttle, and the extension lookups in flight.
pub struct Auth {
    digest: HashMap<String, DigestServer>,
    secret: [u8; 32],
    /// Brute-force bans per source address.
    pub pike: Throttle,
    /// Users looked up and not found.
    pub(crate) absent: Absent,
    /// Failed authentications are logged per source, a few in full and the rest summarised: a
    /// burst of bogus credentials from many (spoofed) sources must not fill the disk.
    failures_log: PeerLog<IpAddr>,
    /// Bans, logged apart from failures (a ban comes after the per-source lines ran out) but
    /// under the same global limits: sources can be spoofed.
    bans_log: PeerLog<IpAddr>,
}

impl Auth {
    /// An authenticator with the node's nonce secret.
    pub fn new(secret: [u8; 32], throttle: ThrottleConfig) -> Auth {
        Auth {
            digest: HashMap::new(),
            secret,
            pike: Throttle::new(throttle),
            absent: Absent::default(),
            failures_log: PeerLog::new(PeerLogConfig::default()),
            bans_log: PeerLog::new(PeerLogConfig {
                burst: 1,
                ..PeerLogConfig::default()
            }),
        }
    }

    /// One digest server per tenant realm, offering the configured algorithms. The secret is
    /// shared (and stored in the database), so nonces stay valid across restarts and rebuilds.
    pub fn rebuild(&mut self, snap: &Snapshot) {
        self.digest.clear();
        for realm in snap.tenants.realms.values() {
            let mut c = DigestServerConfig::new(realm.clone());
            c.algorithms = snap.settings.digest_algorithms.clone();
            self.digest
                .insert(realm.clone(), DigestServer::new(c, &self.secret));
        }
    }

    /// Checks the digest credentials in `header` (Authorization or Proxy-Authorization) for
    /// extension `user` of `tenant`. `ours` says whether a host names this server.
    #[allow(clippy::too_many_arguments)]
    pub fn check(
        &mut self,
        snap: &Snapshot,
        req: &Request,
        header: &HeaderName,
        tenant: i64,
        user: &str,
        source: SocketAddr,
        ours: impl Fn(&str) -> bool,
        now: Instant,
        wall: SystemTime,
    ) -> AuthOutcome {
        if self.pike.is_banned(source.ip(), now) {
            return AuthOutcome::Ignore;
        }
        let Some(realm) = snap.tenants.realms.get(&tenant) else {
            return AuthOutcome::Forbidden("unknown tenant");
        };
        let creds = req
            .headers
            .get_all(header)
            .find_map(|v| match parse_credentials(v.as_str()) {
                Ok(AuthorizationValue::Digest(c)) if c.realm == *realm => Some(c),
                _ => None,
            });
        let Some(creds) = creds else {
            return AuthOutcome::Challenge { stale: false };
        };
        let key = (tenant, creds.username.to_string());
        let ext = snap.extensions.get(&key);
        if ext.is_none() && !self.absent.contains(&key) {
            // Added moments ago (the reload after the change notice has not landed yet), or
            // unknown: ask the database once, then authenticate again.
            return AuthOutcome::Lookup(key);
        }
        let request_uri = req.uri.to_string();
        let uri: &str = if creds.uri == request_uri {
            &request_uri
        } else if digest_uri_names_us(&creds.uri, &req.uri, &ours) {
            // Interop: sipp puts `host:port` in the digest uri while its Request-URI has no
            // port, and some desk phones write the URI in another form. The response is checked
            // against the uri they hashed, and nonce counts still stop replays, so a uri that
            // names this server is accepted.
            debug!(peer = %source, digest_uri = %creds.uri, %request_uri, "digest uri differs from the Request-URI in form: accepted");
            &creds.uri
        } else {
            &request_uri
        };
        let dr = DigestRequest {
            method: req.method.as_str(),
            uri,
            body: &req.body,
        };
        let result = match (ext, self.digest.get_mut(realm.as_str())) {
            (Some(e), Some(server)) => {
                let ha1 = match creds.algorithm.base() {
                    sip::auth::Algorithm::Sha256 => e.ha1_sha256.as_deref(),
                    _ => e.ha1_md5.as_deref(),
                };
                match ha1 {
                    Some(h) => server.verify(&creds, &dr, h, wall),
                    None => Err(VerifyError::WrongResponse),
                }
            }
            _ => Err(VerifyError::WrongResponse),
        };
        match result {
            Ok(()) => {
                let Some(e) = ext else {
                    return AuthOutcome::Forbidden("unknown user");
                };
                if creds.username != user {
                    return self.failed(
                        source,
                        &creds.username,
                        "credentials are for another user",
                        now,
                    );
                }
                if !e.enabled {
                    return self.failed(source, user, "extension disabled", now);
                }
                self.pike.success(source.ip(), now);
                AuthOutcome::Ok(e.clone())
            }
            Err(e) if e.is_stale() => AuthOutcome::Challenge { stale: true },
            Err(VerifyError::Replay) => {
                // The response was right, only its nonce count was used before: a
                // retransmission that outlived its transaction (Timer J), or a captured request
                // replayed. Either way a fresh nonce is the answer; it is not a password guess,
                // so the throttle does not count it.
                info!(peer = %source, user = %creds.username, "nonce count replayed: challenged again");
                AuthOutcome::Challenge { stale: true }
            }
            Err(VerifyError::BadNonce) | Err(VerifyError::OpaqueMismatch) => {
                // A nonce from before our restart: challenge again rather than refuse.
                AuthOutcome::Challenge { stale: true }
            }
            Err(e) => {
                let reason = match e {
                    VerifyError::UriMismatch => "digest uri does not match",
                    _ => "wrong password or unknown user",
                };
                let user = creds.username.to_string();
                self.failed(source, &user, reason, now)
            }
        }
    }

    fn failed(
        &mut self,
        source: SocketAddr,
        user: &str,
        reason: &'static str,
        now: Instant,
    ) -> AuthOutcome {
        let detail = || format!("user {user}: {reason}");
        match self.pike.failure(source.ip(), now) {
            Verdict::Banned => {
                if self.bans_log.event(source.ip(), now, detail).is_log() {
                    warn!(peer = %source, %user, reason, "authentication failed: source banned");
                }
            }
            Verdict::Counted(n) => {
                if self.failures_log.event(source.ip(), now, detail).is_log() {
                    warn!(peer = %source, %user, reason, failures = n, "authentication failed");
                }
            }
        }
        AuthOutcome::Forbidden(reason)
    }

    /// Summary lines of the failures not logged one by one (call periodically).
    pub fn flush_log(&mut self, now: Instant) {
        for s in self.failures_log.flush(now) {
            warn!("{}", s.line("failed authentications"));
        }
        for s in self.bans_log.flush(now) {
            warn!("{}", s.line("bans for failed authentications"));
        }
    }

    /// A 401 (or 407 for `proxy`) with one challenge per algorithm offered.
    #[allow(clippy::too_many_arguments)]
    pub fn challenge(
        &self,
        snap: &Snapshot,
        req: &Request,
        tenant: i64,
        stale: bool,
        proxy: bool,
        tag: &str,
        wall: SystemTime,
        rng: &mut impl RngCore,
    ) -> Response {
        let (status, header) = if proxy {
            (407, HeaderName::ProxyAuthenticate)
        } else {
            (401, HeaderName::WwwAuthenticate)
        };
        let mut resp = Response::for_request(req, status, None).with_to_tag(tag);
        if let Some(server) = snap
            .tenants
            .realms
            .get(&tenant)
            .and_then(|r| self.digest.get(r))
        {
            for c in server.challenges(wall, stale, rng) {
                resp.headers.push(header.clone(), c.to_string());
            }
        }
        resp
    }

    /// Is `ip` banned right now?
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.pike.is_banned(ip, now)
    }
}

/// True when the digest `uri` names this server: a SIP(S) URI whose host is the Request-URI's
/// host or one `ours` recognises (our addresses, the tenant's domains), whatever its port, user
/// part or parameters.
pub fn digest_uri_names_us(
    digest_uri: &str,
    request_uri: &Uri,
    ours: impl Fn(&str) -> bool,
) -> bool {
    let Ok(Uri::Sip(d)) = digest_uri.parse::<Uri>() else {
        return false;
    };
    if let Some(r) = request_uri.as_sip()
        && d.host.eq_ignore_case(&r.host)
    {
        return true;
    }
    ours(&d.host.to_string())
}

impl crate::Engine {
    /// Authenticates `req` for extension `user` of `tenant` with the credentials in `header`
    /// (`Authorization`: 401 challenges, `Proxy-Authorization`: 407). Answers challenges and
    /// refusals itself, parks the request while an unknown user is looked up, and says nothing
    /// to a banned source; returns the extension (and the request) only when it passed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn authorize(
        &mut self,
        txn: sip::transaction::TransactionId,
        req: Request,
        (source, local, transport): (SocketAddr, SocketAddr, sip::transaction::Transport),
        tenant: i64,
        user: &str,
        header: &HeaderName,
        now: crate::Now,
    ) -> Option<(ExtEntry, Request)> {
        let outcome = {
            let snap = &self.snap;
            let locals = &self.cfg.locals;
            let advertise = self.cfg.advertise;
            let ours = |h: &str| crate::registrar::is_ours(snap, locals, advertise, tenant, h);
            self.auth.check(
                snap, &req, header, tenant, user, source, ours, now.mono, now.wall,
            )
        };
        match outcome {
            AuthOutcome::Ok(e) => Some((e, req)),
            AuthOutcome::Challenge { stale } => {
                let tag = self.new_tag();
                let proxy = *header == HeaderName::ProxyAuthorization;
                let r = self.auth.challenge(
                    &self.snap,
                    &req,
                    tenant,
                    stale,
                    proxy,
                    &tag,
                    now.wall,
                    &mut self.rng,
                );
                self.respond(txn, r, now);
                None
            }
            AuthOutcome::Forbidden(reason) => {
                self.counters.auth_failures += 1;
                self.respond(txn, Response::for_request(&req, 403, Some(reason)), now);
                None
            }
            AuthOutcome::Ignore => None,
            AuthOutcome::Lookup(key) => {
                let parked = crate::Parked {
                    txn,
                    req,
                    source,
                    local,
                    transport,
                };
                self.park_for_lookup(key, parked, now);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_uri_forms() {
        let ruri: Uri = "sip:example.com".parse().unwrap();
        let none = |_: &str| false;
        assert!(digest_uri_names_us("sip:example.com:5070", &ruri, none));
        assert!(digest_uri_names_us(
            "sip:EXAMPLE.com;transport=tcp",
            &ruri,
            none
        ));
        assert!(digest_uri_names_us("sips:1001@example.com", &ruri, none));
        assert!(!digest_uri_names_us("sip:evil.example.org", &ruri, none));
        assert!(!digest_uri_names_us("tel:+81312345678", &ruri, none));
        assert!(!digest_uri_names_us("not a uri", &ruri, none));
        let ip_ruri: Uri = "sip:192.0.2.10".parse().unwrap();
        let ours = |h: &str| h == "pbx.example.com";
        assert!(digest_uri_names_us(
            "sip:pbx.example.com:5060",
            &ip_ruri,
            ours
        ));
        assert!(!digest_uri_names_us(
            "sip:other.example.com",
            &ip_ruri,
            ours
        ));
    }
}
