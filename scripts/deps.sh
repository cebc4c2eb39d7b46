#!/usr/bin/env bash
# scripts/deps.sh — install the Debian packages fltmgr needs to build, test
# and benchmark, but only those that are missing. Needs root (or sudo) the
# first time; a no-op afterwards.
#
# usage: scripts/deps.sh [build|test|bench]   (default: test)
#
# bench also installs the peers bench/run compares with (and the yara CLI,
# which docs/scanner.md's rule-set numbers compare the service with). Two of them ship
# system services: clamav-daemon (clamd, and freshclam, which wants the
# network) and fapolicyd (whose default rules deny every untrusted exec on
# the machine). They are installed with their services kept from starting
# (policy-rc.d) and disabled afterwards; the benchmark runs its own
# instances in a private mount namespace.
set -euo pipefail

what=${1:-test}
pkgs=(meson ninja-build pkg-config gcc python3 libinih-dev libjson-c-dev libsystemd-dev libyara-dev libcap-ng-dev)
services=()
case "$what" in
build) ;;
test) pkgs+=(clang clang-format libclang-rt-14-dev libcmocka-dev git systemd spin valgrind btrfs-progs e2fsprogs qemu-system-x86 busybox-static) ;;
bench)
	pkgs+=(libcmocka-dev fatrace inotify-tools gnuplot-nox clamav-daemon fapolicyd yara bc time)
	services=(clamav-daemon fapolicyd)
	;;
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
# The services of the packages installed now (never one already there).
units=()
for p in "${missing[@]}"; do
	case " ${services[*]} " in *" $p "*) ;; *) continue ;; esac
	case $p in
	clamav-daemon) units+=(clamav-daemon clamav-freshclam clamav-clamonacc) ;;
	*) units+=("$p") ;;
	esac
done
policy=
if [ ${#units[@]} -gt 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
	# exit 101: "action forbidden", honoured by invoke-rc.d and
	# deb-systemd-invoke, so no service starts during the install.
	printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
	$sudo chmod 755 /usr/sbin/policy-rc.d
	policy=1
fi
status=0
$sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends \
	"${missing[@]}" >/dev/null || status=$?
[ -n "$policy" ] && $sudo rm -f /usr/sbin/policy-rc.d
for s in "${units[@]}"; do
	if [ -d /run/systemd/system ]; then
		$sudo systemctl disable --now "$s" >/dev/null 2>&1 || true
	elif command -v update-rc.d >/dev/null && [ -e "/etc/init.d/$s" ]; then
		$sudo update-rc.d "$s" disable >/dev/null 2>&1 || true
	fi
done
exit $status
