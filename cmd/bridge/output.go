package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xmtpbridge/bridge/internal/apiclient"
)

// printer writes a client command's output: aligned tables and fields for
// people, JSON with --json. Colour only goes to a terminal, and never when
// NO_COLOR is set or TERM is dumb.
type printer struct {
	w     io.Writer
	json  bool
	tty   bool
	color bool
}

func newPrinter(inv *invocation, asJSON bool) *printer {
	tty := inv.isTerminal(inv.stdout)
	_, noColor := inv.lookup("NO_COLOR")
	return &printer{w: inv.stdout, json: asJSON, tty: tty, color: tty && !noColor && inv.env("TERM") != "dumb"}
}

// JSON writes v as indented JSON.
func (p *printer) JSON(v any) error {
	enc := json.NewEncoder(p.w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Line writes one line for people.
func (p *printer) Line(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

// ANSI colours. Every code is five bytes, so a column whose cells all
// carry one stays aligned in a tabwriter, which counts bytes.
const (
	ansiRed     = "\x1b[31m"
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiDefault = "\x1b[39m"
)

// statusColour is the colour of a bridge or delivery status.
func statusColour(status string) string {
	switch status {
	case "active", "succeeded", "live", "online", "sent":
		return ansiGreen
	case "failed", "pending", "disabled", "queued":
		return ansiYellow
	case "dead", "endpoint_gone", "revoked", "offline":
		return ansiRed
	}
	return ansiDefault
}

// paint colours s when the printer colours.
func (p *printer) paint(s, colour string) string {
	if !p.color {
		return s
	}
	return colour + s + ansiDefault
}

// table is an aligned table; the cells of statusCol are coloured by
// status.
type table struct {
	p         *printer
	tw        *tabwriter.Writer
	statusCol int
}

// Table starts a table with the given headers; statusCol is the index of
// the status column, or -1.
func (p *printer) Table(statusCol int, headers ...string) *table {
	t := &table{p: p, tw: tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0), statusCol: statusCol}
	t.write(headers, true)
	return t
}

// Row adds a row; the cells are made printable.
func (t *table) Row(cells ...string) { t.write(cells, false) }

func (t *table) write(cells []string, header bool) {
	out := make([]string, len(cells))
	for i, c := range cells {
		c = apiclient.Printable(strings.ReplaceAll(c, "\t", " "), 200)
		if c == "" {
			c = "-"
		}
		if i == t.statusCol {
			colour := ansiDefault
			if !header {
				colour = statusColour(c)
			}
			c = t.p.paint(c, colour)
		}
		out[i] = c
	}
	fmt.Fprintln(t.tw, strings.Join(out, "\t"))
}

// Flush writes the table out.
func (t *table) Flush() { t.tw.Flush() }

// Fields writes name: value pairs, aligned; a value of "" is left out.
func (p *printer) Fields(pairs ...string) {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		v := apiclient.Printable(pairs[i+1], 2000)
		if pairs[i] == "status" || pairs[i] == "live" {
			v = p.paint(v, statusColour(v))
		}
		fmt.Fprintf(tw, "%s:\t%s\n", pairs[i], v)
	}
	tw.Flush()
}

// progress is a progress bar on a terminal, and nothing elsewhere.
type progress struct {
	p     *printer
	label string
	total int
}

func (p *printer) Progress(label string, total int) *progress {
	return &progress{p: p, label: label, total: total}
}

// Set draws the bar at done of total.
func (g *progress) Set(done int) {
	if !g.p.tty || g.total == 0 {
		return
	}
	const width = 30
	filled := done * width / g.total
	fmt.Fprintf(g.p.w, "\r%s [%s%s] %d/%d", g.label, strings.Repeat("#", filled), strings.Repeat("-", width-filled), done, g.total)
}

// Done ends the bar's line.
func (g *progress) Done() {
	if g.p.tty && g.total > 0 {
		fmt.Fprintln(g.p.w)
	}
}

// when formats a time for people: UTC, to the second; zero is "".
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return when(*t)
}

// clip keeps at most n runes of s on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
