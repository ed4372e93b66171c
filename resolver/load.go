package resolver

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// loaded is one object in a program's link map.
type loaded struct {
	path   string // as found, inside the root
	real   string
	info   *elfInfo
	id     fileID
	loader *loaded // the object whose DT_NEEDED loaded it first
	why    *reason
	// originOf is the path whose directory is $ORIGIN; the directory is
	// computed only when a token asks for it, which few objects do.
	originOf string
	idx      int // place in the session's load order: main 0, ld.so 1
}

func (l *loaded) origin() string { return dir(l.originOf) }

// dir is path.Dir without its allocation for paths that are already clean.
func dir(p string) string {
	if !isClean(p) {
		return path.Dir(p)
	}
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// joinName is path.Join(d, sub, name) for a clean absolute d, a clean
// relative or empty sub and a name without a slash, with one allocation
// instead of Join's several.
func joinName(d, sub, name string) string {
	if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 || !isClean(d) {
		return path.Join(d, sub, name)
	}
	if d == "/" {
		d = ""
	}
	if sub == "" {
		return d + "/" + name
	}
	return d + "/" + sub + "/" + name
}

// session is one program's simulated ld.so run: its link map and the
// rules of its dynamic linker.
type session struct {
	r     *Resolver
	out   *partial
	exp   elfIdent
	arch  archInfo
	musl  bool
	main  *loaded
	ldso  *loaded
	queue []*loaded

	byName map[string]*loaded
	byID   map[fileID]*loaded

	// muslPath is musl's system search path, read once per session.
	muslPath []string

	// slab and searched are storage reused across the sessions of a pool:
	// a run over a thousand programs loads tens of thousands of objects.
	// No *loaded outlives its session.
	slab     []loaded
	searched []string

	// While rec is set, run records its loads in events, for a template;
	// noTmpl says a step happened that a template cannot replay.
	rec     bool
	noTmpl  bool
	events  []tmplEvent
	reasons []*reason
	nextIdx int
}

var sessionPool = sync.Pool{New: func() any {
	return &session{byName: map[string]*loaded{}, byID: map[fileID]*loaded{}, nextIdx: 2}
}}

// newSession returns an empty session for a program of identity exp.
func (r *Resolver) newSession(out *partial, exp elfIdent) *session {
	s := sessionPool.Get().(*session)
	s.r, s.out, s.exp, s.arch = r, out, exp, archFor(exp)
	return s
}

// release returns s to the pool; s must not be used afterwards.
func (s *session) release() {
	clear(s.byName)
	clear(s.byID)
	clear(s.slab)
	clear(s.queue[:cap(s.queue)])
	clear(s.events)
	clear(s.reasons)
	s.slab, s.queue, s.searched, s.events, s.reasons = s.slab[:0], s.queue[:0], s.searched[:0], s.events[:0], s.reasons[:0]
	s.r, s.out, s.main, s.ldso, s.musl, s.muslPath = nil, nil, nil, nil, false, nil
	s.rec, s.noTmpl, s.nextIdx = false, false, 2
	sessionPool.Put(s)
}

// newLoaded returns a zeroed object from the session's slab. The slab is
// never grown in place, so pointers handed out stay valid.
func (s *session) newLoaded() *loaded {
	if len(s.slab) == cap(s.slab) {
		s.slab = make([]loaded, 0, 32)
	}
	s.slab = s.slab[:len(s.slab)+1]
	return &s.slab[len(s.slab)-1]
}

// archInfo is what ld.so has compiled in for one architecture.
type archInfo struct {
	cacheFlags int32
	platform   string // AT_PLATFORM, for $PLATFORM
	triplet    string // Debian multiarch directory name
	lib64      bool   // upstream glibc uses lib64 for this 64-bit ABI
}

func archFor(id elfIdent) archInfo {
	switch {
	case id.Machine == emX86_64 && id.Class == elfClass64:
		return archInfo{cacheFlagELFLibc6 | cacheFlagX8664, "x86_64", "x86_64-linux-gnu", true}
	case id.Machine == 3: // EM_386
		return archInfo{cacheFlagELFLibc6, "i686", "i386-linux-gnu", false}
	case id.Machine == 183: // EM_AARCH64
		return archInfo{cacheFlagELFLibc6 | cacheFlagAArch64, "aarch64", "aarch64-linux-gnu", true}
	case id.Machine == 21 && id.Data == elfData2L: // EM_PPC64
		return archInfo{cacheFlagELFLibc6 | cacheFlagLib64PPC, "powerpc64le", "powerpc64le-linux-gnu", true}
	case id.Machine == 22 && id.Class == elfClass64: // EM_S390
		return archInfo{cacheFlagELFLibc6 | cacheFlagS390x, "s390x", "s390x-linux-gnu", true}
	case id.Machine == 243 && id.Class == elfClass64: // EM_RISCV
		return archInfo{cacheFlagELFLibc6 | cacheFlagRISCVD, "riscv64", "riscv64-linux-gnu", false}
	}
	return archInfo{cacheFlags: cacheFlagELFLibc6, lib64: id.Class == elfClass64}
}

// multiarch reports whether the root uses Debian's multiarch layout for
// arch, which decides the default directories and $LIB, as they are
// compiled into that root's ld.so.
func (r *Resolver) multiarch(a archInfo) bool {
	return a.triplet != "" && (r.fs.isDir("/lib/"+a.triplet) || r.fs.isDir("/usr/lib/"+a.triplet))
}

// systemDirs are ld.so's default directories (its "system search path").
func (s *session) systemDirs() []string {
	if s.r.multiarch(s.arch) {
		t := s.arch.triplet
		return []string{"/lib/" + t, "/usr/lib/" + t, "/lib", "/usr/lib"}
	}
	if s.arch.lib64 {
		return []string{"/lib64", "/usr/lib64"}
	}
	return []string{"/lib", "/usr/lib"}
}

func (s *session) dstLib() string {
	if s.r.multiarch(s.arch) {
		return "lib/" + s.arch.triplet
	}
	if s.arch.lib64 {
		return "lib64"
	}
	return "lib"
}

// elfMain resolves the closure of the ELF program at p (real: its
// symlink-free path).
func (r *Resolver) elfMain(out *partial, p, real string, why *reason) {
	info, id, err := r.object(real)
	if err != nil {
		// A broken ELF file given as input is still a file the caller
		// asked for; it is included as itself.
		r.log.Warn("not a loadable ELF file, included as itself", zap.String("path", p), zap.Error(err))
		return
	}
	if info.badIdent != "" || (info.Type != etExec && info.Type != etDyn) || !info.Dynamic {
		// Static and static-pie programs, objects and core files need
		// nothing: there is no dynamic linker to run.
		return
	}
	s := r.newSession(out, info.elfIdent)
	defer s.release()
	s.main = s.newLoaded()
	*s.main = loaded{path: p, real: real, info: info, id: id, why: why, originOf: real}
	s.byID[id] = s.main
	s.register(s.main, info.Soname)
	if info.Interp != "" {
		s.musl = strings.HasPrefix(path.Base(info.Interp), "ld-musl-")
		s.loadInterp(info.Interp)
	}
	out.glibc = out.glibc || !s.musl
	if !s.musl {
		s.preloads()
	}
	s.queue = append(s.queue, s.main)
	if k, ok := s.templateKey(); !ok {
		s.run()
	} else if !s.replay(k) {
		s.rec = true
		s.run()
		s.rec = false
		if !s.noTmpl {
			r.tmplMu.Lock()
			r.templates[k] = slices.Clone(s.events)
			r.tmplMu.Unlock()
		}
	}
	if !s.musl {
		s.extraLibs()
	}
}

// Templates: most programs in a directory need the same few libraries,
// and when none of the objects involved has a search path of its own,
// ld.so's answer depends only on what the program needs, not on where it
// is. The loads of such a run are recorded once as a template and replayed
// for every other program with the same key: the same entries in the same
// order with the same reasons, without the searches.

// tmplKey is everything a templated run depends on besides the global
// search results: the program's identity, what it needs, its soname and
// DF_1_NODEFLIB, and its interpreter.
type tmplKey struct {
	exp      elfIdent
	nodeflib bool
	soname   string
	interp   string
	ldso     fileID
	needed   string // NUL-separated
}

// tmplEvent is one object loaded: found at p (walked to w), needed as
// label by the object with index loader.
type tmplEvent struct {
	p      string
	w      *walked
	id     fileID
	label  string
	loader int
}

// templateKey returns the session's key, or false if its run cannot be
// templated: musl, search paths, preloads and hwcaps all make the answer
// depend on more than the key.
func (s *session) templateKey() (tmplKey, bool) {
	i := s.main.info
	if s.musl || s.ldso == nil || i.HasRpath || i.HasRun || len(s.r.o.LibraryPath) > 0 || s.r.o.HWCaps || len(s.r.preload) > 0 {
		return tmplKey{}, false
	}
	return tmplKey{
		exp: s.exp, nodeflib: i.Flags1&df1Nodeflib != 0, soname: i.Soname,
		interp: s.ldso.path, ldso: s.ldso.id, needed: strings.Join(i.Needed, "\x00"),
	}, true
}

// replay adds the loads of the template for k, if there is one that
// applies, and reports whether it did.
func (s *session) replay(k tmplKey) bool {
	s.r.tmplMu.Lock()
	t, ok := s.r.templates[k]
	s.r.tmplMu.Unlock()
	if !ok {
		return false
	}
	for _, ev := range t {
		if ev.id == s.main.id {
			// ld.so would find the program itself and reuse it.
			return false
		}
	}
	s.reasons = append(s.reasons[:0], s.main.why, s.ldso.why)
	for _, ev := range t {
		why := &reason{label: ev.label, parent: s.reasons[ev.loader]}
		if _, err := s.r.addWalked(s.out, ev.p, ev.w, why); err != nil {
			s.out.problem(err)
		}
		s.reasons = append(s.reasons, why)
	}
	s.queue = s.queue[:0]
	return true
}

// register makes obj findable by name, as ld.so's name matching does.
func (s *session) register(obj *loaded, names ...string) {
	for _, n := range names {
		if n == "" {
			continue
		}
		if _, ok := s.byName[n]; !ok {
			s.byName[n] = obj
		}
	}
}

func (s *session) loadInterp(interp string) {
	why := &reason{label: interp, parent: s.main.why}
	real, err := s.r.addPath(s.out, interp, why)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.out.missing = append(s.out.missing, Missing{Name: interp, NeededBy: s.main.path, Reason: "interpreter not found"})
		} else {
			s.out.problem(fmt.Errorf("interpreter of %s: %w", s.main.path, err))
		}
		return
	}
	info, id, err := s.r.object(real)
	if err != nil {
		s.out.problem(fmt.Errorf("interpreter of %s: %w", s.main.path, err))
		return
	}
	s.ldso = s.newLoaded()
	*s.ldso = loaded{path: interp, real: real, info: info, id: id, loader: s.main, why: why, originOf: interp, idx: 1}
	s.byID[id] = s.ldso
	s.register(s.ldso, interp, info.Soname)
}

// preloads loads /etc/ld.so.preload, as glibc's rtld does before the
// program's own dependencies. ld.so ignores entries it cannot load.
func (s *session) preloads() {
	s.r.readEtc()
	for _, name := range s.r.preload {
		obj, m := s.lookup(name, s.main)
		if obj == nil {
			s.r.log.Warn("ld.so.preload entry cannot be preloaded: ignored", zap.String("name", name), zap.Stringer("reason", m))
			continue
		}
		obj.why = &reason{label: name + " (/etc/ld.so.preload)", parent: s.main.why}
	}
}

// run loads DT_NEEDED entries breadth first, as _dl_map_object_deps does.
func (s *session) run() {
	for len(s.queue) > 0 {
		obj := s.queue[0]
		s.queue = s.queue[1:]
		for _, name := range obj.info.Needed {
			if _, m := s.lookup(name, obj); m != nil {
				s.out.missing = append(s.out.missing, *m)
			}
		}
	}
}

// extraLibs adds the libraries glibc loads with dlopen that the base and
// nss extras name, when the root has them; absence is not an error.
//
// For a program without DT_RPATH or DT_RUNPATH, and without
// --library-path, the answer depends only on the program's ELF identity,
// so it is computed once, in a link map of its own, and reused: resolving
// a thousand programs then costs one set of extra lookups, not a thousand.
func (s *session) extraLibs() {
	if !s.r.has(ExtraBase) && !s.r.has(ExtraNSS) {
		return
	}
	if s.main.info.HasRpath || s.main.info.HasRun || len(s.r.o.LibraryPath) > 0 {
		s.extraLibsHere()
		return
	}
	s.r.extraMu.Lock()
	p, ok := s.r.extraMemo[s.exp]
	if !ok {
		p = &partial{}
		sub := s.r.newSession(p, s.exp)
		sub.main = sub.newLoaded()
		*sub.main = loaded{path: "(extras)", info: &elfInfo{elfIdent: s.exp}}
		if s.ldso != nil {
			sub.ldso = s.ldso
			sub.byID[s.ldso.id] = s.ldso
			sub.register(s.ldso, s.ldso.path, s.ldso.info.Soname)
		}
		sub.extraLibsHere()
		sub.release()
		s.r.extraMemo[s.exp] = p
	}
	s.r.extraMu.Unlock()
	s.out.addShared(p)
}

func (s *session) extraLibsHere() {
	var names []string
	if s.r.has(ExtraBase) {
		names = append(names, "libgcc_s.so.1")
	}
	if s.r.has(ExtraNSS) {
		s.r.readEtc()
		for _, n := range s.r.nssNames {
			names = append(names, "libnss_"+n+".so.2")
		}
	}
	for _, name := range names {
		if obj, _ := s.peek(name); obj != nil {
			continue
		}
		extra := &loaded{path: s.main.path, info: s.main.info, loader: s.main.loader, originOf: s.main.originOf,
			why: &reason{label: "extra " + string(ExtraNSS), parent: s.main.why}}
		if name == "libgcc_s.so.1" {
			extra.why = &reason{label: "extra " + string(ExtraBase), parent: s.main.why}
		}
		obj, m := s.lookup(name, extra)
		if obj == nil {
			s.r.log.Debug("optional library not found", zap.String("name", name), zap.Stringer("reason", m))
			continue
		}
		s.run()
	}
}

func (s *session) peek(name string) (*loaded, bool) {
	o, ok := s.byName[name]
	return o, ok
}

// lookup finds and loads name needed by loader, returning the object, or a
// Missing saying why not.
func (s *session) lookup(name string, loader *loaded) (*loaded, *Missing) {
	if s.musl {
		return s.lookupMusl(name, loader)
	}
	if obj, ok := s.byName[name]; ok {
		if obj == s.main {
			s.noTmpl = true
		}
		return obj, nil
	}
	label := name
	// Most lookups end in ld.so.cache or the default directories, with no
	// token, slash or search path involved: take that path first, without
	// building what only a miss needs.
	if !loader.info.HasRun && (s.main == nil || !s.main.info.HasRpath) && len(s.r.o.LibraryPath) == 0 &&
		strings.IndexByte(name, '$') < 0 && strings.IndexByte(name, '/') < 0 && !s.hasRpathChain(loader) {
		hit := s.defaultSearch(name, loader.info.Flags1&df1Nodeflib != 0)
		if hit.v == found {
			return s.loadHit(hit, name, label, loader), nil
		}
	}
	s.noTmpl = true
	var reason string
	if strings.Contains(name, "$") {
		exp, ok := s.expand(name, loader)
		if !ok {
			return nil, &Missing{Name: label, NeededBy: loader.path, Reason: "cannot expand dynamic string tokens"}
		}
		name = exp
	}
	if strings.Contains(name, "/") {
		if !strings.HasPrefix(name, "/") {
			// ld.so would open it relative to the working directory of
			// the process, which a static resolver does not know.
			return nil, &Missing{Name: label, NeededBy: loader.path, Reason: "relative path depends on the working directory"}
		}
		obj, st, err := s.try(name, label, loader)
		switch st {
		case found:
			return obj, nil
		case fatal:
			reason = err.Error()
		}
		return nil, &Missing{Name: label, NeededBy: loader.path, Reason: reason}
	}

	s.searched = s.searched[:0]
	search := func(dirs []string) (*loaded, bool) {
		for _, d := range dirs {
			s.searched = append(s.searched, d)
			for _, sub := range s.r.subdirsOf(d, s.arch.platform) {
				obj, st, err := s.try(joinName(d, sub, name), label, loader)
				switch st {
				case found:
					return obj, true
				case fatal:
					reason = err.Error()
					return nil, true
				}
			}
		}
		return nil, false
	}
	done := func(obj *loaded) (*loaded, *Missing) {
		if obj != nil {
			return obj, nil
		}
		m := &Missing{Name: label, NeededBy: loader.path, Reason: reason}
		if len(s.searched) > 0 {
			m.Searched = slices.Clone(s.searched)
		}
		return nil, m
	}
	// DT_RPATH of the loader chain, then of the executable, unless the
	// loader has DT_RUNPATH.
	if !loader.info.HasRun {
		for l := loader; l != nil; l = l.loader {
			if l.info.HasRpath {
				if obj, stop := search(s.dirs(l.info.Rpath, l)); stop {
					return done(obj)
				}
			}
		}
		if s.main != nil && s.main.info.HasRpath {
			if obj, stop := search(s.dirs(s.main.info.Rpath, s.main)); stop {
				return done(obj)
			}
		}
	}
	if len(s.r.o.LibraryPath) > 0 {
		if obj, stop := search(s.dirs(strings.Join(s.r.o.LibraryPath, ":"), s.main)); stop {
			return done(obj)
		}
	}
	if loader.info.HasRun {
		if obj, stop := search(s.dirs(loader.info.Runpath, loader)); stop {
			return done(obj)
		}
	}
	nodeflib := loader.info.Flags1&df1Nodeflib != 0
	hit := s.defaultSearch(name, nodeflib)
	s.searched = append(s.searched, hit.searched...)
	switch hit.v {
	case found:
		return s.loadHit(hit, name, label, loader), nil
	case fatal:
		reason = hit.err.Error()
	}
	return done(nil)
}

// hasRpathChain reports whether an object up loader's chain has DT_RPATH,
// which ld.so searches before the cache unless loader has DT_RUNPATH.
func (s *session) hasRpathChain(loader *loaded) bool {
	for l := loader; l != nil; l = l.loader {
		if l.info.HasRpath {
			return true
		}
	}
	return false
}

// loadHit loads the library a default search for name found; label is
// the name as needed, before token expansion.
func (s *session) loadHit(hit *defHit, name, label string, loader *loaded) *loaded {
	if o, ok := s.byID[hit.id]; ok {
		// The same file under another name: ld.so compares device and
		// inode and reuses the object.
		if o == s.main {
			s.noTmpl = true
		}
		s.register(o, label)
		if hit.fromCache && s.r.o.HWCaps {
			s.hwcapsFromCache(name, &reason{label: label, parent: loader.why})
		}
		return o
	}
	obj := s.load(hit.path, hit.w, hit.info, hit.id, loader, label)
	if hit.fromCache && s.r.o.HWCaps {
		s.hwcapsFromCache(name, obj.why)
	}
	return obj
}

// defHit memoizes the last two search steps, ld.so.cache and the default
// directories: they depend only on the name, DF_1_NODEFLIB and the
// program's ELF identity, and most lookups end there.
type defHit struct {
	nodeflib bool
	exp      elfIdent

	path      string
	v         verdict
	err       error
	searched  []string
	fromCache bool

	// The file found, when v is found.
	w    *walked
	info *elfInfo
	id   fileID
}

func (s *session) defaultSearch(name string, nodeflib bool) *defHit {
	s.r.defMu.Lock()
	for _, h := range s.r.defs[name] {
		if h.nodeflib == nodeflib && h.exp == s.exp {
			s.r.defMu.Unlock()
			return h
		}
	}
	s.r.defMu.Unlock()
	h := &defHit{nodeflib: nodeflib, exp: s.exp}
	func() {
		if s.r.hasCache {
			if p := s.cached(name, nodeflib); p != "" {
				h.searched = append(h.searched, "ld.so.cache")
				if v, err := s.check(p); v != absent {
					h.path, h.v, h.err, h.fromCache = p, v, err, true
					return
				}
			}
		}
		if nodeflib {
			return
		}
		for _, d := range s.systemDirs() {
			h.searched = append(h.searched, d)
			for _, sub := range s.r.subdirsOf(d, s.arch.platform) {
				p := path.Join(d, sub, name)
				if v, err := s.check(p); v != absent {
					h.path, h.v, h.err = p, v, err
					return
				}
			}
		}
	}()
	if h.v == found {
		h.w = s.r.fs.walk(h.path)
		h.info, h.id, _ = s.r.object(h.w.real)
	}
	s.r.defMu.Lock()
	s.r.defs[name] = append(s.r.defs[name], h)
	s.r.defMu.Unlock()
	return h
}

// cached looks name up in ld.so.cache for this program's architecture. With
// nodeflib, entries in the default directories are refused, as ld.so does.
func (s *session) cached(name string, nodeflib bool) string {
	for _, e := range s.r.cache[name] {
		if e.HWCap != 0 {
			continue
		}
		if e.Flags != s.arch.cacheFlags && !(s.arch.cacheFlags == cacheFlagELFLibc6 && e.Flags == 1) {
			continue
		}
		if nodeflib {
			for _, d := range s.systemDirs() {
				if strings.HasPrefix(e.Path, d+"/") {
					return ""
				}
			}
		}
		return e.Path
	}
	return ""
}

func (s *session) hwcapsFromCache(name string, why *reason) {
	for _, e := range s.r.cache[name] {
		if e.HWCap != 0 && e.Flags == s.arch.cacheFlags {
			if _, err := s.r.addPath(s.out, e.Path, why); err != nil {
				s.out.problem(err)
			}
		}
	}
}

type verdict int

const (
	absent verdict = iota // no such file, or ld.so skips it: search on
	found
	fatal // ld.so stops with an error
)

// check classifies a candidate file as glibc's open_verify does.
func (s *session) check(p string) (verdict, error) {
	w := s.r.fs.walk(p)
	if w.err != nil {
		return absent, nil
	}
	info, _, err := s.r.object(w.real)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && !errors.Is(err, errNotELF) {
			// open failed (permissions, ...): ld.so moves on.
			return absent, nil
		}
		return fatal, fmt.Errorf("%s: %w", p, errors.Unwrap(err))
	}
	if s.musl {
		return found, nil
	}
	if info.Class != s.exp.Class {
		s.r.log.Debug("skipping library of another class", zap.String("path", p))
		return absent, nil
	}
	if msg := s.badFor(info); msg != "" {
		if msg == "skip" {
			s.r.log.Debug("skipping library for another machine", zap.String("path", p))
			return absent, nil
		}
		return fatal, fmt.Errorf("%s: %s", p, msg)
	}
	return found, nil
}

// try checks a candidate file and loads it if ld.so would; label is the
// name it is needed by.
func (s *session) try(p, label string, loader *loaded) (*loaded, verdict, error) {
	if v, err := s.check(p); v != found {
		return nil, v, err
	}
	w := s.r.fs.walk(p)
	info, id, _ := s.r.object(w.real)
	if obj, ok := s.byID[id]; ok {
		// The same file under another name: ld.so compares device and
		// inode and reuses the object.
		s.register(obj, label)
		return obj, found, nil
	}
	return s.load(p, w, info, id, loader, label), found, nil
}

// badFor returns "" if ld.so accepts a library of the right class, "skip"
// if it passes over it, or the error ld.so stops with.
func (s *session) badFor(info *elfInfo) string {
	switch {
	case info.Data != s.exp.Data:
		return "ELF file data encoding does not match"
	case info.badIdent != "":
		return info.badIdent
	case info.Version != 1:
		return "ELF file version does not match current one"
	case info.Machine != s.exp.Machine:
		return "skip"
	case info.Type != etDyn && info.Type != etExec:
		return "only ET_DYN and ET_EXEC can be loaded"
	case info.Class == elfClass64 && info.Phentsize != 56, info.Class == elfClass32 && info.Phentsize != 32:
		return "ELF file's phentsize not the expected size"
	}
	return ""
}

// load adds a found object to the link map and the result.
func (s *session) load(p string, w *walked, info *elfInfo, id fileID, loader *loaded, label string) *loaded {
	why := &reason{label: label, parent: loader.why}
	if _, err := s.r.addWalked(s.out, p, w, why); err != nil {
		s.out.problem(err)
	}
	obj := s.newLoaded()
	*obj = loaded{path: p, real: w.real, info: info, id: id, loader: loader, why: why, originOf: p, idx: s.nextIdx}
	s.nextIdx++
	if s.rec {
		s.events = append(s.events, tmplEvent{p: p, w: w, id: id, label: label, loader: loader.idx})
	}
	s.byID[id] = obj
	s.register(obj, label, p, info.Soname)
	s.queue = append(s.queue, obj)
	if s.r.o.HWCaps && !s.musl {
		s.hwcapsDirs(p, why)
	}
	return obj
}

// hwcapsDirs adds glibc-hwcaps variants of a library found in a directory.
func (s *session) hwcapsDirs(p string, why *reason) {
	dir, base := path.Split(p)
	for _, v := range []string{"x86-64-v4", "x86-64-v3", "x86-64-v2", "power10", "power9", "z16", "z15", "z14", "z13"} {
		c := path.Join(dir, "glibc-hwcaps", v, base)
		if w := s.r.fs.walk(c); w.err == nil {
			if _, err := s.r.addPath(s.out, c, why); err != nil {
				s.out.problem(err)
			}
		}
	}
}

// subdirsOf returns the legacy hwcap subdirectories of dir that exist,
// in ld.so's order, then "" for dir itself. glibc 2.36 still searches
// tls/ and $PLATFORM/ below every directory; most do not exist, so this is
// memoized per directory, as ld.so memoizes nonexistent directories.
func (r *Resolver) subdirsOf(dir, platform string) []string {
	key := subKey{dir, platform}
	r.subMu.Lock()
	subs, ok := r.subdirs[key]
	r.subMu.Unlock()
	if ok {
		return subs
	}
	var cands []string
	if platform != "" {
		cands = []string{"tls/" + platform + "/" + platform, "tls/" + platform, "tls", platform + "/" + platform, platform}
	} else {
		cands = []string{"tls"}
	}
	for _, c := range cands {
		if r.fs.isDir(path.Join(dir, c)) {
			subs = append(subs, c)
		}
	}
	subs = append(subs, "")
	r.subMu.Lock()
	r.subdirs[key] = subs
	r.subMu.Unlock()
	return subs
}

// dirs splits a search path (DT_RPATH, DT_RUNPATH, --library-path) and
// expands its tokens relative to owner. Relative and unexpandable entries
// are dropped: they depend on the working directory.
func (s *session) dirs(list string, owner *loaded) []string {
	// The same search path is expanded for every name an object needs, and
	// objects in one directory share it: memoize by what the answer
	// depends on. The slice returned is shared; callers only read it.
	k := dirsKey{list: list, exp: s.exp, musl: s.musl}
	if strings.Contains(list, "$") {
		k.origin = owner.origin()
	}
	s.r.dirsMu.Lock()
	out, ok := s.r.dirsMemo[k]
	s.r.dirsMu.Unlock()
	if ok {
		return out
	}
	out = []string{}
	for _, d := range strings.Split(list, ":") {
		if d == "" {
			continue
		}
		if strings.Contains(d, "$") {
			var ok bool
			if d, ok = s.expand(d, owner); !ok {
				continue
			}
		}
		if !strings.HasPrefix(d, "/") {
			s.r.log.Debug("relative search directory ignored", zap.String("dir", d), zap.String("object", owner.path))
			continue
		}
		out = append(out, path.Clean(d))
	}
	s.r.dirsMu.Lock()
	s.r.dirsMemo[k] = out
	s.r.dirsMu.Unlock()
	return out
}

type dirsKey struct {
	list, origin string
	exp          elfIdent
	musl         bool
}

// expand replaces $ORIGIN, $LIB and $PLATFORM (also as ${...}) in s.
// Unknown tokens are kept literally, as glibc does.
func (s *session) expand(str string, owner *loaded) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(str); {
		if str[i] != '$' {
			b.WriteByte(str[i])
			i++
			continue
		}
		name, n := dstName(str[i+1:])
		var val string
		switch name {
		case "ORIGIN":
			val = owner.origin()
		case "LIB":
			if s.musl {
				b.WriteByte('$')
				i++
				continue
			}
			val = s.dstLib()
		case "PLATFORM":
			if s.musl || s.arch.platform == "" {
				b.WriteByte('$')
				i++
				continue
			}
			val = s.arch.platform
		default:
			b.WriteByte('$')
			i++
			continue
		}
		b.WriteString(val)
		i += 1 + n
	}
	return b.String(), true
}

// dstName parses the token after '$': "NAME" ended by a non-identifier
// byte, or "{NAME}". It returns the name and the bytes consumed.
func dstName(s string) (string, int) {
	if strings.HasPrefix(s, "{") {
		if j := strings.IndexByte(s, '}'); j > 0 {
			return s[1:j], j + 1
		}
		return "", 0
	}
	j := 0
	for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
		j++
	}
	return s[:j], j
}
