#!/bin/sh
# install-conf.sh SOURCE DEST: meson's install step for a configuration
# file. DEST is relative to the prefix unless absolute; DESTDIR is honoured.
# An existing DEST is never replaced: it is the administrator's file. The
# new default is put beside it as DEST.new when it differs.
set -eu
src=$1
dest=$2
case $dest in
/*) ;;
*) dest=$MESON_INSTALL_PREFIX/$dest ;;
esac
dest=${DESTDIR:-}$dest
mkdir -p "$(dirname "$dest")"
if [ -e "$dest" ] || [ -L "$dest" ]; then
	if ! cmp -s "$src" "$dest"; then
		install -m 0644 "$src" "$dest.new"
		echo "Keeping $dest (yours); the new default is $dest.new"
	else
		echo "Keeping $dest (unchanged)"
	fi
	exit 0
fi
install -m 0644 "$src" "$dest"
echo "Installing $dest"
