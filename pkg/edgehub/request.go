package edgehub

import (
	"fmt"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/edgeadm/edgeadm/pkg/edgehub/cache"
)

// reqKind is what edgehub does with a request.
type reqKind int

const (
	// kindPass is forwarded and not recorded: writes, subresources
	// (logs, exec, status), discovery, reviews, anything not cached.
	kindPass reqKind = iota
	kindGet
	kindList
	kindWatch
)

// apiRequest is a request as edgehub understands it.
type apiRequest struct {
	kind reqKind
	verb string // the Kubernetes verb ("get", "list", "create", ...) or the HTTP method lowercased
	info *request.RequestInfo
	gvr  schema.GroupVersionResource
	// scope of a LIST or WATCH, selectors canonical.
	scope cache.Scope
	// watchList: a WATCH with sendInitialEvents=true, the streaming form of
	// a LIST that client-go's informers use by default since 1.35.
	watchList bool
	// continued: a later page of a paginated LIST; limited: a LIST with a
	// limit, whose answer may be a first page.
	continued, limited bool
	// tokenRequest: POST .../serviceaccounts/<name>/token.
	tokenRequest bool
}

var requestInfoFactory = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// notCached are resources whose reads edgehub never records: reviews are
// answered per request, events are noise, and tokens must not be kept.
var notCached = map[string]bool{
	"subjectaccessreviews": true, "selfsubjectaccessreviews": true, "localsubjectaccessreviews": true,
	"selfsubjectrulesreviews": true, "tokenreviews": true, "selfsubjectreviews": true,
	"certificatesigningrequests": true, "events": true,
}

// classify reads r's path and query. Requests edgehub cannot parse are
// passed through untouched: the apiserver gives the real error.
func classify(r *http.Request) apiRequest {
	info, err := requestInfoFactory.NewRequestInfo(r)
	if err != nil || !info.IsResourceRequest {
		return apiRequest{kind: kindPass, verb: strings.ToLower(r.Method), info: info}
	}
	a := apiRequest{
		kind: kindPass,
		verb: info.Verb,
		info: info,
		gvr:  schema.GroupVersionResource{Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource},
	}
	a.tokenRequest = info.Verb == "create" && info.Resource == "serviceaccounts" && info.Subresource == "token" && info.Name != ""
	if info.Subresource != "" || notCached[info.Resource] {
		return a
	}
	// A client asking for a transformed form (metadata only, a Table) gets
	// it from the apiserver and nothing is recorded: the cache holds whole
	// objects only.
	if strings.Contains(r.Header.Get("Accept"), "as=") {
		return a
	}
	q := r.URL.Query()
	switch info.Verb {
	case "get":
		a.kind = kindGet
		return a
	case "list", "watch":
	default:
		return a
	}
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return a
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return a
	}
	a.scope = cache.Scope{GVR: a.gvr, Namespace: info.Namespace, LabelSelector: ls.String(), FieldSelector: fs.String()}
	if info.Verb == "watch" {
		a.kind = kindWatch
		a.watchList = q.Get("sendInitialEvents") == "true"
	} else {
		a.kind = kindList
		a.continued = q.Get("continue") != ""
		a.limited = q.Get("limit") != ""
	}
	return a
}

// describe names what a request reads, for messages: "pods in namespace x".
func (a apiRequest) describe() string {
	res := a.gvr.Resource
	if a.gvr.Group != "" {
		res += "." + a.gvr.Group
	}
	var b strings.Builder
	b.WriteString(res)
	if a.kind == kindGet && a.info != nil {
		fmt.Fprintf(&b, " %q", a.info.Name)
	}
	if a.info != nil && a.info.Namespace != "" {
		fmt.Fprintf(&b, " in namespace %q", a.info.Namespace)
	}
	if a.scope.LabelSelector != "" {
		fmt.Fprintf(&b, " with labels %q", a.scope.LabelSelector)
	}
	if a.scope.FieldSelector != "" {
		fmt.Fprintf(&b, " with fields %q", a.scope.FieldSelector)
	}
	return b.String()
}
