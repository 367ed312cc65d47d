// Package installpkg fetches, verifies and unpacks the offline install package of an
// edge host (kube-linux-<arch>-v<k8s>.tar.gz, layout in install-pkg/README.md), and
// writes such packages for the build (build/installpkg).
//
// The flow of Open, each step in its own file:
//
//	source.go    parse --install-pkg-path: a local file, ftp://[user@]host[:port]/path or https://
//	fetch*.go    copy the archive into a private (0700) temp dir on the target's file system,
//	             hashing it on the way, with progress and bounded timeouts
//	package.go   check the --install-pkg-sha256 pin before anything is unpacked
//	extract.go   unpack with a safe extractor: no absolute paths, no "..", no links, no
//	             devices, no setuid bits, size limits, no duplicates
//	manifest.go  manifest.json (the first entry of the archive): format, arch, and the
//	             sha256, size and mode of every file
//	verify.go    every unpacked file against manifest.json, and nothing unlisted
//	arch.go      the host's architecture (uname -m aarch64 is arm64)
//
// Nothing is installed here: Open returns a verified Package whose files the join
// workflow installs from. Secrets (an FTP password) never appear in a String, an error
// or the progress output.
package installpkg
