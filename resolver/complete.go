package resolver

import (
	"github.com/vzfs/vzfs/spec"
)

// Complete adds to s the closure of its entries, as Resolve finds it, and
// returns what it added (entries s did not already cover) with the Result
// for reasons and problems. Subtree entries stay subtrees; only the
// symlinks leading to them are followed. It is how a hand-written spec
// gets the libraries and interpreters its programs load, before freeze.
func (r *Resolver) Complete(s *spec.Spec) (added []spec.Entry, res *Result, err error) {
	inputs := make([]string, len(s.Entries))
	for i, e := range s.Entries {
		inputs[i] = e.Path
		if e.Subtree {
			if e.Path == "/" {
				inputs[i] = spec.SubtreeSuffix
			} else {
				inputs[i] = e.Path + spec.SubtreeSuffix
			}
		}
	}
	res, err = r.Resolve(inputs...)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range res.Spec.Entries {
		if !s.Covers(e.Path) {
			added = append(added, e)
		}
	}
	s.Merge(res.Spec)
	return added, res, nil
}
