#!/usr/bin/env bash
# Install what the tests and scripts need on a fresh Debian machine (idempotent, quiet when
# everything is present). Rust itself comes from rustup and is assumed.
set -euo pipefail

# util-linux and mount: tests/dns.rs runs coregate under `unshare` with a bind-mounted /etc/hosts.
# ca-certificates: the system roots [upstream.tls] verifies against by default.
# python3-jwt (PyJWT) and python3-cryptography: the gateway tests sign JWTs with them.
# redis-server (and redis-tools' redis-cli): the global rate-limit tests start their own Redis.
packages=(curl ca-certificates openssl util-linux mount python3 python3-jwt python3-cryptography redis-server redis-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
