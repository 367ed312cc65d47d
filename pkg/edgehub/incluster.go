package edgehub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/edgeadm/edgeadm/pkg/edgehub/redirect"
)

// serviceCheckEvery bounds how often the kubernetes Service is read to see
// whether its IPs changed (rare: a rebuilt cluster), so that many edge nodes
// do not poll it.
const serviceCheckEvery = 10 * time.Minute

// inCluster is edgehub's second face: the same API, on the node's address,
// with a certificate the cluster CA signed for the kubernetes Service, and
// the redirect that sends pods' connections to that Service here.
type inCluster struct {
	addr      netip.AddrPort
	cert      *serviceCert
	srv       *http.Server
	ln        net.Listener
	installed []netip.Addr // Service IPs the redirect was installed for
	lastCheck time.Time
	ips       []netip.Addr  // the Service's IPs as last read
	loopDone  chan struct{} // closed when the round loop has ended
}

func newInCluster(cfg *Config, pool *x509.CertPool, handler http.Handler, s *Server) (*inCluster, error) {
	addr, err := netip.ParseAddrPort(cfg.InClusterAddress)
	if err != nil {
		return nil, fmt.Errorf("inClusterAddress: %w", err)
	}
	domain := cfg.ClusterDomain
	if domain == "" {
		domain = DefaultClusterDomain
	}
	in := &inCluster{
		addr: addr,
		cert: &serviceCert{dir: cfg.PKIDir(), nodeName: cfg.NodeName, clusterDomain: domain, roots: pool},
	}
	if err := in.cert.load(); err != nil {
		s.log.Error(err, "in-cluster serving certificate unusable")
	}
	in.srv = &http.Server{
		Handler: handler,
		TLSConfig: &tls.Config{
			GetCertificate: in.cert.getCertificate,
			ClientAuth:     tls.VerifyClientCertIfGiven,
			ClientCAs:      pool,
			MinVersion:     tls.VersionTLS12,
		},
		ReadHeaderTimeout: 30 * time.Second,
		TLSNextProto:      http1Only(), // as on the node's face: see http1Only
		ErrorLog:          stdlog.New(klogWriter{s.log.V(2)}, "", 0),
	}
	return in, nil
}

// InClusterAddr is the bound in-cluster address ("" when not configured).
func (s *Server) InClusterAddr() string {
	if s.in == nil || s.in.ln == nil {
		return ""
	}
	return s.in.ln.Addr().String()
}

// startInCluster listens and serves the in-cluster face and keeps its
// certificate and redirect. Called by Start.
func (s *Server) startInCluster(ctx context.Context) error {
	var err error
	if s.in.ln, err = net.Listen("tcp", s.in.addr.String()); err != nil {
		return fmt.Errorf("listen on inClusterAddress: %w", err)
	}
	// The redirect goes where the listener is (port 0 picks one).
	if ap, err := netip.ParseAddrPort(s.in.ln.Addr().String()); err == nil {
		s.in.addr = ap
	}
	s.in.loopDone = make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.in.srv.ServeTLS(s.in.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(err, "in-cluster API server stopped")
		}
	}()
	go func() {
		defer close(s.in.loopDone)
		for {
			s.inClusterRound(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.tuning.ServiceCertInterval):
			}
		}
	}()
	return nil
}

// inClusterRound does what is due: the redirect for the certificate served
// (also offline: a restart with the link down serves the last certificate),
// and, online, a new certificate when there is none, renewal is due or the
// Service's IPs changed.
func (s *Server) inClusterRound(ctx context.Context) {
	in := s.in
	s.ensureRedirect(ctx)
	if online, _ := s.lb.Online(); !online {
		return
	}
	client, err := s.selfClient()
	if err != nil {
		s.log.V(1).Info("in-cluster certificate: not now", "reason", err.Error())
		return
	}
	if in.ips == nil || time.Since(in.lastCheck) > serviceCheckEvery {
		ips, err := kubernetesServiceIPs(ctx, client)
		if err != nil {
			s.log.Error(err, "in-cluster certificate: cannot tell the kubernetes Service's IPs; retrying")
			return
		}
		in.ips, in.lastCheck = ips, time.Now()
	}
	why := in.cert.due(time.Now(), in.ips)
	if why == "" {
		return
	}
	s.log.Info("edgehub: asking the cluster for a serving certificate for the kubernetes Service", "why", why, "ips", in.ips)
	if err := in.cert.obtain(ctx, client, in.ips, time.Now); err != nil {
		s.log.Error(err, "in-cluster serving certificate not obtained; retrying", "retryIn", s.tuning.ServiceCertInterval)
		return
	}
	leaf := in.cert.current()
	s.log.Info("edgehub: serving the kubernetes Service with a certificate of the cluster CA", "ips", in.ips, "validUntil", leaf.NotAfter.UTC().Format(time.RFC3339))
	s.ensureRedirect(ctx)
}

// ensureRedirect installs the redirect for the certificate's Service IPs,
// or, installed, keeps our jumps first (kube-proxy may have prepended its
// own since).
func (s *Server) ensureRedirect(ctx context.Context) {
	in := s.in
	if s.tuning.Redirect == nil {
		return
	}
	ips := in.cert.serviceIPs()
	if len(ips) == 0 {
		return
	}
	rule := redirect.Rule{ServiceIPs: ips, ServicePort: 443, To: in.addr}
	if len(in.installed) > 0 && sameAddrs(in.installed, ips) {
		if err := redirect.EnsureFirst(ctx, s.tuning.Redirect, redirectBin(in.addr)); err != nil {
			s.log.Error(err, "in-cluster redirect: cannot keep it first")
		}
		return
	}
	if err := redirect.Install(ctx, s.tuning.Redirect, rule); err != nil {
		s.log.Error(err, "in-cluster redirect not installed; retrying", "chain", redirect.Chain)
		return
	}
	in.installed = ips
	s.log.Info("edgehub: pods' connections to the kubernetes Service now reach edgehub", "serviceIPs", rule.Targets(), "to", in.addr.String(), "chain", redirect.Chain)
}

func redirectBin(a netip.AddrPort) string {
	if a.Addr().Unmap().Is4() {
		return "iptables"
	}
	return "ip6tables"
}

// stopInCluster removes the redirect first, so that pods go back to
// kube-proxy's way to the apiserver, then closes the in-cluster face.
func (s *Server) stopInCluster(ctx context.Context) error {
	var errs []error
	// The loop ends with Stop's cancel; it alone touches the redirect.
	select {
	case <-s.in.loopDone:
	case <-ctx.Done():
		return fmt.Errorf("in-cluster face: its certificate loop did not end: %w", ctx.Err())
	}
	if s.tuning.Redirect != nil && len(s.in.installed) > 0 {
		if err := redirect.Remove(ctx, s.tuning.Redirect); err != nil {
			errs = append(errs, fmt.Errorf("remove the in-cluster redirect: %w", err))
		} else {
			s.in.installed = nil
			s.log.Info("edgehub: in-cluster redirect removed", "chain", redirect.Chain)
		}
	}
	if err := s.in.srv.Shutdown(ctx); err != nil {
		errs = append(errs, s.in.srv.Close())
	}
	return errors.Join(errs...)
}

// selfClient is a client of edgehub's own local face with the node's
// credentials: requests go through the balancer's active upstream, as the
// kubelet's do.
func (s *Server) selfClient() (kubernetes.Interface, error) {
	if _, err := os.Stat(s.cfg.NodeCertificateFile); err != nil {
		return nil, errNoNodeCredentials
	}
	host, port, err := net.SplitHostPort(s.APIAddr())
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return kubernetes.NewForConfig(&rest.Config{
		Host: "https://" + net.JoinHostPort(host, port),
		TLSClientConfig: rest.TLSClientConfig{
			CAFile:   filepath.Join(s.cfg.PKIDir(), CAFileName),
			CertFile: s.cfg.NodeCertificateFile,
			KeyFile:  s.cfg.NodeCertificateFile,
		},
		// JSON: what edgehub records and what its tests' fakes speak.
		ContentConfig: rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"},
		UserAgent:     "edgehub",
		Timeout:       30 * time.Second,
	})
}
