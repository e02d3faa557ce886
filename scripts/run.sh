#!/usr/bin/env bash
# Set up and run Denwa on a Debian machine: installs the build tools it needs, builds the release
# binary and starts `denwa serve` with any arguments given (e.g. --sip-listen 192.0.2.10:5060).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# Opus (media crate) links Debian's libopus (BSD), found with pkg-config.
pkg-config --exists opus 2>/dev/null || need+=(libopus-dev)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
# Prompts and music on hold: sox converts uploads (libsox-fmt-mp3 adds MP3), espeak-ng reads
# the default prompt set aloud at install time (both run as separate programs; docs/prompts.md).
command -v sox >/dev/null 2>&1 || need+=(sox)
dpkg-query -W -f='${Status}' libsox-fmt-mp3 2>/dev/null | grep -q 'ok installed' || need+=(libsox-fmt-mp3)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
# A node of an active/standby pair (serve --cluster) moves the application address with `ip`
# and announces it with `arping -U` (docs/ha.md).
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v arping >/dev/null 2>&1 || need+=(iputils-arping)
# A pair node with its own PostgreSQL ([postgres] in the cluster file) runs PostgreSQL's server
# tools: initdb, pg_ctl, pg_basebackup, pg_rewind, psql (docs/ha.md, "Each node's own
# PostgreSQL").
case " $* " in
  *" --cluster"*) ls /usr/lib/postgresql/*/bin/pg_rewind >/dev/null 2>&1 || need+=(postgresql) ;;
esac
if [ ${#need[@]} -gt 0 ]; then
  echo "run.sh: installing ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    # Debian's own rustc is too old for this workspace; rustup installs the version pinned in
    # rust-toolchain.toml.
    echo "run.sh: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

cargo build --release --locked -p denwa

# The default prompt set (EN/JA, synthesised; files already made are kept) and the default
# music-on-hold class, in the data directory serve will use.
data_args=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --data-dir | --config) data_args+=("${args[i]}" "${args[i + 1]:-}"); i=$((i + 1)) ;;
    --data-dir=* | --config=*) data_args+=("${args[i]}") ;;
  esac
done
./target/release/denwa "${data_args[@]}" prompt install-defaults
./target/release/denwa "${data_args[@]}" moh install-default

exec ./target/release/denwa serve "$@"
