//! `usrloc`: the location table — registered contacts per extension, a memory copy of the
//! `registrations` rows. Memory changes only through [`LocOp`]s that the database already
//! applied ([`Usrloc::apply`]), so memory and database agree, also after a restart.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use sip::Uri;
use sip::transaction::{Target, TransactionId, Transport};

/// One registered contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Tenant of the extension.
    pub tenant_id: i64,
    /// Extension id.
    pub extension_id: i64,
    /// Address of record as registered (`sip:1001@domain`).
    pub aor: String,
    /// Contact URI text (the binding's key within the extension).
    pub contact_uri: String,
    /// Contact URI, parsed.
    pub contact: Uri,
    /// Expiry (wall clock, as stored).
    pub expires_at: SystemTime,
    /// q-value.
    pub q: f64,
    /// Call-ID of the REGISTER that made it.
    pub call_id: String,
    /// CSeq of that REGISTER.
    pub cseq: u32,
    /// User-Agent.
    pub user_agent: String,
    /// Where the REGISTER came from (NAT: requests go here, not to the Contact).
    pub received: SocketAddr,
    /// Transport it came over.
    pub transport: Transport,
    /// Our address it reached (network segment).
    pub local: SocketAddr,
    /// RFC 5626 instance id.
    pub instance_id: Option<String>,
    /// RFC 5626 reg-id.
    pub reg_id: Option<i64>,
    /// Contact differs from the source address.
    pub behind_nat: bool,
    /// Stored flags (`FLAG_UNREACHABLE`).
    pub flags: i64,
    /// Keep-alive state (memory only).
    pub ping: Ping,
}

/// NAT keep-alive state of a binding; soft state, never stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Ping {
    /// Keep-alives unanswered in a row.
    pub failures: u32,
    /// The keep-alive OPTIONS in flight.
    pub txn: Option<TransactionId>,
    /// When the next one is due.
    pub next: Instant,
}

impl Binding {
    /// Flag stored for a contact that stopped answering keep-alives.
    pub const FLAG_UNREACHABLE: i64 = 1;

    /// Where requests to this contact go.
    pub fn target(&self) -> Target {
        Target {
            destination: self.received,
            transport: self.transport,
            local: Some(self.local),
        }
    }

    /// The domain part of the AOR.
    pub fn domain(&self) -> &str {
        self.aor.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

/// A change to the location table, applied to the database first and to memory after.
#[derive(Debug, Clone, PartialEq)]
pub enum LocOp {
    /// Insert or replace a binding (keyed by extension and contact URI).
    Upsert(Box<Binding>),
    /// Remove one contact of an extension.
    Delete {
        /// Extension id.
        extension_id: i64,
        /// Contact URI.
        contact_uri: String,
    },
    /// Remove every contact of an extension, whatever domain it was registered under
    /// (`Contact: *`).
    DeleteAll {
        /// Extension id.
        extension_id: i64,
    },
}

/// The location table.
#[derive(Debug, Default)]
pub struct Usrloc {
    by_ext: HashMap<i64, Vec<Binding>>,
    count: usize,
    /// Bindings per source address (whether a request comes from a registered phone).
    by_ip: HashMap<std::net::IpAddr, u32>,
}

fn ip_add(m: &mut HashMap<std::net::IpAddr, u32>, ip: std::net::IpAddr) {
    *m.entry(ip).or_default() += 1;
}

fn ip_remove(m: &mut HashMap<std::net::IpAddr, u32>, ip: std::net::IpAddr) {
    if let Some(n) = m.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            m.remove(&ip);
        }
    }
}

impl Usrloc {
    /// The contacts of an extension.
    pub fn get(&self, extension_id: i64) -> &[Binding] {
        self.by_ext
            .get(&extension_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Registered contacts in all.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when a registered phone sends from `ip`.
    pub fn knows_ip(&self, ip: std::net::IpAddr) -> bool {
        self.by_ip.contains_key(&ip)
    }

    /// Loads a stored binding (at start).
    pub fn load(&mut self, b: Binding) {
        self.apply_one(LocOp::Upsert(Box::new(b)));
    }

    /// Applies changes the database has made durable.
    pub fn apply(&mut self, ops: Vec<LocOp>) {
        for op in ops {
            self.apply_one(op);
        }
    }

    fn apply_one(&mut self, op: LocOp) {
        match op {
            LocOp::Upsert(b) => {
                let list = self.by_ext.entry(b.extension_id).or_default();
                let new_ip = b.received.ip();
                match list.iter_mut().find(|x| x.contact_uri == b.contact_uri) {
                    Some(x) => {
                        let old_ip = x.received.ip();
                        *x = *b;
                        if old_ip != new_ip {
                            ip_remove(&mut self.by_ip, old_ip);
                            ip_add(&mut self.by_ip, new_ip);
                        }
                    }
                    None => {
                        list.push(*b);
                        self.count += 1;
                        ip_add(&mut self.by_ip, new_ip);
                    }
                }
            }
            LocOp::Delete {
                extension_id,
                contact_uri,
            } => {
                if let Some(list) = self.by_ext.get_mut(&extension_id) {
                    let before = list.len();
                    let by_ip = &mut self.by_ip;
                    list.retain(|b| {
                        let keep = b.contact_uri != contact_uri;
                        if !keep {
                            ip_remove(by_ip, b.received.ip());
                        }
                        keep
                    });
                    self.count -= before - list.len();
                    if list.is_empty() {
                        self.by_ext.remove(&extension_id);
                    }
                }
            }
            LocOp::DeleteAll { extension_id } => {
                if let Some(list) = self.by_ext.remove(&extension_id) {
                    self.count -= list.len();
                    for b in &list {
                        ip_remove(&mut self.by_ip, b.received.ip());
                    }
                }
            }
        }
    }

    /// Forgets bindings past their expiry (the database rows are purged separately and are
    /// ignored once expired, so both agree). Returns how many went.
    pub fn expire(&mut self, wall: SystemTime) -> usize {
        let mut gone = 0;
        let by_ip = &mut self.by_ip;
        self.by_ext.retain(|_, list| {
            let before = list.len();
            list.retain(|b| {
                let keep = b.expires_at > wall;
                if !keep {
                    ip_remove(by_ip, b.received.ip());
                }
                keep
            });
            gone += before - list.len();
            !list.is_empty()
        });
        self.count -= gone;
        gone
    }

    /// Mutable access to one binding's soft state.
    pub fn binding_mut(&mut self, extension_id: i64, contact_uri: &str) -> Option<&mut Binding> {
        self.by_ext
            .get_mut(&extension_id)
            .and_then(|l| l.iter_mut().find(|b| b.contact_uri == contact_uri))
    }

    /// Every binding (for keep-alives).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Binding> {
        self.by_ext.values_mut().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    pub(crate) fn binding(ext: i64, contact: &str, expires_at: SystemTime) -> Binding {
        Binding {
            tenant_id: 1,
            extension_id: ext,
            aor: format!("sip:{ext}@example.com"),
            contact_uri: contact.into(),
            contact: contact.parse().unwrap(),
            expires_at,
            q: 1.0,
            call_id: "c".into(),
            cseq: 1,
            user_agent: String::new(),
            received: "192.0.2.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            local: "192.0.2.100:5060".parse().unwrap(),
            instance_id: None,
            reg_id: None,
            behind_nat: false,
            flags: 0,
            ping: Ping {
                failures: 0,
                txn: None,
                next: Instant::now(),
            },
        }
    }

    #[test]
    fn apply_and_expire_keep_the_count() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut u = Usrloc::default();
        u.apply(vec![
            LocOp::Upsert(Box::new(binding(
                1,
                "sip:a@192.0.2.1",
                t0 + Duration::from_secs(10),
            ))),
            LocOp::Upsert(Box::new(binding(
                1,
                "sip:b@192.0.2.1",
                t0 + Duration::from_secs(99),
            ))),
            LocOp::Upsert(Box::new(binding(
                2,
                "sip:c@192.0.2.1",
                t0 + Duration::from_secs(99),
            ))),
        ]);
        assert_eq!(u.len(), 3);
        // A refresh replaces, it does not add.
        u.apply(vec![LocOp::Upsert(Box::new(binding(
            1,
            "sip:a@192.0.2.1",
            t0 + Duration::from_secs(20),
        )))]);
        assert_eq!(u.len(), 3);
        assert_eq!(u.expire(t0 + Duration::from_secs(30)), 1);
        assert_eq!(u.get(1).len(), 1);
        u.apply(vec![LocOp::DeleteAll { extension_id: 1 }]);
        assert_eq!(u.len(), 1);
        u.apply(vec![LocOp::Delete {
            extension_id: 2,
            contact_uri: "sip:c@192.0.2.1".into(),
        }]);
        assert!(u.is_empty());
    }
}
