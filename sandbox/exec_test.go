package sandbox

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// The capabilities that let root out of a chroot, or into the host's
// kernel, are never kept.
func TestKeptCapsExcludeEscapes(t *testing.T) {
	m := keptMask()
	for _, c := range []struct {
		name string
		c    uint
	}{
		{"SYS_CHROOT", unix.CAP_SYS_CHROOT}, {"SYS_ADMIN", unix.CAP_SYS_ADMIN}, {"SYS_PTRACE", unix.CAP_SYS_PTRACE},
		{"SYS_MODULE", unix.CAP_SYS_MODULE}, {"SYS_RAWIO", unix.CAP_SYS_RAWIO}, {"DAC_READ_SEARCH", unix.CAP_DAC_READ_SEARCH},
		{"MKNOD", unix.CAP_MKNOD}, {"SYS_BOOT", unix.CAP_SYS_BOOT}, {"SETPCAP", unix.CAP_SETPCAP}, {"SETFCAP", unix.CAP_SETFCAP},
		{"NET_ADMIN", unix.CAP_NET_ADMIN}, {"BPF", unix.CAP_BPF}, {"CHECKPOINT_RESTORE", unix.CAP_CHECKPOINT_RESTORE},
	} {
		if m&(1<<c.c) != 0 {
			t.Errorf("CAP_%s is kept", c.name)
		}
	}
	for _, c := range []uint{unix.CAP_DAC_OVERRIDE, unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_CHOWN} {
		if m&(1<<c) == 0 {
			t.Errorf("capability %d, which root in a build needs, is dropped", c)
		}
	}
}

func TestHiddenEntries(t *testing.T) {
	sp := spec.New()
	for _, p := range []string{"/bin/sh", "/tmp", "/dev", "/proc", "/tmp/a", "/run/lock/x", "/sys/kernel", "/dev/null", "/tmpfile", "/runner/x", "/usr/tmp/x"} {
		sp.AddPath(p)
	}
	sp.Add(spec.Entry{Path: "/run", Subtree: true})
	got, n := hiddenEntries(sp, 3)
	if n != 5 {
		t.Errorf("count %d, want 5 (/tmp/a /run/lock/x /sys/kernel /dev/null /run/**)", n)
	}
	if len(got) != 3 {
		t.Errorf("named %q; want the first 3", got)
	}
	all, _ := hiddenEntries(sp, 100)
	want := map[string]bool{"/tmp/a": true, "/run/lock/x": true, "/sys/kernel": true, "/dev/null": true, "/run/**": true}
	seen := map[string]bool{}
	for _, p := range all {
		seen[p] = true
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("%s not reported hidden; got %q", p, all)
		}
	}
	for _, p := range all {
		if !want[p] {
			t.Errorf("%s reported hidden", p)
		}
	}
	if got, n := hiddenEntries(spec.New(spec.Entry{Path: "/bin/sh"}, spec.Entry{Path: "/tmp"}, spec.Entry{Path: "/run"}), 10); n != 0 || got != nil {
		t.Errorf("mount points alone reported hidden: %q", got)
	}
}

func TestBindAttr(t *testing.T) {
	for _, tc := range []struct {
		view View
		ro   bool
		want string
	}{
		{View{}, false, "nosuid,nodev"},
		{View{}, true, "ro,nosuid,nodev"},
		{View{Suid: true}, true, "ro,nodev"},
		{View{Suid: true, Dev: true}, false, ""},
	} {
		s := &sandbox{cfg: &config{Options: Options{View: tc.view}}}
		if got := attrNames(s.bindAttr(Bind{ReadOnly: tc.ro})); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("view %+v ro=%v: %q, want %q", tc.view, tc.ro, got, tc.want)
		}
	}
}
