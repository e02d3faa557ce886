//! Free ports on 127.0.0.1 for servers and peers started by tests.
//!
//! Ports come from a per-process counter walking a range below the kernel's ephemeral range
//! (so they do not collide with ports the kernel hands out for `bind(0)`), starting at an offset
//! derived from the process id so that test binaries running side by side walk different parts
//! of it. Every candidate is checked by binding it on both UDP and TCP before it is returned.
//! A port found free can still be taken by someone else before the caller binds it: callers that
//! start a peer should retry with a new port when it reports "address in use".

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out.
const RANGE_LOW: u16 = 21000;
/// One past the highest port handed out (Linux's ephemeral range starts at 32768).
const RANGE_HIGH: u16 = 32700;

static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// No free block of ports was found after walking the whole range.
#[derive(Debug, thiserror::Error)]
#[error("no block of {count} free UDP+TCP ports found in {RANGE_LOW}..{RANGE_HIGH} on 127.0.0.1")]
pub struct NoFreePort {
    /// The number of consecutive ports asked for.
    pub count: u16,
}

fn span() -> u32 {
    u32::from(RANGE_HIGH - RANGE_LOW)
}

/// Advances the counter by `count` and returns the first port of the block taken.
fn take(count: u16) -> u16 {
    let span = span();
    let start = (std::process::id().wrapping_mul(2_654_435_761) >> 7) % span;
    // Initialise lazily from the pid; compare_exchange keeps it race-free between threads.
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    let offset = NEXT.fetch_add(u32::from(count), Ordering::SeqCst) % span;
    let offset = if offset + u32::from(count) > span {
        0
    } else {
        offset
    };
    // offset < span <= u16::MAX, so the conversion cannot fail; fall back to the range start.
    RANGE_LOW + u16::try_from(offset).unwrap_or(0)
}

/// Ports handed out by this process, held by an advisory lock file each until the process
/// exits: test binaries run as separate processes (nextest runs one per test), and a port one
/// of them found free must not be handed to another before its server binds it.
static RESERVED: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());

/// Takes the cross-process reservation of `base..base+count`; false if another process holds
/// any of them (what is already taken here is released).
fn reserve(base: u16, count: u16) -> bool {
    let dir = std::env::temp_dir().join("denwa-testkit-ports");
    if std::fs::create_dir_all(&dir).is_err() {
        // No shared directory: fall back to the bind check alone.
        return true;
    }
    let mut held = Vec::new();
    for port in base..base + count {
        let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
        else {
            return false;
        };
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own; the lock dies with the descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return false;
        }
        held.push(f);
    }
    if let Ok(mut r) = RESERVED.lock() {
        r.extend(held);
    }
    true
}

/// Whether `port` can be bound on 127.0.0.1 for both UDP and TCP right now.
pub fn is_free(port: u16) -> bool {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok()
}

/// A block of `count` consecutive ports, each free on UDP and TCP; returns the first one.
///
/// baresip needs two (it binds TLS on SIP port + 1); an RTP range needs more.
pub fn free_block(count: u16) -> Result<u16, NoFreePort> {
    let count = count.max(1);
    let attempts = span() / u32::from(count) + 1;
    for _ in 0..attempts {
        let base = take(count);
        if (base..base + count).all(is_free) && reserve(base, count) {
            return Ok(base);
        }
    }
    Err(NoFreePort { count })
}

/// One port free on both UDP and TCP (SIP listens on both).
pub fn free_port() -> Result<u16, NoFreePort> {
    free_block(1)
}

/// A port the kernel picked for UDP (`bind` to port 0); free when returned.
pub fn kernel_udp_port() -> std::io::Result<u16> {
    Ok(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A port the kernel picked for TCP (`bind` to port 0); free when returned.
pub fn kernel_tcp_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn blocks_are_distinct_across_threads_and_free() {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..25).map(|_| free_block(2).unwrap()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::new();
        for h in handles {
            for base in h.join().unwrap() {
                assert!((RANGE_LOW..RANGE_HIGH - 1).contains(&base));
                assert!(seen.insert(base), "port {base} handed out twice");
                assert!(seen.insert(base + 1), "port {} handed out twice", base + 1);
            }
        }
    }

    #[test]
    fn busy_port_is_skipped() {
        let port = free_port().unwrap();
        let _udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        assert!(!is_free(port));
        let other = free_port().unwrap();
        assert_ne!(port, other);
        assert!(is_free(other));
    }

    #[test]
    fn kernel_ports_are_bindable() {
        let p = kernel_udp_port().unwrap();
        UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
        let p = kernel_tcp_port().unwrap();
        TcpListener::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
    }
}
