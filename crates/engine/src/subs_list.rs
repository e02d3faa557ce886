//! A read-only listing of the event subscriptions in force (`GET /api/v1/subscriptions`, the
//! panel's Subscriptions page): who subscribes from where, to which package and resource,
//! until when, and what the last NOTIFY said. The last NOTIFY's state is summarised from its
//! body when it is sent ([`Engine::note_notify`], the one hook in `subs::notify_sub`), so this
//! module depends on the bodies' documented formats only, not on how `blf`/`mwi` build them.

use std::collections::HashMap;

use serde::Serialize;

use crate::subs::{Sub, SubKey};
use crate::{Engine, Now};

/// Longest state summary kept per subscription.
const MAX_STATE: usize = 120;

/// One subscription as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionInfo {
    /// Tenant.
    pub tenant_id: i64,
    /// The subscribing extension.
    pub subscriber: String,
    /// The subscriber's Contact (where NOTIFYs go).
    pub contact: String,
    /// The address NOTIFYs are sent to, and the transport (`udp`, `tcp`, ...).
    pub source: String,
    /// Event package: `dialog`, `presence` or `message-summary`.
    pub event: String,
    /// What is watched: an extension, a park slot, a day/night code, or the subscriber's own
    /// mailbox number (`message-summary`).
    pub resource: String,
    /// Seconds until it runs out (unless refreshed).
    pub expires_in_s: u64,
    /// Seconds since the last NOTIFY went out; `None` if none was sent since this node loaded it.
    pub last_notify_s_ago: Option<u64>,
    /// The state the last NOTIFY carried: `idle`, `early`, `confirmed` (dialog); `open`/`closed`
    /// with the activity and note (presence); `Messages-Waiting: yes 1/0` (message-summary);
    /// empty before the first NOTIFY on this node.
    pub last_state: String,
}

/// What the last NOTIFY of each subscription said, and when (bounded by the subscriptions:
/// pruned to live ones whenever it outgrows them).
#[derive(Debug, Default)]
pub(crate) struct Notified {
    by_sub: HashMap<SubKey, (std::sync::Arc<str>, std::time::Instant)>,
}

/// The text between `open` and `close` after `from`, and where it ends.
fn between<'a>(s: &'a str, open: &str, close: &str, from: usize) -> Option<(&'a str, usize)> {
    let start = s.get(from..)?.find(open)? + from + open.len();
    let len = s.get(start..)?.find(close)?;
    Some((s.get(start..start + len)?, start + len + close.len()))
}

/// A short summary of a NOTIFY body (see [`SubscriptionInfo::last_state`]).
pub(crate) fn summarize(event: &str, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let out = match event {
        "dialog" => {
            let mut states: Vec<&str> = Vec::new();
            let mut at = 0;
            while let Some((s, end)) = between(&text, "<state>", "</state>", at) {
                if !states.contains(&s) {
                    states.push(s);
                }
                at = end;
            }
            if states.is_empty() {
                "idle".to_string()
            } else {
                states.join(", ")
            }
        }
        "presence" => {
            let basic = between(&text, "<basic>", "</basic>", 0).map_or("", |b| b.0);
            let activity = between(&text, "<rpid:activities><rpid:", "/>", 0).map(|a| a.0);
            let note = between(&text, "<note>", "</note>", 0).map_or("", |n| n.0);
            match (activity, note.is_empty()) {
                (Some(a), false) => format!("{basic}, {a} ({note})"),
                (Some(a), true) => format!("{basic}, {a}"),
                (None, false) => format!("{basic} ({note})"),
                (None, true) => basic.to_string(),
            }
        }
        _ => {
            let line = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or("")
                    .to_string()
            };
            let waiting = line("Messages-Waiting:");
            let voice = line("Voice-Message:");
            let counts = voice.split_whitespace().next().unwrap_or("");
            format!("Messages-Waiting: {waiting} {counts}")
                .trim()
                .to_string()
        }
    };
    out.chars().take(MAX_STATE).collect()
}

impl Engine {
    /// Remembers what a NOTIFY of `sub` said (called as it is sent); a final NOTIFY forgets it.
    pub(crate) fn note_notify(&mut self, sub: &Sub, terminated: bool, body: &[u8], now: Now) {
        let key = (
            sub.dialog.id.call_id.clone(),
            sub.dialog.id.local_tag.clone(),
        );
        if terminated {
            self.notified.by_sub.remove(&key);
            return;
        }
        let state = summarize(sub.package.as_str(), body).into();
        self.note_notified(key, state, now);
    }

    /// Remembers the state summary a NOTIFY of subscription `key` carried (a busy-lamp field's
    /// is made once per flush and shared by the resource's watchers).
    pub(crate) fn note_notified(&mut self, key: SubKey, state: std::sync::Arc<str>, now: Now) {
        self.notified.by_sub.insert(key, (state, now.mono));
        // Subscriptions that ended without a final NOTIFY (481, no answer) leave entries.
        if self.notified.by_sub.len() > 2 * self.subs.len() + 16 {
            let subs = &self.subs;
            self.notified.by_sub.retain(|k, _| subs.get(k).is_some());
        }
    }

    /// The subscriptions in force, of `tenant` or of all tenants, ordered by tenant,
    /// subscriber and resource.
    pub fn subscriptions(&self, tenant: Option<i64>, now: Now) -> Vec<SubscriptionInfo> {
        let mut out: Vec<SubscriptionInfo> = self
            .subs
            .iter()
            .filter(|(_, s)| tenant.is_none_or(|t| s.tenant == t))
            .map(|(k, s)| {
                let last = self.notified.by_sub.get(k);
                SubscriptionInfo {
                    tenant_id: s.tenant,
                    subscriber: s.ext.clone(),
                    contact: s.dialog.remote_target.to_string(),
                    source: format!("{} {}", s.target.destination, s.target.transport),
                    event: s.package.as_str().to_string(),
                    resource: s.resource.clone(),
                    expires_in_s: s.expires_at.saturating_duration_since(now.mono).as_secs(),
                    last_notify_s_ago: last
                        .map(|(_, at)| now.mono.saturating_duration_since(*at).as_secs()),
                    last_state: last.map(|(st, _)| st.to_string()).unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (a.tenant_id, &a.subscriber, &a.resource, &a.event).cmp(&(
                b.tenant_id,
                &b.subscriber,
                &b.resource,
                &b.event,
            ))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::summarize;

    #[test]
    fn bodies_are_summarised() {
        let dialog = "<dialog-info><dialog id=\"a\"><state>early</state></dialog><dialog id=\"b\"><state>confirmed</state></dialog></dialog-info>";
        assert_eq!(summarize("dialog", dialog.as_bytes()), "early, confirmed");
        assert_eq!(summarize("dialog", b"<dialog-info/>"), "idle");
        let pidf = "<presence><tuple id=\"t1\"><status><basic>closed</basic></status><note>Do not disturb</note></tuple><dm:person id=\"p1\"><rpid:activities><rpid:busy/></rpid:activities></dm:person></presence>";
        assert_eq!(
            summarize("presence", pidf.as_bytes()),
            "closed, busy (Do not disturb)"
        );
        let mwi =
            "Messages-Waiting: yes\r\nMessage-Account: sip:1001@x\r\nVoice-Message: 2/1 (0/0)\r\n";
        assert_eq!(
            summarize("message-summary", mwi.as_bytes()),
            "Messages-Waiting: yes 2/1"
        );
        let long = format!("<state>{}</state>", "x".repeat(500));
        assert_eq!(summarize("dialog", long.as_bytes()).chars().count(), 120);
    }
}
