package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
)

// socketFlags are the flags that find the running medic's status socket.
type socketFlags struct{ file, socket string }

func (f *socketFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "config", "c", defaultConfig, "configuration file (for status_socket)")
	cmd.Flags().StringVar(&f.socket, "socket", "", "status socket path (overrides the configuration)")
}

// path returns the status socket of the running medic: --socket, else the
// configuration's status_socket. When the configuration cannot be loaded
// (a broken file must not keep anyone from asking the running medic), it
// says so on stderr, naming the first problem with its file and line, and
// falls back to the socket the running medic recorded (see
// recordStatusSocket), or to the default /run/medic/medic.sock, saying
// which one it uses.
func (f *socketFlags) path(stderr io.Writer) (string, error) {
	if f.socket != "" {
		return f.socket, nil
	}
	cfg, err := config.Load(f.file)
	if err == nil {
		if cfg.Agent.StatusSocket == "" {
			return "", fmt.Errorf("%s turns the status socket off (status_socket = \"\")", f.file)
		}
		return cfg.Agent.StatusSocket, nil
	}
	var list config.Errors
	if errors.As(err, &list) {
		more := ""
		if len(list) > 1 {
			more = fmt.Sprintf(" (and %d more problem(s): medic check-config -c %s lists them)", len(list)-1, f.file)
		}
		fmt.Fprintf(stderr, "medic: the configuration is broken: %s%s\n", esc(list[0].Error()), more)
	} else {
		fmt.Fprintf(stderr, "medic: the configuration cannot be used: %s\n", esc(err.Error()))
	}
	record := statusSocketRecordPath()
	socket, rerr := readStatusSocketRecord(record)
	switch {
	case rerr == nil:
		fmt.Fprintf(stderr, "medic: using the status socket %s, recorded by the running medic in %s\n", socket, record)
	case errors.Is(rerr, fs.ErrNotExist):
		socket = config.DefaultAgent.StatusSocket
		fmt.Fprintf(stderr, "medic: using the default status socket %s (no running medic recorded one in %s)\n", socket, record)
	default:
		socket = config.DefaultAgent.StatusSocket
		fmt.Fprintf(stderr, "medic: using the default status socket %s (%s)\n", socket, esc(rerr.Error()))
	}
	return socket, nil
}

// statusSocketRecord is the name of the file in medic's runtime directory
// that holds the path of the status socket the running medic serves.
const statusSocketRecord = "status-socket"

// defaultRuntimeDir is medic's runtime directory when $RUNTIME_DIRECTORY
// is not set: the one medic.service asks systemd for (RuntimeDirectory=medic).
const defaultRuntimeDir = "/run/medic"

// statusSocketRecordPath returns where the running medic records its status
// socket: status-socket in the first directory of $RUNTIME_DIRECTORY
// (systemd.exec(5) sets it from RuntimeDirectory=), or in /run/medic.
func statusSocketRecordPath() string {
	dir, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":")
	if dir == "" {
		dir = defaultRuntimeDir
	}
	return filepath.Join(dir, statusSocketRecord)
}

// recordStatusSocket writes socket, the status socket medic has just bound,
// to status-socket in its runtime directory, so that `medic status` and the
// other control commands find it while the configuration file is broken
// (status_socket changes only at a restart, so the record stays true until
// medic stops; systemd removes the runtime directory then). It records
// nothing, and returns nil, when $RUNTIME_DIRECTORY is not set: outside
// medic.service there is no runtime directory of medic's own to write to.
// The file is replaced atomically and is mode 0644 (the directory decides
// who may read it).
func recordStatusSocket(socket string) error {
	if os.Getenv("RUNTIME_DIRECTORY") == "" {
		return nil
	}
	record := statusSocketRecordPath()
	tmp, err := os.CreateTemp(filepath.Dir(record), "."+statusSocketRecord+"-*")
	if err != nil {
		return fmt.Errorf("record status socket: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(socket + "\n")
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), record)
	}
	if err != nil {
		return fmt.Errorf("record status socket: %w", err)
	}
	return nil
}

// readStatusSocketRecord reads the socket path recorded in the file record.
// It fails with an error matching fs.ErrNotExist when there is none.
func readStatusSocketRecord(record string) (string, error) {
	b, err := os.ReadFile(record)
	if err != nil {
		return "", fmt.Errorf("read status socket record: %w", err)
	}
	socket := strings.TrimSpace(string(b))
	if !filepath.IsAbs(socket) || strings.ContainsAny(socket, "\n\x00") {
		return "", fmt.Errorf("read status socket record %s: %q is not an absolute path", record, socket)
	}
	return socket, nil
}

func newReloadCmd() *cobra.Command {
	var sf socketFlags
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make the running medic reload its configuration, and wait for the outcome",
		Long: `reload asks the running medic to read its configuration file again. It
returns when the reload is done: exit 0 when the new configuration is in
force, 1 with every problem (file:line: key) when it was refused and the
running configuration stays. Checks that did not change keep their state.
While the file is broken, reload still reaches the running medic (see
` + "`medic status`" + ` for how it finds the socket) and prints the problems it
found.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := sf.path(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			if _, err := agent.Control(ctx, path, agent.ReloadPath, nil); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "medic:", socketError("reload", path, err))
				return exitCode(1)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration reloaded")
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}

func newPauseCmd() *cobra.Command {
	var (
		sf     socketFlags
		dur    time.Duration
		reason string
	)
	cmd := &cobra.Command{
		Use:   "pause CHECK",
		Short: "Stop remediating a check for a while (maintenance); it is still probed",
		Long: `pause stops medic from restarting CHECK's unit until --for has passed or
` + "`medic resume CHECK`" + `. The check is still probed and shown in status; the pause
is recorded in state_dir, so it survives a restart of medic, and alerts say
the check is paused. --for is at most 24h (a longer maintenance is a change
of configuration: action = "none"); --reason at most 256 bytes.

Reading the status is open to medic's group (the socket is mode 0660), but
pause, resume and reload are refused ("permission denied", HTTP 403) unless
they come from root or from medic's own user: run them with sudo.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := sf.path(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			r, err := agent.Control(ctx, path, agent.PausePath, agent.PauseRequest{Check: args[0], For: dur.String(), Reason: reason})
			if err != nil {
				return socketError("pause "+esc(args[0]), path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: remediation paused until %s\n", esc(args[0]), r.Until.Local().Format(time.RFC3339))
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().DurationVar(&dur, "for", 30*time.Minute, "how long the pause lasts")
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown in status and alerts")
	return cmd
}

func newResumeCmd() *cobra.Command {
	var sf socketFlags
	cmd := &cobra.Command{
		Use:   "resume CHECK",
		Short: "End a pause: remediate CHECK again (at once if it is failing)",
		Long: `resume ends a pause of CHECK (medic pause, or a stop by an operator that
medic leaves alone) and says "CHECK: remediation resumed". When CHECK was
not paused (never, or its pause had ended), it says "CHECK: not paused;
nothing to resume" and still exits 0: remediation is on either way. It
exits 1 when medic has no check of that name or cannot be reached.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := sf.path(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			r, err := agent.Control(ctx, path, agent.ResumePath, map[string]string{"check": args[0]})
			if err != nil {
				return socketError("resume "+esc(args[0]), path, err)
			}
			if r.NotPaused {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: not paused; nothing to resume\n", esc(args[0]))
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: remediation resumed\n", esc(args[0]))
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}

// socketError says for people why the status socket at socket could not
// be talked to, as "VERB: cannot reach medic's status socket PATH:
// connection refused (is medic running?)", without Go's request and dial
// wrappers. Errors that medic itself answered (they name their verb, e.g.
// "pause nope: no such check") are returned as they are.
func socketError(verb, socket string, err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		var what string
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			what = "connection refused (is medic running?)"
		case errors.Is(err, fs.ErrNotExist):
			what = "no such socket (is medic running?)"
		case errors.Is(err, fs.ErrPermission):
			what = "permission denied (root and members of group medic may read the status; try sudo)"
		default:
			what = "dial: " + op.Err.Error()
			var sys *os.SyscallError
			if errors.As(err, &sys) {
				what = sys.Err.Error()
			}
		}
		return fmt.Errorf("%s: cannot reach medic's status socket %s: %s", verb, socket, what)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: medic's status socket %s did not answer in time (is medic overloaded or stopped?)", verb, socket)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: talk to medic's status socket %s: %w", verb, socket, ue.Err)
	}
	return err
}
