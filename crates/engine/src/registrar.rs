//! `registrar`: REGISTER (RFC 3261 §10) — authenticated by [`crate::auth`], bindings decided
//! here, written to the database as [`LocOp`]s, and applied to [`crate::usrloc`] and answered
//! only once the write succeeded. A refused or failed REGISTER leaves memory and database as they
//! were.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use sip::transaction::{TransactionId, Transport};
use sip::{Contact, HeaderName, Request, Response};
use tracing::{debug, info, warn};

use crate::db::DbOp;
use crate::nathelper::contact_is_behind_nat;
use crate::usrloc::{Binding, LocOp, Ping};
use crate::{Engine, Now, Pending};

/// A REGISTER waiting for its location write.
pub(crate) struct Reply {
    txn: TransactionId,
    extension_id: i64,
    /// The 200 to send (bindings are added when the write is done).
    ok: Response,
}

/// The lower-case host of a SIP URI.
pub(crate) fn uri_domain(uri: &sip::Uri) -> Option<String> {
    uri.as_sip()
        .map(|u| u.host.to_string().to_ascii_lowercase())
}

impl Engine {
    /// A REGISTER that passed [`sip::check_parsed`], with what that parsed (To, CSeq, Contact,
    /// Expires: each header parsed once, the To's SIP scheme and the `*` rule checked there).
    pub(crate) fn on_register(
        &mut self,
        txn: TransactionId,
        (req, checked): (Request, sip::Checked),
        source: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        now: Now,
    ) {
        let sip::Checked {
            to,
            cseq,
            contacts,
            expires: header_expires,
            ..
        } = checked;
        let (Some(user), Some(domain)) = (to.uri.user(), uri_domain(&to.uri)) else {
            let r = Response::for_request(&req, 400, Some("To has no user part"));
            return self.respond(txn, r, now);
        };
        let Some(tenant) = self.snap.tenants.for_domain(&domain) else {
            info!(peer = %source, %domain, "REGISTER for an unknown domain");
            let r = Response::for_request(&req, 404, Some("Unknown domain"));
            return self.respond(txn, r, now);
        };
        let Some((ext, req)) = self.authorize(
            txn,
            req,
            (source, local, transport),
            tenant,
            &user,
            &HeaderName::Authorization,
            now,
        ) else {
            return;
        };
        let call_id = req.call_id().unwrap_or_default();
        let cseq = cseq.seq;
        let aor = format!("sip:{}@{}", ext.number, domain);
        let s = &self.snap.settings;
        let current = self.usrloc.get(ext.id);
        let mut ops = Vec::new();

        if contacts.iter().any(|c| matches!(c, Contact::Wildcard)) {
            // RFC 3261 §10.3 step 6: `*` only alone and with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                let r = Response::for_request(
                    &req,
                    400,
                    Some("Contact * needs Expires: 0 and no other contact"),
                );
                return self.respond(txn, r, now);
            }
            if let Some(old) = current
                .iter()
                .find(|b| b.call_id == call_id && cseq <= b.cseq)
            {
                debug!(cseq, old = old.cseq, "out-of-order REGISTER");
                let r = Response::for_request(&req, 500, Some("Out-of-order CSeq"));
                return self.respond(txn, r, now);
            }
            // Every binding of the extension, whatever domain it was registered under.
            ops.push(LocOp::DeleteAll {
                extension_id: ext.id,
            });
            info!(peer = %source, %aor, "all registrations removed");
        } else {
            // Every check that can refuse the request comes first, so a refusal changes nothing.
            let mut wanted = Vec::with_capacity(contacts.len());
            for c in &contacts {
                let Contact::Addr(na) = c else { continue };
                if !na.uri.is_sip() {
                    continue;
                }
                let contact_uri = na.uri.to_string();
                let asked = na.expires().or(header_expires).unwrap_or(s.default_expires);
                if asked != 0 && asked < s.min_expires {
                    let r = Response::for_request(&req, 423, None)
                        .with_header(HeaderName::MinExpires, s.min_expires.to_string());
                    return self.respond(txn, r, now);
                }
                if current
                    .iter()
                    .any(|b| b.contact_uri == contact_uri && b.call_id == call_id && cseq <= b.cseq)
                {
                    let r = Response::for_request(&req, 500, Some("Out-of-order CSeq"));
                    return self.respond(txn, r, now);
                }
                wanted.push((na, contact_uri, asked));
            }
            let user_agent = req.headers.user_agent().unwrap_or_default();
            // What the extension's bindings will be: (contact, expiry) after this request.
            let mut after: Vec<(String, SystemTime)> = current
                .iter()
                .map(|b| (b.contact_uri.clone(), b.expires_at))
                .collect();
            for (na, contact_uri, asked) in wanted {
                let existing = current.iter().find(|b| b.contact_uri == contact_uri);
                after.retain(|(c, _)| *c != contact_uri);
                if asked == 0 {
                    if existing.is_some() {
                        ops.push(LocOp::Delete {
                            extension_id: ext.id,
                            contact_uri,
                        });
                    }
                    continue;
                }
                let expires_at =
                    now.wall + Duration::from_secs(u64::from(asked.min(s.max_expires)));
                after.push((contact_uri.clone(), expires_at));
                let b = Binding {
                    tenant_id: tenant,
                    extension_id: ext.id,
                    aor: match existing {
                        Some(e) if e.aor == aor => e.aor.clone(),
                        _ => aor.clone(),
                    },
                    contact: na.uri.clone(),
                    contact_uri,
                    expires_at,
                    q: na.q().map(f64::from).unwrap_or(1.0),
                    call_id: call_id.to_string(),
                    cseq,
                    user_agent: user_agent.to_string(),
                    received: source,
                    transport,
                    local,
                    instance_id: na.params.value("+sip.instance"),
                    reg_id: na.params.value("reg-id").and_then(|v| v.parse().ok()),
                    behind_nat: contact_is_behind_nat(&na.uri, source),
                    flags: 0,
                    ping: Ping {
                        failures: 0,
                        txn: None,
                        next: now.mono + s.keepalive,
                    },
                };
                ops.push(LocOp::Upsert(Box::new(b)));
            }
            // Over the contact limit: the oldest registrations make room (a phone that moved
            // behind a new NAT binding must not lock itself out).
            while after.len() > ext.max_contacts {
                let Some(i) = after
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (_, exp))| *exp)
                    .map(|(i, _)| i)
                else {
                    break;
                };
                let (contact_uri, _) = after.remove(i);
                // A contact upserted by this very request and then evicted is not written.
                ops.retain(|op| !matches!(op, LocOp::Upsert(b) if b.contact_uri == contact_uri));
                if current.iter().any(|b| b.contact_uri == contact_uri) {
                    ops.push(LocOp::Delete {
                        extension_id: ext.id,
                        contact_uri,
                    });
                }
            }
            if !contacts.is_empty() {
                debug!(peer = %source, %aor, contacts = after.len(), "registered");
            }
        }

        let ok = Response::for_request(&req, 200, None);
        let reply = Reply {
            txn,
            extension_id: ext.id,
            ok,
        };
        if ops.is_empty() {
            // A query (no Contact): the bindings as they are.
            return self.answer_register(reply, now);
        }
        if self.pending.len() >= self.cfg.max_pending_db {
            // The database is not keeping up (or stuck): refuse rather than queue without end.
            // The phone retries after Retry-After; its binding is as it was.
            self.counters.db_overload += 1;
            let r = reply
                .ok
                .restated(503, Some("Database Busy"))
                .with_header(HeaderName::RetryAfter, "5");
            return self.respond(reply.txn, r, now);
        }
        self.db(DbOp::Location(ops), Pending::Location(Some(reply)));
    }

    /// The database answered a location write: apply it to memory and answer the REGISTER, or
    /// answer 500 and change nothing.
    pub(crate) fn location_written(
        &mut self,
        ops: Vec<LocOp>,
        result: Result<(), String>,
        reply: Option<Reply>,
        now: Now,
    ) {
        match result {
            Ok(()) => {
                let fresh: Vec<crate::usrloc::Binding> = if self.snap.apps.vm_counts.is_empty() {
                    Vec::new()
                } else {
                    ops.iter()
                        .filter_map(|o| match o {
                            LocOp::Upsert(b) => Some((**b).clone()),
                            _ => None,
                        })
                        .collect()
                };
                self.usrloc.apply(ops);
                self.blf_sweep_soon();
                if let Some(r) = reply {
                    self.answer_register(r, now);
                }
                for b in fresh {
                    let ext = self.snap.apps.vm_counts.keys().find(|(t, n)| {
                        *t == b.tenant_id
                            && self
                                .snap
                                .extensions
                                .get(&(*t, n.clone()))
                                .is_some_and(|e| e.id == b.extension_id)
                    });
                    if let Some((t, n)) = ext.cloned() {
                        self.mwi_registered(t, &n, &b, now);
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "storing registration failed");
                if let Some(r) = reply {
                    let resp =
                        r.ok.restated(500, Some("Database Unavailable"))
                            .with_header(HeaderName::RetryAfter, "5");
                    self.respond(r.txn, resp, now);
                }
            }
        }
    }

    /// 200 OK listing every current binding of the extension.
    fn answer_register(&mut self, r: Reply, now: Now) {
        let Reply {
            txn,
            extension_id,
            mut ok,
        } = r;
        for b in self.usrloc.get(extension_id) {
            let left = b
                .expires_at
                .duration_since(now.wall)
                .unwrap_or_default()
                .as_secs();
            ok.headers.push(
                HeaderName::Contact,
                format!("<{}>;expires={left}", b.contact_uri),
            );
        }
        let date = self.date_header(now.wall);
        ok.headers.push(HeaderName::Date, date);
        self.respond(txn, ok, now);
    }
}

impl Engine {
    /// The Date header value, formatted once per second (every 200 to a REGISTER carries one).
    fn date_header(&mut self, wall: SystemTime) -> String {
        let secs = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if self.date_cache.0 != secs || self.date_cache.1.is_empty() {
            self.date_cache = (secs, httpdate(wall));
        }
        self.date_cache.1.clone()
    }
}

/// True when `host` names this node or a domain of `tenant`.
pub(crate) fn is_ours(
    snap: &crate::Snapshot,
    locals: &[SocketAddr],
    advertise: Option<std::net::IpAddr>,
    tenant: i64,
    host: &str,
) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<std::net::IpAddr>() {
        return locals.iter().any(|l| l.ip() == ip) || advertise == Some(ip);
    }
    snap.tenants.owns_domain(tenant, h)
}

/// RFC 7231 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn httpdate(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD[(days.rem_euclid(7)) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(httpdate(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            httpdate(SystemTime::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_164_800); // 2024-02-29
        assert_eq!(httpdate(t), "Thu, 29 Feb 2024 00:00:00 GMT");
    }
}
