#!/bin/sh
# medic postinstall (deb postinst, rpm %post).
#   deb: $1 = configure, $2 = the previously configured version ("" on the
#        first install); abort-upgrade | abort-remove | abort-deconfigure
#        when an upgrade or removal failed and the old package is restored
#   rpm: $1 = 1 on the first install, 2 or more on an upgrade
# First install: create the user, enable (not start: /etc/medic/medic.toml
# watches nothing yet). Upgrade: restart medic if it runs, never stop it.
set -e

action=
case "$1" in
configure)
	if [ -z "$2" ]; then action=install; else action=upgrade; fi
	;;
abort-upgrade | abort-remove | abort-deconfigure)
	action=upgrade
	;;
1)
	action=install
	;;
[2-9] | [1-9][0-9]*)
	action=upgrade
	;;
*)
	exit 0
	;;
esac

# The user: systemd-sysusers reads /usr/lib/sysusers.d/medic.conf; without it
# (no systemd), adduser or useradd.
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers medic.conf
elif ! getent passwd medic >/dev/null; then
	if command -v adduser >/dev/null 2>&1; then
		adduser --system --group --no-create-home --home /var/lib/medic \
			--gecos "medic watchdog" --shell /usr/sbin/nologin medic
	else
		useradd --system --user-group --no-create-home --home-dir /var/lib/medic \
			--comment "medic watchdog" --shell /sbin/nologin medic
	fi
fi
if getent group systemd-journal >/dev/null && ! id -nG medic | grep -qw systemd-journal; then
	usermod -a -G systemd-journal medic || true
fi

# medic reads its configuration as user medic; the file holds secrets at
# times, so it is not world-readable.
if [ -f /etc/medic/medic.toml ]; then
	chown root:medic /etc/medic/medic.toml
fi

# enable/disable work without a running systemd (they only write symlinks);
# The catalog makes `journalctl -x` explain medic's MESSAGE_IDs.
if command -v journalctl >/dev/null 2>&1; then
	journalctl --update-catalog >/dev/null 2>&1 || true
fi

# daemon-reload and try-restart need systemd as PID 1.
if [ "$action" = install ] && command -v systemctl >/dev/null 2>&1; then
	systemctl enable medic.service >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ "$action" = upgrade ]; then
		systemctl try-restart medic.service || true
	fi
fi
exit 0
