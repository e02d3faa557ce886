//! Network namespaces as test hosts, and a ready-made NAT lab.
//!
//! [`Netns`] creates a namespace (loopback up) and deletes it on drop; commands run in it with
//! `ip netns exec`, and sockets can be opened inside it from this process. [`NatLab`] builds three
//! of them: `public` (where the PBX and non-NATed phones run), `router` (forwards and masquerades
//! with nftables) and `home` (a phone behind the NAT, private address, default route via the
//! router). Nothing is added to the host's own namespace. Needs root, iproute2 and nftables.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The server's address on the public side of a [`NatLab`] (TEST-NET-1, never routed).
pub const PUBLIC_SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The router's public address: what the server sees as the home phone's source.
pub const ROUTER_PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The router's address on the home LAN.
pub const ROUTER_LAN_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The home phone's private address.
pub const HOME_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// A namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `ip` is not installed.
    #[error(transparent)]
    Missing(#[from] crate::MissingBinary),
    /// A command could not run or failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr, or the spawn error.
        detail: String,
    },
}

/// A network namespace of our own; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `PREFIX-PID-N` with its loopback up.
    pub fn create(prefix: &str) -> Result<Netns, NetnsError> {
        crate::require_binary("ip")?;
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name, for `ip netns exec` and [`crate::baresip::PhoneConfig::netns`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `argv` inside the namespace and requires success.
    pub fn exec(&self, argv: &[&str]) -> Result<(), NetnsError> {
        let (program, args) = argv.split_first().ok_or_else(|| NetnsError::Command {
            command: String::new(),
            detail: "empty command".into(),
        })?;
        run(self.command(program).args(args))
    }

    /// A UDP socket bound to `addr` inside the namespace.
    pub fn udp_bind(&self, addr: SocketAddr) -> io::Result<UdpSocket> {
        in_netns(&self.name, || UdpSocket::bind(addr))
    }

    /// A TCP connection to `addr` opened from inside the namespace.
    pub fn tcp_connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        in_netns(&self.name, || TcpStream::connect_timeout(&addr, timeout))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` on a short-lived thread that has entered network namespace `ns`.
///
/// A socket belongs to the namespace it was created in, so sockets made by `f` keep working
/// after the thread ends; the caller's own threads never change namespace.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let path = Path::new("/run/netns").join(ns);
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = fs::File::open(&path)?;
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd; it changes only this (scoped) thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
    })
}

fn run(cmd: &mut Command) -> Result<(), NetnsError> {
    let line = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| NetnsError::Command {
        command: line.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetnsError::Command {
        command: line,
        detail: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// Three namespaces: `public` ⟷ `router` (NAT) ⟷ `home`. Addresses are the constants above.
#[derive(Debug)]
pub struct NatLab {
    /// Where the server (PBX) and directly reachable phones run; has [`PUBLIC_SERVER_IP`].
    pub public: Netns,
    /// Forwards between the two sides and masquerades the home side behind [`ROUTER_PUBLIC_IP`].
    pub router: Netns,
    /// A private LAN with one host at [`HOME_IP`], default route via [`ROUTER_LAN_IP`].
    pub home: Netns,
}

impl NatLab {
    /// Builds the lab; dropping it deletes the namespaces (and their veth pairs with them).
    pub fn create() -> Result<NatLab, NetnsError> {
        crate::require_binary("nft")?;
        let public = Netns::create("tk-pub")?;
        let router = Netns::create("tk-rtr")?;
        let home = Netns::create("tk-home")?;
        // Interface names are per namespace, so fixed short names are fine once moved.
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let (a, b) = (format!("tkp{n}a"), format!("tkp{n}b"));
        let (c, d) = (format!("tkh{n}a"), format!("tkh{n}b"));
        // Created inside the router namespace, so the host never sees them.
        router.exec(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])?;
        router.exec(&["ip", "link", "add", &c, "type", "veth", "peer", "name", &d])?;
        router.exec(&["ip", "link", "set", &b, "netns", public.name()])?;
        router.exec(&["ip", "link", "set", &d, "netns", home.name()])?;

        let cidr = |ip: Ipv4Addr| format!("{ip}/24");
        router.exec(&["ip", "addr", "add", &cidr(ROUTER_PUBLIC_IP), "dev", &a])?;
        router.exec(&["ip", "addr", "add", &cidr(ROUTER_LAN_IP), "dev", &c])?;
        router.exec(&["ip", "link", "set", &a, "up"])?;
        router.exec(&["ip", "link", "set", &c, "up"])?;
        router.exec(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        public.exec(&["ip", "addr", "add", &cidr(PUBLIC_SERVER_IP), "dev", &b])?;
        public.exec(&["ip", "link", "set", &b, "up"])?;
        home.exec(&["ip", "addr", "add", &cidr(HOME_IP), "dev", &d])?;
        home.exec(&["ip", "link", "set", &d, "up"])?;
        home.exec(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &ROUTER_LAN_IP.to_string(),
        ])?;
        router.exec(&["nft", "add", "table", "ip", "nat"])?;
        router.exec(&[
            "nft",
            "add chain ip nat postrouting { type nat hook postrouting priority 100 ; }",
        ])?;
        router.exec(&[
            "nft",
            "add",
            "rule",
            "ip",
            "nat",
            "postrouting",
            "oifname",
            &a,
            "masquerade",
        ])?;
        Ok(NatLab {
            public,
            router,
            home,
        })
    }

    /// The server's public address as an `IpAddr`.
    pub fn server_ip(&self) -> IpAddr {
        IpAddr::V4(PUBLIC_SERVER_IP)
    }

    /// The home phone's private address as an `IpAddr`.
    pub fn home_ip(&self) -> IpAddr {
        IpAddr::V4(HOME_IP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(ip), port)
    }

    #[test]
    fn namespace_is_isolated_and_deleted_on_drop() {
        let ns = Netns::create("tk-test").unwrap();
        let name = ns.name().to_owned();
        assert!(Path::new("/run/netns").join(&name).exists());
        // A port bound inside is still free outside.
        let port = crate::ports::free_port().unwrap();
        let _inside = ns.udp_bind(addr(Ipv4Addr::LOCALHOST, port)).unwrap();
        assert!(crate::ports::is_free(port));
        drop(ns);
        assert!(!Path::new("/run/netns").join(&name).exists());
    }

    #[test]
    fn home_traffic_leaves_masqueraded_and_replies_come_back() {
        let lab = NatLab::create().unwrap();
        let server = lab.public.udp_bind(addr(PUBLIC_SERVER_IP, 5060)).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let phone = lab.home.udp_bind(addr(HOME_IP, 5060)).unwrap();
        phone
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        phone
            .send_to(b"REGISTER", addr(PUBLIC_SERVER_IP, 5060))
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"REGISTER");
        // The server sees the router's public address, not the private one.
        assert_eq!(from.ip(), IpAddr::V4(ROUTER_PUBLIC_IP));
        // Replying to the observed address reaches the phone through the NAT binding.
        server.send_to(b"200 OK", from).unwrap();
        let (n, back) = phone.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"200 OK");
        assert_eq!(back, addr(PUBLIC_SERVER_IP, 5060));
        // The server cannot reach the private address directly: no route from the public side.
        let err = server.send_to(b"x", addr(HOME_IP, 5060));
        assert!(
            err.is_err(),
            "private address must be unreachable from the public side"
        );
    }
}
