package main

import (
	"context"
	"sync"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/history"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/statuspage"
)

// serveStatusPage serves the read-only status page on [agent]
// http_listen, when set, until ctx ends: report is what `medic status`
// reads from the socket; the open incidents' timelines and the history
// are read from state_dir. An address that is not loopback is served, as
// the configuration says, with a warning; a loopback one answers only to
// requests for localhost or an IP address (statuspage.LoopbackHost). It
// fails only when the address cannot be bound.
func serveStatusPage(ctx context.Context, wg *sync.WaitGroup, cfg *config.Config, report func() agent.Report, log *zap.Logger) error {
	addr := cfg.Agent.HTTPListen
	if addr == "" {
		return nil
	}
	ln, err := statuspage.Listen(addr)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String() + statuspage.Path
	var allowHost func(string) bool
	if statuspage.IsLoopback(ln.Addr()) {
		allowHost = statuspage.LoopbackHost
		log.Info("serving the status page", zap.String("address", url))
	} else {
		log.Warn("serving the status page beyond this machine: http_listen "+addr+" is not a loopback address, so whoever reaches it reads every check, incident and diagnosis",
			zap.String("address", url))
	}
	stateDir := cfg.Agent.StateDir // kept by reloads
	h := statuspage.Handler(statuspage.Sources{
		Report: report,
		OpenIncident: func(check string) (*notify.Incident, error) {
			return agent.SavedIncident(stateDir, check)
		},
		History: func() ([]history.Record, []history.Corrupt, error) {
			return history.List(history.Dir(stateDir))
		},
	}, allowHost)
	wg.Go(func() {
		if err := statuspage.Serve(ctx, ln, h); err != nil {
			log.Error("status page stopped", zap.Error(err))
		}
	})
	return nil
}
