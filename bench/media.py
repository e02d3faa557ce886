#!/usr/bin/env python3
"""Media benchmark driver (bench/media.sh): searches, per case, the highest N one server core
carries, with crates/media/benches/media_load.rs as the step (one process per step, a fresh
server each time). See bench/README-media.md. Standard library only."""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

# (name, server, mode, extra args, start N, cap N)
CASES = {
    "prompt-denwa": ("denwa", "prompt", [], 1500, 11000),
    "prompt-rtpengine": ("rtpengine", "prompt", ["--gaps", "off"], 300, 5500),
    "transcode-denwa": ("denwa", "transcode", [], 60, 5000),
    "transcode-denwa-8k": ("denwa", "transcode", ["--opus-rate", "8000"], 150, 5000),
    "transcode-rtpengine": ("rtpengine", "transcode", [], 20, 5000),
    "conf-denwa": ("denwa", "conf", [], 1000, 11000),
}

PRIO = ["setsid", "bash", "-c", 'echo -20 > /proc/self/autogroup 2>/dev/null; exec nice -n -20 "$@"', "prio"]


def step(binary, case, n, secs, warmup, log):
    server, mode, extra, _, _ = CASES[case]
    cmd = PRIO + [binary, "--server", server, "--mode", mode, "--n", str(n), "--secs", str(secs),
                  "--warmup", str(warmup), "--ng-port", "12990"] + extra
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + warmup + 240)
        out = p.stdout
        err = p.stderr
    except subprocess.TimeoutExpired as e:
        out, err = "", f"timeout: {e}"
    r = {"case": case, "n": n, "pass": False, "raw": out.strip(), "stderr": err.strip()[-500:]}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                r[k] = v
            r["pass"] = r.get("pass") == "true"
    log.write(json.dumps(r) + "\n")
    log.flush()
    mark = "pass" if r["pass"] else "FAIL"
    print(f"  {case:22} n={n:6} {mark}  cpu={r.get('server_cpu_pct', '?')}% loss={r.get('loss_pct', '?')}% "
          f"pace={r.get('pace_pct', '?')}% gaps40={r.get('gaps40', '?')} late={r.get('late_ticks', '?')} "
          f"underruns={r.get('underruns', '?')} {r.get('error', '')}", file=sys.stderr, flush=True)
    return r


def search(binary, case, start, secs, warmup, log, steps_left):
    """Highest passing N: grow ×1.3 from `start` until a step fails, then bisect to 5 %."""
    _, _, _, _, cap = CASES[case]
    lo, hi, best = 0, None, None
    n = start
    # Down from the start if it fails.
    while steps_left[0] > 0:
        steps_left[0] -= 1
        r = step(binary, case, n, secs, warmup, log)
        if r["pass"]:
            lo, best = n, r
            if n >= cap:
                break
            n = min(cap, int(n * 1.3 + 0.5))
        else:
            hi = n
            if lo == 0:
                if n <= 5:
                    break
                n = max(5, int(n / 1.5))
                continue
            break
    while hi is not None and lo > 0 and hi - lo > max(lo * 0.05, 5) and steps_left[0] > 0:
        steps_left[0] -= 1
        mid = (lo + hi) // 2
        r = step(binary, case, mid, secs, warmup, log)
        if r["pass"]:
            lo, best = mid, r
        else:
            hi = mid
    return lo, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=16, help="per search")
    ap.add_argument("--work", default="/tmp/denwa-mbench")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    log = open(os.path.join(args.work, "steps.jsonl"), "a")
    results = {}
    t_start = time.time()
    for case in args.cases.split(","):
        if case not in CASES:
            sys.exit(f"unknown case {case}; known: {', '.join(CASES)}")
        found = []
        start = CASES[case][3]
        for rep in range(args.repeats):
            print(f"{case}: search {rep + 1}/{args.repeats} from {start}", file=sys.stderr, flush=True)
            best_n, best = search(args.bin, case, start, args.secs, args.warmup, log, [args.max_steps])
            found.append((best_n, best))
            if best_n > 0:
                start = max(5, int(best_n * 0.9))
        results[case] = found
    elapsed = time.time() - t_start
    print(report(results, args, elapsed))


def med(found):
    ns = [n for n, _ in found]
    return statistics.median(ns) if ns else 0, (min(ns) if ns else 0), (max(ns) if ns else 0)


def report(results, args, elapsed):
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rte = subprocess.run(["bash", "-c", "rtpengine --version 2>&1 | head -1"], capture_output=True,
                         text=True).stdout.strip()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## Media run ({now}, git {rev}): prompts, Opus↔G.711 transcoding, conferences",
        "",
        f"`bench/media.sh` — {args.repeats} searches per case, {args.secs} s measured after {args.warmup} s "
        f"warm-up per step, server pinned to CPU 0 and load generator + sink to CPU 1, "
        f"own autogroup at nice -20; anchor rtpengine {rte}. Took {elapsed / 60:.0f} min.",
        "",
        "| case | highest N per core: median (min–max of the searches) | server CPU at that N | CPU % per 1,000 | loss % | gaps > 40 ms | underruns |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, found in results.items():
        m, lo, hi = med(found)
        # Figures of the step at the median search's N.
        best = sorted([b for _, b in found if b], key=lambda b: int(b["n"]))
        b = best[len(best) // 2] if best else {}
        lines.append(
            f"| {case} | {m:.0f} ({lo}–{hi}) | {b.get('server_cpu_pct', '-')} % | {b.get('cpu_pct_per_1000', '-')} | "
            f"{b.get('loss_pct', '-')} | {b.get('gaps40', '-')} | {b.get('underruns', '-')} |")
    lines.append("")

    def ratio(a, b):
        ma, mb = med(results.get(a, []))[0], med(results.get(b, []))[0]
        return f"{ma / mb:.2f}x" if ma and mb else "n/a"

    lines.append("Ratios (medians): "
                 f"prompt legs Denwa / rtpengine {ratio('prompt-denwa', 'prompt-rtpengine')}; "
                 f"transcoded calls Denwa (48 kHz Opus, the engine's default) / rtpengine "
                 f"{ratio('transcode-denwa', 'transcode-rtpengine')}; Denwa (Opus capped at 8 kHz) / "
                 f"rtpengine {ratio('transcode-denwa-8k', 'transcode-rtpengine')}.")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
