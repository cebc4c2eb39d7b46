#!/usr/bin/env bash
# service-units-verify.sh: `systemd-analyze verify` on the filters' service
# templates meson configured (minispy@.service, scanner@.service), each as
# an instance, with its installed program replaced by /bin/true (verify
# insists that ExecStart's binary exists). Any message fails: systemd 252
# exits 0 even for an unknown key. Also checks that each is ordered after
# fltmgrd.service.
#
# usage: service-units-verify.sh UNIT...     Exit: 0 pass, 1 fail, 77 skip.
set -uo pipefail

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "service-units-verify: SKIP: systemd-analyze not found (Debian package systemd)"
	exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fltmgr-units.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
status=0
for unit in "$@"; do
	name=$(basename "$unit")
	grep -q '^After=fltmgrd.service$' "$unit" ||
		{ echo "FAIL: $name is not ordered after fltmgrd.service"; status=1; }
	sed -E 's|^(ExecStart=)[^ ]+|\1/bin/true|' "$unit" >"$tmp/$name"
	out=$(SYSTEMD_UNIT_PATH=$tmp: systemd-analyze verify --man=no --generators=no \
		"${name%@.service}@test.service" 2>&1)
	if [ -n "$out" ]; then
		echo "FAIL: systemd-analyze verify ${name%@.service}@test.service:"
		printf '%s\n' "$out" | sed 's/^/  /'
		status=1
	else
		echo "ok: ${name%@.service}@test.service"
	fi
done
exit $status
