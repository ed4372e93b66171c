package tracer

import (
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// finish turns the recorded events into a Trace, applying the exclusions,
// the ".." rule and the created-file rule of the package doc.
func (p *parser) finish() *Trace {
	t := p.t
	keep := map[string]bool{}
	created := map[string]bool{}
	vanished := map[string]bool{}
	execs := map[string]bool{}
	realDirs := map[string]string{}

	decide := func(abs string, state uint8) bool {
		if p.excluded(abs) || keep[abs] || created[abs] || vanished[abs] {
			return keep[abs]
		}
		if state == stCreated || p.underCreated(abs) {
			created[abs] = true
			return false
		}
		if p.o.Host {
			// One statx answers both questions: does it exist, and was
			// it born after the run started.
			b, exists, hasBirth := birth(abs)
			if !exists {
				vanished[abs] = true
				return false
			}
			if state == stMaybe && !p.o.Started.IsZero() && hasBirth && b.After(p.o.Started) {
				created[abs] = true
				return false
			}
		}
		keep[abs] = true
		return true
	}

	// Sorted keys make the ".." walks, and so the logs, deterministic.
	keys := make([]string, 0, len(p.paths))
	for k, pi := range p.paths {
		if pi.ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, abs := range keys {
		pi := p.paths[abs]
		phys, via := p.physical(abs, realDirs)
		for _, d := range via {
			st := uint8(stExisted)
			if dpi := p.paths[d]; dpi != nil && dpi.state != stUnknown {
				st = dpi.state
			}
			decide(d, st)
		}
		if decide(phys, pi.state) && pi.exec {
			execs[phys] = true
		}
	}

	misses := map[string]bool{}
	for abs, pi := range p.paths {
		if !pi.miss || pi.ok {
			continue
		}
		m := path.Clean(abs)
		if !p.excluded(m) && !keep[m] {
			misses[m] = true
		}
	}
	t.Paths = sortedKeys(keep)
	t.Execs = sortedKeys(execs)
	t.Created = sortedKeys(created)
	t.Vanished = sortedKeys(vanished)
	t.Misses = sortedKeys(misses)
	if len(t.Vanished) > 0 {
		p.log.Warn("paths the run used no longer exist; leaving them out",
			zap.Int("count", len(t.Vanished)), zap.Strings("first", first(t.Vanished, 5)))
	}
	if t.Truncated > 0 {
		p.log.Warn("strace truncated some paths; they are missing from the trace", zap.Int("count", t.Truncated))
	}
	return &t
}

// underCreated reports whether some directory above abs was created by
// the run; then abs cannot have existed before it.
func (p *parser) underCreated(abs string) bool {
	if p.created == 0 {
		return false
	}
	for i := strings.LastIndexByte(abs, '/'); i > 0; i = strings.LastIndexByte(abs[:i], '/') {
		if pi := p.paths[abs[:i]]; pi != nil && pi.ok && pi.state == stCreated {
			return true
		}
	}
	return false
}

// physical resolves the ".." components of abs. It returns the path the
// kernel reached and the directories it walked through before each "..".
// With Host set, a symlinked directory before ".." is followed first, as
// the kernel does; otherwise ".." removes the previous component.
func (p *parser) physical(abs string, memo map[string]string) (string, []string) {
	if !strings.Contains(abs, "/..") {
		return abs, nil
	}
	var via []string
	cur := "/"
	for _, c := range strings.Split(abs[1:], "/") {
		switch c {
		case "", ".":
		case "..":
			if cur == "/" {
				continue
			}
			via = append(via, cur)
			if p.o.Host {
				r, ok := memo[cur]
				if !ok {
					if e, err := filepath.EvalSymlinks(cur); err == nil {
						r = e
					} else {
						r = cur
					}
					memo[cur] = r
				}
				cur = r
			}
			cur = path.Dir(cur)
		default:
			cur = path.Join(cur, c)
		}
	}
	return cur, via
}

// birth returns the birth time of name, if its file system records one,
// and whether name exists at all (a symlink is not followed).
func birth(name string) (t time.Time, exists, ok bool) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &st); err != nil {
		if err == unix.ENOSYS {
			// Before Linux 4.11: no statx, and so no birth time.
			_, err := os.Lstat(name)
			return time.Time{}, err == nil, false
		}
		return time.Time{}, false, false
	}
	if st.Mask&unix.STATX_BTIME == 0 {
		return time.Time{}, true, false
	}
	return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec)), true, true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
