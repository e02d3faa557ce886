//! Database operations the engine asks for, and their answers. The driver runs them on `store`
//! and feeds the answer back with the same [`OpId`]; the engine changes its memory only once the
//! answer says the write is durable.

use std::time::SystemTime;

use crate::config::ExtEntry;
use crate::usrloc::LocOp;

/// Identifies one operation and its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// A database operation.
#[derive(Debug, Clone, PartialEq)]
pub enum DbOp {
    /// Apply location changes (a REGISTER's, or a keep-alive's verdict), in order, and answer
    /// [`DbAnswer::Location`] with the same ops.
    Location(Vec<LocOp>),
    /// Set the stored flags of one binding (informational; memory does not wait for it).
    BindingFlags {
        /// The binding, as it is now.
        binding: Box<crate::usrloc::Binding>,
        /// New flags.
        flags: i64,
    },
    /// Look up one extension by (tenant, number) after a cache miss.
    LookupExtension {
        /// Tenant.
        tenant: i64,
        /// Number / user name.
        number: String,
    },
    /// Store a call record.
    InsertCdr(Box<CdrRecord>),
    /// Delete registrations that expired before `now`.
    PurgeExpired {
        /// Wall clock.
        now: SystemTime,
    },
    /// Store a call's events (transfers, pickups) beside its record (tenant and the record's
    /// Call-ID); answered with [`DbAnswer::Done`].
    CdrEvents {
        /// Tenant.
        tenant: i64,
        /// The record's Call-ID (the caller's leg).
        call_id: String,
        /// In order.
        events: Vec<crate::transfer::TransferEvent>,
    },
    /// Record a trunk's state (as this node sees it); answered with [`DbAnswer::Done`].
    TrunkStatus {
        /// Trunk id.
        trunk_id: i64,
        /// The state document ([`crate::TrunkStatus`]).
        status: serde_json::Value,
    },
    /// Remember the member a round-robin ring group tried last; answered with
    /// [`DbAnswer::Done`].
    GroupPosition {
        /// Ring group id.
        group_id: i64,
        /// The member's number.
        member: String,
    },
    /// Voicemail index, PIN and file work; answered with [`DbAnswer::Vm`].
    Vm(crate::vm::VmOp),
    /// Store a time condition's manual override (a `*28` feature code); answered with
    /// [`DbAnswer::Done`].
    /// Set (`Some`) or clear (`None`) one forward of an extension (feature codes `*72`...);
    /// answered with [`DbAnswer::Done`]. The configuration reload that follows the write
    /// brings the change into the snapshot.
    Forward {
        /// Tenant.
        tenant: i64,
        /// Extension number.
        number: String,
        /// Which forward.
        kind: crate::hunt::ForwardKind,
        /// Where to, or `None` to clear it.
        target: Option<String>,
    },
    /// Switch an extension's do-not-disturb on or off (feature codes `*78`/`*79`); answered
    /// with [`DbAnswer::Done`].
    Dnd {
        /// Tenant.
        tenant: i64,
        /// Extension number.
        number: String,
        /// New state.
        on: bool,
    },
    TimecondMode {
        /// Tenant.
        tenant: i64,
        /// Time condition name.
        name: String,
        /// New mode.
        mode: crate::timecond::Mode,
    },
    /// Park lot rows ([`crate::park`]); answered with [`DbAnswer::Done`].
    Park(crate::park::ParkOp),
    /// A call in progress stored for the standby, or its row deleted
    /// ([`crate::live_calls`]); answered with [`DbAnswer::Done`]. The driver runs these in
    /// the order they were issued (a delete never overtakes its save).
    LiveCall(crate::live_calls::LiveCallOp),
}

/// The answer to a [`DbOp`].
#[derive(Debug, Clone, PartialEq)]
pub enum DbAnswer {
    /// The location ops given back (applied to memory on success).
    Location {
        /// The ops, as sent.
        ops: Vec<LocOp>,
        /// `Err` with the reason when the write failed (nothing changed then).
        result: Result<(), String>,
    },
    /// An extension lookup: `Ok(None)` when there is no such extension.
    Extension(Result<Option<ExtEntry>, String>),
    /// A call record write.
    Cdr(Result<(), String>),
    /// Fire-and-forget operations (flags, purge) answer this.
    Done(Result<(), String>),
    /// Voicemail work.
    Vm(crate::vm::VmAnswer),
}

/// How a call ended (CDR disposition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Answered and ended.
    Answered,
    /// Rang out.
    NoAnswer,
    /// Busy (486/600/603).
    Busy,
    /// Refused or failed.
    Failed,
    /// Cancelled by the caller.
    Canceled,
}

impl Disposition {
    /// The stored text (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
            Disposition::Canceled => "CANCELED",
        }
    }
}

/// Who hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupBy {
    /// The calling party.
    Caller,
    /// The called party.
    Callee,
    /// Denwa (timeouts, administrator, shutdown, refusals).
    System,
}

/// Media statistics of one side of a call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LegStats {
    /// RTP packets received from the phone.
    pub pkts_rx: i64,
    /// RTP packets sent to the phone.
    pub pkts_tx: i64,
    /// Packets lost on the way in.
    pub lost: i64,
    /// Interarrival jitter (ms).
    pub jitter_ms: f64,
}

/// A call record (`acc`).
#[derive(Debug, Clone, PartialEq)]
pub struct CdrRecord {
    /// Tenant.
    pub tenant_id: i64,
    /// SIP Call-ID of the caller's leg.
    pub call_id: String,
    /// Calling extension.
    pub caller: String,
    /// Dialled number.
    pub callee: String,
    /// Caller's display name.
    pub caller_name: String,
    /// INVITE received.
    pub start_time: SystemTime,
    /// Answered.
    pub answer_time: Option<SystemTime>,
    /// Ended.
    pub end_time: SystemTime,
    /// Whole seconds from start to end.
    pub duration_s: i64,
    /// Whole seconds from answer to end.
    pub billsec: i64,
    /// Outcome.
    pub disposition: Disposition,
    /// Who ended it.
    pub hangup_by: HangupBy,
    /// Why (`BYE`, `486 Busy Here`, `no answer`, ...).
    pub hangup_cause: String,
    /// Negotiated codec.
    pub codec: String,
    /// Caller side media.
    pub a: LegStats,
    /// Callee side media.
    pub b: LegStats,
    /// Direction, trunk, DID, numbers.
    pub route: CallRoute,
}

/// Which way a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Extension to extension.
    #[default]
    Internal,
    /// From a trunk.
    Inbound,
    /// To a trunk.
    Outbound,
}

/// The routing facts of a call, as its record keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallRoute {
    /// Which way.
    pub direction: Direction,
    /// The trunk that carried it.
    pub trunk: String,
    /// The DID an inbound call was for.
    pub did: String,
    /// What the caller dialled.
    pub dialled: String,
    /// What was sent to the trunk.
    pub sent_number: String,
    /// Caller ID presented or received.
    pub caller_id: String,
}
