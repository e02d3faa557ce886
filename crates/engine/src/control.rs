//! What the control plane (panel, API, CLI) sees of call control: calls in progress and the
//! requests it may make. Plain data, so `web` needs neither sockets nor the engine's internals.

use serde::Serialize;

/// State of a call in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    /// Ringing the callee.
    Ringing,
    /// Answered.
    Up,
}

/// A call in progress as the panel and API show it.
#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    /// Call id (for hang-up).
    pub id: u64,
    /// SIP Call-ID of the caller leg.
    pub call_id: String,
    /// Calling extension.
    pub caller: String,
    /// Called number.
    pub callee: String,
    /// State.
    pub state: CallState,
    /// Seconds since the INVITE.
    pub duration_s: u64,
    /// Negotiated codec (once answered).
    pub codec: String,
    /// Tenant.
    pub tenant_id: i64,
    /// The extensions bridged in the call now (after transfers); empty until it is answered.
    pub parties: Vec<String>,
}

/// A participant of a conference room in progress.
#[derive(Debug, Clone, Serialize)]
pub struct ConfMember {
    /// Call id (for hang-up and mute).
    pub call: u64,
    /// Calling number.
    pub caller: String,
    /// Caller's name.
    pub caller_name: String,
    /// Muted (the room does not hear it).
    pub muted: bool,
    /// Seconds since the call started.
    pub duration_s: u64,
    /// When it entered the room (Unix seconds; 0 while it is still entering the PIN).
    pub joined_at_s: u64,
}

/// A conference room with participants.
#[derive(Debug, Clone, Serialize)]
pub struct ConfSummary {
    /// Tenant.
    pub tenant_id: i64,
    /// Room number.
    pub number: String,
    /// Participants, in joining order.
    pub members: Vec<ConfMember>,
}
