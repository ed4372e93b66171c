package freeze

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	vfs "github.com/vzfs/vzfs/fs"
)

// Link says how a directory freeze fills in file data.
type Link int

const (
	// LinkCopy copies data with copy_file_range, extent by extent, so
	// holes stay holes.
	LinkCopy Link = iota
	// LinkHard hard-links each file from the host: DEST then shares the
	// host's inodes, so a write to one is a write to the other. A file on
	// another filesystem than DEST (EXDEV), or one the kernel will not let
	// this user link (fs.protected_hardlinks), is copied instead, with one
	// warning saying why.
	LinkHard
	// LinkReflink clones each file with FICLONE (btrfs, XFS, bcachefs): a
	// copy that shares blocks until written. Where cloning fails the data
	// is copied.
	LinkReflink
)

// ParseLink parses --link: copy, hard or reflink.
func ParseLink(s string) (Link, error) {
	switch s {
	case "", "copy":
		return LinkCopy, nil
	case "hard":
		return LinkHard, nil
	case "reflink":
		return LinkReflink, nil
	}
	return 0, fmt.Errorf("--link %q: want copy, hard or reflink", s)
}

func (l Link) String() string {
	return [...]string{"copy", "hard", "reflink"}[l]
}

// DirOptions tune ToDir.
type DirOptions struct {
	Link Link
	// Update makes an existing DEST match the view. Files whose size,
	// mtime, mode and owner match (and, with Checksum, content and xattrs)
	// are kept: the new tree hard-links them from the old one. The new
	// tree is built beside DEST and swapped in with one
	// renameat2(RENAME_EXCHANGE), so DEST is at every instant either the
	// old tree or the new one. When nothing differs, nothing is written;
	// a directory whose mtime alone differs (as /tmp's does all the time)
	// does not count as a difference. Directories and symlinks of a
	// rebuilt tree are new inodes with the host's attributes.
	Update bool
	// Checksum compares file content and xattrs too under Update.
	Checksum bool
	// Jobs is the number of files copied at once; 0 picks a default.
	Jobs int
	// Log receives warnings (skipped entries, fallbacks); nil discards.
	Log *zap.Logger
	// Progress, if set, is told of every entry as it is written.
	Progress Progress
}

// ToDir freezes the view t as a directory tree at dest. dest must not exist,
// or be an empty directory, or, with o.Update, a tree to update. Nothing is
// ever written through a symlink: dest's parent may not contain one, dest
// may not be one, and everything below is created relative to directory
// descriptors opened with O_NOFOLLOW.
func ToDir(t *vfs.Tree, dest string, o DirOptions) (Stats, error) {
	start := time.Now()
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	parentFd, parent, base, err := openParent(dest)
	if err != nil {
		return Stats{}, err
	}
	defer unix.Close(parentFd)
	destPath := filepath.Join(parent, base)
	cleanStale(parentFd, parent, base, o.Log)

	oldFd := -1
	destExists := false
	var st unix.Stat_t
	switch err := unix.Fstatat(parentFd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
	case err != nil:
		return Stats{}, fmt.Errorf("lstat %s: %w", destPath, err)
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return Stats{}, fmt.Errorf("%s is a symlink; freeze does not write through symlinks", destPath)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return Stats{}, fmt.Errorf("%s exists and is not a directory", destPath)
	default:
		destExists = true
		fd, err := unix.Openat(parentFd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return Stats{}, fmt.Errorf("opening %s: %w", destPath, err)
		}
		names, err := readNames(fd)
		if err != nil {
			unix.Close(fd)
			return Stats{}, fmt.Errorf("reading %s: %w", destPath, err)
		}
		if !o.Update {
			unix.Close(fd)
			if len(names) > 0 {
				return Stats{}, &ExistsError{Path: destPath}
			}
		} else {
			oldFd = fd
			defer unix.Close(oldFd)
		}
	}

	if oldFd >= 0 {
		same, why, err := compareDir(t, oldFd, o.Checksum)
		if err != nil {
			return Stats{}, err
		}
		if same {
			o.Log.Debug("destination already matches the spec", zap.String("dest", destPath))
			return Stats{Unchanged: true, Elapsed: time.Since(start)}, nil
		}
		o.Log.Debug("destination differs from the spec", zap.String("dest", destPath), zap.String("first difference", why))
	}

	c := &counters{}
	w, err := newDirWriter(parentFd, parent, base, oldFd, destExists, o, c)
	if err != nil {
		return Stats{}, err
	}
	wo := walkOptions{log: o.Log, progress: o.Progress, c: c, lazyXattrs: o.Link == LinkHard}
	if err := freezeTree(t, w, wo); err != nil {
		w.Abort()
		return Stats{}, err
	}
	if err := w.Close(); err != nil {
		return Stats{}, err
	}
	s := c.stats()
	s.Elapsed = time.Since(start)
	return s, nil
}

// ExistsError is returned by ToDir for a DEST that holds something and no
// Update was asked for.
type ExistsError struct{ Path string }

func (e *ExistsError) Error() string {
	return e.Path + " exists and is not empty"
}

// dirFrame is a directory being filled: its descriptor in the new tree and,
// under Update, the same directory's descriptor in the old one (or -1).
type dirFrame struct {
	path string
	fd   int
	old  int
	e    *Entry // attributes, applied when the directory is done
}

type copyJob struct {
	dst *os.File
	e   *Entry
}

// dirWriter builds the tree in a temporary directory beside DEST.
type dirWriter struct {
	o          DirOptions
	c          *counters
	log        *zap.Logger
	root       bool // running as root: owners and device nodes can be made
	parentFd   int
	parent     string
	base       string
	dest       string
	tmp        string
	rootFd     int
	oldRoot    int
	destExists bool
	stack      []dirFrame

	jobs chan copyJob
	wg   sync.WaitGroup

	mu     sync.Mutex
	err    error
	warned map[string]bool
	closed bool
}

func newDirWriter(parentFd int, parent, base string, oldFd int, destExists bool, o DirOptions, c *counters) (*dirWriter, error) {
	w := &dirWriter{
		o: o, c: c, log: o.Log, root: os.Geteuid() == 0,
		parentFd: parentFd, parent: parent, base: base, dest: filepath.Join(parent, base),
		oldRoot: oldFd, destExists: destExists, warned: map[string]bool{},
	}
	for range 10 {
		name := tempName(base)
		err := unix.Mkdirat(parentFd, name, 0o700)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return nil, destErr(w.dest, "creating a temporary directory beside it", err)
		}
		w.tmp = name
		break
	}
	if w.tmp == "" {
		return nil, fmt.Errorf("%s: cannot pick a temporary name", w.dest)
	}
	fd, err := unix.Openat(parentFd, w.tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Unlinkat(parentFd, w.tmp, unix.AT_REMOVEDIR)
		return nil, fmt.Errorf("opening %s: %w", filepath.Join(parent, w.tmp), err)
	}
	w.rootFd = fd
	w.stack = []dirFrame{{path: "/", fd: fd, old: oldFd}}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = max(4, runtime.GOMAXPROCS(0))
	}
	w.jobs = make(chan copyJob, 2*jobs)
	for range jobs {
		w.wg.Add(1)
		go w.worker()
	}
	return w, nil
}

func (w *dirWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *dirWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// warnOnce logs a warning the first time key is seen, so that a tree of a
// thousand device nodes gives one line, not a thousand.
func (w *dirWriter) warnOnce(key, msg string, fields ...zap.Field) {
	w.mu.Lock()
	seen := w.warned[key]
	w.warned[key] = true
	w.mu.Unlock()
	if !seen {
		w.log.Warn(msg, fields...)
	}
}

// top returns the frame of e's parent directory, closing (and finishing)
// the directories the walk has left.
func (w *dirWriter) top(e *Entry) (*dirFrame, error) {
	parent := path.Dir(e.Path)
	for len(w.stack) > 1 && w.stack[len(w.stack)-1].path != parent {
		if err := w.pop(); err != nil {
			return nil, err
		}
	}
	f := &w.stack[len(w.stack)-1]
	if f.path != parent {
		return nil, fmt.Errorf("%s: reached out of walk order (parent %s not open)", e.Path, parent)
	}
	return f, nil
}

// pop finishes the innermost open directory: its attributes are applied
// only now, after its entries are made, so that its mtime is the host's
// and a read-only mode does not stop its own filling.
func (w *dirWriter) pop() error {
	f := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	var err error
	if f.e != nil {
		err = w.setFdAttrs(f.fd, f.e)
	}
	unix.Close(f.fd)
	if f.old >= 0 && f.old != w.oldRoot {
		unix.Close(f.old)
	}
	return err
}

func (w *dirWriter) Dir(e *Entry) error {
	if err := w.failed(); err != nil {
		return err
	}
	if e.Path == "/" {
		w.stack[0].e = e
		return nil
	}
	f, err := w.top(e)
	if err != nil {
		return err
	}
	name := e.Name()
	if err := unix.Mkdirat(f.fd, name, 0o700); err != nil {
		return w.errAt(e, "mkdir", err)
	}
	fd, err := unix.Openat(f.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return w.errAt(e, "opening new directory", err)
	}
	old := -1
	if f.old >= 0 {
		// A planted symlink in the old tree fails O_NOFOLLOW here; what is
		// below it is then written fresh.
		if o, err := unix.Openat(f.old, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			old = o
		}
	}
	w.stack = append(w.stack, dirFrame{path: e.Path, fd: fd, old: old, e: e})
	return nil
}

// errAt names the entry's place in DEST.
func (w *dirWriter) errAt(e *Entry, what string, err error) error {
	return destErr(filepath.Join(w.dest, e.Path), what, err)
}

func (w *dirWriter) File(e *Entry) error {
	if err := w.failed(); err != nil {
		return err
	}
	f, err := w.top(e)
	if err != nil {
		return err
	}
	name := e.Name()
	if f.old >= 0 && w.reusable(f.old, name, e) {
		if err := unix.Linkat(f.old, name, f.fd, name, 0); err == nil {
			w.c.linked.Add(1)
			return nil
		}
	}
	if w.o.Link == LinkHard {
		ok, err := w.linkHost(f.fd, name, e)
		if err != nil {
			return err
		}
		if ok {
			w.c.linked.Add(1)
			return nil
		}
	}
	fd, err := unix.Openat(f.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return w.errAt(e, "creating file", err)
	}
	w.jobs <- copyJob{dst: os.NewFile(uintptr(fd), filepath.Join(w.dest, e.Path)), e: e}
	return nil
}

// linkHost hard-links the host file into dir. It links the file it opened
// (through /proc/self/fd) rather than the path, so a symlink swapped into
// the host path cannot make it link something else. false means "copy it
// instead".
func (w *dirWriter) linkHost(dir int, name string, e *Entry) (bool, error) {
	// A privileged binary linked into DEST would outlive the host's next
	// security update of it: the package manager replaces the path, and
	// the old setuid or capable inode lives on in the tree. Copy those.
	if e.Stat.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 || hasCapability(e.Xattrs) {
		w.warnOnce("privileged", "--link hard: setuid, setgid and file-capability binaries are copied, not linked, so that host security updates are not undone in the tree",
			zap.String("first", e.HostPath))
		return false, nil
	}
	// With O_PATH and O_NOFOLLOW a final symlink is opened itself.
	src, _, err := openEntry(e.HostPath, &e.Stat, unix.O_PATH)
	if err != nil {
		return false, err
	}
	defer src.Close()
	err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", src.Fd()), dir, name, unix.AT_SYMLINK_FOLLOW)
	switch err {
	case nil:
		return true, nil
	case unix.EXDEV:
		w.warnOnce("exdev:"+fmt.Sprint(e.Stat.Dev), "--link hard: host file is on another filesystem than the destination; copying files from that filesystem instead",
			zap.String("first", e.HostPath), zap.String("dest", w.dest))
		return false, nil
	case unix.EPERM, unix.EACCES:
		w.warnOnce("eperm", "--link hard: the kernel refuses to link some host files for this user (fs.protected_hardlinks); copying them instead",
			zap.String("first", e.HostPath))
		return false, nil
	case unix.EMLINK:
		w.warnOnce("emlink", "--link hard: host file has too many links; copying it", zap.String("first", e.HostPath))
		return false, nil
	}
	return false, w.errAt(e, "hard-linking from "+e.HostPath, err)
}

// reusable reports whether the old tree's name in dir can stand for e
// unchanged: a regular file with the same size, mtime, mode and owner (and,
// with Checksum, the same bytes and xattrs).
func (w *dirWriter) reusable(dir int, name string, e *Entry) bool {
	var st unix.Stat_t
	if unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	if !sameFileMeta(&st, &e.Stat) {
		return false
	}
	if w.o.Checksum {
		same, err := sameContent(dir, name, e)
		return err == nil && same
	}
	return true
}

func (w *dirWriter) worker() {
	defer w.wg.Done()
	for j := range w.jobs {
		if w.failed() == nil {
			if err := w.copyFile(j.dst, j.e); err != nil {
				w.fail(err)
			}
		}
		j.dst.Close()
	}
}

func (w *dirWriter) copyFile(dst *os.File, e *Entry) error {
	src, st, err := openEntry(e.HostPath, &e.Stat, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer src.Close()
	cloned := false
	if w.o.Link == LinkReflink {
		if err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd())); err == nil {
			cloned = true
		} else {
			w.warnOnce("reflink", "--link reflink: cannot clone here; copying instead", zap.String("first", e.HostPath), zap.Error(err))
		}
	}
	if !cloned {
		short, err := copyData(int(src.Fd()), int(dst.Fd()), st)
		if err != nil {
			return copyErr(e.HostPath, dst.Name(), err)
		}
		if short {
			w.log.Warn("host file shrank while copied; padded to its listed size", zap.String("path", e.HostPath))
		}
	}
	if w.o.Link == LinkHard {
		// The walk left xattrs to linkHost, which could not link this one.
		if e.Xattrs, err = readXattrsFd(int(src.Fd()), e.HostPath); err != nil {
			return err
		}
	}
	w.c.copied.Add(1)
	return w.setFdAttrs(int(dst.Fd()), e)
}

// copyErr tells a read error (host) from a write error (destination); the
// copy helpers mark which side failed.
func copyErr(src, dst string, err error) error {
	var re readError
	if errors.As(err, &re) {
		return fmt.Errorf("reading %s: %w", src, re.err)
	}
	return destErr(dst, "writing", err)
}

type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

// copyData copies st.Size bytes from src to dst. A file with fewer blocks
// than its size has holes: then only its data extents (SEEK_DATA,
// SEEK_HOLE) are copied and the destination keeps the holes. Each extent
// goes through copy_file_range, which copies in the kernel (or shares
// blocks where the filesystem can); pread and pwrite take over where it is
// not supported. short reports a source that ended early.
func copyData(src, dst int, st *unix.Stat_t) (short bool, err error) {
	size := st.Size
	if size == 0 {
		return false, nil
	}
	sparse := st.Blocks*512 < size
	var off int64
	for off < size {
		data, hole := off, size
		if sparse {
			d, err := unix.Seek(src, off, unix.SEEK_DATA)
			if err == unix.ENXIO {
				break // only a hole is left
			}
			if err == nil {
				data = d
				if h, err := unix.Seek(src, data, unix.SEEK_HOLE); err == nil {
					hole = min(h, size)
				}
			} else if err != unix.EINVAL && err != unix.EOPNOTSUPP {
				return false, readError{err}
			}
		}
		if data >= size {
			break
		}
		n, err := copyRange(src, dst, data, hole-data)
		if err != nil {
			return false, err
		}
		if n < hole-data {
			short = true
			break
		}
		off = hole
	}
	// A trailing hole, or a short source, still needs the listed size.
	if err := unix.Ftruncate(dst, size); err != nil {
		return short, err
	}
	return short, nil
}

// copyRange copies n bytes at off from src to the same offset in dst and
// returns how many it copied; fewer means the source ended.
func copyRange(src, dst int, off, n int64) (int64, error) {
	roff, woff := off, off
	var done int64
	useCFR := true
	for done < n {
		if useCFR {
			k, err := unix.CopyFileRange(src, &roff, dst, &woff, int(min(n-done, 1<<30)), 0)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EXDEV || err == unix.EINVAL || err == unix.EOPNOTSUPP || err == unix.ENOSYS:
				useCFR = false
				continue
			case err != nil:
				if err == unix.EIO || err == unix.EISDIR || err == unix.EBADF {
					return done, readError{err}
				}
				return done, err
			case k == 0:
				// Some files (procfs, sysfs) report a size that
				// copy_file_range will not copy; read them instead.
				useCFR = false
				continue
			}
			done += int64(k)
			continue
		}
		k, err := preadPwrite(src, dst, off+done, n-done)
		done += k
		if err != nil {
			return done, err
		}
		if k == 0 {
			return done, nil
		}
	}
	return done, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func preadPwrite(src, dst int, off, n int64) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var done int64
	for done < n {
		k, err := unix.Pread(src, buf[:min(int64(len(buf)), n-done)], off+done)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, readError{err}
		}
		if k == 0 {
			return done, nil
		}
		for w := 0; w < k; {
			m, err := unix.Pwrite(dst, buf[w:k], off+done+int64(w))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return done, err
			}
			w += m
		}
		done += int64(k)
	}
	return done, nil
}

// setFdAttrs gives the file or directory open at fd e's owner, mode,
// xattrs and times, in that order: chown clears setuid, setgid and file
// capabilities, so mode and xattrs come after it; and times come last since
// setting anything else moves ctime only, but writing xattrs on some
// filesystems touches mtime.
func (w *dirWriter) setFdAttrs(fd int, e *Entry) error {
	if w.root {
		if err := unix.Fchown(fd, int(e.Stat.Uid), int(e.Stat.Gid)); err != nil {
			return w.errAt(e, "chown", err)
		}
	} else if int(e.Stat.Uid) != os.Geteuid() {
		w.warnOnce("chown", "not root: files keep this user as owner", zap.String("first", e.Path))
	}
	if err := unix.Fchmod(fd, e.Stat.Mode&0o7777); err != nil {
		return w.errAt(e, "chmod", err)
	}
	for _, x := range e.Xattrs {
		if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
			if err == unix.EPERM || err == unix.EACCES || err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
				w.warnOnce("xattr:"+xattrNamespace(x.Name), "cannot set extended attribute here; leaving it out",
					zap.String("first", e.Path), zap.String("xattr", x.Name), zap.Error(err))
				continue
			}
			return w.errAt(e, "setting xattr "+x.Name, err)
		}
	}
	ts := []unix.Timespec{e.Stat.Atim, e.Stat.Mtim}
	if err := futimens(fd, ts); err != nil {
		return w.errAt(e, "setting times", err)
	}
	return nil
}

func xattrNamespace(name string) string {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i]
	}
	return name
}

// futimens is utimensat(fd, NULL, ts, 0), which x/sys does not wrap.
func futimens(fd int, ts []unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func (w *dirWriter) Symlink(e *Entry) error {
	if err := w.failed(); err != nil {
		return err
	}
	f, err := w.top(e)
	if err != nil {
		return err
	}
	name := e.Name()
	if w.o.Link == LinkHard {
		// A symlink cannot change, so sharing the host's costs nothing
		// and saves making one and setting its owner and times.
		ok, err := w.linkHost(f.fd, name, e)
		if err != nil || ok {
			return err
		}
	}
	if err := unix.Symlinkat(e.Link, f.fd, name); err != nil {
		return w.errAt(e, "symlink", err)
	}
	return w.setAtAttrs(f.fd, name, e, false)
}

// setAtAttrs sets owner, mode (unless a symlink, whose mode is fixed) and
// times of name in dir, never following it.
func (w *dirWriter) setAtAttrs(dir int, name string, e *Entry, mode bool) error {
	if w.root {
		if err := unix.Fchownat(dir, name, int(e.Stat.Uid), int(e.Stat.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return w.errAt(e, "chown", err)
		}
	}
	if mode {
		// fchmodat has no working AT_SYMLINK_NOFOLLOW before Linux 6.6;
		// name was just made by mknodat in a directory only this run
		// writes, so it is not a symlink.
		if err := unix.Fchmodat(dir, name, e.Stat.Mode&0o7777, 0); err != nil {
			return w.errAt(e, "chmod", err)
		}
	}
	ts := []unix.Timespec{e.Stat.Atim, e.Stat.Mtim}
	if err := unix.UtimesNanoAt(dir, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return w.errAt(e, "setting times", err)
	}
	return nil
}

func (w *dirWriter) Hardlink(e *Entry) error {
	if err := w.failed(); err != nil {
		return err
	}
	f, err := w.top(e)
	if err != nil {
		return err
	}
	rel := strings.TrimPrefix(e.LinkTarget, "/")
	dir := w.rootFd
	if d := path.Dir(rel); d != "." {
		how := unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
		}
		fd, err := unix.Openat2(w.rootFd, d, &how)
		if err != nil {
			return w.errAt(e, "opening the directory of hard link target "+e.LinkTarget, err)
		}
		defer unix.Close(fd)
		dir = fd
	}
	if err := unix.Linkat(dir, path.Base(rel), f.fd, e.Name(), 0); err != nil {
		return w.errAt(e, "hard-linking to "+e.LinkTarget, err)
	}
	return nil
}

func (w *dirWriter) Special(e *Entry) error {
	if err := w.failed(); err != nil {
		return err
	}
	f, err := w.top(e)
	if err != nil {
		return err
	}
	name := e.Name()
	if err := unix.Mknodat(f.fd, name, e.Stat.Mode&(unix.S_IFMT|0o777), int(e.Stat.Rdev)); err != nil {
		if (err == unix.EPERM || err == unix.EACCES) && !w.root {
			w.warnOnce("mknod", "not root: skipping device nodes", zap.String("first", e.Path))
			return errSkip
		}
		return w.errAt(e, "mknod", err)
	}
	return w.setAtAttrs(f.fd, name, e, true)
}

// Close waits for the copies, finishes every directory and puts the tree in
// place: with a rename onto a missing or empty DEST, or by exchanging it
// with the old DEST and then removing the old tree.
func (w *dirWriter) Close() error {
	close(w.jobs)
	w.wg.Wait()
	w.closed = true
	err := w.failed()
	for err == nil && len(w.stack) > 0 {
		err = w.pop()
	}
	if err != nil {
		w.cleanup()
		return err
	}
	switch {
	case w.oldRoot >= 0:
		if err := unix.Renameat2(w.parentFd, w.tmp, w.parentFd, w.base, unix.RENAME_EXCHANGE); err != nil {
			w.cleanup()
			return fmt.Errorf("swapping the new tree into %s: %w", w.dest, err)
		}
		// DEST is the new tree now; the old one sits at the temporary
		// name, and a kill from here on leaves only that leftover, which
		// the next run removes.
		if err := removeAllAt(w.parentFd, w.tmp); err != nil {
			w.log.Warn("cannot remove the old tree", zap.String("path", filepath.Join(w.parent, w.tmp)), zap.Error(err))
		}
	case w.destExists:
		// rename(2) replaces an empty directory atomically.
		if err := unix.Renameat(w.parentFd, w.tmp, w.parentFd, w.base); err != nil {
			w.cleanup()
			if err == unix.ENOTEMPTY || err == unix.EEXIST {
				return &ExistsError{Path: w.dest}
			}
			return fmt.Errorf("renaming the new tree to %s: %w", w.dest, err)
		}
	default:
		if err := unix.Renameat2(w.parentFd, w.tmp, w.parentFd, w.base, unix.RENAME_NOREPLACE); err != nil {
			w.cleanup()
			if err == unix.EEXIST {
				return &ExistsError{Path: w.dest}
			}
			return fmt.Errorf("renaming the new tree to %s: %w", w.dest, err)
		}
	}
	return nil
}

// Abort stops the copies and removes the temporary tree.
func (w *dirWriter) Abort() {
	if !w.closed {
		w.fail(errors.New("aborted"))
		close(w.jobs)
		w.wg.Wait()
		w.closed = true
	}
	w.cleanup()
}

func (w *dirWriter) cleanup() {
	for len(w.stack) > 0 {
		f := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		unix.Close(f.fd)
		if f.old >= 0 && f.old != w.oldRoot {
			unix.Close(f.old)
		}
	}
	if err := removeAllAt(w.parentFd, w.tmp); err != nil {
		w.log.Warn("cannot remove temporary tree", zap.String("path", filepath.Join(w.parent, w.tmp)), zap.Error(err))
	}
}

func hasCapability(xs []Xattr) bool {
	for _, x := range xs {
		if x.Name == "security.capability" {
			return true
		}
	}
	return false
}
