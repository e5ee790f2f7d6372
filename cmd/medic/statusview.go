package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// statusOptions say how `medic status` lays out its table.
type statusOptions struct {
	// width is the widest a line of the table may be; 0 means no limit
	// (--wide, or output that is not a terminal).
	width int
	// color marks STATE in colour (ANSI SGR).
	color bool
	// now is the time SINCE and "up" are measured to.
	now time.Time
}

// resolveStatusOptions decides the layout for output out: with wide, no
// width limit; else the terminal's width when out is a terminal, else
// $COLUMNS when set, else no limit. Colour only when out is a terminal,
// $NO_COLOR is unset or empty (https://no-color.org) and $TERM is not
// "dumb". getenv is os.Getenv.
func resolveStatusOptions(out io.Writer, wide bool, getenv func(string) string, now time.Time) statusOptions {
	opts := statusOptions{now: now}
	cols, isTerm := terminalWidth(out)
	if !wide {
		opts.width = cols
		if opts.width <= 0 {
			if n, err := strconv.Atoi(getenv("COLUMNS")); err == nil && n > 0 {
				opts.width = n
			}
		}
	}
	opts.color = isTerm && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
	return opts
}

// terminalWidth reports whether out is a terminal and, if so, its width in
// columns (0 when the terminal does not say).
func terminalWidth(out io.Writer) (int, bool) {
	f, ok := out.(interface{ Fd() uintptr })
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return 0, false
	}
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil {
		return 0, true
	}
	return int(ws.Col), true
}

// A statusColumn is one column of the status table.
type statusColumn struct {
	head string
	// min is the narrowest the column is truncated to (with "…").
	min int
}

// statusColumns are the columns of the status table, in order.
var statusColumns = []statusColumn{
	{head: "CHECK", min: 10},
	{head: "UNIT", min: 12},
	{head: "STATE"},
	{head: "SINCE"},
	{head: "LAST PROBE", min: 12},
	{head: "LATENCY"},
	{head: "FAILS"},
	{head: "RESTARTS"},
	{head: "BUDGET LEFT"},
	{head: "INCIDENT", min: 12},
	{head: "CAUSE", min: 16},
}

// fitSteps is how the status table is made to fit a width, step by step
// until it fits: the least useful columns are dropped first, then long
// cells truncated, then more columns dropped. CHECK, STATE and SINCE stay.
var fitSteps = []struct {
	head  string
	trunc int // 0: drop the column; else truncate it, to no less than this
}{
	{head: "INCIDENT"},
	{head: "BUDGET LEFT"},
	{head: "FAILS"},
	{head: "LATENCY"},
	{head: "RESTARTS"},
	{head: "LAST PROBE", trunc: 32},
	{head: "CAUSE", trunc: 24},
	{head: "UNIT", trunc: 20},
	{head: "UNIT"},
	{head: "LAST PROBE", trunc: 20},
	{head: "CAUSE", trunc: 16},
	{head: "CAUSE"},
	{head: "LAST PROBE", trunc: 12},
	{head: "CHECK", trunc: 10},
}

// columnGap is the space between two columns.
const columnGap = 2

// printTable prints rows under cols' heads, fitted to opts.width (see
// fitSteps); color(row, col) returns the SGR parameters of a cell ("" for
// none). Cells are measured in runes.
func printTable(out io.Writer, cols []statusColumn, rows [][]string, opts statusOptions, color func(row, col int) string) {
	widths := make([]int, len(cols))
	shown := make([]bool, len(cols))
	index := map[string]int{}
	for i, c := range cols {
		shown[i], index[c.head] = true, i
		widths[i] = utf8.RuneCountInString(c.head)
		for _, r := range rows {
			widths[i] = max(widths[i], utf8.RuneCountInString(r[i]))
		}
	}
	total := func() int {
		n, w := 0, 0
		for i := range cols {
			if shown[i] {
				n++
				w += widths[i]
			}
		}
		return w + columnGap*max(0, n-1)
	}
	for _, step := range fitSteps {
		if opts.width <= 0 || total() <= opts.width {
			break
		}
		i, ok := index[step.head]
		if !ok || !shown[i] {
			continue
		}
		if step.trunc == 0 {
			shown[i] = false
			continue
		}
		// Only as much as needed, and never below trunc, the column's
		// min or its head.
		floor := max(step.trunc, cols[i].min, utf8.RuneCountInString(cols[i].head))
		widths[i] = min(widths[i], max(floor, widths[i]-(total()-opts.width)))
	}
	var b strings.Builder
	line := func(cells []string, row int) {
		b.Reset()
		last := -1
		for i := range cols {
			if shown[i] {
				last = i
			}
		}
		for i, cell := range cells {
			if !shown[i] {
				continue
			}
			cell = truncate(cell, widths[i])
			pad := widths[i] - utf8.RuneCountInString(cell)
			if sgr := ""; row >= 0 && color != nil {
				if sgr = color(row, i); sgr != "" {
					cell = "\x1b[" + sgr + "m" + cell + "\x1b[0m"
				}
			}
			b.WriteString(cell)
			if i != last {
				b.WriteString(strings.Repeat(" ", pad+columnGap))
			}
		}
		fmt.Fprintln(out, b.String())
	}
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.head
	}
	line(heads, -1)
	for i, r := range rows {
		line(r, i)
	}
}

// truncate cuts s to at most n runes, the last one "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// SGR parameters of the states' colours.
const (
	sgrRed    = "31"
	sgrYellow = "33"
	sgrGreen  = "32"
)

// stateColor is the colour of a state in the status table: red for failing
// and gave_up, yellow for restarting, verifying and paused, green for
// healthy.
func stateColor(state string) string {
	switch state {
	case "failing", "gave_up":
		return sgrRed
	case "restarting", "verifying", "paused":
		return sgrYellow
	case "healthy":
		return sgrGreen
	}
	return ""
}
