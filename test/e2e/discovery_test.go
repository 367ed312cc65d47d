package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	discoverytoken "k8s.io/kubernetes/cmd/kubeadm/app/discovery/token"
)

// discoveryHelperEnv names the request file of a discovery helper process.
const discoveryHelperEnv = "EDGEADM_E2E_DISCOVERY_REQUEST"

type discoveryRequest struct {
	// Endpoint is what kubeadm's discovery dials (host:port).
	Endpoint string
	Token    string
	Hashes   []string
	Timeout  time.Duration
	// Hosts is the /etc/hosts the helper sees, as "edgeadm join" writes it.
	Hosts string
	// Result is where the helper writes its discoveryResult.
	Result string
}

type discoveryResult struct {
	Server string
	Err    string
}

// discover runs kubeadm's own token discovery (RetrieveValidatedConfigInfo)
// for the join address printed by "token create", as "edgeadm join" will: the
// API server certificate does not carry the public IP but does carry
// kubernetes.default, so the address's host becomes an /etc/hosts line
// "<ip> kubernetes.default" and discovery dials kubernetes.default:<port>.
// The hosts line lives only in a private mount namespace of a helper process.
// It returns the server named by the validated cluster-info, or the error.
func discover(t *testing.T, printedAddr, token string, hashes []string, timeout time.Duration) (string, error) {
	t.Helper()
	host, port, err := net.SplitHostPort(printedAddr)
	if err != nil {
		t.Fatalf("printed address %q: %v", printedAddr, err)
	}
	if net.ParseIP(host) == nil {
		t.Fatalf("printed address %q: this helper handles IP addresses only", printedAddr)
	}
	dir := t.TempDir()
	req := discoveryRequest{
		Endpoint: net.JoinHostPort("kubernetes.default", port),
		Token:    token, Hashes: hashes, Timeout: timeout,
		Hosts:  fmt.Sprintf("127.0.0.1 localhost\n%s kubernetes.default\n", host),
		Result: filepath.Join(dir, "result.json"),
	}
	reqPath := filepath.Join(dir, "request.json")
	b, _ := json.Marshal(req)
	if err := os.WriteFile(reqPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDiscoveryHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), discoveryHelperEnv+"="+reqPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // Go also makes / private in it
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("discovery helper: %v\n%s", err, out)
	}
	var res discoveryResult
	b, err = os.ReadFile(req.Result)
	if err != nil {
		t.Fatalf("discovery helper wrote no result: %v\n%s", err, out)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Err != "" {
		return "", fmt.Errorf("%s", res.Err)
	}
	return res.Server, nil
}

// TestDiscoveryHelper is not a test: it is the body of the helper process
// discover starts, in a mount namespace of its own.
func TestDiscoveryHelper(t *testing.T) {
	reqPath := os.Getenv(discoveryHelperEnv)
	if reqPath == "" {
		t.Skip("runs only as the helper process of discover")
	}
	b, err := os.ReadFile(reqPath)
	if err != nil {
		t.Fatal(err)
	}
	var req discoveryRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(filepath.Dir(reqPath), "hosts")
	if err := os.WriteFile(hosts, []byte(req.Hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(hosts, "/etc/hosts", "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind the test's hosts file over /etc/hosts (in the helper's own mount namespace): %v", err)
	}
	join := kubeadmapi.JoinConfiguration{Discovery: kubeadmapi.Discovery{
		BootstrapToken: &kubeadmapi.BootstrapTokenDiscovery{
			Token:             req.Token,
			APIServerEndpoint: req.Endpoint,
			CACertHashes:      req.Hashes,
		},
	}}
	var res discoveryResult
	cfg, err := discoverytoken.RetrieveValidatedConfigInfo(nil, &join.Discovery, req.Timeout)
	if err != nil {
		res.Err = err.Error()
	} else {
		for _, c := range cfg.Clusters {
			res.Server = c.Server
		}
	}
	b, _ = json.Marshal(res)
	if err := os.WriteFile(req.Result, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
