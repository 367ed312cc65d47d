// A tiny static pause binary: the sandbox (infra) image of the test environment.
module github.com/edgeadm/edgeadm/build/pause

go 1.26.0
