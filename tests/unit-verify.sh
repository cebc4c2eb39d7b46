#!/usr/bin/env bash
# unit-verify.sh: `systemd-analyze verify` on the fltmgrd.service that
# meson configured, checked on its own.
#
# usage: unit-verify.sh UNIT INSTALLED_FLTMGRD [BUILT_FLTMGRD]
#
# verify insists that ExecStart's binary exists, and the installed path
# (e.g. /usr/local/sbin/fltmgrd) does not exist at test time. So the unit is
# copied with that path replaced by the build tree's fltmgrd. Before the
# daemon is built (no third argument), a stand-in executable is used.
#
# What verify needs to check this unit alone (systemd 252, also in a
# container without systemd running):
#   SYSTEMD_UNIT_PATH=<private dir>  only our unit. Without it, drop-ins in
#                          /etc/systemd/system/fltmgrd.service.d/ on the test
#                          machine are merged in, and their errors count.
#   --recursive-errors=no  non-zero exit on warnings about this unit only.
#                          Without the option, verify exits 0 even for an
#                          unknown key or a bad value (it only prints a
#                          warning).
#   --man=no               the Documentation= man pages are not installed.
#   --generators=no        no generators (the host's fstab etc. do not matter).
# systemd 252 silently ignores an unknown name in CapabilityBoundingSet=, so
# each name is also checked with `systemd-analyze capability`.
#
# Exit: 0 pass, 1 fail, 77 skip (systemd-analyze missing).
set -uo pipefail

unit=${1:?usage: unit-verify.sh UNIT INSTALLED_FLTMGRD [BUILT_FLTMGRD]}
installed=${2:?usage: unit-verify.sh UNIT INSTALLED_FLTMGRD [BUILT_FLTMGRD]}
built=${3:-}

fail() {
	echo "unit-verify: FAIL: $*" >&2
	exit 1
}

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "unit-verify: SKIP: systemd-analyze not found (Debian package systemd)"
	exit 77
fi
[ -r "$unit" ] || fail "cannot read $unit"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fltmgr-unit.XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

if [ -z "$built" ]; then
	built=$tmp/bin/fltmgrd
	mkdir -p "$tmp/bin"
	printf '#!/bin/sh\nexit 0\n' >"$built"
	chmod 755 "$built"
	echo "unit-verify: note: fltmgrd is not part of this build yet; using a stand-in executable"
fi
[ -x "$built" ] || fail "$built is not executable"

grep -qF "ExecStart=$installed --foreground" "$unit" ||
	fail "$unit does not start '$installed --foreground' (Type=notify needs the daemon in the foreground)"
grep -q '^Type=notify$' "$unit" || fail "$unit is not Type=notify"

# The unit's name is its file name, so the copy keeps it.
mkdir -p "$tmp/units"
copy=$tmp/units/fltmgrd.service
while IFS= read -r line || [ -n "$line" ]; do
	printf '%s\n' "${line//"$installed"/"$built"}"
done <"$unit" >"$copy"

version=$(systemd-analyze --version | head -n1)
opts=(--man=no)
help=$(systemd-analyze --help 2>&1)
case "$help" in *--generators*) opts+=(--generators=no) ;; esac
case "$help" in
*--recursive-errors*) opts+=(--recursive-errors=no) ;;
*) echo "unit-verify: note: $version has no --recursive-errors; relying on its output" ;;
esac

out=$(SYSTEMD_UNIT_PATH=$tmp/units systemd-analyze verify "${opts[@]}" "$copy" 2>&1)
rc=$?
if [ -n "$out" ]; then
	echo "systemd-analyze verify ${opts[*]} fltmgrd.service:"
	printf '%s\n' "$out" | sed 's/^/  /'
fi
[ "$rc" -eq 0 ] || fail "systemd-analyze verify exited $rc"
if printf '%s\n' "$out" | grep -q 'fltmgrd\.service'; then
	fail "systemd-analyze verify warned about fltmgrd.service"
fi

# verify checks only ExecStart='s binary; check every Exec*= line's.
while IFS= read -r cmd; do
	cmd=${cmd#*=}
	while [[ $cmd == [-@:+!]* ]]; do cmd=${cmd:1}; done
	cmd=${cmd%% *}
	[ -x "$cmd" ] || fail "$cmd (in an Exec*= line) is not an executable file"
done < <(grep -E '^Exec[A-Za-z]*=' "$copy")

# Capability names.
if systemd-analyze capability cap_chown >/dev/null 2>&1; then
	caps=$(sed -n 's/^CapabilityBoundingSet=~\{0,1\}//p' "$unit")
	for c in $caps; do
		systemd-analyze capability "$c" >/dev/null 2>&1 ||
			fail "CapabilityBoundingSet=: unknown capability $c"
	done
else
	echo "unit-verify: note: $version has no 'capability' verb; capability names not checked"
fi

# The bounding set must be the set fltmgrd drops to by itself
# (src/daemon/privileges.c, docs/security.md section 6): a cap the unit
# lacks would be missing at run time, and one only the unit has is useless.
priv=$(dirname "$0")/../src/daemon/privileges.c
if [ -r "$priv" ]; then
	kept=$(grep -oE '^[[:space:]]*\{ CAP_[A-Z_]+,' "$priv" | grep -oE 'CAP_[A-Z_]+' | sort | tr '\n' ' ')
	unit_caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr ' ' '\n' | grep . | sort | tr '\n' ' ')
	[ -n "$kept" ] || fail "found no kept capabilities in $priv"
	[ "$kept" = "$unit_caps" ] ||
		fail "CapabilityBoundingSet= is '$unit_caps' but fltmgrd keeps '$kept' ($priv)"
	echo "unit-verify: CapabilityBoundingSet= matches the daemon's kept set: $kept"
fi

# For information only: systemd's own exposure score for the sandbox.
score=$(SYSTEMD_UNIT_PATH=$tmp/units systemd-analyze security --offline=yes "$copy" 2>/dev/null |
	grep -i 'overall exposure' || true)
[ -n "$score" ] && echo "unit-verify: ${score#→ }"

echo "unit-verify: OK ($version)"
