//! Message-waiting indication (RFC 3842 `message-summary`), sent unsolicited: whenever a
//! mailbox's new/saved counts change, each registered contact of its extension gets a NOTIFY
//! (`Messages-Waiting: yes|no`, `Voice-Message: new/saved (0/0)`), and so does a contact
//! that registers while its box holds messages.
//!
//! The counts come from the database with the voice applications (`config::Apps::vm_counts`):
//! every message change (a new message, one saved or deleted by phone, panel, API, CLI or the
//! e-mail delete-after-mail) announces a change, the driver reloads, and [`Engine`] compares
//! the old and new counts — one path, whatever changed them.
//!
//! Contacts with a `message-summary` subscription ([`crate::subs`]) get their NOTIFYs inside
//! it instead.

use std::collections::HashMap;

use sip::{HeaderName, Method, Request};
use tracing::{debug, info};

use crate::subs::Package;
use crate::usrloc::Binding;
use crate::{Engine, Now, Owner};

/// New and saved message counts of each box with messages, by (tenant, extension number).
pub type Counts = HashMap<(i64, String), (u64, u64)>;

/// The `application/simple-message-summary` body for `account` (a SIP URI).
pub fn summary_body(new: u64, saved: u64, account: &str) -> String {
    format!(
        "Messages-Waiting: {}\r\nMessage-Account: {account}\r\nVoice-Message: {new}/{saved} (0/0)\r\n",
        if new > 0 { "yes" } else { "no" }
    )
}

/// The boxes whose counts differ between `old` and `new`, with their new counts.
pub fn changed(old: &Counts, new: &Counts) -> Vec<((i64, String), (u64, u64))> {
    let mut out: Vec<_> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| (k.clone(), new.get(k).copied().unwrap_or((0, 0))))
        .collect();
    out.sort();
    out.dedup();
    out
}

impl Engine {
    /// The voice applications were reloaded: NOTIFY the boxes whose counts changed.
    pub(crate) fn mwi_reloaded(&mut self, old: &Counts, now: Now) {
        let changes = changed(old, &self.snap.apps.vm_counts);
        for ((tenant, ext), counts) in changes {
            let Some(e) = self.snap.extensions.get(&(tenant, ext.clone())) else {
                continue;
            };
            let bindings: Vec<Binding> = self
                .usrloc
                .get(e.id)
                .iter()
                .filter(|b| b.expires_at > now.wall)
                .cloned()
                .collect();
            info!(tenant, mailbox = %ext, new = counts.0, saved = counts.1, contacts = bindings.len(), "message waiting changed");
            self.notify_subscribers(tenant, &ext, Package::MessageSummary, now);
            for b in bindings {
                if !self
                    .subs
                    .covers(tenant, &ext, Package::MessageSummary, b.received)
                {
                    self.mwi_notify(tenant, &ext, counts, &b, now);
                }
            }
        }
    }

    /// A contact registered: tell it about waiting messages, if any.
    pub(crate) fn mwi_registered(&mut self, tenant: i64, ext: &str, b: &Binding, now: Now) {
        if let Some(&counts) = self.snap.apps.vm_counts.get(&(tenant, ext.to_string()))
            && counts.0 > 0
            && !self
                .subs
                .covers(tenant, ext, Package::MessageSummary, b.received)
        {
            self.mwi_notify(tenant, ext, counts, b, now);
        }
    }

    /// One unsolicited NOTIFY to one contact.
    fn mwi_notify(&mut self, tenant: i64, ext: &str, counts: (u64, u64), b: &Binding, now: Now) {
        let account = crate::subs::sip_account(&self.snap, tenant, ext);
        let via = self.our_via(b.local, b.transport);
        let mut req = Request::new(Method::Notify, b.contact.clone());
        req.headers.push(HeaderName::Via, via.to_string());
        req.headers.push(HeaderName::MaxForwards, "70");
        let tag = self.new_tag();
        req.headers
            .push(HeaderName::From, format!("<{account}>;tag={tag}"));
        req.headers.push(HeaderName::To, format!("<{account}>"));
        let call_id = self.new_call_id();
        req.headers.push(HeaderName::CallId, call_id);
        req.headers.push(HeaderName::CSeq, "1 NOTIFY");
        let ours = self.contact_uri(None, b.local, b.transport);
        req.headers.push(HeaderName::Contact, format!("<{ours}>"));
        req.headers.push(HeaderName::Event, "message-summary");
        req.headers.push(HeaderName::SubscriptionState, "active");
        let body = summary_body(counts.0, counts.1, &account);
        let ct = sip::MediaType {
            mtype: "application".into(),
            subtype: "simple-message-summary".into(),
            params: sip::Params(Vec::new()),
        };
        req.set_body(&ct, bytes::Bytes::from(body));
        debug!(contact = %b.contact_uri, new = counts.0, "MWI NOTIFY");
        self.send_request(req, b.target(), Owner::Mwi, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_per_rfc_3842() {
        assert_eq!(
            summary_body(2, 1, "sip:1002@example.com"),
            "Messages-Waiting: yes\r\nMessage-Account: sip:1002@example.com\r\nVoice-Message: 2/1 (0/0)\r\n"
        );
        assert!(summary_body(0, 3, "sip:a@b").starts_with("Messages-Waiting: no\r\n"));
    }

    #[test]
    fn only_changed_boxes_and_emptied_ones_count() {
        let k = |n: &str| (1, n.to_string());
        let old: Counts = [(k("1001"), (1, 0)), (k("1002"), (2, 0))].into();
        let new: Counts = [(k("1002"), (2, 0)), (k("1003"), (0, 1))].into();
        assert_eq!(
            changed(&old, &new),
            vec![(k("1001"), (0, 0)), (k("1003"), (0, 1))]
        );
    }
}
