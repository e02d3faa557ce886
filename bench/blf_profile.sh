#!/bin/sh
# Profiles Denwa under the BLF load: runs bench/blf.py against Denwa only and records the
# server's call phase with `perf record -g` (perf is in Debian's linux-perf package).
#
#   bench/blf_profile.sh WORK_DIR [blf.py options, e.g. --phones 300 --keys 50 --cps 25 --seconds 20]
#
# Binaries: DENWA_BIN (default target/release/denwa), LICENSE_BIN (target/debug/denwa-license),
# WATCHERS_BIN (target/release/blf_watchers). Writes WORK_DIR/blf.out (blf.py's
# output, with the CPU µs per NOTIFY), WORK_DIR/perf.data and WORK_DIR/perf-top.txt (the
# functions taking the most samples, self time). PROFILE_S (default 10) seconds are recorded,
# starting PROFILE_DELAY_S (default 2) after the calls start.
set -eu
work=$1
shift
mkdir -p "$work"
root=$(cd "$(dirname "$0")/.." && pwd)
python3 "$root/bench/blf.py" --servers denwa --work "$work" \
    --denwa-bin "${DENWA_BIN:-$root/target/release/denwa}" \
    --license-bin "${LICENSE_BIN:-$root/target/debug/denwa-license}" \
    --watchers-bin "${WATCHERS_BIN:-$root/target/release/blf_watchers}" --settle-s 0 "$@" \
    >"$work/blf.out" 2>&1 &
bench=$!
# The calls start once the phones report their setup (printed after the settle pause).
until grep -q "blf: denwa setup" "$work/blf.out" 2>/dev/null; do
    kill -0 "$bench" 2>/dev/null || { cat "$work/blf.out"; exit 1; }
    sleep 1
done
sleep "${PROFILE_DELAY_S:-2}"
pid=$(pgrep -f -- "--data-dir $work/denwa-blf" | head -n 1)
perf record -F 999 -g -p "$pid" -o "$work/perf.data" -- sleep "${PROFILE_S:-10}" 2>"$work/perf-record.log"
wait "$bench"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | head -n 40 >"$work/perf-top.txt"
grep -o '"cpu_us_per_notify": [0-9.]*' "$work/blf.out" || true
cat "$work/perf-top.txt"
