//! Locating a trunk's servers (RFC 3263): an address is used as it is; a name with a port is
//! looked up as A/AAAA; a name without one goes NAPTR (`SIP+D2U`/`SIP+D2T`) → SRV → A/AAAA,
//! or, without NAPTR records, SRV `_sip._udp`/`_sip._tcp` → A/AAAA, or plain A/AAAA on 5060.
//! The answers come back in the order calls try them: NAPTR order and preference, SRV priority,
//! then weight (heaviest first: deterministic, where RFC 2782 draws at random — with the
//! failover over the whole list that follows, a random draw would only shuffle which server a
//! call tries first). Every lookup is bounded in time and the list in length.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use engine::outside::TrunkTransport;
use hickory_resolver::TokioAsyncResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::rr::{RData, RecordType};
use tracing::{debug, warn};

/// Most addresses kept for one trunk.
pub const MAX_ADDRS: usize = 8;
/// Time allowed for resolving one trunk, all lookups included.
const BUDGET: Duration = Duration::from_secs(5);

/// A DNS resolver for trunk hosts.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioAsyncResolver,
}

fn opts() -> ResolverOpts {
    let mut o = ResolverOpts::default();
    o.timeout = Duration::from_secs(2);
    o.attempts = 2;
    o
}

impl Resolver {
    /// The system's resolver (`/etc/resolv.conf`); without one, a resolver that finds nothing
    /// but literal addresses and `/etc/hosts`-free names fail.
    pub fn system() -> Resolver {
        let inner = match hickory_resolver::system_conf::read_system_conf() {
            Ok((cfg, _)) => TokioAsyncResolver::tokio(cfg, opts()),
            Err(e) => {
                warn!(error = %e, "no usable /etc/resolv.conf: trunk host names will not resolve");
                TokioAsyncResolver::tokio(ResolverConfig::from_parts(None, vec![], vec![]), opts())
            }
        };
        Resolver { inner }
    }

    /// A resolver asking one DNS server (tests, or an operator's own server).
    pub fn with_server(server: SocketAddr) -> Resolver {
        let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
        let cfg = ResolverConfig::from_parts(None, vec![], group);
        Resolver {
            inner: TokioAsyncResolver::tokio(cfg, opts()),
        }
    }

    /// Where a trunk's requests go, in the order to try them (empty when nothing resolves).
    pub async fn locate(
        &self,
        host: &str,
        port: Option<u16>,
        transport: TrunkTransport,
    ) -> Vec<SocketAddr> {
        let host = host.trim_matches(['[', ']']);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![SocketAddr::new(ip, port.unwrap_or(5060))];
        }
        match tokio::time::timeout(BUDGET, self.locate_name(host, port, transport)).await {
            Ok(mut v) => {
                let mut seen = std::collections::HashSet::new();
                v.retain(|a| seen.insert(*a));
                v.truncate(MAX_ADDRS);
                v
            }
            Err(_) => {
                warn!(%host, "trunk host lookup timed out");
                Vec::new()
            }
        }
    }

    async fn locate_name(
        &self,
        host: &str,
        port: Option<u16>,
        transport: TrunkTransport,
    ) -> Vec<SocketAddr> {
        if let Some(p) = port {
            return self.addresses(host, p).await;
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        // NAPTR: the provider says which transports it offers and where their SRV records are.
        let service: &[u8] = match transport {
            TrunkTransport::Udp => b"SIP+D2U",
            TrunkTransport::Tcp => b"SIP+D2T",
        };
        let mut srv_names: Vec<(u16, u16, String)> = Vec::new();
        if let Ok(l) = self.inner.lookup(fqdn.as_str(), RecordType::NAPTR).await {
            for r in l.iter() {
                if let RData::NAPTR(n) = r
                    && n.services().eq_ignore_ascii_case(service)
                    && n.flags().eq_ignore_ascii_case(b"s")
                {
                    srv_names.push((n.order(), n.preference(), n.replacement().to_ascii()));
                }
            }
        }
        srv_names.sort();
        if srv_names.is_empty() {
            let proto = match transport {
                TrunkTransport::Udp => "_udp",
                TrunkTransport::Tcp => "_tcp",
            };
            srv_names.push((0, 0, format!("_sip.{proto}.{fqdn}")));
        }
        let mut out = Vec::new();
        for (_, _, name) in srv_names {
            let Ok(srv) = self.inner.srv_lookup(name.as_str()).await else {
                continue;
            };
            let mut records: Vec<(u16, std::cmp::Reverse<u16>, u16, String)> = srv
                .iter()
                .map(|s| {
                    (
                        s.priority(),
                        std::cmp::Reverse(s.weight()),
                        s.port(),
                        s.target().to_ascii(),
                    )
                })
                .collect();
            records.sort();
            for (_, _, p, target) in records {
                if target == "." {
                    continue; // "service not available here"
                }
                out.extend(self.addresses(&target, p).await);
                if out.len() >= MAX_ADDRS {
                    return out;
                }
            }
        }
        if out.is_empty() {
            debug!(%host, "no NAPTR/SRV records: using A/AAAA on 5060");
            out = self.addresses(host, 5060).await;
        }
        out
    }

    async fn addresses(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        match self.inner.lookup_ip(host).await {
            Ok(ips) => {
                let mut v: Vec<SocketAddr> =
                    ips.iter().map(|ip| SocketAddr::new(ip, port)).collect();
                // IPv4 first: most providers and SBCs are reached over IPv4.
                v.sort_by_key(|a| !a.is_ipv4());
                v
            }
            Err(e) => {
                debug!(%host, error = %e, "host does not resolve");
                Vec::new()
            }
        }
    }
}
