package freeze

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseMtime parses a --mtime value: RFC 3339 ("2024-01-02T03:04:05Z") or
// "@" followed by Unix seconds, as SOURCE_DATE_EPOCH gives them ("@1700000000").
func ParseMtime(s string) (time.Time, error) {
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		// Digits only: ParseInt would also take "+5" and "-0".
		if rest == "" || len(rest) > 12 || strings.TrimLeft(rest, "0123456789") != "" {
			return time.Time{}, fmt.Errorf("mtime %q: want @ and Unix seconds, like @1700000000", s)
		}
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("mtime %q: %w", s, err)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("mtime %q: want RFC 3339 (2024-01-02T03:04:05Z) or @UNIXSECONDS", s)
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("mtime %q: year out of range 1970..9999", s)
	}
	return t.UTC(), nil
}

// ParseCommand parses an --entrypoint value: a JSON array of strings
// (["/bin/sh", "-c", "echo hi"]), as in a Dockerfile's exec form, or else
// words separated by blanks ("/usr/bin/python3 -u").
func ParseCommand(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	var argv []string
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &argv); err != nil {
			return nil, fmt.Errorf("entrypoint %q: not a JSON array of strings: %w", s, err)
		}
	} else {
		argv = strings.Fields(s)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("entrypoint %q: empty command", s)
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("entrypoint %q: NUL byte", s)
		}
	}
	return argv, nil
}
