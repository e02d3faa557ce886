//! Counters the engine keeps for `/metrics` (plain integers; the driver publishes them).

use sip::Method;

use crate::db::Disposition;

/// Request methods counted by name; everything else is `other`.
pub const METHODS: [&str; 15] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
    "other",
];

/// Call dispositions counted.
pub const DISPOSITIONS: [Disposition; 5] = [
    Disposition::Answered,
    Disposition::NoAnswer,
    Disposition::Busy,
    Disposition::Failed,
    Disposition::Canceled,
];

/// Cumulative counters since start.
#[derive(Debug, Clone)]
pub struct Counters {
    /// Requests received, by [`METHODS`] index.
    pub requests: [u64; METHODS.len()],
    /// Responses sent by status code (index = status - 100).
    pub responses: Box<[u64; 600]>,
    /// Authentication failures.
    pub auth_failures: u64,
    /// Messages ignored from banned sources.
    pub throttled: u64,
    /// Calls ended, by [`DISPOSITIONS`] index.
    pub calls: [u64; DISPOSITIONS.len()],
    /// Requests refused because too many user lookups were in flight.
    pub lookups_refused: u64,
    /// REGISTERs refused because too many database operations were outstanding.
    pub db_overload: u64,
    /// Outside calls refused by a toll-fraud limit.
    pub fraud_blocked: u64,
    /// Outside calls moved to the next trunk after a failure.
    pub trunk_failovers: u64,
    /// INVITEs from trunks (inbound calls).
    pub trunk_invites: u64,
    /// New INVITEs without credentials from an address that is no trunk and no registered
    /// phone (challenged; they never reach a route unless they then authenticate).
    pub untrusted_invites: u64,
    /// Voicemail recordings (messages, greetings) that could not be written, by
    /// [`crate::vm_disk::VM_FAILURE_REASONS`] index.
    pub vm_failures: [u64; 2],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: [0; METHODS.len()],
            responses: Box::new([0; 600]),
            auth_failures: 0,
            throttled: 0,
            calls: [0; DISPOSITIONS.len()],
            lookups_refused: 0,
            db_overload: 0,
            fraud_blocked: 0,
            trunk_failovers: 0,
            trunk_invites: 0,
            untrusted_invites: 0,
            vm_failures: [0; 2],
        }
    }
}

impl Counters {
    pub(crate) fn request(&mut self, m: &Method) {
        let name = m.as_str();
        let i = METHODS
            .iter()
            .position(|x| *x == name)
            .unwrap_or(METHODS.len() - 1);
        self.requests[i] += 1;
    }

    pub(crate) fn response(&mut self, status: u16) {
        if (100..700).contains(&status) {
            self.responses[usize::from(status - 100)] += 1;
        }
    }

    pub(crate) fn call(&mut self, d: Disposition) {
        if let Some(i) = DISPOSITIONS.iter().position(|x| *x == d) {
            self.calls[i] += 1;
        }
    }
}
