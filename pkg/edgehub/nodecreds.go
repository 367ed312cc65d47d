package edgehub

import (
	"crypto/tls"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// nodeCredentials serves the kubelet's client certificate and key from
// their file, reloading them when the file changes (the kubelet rotates
// them; before TLS bootstrap the file does not exist yet).
type nodeCredentials struct {
	path string
	log  logr.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	modTime   time.Time
	size      int64
	checkedAt time.Time
}

// recheck bounds how often the file is looked at: the TLS handshake calls
// in on every new connection.
const recheck = time.Second

func (n *nodeCredentials) get() *tls.Certificate {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	if now.Sub(n.checkedAt) < recheck && !n.checkedAt.IsZero() {
		return n.cert
	}
	n.checkedAt = now
	fi, err := os.Stat(n.path)
	if err != nil {
		if n.cert != nil {
			n.log.Info("node credentials disappeared; upstream requests go without them", "file", n.path)
		}
		n.cert = nil
		return nil
	}
	if n.cert != nil && fi.ModTime().Equal(n.modTime) && fi.Size() == n.size {
		return n.cert
	}
	// The kubelet's file holds certificate and key together.
	c, err := tls.LoadX509KeyPair(n.path, n.path)
	if err != nil {
		n.log.Error(err, "node credentials unreadable; keeping the previous ones", "file", n.path)
		return n.cert
	}
	n.cert, n.modTime, n.size = &c, fi.ModTime(), fi.Size()
	n.log.V(1).Info("node credentials loaded", "file", n.path)
	return n.cert
}

// clientCertificate is for tls.Config.GetClientCertificate: no
// certificate (an anonymous handshake) while the node has none.
func (n *nodeCredentials) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := n.get(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil
}
