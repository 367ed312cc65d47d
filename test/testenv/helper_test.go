package testenv

import (
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// The test binary doubles as a tiny network tool that tests run inside a
// namespace with nsenter: EDGEADM_TESTENV_HELPER=listen:<addr> echoes one line
// back to each client; dial:<addr> sends a line and prints the echo.
func TestMain(m *testing.M) {
	switch mode := os.Getenv("EDGEADM_TESTENV_HELPER"); {
	case len(mode) > 7 && mode[:7] == "listen:":
		ln, err := net.Listen("tcp", mode[7:])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(1)
			}
			go func() { defer c.Close(); _, _ = io.CopyN(c, c, 64) }()
		}
	case len(mode) > 5 && mode[:5] == "dial:":
		c, err := net.DialTimeout("tcp", mode[5:], 3*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = c.Write([]byte("ping\n"))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(string(buf))
		os.Exit(0)
	}
	os.Exit(m.Run())
}
