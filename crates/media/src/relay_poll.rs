//! The relay workers' readiness set: a level-triggered epoll instance and an eventfd waker.
//!
//! Level-triggered (unlike mio, which is edge-triggered only) so that a worker may read one
//! datagram per readiness event with a plain `recvfrom` and leave the rest queued: the next
//! `epoll_wait` reports the socket again while it holds anything. With edge-triggered readiness
//! a reader must go on until the socket is known to be empty, which costs a second, failing
//! receive per event (inside `recvmmsg`, or as an `EAGAIN` `recvfrom`) at one datagram per
//! socket per wake — the common case at 50 packets/s per stream.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// An epoll instance whose members are level-triggered and readable-only.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nothing else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Adds `fd`, reported with `token` while it is readable (or has an error pending).
    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid event that lives across the call.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Takes `fd` out of the set (closing it would too, unless it was duplicated).
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: EPOLL_CTL_DEL ignores the event argument (null is allowed since Linux 2.6.9).
        let r = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until a member is ready or `timeout` passes (`None`: no limit; rounded up to a
    /// millisecond so that a short timeout does not spin), and fills `events`.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        let ms = timeout_ms(timeout);
        events.n = 0;
        let cap = i32::try_from(events.buf.len()).unwrap_or(i32::MAX);
        // SAFETY: `events.buf` has room for `cap` entries, which the kernel fills at most.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.buf.as_mut_ptr(), cap, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        events.n = n as usize;
        Ok(())
    }
}

/// `epoll_wait`'s timeout argument: -1 for none, else milliseconds rounded up.
fn timeout_ms(timeout: Option<Duration>) -> i32 {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

/// What one [`Epoll::wait`] reported: the tokens of the ready members.
pub(crate) struct Events {
    buf: Vec<libc::epoll_event>,
    n: usize,
}

impl Events {
    pub(crate) fn with_capacity(n: usize) -> Events {
        Events {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; n.max(1)],
            n: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The tokens of the ready members.
    pub(crate) fn tokens(&self) -> impl Iterator<Item = u64> + '_ {
        self.buf[..self.n].iter().map(|e| e.u64)
    }
}

/// Wakes a worker blocked in [`Epoll::wait`]: an eventfd in its set, readable from the first
/// [`Waker::wake`] until the worker calls [`Waker::reset`].
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A waker reported by `epoll` with `token`.
    pub(crate) fn new(epoll: &Epoll, token: u64) -> io::Result<Waker> {
        // SAFETY: plain syscall; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nothing else.
        let w = Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        };
        epoll.add(w.fd.as_raw_fd(), token)?;
        Ok(w)
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call.
        let r = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // EAGAIN: the counter is at its maximum, so the worker is woken anyway.
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Makes the waker unreadable again (called by the worker when it saw the waker's token).
    pub(crate) fn reset(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into `v`, which lives across the call. Nothing to do
        // on EAGAIN (already reset).
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                std::ptr::from_mut(&mut v).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn ready(ep: &Epoll, ev: &mut Events) -> Vec<u64> {
        ep.wait(ev, Some(Duration::ZERO)).expect("epoll_wait");
        ev.tokens().collect()
    }

    #[test]
    fn readiness_is_level_triggered_until_the_socket_is_empty() {
        let ep = Epoll::new().expect("epoll");
        let mut ev = Events::with_capacity(8);
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_nonblocking(true).expect("nonblocking");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        ep.add(rx.as_raw_fd(), 7).expect("add");
        assert!(ready(&ep, &mut ev).is_empty());
        let to = rx.local_addr().expect("addr");
        tx.send_to(b"one", to).expect("send");
        tx.send_to(b"two", to).expect("send");
        // Blocks until the first datagram is queued (loopback: at once).
        ep.wait(&mut ev, Some(Duration::from_secs(5)))
            .expect("wait");
        assert_eq!(ev.tokens().collect::<Vec<_>>(), [7]);
        let mut buf = [0u8; 16];
        rx.recv_from(&mut buf).expect("first");
        // One datagram is still queued: reported again without a new arrival.
        assert_eq!(ready(&ep, &mut ev), [7]);
        assert_eq!(ready(&ep, &mut ev), [7]);
        rx.recv_from(&mut buf).expect("second");
        assert!(ready(&ep, &mut ev).is_empty());
        ep.delete(rx.as_raw_fd()).expect("delete");
        tx.send_to(b"three", to).expect("send");
        rx.set_nonblocking(false).expect("blocking");
        rx.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        rx.peek_from(&mut buf).expect("queued");
        assert!(
            ready(&ep, &mut ev).is_empty(),
            "a deleted socket is not reported"
        );
    }

    #[test]
    fn waker_is_reported_until_reset() {
        let ep = Epoll::new().expect("epoll");
        let mut ev = Events::with_capacity(8);
        let w = Waker::new(&ep, 99).expect("waker");
        assert!(ready(&ep, &mut ev).is_empty());
        w.wake().expect("wake");
        w.wake().expect("wake");
        assert_eq!(ready(&ep, &mut ev), [99]);
        assert_eq!(ready(&ep, &mut ev), [99]);
        w.reset();
        assert!(ready(&ep, &mut ev).is_empty());
        w.reset(); // already reset: harmless
        assert!(ready(&ep, &mut ev).is_empty());
    }

    #[test]
    fn timeouts_round_up_to_a_millisecond() {
        let cases = [
            (None, -1),
            (Some(Duration::ZERO), 0),
            (Some(Duration::from_nanos(1)), 1),
            (Some(Duration::from_millis(1)), 1),
            (Some(Duration::from_micros(1_001)), 2),
            (Some(Duration::from_secs(3)), 3_000),
            (Some(Duration::from_secs(u64::MAX)), i32::MAX),
        ];
        for (d, want) in cases {
            assert_eq!(timeout_ms(d), want, "{d:?}");
        }
    }
}
