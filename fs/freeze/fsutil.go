package freeze

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	vfs "github.com/vzfs/vzfs/fs"
)

// tempMarker sits in the name of every temporary file or directory freeze
// makes beside a destination: ".BASE.vzfs-tmp-PID-RANDOM". The PID lets a
// later run tell a leftover of a killed run from the work of a live one.
const tempMarker = ".vzfs-tmp-"

func tempPrefix(base string) string { return "." + base + tempMarker }

func tempName(base string) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return tempPrefix(base) + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(r[:])
}

// staleTemp reports whether name is a temporary of base left by a process
// that no longer runs.
func staleTemp(name, base string) bool {
	rest, ok := strings.CutPrefix(name, tempPrefix(base))
	if !ok {
		return false
	}
	pidStr, rnd, ok := strings.Cut(rest, "-")
	if !ok || len(rnd) != 12 {
		return false
	}
	if _, err := hex.DecodeString(rnd); err != nil {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return false
	}
	// EPERM means the process exists under another user: not stale.
	return unix.Kill(pid, 0) == unix.ESRCH
}

// cleanStale removes the temporaries of base in the directory parentFd that
// killed runs left behind. Only names of freeze's exact pattern whose PID is
// gone are touched; removal never follows a symlink.
func cleanStale(parentFd int, parent, base string, log *zap.Logger) {
	names, err := readNames(parentFd)
	if err != nil {
		log.Warn("cannot list destination directory for leftovers", zap.String("dir", parent), zap.Error(err))
		return
	}
	for _, n := range names {
		if !staleTemp(n, base) {
			continue
		}
		log.Info("removing leftover of an interrupted freeze", zap.String("path", filepath.Join(parent, n)))
		if err := removeAllAt(parentFd, n); err != nil {
			log.Warn("cannot remove leftover", zap.String("path", filepath.Join(parent, n)), zap.Error(err))
		}
	}
}

// readNames lists the directory open at fd (without moving the caller's
// offset: it reads through its own descriptor).
func readNames(fd int) ([]string, error) {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dfd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

// removeAllAt removes name in dirfd and everything below it. It never
// follows a symlink: a symlink is unlinked, and directories are opened with
// O_NOFOLLOW relative to their parent, so a planted link cannot steer it
// out of the tree.
func removeAllAt(dirfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		err := unix.Unlinkat(dirfd, name, 0)
		if err == unix.ENOENT {
			err = nil
		}
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	// A frozen tree may hold 0555 or 0000 directories; a non-root owner
	// must open them up to empty them.
	if st.Mode&0o700 != 0o700 {
		_ = unix.Fchmod(fd, 0o700)
	}
	names, err := readNames(fd)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if err == unix.ENOENT {
		err = nil
	}
	return err
}

// openParent opens the directory that is to hold dest, as an O_PATH
// descriptor, and returns it with dest's base name. No component of the
// parent may be a symlink: the user names DEST, and a link swapped into its
// path would otherwise redirect the whole freeze. The error then names the
// resolved path to use instead.
func openParent(dest string) (fd int, parent, base string, err error) {
	abs, err := filepath.Abs(dest)
	if err != nil {
		return -1, "", "", err
	}
	parent, base = filepath.Dir(abs), filepath.Base(abs)
	if base == "/" || base == "." || base == ".." {
		return -1, "", "", fmt.Errorf("%s: not a usable destination", dest)
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err = unix.Openat2(unix.AT_FDCWD, parent, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	if err == unix.ENOSYS {
		fd, err = unix.Open(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err == unix.ELOOP {
		if real, rerr := filepath.EvalSymlinks(parent); rerr == nil {
			return -1, "", "", fmt.Errorf("%s: its parent %s goes through a symlink; freeze does not write through symlinks (use %s)", dest, parent, filepath.Join(real, base))
		}
		return -1, "", "", fmt.Errorf("%s: its parent %s goes through a symlink; freeze does not write through symlinks", dest, parent)
	}
	if err != nil {
		return -1, "", "", fmt.Errorf("opening %s: %w", parent, err)
	}
	return fd, parent, base, nil
}

// createTemp makes an empty temporary file beside base in parentFd and
// returns it (read-write) with its name.
func createTemp(parentFd int, parent, base string) (*os.File, string, error) {
	for range 10 {
		name := tempName(base)
		fd, err := unix.Openat(parentFd, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, "", destErr(filepath.Join(parent, base), "creating a temporary file", err)
		}
		return os.NewFile(uintptr(fd), filepath.Join(parent, name)), name, nil
	}
	return nil, "", fmt.Errorf("%s: cannot pick a temporary name", filepath.Join(parent, base))
}

// openEntry opens the host file p, which the walk stat'ed as st, with no
// symlink followed anywhere on the path, and checks that it is still that
// inode: data, links and xattrs then come from what the view served, never
// from a file swapped in since. It returns the file's stat as of now (the
// size may have changed since the walk).
func openEntry(p string, st *unix.Stat_t, flags int) (*os.File, *unix.Stat_t, error) {
	f, err := vfs.OpenHost(p, flags)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", p, err)
	}
	var now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &now); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", p, err)
	}
	if now.Dev != st.Dev || now.Ino != st.Ino {
		f.Close()
		return nil, nil, fmt.Errorf("%s: replaced on the host during the freeze: %w", p, vfs.ErrStale)
	}
	return f, &now, nil
}
