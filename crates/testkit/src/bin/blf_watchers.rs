//! `blf_watchers`: the phones of the BLF benchmark (`bench/blf.py`, issue 15 §10), one UDP socket
//! per phone on 127.0.0.1, one thread (tokio current-thread runtime).
//!
//! Every phone registers (digest), subscribes `Event: dialog` (digest) to `--keys` other phones
//! (phone i watches phones i+1 .. i+keys, wrapping, so every phone is watched by `--keys`
//! phones), answers every NOTIFY with 200 and refreshes its subscriptions before they run out.
//! The phones also make the calls: at `--cps` calls per second two idle phones are picked, one
//! calls the other through the server (INVITE with digest, the callee answers 180 at once and
//! 200 after `--ring-ms`, ACK, `--hold-ms`, BYE). The generator and the watchers share one
//! clock: each state change (180 = early, 200 = confirmed, BYE = terminated, for the caller's
//! and the callee's key) is stamped when its message leaves the phone, and every NOTIFY a
//! watcher of that key receives is matched by (Call-ID, state): the delay is from the stamp to
//! the first NOTIFY showing that state or a later one (absent counts as ended only for the
//! `terminated` change; a `terminated` seen also delivers the earlier changes of that call
//! it skipped).
//!
//! Protocol on stdout/stdin (driven by `bench/blf.py`, which measures the server's CPU between
//! the two lines): `{"phase":"ready",...}` after the setup; then it waits for a line on stdin,
//! runs the load for `--seconds`, waits `--drain-s` for the last NOTIFYs and prints
//! `{"phase":"done",...}` with the figures. Every loop is bounded in count and in time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const USAGE: &str = "blf_watchers --server ADDR:PORT [--phones N] [--keys K] [--base NUMBER] \
[--cps R] [--seconds S] [--ring-ms MS] [--hold-ms MS] [--sub-expires S] [--setup-parallel N] \
[--drain-s S] [--settle-s S] [--no-wait]";

/// Most delays kept (4 bytes each); past it the figures come from the first ones.
const MAX_SAMPLES: usize = 20_000_000;
/// A change not delivered to every watcher within this is counted lost and forgotten.
const EVENT_TTL: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Args {
    server: SocketAddr,
    phones: usize,
    keys: usize,
    base: u64,
    cps: f64,
    seconds: f64,
    ring: Duration,
    hold: Duration,
    sub_expires: u32,
    parallel: usize,
    drain: Duration,
    settle: Duration,
    wait: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        server: "127.0.0.1:5060".parse().map_err(|_| "addr")?,
        phones: 1000,
        keys: 50,
        base: 300_000,
        cps: 100.0,
        seconds: 30.0,
        ring: Duration::from_millis(100),
        hold: Duration::from_millis(2000),
        sub_expires: 3600,
        parallel: 200,
        drain: Duration::from_secs(3),
        settle: Duration::from_secs(2),
        wait: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--no-wait" {
            a.wait = false;
            continue;
        }
        let v = it.next().ok_or(format!("{k} needs a value\n{USAGE}"))?;
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, String> {
            v.parse().map_err(|_| format!("bad value for {k}: {v}"))
        }
        match k.as_str() {
            "--server" => a.server = v.parse().map_err(|_| format!("bad address {v}"))?,
            "--phones" => a.phones = num(&k, &v)?,
            "--keys" => a.keys = num(&k, &v)?,
            "--base" => a.base = num(&k, &v)?,
            "--cps" => a.cps = num(&k, &v)?,
            "--seconds" => a.seconds = num(&k, &v)?,
            "--ring-ms" => a.ring = Duration::from_millis(num(&k, &v)?),
            "--hold-ms" => a.hold = Duration::from_millis(num(&k, &v)?),
            "--sub-expires" => a.sub_expires = num(&k, &v)?,
            "--setup-parallel" => a.parallel = num(&k, &v)?,
            "--drain-s" => a.drain = Duration::from_secs(num(&k, &v)?),
            "--settle-s" => a.settle = Duration::from_secs(num(&k, &v)?),
            _ => return Err(format!("unknown option {k}\n{USAGE}")),
        }
    }
    if a.phones < 2 || a.keys == 0 || a.keys >= a.phones || a.parallel == 0 {
        return Err(format!("need 0 < keys < phones, phones >= 2\n{USAGE}"));
    }
    if !(a.cps > 0.0 && a.cps <= 10_000.0 && a.seconds > 0.0 && a.seconds <= 3600.0) {
        return Err("cps must be in (0, 10000], seconds in (0, 3600]".into());
    }
    Ok(a)
}

/// The bench's password of an extension (as `bench/blf.py`'s `pw`): digits spelled as letters.
fn password(user: &str) -> String {
    let spelled: String = user
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from(b'a' + d as u8),
            None => c,
        })
        .collect();
    format!("pw-{spelled}-blf")
}

fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    let mut o = String::with_capacity(32);
    for b in d {
        let _ = write!(o, "{b:02x}");
    }
    o
}

/// A quoted or bare parameter of a challenge (`realm="x"`, `qop=auth`).
fn param<'a>(h: &'a str, name: &str) -> Option<&'a str> {
    let lower = h.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        let before_ok = at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric();
        let rest = &h[at + name.len()..];
        let rest_t = rest.trim_start();
        if before_ok && rest_t.starts_with('=') {
            let v = rest_t[1..].trim_start();
            return Some(if let Some(q) = v.strip_prefix('"') {
                q.split('"').next().unwrap_or("")
            } else {
                v.split([',', ' ']).next().unwrap_or("")
            });
        }
        from = at + name.len();
    }
    None
}

/// The credentials answering `challenge` (RFC 2617 MD5, qop=auth when offered).
fn digest(challenge: &str, user: &str, method: &str, uri: &str, cnonce: u64) -> Option<String> {
    let realm = param(challenge, "realm")?;
    let nonce = param(challenge, "nonce")?;
    let ha1 = md5_hex(&format!("{user}:{realm}:{}", password(user)));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let mut out = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=MD5"
    );
    if param(challenge, "qop").is_some_and(|q| q.contains("auth")) {
        let cn = format!("{cnonce:016x}");
        let resp = md5_hex(&format!("{ha1}:{nonce}:00000001:{cn}:auth:{ha2}"));
        let _ = write!(
            out,
            ", response=\"{resp}\", qop=auth, nc=00000001, cnonce=\"{cn}\""
        );
    } else {
        let resp = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        let _ = write!(out, ", response=\"{resp}\"");
    }
    if let Some(o) = param(challenge, "opaque") {
        let _ = write!(out, ", opaque=\"{o}\"");
    }
    Some(out)
}

/// A received SIP message, just what the phones need.
#[derive(Debug, Default, Clone)]
struct Msg {
    /// Request method, or empty for a response.
    method: String,
    status: u16,
    vias: Vec<String>,
    rrs: Vec<String>,
    from: String,
    to: String,
    call_id: String,
    cseq: String,
    contact: String,
    auth: String,
    expires: Option<u32>,
    body: String,
}

impl Msg {
    fn cseq_num(&self) -> u32 {
        self.cseq
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn cseq_method(&self) -> &str {
        self.cseq.split_whitespace().nth(1).unwrap_or("")
    }
}

fn parse(data: &[u8]) -> Option<Msg> {
    let text = std::str::from_utf8(data).ok()?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let mut m = Msg {
        body: body.to_string(),
        ..Msg::default()
    };
    if let Some(rest) = start.strip_prefix("SIP/2.0 ") {
        m.status = rest.get(..3)?.parse().ok()?;
    } else {
        m.method = start.split(' ').next()?.to_string();
    }
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => m.vias.push(v.to_string()),
            "record-route" => m.rrs.push(v.to_string()),
            "from" | "f" => m.from = v.to_string(),
            "to" | "t" => m.to = v.to_string(),
            "call-id" | "i" => m.call_id = v.to_string(),
            "cseq" => m.cseq = v.to_string(),
            "contact" | "m" => m.contact = v.to_string(),
            "www-authenticate" | "proxy-authenticate" => m.auth = v.to_string(),
            "expires" => m.expires = v.parse().ok(),
            _ => {}
        }
    }
    Some(m)
}

/// The user part of a name-address or URI (`"X" <sip:1001@h>;tag=a` -> `1001`).
fn user_of(na: &str) -> &str {
    let s = na.split_once("sip:").map_or("", |(_, r)| r);
    s.split(['@', '>', ';']).next().unwrap_or("")
}

/// The URI inside `<...>` (or the whole value up to `;`).
fn uri_of(na: &str) -> &str {
    match (na.find('<'), na.find('>')) {
        (Some(a), Some(b)) if b > a => &na[a + 1..b],
        _ => na.split(';').next().unwrap_or(na).trim(),
    }
}

fn tag_of(na: &str) -> Option<&str> {
    na.split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("tag="))
}

/// A response to `req` (Vias, From, To, Call-ID, CSeq and Record-Route copied).
fn response(
    req: &Msg,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &str,
    body: &str,
) -> String {
    let mut o = format!("SIP/2.0 {status} {reason}\r\n");
    for v in &req.vias {
        let _ = write!(o, "Via: {v}\r\n");
    }
    if status > 100 {
        for r in &req.rrs {
            let _ = write!(o, "Record-Route: {r}\r\n");
        }
    }
    let to = match to_tag {
        Some(t) if tag_of(&req.to).is_none() => format!("{};tag={t}", req.to),
        _ => req.to.clone(),
    };
    let _ = write!(
        o,
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        req.from,
        req.call_id,
        req.cseq,
        body.len()
    );
    o
}

/// Dialog states in the order a BLF lamp moves through them.
fn rank(state: &str) -> Option<u8> {
    match state.trim().to_ascii_lowercase().as_str() {
        "trying" | "proceeding" => Some(0),
        "early" => Some(1),
        "confirmed" => Some(2),
        "terminated" => Some(3),
        _ => None,
    }
}
const EARLY: u8 = 1;
const CONFIRMED: u8 = 2;
const TERMINATED: u8 = 3;

/// (Call-ID, rank) of each `<dialog>` of a dialog-info body.
fn dialogs(body: &str) -> Vec<(&str, u8)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find("<dialog ") {
        rest = &rest[i + 8..];
        let end = rest.find("</dialog>").unwrap_or(rest.len());
        let el = &rest[..end];
        let cid = el
            .split_once("call-id=\"")
            .and_then(|(_, r)| r.split('"').next())
            .unwrap_or("");
        let state = el
            .split_once("<state")
            .and_then(|(_, r)| r.split_once('>'))
            .and_then(|(_, r)| r.split('<').next())
            .and_then(rank);
        if let Some(s) = state {
            out.push((cid, s));
        }
        rest = &rest[end..];
    }
    out
}

/// A state change of a watched key, waiting for its watchers.
struct Event {
    call_id: String,
    rank: u8,
    at: Instant,
    /// By watcher slot of the key: seen already.
    seen: Vec<bool>,
    left: usize,
}

/// A subscription of a watcher.
struct SubInfo {
    /// Watched phone index.
    key: usize,
    /// This watcher's slot among the key's watchers.
    slot: usize,
    phone: usize,
    to_tag: String,
    from_tag: String,
    cseq: u32,
    refresh_at: Option<Instant>,
    /// Last NOTIFY CSeq answered (retransmissions told apart).
    last_cseq: u32,
}

/// A call the phone answers (it was rung).
struct Rung {
    invite: Msg,
    tag: String,
    last: Option<String>,
    acked: bool,
}

#[derive(Default)]
struct Stats {
    notifies: u64,
    retransmitted: u64,
    other_notifies: u64,
    expected: u64,
    delivered: u64,
    lost: u64,
    delays_us: Vec<u32>,
    calls_started: u64,
    calls_done: u64,
    calls_failed: u64,
    calls_skipped: u64,
    refreshed: u64,
    refresh_failed: u64,
    first_errors: Vec<String>,
}

struct World {
    args: Args,
    host: String,
    socks: Vec<Rc<UdpSocket>>,
    ports: Vec<u16>,
    /// Client transactions waiting for a final response: (Call-ID, CSeq) -> waiter.
    waiting: HashMap<(String, u32), oneshot::Sender<Msg>>,
    subs: HashMap<String, SubInfo>,
    /// Per key (phone index): its watchers' count and its changes waiting for them.
    watchers: Vec<usize>,
    events: Vec<Vec<Event>>,
    /// Per phone: Call-ID -> the call it is rung for.
    rung: Vec<HashMap<String, Rung>>,
    /// (caller number, callee number) -> caller's Call-ID.
    a_leg: HashMap<(String, String), String>,
    busy: Vec<bool>,
    measuring: bool,
    stats: Stats,
    seq: u64,
}

type W = Rc<RefCell<World>>;

impl World {
    fn number(&self, i: usize) -> String {
        (self.args.base + i as u64).to_string()
    }

    fn index(&self, number: &str) -> Option<usize> {
        let n: u64 = number.parse().ok()?;
        let i = usize::try_from(n.checked_sub(self.args.base)?).ok()?;
        (i < self.args.phones).then_some(i)
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn branch(&mut self) -> String {
        format!("z9hG4bK-{:x}-{:x}", self.next(), rand::random::<u32>())
    }

    fn send(&self, phone: usize, text: &str) {
        // UDP on loopback: a full buffer drops the datagram like a network would.
        let _ = self.socks[phone].try_send_to(text.as_bytes(), self.args.server);
    }

    fn error(&mut self, e: String) {
        if self.stats.first_errors.len() < 10 {
            self.stats.first_errors.push(e);
        }
    }

    /// Key `key` (phone index) changed to `rank` in call `call_id` now.
    fn change(&mut self, key: usize, call_id: &str, rank: u8) {
        if !self.measuring || self.watchers[key] == 0 {
            return;
        }
        let n = self.watchers[key];
        self.stats.expected += n as u64;
        self.events[key].push(Event {
            call_id: call_id.to_string(),
            rank,
            at: Instant::now(),
            seen: vec![false; n],
            left: n,
        });
    }

    fn on_notify(&mut self, phone: usize, m: &Msg) {
        let t = Instant::now();
        let ok = response(m, 200, "OK", None, "", "");
        self.send(phone, &ok);
        let Some(sub) = self.subs.get_mut(&m.call_id) else {
            self.stats.other_notifies += 1;
            return;
        };
        let cseq = m.cseq_num();
        if cseq <= sub.last_cseq && sub.last_cseq != 0 {
            self.stats.retransmitted += 1;
            return;
        }
        sub.last_cseq = cseq;
        if sub.to_tag.is_empty()
            && let Some(tag) = tag_of(&m.from)
        {
            sub.to_tag = tag.to_string();
        }
        let (key, slot) = (sub.key, sub.slot);
        if !self.measuring {
            return;
        }
        self.stats.notifies += 1;
        let shown = dialogs(&m.body);
        let evs = &mut self.events[key];
        let mut delays = Vec::new();
        // Calls whose `terminated` this NOTIFY delivers (their skipped earlier changes too).
        let mut ended: Vec<String> = Vec::new();
        for ev in evs.iter_mut() {
            if ev.at > t || ev.seen.get(slot).copied().unwrap_or(true) {
                continue;
            }
            let now_rank = shown
                .iter()
                .filter(|(c, _)| *c == ev.call_id)
                .map(|(_, r)| *r)
                .max();
            let hit = match now_rank {
                Some(r) => r >= ev.rank,
                None => ev.rank == TERMINATED,
            };
            if hit {
                if ev.rank == TERMINATED || now_rank == Some(TERMINATED) {
                    ended.push(ev.call_id.clone());
                }
                ev.seen[slot] = true;
                ev.left -= 1;
                delays.push(t.duration_since(ev.at));
            }
        }
        for ev in evs.iter_mut() {
            if ended.contains(&ev.call_id) && ev.at <= t && !ev.seen[slot] {
                ev.seen[slot] = true;
                ev.left -= 1;
                delays.push(t.duration_since(ev.at));
            }
        }
        evs.retain(|e| e.left > 0);
        self.stats.delivered += delays.len() as u64;
        for d in delays {
            if self.stats.delays_us.len() < MAX_SAMPLES {
                self.stats
                    .delays_us
                    .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
            }
        }
    }

    /// Changes older than [`EVENT_TTL`] (or all, at the end) are counted lost for the watchers
    /// that never saw them.
    fn expire_events(&mut self, all: bool) {
        let now = Instant::now();
        let mut lost = 0;
        for evs in &mut self.events {
            evs.retain(|e| {
                let gone = all || now.duration_since(e.at) > EVENT_TTL;
                if gone {
                    lost += e.left as u64;
                }
                !gone
            });
        }
        self.stats.lost += lost;
    }

    /// An INVITE, ACK, BYE or CANCEL at a phone that is being called.
    fn on_callee_request(&mut self, phone: usize, m: Msg) {
        match m.method.as_str() {
            "INVITE" => {
                if let Some(r) = self.rung[phone].get(&m.call_id) {
                    // A retransmission: the last answer again.
                    if let Some(last) = r.last.clone() {
                        self.send(phone, &last);
                    }
                    return;
                }
                let tag = format!("k{:x}", self.next());
                let contact = format!(
                    "Contact: <sip:{}@127.0.0.1:{}>\r\n",
                    self.number(phone),
                    self.ports[phone]
                );
                let ringing = response(&m, 180, "Ringing", Some(&tag), &contact, "");
                let caller = user_of(&m.from).to_string();
                let a_cid = self
                    .a_leg
                    .get(&(caller.clone(), self.number(phone)))
                    .cloned()
                    .unwrap_or_else(|| m.call_id.clone());
                self.send(phone, &ringing);
                self.change(phone, &m.call_id, EARLY);
                if let Some(ci) = self.index(&caller) {
                    self.change(ci, &a_cid, EARLY);
                }
                self.rung[phone].insert(
                    m.call_id.clone(),
                    Rung {
                        invite: m,
                        tag,
                        last: Some(ringing),
                        acked: false,
                    },
                );
            }
            "ACK" => {
                if let Some(r) = self.rung[phone].get_mut(&m.call_id) {
                    r.acked = true;
                }
            }
            "BYE" | "CANCEL" => {
                let ok = response(&m, 200, "OK", None, "", "");
                self.send(phone, &ok);
                if let Some(r) = self.rung[phone].remove(&m.call_id)
                    && m.method == "CANCEL"
                {
                    let t = response(&r.invite, 487, "Request Terminated", Some(&r.tag), "", "");
                    self.send(phone, &t);
                }
            }
            "OPTIONS" => {
                let ok = response(&m, 200, "OK", None, "", "");
                self.send(phone, &ok);
            }
            _ => {}
        }
    }

    /// The callee answers (after the ring time): 200 with SDP, retransmitted until ACK.
    fn answer(&mut self, phone: usize, call_id: &str) -> Option<String> {
        let number = self.number(phone);
        let port = self.ports[phone];
        let r = self.rung[phone].get_mut(call_id)?;
        let sdp = format!(
            "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            20_000 + (phone % 10_000) * 2
        );
        let extra = format!(
            "Contact: <sip:{number}@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\n"
        );
        let ok = response(&r.invite, 200, "OK", Some(&r.tag.clone()), &extra, &sdp);
        r.last = Some(ok.clone());
        let caller = user_of(&r.invite.from).to_string();
        self.send(phone, &ok);
        let a_cid = self
            .a_leg
            .get(&(caller.clone(), number))
            .cloned()
            .unwrap_or_else(|| call_id.to_string());
        self.change(phone, call_id, CONFIRMED);
        if let Some(ci) = self.index(&caller) {
            self.change(ci, &a_cid, CONFIRMED);
        }
        Some(ok)
    }
}

/// Sends `text(cseq, branch)` from `phone` until a final response (retransmitted every
/// 500 ms, at most `timeout`).
async fn request(
    w: &W,
    phone: usize,
    call_id: &str,
    cseq: u32,
    text: &str,
    timeout: Duration,
) -> Result<Msg, String> {
    let (tx, mut rx) = oneshot::channel();
    w.borrow_mut()
        .waiting
        .insert((call_id.to_string(), cseq), tx);
    let end = Instant::now() + timeout;
    let result = loop {
        w.borrow().send(phone, text);
        match tokio::time::timeout(Duration::from_millis(500), &mut rx).await {
            Ok(Ok(m)) => break Ok(m),
            Ok(Err(_)) => break Err("waiter dropped".to_string()),
            Err(_) if Instant::now() >= end => {
                break Err(format!("no answer to {call_id} CSeq {cseq}"));
            }
            Err(_) => continue,
        }
    };
    w.borrow_mut().waiting.remove(&(call_id.to_string(), cseq));
    result
}

/// A request that may be challenged: sent once, and again with credentials on 401/407.
async fn authed(
    w: &W,
    phone: usize,
    call_id: &str,
    (method, uri): (&str, &str),
    build: &dyn Fn(u32, &str, &str) -> String,
    timeout: Duration,
) -> Result<Msg, String> {
    let branch = w.borrow_mut().branch();
    let first = build(1, &branch, "");
    let r = request(w, phone, call_id, 1, &first, timeout).await?;
    if r.status != 401 && r.status != 407 {
        return Ok(r);
    }
    if method == "INVITE" {
        // The ACK of a non-2xx final response belongs to the INVITE's transaction.
        let ack = format!(
            "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch={branch};rport\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            w.borrow().ports[phone],
            r.from,
            r.to
        );
        w.borrow().send(phone, &ack);
    }
    let user = w.borrow().number(phone);
    let cnonce = rand::random::<u64>();
    let creds =
        digest(&r.auth, &user, method, uri, cnonce).ok_or("challenge without realm/nonce")?;
    let hdr = if r.status == 407 {
        "Proxy-Authorization"
    } else {
        "Authorization"
    };
    let branch = w.borrow_mut().branch();
    let second = build(2, &branch, &format!("{hdr}: {creds}\r\n"));
    request(w, phone, call_id, 2, &second, timeout).await
}

async fn register(w: W, phone: usize) -> Result<(), String> {
    let (user, port, host) = {
        let b = w.borrow();
        (b.number(phone), b.ports[phone], b.host.clone())
    };
    let call_id = format!("reg-{user}-{:x}", rand::random::<u32>());
    let uri = format!("sip:{host}");
    let build = |cseq: u32, branch: &str, auth: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\nFrom: <sip:{user}@{host}>;tag=r{user}\r\nTo: <sip:{user}@{host}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\nExpires: 3600\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    let r = authed(
        &w,
        phone,
        &call_id,
        ("REGISTER", &uri),
        &build,
        Duration::from_secs(20),
    )
    .await?;
    if r.status != 200 {
        return Err(format!("{user} REGISTER answered {}", r.status));
    }
    Ok(())
}

fn subscribe_text(w: &World, call_id: &str, cseq: u32, branch: &str, auth: &str) -> Option<String> {
    let s = w.subs.get(call_id)?;
    let (user, key) = (w.number(s.phone), w.number(s.key));
    let port = w.ports[s.phone];
    let host = &w.host;
    let to_tag = if s.to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={}", s.to_tag)
    };
    Some(format!(
        "SUBSCRIBE sip:{key}@{host} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\nFrom: <sip:{user}@{host}>;tag={}\r\nTo: <sip:{key}@{host}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\nEvent: dialog\r\nAccept: application/dialog-info+xml\r\nExpires: {}\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n",
        s.from_tag, w.args.sub_expires
    ))
}

async fn subscribe(w: W, phone: usize, key: usize, slot: usize) -> Result<(), String> {
    let (call_id, uri) = {
        let mut b = w.borrow_mut();
        let call_id = format!(
            "sub-{}-{}-{:x}",
            b.number(phone),
            b.number(key),
            rand::random::<u32>()
        );
        let uri = format!("sip:{}@{}", b.number(key), b.host);
        let from_tag = format!("w{:x}", b.next());
        b.subs.insert(
            call_id.clone(),
            SubInfo {
                key,
                slot,
                phone,
                to_tag: String::new(),
                from_tag,
                cseq: 2,
                refresh_at: None,
                last_cseq: 0,
            },
        );
        (call_id, uri)
    };
    let wc = w.clone();
    let cid = call_id.clone();
    let build = move |cseq: u32, branch: &str, auth: &str| {
        subscribe_text(&wc.borrow(), &cid, cseq, branch, auth).unwrap_or_default()
    };
    let r = authed(
        &w,
        phone,
        &call_id,
        ("SUBSCRIBE", &uri),
        &build,
        Duration::from_secs(30),
    )
    .await?;
    if r.status != 200 {
        return Err(format!("SUBSCRIBE {uri} answered {}", r.status));
    }
    let mut b = w.borrow_mut();
    let granted = r.expires.unwrap_or(b.args.sub_expires);
    if let Some(s) = b.subs.get_mut(&call_id) {
        if let Some(t) = tag_of(&r.to) {
            s.to_tag = t.to_string();
        }
        s.refresh_at = Some(Instant::now() + Duration::from_secs(u64::from(granted) * 4 / 5));
    }
    b.watchers[key] = b.watchers[key].max(slot + 1);
    Ok(())
}

/// Refreshes the subscriptions due (in-dialog SUBSCRIBE, no credentials needed in a dialog).
async fn refresh(w: W, call_id: String) {
    let (phone, text, cseq) = {
        let mut b = w.borrow_mut();
        let branch = b.branch();
        let Some(s) = b.subs.get_mut(&call_id) else {
            return;
        };
        s.cseq += 1;
        s.refresh_at = None;
        let (phone, cseq) = (s.phone, s.cseq);
        let Some(text) = subscribe_text(&b, &call_id, cseq, &branch, "") else {
            return;
        };
        (phone, text, cseq)
    };
    let r = request(&w, phone, &call_id, cseq, &text, Duration::from_secs(10)).await;
    let mut b = w.borrow_mut();
    match r {
        Ok(m) if m.status == 200 => {
            b.stats.refreshed += 1;
            let granted = m.expires.unwrap_or(b.args.sub_expires);
            if let Some(s) = b.subs.get_mut(&call_id) {
                s.refresh_at =
                    Some(Instant::now() + Duration::from_secs(u64::from(granted) * 4 / 5));
            }
        }
        Ok(m) => {
            b.stats.refresh_failed += 1;
            b.error(format!("refresh {call_id}: {}", m.status));
        }
        Err(e) => {
            b.stats.refresh_failed += 1;
            b.error(format!("refresh: {e}"));
        }
    }
}

async fn call(w: W, caller: usize, callee: usize) -> Result<(), String> {
    let (a, b, port, host, call_id, tag) = {
        let mut x = w.borrow_mut();
        let n = x.next();
        let (a, b) = (x.number(caller), x.number(callee));
        let call_id = format!("call-{a}-{n:x}-{:x}", rand::random::<u32>());
        x.a_leg.insert((a.clone(), b.clone()), call_id.clone());
        (
            a,
            b,
            x.ports[caller],
            x.host.clone(),
            call_id,
            format!("c{n:x}"),
        )
    };
    let uri = format!("sip:{b}@{host}");
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        20_000 + (caller % 10_000) * 2
    );
    let build = |cseq: u32, branch: &str, auth: &str| {
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\nFrom: <sip:{a}@{host}>;tag={tag}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{a}@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    };
    let result = async {
        let r = authed(&w, caller, &call_id, ("INVITE", &uri), &build, Duration::from_secs(30)).await?;
        if r.status != 200 {
            return Err(format!("INVITE {a}->{b} answered {}", r.status));
        }
        let target = if r.contact.is_empty() {
            uri.clone()
        } else {
            uri_of(&r.contact).to_string()
        };
        // The route set: the Record-Route values in reverse (one proxy at most here).
        let route: String = r
            .rrs
            .iter()
            .rev()
            .map(|x| format!("Route: {x}\r\n"))
            .collect();
        let to = r.to.clone();
        let in_dialog = |method: &str, cseq: u32, branch: &str| {
            format!(
                "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n{route}From: <sip:{a}@{host}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let ack_cseq = r.cseq_num();
        let branch = w.borrow_mut().branch();
        w.borrow().send(caller, &in_dialog("ACK", ack_cseq, &branch));
        let hold = w.borrow().args.hold;
        tokio::time::sleep(hold).await;
        let bye_cseq = ack_cseq + 1;
        let branch = w.borrow_mut().branch();
        let bye = in_dialog("BYE", bye_cseq, &branch);
        {
            let mut x = w.borrow_mut();
            x.change(caller, &call_id, TERMINATED);
            // The callee's leg: its own Call-ID behind a B2BUA, the same behind a proxy.
            let fork = x.rung[callee]
                .iter()
                .find(|(_, r)| user_of(&r.invite.from) == a)
                .map(|(c, _)| c.clone());
            if let Some(f) = fork {
                x.change(callee, &f, TERMINATED);
            }
        }
        let r = request(&w, caller, &call_id, bye_cseq, &bye, Duration::from_secs(10)).await?;
        if r.status != 200 {
            return Err(format!("BYE answered {}", r.status));
        }
        Ok(())
    }
    .await;
    let mut x = w.borrow_mut();
    x.a_leg.remove(&(a.clone(), b.clone()));
    let stale: Vec<String> = x.rung[callee]
        .iter()
        .filter(|(_, r)| user_of(&r.invite.from) == a)
        .map(|(c, _)| c.clone())
        .collect();
    for c in stale {
        x.rung[callee].remove(&c);
    }
    x.busy[caller] = false;
    x.busy[callee] = false;
    result
}

/// One phone's receive loop (ends with the runtime).
async fn receive(w: W, phone: usize, sock: Rc<UdpSocket>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, _)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let Some(m) = parse(&buf[..n]) else {
            continue;
        };
        if m.method.is_empty() {
            if m.status < 200 {
                continue;
            }
            let key = (m.call_id.clone(), m.cseq_num());
            let waiter = w.borrow_mut().waiting.remove(&key);
            match waiter {
                Some(tx) => {
                    let _ = tx.send(m);
                }
                None if m.status == 200 && m.cseq_method() == "INVITE" => {
                    // A retransmitted 200 (our ACK crossed it): nothing to do, the ACK went.
                }
                None => {}
            }
            continue;
        }
        if m.method == "NOTIFY" {
            w.borrow_mut().on_notify(phone, &m);
            continue;
        }
        let is_new_invite =
            m.method == "INVITE" && !w.borrow().rung[phone].contains_key(&m.call_id);
        let cid = m.call_id.clone();
        w.borrow_mut().on_callee_request(phone, m);
        if is_new_invite {
            let w2 = w.clone();
            tokio::task::spawn_local(async move {
                let ring = w2.borrow().args.ring;
                tokio::time::sleep(ring).await;
                let Some(ok) = w2.borrow_mut().answer(phone, &cid) else {
                    return;
                };
                // Retransmit the 200 until the ACK (at most 6 times, 0.5 s apart).
                for _ in 0..6 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let b = w2.borrow();
                    match b.rung[phone].get(&cid) {
                        Some(r) if !r.acked => b.send(phone, &ok),
                        _ => break,
                    }
                }
            });
        }
    }
}

/// Runs `jobs` at most `parallel` at a time; the errors (the first few kept).
async fn bounded<F, Fut>(w: &W, jobs: Vec<F>, parallel: usize) -> usize
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut handles = Vec::with_capacity(jobs.len());
    for job in jobs {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let fut = job();
        handles.push(tokio::task::spawn_local(async move {
            let r = fut.await;
            drop(permit);
            r
        }));
    }
    let mut failed = 0;
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                w.borrow_mut().error(e);
            }
            Err(e) => {
                failed += 1;
                w.borrow_mut().error(e.to_string());
            }
        }
    }
    failed
}

fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn own_cpu_s() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let r = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) != 0 {
            return 0.0;
        }
        u.assume_init()
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

fn pct(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    Some(f64::from(sorted[i]) / 1000.0)
}

fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

async fn run(args: Args) -> Result<(), String> {
    let mut socks = Vec::with_capacity(args.phones);
    let mut ports = Vec::with_capacity(args.phones);
    for _ in 0..args.phones {
        let s = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let sr = socket2::SockRef::from(&s);
        let _ = sr.set_recv_buffer_size(1 << 20);
        let _ = sr.set_send_buffer_size(1 << 20);
        ports.push(s.local_addr().map_err(|e| e.to_string())?.port());
        socks.push(Rc::new(s));
    }
    let host = args.server.to_string();
    let n = args.phones;
    let w: W = Rc::new(RefCell::new(World {
        args: args.clone(),
        host,
        socks: socks.clone(),
        ports,
        waiting: HashMap::new(),
        subs: HashMap::new(),
        watchers: vec![0; n],
        events: (0..n).map(|_| Vec::new()).collect(),
        rung: (0..n).map(|_| HashMap::new()).collect(),
        a_leg: HashMap::new(),
        busy: vec![false; n],
        measuring: false,
        stats: Stats::default(),
        seq: 0,
    }));
    for (i, s) in socks.into_iter().enumerate() {
        tokio::task::spawn_local(receive(w.clone(), i, s));
    }
    let t0 = Instant::now();
    let regs: Vec<_> = (0..n)
        .map(|i| {
            let w = w.clone();
            move || register(w, i)
        })
        .collect();
    let reg_failed = bounded(&w, regs, args.parallel).await;
    let reg_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    // Phone i watches i+1 ..= i+keys: key j's watchers are j-1, j-2, ... (slot = distance - 1).
    let mut jobs = Vec::with_capacity(n * args.keys);
    for i in 0..n {
        for d in 1..=args.keys {
            let key = (i + d) % n;
            let w = w.clone();
            jobs.push(move || subscribe(w, i, key, d - 1));
        }
    }
    let sub_failed = bounded(&w, jobs, args.parallel).await;
    let sub_s = t1.elapsed().as_secs_f64();
    let subs_ok = n * args.keys - sub_failed;
    // Let the initial NOTIFYs (and the server's writes of the subscriptions) settle.
    tokio::time::sleep(args.settle).await;
    emit(serde_json::json!({
        "phase": "ready", "phones": n, "keys": args.keys, "registered": n - reg_failed,
        "register_s": reg_s, "subscriptions": subs_ok, "subscribe_failed": sub_failed,
        "subscribe_s": sub_s, "subscribe_per_s": subs_ok as f64 / sub_s.max(1e-9),
        "errors": w.borrow().stats.first_errors.clone(),
    }));
    if args.wait {
        // The driver measures the server, then says go (any line, or end of input).
        let (tx, rx) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            let _ = tx.send(());
        });
        let _ = rx.await;
    }
    w.borrow_mut().measuring = true;
    let cpu0 = own_cpu_s();
    let start = Instant::now();
    let total = (args.cps * args.seconds).round() as u64;
    let mut calls = Vec::new();
    let mut started = 0u64;
    let mut last_refresh_scan = Instant::now();
    let mut last_expire = Instant::now();
    // Bounded: `total` calls, and the wall time of the run plus a second.
    while started < total && start.elapsed().as_secs_f64() < args.seconds + 1.0 {
        let due = start + Duration::from_secs_f64(started as f64 / args.cps);
        tokio::time::sleep_until(due.into()).await;
        started += 1;
        let pair = {
            let mut b = w.borrow_mut();
            let idle: Vec<usize> = (0..n).filter(|i| !b.busy[*i]).collect();
            if idle.len() < 2 {
                b.stats.calls_skipped += 1;
                None
            } else {
                let x = idle[rand::random::<usize>() % idle.len()];
                let mut y = idle[rand::random::<usize>() % idle.len()];
                while y == x {
                    y = idle[rand::random::<usize>() % idle.len()];
                }
                b.busy[x] = true;
                b.busy[y] = true;
                b.stats.calls_started += 1;
                Some((x, y))
            }
        };
        if let Some((x, y)) = pair {
            let w2 = w.clone();
            calls.push(tokio::task::spawn_local(async move {
                let r = call(w2.clone(), x, y).await;
                let mut b = w2.borrow_mut();
                match r {
                    Ok(()) => b.stats.calls_done += 1,
                    Err(e) => {
                        b.stats.calls_failed += 1;
                        b.error(e);
                    }
                }
            }));
        }
        if last_refresh_scan.elapsed() >= Duration::from_secs(1) {
            last_refresh_scan = Instant::now();
            let now = Instant::now();
            let due: Vec<String> = w
                .borrow()
                .subs
                .iter()
                .filter(|(_, s)| s.refresh_at.is_some_and(|t| t <= now))
                .map(|(c, _)| c.clone())
                .collect();
            for c in due {
                tokio::task::spawn_local(refresh(w.clone(), c));
            }
        }
        if last_expire.elapsed() >= Duration::from_secs(1) {
            last_expire = Instant::now();
            w.borrow_mut().expire_events(false);
        }
    }
    let load_s = start.elapsed().as_secs_f64();
    for c in calls {
        let _ = tokio::time::timeout(Duration::from_secs(45), c).await;
    }
    tokio::time::sleep(args.drain).await;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = own_cpu_s() - cpu0;
    let mut b = w.borrow_mut();
    b.measuring = false;
    b.expire_events(true);
    let mut d = std::mem::take(&mut b.stats.delays_us);
    d.sort_unstable();
    let s = &b.stats;
    emit(serde_json::json!({
        "phase": "done", "load_s": load_s, "elapsed_s": elapsed,
        "calls_started": s.calls_started, "calls_done": s.calls_done,
        "calls_failed": s.calls_failed, "calls_skipped": s.calls_skipped,
        "notifies": s.notifies, "notify_retransmissions": s.retransmitted,
        "notifies_per_s": s.notifies as f64 / elapsed,
        "expected_deliveries": s.expected, "delivered": s.delivered, "lost": s.lost,
        "p50_ms": pct(&d, 0.50), "p99_ms": pct(&d, 0.99), "p999_ms": pct(&d, 0.999),
        "max_ms": d.last().map(|x| f64::from(*x) / 1000.0),
        "within_100ms": if d.is_empty() { None } else {
            Some(d.partition_point(|x| *x <= 100_000) as f64 / d.len() as f64) },
        "refreshed": s.refreshed, "refresh_failed": s.refresh_failed,
        "generator_cpu_s": cpu, "errors": s.first_errors.clone(),
    }));
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    raise_nofile();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    if let Err(e) = local.block_on(&rt, run(args)) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialogs_are_read_from_denwa_and_kamailio_bodies() {
        let denwa = "<dialog-info><dialog id=\"7-1\" call-id=\"c1\" direction=\"recipient\"><state>early</state></dialog><dialog id=\"8-0\" call-id=\"c2\"><state>terminated</state></dialog></dialog-info>";
        assert_eq!(dialogs(denwa), vec![("c1", EARLY), ("c2", TERMINATED)]);
        let kam = "<dialog id=\"x\" call-id=\"c3\" local-tag=\"a\" direction=\"initiator\">\n<state event=\"x\">Confirmed</state></dialog>";
        assert_eq!(dialogs(kam), vec![("c3", CONFIRMED)]);
    }

    #[test]
    fn digest_answers_a_qop_challenge() {
        let ch = "Digest realm=\"denwa\", nonce=\"abc\", qop=\"auth\", opaque=\"o\"";
        let d = digest(ch, "300001", "SUBSCRIBE", "sip:300002@h", 1).expect("digest");
        assert!(
            d.contains("realm=\"denwa\"") && d.contains("qop=auth") && d.contains("opaque=\"o\"")
        );
        assert_eq!(password("3001"), "pw-daab-blf");
    }

    #[test]
    fn a_response_copies_the_request_and_adds_the_tag() {
        let m = parse(b"INVITE sip:1@h SIP/2.0\r\nVia: a\r\nVia: b\r\nFrom: <sip:2@h>;tag=x\r\nTo: <sip:1@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n")
            .expect("parsed");
        let r = response(&m, 180, "Ringing", Some("t"), "", "");
        assert!(r.contains("Via: a\r\nVia: b\r\n") && r.contains("To: <sip:1@h>;tag=t"));
        assert_eq!(user_of("\"X\" <sip:1001@h>;tag=a"), "1001");
    }
}
