package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// variantResult is one MTTR row with its raw samples.
type variantResult struct {
	Name   string        `json:"name"`
	Trials int           `json:"trials"` // asked for
	MTTRms []float64     `json:"mttr_ms"`
	Client []clientCount `json:"client"` // what the nginx client saw, per outage
	Failed []string      `json:"failed,omitempty"`
	Notes  []string      `json:"notes,omitempty"`
	NA     string        `json:"na,omitempty"` // why the row has no numbers
}

// count502 is the number of 502s per outage.
func (v *variantResult) count502() []float64 {
	out := make([]float64, 0, len(v.Client))
	for _, c := range v.Client {
		out = append(out, float64(c.Status[http.StatusBadGateway]))
	}
	return out
}

// maxOutage bounds one trial: a watcher that has not brought the backend
// back by then failed.
func maxOutage(w watcher) time.Duration { return w.period() + 30*time.Second }

// runMTTR sets up the lab and runs every variant not skipped.
func runMTTR(ctx context.Context, o *options, res *results) error {
	l, err := newLab(ctx, o)
	if err != nil {
		return err
	}
	defer l.close()
	if err := l.resetBackend(ctx, "no"); err != nil {
		return err
	}
	if l.nginx, err = startNginx(ctx, l.dir, l.addr); err != nil {
		logf("no 502 counts: %v", err)
	}
	variants := []struct {
		w      watcher
		trials int
	}{
		{systemdWatcher{}, o.Trials},
		{&medicWatcher{events: false}, o.Trials},
		{&medicWatcher{events: true}, o.Trials},
		{&monitWatcher{}, o.Trials},
		{&cronWatcher{every: o.CronPeriod}, o.CronTrials},
	}
	for _, v := range variants {
		if o.skipped(v.w.name()) || v.trials <= 0 {
			continue
		}
		logf("MTTR: %s, %d trials", v.w.name(), v.trials)
		r := runVariant(ctx, l, v.w, v.trials)
		res.MTTR = append(res.MTTR, r)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	l.stopBackend(ctx)
	return nil
}

// runVariant resets the backend for the watcher, starts it and runs the
// trials. Errors become the row's NA or Failed entries.
func runVariant(ctx context.Context, l *lab, w watcher, trials int) variantResult {
	r := variantResult{Name: w.name(), Trials: trials}
	if err := l.resetBackend(ctx, w.restartSetting()); err != nil {
		r.NA = "setup failed: " + err.Error()
		return r
	}
	if err := w.start(ctx, l); err != nil {
		r.NA = "failed to start: " + err.Error()
		if errors.Is(err, errNotImplemented) {
			r.NA = "n/a (not implemented yet)"
			r.Notes = append(r.Notes, err.Error())
		}
		r.Notes = append(r.Notes, w.stop()...)
		logf("%s: %s", w.name(), r.NA)
		return r
	}
	for i := range trials {
		// Land the kill at a random phase of the watcher's cycle.
		rest := 300*time.Millisecond + time.Duration(rand.Int64N(int64(w.period())+1))
		if err := sleepCtx(ctx, rest); err != nil {
			break
		}
		d, cc, err := trial(ctx, l, w)
		if err != nil {
			logf("%s trial %d: %v", w.name(), i+1, err)
			r.Failed = append(r.Failed, err.Error())
			if rerr := l.resetBackend(ctx, w.restartSetting()); rerr != nil {
				r.Failed = append(r.Failed, "reset: "+rerr.Error())
				break
			}
			continue
		}
		r.MTTRms = append(r.MTTRms, ms(d))
		n502 := "no nginx"
		if cc != nil {
			r.Client = append(r.Client, *cc)
			n502 = fmt.Sprintf("%d 502s", cc.Status[http.StatusBadGateway])
		}
		logf("%s trial %d: MTTR %.1f ms, %s", w.name(), i+1, ms(d), n502)
	}
	r.Notes = append(r.Notes, w.stop()...)
	return r
}

// trial kills the backend's main PID with SIGKILL, waits until its port
// accepts again and returns the time that took, and what a client polling
// through nginx saw meanwhile. Then it waits for the watcher to settle.
func trial(ctx context.Context, l *lab, w watcher) (time.Duration, *clientCount, error) {
	pid, err := l.mainPID(ctx)
	if err != nil {
		return 0, nil, err
	}
	if pid == 0 {
		return 0, nil, errors.New("backend has no main PID")
	}
	var p *poller
	if l.nginx != nil {
		p = l.nginx.poll()
	}
	killed := time.Now()
	if err := kill(pid); err != nil {
		return 0, endPoll(p), err
	}
	if err := waitDead(pid, 5*time.Second); err != nil {
		return 0, endPoll(p), err
	}
	up, err := waitAccept(ctx, l.addr, killed.Add(maxOutage(w)))
	cc := endPoll(p)
	if err != nil {
		return 0, cc, err
	}
	if err := w.settle(ctx, up); err != nil {
		return 0, cc, fmt.Errorf("settle: %w", err)
	}
	return up.Sub(killed), cc, nil
}

// endPoll ends the nginx client, if any.
func endPoll(p *poller) *clientCount {
	if p == nil {
		return nil
	}
	cc := p.end()
	return &cc
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
