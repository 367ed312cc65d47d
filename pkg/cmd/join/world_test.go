package join

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	tokenjws "k8s.io/cluster-bootstrap/token/jws"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"

	"github.com/edgeadm/edgeadm/pkg/cmd"
	"github.com/edgeadm/edgeadm/pkg/cmd/exitcode"
	"github.com/edgeadm/edgeadm/pkg/cmd/join/phases"
	"github.com/edgeadm/edgeadm/pkg/host"
	"github.com/edgeadm/edgeadm/pkg/installpkg"
)

const (
	testToken  = "abcdef.0123456789abcdef"
	testNode   = "edge-1"
	testNodeIP = "198.18.0.10"
)

// world is everything a join touches, faked: the host (host.Fake), the
// cluster (a fake clientset behind a loopback TLS listener that presents the
// API server's certificate), and a real install package archive.
type world struct {
	t        *testing.T
	fake     *host.Fake
	clients  *fake.Clientset
	env      *phases.Env
	endpoint string // 127.0.0.1:<port> of the TLS listener
	caPEM    []byte
	caHash   string
	pkgPath  string
	workDir  string
	killed   bool
	// discover is kubeadm's discovery, faked; the e2e tests run the real one.
	discover func(*kubeadmapi.Discovery, time.Duration) (*clientcmdapi.Config, error)
	// kubeletRuns says whether starting kubelet.service writes its kubeconfig.
	kubeletRuns bool
	// discoverAt is the name discovery must use.
	discoverAt string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, fake: host.NewFake(), workDir: t.TempDir(), kubeletRuns: true}
	caCert, caKey := newCA(t)
	w.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})
	w.caHash = pubkeypin.Hash(caCert)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serving(t, caCert, caKey, []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc"})}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	w.endpoint = srv.Listener.Addr().String()

	// The host: systemd, cgroup v2, overlay loaded, br_netfilter loadable.
	w.fake.PutDir("/run/systemd/system")
	w.fake.PutFile("/sys/fs/cgroup/cgroup.controllers", []byte("cpu memory\n"), 0o444)
	w.fake.PutFile("/etc/hosts", []byte("127.0.0.1 localhost\n10.1.2.3 db # no newline at the end"), 0o644)
	w.fake.Respond = func(c host.Command) ([]byte, error) { return nil, nil }
	w.fake.After = w.daemons

	// The cluster.
	kubeconfig := string(mustWrite(t, clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{"": {Server: "https://10.0.0.1:6443", CertificateAuthorityData: w.caPEM}},
	}))
	sig, err := tokenjws.ComputeDetachedSignature(kubeconfig, "abcdef", "0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	w.clients = fake.NewSimpleClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-public", Name: "cluster-info"},
			Data: map[string]string{bootstrapapi.KubeConfigKey: kubeconfig, bootstrapapi.JWSSignatureKeyPrefix + "abcdef": sig}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubelet-config"},
			Data: map[string]string{"kubelet": "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailCgroupV1: false\nstaticPodPath: /etc/kubernetes/manifests\n"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, Labels: map[string]string{"kubernetes.io/hostname": testNode}},
			Spec:   corev1.NodeSpec{PodCIDR: "10.244.3.0/24", PodCIDRs: []string{"10.244.3.0/24"}},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}},
	)
	w.discoverAt = "kubernetes.default"
	w.discover = func(cfg *kubeadmapi.Discovery, _ time.Duration) (*clientcmdapi.Config, error) {
		if want := w.discoverAt + ":" + w.port(); cfg.BootstrapToken.APIServerEndpoint != want {
			t.Errorf("discovery went to %q, want %s", cfg.BootstrapToken.APIServerEndpoint, want)
		}
		return clientcmd.Load([]byte(kubeconfig))
	}
	w.env = phases.DefaultEnv()
	w.env.Euid = func() int { return 0 }
	w.env.Listen = func(string, string) (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	w.env.Dial = func(context.Context, string, string) (net.Conn, error) {
		t.Error("node IP detection dialled although --node-ip was given")
		return nil, net.ErrClosed
	}
	w.env.Discover = func(cfg *kubeadmapi.Discovery, d time.Duration) (*clientcmdapi.Config, error) {
		return w.discover(cfg, d)
	}
	w.env.NewClient = func(*rest.Config) (kubernetes.Interface, error) { return w.clients, nil }
	w.env.KubeletHealthy = func(context.Context) error { return nil }
	w.env.OpenPackage = func(ctx context.Context, o installpkg.Options) (*installpkg.Package, error) {
		o.HostArch = runtime.GOARCH
		return installpkg.Open(ctx, o)
	}
	w.env.Getenv = func(string) string { return "" }
	w.env.PollInterval = time.Millisecond
	w.pkgPath = writePackage(t)
	return w
}

func (w *world) port() string { _, p, _ := net.SplitHostPort(w.endpoint); return p }

// daemons plays containerd and the kubelet on the fake host.
func (w *world) daemons(op, arg string) {
	switch {
	case op == "Systemctl" && arg == "start containerd.service":
		w.fake.PutFile("/run/containerd/containerd.sock", nil, 0o600)
		w.fake.PutFile("/var/lib/containerd/io.containerd.content.v1.content/blob", []byte("layer"), 0o644)
		_ = w.fake.SetMode("/var/lib/containerd", host.File{Mode: 0o700}) // as containerd does
		w.fake.PutDir("/opt/containerd/bin")
	case op == "Systemctl" && arg == "start kubelet.service" && w.kubeletRuns:
		kc := mustWrite(w.t, clientcmdapi.Config{
			Clusters:       map[string]*clientcmdapi.Cluster{"default-cluster": {Server: "https://kubernetes.default:" + w.port(), CertificateAuthority: "/etc/kubernetes/pki/ca.crt"}},
			AuthInfos:      map[string]*clientcmdapi.AuthInfo{"default-auth": {ClientCertificate: "/var/lib/kubelet/pki/kubelet-client-current.pem", ClientKey: "/var/lib/kubelet/pki/kubelet-client-current.pem"}},
			Contexts:       map[string]*clientcmdapi.Context{"default-context": {Cluster: "default-cluster", AuthInfo: "default-auth"}},
			CurrentContext: "default-context",
		})
		w.fake.PutFile("/var/lib/kubelet/pki/kubelet-client-current.pem", []byte("cert and key"), 0o600)
		w.fake.PutFile("/etc/kubernetes/kubelet.conf", kc, 0o600)
		w.fake.PutFile("/var/lib/kubelet/pods/p1/volumes/kubernetes.io~projected/token/token", []byte("t"), 0o600)
		w.fake.PutMount("/var/lib/kubelet/pods/p1/volumes/kubernetes.io~projected/token")
		w.fake.PutFile("/var/log/pods/kube-system_p1/c/0.log", []byte("log"), 0o640)
		w.fake.PutUnit("kubelet.service", host.UnitState{Enabled: "enabled", Active: "active"})
		w.fake.PutDir("/usr/libexec/kubernetes/kubelet-plugins/volume/exec")
	}
}

func (w *world) deps() Deps {
	return Deps{
		Paths:    w.fake.P,
		Host:     w.fake,
		Env:      w.env,
		Hostname: func() (string, error) { return "Edge-1", nil },
		WorkDir:  w.workDir,
		Kill:     func() { w.killed = true; w.fake.KillAfter(0) },
	}
}

// args is a complete, valid join command line.
func (w *world) args(extra ...string) []string {
	return append([]string{"join", w.endpoint, "--token", testToken,
		"--discovery-token-ca-cert-hash", w.caHash, "--install-pkg-path", w.pkgPath,
		"--node-ip", testNodeIP, "--node-labels", "site=berlin"}, extra...)
}

// run runs "edgeadm join ..." (args[0] is "join") in process.
func (w *world) run(args ...string) (stdout, stderr string, code int) {
	w.t.Helper()
	var out, errOut bytes.Buffer
	streams := cmd.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	c := NewCommandWith(streams, w.deps())
	c.SetArgs(args[1:])
	c.SetOut(&out)
	c.SetErr(&errOut)
	c.SilenceErrors, c.SilenceUsage = true, true
	c.SetFlagErrorFunc(cmd.FlagErrorFunc)
	err := c.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("error: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), exitcode.Code(err)
}

func mustWrite(t *testing.T, c clientcmdapi.Config) []byte {
	t.Helper()
	if c.Contexts == nil {
		c.Contexts = map[string]*clientcmdapi.Context{"": {Cluster: ""}}
	}
	b, err := clientcmd.Write(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func serving(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, names []string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: names, IPAddresses: []net.IP{net.ParseIP("10.96.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key}
}

// writePackage builds a small but complete install package with the
// package's own writer, with extra files (such as edgehub's) added.
func writePackage(t *testing.T, extra ...map[string]string) string {
	t.Helper()
	stage := t.TempDir()
	files := map[string]string{
		"systemd/containerd.service":                "[Service]\nExecStart=/usr/local/bin/containerd\n",
		"systemd/kubelet.service":                   "[Service]\nExecStart=/usr/local/bin/kubelet\n",
		"systemd/kubelet.service.d/10-edgeadm.conf": kubeletDropIn,
		"config/containerd.toml":                    "version = 3\n",
		"images/pause.tar":                          "not really a tarball",
	}
	for _, x := range extra {
		for name, data := range x {
			files[name] = data
		}
	}
	for _, f := range installpkg.RequiredFiles() {
		if _, ok := files[f]; !ok {
			files[f] = "#!/bin/sh\n# " + f + "\n"
		}
	}
	for name, data := range files {
		p := filepath.Join(stage, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "bin/") || strings.HasPrefix(name, "cni/bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "kube-linux-test.tar.gz")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := installpkg.WriteArchive(f, installpkg.BuildInput{
		Dir: stage, KubernetesVersion: "v1.37.1", Arch: runtime.GOARCH,
		Images: []installpkg.Image{{Path: "images/pause.tar", Ref: "registry.k8s.io/pause:3.10"}},
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

const kubeletDropIn = `[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS
`
