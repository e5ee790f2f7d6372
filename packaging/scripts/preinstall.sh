#!/bin/sh
# medic preinstall (deb preinst, rpm %pre): create the user medic before the
# files are unpacked, so /etc/medic/medic.toml gets group medic.
#   deb: $1 = install | upgrade | abort-upgrade, $2 = old version
#   rpm: $1 = 1 (install) | 2 or more (upgrade)
set -e

if ! getent passwd medic >/dev/null; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		# The same lines as /usr/lib/sysusers.d/medic.conf, which is not
		# unpacked yet.
		printf '%s\n' 'u medic - "medic watchdog" /var/lib/medic' 'm medic systemd-journal' |
			systemd-sysusers --replace=/usr/lib/sysusers.d/medic.conf -
	elif command -v adduser >/dev/null 2>&1; then
		adduser --system --group --no-create-home --home /var/lib/medic \
			--gecos "medic watchdog" --shell /usr/sbin/nologin medic
	else
		useradd --system --user-group --no-create-home --home-dir /var/lib/medic \
			--comment "medic watchdog" --shell /sbin/nologin medic
	fi
fi
exit 0
