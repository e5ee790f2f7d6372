#!/bin/sh
# medic postremove (deb postrm, rpm %postun).
#   deb: $1 = remove | purge | upgrade | failed-upgrade | abort-install |
#        abort-upgrade | disappear
#   rpm: $1 = 0 on removal, 1 or more on an upgrade
# After removal, tell systemd the unit is gone. On purge, delete medic's state
# (outbox, incidents). The user medic stays, as Debian keeps system users:
# files it owned elsewhere would otherwise get a reused uid.
set -e

case "$1" in
remove | purge | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	systemctl reset-failed medic.service >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
	rm -rf /var/lib/medic /run/medic
	rmdir /etc/medic 2>/dev/null || true
fi
exit 0
