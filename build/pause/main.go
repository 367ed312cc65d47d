// Command pause is the sandbox ("infra") container of the test environment's pods.
//
// It does what Kubernetes' pause.c does, as a static Go binary so the image can be built
// without a C toolchain or a registry: it holds the pod's namespaces open, reaps the
// zombies of a shared PID namespace, and exits 0 on SIGINT or SIGTERM.
// scripts/test-env.sh builds it with CGO_ENABLED=0 and packs it into an image tarball
// tagged as the sandbox image that kubelet and containerd expect (build/versions.env).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set by scripts/test-env.sh (-X main.version=<tag of the image>).
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Printf("pause.go %s\n", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		switch sig {
		case syscall.SIGCHLD:
			reap()
		default:
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
			os.Exit(0)
		}
	}
}

// reap collects every exited child without blocking. Signals coalesce, so one SIGCHLD
// may stand for several children.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
