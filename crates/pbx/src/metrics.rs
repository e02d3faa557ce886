//! Counters for `/metrics` (Prometheus text format). Atomics only: updated from any task, read by
//! the HTTP handler.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

// The engine counts requests and calls; the same lists name them here.
use engine::counters::{DISPOSITIONS, METHODS};

/// Process-wide PBX counters.
pub struct Metrics {
    requests_in: [AtomicU64; METHODS.len()],
    responses_out: Box<[AtomicU64; 600]>,
    parse_errors: AtomicU64,
    auth_failures: AtomicU64,
    throttled: AtomicU64,
    overload_drops: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    calls_by_disposition: [AtomicU64; DISPOSITIONS.len()],
    tcp_refused: AtomicU64,
    tcp_timeouts: AtomicU64,
    tcp_connect_failures: AtomicU64,
    udp_send_queued: AtomicU64,
    udp_send_drops: AtomicU64,
    log_suppressed: AtomicU64,
    fraud_blocked: AtomicU64,
    trunk_failovers: AtomicU64,
    trunk_invites: AtomicU64,
    untrusted_invites: AtomicU64,
    /// Voicemail recordings not written, by `engine::vm_disk::VM_FAILURE_REASONS` index.
    vm_failures: [AtomicU64; 2],
    /// Trunk states as of the driver's last tick.
    pub trunks: std::sync::Mutex<Vec<engine::TrunkStatus>>,
    /// TCP connections open right now (accepted and outbound).
    pub tcp_connections: AtomicI64,
    /// Registered contacts right now.
    pub registrations: AtomicI64,
    /// Calls in progress right now.
    pub active_calls: AtomicI64,
    /// SIP transactions alive right now (including those lingering to absorb retransmissions).
    pub transactions: AtomicI64,
    /// Call recording counters (shared with the recorders).
    pub recorder: std::sync::Arc<media::recorder::RecorderMetrics>,
    /// Voicemail e-mails sent.
    pub vm_mail_sent: AtomicU64,
    /// Voicemail e-mail attempts that failed.
    pub vm_mail_failures: AtomicU64,
    /// Voicemail e-mails waiting in the outbox.
    pub vm_mail_queue: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests_in: std::array::from_fn(|_| AtomicU64::new(0)),
            responses_out: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            parse_errors: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            overload_drops: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            calls_by_disposition: std::array::from_fn(|_| AtomicU64::new(0)),
            tcp_refused: AtomicU64::new(0),
            tcp_timeouts: AtomicU64::new(0),
            tcp_connect_failures: AtomicU64::new(0),
            udp_send_queued: AtomicU64::new(0),
            udp_send_drops: AtomicU64::new(0),
            log_suppressed: AtomicU64::new(0),
            vm_mail_sent: AtomicU64::new(0),
            vm_mail_failures: AtomicU64::new(0),
            vm_mail_queue: AtomicI64::new(0),
            fraud_blocked: AtomicU64::new(0),
            trunk_failovers: AtomicU64::new(0),
            trunk_invites: AtomicU64::new(0),
            untrusted_invites: AtomicU64::new(0),
            vm_failures: std::array::from_fn(|_| AtomicU64::new(0)),
            trunks: std::sync::Mutex::new(Vec::new()),
            tcp_connections: AtomicI64::new(0),
            registrations: AtomicI64::new(0),
            active_calls: AtomicI64::new(0),
            transactions: AtomicI64::new(0),
            recorder: Default::default(),
        }
    }
}

impl Metrics {
    /// A message failed to parse.
    pub fn inc_parse_error(&self) {
        self.parse_errors.fetch_add(1, Relaxed);
    }
    /// Input dropped because the core was overloaded.
    pub fn inc_overload_drop(&self) {
        self.overload_drops.fetch_add(1, Relaxed);
    }
    /// Bytes received.
    pub fn inc_received_bytes(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }
    /// Bytes sent.
    pub fn inc_sent_bytes(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Relaxed);
    }
    /// An accepted TCP connection was closed at once (per-source or total limit reached).
    pub fn inc_tcp_refused(&self) {
        self.tcp_refused.fetch_add(1, Relaxed);
    }
    /// A TCP connection was closed for sending no complete message in time, or for idling.
    pub fn inc_tcp_timeout(&self) {
        self.tcp_timeouts.fetch_add(1, Relaxed);
    }
    /// An outbound TCP connection could not be made (refused by a limit, or the connect failed).
    pub fn inc_tcp_connect_failure(&self) {
        self.tcp_connect_failures.fetch_add(1, Relaxed);
    }
    /// A UDP send found the socket buffer full and was queued for a retry.
    pub fn inc_udp_send_queued(&self) {
        self.udp_send_queued.fetch_add(1, Relaxed);
    }
    /// A UDP send was dropped (retry queue full, or the retry failed).
    pub fn inc_udp_send_drop(&self) {
        self.udp_send_drops.fetch_add(1, Relaxed);
    }
    /// A log line was not written (rate-limited; counted in a summary line instead).
    pub fn inc_log_suppressed(&self) {
        self.log_suppressed.fetch_add(1, Relaxed);
    }

    /// Publishes the call engine's counters (it counts requests, responses, authentication
    /// failures, bans and calls; the driver copies them here a few times a second).
    pub fn publish_engine(&self, c: &engine::Counters) {
        for (dst, src) in self.requests_in.iter().zip(c.requests.iter()) {
            dst.store(*src, Relaxed);
        }
        for (dst, src) in self.responses_out.iter().zip(c.responses.iter()) {
            dst.store(*src, Relaxed);
        }
        self.auth_failures.store(c.auth_failures, Relaxed);
        self.throttled.store(c.throttled, Relaxed);
        for (dst, src) in self.calls_by_disposition.iter().zip(c.calls.iter()) {
            dst.store(*src, Relaxed);
        }
        self.fraud_blocked.store(c.fraud_blocked, Relaxed);
        self.trunk_failovers.store(c.trunk_failovers, Relaxed);
        self.trunk_invites.store(c.trunk_invites, Relaxed);
        self.untrusted_invites.store(c.untrusted_invites, Relaxed);
        for (dst, src) in self.vm_failures.iter().zip(c.vm_failures.iter()) {
            dst.store(*src, Relaxed);
        }
    }

    /// Trunk gauges and counters.
    fn render_trunks(&self, out: &mut String) {
        let trunks: [(&str, &str, &str, u64); 4] = [
            (
                "denwa_toll_fraud_blocked_total",
                "counter",
                "Outside calls refused by a toll-fraud limit (per-hour, concurrent, international minutes).",
                self.fraud_blocked.load(Relaxed),
            ),
            (
                "denwa_trunk_failovers_total",
                "counter",
                "Outside calls moved to the next trunk after a failure.",
                self.trunk_failovers.load(Relaxed),
            ),
            (
                "denwa_trunk_inbound_invites_total",
                "counter",
                "New INVITEs received from trunks.",
                self.trunk_invites.load(Relaxed),
            ),
            (
                "denwa_sip_untrusted_invites_total",
                "counter",
                "New INVITEs without credentials from addresses that are no trunk and no registered phone (challenged, never routed unless they authenticate).",
                self.untrusted_invites.load(Relaxed),
            ),
        ];
        write_simple(out, &trunks);
        let list = match self.trunks.lock() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let gauges: [(&str, &str); 4] = [
            (
                "denwa_trunk_registered",
                "1 when the trunk is registered to its provider (registration trunks).",
            ),
            (
                "denwa_trunk_up",
                "1 when the trunk answers its OPTIONS health check (or has none), 0 when marked down.",
            ),
            ("denwa_trunk_usable", "1 when new calls may use the trunk."),
            ("denwa_trunk_calls", "Calls in progress over the trunk."),
        ];
        for (name, help) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for t in &list {
                let v = match name {
                    "denwa_trunk_registered" => {
                        if t.registration == "off" {
                            continue;
                        }
                        u64::from(t.registration == "registered")
                    }
                    "denwa_trunk_up" => u64::from(t.health != "down"),
                    "denwa_trunk_usable" => u64::from(t.usable),
                    _ => t.calls as u64,
                };
                let _ = writeln!(
                    out,
                    "{name}{{tenant=\"{}\",trunk=\"{}\"}} {v}",
                    t.tenant, t.name
                );
            }
        }
    }

    /// Prometheus text exposition of the SIP counters (relay counters are appended by the caller).
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP denwa_sip_requests_received_total SIP requests received, by method."
        );
        let _ = writeln!(out, "# TYPE denwa_sip_requests_received_total counter");
        for (i, m) in METHODS.iter().enumerate() {
            let _ = writeln!(
                out,
                "denwa_sip_requests_received_total{{method=\"{m}\"}} {}",
                self.requests_in[i].load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP denwa_sip_responses_sent_total SIP responses sent, by status code."
        );
        let _ = writeln!(out, "# TYPE denwa_sip_responses_sent_total counter");
        for (i, c) in self.responses_out.iter().enumerate() {
            let v = c.load(Relaxed);
            if v > 0 {
                let _ = writeln!(
                    out,
                    "denwa_sip_responses_sent_total{{code=\"{}\"}} {v}",
                    i + 100
                );
            }
        }
        let simple: [(&str, &str, &str, u64); 6] = [
            (
                "denwa_sip_parse_errors_total",
                "counter",
                "Malformed SIP messages received.",
                self.parse_errors.load(Relaxed),
            ),
            (
                "denwa_auth_failures_total",
                "counter",
                "Failed digest authentications.",
                self.auth_failures.load(Relaxed),
            ),
            (
                "denwa_sip_throttled_total",
                "counter",
                "Messages ignored from banned sources.",
                self.throttled.load(Relaxed),
            ),
            (
                "denwa_sip_overload_drops_total",
                "counter",
                "Datagrams dropped because the core queue was full.",
                self.overload_drops.load(Relaxed),
            ),
            (
                "denwa_sip_received_bytes_total",
                "counter",
                "SIP bytes received.",
                self.bytes_in.load(Relaxed),
            ),
            (
                "denwa_sip_sent_bytes_total",
                "counter",
                "SIP bytes sent.",
                self.bytes_out.load(Relaxed),
            ),
        ];
        write_simple(out, &simple);
        self.render_trunks(out);
        let abuse: [(&str, &str, &str, u64); 7] = [
            (
                "denwa_sip_tcp_refused_total",
                "counter",
                "TCP connections closed at accept: per-source or total connection limit reached.",
                self.tcp_refused.load(Relaxed),
            ),
            (
                "denwa_sip_tcp_timeouts_total",
                "counter",
                "TCP connections closed for no complete message in time or for idling.",
                self.tcp_timeouts.load(Relaxed),
            ),
            (
                "denwa_sip_tcp_connect_failures_total",
                "counter",
                "Outbound TCP connections refused by a limit or failed.",
                self.tcp_connect_failures.load(Relaxed),
            ),
            (
                "denwa_sip_udp_send_queued_total",
                "counter",
                "UDP sends queued for a retry because the socket buffer was full.",
                self.udp_send_queued.load(Relaxed),
            ),
            (
                "denwa_sip_udp_send_dropped_total",
                "counter",
                "UDP sends dropped: retry queue full or retry failed.",
                self.udp_send_drops.load(Relaxed),
            ),
            (
                "denwa_log_lines_suppressed_total",
                "counter",
                "Log lines not written by the per-peer rate limit (counted in summary lines).",
                self.log_suppressed.load(Relaxed),
            ),
            (
                "denwa_sip_tcp_connections",
                "gauge",
                "TCP connections open.",
                self.tcp_connections.load(Relaxed).max(0) as u64,
            ),
        ];
        write_simple(out, &abuse);
        let _ = writeln!(
            out,
            "# HELP denwa_registrations Registered contacts.\n# TYPE denwa_registrations gauge"
        );
        let _ = writeln!(
            out,
            "denwa_registrations {}",
            self.registrations.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP denwa_calls_active Calls in progress.\n# TYPE denwa_calls_active gauge"
        );
        let _ = writeln!(
            out,
            "denwa_calls_active {}",
            self.active_calls.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP denwa_sip_transactions SIP transactions alive (incl. lingering ones).\n# TYPE denwa_sip_transactions gauge\ndenwa_sip_transactions {}",
            self.transactions.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP denwa_calls_total Finished calls, by disposition.\n# TYPE denwa_calls_total counter"
        );
        for (i, d) in DISPOSITIONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "denwa_calls_total{{disposition=\"{}\"}} {}",
                d.as_str(),
                self.calls_by_disposition[i].load(Relaxed)
            );
        }
        write_simple(
            out,
            &[
                (
                    "denwa_vm_mail_sent_total",
                    "counter",
                    "Voicemail e-mails sent.",
                    self.vm_mail_sent.load(Relaxed),
                ),
                (
                    "denwa_vm_mail_failures_total",
                    "counter",
                    "Voicemail e-mail attempts that failed (each is retried with backoff).",
                    self.vm_mail_failures.load(Relaxed),
                ),
                (
                    "denwa_vm_mail_queue",
                    "gauge",
                    "Voicemail e-mails waiting in the outbox.",
                    self.vm_mail_queue.load(Relaxed).max(0) as u64,
                ),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP denwa_vm_failures_total Voicemail messages and greetings that could not be written (the caller heard \"mailbox full\").\n# TYPE denwa_vm_failures_total counter"
        );
        for (i, r) in engine::vm_disk::VM_FAILURE_REASONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "denwa_vm_failures_total{{reason=\"{r}\"}} {}",
                self.vm_failures[i].load(Relaxed)
            );
        }
    }
}

/// Appends unlabelled metrics, each `(name, "counter" | "gauge", help, value)`, in Prometheus
/// text format.
pub fn write_simple(out: &mut String, rows: &[(&str, &str, &str, u64)]) {
    for (name, kind, help, v) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        let mut c = engine::Counters::default();
        c.requests[0] = 1; // INVITE
        c.requests[METHODS.len() - 1] = 1; // other
        c.responses[486 - 100] = 1;
        c.calls[2] = 1; // BUSY
        c.vm_failures[0] = 2; // disk-full
        m.publish_engine(&c);
        let mut s = String::new();
        m.render(&mut s);
        assert!(s.contains("denwa_sip_requests_received_total{method=\"INVITE\"} 1"));
        assert!(s.contains("denwa_sip_requests_received_total{method=\"other\"} 1"));
        assert!(s.contains("denwa_sip_responses_sent_total{code=\"486\"} 1"));
        assert!(s.contains("denwa_calls_total{disposition=\"BUSY\"} 1"));
        assert!(s.contains("denwa_sip_transactions 0"));
        assert!(s.contains("\ndenwa_vm_failures_total{reason=\"disk-full\"} 2\n"));
        assert!(s.contains("\ndenwa_vm_failures_total{reason=\"error\"} 0\n"));
        m.inc_tcp_refused();
        m.inc_log_suppressed();
        let mut s = String::new();
        m.render(&mut s);
        assert!(s.contains("denwa_sip_tcp_refused_total 1"));
        assert!(s.contains("denwa_log_lines_suppressed_total 1"));
        assert!(s.contains("denwa_sip_tcp_connections 0"));
    }
}
