//! Media commands the engine gives the relay, and the events it gets back. A call's media
//! session has two endpoints, one per [`Side`]; the driver owns the relay.

use std::net::{IpAddr, SocketAddr};

use crate::db::LegStats;

/// Identifies one relay session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// The two sides of a bridge: A faces the caller, B the callee. Every "which side sent this"
/// question is answered by a leg's side and [`Side::other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Caller side.
    A,
    /// Callee side.
    B,
}

impl Side {
    /// The opposite side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// A command for the media relay.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Open a session: side A's socket on `a_ip`, side B's on `b_ip` (each the address of the
    /// network segment that side's phone reaches us on). Answer with
    /// [`MediaEvent::Allocated`] or [`MediaEvent::AllocationFailed`].
    Allocate {
        /// The new session.
        session: SessionId,
        /// SIP Call-ID (for logs).
        call_id: String,
        /// Local address for side A.
        a_ip: IpAddr,
        /// Local address for side B.
        b_ip: IpAddr,
    },
    /// Where a side's phone wants RTP (and RTCP).
    SetRemote {
        /// Session.
        session: SessionId,
        /// Side.
        side: Side,
        /// RTP address.
        rtp: SocketAddr,
        /// RTCP address, when given explicitly.
        rtcp: Option<SocketAddr>,
    },
    /// On hold: no media timeout while set.
    SetHold {
        /// Session.
        session: SessionId,
        /// Held or not.
        on_hold: bool,
    },
    /// The clock rate of a payload type (for jitter figures).
    SetClockRate {
        /// Session.
        session: SessionId,
        /// Side.
        side: Side,
        /// RTP payload type.
        payload_type: u8,
        /// Hz.
        hz: u32,
    },
    /// Close a session and report its statistics with [`MediaEvent::Closed`].
    Close {
        /// Session.
        session: SessionId,
    },
}

/// News from the media relay.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A session is open: where each side's socket listens.
    Allocated {
        /// Session.
        session: SessionId,
        /// Side A's local RTP address.
        a: SocketAddr,
        /// Side B's local RTP address.
        b: SocketAddr,
    },
    /// No ports were free (or binding failed).
    AllocationFailed {
        /// Session.
        session: SessionId,
        /// Why.
        reason: String,
    },
    /// No RTP for the media timeout while not on hold.
    Timeout {
        /// Session.
        session: SessionId,
    },
    /// A session closed, with its final statistics.
    Closed {
        /// Session.
        session: SessionId,
        /// Side A.
        a: LegStats,
        /// Side B.
        b: LegStats,
    },
}
