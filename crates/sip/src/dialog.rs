//! Dialogs (RFC 3261 §12), sans-IO.
//!
//! A [`Dialog`] is plain state: the dialog id, local and remote URIs with tags, the remote target,
//! the route set and both CSeq counters. It is created from the messages that establish it and
//! builds the requests sent inside it:
//!
//! - UAC side: [`Dialog::uac`] from the request sent and a 1xx (with To tag; *early*) or 2xx
//!   (*confirmed*) received. Later responses go to [`Dialog::on_response`] (confirmation, route set
//!   recomputed from the 2xx, target refresh on 2xx to re-INVITE / UPDATE, end on failure).
//! - UAS side: [`Dialog::uas`] from the request received and the 1xx/2xx the TU answers with.
//!   Every later in-dialog request goes through [`Dialog::on_request`], which enforces CSeq order
//!   (a lower CSeq is answered 500, §12.2.2) and applies target refreshes.
//! - [`Dialog::new_request`] builds an in-dialog request (Request-URI and Route from the route
//!   set, loose or strict routing; From/To with tags; Call-ID; next CSeq); [`Dialog::ack`] builds
//!   the ACK for a 2xx, which reuses the INVITE's CSeq number.
//!
//! Keep dialogs in a map keyed by [`DialogId`]; [`DialogId::for_incoming_request`] and
//! [`DialogId::for_uac_response`] compute the key from a received message.
//!
//! ```
//! use sip::dialog::{Dialog, DialogId, DialogState};
//! use sip::{Message, Method, Response, Via, Host};
//!
//! let raw = "INVITE sip:bob@192.0.2.2 SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\
//!     From: <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:bob@192.0.2.2>\r\nCall-ID: c1\r\n\
//!     CSeq: 10 INVITE\r\nContact: <sip:alice@192.0.2.1>\r\nContent-Length: 0\r\n\r\n";
//! let Ok(Message::Request(invite)) = sip::parse_message(raw.as_bytes()) else { panic!() };
//!
//! // UAS: answer 200 with a To tag and our Contact; the dialog is confirmed.
//! let ok = Response::for_request(&invite, 200, None)
//!     .with_to_tag("b1")
//!     .with_header(sip::HeaderName::Contact, "<sip:bob@192.0.2.2>");
//! let mut dialog = Dialog::uas(&invite, &ok).unwrap();
//! assert_eq!(dialog.state, DialogState::Confirmed);
//! assert_eq!(dialog.id, DialogId::for_incoming_request(&invite).with_local_tag("b1"));
//!
//! // Hang up: BYE goes to the remote target with the tags swapped and a fresh CSeq.
//! let via = Via::new("UDP", Host::Domain("192.0.2.2".into()), None, "z9hG4bK2");
//! let bye = dialog.new_request(Method::Bye, &via);
//! assert_eq!(bye.uri.to_string(), "sip:alice@192.0.2.1");
//! assert_eq!(bye.from().unwrap().tag(), Some("b1"));
//! assert_eq!(bye.to().unwrap().tag(), Some("a1"));
//! ```

use crate::header::HeaderName;
use crate::message::{Request, Response};
use crate::method::Method;
use crate::uri::Uri;
use crate::values::{NameAddr, Via};

/// Identifies a dialog (§12): Call-ID and both tags, seen from this side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (From tag for the UAC, To tag for the UAS).
    pub local_tag: String,
    /// The peer's tag (empty for an RFC 2543 peer that sent none).
    pub remote_tag: String,
}

impl DialogId {
    /// The id a received in-dialog request names: local = To tag, remote = From tag. Missing
    /// parts come back empty (an out-of-dialog request has no To tag).
    pub fn for_incoming_request(request: &Request) -> DialogId {
        DialogId {
            call_id: request.call_id().unwrap_or_default().to_owned(),
            local_tag: tag_of(request.to()),
            remote_tag: tag_of(request.from()),
        }
    }

    /// The id a response to our request names: local = From tag, remote = To tag.
    pub fn for_uac_response(response: &Response) -> DialogId {
        DialogId {
            call_id: response.call_id().unwrap_or_default().to_owned(),
            local_tag: tag_of(response.from()),
            remote_tag: tag_of(response.to()),
        }
    }

    /// The same id with another local tag (e.g. the tag the UAS is about to add).
    pub fn with_local_tag(mut self, tag: &str) -> DialogId {
        self.local_tag = tag.to_owned();
        self
    }
}

fn tag_of(na: Option<NameAddr>) -> String {
    na.and_then(|n| n.tag().map(str::to_owned))
        .unwrap_or_default()
}

/// Dialog state (§12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
    /// An early dialog ended by a non-2xx final response (or ended by the TU).
    Terminated,
}

/// Which side of the dialog-creating request we were on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the request.
    Uac,
    /// We received it.
    Uas,
}

/// Errors from dialog creation and in-dialog checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header needed to build the dialog is missing or unparsable.
    #[error("missing or invalid {0} header")]
    MissingHeader(&'static str),
    /// A dialog-creating response has no To tag.
    #[error("response has no To tag")]
    MissingToTag,
    /// The response cannot create a dialog (100 Trying or a failure).
    #[error("status {0} does not create a dialog")]
    NotDialogCreating(u16),
    /// The request's CSeq is lower than the last one received (§12.2.2): answer 500.
    #[error("CSeq {got} is lower than the remote sequence number {last}")]
    CSeqOutOfOrder {
        /// The request's CSeq.
        got: u32,
        /// The highest CSeq seen so far.
        last: u32,
    },
    /// The message belongs to another dialog.
    #[error("message does not belong to this dialog")]
    Mismatch,
}

impl DialogError {
    /// The status code a UAS should answer an in-dialog request with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            DialogError::CSeqOutOfOrder { .. } => 500,
            DialogError::Mismatch => 481,
            _ => 400,
        }
    }
}

/// Dialog state per §12.1 (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID and tags.
    pub id: DialogId,
    /// Early, confirmed or terminated.
    pub state: DialogState,
    /// UAC or UAS of the creating request.
    pub role: Role,
    /// Our URI with our tag (From of requests we send).
    pub local: NameAddr,
    /// The peer's URI with its tag (To of requests we send).
    pub remote: NameAddr,
    /// Where requests go: the peer's Contact URI.
    pub remote_target: Uri,
    /// Our Contact, added to target refresh requests we build (set by the TU).
    pub local_target: Option<Uri>,
    /// Route set, in the order Route headers are written.
    pub route_set: Vec<NameAddr>,
    /// CSeq of the last request we sent in this dialog (`None`: not yet).
    pub local_seq: Option<u32>,
    /// CSeq of the last request received in this dialog (`None`: not yet).
    pub remote_seq: Option<u32>,
    /// Dialog created over `sips:` (requests must keep TLS).
    pub secure: bool,
}

/// Methods whose requests / 2xx replace the remote target (RFC 3261, 3311, 6665, 3515).
pub fn is_target_refresh(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

fn contact_uri(headers: &crate::header::Headers) -> Option<Uri> {
    headers.contact().map(|c| c.uri)
}

impl Dialog {
    /// UAC: a dialog from the request we sent and a 101–199 (with To tag) or 2xx response.
    pub fn uac(request: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let state = match response.status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            s => return Err(DialogError::NotDialogCreating(s)),
        };
        let call_id = request
            .call_id()
            .ok_or(DialogError::MissingHeader("Call-ID"))?
            .to_owned();
        let from = request.from().ok_or(DialogError::MissingHeader("From"))?;
        let to = response.to().ok_or(DialogError::MissingHeader("To"))?;
        let remote_tag = to.tag().ok_or(DialogError::MissingToTag)?.to_owned();
        let cseq = request.cseq().ok_or(DialogError::MissingHeader("CSeq"))?;
        // A provisional without Contact still makes an early dialog; its target is the
        // Request-URI until a response with Contact arrives. A 2xx must carry Contact.
        let remote_target = match contact_uri(&response.headers) {
            Some(u) => u,
            None if state == DialogState::Early => request.uri.clone(),
            None => return Err(DialogError::MissingHeader("Contact")),
        };
        let mut route_set = response.headers.record_routes();
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag: from.tag().unwrap_or_default().to_owned(),
                remote_tag,
            },
            state,
            role: Role::Uac,
            local: from,
            remote: to,
            remote_target,
            local_target: contact_uri(&request.headers),
            route_set,
            local_seq: Some(cseq.seq),
            remote_seq: None,
            secure: request.uri.scheme() == "sips",
        })
    }

    /// UAS: a dialog from the request received and the 101–199 / 2xx response the TU sends
    /// (which must carry our To tag; its Contact becomes our local target).
    pub fn uas(request: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let state = match response.status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            s => return Err(DialogError::NotDialogCreating(s)),
        };
        let call_id = request
            .call_id()
            .ok_or(DialogError::MissingHeader("Call-ID"))?
            .to_owned();
        let from = request.from().ok_or(DialogError::MissingHeader("From"))?;
        let to = response.to().ok_or(DialogError::MissingHeader("To"))?;
        let local_tag = to.tag().ok_or(DialogError::MissingToTag)?.to_owned();
        let cseq = request.cseq().ok_or(DialogError::MissingHeader("CSeq"))?;
        let remote_target =
            contact_uri(&request.headers).ok_or(DialogError::MissingHeader("Contact"))?;
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag: from.tag().unwrap_or_default().to_owned(),
            },
            state,
            role: Role::Uas,
            local: to,
            remote: from,
            remote_target,
            local_target: contact_uri(&response.headers),
            // The UAS keeps Record-Route in order (§12.1.1).
            route_set: request.headers.record_routes(),
            local_seq: None,
            remote_seq: Some(cseq.seq),
            secure: request.uri.scheme() == "sips",
        })
    }

    /// UAC: a later response to a request sent in this dialog (`method` is the request's).
    ///
    /// A 2xx to INVITE confirms an early dialog and recomputes the route set (§13.2.2.4); a 2xx
    /// to a target refresh request replaces the remote target; a 3xx–6xx to the INVITE ends an
    /// early dialog.
    pub fn on_response(&mut self, method: &Method, response: &Response) -> Result<(), DialogError> {
        if DialogId::for_uac_response(response) != self.id {
            return Err(DialogError::Mismatch);
        }
        match response.status {
            200..=299 => {
                if *method == Method::Invite && self.state == DialogState::Early {
                    self.state = DialogState::Confirmed;
                    if self.role == Role::Uac {
                        let mut rs = response.headers.record_routes();
                        rs.reverse();
                        self.route_set = rs;
                    }
                }
                if is_target_refresh(method)
                    && let Some(u) = contact_uri(&response.headers)
                {
                    self.remote_target = u;
                }
            }
            101..=199 => {
                if self.state == DialogState::Early
                    && let Some(u) = contact_uri(&response.headers)
                {
                    self.remote_target = u;
                }
            }
            300..=699 if *method == Method::Invite && self.state == DialogState::Early => {
                self.state = DialogState::Terminated;
            }
            _ => {}
        }
        Ok(())
    }

    /// UAS: the TU sends `response` to the dialog-creating INVITE (a 2xx confirms the dialog,
    /// a failure ends it while early).
    pub fn on_sent_response(&mut self, response: &Response) {
        match response.status {
            200..=299 if self.state == DialogState::Early => self.state = DialogState::Confirmed,
            300..=699 if self.state == DialogState::Early => self.state = DialogState::Terminated,
            _ => {}
        }
    }

    /// A request received inside this dialog: checks it belongs here and that its CSeq is not
    /// lower than the last (otherwise answer [`DialogError::status_code`], 500), records the
    /// CSeq and applies a target refresh. ACK and CANCEL reuse an earlier CSeq and are only
    /// matched, not counted.
    pub fn on_request(&mut self, request: &Request) -> Result<(), DialogError> {
        let id = DialogId::for_incoming_request(request);
        if id.call_id != self.id.call_id
            || id.local_tag != self.id.local_tag
            || id.remote_tag != self.id.remote_tag
        {
            return Err(DialogError::Mismatch);
        }
        let cseq = request.cseq().ok_or(DialogError::MissingHeader("CSeq"))?;
        if matches!(request.method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if let Some(last) = self.remote_seq
            && cseq.seq < last
        {
            return Err(DialogError::CSeqOutOfOrder {
                got: cseq.seq,
                last,
            });
        }
        self.remote_seq = Some(cseq.seq);
        if is_target_refresh(&request.method)
            && let Some(u) = contact_uri(&request.headers)
        {
            self.remote_target = u;
        }
        Ok(())
    }

    /// Request-URI and Route values for a request in this dialog (§12.2.1.1): loose routing
    /// when the first route has `lr`, strict routing (first route as Request-URI, remote target
    /// appended) otherwise.
    pub fn request_uri_and_routes(&self) -> (Uri, Vec<NameAddr>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let loose = first.uri.as_sip().is_some_and(|u| u.lr());
        if loose {
            return (self.remote_target.clone(), self.route_set.clone());
        }
        let mut uri = first.uri.clone();
        if let Some(sip) = uri.as_sip_mut() {
            // Parameters not allowed in a Request-URI are stripped (§19.1.1 table).
            sip.params.remove("method");
            sip.params.remove("ttl");
            sip.headers.clear();
        }
        let mut routes: Vec<NameAddr> = self.route_set[1..].to_vec();
        routes.push(NameAddr::new(self.remote_target.clone()));
        (uri, routes)
    }

    /// Builds the next request in this dialog with `via` on top: CSeq is incremented (starting
    /// at 1 for a UAS that has sent nothing yet); Contact is added for target refresh methods
    /// when [`local_target`](Self::local_target) is set. Add body and extra headers after.
    pub fn new_request(&mut self, method: Method, via: &Via) -> Request {
        let seq = self.local_seq.map_or(1, |s| s.wrapping_add(1));
        self.local_seq = Some(seq);
        self.build(method, seq, via)
    }

    /// The ACK for a 2xx to the INVITE with CSeq number `invite_seq` (§13.2.2.4): same CSeq
    /// number, method ACK, Route set as for any in-dialog request. Does not advance the CSeq.
    pub fn ack(&self, invite_seq: u32, via: &Via) -> Request {
        self.build(Method::Ack, invite_seq, via)
    }

    fn build(&self, method: Method, seq: u32, via: &Via) -> Request {
        let (uri, routes) = self.request_uri_and_routes();
        let mut r = Request::new(method.clone(), uri);
        r.headers.push(HeaderName::Via, via.to_string());
        r.headers.push(HeaderName::MaxForwards, "70");
        for route in &routes {
            r.headers.push(HeaderName::Route, route.to_string());
        }
        r.headers
            .push(HeaderName::From, self.local_with_tag().to_string());
        r.headers
            .push(HeaderName::To, self.remote_with_tag().to_string());
        r.headers.push(HeaderName::CallId, self.id.call_id.clone());
        r.headers.push(HeaderName::CSeq, format!("{seq} {method}"));
        if is_target_refresh(&method)
            && let Some(contact) = &self.local_target
        {
            r.headers.push(
                HeaderName::Contact,
                NameAddr::new(contact.clone()).to_string(),
            );
        }
        r
    }

    fn local_with_tag(&self) -> NameAddr {
        let mut na = self.local.clone();
        if !self.id.local_tag.is_empty() {
            na.set_tag(&self.id.local_tag);
        }
        na
    }

    fn remote_with_tag(&self) -> NameAddr {
        let mut na = self.remote.clone();
        if !self.id.remote_tag.is_empty() {
            na.set_tag(&self.id.remote_tag);
        }
        na
    }
}
