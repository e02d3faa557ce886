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
//! UAS request checks that answer 4xx/5xx; [`mod@lint`] backs `denwa sip lint`.
//!
//! ```
//! use sip::{HeaderName, Message, Response, check_request, CheckConfig};
//!
//! let raw = b"OPTIONS sip:pbx.example.com SIP/2.0\r\n\
//! Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK74bf9\r\n\
//! From: <sip:alice@example.com>;tag=9fxced76sl\r\n\
//! To: <sip:pbx.example.com>\r\n\
//! Call-ID: 3848276298220188511@192.0.2.7\r\n\
//! CSeq: 1 OPTIONS\r\n\
//! Max-Forwards: 70\r\n\
//! Content-Length: 0\r\n\r\n";
//! let Ok(Message::Request(req)) = sip::parse_message(raw) else { panic!("valid request") };
//! assert_eq!(req.top_via().and_then(|v| v.branch().map(String::from)).as_deref(), Some("z9hG4bK74bf9"));
//! check_request(&req, &CheckConfig::default()).expect("passes the generic checks");
//! let ok = Response::for_request(&req, 200, None)
//!     .with_to_tag("8a2c91d0")
//!     .with_header(HeaderName::Allow, "INVITE, ACK, BYE, CANCEL, OPTIONS");
//! let bytes = ok.to_bytes();
//! assert!(bytes.starts_with(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK74bf9\r\n"));
//! ```

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
mod timer_queue;
pub mod uri;
pub mod values;

pub use check::{CheckConfig, Checked, Rejection, check_parsed, check_request};
pub use error::{InvalidValue, ParseError};
pub use framing::{Datagram, StreamEvent, StreamFramer, decode_datagram, is_stun};
pub use grammar::unescape;
pub use header::{Header, HeaderName, HeaderValue, Headers};
pub use ids::{generate_branch_with, generate_call_id_with, generate_tag_with};
pub use lint::{LintReport, lint};
pub use message::{Message, Request, Response, TopVia, Version, reason_phrase};
pub use method::Method;
pub use parse::{BodyMode, Limits, error_response, parse_bytes, parse_message};
pub use uri::{AbsoluteUri, Host, Param, Params, Scheme, SipUri, TelUri, Uri};
pub use values::{Auth, AuthParam, CSeq, Contact, MediaType, NameAddr, RAck, ValueParams, Via};
