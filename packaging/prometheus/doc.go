// Package prometheus holds medic's Prometheus alerting rules,
// medic-alerts.yml, and their promtool unit tests, medic-alerts.test.yml.
// It has no Go code: its test runs promtool on the rules and checks that
// every medic metric they use is one the metrics package exposes.
package prometheus
