package testkit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Condition is what WaitFor polls: a func() bool holds when it returns
// true; a func() error holds when it returns nil, and its last error is
// part of the failure.
type Condition interface {
	func() bool | func() error
}

// WaitFor polls cond until it holds, and fails the test when timeout
// passes first, with the formatted description of what it waited for (and
// the condition's last error). It polls every few milliseconds at first
// and every 50ms at most.
func WaitFor[C Condition](t testing.TB, timeout time.Duration, cond C, format string, args ...any) {
	t.Helper()
	check := func() error {
		switch c := any(cond).(type) {
		case func() bool:
			if c() {
				return nil
			}
			return errNotYet
		case func() error:
			return c()
		}
		panic("testkit: unknown condition type") // the constraint rules this out
	}
	deadline := time.Now().Add(timeout)
	pause := 2 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			what := fmt.Sprintf(format, args...)
			if err == errNotYet {
				t.Fatalf("timed out after %s waiting for %s", timeout, what)
			}
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// errNotYet is the error of a func() bool condition that does not hold.
var errNotYet = fmt.Errorf("condition does not hold")

// Context returns a context that ends after timeout or when the test
// ends, whichever comes first.
func Context(t testing.TB, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}
