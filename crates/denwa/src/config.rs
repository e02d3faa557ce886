//! Node-local bootstrap configuration: defaults, then the TOML file, then the `node.*` settings
//! saved in the database (`Config::apply_saved`), then `DENWA_*` variables, then flags.
//!
//! The file's `[transport]` table sets the SIP transport limits (keys and ranges:
//! `pbx::transport_limits::SPECS`); they are read from the file only.
//!
//! Everything else (extensions, timeouts, routes) lives in the database: see `denwa setting list`
//! and docs/operations.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Default SIP listen address (UDP and TCP).
pub const DEFAULT_SIP_LISTEN: &str = "0.0.0.0:5060";
/// Default HTTP listen address (panel, API, /healthz, /metrics).
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:8080";
/// Default RTP port range.
pub const DEFAULT_RTP_PORTS: (u16, u16) = (10000, 20000);

/// The TOML file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub sip_t1_ms: Option<u64>,
    pub relay_threads: Option<usize>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub sip_listen: Option<Vec<String>>,
    pub http_listen: Option<String>,
    pub rtp_ports: Option<String>,
    pub advertise: Option<String>,
    pub node_name: Option<String>,
    pub log_level: Option<String>,
    /// SIP transport limits (`[transport]`, keys in `pbx::transport_limits::SPECS`).
    pub transport: Option<toml::Table>,
}

/// Values given on the command line (None = not given).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub sip_listen: Vec<String>,
    pub http_listen: Option<String>,
    pub rtp_ports: Option<String>,
    pub advertise: Option<String>,
    pub node_name: Option<String>,
    pub log_level: Option<String>,
    pub sip_t1_ms: Option<u64>,
    pub relay_threads: Option<usize>,
}

/// The resolved configuration of this node.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub sip_listen: Vec<SocketAddr>,
    pub http_listen: SocketAddr,
    pub rtp_ports: (u16, u16),
    pub advertise: Option<std::net::IpAddr>,
    pub node_name: String,
    pub log_level: String,
    pub sip_t1_ms: Option<u64>,
    /// Media relay threads; `None` = half the CPUs this process may use, at least one.
    pub relay_threads: Option<usize>,
    /// SIP transport limits: the defaults with the file's `[transport]` keys applied.
    pub transport: pbx::transport::TransportLimits,
}

/// Upper bound for `relay_threads`: more threads than this only add wake-ups.
pub const MAX_RELAY_THREADS: usize = 64;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A number from the flag, else the environment variable `var` (an error naming the variable
/// and `expected` when it does not parse), else the file.
fn numeric<T>(flag: Option<T>, var: &str, file: Option<T>, expected: &str) -> Result<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    if flag.is_some() {
        return Ok(flag);
    }
    match env(var) {
        Some(v) => v
            .parse()
            .map(Some)
            .with_context(|| format!("{var} {v:?}: expected {expected}")),
        None => Ok(file),
    }
}

/// Parse `LOW-HIGH` into an even-aligned RTP port range.
pub fn parse_rtp_ports(s: &str) -> Result<(u16, u16)> {
    let (lo, hi) = s
        .split_once('-')
        .with_context(|| format!("RTP port range {s:?}: expected LOW-HIGH, e.g. 10000-20000"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .with_context(|| format!("RTP port range {s:?}: {lo:?} is not a port number"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .with_context(|| format!("RTP port range {s:?}: {hi:?} is not a port number"))?;
    if lo < 1024 || hi <= lo || hi - lo < 3 {
        bail!(
            "RTP port range {s:?}: need 1024 <= LOW < HIGH with room for at least two port pairs"
        );
    }
    Ok((lo, hi))
}

/// Parse a listen address; a bare IP gets the given default port.
pub fn parse_listen(s: &str, default_port: u16) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        return Ok(SocketAddr::new(ip, default_port));
    }
    bail!("listen address {s:?}: expected IP:PORT (e.g. 0.0.0.0:5060 or [::]:5060)")
}

impl Config {
    /// Resolve defaults < TOML file < environment < flags.
    pub fn load(o: &Overrides) -> Result<Config> {
        let path = o
            .config
            .clone()
            .or_else(|| env("DENWA_CONFIG").map(PathBuf::from));
        let file = match &path {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let data_dir = o
            .data_dir
            .clone()
            .or_else(|| env("DENWA_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("denwa-data"));
        let database_url = o
            .database_url
            .clone()
            .or_else(|| env("DENWA_DATABASE_URL"))
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("denwa.db").display()));
        let sip_listen_raw: Vec<String> = if !o.sip_listen.is_empty() {
            o.sip_listen.clone()
        } else if let Some(v) = env("DENWA_SIP_LISTEN") {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            file.sip_listen
                .unwrap_or_else(|| vec![DEFAULT_SIP_LISTEN.to_string()])
        };
        let sip_listen = sip_listen_raw
            .iter()
            .map(|s| parse_listen(s, 5060))
            .collect::<Result<Vec<_>>>()?;
        if sip_listen.is_empty() {
            bail!("at least one SIP listen address is needed");
        }
        let http_listen = parse_listen(
            &o.http_listen
                .clone()
                .or_else(|| env("DENWA_HTTP_LISTEN"))
                .or(file.http_listen)
                .unwrap_or_else(|| DEFAULT_HTTP_LISTEN.to_string()),
            8080,
        )?;
        let rtp_ports = match o
            .rtp_ports
            .clone()
            .or_else(|| env("DENWA_RTP_PORTS"))
            .or(file.rtp_ports)
        {
            Some(s) => parse_rtp_ports(&s)?,
            None => DEFAULT_RTP_PORTS,
        };
        let advertise = match o
            .advertise
            .clone()
            .or_else(|| env("DENWA_ADVERTISE"))
            .or(file.advertise)
        {
            Some(s) => Some(
                s.parse()
                    .with_context(|| format!("advertise address {s:?}: expected an IP address"))?,
            ),
            None => None,
        };
        let node_name = o
            .node_name
            .clone()
            .or_else(|| env("DENWA_NODE_NAME"))
            .or(file.node_name)
            .unwrap_or_else(default_node_name);
        let log_level = o
            .log_level
            .clone()
            .or_else(|| env("DENWA_LOG_LEVEL"))
            .or(file.log_level)
            .unwrap_or_else(|| "info".to_string());
        let sip_t1_ms = numeric(
            o.sip_t1_ms,
            "DENWA_SIP_T1_MS",
            file.sip_t1_ms,
            "milliseconds",
        )?;
        if let Some(t) = sip_t1_ms
            && !(10..=10_000).contains(&t)
        {
            bail!("SIP T1 of {t} ms is out of range 10..=10000");
        }
        let relay_threads = numeric(
            o.relay_threads,
            "DENWA_RELAY_THREADS",
            file.relay_threads,
            "a number of threads",
        )?;
        if let Some(n) = relay_threads
            && !(1..=MAX_RELAY_THREADS).contains(&n)
        {
            bail!("relay threads {n} is out of range 1..={MAX_RELAY_THREADS}");
        }
        let transport = transport_limits(file.transport.as_ref()).with_context(|| match &path {
            Some(p) => format!("config file {}", p.display()),
            None => "config".to_string(),
        })?;
        Ok(Config {
            data_dir,
            database_url,
            sip_listen,
            http_listen,
            rtp_ports,
            advertise,
            node_name,
            log_level,
            sip_t1_ms,
            relay_threads,
            transport,
        })
    }
}

/// The SIP transport limits: defaults, with each key of the file's `[transport]` table checked
/// against `pbx::transport_limits::SPECS` (an unknown key, a value that is no whole number or
/// one out of range is an error naming the key).
fn transport_limits(table: Option<&toml::Table>) -> Result<pbx::transport::TransportLimits> {
    let mut limits = pbx::transport::TransportLimits::default();
    for (key, value) in table.into_iter().flatten() {
        let Some(n) = value.as_integer() else {
            bail!("transport.{key} = {value}: expected a whole number");
        };
        pbx::transport_limits::set(&mut limits, key, n).map_err(anyhow::Error::msg)?;
    }
    Ok(limits)
}

/// Node settings saved in the database (`node.*` keys), each `None` when not set.
#[derive(Debug, Default, Clone)]
pub struct NodeSettings {
    pub sip_listen: Option<String>,
    pub advertise: Option<String>,
    pub rtp_ports: Option<String>,
    pub log_level: Option<String>,
}

impl Config {
    /// Applies database-saved node settings where no flag or `DENWA_*` variable gave the value
    /// (flags > environment > database > TOML file > defaults). Returns what it applied.
    pub fn apply_saved(&mut self, o: &Overrides, s: &NodeSettings) -> Result<Vec<&'static str>> {
        let mut applied = Vec::new();
        if let Some(v) = &s.sip_listen
            && o.sip_listen.is_empty()
            && env("DENWA_SIP_LISTEN").is_none()
        {
            self.sip_listen = v
                .split(',')
                .map(|a| parse_listen(a.trim(), 5060))
                .collect::<Result<Vec<_>>>()?;
            applied.push("sip_listen");
        }
        if let Some(v) = &s.advertise
            && o.advertise.is_none()
            && env("DENWA_ADVERTISE").is_none()
        {
            self.advertise = Some(
                v.trim()
                    .parse()
                    .with_context(|| format!("advertise address {v:?}"))?,
            );
            applied.push("advertise");
        }
        if let Some(v) = &s.rtp_ports
            && o.rtp_ports.is_none()
            && env("DENWA_RTP_PORTS").is_none()
        {
            self.rtp_ports = parse_rtp_ports(v)?;
            applied.push("rtp_ports");
        }
        if let Some(v) = &s.log_level
            && o.log_level.is_none()
            && env("DENWA_LOG_LEVEL").is_none()
        {
            self.log_level = v.clone();
            applied.push("log_level");
        }
        Ok(applied)
    }
}

fn read_file(p: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading config file {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", p.display()))
}

fn default_node_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "denwa".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_range_parses_and_rejects() {
        assert_eq!(parse_rtp_ports("10000-20000").unwrap(), (10000, 20000));
        assert!(parse_rtp_ports("20000-10000").is_err());
        assert!(parse_rtp_ports("80-90").is_err());
        assert!(parse_rtp_ports("x-1").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1", 5060).unwrap().to_string(),
            "127.0.0.1:5060"
        );
        assert_eq!(
            parse_listen("[::1]:5070", 5060).unwrap().to_string(),
            "[::1]:5070"
        );
        assert!(parse_listen("localhost:5060", 5060).is_err());
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("denwa.toml");
        std::fs::write(
            &f,
            "sip_listen = [\"127.0.0.1:5070\"]\nrtp_ports = \"30000-30100\"\n",
        )
        .unwrap();
        let o = Overrides {
            config: Some(f.clone()),
            ..Default::default()
        };
        let c = Config::load(&o).unwrap();
        assert_eq!(c.sip_listen[0].port(), 5070);
        assert_eq!(c.rtp_ports, (30000, 30100));
        let o = Overrides {
            config: Some(f),
            rtp_ports: Some("40000-40010".into()),
            ..Default::default()
        };
        assert_eq!(Config::load(&o).unwrap().rtp_ports, (40000, 40010));
    }

    #[test]
    fn saved_settings_lose_to_flags_and_beat_defaults() {
        let saved = NodeSettings {
            rtp_ports: Some("30000-30100".into()),
            advertise: Some("203.0.113.5".into()),
            ..Default::default()
        };
        let o = Overrides {
            rtp_ports: Some("40000-40010".into()),
            ..Default::default()
        };
        let mut c = Config::load(&o).unwrap();
        let applied = c.apply_saved(&o, &saved).unwrap();
        assert_eq!(c.rtp_ports, (40000, 40010));
        assert_eq!(c.advertise, Some("203.0.113.5".parse().unwrap()));
        assert_eq!(applied, ["advertise"]);
        let bad = NodeSettings {
            sip_listen: Some("nonsense".into()),
            ..Default::default()
        };
        assert!(
            Config::load(&Overrides::default())
                .unwrap()
                .apply_saved(&Overrides::default(), &bad)
                .is_err()
        );
    }

    #[test]
    fn relay_threads_from_file_flag_and_range() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("denwa.toml");
        std::fs::write(&f, "relay_threads = 3\n").unwrap();
        let file_only = Overrides {
            config: Some(f.clone()),
            ..Default::default()
        };
        assert_eq!(Config::load(&file_only).unwrap().relay_threads, Some(3));
        let flag = Overrides {
            config: Some(f),
            relay_threads: Some(1),
            ..Default::default()
        };
        assert_eq!(Config::load(&flag).unwrap().relay_threads, Some(1));
        assert_eq!(
            Config::load(&Overrides::default()).unwrap().relay_threads,
            None
        );
        std::fs::write(dir.path().join("zero.toml"), "relay_threads = 0\n").unwrap();
        let zero = Overrides {
            config: Some(dir.path().join("zero.toml")),
            ..Default::default()
        };
        let e = Config::load(&zero).unwrap_err().to_string();
        assert!(e.contains("relay threads 0 is out of range"), "{e}");
    }

    #[test]
    fn transport_limits_from_the_file_are_checked_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let load = |name: &str, text: &str| {
            let f = dir.path().join(name);
            std::fs::write(&f, text).unwrap();
            Config::load(&Overrides {
                config: Some(f),
                ..Default::default()
            })
        };
        let c = load(
            "ok.toml",
            "[transport]\ntcp_max_per_source = 4\ntcp_idle_timeout_s = 120\nudp_send_queue = 64\n",
        )
        .unwrap();
        assert_eq!(c.transport.tcp_max_per_source, 4);
        assert_eq!(
            c.transport.tcp_idle_timeout,
            std::time::Duration::from_secs(120)
        );
        assert_eq!(c.transport.udp_send_queue, 64);
        assert_eq!(
            c.transport.tcp_max_total, 4_096,
            "the rest keep their defaults"
        );
        let d = Config::load(&Overrides::default()).unwrap();
        assert_eq!(d.transport.tcp_max_per_source, 32);
        for (name, text, says) in [
            (
                "range.toml",
                "[transport]\ntcp_max_total = 0\n",
                "transport.tcp_max_total = 0 is out of range 1..=1048576",
            ),
            (
                "unknown.toml",
                "[transport]\ntcp_max_conns = 9\n",
                "transport.tcp_max_conns: unknown key",
            ),
            (
                "text.toml",
                "[transport]\ntcp_write_timeout_s = \"30s\"\n",
                "transport.tcp_write_timeout_s = \"30s\": expected a whole number",
            ),
        ] {
            let e = format!("{:#}", load(name, text).unwrap_err());
            assert!(e.contains(says), "{name}: {e}");
            assert!(e.contains(name), "the file is named: {e}");
        }
    }

    #[test]
    fn unknown_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("denwa.toml");
        std::fs::write(&f, "sip_lissten = []\n").unwrap();
        let o = Overrides {
            config: Some(f),
            ..Default::default()
        };
        assert!(Config::load(&o).is_err());
    }
}
