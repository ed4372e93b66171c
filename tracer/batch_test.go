package tracer

import (
	"io"
	"os"
	"testing"
	"time"
)

// A reader pausing after a short read must wake as soon as drain is
// called, and then read to EOF without pausing again.
func TestBatchReaderDrain(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	b := newBatchReader(r, 64<<10)
	b.pause, b.maxP = time.Hour, time.Hour
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	type read struct {
		n   int
		err error
	}
	got := make(chan read, 1)
	go func() {
		n, err := b.Read(make([]byte, 100))
		got <- read{n, err}
	}()
	select {
	case res := <-got:
		t.Fatalf("short read did not pause: %+v", res)
	case <-time.After(50 * time.Millisecond):
	}
	b.drain()
	select {
	case res := <-got:
		if res.n != 3 || res.err != nil {
			t.Fatalf("got %+v, want 3 bytes", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not end the pause")
	}
	if _, err := w.Write([]byte("defg")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	start := time.Now()
	rest, err := io.ReadAll(b)
	if err != nil || string(rest) != "defg" {
		t.Fatalf("after drain: %q, %v", rest, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("reading after drain paused for %v", d)
	}
}

// chunks is a reader returning short reads of the given sizes.
type chunks []int

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := min((*c)[0], len(p))
	*c = (*c)[1:]
	return n, nil
}

// The pause shrinks when much piled up during it and grows, up to its
// bound, when little did.
func TestBatchReaderAdapts(t *testing.T) {
	size := 1 << 20
	src := chunks{size / 2, size / 2, 10, 10, 10, 10, 10, 10, 10, 10}
	b := newBatchReader(&src, size)
	b.drain() // adapt without sleeping
	p := make([]byte, size)
	start := b.pause
	b.Read(p)
	if b.pause != start/2 {
		t.Fatalf("after a big batch: pause %v, want %v", b.pause, start/2)
	}
	b.Read(p)
	if b.pause != start/4 {
		t.Fatalf("after another big batch: pause %v, want %v", b.pause, start/4)
	}
	for range 8 {
		b.Read(p)
	}
	if b.pause != maxPause {
		t.Fatalf("after small batches: pause %v, want the bound %v", b.pause, maxPause)
	}
}
