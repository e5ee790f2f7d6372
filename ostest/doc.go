// Package ostest is medic's OS test tier: its tests install the real .deb
// (built by scripts/package) into Debian 12 (bookworm) and Debian 13
// (trixie), each booted with systemd as PID 1 in a systemd-nspawn container
// (internal/ostest), and drive medic as users run it: medic.service as
// User=medic on the system bus, its restarts authorized by the polkit rule
// `medic polkit-rule` writes, under the unit's sandbox.
//
// They need root, mmdebstrap and systemd-container; without them they skip,
// or fail under MEDIC_REQUIRE_SYSTEMD=1. The first run builds each
// release's root filesystem into /var/tmp/medic-ostest (one to three
// minutes, from deb.debian.org); later runs boot from that cache.
//
//	MEDIC_REQUIRE_SYSTEMD=1 go test -v ./ostest/
package ostest
