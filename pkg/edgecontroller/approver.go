package edgecontroller

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
)

// ApprovalReason is the reason of the Approved condition edge-controller sets.
const ApprovalReason = "EdgeHubKubernetesServiceCertificate"

// DefaultClusterDomain is the cluster DNS domain assumed when none is given.
const DefaultClusterDomain = "cluster.local"

// csrKeyPrefix marks CSR names in the work queue (node names never hold ':').
const csrKeyPrefix = "csr:"

// ServiceCertUsageSets are the usage sets edgehub's kubernetes Service
// certificate may ask for: what the kubelet-serving signer accepts.
var ServiceCertUsageSets = [][]certificatesv1.KeyUsage{
	{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth},
	{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
}

// CSRApprover approves exactly the CSRs edgehub makes for the kubernetes
// Service on an edge node (pkg/edgehub/servicecert.go): signer
// kubernetes.io/kubelet-serving, asked by system:node:<n> for itself, n an
// edge node, SANs only the kubernetes Service's ClusterIPs and its
// kubernetes.default.svc names. Anything else is left alone, neither
// approved nor denied: the cluster's own approver may handle kubelet-serving
// CSRs of the kubelets.
type CSRApprover struct {
	Client        kubernetes.Interface
	CSRs          certlisters.CertificateSigningRequestLister
	Nodes         corelisters.NodeLister // edge nodes only
	ClusterDomain string
	Log           klog.Logger
}

// Sync looks at one CSR and approves it if it is edgehub's.
func (a *CSRApprover) Sync(ctx context.Context, name string) error {
	csr, err := a.CSRs.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName || decided(csr) {
		return nil
	}
	svc, err := a.Client.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read the kubernetes Service for CSR %s: %w", name, err)
	}
	isEdge := func(node string) bool {
		n, err := a.Nodes.Get(node)
		return err == nil && EdgeNodeSelector.Matches(labels.Set(n.Labels))
	}
	if err := CheckServiceCertCSR(csr, isEdge, serviceIPs(svc), a.ClusterDomain); err != nil {
		a.Log.V(2).Info("CSR left alone: not edgehub's kubernetes Service certificate", "csr", name, "why", err.Error())
		return nil
	}
	csr = csr.DeepCopy()
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: ApprovalReason,
		Message: "edge-controller: edgehub's serving certificate for the kubernetes Service on edge node " + strings.TrimPrefix(csr.Spec.Username, "system:node:"),
	})
	if _, err := a.Client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, name, csr, metav1.UpdateOptions{FieldManager: Identity}); err != nil {
		return fmt.Errorf("approve CSR %s: %w", name, err)
	}
	a.Log.Info("approved edgehub's kubernetes Service certificate", "csr", name, "node", csr.Spec.Username)
	return nil
}

func decided(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
			return true
		}
	}
	return false
}

func serviceIPs(svc *corev1.Service) []netip.Addr {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []netip.Addr
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// CheckServiceCertCSR says why csr is not edgehub's request for the
// kubernetes Service certificate of an edge node (nil: it is).
func CheckServiceCertCSR(csr *certificatesv1.CertificateSigningRequest, isEdgeNode func(string) bool, svcIPs []netip.Addr, clusterDomain string) error {
	if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName {
		return fmt.Errorf("signer %s", csr.Spec.SignerName)
	}
	node, ok := strings.CutPrefix(csr.Spec.Username, "system:node:")
	if !ok || node == "" || !slices.Contains(csr.Spec.Groups, "system:nodes") {
		return fmt.Errorf("requested by %q, not a node", csr.Spec.Username)
	}
	if !isEdgeNode(node) {
		return fmt.Errorf("node %s is not an edge node", node)
	}
	if !slices.ContainsFunc(ServiceCertUsageSets, func(set []certificatesv1.KeyUsage) bool { return sameUsages(set, csr.Spec.Usages) }) {
		return fmt.Errorf("usages %v", csr.Spec.Usages)
	}
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return errors.New("request is not a PEM CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return fmt.Errorf("parse request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return fmt.Errorf("request signature: %w", err)
	}
	if req.Subject.CommonName != csr.Spec.Username || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return fmt.Errorf("subject %q is not the requester %s in system:nodes", req.Subject.String(), csr.Spec.Username)
	}
	if len(req.Subject.OrganizationalUnit)+len(req.Subject.Country)+len(req.Subject.Locality)+len(req.Subject.Province)+len(req.Subject.StreetAddress)+len(req.Subject.PostalCode) > 0 {
		return fmt.Errorf("subject %q has more than CN and O", req.Subject.String())
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return errors.New("email or URI SANs")
	}
	if len(req.IPAddresses) == 0 {
		return errors.New("no IP SAN: the kubernetes Service certificate is for its ClusterIP")
	}
	for _, ip := range req.IPAddresses {
		a, ok := netip.AddrFromSlice(ip)
		if !ok || !slices.Contains(svcIPs, a.Unmap()) {
			return fmt.Errorf("IP SAN %s is not a ClusterIP of the kubernetes Service %v", ip, svcIPs)
		}
	}
	if clusterDomain = strings.Trim(clusterDomain, "."); clusterDomain == "" {
		clusterDomain = DefaultClusterDomain
	}
	names := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + clusterDomain}
	for _, n := range req.DNSNames {
		if !slices.Contains(names, n) {
			return fmt.Errorf("DNS SAN %q is not one of the kubernetes Service's names %v", n, names)
		}
	}
	return nil
}

func sameUsages(want, got []certificatesv1.KeyUsage) bool {
	if len(want) != len(got) {
		return false
	}
	for _, u := range want {
		if !slices.Contains(got, u) {
			return false
		}
	}
	return true
}
