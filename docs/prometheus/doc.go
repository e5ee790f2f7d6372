// Package prometheus holds the Prometheus example for a fleet of hosts
// running medic: prometheus.yml (scrape configuration with file-based
// service discovery, targets/*.json), medic.rules.yml (recording rules for
// fleet-wide figures and a fleet alert) and their promtool unit tests
// (medic.rules.test.yml, medic.rules.ttr.test.yml). It has no Go code: its
// tests run promtool on the files and check that every medic metric the
// rules use is one the metrics package exposes.
package prometheus
