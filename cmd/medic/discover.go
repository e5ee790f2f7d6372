package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medic-watchdog/medic/internal/fsname"
	"github.com/medic-watchdog/medic/nginx"
)

func newDiscoverCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "discover",
		Short: "Find the backends of a proxy and print checks for them",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDiscoverNginxCmd())
	return cmd
}

func newDiscoverNginxCmd() *cobra.Command {
	var conf string
	cmd := &cobra.Command{
		Use:   "nginx",
		Short: "Print [[check]] tables for every backend nginx proxies to",
		Long: `discover nginx reads nginx's configuration (following its includes), lists
every upstream server and every proxy_pass, fastcgi_pass, uwsgi_pass,
grpc_pass, scgi_pass and memcached_pass address, finds the systemd unit whose
process listens on each one now, and prints a [[check]] table per backend,
ready to paste into medic.toml after the [agent] table. A tcp probe checks a
host:port, a unix probe a socket. Where no unit listens, the check only probes
(remedy.action = "none") and says why in a comment; backup servers, servers
marked down, max_fails and fail_timeout are shown as comments.

Run it as root (or as the backends' users) so that it may see which process
holds each socket.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			r, err := nginx.Discover(ctx, conf)
			if err != nil {
				return err
			}
			writeChecks(cmd.OutOrStdout(), r)
			return nil
		},
	}
	cmd.Flags().StringVarP(&conf, "config", "c", "/etc/nginx/nginx.conf", "nginx's main configuration file")
	return cmd
}

// writeChecks prints r as [[check]] tables with comments.
func writeChecks(w io.Writer, r nginx.Report) {
	fmt.Fprintf(w, "# Checks for the backends of %s, written by `medic discover nginx`.\n", r.Config.File)
	fmt.Fprintf(w, "# Read from: %s\n", strings.Join(r.Config.Files, ", "))
	fmt.Fprintf(w, "# Paste them after the [agent] table of medic.toml and review each one.\n")
	if len(r.Backends) == 0 {
		fmt.Fprintf(w, "\n# nginx proxies to no backend address.\n")
	}
	names := map[string]int{}
	for _, b := range r.Backends {
		fmt.Fprintln(w)
		writeCheck(w, r, b, uniqueName(names, checkName(b)))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "\n# Not checked: these name no address medic can probe:\n")
		for _, s := range r.Skipped {
			fmt.Fprintf(w, "#   %s\n", s)
		}
	}
	if len(r.Unavailable) > 0 {
		fmt.Fprintf(w, "\n# Evidence that could not be gathered:\n")
		for _, s := range r.Unavailable {
			fmt.Fprintf(w, "#   %s\n", s)
		}
	}
}

func writeCheck(w io.Writer, r nginx.Report, b nginx.Backend, name string) {
	target := b.Address
	if b.Network == "unix" {
		target = "unix:" + b.Address
	}
	// Where the configuration names it, with the upstream's failure
	// accounting.
	for _, m := range b.Mentions {
		fmt.Fprintf(w, "# %s  (%s:%d)\n", m.Text, m.File, m.Line)
		if s := m.Server; s != nil && (s.MaxFails != nil || s.FailTimeout != "") {
			mf, ft := "1", "10s"
			if s.MaxFails != nil {
				mf = strconv.Itoa(*s.MaxFails)
			}
			if s.FailTimeout != "" {
				ft = s.FailTimeout
			}
			fmt.Fprintf(w, "#   nginx stops sending requests to it for fail_timeout=%s after max_fails=%s failures within that time.\n", ft, mf)
		}
	}
	if b.Backup {
		fmt.Fprintf(w, "# A backup server: nginx sends it requests only when the other servers of %s are unavailable.\n", strings.Join(b.Upstreams, ", "))
	}

	unit := ""
	switch o := b.Owner; {
	case o != nil && o.Unit != "":
		unit = o.Unit
		fmt.Fprintf(w, "# Listening now: %s, %s, in %s.\n", o.Listener, process(o), o.Unit)
	case o != nil:
		fmt.Fprintf(w, "# Listening now: %s, %s, which runs in no systemd service: medic can probe it but not restart it.\n", o.Listener, process(o))
	}

	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	add("[[check]]")
	add("name = %s", tomlString(name))
	switch {
	case unit != "":
		add("unit = %s", tomlString(unit))
	case !b.Local:
		add("# %s", b.Problem)
	default:
		why := b.Problem
		if why == "" {
			why = target + " is not served by a systemd service"
		}
		add("# unit = \"?.service\"  # %s; name the unit that serves it and remove remedy.action = \"none\"", why)
	}
	if b.Network == "unix" && r.User != "" {
		add("client_user = %s  # nginx's workers run as this user", tomlString(r.User))
	}
	add("")
	add("  [[check.probe]]")
	if b.Network == "unix" {
		add("  type = \"unix\"")
		add("  path = %s", tomlString(b.Address))
	} else {
		add("  type = \"tcp\"")
		add("  address = %s", tomlString(b.Address))
	}
	if unit == "" {
		add("")
		add("  [check.remedy]")
		add("  action = \"none\"")
	}

	if b.Down {
		fmt.Fprintf(w, "# Marked down in nginx: it gets no requests. Remove the comments to check it anyway.\n")
		for _, l := range lines {
			if l == "" {
				fmt.Fprintln(w, "#")
			} else {
				fmt.Fprintf(w, "# %s\n", l)
			}
		}
		return
	}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// process renders an owner's process: "pid 1234 (node)".
func process(o *nginx.Owner) string {
	if o.PID == 0 {
		return "process unknown"
	}
	return fmt.Sprintf("pid %d (%s)", o.PID, o.Comm)
}

var (
	nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
	nameDashes = regexp.MustCompile(`--+`)
)

// checkName derives a check name from the backend's unit, its upstream
// group and port, its socket file or its address.
func checkName(b nginx.Backend) string {
	var n string
	port := ""
	if b.Network == "tcp" {
		if i := strings.LastIndexByte(b.Address, ':'); i >= 0 {
			port = b.Address[i+1:]
		}
	}
	switch {
	case b.Owner != nil && b.Owner.Unit != "":
		n = strings.TrimSuffix(b.Owner.Unit, ".service")
	case len(b.Upstreams) > 0 && port != "":
		n = b.Upstreams[0] + "-" + port
	case len(b.Upstreams) > 0:
		n = b.Upstreams[0] + "-" + strings.TrimSuffix(filepath.Base(b.Address), ".sock")
	case b.Network == "unix":
		n = strings.TrimSuffix(filepath.Base(b.Address), ".sock")
	default:
		n = "backend-" + b.Address
	}
	n = strings.Trim(nameDashes.ReplaceAllString(nameUnsafe.ReplaceAllString(n, "-"), "-"), "-.")
	// Leave room for uniqueName's "-N" within the name length limit.
	if max := fsname.MaxLen - 4; len(n) > max {
		n = strings.TrimRight(n[:max], "-.")
	}
	if fsname.Check(n) != nil {
		n = "backend"
	}
	return n
}

// uniqueName returns n, or n-2, n-3 ... when taken.
func uniqueName(seen map[string]int, n string) string {
	seen[n]++
	if c := seen[n]; c > 1 {
		alt := fmt.Sprintf("%s-%d", n, c)
		for seen[alt] > 0 {
			c++
			alt = fmt.Sprintf("%s-%d", n, c)
		}
		seen[alt]++
		return alt
	}
	return n
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
