//! `sip`: Denwa's SIP stack, sans-IO.
//!
//! What it is: the SIP message model, a strict parser and canonical serializer (RFC 3261, tested on
//! the RFC 4475 torture messages), framing for datagram and stream transports, transactions
//! (RFC 3261 §17 / RFC 6026), dialogs (§12) and digest authentication (RFC 7616 / RFC 8760).
//! What it is not: it owns no sockets, reads no clock and spawns nothing. Time comes in as an
//! argument; messages to send, events and the next deadline come out. The `pbx` crate owns the I/O.

pub mod auth;
pub mod dialog;
pub mod transaction;
