#!/usr/bin/env bash
# Media benchmark (issue 14 item 10): G.711 prompt legs, Opus<->G.711 transcoded calls and
# conference participants per server core, Denwa's media engine against rtpengine (Debian) in
# the same run. Builds crates/media/benches/media_load.rs (release), installs rtpengine if
# missing, runs bench/media.py and prints a Markdown section (bench/README-media.md).
#
#   bench/media.sh                       all cases, 3 searches each (~30 min on 2 cores)
#   bench/media.sh --cases conf-denwa --repeats 1
#   bench/media.sh --append              also append the section to bench/RESULTS.md
#
# Environment: MEDIA_LOAD_BIN=path skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v rtpengine >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: ERROR: rtpengine missing; as root: apt-get install rtpengine-daemon" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rtpengine-daemon >/dev/null
fi

append=0
args=()
for a in "$@"; do
  if [ "$a" = "--append" ]; then append=1; else args+=("$a"); fi
done

if [ -z "${MEDIA_LOAD_BIN:-}" ]; then
  MEDIA_LOAD_BIN=$(cargo bench -p media --bench media_load --no-run --message-format=json \
    | python3 -c 'import json, sys
for line in sys.stdin:
    j = json.loads(line)
    if j.get("reason") == "compiler-artifact" and j.get("executable") and j["target"]["name"] == "media_load":
        print(j["executable"])')
fi

out=$(python3 bench/media.py --bin "$MEDIA_LOAD_BIN" "${args[@]}")
echo "$out"
if [ "$append" = 1 ]; then
  printf '\n%s\n' "$out" >> bench/RESULTS.md
fi
