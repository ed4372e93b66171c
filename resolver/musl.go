package resolver

import (
	"path"
	"strings"
)

// muslReserved are the library names musl's dynamic linker answers with
// itself: libc, libpthread, ... are all one file there.
var muslReserved = map[string]bool{"c": true, "pthread": true, "rt": true, "m": true, "dl": true, "util": true, "xnet": true}

// lookupMusl follows musl's ldso/dynlink.c load_library: reserved names
// map to the interpreter, then LD_LIBRARY_PATH, then the DT_RUNPATH or
// DT_RPATH of each object up the loader chain, then the system path from
// /etc/ld-musl-$ARCH.path or musl's default. The first file that opens is
// used; musl does not skip libraries of another class.
func (s *session) lookupMusl(name string, loader *loaded) (*loaded, *Missing) {
	if strings.HasPrefix(name, "lib") {
		if z := strings.IndexByte(name, '.'); z > 3 && muslReserved[name[3:z]] && s.ldso != nil {
			return s.ldso, nil
		}
	}
	if s.ldso != nil && name == s.ldso.path {
		return s.ldso, nil
	}
	if obj, ok := s.byName[name]; ok {
		return obj, nil
	}
	m := &Missing{Name: name, NeededBy: loader.path}
	if strings.Contains(name, "/") {
		if !strings.HasPrefix(name, "/") {
			m.Reason = "relative path depends on the working directory"
			return nil, m
		}
		obj, st, err := s.try(name, name, loader)
		if st == fatal {
			m.Reason = err.Error()
		}
		if obj != nil {
			return obj, nil
		}
		return nil, m
	}
	if len(name) > 255 {
		m.Reason = "name longer than NAME_MAX"
		return nil, m
	}
	search := func(dirs []string) (*loaded, bool) {
		for _, d := range dirs {
			m.Searched = append(m.Searched, d)
			obj, st, err := s.try(path.Join(d, name), name, loader)
			switch st {
			case found:
				return obj, true
			case fatal:
				m.Reason = err.Error()
				return nil, true
			}
		}
		return nil, false
	}
	var stop bool
	var obj *loaded
	if len(s.r.o.LibraryPath) > 0 {
		if obj, stop = search(s.dirs(strings.Join(s.r.o.LibraryPath, ":"), s.main)); stop {
			return s.muslDone(obj, m)
		}
	}
	for l := loader; l != nil; l = l.loader {
		// musl keeps one search path per object: DT_RUNPATH if present,
		// else DT_RPATH, and inherits it along the chain.
		rp := l.info.Rpath
		if l.info.HasRun {
			rp = l.info.Runpath
		}
		if rp == "" {
			continue
		}
		if obj, stop = search(s.dirs(rp, l)); stop {
			return s.muslDone(obj, m)
		}
	}
	obj, _ = search(s.muslSysPath())
	return s.muslDone(obj, m)
}

func (s *session) muslDone(obj *loaded, m *Missing) (*loaded, *Missing) {
	if obj != nil {
		return obj, nil
	}
	return nil, m
}

// muslSysPath reads $PREFIX/etc/ld-musl-$ARCH.path, where $PREFIX is the
// directory above the one holding the interpreter (so "/lib/ld-musl-*"
// reads "/etc/..."). Entries are separated by newlines or colons.
func (s *session) muslSysPath() []string {
	if s.muslPath != nil {
		return s.muslPath
	}
	def := []string{"/lib", "/usr/local/lib", "/usr/lib"}
	s.muslPath = def
	if s.ldso == nil {
		return def
	}
	interp := s.ldso.path
	base := path.Base(interp)
	arch := strings.TrimSuffix(strings.TrimPrefix(base, "ld-musl-"), ".so.1")
	prefix := path.Dir(path.Dir(interp))
	if prefix == "/" {
		prefix = ""
	}
	file := prefix + "/etc/ld-musl-" + arch + ".path"
	b, err := s.r.fs.readFile(file, 1<<16)
	if err != nil {
		return def
	}
	if _, err := s.r.addPath(s.out, file, &reason{label: file, parent: s.ldso.why}); err != nil {
		s.out.problem(err)
	}
	dirs := []string{}
	for _, d := range strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' || r == ':' }) {
		if d = strings.TrimSpace(d); strings.HasPrefix(d, "/") {
			dirs = append(dirs, path.Clean(d))
		}
	}
	s.muslPath = dirs
	return dirs
}
