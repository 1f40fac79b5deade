package testkit

import (
	"fmt"
	"testing"
)

// Failure runs helper with a testing.TB whose Fatalf ends it, and returns
// the message it failed with; it fails t when helper does not fail. It is
// for the tests of helpers that wait and fail, such as WaitFor.
func Failure(t testing.TB, helper func(tb testing.TB)) (msg string) {
	t.Helper()
	f := &fatalRecorder{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatal); !ok {
				panic(r)
			}
			msg = f.msg
		}
	}()
	helper(f)
	t.Fatal("the helper did not fail")
	return ""
}

// fatalRecorder is a testing.TB whose Fatalf records the message and
// ends the helper by panicking.
type fatalRecorder struct {
	testing.TB
	msg string
}

type fatal struct{}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatal{})
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(fatal{})
}
