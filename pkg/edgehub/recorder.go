package edgehub

import (
	"context"
	"sync"
)

// Limits of the recording queue. A LIST answer larger than
// maxRecordedBody is relayed but not recorded; the queue holds at most
// recorderQueueLen answers or events and recorderQueueBytes of their
// bodies, so a store that falls behind costs bounded memory.
const (
	maxRecordedBody    = 64 << 20
	recorderQueueLen   = 1024
	recorderQueueBytes = 128 << 20
)

// submitResult says what became of work handed to the recorder.
type submitResult int

const (
	submitQueued submitResult = iota
	// submitFull: the queue was full (by count or by bytes); the work was
	// dropped so the client does not wait for the store.
	submitFull
	// submitClosed: the recorder is shutting down; the work was dropped.
	submitClosed
)

// Recorder runs recording work on one goroutine, in submission order, so
// the cache sees answers and events in the order they passed, while the
// clients never wait for it: when the queue is full, work is dropped.
type Recorder struct {
	q        chan recordJob
	maxBytes int64

	// mu guards closed, queued and queuedBytes, and makes "queued" match
	// the order of the channel (Wait relies on it).
	mu          sync.Mutex
	closed      bool
	queued      uint64
	queuedBytes int64

	// doneMu guards done and progress; progress is closed (and replaced)
	// when work finishes, to wake waiters.
	doneMu   sync.Mutex
	done     uint64
	progress chan struct{}
}

type recordJob struct {
	size int64
	fn   func()
}

// NewRecorder makes a recorder with edgehub's queue limits.
func NewRecorder() *Recorder { return newRecorderSized(recorderQueueLen, recorderQueueBytes) }

func newRecorderSized(jobs int, maxBytes int64) *Recorder {
	return &Recorder{q: make(chan recordJob, jobs), maxBytes: maxBytes}
}

// Run works the queue until it is closed by Close and drained.
func (r *Recorder) Run() {
	for j := range r.q {
		// Taking mu before running the job also makes what submitThen's
		// queued did visible to it.
		r.mu.Lock()
		r.queuedBytes -= j.size
		r.mu.Unlock()
		j.fn()
		r.doneMu.Lock()
		r.done++
		if r.progress != nil {
			close(r.progress)
			r.progress = nil
		}
		r.doneMu.Unlock()
	}
}

// Close makes later submissions fail; Run ends once the queued work is done.
func (r *Recorder) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.q)
	}
}

// submit queues fn, which holds about size bytes, without ever waiting.
// On a nil recorder fn runs at once.
func (r *Recorder) submit(size int, fn func()) submitResult {
	return r.submitThen(size, fn, nil)
}

// submitThen is submit that, once fn is queued and before it can run,
// calls queued (when not nil).
func (r *Recorder) submitThen(size int, fn, queued func()) submitResult {
	if r == nil {
		if queued != nil {
			queued()
		}
		fn()
		return submitQueued
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return submitClosed
	}
	if r.queuedBytes+int64(size) > r.maxBytes {
		return submitFull
	}
	select {
	case r.q <- recordJob{size: int64(size), fn: fn}:
		r.queued++
		r.queuedBytes += int64(size)
		if queued != nil {
			queued()
		}
		return submitQueued
	default:
		return submitFull
	}
}

// Wait returns nil once everything queued before the call is done, or
// ctx's error. Offline serving waits (briefly) so what passed online is in
// the cache first; tests wait instead of sleeping; shutdown drains.
func (r *Recorder) Wait(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	target := r.queued
	r.mu.Unlock()
	for {
		r.doneMu.Lock()
		if r.done >= target {
			r.doneMu.Unlock()
			return nil
		}
		if r.progress == nil {
			r.progress = make(chan struct{})
		}
		ch := r.progress
		r.doneMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
