package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/remedy"
)

// serviceUser is the user the packaged medic.service runs as (User=).
const serviceUser = "medic"

// authzTimeout bounds asking polkit about every unit of a configuration.
const authzTimeout = 10 * time.Second

// authzAnswer is polkit's answer for one remedy, or why it could not be
// asked.
type authzAnswer struct {
	Unit, Verb string
	Allowed    bool
	Err        error
}

// remedyVerbs lists each remediable unit of cfg with the polkit verb its
// remedy needs ("restart" or "start").
func remedyVerbs(cfg *config.Config) [][2]string {
	var out [][2]string
	for _, c := range cfg.Checks {
		if c.Unit == "" || c.Remedy.Action == "none" {
			continue
		}
		out = append(out, [2]string{c.Unit, c.Remedy.Action})
	}
	return out
}

// askPolkitFor asks polkit on the system bus whether subject may carry out
// each remedy of cfg (remedy.CheckAuthorization). Only root may ask.
func askPolkitFor(ctx context.Context, cfg *config.Config, subject remedy.Subject) []authzAnswer {
	verbs := remedyVerbs(cfg)
	out := make([]authzAnswer, 0, len(verbs))
	conn, err := godbus.ConnectSystemBus(godbus.WithContext(ctx))
	if err != nil {
		for _, v := range verbs {
			out = append(out, authzAnswer{Unit: v[0], Verb: v[1], Err: fmt.Errorf("connect to the system bus: %w", err)})
		}
		return out
	}
	defer conn.Close()
	for _, v := range verbs {
		a, err := remedy.CheckAuthorization(ctx, conn, subject, v[0], v[1])
		out = append(out, authzAnswer{Unit: v[0], Verb: v[1], Allowed: err == nil && a.Authorized, Err: err})
	}
	return out
}

// reportAuthorization writes, for each remediable unit of cfg on the
// system bus, whether the service user (medic) may restart it, as polkit
// answers now: "polkit: user medic may restart app.service", or a line
// starting "warning:" with the command that allows it. polkit answers
// questions about a unit only to root: run as root, it asks about a
// process of the service user it starts for the purpose (sleep(1) as that
// user); as anyone else it says it cannot ask. It writes nothing for the
// user bus or a configuration without remedies.
func reportAuthorization(ctx context.Context, w io.Writer, cfg *config.Config, file string) {
	if cfg.Agent.Bus != "system" || len(remedyVerbs(cfg)) == 0 {
		return
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(w, "polkit: not asked whether user %s may restart its units: polkit answers that only to root (run check-config as root)\n", serviceUser)
		return
	}
	u, err := user.Lookup(serviceUser)
	if err != nil {
		fmt.Fprintf(w, "polkit: not asked: user %s does not exist (the packaged medic.service runs as it; as root, medic may restart any unit)\n", serviceUser)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, authzTimeout)
	defer cancel()
	subject, stop, err := processAs(ctx, u)
	if err != nil {
		fmt.Fprintf(w, "warning: polkit: cannot ask about user %s: %v\n", serviceUser, err)
		return
	}
	defer stop()
	who := "user " + serviceUser
	for _, a := range askPolkitFor(ctx, cfg, subject) {
		switch {
		case a.Err != nil:
			fmt.Fprintf(w, "warning: polkit: cannot tell whether %s may %s %s: %v\n", who, a.Verb, a.Unit, a.Err)
		case a.Allowed:
			fmt.Fprintf(w, "polkit: %s may %s %s\n", who, a.Verb, a.Unit)
		default:
			fmt.Fprintf(w, "warning: polkit: %s may NOT %s %s: medic's remedies would be refused; allow them with: %s\n",
				who, a.Verb, a.Unit, remedy.PolkitRuleHint(file))
		}
	}
}

// processAs starts a process that only waits, as u with u's groups, and
// returns it as a polkit Subject, with a function that ends it. polkit
// judges a process, not a user: this one stands in for medic.service.
func processAs(ctx context.Context, u *user.User) (remedy.Subject, func(), error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return remedy.Subject{}, nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return remedy.Subject{}, nil, err
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return remedy.Subject{}, nil, err
	}
	cmd := exec.CommandContext(ctx, sleep, strconv.Itoa(int(authzTimeout/time.Second)+5))
	cmd.Dir = "/"
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	if err := cmd.Start(); err != nil {
		return remedy.Subject{}, nil, fmt.Errorf("start a process as %s: %w", u.Username, err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	s, err := remedy.ProcessSubject(cmd.Process.Pid)
	if err != nil {
		stop()
		return remedy.Subject{}, nil, err
	}
	return s, stop, nil
}

// logAuthorization logs at start-up what medic knows about its permission
// to restart its units on the system bus. polkit answers questions about a
// unit only to root, so medic, running as user medic, cannot ask: it says
// where the answer is. As root it needs no permission.
func logAuthorization(cfg *config.Config, file string, log *zap.Logger) {
	if cfg.Agent.Bus != "system" || os.Geteuid() == 0 || len(remedyVerbs(cfg)) == 0 {
		return
	}
	cmd := "medic check-config"
	if file != "" {
		cmd += " -c " + file
	}
	log.Info(fmt.Sprintf("medic restarts its units through polkit as user %s; `%s` run as root says whether polkit allows each one, and a refused restart is reported at once with the fix",
		currentUserName(), cmd))
}

func currentUserName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}
