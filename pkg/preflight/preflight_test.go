package preflight

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func check(name string, warns, errs []error) Check {
	return Func{N: name, F: func(context.Context) ([]error, []error) { return warns, errs }}
}

func TestRunReportsAllAndIgnores(t *testing.T) {
	checks := []Check{
		check("Swap", []error{errors.New("swap is on")}, nil),
		check("Port-10250", nil, []error{errors.New("port 10250 is in use")}),
		check("IsPrivilegedUser", nil, []error{errors.New("run as root")}),
	}
	var out bytes.Buffer
	ignore, err := ParseIgnore([]string{"port-10250"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), checks, ignore, &out)
	var f *Failed
	if !errors.As(err, &f) || len(f.Errors) != 1 || !strings.Contains(f.Errors[0], "[ERROR IsPrivilegedUser]: run as root") {
		t.Fatalf("err = %v", err)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[1], "[WARNING Port-10250]: port 10250 is in use (ignored") {
		t.Fatalf("warnings = %q", res.Warnings)
	}
	if !strings.Contains(out.String(), "[WARNING Swap]: swap is on") {
		t.Fatalf("output: %s", out.String())
	}
	if !strings.Contains(err.Error(), "--ignore-preflight-errors") {
		t.Fatalf("the error does not say how to ignore: %v", err)
	}
	all, _ := ParseIgnore([]string{"all"})
	if _, err := Run(context.Background(), checks, all, &out); err != nil {
		t.Fatalf("all: %v", err)
	}
}

func TestParseIgnoreRejectsAllWithNames(t *testing.T) {
	if _, err := ParseIgnore([]string{"all,Swap"}); err == nil {
		t.Fatal(`"all" with names accepted`)
	}
}
