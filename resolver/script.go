package resolver

import (
	"bytes"
	"fmt"
	"path"
	"strings"
)

// parseShebang splits a "#!" line as Linux's binfmt_script does: the
// interpreter, then everything after it as one optional argument.
func parseShebang(head []byte) (interp, arg string, ok bool) {
	line := head[2:]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	s := strings.Trim(string(line), " \t\r")
	if s == "" {
		return "", "", false
	}
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], strings.Trim(s[i+1:], " \t"), true
	}
	return s, "", true
}

// envProgram finds the program "/usr/bin/env ARG" runs: it skips options
// (with "-S" splitting the rest into words, as Linux passes it all as one
// argument) and NAME=VALUE assignments.
func envProgram(arg string) string {
	words := strings.Fields(arg)
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "--":
			if i+1 < len(words) {
				return words[i+1]
			}
			return ""
		case w == "-u" || w == "--unset" || w == "-C" || w == "--chdir":
			i++
		case strings.HasPrefix(w, "--split-string="):
			if rest := strings.TrimPrefix(w, "--split-string="); rest != "" {
				return rest
			}
		case strings.HasPrefix(w, "-S"):
			// "-Spython3" carries the first word glued to the option.
			if rest := strings.TrimPrefix(w, "-S"); rest != "" {
				return rest
			}
		case strings.HasPrefix(w, "-"):
		case strings.Contains(w, "="):
		default:
			return w
		}
	}
	return ""
}

// script adds the interpreter closure of a "#!" script, recursively.
func (r *Resolver) script(out *partial, p string, head []byte, why *reason, depth int) {
	interp, arg, ok := parseShebang(head)
	if !ok {
		return
	}
	if depth >= maxScriptDepth {
		out.problem(fmt.Errorf("%s: more than %d levels of #! interpreters", p, maxScriptDepth))
		return
	}
	if !strings.HasPrefix(interp, "/") {
		out.problem(fmt.Errorf("%s: interpreter %q is not an absolute path", p, interp))
		return
	}
	iw := &reason{label: interp, parent: why}
	r.file(out, interp, iw, depth+1)
	if path.Base(interp) != "env" {
		return
	}
	name := envProgram(arg)
	if name == "" {
		return
	}
	if !strings.HasPrefix(name, "/") {
		found, err := r.lookPath(name)
		if err != nil {
			out.problem(fmt.Errorf("%s: env program: %w", p, err))
			return
		}
		name = found
	}
	r.file(out, name, &reason{label: name, parent: iw}, depth+1)
}
