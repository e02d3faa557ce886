#!/usr/bin/env bash
# Issue 17 §8: failover of the application address, Denwa's active/standby pair against
# keepalived (VRRP, Debian's package) moving the same address between the same two network
# namespaces, in the same run. Needs root. Installs keepalived if missing, then runs the ignored
# test `failover_vs_keepalived` of crates/denwa/tests/cluster_matrix.rs, which prints the table
# and writes it to target/tmp/failover-bench.md.
#   DNWHK_ADVERTS=1,0.1,0.01   keepalived's advert_int values to run (seconds; default 1,0.1,0.01)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v keepalived >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q keepalived || { apt-get update -q && apt-get install -y -q keepalived; }
fi
# The rest (iproute2, nftables, iputils-arping, PostgreSQL) comes with scripts/test-deps.sh.
cargo test -p denwa --test cluster_matrix failover_vs_keepalived -- --ignored --nocapture
