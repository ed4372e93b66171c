package main

import (
	"io"

	"github.com/vzfs/vzfs/spec"
)

// writeSpec sends a produced spec where -o and --append say: stdout, a file
// replaced atomically, or merged into an existing file.
func writeSpec(s *spec.Spec, output string, appendTo bool, stdout io.Writer) error {
	var err error
	switch {
	case output == "":
		err = s.Write(stdout)
	case appendTo:
		err = spec.MergeFile(output, s)
	default:
		err = s.WriteFile(output)
	}
	if err != nil {
		return failErr(err)
	}
	return nil
}
