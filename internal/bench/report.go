package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
)

// Machine describes where a run happened.
type Machine struct {
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	MemGiB  int    `json:"mem_gib"`
	Kernel  string `json:"kernel"`
	FS      string `json:"fs"`
	GoVer   string `json:"go"`
	OS      string `json:"os"`
	Version string `json:"teatree,omitempty"`
}

func readMachine(dir string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVer: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.MemGiB = int((uint64(si.Totalram)*uint64(si.Unit) + 1<<29) >> 30)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.FS = fsType(dir)
	return m
}

// fsType names the file system of dir from /proc/self/mounts (the longest
// mount point that contains it).
func fsType(dir string) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return ""
	}
	best, typ := "", ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		if (dir == f[1] || strings.HasPrefix(dir, strings.TrimSuffix(f[1], "/")+"/")) && len(f[1]) > len(best) {
			best, typ = f[1], f[2]
		}
	}
	return typ
}

// human prints a figure with about three significant digits.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func ms(v float64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", v)
}

// notified is a result's notification count for the tables ("" when
// the scenario sends no mutations).
func notified(r Result) string {
	if r.Notifications == nil {
		return ""
	}
	return r.Notifications.String()
}

func verdict(r Result) string {
	switch {
	case r.Met == nil:
		return ""
	case *r.Met:
		return "met"
	default:
		return "MISSED"
	}
}

// Table is the report as an aligned text table.
func (rep *Report) Table() string {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\tvariant\tteatree\tbaseline\tratio\tunit\tp50 ms\tp99 ms\tp999 ms\tpeak RSS MiB\tnotifications\ttarget\t")
	for _, r := range rep.Results {
		base, ratio := "", ""
		if r.Baseline > 0 {
			base, ratio = human(r.Baseline)+" ("+r.BaselineName+")", fmt.Sprintf("%.2f×", r.Ratio)
		}
		target := r.Target
		if v := verdict(r); v != "" {
			target += ": " + v
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t\n", r.Scenario, r.Variant, human(r.Teatree), base, ratio, r.Unit,
			ms(r.P50), ms(r.P99), ms(r.P999), r.PeakRSS, notified(r), target)
	}
	w.Flush()
	for _, e := range rep.Errors {
		fmt.Fprintf(&sb, "FAILED %s\n", e)
	}
	return sb.String()
}

// Markdown is the report as a Markdown document.
func (rep *Report) Markdown() string { return "# teatree benchmark report\n\n" + rep.markdownBody() }

// markdownBody is the report without its title: the machine, the table
// and its notes.
func (rep *Report) markdownBody() string {
	var sb strings.Builder
	kind := "default"
	if rep.Quick {
		kind = "quick"
	}
	m := rep.Machine
	fmt.Fprintf(&sb, "%s run of %s, took %s.\n\n", kind, rep.Started.Format("2006-01-02 15:04 UTC"), rep.Duration)
	fmt.Fprintf(&sb, "Machine: %s, %d cores, %d GiB, Linux %s, %s, %s, %s.\n\n", m.CPU, m.Cores, m.MemGiB, m.Kernel, m.FS, m.GoVer, m.OS)
	sb.WriteString("How to read: each row runs teatree and its baseline minutes apart in the same run on the same machine; " +
		"read the ratio (teatree ÷ baseline), not the absolute figures. Notifications are the terminal notifications " +
		"received of the requests sent; every mutation scenario must have exactly one per request.\n\n")
	sb.WriteString("| scenario | variant | teatree | baseline (same run) | ratio | unit | p50 ms | p99 ms | p999 ms | peak RSS MiB | notifications | target |\n")
	sb.WriteString("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|\n")
	for _, r := range rep.Results {
		base, ratio := "—", "—"
		if r.Baseline > 0 {
			base, ratio = human(r.Baseline)+" ("+r.BaselineName+")", fmt.Sprintf("%.2f×", r.Ratio)
		}
		target := r.Target
		if v := verdict(r); v != "" {
			target += ": **" + v + "**"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %s |\n", r.Scenario, r.Variant, human(r.Teatree), base, ratio,
			r.Unit, ms(r.P50), ms(r.P99), ms(r.P999), r.PeakRSS, notified(r), target)
	}
	var notes []string
	for _, r := range rep.Results {
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("- %s %s: %s", r.Scenario, r.Variant, r.Note))
		}
	}
	if len(notes) > 0 {
		sb.WriteString("\nNotes:\n\n" + strings.Join(notes, "\n") + "\n")
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(&sb, "\n**Failed:** %s\n", e)
	}
	return sb.String()
}

// docsSection is the heading under which docs/benchmarks.md carries the
// report of the last full run; the page's text above it is kept.
const docsSection = "## Last full run"

// writeDocs puts the report in the page at path: in place of its last-run
// section, or as the whole page when it has none.
func (rep *Report) writeDocs(path string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	page := rep.Markdown()
	if before, _, ok := strings.Cut(string(old), "\n"+docsSection+"\n"); ok {
		page = before + "\n" + docsSection + "\n\n" + rep.markdownBody()
	}
	return os.WriteFile(path, []byte(page), 0o644)
}

// Benchstat is the report in Go's benchmark format, one line per figure,
// so that two runs compare with `benchstat old.txt new.txt`.
func (rep *Report) Benchstat() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "goos: linux\ngoarch: %s\ncpu: %s\npkg: github.com/teatree-dev/teatree/internal/bench\n", runtime.GOARCH, rep.Machine.CPU)
	for _, r := range rep.Results {
		name := "Benchmark" + camel(r.Scenario)
		if r.Variant != "" {
			name += "/" + slug(r.Variant)
		}
		unit := strings.ReplaceAll(r.Unit, " ", "-")
		fmt.Fprintf(&sb, "%s/teatree 1 %g %s", name, r.Teatree, unit)
		if r.P50 > 0 {
			fmt.Fprintf(&sb, " %g p50-ms %g p99-ms", r.P50, r.P99)
		}
		sb.WriteString("\n")
		if r.Baseline > 0 {
			fmt.Fprintf(&sb, "%s/baseline 1 %g %s\n", name, r.Baseline, unit)
		}
	}
	return sb.String()
}

func camel(s string) string {
	parts := strings.FieldsFunc(s, func(c rune) bool { return c == '-' || c == ' ' })
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, "")
}
