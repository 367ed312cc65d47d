// Package cache is edgehub's store of what this node's clients have read
// from the apiserver: objects in memory for serving, persisted to disk so a
// restart or a reboot with the link down still serves them.
//
// Everything is kept per identity (the node itself, a service account, ...):
// a client offline gets back only what it read itself while online.
package cache

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Scope is what a LIST (or WATCH) asked for: one resource, one namespace or
// all ("" for all namespaces or for cluster-scoped resources), selectors as
// the client sent them (already canonical: labels.Parse(...).String(),
// fields.ParseSelector(...).String()).
type Scope struct {
	GVR           schema.GroupVersionResource
	Namespace     string
	LabelSelector string
	FieldSelector string
}

// ListResult is an offline LIST answer: the list's kind and apiVersion as
// the apiserver last answered them (e.g. "PodList", "v1"), the newest
// resourceVersion the store has seen for the scope, and the matching
// objects as JSON, sorted by namespace then name.
//
// Items are read-only: they share the store's memory (the store never
// modifies stored bytes in place, so they stay valid after later writes),
// which spares copying megabytes per LIST. Copy an item before changing it.
type ListResult struct {
	Kind            string
	APIVersion      string
	ResourceVersion string
	Items           [][]byte
}

// Store is edgehub's cache. Implementations are safe for concurrent use.
//
// Writes come from answers the apiserver gave while online: a GET (Put), a
// complete LIST (ReplaceList), WATCH events (Put for ADDED/MODIFIED, Delete
// for DELETED, Bookmark for BOOKMARK). Reads (Get, List) serve offline.
type Store interface {
	// Put records one object (JSON, as the apiserver returned it) read by
	// identity. The object's namespace and name come from its metadata.
	Put(identity string, gvr schema.GroupVersionResource, object []byte) error
	// Delete forgets one object of identity's.
	Delete(identity string, gvr schema.GroupVersionResource, namespace, name string) error
	// ReplaceList records a complete LIST answer for scope: afterwards the
	// objects of identity's that match scope are exactly items; the scope
	// is remembered as covered, so List can answer it offline.
	ReplaceList(identity string, scope Scope, kind, apiVersion, resourceVersion string, items [][]byte) error
	// Bookmark advances the resourceVersion recorded for a covered scope.
	Bookmark(identity string, scope Scope, resourceVersion string) error
	// Get returns one object of identity's, and whether it is cached.
	Get(identity string, gvr schema.GroupVersionResource, namespace, name string) ([]byte, bool)
	// List answers a LIST offline. ok is false when no scope identity listed
	// online covers the request (same resource; the same namespace, or all
	// namespaces; and selectors that are empty or equal): then the store
	// does not know the answer and the caller must not invent one.
	List(identity string, scope Scope) (result ListResult, ok bool, err error)
	// Close flushes what is pending to disk and closes the store.
	Close() error
}
