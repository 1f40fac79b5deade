package webhook

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadLimitedKeepsTheLimitWhateverTheDeclaredLength reads bodies at,
// under and over the limit, in one piece and a byte at a time, with their
// true length declared, none, or a false one (an endpoint's Content-Length
// is only a hint here): a body is read whole up to the limit, and one byte
// more is ErrResponseTooLarge.
func TestReadLimitedKeepsTheLimitWhateverTheDeclaredLength(t *testing.T) {
	const limit = 1000
	for _, n := range []int{0, 1, 40, 511, 512, 513, limit - 1, limit, limit + 1, 5 * limit} {
		body := strings.Repeat("r", n)
		for _, declared := range []int64{int64(n), -1, 0, 1, int64(n) * 2, 1 << 40} {
			for _, oneByte := range []bool{false, true} {
				var r io.Reader = strings.NewReader(body)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				got, err := readLimited(r, limit, declared)
				if n > limit {
					if !errors.Is(err, ErrResponseTooLarge) {
						t.Fatalf("%d bytes, declared %d, one byte %v: error %v, want ErrResponseTooLarge", n, declared, oneByte, err)
					}
					continue
				}
				if err != nil || string(got) != body {
					t.Fatalf("%d bytes, declared %d, one byte %v: %d bytes, error %v", n, declared, oneByte, len(got), err)
				}
			}
		}
	}
	// A reader that fails mid-body fails the read.
	broken := io.MultiReader(strings.NewReader("part"), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, err := readLimited(broken, limit, 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("broken body: error %v, want the reader's", err)
	}
}

// TestReadLimitedStopsReadingAfterTheLimit checks that no more than one
// byte past the limit is read from an endless body, whatever length it
// declares.
func TestReadLimitedStopsReadingAfterTheLimit(t *testing.T) {
	const limit = 4096
	for _, declared := range []int64{-1, 10, limit, 1 << 40} {
		c := &countingReader{}
		if _, err := readLimited(c, limit, declared); !errors.Is(err, ErrResponseTooLarge) {
			t.Fatalf("declared %d: error %v", declared, err)
		}
		if c.n > limit+1 {
			t.Fatalf("declared %d: read %d bytes of an endless body, want at most %d", declared, c.n, limit+1)
		}
	}
}

type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	c.n += len(p)
	return len(p), nil
}

// TestReadLimitedReadsAUsualReplyInOneAllocation checks that a reply of a
// declared length is read into one buffer of that length, where reading
// through a bytes.Buffer and an io.LimitReader took three allocations and
// a 512-byte buffer for a 40-byte reply.
func TestReadLimitedReadsAUsualReplyInOneAllocation(t *testing.T) {
	body := []byte(`{"reply":"echo: bridge-peak 000123"}` + "\n")
	r := bytes.NewReader(body)
	n := testing.AllocsPerRun(200, func() {
		r.Reset(body)
		if got, err := readLimited(r, DefaultMaxResponseBytes, int64(len(body))); err != nil || len(got) != len(body) || cap(got) > len(body)+1 {
			t.Fatalf("read %d bytes (capacity %d), error %v", len(got), cap(got), err)
		}
	})
	if n > 1 {
		t.Fatalf("%.0f allocations, want 1", n)
	}
}
