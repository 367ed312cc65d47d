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
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/edgeadm/edgeadm/pkg/edgehub/cache"
)

// Server is the edgehub daemon: the TLS API face, the plain health and
// metrics endpoint, and the upstream balancer with its probes.
type Server struct {
	cfg     *Config
	tuning  Tuning
	store   cache.Store
	log     logr.Logger
	metrics *Metrics
	lb      *Balancer
	handler *Handler
	creds   *nodeCredentials
	client  *http.Client // node credentials; probes and learning
	in      *inCluster   // the in-cluster face; nil unless inClusterAddress is set

	apiLn, healthLn net.Listener
	apiSrv, hlthSrv *http.Server
	cancel          context.CancelFunc
	wg, recWG       sync.WaitGroup
	started         chan struct{}
}

// NewServer prepares edgehub from a validated configuration and an open
// store. The serving PKI must exist (EnsurePKI).
func NewServer(cfg *Config, tuning Tuning, store cache.Store, log logr.Logger) (*Server, error) {
	caPEM, err := os.ReadFile(cfg.ClusterCAFile)
	if err != nil {
		return nil, fmt.Errorf("cluster CA (clusterCAFile): %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("cluster CA %s holds no PEM certificate", cfg.ClusterCAFile)
	}
	var ups []*url.URL
	for _, s := range cfg.Upstreams {
		u, err := ParseUpstream(s)
		if err != nil {
			return nil, err
		}
		ups = append(ups, u)
	}
	m := NewMetrics()
	s := &Server{
		cfg: cfg, tuning: tuning, store: store, log: log, metrics: m,
		lb:      NewBalancer(ups, tuning, m, log),
		creds:   &nodeCredentials{path: cfg.NodeCertificateFile, log: log},
		started: make(chan struct{}),
	}
	nodeTLS := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, GetClientCertificate: s.creds.clientCertificate}
	passTLS := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	nodeTr, passTr := newTransport(nodeTLS, tuning), newTransport(passTLS, tuning)
	s.client = &http.Client{Transport: nodeTr}
	s.handler = &Handler{
		NodeName: cfg.NodeName, Balancer: s.lb, Store: store,
		NodeTransport: nodeTr, PassTransport: passTr, Metrics: m, Log: log,
		Recorder: NewRecorder(),
		stopping: make(chan struct{}),
	}
	if s.handler.Tokens, err = openTokenCache(filepath.Join(cfg.DataDir, "tokens")); err != nil {
		return nil, err
	}
	serving, err := LoadServingCertificate(cfg.PKIDir())
	if err != nil {
		return nil, err
	}
	s.apiSrv = &http.Server{
		Handler: s.handler,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{serving},
			// A client certificate is optional (pods send tokens) but, when
			// sent, must chain to the cluster CA.
			ClientAuth: tls.VerifyClientCertIfGiven,
			ClientCAs:  pool,
			MinVersion: tls.VersionTLS12,
		},
		ReadHeaderTimeout: 30 * time.Second,
		TLSNextProto:      http1Only(),
		// TLS handshake failures of local clients (a wrong CA, a foreign
		// certificate) are debugging detail, not a log line each.
		ErrorLog: stdlog.New(klogWriter{log.V(2)}, "", 0),
	}
	// Shutdown closes the listener, then runs this: no watch ends while
	// this edgehub could still take the client's next watch.
	s.apiSrv.RegisterOnShutdown(s.handler.EndWatches)
	if cfg.InClusterAddress != "" {
		if s.in, err = newInCluster(cfg, pool, s.handler, s); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", s.readyz)
	mux.Handle("/metrics", m.Handler())
	s.hlthSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// http1Only turns HTTP/2 off on a local face (http.Server.TLSNextProto).
// Go's HTTP/2 server hands every request between three goroutines (the
// connection's reader, the handler, the frame writer); on the loopback hop
// in front of a real apiserver that cost about 0.25 ms per GET (+20 % at
// p50, BenchmarkEdgeHubRealAPIServer), against +2-6 % over HTTP/1.1, where
// the handler runs on the connection's goroutine. Clients lose nothing
// they need here: a connection per concurrent request is free on
// loopback, and exec, attach and port-forward upgrade over HTTP/1.1 anyway.
func http1Only() map[string]func(*http.Server, *tls.Conn, http.Handler) {
	return map[string]func(*http.Server, *tls.Conn, http.Handler){}
}

func newTransport(tlsCfg *tls.Config, tuning Tuning) *http.Transport {
	return &http.Transport{
		// Never a proxy from the environment: the link to the apiserver is
		// the one edgehub watches.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: tuning.DialTimeout, KeepAlive: 15 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: tuning.DialTimeout + time.Second,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
}

// Metrics exposes the server's metrics (for tests).
func (s *Server) Metrics() *Metrics { return s.metrics }

// Balancer exposes the upstream state (for tests).
func (s *Server) Balancer() *Balancer { return s.lb }

// ListenFaces opens the API and health addresses of cfg. edgehub's
// command does it first thing, before it opens the cache: from then on a
// client's connection waits in the listen queue until edgehub serves,
// where it would be refused (the kubelet logs each refusal) for as long
// as a restarting edgehub takes to open its cache.
func ListenFaces(cfg *Config) (api, health net.Listener, err error) {
	if api, err = net.Listen("tcp", cfg.ListenAddress); err != nil {
		return nil, nil, fmt.Errorf("listen on listenAddress: %w", err)
	}
	if health, err = net.Listen("tcp", cfg.HealthAddress); err != nil {
		api.Close()
		return nil, nil, fmt.Errorf("listen on healthAddress: %w", err)
	}
	return api, health, nil
}

// UseListeners makes Start serve on listeners from ListenFaces instead of
// opening its own; Start or Stop closes them.
func (s *Server) UseListeners(api, health net.Listener) {
	s.apiLn, s.healthLn = api, health
}

// Start listens on both addresses (unless UseListeners gave them), runs the first probe round (so a fresh
// start with the link down serves from the cache at once) and serves.
func (s *Server) Start(ctx context.Context) error {
	if s.apiLn == nil {
		var err error
		if s.apiLn, s.healthLn, err = ListenFaces(s.cfg); err != nil {
			return err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	first := make(chan struct{})
	s.recWG.Add(1)
	go func() {
		defer s.recWG.Done()
		s.handler.Recorder.Run()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.lb.Run(runCtx, httpProbe(s.client), first)
	}()
	select {
	case <-first:
	case <-ctx.Done():
		cancel()
		s.apiLn.Close()
		s.healthLn.Close()
		return ctx.Err()
	}
	if online, _ := s.lb.Online(); online {
		s.log.Info("edgehub: online", "upstream", s.lb.Active().String())
	} else {
		s.log.Info("edgehub: no upstream reachable at start, serving from cache", "since", time.Now().UTC().Format(time.RFC3339))
	}
	if s.tuning.LearnInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.learnLoop(runCtx)
		}()
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.apiSrv.ServeTLS(s.apiLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(err, "API server stopped")
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.hlthSrv.Serve(s.healthLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(err, "health server stopped")
		}
	}()
	if s.in != nil {
		if err := s.startInCluster(runCtx); err != nil {
			s.log.Error(err, "in-cluster face not started: pods use the kubernetes Service as before")
		}
	}
	close(s.started)
	s.log.Info("edgehub serving", "listen", s.apiLn.Addr().String(), "health", s.healthLn.Addr().String(), "node", s.cfg.NodeName)
	return nil
}

// APIAddr and HealthAddr are the bound addresses (useful with port 0).
func (s *Server) APIAddr() string    { return s.apiLn.Addr().String() }
func (s *Server) HealthAddr() string { return s.healthLn.Addr().String() }

// Stop ends serving: open watches are cut, probes stop. The store is the
// caller's to close.
func (s *Server) Stop(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	// Both faces stop together: the in-cluster one (which first removes
	// its redirect) does not hold up the node's.
	inErr := make(chan error, 1)
	if s.in != nil && s.in.ln != nil {
		go func() { inErr <- s.stopInCluster(ctx) }()
	} else {
		inErr <- nil
	}
	// Shutdown waits for handlers; watches end (EndWatches) once the
	// listeners are closed, anything else gets the grace period, then
	// connections are closed.
	err := errors.Join(s.apiSrv.Shutdown(ctx), s.hlthSrv.Shutdown(ctx))
	if err != nil {
		err = errors.Join(s.apiSrv.Close(), s.hlthSrv.Close())
	}
	err = errors.Join(err, <-inErr)
	s.wg.Wait()
	// Handlers are done: nothing queues any more; finish what is queued
	// so the store gets it before it is closed.
	s.handler.Recorder.Close()
	s.recWG.Wait()
	return err
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-s.started:
	default:
		http.Error(w, "starting: first probe of the upstreams not done", http.StatusServiceUnavailable)
		return
	}
	if online, _ := s.lb.Online(); online {
		fmt.Fprintf(w, "ok: online, upstream %s reachable\n", s.lb.Active())
		return
	}
	if s.store != nil {
		fmt.Fprintln(w, "ok: offline, no upstream reachable; serving from the cache")
		return
	}
	http.Error(w, "not ready: no upstream reachable and no cache", http.StatusServiceUnavailable)
}

// klogWriter sends the standard library's server log to a logr level.
type klogWriter struct{ log logr.Logger }

func (w klogWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}
