//! `nathelper`: phones behind NAT. Detects a Contact that differs from the packet's source,
//! keeps such UDP bindings open with OPTIONS keep-alives (dropping contacts that stop
//! answering), and decides which address we write into Contact and SDP (the advertised public
//! address, or the segment's own).

use std::net::{IpAddr, SocketAddr};

use sip::transaction::Transport;
use sip::{HeaderName, Method, Request, Uri};
use tracing::info;

use crate::db::DbOp;
use crate::usrloc::{Binding, LocOp};
use crate::{Engine, Now, Owner, Pending};

/// Keep-alives unanswered in a row after which a contact is removed.
pub const MAX_PING_FAILURES: u32 = 3;

/// The address we put in Contact/SDP for a leg that reached us on `local`: the advertised
/// (public) address, except towards loopback peers.
pub fn advertised_ip(advertise: Option<IpAddr>, local: SocketAddr) -> IpAddr {
    match advertise {
        Some(a) if !local.ip().is_loopback() => a,
        _ => local.ip(),
    }
}

/// Our Contact URI for a leg on `local`.
pub fn contact_uri(
    advertise: Option<IpAddr>,
    user: Option<&str>,
    local: SocketAddr,
    transport: Transport,
) -> String {
    let host = match advertised_ip(advertise, local) {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => format!("[{v}]"),
    };
    let user = user.map(|u| format!("{u}@")).unwrap_or_default();
    match transport {
        Transport::Udp => format!("sip:{user}{host}:{}", local.port()),
        t => format!(
            "sip:{user}{host}:{};transport={}",
            local.port(),
            t.as_str().to_ascii_lowercase()
        ),
    }
}

/// True when the phone's Contact address differs from where its packets come from (NAT).
pub fn contact_is_behind_nat(contact: &Uri, received: SocketAddr) -> bool {
    match contact.as_sip() {
        Some(u) => {
            let port = u.port.unwrap_or(5060);
            match u.host.ip() {
                Some(ip) => ip != received.ip() || port != received.port(),
                None => true,
            }
        }
        None => false,
    }
}

impl Engine {
    /// Sends the keep-alives that are due to UDP contacts behind NAT.
    pub(crate) fn send_keepalives(&mut self, now: Now) {
        let interval = self.snap.settings.keepalive;
        if interval.is_zero() {
            return;
        }
        let due: Vec<Binding> = self
            .usrloc
            .iter_mut()
            .filter(|b| {
                b.behind_nat
                    && b.transport == Transport::Udp
                    && b.ping.txn.is_none()
                    && b.ping.next <= now.mono
            })
            .map(|b| {
                b.ping.next = now.mono + interval;
                b.clone()
            })
            .collect();
        for b in due {
            let via = self.our_via(b.local, b.transport);
            let mut req = Request::new(Method::Options, b.contact.clone());
            req.headers.push(HeaderName::Via, via.to_string());
            req.headers.push(HeaderName::MaxForwards, "70");
            let ours = self.contact_uri(Some("denwa"), b.local, b.transport);
            let tag = self.new_tag();
            req.headers
                .push(HeaderName::From, format!("<{ours}>;tag={tag}"));
            req.headers
                .push(HeaderName::To, format!("<{}>", b.contact_uri));
            let call_id = self.new_call_id();
            req.headers.push(HeaderName::CallId, call_id);
            req.headers.push(HeaderName::CSeq, "1 OPTIONS");
            req.headers.push(HeaderName::ContentLength, "0");
            let owner = Owner::Ping {
                extension_id: b.extension_id,
                contact_uri: b.contact_uri.clone(),
            };
            if let Some(t) = self.send_request(req, b.target(), owner, now)
                && let Some(x) = self.usrloc.binding_mut(b.extension_id, &b.contact_uri)
            {
                x.ping.txn = Some(t);
            }
        }
    }

    pub(crate) fn ping_answered(&mut self, ext: i64, contact: &str) {
        let Some(b) = self.usrloc.binding_mut(ext, contact) else {
            return;
        };
        b.ping.txn = None;
        b.ping.failures = 0;
        if b.flags & Binding::FLAG_UNREACHABLE != 0 {
            b.flags &= !Binding::FLAG_UNREACHABLE;
            let binding = Box::new(b.clone());
            let flags = b.flags;
            self.db(
                DbOp::BindingFlags { binding, flags },
                Pending::Background("clearing the unreachable flag"),
            );
        }
    }

    pub(crate) fn ping_failed(&mut self, ext: i64, contact: &str, _now: Now) {
        let Some(b) = self.usrloc.binding_mut(ext, contact) else {
            return;
        };
        b.ping.txn = None;
        b.ping.failures += 1;
        info!(peer = %b.received, aor = %b.aor, failures = b.ping.failures, "keep-alive unanswered: contact marked unreachable");
        if b.ping.failures >= MAX_PING_FAILURES {
            // Removed from memory once the database row is gone.
            info!(aor = %b.aor, %contact, "unreachable contact removed");
            let op = LocOp::Delete {
                extension_id: ext,
                contact_uri: contact.to_string(),
            };
            self.db(DbOp::Location(vec![op]), Pending::Location(None));
        } else if b.flags & Binding::FLAG_UNREACHABLE == 0 {
            b.flags |= Binding::FLAG_UNREACHABLE;
            let binding = Box::new(b.clone());
            let flags = b.flags;
            self.db(
                DbOp::BindingFlags { binding, flags },
                Pending::Background("marking a contact unreachable"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_detection_and_addresses() {
        let src: SocketAddr = "203.0.113.5:40000".parse().unwrap();
        assert!(contact_is_behind_nat(
            &"sip:1001@192.168.1.20:5060".parse().unwrap(),
            src
        ));
        assert!(!contact_is_behind_nat(
            &"sip:1001@203.0.113.5:40000".parse().unwrap(),
            src
        ));
        assert!(contact_is_behind_nat(
            &"sip:1001@phone.invalid".parse().unwrap(),
            src
        ));
        let local: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        let public: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(advertised_ip(Some(public), local), public);
        assert_eq!(
            advertised_ip(Some(public), "127.0.0.1:5060".parse().unwrap()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            contact_uri(None, Some("1001"), local, Transport::Tcp),
            "sip:1001@10.0.0.1:5060;transport=tcp"
        );
    }
}
