#!/usr/bin/env python3
"""Denwa benchmark driver: the same sipp loads against Denwa and against its anchors
(Kamailio registrar/proxy with digest auth; Kamailio + rtpengine userspace for media), one after
the other on 127.0.0.1, writing bench/RESULTS.md. Run through bench/run.sh (which builds and
installs first). Standard library only. See bench/README.md for the loads and the search procedure.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
SIPP_DIR = os.path.join(BENCH, "sipp")
KAMAILIO_CFG = os.path.join(BENCH, "kamailio", "kamailio.cfg")
# TEST ONLY signing key: the bench's licence lifts the free allowance; only dev mode accepts it.
TEST_LICENSE_KEY = os.path.join(ROOT, "crates", "license", "keys", "test.key")
DEV_MODE_ENV = "DENWA_LICENSE_DEV"
CALLEE = "2000"
CALLEE_PASSWORD = "callee-bench-pw"
# The trunk load: the carrier (a sipp UAS) listens on another loopback address than the callers
# and the servers, as a provider would (Denwa tells a trunk's requests by source address). The
# callers dial the outside-line prefix 0 and a national number 0 + 1-9 + 8 digits, a different one
# on every call (TRUNK_NUMBERS); the route strips the prefix (Denwa `0|0ZXXXXXXXX`, Kamailio's dialplan rule).
CARRIER_IP = "127.0.0.2"
TRUNK_NAME = "carrier"
TRUNK_PATTERN = "0|0ZXXXXXXXX"
TRUNK_MAIN_NUMBER = "0312340000"
DP_MATCH = "^0(0[1-9][0-9]{8})$"
DIGITS_AS_LETTERS = str.maketrans("0123456789", "abcdefghij")


def national_number(i: int) -> str:
    """The i-th national number called through the trunk (without the outside-line prefix)."""
    return f"03{55000000 + i:08d}"

USER_BASE = 100000
# Fixed RTP port ranges: the relay (Denwa's, or rtpengine; never running at the same time),
# and the two sipp sides (2 ports per call each). 23,000 relay ports bound the media ladder at
# 5,750 calls (4 relay ports per call).
RELAY_RTP = {"denwa": (13000, 35999), "kamailio": (13000, 35999)}
UAC_MP = 36000
UAS_MP = 50000
# RTP streams per sipp playback thread. sipp's default of 20 starts 150 threads per side at
# 3,000 calls, each waking every 20 ms; unpinned, the scheduler then split the two cores by
# thread and starved the server under test. Pinned (cpu_halves), the load core still spent
# itself switching between them: at 2,500 calls 160 of 5,000 streams did not send in the
# capture window (run F). With 100 streams per thread one core carried 3,500 calls both ways.
RTP_THREADTASKS = int(os.environ.get("BENCH_RTP_THREADTASKS", "100"))
# tcpdump's kernel ring (-B, KiB). At 2,000 calls lo carries 400,000 RTP packets/s; each takes
# about 128 bytes of ring with a 60-byte snap length, so a 2 s capture needs ~100 MiB even if
# tcpdump, sharing the load CPU with sipp, gets no time to empty it. 128 MiB dropped 45,290
# packets at 2,000 calls in run E (the drops then read as RTP loss).
CAPTURE_BUFFER_KIB = 524288
HZ = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- ports and processes


_GIVEN: set[int] = set()


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1, below the RTP ranges (which fill
    13000-63999) and never handed out twice in one run."""
    for port in range(12000, 12999):
        if port in _GIVEN:
            continue
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind(("127.0.0.1", port))
            t.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        _GIVEN.add(port)
        return port
    raise RuntimeError("no free port in 12000-12999")


def proc_tree(pid: int) -> list[int]:
    """pid and all its descendants (Kamailio forks its workers)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for p in pids:
        for root in proc_tree(p):
            try:
                with open(f"/proc/{root}/stat") as f:
                    s = f.read()
                fields = s[s.rindex(")") + 2 :].split()
                total += int(fields[11]) + int(fields[12])  # utime + stime (all threads)
            except (OSError, ValueError, IndexError):
                pass
    return total / HZ


def memory_kib(pids: list[int]) -> tuple[int, int]:
    """(PSS, RSS) in KiB summed over the process trees. PSS splits shared pages between
    Kamailio's processes, so it is the fair figure for a multi-process server."""
    pss = rss = 0
    for p in pids:
        for q in proc_tree(p):
            try:
                with open(f"/proc/{q}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            pss += int(line.split()[1])
                        elif line.startswith("Rss:"):
                            rss += int(line.split()[1])
            except OSError:
                pass
    return pss, rss


def cpu_halves() -> tuple[list[int], list[int]] | None:
    """(server CPUs, load CPUs), or None when not pinning (`BENCH_PIN=0`, one CPU, no taskset).

    The server under test runs on the first half of the CPUs; sipp, tcpdump and this script on
    the second. Sharing every core let the scheduler decide who got the CPU: per thread,
    sipp's 150 RTP threads per side at 3,000 calls, or Kamailio's worker processes against
    Denwa's two threads, won. Pinned, each server gets the same core(s) to itself."""
    n = os.cpu_count() or 1
    if n < 2 or os.environ.get("BENCH_PIN", "1") == "0" or not shutil.which("taskset"):
        return None
    half = n // 2
    return list(range(half)), list(range(half, n))


def cpu_note() -> str:
    """How the CPUs were split, for the report."""
    halves = cpu_halves()
    if halves is None:
        return "sipp and the servers shared all CPUs (unpinned)."
    return (f"The server under test ran on CPU {','.join(map(str, halves[0]))}, sipp, tcpdump and "
            f"the bench on CPU {','.join(map(str, halves[1]))}.")


def pinned(argv: list[str], side: str) -> list[str]:
    """`argv` run on its side's CPUs (see `cpu_halves`)."""
    halves = cpu_halves()
    if halves is None:
        return argv
    cpus = halves[0] if side == "server" else halves[1]
    return ["taskset", "-c", ",".join(str(c) for c in cpus)] + argv


class Proc:
    """A child process with its output in a log file, stopped by PID."""

    def __init__(self, name: str, argv: list[str], logdir: str, cwd: str | None = None):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.logf = open(self.log_path, "ab")
        self.p = subprocess.Popen(
            argv, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd
        )
        self.pid = self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.logf.close()

    def tail(self, n: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


def sip_ping(port: int, timeout: float) -> bool:
    """True when something answers a SIP OPTIONS on 127.0.0.1:port (any response)."""
    end = time.time() + timeout
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.3)
    lport = s.getsockname()[1]
    n = 0
    try:
        while time.time() < end:
            n += 1
            msg = (
                f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bKping{n}{lport};rport\r\n"
                f"From: <sip:ping@127.0.0.1:{lport}>;tag=p{n}\r\nTo: <sip:ping@127.0.0.1:{port}>\r\n"
                f"Call-ID: ping{n}-{lport}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            s.sendto(msg.encode(), ("127.0.0.1", port))
            try:
                data = s.recv(4096)
                if data.startswith(b"SIP/2.0"):
                    return True
            except OSError:
                pass
    finally:
        s.close()
    return False


# ---------------------------------------------------------------- servers


class Server:
    """One system under test: started fresh for each load, stopped by PID."""

    name = ""
    label = ""

    def __init__(self, work: str):
        self.work = work
        self.procs: list[Proc] = []
        self.sip_port = 0

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.alive()]

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs = []

    def check_alive(self) -> None:
        for p in self.procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited:\n{p.tail()}")

    def relay_pids(self) -> list[int]:
        """The processes that relay media (all of Denwa; rtpengine alone for the anchor)."""
        relay = [p.pid for p in self.procs if p.name.startswith("rtpengine") and p.alive()]
        return relay or self.pids()


class Denwa(Server):
    name = "denwa"
    label = "Denwa"

    def __init__(self, work: str, binary: str, template: str):
        super().__init__(work)
        self.binary = binary
        self.template = template
        # The data directory for the trunk load: the same extensions plus the trunk, the
        # outbound route and raised outside-call limits (provision_denwa_trunk).
        self.trunk_template: str | None = None
        self.runs = 0

    def start(self, media: bool, trunk: bool = False) -> None:
        self.runs += 1
        data = os.path.join(self.work, f"denwa-data-{self.runs}")
        shutil.rmtree(data, ignore_errors=True)
        if trunk and self.trunk_template is None:
            raise RuntimeError("no trunk template (provision_denwa_trunk was not run)")
        shutil.copytree(self.trunk_template if trunk else self.template, data)
        self.sip_port = free_port()
        lo, hi = RELAY_RTP["denwa"]
        argv = [
            self.binary, "serve", "--data-dir", data,
            "--sip-listen", f"127.0.0.1:{self.sip_port}",
            "--http-listen", f"127.0.0.1:{free_port()}",
            "--rtp-ports", f"{lo}-{hi}", "--log-level", "warn",
        ]
        self.procs = [Proc(f"denwa-{self.runs}", pinned(argv, "server"), self.work)]
        if not sip_ping(self.sip_port, 30):
            raise RuntimeError(f"denwa did not answer:\n{self.procs[0].tail()}")


class Kamailio(Server):
    name = "kamailio"
    label = "Kamailio 5.6 (+ rtpengine (userspace) for media)"

    def __init__(self, work: str, db_template: str, children: int, carrier: tuple[str, int] | None = None):
        super().__init__(work)
        self.db_template = db_template
        self.children = children
        self.carrier = carrier
        self.runs = 0

    def start(self, media: bool, trunk: bool = False) -> None:
        self.runs += 1
        db = os.path.join(self.work, f"kamailio-{self.runs}.sqlite")
        shutil.copyfile(self.db_template, db)
        self.sip_port = free_port()
        ng_port = free_port()
        with open(KAMAILIO_CFG) as f:
            cfg = f.read()
        subst = {
            "udp:127.0.0.1:5060": f"udp:127.0.0.1:{self.sip_port}",
            "sqlite:///tmp/kamailio-bench.sqlite": f"sqlite://{db}",
            "udp:127.0.0.1:2223": f"udp:127.0.0.1:{ng_port}",
            '"!BENCH_CHILDREN!4!"': f'"!BENCH_CHILDREN!{self.children}!"',
        }
        if trunk:
            if self.carrier is None:
                raise RuntimeError("no carrier address for the trunk load")
            subst['"!BENCH_CARRIER_HOST!127.0.0.2!"'] = f'"!BENCH_CARRIER_HOST!{self.carrier[0]}!"'
            subst['"!BENCH_CARRIER_PORT!5060!"'] = f'"!BENCH_CARRIER_PORT!{self.carrier[1]}!"'
            cfg = cfg.replace("#!KAMAILIO", "#!KAMAILIO\n#!define WITH_TRUNK", 1)
        for k, v in subst.items():
            cfg = cfg.replace(k, v)
        if media:
            cfg = cfg.replace("#!KAMAILIO", "#!KAMAILIO\n#!define WITH_RTPENGINE", 1)
        cfg_path = os.path.join(self.work, f"kamailio-{self.runs}.cfg")
        with open(cfg_path, "w") as f:
            f.write(cfg)
        self.procs = []
        if media:
            lo, hi = RELAY_RTP["kamailio"]
            argv = [
                "rtpengine", "--config-file=none", "--table=-1", "--foreground", "--log-stderr",
                "--log-level=3", "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{ng_port}",
                f"--port-min={lo}", f"--port-max={hi}", "--delete-delay=0", "--timeout=60",
                f"--pidfile={self.work}/rtpengine-{self.runs}.pid",
            ]
            self.procs.append(Proc(f"rtpengine-{self.runs}", pinned(argv, "server"), self.work))
            if not ng_ping(ng_port, 15):
                raise RuntimeError(f"rtpengine did not answer:\n{self.procs[0].tail()}")
        argv = [
            "kamailio", "-f", cfg_path, "-DD", "-E", "-m", "512", "-M", "16",
            "-P", f"{self.work}/kamailio-{self.runs}.pid", "-Y", self.work,
        ]
        self.procs.append(Proc(f"kamailio-{self.runs}", pinned(argv, "server"), self.work))
        if not sip_ping(self.sip_port, 30):
            raise RuntimeError(f"kamailio did not answer:\n{self.procs[-1].tail()}")


def ng_ping(port: int, timeout: float) -> bool:
    end = time.time() + timeout
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        while time.time() < end:
            s.sendto(b"bench1 d7:command4:pinge", ("127.0.0.1", port))
            try:
                if b"pong" in s.recv(4096):
                    return True
            except OSError:
                pass
    finally:
        s.close()
    return False


# ---------------------------------------------------------------- users


# Lines of users-trunk.csv: every call of a sipp run dials a number of its own (the callers cycle
# every len(users) lines). More than any probe or hold creates (a ramp to 6,000/s: 186,000 calls),
# so no number repeats within a step, as on a real PBX's outside calls; a server cannot serve
# them from a cache of numbers it has seen (Denwa's cache of numbers that are not extensions
# holds 10,000).
TRUNK_NUMBERS = 200_000


def make_users(work: str, n: int, trunk_numbers: int = TRUNK_NUMBERS) -> tuple[str, list[tuple[str, str]]]:
    # A password may not contain the extension number (engine::policy): spell the digits.
    users = [(str(USER_BASE + i), "pw-" + str(USER_BASE + i).translate(DIGITS_AS_LETTERS) + "-bench")
             for i in range(n)]
    # field3 = the number dialled by uac_call.xml: the registered callee (cps), or the
    # outside-line prefix 0 and a national number, a different one on every line (trunk).
    path = os.path.join(work, "users.csv")
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for u, p in users:
            f.write(f"{u};[authentication username={u} password={p}];{p};{CALLEE}\n")
    with open(os.path.join(work, "users-trunk.csv"), "w") as t:
        t.write("SEQUENTIAL\n")
        for i in range(max(trunk_numbers, n)):
            u, p = users[i % n]
            t.write(f"{u};[authentication username={u} password={p}];{p};0{national_number(i)}\n")
    callee = os.path.join(work, "callee.csv")
    with open(callee, "w") as f:
        f.write(f"SEQUENTIAL\n{CALLEE};[authentication username={CALLEE} password={CALLEE_PASSWORD}];x\n")
    return path, users


def license_denwa(binary: str, license_bin: str, work: str, data: str) -> None:
    """Installs a licence without limits, signed by the TEST key and bound to the template's node
    id (the free allowance stops at 25 extensions and 10 calls). Needs DENWA_LICENSE_DEV=1, which
    main() sets for every denwa process; the copies of the template keep its node id."""
    def run(argv: list[str]) -> str:
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{r.stdout}{r.stderr}")
        return r.stdout
    run([binary, "license", "show", "--data-dir", data, "--log-level", "error"])  # makes the node id
    with open(os.path.join(data, "node-id")) as f:
        node = f.read().strip()
    lic = os.path.join(work, "bench.lic")
    until = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 30 * 86400))
    since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    run([license_bin, "issue", "--key", TEST_LICENSE_KEY, "--customer", "Denwa bench",
         "--topology", "standalone", "--node", node, "--extensions", "unlimited",
         "--calls", "unlimited", "--tenants", "1", "--trunks", "unlimited",
         "--valid-from", since, "--valid-until", until, "--out", lic, "--force"])
    run([binary, "license", "install", lic, "--data-dir", data, "--log-level", "error"])


def denwa_cli(binary: str, data: str, argv_list: list[list[str]], what: str) -> None:
    """Runs `denwa ARGV --data-dir DATA` for each ARGV, two CLI processes at a time (2 cores)."""
    def run(argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen([binary] + argv + ["--data-dir", data, "--log-level", "error"],
                                stdout=subprocess.DEVNULL)

    running: list[subprocess.Popen] = []

    def reap(keep: int) -> None:
        nonlocal running
        while len(running) > keep:
            time.sleep(0.001)
            still = []
            for r in running:
                rc = r.poll()
                if rc is None:
                    still.append(r)
                elif rc != 0:
                    raise RuntimeError(f"denwa {what} failed: {' '.join(r.args[1:])}")
            running = still

    for argv in argv_list:
        reap(1)
        running.append(run(argv))
    reap(0)


def provision_denwa(binary: str, license_bin: str, work: str, users: list[tuple[str, str]]) -> str:
    """A data directory with all subscribers, built once through the CLI and copied per start."""
    data = os.path.join(work, "denwa-template")
    t0 = time.time()
    license_denwa(binary, license_bin, work, data)
    todo = [["extension", "add", u, "--password", p] for u, p in users + [(CALLEE, CALLEE_PASSWORD)]]
    # The first call creates the database; then two at a time.
    denwa_cli(binary, data, todo[:1], "extension add")
    denwa_cli(binary, data, todo[1:], "extension add")
    log(f"denwa: {len(todo)} extensions provisioned in {time.time() - t0:.0f} s")
    return data


def provision_denwa_trunk(binary: str, work: str, template: str, users: list[tuple[str, str]],
                          carrier: tuple[str, int]) -> str:
    """The trunk load's data directory: the template plus an IP trunk to the carrier (no
    registration, no OPTIONS pings: the carrier is a sipp UAS that answers INVITEs only), one
    outbound route `0|0ZXXXXXXXX` through it, and the toll-fraud limits raised for the tenant and
    every calling extension (defaults 30 at once / 300 an hour for the tenant, 2 / 30 per
    extension: the benchmark's rate would be refused with 403 by design)."""
    data = os.path.join(work, "denwa-template-trunk")
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(template, data)
    t0 = time.time()
    host = f"{carrier[0]}:{carrier[1]}"
    denwa_cli(binary, data, [["trunk", "add", TRUNK_NAME, "--host", host, "--register", "false",
                              "--ping-interval", "0"]], "trunk add")
    denwa_cli(binary, data, [["route", "add", "national", "--pattern", TRUNK_PATTERN, "--trunk", TRUNK_NAME]],
              "route add")
    denwa_cli(binary, data, [["outbound", "set", "--main-number", TRUNK_MAIN_NUMBER, "--max-calls", "100000",
                              "--max-per-hour", "10000000"]], "outbound set")
    denwa_cli(binary, data, [["extension", "edit", u, "--max-outbound-calls", "1000",
                              "--max-calls-per-hour", "1000000"] for u, _ in users], "extension edit")
    # What the dialplan decides for the first caller's number (printed into the log).
    test = subprocess.run([binary, "route", "test", "--from", users[0][0], "--number", "0" + national_number(0),
                           "--data-dir", data, "--log-level", "error"], capture_output=True, text=True)
    if test.returncode != 0:
        raise RuntimeError(f"denwa route test failed: {test.stdout}{test.stderr}")
    log(f"denwa: trunk {TRUNK_NAME} -> {host}, route {TRUNK_PATTERN}, limits raised for {len(users)} "
        f"extensions in {time.time() - t0:.0f} s; route test: {' / '.join(test.stdout.split(chr(10))[:4])}")
    return data


def provision_kamailio(work: str, users: list[tuple[str, str]]) -> str:
    path = os.path.join(work, "kamailio-template.sqlite")
    if os.path.exists(path):
        os.unlink(path)
    db = sqlite3.connect(path)
    base = "/usr/share/kamailio/db_sqlite"
    for name in ("standard-create.sql", "auth_db-create.sql", "usrloc-create.sql", "registrar-create.sql",
                 "dialplan-create.sql"):
        p = os.path.join(base, name)
        if os.path.exists(p):
            with open(p) as f:
                db.executescript(f.read())
    db.executemany(
        "INSERT INTO subscriber (username, domain, password) VALUES (?, '127.0.0.1', ?)",
        users + [(CALLEE, CALLEE_PASSWORD)],
    )
    # The trunk load's outbound route (dialplan module, loaded only WITH_TRUNK): dpid 1, one
    # regular-expression rule (match_op 1) that strips the outside-line prefix.
    db.execute("INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp, attrs) "
               "VALUES (1, 0, 1, ?, 0, ?, '\\1', 'carrier')", (DP_MATCH, DP_MATCH))
    db.commit()
    db.close()
    return path


# ---------------------------------------------------------------- sipp


@dataclass
class SippResult:
    ok: int = 0
    failed: int = 0
    created: int = 0
    elapsed: float = 0.0
    rows: list[dict] = field(default_factory=list)
    rc: int = 0


class Sipp:
    """One sipp process; statistics come from its -trace_stat CSV (one row per second)."""

    seq = 0
    live: list[Proc] = []

    def __init__(self, work: str, server_port: int | None, scenario: str, args: list[str], tag: str,
                 ip: str = "127.0.0.1"):
        Sipp.seq += 1
        self.stat = os.path.join(work, f"sipp-{Sipp.seq}-{tag}.csv")
        argv = ["sipp"]
        if server_port is not None:
            argv.append(f"127.0.0.1:{server_port}")
        argv += [
            "-sf", os.path.join(SIPP_DIR, scenario), "-i", ip, "-mi", ip,
            "-nostdin", "-trace_stat", "-fd", "1", "-stf", self.stat,
            "-trace_err", "-error_file", os.path.join(work, f"sipp-{Sipp.seq}-{tag}.err"),
            "-max_socket", "60000",
        ] + args
        if "-mp" in args:
            argv += ["-rtp_threadtasks", str(RTP_THREADTASKS)]
        self.proc = Proc(f"sipp-{Sipp.seq}-{tag}", pinned(argv, "load"), work, cwd=work)
        Sipp.live.append(self.proc)

    def rows(self) -> list[dict]:
        try:
            with open(self.stat, newline="") as f:
                return list(csv.DictReader(f, delimiter=";"))
        except OSError:
            return []

    def wait(self, timeout: float) -> SippResult:
        try:
            rc = self.proc.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.p.send_signal(signal.SIGUSR1)  # sipp: dump stats and quit
            try:
                rc = self.proc.p.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.p.kill()
                rc = self.proc.p.wait()
        self.proc.logf.close()
        return self.result(rc)

    def kill(self) -> SippResult:
        if self.proc.alive():
            self.proc.p.kill()
        rc = self.proc.p.wait()
        self.proc.logf.close()
        return self.result(rc)

    def result(self, rc: int) -> SippResult:
        rows = self.rows()
        r = SippResult(rc=rc, rows=rows)
        if rows:
            last = rows[-1]
            r.ok = int(last.get("SuccessfulCall(C)", 0) or 0)
            r.failed = int(last.get("FailedCall(C)", 0) or 0)
            r.created = int(last.get("OutgoingCall(C)", 0) or 0) + int(last.get("IncomingCall(C)", 0) or 0)
            r.elapsed = hms(last.get("ElapsedTime(C)", "0"))
        return r


def hms(s: str) -> float:
    s = s.split()[0] if s else "0"
    parts = s.split(":")
    try:
        if len(parts) == 3:
            return int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])
        return float(s)
    except ValueError:
        return 0.0


def register_callee(work: str, server: Server, port: int) -> None:
    s = Sipp(work, server.sip_port, "callee_register.xml",
             ["-inf", os.path.join(work, "callee.csv"), "-p", str(port), "-m", "1",
              "-timeout", "15s", "-timeout_error", "-recv_timeout", "5000"], "callee-reg")
    r = s.wait(30)
    if r.ok != 1:
        raise RuntimeError(f"callee registration to {server.name} failed (rc {r.rc})")


# ---------------------------------------------------------------- loads


@dataclass
class Step:
    target: float
    ok: int
    failed: int
    seconds: float
    cpu: float
    passed: bool
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def fail_pct(self) -> float:
        total = self.ok + self.failed
        return 100.0 * self.failed / total if total else 100.0


@dataclass
class LoadResult:
    best: Step | None
    steps: list[Step]
    probe: str = ""


class Rig:
    """A fresh server (and, for call loads, a registered sipp callee, or for the trunk load the
    carrier: an unregistered sipp UAS on its own address) for one probe or step, so an
    overloaded step cannot leave state behind that fails the next one."""

    def __init__(self, work: str, server: Server, callee: str | None, media: bool = False,
                 uas_timeout: int = 300, carrier: tuple[str, int] | None = None):
        self.work, self.server, self.callee, self.media = work, server, callee, media
        self.uas_timeout = uas_timeout
        self.carrier = carrier
        self.uas: Sipp | None = None

    def __enter__(self) -> "Rig":
        self.server.start(media=self.media, trunk=self.carrier is not None)
        try:
            if self.callee and self.carrier:
                ip, port = self.carrier
                self.uas = Sipp(self.work, None, self.callee, ["-p", str(port), "-s", "carrier", "-mp", str(UAS_MP),
                                                               "-timeout", f"{self.uas_timeout}s"], "carrier", ip=ip)
                time.sleep(0.5)
            elif self.callee:
                port = free_port()
                register_callee(self.work, self.server, port)
                self.uas = Sipp(self.work, None, self.callee, ["-p", str(port), "-s", CALLEE, "-mp", str(UAS_MP),
                                                               "-timeout", f"{self.uas_timeout}s"], "uas")
                time.sleep(0.5)
        except BaseException:
            self.server.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.uas:
            self.uas.kill()
        self.server.stop()


def ramp_probe(work, server, scenario, args, start, inc, interval, rate_max, tag) -> tuple[float, str]:
    """Increasing rate in one sipp run (start, +inc every interval seconds, up to rate_max);
    stops at the first second where the failures so far exceed the goal's tolerance (0.1 % of
    the calls created so far) or a backlog builds, and returns the highest rate that ran a whole
    interval before that (the candidate for the 20 s confirmation). A single stray failure does
    not end the probe: the holds allow 0.1 % too, and an overloaded server fails by the
    hundred per second, so the tolerance delays the stop by a second at most."""
    s = Sipp(work, server.sip_port, scenario, args + [
        "-r", str(start), "-rate_increase", str(inc), "-rate_interval", f"{interval}s",
        "-rate_max", str(rate_max), "-recv_timeout", "8000", "-timeout", f"{int((rate_max - start) / inc * interval + 4 * interval)}s",
    ], tag + "-probe")
    best = 0.0
    t0 = time.time()
    limit = (rate_max - start) / inc * interval + 3 * interval + 10
    reason = "reached the rate cap"
    while s.proc.alive() and time.time() - t0 < limit:
        time.sleep(0.5)
        rows = s.rows()
        if not rows:
            continue
        last = rows[-1]
        failed = int(last.get("FailedCall(C)", 0) or 0)
        t = hms(last.get("ElapsedTime(C)", "0"))
        # Rate in force at time t; the steps before the current one ran for a whole interval.
        cur = start + inc * int(t // interval)
        # sipp falls behind the schedule when it (or the server it waits on) runs out of CPU:
        # compare the calls created so far with the schedule's integral.
        created = int(last.get("OutgoingCall(C)", 0) or 0)
        k = int(t // interval)
        expected = interval * (start * k + inc * k * (k - 1) / 2) + (t - k * interval) * cur
        backlog = t > 2 and created < 0.93 * expected - cur
        inflight = int(last.get("CurrentCall", 0) or 0)
        if failed > max(1, 0.001 * created) or backlog:
            reason = (f"failures at {cur:g}/s" if failed else
                      f"behind schedule at {cur:g}/s ({created} of {expected:.0f} created, {inflight} in progress)")
            break
        if cur - inc >= start:
            best = max(best, cur - inc)
    s.kill()
    server.check_alive()
    return best, reason


class Perf:
    """`perf record -g` on the server's processes during a step when BENCH_PERF=DIR is set
    (for finding hot spots; the figures of a profiled run are not comparable)."""

    def __init__(self, server: Server, tag: str):
        self.p = None
        out = os.environ.get("BENCH_PERF")
        if out and shutil.which("perf"):
            os.makedirs(out, exist_ok=True)
            self.path = os.path.join(out, f"{server.name}-{tag}.data")
            pids = ",".join(str(q) for p in server.pids() for q in proc_tree(p))
            graph = os.environ.get("BENCH_PERF_CALLGRAPH", "fp")
            self.p = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", graph,
                                       "-o", self.path, "-p", pids],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.p:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
            log(f"perf data: {self.path}")


def hold_rate(work, server, scenario, args, rate, seconds, tag, callee_port=None) -> Step:
    """Offered rate for `seconds`, then let the calls finish; pass when < 0.1 % failed and the
    generator kept up (>= 95 % of the calls created within the window)."""
    n = int(rate * seconds)
    cpu0 = cpu_seconds(server.pids())
    t0 = time.time()
    s = Sipp(work, server.sip_port, scenario, args + [
        "-r", str(int(rate)), "-m", str(n), "-timeout", f"{seconds + 30}s", "-recv_timeout", "8000",
    ], f"{tag}-{int(rate)}")
    perf = Perf(server, f"{tag}-{int(rate)}")
    r = s.wait(seconds + 45)
    perf.stop()
    wall = time.time() - t0
    cpu = cpu_seconds(server.pids()) - cpu0
    server.check_alive()
    # Time at which the last call was created: the generator must keep the rate.
    created_at = seconds
    for row in r.rows:
        if int(row.get("OutgoingCall(C)", 0) or 0) >= n:
            created_at = hms(row.get("ElapsedTime(C)", "0"))
            break
    else:
        created_at = float("inf")
    failed = r.failed + max(0, n - r.ok - r.failed)  # calls never finished count as failed
    kept_up = created_at <= seconds * 1.05 + 1.0
    step = Step(rate, r.ok, failed, wall, cpu, False)
    step.passed = step.fail_pct < 0.1 and kept_up
    step.note = "" if kept_up else f"generator lagged ({created_at:.0f} s to create {n})"
    log(f"{server.name} {tag} {rate:g}/s x {seconds}s: ok {r.ok} failed {failed} "
        f"({step.fail_pct:.3f}%) cpu {cpu:.1f}s {'PASS' if step.passed else 'FAIL'} {step.note}")
    return step


def search_rate(work, server, scenario, args, probe, hold_s, tag, callee=None, max_down=7,
                carrier=None) -> LoadResult:
    """Probe, then confirm: hold 80 % of the probe's clean rate for hold_s seconds; on failure
    step down by 15 % (at most `max_down` holds; in run F Kamailio's calls failed 1,920, 1,630,
    1,380 and 1,170/s with 0.3-20 %, and the old bound of 4 left no figure); after the first pass, one more hold halfway to the lowest rate that failed
    (or to the probe's rate) narrows the figure."""
    start, inc, interval, rate_max = probe
    with Rig(work, server, callee, carrier=carrier):
        cand, reason = ramp_probe(work, server, scenario, args, start, inc, interval, rate_max, tag)
    log(f"{server.name} {tag}: probe candidate {cand:g}/s ({reason})")
    steps: list[Step] = []
    upper = max(cand, start)
    rate = max(start / 2, math.floor(upper * 0.8 / 10) * 10)
    best = None

    def hold(r: float) -> Step:
        with Rig(work, server, callee, carrier=carrier):
            st = hold_rate(work, server, scenario, args, r, hold_s, tag)
        steps.append(st)
        return st

    while len(steps) < max_down:
        st = hold(rate)
        if st.passed:
            best = st
            break
        upper = min(upper, rate)
        rate = max(start / 2, math.floor(rate * 0.85 / 10) * 10)
    if best is not None:
        mid = math.floor((best.target + upper) / 2 / 10) * 10
        if mid > best.target * 1.04:
            st = hold(mid)
            if st.passed:
                best = st
    return LoadResult(best, steps, f"ramp {start:g}+{inc:g}/s every {interval:g}s up to {rate_max:g}: "
                                   f"clean up to {cand:g}/s ({reason})")


def load_reg(work, server, users_csv, smoke) -> LoadResult:
    args = ["-inf", users_csv]
    if smoke or FIXED:
        with Rig(work, server, None):
            st = hold_rate(work, server, "reg.xml", args, FIXED or 50, 20 if FIXED else 2, "reg")
        return LoadResult(st if st.passed else None, [st], "smoke")
    return search_rate(work, server, "reg.xml", args, (1000, 1000, 2, 24000), 20, "reg")


def load_cps(work, server, users_csv, smoke) -> LoadResult:
    args = ["-inf", users_csv, "-s", CALLEE, "-d", "1000", "-mp", str(UAC_MP)]
    if smoke or FIXED:
        with Rig(work, server, "uas_call.xml"):
            st = hold_rate(work, server, "uac_call.xml", args, FIXED or 10, 20 if FIXED else 2, "cps")
        return LoadResult(st if st.passed else None, [st], "smoke")
    return search_rate(work, server, "uac_call.xml", args, (200, 200, 2, 6000), 20, "cps", callee="uas_call.xml")


CARRIER: tuple[str, int] | None = None  # (address, port) of the trunk load's carrier, set in main


def load_trunk(work, server, users_csv, smoke) -> LoadResult:
    """Outbound calls through a trunk: the callers (as in cps, authenticated) dial 0 + a national
    number, a different one on every call (users-trunk.csv, field3); the server strips the prefix by its outbound route and
    sends the call to the carrier (uas_call.xml on CARRIER, which refuses a Request-URI that is
    not a national number without the prefix)."""
    args = ["-inf", os.path.join(work, "users-trunk.csv"), "-d", "1000", "-mp", str(UAC_MP)]
    if smoke or FIXED:
        with Rig(work, server, "uas_call.xml", carrier=CARRIER):
            st = hold_rate(work, server, "uac_call.xml", args, FIXED or 10, 20 if FIXED else 2, "trunk")
        return LoadResult(st if st.passed else None, [st], "smoke")
    return search_rate(work, server, "uac_call.xml", args, (200, 200, 2, 6000), 20, "trunk",
                       callee="uas_call.xml", carrier=CARRIER)


def write_tone(path: str) -> None:
    """1 s of a 440 Hz tone as G.711 mu-law in a WAV container (format 7) for sipp rtp_stream."""
    def ulaw(sample: int) -> int:
        sign = 0x80 if sample < 0 else 0
        m = min(abs(sample), 32635) + 0x84
        exp = max(0, m.bit_length() - 8)
        exp = min(exp, 7)
        mant = (m >> (exp + 3)) & 0x0F
        return ~(sign | (exp << 4) | mant) & 0xFF

    data = bytes(ulaw(int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(8000))
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)


def capture(work: str, relay: tuple[int, int], seconds: float, tag: str, pps: int) -> dict:
    """tcpdump on lo for about `seconds` of traffic at `pps` packets/s, then per-stream RTP
    statistics: loss by sequence gaps and RFC 3550 interarrival jitter, separately for packets
    into the relay and out of it.

    The window is a packet count (-c), not a wall-clock time: tcpdump shares the load CPU with
    sipp and may take much longer than `seconds` to empty its ring, and a SIGINT after
    `seconds` would discard what it has not written yet (run F at 2,500 calls: 153,321 of about
    a million packets). With a count it writes the first `seconds` of traffic whole, however
    late; the ring is large enough to hold them (CAPTURE_BUFFER_KIB). If the traffic is short
    (calls failing), the capture is stopped after a bound and what it has is analysed."""
    pcap = os.path.join(work, f"{tag}.pcap")
    lo, hi = relay
    count = max(100, int(pps * seconds))
    p = subprocess.Popen(
        pinned(["tcpdump", "-i", "lo", "-s", "60", "-B", str(CAPTURE_BUFFER_KIB), "-c", str(count),
                "-w", pcap, "-n", f"udp and portrange {lo}-{hi}"], "load"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    counted = True
    try:
        _, err = p.communicate(timeout=seconds * 10 + 20)
    except subprocess.TimeoutExpired:
        counted = False
        p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
    # Drops are counted up to tcpdump's exit: once it has its count, the ring keeps filling
    # until it closes, and those drops are after the window. They matter only when the count
    # was not reached.
    dropped = 0
    for line in err.decode(errors="replace").splitlines():
        if "dropped by kernel" in line and not counted:
            dropped = int(line.split()[0])
    stats = rtp_stats(pcap, relay)
    stats["capture_dropped"] = dropped
    try:
        os.unlink(pcap)
    except OSError:
        pass
    return stats


def rtp_stats(pcap: str, relay: tuple[int, int]) -> dict:
    lo, hi = relay
    streams: dict[tuple, dict] = {}
    with open(pcap, "rb") as f:
        gh = f.read(24)
        if len(gh) < 24:
            return {"packets": 0}
        magic = struct.unpack("<I", gh[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        linktype = struct.unpack(endian + "I", gh[20:24])[0]
        l2 = 14 if linktype == 1 else (16 if linktype == 113 else 0 if linktype == 101 else 14)
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            ts, tf, incl, _ = struct.unpack(endian + "IIII", h)
            pkt = f.read(incl)
            t = ts + tf / (1e9 if nano else 1e6)
            ip = pkt[l2:]
            if len(ip) < 20 or ip[0] >> 4 != 4:
                continue
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 17:
                continue
            src = ip[12:16]
            dst = ip[16:20]
            udp = ip[ihl:]
            if len(udp) < 8 + 12:
                continue
            sport, dport = struct.unpack(">HH", udp[:4])
            rtp = udp[8:]
            if rtp[0] >> 6 != 2 or (rtp[1] & 0x7F) >= 72:  # RTP v2, not RTCP
                continue
            seq, rts, ssrc = struct.unpack(">HII", rtp[2:12])
            into_relay = lo <= dport <= hi
            key = (src, sport, dst, dport, ssrc)
            st = streams.get(key)
            if st is None:
                st = streams[key] = {"in": into_relay, "n": 0, "ext": None, "min": None, "max": None,
                                     "jit": 0.0, "last": None}
            # Extended sequence number (wrap-around safe for in-order-ish arrival).
            if st["ext"] is None:
                ext = seq
            else:
                prev = st["ext"]
                d = (seq - (prev & 0xFFFF)) & 0xFFFF
                ext = prev + d if d < 0x8000 else prev - ((prev & 0xFFFF) - seq & 0xFFFF)
            st["ext"] = ext
            st["min"] = ext if st["min"] is None else min(st["min"], ext)
            st["max"] = ext if st["max"] is None else max(st["max"], ext)
            st["n"] += 1
            if st["last"] is not None:
                lt, lrts = st["last"]
                dd = (t - lt) - ((rts - lrts) & 0xFFFFFFFF if (rts - lrts) & 0xFFFFFFFF < 2**31 else
                                 -((lrts - rts) & 0xFFFFFFFF)) / 8000.0
                st["jit"] += (abs(dd) - st["jit"]) / 16.0
            st["last"] = (t, rts)
    out = {}
    for direction in ("in", "out"):
        ss = [s for s in streams.values() if s["in"] == (direction == "in") and s["n"] >= 10]
        expected = sum(s["max"] - s["min"] + 1 for s in ss)
        got = sum(s["n"] for s in ss)
        out[f"{direction}_streams"] = len(ss)
        out[f"{direction}_packets"] = got
        out[f"{direction}_loss_pct"] = 100.0 * max(0, expected - got) / expected if expected else 0.0
        out[f"{direction}_jitter_ms"] = 1000.0 * sum(s["jit"] for s in ss) / len(ss) if ss else 0.0
    out["packets"] = out["in_packets"] + out["out_packets"]
    return out


def hold_media(work, server, users_csv, n, hold, tag, idle_mem) -> Step:
    """n simultaneous calls with G.711 both ways, all up for `hold` seconds."""
    setup_rate = int(min(300, max(50, n / 5)))
    ramp = n / setup_rate
    dur_ms = int((ramp + hold) * 1000)
    cpu0 = cpu_seconds(server.pids())
    t0 = time.time()
    uac = Sipp(work, server.sip_port, "uac_media.xml", [
        "-inf", users_csv, "-s", CALLEE, "-d", str(dur_ms), "-mp", str(UAC_MP), "-r", str(setup_rate),
        "-m", str(n), "-l", str(n), "-recv_timeout", "10000", "-timeout", f"{int(2 * ramp + hold + 40)}s",
    ], f"{tag}-{n}")
    # Measure in the middle of the hold: every call is up from t0 + ramp to t0 + ramp + hold.
    time.sleep(max(0.0, ramp + 3 - (time.time() - t0)))
    rows = uac.rows()
    up = int(rows[-1].get("CurrentCall", 0) or 0) if rows else 0
    # The CPU window opens before the capture: analysing a large capture can take longer than
    # the rest of the first half of the hold, which once left a window of ~0 s and a CPU of 0 %.
    cpu_mid0, tm0 = cpu_seconds(server.pids()), time.time()
    relay_cpu0 = cpu_seconds(server.relay_pids())
    stats = capture(work, RELAY_RTP[server.name], 3.0 if n < 1500 else 2.0, f"{server.name}-{n}", 4 * 50 * n)
    pss, rss = memory_kib(server.pids())
    perf = Perf(server, f"{tag}-{n}")
    time.sleep(max(0.0, ramp + hold * 0.5 - (time.time() - t0)))
    perf.stop()
    cpu_mid = cpu_seconds(server.pids()) - cpu_mid0
    relay_cpu = cpu_seconds(server.relay_pids()) - relay_cpu0
    cpu_mid_s = time.time() - tm0
    r = uac.wait(2 * ramp + hold + 60)
    cpu = cpu_seconds(server.pids()) - cpu0
    server.check_alive()
    failed = r.failed + max(0, n - r.ok - r.failed)
    st = Step(n, r.ok, failed, time.time() - t0, cpu, False)
    out_loss = stats.get("out_loss_pct", 100.0)
    streams_ok = stats.get("out_streams", 0) >= 0.99 * 2 * n and stats.get("in_streams", 0) >= 0.99 * 2 * n
    # A measurement holds a step to 0.1 % loss. The smoke run (inside the test suite, beside
    # other tests on a loaded machine) proves the wiring only: media flowed both ways through
    # the relay with no more than a few percent lost; the figure is still printed.
    loss_limit = SMOKE_LOSS_PCT if SMOKE else 0.1
    st.passed = st.fail_pct < 0.1 and out_loss < loss_limit and streams_ok and up >= n * 0.99
    st.extra = dict(stats)
    st.extra.update(pss_kib=pss, rss_kib=rss, up=up, idle_pss_kib=idle_mem[0], idle_rss_kib=idle_mem[1],
                    cpu_pct_hold=100.0 * cpu_mid / cpu_mid_s if cpu_mid_s > 0 else 0.0,
                    # CPU of the relaying process per packet it forwards (G.711 20 ms both ways:
                    # 100 packets/s per call in, as many out), over the same mid-hold window.
                    relay_us_per_packet=1e6 * relay_cpu / (cpu_mid_s * 100 * n) if cpu_mid_s > 0 else None)
    notes = []
    if not streams_ok:
        notes.append(f"streams in/out {stats.get('in_streams')}/{stats.get('out_streams')} of {2 * n}")
    if up < n * 0.99:
        notes.append(f"only {up} calls up at the measurement")
    if out_loss >= 0.1:
        notes.append(f"loss {out_loss:.3f}%")
    st.note = "; ".join(notes)
    log(f"{server.name} media {n} calls: ok {r.ok} failed {failed} up {up} loss in/out "
        f"{stats.get('in_loss_pct', 0):.3f}/{out_loss:.3f}% jitter in/out {stats.get('in_jitter_ms', 0):.2f}/"
        f"{stats.get('out_jitter_ms', 0):.2f} ms pss {pss} KiB (idle {idle_mem[0]}) cpu {cpu:.1f}s "
        f"captured {stats.get('packets', 0)} drops {stats.get('capture_dropped')} {'PASS' if st.passed else 'FAIL'} {st.note}")
    return st


FIXED = 0.0  # --rate: one fixed step instead of the search
SMOKE = False  # --smoke: tiny loads that prove the wiring, not a measurement
SMOKE_LOSS_PCT = 5.0
MEDIA_RESOLUTION = 250
MEDIA_LADDER = [int(x) for x in os.environ.get("BENCH_MEDIA_LADDER", "300,600,1000,1250,1500,1750,2000,2500,3000,3500,4000,4500,5000").split(",")]


def load_media(work, server, users_csv, smoke) -> LoadResult:
    ladder = [5] if smoke else [int(FIXED)] if FIXED else MEDIA_LADDER
    hold = 8 if smoke else 30
    steps: list[Step] = []
    best = None

    def step(n: int) -> Step:
        setup_rate = int(min(300, max(50, n / 5)))
        with Rig(work, server, "uas_media.xml", media=True, uas_timeout=int(2 * n / setup_rate + hold + 90)):
            idle = memory_kib(server.pids())
            st = hold_media(work, server, users_csv, n, hold, "media", idle)
        steps.append(st)
        return st

    failed = None
    for n in ladder:
        st = step(n)
        if not st.passed:
            failed = n
            break
        best = st
    # The ladder is coarse at the top (steps of 500 above 2,000): halve the gap between the last
    # step held and the first failed, down to 250 calls, so a figure is not a floor by up to 499.
    lo = int(best.target) if best else 0
    while failed is not None and best is not None and failed - lo > MEDIA_RESOLUTION:
        mid = lo + (failed - lo) // 2 // MEDIA_RESOLUTION * MEDIA_RESOLUTION
        if mid <= lo:
            break
        st = step(mid)
        if st.passed:
            best, lo = st, mid
        else:
            failed = mid
    how = "ladder " + ", ".join(str(x) for x in ladder) + " (stop at first failure"
    how += f", then halve the gap to {MEDIA_RESOLUTION})" if len(ladder) > 1 else ")"
    return LoadResult(best, steps, how)


# relay_load modes the floor measurement runs, in this order (see relay_floor).
FLOOR_MODES = ("relay", "relaytap", "bare", "mmsg", "uring", "uring2")


def relay_floor(smoke: bool) -> dict | None:
    """CPU per relayed packet of Denwa's relay next to bare forwarding loops, measured by
    `crates/media/benches/relay_load` (RELAY_LOAD_BIN, built by run.sh) on the same machine in
    the same run: the forwarder on the server CPUs, its own generator on the load CPUs,
    BENCH_FLOOR_CALLS simultaneous G.711 calls (default 1,000) for BENCH_FLOOR_SECS (10).
    The modes (BENCH_FLOOR_MODES) run one after the other, and that round BENCH_FLOOR_REPEAT
    times (3), so the relay and the bare loop alternate; each figure is the median of its runs
    (a single pass moved the relay/bare ratio by about ±0.2 on a shared machine)."""
    binary = os.environ.get("RELAY_LOAD_BIN")
    if smoke or not binary or not os.path.exists(binary):
        return None
    calls = int(os.environ.get("BENCH_FLOOR_CALLS", "1000"))
    secs = int(os.environ.get("BENCH_FLOOR_SECS", "10"))
    halves = cpu_halves()
    pin = (["--server-cpus", ",".join(map(str, halves[0])), "--load-cpus", ",".join(map(str, halves[1]))]
           if halves else ["--pin", "none"])
    modes = [m for m in os.environ.get("BENCH_FLOOR_MODES", ",".join(FLOOR_MODES)).split(",")
             if m in FLOOR_MODES]
    repeat = max(1, int(os.environ.get("BENCH_FLOOR_REPEAT", "3")))
    argv = [binary, "--calls", str(calls), "--secs", str(secs), "--modes", ",".join(modes)] + pin
    log(f"relay floor: {repeat} x {' '.join(argv)}")
    runs: dict[str, list[dict]] = {}
    raw = []
    for _ in range(repeat):
        try:
            out = subprocess.run(argv, capture_output=True, text=True,
                                 timeout=60 + (len(modes) + 2) * (secs + 10)).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            log(f"relay floor failed: {e}")
            return None
        raw.append(out)
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 11 and f[0] in modes and f[1].isdigit():
                runs.setdefault(f[0], []).append(
                    {"pps": float(f[3]), "loss_pct": float(f[4]), "cpu_pct": float(f[5]),
                     "us_per_packet": float(f[6]), "saturated": "saturated" in line})
    rows = {m: {"pps": statistics.median(r["pps"] for r in rs),
                "loss_pct": max(r["loss_pct"] for r in rs),
                "cpu_pct": statistics.median(r["cpu_pct"] for r in rs),
                "us_per_packet": statistics.median(r["us_per_packet"] for r in rs),
                "all_us": [r["us_per_packet"] for r in rs],
                "runs": len(rs),
                "saturated": any(r["saturated"] for r in rs)}
            for m, rs in runs.items()}
    log("relay floor (medians): " + ", ".join(
        f"{m} {r['us_per_packet']:.2f} us ({' '.join(f'{u:.2f}' for u in r['all_us'])})"
        for m, r in rows.items()))
    return {"calls": calls, "secs": secs, "rows": rows, "raw": "\n".join(raw)}


# ---------------------------------------------------------------- report


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return f"{os.cpu_count()} x {cpu}, {mem} MiB RAM, Linux {platform.release()}"


def versions() -> str:
    def first(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    def deb(pkg):
        try:
            return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                                  text=True, timeout=10).stdout.strip() or "?"
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    return (f"sipp {first(['sipp', '-v']).split()[1] if first(['sipp', '-v']).startswith('SIPp') else deb('sip-tester')}, "
            f"kamailio {deb('kamailio')}, rtpengine {deb('rtpengine-daemon')}")


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (with uncommitted changes in the tree)" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def fmt(x, spec=".0f", unit="") -> str:
    return "n/a" if x is None else f"{x:{spec}}{unit}"


def cpu_per_1000(st: Step | None) -> float | None:
    if st is None or st.ok == 0:
        return None
    return 1000.0 * st.cpu / st.ok


def steps_table(results: dict, load: str, unit: str) -> list[str]:
    out = ["", "<details><summary>steps</summary>", "", f"| server | probe | step ({unit}) | ok | failed | failed % | server CPU s | result |",
           "|---|---|---|---|---|---|---|---|"]
    for srv, res in results.items():
        r = res.get(load)
        if r is None:
            continue
        for st in r.steps:
            out.append(f"| {srv} | {r.probe} | {st.target:g} | {st.ok} | {st.failed} | {st.fail_pct:.3f} | "
                       f"{st.cpu:.1f} | {'pass' if st.passed else 'fail'}{' — ' + st.note if st.note else ''} |")
    out += ["", "</details>"]
    return out


def floor_table(results: dict, floor: dict | None) -> list[str]:
    """CPU per relayed packet: both servers in the sipp media steps, and Denwa's relay next to
    the bare forwarding loops in relay_load's harness."""
    lines = ["## CPU per relayed packet", ""]
    d, k = results.get("denwa", {}).get("media"), results.get("kamailio", {}).get("media")

    def held(r) -> dict:
        return {int(st.target): st for st in r.steps if st.passed} if r else {}

    dh, kh = held(d), held(k)
    # Same load for both: the highest step both servers held.
    common = max(set(dh) & set(kh), default=None)
    bare = floor and floor["rows"].get("bare", {}).get("us_per_packet")

    def vs(us) -> str:
        return f"{us / bare:.2f}" if us and bare else "n/a"

    lines += ["| forwarder | measured in | µs CPU per relayed packet | / bare one-packet loop |", "|---|---|---|---|"]
    if common is not None:
        for name, st in (("Denwa (`denwa serve`, whole process)", dh[common]),
                         ("rtpengine (userspace), its process", kh[common])):
            us = st.extra.get("relay_us_per_packet")
            lines.append(f"| {name} | sipp media step, {common} calls (highest both held) | {fmt(us, '.2f')} | {vs(us)} |")
    for label, hs in (("Denwa", dh), ("rtpengine (userspace)", kh)):
        if hs:
            top = max(hs)
            us = hs[top].extra.get("relay_us_per_packet")
            lines.append(f"| {label} at its top step | sipp media step, {top} calls | {fmt(us, '.2f')} | {vs(us)} |")
    if floor:
        names = {"relay": "Denwa's relay (media::Relay, default settings)",
                 "relaytap": "Denwa's relay with the tap a call gets when a recording policy may record it (RFC 4733 watch)",
                 "bare": "bare loop: epoll + one recvfrom + one sendto per packet",
                 "mmsg": "bare loop: recvmmsg/sendmmsg ×32 per readable socket",
                 "uring": "bare loop: io_uring, batched RecvMsg/SendMsg",
                 "uring2": "bare loop: io_uring, multishot RecvMsgMulti into a provided-buffer ring, Send"}
        for m, label in names.items():
            r = floor["rows"].get(m)
            if r:
                note = " (generator saturated)" if r["saturated"] else ""
                runs = f", median of {r['runs']}" if r.get("runs", 1) > 1 else ""
                lines.append(f"| {label} | relay_load harness, {floor['calls']} calls, {floor['secs']} s{runs}, "
                             f"loss {r['loss_pct']:.3f} %{note} | {r['us_per_packet']:.2f} | {vs(r['us_per_packet'])} |")
    lines += ["", "The sipp figures are the relaying process's CPU (utime + stime) over the mid-hold window "
              "divided by 100 packets/s per call; the harness figures are the forwarder child's CPU per packet "
              "it returned, all forwarders under the same generated load on the server CPU (bench/README.md).", ""]
    return lines


def report(results: dict, started: float, smoke: bool, path: str, labels: dict,
           floor: dict | None = None) -> None:
    d, k = results.get("denwa", {}), results.get("kamailio", {})
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Denwa benchmark results" + (" (smoke run — not a measurement)" if smoke else ""),
        "",
        f"Generated by `bench/run.sh` on {now}, git revision {git_rev()}, "
        f"run time {(time.time() - started) / 60:.1f} min.",
        "",
        f"Machine: {machine()}. {versions()}. {cpu_note()} The ratios (same run, same machine, "
        "same sipp) are the figures to read, not the absolutes.",
        "",
        f"Servers: Denwa = `denwa serve` release build (SQLite, one process); anchor = {labels.get('kamailio', '')}.",
        "",
    ]

    def best(res, load):
        r = res.get(load)
        return r.best if r else None

    # Registration and call rate.
    for load, title, unit in (("reg", "Registration storm (10,000 subscribers, digest auth, held 20 s, < 0.1 % failed)", "REGISTER/s"),
                              ("cps", "Call rate without media (INVITE/auth/200/ACK/BYE, 1 s calls, held 20 s, < 0.1 % failed)", "calls/s"),
                              ("trunk", "Outbound calls through a trunk (caller dials 0 + national number, "
                               "route strips the prefix, carrier answers; 1 s calls, held 20 s, < 0.1 % failed)", "calls/s")):
        if load not in d and load not in k:
            continue
        bd, bk = best(d, load), best(k, load)
        what = "registrations" if load == "reg" else "calls"
        lines += [f"## {title}", "",
                  f"| figure | Denwa | Kamailio | Denwa/Kamailio |", "|---|---|---|---|",
                  f"| highest {unit} held | {fmt(bd and bd.target)} | {fmt(bk and bk.target)} | {ratio(bd and bd.target, bk and bk.target)} |",
                  f"| server CPU s per 1,000 {what} | {fmt(cpu_per_1000(bd), '.2f')} | {fmt(cpu_per_1000(bk), '.2f')} | {ratio(cpu_per_1000(bd), cpu_per_1000(bk))} |",
                  f"| failed at that step | {fmt(bd and bd.fail_pct, '.3f', ' %')} | {fmt(bk and bk.fail_pct, '.3f', ' %')} | |"]
        if load == "trunk":
            lines += ["", "Denwa: an IP trunk to the carrier (sipp UAS on a second loopback address) and one "
                      "outbound route `0|0ZXXXXXXXX`, toll-fraud limits raised; B2BUA with its relay. Kamailio: "
                      "`proxy_authorize`, `dialplan` rule `^0(0[1-9][0-9]{8})$` -> `\\1` (`dp_translate`), "
                      "Request-URI host/port set to the carrier, `record_route`, `t_relay` (bench/README.md)."]
        lines += steps_table(results, load, unit)
        lines.append("")
    if "media" in d or "media" in k:
        bd, bk = best(d, "media"), best(k, "media")

        def ex(st, key, spec=".2f"):
            return fmt(st.extra.get(key) if st else None, spec)

        def per_call(st):
            if not st:
                return None
            return (st.extra["pss_kib"] - st.extra["idle_pss_kib"]) / st.target

        def cpu_call_s(st):
            # CPU seconds per 1,000 calls of one second each (the relay's cost per call-second).
            if not st:
                return None
            return st.extra["cpu_pct_hold"] / 100.0 / st.target * 1000.0

        lines += ["## Calls with relayed media (G.711 both ways, all calls up 30 s, < 0.1 % failed calls and < 0.1 % loss)", "",
                  "| figure | Denwa | Kamailio + rtpengine (userspace) | Denwa/anchor |", "|---|---|---|---|",
                  f"| highest simultaneous calls held | {fmt(bd and bd.target)} | {fmt(bk and bk.target)} | {ratio(bd and bd.target, bk and bk.target)} |",
                  f"| packet loss through the relay (received side) | {ex(bd, 'out_loss_pct', '.3f')} % | {ex(bk, 'out_loss_pct', '.3f')} % | |",
                  f"| jitter into the relay / out of it (ms) | {ex(bd, 'in_jitter_ms')} / {ex(bd, 'out_jitter_ms')} | {ex(bk, 'in_jitter_ms')} / {ex(bk, 'out_jitter_ms')} | |",
                  f"| added jitter (ms) | {fmt(bd and bd.extra['out_jitter_ms'] - bd.extra['in_jitter_ms'], '.2f')} | {fmt(bk and bk.extra['out_jitter_ms'] - bk.extra['in_jitter_ms'], '.2f')} | |",
                  f"| server CPU % while holding (of one core) | {ex(bd, 'cpu_pct_hold', '.0f')} | {ex(bk, 'cpu_pct_hold', '.0f')} | |",
                  f"| server CPU s per 1,000 call-seconds of media | {fmt(cpu_call_s(bd), '.2f')} | {fmt(cpu_call_s(bk), '.2f')} | {ratio(cpu_call_s(bd), cpu_call_s(bk))} |",
                  f"| server CPU s per 1,000 calls (whole step, {30}+ s calls) | {fmt(cpu_per_1000(bd), '.1f')} | {fmt(cpu_per_1000(bk), '.1f')} | {ratio(cpu_per_1000(bd), cpu_per_1000(bk))} |",
                  "", "## Memory per simultaneous call (at the highest media step held)", "",
                  "| figure | Denwa | Kamailio + rtpengine (userspace) | Denwa/anchor |", "|---|---|---|---|",
                  f"| idle PSS (KiB) | {ex(bd, 'idle_pss_kib', '.0f')} | {ex(bk, 'idle_pss_kib', '.0f')} | |",
                  f"| PSS with the calls up (KiB) | {ex(bd, 'pss_kib', '.0f')} | {ex(bk, 'pss_kib', '.0f')} | |",
                  f"| KiB per simultaneous call (PSS, idle subtracted) | {fmt(per_call(bd), '.1f')} | {fmt(per_call(bk), '.1f')} | {ratio(per_call(bd), per_call(bk))} |",
                  ]
        out = ["", "<details><summary>media steps</summary>", "",
               "| server | calls | ok | failed | up at capture | loss in/out % | jitter in/out ms | streams in/out | capture drops | PSS KiB (idle) | CPU % | result |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for srv, res in results.items():
            r = res.get("media")
            if r is None:
                continue
            for st in r.steps:
                e = st.extra
                out.append(f"| {srv} | {st.target:g} | {st.ok} | {st.failed} | {e.get('up')} | "
                           f"{e.get('in_loss_pct', 0):.3f} / {e.get('out_loss_pct', 0):.3f} | "
                           f"{e.get('in_jitter_ms', 0):.2f} / {e.get('out_jitter_ms', 0):.2f} | "
                           f"{e.get('in_streams')} / {e.get('out_streams')} | {e.get('capture_dropped')} | "
                           f"{e.get('pss_kib')} ({e.get('idle_pss_kib')}) | {e.get('cpu_pct_hold', 0):.0f} | "
                           f"{'pass' if st.passed else 'fail'}{' — ' + st.note if st.note else ''} |")
        lines += out + ["", "</details>", ""]
        lines += floor_table(results, floor)
        goals = []
    # Goals.
    g = ["## Goals (issue 12: the call engine must not regress; trunks: outbound calls through a trunk >= 1.0x)", ""]

    def goal(name, val, target, fmt_s):
        if val is None:
            g.append(f"- {name}: not measured")
        else:
            g.append(f"- {name}: {fmt_s.format(val)} — {'met' if val >= target else 'NOT met'}")

    bdr, bkr = best(d, "reg"), best(k, "reg")
    if bdr and bkr:
        goal("REGISTER/s >= 1.2x Kamailio", bdr.target / bkr.target, 1.2, "{:.2f}x")
    bdc, bkc = best(d, "cps"), best(k, "cps")
    if bdc and bkc:
        goal("calls/s >= 1.5x Kamailio", bdc.target / bkc.target, 1.5, "{:.2f}x")
    bdt, bkt = best(d, "trunk"), best(k, "trunk")
    if bdt and bkt:
        goal("outbound calls/s through a trunk >= 1.0x Kamailio (dialplan)", bdt.target / bkt.target, 1.0, "{:.2f}x")
    bdm, bkm = best(d, "media"), best(k, "media")
    if bdm and bkm:
        goal("simultaneous relayed calls >= 2x Kamailio + rtpengine (userspace)", bdm.target / bkm.target, 2.0, "{:.2f}x")
    rows = floor["rows"] if floor else {}
    if "relay" in rows and "bare" in rows and rows["bare"]["us_per_packet"]:
        r = rows["relay"]["us_per_packet"] / rows["bare"]["us_per_packet"]
        tap = rows.get("relaytap", {}).get("us_per_packet")
        tap_note = f" (with the tap: {tap / rows['bare']['us_per_packet']:.2f}x)" if tap else ""
        g.append(f"- relay CPU per packet <= 1.2x a bare one-packet-per-syscall loop (same harness, load, CPU): "
                 f"{r:.2f}x{tap_note} — {'met' if r <= 1.2 else 'NOT met'}")
    if bdm:
        kib = (bdm.extra["pss_kib"] - bdm.extra["idle_pss_kib"]) / bdm.target
        g.append(f"- <= 14 KiB server memory per simultaneous call: {kib:.1f} KiB — {'met' if kib <= 14 else 'NOT met'}")
    lines += g + ["", "How the figures are found (loads, search steps and bounds): bench/README.md.", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    log(f"wrote {path}")


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny loads, a few seconds each")
    ap.add_argument("--denwa-bin", required=True)
    ap.add_argument("--license-bin", default=os.environ.get("DENWA_LICENSE_BIN", ""),
                    help="denwa-license built with --features issuer (mints the bench's TEST licence)")
    ap.add_argument("--servers", default="denwa,kamailio")
    ap.add_argument("--loads", default="reg,cps,trunk,media")
    ap.add_argument("--out", default=os.path.join(BENCH, "RESULTS.md"))
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--kamailio-children", type=int, default=4)
    ap.add_argument("--rate", type=float, default=0,
                    help="hold this rate (reg, cps) or number of calls (media) once instead of searching")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, sipp stats)")
    a = ap.parse_args()
    global FIXED, CARRIER, SMOKE
    FIXED = a.rate
    SMOKE = a.smoke
    started = time.time()
    halves = cpu_halves()
    if halves is not None:
        # This script (and the CLI provisioning it runs) stays off the server's CPUs too.
        os.sched_setaffinity(0, halves[1])
        log(f"server on CPU {halves[0]}, sipp/tcpdump/bench on CPU {halves[1]} (BENCH_PIN=0: unpinned)")
    n_users = 50 if a.smoke and a.users == 10000 else a.users
    if a.smoke:
        # The smoke run is part of the test suite, whose tests take ports from 21000-32700
        # (testkit): keep its relays below that.
        RELAY_RTP.update({"denwa": (20000, 20999), "kamailio": (20000, 20999)})
    work = tempfile.mkdtemp(prefix="denwa-bench-")
    log(f"work dir {work}")
    servers: dict[str, Server] = {}
    try:
        users_csv, users = make_users(work, n_users, 1000 if a.smoke else TRUNK_NUMBERS)
        write_tone(os.path.join(work, "bench_tone.wav"))
        names = a.servers.split(",")
        if "trunk" in a.loads.split(","):
            # A port free on 127.0.0.1 too, never handed out again in this run.
            CARRIER = (CARRIER_IP, free_port())
        if "denwa" in names:
            if not a.license_bin:
                raise RuntimeError("--license-bin (or DENWA_LICENSE_BIN) is needed: bench/run.sh builds it")
            # More than the free allowance (25 extensions, 10 calls): a TEST-key licence, which
            # only dev mode accepts. Every denwa process below inherits this.
            os.environ[DEV_MODE_ENV] = "1"
            servers["denwa"] = denwa = Denwa(work, a.denwa_bin,
                                             provision_denwa(a.denwa_bin, a.license_bin, work, users))
            if CARRIER:
                denwa.trunk_template = provision_denwa_trunk(a.denwa_bin, work, denwa.template, users, CARRIER)
        if "kamailio" in names:
            servers["kamailio"] = Kamailio(work, provision_kamailio(work, users), a.kamailio_children, CARRIER)
        results: dict[str, dict[str, LoadResult]] = {n: {} for n in servers}
        loads = {"reg": load_reg, "cps": load_cps, "trunk": load_trunk, "media": load_media}
        for load in a.loads.split(","):
            for name, srv in servers.items():
                log(f"=== {load} against {name}")
                try:
                    results[name][load] = loads[load](work, srv, users_csv, a.smoke)
                except RuntimeError as e:
                    log(f"{name} {load} aborted: {e}")
                    srv.stop()
                    results[name][load] = LoadResult(None, [], f"aborted: {str(e).splitlines()[0]}")
                    if a.smoke:
                        raise
        floor = relay_floor(a.smoke) if "media" in a.loads.split(",") else None
        report(results, started, a.smoke, a.out, {n: s.label for n, s in servers.items()}, floor)
        if a.smoke:
            for name, res in results.items():
                for load, r in res.items():
                    if r.best is None:
                        log(f"smoke: {name} {load} did not pass")
                        return 1
        return 0
    finally:
        for p in Sipp.live:
            if p.alive():
                p.p.kill()
                p.p.wait()
        for s in servers.values():
            s.stop()
        if not a.keep and not a.smoke:
            shutil.rmtree(work, ignore_errors=True)
        elif a.smoke and not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
