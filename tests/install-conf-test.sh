#!/usr/bin/env bash
# install-conf-test.sh INSTALL_CONF_SH: meson install never overwrites an
# existing configuration file. Runs data/install-conf.sh as meson's install
# step does (MESON_INSTALL_PREFIX, DESTDIR), for an absolute destination
# (--prefix=/usr: /etc/...) and a relative one (the default /usr/local:
# etc/...): installed when missing, kept when edited (the new default
# beside it as .new), kept quietly when unchanged.
set -uo pipefail
script=${1:?usage: install-conf-test.sh INSTALL_CONF_SH}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fltmgr-conf.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install-conf-test: FAIL: $*"; exit 1; }
printf 'default\n' >"$tmp/src.conf"
for case in "/usr /etc/fltmgr/fltmgr.conf /etc/fltmgr/fltmgr.conf" \
	"/usr/local etc/fltmgr/fltmgr.conf /usr/local/etc/fltmgr/fltmgr.conf"; do
	set -- $case
	prefix=$1 dest=$2 where=$tmp/stage$3
	rm -rf "$tmp/stage"
	MESON_INSTALL_PREFIX=$prefix DESTDIR=$tmp/stage sh "$script" "$tmp/src.conf" "$dest" >/dev/null ||
		fail "first install ($dest)"
	[ "$(cat "$where")" = default ] || fail "not installed at $where"
	MESON_INSTALL_PREFIX=$prefix DESTDIR=$tmp/stage sh "$script" "$tmp/src.conf" "$dest" >/dev/null ||
		fail "second install ($dest)"
	[ ! -e "$where.new" ] || fail "an unchanged file got a .new beside it"
	printf 'mine\n' >"$where"
	MESON_INSTALL_PREFIX=$prefix DESTDIR=$tmp/stage sh "$script" "$tmp/src.conf" "$dest" >/dev/null ||
		fail "install over an edited file ($dest)"
	[ "$(cat "$where")" = mine ] || fail "the administrator's $where was overwritten"
	[ "$(cat "$where.new")" = default ] || fail "no new default beside it as .new"
	echo "ok: $dest (prefix $prefix): installed, then kept; new default in .new"
done
