#!/bin/sh
# medic preremove (deb prerm, rpm %preun).
#   deb: $1 = remove | upgrade | deconfigure | failed-upgrade
#   rpm: $1 = 0 on removal, 1 or more on an upgrade
# On removal stop and disable medic; on an upgrade leave it running (the new
# package's postinstall restarts it).
set -e

case "$1" in
remove | deconfigure | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl stop medic.service || true
fi
if command -v systemctl >/dev/null 2>&1; then
	systemctl disable medic.service >/dev/null 2>&1 || true
fi
exit 0
