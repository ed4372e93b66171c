package fs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// Learner is what a view in learn mode (MountOptions.Learn) reports to.
// The server calls it from lookups, concurrently.
type Learner interface {
	// Learn records host path p, which the view is about to serve. The
	// lookup is answered only after Learn returns nil, so what Learn has
	// recorded must survive a kill of the daemon; an error fails the
	// lookup, and p is not served.
	Learn(p string) error
	// Miss notes a looked-up path that neither the spec nor the host has.
	Miss(p string)
}

// neverLearned are host trees a learning view neither serves nor records:
// kernel filesystems and scratch space that a sandbox mounts its own of,
// and whose host contents say nothing about what a program needs.
var neverLearned = []string{"/proc", "/sys", "/dev", "/run", "/tmp"}

// NeverLearned reports whether learn mode refuses host path p: it lies in
// /proc, /sys, /dev, /run or /tmp.
func NeverLearned(p string) bool {
	for _, d := range neverLearned {
		if p == d || (strings.HasPrefix(p, d) && len(p) > len(d) && p[len(d)] == '/') {
			return true
		}
	}
	return false
}

// LockedError reports a spec that another learning view holds.
type LockedError struct {
	Spec string
	Lock string
	// Pid is the holder's pid as written in the lock file, or 0.
	Pid int
}

func (e *LockedError) Error() string {
	who := "another vzfs"
	if e.Pid > 0 {
		who += fmt.Sprintf(" (pid %d)", e.Pid)
	}
	return fmt.Sprintf("spec %s is being learned by %s: %s is locked", e.Spec, who, e.Lock)
}

// SpecLearner is the Learner that appends to a spec file. It holds the
// spec's lock file (SPEC.lock) from NewSpecLearner until Close or Release,
// so two learning views never append to one spec.
//
// # Durability
//
// Each learned path is appended as one write(2) of its whole line before
// Learn returns. A write cut short (a full disk) is cut back off with
// ftruncate, so the file never holds half a line that a later append would
// run into. Nothing is fsynced per line: the page cache survives a killed
// daemon, which is what a program that was answered relies on. Close
// rewrites the spec sorted and deduplicated with spec.WriteFile (temporary
// file, fsync, rename, fsync of the directory).
type SpecLearner struct {
	specPath string
	lockPath string
	lock     *os.File

	mu      sync.Mutex
	f       *os.File // the spec, O_APPEND; nil once closed
	size    int64    // where the next line starts; a failed write is cut back to it
	seen    map[string]struct{}
	learned []string

	missPath string
	miss     *os.File
	missSeen map[string]struct{}
	misses   int
	missErr  error
}

// maxMissSeen bounds the set used to write each miss once: past it,
// misses are still logged, possibly more than once.
const maxMissSeen = 1 << 16

// NewSpecLearner takes the lock on specPath (specPath + ".lock") and opens
// the spec for appending, and missLog, if not "", for the misses. It
// returns a *LockedError when another learner holds the spec.
func NewSpecLearner(specPath, missLog string) (*SpecLearner, error) {
	abs, err := filepath.Abs(specPath)
	if err != nil {
		return nil, err
	}
	// A spec the user reached through a symlink is the file they meant;
	// resolve it once, then open nothing through a link, so that nobody
	// who can write to the spec's directory can redirect root's writes.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	l := &SpecLearner{specPath: abs, lockPath: abs + ".lock", seen: map[string]struct{}{}, missSeen: map[string]struct{}{}}
	if l.lock, err = lockFile(l.lockPath, abs); err != nil {
		return nil, err
	}
	fail := func(err error) (*SpecLearner, error) {
		l.Release()
		return nil, err
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_APPEND|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fail(fmt.Errorf("opening spec for learning: %w", err))
	}
	l.f = f
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("opening spec for learning: %w", err))
	}
	l.size = fi.Size()
	if l.size > 0 {
		// A final line without its newline (a hand edit, or an append
		// cut by a crash) must not swallow the first learned path.
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, l.size-1); err != nil {
			return fail(fmt.Errorf("reading %s: %w", abs, err))
		}
		if last[0] != '\n' {
			if err := l.appendLocked("\n"); err != nil {
				return fail(err)
			}
		}
	}
	if missLog != "" {
		if l.missPath, err = filepath.Abs(missLog); err != nil {
			return fail(err)
		}
		l.miss, err = os.OpenFile(l.missPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW, 0o644)
		if err != nil {
			return fail(fmt.Errorf("opening the misses log: %w", err))
		}
	}
	return l, nil
}

// lockFile creates and flocks lockPath. A lock file removed by its holder
// between our open and our flock would leave us holding a lock on a file
// nobody else can see, so the locked file is checked to still be the one
// at lockPath.
func lockFile(lockPath, specPath string) (*os.File, error) {
	for range 10 {
		// O_NOFOLLOW, and only a plain file with one link: the pid is
		// written into it, and a planted symlink or hard link would make
		// root overwrite whatever it points at.
		f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o644)
		if err != nil {
			return nil, fmt.Errorf("creating the lock file of spec %s: %w", specPath, err)
		}
		var fst unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &fst); err != nil || fst.Mode&unix.S_IFMT != unix.S_IFREG || fst.Nlink != 1 {
			f.Close()
			return nil, fmt.Errorf("lock file %s of spec %s is not a plain file of its own; remove it if no learner runs", lockPath, specPath)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, &LockedError{Spec: specPath, Lock: lockPath, Pid: readPid(lockPath)}
			}
			return nil, fmt.Errorf("locking %s: %w", lockPath, err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(lockPath, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			// The pid is for the error message of the next one only.
			_ = f.Truncate(0)
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("locking %s: the lock file keeps being replaced", lockPath)
}

func readPid(lockPath string) int {
	b := make([]byte, 32)
	f, err := os.Open(lockPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	n, _ := f.Read(b)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Spec returns the absolute path of the spec being learned.
func (l *SpecLearner) Spec() string { return l.specPath }

// Learn appends p to the spec, once per learner.
func (l *SpecLearner) Learn(p string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[p]; ok {
		return nil
	}
	if l.f == nil {
		return fmt.Errorf("recording %s: spec %s is closed", p, l.specPath)
	}
	// A name no spec line can hold (a file called "**" reads back as a
	// subtree) is refused, and so not served.
	if err := spec.Validate(p); err != nil {
		return fmt.Errorf("recording %s: %w", p, err)
	}
	if err := l.appendLocked(spec.Entry{Path: p}.String() + "\n"); err != nil {
		return fmt.Errorf("recording %s: %w", p, err)
	}
	l.seen[p] = struct{}{}
	l.learned = append(l.learned, p)
	return nil
}

// appendLocked writes line with one write(2). A short or failed write is
// cut back off, so the spec ends in a whole line either way.
func (l *SpecLearner) appendLocked(line string) error {
	var n int
	var err error
	for {
		n, err = unix.Write(int(l.f.Fd()), []byte(line))
		if err != unix.EINTR {
			break
		}
	}
	if err == nil && n == len(line) {
		l.size += int64(n)
		return nil
	}
	if err == nil {
		// Only a full disk or quota cuts a regular file's write short.
		err = unix.ENOSPC
	}
	if terr := l.f.Truncate(l.size); terr != nil {
		return fmt.Errorf("appending to %s: %w (and cutting the partial line off: %v)", l.specPath, err, terr)
	}
	return fmt.Errorf("appending to %s: %w", l.specPath, err)
}

// Miss writes p to the misses log, once while the set of misses seen is
// small enough to keep.
func (l *SpecLearner) Miss(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.missSeen[p]; ok {
		return
	}
	if len(l.missSeen) < maxMissSeen {
		l.missSeen[p] = struct{}{}
	}
	l.misses++
	if l.miss == nil {
		return
	}
	if _, err := l.miss.WriteString(spec.Entry{Path: p}.String() + "\n"); err != nil && l.missErr == nil {
		l.missErr = fmt.Errorf("writing the misses log %s: %w", l.missPath, err)
	}
}

// LearnReport sums up a learning session.
type LearnReport struct {
	// Learned counts the paths appended to the spec.
	Learned int
	// Misses counts the distinct paths looked up that exist nowhere.
	Misses int
	// TopDirs are the directories holding the most learned paths, most
	// first.
	TopDirs []DirCount
}

// DirCount is a directory and how many learned paths lie directly in it.
type DirCount struct {
	Dir   string
	Count int
}

// Report sums up what was learned so far; top bounds TopDirs.
func (l *SpecLearner) Report(top int) LearnReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := LearnReport{Learned: len(l.learned), Misses: l.misses}
	counts := map[string]int{}
	for _, p := range l.learned {
		counts[parentOf(p)]++
	}
	for d, c := range counts {
		r.TopDirs = append(r.TopDirs, DirCount{d, c})
	}
	sort.Slice(r.TopDirs, func(i, j int) bool {
		a, b := r.TopDirs[i], r.TopDirs[j]
		return a.Count > b.Count || a.Count == b.Count && a.Dir < b.Dir
	})
	if len(r.TopDirs) > top {
		r.TopDirs = r.TopDirs[:top]
	}
	return r
}

// LogReport logs Report(5) at info level, and a misses log that could not
// be written as a warning.
func (l *SpecLearner) LogReport(log *zap.Logger) {
	r := l.Report(5)
	var top []string
	for _, d := range r.TopDirs {
		top = append(top, fmt.Sprintf("%s (%d)", d.Dir, d.Count))
	}
	log.Info("learned", zap.String("spec", l.specPath), zap.Int("entries", r.Learned), zap.Int("misses", r.Misses),
		zap.String("top_dirs", strings.Join(top, ", ")))
	l.mu.Lock()
	err := l.missErr
	l.mu.Unlock()
	if err != nil {
		log.Warn("misses log incomplete", zap.Error(err))
	}
}

// Close stops learning, rewrites the spec sorted and deduplicated,
// atomically, and releases the lock. Learn fails from here on. When the
// spec cannot be rewritten (it no longer parses, the disk is full) it is
// left as appended, which is a valid spec, and the error says why.
func (l *SpecLearner) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err == nil {
		var s *spec.Spec
		if s, err = spec.ParseFile(l.specPath); err == nil {
			err = s.WriteFile(l.specPath)
		}
	}
	l.releaseLocked()
	if err != nil {
		return fmt.Errorf("rewriting the learned spec: %w", err)
	}
	return nil
}

// Release stops learning and releases the lock, leaving the spec as
// appended: for a view that never got mounted.
func (l *SpecLearner) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	l.releaseLocked()
}

func (l *SpecLearner) releaseLocked() {
	if l.miss != nil {
		l.miss.Close()
		l.miss = nil
	}
	if l.lock != nil {
		// Removed while still held: whoever opens it after us and locks
		// the removed file finds it gone from lockPath and tries again.
		os.Remove(l.lockPath)
		l.lock.Close()
		l.lock = nil
	}
}
