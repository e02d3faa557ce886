#!/usr/bin/env bash
# Install what Denwa's test suite needs from Debian's packages: real SIP peers (sipp, baresip),
# PostgreSQL, network-namespace tools (ip, nft, arping, nsenter), sox (+ MP3), espeak-ng, procps
# libopus-dev (the media crate links libopus) and python3-aiosmtpd (the SMTP sink voicemail
# e-mail tests deliver to).
# Idempotent: installs only what is missing, runs `apt-get update` once and only if something
# is missing, prints what it installed, and exits non-zero with a clear message on failure.
set -euo pipefail

# package:command-that-proves-it-works
REQUIRED=(
  "sip-tester:sipp"
  "baresip-core:baresip"
  "postgresql:/usr/lib/postgresql/*/bin/initdb"
  "iproute2:ip"
  "nftables:nft"
  "iputils-arping:arping"
  "sox:sox"
  "libsox-fmt-mp3:sox"
  "espeak-ng:espeak-ng"
  "procps:pgrep"
  "curl:curl"
  "pkg-config:pkg-config"
  "libopus-dev:pkg-config"
  "util-linux:nsenter"
  "python3-aiosmtpd:aiosmtpd"
)

fail() {
  echo "test-deps: ERROR: $*" >&2
  exit 1
}

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

have_command() {
  local c=$1
  if [[ $c == /* ]]; then
    # A path pattern (e.g. PostgreSQL's versioned bin dir): at least one match must be executable.
    compgen -G "$c" >/dev/null || return 1
    local f
    for f in $c; do [ -x "$f" ] && return 0; done
    return 1
  fi
  command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || [ -x "/sbin/$c" ]
}

command -v dpkg-query >/dev/null 2>&1 || fail "dpkg-query not found: this script needs Debian or Ubuntu (apt)"

missing=()
for entry in "${REQUIRED[@]}"; do
  pkg=${entry%%:*}
  installed "$pkg" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "test-deps: all present (${REQUIRED[*]%%:*})"
else
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "missing packages (${missing[*]}) and not root; no sudo to install them"
    SUDO=(sudo)
  fi
  echo "test-deps: installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q >/dev/null || fail "apt-get update failed"
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install ${missing[*]} failed"
  for pkg in "${missing[@]}"; do
    installed "$pkg" || fail "package $pkg still not installed after apt-get install"
  done
  echo "test-deps: installed: ${missing[*]}"
fi

# A package can be present while its program is not (e.g. a broken install): check each one.
for entry in "${REQUIRED[@]}"; do
  pkg=${entry%%:*}
  cmd=${entry#*:}
  have_command "$cmd" || fail "package $pkg is installed but $cmd is not usable"
done
# The media crate links libopus (Opus codec) through pkg-config.
pkg-config --exists opus || fail "libopus-dev is installed but pkg-config cannot find opus"

# ----- web: browser tests (owner: web crate) -----
# Debian's chromium driven by playwright-core from npm (`npx playwright install` cannot work
# here); crates/denwa/tests/web_browser.rs runs tests/browser/panel.test.mjs.
WEB_PKGS=()
for entry in "chromium:chromium" "nodejs:node" "npm:npm"; do
  pkg=${entry%%:*}
  have_command "${entry#*:}" || WEB_PKGS+=("$pkg")
done
if [ ${#WEB_PKGS[@]} -gt 0 ]; then
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "missing ${WEB_PKGS[*]} and not root; no sudo to install them"
    SUDO=(sudo)
  fi
  echo "test-deps: installing: ${WEB_PKGS[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q >/dev/null || fail "apt-get update failed"
  "${SUDO[@]}" apt-get install -y -q "${WEB_PKGS[@]}" >/dev/null || fail "apt-get install ${WEB_PKGS[*]} failed"
fi
BROWSER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
if [ ! -d "$BROWSER_DIR/node_modules/playwright-core" ]; then
  echo "test-deps: npm ci in $BROWSER_DIR"
  (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund >/dev/null) || fail "npm ci in tests/browser failed"
fi
have_command chromium || fail "chromium is not usable"
echo "test-deps: browser tests ready (chromium, node, playwright-core)"

# ----- web: OpenAPI conformance (owner: web crate) -----
# schemathesis from PyPI in a private venv; crates/denwa/tests/web_openapi.rs runs it.
OPENAPI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/openapi"
if [ ! -x "$OPENAPI_DIR/.venv/bin/schemathesis" ]; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    SUDO=()
    [ "$(id -u)" -ne 0 ] && SUDO=(sudo)
    "${SUDO[@]}" apt-get install -y -q python3-venv >/dev/null || fail "apt-get install python3-venv failed"
  fi
  echo "test-deps: installing schemathesis into $OPENAPI_DIR/.venv"
  python3 -m venv "$OPENAPI_DIR/.venv" || fail "python3 -m venv failed"
  "$OPENAPI_DIR/.venv/bin/pip" install -q -r "$OPENAPI_DIR/requirements.txt" || fail "pip install schemathesis failed"
fi
echo "test-deps: OpenAPI checks ready (schemathesis)"
