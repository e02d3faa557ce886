//! The NOTIFYs of busy-lamp fields written from a per-subscription template (issue 15 §10:
//! a busy PBX sends tens of thousands a second).
//!
//! A subscription's NOTIFYs differ from one another only in the Via branch, the CSeq number,
//! the Subscription-State value and the body. The first NOTIFY of a subscription is built the
//! general way (a [`sip::Request`] from the dialog, serialised by `sip`), and its bytes are cut
//! at those four places into a template ([`NotifyWire`]); later ones are written from the
//! template into one buffer and handed to the transaction layer as bytes
//! ([`sip::transaction::TransactionLayer::send_request_bytes`]), so they are not built header by
//! header, serialised and parsed back for their Via and CSeq. The bytes are the same as the
//! general way's (unit tests below compare them; `tests/blf.rs` keeps a copy of the wire).
//!
//! The template is dropped whenever what it holds may change: a refresh (the dialog's remote
//! target), or another advertised address (the Via and Contact).

use std::io::Write;
use std::net::IpAddr;

use bytes::Bytes;
use sip::Method;
use sip::transaction::Transport;

use crate::subs::Sub;
use crate::{Engine, Now, Owner};

/// A subscription's NOTIFY cut where NOTIFYs differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotifyWire {
    /// The address and transport the Via and Contact were written for.
    via: (IpAddr, u16, Transport),
    /// The package the Event and Content-Type were written for.
    package: crate::subs::Package,
    /// The message without the four variable parts.
    text: Box<[u8]>,
    /// Where the branch, the CSeq number, the Subscription-State value and the Content-Length
    /// value go in `text`.
    cuts: [usize; 4],
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let tail = hay.get(from..)?;
    tail.windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

impl NotifyWire {
    /// Cuts `msg` (a NOTIFY serialised with `branch`, CSeq `seq`, Subscription-State `state`
    /// and an empty body) into a template; `None` when it does not have the expected shape
    /// (the caller then keeps building NOTIFYs the general way).
    pub(crate) fn cut(
        msg: &[u8],
        branch: &str,
        seq: u32,
        state: &str,
        via: (IpAddr, u16, Transport),
        package: crate::subs::Package,
    ) -> Option<NotifyWire> {
        // The request line, then our Via (nothing a phone wrote: the branch is found there).
        let line_end = find(msg, b"\r\n", 0)?;
        let via_start = line_end + 2;
        if !msg.get(via_start..)?.starts_with(b"Via: ") {
            return None;
        }
        let via_end = find(msg, b"\r\n", via_start)?;
        let b = find(&msg[..via_end], branch.as_bytes(), via_start)?;
        let b_end = b + branch.len();
        // Header values never hold CR LF, so these are the fields themselves.
        let c = find(msg, b"\r\nCSeq: ", via_end)? + 8;
        let c_end = c + seq.to_string().len();
        if !msg
            .get(c..)?
            .starts_with(format!("{seq} NOTIFY\r\n").as_bytes())
        {
            return None;
        }
        let s = find(msg, b"\r\nSubscription-State: ", c_end)? + 22;
        let s_end = s + state.len();
        if !msg.get(s..)?.starts_with(format!("{state}\r\n").as_bytes()) {
            return None;
        }
        let l = find(msg, b"\r\nContent-Length: ", s_end)? + 18;
        if msg.get(l..)? != b"0\r\n\r\n" {
            return None;
        }
        let mut text = Vec::with_capacity(msg.len());
        text.extend_from_slice(&msg[..b]);
        let cut0 = text.len();
        text.extend_from_slice(&msg[b_end..c]);
        let cut1 = text.len();
        text.extend_from_slice(&msg[c_end..s]);
        let cut2 = text.len();
        text.extend_from_slice(&msg[s_end..l]);
        let cut3 = text.len();
        text.extend_from_slice(b"\r\n\r\n");
        Some(NotifyWire {
            via,
            package,
            text: text.into_boxed_slice(),
            cuts: [cut0, cut1, cut2, cut3],
        })
    }

    /// Whether the template was written for this Via and package.
    pub(crate) fn fits(
        &self,
        via: (IpAddr, u16, Transport),
        package: crate::subs::Package,
    ) -> bool {
        self.via == via && self.package == package
    }

    /// The NOTIFY with these variable parts (`state` written by `state`).
    pub(crate) fn write(
        &self,
        branch: &str,
        seq: u32,
        state: std::fmt::Arguments<'_>,
        body: &[u8],
    ) -> Vec<u8> {
        let t = &self.text;
        let [c0, c1, c2, c3] = self.cuts;
        let mut out = Vec::with_capacity(t.len() + branch.len() + body.len() + 40);
        out.extend_from_slice(&t[..c0]);
        out.extend_from_slice(branch.as_bytes());
        out.extend_from_slice(&t[c0..c1]);
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{seq}");
        out.extend_from_slice(&t[c1..c2]);
        let _ = out.write_fmt(state);
        out.extend_from_slice(&t[c2..c3]);
        let _ = write!(out, "{}", body.len());
        out.extend_from_slice(&t[c3..]);
        out.extend_from_slice(body);
        out
    }
}

impl Engine {
    /// The address and transport our Via names for NOTIFYs of `sub`.
    fn notify_via_key(&self, sub: &Sub) -> (IpAddr, u16, Transport) {
        let local = sub.target.local.unwrap_or(sub.target.destination);
        (
            crate::nathelper::advertised_ip(self.cfg.advertise, local),
            local.port(),
            sub.target.transport,
        )
    }

    /// NOTIFYs the current state of a `dialog`/`presence` subscription that goes on (the hot
    /// path of a busy-lamp field): written from the subscription's template, made on the first
    /// NOTIFY. Same bytes, transaction and owner as [`Engine::notify_sub`].
    pub(crate) fn notify_blf(&mut self, sub: &mut Sub, now: Now) {
        let via = self.notify_via_key(sub);
        let Some(wire) = sub.wire.take().filter(|w| w.fits(via, sub.package)) else {
            return self.notify_blf_first(sub, via, now);
        };
        let branch = self.layer.new_branch();
        let seq = sub.dialog.local_seq.map_or(1, |s| s.wrapping_add(1));
        sub.dialog.local_seq = Some(seq);
        let left = sub.expires_at.saturating_duration_since(now.mono).as_secs();
        let (body, summary) = self.blf_body_text(sub, now);
        sub.last_sent = Some(now.mono);
        let data = wire.write(
            &branch,
            seq,
            format_args!("active;expires={left}"),
            body.as_bytes(),
        );
        sub.wire = Some(wire);
        let key = (
            sub.dialog.id.call_id.clone(),
            sub.dialog.id.local_tag.clone(),
        );
        self.note_notified(key, summary, now);
        self.send_notify_bytes(sub, Bytes::from(data), &branch, now);
    }

    /// The first NOTIFY of a subscription (or the first after its template went stale): built
    /// the general way; its bytes become the template.
    fn notify_blf_first(&mut self, sub: &mut Sub, key: (IpAddr, u16, Transport), now: Now) {
        let via = self.our_via(
            sub.target.local.unwrap_or(sub.target.destination),
            sub.target.transport,
        );
        let branch = via.branch().unwrap_or_default().to_string();
        let mut req = sub.dialog.new_request(Method::Notify, &via);
        let seq = sub.dialog.local_seq.unwrap_or(1);
        req.headers
            .push(sip::HeaderName::Event, sub.package.as_str());
        let left = sub.expires_at.saturating_duration_since(now.mono).as_secs();
        let state = format!("active;expires={left}");
        req.headers
            .push(sip::HeaderName::SubscriptionState, state.as_str());
        let (media, body) = self.blf_body(sub, now);
        sub.last_sent = Some(now.mono);
        req.set_body(&media, Bytes::new());
        let empty = req.to_bytes();
        sub.wire = NotifyWire::cut(&empty, &branch, seq, &state, key, sub.package).map(Box::new);
        req.body = Bytes::from(body);
        self.note_notify(sub, false, &req.body, now);
        let data = match &sub.wire {
            Some(w) => Bytes::from(w.write(&branch, seq, format_args!("{state}"), &req.body)),
            None => Bytes::from(req.to_bytes()),
        };
        self.send_notify_bytes(sub, data, &branch, now);
    }

    fn send_notify_bytes(&mut self, sub: &Sub, data: Bytes, branch: &str, now: Now) {
        let owner = Owner::SubNotify(
            sub.dialog.id.call_id.clone(),
            sub.dialog.id.local_tag.clone(),
        );
        match self
            .layer
            .send_request_bytes(data, Method::Notify, branch, sub.target, now.mono)
        {
            Ok(t) => {
                self.owners.insert(t, owner);
            }
            Err(e) => tracing::debug!(error = %e, "NOTIFY not sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subs::Package;

    fn notify(branch: &str, seq: u32, state: &str, body: &str) -> Vec<u8> {
        let text = format!(
            "NOTIFY sip:1003@192.0.2.23:5060;transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.100:5060;branch={branch};rport\r\nMax-Forwards: 70\r\nRoute: <sip:p.example.com;lr>\r\nFrom: \"CSeq: 9 NOTIFY\" <sip:1002@example.com>;tag=t1\r\nTo: <sip:1003@example.com>;tag=w1\r\nCall-ID: Subscription-State: x\r\nCSeq: {seq} NOTIFY\r\nContact: <sip:192.0.2.100:5060>\r\nEvent: dialog\r\nSubscription-State: {state}\r\nContent-Type: application/dialog-info+xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        text.into_bytes()
    }

    fn key() -> (IpAddr, u16, Transport) {
        ("192.0.2.100".parse().expect("ip"), 5060, Transport::Udp)
    }

    #[test]
    fn a_notify_written_from_the_template_is_the_one_built_in_full() {
        let first = notify("z9hG4bKa.1", 1, "active;expires=600", "");
        let w = NotifyWire::cut(
            &first,
            "z9hG4bKa.1",
            1,
            "active;expires=600",
            key(),
            Package::Dialog,
        )
        .expect("cut");
        for (branch, seq, left, body) in [
            ("z9hG4bKa.1", 1, 600, ""),
            ("z9hG4bKa.ff", 2, 599, "<xml/>"),
            (
                "z9hG4bKa.10000",
                4_294_967_295,
                0,
                "<dialog-info>\r\n</dialog-info>\r\n",
            ),
        ] {
            let state = format!("active;expires={left}");
            assert_eq!(
                String::from_utf8_lossy(&w.write(
                    branch,
                    seq,
                    format_args!("active;expires={left}"),
                    body.as_bytes()
                )),
                String::from_utf8_lossy(&notify(branch, seq, &state, body)),
            );
        }
        assert!(w.fits(key(), Package::Dialog));
        assert!(!w.fits(key(), Package::Presence));
        assert!(!w.fits(
            ("192.0.2.101".parse().expect("ip"), 5060, Transport::Udp),
            Package::Dialog
        ));
    }

    #[test]
    fn an_unexpected_shape_gives_no_template() {
        let first = notify("z9hG4bKa.1", 1, "active;expires=600", "");
        let with_body = notify("z9hG4bKa.1", 1, "active;expires=600", "x");
        // Wrong branch, CSeq, state, or a body already in.
        for (msg, branch, seq, state) in [
            (&first, "z9hG4bKb.1", 1, "active;expires=600"),
            (&first, "z9hG4bKa.1", 2, "active;expires=600"),
            (&first, "z9hG4bKa.1", 1, "active;expires=60"),
            (&with_body, "z9hG4bKa.1", 1, "active;expires=600"),
        ] {
            let cut = NotifyWire::cut(msg, branch, seq, state, key(), Package::Dialog);
            assert!(cut.is_none(), "{branch} {seq} {state}");
        }
    }
}
