package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/remedy"
)

// serviceUser is the user the packaged medic.service runs as (User=).
const serviceUser = "medic"

// authzTimeout bounds asking polkit about every unit of a configuration.
const authzTimeout = 10 * time.Second

// authzAnswer is polkit's answer for one unit, or why it could not be
// asked.
type authzAnswer struct {
	Unit, Verb string
	// Answer is "yes", "no" or "" when Err is set.
	Answer string
	Err    string
}

// remedyVerbs lists each remediable unit of cfg with the polkit verb
// its remedy needs ("restart" or "start").
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

// askPolkit asks polkit, on the system bus, whether this process may
// carry out each remedy of cfg (remedy.CheckAuthorization, no
// interaction).
func askPolkit(ctx context.Context, cfg *config.Config) []authzAnswer {
	var out []authzAnswer
	verbs := remedyVerbs(cfg)
	if len(verbs) == 0 {
		return nil
	}
	conn, err := godbus.ConnectSystemBus(godbus.WithContext(ctx))
	if err != nil {
		for _, v := range verbs {
			out = append(out, authzAnswer{Unit: v[0], Verb: v[1], Err: fmt.Sprintf("connect to the system bus: %v", err)})
		}
		return out
	}
	defer conn.Close()
	for _, v := range verbs {
		a, err := remedy.CheckAuthorization(ctx, conn, v[0], v[1])
		ans := authzAnswer{Unit: v[0], Verb: v[1]}
		switch {
		case err != nil:
			ans.Err = err.Error()
		case a.Authorized:
			ans.Answer = "yes"
		default:
			ans.Answer = "no"
		}
		out = append(out, ans)
	}
	return out
}

// reportAuthorization writes, for each remediable unit of cfg on the
// system bus, whether the user medic runs as may restart it, as polkit
// answers now: "polkit: user medic may restart app.service", or a line
// starting "warning:" with the fix. Run as root, it asks as the service
// user (a copy of itself started as that user); run as any other user, it
// asks as that user. It reports whether every remedy is allowed (true
// also when there was nothing to ask: the user bus, no remedies).
func reportAuthorization(ctx context.Context, w io.Writer, cfg *config.Config, file string) bool {
	if cfg.Agent.Bus != "system" || len(remedyVerbs(cfg)) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, authzTimeout)
	defer cancel()
	who := "user " + currentUserName()
	var answers []authzAnswer
	if os.Geteuid() == 0 {
		u, err := user.Lookup(serviceUser)
		if err != nil {
			fmt.Fprintf(w, "polkit: not asked: user %s does not exist (the packaged medic.service runs as it; root may restart any unit)\n", serviceUser)
			return true
		}
		who = "user " + serviceUser
		answers, err = askPolkitAs(ctx, u, file)
		if err != nil {
			fmt.Fprintf(w, "warning: polkit: cannot ask as user %s: %v\n", serviceUser, err)
			return false
		}
	} else {
		answers = askPolkit(ctx, cfg)
	}
	ok := true
	for _, a := range answers {
		switch {
		case a.Err != "":
			ok = false
			fmt.Fprintf(w, "warning: polkit: cannot tell whether %s may %s %s: %s\n", who, a.Verb, a.Unit, a.Err)
		case a.Answer == "yes":
			fmt.Fprintf(w, "polkit: %s may %s %s\n", who, a.Verb, a.Unit)
		default:
			ok = false
			fmt.Fprintf(w, "warning: polkit: %s may NOT %s %s: medic's remedies would be refused; allow them with: %s\n",
				who, a.Verb, a.Unit, remedy.PolkitRuleHint(file))
		}
	}
	return ok
}

// askPolkitAs runs `medic check-authorization` as u and reads its answers.
func askPolkitAs(ctx context.Context, u *user.User, file string) ([]authzAnswer, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "check-authorization", "-c", file)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return parseAuthzLines(stdout.String()), nil
}

// parseAuthzLines reads the lines check-authorization writes:
// "UNIT<TAB>VERB<TAB>yes|no" or "UNIT<TAB>VERB<TAB>error<TAB>MESSAGE".
func parseAuthzLines(s string) []authzAnswer {
	var out []authzAnswer
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 4)
		if len(f) < 3 {
			continue
		}
		a := authzAnswer{Unit: f[0], Verb: f[1], Answer: f[2]}
		if f[2] == "error" {
			a.Answer, a.Err = "", "unknown error"
			if len(f) == 4 {
				a.Err = f[3]
			}
		}
		out = append(out, a)
	}
	return out
}

func currentUserName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// newCheckAuthorizationCmd is the hidden helper that check-config runs as
// the service user: it asks polkit about each remedy of the configuration
// and prints one tab-separated line each.
func newCheckAuthorizationCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:    "check-authorization",
		Short:  "Ask polkit whether this user may carry out each remedy (used by check-config)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				printConfigErrors(cmd.ErrOrStderr(), err)
				return exitCode(1)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), authzTimeout)
			defer cancel()
			for _, a := range askPolkit(ctx, cfg) {
				if a.Err != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\terror\t%s\n", a.Unit, a.Verb, strings.ReplaceAll(a.Err, "\n", " "))
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", a.Unit, a.Verb, a.Answer)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", defaultConfig, "configuration file")
	return cmd
}

// logAuthorization logs, at start-up, whether medic may carry out each
// remedy on the system bus: a warning with the fix for each it may not.
func logAuthorization(ctx context.Context, cfg *config.Config, file string, log *zap.Logger) {
	if cfg.Agent.Bus != "system" || os.Geteuid() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, authzTimeout)
	defer cancel()
	for _, a := range askPolkit(ctx, cfg) {
		switch {
		case a.Err != "":
			log.Warn(fmt.Sprintf("cannot ask polkit whether medic may %s %s: %s", a.Verb, a.Unit, a.Err),
				zap.String("unit", a.Unit), zap.String("verb", a.Verb))
		case a.Answer == "yes":
			log.Info(fmt.Sprintf("polkit allows medic to %s %s", a.Verb, a.Unit), zap.String("unit", a.Unit), zap.String("verb", a.Verb))
		default:
			log.Warn(fmt.Sprintf("polkit does not allow medic to %s %s: its remedies will be refused until it does; allow them with: %s",
				a.Verb, a.Unit, remedy.PolkitRuleHint(file)), zap.String("unit", a.Unit), zap.String("verb", a.Verb))
		}
	}
}
