#!/usr/bin/env bash
# Denwa benchmark: builds Denwa (release), installs sipp, Kamailio, rtpengine and tcpdump from
# Debian if missing, then runs every load against Denwa and against the anchor, one after the
# other, and writes bench/RESULTS.md. See bench/README.md.
#
#   bench/run.sh                 full run (~15-20 min on 2 cores)
#   bench/run.sh --smoke         tiny loads, well under a minute (what the test suite runs)
#   bench/run.sh --loads reg     only some loads (reg,cps,trunk,media); --servers denwa (or kamailio)
#   bench/run.sh --keep          keep the work directory (server logs, sipp statistics and errors)
#
# Environment: DENWA_BIN=path skips the release build and benchmarks that binary;
# DENWA_LICENSE_BIN=path skips building the licence tool (denwa-license, --features issuer);
# BENCH_MEDIA_LADDER=300,600,... overrides the simultaneous-call steps; RELAY_LOAD_BIN=path
# skips building the relay floor harness (BENCH_FLOOR_CALLS, BENCH_FLOOR_SECS: its load;
# BENCH_FLOOR_REPEAT: rounds of its modes, medians reported; BENCH_FLOOR_MODES: which).
set -euo pipefail

cd "$(dirname "$0")/.."

# package:command that proves it is installed
REQUIRED=(
  "sip-tester:sipp"
  "kamailio:kamailio"
  "kamailio-sqlite-modules:/usr/lib/x86_64-linux-gnu/kamailio/modules/db_sqlite.so"
  "kamailio-extra-modules:/usr/lib/x86_64-linux-gnu/kamailio/modules/rtpengine.so"
  "kamailio-presence-modules:/usr/lib/x86_64-linux-gnu/kamailio/modules/presence_dialoginfo.so"
  "rtpengine-daemon:rtpengine"
  "tcpdump:tcpdump"
  "python3:python3"
)

have() {
  case $1 in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] ;;
  esac
}

missing=()
for entry in "${REQUIRED[@]}"; do
  have "${entry#*:}" || missing+=("${entry%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]} (apt-get)" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: ERROR: not root; install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PATH=$PATH:/usr/sbin
export PATH

if [ -z "${DENWA_BIN:-}" ]; then
  cargo build --release -p denwa
  DENWA_BIN=target/release/denwa
fi

# The vendor tool, to mint the bench's licence with the TEST key (more than the free allowance's
# 25 extensions and 10 calls; accepted in dev mode only). DENWA_LICENSE_BIN=path skips the build.
if [ -z "${DENWA_LICENSE_BIN:-}" ]; then
  cargo build -q -p license --features issuer --bin denwa-license
  DENWA_LICENSE_BIN=target/debug/denwa-license
fi
export DENWA_LICENSE_BIN

# The relay floor harness (CPU per packet of Denwa's relay next to bare forwarding loops), run
# after the media ladder; not needed by --smoke or when --loads leaves out media.
# RELAY_LOAD_BIN=path skips the build.
loads=reg,cps,trunk,media
prev=
for arg in "$@"; do
  [ "$prev" = "--loads" ] && loads=$arg
  case $arg in --loads=*) loads=${arg#--loads=} ;; esac
  prev=$arg
done
case ",$loads, $* " in
  *" --smoke "*) ;;
  *,media,*)
    if [ -z "${RELAY_LOAD_BIN:-}" ]; then
      RELAY_LOAD_BIN=$(cargo bench -p media --bench relay_load --no-run --message-format=json \
        | python3 -c 'import json, sys
for line in sys.stdin:
    j = json.loads(line)
    if j.get("reason") == "compiler-artifact" and j.get("executable") and j["target"]["name"] == "relay_load":
        print(j["executable"])')
    fi
    export RELAY_LOAD_BIN
    ;;
esac

exec python3 bench/bench.py --denwa-bin "$DENWA_BIN" "$@"
