#!/bin/sh
# Installs the Debian packages sinergi needs to build, run and test — only those missing.
# Uses sudo when not root. Idempotent: a second run installs nothing.
set -eu
PKGS="build-essential pkg-config clang libclang-rt-14-dev
libmicrohttpd-dev libjansson-dev libsqlite3-dev sqlite3 libsodium-dev libcsv-dev
libmosquitto-dev mosquitto mosquitto-clients libcurl4-openssl-dev zlib1g-dev
python3 python3-paho-mqtt libxml2-dev libxml2-utils curl wrk nginx-light
chromium fonts-dejavu-core gzip"
# The web app's build and browser tests need Node.js and npm: Debian's only when the machine has
# none (a NodeSource or other install is used as it is).
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
