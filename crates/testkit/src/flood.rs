//! Helpers for abuse tests: many sockets from many loopback source addresses, a raised
//! descriptor limit, and a small HTTP GET for `/metrics`.
//!
//! Every address in 127.0.0.0/8 reaches `lo` on Linux, so binding a socket to 127.0.0.N before
//! sending simulates a distinct (or spoofed) source without any network setup.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;

/// Raises this process's soft `RLIMIT_NOFILE` to `want` (or the hard limit, if lower) and returns
/// the soft limit now in force. A load generator's default of 1,024 would otherwise cap a
/// connection flood before the server's own limits are reached.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            let new = libc::rlimit {
                rlim_cur: want.min(lim.rlim_max),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
                lim = new;
            }
        }
    }
    lim.rlim_cur
}

/// The loopback address 127.0.0.`n`.
pub fn loopback(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// A TCP connection to `dest` from the local address `source` (any port), with a connect
/// timeout. std's `TcpStream` cannot bind before connecting, so this goes through libc.
pub fn tcp_connect_from(
    source: Ipv4Addr,
    dest: SocketAddrV4,
    timeout: Duration,
) -> io::Result<TcpStream> {
    fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        }
    }
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket owned by the TcpStream built from it (closed on every error path);
    // the sockaddr structs live across the calls that read them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let src = sockaddr(SocketAddrV4::new(source, 0));
        if libc::bind(fd, (&src as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(io::Error::last_os_error());
        }
        // Non-blocking connect, then wait for writability with poll: a bounded connect.
        stream.set_nonblocking(true)?;
        let dst = sockaddr(dest);
        if libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), len) != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
            match libc::poll(&mut pfd, 1, ms) {
                0 => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
                n if n < 0 => return Err(io::Error::last_os_error()),
                _ => {}
            }
            if let Some(e) = stream.take_error()? {
                return Err(e);
            }
        }
        stream.set_nonblocking(false)?;
        Ok(stream)
    }
}

/// What became of a connection a server accepted at the TCP level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Still open: reading timed out.
    Open,
    /// Closed by the server (EOF or reset).
    Closed,
}

/// Reads once with a short timeout to tell an open connection from one the server closed.
pub fn probe(stream: &mut TcpStream, wait: Duration) -> ConnState {
    let _ = stream.set_read_timeout(Some(wait));
    let mut b = [0u8; 512];
    match stream.read(&mut b) {
        Ok(0) => ConnState::Closed,
        Ok(_) => ConnState::Open,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            ConnState::Open
        }
        Err(_) => ConnState::Closed,
    }
}

/// `GET path` over HTTP/1.0; the body, or `None` on any failure.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let body = text.split_once("\r\n\r\n")?.1;
    Some(body.to_owned())
}

/// The value of an unlabelled metric in Prometheus text, e.g. `denwa_sip_tcp_refused_total`.
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse::<f64>().ok().map(|x| x as u64))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unlabelled_metrics() {
        let t = "# HELP a x\n# TYPE a counter\na 12\nb{c=\"d\"} 3\nbb 4.0\n";
        assert_eq!(metric(t, "a"), Some(12));
        assert_eq!(metric(t, "bb"), Some(4));
        assert_eq!(metric(t, "b"), None);
    }

    #[test]
    fn connects_from_another_loopback_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let SocketAddr::V4(a) = l.local_addr().expect("addr") else {
            panic!("v4")
        };
        let _c = tcp_connect_from(loopback(9), a, Duration::from_secs(2)).expect("connect");
        let (_s, peer) = l.accept().expect("accept");
        assert_eq!(peer.ip(), std::net::IpAddr::V4(loopback(9)));
        assert!(raise_nofile(256) >= 256);
    }
}
