package resolver

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

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
	origin string // $ORIGIN
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
	s := &session{
		r: r, out: out, exp: info.elfIdent, arch: archFor(info.elfIdent),
		byName: map[string]*loaded{}, byID: map[fileID]*loaded{},
	}
	s.main = &loaded{path: p, real: real, info: info, id: id, why: why, origin: path.Dir(real)}
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
	s.run()
	if !s.musl {
		s.extraLibs()
	}
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
	s.ldso = &loaded{path: interp, real: real, info: info, id: id, loader: s.main, why: why, origin: path.Dir(interp)}
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
			s.r.log.Warn("ld.so.preload entry cannot be preloaded: ignored", zap.String("name", name), zap.String("reason", m.String()))
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
		p = &partial{why: map[string]*reason{}}
		sub := &session{
			r: s.r, out: p, exp: s.exp, arch: s.arch,
			byName: map[string]*loaded{}, byID: map[fileID]*loaded{},
		}
		sub.main = &loaded{path: "(extras)", info: &elfInfo{elfIdent: s.exp}}
		if s.ldso != nil {
			sub.ldso = s.ldso
			sub.byID[s.ldso.id] = s.ldso
			sub.register(s.ldso, s.ldso.path, s.ldso.info.Soname)
		}
		sub.extraLibsHere()
		s.r.extraMemo[s.exp] = p
	}
	s.r.extraMu.Unlock()
	s.out.entries = append(s.out.entries, p.entries...)
	for k, v := range p.why {
		if _, ok := s.out.why[k]; !ok {
			s.out.why[k] = v
		}
	}
	s.out.missing = append(s.out.missing, p.missing...)
	s.out.problems = append(s.out.problems, p.problems...)
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
		extra := &loaded{path: s.main.path, info: s.main.info, loader: s.main.loader, origin: s.main.origin,
			why: &reason{label: "extra " + string(ExtraNSS), parent: s.main.why}}
		if name == "libgcc_s.so.1" {
			extra.why = &reason{label: "extra " + string(ExtraBase), parent: s.main.why}
		}
		obj, m := s.lookup(name, extra)
		if obj == nil {
			s.r.log.Debug("optional library not found", zap.String("name", name), zap.String("reason", m.String()))
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
		return obj, nil
	}
	why := &reason{label: name, parent: loader.why}
	m := &Missing{Name: name, NeededBy: loader.path}
	if strings.Contains(name, "$") {
		exp, ok := s.expand(name, loader)
		if !ok {
			m.Reason = "cannot expand dynamic string tokens"
			return nil, m
		}
		name = exp
	}
	if strings.Contains(name, "/") {
		if !strings.HasPrefix(name, "/") {
			// ld.so would open it relative to the working directory of
			// the process, which a static resolver does not know.
			m.Reason = "relative path depends on the working directory"
			return nil, m
		}
		obj, st, err := s.try(name, loader, why)
		switch st {
		case found:
			return obj, nil
		case fatal:
			m.Reason = err.Error()
		}
		return nil, m
	}

	var searched []string
	search := func(dirs []string) (*loaded, bool) {
		for _, d := range dirs {
			searched = append(searched, d)
			for _, sub := range s.r.subdirsOf(d, s.arch.platform) {
				obj, st, err := s.try(path.Join(d, sub, name), loader, why)
				switch st {
				case found:
					return obj, true
				case fatal:
					m.Reason = err.Error()
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
		m.Searched = searched
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
	searched = append(searched, hit.searched...)
	switch hit.v {
	case found:
		obj, _, _ := s.try(hit.path, loader, why)
		if hit.fromCache && s.r.o.HWCaps {
			s.hwcapsFromCache(name, why)
		}
		return obj, nil
	case fatal:
		m.Reason = hit.err.Error()
	}
	return done(nil)
}

// defKey and defHit memoize the last two search steps, ld.so.cache and
// the default directories: they depend only on the name, DF_1_NODEFLIB and
// the program's ELF identity, and most lookups end there.
type defKey struct {
	name     string
	nodeflib bool
	id       elfIdent
}

type defHit struct {
	path      string
	v         verdict
	err       error
	searched  []string
	fromCache bool
}

func (s *session) defaultSearch(name string, nodeflib bool) *defHit {
	k := defKey{name, nodeflib, s.exp}
	s.r.defMu.Lock()
	h, ok := s.r.defs[k]
	s.r.defMu.Unlock()
	if ok {
		return h
	}
	h = &defHit{}
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
	s.r.defMu.Lock()
	s.r.defs[k] = h
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

// try checks a candidate file and loads it if ld.so would.
func (s *session) try(p string, loader *loaded, why *reason) (*loaded, verdict, error) {
	if v, err := s.check(p); v != found {
		return nil, v, err
	}
	w := s.r.fs.walk(p)
	info, id, _ := s.r.object(w.real)
	if obj, ok := s.byID[id]; ok {
		// The same file under another name: ld.so compares device and
		// inode and reuses the object.
		s.register(obj, why.label)
		return obj, found, nil
	}
	return s.load(p, w.real, info, id, loader, why), found, nil
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
func (s *session) load(p, real string, info *elfInfo, id fileID, loader *loaded, why *reason) *loaded {
	if _, err := s.r.addPath(s.out, p, why); err != nil {
		s.out.problem(err)
	}
	obj := &loaded{path: p, real: real, info: info, id: id, loader: loader, why: why, origin: path.Dir(p)}
	s.byID[id] = obj
	s.register(obj, why.label, p, info.Soname)
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
	key := dir + "\x00" + platform
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
	var out []string
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
	return out
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
			val = owner.origin
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
