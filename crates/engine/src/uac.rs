//! `uac`: the client side of SIP trunks, sans-IO — registering to a carrier ([`RegClient`]),
//! checking a trunk with OPTIONS ([`Pinger`], Kamailio dispatcher's `ds_ping_interval`, Asterisk's
//! qualify) and answering 401/407 challenges on our own requests ([`ClientAuth`]).
//!
//! Where it sits: the engine's `dispatcher` owns one `RegClient` and one `Pinger` per trunk, sends
//! what they return through a client transaction, feeds them the final responses, the transaction
//! failures and the timer. Nothing here reads a clock, a socket or a random source: `now`, the Via
//! (with its fresh branch), the `cnonce` of digest answers, the Call-ID and tags and a jitter seed
//! all come from the caller. Every machine is bounded: a fixed number of fields, at most
//! [`MAX_REALMS`] remembered challenges, reason phrases cut to [`MAX_REASON`] bytes.
//!
//! Timing policy (figures are the `pub const`s below):
//! - Refresh: a binding granted for `g` s is refreshed `max(g/2, g − 60)` s after the REGISTER
//!   was sent, never later than `g − 5` s and never sooner than 1 s (600 s → 540 s, 120 s → 60 s,
//!   3600 s → 3540 s). A grant above one day is taken as one day.
//! - Failure backoff (RFC 5626 §4.5 figures): the `n`th consecutive failure waits
//!   `min(30 s · 2^(n−1), 1800 s)` scaled by a deterministic jitter in [50 %, 100 %] derived from
//!   the caller's seed; a success resets `n`. So 15–30 s, 30–60 s, … up to 15–30 min.
//! - `Retry-After` on 480, 486, 5xx, 600 and 603 replaces the backoff, clamped to [5 s, 1800 s].
//! - 423: the REGISTER is re-sent at once with `Min-Expires` (kept for later refreshes) at most
//!   twice in a row, then it is a failure with backoff.
//! - 401/407: answered at once; a realm is answered at most twice per REGISTER, and a new
//!   challenge with the nonce we just answered and no `stale=true` is "wrong credentials".
//! - A request with no final answer after [`PENDING_GUARD`] (40 s, beyond Timer F's 32 s) counts
//!   as a timeout, in case the transaction failure never reaches us.
//! - OPTIONS: every 30 s while up, every 10 s while unknown, down or after a failure; down after 2
//!   consecutive failures (timeout, 408, 503); any other final answer means up.

use std::time::{Duration, Instant};

use serde::Serialize;
use sip::auth::{
    Challenge, ChallengeValue, DigestClient, DigestRequest, Login, answer_challenge,
    parse_challenges,
};
use sip::{Contact, HeaderName, Method, Request, Response, Uri, Via};

/// Default interval asked for in REGISTER (seconds).
pub const DEFAULT_EXPIRES: u32 = 600;
/// Longest binding we plan for (one day); a longer grant is treated as this.
pub const MAX_EXPIRES: u32 = 86_400;
/// A refresh goes out at least this long before the binding expires...
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// ...and never later than this before it.
pub const REFRESH_MIN_MARGIN: Duration = Duration::from_secs(5);
/// First retry delay after a failure (before jitter).
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// Longest retry delay, with or without `Retry-After`.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1800);
/// Shortest delay a `Retry-After` may ask for (a carrier saying `Retry-After: 0` forever must not
/// make a tight loop).
pub const RETRY_AFTER_MIN: Duration = Duration::from_secs(5);
/// 423 answers followed in a row before giving up.
pub const MAX_INTERVAL_RETRIES: u8 = 2;
/// A request with no final answer after this long is a timeout (Timer F is 32 s).
pub const PENDING_GUARD: Duration = Duration::from_secs(40);
/// Realms (proxy or registrar) one [`ClientAuth`] remembers.
pub const MAX_REALMS: usize = 4;
/// Answers to one realm within one request chain before the credentials count as wrong.
pub const MAX_ANSWERS: u8 = 2;
/// Bytes of a reason phrase kept for the status view.
pub const MAX_REASON: usize = 128;
/// OPTIONS interval while a trunk is up.
pub const PING_UP_INTERVAL: Duration = Duration::from_secs(30);
/// OPTIONS interval while a trunk is down, unknown, or after a failed ping.
pub const PING_DOWN_INTERVAL: Duration = Duration::from_secs(10);
/// Consecutive failed pings that mark a trunk down.
pub const PING_FAILURES_TO_DOWN: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Client digest
// ---------------------------------------------------------------------------------------------

/// A username and password for a trunk (`Debug` hides the password).
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// Authentication username (often the AOR user, not always).
    pub username: String,
    /// Password.
    pub password: String,
}

impl Account {
    /// An account from its username and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Account {
        Account {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why a challenge was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFailure {
    /// The response is not a 401 or a 407.
    NotAChallenge,
    /// No Digest challenge with an algorithm we support.
    NoUsableChallenge,
    /// The server refused our answer: challenged again with the nonce we answered (not stale),
    /// or more than [`MAX_ANSWERS`] times.
    WrongCredentials,
    /// Every realm challenged is new and all [`MAX_REALMS`] slots are answering already.
    TooManyRealms,
}

/// One challenge we answered: the nonce and its count go on across requests.
#[derive(Debug, Clone)]
struct Answered {
    proxy: bool,
    challenge: Challenge,
    nc: u32,
    /// Answers within the current request chain (0: idle, kept for its nonce count).
    answers: u8,
}

/// Answers 401/407 challenges on the requests of one account.
///
/// One request chain is a request and its re-sends after challenges; start each fresh request
/// (first REGISTER, refresh, new ping) with [`ClientAuth::new_attempt`]. Within a chain every
/// realm answered so far is answered again on each re-send, so a proxy's `Proxy-Authorization`
/// stays when the registrar's 401 follows.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    account: Account,
    answered: Vec<Answered>,
}

impl ClientAuth {
    /// A client for `account`.
    pub fn new(account: Account) -> ClientAuth {
        ClientAuth {
            account,
            answered: Vec::with_capacity(MAX_REALMS),
        }
    }

    /// A new request chain begins: challenges answered before no longer count against it.
    pub fn new_attempt(&mut self) {
        for a in &mut self.answered {
            a.answers = 0;
        }
    }

    /// Adds `Authorization` (401) or `Proxy-Authorization` (407) answering `challenge` to
    /// `request`, the re-send (new CSeq and Via already in place). Picks the strongest algorithm
    /// each realm offers, `qop=auth` when offered (with `cnonce`), echoes `opaque`.
    pub fn answer(
        &mut self,
        challenge: &Response,
        request: &mut Request,
        cnonce: &str,
    ) -> Result<(), AuthFailure> {
        let (proxy, header) = match challenge.status {
            401 => (false, HeaderName::WwwAuthenticate),
            407 => (true, HeaderName::ProxyAuthenticate),
            _ => return Err(AuthFailure::NotAChallenge),
        };
        let chosen = best_per_realm(challenge, &header);
        if chosen.is_empty() {
            return Err(AuthFailure::NoUsableChallenge);
        }
        for c in &chosen {
            if let Some(a) = self.find(proxy, &c.realm)
                && a.answers > 0
                && ((!c.stale && c.nonce == a.challenge.nonce) || a.answers >= MAX_ANSWERS)
            {
                return Err(AuthFailure::WrongCredentials);
            }
        }
        // Each success answers at least one realm once more, so a chain ends after at most
        // MAX_REALMS × MAX_ANSWERS re-sends whatever the server invents.
        let mut stored = false;
        for c in chosen {
            stored |= self.remember(proxy, c);
        }
        if !stored {
            return Err(AuthFailure::TooManyRealms);
        }
        self.write(request, cnonce);
        Ok(())
    }

    fn find(&self, proxy: bool, realm: &str) -> Option<&Answered> {
        self.answered
            .iter()
            .find(|a| a.proxy == proxy && a.challenge.realm == realm)
    }

    /// Stores `c` as answered in this chain; false when there was no room for it.
    fn remember(&mut self, proxy: bool, c: Challenge) -> bool {
        let pos = self
            .answered
            .iter()
            .position(|a| a.proxy == proxy && a.challenge.realm == c.realm);
        if let Some(i) = pos {
            let a = &mut self.answered[i];
            if a.challenge.nonce != c.nonce {
                a.nc = 0;
            }
            a.challenge = c;
            a.answers = a.answers.saturating_add(1);
            return true;
        }
        let entry = Answered {
            proxy,
            challenge: c,
            nc: 0,
            answers: 1,
        };
        if self.answered.len() < MAX_REALMS {
            self.answered.push(entry);
        } else if let Some(idle) = self.answered.iter_mut().find(|a| a.answers == 0) {
            *idle = entry;
        } else {
            return false; // every slot is answering in this chain
        }
        true
    }

    /// Replaces the request's credentials by one answer per realm of the current chain.
    fn write(&mut self, request: &mut Request, cnonce: &str) {
        request.headers.remove(&HeaderName::Authorization);
        request.headers.remove(&HeaderName::ProxyAuthorization);
        let uri = request.uri.to_string();
        let login = Login {
            username: &self.account.username,
            password: &self.account.password,
        };
        for a in self.answered.iter_mut().filter(|a| a.answers > 0) {
            if a.challenge.chosen_qop().is_some() {
                a.nc = a.nc.wrapping_add(1);
            }
            let digest = DigestRequest {
                method: request.method.as_str(),
                uri: &uri,
                body: &request.body,
            };
            let creds = answer_challenge(&a.challenge, &login, &digest, a.nc, cnonce);
            let name = if a.proxy {
                HeaderName::ProxyAuthorization
            } else {
                HeaderName::Authorization
            };
            request.headers.push(name, creds.to_string());
        }
    }
}

/// The Digest challenges of `header`, the strongest per realm, in order of first appearance, at
/// most [`MAX_REALMS`]. Malformed values are skipped.
fn best_per_realm(resp: &Response, header: &HeaderName) -> Vec<Challenge> {
    let offered: Vec<Challenge> = resp
        .headers
        .get_all(header)
        .filter_map(|v| parse_challenges(v.as_str()).ok())
        .flatten()
        .filter_map(|c| match c {
            ChallengeValue::Digest(c) => Some(c),
            ChallengeValue::Other(_) => None,
        })
        .collect();
    let mut chosen: Vec<Challenge> = Vec::new();
    for c in &offered {
        if chosen.len() == MAX_REALMS {
            break;
        }
        if chosen.iter().any(|x| x.realm == c.realm) {
            continue;
        }
        let same: Vec<Challenge> = offered
            .iter()
            .filter(|o| o.realm == c.realm)
            .cloned()
            .collect();
        if let Some(best) = DigestClient::select(&same) {
            chosen.push(best.clone());
        }
    }
    chosen
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// The headers every request we originate starts with, in the order b2bua writes an INVITE.
fn new_request(
    method: Method,
    uri: Uri,
    via: &Via,
    from: String,
    to: String,
    call_id: &str,
    cseq: u32,
) -> Request {
    let cseq = format!("{cseq} {method}");
    let mut r = Request::new(method, uri);
    r.headers.push(HeaderName::Via, via.to_string());
    r.headers.push(HeaderName::MaxForwards, "70");
    r.headers.push(HeaderName::From, from);
    r.headers.push(HeaderName::To, to);
    r.headers.push(HeaderName::CallId, call_id);
    r.headers.push(HeaderName::CSeq, cseq);
    r
}

/// Does `resp` answer the request with this Call-ID, method and (if given) CSeq number?
fn answers(resp: &Response, call_id: &str, method: &Method, seq: Option<u32>) -> bool {
    resp.headers.call_id() == Some(call_id)
        && resp
            .headers
            .cseq()
            .is_some_and(|c| c.method == *method && seq.is_none_or(|s| s == c.seq))
}

/// The last status seen, with its reason phrase cut to [`MAX_REASON`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastAnswer {
    /// Status code (408 for a timeout or transport failure).
    pub code: u16,
    /// Reason phrase as the peer wrote it.
    pub reason: String,
}

impl LastAnswer {
    fn of(resp: &Response) -> LastAnswer {
        LastAnswer::new(resp.status, &resp.reason)
    }

    fn timeout() -> LastAnswer {
        LastAnswer::new(408, "Request Timeout")
    }

    fn new(code: u16, reason: &str) -> LastAnswer {
        let mut end = reason.len().min(MAX_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        LastAnswer {
            code,
            reason: reason[..end].to_owned(),
        }
    }
}

/// Whole seconds from `now` until `t`, rounded up (0 when past): "next retry in 27 s".
fn secs_until(t: Instant, now: Instant) -> u64 {
    let d = t.saturating_duration_since(now);
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// When to refresh a binding granted for `granted`: `max(g/2, g − 60 s)`, at most `g − 5 s`, at
/// least 1 s.
pub fn refresh_after(granted: Duration) -> Duration {
    let t = (granted / 2).max(granted.saturating_sub(REFRESH_MARGIN));
    t.min(granted.saturating_sub(REFRESH_MIN_MARGIN))
        .max(Duration::from_secs(1))
}

/// Delay before retry number `failures` (1 = first failure): `min(30 s · 2^(n−1), 1800 s)` scaled
/// into [50 %, 100 %] by a jitter derived from `seed` and `failures` alone (deterministic).
pub fn backoff(failures: u32, seed: u64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let full = BACKOFF_BASE
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX);
    let ms = u64::try_from(full.as_millis()).unwrap_or(u64::MAX);
    let half = ms / 2;
    let jitter = splitmix64(seed ^ u64::from(failures)) % (half + 1);
    Duration::from_millis(half + jitter)
}

/// SplitMix64 finaliser: a well-mixed number from a seed, no state.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `Retry-After` seconds (RFC 3261 §20.33: `delta-seconds [comment] *(;param)`).
fn retry_after(resp: &Response) -> Option<u32> {
    let v = resp.headers.get_str(&HeaderName::RetryAfter)?.trim_start();
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    // Saturate: a 20-digit value still means "a long time".
    Some(v[..digits].parse::<u32>().unwrap_or(u32::MAX))
}

/// Statuses whose `Retry-After` we follow (temporarily unavailable, busy, server errors,
/// global busy/decline).
fn honours_retry_after(status: u16) -> bool {
    matches!(status, 480 | 486 | 500..=599 | 600 | 603)
}

// ---------------------------------------------------------------------------------------------
// Registration client
// ---------------------------------------------------------------------------------------------

/// What a trunk registration needs to know.
#[derive(Debug, Clone)]
pub struct RegConfig {
    /// Request-URI of the REGISTER, `sip:host[:port]`.
    pub registrar: Uri,
    /// Outbound proxy: where to send instead of the registrar (see [`RegClient::target`]).
    pub outbound_proxy: Option<Uri>,
    /// AOR user (From/To user).
    pub user: String,
    /// AOR domain (From/To host).
    pub domain: String,
    /// Credentials for 401/407; `None` when the carrier registers by IP.
    pub account: Option<Account>,
    /// Our Contact URI.
    pub contact: Uri,
    /// Interval asked for, seconds ([`DEFAULT_EXPIRES`]; 0 means the default, above a day is a
    /// day).
    pub expires: u32,
}

impl RegConfig {
    /// A configuration with the default interval, no account and no outbound proxy.
    pub fn new(
        registrar: Uri,
        user: impl Into<String>,
        domain: impl Into<String>,
        contact: Uri,
    ) -> RegConfig {
        RegConfig {
            registrar,
            outbound_proxy: None,
            user: user.into(),
            domain: domain.into(),
            account: None,
            contact,
            expires: DEFAULT_EXPIRES,
        }
    }
}

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegState {
    /// A binding is in place (a refresh may be on its way).
    Registered,
    /// The first REGISTER (or the one after an expired binding) is due or on its way.
    Registering,
    /// The last attempt failed; another is scheduled.
    Failing,
    /// Stopped: removed with `Expires: 0`, or never started.
    Unregistered,
}

/// Why the last registration attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegFailure {
    /// Challenged again after answering: wrong username or password.
    WrongCredentials,
    /// Challenged, but with no Digest challenge we can answer (or more realms than we keep).
    NoUsableChallenge,
    /// Challenged, and no account is configured.
    NoCredentials,
    /// 423 without a usable `Min-Expires`, or 423 again after following it.
    IntervalTooBrief,
    /// A 2xx granting no time for our contact.
    NoBinding,
    /// Refused (3xx–6xx other than the above); see the status code.
    Rejected,
    /// No answer, or the transport failed (shown as 408).
    Timeout,
}

impl From<AuthFailure> for RegFailure {
    fn from(f: AuthFailure) -> RegFailure {
        match f {
            AuthFailure::WrongCredentials => RegFailure::WrongCredentials,
            AuthFailure::NoUsableChallenge
            | AuthFailure::NotAChallenge
            | AuthFailure::TooManyRealms => RegFailure::NoUsableChallenge,
        }
    }
}

/// A registration as a status view shows it (times as seconds from the `now` given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegStatus {
    /// Where the registration stands.
    pub state: RegState,
    /// The last final answer (or 408 for a timeout).
    pub last: Option<LastAnswer>,
    /// Why the last attempt failed, while failing.
    pub failure: Option<RegFailure>,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Seconds the registrar granted in its last 2xx.
    pub granted_expires: Option<u32>,
    /// Seconds the current binding still runs (rounded up), when there is one.
    pub registered_for_secs: Option<u64>,
    /// Seconds until the next REGISTER (rounded up): refresh or retry.
    pub next_attempt_in_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    cseq: u32,
    expires: u32,
    sent: Instant,
}

/// Registration of one trunk to its carrier (RFC 3261 §10.2): one Call-ID for every refresh,
/// CSeq counting up, credentials on challenge, refresh before expiry, backoff on failure.
///
/// The caller sends each returned [`Request`] as a new client transaction to [`RegClient::target`],
/// calls [`RegClient::handle_response`] with its final response (provisional ones are ignored)
/// or [`RegClient::handle_failure`] when it times out or the transport fails, and
/// [`RegClient::handle_timeout`] at [`RegClient::poll_timeout`].
#[derive(Debug, Clone)]
pub struct RegClient {
    cfg: RegConfig,
    call_id: String,
    from_tag: String,
    seed: u64,
    cseq: u32,
    auth: Option<ClientAuth>,
    /// Interval asked for: the configured one, raised by 423.
    expires: u32,
    state: RegState,
    pending: Option<Pending>,
    /// Set while the request in flight is an `Expires: 0` removal.
    removing: bool,
    interval_retries: u8,
    next_attempt: Option<Instant>,
    registered_until: Option<Instant>,
    granted: Option<u32>,
    failures: u32,
    last: Option<LastAnswer>,
    failure: Option<RegFailure>,
}

impl RegClient {
    /// A client whose first REGISTER is due at `now`. `call_id` and `from_tag` come from the
    /// caller's RNG and stay for the client's life; `seed` drives the backoff jitter.
    pub fn new(
        cfg: RegConfig,
        call_id: impl Into<String>,
        from_tag: impl Into<String>,
        seed: u64,
        now: Instant,
    ) -> RegClient {
        let auth = cfg.account.clone().map(ClientAuth::new);
        let expires = match cfg.expires {
            0 => DEFAULT_EXPIRES,
            e => e.min(MAX_EXPIRES),
        };
        RegClient {
            cfg,
            call_id: call_id.into(),
            from_tag: from_tag.into(),
            seed,
            cseq: 0,
            auth,
            expires,
            state: RegState::Registering,
            pending: None,
            removing: false,
            interval_retries: 0,
            next_attempt: Some(now),
            registered_until: None,
            granted: None,
            failures: 0,
            last: None,
            failure: None,
        }
    }

    /// Where to send: the outbound proxy when one is set, else the registrar.
    pub fn target(&self) -> &Uri {
        self.cfg
            .outbound_proxy
            .as_ref()
            .unwrap_or(&self.cfg.registrar)
    }

    /// The configuration.
    pub fn config(&self) -> &RegConfig {
        &self.cfg
    }

    /// The Call-ID every REGISTER of this client carries.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Where the registration stands.
    pub fn state(&self) -> RegState {
        self.state
    }

    /// True while a binding granted by the registrar has not expired.
    pub fn is_registered(&self, now: Instant) -> bool {
        self.registered_until.is_some_and(|t| t > now)
    }

    /// When [`RegClient::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.pending {
            Some(p) => Some(p.sent + PENDING_GUARD),
            None => self.next_attempt,
        }
    }

    /// A REGISTER when one is due (first registration, refresh, retry). `via` is the top Via of
    /// the new transaction (fresh branch).
    #[must_use = "a returned request must be sent"]
    pub fn handle_timeout(&mut self, now: Instant, via: &Via) -> Option<Request> {
        if let Some(p) = self.pending {
            if now >= p.sent + PENDING_GUARD {
                self.handle_failure(now);
            }
            return None;
        }
        if self.next_attempt.is_none_or(|t| now < t) {
            return None;
        }
        self.next_attempt = None;
        self.interval_retries = 0;
        if !self.is_registered(now) {
            self.state = RegState::Registering;
        }
        Some(self.fresh_register(now, via, self.expires))
    }

    /// Feeds the final response to the last REGISTER sent. Returns the re-send after a 401/407
    /// (with credentials, `cnonce` used in them) or a 423 (with the larger interval); `via` is
    /// its top Via (fresh branch), unused when nothing is re-sent. Other answers, provisional
    /// responses and answers to older requests return `None`.
    #[must_use = "a returned request must be sent"]
    pub fn handle_response(
        &mut self,
        resp: &Response,
        now: Instant,
        via: &Via,
        cnonce: &str,
    ) -> Option<Request> {
        let p = self.pending?;
        if resp.is_provisional() || !answers(resp, &self.call_id, &Method::Register, Some(p.cseq)) {
            return None;
        }
        self.pending = None;
        self.last = Some(LastAnswer::of(resp));
        if matches!(resp.status, 401 | 407) {
            return self.on_challenge(resp, now, via, cnonce, p.expires);
        }
        if self.removing {
            self.removed();
            return None;
        }
        match resp.status {
            200..=299 => {
                self.on_success(resp, p, now);
                None
            }
            423 => self.on_interval_too_brief(resp, now, via, p.expires),
            status => {
                let wait = retry_after(resp)
                    .filter(|_| honours_retry_after(status))
                    .map(|s| Duration::from_secs(u64::from(s)).clamp(RETRY_AFTER_MIN, BACKOFF_MAX));
                self.fail(RegFailure::Rejected, now, wait);
                None
            }
        }
    }

    /// The REGISTER in flight timed out or its transport failed: a failure shown as 408.
    pub fn handle_failure(&mut self, now: Instant) {
        if self.pending.take().is_none() {
            return;
        }
        self.last = Some(LastAnswer::timeout());
        if self.removing {
            self.removed();
        } else {
            self.fail(RegFailure::Timeout, now, None);
        }
    }

    /// Removes our binding (`Expires: 0`, on trunk removal or shutdown) and stops. `None` when
    /// already stopped or nothing was ever sent (then it just stops).
    #[must_use = "a returned request must be sent"]
    pub fn unregister(&mut self, now: Instant, via: &Via) -> Option<Request> {
        if self.state == RegState::Unregistered {
            return None;
        }
        self.state = RegState::Unregistered;
        self.next_attempt = None;
        self.registered_until = None;
        self.failure = None;
        if self.cseq == 0 {
            return None;
        }
        self.removing = true;
        Some(self.fresh_register(now, via, 0))
    }

    /// Starts again after [`RegClient::unregister`]: a REGISTER is due at `now`.
    pub fn start(&mut self, now: Instant) {
        if self.state == RegState::Unregistered {
            self.state = RegState::Registering;
            self.pending = None;
            self.removing = false;
            self.failures = 0;
            self.next_attempt = Some(now);
        }
    }

    /// The registration for a status view, times counted from `now`.
    pub fn status(&self, now: Instant) -> RegStatus {
        let registered_for = self.registered_until.filter(|t| *t > now);
        let state = match self.state {
            RegState::Registered if registered_for.is_none() => RegState::Registering,
            s => s,
        };
        RegStatus {
            state,
            last: self.last.clone(),
            failure: self.failure,
            failures: self.failures,
            granted_expires: self.granted,
            registered_for_secs: registered_for.map(|t| secs_until(t, now)),
            next_attempt_in_secs: self.next_attempt.map(|t| secs_until(t, now)),
        }
    }

    /// A new request chain: next CSeq, no credentials yet.
    fn fresh_register(&mut self, now: Instant, via: &Via, expires: u32) -> Request {
        if let Some(a) = &mut self.auth {
            a.new_attempt();
        }
        self.register(now, via, expires)
    }

    fn register(&mut self, now: Instant, via: &Via, expires: u32) -> Request {
        self.cseq = self.cseq.wrapping_add(1).max(1);
        let aor = if self.cfg.user.is_empty() {
            format!("<sip:{}>", self.cfg.domain)
        } else {
            format!("<sip:{}@{}>", self.cfg.user, self.cfg.domain)
        };
        let mut r = new_request(
            Method::Register,
            self.cfg.registrar.clone(),
            via,
            format!("{aor};tag={}", self.from_tag),
            aor,
            &self.call_id,
            self.cseq,
        );
        r.headers
            .push(HeaderName::Contact, format!("<{}>", self.cfg.contact));
        r.headers.push(HeaderName::Expires, expires.to_string());
        self.pending = Some(Pending {
            cseq: self.cseq,
            expires,
            sent: now,
        });
        r
    }

    fn on_challenge(
        &mut self,
        resp: &Response,
        now: Instant,
        via: &Via,
        cnonce: &str,
        expires: u32,
    ) -> Option<Request> {
        if self.auth.is_none() {
            self.fail_or_stop(RegFailure::NoCredentials, now);
            return None;
        }
        // Build first (it takes the next CSeq), then answer; a refused answer drops it.
        let mut req = self.register(now, via, expires);
        let answered = self
            .auth
            .as_mut()
            .map_or(Err(AuthFailure::NotAChallenge), |a| {
                a.answer(resp, &mut req, cnonce)
            });
        match answered {
            Ok(()) => Some(req),
            Err(f) => {
                self.pending = None;
                self.fail_or_stop(f.into(), now);
                None
            }
        }
    }

    fn on_success(&mut self, resp: &Response, p: Pending, now: Instant) {
        let ours = |c: &Contact| match c {
            Contact::Addr(a) => match (&a.uri, &self.cfg.contact) {
                (Uri::Sip(x), Uri::Sip(y)) => x.equivalent(y),
                (x, y) => x.to_string() == y.to_string(),
            },
            Contact::Wildcard => false,
        };
        let from_contact = resp.headers.contacts().iter().find_map(|c| match c {
            Contact::Addr(a) if ours(c) => a.expires(),
            _ => None,
        });
        let granted = from_contact
            .or_else(|| resp.headers.expires())
            .unwrap_or(p.expires)
            .min(MAX_EXPIRES);
        if granted == 0 {
            self.fail(RegFailure::NoBinding, now, None);
            return;
        }
        let g = Duration::from_secs(u64::from(granted));
        self.state = RegState::Registered;
        self.failures = 0;
        self.failure = None;
        self.granted = Some(granted);
        self.registered_until = Some(p.sent + g);
        self.next_attempt = Some(p.sent + refresh_after(g));
    }

    fn on_interval_too_brief(
        &mut self,
        resp: &Response,
        now: Instant,
        via: &Via,
        asked: u32,
    ) -> Option<Request> {
        let min = resp
            .headers
            .min_expires()
            .filter(|m| *m > asked && *m <= MAX_EXPIRES);
        match min {
            Some(m) if self.interval_retries < MAX_INTERVAL_RETRIES => {
                self.interval_retries += 1;
                self.expires = m;
                Some(self.fresh_register(now, via, m))
            }
            _ => {
                self.fail(RegFailure::IntervalTooBrief, now, None);
                None
            }
        }
    }

    /// A failed removal stops all the same; a failed registration schedules a retry.
    fn fail_or_stop(&mut self, why: RegFailure, now: Instant) {
        if self.removing {
            self.removed();
        } else {
            self.fail(why, now, None);
        }
    }

    fn removed(&mut self) {
        self.removing = false;
        self.state = RegState::Unregistered;
        self.next_attempt = None;
    }

    fn fail(&mut self, why: RegFailure, now: Instant, wait: Option<Duration>) {
        self.failures = self.failures.saturating_add(1);
        self.state = RegState::Failing;
        self.failure = Some(why);
        let wait = wait.unwrap_or_else(|| backoff(self.failures, self.seed));
        self.next_attempt = Some(now + wait);
    }
}

// ---------------------------------------------------------------------------------------------
// OPTIONS pinger
// ---------------------------------------------------------------------------------------------

/// What a trunk health check needs to know.
#[derive(Debug, Clone)]
pub struct PingConfig {
    /// Request-URI (and To) of the OPTIONS, e.g. `sip:carrier.example`.
    pub target: Uri,
    /// From URI, e.g. `sip:ping@pbx.example` (Kamailio's `ds_ping_from`).
    pub from: Uri,
    /// Interval while up ([`PING_UP_INTERVAL`]).
    pub up_interval: Duration,
    /// Interval while unknown, down or after a failure ([`PING_DOWN_INTERVAL`]).
    pub down_interval: Duration,
    /// Consecutive failures that mark the trunk down ([`PING_FAILURES_TO_DOWN`]).
    pub failures_to_down: u32,
}

impl PingConfig {
    /// A configuration with the default intervals and threshold.
    pub fn new(target: Uri, from: Uri) -> PingConfig {
        PingConfig {
            target,
            from,
            up_interval: PING_UP_INTERVAL,
            down_interval: PING_DOWN_INTERVAL,
            failures_to_down: PING_FAILURES_TO_DOWN,
        }
    }
}

/// What the pings say about a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PingState {
    /// No final answer yet (and fewer failures than the threshold).
    Unknown,
    /// The last ping got an answer other than 408/503.
    Up,
    /// The threshold of consecutive failures was reached.
    Down,
}

/// A trunk's health for a status view (times counted from the `now` given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PingStatus {
    /// Up, down or unknown.
    pub state: PingState,
    /// The last final answer (or 408 for a timeout).
    pub last: Option<LastAnswer>,
    /// Round-trip time of the last answered ping, milliseconds.
    pub rtt_ms: Option<u64>,
    /// Consecutive failed pings.
    pub failures: u32,
    /// A ping is waiting for its answer.
    pub in_flight: bool,
    /// Seconds until the next ping (rounded up).
    pub next_ping_in_secs: Option<u64>,
}

#[derive(Debug, Clone)]
struct PingPending {
    call_id: String,
    sent: Instant,
}

/// OPTIONS health check of one trunk: one ping in flight at most, timeouts, 408 and 503 are
/// failures, any other final answer (200, 404, 405, 501, ...: many carriers refuse OPTIONS) means
/// the trunk is alive.
///
/// The caller sends each returned request as a new client transaction, calls
/// [`Pinger::handle_response`] / [`Pinger::handle_failure`] with its outcome and
/// [`Pinger::handle_timeout`] at [`Pinger::poll_timeout`].
#[derive(Debug, Clone)]
pub struct Pinger {
    cfg: PingConfig,
    state: PingState,
    failures: u32,
    pending: Option<PingPending>,
    next: Option<Instant>,
    last: Option<LastAnswer>,
    rtt: Option<Duration>,
}

impl Pinger {
    /// A pinger whose first OPTIONS is due at `now`. Intervals are kept within [1 s, 1 day].
    pub fn new(mut cfg: PingConfig, now: Instant) -> Pinger {
        let bounds = (
            Duration::from_secs(1),
            Duration::from_secs(u64::from(MAX_EXPIRES)),
        );
        cfg.up_interval = cfg.up_interval.clamp(bounds.0, bounds.1);
        cfg.down_interval = cfg.down_interval.clamp(bounds.0, bounds.1);
        Pinger {
            cfg,
            state: PingState::Unknown,
            failures: 0,
            pending: None,
            next: Some(now),
            last: None,
            rtt: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PingConfig {
        &self.cfg
    }

    /// True when the last pings say the trunk answers (not while unknown).
    pub fn is_up(&self) -> bool {
        self.state == PingState::Up
    }

    /// Up, down or unknown.
    pub fn state(&self) -> PingState {
        self.state
    }

    /// When [`Pinger::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.pending {
            Some(p) => Some(p.sent + PENDING_GUARD),
            None => self.next,
        }
    }

    /// An OPTIONS when one is due. `via` is the top Via of the new transaction; `call_id` and
    /// `from_tag` are fresh from the caller's RNG for every ping.
    #[must_use = "a returned request must be sent"]
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        via: &Via,
        call_id: &str,
        from_tag: &str,
    ) -> Option<Request> {
        if let Some(p) = &self.pending {
            if now >= p.sent + PENDING_GUARD {
                self.handle_failure(now);
            }
            return None;
        }
        if self.next.is_none_or(|t| now < t) {
            return None;
        }
        self.next = None;
        let mut r = new_request(
            Method::Options,
            self.cfg.target.clone(),
            via,
            format!("<{}>;tag={from_tag}", self.cfg.from),
            format!("<{}>", self.cfg.target),
            call_id,
            1,
        );
        r.headers.push(HeaderName::Accept, "application/sdp");
        self.pending = Some(PingPending {
            call_id: call_id.to_owned(),
            sent: now,
        });
        Some(r)
    }

    /// Feeds the final response to the ping in flight (others are ignored).
    pub fn handle_response(&mut self, resp: &Response, now: Instant) {
        let Some(p) = &self.pending else { return };
        if resp.is_provisional() || !answers(resp, &p.call_id, &Method::Options, None) {
            return;
        }
        self.rtt = Some(now.saturating_duration_since(p.sent));
        self.pending = None;
        self.last = Some(LastAnswer::of(resp));
        if matches!(resp.status, 408 | 503) {
            self.failed(now);
        } else {
            self.state = PingState::Up;
            self.failures = 0;
            self.next = Some(now + self.cfg.up_interval);
        }
    }

    /// The ping in flight timed out or its transport failed.
    pub fn handle_failure(&mut self, now: Instant) {
        if self.pending.take().is_none() {
            return;
        }
        self.last = Some(LastAnswer::timeout());
        self.rtt = None;
        self.failed(now);
    }

    /// The trunk's health for a status view.
    pub fn status(&self, now: Instant) -> PingStatus {
        PingStatus {
            state: self.state,
            last: self.last.clone(),
            rtt_ms: self
                .rtt
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            failures: self.failures,
            in_flight: self.pending.is_some(),
            next_ping_in_secs: self.next.map(|t| secs_until(t, now)),
        }
    }

    fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.cfg.failures_to_down.max(1) {
            self.state = PingState::Down;
        }
        self.next = Some(now + self.cfg.down_interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use sip::Host;
    use sip::auth::{
        Algorithm, AuthorizationValue, DigestServer, DigestServerConfig, VerifyError, ha1,
        parse_credentials,
    };
    use std::time::SystemTime;

    const REALM: &str = "carrier.example";
    const PASSWORD: &str = "s3cret";

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn uri(s: &str) -> Uri {
        Uri::parse(s).expect("test URI")
    }

    fn via(n: u32) -> Via {
        let host = Host::parse("192.0.2.10").expect("test host");
        Via::new("UDP", host, Some(5060), &format!("z9hG4bKtest{n}"))
    }

    fn config() -> RegConfig {
        let mut c = RegConfig::new(
            uri("sip:sip.carrier.example"),
            "trunk1",
            "carrier.example",
            uri("sip:trunk1@192.0.2.10:5060"),
        );
        c.account = Some(Account::new("trunk1", PASSWORD));
        c
    }

    fn client(now: Instant) -> RegClient {
        RegClient::new(config(), "cid-1@denwa", "ftag1", 7, now)
    }

    fn hdr(req: &Request, name: HeaderName) -> Option<&str> {
        req.headers.get_str(&name)
    }

    fn cseq(req: &Request) -> u32 {
        req.headers.cseq().map_or(0, |c| c.seq)
    }

    fn reply(req: &Request, status: u16) -> Response {
        Response::for_request(req, status, None).with_to_tag("srv")
    }

    fn ok_with(req: &Request, headers: &[(HeaderName, &str)]) -> Response {
        let mut r = reply(req, 200);
        for (n, v) in headers {
            r.headers.push(n.clone(), *v);
        }
        r
    }

    /// A carrier: real challenges and verification from the `sip` digest server.
    struct Carrier {
        server: DigestServer,
        rng: StdRng,
        wall: SystemTime,
    }

    impl Carrier {
        fn new(algorithms: Vec<Algorithm>) -> Carrier {
            let mut cfg = DigestServerConfig::new(REALM);
            cfg.algorithms = algorithms;
            Carrier {
                server: DigestServer::new(cfg, b"carrier secret"),
                rng: StdRng::seed_from_u64(3),
                wall: SystemTime::UNIX_EPOCH + secs(1_700_000_000),
            }
        }

        fn challenge(&mut self, req: &Request, status: u16, stale: bool) -> Response {
            let name = if status == 407 {
                HeaderName::ProxyAuthenticate
            } else {
                HeaderName::WwwAuthenticate
            };
            let mut r = reply(req, status);
            for c in self.server.challenges(self.wall, stale, &mut self.rng) {
                r.headers.push(name.clone(), c.to_string());
            }
            r
        }

        fn verify(&mut self, req: &Request, name: HeaderName) -> Result<Algorithm, VerifyError> {
            let value = hdr(req, name).ok_or(VerifyError::BadNonce)?;
            let Ok(AuthorizationValue::Digest(creds)) = parse_credentials(value) else {
                return Err(VerifyError::BadNonce);
            };
            let uri = req.uri.to_string();
            let digest = DigestRequest {
                method: req.method.as_str(),
                uri: &uri,
                body: &req.body,
            };
            let stored = ha1(creds.algorithm, &creds.username, REALM, PASSWORD);
            self.server
                .verify(&creds, &digest, &stored, self.wall)
                .map(|()| creds.algorithm)
        }
    }

    impl Carrier {
        /// Verifies the `Authorization` of `req` after checking it carries `nc`.
        fn verify_nc(&mut self, req: &Request, nc: &str) -> Result<Algorithm, VerifyError> {
            let auth = hdr(req, HeaderName::Authorization).unwrap_or_default();
            assert!(auth.contains(nc), "{auth}");
            self.verify(req, HeaderName::Authorization)
        }
    }

    /// A 401 to `req` repeating the challenges of `earlier` (same nonce).
    fn rechallenge(req: &Request, earlier: &Response, reason: Option<&str>) -> Response {
        let mut r = Response::for_request(req, 401, reason);
        for v in earlier.headers.get_all(&HeaderName::WwwAuthenticate) {
            r.headers.push(HeaderName::WwwAuthenticate, v.as_str());
        }
        r
    }

    /// First REGISTER, answered 200 with `headers`.
    fn registered(c: &mut RegClient, now: Instant, headers: &[(HeaderName, &str)]) -> Request {
        let req = c.handle_timeout(now, &via(1)).expect("first REGISTER due");
        assert!(
            c.handle_response(&ok_with(&req, headers), now, &via(2), "cn")
                .is_none()
        );
        req
    }

    // --- RegClient ----------------------------------------------------------------------------

    #[test]
    fn first_register_is_due_at_start_and_well_formed() {
        let t0 = Instant::now();
        let mut c = client(t0);
        assert_eq!(c.poll_timeout(), Some(t0));
        assert_eq!(c.state(), RegState::Registering);
        assert!(c.handle_timeout(t0 - secs(1), &via(1)).is_none());
        let r = c.handle_timeout(t0, &via(1)).expect("due");
        assert_eq!(r.method, Method::Register);
        assert_eq!(r.uri.to_string(), "sip:sip.carrier.example");
        assert_eq!(hdr(&r, HeaderName::Via), Some(via(1).to_string().as_str()));
        assert_eq!(hdr(&r, HeaderName::MaxForwards), Some("70"));
        assert_eq!(
            hdr(&r, HeaderName::From),
            Some("<sip:trunk1@carrier.example>;tag=ftag1")
        );
        assert_eq!(
            hdr(&r, HeaderName::To),
            Some("<sip:trunk1@carrier.example>")
        );
        assert_eq!(hdr(&r, HeaderName::CallId), Some("cid-1@denwa"));
        assert_eq!(hdr(&r, HeaderName::CSeq), Some("1 REGISTER"));
        assert_eq!(
            hdr(&r, HeaderName::Contact),
            Some("<sip:trunk1@192.0.2.10:5060>")
        );
        assert_eq!(hdr(&r, HeaderName::Expires), Some("600"));
        assert!(hdr(&r, HeaderName::Authorization).is_none());
        // The serialised request parses back (what the carrier will see).
        let bytes = r.to_bytes();
        assert!(matches!(
            sip::parse_message(&bytes),
            Ok(sip::Message::Request(_))
        ));
        // While in flight nothing else goes out; the guard is the next deadline.
        assert_eq!(c.poll_timeout(), Some(t0 + PENDING_GUARD));
        assert!(c.handle_timeout(t0 + secs(1), &via(2)).is_none());
    }

    #[test]
    fn refresh_keeps_call_id_and_from_tag_and_increments_cseq() {
        let t0 = Instant::now();
        let mut c = client(t0);
        let first = registered(&mut c, t0, &[(HeaderName::Expires, "600")]);
        assert_eq!(c.state(), RegState::Registered);
        assert!(c.is_registered(t0 + secs(599)));
        assert_eq!(c.poll_timeout(), Some(t0 + secs(540)));
        assert!(c.handle_timeout(t0 + secs(539), &via(3)).is_none());
        let refresh = c.handle_timeout(t0 + secs(540), &via(3)).expect("refresh");
        assert_eq!(cseq(&refresh), cseq(&first) + 1);
        for h in [HeaderName::CallId, HeaderName::From, HeaderName::To] {
            assert_eq!(hdr(&refresh, h.clone()), hdr(&first, h));
        }
        // Still registered while the refresh is in flight.
        assert_eq!(c.status(t0 + secs(541)).state, RegState::Registered);
        let ok = ok_with(&refresh, &[(HeaderName::Expires, "600")]);
        assert!(
            c.handle_response(&ok, t0 + secs(541), &via(4), "cn")
                .is_none()
        );
        assert_eq!(c.poll_timeout(), Some(t0 + secs(1080)));
        let again = c.handle_timeout(t0 + secs(1080), &via(5)).expect("refresh");
        assert_eq!(cseq(&again), cseq(&first) + 2);
    }

    #[test]
    fn granted_expiry_contact_param_then_expires_header_then_asked() {
        let t0 = Instant::now();
        // Our Contact's expires param wins over the Expires header and other contacts.
        let mut c = client(t0);
        registered(
            &mut c,
            t0,
            &[
                (
                    HeaderName::Contact,
                    "<sip:other@198.51.100.1>;expires=3000, <sip:trunk1@192.0.2.10:5060>;expires=120",
                ),
                (HeaderName::Expires, "900"),
            ],
        );
        let s = c.status(t0);
        assert_eq!(s.granted_expires, Some(120));
        assert_eq!(s.registered_for_secs, Some(120));
        assert_eq!(s.next_attempt_in_secs, Some(60));
        assert_eq!(c.poll_timeout(), Some(t0 + secs(60)));
        // No matching contact: the Expires header.
        let mut c = client(t0);
        registered(
            &mut c,
            t0,
            &[
                (HeaderName::Contact, "<sip:other@198.51.100.1>;expires=3000"),
                (HeaderName::Expires, "300"),
            ],
        );
        assert_eq!(c.status(t0).granted_expires, Some(300));
        assert_eq!(c.poll_timeout(), Some(t0 + secs(240)));
        // Neither: what we asked for.
        let mut c = client(t0);
        registered(&mut c, t0, &[]);
        assert_eq!(c.status(t0).granted_expires, Some(600));
        // A grant of 0 for our contact is no binding: failing, retried later.
        let mut c = client(t0);
        registered(
            &mut c,
            t0,
            &[(
                HeaderName::Contact,
                "<sip:trunk1@192.0.2.10:5060>;expires=0",
            )],
        );
        assert_eq!(c.state(), RegState::Failing);
        assert_eq!(c.status(t0).failure, Some(RegFailure::NoBinding));
    }

    #[test]
    fn refresh_timing_policy() {
        for (granted, at) in [
            (0, 1),
            (1, 1),
            (6, 1),
            (10, 5),
            (60, 30),
            (100, 50),
            (120, 60),
            (600, 540),
            (3600, 3540),
        ] {
            assert_eq!(refresh_after(secs(granted)), secs(at), "granted {granted}");
        }
    }

    #[test]
    fn challenge_is_answered_with_the_strongest_algorithm() {
        let t0 = Instant::now();
        let mut carrier = Carrier::new(vec![Algorithm::Md5, Algorithm::Sha256]);
        let mut c = client(t0);
        let r1 = c.handle_timeout(t0, &via(1)).expect("due");
        let ch = carrier.challenge(&r1, 401, false);
        let r2 = c
            .handle_response(&ch, t0, &via(2), "cnonce-1")
            .expect("authenticated re-send");
        assert_eq!(cseq(&r2), 2);
        assert_eq!(hdr(&r2, HeaderName::Via), Some(via(2).to_string().as_str()));
        assert_eq!(hdr(&r2, HeaderName::CallId), hdr(&r1, HeaderName::CallId));
        assert_eq!(
            carrier.verify(&r2, HeaderName::Authorization),
            Ok(Algorithm::Sha256)
        );
        let auth = hdr(&r2, HeaderName::Authorization).unwrap_or_default();
        assert!(auth.contains("cnonce=\"cnonce-1\""), "{auth}");
        assert!(auth.contains("nc=00000001"), "{auth}");
        assert!(auth.contains("opaque="), "{auth}");
        // A 1xx and a late answer to the first REGISTER change nothing.
        assert!(
            c.handle_response(&reply(&r2, 100), t0, &via(3), "x")
                .is_none()
        );
        assert!(
            c.handle_response(&reply(&r1, 200), t0, &via(3), "x")
                .is_none()
        );
        assert_eq!(c.state(), RegState::Registering);
        assert!(
            c.handle_response(&reply(&r2, 200), t0, &via(3), "x")
                .is_none()
        );
        assert_eq!(c.state(), RegState::Registered);
        // The refresh starts without credentials and is answered again; the same nonce goes on
        // counting.
        let r3 = c.handle_timeout(t0 + secs(540), &via(4)).expect("refresh");
        assert!(hdr(&r3, HeaderName::Authorization).is_none());
        let same = rechallenge(&r3, &ch, None);
        let r4 = c
            .handle_response(&same, t0 + secs(540), &via(5), "cnonce-2")
            .expect("answered");
        assert_eq!(carrier.verify_nc(&r4, "nc=00000002"), Ok(Algorithm::Sha256));
    }

    #[test]
    fn proxy_challenge_then_registrar_challenge_carries_both() {
        let t0 = Instant::now();
        let mut carrier = Carrier::new(vec![Algorithm::Md5]);
        let mut c = client(t0);
        let r1 = c.handle_timeout(t0, &via(1)).expect("due");
        let r2 = c
            .handle_response(&carrier.challenge(&r1, 407, false), t0, &via(2), "a")
            .expect("re-send");
        assert!(hdr(&r2, HeaderName::Authorization).is_none());
        assert_eq!(
            carrier.verify(&r2, HeaderName::ProxyAuthorization),
            Ok(Algorithm::Md5)
        );
        let mut registrar = Carrier::new(vec![Algorithm::Sha256]);
        registrar.server = DigestServer::new(
            {
                let mut cfg = DigestServerConfig::new("registrar.example");
                cfg.algorithms = vec![Algorithm::Sha256];
                cfg
            },
            b"other",
        );
        let r3 = c
            .handle_response(&registrar.challenge(&r2, 401, false), t0, &via(3), "b")
            .expect("re-send");
        assert_eq!(r3.headers.count(&HeaderName::ProxyAuthorization), 1);
        assert_eq!(r3.headers.count(&HeaderName::Authorization), 1);
        let proxy = hdr(&r3, HeaderName::ProxyAuthorization).unwrap_or_default();
        assert!(proxy.contains("nc=00000002"), "{proxy}");
        assert!(
            hdr(&r3, HeaderName::Authorization)
                .is_some_and(|a| a.contains("realm=\"registrar.example\""))
        );
    }

    #[test]
    fn wrong_password_ends_in_failing_not_a_loop() {
        let t0 = Instant::now();
        let mut carrier = Carrier::new(vec![Algorithm::Md5]);
        let mut cfg = config();
        cfg.account = Some(Account::new("trunk1", "wrong"));
        let mut c = RegClient::new(cfg, "cid", "tag", 1, t0);
        let r1 = c.handle_timeout(t0, &via(1)).expect("due");
        let ch = carrier.challenge(&r1, 401, false);
        let r2 = c.handle_response(&ch, t0, &via(2), "cn").expect("answered");
        assert_eq!(
            carrier.verify(&r2, HeaderName::Authorization),
            Err(VerifyError::WrongResponse)
        );
        // The carrier challenges again with the same nonce, not stale.
        let again = rechallenge(&r2, &ch, Some("Bad Credentials"));
        assert!(c.handle_response(&again, t0, &via(3), "cn").is_none());
        let s = c.status(t0);
        assert_eq!(s.state, RegState::Failing);
        assert_eq!(s.failure, Some(RegFailure::WrongCredentials));
        assert_eq!(s.last, Some(LastAnswer::new(401, "Bad Credentials")));
        assert_eq!(s.failures, 1);
        let next = s.next_attempt_in_secs.unwrap_or_default();
        assert!((15..=30).contains(&next), "{next}");
        // The next attempt is a fresh REGISTER, answered again from scratch.
        let wait = c.poll_timeout().expect("retry scheduled");
        let r3 = c.handle_timeout(wait, &via(4)).expect("retry");
        assert!(hdr(&r3, HeaderName::Authorization).is_none());
        assert!(c.handle_response(&ch, wait, &via(5), "cn").is_none()); // old CSeq: ignored
        let ch3 = carrier.challenge(&r3, 401, false);
        assert!(c.handle_response(&ch3, wait, &via(5), "cn").is_some());
    }

    #[test]
    fn fresh_nonces_without_stale_are_bounded() {
        let t0 = Instant::now();
        let mut carrier = Carrier::new(vec![Algorithm::Md5]);
        let mut c = client(t0);
        let mut req = c.handle_timeout(t0, &via(1)).expect("due");
        let mut sent = 1;
        while let Some(next) =
            c.handle_response(&carrier.challenge(&req, 401, false), t0, &via(2), "cn")
        {
            req = next;
            sent += 1;
            assert!(sent < 10, "challenge loop");
        }
        assert_eq!(sent, 1 + usize::from(MAX_ANSWERS));
        assert_eq!(c.status(t0).failure, Some(RegFailure::WrongCredentials));
    }

    #[test]
    fn stale_nonce_is_answered_with_the_new_one() {
        let t0 = Instant::now();
        let mut carrier = Carrier::new(vec![Algorithm::Md5]);
        let mut c = client(t0);
        let r1 = c.handle_timeout(t0, &via(1)).expect("due");
        let r2 = c
            .handle_response(&carrier.challenge(&r1, 401, false), t0, &via(2), "a")
            .expect("answered");
        let stale = carrier.challenge(&r2, 401, true);
        let r3 = c
            .handle_response(&stale, t0, &via(3), "b")
            .expect("stale answered");
        let new_nonce = stale
            .headers
            .www_authenticate()
            .first()
            .and_then(|a| a.param("nonce").map(str::to_owned))
            .unwrap_or_default();
        let auth = hdr(&r3, HeaderName::Authorization).unwrap_or_default();
        assert!(auth.contains(&new_nonce), "{auth}");
        assert_eq!(carrier.verify_nc(&r3, "nc=00000001"), Ok(Algorithm::Md5));
    }

    #[test]
    fn challenge_without_account_or_digest_fails() {
        let t0 = Instant::now();
        let mut carrier = Carrier::new(vec![Algorithm::Md5]);
        let mut cfg = config();
        cfg.account = None;
        let mut c = RegClient::new(cfg, "cid", "tag", 1, t0);
        let r = c.handle_timeout(t0, &via(1)).expect("due");
        assert!(
            c.handle_response(&carrier.challenge(&r, 401, false), t0, &via(2), "x")
                .is_none()
        );
        assert_eq!(c.status(t0).failure, Some(RegFailure::NoCredentials));
        let mut c = client(t0);
        let r = c.handle_timeout(t0, &via(1)).expect("due");
        let basic = reply(&r, 401).with_header(HeaderName::WwwAuthenticate, "Basic realm=\"x\"");
        assert!(c.handle_response(&basic, t0, &via(2), "x").is_none());
        assert_eq!(c.status(t0).failure, Some(RegFailure::NoUsableChallenge));
    }

    #[test]
    fn interval_too_brief_follows_min_expires_boundedly() {
        let t0 = Instant::now();
        let mut c = client(t0);
        let r1 = c.handle_timeout(t0, &via(1)).expect("due");
        let brief = reply(&r1, 423).with_header(HeaderName::MinExpires, "1200");
        let r2 = c
            .handle_response(&brief, t0, &via(2), "x")
            .expect("re-sent at once");
        assert_eq!(hdr(&r2, HeaderName::Expires), Some("1200"));
        assert_eq!(cseq(&r2), 2);
        // A carrier answering 423 forever: one more follow, then a failure with backoff.
        let r3 = c
            .handle_response(
                &reply(&r2, 423).with_header(HeaderName::MinExpires, "1800"),
                t0,
                &via(3),
                "x",
            )
            .expect("second follow");
        assert!(
            c.handle_response(
                &reply(&r3, 423).with_header(HeaderName::MinExpires, "2400"),
                t0,
                &via(4),
                "x"
            )
            .is_none()
        );
        assert_eq!(c.status(t0).failure, Some(RegFailure::IntervalTooBrief));
        // The raised interval stays for the next attempt.
        let wait = c.poll_timeout().expect("retry");
        assert!(wait >= t0 + secs(15));
        let r4 = c.handle_timeout(wait, &via(5)).expect("retry");
        assert_eq!(hdr(&r4, HeaderName::Expires), Some("1800"));
        // 423 without Min-Expires, with one not above what we asked, or above a day: a failure,
        // no re-send.
        for min in [None, Some("600"), Some("999999")] {
            let mut c = client(t0);
            let r = c.handle_timeout(t0, &via(1)).expect("due");
            let mut resp = reply(&r, 423);
            if let Some(m) = min {
                resp.headers.push(HeaderName::MinExpires, m);
            }
            assert!(
                c.handle_response(&resp, t0, &via(2), "x").is_none(),
                "{min:?}"
            );
            assert_eq!(c.status(t0).failure, Some(RegFailure::IntervalTooBrief));
        }
    }

    #[test]
    fn rejections_back_off_exponentially_and_success_resets() {
        let t0 = Instant::now();
        let mut c = client(t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for (i, status) in [403, 404, 403, 400, 603, 403, 403, 403, 403]
            .iter()
            .enumerate()
        {
            let r = c.handle_timeout(now, &via(1)).expect("attempt due");
            assert!(
                c.handle_response(&reply(&r, *status), now, &via(2), "x")
                    .is_none()
            );
            let s = c.status(now);
            assert_eq!(s.state, RegState::Failing);
            assert_eq!(s.failure, Some(RegFailure::Rejected));
            assert_eq!(s.failures, i as u32 + 1);
            assert_eq!(s.last.as_ref().map(|l| l.code), Some(*status));
            let next = c.poll_timeout().expect("retry scheduled");
            waits.push(next - now);
            now = next;
        }
        for (i, w) in waits.iter().enumerate() {
            let full = (BACKOFF_BASE * (1 << i)).min(BACKOFF_MAX);
            assert!(*w >= full / 2 && *w <= full, "retry {i}: {w:?}");
        }
        assert!(waits.iter().all(|w| *w <= BACKOFF_MAX));
        let r = c.handle_timeout(now, &via(1)).expect("attempt due");
        assert!(
            c.handle_response(&reply(&r, 200), now, &via(2), "x")
                .is_none()
        );
        let s = c.status(now);
        assert_eq!(
            (s.state, s.failures, s.failure),
            (RegState::Registered, 0, None)
        );
        assert_eq!(backoff(1, 7), backoff(1, 7));
    }

    #[test]
    fn retry_after_schedules_the_next_attempt() {
        let t0 = Instant::now();
        for (status, value, expect) in [
            (503, Some("120"), Some(120)),
            (500, Some("60 (maintenance);duration=10"), Some(60)),
            (480, Some("99999"), Some(1800)),
            (503, Some("0"), Some(5)),
            (503, None, None),
            (403, Some("120"), None), // not a status whose Retry-After we follow
        ] {
            let mut c = client(t0);
            let r = c.handle_timeout(t0, &via(1)).expect("due");
            let mut resp = reply(&r, status);
            if let Some(v) = value {
                resp.headers.push(HeaderName::RetryAfter, v);
            }
            assert!(c.handle_response(&resp, t0, &via(2), "x").is_none());
            assert_eq!(c.state(), RegState::Failing);
            let wait = c.poll_timeout().map(|t| t - t0);
            match expect {
                Some(s) => assert_eq!(wait, Some(secs(s)), "{status} {value:?}"),
                None => assert_eq!(wait, Some(backoff(1, 7)), "{status} {value:?}"),
            }
        }
        let mut c = client(t0);
        let r = c.handle_timeout(t0, &via(1)).expect("due");
        let resp = reply(&r, 503).with_header(HeaderName::RetryAfter, "120");
        assert!(c.handle_response(&resp, t0, &via(2), "x").is_none());
        assert_eq!(c.status(t0 + secs(93)).next_attempt_in_secs, Some(27));
    }

    #[test]
    fn timeout_is_a_408_failure_with_backoff() {
        let t0 = Instant::now();
        let mut c = client(t0);
        c.handle_failure(t0); // nothing in flight: ignored
        assert_eq!(c.state(), RegState::Registering);
        let _ = c.handle_timeout(t0, &via(1)).expect("due");
        c.handle_failure(t0 + secs(32));
        let s = c.status(t0 + secs(32));
        assert_eq!(s.state, RegState::Failing);
        assert_eq!(s.failure, Some(RegFailure::Timeout));
        assert_eq!(s.last, Some(LastAnswer::new(408, "Request Timeout")));
        assert_eq!(c.poll_timeout(), Some(t0 + secs(32) + backoff(1, 7)));
        // The guard: a request nobody reports on fails by itself.
        let mut c = client(t0);
        let _ = c.handle_timeout(t0, &via(1)).expect("due");
        assert!(c.handle_timeout(t0 + PENDING_GUARD, &via(2)).is_none());
        assert_eq!(c.status(t0).failure, Some(RegFailure::Timeout));
    }

    #[test]
    fn a_failed_refresh_keeps_the_binding_until_it_expires() {
        let t0 = Instant::now();
        let mut c = client(t0);
        registered(&mut c, t0, &[]);
        let r = c.handle_timeout(t0 + secs(540), &via(2)).expect("refresh");
        assert!(
            c.handle_response(&reply(&r, 500), t0 + secs(540), &via(3), "x")
                .is_none()
        );
        let s = c.status(t0 + secs(540));
        assert_eq!(s.state, RegState::Failing);
        assert_eq!(s.registered_for_secs, Some(60));
        assert!(c.is_registered(t0 + secs(599)));
        assert!(!c.is_registered(t0 + secs(600)));
    }

    #[test]
    fn odd_responses_never_panic_or_change_state() {
        let t0 = Instant::now();
        let mut c = client(t0);
        let before = c.status(t0);
        let stray = Response::new(200);
        assert!(c.handle_response(&stray, t0, &via(1), "x").is_none());
        let r = c.handle_timeout(t0, &via(1)).expect("due");
        let mut other_call = reply(&r, 200);
        other_call.headers.set(HeaderName::CallId, "someone-else");
        let mut other_method = reply(&r, 200);
        other_method.headers.set(HeaderName::CSeq, "1 OPTIONS");
        let mut no_cseq = reply(&r, 200);
        no_cseq.headers.remove(&HeaderName::CSeq);
        for resp in [
            other_call,
            other_method,
            no_cseq,
            reply(&r, 180),
            reply(&r, 100),
        ] {
            assert!(c.handle_response(&resp, t0, &via(2), "x").is_none());
        }
        assert_eq!(c.status(t0).state, before.state);
        // Garbage Contact and Expires in a 200: what we asked is granted.
        let mut ok = reply(&r, 200);
        ok.headers.push(HeaderName::Contact, "<<<not a contact");
        ok.headers.push(HeaderName::Expires, "soon");
        ok.headers
            .push(HeaderName::WwwAuthenticate, "Digest nonce=\"broken");
        assert!(c.handle_response(&ok, t0, &via(2), "x").is_none());
        assert_eq!(c.status(t0).granted_expires, Some(600));
        // A challenge whose headers are all malformed.
        let r = c.handle_timeout(t0 + secs(540), &via(3)).expect("refresh");
        let bad = reply(&r, 407).with_header(HeaderName::ProxyAuthenticate, "Digest ,,,=");
        assert!(c.handle_response(&bad, t0, &via(4), "x").is_none());
        assert_eq!(c.status(t0).failure, Some(RegFailure::NoUsableChallenge));
    }

    #[test]
    fn unregister_sends_expires_zero_and_stops() {
        let t0 = Instant::now();
        let mut carrier = Carrier::new(vec![Algorithm::Md5]);
        let mut c = client(t0);
        let first = registered(&mut c, t0, &[]);
        let r = c.unregister(t0 + secs(10), &via(5)).expect("removal");
        assert_eq!(hdr(&r, HeaderName::Expires), Some("0"));
        assert_eq!(hdr(&r, HeaderName::CallId), hdr(&first, HeaderName::CallId));
        assert_eq!(cseq(&r), cseq(&first) + 1);
        assert_eq!(c.state(), RegState::Unregistered);
        // The removal is challenged and answered like any REGISTER.
        let r2 = c
            .handle_response(&carrier.challenge(&r, 401, false), t0, &via(6), "x")
            .expect("answered");
        assert_eq!(hdr(&r2, HeaderName::Expires), Some("0"));
        assert!(carrier.verify(&r2, HeaderName::Authorization).is_ok());
        assert!(
            c.handle_response(&reply(&r2, 200), t0, &via(7), "x")
                .is_none()
        );
        assert_eq!(c.state(), RegState::Unregistered);
        assert_eq!(c.poll_timeout(), None);
        assert!(c.handle_timeout(t0 + secs(10_000), &via(8)).is_none());
        assert!(c.unregister(t0, &via(9)).is_none());
        let s = c.status(t0);
        assert_eq!(
            (s.registered_for_secs, s.next_attempt_in_secs),
            (None, None)
        );
        // A failed removal stops too; start() registers again.
        c.start(t0 + secs(20));
        assert_eq!(c.poll_timeout(), Some(t0 + secs(20)));
        let _ = c.handle_timeout(t0 + secs(20), &via(10)).expect("due");
        let r = c.unregister(t0 + secs(21), &via(11)).expect("removal");
        c.handle_failure(t0 + secs(53));
        assert_eq!(c.state(), RegState::Unregistered);
        assert_eq!(c.poll_timeout(), None);
        assert!(
            c.handle_response(&reply(&r, 200), t0, &via(12), "x")
                .is_none()
        );
    }

    #[test]
    fn status_serialises_for_a_status_view() {
        let t0 = Instant::now();
        let mut c = client(t0);
        registered(&mut c, t0, &[(HeaderName::Expires, "120")]);
        let json = serde_json::to_value(c.status(t0 + secs(33))).expect("serialises");
        assert_eq!(json["state"], "registered");
        assert_eq!(json["last"]["code"], 200);
        assert_eq!(json["last"]["reason"], "OK");
        assert_eq!(json["granted_expires"], 120);
        assert_eq!(json["registered_for_secs"], 87);
        assert_eq!(json["next_attempt_in_secs"], 27);
        assert!(json["failure"].is_null());
        // Long reason phrases are cut on a character boundary.
        let long = "é".repeat(200);
        assert!(LastAnswer::new(500, &long).reason.len() <= MAX_REASON);
        assert!(!format!("{:?}", config()).contains(PASSWORD));
    }

    #[test]
    fn backoff_is_deterministic_jittered_and_capped() {
        for n in 1..40 {
            let full = BACKOFF_BASE
                .saturating_mul(1 << (n - 1).min(16))
                .min(BACKOFF_MAX);
            for seed in 0..20 {
                let b = backoff(n, seed);
                assert!(b >= full / 2 && b <= full, "n={n} seed={seed} {b:?}");
                assert_eq!(b, backoff(n, seed));
            }
        }
        let distinct: std::collections::HashSet<_> = (0..20).map(|s| backoff(1, s)).collect();
        assert!(distinct.len() > 10);
        assert!(backoff(u32::MAX, 1) <= BACKOFF_MAX);
    }

    // --- ClientAuth ---------------------------------------------------------------------------

    fn options(uri_text: &str) -> Request {
        new_request(
            Method::Options,
            uri(uri_text),
            &via(1),
            "<sip:a@b>;tag=1".into(),
            "<sip:b@c>".into(),
            "cid",
            1,
        )
    }

    #[test]
    fn client_auth_without_qop_echoes_opaque() {
        let mut auth = ClientAuth::new(Account::new("u", "p"));
        let mut req = options("sip:carrier.example");
        let ch = reply(&req, 401).with_header(
            HeaderName::WwwAuthenticate,
            "Digest realm=\"r\", nonce=\"n1\", opaque=\"op\"",
        );
        assert_eq!(auth.answer(&ch, &mut req, "cn"), Ok(()));
        let Some(Ok(AuthorizationValue::Digest(creds))) =
            hdr(&req, HeaderName::Authorization).map(parse_credentials)
        else {
            panic!("credentials written");
        };
        assert_eq!(creds.opaque.as_deref(), Some("op"));
        assert_eq!((creds.qop, creds.nc, creds.cnonce), (None, None, None));
        assert_eq!(creds.algorithm, Algorithm::Md5);
        let digest = DigestRequest {
            method: "OPTIONS",
            uri: "sip:carrier.example",
            body: b"",
        };
        let ch_struct = best_per_realm(&ch, &HeaderName::WwwAuthenticate);
        let login = Login {
            username: "u",
            password: "p",
        };
        assert_eq!(
            creds.response,
            answer_challenge(&ch_struct[0], &login, &digest, 0, "").response
        );
        // Not a challenge at all.
        assert_eq!(
            auth.answer(&reply(&req, 403), &mut req, "cn"),
            Err(AuthFailure::NotAChallenge)
        );
        // Answering replaces, never piles up, credentials.
        let ch2 = reply(&req, 401).with_header(
            HeaderName::WwwAuthenticate,
            "Digest realm=\"r\", nonce=\"n2\", stale=true",
        );
        assert_eq!(auth.answer(&ch2, &mut req, "cn"), Ok(()));
        assert_eq!(req.headers.count(&HeaderName::Authorization), 1);
    }

    #[test]
    fn client_auth_memory_is_bounded() {
        let mut auth = ClientAuth::new(Account::new("u", "p"));
        let mut req = options("sip:carrier.example");
        let mut ch = reply(&req, 407);
        for i in 0..10 {
            ch.headers.push(
                HeaderName::ProxyAuthenticate,
                format!("Digest realm=\"r{i}\", nonce=\"n{i}\", qop=\"auth\""),
            );
        }
        assert_eq!(auth.answer(&ch, &mut req, "cn"), Ok(()));
        assert_eq!(
            req.headers.count(&HeaderName::ProxyAuthorization),
            MAX_REALMS
        );
        for round in 0..5 {
            auth.new_attempt();
            let mut ch = reply(&req, 401);
            ch.headers.push(
                HeaderName::WwwAuthenticate,
                format!("Digest realm=\"x{round}\", nonce=\"m\""),
            );
            assert_eq!(auth.answer(&ch, &mut req, "cn"), Ok(()));
            assert!(auth.answered.len() <= MAX_REALMS);
        }
    }

    #[test]
    fn client_auth_ends_when_the_server_invents_realms() {
        let mut auth = ClientAuth::new(Account::new("u", "p"));
        let mut req = options("sip:carrier.example");
        let mut resends = 0;
        let outcome = loop {
            let ch = reply(&req, 401).with_header(
                HeaderName::WwwAuthenticate,
                format!("Digest realm=\"r{resends}\", nonce=\"n\""),
            );
            match auth.answer(&ch, &mut req, "cn") {
                Ok(()) => resends += 1,
                Err(e) => break e,
            }
            assert!(resends < 100, "no end");
        };
        assert_eq!(outcome, AuthFailure::TooManyRealms);
        assert_eq!(resends, MAX_REALMS);
        assert_eq!(req.headers.count(&HeaderName::Authorization), MAX_REALMS);
    }

    #[test]
    fn unregister_before_anything_was_sent_just_stops() {
        let t0 = Instant::now();
        let mut cfg = config();
        cfg.expires = 0;
        let mut c = RegClient::new(cfg, "cid", "tag", 1, t0);
        assert_eq!(c.expires, DEFAULT_EXPIRES);
        assert!(c.unregister(t0, &via(1)).is_none());
        assert_eq!(
            (c.state(), c.poll_timeout()),
            (RegState::Unregistered, None)
        );
    }

    // --- Pinger -------------------------------------------------------------------------------

    fn pinger(now: Instant) -> Pinger {
        Pinger::new(
            PingConfig::new(uri("sip:carrier.example"), uri("sip:ping@pbx.example")),
            now,
        )
    }

    fn ping(p: &mut Pinger, now: Instant, n: u32) -> Request {
        p.handle_timeout(now, &via(n), &format!("ping-{n}"), &format!("t{n}"))
            .expect("ping due")
    }

    #[test]
    fn ping_request_is_well_formed_with_fresh_ids() {
        let t0 = Instant::now();
        let mut p = pinger(t0);
        assert_eq!(p.poll_timeout(), Some(t0));
        assert_eq!(p.state(), PingState::Unknown);
        assert!(!p.is_up());
        let r = ping(&mut p, t0, 1);
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.uri.to_string(), "sip:carrier.example");
        assert_eq!(hdr(&r, HeaderName::MaxForwards), Some("70"));
        assert_eq!(hdr(&r, HeaderName::CallId), Some("ping-1"));
        assert_eq!(hdr(&r, HeaderName::CSeq), Some("1 OPTIONS"));
        assert_eq!(
            hdr(&r, HeaderName::From),
            Some("<sip:ping@pbx.example>;tag=t1")
        );
        assert_eq!(hdr(&r, HeaderName::To), Some("<sip:carrier.example>"));
        // One ping in flight at most.
        assert!(p.handle_timeout(t0 + secs(5), &via(2), "x", "y").is_none());
        p.handle_response(&reply(&r, 200), t0 + Duration::from_millis(42));
        assert!(p.is_up());
        let r2 = ping(&mut p, t0 + Duration::from_millis(42) + PING_UP_INTERVAL, 2);
        assert_ne!(hdr(&r2, HeaderName::CallId), hdr(&r, HeaderName::CallId));
        assert_ne!(hdr(&r2, HeaderName::From), hdr(&r, HeaderName::From));
    }

    #[test]
    fn pinger_marks_down_after_two_timeouts_and_up_on_the_next_405() {
        let t0 = Instant::now();
        let mut p = pinger(t0);
        let r = ping(&mut p, t0, 1);
        p.handle_response(&reply(&r, 200), t0);
        assert!(p.is_up());
        let mut now = t0 + PING_UP_INTERVAL;
        assert_eq!(p.poll_timeout(), Some(now));
        let _ = ping(&mut p, now, 2);
        now += secs(32);
        p.handle_failure(now);
        assert!(p.is_up(), "one failure is not down yet");
        assert_eq!(p.status(now).failures, 1);
        assert_eq!(p.poll_timeout(), Some(now + PING_DOWN_INTERVAL));
        now += PING_DOWN_INTERVAL;
        let _ = ping(&mut p, now, 3);
        now += secs(32);
        p.handle_failure(now);
        assert!(!p.is_up());
        assert_eq!(p.state(), PingState::Down);
        let s = p.status(now);
        assert_eq!(s.last, Some(LastAnswer::new(408, "Request Timeout")));
        assert_eq!(s.rtt_ms, None);
        now += PING_DOWN_INTERVAL;
        let r = ping(&mut p, now, 4);
        p.handle_response(&reply(&r, 405), now + Duration::from_millis(80));
        assert!(p.is_up());
        let s = p.status(now);
        assert_eq!(s.last.map(|l| l.code), Some(405));
        assert_eq!(s.rtt_ms, Some(80));
        assert_eq!(s.failures, 0);
    }

    #[test]
    fn pinger_never_marks_up_on_503_and_counts_408() {
        let t0 = Instant::now();
        let mut p = pinger(t0);
        let r = ping(&mut p, t0, 1);
        p.handle_response(&reply(&r, 503), t0);
        assert_eq!(p.state(), PingState::Unknown);
        let r = ping(&mut p, t0 + PING_DOWN_INTERVAL, 2);
        p.handle_response(&reply(&r, 408), t0 + PING_DOWN_INTERVAL);
        assert_eq!(p.state(), PingState::Down);
        let r = ping(&mut p, t0 + PING_DOWN_INTERVAL * 2, 3);
        p.handle_response(&reply(&r, 503), t0 + PING_DOWN_INTERVAL * 2);
        assert_eq!(p.state(), PingState::Down);
        // Alive answers: whatever the carrier thinks of OPTIONS.
        for (i, status) in [404u16, 501, 486, 401, 200].into_iter().enumerate() {
            let mut p = pinger(t0);
            let r = ping(&mut p, t0, i as u32);
            p.handle_response(&reply(&r, status), t0);
            assert!(p.is_up(), "{status}");
        }
    }

    #[test]
    fn pinger_ignores_stray_answers_and_has_a_guard() {
        let t0 = Instant::now();
        let mut p = pinger(t0);
        p.handle_response(&Response::new(200), t0);
        p.handle_failure(t0);
        assert_eq!(p.status(t0).failures, 0);
        let r = ping(&mut p, t0, 1);
        let mut other = reply(&r, 200);
        other.headers.set(HeaderName::CallId, "ping-0");
        p.handle_response(&other, t0);
        p.handle_response(&reply(&r, 180), t0);
        assert_eq!(p.state(), PingState::Unknown);
        assert!(p.status(t0).in_flight);
        assert_eq!(p.poll_timeout(), Some(t0 + PENDING_GUARD));
        assert!(
            p.handle_timeout(t0 + PENDING_GUARD, &via(2), "a", "b")
                .is_none()
        );
        assert_eq!(p.status(t0).failures, 1);
        assert_eq!(
            p.poll_timeout(),
            Some(t0 + PENDING_GUARD + PING_DOWN_INTERVAL)
        );
        let json = serde_json::to_value(p.status(t0 + PENDING_GUARD)).expect("serialises");
        assert_eq!(json["state"], "unknown");
        assert_eq!(json["next_ping_in_secs"], 10);
        // Zero intervals from a bad configuration cannot make a tight loop.
        let mut cfg = PingConfig::new(uri("sip:a.example"), uri("sip:b.example"));
        cfg.up_interval = Duration::ZERO;
        cfg.down_interval = Duration::ZERO;
        assert_eq!(Pinger::new(cfg, t0).config().down_interval, secs(1));
    }
}
