package tracer

import (
	"strings"
)

// call is one complete syscall line, split into its parts.
type call struct {
	name  string
	args  []string // top-level arguments, as printed
	ret   string   // "0", "-1", "?", "3", "0x7f..."
	errno string   // "ENOENT" when the call failed
	// retPath is the -y annotation of a returned descriptor, unescaped.
	retPath string
	// cut is set when the line was longer than MaxLine and only its start
	// is here: args may be incomplete and there is no result.
	cut bool
}

// failed reports whether the call returned an error.
func (c *call) failed() bool { return strings.HasPrefix(c.ret, "-") }

// succeeded reports whether the call returned without error. "?" (no
// return, as for a successful execve in a thread that was replaced) is not
// a success here.
func (c *call) succeeded() bool {
	return c.ret != "" && c.ret != "?" && !c.failed()
}

// splitCall splits "name(arg, arg) = ret ..." into a call. ok is false when
// the text is not a syscall line. A call whose closing parenthesis is
// missing is returned with cut set if allowCut is true.
func splitCall(s string, allowCut bool) (c call, ok bool) {
	return splitCallArgs(s, allowCut, nil)
}

// splitCallArgs is splitCall appending the arguments to args, so that a
// parser can reuse one slice for every line instead of growing a new one.
func splitCallArgs(s string, allowCut bool, args []string) (c call, ok bool) {
	c.args = args[:0]
	open := strings.IndexByte(s, '(')
	if open <= 0 {
		return c, false
	}
	c.name = s[:open]
	for i := 0; i < len(c.name); i++ {
		ch := c.name[i]
		if !(ch == '_' || ch == '?' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch >= 'A' && ch <= 'Z') {
			return c, false
		}
	}
	depth := 0
	start := open + 1
	i := start
	for i < len(s) {
		switch s[i] {
		case '"':
			i = skipString(s, i)
			continue
		case '<':
			// A -y annotation: everything up to '>' belongs to it; strace
			// escapes '<' and '>' inside it.
			if j := strings.IndexByte(s[i:], '>'); j >= 0 {
				i += j + 1
				continue
			}
			i = len(s)
			continue
		case '/':
			// A comment such as "/* 35 vars */".
			if strings.HasPrefix(s[i:], "/*") {
				if j := strings.Index(s[i:], "*/"); j >= 0 {
					i += j + 2
					continue
				}
			}
		case '(', '[', '{':
			depth++
		case ']', '}':
			depth--
		case ')':
			if depth == 0 {
				if arg := strings.TrimSpace(s[start:i]); arg != "" || len(c.args) > 0 {
					c.args = append(c.args, arg)
				}
				return parseResult(c, s[i+1:])
			}
			depth--
		case ',':
			if depth == 0 {
				c.args = append(c.args, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
		i++
	}
	if !allowCut {
		return c, false
	}
	c.args = append(c.args, strings.TrimSpace(s[start:]))
	c.cut = true
	return c, true
}

// skipString returns the index just past the quoted string starting at
// s[i] == '"', including a truncation mark "...".
func skipString(s string, i int) int {
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			i++
			if strings.HasPrefix(s[i:], "...") {
				i += 3
			}
			return i
		}
	}
	return len(s)
}

// parseResult parses what follows the closing parenthesis:
// " = -1 ENOENT (No such file or directory)" or " = 3</etc/passwd>".
func parseResult(c call, rest string) (call, bool) {
	rest = strings.TrimLeft(rest, " ")
	if !strings.HasPrefix(rest, "=") {
		return c, false
	}
	rest = strings.TrimLeft(rest[1:], " ")
	end := 0
	for end < len(rest) && rest[end] != ' ' && rest[end] != '<' {
		end++
	}
	c.ret = rest[:end]
	if c.ret == "" {
		return c, false
	}
	rest = rest[end:]
	if strings.HasPrefix(rest, "<") {
		if p, ok := annotation(rest); ok {
			c.retPath = p
		}
		return c, true
	}
	if c.failed() {
		rest = strings.TrimLeft(rest, " ")
		if j := strings.IndexByte(rest, ' '); j >= 0 {
			rest = rest[:j]
		}
		c.errno = rest
	}
	return c, true
}

// annotation returns the unescaped path of a -y annotation in s, as in
// "AT_FDCWD</etc>" or "3</usr/lib/libc.so.6>". ok is false when there is
// none or it does not name a path on a file system.
func annotation(s string) (string, bool) {
	i := strings.IndexByte(s, '<')
	if i < 0 || !strings.HasSuffix(s, ">") || len(s) < i+2 {
		return "", false
	}
	raw := s[i+1 : len(s)-1]
	if raw == "" || raw[0] != '/' || strings.HasSuffix(raw, " (deleted)") {
		// sockets, pipes, anon inodes and deleted files have no usable path.
		return "", false
	}
	p, ok := unescape(raw)
	if !ok || strings.IndexByte(p, 0) >= 0 {
		return "", false
	}
	return p, true
}

// quoted parses a strace string argument. truncated is set when strace cut
// it short ("abc"...); ok is false when arg is not a string (NULL, an
// address).
func quoted(arg string) (s string, truncated, ok bool) {
	if len(arg) < 2 || arg[0] != '"' {
		return "", false, false
	}
	end := skipString(arg, 0)
	if end != len(arg) {
		return "", false, false
	}
	if strings.HasSuffix(arg, "\"...") {
		return "", true, true
	}
	if arg[len(arg)-1] != '"' || len(arg) < 2 {
		return "", false, false
	}
	s, ok = unescape(arg[1 : len(arg)-1])
	return s, false, ok
}

// unescape decodes strace's C escapes: \" \\ \n \t \r \v \f \a \b, octal
// \ooo (one to three digits) and \xNN.
func unescape(s string) (string, bool) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		if i >= len(s) {
			return "", false
		}
		switch c = s[i]; c {
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		case 'v':
			b = append(b, '\v')
		case 'f':
			b = append(b, '\f')
		case 'a':
			b = append(b, '\a')
		case 'b':
			b = append(b, '\b')
		case 'x':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", false
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := 0
			n := 0
			for n < 3 && i < len(s) && s[i] >= '0' && s[i] <= '7' {
				v = v*8 + int(s[i]-'0')
				i++
				n++
			}
			i--
			if v > 0xff {
				return "", false
			}
			b = append(b, byte(v))
		default:
			// \" \\ \' \? and any other escaped character stand for
			// themselves.
			b = append(b, c)
		}
	}
	return string(b), true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// hasFlag reports whether a flags argument such as "O_RDONLY|O_CLOEXEC" or
// "{flags=O_CREAT|O_WRONLY, mode=0644}" holds the named flag.
func hasFlag(arg, flag string) bool {
	for len(arg) > 0 {
		i := strings.Index(arg, flag)
		if i < 0 {
			return false
		}
		before := i == 0 || !isIdent(arg[i-1])
		after := i+len(flag) == len(arg) || !isIdent(arg[i+len(flag)])
		if before && after {
			return true
		}
		arg = arg[i+len(flag):]
	}
	return false
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}
