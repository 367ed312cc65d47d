// Command tunnelprobe is the workload of the tunnel's e2e test: a pod on an
// edge node behind NAT that the API server reaches only through the tunnel.
// As /tunnelprobe it writes a known file of -size bytes, logs one line, and
// answers HTTP on -listen; as /bin/cat (the same binary) it copies files to
// stdout, so `kubectl exec -- cat FILE` streams the file back.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// Pattern is the byte at offset i of the file: the test computes the same.
func Pattern(i int64) byte { return byte(i % 251) }

func main() {
	if filepath.Base(os.Args[0]) == "cat" {
		os.Exit(cat(os.Args[1:]))
	}
	file := flag.String("file", "/data/big", "file to write")
	size := flag.Int64("size", 10<<20, "its size in bytes")
	listen := flag.String("listen", ":8080", "HTTP address")
	flag.Parse()
	if err := write(*file, *size); err != nil {
		fmt.Fprintln(os.Stderr, "tunnelprobe:", err)
		os.Exit(1)
	}
	fmt.Printf("tunnelprobe ready: %s has %d bytes\n", *file, *size)
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "tunnelprobe\n") })
	if err := http.ListenAndServe(*listen, nil); err != nil {
		fmt.Fprintln(os.Stderr, "tunnelprobe:", err)
		os.Exit(1)
	}
}

func write(name string, size int64) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	for i := int64(0); i < size; i++ {
		if err := w.WriteByte(Pattern(i)); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func cat(files []string) int {
	code := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cat:", err)
			code = 1
			continue
		}
		if _, err := io.Copy(os.Stdout, f); err != nil {
			fmt.Fprintln(os.Stderr, "cat:", err)
			code = 1
		}
		f.Close()
	}
	return code
}
