//! `engine`: Denwa's call control, sans-IO.
//!
//! What it is: the policy of the PBX — who may register, where a dialled number goes, how a call's
//! legs are set up, joined and torn down, what is written to the call record. It takes inputs
//! (SIP messages, database answers, media events, timers, each with the current time) and
//! produces outputs (bytes to send, database operations, media commands, the next deadline).
//! What it is not: it owns no socket, no task, no clock and no random source; `pbx` is the tokio
//! driver that runs it, `sip` the protocol stack under it, `store` the database it talks to
//! through [`DbOp`]s.

pub mod settings;
pub mod control;
pub mod peerlog;
