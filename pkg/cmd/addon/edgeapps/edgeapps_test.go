package edgeapps

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/edgeadm/edgeadm/pkg/addon"
	"github.com/edgeadm/edgeadm/pkg/cmd"
)

// The tunnel is wanted by default; --tunnel=false is the way out every
// refusal names.
func TestTunnelFlag(t *testing.T) {
	c := NewCommand(cmd.IOStreams{Out: io.Discard, ErrOut: io.Discard}, &cmd.Globals{})
	f := c.Flags().Lookup("tunnel")
	if f == nil || f.DefValue != "true" {
		t.Fatalf("--tunnel: %+v", f)
	}
	if err := c.Flags().Parse([]string{"--tunnel=false"}); err != nil || f.Value.String() != "false" {
		t.Errorf("--tunnel=false: %v, %s", err, f.Value)
	}
}

func TestPrintHumanTunnel(t *testing.T) {
	var b bytes.Buffer
	s := &addon.Summary{MasterPublicAddr: "203.0.113.10:6443", Record: "kube-system/edgeadm",
		Tunnel: &addon.TunnelSummary{LocalMaster: "cp1", APIServerChanged: true, Backup: "/etc/kubernetes/edgeadm-backup/kube-apiserver.yaml",
			PendingMasters: []string{"cp2", "cp3"}}}
	if err := printHuman(&b, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"the API server of cp1 now uses the tunnel (original manifest kept in /etc/kubernetes/edgeadm-backup/kube-apiserver.yaml)",
		"the API servers of cp2, cp3 do not use it yet: run this same command as root on each of them",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
