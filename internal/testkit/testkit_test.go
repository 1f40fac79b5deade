package testkit

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestWaitForHoldsOnceTheConditionDoes(t *testing.T) {
	n := 0
	WaitFor(t, 5*time.Second, func() bool { n++; return n == 5 }, "the fifth call")
	if n != 5 {
		t.Fatalf("polled %d times, want 5", n)
	}
	m := 0
	WaitFor(t, 5*time.Second, func() error {
		if m++; m < 3 {
			return errors.New("not yet")
		}
		return nil
	}, "the third call")
	if m != 3 {
		t.Fatalf("polled %d times, want 3", m)
	}
}

func TestWaitForFailsWithWhatAndTheLastError(t *testing.T) {
	msg := Failure(t, func(tb testing.TB) {
		WaitFor(tb, 30*time.Millisecond, func() bool { return false }, "bridge %d", 7)
	})
	if msg != "timed out after 30ms waiting for bridge 7" {
		t.Errorf("bool condition: %q", msg)
	}
	calls := 0
	msg = Failure(t, func(tb testing.TB) {
		WaitFor(tb, 30*time.Millisecond, func() error { calls++; return fmt.Errorf("status %d", calls) }, "the API")
	})
	if want := fmt.Sprintf("timed out after 30ms waiting for the API: status %d", calls); msg != want {
		t.Errorf("error condition: %q, want %q", msg, want)
	}
}

func TestContextEndsAfterTheTimeout(t *testing.T) {
	ctx := Context(t, 20*time.Millisecond)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context did not end")
	}
}

func TestBufferRecordsPicksTheLinesOfOneMessage(t *testing.T) {
	var b Buffer
	log := slog.New(slog.NewJSONHandler(&b, nil))
	log.Info("first", "n", 1)
	b.Write([]byte("not json\n"))
	log.Info("second", "n", 2)
	log.Info("first", "n", 3)
	recs := b.Records("first")
	if len(recs) != 2 || recs[0]["n"] != 1.0 || recs[1]["n"] != 3.0 {
		t.Fatalf("records = %v", recs)
	}
	if !strings.Contains(b.String(), "not json") {
		t.Fatalf("String lost a line: %q", b.String())
	}
	if got := Tail("abcdef", 2); got != "ef" {
		t.Fatalf("Tail = %q", got)
	}
}

func TestClosedAddrRefuses(t *testing.T) {
	addr := ClosedAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("ClosedAddr = %q", addr)
	}
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("something listens on %s", addr)
	}
}

func TestMasterKeysAre32Bytes(t *testing.T) {
	for _, k := range []string{MasterKey, NewMasterKey()} {
		if raw, err := base64.StdEncoding.DecodeString(k); err != nil || len(raw) != 32 {
			t.Fatalf("master key %q: %d bytes, %v", k, len(raw), err)
		}
	}
	if NewMasterKey() == NewMasterKey() {
		t.Fatal("two new master keys are the same")
	}
}

// TestMachineCPUCountsBusyTime: a goroutine that spins for 300 ms of its
// own CPU time shows in the machine's busy time, which never exceeds the
// machine's total.
func TestMachineCPUCountsBusyTime(t *testing.T) {
	busy0, all0, err := MachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	self0, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for {
		self, err := CPUTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if self-self0 >= 300*time.Millisecond {
			break
		}
		for i := 0; i < 1_000_000; i++ {
			_ = i * i
		}
	}
	busy1, all1, err := MachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	if busy1 > all1 || busy0 > all0 {
		t.Fatalf("busy %v of %v, then %v of %v: busy exceeds the total", busy0, all0, busy1, all1)
	}
	// The process's own 300 ms are part of the machine's busy time; a
	// tick of rounding is allowed on either reading.
	if got := busy1 - busy0; got < 250*time.Millisecond {
		t.Fatalf("the machine was busy %v while this process spun for 300 ms", got)
	}
}

// TestRSSReadsThisProcess: the resident set of this process is read, and
// is at least the size of a buffer it keeps touched.
func TestRSSReadsThisProcess(t *testing.T) {
	buf := make([]byte, 32<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	v, err := RSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if v < int64(len(buf)) {
		t.Fatalf("rss %d bytes, with %d bytes in use", v, len(buf))
	}
	if _, err := RSS(1 << 30); err == nil {
		t.Fatal("the RSS of a process that does not exist was read")
	}
	_ = buf[len(buf)-1]
}
