// Command report turns the numbers the bench scripts leave in bench/out
// into BENCHMARKS.md and an SVG chart of the ratio tables.
//
//	go run ./bench/report [-out bench/out] [-md BENCHMARKS.md] [-svg docs/benchmarks.svg]
//
// # Input
//
// Each area script writes bench/out/AREA.tsv, tab-separated, one line per
// measurement:
//
//	# title: mount: the read-only view (issue 3)
//	# baseline: native
//	# note: any text, shown under the title
//	ROW	COMMAND	VALUE	UNIT	GOAL	MET
//
// VALUE is a median (UNIT "s" for seconds, or "B", "MiB/s", ...). GOAL is
// the goal text for that command in that row and MET "met" or "missed";
// both may be empty. Ratios are taken against the row's baseline command:
// the one "# baseline:" names when the row has it, else the row's first.
// Lines of one row stay together in the table, in file order.
//
// An area without a .tsv is reported from bench/out/AREA.md verbatim (no
// ratios in the chart); ldd falls back to hyperfine's JSON in bench/out.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// measure is one line of an area's TSV.
type measure struct {
	row, cmd   string
	value      float64
	unit       string
	goal, met  string
	sourceLine int
}

// area is one benchmark area: its rows in order.
type area struct {
	name, title string
	baseline    string
	notes       []string
	rows        []string
	byRow       map[string][]measure
	verbatim    string // the area's markdown, when there are no numbers
}

func main() {
	out := flag.String("out", "bench/out", "directory the bench scripts write to")
	md := flag.String("md", "BENCHMARKS.md", "markdown report to write")
	svg := flag.String("svg", "", "SVG chart to write (default OUT/ratios.svg)")
	areasFlag := flag.String("areas", "ldd,trace,mount,freeze,learn,scale", "areas in report order; others found in OUT follow")
	flag.Parse()
	if *svg == "" {
		*svg = filepath.Join(*out, "ratios.svg")
	}
	if err := run(*out, *md, *svg, strings.Split(*areasFlag, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "bench report:", err)
		os.Exit(1)
	}
}

func run(out, mdPath, svgPath string, order []string) error {
	names := discover(out, order, strings.TrimSuffix(filepath.Base(mdPath), ".md"))
	if len(names) == 0 {
		return fmt.Errorf("no results in %s: run bench/run.sh first", out)
	}
	var areas []*area
	for _, n := range names {
		a, err := load(out, n)
		if err != nil {
			return err
		}
		if a != nil {
			areas = append(areas, a)
		}
	}
	if err := writeAtomic(mdPath, func(w io.Writer) error { return writeMarkdown(w, areas, mdPath, svgPath) }); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(svgPath), 0o755); err != nil {
		return err
	}
	return writeAtomic(svgPath, func(w io.Writer) error { return writeSVG(w, areas) })
}

// discover lists the areas with results in out: the known order first.
func discover(out string, order []string, skip string) []string {
	seen := map[string]bool{}
	var names []string
	has := func(n string) bool {
		for _, ext := range []string{".tsv", ".md"} {
			if _, err := os.Stat(filepath.Join(out, n+ext)); err == nil {
				return true
			}
		}
		return false
	}
	for _, n := range order {
		if n != "" && !seen[n] && has(n) {
			seen[n] = true
			names = append(names, n)
		}
	}
	ents, _ := os.ReadDir(out)
	var rest []string
	for _, e := range ents {
		n, ext := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name())), filepath.Ext(e.Name())
		if (ext == ".tsv" || ext == ".md") && n != "report" && n != skip && !seen[n] {
			seen[n] = true
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// load reads one area: its TSV, else ldd's JSON, else its markdown.
func load(out, name string) (*area, error) {
	a := &area{name: name, title: name, byRow: map[string][]measure{}}
	f, err := os.Open(filepath.Join(out, name+".tsv"))
	switch {
	case err == nil:
		defer f.Close()
		return a, parseTSV(f, filepath.Join(out, name+".tsv"), a)
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	if name == "ldd" {
		if ok, err := loadHyperfine(a, filepath.Join(out, "ldd-fast.json"), filepath.Join(out, "ldd-loops.json")); err != nil || ok {
			return a, err
		}
	}
	b, err := os.ReadFile(filepath.Join(out, name+".md"))
	if err != nil {
		return nil, err
	}
	a.verbatim = string(b)
	return a, nil
}

// parseTSV reads an area's TSV; errors name the file and line.
func parseTSV(r io.Reader, file string, a *area) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if c, ok := strings.CutPrefix(line, "#"); ok {
			k, v, _ := strings.Cut(strings.TrimSpace(c), ":")
			v = strings.TrimSpace(v)
			switch k {
			case "title":
				a.title = v
			case "baseline":
				a.baseline = v
			case "note":
				a.notes = append(a.notes, v)
			}
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 3 {
			return fmt.Errorf("%s:%d: want ROW, COMMAND, VALUE[, UNIT, GOAL, MET], got %d fields", file, n, len(f))
		}
		for len(f) < 6 {
			f = append(f, "")
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(f[2]), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s:%d: value %q is not a number", file, n, f[2])
		}
		m := measure{row: f[0], cmd: f[1], value: v, unit: f[3], goal: f[4], met: strings.ToLower(strings.TrimSpace(f[5])), sourceLine: n}
		if _, ok := a.byRow[m.row]; !ok {
			a.rows = append(a.rows, m.row)
		}
		a.byRow[m.row] = append(a.byRow[m.row], m)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(a.rows) == 0 {
		return fmt.Errorf("%s: no measurements", file)
	}
	return nil
}

// loadHyperfine reads hyperfine --export-json files into one row.
func loadHyperfine(a *area, files ...string) (bool, error) {
	var res []measure
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		var j struct {
			Results []struct {
				Command string  `json:"command"`
				Median  float64 `json:"median"`
			} `json:"results"`
		}
		if err := json.Unmarshal(b, &j); err != nil {
			return false, fmt.Errorf("%s: %w", f, err)
		}
		for _, r := range j.Results {
			res = append(res, measure{row: "closure of /usr/bin", cmd: r.Command, value: r.Median, unit: "s"})
		}
	}
	if len(res) == 0 {
		return false, nil
	}
	a.title = "ldd: the static closure (issue 2)"
	a.notes = append(a.notes, "From hyperfine's JSON; the goal (vzfs at or below 1.0x libtree) is marked here.")
	for i, m := range res {
		if strings.HasPrefix(m.cmd, "libtree") {
			a.baseline = m.cmd
		}
		if strings.HasPrefix(m.cmd, "vzfs") {
			res[i].goal = "<= 1.0x libtree"
		}
	}
	for i, m := range res {
		if res[i].goal != "" {
			for _, b := range res {
				if b.cmd == a.baseline {
					res[i].met = map[bool]string{true: "met", false: "missed"}[m.value <= b.value]
				}
			}
		}
	}
	a.rows = []string{res[0].row}
	a.byRow[res[0].row] = res
	return true, nil
}

// baselineOf returns the measure ratios of row are taken against.
func (a *area) baselineOf(row string) measure {
	ms := a.byRow[row]
	for _, m := range ms {
		if m.cmd == a.baseline {
			return m
		}
	}
	return ms[0]
}

// commands returns the area's commands in order of first appearance.
func (a *area) commands() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range a.rows {
		for _, m := range a.byRow[r] {
			if !seen[m.cmd] {
				seen[m.cmd] = true
				out = append(out, m.cmd)
			}
		}
	}
	return out
}

func fmtValue(v float64, unit string) string {
	switch unit {
	case "s":
		switch {
		case v >= 10:
			return fmt.Sprintf("%.2f s", v)
		case v >= 0.001:
			return fmt.Sprintf("%.1f ms", v*1000)
		default:
			return fmt.Sprintf("%.0f µs", v*1e6)
		}
	case "":
		return strconv.FormatFloat(v, 'g', 4, 64)
	default:
		return strconv.FormatFloat(v, 'g', 4, 64) + " " + unit
	}
}

// mdCell escapes what would break a table cell.
func mdCell(s string) string { return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s) }

func writeMarkdown(w io.Writer, areas []*area, mdPath, svgPath string) error {
	var u unix.Utsname
	_ = unix.Uname(&u)
	host := func(b []byte) string { return strings.TrimRight(string(b), "\x00") }
	fmt.Fprintf(w, "# vzfs benchmarks\n\n")
	fmt.Fprintf(w, "Generated by `make bench` (bench/run.sh, then `go run ./bench/report`) on %s: %d cores, Linux %s %s.\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), host(u.Release[:]), host(u.Machine[:]))
	fmt.Fprintf(w, "Every table is one run with vzfs, the native baseline and each peer side by side; values are medians.\n")
	fmt.Fprintf(w, "Ratios are to the row's baseline (named in the header). Rows that miss their goal stay, marked **missed**.\n\n")
	if rel, err := filepath.Rel(filepath.Dir(mdPath), svgPath); err == nil {
		fmt.Fprintf(w, "![ratios to the baseline, log scale](%s)\n\n", filepath.ToSlash(rel))
	}
	for _, a := range areas {
		fmt.Fprintf(w, "## %s\n\n", a.title)
		if a.verbatim != "" {
			body := a.verbatim
			// The area's own heading is ours now.
			if strings.HasPrefix(body, "## ") {
				if i := strings.IndexByte(body, '\n'); i >= 0 {
					body = strings.TrimLeft(body[i+1:], "\n")
				}
			}
			fmt.Fprintf(w, "%s\n(no bench/out/%s.tsv: this table is the script's own, and is not in the chart)\n\n", strings.TrimRight(body, "\n"), a.name)
			continue
		}
		for _, n := range a.notes {
			fmt.Fprintf(w, "%s\n", n)
		}
		if len(a.notes) > 0 {
			fmt.Fprintln(w)
		}
		cmds := a.commands()
		hdr := []string{"row"}
		for _, c := range cmds {
			hdr = append(hdr, mdCell(c))
		}
		base := a.baseline
		if base == "" {
			base = "first column"
		}
		var ratioCmds []string
		for _, c := range cmds {
			if c != a.baseline {
				ratioCmds = append(ratioCmds, c)
			}
		}
		for _, c := range ratioCmds {
			hdr = append(hdr, mdCell(c)+" / "+mdCell(base))
		}
		hdr = append(hdr, "goal")
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(hdr, " | "), strings.Repeat("---|", len(hdr)))
		for _, r := range a.rows {
			by := map[string]measure{}
			for _, m := range a.byRow[r] {
				by[m.cmd] = m
			}
			b := a.baselineOf(r)
			cells := []string{mdCell(r)}
			for _, c := range cmds {
				if m, ok := by[c]; ok {
					cells = append(cells, fmtValue(m.value, m.unit))
				} else {
					cells = append(cells, "")
				}
			}
			for _, c := range ratioCmds {
				m, ok := by[c]
				if !ok || b.value == 0 || m.cmd == b.cmd {
					cells = append(cells, "")
					continue
				}
				if b.cmd != a.baseline && a.baseline != "" {
					// The row lacks the area's baseline: say what it is
					// relative to, the column header would mislead.
					cells = append(cells, fmt.Sprintf("%.3fx %s", m.value/b.value, mdCell(b.cmd)))
					continue
				}
				cells = append(cells, ratioText(m.value/b.value))
			}
			var goals []string
			for _, m := range a.byRow[r] {
				if m.goal == "" {
					continue
				}
				mark := m.met
				if mark != "met" {
					mark = "**missed**"
				}
				who := ""
				if len(a.byRow[r]) > 1 {
					who = m.cmd + " "
				}
				goals = append(goals, fmt.Sprintf("%s%s: %s", mdCell(who), mdCell(m.goal), mark))
			}
			cells = append(cells, strings.Join(goals, "; "))
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		}
		fmt.Fprintln(w)
	}
	return nil
}

// bar is one ratio in the chart.
type bar struct {
	label string
	ratio float64
	met   string // "met", "missed" or ""
}

// writeSVG draws every ratio (command / baseline) of every area as a
// horizontal bar on a log scale centred on 1x, grouped by area and row.
func writeSVG(w io.Writer, areas []*area) error {
	type group struct {
		title string
		bars  []bar
	}
	var groups []group
	for _, a := range areas {
		if a.verbatim != "" {
			continue
		}
		for _, r := range a.rows {
			b := a.baselineOf(r)
			if b.value <= 0 {
				continue
			}
			g := group{title: a.name + ": " + r + " (vs " + b.cmd + ")"}
			for _, m := range a.byRow[r] {
				if m.cmd == b.cmd || m.value <= 0 {
					continue
				}
				g.bars = append(g.bars, bar{label: m.cmd, ratio: m.value / b.value, met: m.met})
			}
			if len(g.bars) > 0 {
				groups = append(groups, g)
			}
		}
	}
	const (
		width, left, right = 960, 250, 90
		barH, gap, titleH  = 16, 4, 22
		top                = 50
	)
	lo, hi := 0.5, 2.0
	for _, g := range groups {
		for _, b := range g.bars {
			lo, hi = math.Min(lo, b.ratio), math.Max(hi, b.ratio)
		}
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	plotW := float64(width - left - right)
	x := func(r float64) float64 {
		return float64(left) + plotW*(math.Log10(r)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	h := top + 30
	for _, g := range groups {
		h += titleH + len(g.bars)*(barH+gap) + 6
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, h, width, h)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="10" y="22" font-size="16" font-weight="bold">vzfs benchmarks: time (or size) relative to the baseline, log scale; shorter is better</text>`+"\n")
	fmt.Fprintf(w, `<text x="10" y="40" fill="#555">%s, %d cores. Green: goal met, red: goal missed, grey: no goal for this command.</text>`+"\n", time.Now().UTC().Format("2006-01-02"), runtime.NumCPU())
	// Decade grid lines and the 1x line.
	for d := lo; d <= hi*1.0001; d *= 10 {
		gx := x(d)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", gx, top, gx, h-20)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%gx</text>`+"\n", gx, h-6, d)
	}
	fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000" stroke-width="1.5"/>`+"\n", x(1), top, x(1), h-20)
	y := top
	for _, g := range groups {
		y += titleH
		fmt.Fprintf(w, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y-6, xmlText(g.title))
		for _, b := range g.bars {
			color := "#999"
			switch b.met {
			case "met":
				color = "#2a9d4b"
			case "missed":
				color = "#d1495b"
			}
			x0, x1 := x(1), x(b.ratio)
			if x1 < x0 {
				x0, x1 = x1, x0
			}
			fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-6, y+barH-4, xmlText(truncate(b.label, 38)))
			fmt.Fprintf(w, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, y, math.Max(x1-x0, 1), barH, color)
			fmt.Fprintf(w, `<text x="%.1f" y="%d">%s</text>`+"\n", math.Max(x(b.ratio), x(1))+4, y+barH-4, ratioText(b.ratio))
			y += barH + gap
		}
		y += 6
	}
	fmt.Fprintln(w, "</svg>")
	return nil
}

// xmlText makes s safe as SVG text: valid UTF-8, no control characters
// XML forbids, markup escaped.
func xmlText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0xFFFE || r == 0xFFFF {
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return html.EscapeString(s)
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// writeAtomic writes name through a temporary file beside it, so a failed
// run leaves the previous report.
func writeAtomic(name string, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// ratioText prints a ratio with two decimals, or with two significant
// digits below 0.01, where two decimals would print a real 0.003x as 0.00x.
func ratioText(r float64) string {
	if r > 0 && r < 0.01 {
		return fmt.Sprintf("%.2gx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}
