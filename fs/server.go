package fs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// DefaultTimeout is how long the kernel may cache entries, attributes and
// negative lookups. Host files are treated as static while mounted, so this
// is long; MountOptions.Timeout (vzfs mount --revalidate) shortens it.
const DefaultTimeout = time.Hour

// MountOptions configures a mount. The zero value is the default: read-only,
// nosuid, nodev, allow_other, long caches, passthrough when possible.
type MountOptions struct {
	// FsName is shown as the mount's source in mount(8) and
	// /proc/self/mountinfo; vzfs passes the spec's absolute path.
	FsName string
	// Timeout overrides DefaultTimeout for entries, attributes and negative
	// lookups. Negative means 0: ask the host on every access.
	Timeout time.Duration
	// Suid and Dev lift nosuid and nodev.
	Suid, Dev bool
	// NoAllowOther keeps other users out of the mount. By default they
	// are let in, since chroots run programs as other users.
	NoAllowOther bool
	// NoPassthrough turns kernel FUSE passthrough off, so reads go through
	// the daemon (for comparisons and old kernels).
	NoPassthrough bool
	// Logger gets the server's logs; nil discards them.
	Logger *zap.Logger
	// Debug logs every FUSE request.
	Debug bool
	// Learn turns learn mode on: a name the spec lacks is served from
	// the host when the host has it, after Learn.Learn recorded it, and
	// Learn.Miss hears of names that exist nowhere. Listings then show
	// whole host directories, and negative lookups are not cached, so
	// every miss reaches the daemon. See NeverLearned for what is never
	// served.
	Learn Learner
}

// MountErrorKind says what is wrong with a mountpoint.
type MountErrorKind int

// Mountpoint problems found before mounting.
const (
	MountpointMissing MountErrorKind = iota + 1 // does not exist
	MountpointNotDir                            // is not a directory
	MountpointBusy                              // already holds a vzfs mount
	MountpointStale                             // holds a dead FUSE mount (ENOTCONN)
	MountNoHelper                               // not root, and no fusermount3
)

// MountError reports a mountpoint that cannot be used, with a hint the
// command line shows as is.
type MountError struct {
	Kind MountErrorKind
	Path string
	Err  error
	Hint string
}

func (e *MountError) Error() string {
	var what string
	switch e.Kind {
	case MountpointMissing:
		what = "mountpoint does not exist"
	case MountpointNotDir:
		what = "mountpoint is not a directory"
	case MountpointBusy:
		what = "already a vzfs mount"
	case MountpointStale:
		what = "stale mount (transport endpoint is not connected)"
	case MountNoHelper:
		what = "cannot mount FUSE as non-root without fusermount3"
	}
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Path, what, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Path, what)
}

func (e *MountError) Unwrap() error { return e.Err }

// Server is a live mount of a Tree.
type Server struct {
	fuse *fuse.Server
	raw  *rawFS
	mnt  string
	done chan struct{}
}

// CheckMountpoint checks that mnt can take a vzfs mount: it exists, is a
// directory, and holds neither a vzfs mount nor a stale FUSE mount. It
// returns the absolute mountpoint, or a *MountError.
func CheckMountpoint(mnt string) (string, error) {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return "", err
	}
	stale := &MountError{Kind: MountpointStale, Path: abs, Hint: "clear it with 'vzfs umount " + abs + "' or mount again with --force"}
	m, mounted := FindMount(abs)
	if mounted && strings.HasPrefix(m.FSType, "fuse") {
		// stat may answer from the kernel's attribute cache even when
		// the daemon is dead; statfs always asks the daemon.
		var sfs unix.Statfs_t
		if err := unix.Statfs(abs, &sfs); errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) {
			return abs, stale
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		switch {
		case errors.Is(err, unix.ENOTCONN), errors.Is(err, unix.ECONNABORTED):
			return abs, stale
		case errors.Is(err, unix.ENOENT):
			return abs, &MountError{Kind: MountpointMissing, Path: abs, Hint: "create it first: mkdir -p " + abs}
		default:
			return abs, &MountError{Kind: MountpointMissing, Path: abs, Err: err}
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return abs, &MountError{Kind: MountpointNotDir, Path: abs}
	}
	if mounted && m.FSType == "fuse."+FSType {
		return abs, &MountError{Kind: MountpointBusy, Path: abs, Hint: "unmount it first: vzfs umount " + abs}
	}
	return abs, nil
}

// FSType is the FUSE subtype vzfs mounts with; mount(8) shows "fuse.vzfs".
const FSType = "vzfs"

// MountInfo is one line of /proc/self/mountinfo.
type MountInfo struct {
	Point  string
	FSType string
	Source string
}

// FindMount returns the topmost mount on point (absolute) from
// /proc/self/mountinfo.
func FindMount(point string) (MountInfo, bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return MountInfo{}, false
	}
	defer f.Close()
	return parseMountinfo(f, point)
}

// parseMountinfo finds the last (topmost) mount on point in a mountinfo
// listing. Mountpoints are user-chosen names, so lines are read with a
// bound and malformed ones skipped.
func parseMountinfo(r io.Reader, point string) (MountInfo, bool) {
	var found MountInfo
	ok := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root point options [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(fields) {
			continue
		}
		if unescapeMountinfo(fields[4]) == point {
			found = MountInfo{Point: point, FSType: fields[sep+1], Source: unescapeMountinfo(fields[sep+2])}
			ok = true // keep going: the last one listed is on top
		}
	}
	return found, ok
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Mount serves t on mnt and returns once the kernel answers requests on
// it. As root it mounts with mount(2) directly; otherwise through
// fusermount3. Call Wait to block until it is unmounted, Unmount to end it.
func Mount(mnt string, t *Tree, o MountOptions) (*Server, error) {
	abs, err := CheckMountpoint(mnt)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			return nil, &MountError{Kind: MountNoHelper, Path: abs, Err: err, Hint: "install fuse3 (apt-get install fuse3), or mount as root"}
		}
	}
	raw := newRawFS(t, abs, o)
	fo := fuseOptions(o)
	srv, err := fuse.NewServer(raw, abs, fo)
	if err != nil {
		return nil, fmt.Errorf("mounting %s: %w", abs, err)
	}
	s := &Server{fuse: srv, raw: raw, mnt: abs, done: make(chan struct{})}
	go func() {
		srv.Serve()
		raw.closeAll()
		close(s.done)
	}()
	if err := srv.WaitMount(); err != nil {
		_ = s.Unmount()
		return nil, fmt.Errorf("waiting for mount %s: %w", abs, err)
	}
	if o.NoPassthrough || srv.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 || os.Geteuid() != 0 {
		raw.passthrough.Store(false)
		o.Logger.Info("file data is read through the daemon (FUSE passthrough off)",
			zap.Bool("disabled_by_option", o.NoPassthrough), zap.Bool("kernel_offers", srv.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0))
	} else {
		o.Logger.Info("file data is read by the kernel (FUSE passthrough on)")
	}
	return s, nil
}

// fuseOptions is the one place the FUSE mount is configured.
func fuseOptions(o MountOptions) *fuse.MountOptions {
	flags := uintptr(unix.MS_RDONLY)
	opts := []string{
		// The kernel checks access against the host modes and owners we
		// report. Without it FUSE lets everyone do everything the daemon
		// (root) may.
		"default_permissions",
		// Read-only at the superblock too, for fusermount3 mounts that do
		// not pass MS_RDONLY.
		"ro",
	}
	if !o.Suid {
		// A chroot must not become a way to run host setuid binaries
		// with privileges picked by whoever wrote the spec.
		flags |= unix.MS_NOSUID
		opts = append(opts, "nosuid")
	}
	if !o.Dev {
		flags |= unix.MS_NODEV
		opts = append(opts, "nodev")
	}
	fo := &fuse.MountOptions{
		Options: opts,
		// Programs in a chroot run as other users than the daemon.
		AllowOther: !o.NoAllowOther,
		// mount(8) shows "SPEC on MNT type fuse.vzfs".
		FsName: o.FsName,
		Name:   FSType,
		// As root: mount(2) with exactly these flags, no fusermount.
		// Non-root falls back to fusermount3.
		DirectMount:      true,
		DirectMountFlags: flags,
		// READDIRPLUS would stat every entry of every listed directory;
		// most listings (ls, shell globs, python's import scans) never
		// need those attributes, and lookups fetch them on demand.
		DisableReadDirPlus: true,
		// Symlinks are as static as everything else while mounted: let
		// the kernel keep their targets instead of asking on every path
		// walk through one (/lib, /bin and every realpath() of gcc's).
		// --revalidate asks for changes to show, so not then.
		EnableSymlinkCaching: o.Timeout == 0,
		// Reads may run in parallel on one file; the host file does not
		// care.
		MaxBackground: 64,
		// A panicking handler must not take the mount down with it.
		PanicHandler: func(v any) fuse.Status {
			o.Logger.Error("panic in FUSE handler", zap.Any("panic", v), zap.Stack("stack"))
			return fuse.EIO
		},
		Debug: o.Debug,
	}
	if o.Debug {
		fo.Logger = zap.NewStdLog(o.Logger)
	}
	if fo.FsName == "" {
		fo.FsName = FSType
	}
	return fo
}

// Mountpoint returns the absolute mountpoint.
func (s *Server) Mountpoint() string { return s.mnt }

// Passthrough reports whether file data is served by kernel passthrough.
func (s *Server) Passthrough() bool { return s.raw.passthrough.Load() }

// Wait blocks until the mount is gone (unmounted by anyone) and the server
// has released its host files.
func (s *Server) Wait() { <-s.done }

// Done is closed when the mount is gone.
func (s *Server) Done() <-chan struct{} { return s.done }

// Unmount unmounts and waits for the server to stop. A busy mount gives
// an error wrapping unix.EBUSY and stays mounted.
func (s *Server) Unmount() error {
	err := Unmount(s.mnt, false)
	if err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("unmounting %s: server did not stop", s.mnt)
	}
	return nil
}

// Unmount unmounts the FUSE mount at mnt: umount2 as root, fusermount3 -u
// otherwise. lazy detaches it even when busy (MNT_DETACH, fusermount3 -z).
func Unmount(mnt string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = unix.MNT_DETACH
		}
		for {
			err := unix.Unmount(mnt, flags)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return &os.PathError{Op: "unmount", Path: mnt, Err: err}
			}
			return nil
		}
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	var stderr bytes.Buffer
	cmd := exec.Command("fusermount3", append(args, "--", mnt)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "busy") {
			return &os.PathError{Op: "unmount", Path: mnt, Err: unix.EBUSY}
		}
		return fmt.Errorf("fusermount3 -u %s: %v: %s", mnt, err, msg)
	}
	return nil
}

// errno converts an error from a host syscall into a FUSE status.
func errno(err error) fuse.Status {
	if err == nil {
		return fuse.OK
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return fuse.Status(e)
	}
	return fuse.EIO
}

// counter hands out handle numbers.
type counter struct{ n atomic.Uint64 }

func (c *counter) next() uint64 { return c.n.Add(1) }
