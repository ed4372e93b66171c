package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Open opens the host file with no symlink followed and checks it is the
// file that was served. With passthrough the kernel then reads the host
// file itself; otherwise Read serves it from the fd.
func (r *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.Flags&unix.O_ACCMODE != unix.O_RDONLY || in.Flags&(unix.O_TRUNC|unix.O_CREAT) != 0 {
		return fuse.EROFS
	}
	tg, ok := r.resolve(in.NodeId)
	if !ok {
		return fuse.Status(unix.ESTALE)
	}
	switch tg.typ {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return fuse.EISDIR
	default:
		// FIFOs and devices are opened by the kernel itself (nodev
		// permitting); nothing else reaches here.
		return fuse.EINVAL
	}
	if id, ok := r.reuseBacking(in.NodeId, tg.key); ok {
		out.BackingID = id
		out.OpenFlags |= fuse.FOPEN_PASSTHROUGH
		out.Fh = r.addHandle(&handle{node: in.NodeId, fd: -1, pt: true})
		return fuse.OK
	}
	fd, err := openHostFd(tg.path, unix.O_RDONLY|unix.O_NOCTTY)
	if err != nil {
		if isGone(err) {
			if err == unix.ENOENT {
				return fuse.ENOENT
			}
			return fuse.Status(unix.ESTALE)
		}
		return errno(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return errno(err)
	}
	k := hostKey{st.Dev, st.Ino}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || k != tg.key {
		unix.Close(fd)
		return fuse.Status(unix.ESTALE)
	}
	h := &handle{node: in.NodeId, fd: fd}
	if r.passthrough.Load() {
		if id, ok := r.addBacking(in.NodeId, k, fd); ok {
			// The kernel holds the file now; our fd is not needed.
			unix.Close(fd)
			h.fd, h.pt = -1, true
			out.BackingID = id
			out.OpenFlags |= fuse.FOPEN_PASSTHROUGH
		}
	}
	if !h.pt {
		// Host files are static while mounted: keep the page cache
		// across opens.
		out.OpenFlags |= fuse.FOPEN_KEEP_CACHE
	}
	out.Fh = r.addHandle(h)
	return fuse.OK
}

func (r *rawFS) addHandle(h *handle) uint64 {
	fh := r.handleNumber.next()
	r.mu.Lock()
	r.handles[fh] = h
	r.mu.Unlock()
	return fh
}

// maxIdleBacking bounds the backing files kept registered after their last
// close. Reopening such a file costs the daemon nothing: no host open, no
// ioctl. That is what makes exec-heavy workloads (every exec opens the
// binary, ld.so.cache and each library) close to native. The kernel holds
// one open file per entry.
const maxIdleBacking = 4096

// reuseBacking returns the backing file registered for node when it is
// still the file the node is served as. No host lookup is needed: the
// backing file is the inode that was verified when it was registered, so a
// symlink swapped in on the host since cannot redirect it.
func (r *rawFS) reuseBacking(node uint64, k hostKey) (int32, bool) {
	if !r.passthrough.Load() {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.backing[node]
	if b == nil || b.key != k {
		return 0, false
	}
	if b.refs == 0 && b.idle != nil {
		r.idle.Remove(b.idle)
		b.idle = nil
	}
	b.refs++
	return b.id, true
}

// addBacking registers fd as the passthrough backing file of node, or
// shares the one already registered. The first failure turns passthrough
// off for the mount (old kernel, no privilege) and says so once.
func (r *rawFS) addBacking(node uint64, k hostKey, fd int) (int32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.backing[node]; b != nil {
		if b.key == k {
			if b.idle != nil {
				r.idle.Remove(b.idle)
				b.idle = nil
			}
			b.refs++
			return b.id, true
		}
		if b.refs > 0 {
			// The host file was replaced while the old one is still
			// open; the kernel allows one backing file per inode.
			return 0, false
		}
		// An idle backing of the old file: replace it.
		r.idle.Remove(b.idle)
		delete(r.backing, node)
		if r.srv != nil {
			r.srv.UnregisterBackingFd(b.id)
		}
	}
	if r.srv == nil {
		return 0, false
	}
	id, e := r.srv.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
	if e != 0 {
		r.passthrough.Store(false)
		r.ptWarnOnce.Do(func() {
			r.log.Warn("FUSE passthrough refused by the kernel; reading through the daemon", zap.Error(e))
		})
		return 0, false
	}
	r.backing[node] = &backing{id: id, key: k, refs: 1}
	return id, true
}

// Read serves a read from the host fd. Offsets past the end read nothing.
func (r *rawFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	r.mu.Lock()
	h := r.handles[in.Fh]
	r.mu.Unlock()
	if h == nil || h.fd < 0 {
		return nil, fuse.EBADF
	}
	size := min(int(in.Size), len(buf))
	n, err := unix.Pread(h.fd, buf[:size], int64(in.Offset))
	for err == unix.EINTR {
		n, err = unix.Pread(h.fd, buf[:size], int64(in.Offset))
	}
	if err != nil {
		return nil, errno(err)
	}
	return fuse.ReadResultData(buf[:n]), fuse.OK
}

// Release closes a handle and drops its passthrough reference.
func (r *rawFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	r.mu.Lock()
	h := r.handles[in.Fh]
	delete(r.handles, in.Fh)
	var unregister int32
	if h != nil && h.pt {
		if b := r.backing[h.node]; b != nil {
			b.refs--
			if b.refs == 0 {
				b.idle = r.idle.PushFront(h.node)
				if r.idle.Len() > maxIdleBacking {
					old := r.idle.Remove(r.idle.Back()).(uint64)
					ob := r.backing[old]
					delete(r.backing, old)
					ob.idle = nil
					unregister = ob.id
				}
			}
		}
	}
	r.mu.Unlock()
	if h == nil {
		return
	}
	if h.fd >= 0 {
		unix.Close(h.fd)
	}
	if unregister != 0 && r.srv != nil {
		if e := r.srv.UnregisterBackingFd(unregister); e != 0 {
			r.log.Debug("unregistering backing file", zap.Int32("id", unregister), zap.Error(e))
		}
	}
}

// Flush has nothing to write back. ENOSYS tells the kernel so for good:
// it stops sending a FLUSH on every close(2), one round trip per open file
// that exec-heavy programs (a compiler driver) would pay for nothing.
func (r *rawFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status { return fuse.ENOSYS }
