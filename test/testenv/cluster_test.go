package testenv

import (
	"fmt"
	"testing"
)

// recordingTB records how a prerequisite check ended the test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

type stopTest struct{}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	panic(stopTest{})
}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(stopTest{})
}

func runPrereq(tb *recordingTB, f func(testing.TB)) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopTest); !ok {
				panic(r)
			}
		}
	}()
	f(tb)
}

func TestMissingPrerequisiteSkipsButFailsUnderE2E(t *testing.T) {
	t.Setenv(E2EEnv, "")
	tb := &recordingTB{TB: t}
	runPrereq(tb, func(tb testing.TB) { SkipOrFail(tb, "no cache") })
	if tb.skipped != "no cache" || tb.failed != "" {
		t.Errorf("without %s: skipped %q failed %q; want a skip", E2EEnv, tb.skipped, tb.failed)
	}

	t.Setenv(E2EEnv, "1")
	tb = &recordingTB{TB: t}
	runPrereq(tb, func(tb testing.TB) { SkipOrFail(tb, "no cache") })
	if tb.skipped != "" || tb.failed == "" {
		t.Errorf("with %s=1: skipped %q failed %q; want a failure", E2EEnv, tb.skipped, tb.failed)
	}

	// RequireEnv with a cache that is not there.
	t.Setenv("EDGEADM_TEST_CACHE", t.TempDir())
	tb = &recordingTB{TB: t}
	runPrereq(tb, func(tb testing.TB) { RequireEnv(tb) })
	if tb.failed == "" {
		t.Errorf("with %s=1 and no cache, RequireEnv did not fail the test (skipped %q)", E2EEnv, tb.skipped)
	}
	t.Setenv(E2EEnv, "0")
	tb = &recordingTB{TB: t}
	runPrereq(tb, func(tb testing.TB) { RequireEnv(tb) })
	if tb.skipped == "" || tb.failed != "" {
		t.Errorf("without %s=1 and no cache: skipped %q failed %q; want a skip", E2EEnv, tb.skipped, tb.failed)
	}
}
