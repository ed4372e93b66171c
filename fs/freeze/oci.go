package freeze

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	vfs "github.com/vzfs/vzfs/fs"
)

// OCIOptions tune ToOCI.
type OCIOptions struct {
	// Tag names the image, as NAME:TAG; empty means "vzfs:latest".
	Tag string
	// Entrypoint, Env (K=V) and WorkDir go into the image config.
	Entrypoint []string
	Env        []string
	WorkDir    string
	// Mtime clamps the layer's times (see TarOptions) and is the image's
	// creation time; unset, the creation time is the Unix epoch, so that
	// the same spec still gives the same digest.
	Mtime *time.Time
	// Log receives warnings; nil discards.
	Log *zap.Logger
	// Progress, if set, is told of every entry as the layer is written.
	Progress Progress
}

// DefaultTag is the image name used when OCIOptions.Tag is empty.
const DefaultTag = "vzfs:latest"

// AnnotationRefName is the OCI annotation that names an image in a layout;
// podman and skopeo read it. Docker and containerd read containerdImageName.
const (
	AnnotationRefName   = "org.opencontainers.image.ref.name"
	containerdImageName = "io.containerd.image.name"
)

// OCIResult describes the image ToOCI wrote.
type OCIResult struct {
	Stats
	Digest v1.Hash // the manifest's digest
	Tag    string
}

// IsArchive reports whether an OCI destination names an oci-archive
// tarball (it ends in ".tar") rather than a layout directory.
func IsArchive(dest string) bool { return strings.HasSuffix(dest, ".tar") }

// ToOCI writes the view t as an OCI image with one layer, the tar that
// ToTar writes (gzip-compressed). dest ending in ".tar" is written as an
// oci-archive (a tar of the layout, as podman load and skopeo's
// oci-archive: transport read), anything else as an OCI image layout
// directory. Like the other targets, it is built beside dest and renamed
// into place; dest must not exist (an empty directory is fine).
func ToOCI(t *vfs.Tree, dest string, o OCIOptions) (OCIResult, error) {
	start := time.Now()
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Tag == "" {
		o.Tag = DefaultTag
	}
	if _, err := name.NewTag(o.Tag, name.WeakValidation); err != nil {
		return OCIResult{}, fmt.Errorf("--tag %q: %w", o.Tag, err)
	}
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return OCIResult{}, fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
	}
	created := time.Unix(0, 0).UTC()
	if o.Mtime != nil {
		created = o.Mtime.UTC().Truncate(time.Second)
	}
	parentFd, parent, base, err := openParent(dest)
	if err != nil {
		return OCIResult{}, err
	}
	defer unix.Close(parentFd)
	destPath := filepath.Join(parent, base)
	cleanStale(parentFd, parent, base, o.Log)
	if err := checkFresh(parentFd, base, destPath); err != nil {
		return OCIResult{}, err
	}

	// The layer: the view's tar, gzipped into a temporary file.
	lf, lname, err := createTemp(parentFd, parent, base)
	if err != nil {
		return OCIResult{}, err
	}
	defer unix.Unlinkat(parentFd, lname, 0)
	stats, err := writeGzipTar(t, lf, TarOptions{Mtime: o.Mtime, Log: o.Log, Progress: o.Progress})
	if cerr := lf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return OCIResult{}, wrapDest(destPath, err)
	}
	layer, err := tarball.LayerFromFile(lf.Name(), tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return OCIResult{}, fmt.Errorf("reading back layer %s: %w", lf.Name(), err)
	}
	img, err := buildImage(layer, created, o)
	if err != nil {
		return OCIResult{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return OCIResult{}, fmt.Errorf("computing image digest: %w", err)
	}

	// The layout, in a temporary directory beside dest.
	tmp := tempName(base)
	if err := unix.Mkdirat(parentFd, tmp, 0o755); err != nil {
		return OCIResult{}, destErr(destPath, "creating a temporary directory beside it", err)
	}
	tmpPath := filepath.Join(parent, tmp)
	committed := false
	defer func() {
		if !committed {
			_ = removeAllAt(parentFd, tmp)
		}
	}()
	lp, err := layout.Write(tmpPath, empty.Index)
	if err != nil {
		return OCIResult{}, wrapDest(destPath, fmt.Errorf("writing OCI layout: %w", err))
	}
	anns := map[string]string{AnnotationRefName: o.Tag, containerdImageName: o.Tag}
	if err := lp.AppendImage(img, layout.WithAnnotations(anns)); err != nil {
		return OCIResult{}, wrapDest(destPath, fmt.Errorf("writing OCI layout: %w", err))
	}
	if err := setTreeTimes(tmpPath, created); err != nil {
		return OCIResult{}, err
	}

	if IsArchive(dest) {
		af, aname, err := createTemp(parentFd, parent, base)
		if err != nil {
			return OCIResult{}, err
		}
		err = tarDir(tmpPath, af, created)
		if cerr := af.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = unix.Renameat2(parentFd, aname, parentFd, base, unix.RENAME_NOREPLACE)
		}
		if err != nil {
			_ = unix.Unlinkat(parentFd, aname, 0)
			return OCIResult{}, wrapDest(destPath, err)
		}
	} else {
		err := unix.Renameat2(parentFd, tmp, parentFd, base, unix.RENAME_NOREPLACE)
		if err == unix.EEXIST {
			// An empty directory: rename(2) replaces it atomically.
			err = unix.Renameat(parentFd, tmp, parentFd, base)
		}
		if err != nil {
			return OCIResult{}, wrapDest(destPath, err)
		}
		committed = true
	}
	stats.Elapsed = time.Since(start)
	return OCIResult{Stats: stats, Digest: digest, Tag: o.Tag}, nil
}

// checkFresh fails unless dest is absent or an empty directory.
func checkFresh(parentFd int, base, destPath string) error {
	var st unix.Stat_t
	err := unix.Fstatat(parentFd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lstat %s: %w", destPath, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		fd, err := unix.Openat(parentFd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening %s: %w", destPath, err)
		}
		names, err := readNames(fd)
		unix.Close(fd)
		if err == nil && len(names) == 0 {
			return nil
		}
	}
	return &ExistsError{Path: destPath}
}

func wrapDest(dest string, err error) error {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return destErr(dest, "writing", err)
	}
	return fmt.Errorf("%s: %w", dest, err)
}

// writeGzipTar writes the view's tar to f through gzip with a fixed header
// (no name, no time), so equal tars give equal compressed bytes.
func writeGzipTar(t *vfs.Tree, f io.Writer, o TarOptions) (Stats, error) {
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.DefaultCompression)
	if err != nil {
		return Stats{}, err
	}
	s, err := ToTar(t, zw, o)
	if err != nil {
		return Stats{}, err
	}
	if err := zw.Close(); err != nil {
		return Stats{}, err
	}
	return s, bw.Flush()
}

func buildImage(layer v1.Layer, created time.Time, o OCIOptions) (v1.Image, error) {
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "vzfs freeze",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("adding layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Config.Entrypoint = o.Entrypoint
	cf.Config.Env = o.Env
	cf.Config.WorkingDir = o.WorkDir
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting image config: %w", err)
	}
	return img, nil
}

// setTreeTimes gives every file of the layout dir the same times, so that
// the layout directory looks the same each time too.
func setTreeTimes(dir string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	return filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("setting times of %s: %w", p, err)
		}
		return nil
	})
}

// tarDir writes the layout directory dir as an oci-archive: entries
// sorted, owned by 0:0, fixed modes and times, names relative to dir.
func tarDir(dir string, out io.Writer, mtime time.Time) error {
	bw := bufio.NewWriterSize(out, 1<<20)
	tw := tar.NewWriter(bw)
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, fi.Size()
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, h.Size)
			return err
		}
		return fmt.Errorf("%s: unexpected file type in OCI layout", p)
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
