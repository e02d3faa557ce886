//! The SIP transport limits an operator may set in the config file's `[transport]` table: one
//! table of keys with units and ranges, read by the config loader (which refuses an unknown key
//! or a value out of range, naming it, before anything binds), shown on `/metrics` as
//! `denwa_sip_transport_limit{name=…}` and in the startup log. Defaults are those of
//! [`TransportLimits::default`], so they are defined once.
//!
//! These are node-local bootstrap values read when the sockets are bound, not database
//! settings (`engine::settings`): each node of a pair may differ, and a value that would keep
//! the node from serving must be refused before it starts, not after.

use std::fmt::Write as _;
use std::time::Duration;

use crate::transport::TransportLimits;

/// One settable limit.
pub struct LimitSpec {
    /// Key in the `[transport]` table (and the `name` label on `/metrics`).
    pub key: &'static str,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// Unit, for documentation and messages.
    pub unit: &'static str,
    /// What it bounds.
    pub help: &'static str,
    get: fn(&TransportLimits) -> u64,
    set: fn(&mut TransportLimits, u64),
}

impl LimitSpec {
    /// The value in `l`.
    pub fn get(&self, l: &TransportLimits) -> u64 {
        (self.get)(l)
    }

    /// The default ([`TransportLimits::default`]).
    pub fn default_value(&self) -> u64 {
        (self.get)(&TransportLimits::default())
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// Every settable transport limit, in documentation order.
pub const SPECS: &[LimitSpec] = &[
    LimitSpec {
        key: "tcp_max_per_source",
        min: 1,
        max: 65_535,
        unit: "connections",
        help: "open TCP connections accepted from one source IP; more are reset at once",
        get: |l| l.tcp_max_per_source as u64,
        set: |l, v| l.tcp_max_per_source = v as usize,
    },
    LimitSpec {
        key: "tcp_max_total",
        min: 1,
        max: 1_048_576,
        unit: "connections",
        help: "open TCP connections in all, accepted and outbound",
        get: |l| l.tcp_max_total as u64,
        set: |l, v| l.tcp_max_total = v as usize,
    },
    LimitSpec {
        key: "tcp_message_timeout_s",
        min: 1,
        max: 600,
        unit: "seconds",
        help: "time from connecting to the first complete SIP message, and from the first bytes of any later message to its end",
        get: |l| secs(l.tcp_message_timeout),
        set: |l, v| l.tcp_message_timeout = Duration::from_secs(v),
    },
    LimitSpec {
        key: "tcp_idle_timeout_s",
        min: 10,
        max: 86_400,
        unit: "seconds",
        help: "a connection that carried SIP and then receives nothing this long is closed",
        get: |l| secs(l.tcp_idle_timeout),
        set: |l, v| l.tcp_idle_timeout = Duration::from_secs(v),
    },
    LimitSpec {
        key: "tcp_write_timeout_s",
        min: 1,
        max: 600,
        unit: "seconds",
        help: "one write to a TCP peer; a peer that stops reading is disconnected after it",
        get: |l| secs(l.tcp_write_timeout),
        set: |l, v| l.tcp_write_timeout = Duration::from_secs(v),
    },
    LimitSpec {
        key: "tcp_connect_timeout_s",
        min: 1,
        max: 120,
        unit: "seconds",
        help: "one outbound TCP connect",
        get: |l| secs(l.tcp_connect_timeout),
        set: |l, v| l.tcp_connect_timeout = Duration::from_secs(v),
    },
    LimitSpec {
        key: "tcp_max_connecting",
        min: 1,
        max: 65_535,
        unit: "connects",
        help: "outbound TCP connects in flight at once",
        get: |l| l.tcp_max_connecting as u64,
        set: |l, v| l.tcp_max_connecting = v as usize,
    },
    LimitSpec {
        key: "udp_send_queue",
        min: 1,
        max: 65_536,
        unit: "datagrams",
        help: "datagrams per UDP socket waiting for room in a full kernel send buffer; beyond it they are dropped and counted",
        get: |l| l.udp_send_queue as u64,
        set: |l, v| l.udp_send_queue = v as usize,
    },
];

/// The spec of `key`.
pub fn spec(key: &str) -> Option<&'static LimitSpec> {
    SPECS.iter().find(|s| s.key == key)
}

/// Sets `key` to `value` in `l`, or says precisely why not (unknown key, out of range); the
/// message names the key as `transport.KEY`.
pub fn set(l: &mut TransportLimits, key: &str, value: i64) -> Result<(), String> {
    let Some(s) = spec(key) else {
        let known: Vec<&str> = SPECS.iter().map(|s| s.key).collect();
        return Err(format!(
            "transport.{key}: unknown key; known keys: {}",
            known.join(", ")
        ));
    };
    match u64::try_from(value) {
        Ok(v) if (s.min..=s.max).contains(&v) => {
            (s.set)(l, v);
            Ok(())
        }
        _ => Err(format!(
            "transport.{key} = {value} is out of range {}..={} ({})",
            s.min, s.max, s.unit
        )),
    }
}

/// `key=value` pairs of every limit in `l`, for the startup log line.
pub fn summary(l: &TransportLimits) -> String {
    SPECS
        .iter()
        .map(|s| format!("{}={}", s.key, s.get(l)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The limits in force as Prometheus gauges (`denwa_sip_transport_limit{name="KEY"}`).
pub fn render_metrics(l: &TransportLimits, out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP denwa_sip_transport_limit SIP transport limits in force (config file [transport], docs/operations.md)."
    );
    let _ = writeln!(out, "# TYPE denwa_sip_transport_limit gauge");
    for s in SPECS {
        let _ = writeln!(
            out,
            "denwa_sip_transport_limit{{name=\"{}\"}} {}",
            s.key,
            s.get(l)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_and_its_default_is_in_range() {
        for s in SPECS {
            let d = s.default_value();
            assert!((s.min..=s.max).contains(&d), "{}: default {d}", s.key);
            for v in [s.min, s.max] {
                let mut l = TransportLimits::default();
                set(&mut l, s.key, v as i64).expect("in range");
                assert_eq!(s.get(&l), v, "{}", s.key);
            }
        }
    }

    #[test]
    fn out_of_range_and_unknown_keys_are_refused_by_name() {
        let mut l = TransportLimits::default();
        let e = set(&mut l, "tcp_max_per_source", 0).unwrap_err();
        assert_eq!(
            e,
            "transport.tcp_max_per_source = 0 is out of range 1..=65535 (connections)"
        );
        let e = set(&mut l, "tcp_idle_timeout_s", -5).unwrap_err();
        assert!(
            e.starts_with("transport.tcp_idle_timeout_s = -5 is out of range"),
            "{e}"
        );
        let e = set(&mut l, "tcp_idle_timeout", 60).unwrap_err();
        assert!(e.contains("transport.tcp_idle_timeout: unknown key"), "{e}");
        assert_eq!(l.tcp_max_per_source, 32, "a refused value changes nothing");
    }

    #[test]
    fn metrics_show_the_values_in_force() {
        let mut l = TransportLimits::default();
        set(&mut l, "udp_send_queue", 64).expect("set");
        set(&mut l, "tcp_idle_timeout_s", 120).expect("set");
        let mut s = String::new();
        render_metrics(&l, &mut s);
        assert!(
            s.contains("denwa_sip_transport_limit{name=\"udp_send_queue\"} 64\n"),
            "{s}"
        );
        assert!(s.contains("denwa_sip_transport_limit{name=\"tcp_idle_timeout_s\"} 120\n"));
        assert!(s.contains("denwa_sip_transport_limit{name=\"tcp_max_per_source\"} 32\n"));
        assert_eq!(s.matches("denwa_sip_transport_limit{").count(), SPECS.len());
    }

    /// docs/operations.md lists every key with its default and range.
    #[test]
    fn the_operations_guide_lists_every_key_with_default_and_range() {
        let doc = include_str!("../../../docs/operations.md");
        for s in SPECS {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", s.key)))
                .unwrap_or_else(|| panic!("docs/operations.md has no row for {}", s.key));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[2], s.default_value().to_string(), "{row}");
            assert_eq!(cells[3], format!("{}–{}", s.min, s.max), "{row}");
        }
    }
}
