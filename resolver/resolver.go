// Package resolver finds, without running anything, every file a program
// needs: its ELF closure as ld.so would load it, the symlinks on the way,
// the interpreters of scripts, and runtime extras that are loaded with
// dlopen and so invisible in the ELF headers.
//
// # ELF closure
//
// The search follows glibc's elf/dl-load.c: for each DT_NEEDED name without
// a slash, the DT_RPATH of the loader chain (unless the object has
// DT_RUNPATH) and of the executable, LD_LIBRARY_PATH (only when
// Options.LibraryPath is set), the object's own DT_RUNPATH, ld.so.cache, then
// the default directories; the last two unless DF_1_NODEFLIB. Objects are
// reused by name, soname and file identity. A candidate of the wrong class
// or machine is skipped; a candidate that is not a valid ELF file stops the
// search with an error, as it stops ld.so. Programs whose interpreter is
// musl's follow musl's ldso/dynlink.c instead.
//
// # Symlink closure
//
// Every path in a result comes with every symlink met while resolving it,
// and the final file. Under Options.Root, absolute link targets restart at
// the root and ".." never climbs above it; nothing outside the root is read.
//
// # Concurrency
//
// A Resolver parses ld.so.cache once and memoizes stat results and parsed
// objects (by device and inode), so resolving many programs costs little
// more than resolving one. It is safe for concurrent use.
package resolver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// Options configure a Resolver.
type Options struct {
	// Root is the directory to resolve in, "" or "/" for the host.
	Root string
	// LibraryPath is searched like LD_LIBRARY_PATH, only when set.
	LibraryPath []string
	// With lists the runtime extras to add; nil adds none. Use
	// ParseExtras("") for the CLI's default, nss and base.
	With []Extra
	// HWCaps adds the glibc-hwcaps variants of each library (from the cache
	// and from hwcaps subdirectories) besides the baseline one.
	HWCaps bool
	// Path is the PATH used for bare names and "#!/usr/bin/env NAME";
	// empty means $PATH on the host root and a standard PATH under a Root.
	Path string
	// Log receives debug and warning messages; nil discards them.
	Log *zap.Logger
}

// DefaultPath is the PATH used inside a foreign root.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Resolver computes closures inside one root. Create it with New.
type Resolver struct {
	o    Options
	fs   *rootFS
	log  *zap.Logger
	path []string

	cache    map[string][]CacheEntry // by name, in file order
	hasCache bool

	objMu sync.Mutex
	objs  map[fileID]*object

	subMu   sync.Mutex
	subdirs map[subKey][]string

	defMu sync.Mutex
	defs  map[string][]*defHit // by name

	tmplMu    sync.Mutex
	templates map[tmplKey][]tmplEvent

	dirsMu   sync.Mutex
	dirsMemo map[dirsKey][]string

	extraMu   sync.Mutex
	extraMemo map[elfIdent]*partial

	onceEtc  sync.Once
	preload  []string
	nssNames []string
}

type fileID struct{ dev, ino uint64 }

type subKey struct{ dir, platform string }

// object is a parsed ELF file, memoized by file identity.
type object struct {
	info *elfInfo
	err  error
}

// New returns a Resolver for o.Root; it reads the root's ld.so.cache once.
func New(o Options) (*Resolver, error) {
	root := o.Root
	if root != "" && root != "/" {
		fi, err := os.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("root: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("root %s: not a directory", root)
		}
	}
	r := &Resolver{
		o:       o,
		fs:      newRootFS(root),
		log:     o.Log,
		cache:   map[string][]CacheEntry{},
		objs:    map[fileID]*object{},
		subdirs: map[subKey][]string{},
		defs:    map[string][]*defHit{},

		extraMemo: map[elfIdent]*partial{},
		dirsMemo:  map[dirsKey][]string{},
		templates: map[tmplKey][]tmplEvent{},
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	for _, d := range o.LibraryPath {
		if !strings.HasPrefix(d, "/") && !strings.Contains(d, "$") {
			return nil, fmt.Errorf("library path %q: not absolute", d)
		}
	}
	pl := o.Path
	if pl == "" {
		if r.fs.root == "" {
			pl = os.Getenv("PATH")
		}
		if pl == "" {
			pl = DefaultPath
		}
	}
	for _, d := range strings.Split(pl, ":") {
		// Relative PATH entries depend on a working directory we do not
		// have; the shell would search them, we cannot.
		if strings.HasPrefix(d, "/") {
			r.path = append(r.path, path.Clean(d))
		}
	}
	b, err := r.fs.readFile("/etc/ld.so.cache", maxCacheSize)
	switch {
	case err == nil:
		ents, err := ParseLDCache(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.fs.host("/etc/ld.so.cache"), err)
		}
		for _, e := range ents {
			r.cache[e.Name] = append(r.cache[e.Name], e)
		}
		r.hasCache = true
	case errors.Is(err, fs.ErrNotExist):
		r.log.Debug("no ld.so.cache in root", zap.String("root", root))
	default:
		var le *LinkError
		if !errors.As(err, &le) {
			return nil, fmt.Errorf("reading ld.so.cache: %w", err)
		}
		r.log.Warn("ld.so.cache unusable", zap.Error(err))
	}
	return r, nil
}

// Missing is a needed library that could not be found, or whose search
// stopped at an unusable file (Reason says which).
type Missing struct {
	Name     string   // the DT_NEEDED name or interpreter path
	NeededBy string   // the object needing it, as seen inside the root
	Searched []string // the directories searched, in order
	Reason   string   // set when the search stopped at a bad file
}

func (m Missing) String() string {
	s := fmt.Sprintf("%s needed by %s", m.Name, m.NeededBy)
	if m.Reason != "" {
		return s + ": " + m.Reason
	}
	if len(m.Searched) > 0 {
		return s + ": not found in " + strings.Join(m.Searched, ":")
	}
	return s + ": not found"
}

// Result is a closure: the spec, and what could not be resolved.
type Result struct {
	Spec *spec.Spec
	// Missing lists needed libraries that were not found.
	Missing []Missing
	// Problems lists inputs that do not exist, dangling or looping
	// symlinks, and scripts nested too deep.
	Problems []error

	why map[string]*reason
}

// reason is one link in the chain explaining why an entry is present.
type reason struct {
	label  string
	parent *reason
}

// Why returns the chain that brought path into the result, from the nearest
// cause out to the input, for example
// ["libpcre2-8.so.0", "libselinux.so.1", "/usr/bin/ls"]; nil if path is not
// in the result.
func (r *Result) Why(p string) []string {
	var out []string
	for w := r.why[p]; w != nil && len(out) < 64; w = w.parent {
		out = append(out, w.label)
	}
	return out
}

// Err returns nil, or an error listing every missing library and problem.
func (r *Result) Err() error {
	if len(r.Missing) == 0 && len(r.Problems) == 0 {
		return nil
	}
	var b strings.Builder
	n := len(r.Missing) + len(r.Problems)
	if n == 1 {
		b.WriteString("1 unresolved dependency:")
	} else {
		fmt.Fprintf(&b, "%d unresolved dependencies:", n)
	}
	for _, m := range r.Missing {
		b.WriteString("\n\t" + m.String())
	}
	for _, p := range r.Problems {
		b.WriteString("\n\t" + p.Error())
	}
	return errors.New(b.String())
}

// partial is what resolving one input produced; partials are merged in
// input order so results do not depend on scheduling.
type partial struct {
	items    []item
	missing  []Missing
	problems []error
	glibc    bool // a glibc program was resolved

	// seen, when set, is what earlier inputs resolved by the same worker
	// emitted. Workers take inputs in increasing order and the merge keeps
	// the first occurrence, so an entry seen here can never be the first:
	// dropping it changes nothing but the work. Most programs share most of
	// their libraries, so this drops most entries.
	seen *seenSet
}

// seenSet is one worker's record of emitted entries. Keys are paths:
// subtree entries, which are few, are not recorded.
type seenSet struct {
	entries map[string]struct{}
	// paths holds the paths whose addPath succeeded; all their entries
	// were emitted then.
	paths map[string]struct{}
}

func newSeenSet() *seenSet {
	return &seenSet{entries: make(map[string]struct{}, 256), paths: make(map[string]struct{}, 256)}
}

// item is one entry and why it is there, or, with shared set, all the
// items of a memoized partial at this point of the order.
type item struct {
	e      spec.Entry
	why    *reason
	shared *partial
}

func (p *partial) add(e spec.Entry, why *reason) {
	if p.seen != nil && !e.Subtree {
		if _, ok := p.seen.entries[e.Path]; ok {
			return
		}
		p.seen.entries[e.Path] = struct{}{}
	}
	p.items = append(p.items, item{e: e, why: why})
}

// addShared adds the items of sh, a partial shared between inputs, by
// reference; its missing libraries and problems are copied.
func (p *partial) addShared(sh *partial) {
	p.items = append(p.items, item{shared: sh})
	p.missing = append(p.missing, sh.missing...)
	p.problems = append(p.problems, sh.problems...)
}

func (p *partial) problem(err error) { p.problems = append(p.problems, err) }

// addPath adds p and every symlink met while resolving it, and returns the
// symlink-free path. A dangling or looping link is returned as an error
// after the links met so far are added.
func (r *Resolver) addPath(out *partial, p string, why *reason) (string, error) {
	return r.addWalked(out, p, r.fs.walk(p), why)
}

// addWalked is addPath for p already walked.
func (r *Resolver) addWalked(out *partial, p string, w *walked, why *reason) (string, error) {
	if w.err == nil && out.seen != nil {
		// Every library is added once per program that loads it: skip
		// the entries one by one when the walk was emitted as a whole.
		if _, ok := out.seen.paths[p]; ok {
			return w.real, nil
		}
		out.seen.paths[p] = struct{}{}
	}
	for _, l := range w.links {
		out.add(spec.Entry{Path: l}, why)
	}
	if w.err != nil {
		return "", w.err
	}
	out.add(spec.Entry{Path: w.real}, why)
	return w.real, nil
}

// Resolve returns the closure of inputs: absolute paths as seen inside the
// root, bare names looked up on PATH inside the root, or paths ending in
// "/**", kept as subtree entries (not walked; only the symlinks leading to
// them are added). Directories and files that are neither ELF nor scripts
// are included as themselves. Inputs that do not exist, dangling links and
// unresolved libraries are reported in the Result, not as an error; the
// error is for malformed inputs.
func (r *Resolver) Resolve(inputs ...string) (*Result, error) {
	type task struct {
		in      string
		subtree bool
	}
	tasks := make([]task, 0, len(inputs))
	for _, in := range inputs {
		t := task{in: in}
		if strings.HasSuffix(in, spec.SubtreeSuffix) {
			t.in, t.subtree = strings.TrimSuffix(in, spec.SubtreeSuffix), true
			if t.in == "" {
				t.in = "/"
			}
		}
		switch {
		case strings.ContainsRune(t.in, 0):
			return nil, fmt.Errorf("input %q: contains a NUL byte", in)
		case strings.HasPrefix(t.in, "/"):
			t.in = path.Clean(t.in)
		case t.subtree || strings.Contains(t.in, "/") || t.in == "" || t.in == "." || t.in == "..":
			return nil, fmt.Errorf("input %q: want an absolute path or a bare program name", in)
		}
		tasks = append(tasks, t)
	}
	parts := make([]*partial, len(tasks)+1)
	work := func(i int, seen *seenSet) {
		out := &partial{seen: seen}
		t := tasks[i]
		if t.subtree {
			r.addSubtree(out, t.in, &reason{label: t.in + spec.SubtreeSuffix})
		} else {
			r.input(out, t.in)
		}
		parts[i] = out
	}
	// Inputs are resolved by up to GOMAXPROCS workers; one input is done
	// inline, without the goroutine hand-off.
	workers := min(runtime.GOMAXPROCS(0), len(tasks))
	if workers <= 1 {
		seen := newSeenSet()
		for i := range tasks {
			work(i, seen)
		}
	} else {
		var wg sync.WaitGroup
		var next atomic.Int64
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				seen := newSeenSet()
				// Workers claim inputs in increasing order, which the
				// dedupe in partial.add relies on.
				for {
					i := int(next.Add(1) - 1)
					if i >= len(tasks) {
						return
					}
					work(i, seen)
				}
			}()
		}
		wg.Wait()
	}
	parts[len(tasks)] = r.extras()

	n := 0
	for _, p := range parts {
		n += len(p.items)
	}
	res := &Result{why: make(map[string]*reason, n)}
	all := make([]spec.Entry, 0, n)
	seenMissing := map[string]bool{}
	seenProblem := map[string]bool{}
	seen := make(map[spec.Entry]bool, n)
	merged := map[*partial]bool{}
	var merge func(items []item)
	merge = func(items []item) {
		for _, it := range items {
			if it.shared != nil {
				if !merged[it.shared] {
					merged[it.shared] = true
					merge(it.shared.items)
				}
				continue
			}
			if !seen[it.e] {
				seen[it.e] = true
				all = append(all, it.e)
			}
			if _, ok := res.why[it.e.Path]; !ok {
				res.why[it.e.Path] = it.why
			}
		}
	}
	for _, p := range parts {
		merge(p.items)
		for _, m := range p.missing {
			k := m.Name + "\x00" + m.NeededBy
			if !seenMissing[k] {
				seenMissing[k] = true
				res.Missing = append(res.Missing, m)
			}
		}
		for _, e := range p.problems {
			if !seenProblem[e.Error()] {
				seenProblem[e.Error()] = true
				res.Problems = append(res.Problems, e)
			}
		}
	}
	res.Spec = spec.New(all...)
	return res, nil
}

// addSubtree adds a "/**" entry and the symlinks leading to its root.
func (r *Resolver) addSubtree(out *partial, p string, why *reason) {
	w := r.fs.walk(p)
	for _, l := range w.links {
		out.add(spec.Entry{Path: l}, why)
	}
	if w.err != nil {
		out.problem(w.err)
		return
	}
	out.add(spec.Entry{Path: w.real, Subtree: true}, why)
}

// input resolves one input: a bare name, or an absolute path.
func (r *Resolver) input(out *partial, in string) {
	p := in
	if !strings.HasPrefix(in, "/") {
		found, err := r.lookPath(in)
		if err != nil {
			out.problem(err)
			return
		}
		p = found
	}
	r.file(out, p, &reason{label: p}, 0)
}

// maxScriptDepth is the kernel's limit on nested #! interpreters.
const maxScriptDepth = 4

// file adds p with its symlinks and, by content, its ELF or script closure.
func (r *Resolver) file(out *partial, p string, why *reason, depth int) {
	real, err := r.addPath(out, p, why)
	if err != nil {
		out.problem(err)
		return
	}
	n := r.fs.lstat(real)
	if !n.mode.IsRegular() {
		return
	}
	r.objMu.Lock()
	o, known := r.objs[fileID{n.dev, n.ino}]
	r.objMu.Unlock()
	if known && o.info != nil {
		r.elfMain(out, p, real, why)
		return
	}
	fd, err := r.fs.openFd(real)
	if err != nil {
		out.problem(err)
		return
	}
	sc := getScratch()
	hr := sc.reader(fd, n.size)
	var head [4]byte
	k, _ := hr.ReadAt(head[:min(int64(len(head)), n.size)], 0)
	isELF := k == 4 && string(head[:]) == "\x7fELF"
	var shebang []byte
	switch {
	case isELF:
		// Parse now, through the block already read.
		r.parseObject(fileID{n.dev, n.ino}, real, hr, sc)
	case k >= 2 && string(head[:2]) == "#!":
		// The kernel reads at most 256 bytes of a #! line.
		shebang = append([]byte(nil), hr.head[:min(len(hr.head), 256)]...)
	}
	unix.Close(fd)
	putScratch(sc)
	switch {
	case isELF:
		r.elfMain(out, p, real, why)
	case shebang != nil:
		r.script(out, p, shebang, why, depth)
	}
}

// object returns the parsed ELF file at real (symlink-free, inside root).
func (r *Resolver) object(real string) (*elfInfo, fileID, error) {
	n := r.fs.lstat(real)
	if n.err != nil {
		return nil, fileID{}, n.err
	}
	id := fileID{n.dev, n.ino}
	r.objMu.Lock()
	o, ok := r.objs[id]
	r.objMu.Unlock()
	if ok {
		return o.info, id, o.err
	}
	if !n.mode.IsRegular() {
		o = &object{err: fmt.Errorf("%s: cannot read file data: not a regular file", real)}
		r.objMu.Lock()
		r.objs[id] = o
		r.objMu.Unlock()
	} else if fd, err := r.fs.openFd(real); err != nil {
		o = &object{err: err}
		r.objMu.Lock()
		r.objs[id] = o
		r.objMu.Unlock()
	} else {
		sc := getScratch()
		o = r.parseObject(id, real, sc.reader(fd, n.size), sc)
		unix.Close(fd)
		putScratch(sc)
	}
	return o.info, id, o.err
}

// parseObject parses an ELF file read through hr and memoizes it by id.
func (r *Resolver) parseObject(id fileID, real string, hr *headReader, sc *scratch) *object {
	o := &object{}
	o.info, o.err = readELFWith(hr, hr.size, sc)
	if o.err != nil {
		o.err = fmt.Errorf("%s: %w", real, o.err)
	}
	r.objMu.Lock()
	r.objs[id] = o
	r.objMu.Unlock()
	return o
}

// lookPath finds name along the resolver's PATH inside the root.
func (r *Resolver) lookPath(name string) (string, error) {
	for _, d := range r.path {
		c := path.Join(d, name)
		w := r.fs.walk(c)
		if w.err != nil {
			continue
		}
		n := r.fs.lstat(w.real)
		if n.mode.IsRegular() && n.mode&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s: not found on PATH %s", name, strings.Join(r.path, ":"))
}

// LookPath finds an executable name along PATH inside root ("" or "/" for
// the host), as a shell would, and returns its path as seen inside root.
// On the host root it uses $PATH, under another root DefaultPath.
func LookPath(root, name string) (string, error) {
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("%s: not a bare name", name)
	}
	r := &Resolver{fs: newRootFS(root)}
	pl := DefaultPath
	if r.fs.root == "" && os.Getenv("PATH") != "" {
		pl = os.Getenv("PATH")
	}
	for _, d := range strings.Split(pl, ":") {
		if strings.HasPrefix(d, "/") {
			r.path = append(r.path, path.Clean(d))
		}
	}
	return r.lookPath(name)
}
