package freeze

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/vzfs/vzfs/spec"
)

// readLayout opens the one image of an OCI layout and checks its digests.
func readLayout(t *testing.T, dir string) (digest string, names []string) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("%d manifests in the index, want 1", len(im.Manifests))
	}
	if got := im.Manifests[0].Annotations[AnnotationRefName]; got != "test:1" {
		t.Errorf("ref name annotation %q", got)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	// validate.Image recomputes manifest, config and layer digests and
	// diff IDs from the bytes.
	if err := validate.Image(img); err != nil {
		t.Fatalf("image does not validate: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != runtime.GOARCH || cf.OS != "linux" || cf.Config.WorkingDir != "/w" ||
		len(cf.Config.Entrypoint) != 2 || cf.Config.Entrypoint[0] != "/bin/sh" || len(cf.Config.Env) != 1 {
		t.Errorf("config %+v", cf.Config)
	}
	if !cf.Created.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("created %v", cf.Created)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	return im.Manifests[0].Digest.String(), names
}

func TestToOCI(t *testing.T) {
	src := fixture(t)
	mt := time.Unix(1700000000, 0)
	o := OCIOptions{Tag: "test:1", Entrypoint: []string{"/bin/sh", "-c"}, Env: []string{"A=b"}, WorkDir: "/w", Mtime: &mt}
	dir := t.TempDir()
	entries := []spec.Entry{{Path: filepath.Join(src, "bin"), Subtree: true}, {Path: filepath.Join(src, "abs-link")}}

	res, err := ToOCI(treeOf(t, entries...), filepath.Join(dir, "layout"), o)
	if err != nil {
		t.Fatal(err)
	}
	d1, names := readLayout(t, filepath.Join(dir, "layout"))
	if d1 != res.Digest.String() {
		t.Errorf("layout holds %s, ToOCI said %s", d1, res.Digest)
	}
	// The layer holds exactly the view: the ancestors, the subtree and
	// the one file.
	var want []string
	var buf = &tarCollector{}
	if _, err := ToTar(treeOf(t, entries...), buf, TarOptions{Mtime: &mt}); err != nil {
		t.Fatal(err)
	}
	want = buf.names(t)
	if len(names) != len(want) || len(names) < 6 {
		t.Fatalf("layer has %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("layer entry %d is %q, want %q", i, names[i], want[i])
		}
	}

	// An archive of the same spec carries the same image.
	res2, err := ToOCI(treeOf(t, entries...), filepath.Join(dir, "img.tar"), o)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Digest != res.Digest {
		t.Errorf("same spec and mtime, digests %s and %s", res.Digest, res2.Digest)
	}
	x := filepath.Join(dir, "x")
	if err := os.Mkdir(x, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xf", filepath.Join(dir, "img.tar"), "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("extracting the oci-archive: %v\n%s", err, out)
	}
	if d, _ := readLayout(t, x); d != res.Digest.String() {
		t.Errorf("archive holds %s, want %s", d, res.Digest)
	}
	// A second archive is byte-identical.
	if _, err := ToOCI(treeOf(t, entries...), filepath.Join(dir, "img2.tar"), o); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "img.tar"))
	b, _ := os.ReadFile(filepath.Join(dir, "img2.tar"))
	if string(a) != string(b) {
		t.Error("two oci-archives of the same spec differ")
	}
	// Existing destinations are refused, and nothing is left beside them.
	if _, err := ToOCI(treeOf(t, entries...), filepath.Join(dir, "img.tar"), o); err == nil {
		t.Error("overwrote an existing archive")
	}
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	sort.Strings(left)
	if len(left) != 4 {
		t.Errorf("directory holds %v, want img.tar img2.tar layout x", left)
	}
}

type tarCollector struct{ b []byte }

func (c *tarCollector) Write(p []byte) (int, error) { c.b = append(c.b, p...); return len(p), nil }

func (c *tarCollector) names(t *testing.T) []string {
	var out []string
	for _, h := range tarEntries(t, c.b) {
		out = append(out, h.Name)
	}
	return out
}
