//! OpenAPI of `GET /subscriptions` (`api/subs.rs`).

use serde_json::{Value, json};

use super::{list_of, ok_json, op};

pub(super) fn schemas(s: &mut Value) {
    s["Subscription"] = json!({ "type": "object", "required": ["tenant_id", "subscriber", "contact", "source", "event", "resource", "expires_at", "last_notify_at", "last_state"], "properties": {
        "tenant_id": { "type": "integer" },
        "subscriber": { "type": "string", "description": "the subscribing extension" },
        "contact": { "type": "string", "description": "the subscriber's Contact (where NOTIFYs go)" },
        "source": { "type": "string", "description": "address and transport NOTIFYs are sent to, e.g. `192.0.2.23:5060 UDP`" },
        "event": { "type": "string", "enum": ["dialog", "presence", "message-summary"] },
        "resource": { "type": "string", "description": "what is watched: an extension, a park slot, a day/night code, or the subscriber's own mailbox (message-summary)" },
        "expires_at": { "type": "string", "format": "date-time" },
        "last_notify_at": { "type": "string", "format": "date-time", "nullable": true, "description": "null when no NOTIFY was sent since this node loaded it" },
        "last_state": { "type": "string", "description": "what the last NOTIFY carried: idle / trying / early / confirmed (dialog); open or closed with activity and note (presence); `Messages-Waiting: yes 1/0` (message-summary); empty before the first NOTIFY" } } });
}

pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    add(
        "/subscriptions",
        json!({ "get": op("The event subscriptions in force on this node (BLF keys, presence, message waiting), ordered by tenant, subscriber and resource; a tenant's key sees its tenant's only; read scope suffices",
            json!({ "responses": { "200": ok_json("all", list_of("Subscription")) } }), &[]) }),
    );
}
