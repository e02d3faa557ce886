//! `sip`: Denwa's SIP stack, sans-IO.
//!
//! What it is: the SIP message model, a strict parser and canonical serializer (RFC 3261, tested on
//! the RFC 4475 torture messages), framing for datagram and stream transports, transactions
//! (RFC 3261 §17 / RFC 6026), dialogs (§12) and digest authentication (RFC 7616 / RFC 8760).
//! What it is not: it owns no sockets, reads no clock and spawns nothing. Time comes in as an
//! argument; messages to send, events and the next deadline come out. The `pbx` crate owns the I/O.
//!
//! Message layer map: [`parse_message`] / [`parse::parse_bytes`] turn bytes into a [`Message`]
//! (raw headers as cheap `Bytes` slices, typed views on demand via [`values`]); `to_bytes()`
//! writes canonical output; [`framing`] splits datagrams and streams; [`check`] holds the generic
//! UAS request checks that answer 4xx/5xx; [`lint`] backs `denwa sip lint`.

pub mod auth;
pub mod dialog;
pub mod transaction;

pub mod check;
pub mod error;
pub mod framing;
mod grammar;
pub mod header;
pub mod ids;
pub mod lint;
pub mod message;
pub mod method;
pub mod parse;
pub mod sdp;
pub mod uri;
pub mod values;

pub use check::{CheckConfig, Rejection, check_request};
pub use error::{InvalidValue, ParseError};
pub use framing::{Datagram, StreamEvent, StreamFramer, decode_datagram};
pub use grammar::unescape;
pub use header::{Header, HeaderName, HeaderValue, Headers};
pub use ids::{generate_branch, generate_call_id, generate_tag};
pub use lint::{LintReport, lint};
pub use message::{Message, Request, Response, Version, reason_phrase};
pub use method::Method;
pub use parse::{BodyMode, Limits, error_response, parse_bytes, parse_message};
pub use uri::{AbsoluteUri, Host, Param, Params, Scheme, SipUri, TelUri, Uri};
pub use values::{Auth, AuthParam, CSeq, Contact, MediaType, NameAddr, RAck, ValueParams, Via};
