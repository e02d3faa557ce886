//! Who is in a conference room now, for the panel's live participant list and the API: the
//! rooms call control reports, narrowed to one tenant's room, and the mute/kick actions checked
//! against that room (a call id of another room or tenant is refused).

use engine::control::{ConfMember, ConfSummary};

use crate::Web;

/// The participants of `tenant`'s room `number` in `live`, in joining order.
pub(crate) fn members(live: &[ConfSummary], tenant: i64, number: &str) -> Vec<ConfMember> {
    live.iter()
        .find(|c| c.tenant_id == tenant && c.number == number)
        .map(|c| c.members.clone())
        .unwrap_or_default()
}

/// Whether `call` is in `tenant`'s room `number` now.
async fn in_room(w: &Web, tenant: i64, number: &str, call: u64) -> bool {
    let live = w.control().conferences().await;
    members(&live, tenant, number)
        .iter()
        .any(|m| m.call == call)
}

/// Drops `call` from the room (hangs it up); false when it is not in that room.
pub(crate) async fn kick(w: &Web, tenant: i64, number: &str, call: u64) -> bool {
    in_room(w, tenant, number, call).await && w.control().hangup(call).await
}

/// Mutes or unmutes `call` in the room; false when it is not in that room.
pub(crate) async fn mute(w: &Web, tenant: i64, number: &str, call: u64, muted: bool) -> bool {
    in_room(w, tenant, number, call).await && w.control().conf_mute(call, muted).await
}
