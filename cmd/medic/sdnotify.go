package main

import (
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// The sd_notify(3) messages medic sends. sd.SdNotify is always called
// with unsetEnvironment false: unsetting NOTIFY_SOCKET would make every
// later notification silently do nothing. Without NOTIFY_SOCKET (not run
// by systemd) they are no-ops.

func notifyReady()     { _, _ = sd.SdNotify(false, sd.SdNotifyReady) }
func notifyReloading() { _, _ = sd.SdNotify(false, sd.SdNotifyReloading) }
func notifyStopping()  { _, _ = sd.SdNotify(false, sd.SdNotifyStopping) }
func notifyWatchdog()  { _, _ = sd.SdNotify(false, sd.SdNotifyWatchdog) }

// notifyStatus sets the one-line status `systemctl status` shows.
func notifyStatus(line string) { _, _ = sd.SdNotify(false, "STATUS="+line) }

// watchdogInterval returns half of WatchdogSec when systemd's watchdog is
// on for this process (sd_watchdog_enabled(3)).
func watchdogInterval() (time.Duration, bool) {
	d, err := sd.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d / 2, true
}
