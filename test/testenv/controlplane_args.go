package testenv

import (
	"path/filepath"
	"strconv"
)

// Ports inside the cloud namespace. Every control plane has a namespace of its
// own, so two control planes never compete for them.
const (
	etcdClientPort        = 2379
	etcdPeerPort          = 2380
	controllerManagerPort = 10257 // kube-controller-manager's default secure port
	schedulerPort         = 10259 // kube-scheduler's default secure port
)

// layout is where a control plane keeps its files under Dir.
type layout struct {
	dir string
	pki *PKI
}

func (l layout) etcdData() string        { return filepath.Join(l.dir, "etcd") }
func (l layout) adminConf() string       { return filepath.Join(l.dir, "admin.conf") }
func (l layout) controllerConf() string  { return filepath.Join(l.dir, "controller-manager.conf") }
func (l layout) schedulerConf() string   { return filepath.Join(l.dir, "scheduler.conf") }
func (l layout) pkiFile(n string) string { return filepath.Join(l.pki.Dir, n) }

func etcdURL(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// etcdArgs runs a one-member etcd on the namespace's loopback. Plain HTTP is
// fine there: nothing outside the namespace can reach 127.0.0.1 inside it.
func etcdArgs(l layout) []string {
	return []string{
		"--name=default",
		"--data-dir=" + l.etcdData(),
		"--listen-client-urls=" + etcdURL(etcdClientPort),
		"--advertise-client-urls=" + etcdURL(etcdClientPort),
		"--listen-peer-urls=" + etcdURL(etcdPeerPort),
		"--initial-advertise-peer-urls=" + etcdURL(etcdPeerPort),
		"--initial-cluster=default=" + etcdURL(etcdPeerPort),
		"--initial-cluster-state=new",
		// A test cluster's data dies with the test: skip the fsyncs that make
		// etcd slow on a busy disk.
		"--unsafe-no-fsync",
		"--log-level=warn",
	}
}

// apiserverArgs are kubeadm's kube-apiserver flags (as its static pod manifest
// has them) with etcd on loopback, plus the ones this harness needs:
// --bind-address=0.0.0.0 so both the namespace's loopback and the bridge
// answer, and --endpoint-reconciler-type=none.
func apiserverArgs(l layout, o ControlPlaneOptions, cloudIP string) []string {
	return []string{
		"--advertise-address=" + cloudIP,
		"--bind-address=0.0.0.0",
		"--secure-port=" + strconv.Itoa(o.APIServerPort),
		"--allow-privileged=true",
		"--authorization-mode=Node,RBAC",
		"--client-ca-file=" + l.pki.CertPath(caBase),
		"--enable-admission-plugins=NodeRestriction",
		"--enable-bootstrap-token-auth=true",
		"--endpoint-reconciler-type=none",
		"--etcd-servers=" + etcdURL(etcdClientPort),
		"--kubelet-client-certificate=" + l.pki.CertPath(apiserverKubeletBase),
		"--kubelet-client-key=" + l.pki.KeyPath(apiserverKubeletBase),
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--proxy-client-cert-file=" + l.pki.CertPath(frontProxyClientBase),
		"--proxy-client-key-file=" + l.pki.KeyPath(frontProxyClientBase),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-client-ca-file=" + l.pki.CertPath(frontProxyCABase),
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--service-account-issuer=https://kubernetes.default.svc." + o.DNSDomain,
		"--service-account-key-file=" + l.pkiFile(serviceAccountBase+".pub"),
		"--service-account-signing-key-file=" + l.pki.KeyPath(serviceAccountBase),
		"--service-cluster-ip-range=" + o.ServiceCIDR,
		"--tls-cert-file=" + l.pki.CertPath(apiserverBase),
		"--tls-private-key-file=" + l.pki.KeyPath(apiserverBase),
	}
}

// controllersFlag is the --controllers value of a flavour. bootstrapsigner and
// tokencleaner are off by default in kube-controller-manager; kubeadm turns both
// on. BareNoBootstrapSigner keeps tokencleaner and names bootstrapsigner off
// explicitly, so exactly that one controller is missing.
func controllersFlag(f Flavour) string {
	if f == BareNoBootstrapSigner {
		return "*,tokencleaner,-bootstrapsigner"
	}
	return "*,bootstrapsigner,tokencleaner"
}

// controllerManagerArgs are kubeadm's kube-controller-manager flags plus node
// CIDR allocation, so nodes get a podCIDR for the bridge CNI.
func controllerManagerArgs(l layout, o ControlPlaneOptions) []string {
	return []string{
		"--kubeconfig=" + l.controllerConf(),
		"--authentication-kubeconfig=" + l.controllerConf(),
		"--authorization-kubeconfig=" + l.controllerConf(),
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(controllerManagerPort),
		"--client-ca-file=" + l.pki.CertPath(caBase),
		"--cluster-name=kubernetes",
		"--cluster-signing-cert-file=" + l.pki.CertPath(caBase),
		"--cluster-signing-key-file=" + l.pki.KeyPath(caBase),
		"--controllers=" + controllersFlag(o.Flavour),
		"--leader-elect=true",
		"--requestheader-client-ca-file=" + l.pki.CertPath(frontProxyCABase),
		"--root-ca-file=" + l.pki.CertPath(caBase),
		"--service-account-private-key-file=" + l.pki.KeyPath(serviceAccountBase),
		"--use-service-account-credentials=true",
		"--allocate-node-cidrs=true",
		"--cluster-cidr=" + o.PodCIDR,
		"--service-cluster-ip-range=" + o.ServiceCIDR,
	}
}

// schedulerArgs are kubeadm's kube-scheduler flags.
func schedulerArgs(l layout) []string {
	return []string{
		"--kubeconfig=" + l.schedulerConf(),
		"--authentication-kubeconfig=" + l.schedulerConf(),
		"--authorization-kubeconfig=" + l.schedulerConf(),
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(schedulerPort),
		"--leader-elect=true",
	}
}
