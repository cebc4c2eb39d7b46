#!/usr/bin/env bash
# scripts/deps.sh — install the Debian packages fltmgr needs to build, test
# and benchmark, but only those that are missing. Needs root (or sudo) the
# first time; a no-op afterwards.
#
# usage: scripts/deps.sh [build|test|bench]   (default: test)
set -euo pipefail

what=${1:-test}
pkgs=(meson ninja-build pkg-config gcc python3 libinih-dev libjson-c-dev libsystemd-dev libyara-dev libcap-ng-dev)
case "$what" in
build) ;;
test) pkgs+=(clang clang-format libclang-rt-14-dev libcmocka-dev git systemd spin valgrind) ;;
bench) pkgs+=(libcmocka-dev fatrace inotify-tools) ;;
*) echo "deps.sh: unknown set '$what' (build, test, bench)" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
sudo=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || {
		echo "deps.sh: need root to install: ${missing[*]}" >&2
		exit 1
	}
	sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
