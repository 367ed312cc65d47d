package edgehub

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// writeStatus answers with a Kubernetes Status, the error form every client
// understands (client-go turns it into an apierrors.StatusError).
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, message string) {
	s := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  message,
		Reason:   reason,
		Code:     int32(code),
	}
	// No Retry-After: client-go would retry a 503 carrying one up to ten
	// times inside one call, turning "offline" into a long hang; the
	// kubelet's own loops retry anyway.
	body, _ := json.Marshal(s)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func writeUnavailable(w http.ResponseWriter, message string) {
	writeStatus(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, message)
}

// listJSON assembles a LIST answer from cached items without decoding them.
func listJSON(kind, apiVersion, resourceVersion string, items [][]byte) []byte {
	head, _ := json.Marshal(struct {
		Kind       string            `json:"kind"`
		APIVersion string            `json:"apiVersion"`
		Metadata   map[string]string `json:"metadata"`
	}{kind, apiVersion, map[string]string{"resourceVersion": resourceVersion}})
	n := len(head) + 16
	for _, it := range items {
		n += len(it) + 1
	}
	var b bytes.Buffer
	b.Grow(n)
	b.Write(head[:len(head)-1]) // drop the closing brace
	b.WriteString(`,"items":[`)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteString("]}")
	return b.Bytes()
}
