#!/usr/bin/env python3
"""BLF fan-out benchmark (issue 15 §10): W watcher phones each subscribe (`Event: dialog`,
digest-authenticated) to the same K extensions; the K extensions' phones call each other at a
fixed rate (INVITE, 180, 200, ACK, hold, BYE); every NOTIFY a watcher receives is matched to the
state change that caused it. Prints and returns the latency from a state change (the 180, the
200, the BYE leaving the phone) to its NOTIFY at every watcher (p50/p99/max), the changes never
delivered, and `denwa serve`'s CPU seconds per NOTIFY.

All phones are this script (asyncio, UDP on 127.0.0.1, standard library only): sipp cannot keep
thousands of subscription dialogs, and the latency needs the moment each state change left a
phone. The server gets fresh ports from the OS (never the 12000-13999/36000-36999/50000-50999
ranges of the main benchmark); it is stopped by PID.

  python3 bench/blf.py --denwa-bin target/release/denwa --license-bin target/debug/denwa-license \
      [--watchers 1000] [--keys 50] [--cps 100] [--seconds 20] [--out bench/blf-result.json]

A licence signed with the TEST key lifts the free allowance (25 extensions), as in bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (helpers: licence, CLI provisioning, CPU seconds)

KEY_BASE = 3000
WATCHER_BASE = 400000
DIALOG_RE = re.compile(r'<dialog\s[^>]*?call-id="([^"]*)"[^>]*>\s*<state[^>]*>\s*([A-Za-z]+)\s*</state>')
RANK = {"trying": 0, "early": 1, "confirmed": 2, "terminated": 3}


def os_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pw(user: str) -> str:
    return "pw-" + user.translate(bench.DIGITS_AS_LETTERS) + "-blf"


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "c": "content-type"}


def parse(data: bytes) -> tuple[str, dict[str, str], str]:
    """(start line, headers by lower-case name (first value; `via` and `record-route` keep
    every value, comma-joined lines), body)."""
    text = data.decode(errors="replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        k = COMPACT.get(k, k)
        if k in ("via", "record-route") and k in hdrs:
            hdrs[k] += "\r\n" + ("Via: " if k == "via" else "Record-Route: ") + v.strip()
        else:
            hdrs.setdefault(k, v.strip())
    return lines[0], hdrs, body


def digest(challenge: str, user: str, password: str, method: str, uri: str) -> str:
    realm = re.search(r'realm="([^"]*)"', challenge).group(1)
    nonce = re.search(r'nonce="([^"]*)"', challenge).group(1)
    opaque = re.search(r'opaque="([^"]*)"', challenge)
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    cnonce = "%08x" % random.getrandbits(32)
    resp = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
    out = (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
           f'response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="{cnonce}"')
    if opaque:
        out += f', opaque="{opaque.group(1)}"'
    return out


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.notifies = 0
        self.events = 0
        self.delivered = 0


SHARED = ("waiting", "subs", "events", "watchers_of", "forks", "on_fork", "dump", "callee_fork",
          "pending_callee")


class Phones(asyncio.DatagramProtocol):
    """Phones on one UDP socket (all watchers share one; each called phone has its own, since
    Denwa never rings a contact at the caller's own address); messages are told apart by
    Call-ID. `share` makes this socket use another one's bookkeeping."""

    def share(self, other: "Phones") -> None:
        for name in SHARED:
            setattr(self, name, getattr(other, name))

    def __init__(self, server: tuple[str, int], stats: Stats):
        self.server = server
        self.stats = stats
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.waiting: dict[tuple[str, int], asyncio.Future] = {}
        # Subscriptions: Call-ID -> (watcher, resource).
        self.subs: dict[str, tuple[str, str]] = {}
        # Pending state changes per resource: list of [call_id, state, t0, seen watchers].
        self.events: dict[str, list[list]] = {}
        self.watchers_of: dict[str, int] = {}
        # Call-ID of forks rung at key phones -> key phone's call state.
        self.forks: dict[str, dict] = {}
        self.on_fork = None
        self.seq = 0
        self.dump = None

    def connection_made(self, transport):
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def send(self, text: str) -> None:
        assert self.transport is not None
        self.transport.sendto(text.encode(), self.server)

    def branch(self) -> str:
        self.seq += 1
        return f"z9hG4bK-{self.seq}-{random.getrandbits(32):x}"

    def datagram_received(self, data, addr):
        try:
            start, h, body = parse(data)
        except Exception:  # a bench client never crashes on one odd datagram
            return
        cid = h.get("call-id", "")
        if start.startswith("SIP/2.0"):
            status = int(start.split()[1])
            cseq = int(h.get("cseq", "0").split()[0])
            fut = self.waiting.get((cid, cseq))
            if fut is not None and not fut.done() and status >= 200:
                fut.set_result((status, h, body))
            return
        method = start.split()[0]
        if method == "NOTIFY":
            self.reply(h, 200)
            self.on_notify(cid, body)
        elif method == "INVITE":
            self.reply(h, 100)
            if cid not in self.forks and self.on_fork is not None:
                self.forks[cid] = {"h": h}
                self.on_fork(self, cid, h)
        elif method in ("BYE", "CANCEL"):
            self.reply(h, 200)
        # ACK: nothing

    def reply(self, h: dict[str, str], status: int, to_tag: str = "", extra: str = "", body: str = "") -> None:
        reason = {100: "Trying", 180: "Ringing", 200: "OK"}.get(status, "X")
        to = h.get("to", "")
        if to_tag and "tag=" not in to:
            to += f";tag={to_tag}"
        rr = f"Record-Route: {h['record-route']}\r\n" if "record-route" in h and status != 100 else ""
        msg = (f"SIP/2.0 {status} {reason}\r\nVia: {h.get('via', '')}\r\nFrom: {h.get('from', '')}\r\n"
               f"To: {to}\r\nCall-ID: {h.get('call-id', '')}\r\nCSeq: {h.get('cseq', '')}\r\n{rr}{extra}"
               f"Content-Length: {len(body)}\r\n\r\n{body}")
        self.send(msg)

    async def request(self, text_of, cid: str, cseq: int, timeout: float = 10.0):
        """Sends `text_of(cseq)` (retransmitted every 0.5 s) and waits for a final response."""
        fut = asyncio.get_running_loop().create_future()
        self.waiting[(cid, cseq)] = fut
        try:
            end = time.monotonic() + timeout
            text = text_of(cseq)  # retransmissions are the same request (same branch)
            while time.monotonic() < end:
                self.send(text)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), 0.5)
                except asyncio.TimeoutError:
                    continue
            raise TimeoutError(f"no answer for {cid} CSeq {cseq}")
        finally:
            self.waiting.pop((cid, cseq), None)

    async def authed(self, build, user: str, method: str, uri: str, cid: str):
        status, h, body = await self.request(lambda c: build(c, None), cid, 1)
        if status in (401, 407):
            ch = h.get("proxy-authenticate") or h.get("www-authenticate", "")
            hdr = "Proxy-Authorization" if status == 407 else "Authorization"
            auth = f"{hdr}: {digest(ch, user, pw(user), method, uri)}\r\n"
            status, h, body = await self.request(lambda c: build(c, auth), cid, 2)
        return status, h, body

    # ------------------------------------------------------------ phones

    async def register(self, user: str) -> None:
        host = f"{self.server[0]}:{self.server[1]}"
        cid = f"reg-{user}-{random.getrandbits(32):x}"

        def build(cseq, auth):
            return (f"REGISTER sip:{host} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch={self.branch()};rport\r\n"
                    f"From: <sip:{user}@{host}>;tag=r{user}\r\nTo: <sip:{user}@{host}>\r\nCall-ID: {cid}\r\n"
                    f"CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{self.port}>\r\nExpires: 3600\r\n"
                    f"Max-Forwards: 70\r\n{auth or ''}Content-Length: 0\r\n\r\n")
        status, _, _ = await self.authed(build, user, "REGISTER", f"sip:{host}", cid)
        if status != 200:
            raise RuntimeError(f"{user} did not register: {status}")

    async def subscribe(self, watcher: str, key: str) -> None:
        host = f"{self.server[0]}:{self.server[1]}"
        uri = f"sip:{key}@{host}"
        cid = f"sub-{watcher}-{key}"
        self.subs[cid] = (watcher, key)

        def build(cseq, auth):
            return (f"SUBSCRIBE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch={self.branch()};rport\r\n"
                    f"From: <sip:{watcher}@{host}>;tag=w{watcher}k{key}\r\nTo: <{uri}>\r\nCall-ID: {cid}\r\n"
                    f"CSeq: {cseq} SUBSCRIBE\r\nContact: <sip:{watcher}@127.0.0.1:{self.port}>\r\nEvent: dialog\r\n"
                    f"Accept: application/dialog-info+xml\r\nExpires: 3600\r\nMax-Forwards: 70\r\n{auth or ''}"
                    f"Content-Length: 0\r\n\r\n")
        status, _, _ = await self.authed(build, watcher, "SUBSCRIBE", uri, cid)
        if status != 200:
            raise RuntimeError(f"{watcher} -> {key}: {status}")
        self.watchers_of[key] = self.watchers_of.get(key, 0) + 1

    # ------------------------------------------------------------ measurement

    def change(self, resource: str, call_id: str, state: str) -> None:
        if resource in self.watchers_of:
            self.events.setdefault(resource, []).append([call_id, state, time.monotonic(), set()])
            self.stats.events += self.watchers_of[resource]

    def on_notify(self, cid: str, body: str) -> None:
        t = time.monotonic()
        who = self.subs.get(cid)
        if who is None or "<dialog-info" not in body:
            return
        self.stats.notifies += 1
        if self.dump is not None and self.stats.notifies <= 200:
            self.dump.write(f"--- {t:.3f} {who}\n{body}\n")
        watcher, resource = who
        shown: dict[str, int] = {}
        for m in DIALOG_RE.finditer(body):
            shown[m.group(1)] = RANK.get(m.group(2).lower(), 0)
        evs = self.events.get(resource)
        if not evs:
            return
        need = self.watchers_of.get(resource, 0)
        for ev in evs:
            call_id, state, t0, seen = ev
            if watcher in seen or t < t0:
                continue
            # Delivered when the watcher now shows this state or a later one (absent = ended).
            if shown.get(call_id, RANK["terminated"]) >= RANK[state]:
                seen.add(watcher)
                self.stats.latencies.append(t - t0)
                self.stats.delivered += 1
        self.events[resource] = [e for e in evs if len(e[3]) < need]

    # ------------------------------------------------------------ calls

    async def call(self, caller: str, callee: str, hold: float, cid: str) -> None:
        host = f"{self.server[0]}:{self.server[1]}"
        uri = f"sip:{callee}@{host}"
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        tag = f"c{random.getrandbits(32):x}"

        def build(cseq, auth):
            return (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch={self.branch()};rport\r\n"
                    f"From: <sip:{caller}@{host}>;tag={tag}\r\nTo: <{uri}>\r\nCall-ID: {cid}\r\n"
                    f"CSeq: {cseq} INVITE\r\nContact: <sip:{caller}@127.0.0.1:{self.port}>\r\nMax-Forwards: 70\r\n"
                    f"{auth or ''}Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")

        dialog = {"target": uri, "route": ""}

        def ack(cseq, to, branch):
            return (f"ACK {dialog['target']} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\r\n"
                    f"{dialog['route']}From: <sip:{caller}@{host}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\n"
                    f"CSeq: {cseq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        status, h, _ = await self.request(lambda c: build(c, None), cid, 1)
        if status == 407:
            self.send(ack(1, h.get("to", ""), "z9hG4bK-ack-" + cid))
            auth = f"Proxy-Authorization: {digest(h.get('proxy-authenticate', ''), caller, pw(caller), 'INVITE', uri)}\r\n"
            status, h, _ = await self.request(lambda c: build(c, auth), cid, 2, timeout=30)
        if status != 200:
            raise RuntimeError(f"INVITE answered {status}")
        to = h.get("to", "")
        contact = re.search(r"<([^>]+)>", h.get("contact", ""))
        if contact:
            dialog["target"] = contact.group(1)
        if "record-route" in h:
            # One proxy here: its Record-Route is the whole route set.
            dialog["route"] = "Route: " + h["record-route"].replace("Record-Route: ", "Route: ") + "\r\n"
        self.send(ack(2, to, self.branch()))
        await asyncio.sleep(hold)
        self.change(caller, cid, "terminated")
        fork = self.callee_fork.get(cid_key(caller, callee))
        if fork:
            self.change(callee, fork, "terminated")

        def bye(cseq, _auth):
            return (f"BYE {dialog['target']} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch={self.branch()};rport\r\n"
                    f"{dialog['route']}From: <sip:{caller}@{host}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\n"
                    f"CSeq: {cseq} BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        await self.request(lambda c: bye(c, None), cid, 3)


def cid_key(caller: str, callee: str) -> str:
    return f"{caller}>{callee}"


async def run_load(args, server: tuple[str, int], pids: list[int]) -> dict:
    stats = Stats()
    loop = asyncio.get_running_loop()
    transport, ph = await loop.create_datagram_endpoint(
        lambda: Phones(server, stats), local_addr=("127.0.0.1", 0))
    sock = transport.get_extra_info("socket")
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 16 << 20)
        except OSError:
            pass
    keys = [str(KEY_BASE + i) for i in range(args.keys)]
    watchers = [str(WATCHER_BASE + i) for i in range(args.watchers)]
    ph.callee_fork = {}
    if args.dump:
        ph.dump = open(args.dump, "w")
    busy: set[str] = set()
    # The callee side: a fork rings (180 = early), is answered 0.1 s later (200 = confirmed).
    ph.pending_callee: dict[str, str] = {}

    def on_fork(ep: Phones, fork_cid: str, h: dict[str, str]) -> None:
        callee = re.search(r"sip:(\d+)@", h.get("to", "")).group(1)
        caller = re.search(r"sip:(\d+)@", h.get("from", "")).group(1)
        ph.callee_fork[cid_key(caller, callee)] = fork_cid
        a_cid = ph.pending_callee.get(cid_key(caller, callee), "")
        tag = f"k{random.getrandbits(32):x}"
        ph.change(callee, fork_cid, "early")
        ph.change(caller, a_cid, "early")
        ep.reply(h, 180, tag, f"Contact: <sip:{callee}@127.0.0.1:{ep.port}>\r\n")

        def answer():
            ph.change(callee, fork_cid, "confirmed")
            ph.change(caller, a_cid, "confirmed")
            body = ("v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                    "m=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
            ep.reply(h, 200, tag, f"Contact: <sip:{callee}@127.0.0.1:{ep.port}>\r\nContent-Type: application/sdp\r\n", body)
        loop.call_later(0.1, answer)
    ph.on_fork = on_fork

    eps: dict[str, Phones] = {}
    for k in keys:
        t, e = await loop.create_datagram_endpoint(lambda: Phones(server, stats), local_addr=("127.0.0.1", 0))
        e.share(ph)
        eps[k] = e
    t0 = time.time()
    await asyncio.gather(*(eps[k].register(k) for k in keys))
    sem = asyncio.Semaphore(200)

    async def sub(w, k):
        async with sem:
            await ph.subscribe(w, k)
    await asyncio.gather(*(sub(w, k) for w in watchers for k in keys))
    setup_s = time.time() - t0
    bench.log(f"blf: {len(keys)} keys registered, {len(watchers) * len(keys)} subscriptions in {setup_s:.1f} s")
    await asyncio.sleep(2)
    ph.events.clear()
    stats.latencies.clear()
    stats.notifies = stats.events = stats.delivered = 0

    cpu0 = bench.cpu_seconds(pids)
    started = time.monotonic()
    calls: list[asyncio.Task] = []
    failed: list[str] = []
    n = 0
    while time.monotonic() - started < args.seconds:
        idle = [k for k in keys if k not in busy]
        if len(idle) >= 2:
            a, b = random.sample(idle, 2)
            busy.update((a, b))
            cid = f"call-{a}-{n}-{random.getrandbits(32):x}"
            ph.pending_callee[cid_key(a, b)] = cid

            async def one(a=a, b=b, cid=cid):
                try:
                    await eps[a].call(a, b, args.hold, cid)
                except Exception as e:  # one failed call is counted, the run goes on
                    failed.append(f"{a}->{b}: {e}")
                finally:
                    ph.pending_callee.pop(cid_key(a, b), None)
                    ph.callee_fork.pop(cid_key(a, b), None)
                    busy.discard(a)
                    busy.discard(b)
            calls.append(asyncio.create_task(one()))
            n += 1
        next_at = started + n / args.cps
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await asyncio.gather(*calls)
    for f in failed[:5]:
        bench.log(f"blf: call failed: {f}")
    await asyncio.sleep(3)  # the last NOTIFYs
    cpu = bench.cpu_seconds(pids) - cpu0
    elapsed = time.monotonic() - started
    transport.close()
    for e in eps.values():
        if e.transport is not None:
            e.transport.close()
    if ph.dump is not None:
        ph.dump.close()
    lat = sorted(stats.latencies)

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else None
    return {
        "watchers": args.watchers, "keys": args.keys, "subscriptions": args.watchers * args.keys,
        "cps": args.cps, "calls": n, "calls_failed": len(failed), "seconds": round(elapsed, 1), "setup_s": round(setup_s, 1),
        "notifies": stats.notifies, "expected_deliveries": stats.events,
        "delivered": stats.delivered, "lost": stats.events - stats.delivered,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": lat[-1] * 1000 if lat else None,
        "cpu_s": round(cpu, 2),
        "cpu_us_per_notify": round(cpu / stats.notifies * 1e6, 1) if stats.notifies else None,
    }


def provision(binary: str, license_bin: str, work: str, keys: int, watchers: int) -> str:
    data = os.path.join(work, "denwa-blf")
    shutil.rmtree(data, ignore_errors=True)
    bench.license_denwa(binary, license_bin, work, data)
    users = [str(KEY_BASE + i) for i in range(keys)] + [str(WATCHER_BASE + i) for i in range(watchers)]
    todo = [["extension", "add", u, "--password", pw(u)] for u in users]
    bench.denwa_cli(binary, data, todo[:1], "extension add")
    bench.denwa_cli(binary, data, todo[1:], "extension add")
    return data


def provision_kamailio(work: str, keys: int, watchers: int) -> str:
    import sqlite3
    path = os.path.join(work, "kamailio-blf.sqlite")
    if os.path.exists(path):
        os.unlink(path)
    db = sqlite3.connect(path)
    base = "/usr/share/kamailio/db_sqlite"
    for name in ("standard-create.sql", "auth_db-create.sql", "usrloc-create.sql",
                 "registrar-create.sql", "presence-create.sql"):
        p = os.path.join(base, name)
        if os.path.exists(p):
            with open(p) as f:
                db.executescript(f.read())
    users = [str(KEY_BASE + i) for i in range(keys)] + [str(WATCHER_BASE + i) for i in range(watchers)]
    db.executemany("INSERT INTO subscriber (username, domain, password) VALUES (?, '127.0.0.1', ?)",
                   [(u, pw(u)) for u in users])
    db.commit()
    db.close()
    return path


def start_kamailio(work: str, db: str, children: int) -> tuple[bench.Proc, int]:
    port = os_port()
    with open(os.path.join(bench.BENCH, "kamailio", "kamailio-blf.cfg")) as f:
        cfg = f.read()
    for k, v in {
        "udp:127.0.0.1:5060": f"udp:127.0.0.1:{port}",
        '"!BENCH_ADDR!127.0.0.1:5060!"': f'"!BENCH_ADDR!127.0.0.1:{port}!"',
        "sqlite:///tmp/kamailio-blf.sqlite": f"sqlite://{db}",
        '"!BENCH_CHILDREN!4!"': f'"!BENCH_CHILDREN!{children}!"',
    }.items():
        cfg = cfg.replace(k, v)
    path = os.path.join(work, "kamailio-blf.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    argv = ["kamailio", "-f", path, "-DD", "-E", "-m", "1024", "-M", "32",
            "-P", f"{work}/kamailio-blf.pid", "-Y", work]
    return bench.Proc("kamailio-blf", argv, work), port


def measure(args, name: str, proc: bench.Proc, port: int) -> dict:
    """The load against one server (started as `proc`, listening on `port`), which is stopped."""
    try:
        if not bench.sip_ping(port, 30):
            raise RuntimeError(f"{name} did not answer:\n{proc.tail()}")
        result = asyncio.run(run_load(args, ("127.0.0.1", port), [proc.pid]))
    finally:
        proc.stop()
    bench.log(f"blf: {name} {json.dumps(result)}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--denwa-bin", required=True)
    ap.add_argument("--license-bin", default=os.environ.get("DENWA_LICENSE_BIN", ""))
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--keys", type=int, default=50)
    ap.add_argument("--cps", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--hold", type=float, default=1.0, help="seconds a call stays answered")
    ap.add_argument("--work", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--servers", default="denwa,kamailio")
    ap.add_argument("--dump", default="", help="write the first 200 NOTIFY bodies here")
    ap.add_argument("--kamailio-children", type=int, default=4)
    args = ap.parse_args()
    os.environ[bench.DEV_MODE_ENV] = "1"
    work = args.work or tempfile.mkdtemp(prefix="denwa-blf-")
    os.makedirs(work, exist_ok=True)
    results = {}
    servers = args.servers.split(",")
    if "denwa" in servers:
        t = time.time()
        data = provision(args.denwa_bin, args.license_bin, work, args.keys, args.watchers)
        bench.log(f"blf: {args.keys + args.watchers} extensions provisioned in {time.time() - t:.0f} s")
        if args.keys > 100:
            subprocess.run([args.denwa_bin, "setting", "set", "blf.max_keys", str(args.keys),
                            "--data-dir", data, "--log-level", "error"], check=True, capture_output=True)
        port = os_port()
        argv = [args.denwa_bin, "serve", "--data-dir", data, "--sip-listen", f"127.0.0.1:{port}",
                "--http-listen", f"127.0.0.1:{os_port()}", "--rtp-ports", "40000-44999", "--log-level", os.environ.get("BLF_LOG", "warn")]
        proc = bench.Proc("denwa-blf", argv, work)
        results["denwa"] = measure(args, "denwa", proc, port)
    if "kamailio" in servers:
        db = provision_kamailio(work, args.keys, args.watchers)
        proc, port = start_kamailio(work, db, args.kamailio_children)
        results["kamailio"] = measure(args, "kamailio", proc, port)
    if "denwa" in results and "kamailio" in results:
        d, k = results["denwa"], results["kamailio"]
        results["ratios (kamailio / denwa)"] = {
            m: bench.ratio(k.get(m), d.get(m)) for m in ("p50_ms", "p99_ms", "max_ms", "cpu_us_per_notify")
        }
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
