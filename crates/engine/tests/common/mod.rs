//! A fake driver for the engine: a fake clock, an in-memory database that applies what the
//! engine asks (or fails on demand, or holds answers back), a fake relay that hands out ports,
//! and phones that speak SIP as text. Everything runs in microseconds; nothing sleeps.
#![allow(dead_code)]

pub mod perf;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use engine::config::{ExtEntry, Outside, Snapshot, Tenants};
use engine::db::{CdrRecord, DbAnswer, DbOp, OpId};
use engine::media::{MediaCommand, MediaEvent, SessionId, Side};
use engine::usrloc::{Binding, LocOp};
use engine::{Engine, EngineConfig, Input, Now, Output, Received};
use sip::auth::{Algorithm, ChallengeValue, DigestClient, DigestRequest, parse_challenges};
use sip::transaction::Transport;
use sip::{HeaderName, Message, Request, Response};

/// Our two network segments.
pub const SEG1: &str = "192.0.2.100:5060";
pub const SEG2: &str = "198.51.100.100:5060";
pub const REALM: &str = "denwa";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

pub fn password(number: &str) -> String {
    format!("pw-{number}-secret")
}

pub fn ext(id: i64, number: &str, max_contacts: usize) -> ExtEntry {
    ExtEntry {
        id,
        number: number.into(),
        display_name: format!("Ext {number}"),
        ha1_md5: Some(sip::auth::ha1(
            Algorithm::Md5,
            number,
            REALM,
            &password(number),
        )),
        ha1_sha256: None,
        enabled: true,
        max_contacts,
        ..ExtEntry::default()
    }
}

/// How the fake database answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbMode {
    /// Answer every operation at once, successfully.
    Ok,
    /// Answer every write with an error.
    Fail,
    /// Keep operations until `release_db` (to test races).
    Hold,
}

/// A message the engine sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub to: SocketAddr,
    pub from: Option<SocketAddr>,
    pub message: Message,
    /// The bytes as the engine sent them.
    pub raw: bytes::Bytes,
}

impl Sent {
    pub fn response(&self) -> &Response {
        match &self.message {
            Message::Response(r) => r,
            Message::Request(r) => panic!("expected a response, got {}", r.method.as_str()),
        }
    }
    pub fn request(&self) -> &Request {
        match &self.message {
            Message::Request(r) => r,
            Message::Response(r) => panic!("expected a request, got {}", r.status),
        }
    }
}

pub struct Harness {
    pub engine: Engine,
    pub now: Now,
    pub sent: Vec<Sent>,
    pub db_mode: DbMode,
    pub held: Vec<(OpId, DbOp)>,
    /// The database's registrations (what a restart would load).
    pub db_bindings: Vec<Binding>,
    pub cdrs: Vec<CdrRecord>,
    /// Call events stored: (tenant, record's Call-ID, events).
    pub call_events: Vec<(i64, String, Vec<engine::transfer::TransferEvent>)>,
    /// Extensions only the database knows (cache misses find them).
    pub db_extensions: HashMap<(i64, String), ExtEntry>,
    pub lookups: usize,
    /// Open relay sessions: (side A address, side B address).
    pub sessions: HashMap<SessionId, (SocketAddr, SocketAddr)>,
    /// Open terminating endpoints and their addresses.
    pub endpoints: HashMap<engine::media::EndpointId, SocketAddr>,
    pub media_log: Vec<MediaCommand>,
    next_port: u16,
    pub fail_media: bool,
    cseq: u32,
    client_rng: rand::rngs::StdRng,
    /// Trunk states as last written.
    pub trunk_status: HashMap<i64, serde_json::Value>,
    /// Ring group round-robin positions as written: (group id, member).
    pub group_positions: Vec<(i64, String)>,
    /// Voicemail work asked for, in order.
    pub vm_ops: Vec<engine::vm::VmOp>,
    /// The messages a voicemail `Load` finds.
    pub vm_messages: Vec<apps::vmail::Message>,
    /// The answer to a `VmOp::KeepPrompt` (a prompt recorded by phone): `None` stores it.
    pub prompt_keep_error: Option<String>,
    /// The PIN a voicemail `Verify` accepts (a skipped PIN is accepted too).
    pub vm_pin: String,
    /// Forwards set by feature code (tenant, extension, kind, target).
    pub forward_ops: Vec<(i64, String, engine::hunt::ForwardKind, Option<String>)>,
    /// DND switched by feature code (tenant, extension, on).
    pub dnd_ops: Vec<(i64, String, bool)>,
    /// Time condition modes written (tenant, name, mode).
    pub timecond_modes: Vec<(i64, String, engine::timecond::Mode)>,
    /// Park rows stored, by (tenant, slot).
    pub park_rows: std::collections::BTreeMap<(i64, u32), engine::park::ParkRecord>,
    /// Park operations asked for, in order.
    pub park_ops: Vec<engine::park::ParkOp>,
    /// Rows of calls in progress stored, by (tenant, Call-ID) ([`engine::live_calls`]).
    pub live_rows: std::collections::BTreeMap<(i64, String), engine::live_calls::LiveCallRecord>,
    /// Call row operations asked for, in order.
    pub live_ops: Vec<engine::live_calls::LiveCallOp>,
    /// Wall time spent inside `Engine::handle_input` (the BLF micro-benchmark's measure).
    pub busy: Duration,
}

pub fn snapshot() -> Snapshot {
    let mut s = Snapshot {
        tenants: Tenants {
            default_id: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    s.tenants.realms.insert(1, REALM.into());
    for (id, n, max) in [(1, "1001", 3), (2, "1002", 3), (3, "1003", 1)] {
        s.extensions.insert((1, n.to_string()), ext(id, n, max));
    }
    s
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(snapshot())
    }

    pub fn with(snap: Snapshot) -> Harness {
        let cfg = EngineConfig {
            locals: vec![addr(SEG1), addr(SEG2)],
            digest_secret: [7; 32],
            seed: [9; 32],
            max_lookups: 4,
            max_pending_db: 50,
            ..Default::default()
        };
        Harness {
            engine: Engine::new(cfg, snap),
            now: Now {
                mono: Instant::now(),
                wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
            },
            sent: Vec::new(),
            db_mode: DbMode::Ok,
            held: Vec::new(),
            db_bindings: Vec::new(),
            cdrs: Vec::new(),
            vm_ops: Vec::new(),
            vm_messages: Vec::new(),
            prompt_keep_error: None,
            vm_pin: "2580".into(),
            call_events: Vec::new(),
            db_extensions: HashMap::new(),
            lookups: 0,
            sessions: HashMap::new(),
            endpoints: HashMap::new(),
            media_log: Vec::new(),
            next_port: 20000,
            fail_media: false,
            cseq: 1,
            client_rng: rand::SeedableRng::from_seed([3; 32]),
            trunk_status: HashMap::new(),
            group_positions: Vec::new(),
            timecond_modes: Vec::new(),
            forward_ops: Vec::new(),
            dnd_ops: Vec::new(),
            park_rows: Default::default(),
            park_ops: Vec::new(),
            live_rows: Default::default(),
            live_ops: Vec::new(),
            busy: Duration::ZERO,
        }
    }

    /// `Engine::handle_input`, timed into [`Harness::busy`].
    pub fn feed(&mut self, i: Input) {
        let start = Instant::now();
        self.engine.handle_input(i, self.now);
        self.busy += start.elapsed();
    }

    /// Feeds one input and carries out everything the engine asks, answering database and
    /// media requests the way `db_mode` and `fail_media` say.
    pub fn input(&mut self, i: Input) {
        self.feed(i);
        self.drain();
    }

    pub fn drain(&mut self) {
        loop {
            let mut back = Vec::new();
            while let Some(o) = self.engine.poll_output() {
                match o {
                    Output::Transmit(t) => {
                        let message =
                            sip::parse_message(&t.data).expect("engine sent unparsable SIP");
                        self.sent.push(Sent {
                            to: t.destination,
                            from: t.local,
                            message,
                            raw: t.data,
                        });
                    }
                    Output::Db(id, op) => {
                        if self.db_mode == DbMode::Hold {
                            self.held.push((id, op));
                        } else {
                            back.push(Input::Db(id, self.answer(op)));
                        }
                    }
                    Output::Media(cmd) => {
                        if let Some(ev) = self.relay(cmd) {
                            back.push(Input::Media(ev));
                        }
                    }
                }
            }
            if back.is_empty() {
                return;
            }
            for i in back {
                self.feed(i);
            }
        }
    }

    /// Answers the held database operations (in order), with `mode`.
    pub fn release_db(&mut self, mode: DbMode) {
        let held = std::mem::take(&mut self.held);
        self.db_mode = mode;
        for (id, op) in held {
            let a = self.answer(op);
            self.engine.handle_input(Input::Db(id, a), self.now);
            self.drain();
        }
    }

    fn answer(&mut self, op: DbOp) -> DbAnswer {
        let fail = self.db_mode == DbMode::Fail;
        match op {
            DbOp::Location(ops) => {
                if fail {
                    return DbAnswer::Location {
                        ops,
                        result: Err("disk full".into()),
                    };
                }
                for op in &ops {
                    match op {
                        LocOp::Upsert(b) => {
                            self.db_bindings.retain(|x| {
                                !(x.extension_id == b.extension_id
                                    && x.contact_uri == b.contact_uri)
                            });
                            self.db_bindings.push((**b).clone());
                        }
                        LocOp::Delete {
                            extension_id,
                            contact_uri,
                        } => self.db_bindings.retain(|x| {
                            !(x.extension_id == *extension_id && x.contact_uri == *contact_uri)
                        }),
                        LocOp::DeleteAll { extension_id } => {
                            self.db_bindings.retain(|x| x.extension_id != *extension_id)
                        }
                    }
                }
                DbAnswer::Location {
                    ops,
                    result: Ok(()),
                }
            }
            DbOp::BindingFlags { .. } | DbOp::PurgeExpired { .. } => DbAnswer::Done(Ok(())),
            DbOp::TrunkStatus { trunk_id, status } => {
                self.trunk_status.insert(trunk_id, status);
                DbAnswer::Done(Ok(()))
            }
            DbOp::GroupPosition { group_id, member } => {
                self.group_positions.push((group_id, member));
                DbAnswer::Done(Ok(()))
            }
            DbOp::Forward {
                tenant,
                number,
                kind,
                target,
            } => {
                self.forward_ops.push((tenant, number, kind, target));
                DbAnswer::Done(Ok(()))
            }
            DbOp::Dnd { tenant, number, on } => {
                self.dnd_ops.push((tenant, number, on));
                DbAnswer::Done(Ok(()))
            }
            DbOp::TimecondMode { tenant, name, mode } => {
                self.timecond_modes.push((tenant, name, mode));
                DbAnswer::Done(Ok(()))
            }
            DbOp::Park(op) => {
                self.park_ops.push(op.clone());
                if fail {
                    return DbAnswer::Done(Err("disk full".into()));
                }
                match op {
                    engine::park::ParkOp::Save(r) => {
                        self.park_rows.insert((r.tenant, r.slot), *r);
                    }
                    engine::park::ParkOp::Free { tenant, slot } => {
                        self.park_rows.remove(&(tenant, slot));
                    }
                }
                DbAnswer::Done(Ok(()))
            }
            DbOp::LiveCall(op) => {
                self.live_ops.push(op.clone());
                if fail {
                    return DbAnswer::Done(Err("disk full".into()));
                }
                match op {
                    engine::live_calls::LiveCallOp::Save(r) => {
                        self.live_rows.insert((r.tenant, r.call_id.clone()), *r);
                    }
                    engine::live_calls::LiveCallOp::Delete { tenant, call_id } => {
                        self.live_rows.remove(&(tenant, call_id));
                    }
                }
                DbAnswer::Done(Ok(()))
            }
            DbOp::CdrEvents {
                tenant,
                call_id,
                events,
            } => {
                self.call_events.push((tenant, call_id, events));
                DbAnswer::Done(Ok(()))
            }
            DbOp::LookupExtension { tenant, number } => {
                self.lookups += 1;
                DbAnswer::Extension(Ok(self.db_extensions.get(&(tenant, number)).cloned()))
            }
            DbOp::Vm(op) => {
                use engine::vm::{VmAnswer, VmOp};
                self.vm_ops.push(op.clone());
                DbAnswer::Vm(match op {
                    VmOp::Verify { pin, .. } => {
                        VmAnswer::Verdict(Ok(if pin.is_none_or(|p| p == self.vm_pin) {
                            apps::vmail::Verdict::Ok
                        } else {
                            apps::vmail::Verdict::Wrong
                        }))
                    }
                    VmOp::Load { .. } => VmAnswer::Messages(Ok(self.vm_messages.clone())),
                    VmOp::SetPin { .. } => VmAnswer::PinSet(Ok(true)),
                    VmOp::KeepPrompt { .. } => {
                        VmAnswer::Done(self.prompt_keep_error.clone().map_or(Ok(()), Err))
                    }
                    _ => VmAnswer::Done(Ok(())),
                })
            }
            DbOp::InsertCdr(c) => {
                if fail {
                    return DbAnswer::Cdr(Err("disk full".into()));
                }
                self.cdrs.push(*c);
                DbAnswer::Cdr(Ok(()))
            }
        }
    }

    fn relay(&mut self, cmd: MediaCommand) -> Option<MediaEvent> {
        self.media_log.push(cmd.clone());
        match cmd {
            MediaCommand::Allocate {
                session,
                a_ip,
                b_ip,
                ..
            } => {
                if self.fail_media {
                    return Some(MediaEvent::AllocationFailed {
                        session,
                        reason: "no ports".into(),
                    });
                }
                let a = SocketAddr::new(a_ip, self.next_port);
                let b = SocketAddr::new(b_ip, self.next_port + 2);
                self.next_port += 4;
                self.sessions.insert(session, (a, b));
                Some(MediaEvent::Allocated { session, a, b })
            }
            MediaCommand::Adopt { session, a, b, .. } => {
                if self.fail_media {
                    return Some(MediaEvent::AllocationFailed {
                        session,
                        reason: "address in use".into(),
                    });
                }
                self.sessions.insert(session, (a, b));
                Some(MediaEvent::Allocated { session, a, b })
            }
            MediaCommand::OpenEndpoint { endpoint, ip, .. } => {
                if self.fail_media {
                    return Some(MediaEvent::EndpointFailed {
                        endpoint,
                        reason: "no ports".into(),
                    });
                }
                let local = SocketAddr::new(ip, self.next_port);
                self.next_port += 2;
                self.endpoints.insert(endpoint, local);
                Some(MediaEvent::EndpointOpened { endpoint, local })
            }
            MediaCommand::AdoptEndpoint { endpoint, at, .. } => {
                // A privileged port stands for a socket that cannot be bound again.
                if self.fail_media || at.port() < 1024 {
                    return Some(MediaEvent::EndpointFailed {
                        endpoint,
                        reason: "address in use".into(),
                    });
                }
                self.endpoints.insert(endpoint, at);
                Some(MediaEvent::EndpointOpened {
                    endpoint,
                    local: at,
                })
            }
            MediaCommand::CloseEndpoint { endpoint } => {
                self.endpoints.remove(&endpoint)?;
                Some(MediaEvent::EndpointClosed {
                    endpoint,
                    stats: engine::db::LegStats::default(),
                })
            }
            MediaCommand::Close { session } => {
                self.sessions.remove(&session)?;
                Some(MediaEvent::Closed {
                    session,
                    a: engine::db::LegStats {
                        pkts_rx: 50,
                        ..Default::default()
                    },
                    b: engine::db::LegStats {
                        pkts_rx: 49,
                        ..Default::default()
                    },
                })
            }
            _ => None,
        }
    }

    /// Moves the clock on by `d`, firing every timer that falls due on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now.after(d);
        loop {
            match self.engine.poll_timeout() {
                Some(t) if t <= end.mono => {
                    if t > self.now.mono {
                        let step = t - self.now.mono;
                        self.now = self.now.after(step);
                    }
                    self.input(Input::Timeout);
                }
                _ => break,
            }
        }
        self.now = end;
        self.input(Input::Timeout);
    }

    /// A message from `source` arriving on `local` over UDP.
    pub fn recv(&mut self, text: &str, source: &str, local: &str) {
        let data = text.replace('\n', "\r\n");
        let message = sip::parse_message(data.as_bytes()).expect("test message parses");
        self.input(Input::Receive(Received {
            message,
            source: addr(source),
            local: addr(local),
            transport: Transport::Udp,
        }));
    }

    pub fn recv_message(&mut self, message: Message, source: &str, local: &str) {
        self.input(Input::Receive(Received {
            message,
            source: addr(source),
            local: addr(local),
            transport: Transport::Udp,
        }));
    }

    /// Takes what was sent so far.
    pub fn take(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.sent)
    }

    /// The final (or last) responses sent, by status.
    pub fn responses(&self) -> Vec<u16> {
        self.sent
            .iter()
            .filter_map(|s| match &s.message {
                Message::Response(r) => Some(r.status),
                _ => None,
            })
            .collect()
    }

    pub fn last_response(&self) -> Response {
        self.sent
            .iter()
            .rev()
            .find_map(|s| match &s.message {
                Message::Response(r) if r.status >= 101 => Some(r.clone()),
                _ => None,
            })
            .expect("a response was sent")
    }

    pub fn requests(&self, method: &str) -> Vec<Sent> {
        self.sent
            .iter()
            .filter(|s| matches!(&s.message, Message::Request(r) if r.method.as_str() == method))
            .cloned()
            .collect()
    }

    fn next_cseq(&mut self) -> u32 {
        self.cseq += 1;
        self.cseq
    }

    /// A REGISTER from `number` at `source` (Contact `contact`, or none for a query), answered
    /// with digest credentials when challenged. Returns the final response.
    pub fn register(
        &mut self,
        number: &str,
        contact: Option<&str>,
        expires: Option<u32>,
        source: &str,
        local: &str,
    ) -> Response {
        self.register_as(
            number,
            &password(number),
            contact,
            expires,
            source,
            local,
            None,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn register_as(
        &mut self,
        number: &str,
        pass: &str,
        contact: Option<&str>,
        expires: Option<u32>,
        source: &str,
        local: &str,
        digest_uri: Option<&str>,
    ) -> Response {
        let call_id = format!("reg-{number}-{source}");
        let build = |cseq: u32, auth: Option<String>| {
            let mut s = format!(
                "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP {source};branch=z9hG4bK-r{cseq}-{number}\nMax-Forwards: 70\nFrom: <sip:{number}@example.com>;tag=f{number}\nTo: <sip:{number}@example.com>\nCall-ID: {call_id}\nCSeq: {cseq} REGISTER\n"
            );
            if let Some(c) = contact {
                s.push_str(&format!("Contact: {c}\n"));
            }
            if let Some(e) = expires {
                s.push_str(&format!("Expires: {e}\n"));
            }
            if let Some(a) = auth {
                s.push_str(&format!("Authorization: {a}\n"));
            }
            s.push_str("Content-Length: 0\n\n");
            s
        };
        let cseq = self.next_cseq();
        self.sent.clear();
        self.recv(&build(cseq, None), source, local);
        let challenge = self.last_response();
        if challenge.status != 401 {
            return challenge;
        }
        let creds = self.answer_challenge(
            number,
            pass,
            &challenge,
            &HeaderName::WwwAuthenticate,
            "REGISTER",
            digest_uri.unwrap_or("sip:example.com"),
        );
        let cseq = self.next_cseq();
        self.sent.clear();
        self.recv(&build(cseq, Some(creds)), source, local);
        // With the database holding answers back there is no final response yet.
        self.try_last_response().unwrap_or(challenge)
    }

    pub fn try_last_response(&self) -> Option<Response> {
        self.sent.iter().rev().find_map(|s| match &s.message {
            Message::Response(r) if r.status >= 101 => Some(r.clone()),
            _ => None,
        })
    }

    /// Credentials answering the challenge in `resp`.
    pub fn answer_challenge(
        &mut self,
        number: &str,
        pass: &str,
        resp: &Response,
        header: &HeaderName,
        method: &str,
        uri: &str,
    ) -> String {
        let challenges: Vec<_> = resp
            .headers
            .get_all(header)
            .flat_map(|v| parse_challenges(v.as_str()).expect("challenge parses"))
            .filter_map(|c| match c {
                ChallengeValue::Digest(c) => Some(c),
                _ => None,
            })
            .collect();
        let mut client = DigestClient::new(number, pass);
        client
            .respond(
                &challenges,
                &DigestRequest {
                    method,
                    uri,
                    body: b"",
                },
                &mut self.client_rng,
            )
            .expect("challenge answered")
            .to_string()
    }

    /// Bindings in memory of extension `id`, by contact.
    pub fn memory(&self, id: i64) -> Vec<String> {
        let mut v: Vec<String> = self
            .engine
            .usrloc()
            .get(id)
            .iter()
            .map(|b| b.contact_uri.clone())
            .collect();
        v.sort();
        v
    }

    /// Bindings in the database of extension `id`, by contact.
    pub fn stored(&self, id: i64) -> Vec<String> {
        let mut v: Vec<String> = self
            .db_bindings
            .iter()
            .filter(|b| b.extension_id == id)
            .map(|b| b.contact_uri.clone())
            .collect();
        v.sort();
        v
    }
}

/// An SDP offer/answer with audio at `ip:port`.
pub fn sdp(ip: &str, port: u16, direction: &str) -> String {
    format!(
        "v=0\no=- 1 1 IN IP4 {ip}\ns=-\nc=IN IP4 {ip}\nt=0 0\nm=audio {port} RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na={direction}\n"
    )
}

/// The side a media command concerns, for assertions.
pub fn remote_of(cmds: &[MediaCommand], side: Side) -> Vec<SocketAddr> {
    cmds.iter()
        .filter_map(|c| match c {
            MediaCommand::SetRemote { side: s, rtp, .. } if *s == side => Some(*rtp),
            _ => None,
        })
        .collect()
}

/// A caller's INVITE (authenticated after the 407), as the phone at `source` sends it.
pub struct Dial<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub source: &'a str,
    pub local: &'a str,
    pub call_id: &'a str,
}

impl Harness {
    pub fn invite_text(&self, d: &Dial<'_>, cseq: u32, auth: Option<&str>) -> String {
        let src_ip = d.source.split(':').next().unwrap_or("");
        let body = sdp(src_ip, 4000, "sendrecv").replace('\n', "\r\n");
        let mut s = format!(
            "INVITE sip:{to}@example.com SIP/2.0\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-i{cseq}-{cid}\nMax-Forwards: 70\nFrom: \"Caller\" <sip:{from}@example.com>;tag=a-{cid}\nTo: <sip:{to}@example.com>\nCall-ID: {cid}\nCSeq: {cseq} INVITE\nContact: <sip:{from}@{src}>\n",
            to = d.to,
            from = d.from,
            src = d.source,
            cid = d.call_id,
        );
        if let Some(a) = auth {
            s.push_str(&format!("Proxy-Authorization: {a}\n"));
        }
        s.push_str(&format!(
            "Content-Type: application/sdp\nContent-Length: {}\n\n",
            body.len()
        ));
        // The body keeps its own CRLFs; only the head is converted by `recv`.
        s.replace('\n', "\r\n") + &body
    }

    /// Sends the caller's INVITE, answers the 407, returns what the engine sent after the
    /// authenticated INVITE (forks to callees, 100/4xx to the caller).
    pub fn dial(&mut self, d: &Dial<'_>) -> Vec<Sent> {
        self.sent.clear();
        let first = self.invite_text(d, 1, None);
        self.recv_raw(&first, d.source, d.local);
        let challenge = self.last_response();
        assert_eq!(
            challenge.status, 407,
            "INVITE without credentials is challenged"
        );
        let creds = self.answer_challenge(
            d.from,
            &password(d.from),
            &challenge,
            &HeaderName::ProxyAuthenticate,
            "INVITE",
            &format!("sip:{}@example.com", d.to),
        );
        // ACK for the 407 (same branch as the first INVITE).
        let ack = format!(
            "ACK sip:{to}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK-i1-{cid}\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:{from}@example.com>;tag=a-{cid}\r\nTo: <sip:{to}@example.com>;tag={tag}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            to = d.to,
            from = d.from,
            src = d.source,
            cid = d.call_id,
            tag = challenge
                .to()
                .and_then(|t| t.tag().map(str::to_string))
                .unwrap_or_default(),
        );
        self.recv_raw(&ack, d.source, d.local);
        self.sent.clear();
        let second = self.invite_text(d, 2, Some(&creds));
        self.recv_raw(&second, d.source, d.local);
        self.take()
    }

    /// A message already in wire form (CRLF line ends).
    pub fn recv_raw(&mut self, data: &str, source: &str, local: &str) {
        let message = sip::parse_message(data.as_bytes()).expect("test message parses");
        self.recv_message(message, source, local);
    }

    /// The callee phone at `at` answers `invite` with `status` (and SDP for a 2xx / 183).
    pub fn reply(&mut self, invite: &Request, status: u16, to_tag: &str, at: &str, local: &str) {
        let mut r = Response::for_request(invite, status, None);
        if !to_tag.is_empty() {
            r.set_to_tag(to_tag);
        }
        if status == 200 || status == 183 {
            let ip = at.split(':').next().unwrap_or("");
            r.headers
                .push(HeaderName::Contact, format!("<sip:callee@{at}>"));
            r.set_body(
                &sip::MediaType::sdp(),
                bytes::Bytes::from(sdp(ip, 6000, "sendrecv").replace('\n', "\r\n")),
            );
        }
        self.recv_message(Message::Response(r), at, local);
    }
}

impl Harness {
    /// What each Play command to `ep` played, as text (`prompt+prompt`, `moh:CLASS`).
    pub fn plays_on(&self, ep: engine::media::EndpointId) -> Vec<String> {
        use engine::media::PlayItem;
        self.media_log
            .iter()
            .filter_map(|c| match c {
                MediaCommand::Play {
                    endpoint, items, ..
                } if *endpoint == ep => Some(
                    items
                        .iter()
                        .map(|i| match i {
                            PlayItem::Prompt { id, .. } => id.clone(),
                            PlayItem::Moh { class, .. } => format!("moh:{class}"),
                            PlayItem::Tone(t) => format!("tone:{t:?}"),
                            PlayItem::CountryTone { tone, .. } => format!("tone:{tone:?}"),
                            other => format!("{other:?}"),
                        })
                        .collect::<Vec<_>>()
                        .join("+"),
                ),
                _ => None,
            })
            .collect()
    }

    /// The last playback on `ep` ends.
    pub fn end_play(&mut self, ep: engine::media::EndpointId) {
        let id = self
            .media_log
            .iter()
            .filter_map(|c| match c {
                MediaCommand::Play { endpoint, id, .. } if *endpoint == ep => Some(*id),
                _ => None,
            })
            .next_back()
            .expect("something played");
        self.input(Input::Media(MediaEvent::PlayDone {
            endpoint: ep,
            id,
            interrupted: false,
        }));
    }
}

/// The INVITEs among `sent` that went to `to`.
pub fn invites_to(sent: &[Sent], to: &str) -> Vec<Request> {
    sent.iter()
        .filter(|s| s.to.to_string() == to)
        .filter_map(|s| match &s.message {
            Message::Request(r) if r.method.as_str() == "INVITE" => Some(r.clone()),
            _ => None,
        })
        .collect()
}

impl Harness {
    /// The phone on endpoint `ep` presses `keys` (RFC 4733 digits).
    pub fn keys(&mut self, ep: engine::media::EndpointId, keys: &str) {
        for digit in keys.chars() {
            self.input(Input::Media(engine::media::MediaEvent::Dtmf {
                endpoint: ep,
                digit,
            }));
        }
    }
}

impl Harness {
    /// Endpoints opened so far, in order.
    pub fn opened_endpoints(&self) -> Vec<engine::media::EndpointId> {
        self.media_log
            .iter()
            .filter_map(|c| match c {
                MediaCommand::OpenEndpoint { endpoint, .. } => Some(*endpoint),
                _ => None,
            })
            .collect()
    }

    /// Endpoints joined to a bridge so far, in order.
    pub fn joined_endpoints(&self) -> Vec<engine::media::EndpointId> {
        self.media_log
            .iter()
            .filter_map(|c| match c {
                MediaCommand::Join { endpoint, .. } => Some(*endpoint),
                _ => None,
            })
            .collect()
    }
}

/// Tenant 1's outbound settings: main number `0312340000`, and route `national` (`pattern`,
/// class national) through `trunk` — given as (name, address, password) it is added as trunk
/// 1, an IP trunk whose account `acct` answers the provider's challenges with `password`.
pub fn national_outside(pattern: &str, trunk: (&str, Option<(&str, &str)>)) -> Outside {
    let (name, at) = trunk;
    let mut o = Outside::default();
    if let Some((at, password)) = at {
        let a = addr(at);
        o.trunks.insert(
            1,
            engine::config::TrunkEntry {
                id: 1,
                tenant: 1,
                name: name.into(),
                spec: engine::outside::TrunkSpec {
                    host: a.ip().to_string(),
                    port: Some(a.port()),
                    username: "acct".into(),
                    ping_interval_s: 0,
                    ..Default::default()
                },
                password: password.into(),
                addrs: vec![a],
                sources: vec![a.ip()],
            },
        );
    }
    o.routes.insert(
        1,
        vec![engine::config::RouteEntry::new(
            "national".into(),
            engine::outside::RouteSpec {
                patterns: vec![pattern.into()],
                trunks: vec![name.into()],
                class: engine::outside::CallClass::National,
                ..Default::default()
            },
        )],
    );
    o.tenants.insert(
        1,
        engine::outside::TenantOutbound {
            main_number: "0312340000".into(),
            max_per_hour: 1000,
            ..Default::default()
        },
    );
    o
}

impl Harness {
    /// The last final response the phone at `at` got to an INVITE.
    pub fn final_invite_response(&self, at: &str) -> Option<Response> {
        self.sent
            .iter()
            .filter(|s| s.to.to_string() == at)
            .filter_map(|s| match &s.message {
                Message::Response(r)
                    if r.status >= 200
                        && r.cseq().is_some_and(|c| c.method.as_str() == "INVITE") =>
                {
                    Some(r.clone())
                }
                _ => None,
            })
            .next_back()
    }
}

/// An in-dialog request from the caller `user` at `at`, in the dialog our 200 `ok` set up
/// (the caller's From tag is `a-CALLID`, as [`Harness::dial`] sends it).
pub fn caller_in_dialog(
    ok: &Response,
    (user, at): (&str, &str),
    method: &str,
    cseq: u32,
    body: Option<String>,
) -> String {
    let contact = ok
        .headers
        .contact()
        .map(|c| c.uri.to_string())
        .unwrap_or_default();
    let to = ok.to().map(|t| t.to_string()).unwrap_or_default();
    let call_id = ok.call_id().unwrap_or_default().to_string();
    let mut s = format!(
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {at};branch=z9hG4bK-cd{cseq}-{method}-{call_id}\r\nMax-Forwards: 70\r\nFrom: \"Caller\" <sip:{user}@example.com>;tag=a-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
    );
    match body {
        Some(b) => {
            let b = b.replace('\n', "\r\n");
            s.push_str(&format!(
                "Contact: <sip:{user}@{at}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ));
        }
        None => s.push_str("Content-Length: 0\r\n\r\n"),
    }
    s
}

/// A snapshot with IVR menu `main` (number 500) whose option 1 rings extension 1002.
pub fn ivr_500_to_1002() -> Snapshot {
    let mut snap = snapshot();
    let mut m = apps::ivr::MenuSpec {
        greeting: "main-greeting".into(),
        fallback: "hangup".into(),
        ..apps::ivr::MenuSpec::default()
    };
    m.options.insert('1', "ext:1002".into());
    snap.apps = engine::config::Apps::new(vec![engine::config::IvrEntry {
        tenant: 1,
        name: "main".into(),
        number: "500".into(),
        spec: m,
    }]);
    snap
}

/// A harness on `snap` with 1001 (at 192.0.2.21:5060) and 1002 (at 192.0.2.22:5060)
/// registered on [`SEG1`]; nothing sent or commanded yet.
pub fn with_1001_and_1002(snap: Snapshot) -> Harness {
    let mut h = Harness::with(snap);
    for (n, at) in [("1001", "192.0.2.21:5060"), ("1002", "192.0.2.22:5060")] {
        let ip = at.split(':').next().unwrap_or("");
        let c = format!("<sip:{n}@{ip}:5060>");
        assert_eq!(h.register(n, Some(&c), Some(3600), at, SEG1).status, 200);
    }
    h.sent.clear();
    h.media_log.clear();
    h
}
