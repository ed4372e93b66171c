package fs

import (
	"errors"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrStale reports a host file that is no longer the one the view served:
// it was replaced, or changed type, after the tree was built or looked up.
var ErrStale = unix.ESTALE

// noOpenat2 is set once openat2 has said ENOSYS (kernels before 5.6, or a
// seccomp filter), so later opens go straight to the per-component walk.
var noOpenat2 atomic.Bool

// OpenHost opens the host path p (clean and absolute) without following a
// symlink anywhere on the way: a symlink in any component gives ELOOP. The
// view serves symlinks verbatim and lets the kernel resolve them inside the
// view, so a data open that followed one would read a file the spec does not
// list, perhaps one swapped in after mount to point at /etc/shadow.
//
// flags are open(2) flags; O_CLOEXEC and O_NOFOLLOW are always added.
func OpenHost(p string, flags int) (*os.File, error) {
	fd, err := openHostFd(p, flags)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

func openHostFd(p string, flags int) (int, error) {
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	if !noOpenat2.Load() {
		how := unix.OpenHow{
			Flags:   uint64(flags),
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		}
		for {
			fd, err := unix.Openat2(unix.AT_FDCWD, p, &how)
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			if err != unix.ENOSYS {
				return fd, err
			}
			noOpenat2.Store(true)
			break
		}
	}
	return openWalk(p, flags)
}

// openWalk is OpenHost without openat2: one openat per component, each with
// O_NOFOLLOW, each relative to the directory opened before it.
func openWalk(p string, flags int) (int, error) {
	if p == "" || p[0] != '/' {
		return -1, unix.EINVAL
	}
	dir, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	rest := strings.Trim(p, "/")
	if rest == "" {
		unix.Close(dir)
		return unix.Open("/", flags, 0)
	}
	for {
		name, tail, last := rest, "", true
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			name, tail, last = rest[:i], rest[i+1:], false
		}
		if name == "." || name == ".." {
			unix.Close(dir)
			return -1, unix.EINVAL
		}
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if last {
			f = flags
		}
		fd, err := unix.Openat(dir, name, f, 0)
		if err != nil {
			if err == unix.ENOTDIR && !last {
				// O_NOFOLLOW|O_DIRECTORY on a symlink says ENOTDIR; be
				// as precise as openat2 is.
				var st unix.Stat_t
				if unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
					err = unix.ELOOP
				}
			}
			unix.Close(dir)
			return -1, err
		}
		unix.Close(dir)
		if last {
			return fd, nil
		}
		dir, rest = fd, tail
	}
}

// isGone reports whether err means the host path is no longer what it was:
// vanished, or a component turned into a symlink or a file.
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}
