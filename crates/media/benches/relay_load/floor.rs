//! Bare forwarding loops, the floor the relay is measured against on the same sockets, load and
//! CPU: no RTP parsing, no latching, no statistics, a fixed destination per leg.
//!
//! Sockets come in pairs: `socks[2i]` is leg A of call i (generator A sends to it, and what it
//! receives leaves through `socks[2i + 1]` to generator B), `socks[2i + 1]` is leg B.
//!
//! - [`one_packet`]: level-triggered epoll, one `recvfrom` and one `sendto` per packet (the
//!   one-syscall-per-packet floor of a userspace relay that must learn each packet's source).
//! - [`mmsg`]: the same with `recvmmsg`/`sendmmsg` of up to [`MMSG`] datagrams per socket.
//! - [`uring`]: io_uring, one `RecvMsg` armed per socket, each packet sent on by a `SendMsg`;
//!   all of them submitted and reaped in batches by one `io_uring_enter` per loop turn, so the
//!   syscall count per packet falls below one however few packets each socket carries.
//! - [`uring_multishot`]: io_uring, one multishot `RecvMsgMulti` per socket armed once, into a
//!   provided-buffer ring; each packet sent on by an `IORING_OP_SEND` with a destination.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

/// Datagrams one `recvmmsg`/`sendmmsg` moves at most.
pub const MMSG: usize = 32;
const BUF: usize = 2048;
const EVENTS: usize = 1024;

/// A `sockaddr_in` for `sendto`/`sendmsg` (IPv4 only: the bench runs on 127.0.0.1).
pub fn sockaddr(a: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(a) = a else {
        panic!("IPv4 only")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

pub const SOCKADDR_LEN: libc::socklen_t =
    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// Where a packet received on socket `k` goes: out of `k ^ 1`, to generator B for leg A's
/// packets and to generator A for leg B's.
fn route(k: usize, dest: &[libc::sockaddr_in; 2]) -> (usize, &libc::sockaddr_in) {
    let out = k ^ 1;
    (out, &dest[out & 1])
}

/// A non-blocking `recvmmsg` into `hdrs`: how many datagrams arrived (0 when none or on error).
///
/// # Safety
/// Every header must point at live iovecs and buffers (and names, if set) of the stated sizes.
pub unsafe fn recv_mmsg(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> usize {
    let vlen = hdrs.len() as u32;
    // SAFETY: the caller guarantees the headers; the kernel writes only within them.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            vlen,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    n.max(0) as usize
}

/// A level-triggered epoll set over `fds`, each registered with its index as data.
fn epoll_over(fds: &[RawFd]) -> io::Result<RawFd> {
    // SAFETY: plain syscalls on descriptors this process owns; `ev` lives across each call.
    unsafe {
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        for (i, &fd) in fds.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            if libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(ep)
    }
}

/// Runs `serve(index)` for every readable socket until `stop`; 100 ms waits to look at `stop`.
fn epoll_loop(fds: &[RawFd], stop: &AtomicBool, mut serve: impl FnMut(usize)) -> io::Result<()> {
    let ep = epoll_over(fds)?;
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    while !stop.load(Relaxed) {
        // SAFETY: `evs` has room for EVENTS entries.
        let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), EVENTS as i32, 100) };
        for ev in evs.iter().take(n.max(0) as usize) {
            serve(ev.u64 as usize);
        }
    }
    // SAFETY: closing the epoll descriptor made above.
    unsafe { libc::close(ep) };
    Ok(())
}

/// One `recvfrom` and one `sendto` per packet. Returns the packets forwarded.
pub fn one_packet(socks: &[UdpSocket], dest: [SocketAddr; 2], stop: &AtomicBool) -> u64 {
    let fds: Vec<RawFd> = socks.iter().map(AsRawFd::as_raw_fd).collect();
    let dest = dest.map(sockaddr);
    let mut buf = [0u8; BUF];
    let mut relayed = 0u64;
    let r = epoll_loop(&fds, stop, |k| {
        // SAFETY: `buf`, `src` and `len` are live and of the stated sizes for both calls.
        unsafe {
            let mut src: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let n = libc::recvfrom(
                fds[k],
                buf.as_mut_ptr().cast(),
                BUF,
                libc::MSG_DONTWAIT,
                std::ptr::from_mut(&mut src).cast(),
                &mut len,
            );
            if n <= 0 {
                return;
            }
            let (out, to) = route(k, &dest);
            let sent = libc::sendto(
                fds[out],
                buf.as_ptr().cast(),
                n as usize,
                libc::MSG_DONTWAIT,
                std::ptr::from_ref(to).cast(),
                SOCKADDR_LEN,
            );
            relayed += u64::from(sent > 0);
        }
    });
    r.expect("epoll loop");
    relayed
}

/// `recvmmsg` of up to [`MMSG`] datagrams from a readable socket, one `sendmmsg` of all of them.
pub fn mmsg(socks: &[UdpSocket], dest: [SocketAddr; 2], stop: &AtomicBool) -> u64 {
    let fds: Vec<RawFd> = socks.iter().map(AsRawFd::as_raw_fd).collect();
    let dest = dest.map(sockaddr);
    let mut bufs = vec![[0u8; BUF]; MMSG];
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut names: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; MMSG];
    let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; MMSG];
    let mut rx: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; MMSG];
    let mut tx: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; MMSG];
    let mut relayed = 0u64;
    let r = epoll_loop(&fds, stop, |k| {
        for i in 0..MMSG {
            iovs[i].iov_base = bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = BUF;
            rx[i].msg_hdr.msg_name = std::ptr::from_mut(&mut names[i]).cast();
            rx[i].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            rx[i].msg_hdr.msg_iov = std::ptr::from_mut(&mut iovs[i]);
            rx[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at live buffers, iovecs and names of the stated sizes.
        let n = unsafe { recv_mmsg(fds[k], &mut rx) };
        if n == 0 {
            return;
        }
        let (out, to) = route(k, &dest);
        for i in 0..n {
            iovs[i].iov_len = rx[i].msg_len as usize;
            tx[i].msg_hdr.msg_name = std::ptr::from_ref(to).cast_mut().cast();
            tx[i].msg_hdr.msg_namelen = SOCKADDR_LEN;
            tx[i].msg_hdr.msg_iov = std::ptr::from_mut(&mut iovs[i]);
            tx[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the first `n` headers point at live iovecs (the received lengths) and `to`.
        let sent =
            unsafe { libc::sendmmsg(fds[out], tx.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
        relayed += sent.max(0) as u64;
    });
    r.expect("epoll loop");
    relayed
}

/// Per-socket state of the io_uring loop: its buffer, and the headers of its receive and of the
/// send that forwards what it received (the buffer is busy until that send completes).
struct Slot {
    buf: [u8; BUF],
    iov: libc::iovec,
    name: libc::sockaddr_storage,
    rx: libc::msghdr,
    tx: libc::msghdr,
}

/// One `RecvMsg` armed per socket; a completed receive becomes a `SendMsg` out of the peer
/// socket, whose completion re-arms the receive. Submission and completion are batched: one
/// `io_uring_enter` per turn submits every new entry and waits for at least one completion.
pub fn uring(socks: &[UdpSocket], dest: [SocketAddr; 2], stop: &AtomicBool) -> io::Result<u64> {
    use io_uring::{IoUring, opcode, squeue, types};

    let fds: Vec<RawFd> = socks.iter().map(AsRawFd::as_raw_fd).collect();
    let dest = dest.map(sockaddr);
    let n = fds.len();
    // At most one operation per socket is in flight (its receive, or the send of its buffer).
    // The completion queue must hold at least the submission queue's 4,096 entries.
    let cq = (n.next_power_of_two() * 2).clamp(8192, 65536) as u32;
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(cq)
        .build(4096)?;
    let mut slots: Vec<Slot> = (0..n)
        // SAFETY: all-zero is a valid value of these plain C structs; pointers are set below.
        .map(|_| unsafe { std::mem::zeroed() })
        .collect();
    for s in &mut slots {
        s.iov.iov_base = s.buf.as_mut_ptr().cast();
        s.rx.msg_iov = std::ptr::from_mut(&mut s.iov);
        s.rx.msg_iovlen = 1;
        s.rx.msg_name = std::ptr::from_mut(&mut s.name).cast();
        s.tx.msg_iov = std::ptr::from_mut(&mut s.iov);
        s.tx.msg_iovlen = 1;
        s.tx.msg_namelen = SOCKADDR_LEN;
    }
    // user_data: socket index * 2, + 1 for a send.
    let recv = |slots: &mut [Slot], k: usize| -> squeue::Entry {
        let s = &mut slots[k];
        s.iov.iov_len = BUF;
        s.rx.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        opcode::RecvMsg::new(types::Fd(fds[k]), std::ptr::from_mut(&mut s.rx))
            .build()
            .user_data((k * 2) as u64)
    };
    let mut queue: Vec<squeue::Entry> = (0..n).map(|k| recv(&mut slots, k)).collect();
    let mut done: Vec<(u64, i32)> = Vec::with_capacity(cq as usize);
    let mut relayed = 0u64;
    let ts = types::Timespec::from(Duration::from_millis(100));
    while !stop.load(Relaxed) {
        // Push what is queued, submitting whenever the submission queue fills.
        let mut i = 0;
        while i < queue.len() {
            {
                let mut sq = ring.submission();
                while i < queue.len() {
                    // SAFETY: every entry points into `slots` (boxed in a Vec that is neither
                    // moved nor resized while the ring lives) and at `dest`, both outliving it.
                    if unsafe { sq.push(&queue[i]) }.is_err() {
                        break;
                    }
                    i += 1;
                }
            }
            if i < queue.len() {
                ring.submit()?;
            }
        }
        queue.clear();
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &done {
            let k = (ud / 2) as usize;
            if ud % 2 == 1 {
                // The send of socket k's buffer finished: receive again.
                relayed += u64::from(res > 0);
                queue.push(recv(&mut slots, k));
            } else if res > 0 {
                let (out, to) = route(k, &dest);
                let s = &mut slots[k];
                s.iov.iov_len = res as usize;
                s.tx.msg_name = std::ptr::from_ref(to).cast_mut().cast();
                queue.push(
                    opcode::SendMsg::new(types::Fd(fds[out]), std::ptr::from_ref(&s.tx))
                        .build()
                        .user_data(ud + 1),
                );
            } else {
                queue.push(recv(&mut slots, k));
            }
        }
        done.clear();
    }
    Ok(relayed)
}

/// Buffers in the provided-buffer ring of [`uring_multishot`] (a power of two, at most 32,768).
const RING_BUFS: u16 = 4096;
/// The buffer group id of that ring.
const BGID: u16 = 0;

/// A page-aligned allocation for the provided-buffer ring (the kernel requires the alignment).
struct RingMem {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl RingMem {
    fn new(len: usize) -> RingMem {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: the layout has a non-zero size; zeroed memory is a valid empty ring.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        RingMem { ptr, layout }
    }
}

impl Drop for RingMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// io_uring with one multishot `RecvMsgMulti` per socket, armed once, receiving into buffers
/// the kernel picks from a provided-buffer ring: no re-arm and no per-packet receive
/// submission. Each datagram is sent on by an `IORING_OP_SEND` with a destination address
/// (sendto semantics) straight from its ring buffer, which goes back to the ring when the send
/// completes. One `io_uring_enter` per loop turn submits every send, runs the deferred receive
/// work and reaps every completion.
pub fn uring_multishot(
    socks: &[UdpSocket],
    dest: [SocketAddr; 2],
    stop: &AtomicBool,
) -> io::Result<u64> {
    use io_uring::{IoUring, cqueue, opcode, squeue, types};

    let fds: Vec<RawFd> = socks.iter().map(AsRawFd::as_raw_fd).collect();
    let dest = dest.map(sockaddr);
    let n = fds.len();
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(65536)
        .build(4096)?;
    // The ring of buffer descriptors and the buffers themselves.
    let entries = RingMem::new(usize::from(RING_BUFS) * std::mem::size_of::<types::BufRingEntry>());
    let mut bufs = vec![0u8; usize::from(RING_BUFS) * BUF];
    let base = entries.ptr.cast::<types::BufRingEntry>();
    // SAFETY: `base` is the first of RING_BUFS zeroed entries, so its tail field is valid.
    let tail = unsafe { types::BufRingEntry::tail(base) }.cast_mut();
    let mut next_tail: u16 = 0;
    // Puts buffer `bid` at the ring's tail (published by `publish`).
    let give = |bufs: &mut [u8], next_tail: &mut u16, bid: u16| {
        // SAFETY: the index is masked into the ring; the entry is ours until published.
        let e = unsafe { &mut *base.add(usize::from(*next_tail & (RING_BUFS - 1))) };
        e.set_addr(bufs[usize::from(bid) * BUF..].as_mut_ptr() as u64);
        e.set_len(BUF as u32);
        e.set_bid(bid);
        *next_tail = next_tail.wrapping_add(1);
    };
    let publish = |next_tail: u16| {
        // SAFETY: `tail` points at the ring's tail field; the release store orders the entries
        // written before it for the kernel.
        unsafe {
            (*tail.cast::<std::sync::atomic::AtomicU16>())
                .store(next_tail, std::sync::atomic::Ordering::Release)
        };
    };
    for bid in 0..RING_BUFS {
        give(&mut bufs, &mut next_tail, bid);
    }
    publish(next_tail);
    // SAFETY: the ring memory is page-aligned, holds RING_BUFS entries and outlives the ring
    // (dropped explicitly after it, below).
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(entries.ptr as u64, RING_BUFS, BGID, 0)?;
    }
    // The template header: only msg_namelen (room for the source address) matters.
    // SAFETY: all-zero is a valid msghdr.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_namelen = SOCKADDR_LEN;
    // user_data: socket index for a receive; SEND | buffer id for a send.
    const SEND: u64 = 1 << 32;
    let arm = |k: usize| -> squeue::Entry {
        opcode::RecvMsgMulti::new(types::Fd(fds[k]), std::ptr::from_ref(&hdr), BGID)
            .build()
            .user_data(k as u64)
    };
    let mut queue: Vec<squeue::Entry> = (0..n).map(arm).collect();
    let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(65536);
    let mut relayed = 0u64;
    // Completions one `io_uring_enter` waits for (`RELAY_LOAD_URING_WAIT`, default 1). With
    // deferred task running the kernel wakes the thread only once that many are due, or after
    // 1 ms: more packets per enter, like the relay's wake tick.
    let want: usize = std::env::var("RELAY_LOAD_URING_WAIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let ts = types::Timespec::from(if want > 1 {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(100)
    });
    while !stop.load(Relaxed) {
        let mut i = 0;
        while i < queue.len() {
            {
                let mut sq = ring.submission();
                while i < queue.len() {
                    // SAFETY: receives point at `hdr`, sends at a ring buffer (not given back
                    // to the ring until the send completes) and at `dest`; all outlive the ring.
                    if unsafe { sq.push(&queue[i]) }.is_err() {
                        break;
                    }
                    i += 1;
                }
            }
            if i < queue.len() {
                ring.submit()?;
            }
        }
        queue.clear();
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(want, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
        done.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        let mut returned = false;
        for &(ud, res, flags) in &done {
            if ud & SEND != 0 {
                relayed += u64::from(res > 0);
                give(&mut bufs, &mut next_tail, (ud & 0xffff) as u16);
                returned = true;
                continue;
            }
            let k = ud as usize;
            if !cqueue::more(flags) {
                // Ended (out of buffers, or an error): arm it again.
                queue.push(arm(k));
            }
            let Some(bid) = cqueue::buffer_select(flags) else {
                continue;
            };
            let start = usize::from(bid) * BUF;
            let len = usize::try_from(res).unwrap_or(0).min(BUF);
            let payload = types::RecvMsgOut::parse(&bufs[start..start + len], &hdr)
                .ok()
                .filter(|m| !m.is_payload_truncated())
                .map(|m| (m.payload_data().as_ptr(), m.payload_data().len()));
            let Some((ptr, plen)) = payload else {
                give(&mut bufs, &mut next_tail, bid);
                returned = true;
                continue;
            };
            let (out, to) = route(k, &dest);
            queue.push(
                opcode::Send::new(types::Fd(fds[out]), ptr, plen as u32)
                    .dest_addr(std::ptr::from_ref(to).cast())
                    .dest_addr_len(SOCKADDR_LEN)
                    .build()
                    .user_data(SEND | u64::from(bid)),
            );
        }
        if returned {
            publish(next_tail);
        }
        done.clear();
    }
    // The ring goes before the buffers it points at.
    drop(ring);
    drop(bufs);
    drop(entries);
    Ok(relayed)
}
