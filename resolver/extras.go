package resolver

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/vzfs/vzfs/spec"
)

// Extra names a group of runtime files that programs load with dlopen or
// open by name, which no ELF header mentions.
type Extra string

// The extras, as chosen with --with.
const (
	// ExtraBase: mount points /dev /proc /sys /tmp /run, /etc/ld.so.cache,
	// and libgcc_s.so.1 for glibc programs (used for unwinding and thread
	// cancellation).
	ExtraBase Extra = "base"
	// ExtraNSS: nsswitch.conf, passwd, group, hosts, resolv.conf and the
	// libnss_* modules nsswitch.conf names.
	ExtraNSS Extra = "nss"
	// ExtraCerts: the CA bundle and its symlinks.
	ExtraCerts Extra = "certs"
	// ExtraLocale: locale-archive, C.utf8 and the gconv modules.
	ExtraLocale Extra = "locale"
	// ExtraTZData: /etc/localtime and zoneinfo.
	ExtraTZData Extra = "tzdata"
)

// AllExtras lists every extra, in documentation order.
var AllExtras = []Extra{ExtraBase, ExtraNSS, ExtraCerts, ExtraLocale, ExtraTZData}

// DefaultExtras is what "" means to ParseExtras.
var DefaultExtras = []Extra{ExtraNSS, ExtraBase}

// ParseExtras parses a comma-separated list of extras: "" is the default
// (nss,base), "none" is none, "all" is every extra.
func ParseExtras(list string) ([]Extra, error) {
	list = strings.TrimSpace(list)
	switch list {
	case "":
		return slices.Clone(DefaultExtras), nil
	case "none":
		return []Extra{}, nil
	case "all":
		return slices.Clone(AllExtras), nil
	}
	var out []Extra
	for _, w := range strings.Split(list, ",") {
		e := Extra(strings.TrimSpace(w))
		if e == "none" {
			return nil, fmt.Errorf("--with: \"none\" cannot be combined with other extras")
		}
		if !slices.Contains(AllExtras, e) {
			return nil, fmt.Errorf("--with: unknown extra %q (want base, nss, certs, locale, tzdata, all or none)", w)
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (r *Resolver) has(e Extra) bool { return slices.Contains(r.o.With, e) }

// readEtc reads /etc/ld.so.preload and the nss module names, once.
func (r *Resolver) readEtc() {
	r.onceEtc.Do(func() {
		if b, err := r.fs.readFile("/etc/ld.so.preload", 1<<16); err == nil {
			r.preload = strings.FieldsFunc(string(b), func(c rune) bool {
				return c == ' ' || c == '\t' || c == '\n' || c == ':'
			})
		}
		if b, err := r.fs.readFile("/etc/nsswitch.conf", 1<<20); err == nil {
			r.nssNames = nssModules(string(b))
		}
	})
}

// nssModules returns the service names nsswitch.conf uses, in first-use
// order: "passwd: files systemd" gives files and systemd. Actions in
// brackets are not services.
func nssModules(conf string) []string {
	var out []string
	for _, line := range strings.Split(conf, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		_, svcs, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		inAction := false
		for _, w := range strings.Fields(svcs) {
			if strings.HasPrefix(w, "[") {
				inAction = true
			}
			if inAction {
				if strings.HasSuffix(w, "]") {
					inAction = false
				}
				continue
			}
			valid := w != ""
			for _, c := range w {
				if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
					valid = false
				}
			}
			if valid && !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}

// extras adds the file-based extras; the libraries among them (libgcc_s,
// libnss_*) go through each glibc program's own search.
func (r *Resolver) extras() *partial {
	out := &partial{}
	optional := func(e Extra, p string, subtree bool) {
		why := &reason{label: "extra " + string(e)}
		w := r.fs.walk(p)
		if w.err != nil {
			// A missing optional extra is not an error, but a link that
			// is there still belongs in the image.
			if !errors.Is(w.err, fs.ErrNotExist) {
				var le *LinkError
				if errors.As(w.err, &le) {
					for _, l := range w.links {
						out.add(spec.Entry{Path: l}, why)
					}
				}
			}
			return
		}
		if subtree {
			r.addSubtree(out, p, why)
		} else {
			r.file(out, p, why, 0)
		}
	}
	for _, e := range r.o.With {
		switch e {
		case ExtraBase:
			for _, d := range []string{"/dev", "/proc", "/sys", "/tmp", "/run"} {
				optional(e, d, false)
			}
			optional(e, "/etc/ld.so.cache", false)
		case ExtraNSS:
			for _, f := range []string{"/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf", "/etc/host.conf", "/etc/gai.conf"} {
				optional(e, f, false)
			}
		case ExtraCerts:
			for _, f := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem", "/etc/pki/tls/cacert.pem", "/etc/ssl/ca-bundle.pem", "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"} {
				optional(e, f, false)
			}
		case ExtraLocale:
			optional(e, "/usr/lib/locale/locale-archive", false)
			// Debian ships C.UTF-8 outside the archive.
			optional(e, "/usr/lib/locale/C.utf8", true)
			for _, d := range []string{"/usr/lib/x86_64-linux-gnu/gconv", "/usr/lib/aarch64-linux-gnu/gconv", "/usr/lib/i386-linux-gnu/gconv", "/usr/lib64/gconv", "/usr/lib/gconv"} {
				optional(e, d, true)
			}
		case ExtraTZData:
			optional(e, "/etc/localtime", false)
			optional(e, "/etc/timezone", false)
			optional(e, "/usr/share/zoneinfo", true)
		}
	}
	return out
}
