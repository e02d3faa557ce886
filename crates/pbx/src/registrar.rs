//! The registrar (Kamailio's `registrar` + `usrloc` + `auth`): REGISTER with digest
//! authentication, bindings kept in memory and written through to the database.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use sip::transaction::{TransactionId, Transport};
use sip::{Contact, HeaderName, Request, Response};
use tracing::{debug, info, warn};

use crate::core::{AuthOutcome, Binding, Core, Internal, contact_is_behind_nat, uri_domain};

/// One change to a binding the registrar decided on.
pub(crate) enum Op {
    Upsert(Box<store::BindingUpsert>),
    Delete {
        extension_id: i64,
        contact_uri: String,
    },
    DeleteAll {
        tenant_id: i64,
        aor: String,
    },
}

impl Core {
    pub(crate) fn on_register(
        &mut self,
        txn: TransactionId,
        req: Request,
        source: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let Some(to) = req.to() else {
            return self.respond(
                txn,
                Response::for_request(&req, 400, Some("Missing To")),
                now,
            );
        };
        if !to.uri.is_sip() {
            return self.respond(
                txn,
                Response::for_request(&req, 400, Some("To must be a SIP or SIPS URI")),
                now,
            );
        }
        let (Some(user), Some(domain)) = (to.uri.user(), uri_domain(&to.uri)) else {
            return self.respond(
                txn,
                Response::for_request(&req, 400, Some("To has no user part")),
                now,
            );
        };
        let Some(tenant) = self.tenants.for_domain(&domain) else {
            info!(peer = %source, %domain, "REGISTER for an unknown domain");
            return self.respond(
                txn,
                Response::for_request(&req, 404, Some("Unknown domain")),
                now,
            );
        };
        let ext = match self.authenticate(
            txn,
            &req,
            &HeaderName::Authorization,
            tenant,
            &user,
            source,
            local,
            transport,
            now,
        ) {
            AuthOutcome::Ok(e) => e,
            AuthOutcome::Challenge { stale } => {
                let r = self.challenge_response(&req, tenant, stale, false);
                return self.respond(txn, r, now);
            }
            AuthOutcome::Forbidden(reason) => {
                return self.respond(
                    txn,
                    Response::for_request(&req, 403, Some(reason))
                        .with_to_tag(&sip::generate_tag()),
                    now,
                );
            }
            AuthOutcome::Ignore | AuthOutcome::Parked => return,
        };
        let contacts = req.contacts();
        let header_expires = req.expires();
        let call_id = req.call_id().unwrap_or_default().to_string();
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let aor = format!("sip:{}@{}", ext.number, domain);
        let wall = SystemTime::now();
        let s = self.settings.clone();
        let mut ops = Vec::new();

        if contacts.iter().any(|c| matches!(c, Contact::Wildcard)) {
            // RFC 3261 §10.3 step 6: `*` only alone and with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                return self.respond(
                    txn,
                    Response::for_request(
                        &req,
                        400,
                        Some("Contact * needs Expires: 0 and no other contact"),
                    ),
                    now,
                );
            }
            let list = self.location.remove(&ext.id).unwrap_or_default();
            if let Some(old) = list.iter().find(|b| b.call_id == call_id && cseq <= b.cseq) {
                self.location.insert(ext.id, list.clone());
                debug!(cseq, old = old.cseq, "out-of-order REGISTER");
                return self.respond(
                    txn,
                    Response::for_request(&req, 500, Some("Out-of-order CSeq")),
                    now,
                );
            }
            ops.push(Op::DeleteAll {
                tenant_id: tenant,
                aor: aor.clone(),
            });
            info!(peer = %source, %aor, "all registrations removed");
        } else {
            // First every check that can refuse the request, so that a refusal leaves the
            // bindings untouched; then the changes, in place (a refresh rewrites no strings
            // that did not change).
            let empty = Vec::new();
            let list = self.location.get(&ext.id).unwrap_or(&empty);
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
                        .with_to_tag(&sip::generate_tag())
                        .with_header(HeaderName::MinExpires, s.min_expires.to_string());
                    return self.respond(txn, r, now);
                }
                if list
                    .iter()
                    .any(|b| b.contact_uri == contact_uri && b.call_id == call_id && cseq <= b.cseq)
                {
                    return self.respond(
                        txn,
                        Response::for_request(&req, 500, Some("Out-of-order CSeq")),
                        now,
                    );
                }
                wanted.push((na, contact_uri, asked));
            }
            let user_agent = req.headers.user_agent().unwrap_or_default();
            let list = self.location.entry(ext.id).or_default();
            for (na, contact_uri, asked) in wanted {
                let existing = list.iter().position(|b| b.contact_uri == contact_uri);
                if asked == 0 {
                    if let Some(i) = existing {
                        list.remove(i);
                        ops.push(Op::Delete {
                            extension_id: ext.id,
                            contact_uri,
                        });
                    }
                    continue;
                }
                let expires_at = wall + Duration::from_secs(u64::from(asked.min(s.max_expires)));
                let q = na.q().map(f64::from).unwrap_or(1.0);
                let instance_id = na.params.value("+sip.instance");
                let reg_id = na.params.value("reg-id").and_then(|v| v.parse().ok());
                let behind_nat = contact_is_behind_nat(&na.uri, source);
                match existing {
                    Some(i) => {
                        let b = &mut list[i];
                        b.expires_at = expires_at;
                        b.q = q;
                        if b.call_id != call_id {
                            b.call_id.clone_from(&call_id);
                        }
                        b.cseq = cseq;
                        if b.user_agent != user_agent {
                            b.user_agent = user_agent.to_string();
                        }
                        b.received = source;
                        b.transport = transport;
                        b.local = local;
                        b.instance_id = instance_id;
                        b.reg_id = reg_id;
                        b.behind_nat = behind_nat;
                        b.ping_failures = 0;
                        b.ping_txn = None;
                        b.next_ping = now + s.keepalive;
                    }
                    None => list.push(Binding {
                        tenant_id: tenant,
                        extension_id: ext.id,
                        aor: aor.clone(),
                        contact_uri,
                        contact: na.uri.clone(),
                        expires_at,
                        q,
                        call_id: call_id.clone(),
                        cseq,
                        user_agent: user_agent.to_string(),
                        received: source,
                        transport,
                        local,
                        instance_id,
                        reg_id,
                        behind_nat,
                        ping_failures: 0,
                        ping_txn: None,
                        next_ping: now + s.keepalive,
                    }),
                }
            }
            // Over the contact limit: the oldest registrations make room (a phone that moved
            // behind a new NAT binding must not lock itself out).
            while list.len() > ext.max_contacts {
                let oldest = list
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| b.expires_at)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                let b = list.remove(oldest);
                ops.push(Op::Delete {
                    extension_id: ext.id,
                    contact_uri: b.contact_uri,
                });
            }
            let count = list.len();
            if count == 0 {
                self.location.remove(&ext.id);
            } else if let Some(list) = self.location.get(&ext.id) {
                for b in list {
                    if b.call_id == call_id && b.cseq == cseq && b.received == source {
                        ops.push(Op::Upsert(Box::new(self.binding_row(b, 0))));
                    }
                }
            }
            if !contacts.is_empty() {
                debug!(peer = %source, %aor, contacts = count, "registered");
            }
        }

        // 200 OK lists every current binding of the AOR.
        let mut ok = Response::for_request(&req, 200, None).with_to_tag(&sip::generate_tag());
        if let Some(list) = self.location.get(&ext.id) {
            for b in list {
                let left = b
                    .expires_at
                    .duration_since(wall)
                    .unwrap_or_default()
                    .as_secs();
                ok.headers.push(
                    HeaderName::Contact,
                    format!("<{}>;expires={left}", b.contact_uri),
                );
            }
        }
        ok.headers.push(HeaderName::Date, httpdate(wall));
        if ops.is_empty() {
            return self.respond(txn, ok, now);
        }
        // Answer only once the bindings are durable: queued, and written by one task per
        // batch at the end of this turn of the core loop (see `flush_location_writes`).
        self.location_writes.push(LocationWrite { ops, txn, ok });
    }

    /// Writes the queued binding changes (one task for the whole batch; the store group-commits
    /// them) and answers each REGISTER once its own changes are durable.
    pub(crate) fn flush_location_writes(&mut self) {
        if self.location_writes.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.location_writes);
        let store = self.store.clone();
        let tx = self.internal.clone();
        tokio::spawn(async move {
            // In order; runs of REGISTERs that only upsert go to the store together (one
            // queue hand-off each, answered by the same group commit).
            let mut answers = Vec::with_capacity(batch.len());
            let mut run: Vec<LocationWrite> = Vec::new();
            for w in batch {
                if w.ops.iter().all(|op| matches!(op, Op::Upsert(_))) {
                    run.push(w);
                    continue;
                }
                upsert_run(&store, std::mem::take(&mut run), &mut answers).await;
                let resp = answer(apply(&store, w.ops).await, w.ok);
                answers.push((w.txn, resp));
            }
            upsert_run(&store, run, &mut answers).await;
            let _ = tx.send(Internal::RespondMany(answers));
        });
    }
}

/// Writes the bindings of REGISTERs that only upsert and queues each one's answer.
async fn upsert_run(
    store: &store::Store,
    run: Vec<LocationWrite>,
    answers: &mut Vec<(TransactionId, Response)>,
) {
    if run.is_empty() {
        return;
    }
    let mut rows = Vec::new();
    let mut counts = Vec::with_capacity(run.len());
    let mut heads = Vec::with_capacity(run.len());
    for w in run {
        counts.push(w.ops.len());
        rows.extend(w.ops.into_iter().filter_map(|op| match op {
            Op::Upsert(u) => Some(*u),
            _ => None,
        }));
        heads.push((w.txn, w.ok));
    }
    let mut results = store.upsert_bindings(rows).await.into_iter();
    for ((txn, ok), n) in heads.into_iter().zip(counts) {
        let mut outcome = Ok(());
        for r in results.by_ref().take(n) {
            if let Err(e) = r {
                outcome = Err(e);
            }
        }
        answers.push((txn, answer(outcome, ok)));
    }
}

/// The prepared 200, or a 500 when the bindings could not be stored.
fn answer(outcome: Result<(), store::Error>, ok: Response) -> Response {
    match outcome {
        Ok(()) => ok,
        Err(e) => {
            warn!(error = %e, "storing registration failed");
            database_unavailable(&ok)
        }
    }
}

/// A REGISTER's binding changes and the 200 OK to send once they are durable.
pub(crate) struct LocationWrite {
    ops: Vec<Op>,
    txn: TransactionId,
    ok: Response,
}

async fn apply(store: &store::Store, ops: Vec<Op>) -> Result<(), store::Error> {
    for op in ops {
        match op {
            Op::Upsert(u) => {
                store.upsert_binding(*u).await?;
            }
            Op::Delete {
                extension_id,
                contact_uri,
            } => {
                store.delete_binding(extension_id, &contact_uri).await?;
            }
            Op::DeleteAll { tenant_id, aor } => {
                store.delete_bindings_for_aor(tenant_id, &aor).await?;
            }
        }
    }
    Ok(())
}

/// 500 with Retry-After, for a REGISTER whose bindings could not be stored.
fn database_unavailable(ok: &Response) -> Response {
    ok.restated(500, Some("Database Unavailable"))
        .with_header(HeaderName::RetryAfter, "5")
}

/// RFC 7231 IMF-fixdate, formatted once per second (every 200 OK carries one).
fn httpdate(t: SystemTime) -> String {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    LAST.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let dt: chrono::DateTime<chrono::Utc> = t.into();
            *c = (secs, dt.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
        }
        c.1.clone()
    })
}
