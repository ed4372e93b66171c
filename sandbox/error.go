package sandbox

import (
	"fmt"
	"strconv"
	"strings"
)

// Exit codes a sandbox error carries; a command's own status is passed
// through unchanged.
const (
	ExitFailure   = 1   // vzfs itself failed while the command ran
	ExitUsage     = 2   // nothing ran: bad options, spec, bind source or host
	ExitCannotRun = 126 // the command was found but could not be executed
	ExitNotFound  = 127 // the command is not in the sandbox
)

// Error is a failure to set up or run the sandbox. Code is the exit status
// vzfs should end with; Hints teach the fix, one line each.
type Error struct {
	Code  int
	Err   error
	Hints []string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func usage(err error, hints ...string) *Error {
	return &Error{Code: ExitUsage, Err: err, Hints: hints}
}

func failure(err error, hints ...string) *Error {
	return &Error{Code: ExitFailure, Err: err, Hints: hints}
}

// The init reports to Run over a pipe (fd 4), one line per event:
//
//	OK                the command started
//	EXIT <n>          the command ended with status n; teardown follows
//	ERR <code>        setup failed; the next line is the error, the rest hints
//
// EOF without EXIT or ERR means the init died.

// status is what Run learned from the init.
type status struct {
	started bool
	exited  bool
	code    int
	err     *Error
}

// maxStatus bounds what Run reads from the init.
const maxStatus = 64 << 10

func parseStatus(b []byte) status {
	var st status
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case l == "OK":
			st.started = true
		case strings.HasPrefix(l, "EXIT "):
			n, err := strconv.Atoi(strings.TrimPrefix(l, "EXIT "))
			if err == nil && n >= 0 && n <= 255 {
				st.exited, st.code = true, n
			}
		case strings.HasPrefix(l, "ERR "):
			code, err := strconv.Atoi(strings.TrimPrefix(l, "ERR "))
			if err != nil || code < 1 || code > 255 {
				code = ExitFailure
			}
			msg := "sandbox setup failed"
			if i+1 < len(lines) && lines[i+1] != "" {
				msg = lines[i+1]
			}
			var hints []string
			for _, h := range lines[min(i+2, len(lines)):] {
				if h != "" {
					hints = append(hints, h)
				}
			}
			st.err = &Error{Code: code, Err: plainError(msg), Hints: hints}
			return st
		}
	}
	return st
}

// formatErr is the ERR record of e.
func formatErr(e *Error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ERR %d\n%s\n", e.Code, oneLine(e.Err.Error()))
	for _, h := range e.Hints {
		b.WriteString(oneLine(h) + "\n")
	}
	return b.String()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// plainError is an error message that crossed a process boundary.
type plainError string

func (e plainError) Error() string { return string(e) }
