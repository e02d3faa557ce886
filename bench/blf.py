#!/usr/bin/env python3
"""BLF at scale (issue 15 §10): P phones, each registered and subscribed (`Event: dialog`, digest)
to K other phones' extensions (phone i watches phones i+1 .. i+K, so every extension has K
watchers: 1,000 x 50 = 50,000 subscriptions), while the same phones call each other at a fixed
rate (INVITE with digest, 180, 200 after --ring-ms, ACK, --hold-ms, BYE). Every NOTIFY a watcher
receives is matched to the state change that caused it: latency from the 180 / 200 / BYE leaving
the phone to the watcher's first NOTIFY showing that state or a later one (p50/p99/max; "lost" =
a change some watcher never saw within 10 s); the server's CPU seconds over the call phase / the
NOTIFYs received; its memory (PSS) after the setup and at the end. Same load against Denwa and
against Kamailio's presence + presence_dialoginfo + pua_dialoginfo (`kamailio/kamailio-blf.cfg`)
in one run, one after the other; ratios Kamailio / Denwa.

The phones are `blf_watchers` (crates/testkit/src/bin/blf_watchers.rs: Rust, one thread, one UDP
socket per phone; a Python client could not answer the NOTIFY rate). The server runs on the first
half of the CPUs, the phones on the second (`bench.cpu_halves`, BENCH_PIN=0 to share). Ports come
from the OS (never the 12000-13999/36000-36999/50000-50999 ranges of the main benchmark);
servers are stopped by PID.

  cargo build --release -p denwa -p testkit --bin denwa --bin blf_watchers
  cargo build -p license --features issuer --bin denwa-license
  python3 bench/blf.py --denwa-bin target/release/denwa --license-bin target/debug/denwa-license \
      --watchers-bin target/release/blf_watchers [--phones 1000] [--keys 50] [--cps 100] \
      [--seconds 30] [--servers denwa,kamailio] [--out FILE]

A licence signed with the TEST key lifts the free allowance (25 extensions), as in bench.py.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (helpers: licence, CLI provisioning, CPU seconds, pinning)

BASE = 300000


def os_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pw(user: str) -> str:
    """An extension's password (blf_watchers computes the same)."""
    return "pw-" + user.translate(bench.DIGITS_AS_LETTERS) + "-blf"


def read_json_line(p: subprocess.Popen, timeout: float) -> dict:
    """The next JSON line the phones print (bounded in time)."""
    end = time.time() + timeout
    assert p.stdout is not None
    while time.time() < end:
        r, _, _ = select.select([p.stdout], [], [], max(0.0, min(1.0, end - time.time())))
        if not r:
            if p.poll() is not None:
                raise RuntimeError(f"blf_watchers exited with {p.returncode}")
            continue
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"blf_watchers ended its output (exit {p.poll()})")
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"blf_watchers said nothing within {timeout:.0f} s")


def run_load(args, port: int, pid: int, work: str, name: str) -> dict:
    argv = [args.watchers_bin, "--server", f"127.0.0.1:{port}", "--phones", str(args.phones),
            "--keys", str(args.keys), "--base", str(BASE), "--cps", str(args.cps),
            "--seconds", str(args.seconds), "--ring-ms", str(args.ring_ms),
            "--hold-ms", str(args.hold_ms), "--sub-expires", str(args.sub_expires),
            "--settle-s", str(args.settle_s)]
    errf = open(os.path.join(work, f"blf_watchers-{name}.log"), "ab")
    p = subprocess.Popen(bench.pinned(argv, "load"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=errf, text=True)
    try:
        ready = read_json_line(p, args.setup_timeout)
        bench.log(f"blf: {name} setup {json.dumps(ready)}")
        cpu0 = bench.cpu_seconds([pid])
        pss0, rss0 = bench.memory_kib([pid])
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
        done = read_json_line(p, args.seconds + 120)
        cpu = bench.cpu_seconds([pid]) - cpu0
        pss1, rss1 = bench.memory_kib([pid])
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        errf.close()
    n = done.get("notifies") or 0
    return {
        "phones": args.phones, "keys": args.keys, "cps": args.cps, "seconds": args.seconds,
        "subscriptions": ready.get("subscriptions"), "subscribe_failed": ready.get("subscribe_failed"),
        "subscribe_s": round(ready.get("subscribe_s", 0), 1),
        **{k: done.get(k) for k in ("calls_started", "calls_done", "calls_failed", "calls_skipped",
                                     "notifies", "notify_retransmissions", "expected_deliveries",
                                     "delivered", "lost", "p50_ms", "p99_ms", "p999_ms", "max_ms",
                                     "within_100ms", "generator_cpu_s", "errors")},
        "notifies_per_s": round(done.get("notifies_per_s", 0), 0),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_share": round(cpu / done.get("elapsed_s", 1), 2),
        "cpu_us_per_notify": round(cpu / n * 1e6, 1) if n else None,
        "pss_mib_setup": round(pss0 / 1024, 1), "pss_mib_end": round(pss1 / 1024, 1),
        "rss_mib_end": round(rss1 / 1024, 1),
    }


def provision(binary: str, license_bin: str, work: str, phones: int) -> str:
    data = os.path.join(work, "denwa-blf")
    shutil.rmtree(data, ignore_errors=True)
    bench.license_denwa(binary, license_bin, work, data)
    users = [str(BASE + i) for i in range(phones)]
    todo = [["extension", "add", u, "--password", pw(u)] for u in users]
    bench.denwa_cli(binary, data, todo[:1], "extension add")
    bench.denwa_cli(binary, data, todo[1:], "extension add")
    return data


def provision_kamailio(work: str, phones: int) -> str:
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
    users = [str(BASE + i) for i in range(phones)]
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
    return bench.Proc("kamailio-blf", bench.pinned(argv, "server"), work), port


def measure(args, name: str, proc: bench.Proc, port: int, work: str) -> dict:
    """The load against one server (started as `proc`, listening on `port`), which is stopped."""
    try:
        if not bench.sip_ping(port, 30):
            raise RuntimeError(f"{name} did not answer:\n{proc.tail()}")
        result = run_load(args, port, proc.pid, work, name)
    finally:
        proc.stop()
    bench.log(f"blf: {name} {json.dumps(result)}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--denwa-bin", required=True)
    ap.add_argument("--license-bin", default=os.environ.get("DENWA_LICENSE_BIN", ""))
    ap.add_argument("--watchers-bin", default="target/release/blf_watchers")
    ap.add_argument("--phones", type=int, default=1000)
    ap.add_argument("--keys", type=int, default=50)
    ap.add_argument("--cps", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--ring-ms", type=int, default=100)
    ap.add_argument("--hold-ms", type=int, default=2000)
    ap.add_argument("--sub-expires", type=int, default=3600)
    ap.add_argument("--settle-s", type=int, default=0,
                    help="pause between the setup and the calls (0: the calls start while the "
                         "subscription rows are still being written, which no longer disturbs them)")
    ap.add_argument("--setup-timeout", type=float, default=600.0)
    ap.add_argument("--work", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--servers", default="denwa,kamailio")
    ap.add_argument("--kamailio-children", type=int, default=4)
    args = ap.parse_args()
    os.environ[bench.DEV_MODE_ENV] = "1"
    work = args.work or tempfile.mkdtemp(prefix="denwa-blf-")
    os.makedirs(work, exist_ok=True)
    bench.log(f"blf: {bench.cpu_note()}")
    results = {}
    servers = args.servers.split(",")
    if "denwa" in servers:
        t = time.time()
        data = provision(args.denwa_bin, args.license_bin, work, args.phones)
        bench.log(f"blf: {args.phones} extensions provisioned in {time.time() - t:.0f} s")
        if args.keys > 100:
            subprocess.run([args.denwa_bin, "setting", "set", "blf.max_keys", str(args.keys),
                            "--data-dir", data, "--log-level", "error"], check=True, capture_output=True)
        port = os_port()
        argv = [args.denwa_bin, "serve", "--data-dir", data, "--sip-listen", f"127.0.0.1:{port}",
                "--http-listen", f"127.0.0.1:{os_port()}", "--rtp-ports", "40000-44999",
                "--log-level", os.environ.get("BLF_LOG", "warn")]
        proc = bench.Proc("denwa-blf", bench.pinned(argv, "server"), work)
        results["denwa"] = measure(args, "denwa", proc, port, work)
    if "kamailio" in servers:
        db = provision_kamailio(work, args.phones)
        proc, port = start_kamailio(work, db, args.kamailio_children)
        results["kamailio"] = measure(args, "kamailio", proc, port, work)
    if "denwa" in results and "kamailio" in results:
        d, k = results["denwa"], results["kamailio"]
        results["ratios (kamailio / denwa)"] = {
            m: bench.ratio(k.get(m), d.get(m))
            for m in ("p50_ms", "p99_ms", "max_ms", "cpu_us_per_notify", "pss_mib_end")
        }
    results["cpus"] = bench.cpu_note()
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
