//! The RTP/RTCP port-pair pool that the relay and the terminating media engine share.
//!
//! Both bind their sockets from one configured range through one [`PortPool`], so they walk the
//! range with one cursor and never hand out the same pair twice: a pair counts as taken exactly
//! while a socket holds it (the kernel refuses a second bind), and the shared cursor keeps the two
//! users from racing each other over the same free ports.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::relay::Error;

/// DSCP EF (46) in the IPv4 TOS byte: voice gets expedited forwarding where the network honours it.
const TOS_EF: u32 = 46 << 2;

/// Even/odd RTP/RTCP port pairs from `min..=max`, bound on demand.
#[derive(Debug)]
pub struct PortPool {
    min: u16,
    max: u16,
    cursor: AtomicU32,
}

impl PortPool {
    /// A pool over `min..=max` (the RTP port of a pair is even, RTCP is RTP + 1).
    pub fn new(min: u16, max: u16) -> PortPool {
        // A random start keeps a restarted node from reusing the ports of its previous calls.
        PortPool {
            min,
            max,
            cursor: AtomicU32::new(rand::random::<u32>() >> 1),
        }
    }

    /// The configured range.
    pub fn range(&self) -> (u16, u16) {
        (self.min, self.max)
    }

    /// Binds the next free RTP/RTCP pair on `ip` (non-blocking sockets, DSCP EF where allowed).
    pub fn bind_pair(&self, ip: IpAddr) -> Result<(UdpSocket, UdpSocket), Error> {
        let first = (u32::from(self.min) + 1) & !1;
        let last = u32::from(self.max);
        if first + 1 > last {
            return Err(Error::InvalidRange {
                min: self.min,
                max: self.max,
            });
        }
        let pairs = (last - first).div_ceil(2);
        for _ in 0..pairs {
            let i = self.cursor.fetch_add(1, Relaxed) % pairs;
            let port = (first + 2 * i) as u16;
            let rtp_addr = SocketAddr::new(ip, port);
            let rtp = match bind_udp(rtp_addr) {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(source) => {
                    return Err(Error::Bind {
                        addr: rtp_addr,
                        source,
                    });
                }
            };
            let rtcp_addr = SocketAddr::new(ip, port + 1);
            match bind_udp(rtcp_addr) {
                Ok(rtcp) => return Ok((rtp, rtcp)),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(source) => {
                    return Err(Error::Bind {
                        addr: rtcp_addr,
                        source,
                    });
                }
            }
        }
        Err(Error::PortsExhausted {
            ip,
            min: self.min,
            max: self.max,
        })
    }
}

/// Binds the given RTP port and RTP + 1 on their address with `IP_FREEBIND` (the address may
/// not be on any interface yet: a standby taking over a call binds its relay ports before it
/// adds the application address, so the first packet finds a socket). The pair is outside
/// the pool's cursor: the ports are whatever the peer node had chosen.
pub fn bind_pair_at(rtp: SocketAddr) -> Result<(UdpSocket, UdpSocket), Error> {
    let rtcp = SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1));
    if rtp.port() == 0 || rtcp.port() == 0 {
        return Err(Error::Bind {
            addr: rtp,
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a usable RTP port"),
        });
    }
    let one =
        |addr: SocketAddr| bind_udp_freebind(addr).map_err(|source| Error::Bind { addr, source });
    Ok((one(rtp)?, one(rtcp)?))
}

fn bind_udp_freebind(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    set_freebind(&s, addr.is_ipv4())?;
    s.set_nonblocking(true)?;
    if addr.is_ipv4() {
        let _ = s.set_tos(TOS_EF);
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Sets `IP_FREEBIND` (IPv4) or `IPV6_FREEBIND` on `s`: it may then bind an address that is
/// on no interface yet (an application address before a take-over adds it).
pub fn set_freebind(s: &socket2::Socket, ipv4: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let on: libc::c_int = 1;
    let (level, name) = if ipv4 {
        (libc::IPPROTO_IP, libc::IP_FREEBIND)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_FREEBIND)
    };
    // SAFETY: setsockopt reads `on` (a c_int of the given size) during the call only.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_nonblocking(true)?;
    if addr.is_ipv4() {
        // Marking is best effort: some containers forbid it, and audio works without it.
        let _ = s.set_tos(TOS_EF);
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_binds_at_given_ports_even_on_an_absent_address() {
        // 192.0.2.0/24 (TEST-NET-1) is on no interface here: IP_FREEBIND lets the bind succeed.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe");
        let port = probe.local_addr().expect("addr").port() & !1;
        drop(probe);
        let at = SocketAddr::from(([192, 0, 2, 10], port.max(2)));
        let (rtp, rtcp) = bind_pair_at(at).expect("freebind pair");
        assert_eq!(rtp.local_addr().expect("addr"), at);
        assert_eq!(rtcp.local_addr().expect("addr").port(), at.port() + 1);
        assert!(
            bind_pair_at(at).is_err(),
            "the same pair cannot be bound twice"
        );
        assert!(bind_pair_at(SocketAddr::from(([127, 0, 0, 1], 0))).is_err());
    }

    #[test]
    fn pairs_are_even_odd_and_never_shared() {
        let pool = PortPool::new(41000, 41007);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut held = Vec::new();
        let mut ports = Vec::new();
        while let Ok((rtp, rtcp)) = pool.bind_pair(ip) {
            let p = rtp.local_addr().expect("addr").port();
            assert_eq!(p % 2, 0);
            assert_eq!(rtcp.local_addr().expect("addr").port(), p + 1);
            ports.push(p);
            held.push((rtp, rtcp));
            assert!(held.len() <= 4, "more pairs than the range holds");
        }
        ports.sort_unstable();
        ports.dedup();
        // Another test or process may hold some; whatever we got is distinct and in range.
        assert_eq!(ports.len(), held.len());
        assert!(ports.iter().all(|p| (41000..=41006).contains(p)));
        assert!(matches!(
            pool.bind_pair(ip),
            Err(Error::PortsExhausted { .. })
        ));
        drop(held);
        assert!(pool.bind_pair(ip).is_ok(), "released pairs are free again");
        assert!(matches!(
            PortPool::new(41001, 41001).bind_pair(ip),
            Err(Error::InvalidRange { .. })
        ));
    }
}
