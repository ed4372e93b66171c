package fs

import "github.com/hanwen/go-fuse/v2/fuse"

// rawFS must stay a fuse.RawFileSystem; a changed go-fuse signature breaks
// the build here instead of silently falling back to the embedded default
// (which answers ENOSYS, or OK for Open).
var _ fuse.RawFileSystem = (*rawFS)(nil)

// Each method below is checked by name and signature, so a typo in one of
// them cannot hide behind the embedded default.
var (
	_ = (interface {
		Lookup(<-chan struct{}, *fuse.InHeader, string, *fuse.EntryOut) fuse.Status
	})((*rawFS)(nil))
	_ = (interface{ Forget(uint64, uint64) })((*rawFS)(nil))
	_ = (interface {
		GetAttr(<-chan struct{}, *fuse.GetAttrIn, *fuse.AttrOut) fuse.Status
	})((*rawFS)(nil))
	_ = (interface {
		Readlink(<-chan struct{}, *fuse.InHeader) ([]byte, fuse.Status)
	})((*rawFS)(nil))
	_ = (interface {
		Open(<-chan struct{}, *fuse.OpenIn, *fuse.OpenOut) fuse.Status
	})((*rawFS)(nil))
	_ = (interface {
		Read(<-chan struct{}, *fuse.ReadIn, []byte) (fuse.ReadResult, fuse.Status)
	})((*rawFS)(nil))
	_ = (interface {
		Release(<-chan struct{}, *fuse.ReleaseIn)
	})((*rawFS)(nil))
	_ = (interface {
		OpenDir(<-chan struct{}, *fuse.OpenIn, *fuse.OpenOut) fuse.Status
	})((*rawFS)(nil))
	_ = (interface {
		ReadDir(<-chan struct{}, *fuse.ReadIn, *fuse.DirEntryList) fuse.Status
	})((*rawFS)(nil))
	_ = (interface {
		SetAttr(<-chan struct{}, *fuse.SetAttrIn, *fuse.AttrOut) fuse.Status
	})((*rawFS)(nil))
	_ = (interface {
		Create(<-chan struct{}, *fuse.CreateIn, string, *fuse.CreateOut) fuse.Status
	})((*rawFS)(nil))
	_ = (interface {
		Write(<-chan struct{}, *fuse.WriteIn, []byte) (uint32, fuse.Status)
	})((*rawFS)(nil))
)
