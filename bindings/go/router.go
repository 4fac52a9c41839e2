package edgeroute

/*
#include <stdlib.h>
#include <edgeroute/edgeroute.h>

extern void edgerouteGoSink(void* state, edgeroute_batch_t* batch);
extern void edgerouteGoSinkDestroy(void* state);

static int edgeroute_go_set_sink(edgeroute_router_t* router, const char* id,
                                 size_t len, void* state, char** errptr) {
  return edgeroute_router_set_sink(router, id, len, state,
                                   edgerouteGoSinkDestroy, edgerouteGoSink,
                                   errptr);
}

static int edgeroute_go_remove_sink(edgeroute_router_t* router, const char* id,
                                    size_t len, char** errptr) {
  return edgeroute_router_set_sink(router, id, len, NULL, NULL, NULL, errptr);
}

// Bodies laid end to end in one buffer (Go memory may not hold the pointer
// array C wants): the array is built here.
static int edgeroute_go_send_bodies(edgeroute_router_t* router,
                                    edgeroute_message_t* prototype,
                                    const char* data, const size_t* lengths,
                                    size_t count, size_t* accepted,
                                    char** errptr) {
  const char* stack[256];
  const char** bodies = count <= 256 ? stack : malloc(count * sizeof(char*));
  if (bodies == NULL) return EDGEROUTE_RESOURCE_EXHAUSTED;
  size_t offset = 0;
  for (size_t i = 0; i < count; ++i) {
    bodies[i] = data + offset;
    offset += lengths[i];
  }
  int status = edgeroute_router_send_bodies(router, prototype, bodies, lengths,
                                            count, accepted, errptr);
  if (bodies != stack) free((void*)bodies);
  return status;
}
*/
import "C"

import (
	"runtime"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// Durability of a store (Options.Durability).
type Durability int

const (
	// DurabilityProcess survives a crash of the process (RocksDB WAL, no
	// fsync), as edgeHub does.
	DurabilityProcess Durability = 0
	// DurabilityPower survives power loss (fsync, group-committed).
	DurabilityPower Durability = 1
)

// Options for NewRouter. The zero value is the library's defaults: no
// store, device "DEV", 2 dispatch threads, batches of up to 100 messages.
type Options struct {
	StoreDirectory   string // "" = queue in memory only
	Durability       Durability
	StoreMaxBytes    uint64 // 0 = unlimited
	DeviceID         string // "" = "DEV"
	DispatchThreads  int    // 0 = default
	AdmissionTimeout time.Duration
	MaxBatchSize     int // 0 = default
	RetryInitial     time.Duration
	RetryMax         time.Duration
	// Close stops after the batches in flight instead of delivering what
	// is queued first.
	NoDrainOnClose bool
}

// Router routes messages to sinks by the manifest's routes. Safe for
// concurrent use; Close must not be called from a sink.
type Router struct {
	mu sync.RWMutex // Close (write) against every other call (read)
	r  *C.edgeroute_router_t
}

// NewRouter creates a router from a deployment manifest or its $edgeHub
// desired properties (JSON). Route errors give an *Error with diagnostics.
func NewRouter(manifest []byte, options *Options) (*Router, error) {
	var opts *C.edgeroute_options_t
	if options != nil {
		opts = C.edgeroute_options_create()
		defer C.edgeroute_options_destroy(opts)
		o := options
		if o.StoreDirectory != "" {
			p, n := cstr(o.StoreDirectory)
			C.edgeroute_options_set_store_directory(opts, p, n)
		}
		C.edgeroute_options_set_durability(opts, C.int(o.Durability))
		C.edgeroute_options_set_store_max_bytes(opts, C.uint64_t(o.StoreMaxBytes))
		if o.DeviceID != "" {
			p, n := cstr(o.DeviceID)
			C.edgeroute_options_set_device_id(opts, p, n)
		}
		if o.DispatchThreads > 0 {
			C.edgeroute_options_set_dispatch_threads(opts, C.int(o.DispatchThreads))
		}
		if o.AdmissionTimeout > 0 {
			C.edgeroute_options_set_admission_timeout_us(opts, C.int64_t(o.AdmissionTimeout.Microseconds()))
		}
		if o.MaxBatchSize > 0 {
			C.edgeroute_options_set_max_batch_size(opts, C.size_t(o.MaxBatchSize))
		}
		if o.RetryInitial > 0 || o.RetryMax > 0 {
			C.edgeroute_options_set_retry_backoff_us(opts, C.int64_t(o.RetryInitial.Microseconds()),
				C.int64_t(o.RetryMax.Microseconds()))
		}
		if o.NoDrainOnClose {
			C.edgeroute_options_set_drain_on_close(opts, 0)
		}
	}
	diags := C.edgeroute_diagnostics_create()
	defer C.edgeroute_diagnostics_destroy(diags)
	var out *C.edgeroute_router_t
	var errptr *C.char
	p, n := cbytes(manifest)
	if err := status(C.edgeroute_router_create(opts, p, n, diags, &out, &errptr), errptr, diags); err != nil {
		return nil, err
	}
	r := &Router{r: out}
	runtime.SetFinalizer(r, (*Router).Close)
	return r, nil
}

func (r *Router) enter() (*C.edgeroute_router_t, error) {
	r.mu.RLock()
	if r.r == nil {
		r.mu.RUnlock()
		return nil, &Error{Code: FailedPrecondition, Message: "router is closed"}
	}
	return r.r, nil
}

func (r *Router) leave() { r.mu.RUnlock() }

// Send routes one message. It returns once the message is accepted (with a
// store: once it is stored); ErrResourceExhausted when the router stayed
// full for the admission timeout.
func (r *Router) Send(msg *Message) error {
	cr, err := r.enter()
	if err != nil {
		return err
	}
	defer r.leave()
	m := getMessage()
	defer putMessage(m)
	if err := m.fill(msg, true); err != nil {
		return err
	}
	var errptr *C.char
	return status(C.edgeroute_router_send(cr, m.m, &errptr), errptr, nil)
}

// SendEncoded routes an encoded message (Delivery.Encoded).
func (r *Router) SendEncoded(encoded []byte) error {
	cr, err := r.enter()
	if err != nil {
		return err
	}
	defer r.leave()
	var errptr *C.char
	p, n := cbytes(encoded)
	return status(C.edgeroute_router_send_encoded(cr, p, n, &errptr), errptr, nil)
}

// SendBodies routes one message per body, all with prototype's properties,
// system properties and source (its Body is ignored): the fast path for a
// stream of readings. It returns how many were accepted, in order.
func (r *Router) SendBodies(prototype *Message, bodies [][]byte) (int, error) {
	cr, err := r.enter()
	if err != nil {
		return 0, err
	}
	defer r.leave()
	m := getMessage()
	defer putMessage(m)
	if prototype == nil {
		prototype = &Message{}
	}
	if err := m.fill(prototype, false); err != nil {
		return 0, err
	}
	total := 0
	for _, b := range bodies {
		total += len(b)
	}
	flat := make([]byte, 0, total+1)
	lengths := make([]C.size_t, len(bodies)+1)
	for i, b := range bodies {
		flat = append(flat, b...)
		lengths[i] = C.size_t(len(b))
	}
	flat = append(flat, 0) // a valid pointer even when every body is empty
	var accepted C.size_t
	var errptr *C.char
	code := C.edgeroute_go_send_bodies(cr, m.m, (*C.char)(unsafe.Pointer(&flat[0])),
		&lengths[0], C.size_t(len(bodies)), &accepted, &errptr)
	return int(accepted), status(code, errptr, nil)
}

// UpdateRoutes replaces every route with the manifest's, atomically; on
// error nothing changes.
func (r *Router) UpdateRoutes(manifest []byte) error {
	cr, err := r.enter()
	if err != nil {
		return err
	}
	defer r.leave()
	diags := C.edgeroute_diagnostics_create()
	defer C.edgeroute_diagnostics_destroy(diags)
	var errptr *C.char
	p, n := cbytes(manifest)
	return status(C.edgeroute_router_update_routes(cr, p, n, diags, &errptr), errptr, diags)
}

// WaitIdle waits until everything sent so far is delivered to the sinks
// there are, or the timeout passes (ErrDeadlineExceeded). Not from a sink.
func (r *Router) WaitIdle(timeout time.Duration) error {
	cr, err := r.enter()
	if err != nil {
		return err
	}
	defer r.leave()
	var errptr *C.char
	return status(C.edgeroute_router_wait_idle(cr, C.int64_t(timeout.Microseconds()), &errptr), errptr, nil)
}

// SetSink registers the sink of an endpoint: "iothub" for $upstream,
// "{device}/{module}/{input}" for BrokeredEndpoint routes. nil removes it.
func (r *Router) SetSink(endpoint string, sink Sink) error {
	cr, err := r.enter()
	if err != nil {
		return err
	}
	defer r.leave()
	var errptr *C.char
	p, n := cstr(endpoint)
	if sink == nil {
		return status(C.edgeroute_go_remove_sink(cr, p, n, &errptr), errptr, nil)
	}
	// The C state holds a handle to the Go function; the destructor frees
	// both when the router lets go of the sink.
	state := C.malloc(C.size_t(unsafe.Sizeof(cgo.Handle(0))))
	*(*cgo.Handle)(state) = cgo.NewHandle(sink)
	code := C.edgeroute_go_set_sink(cr, p, n, state, &errptr)
	if code != 0 {
		(*(*cgo.Handle)(state)).Delete()
		C.free(state)
	}
	return status(code, errptr, nil)
}

// Close stops accepting messages, delivers what is queued (unless
// Options.NoDrainOnClose), waits for the sinks, closes the store and frees
// the router. Idempotent. Must not be called from a sink.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == nil {
		return nil
	}
	var errptr *C.char
	err := status(C.edgeroute_router_close(r.r, &errptr), errptr, nil)
	C.edgeroute_router_destroy(r.r)
	r.r = nil
	runtime.SetFinalizer(r, nil)
	return err
}

// Metrics are the router-wide counters since creation.
type Metrics struct {
	Received, Orphaned, RejectedFull, RejectedInvalid, RouteUpdates uint64
	Enqueued, Delivered, Retried, Expired, Rejected, Dropped        uint64
	QueueDepth, Endpoints, Routes                                   uint64
}

// Metrics returns the router's counters.
func (r *Router) Metrics() (Metrics, error) {
	cr, err := r.enter()
	if err != nil {
		return Metrics{}, err
	}
	defer r.leave()
	var m C.edgeroute_metrics_t
	m.struct_size = C.size_t(unsafe.Sizeof(m))
	var errptr *C.char
	if err := status(C.edgeroute_router_get_metrics(cr, &m, &errptr), errptr, nil); err != nil {
		return Metrics{}, err
	}
	return Metrics{
		Received: uint64(m.received), Orphaned: uint64(m.orphaned),
		RejectedFull: uint64(m.rejected_full), RejectedInvalid: uint64(m.rejected_invalid),
		RouteUpdates: uint64(m.route_updates), Enqueued: uint64(m.enqueued),
		Delivered: uint64(m.delivered), Retried: uint64(m.retried),
		Expired: uint64(m.expired), Rejected: uint64(m.rejected),
		Dropped: uint64(m.dropped), QueueDepth: uint64(m.queue_depth),
		Endpoints: uint64(m.endpoints), Routes: uint64(m.routes),
	}, nil
}

// EndpointMetrics are one endpoint's counters.
type EndpointMetrics struct {
	Enqueued, Delivered, Retried, Expired, Rejected, Dropped, QueueDepth uint64
	OldestMessageAge, LatencyP50, LatencyP99                             time.Duration
	HasSink, Dead                                                        bool
}

// EndpointMetrics returns one endpoint's counters; ErrNotFound for an
// endpoint the router has never seen.
func (r *Router) EndpointMetrics(endpoint string) (EndpointMetrics, error) {
	cr, err := r.enter()
	if err != nil {
		return EndpointMetrics{}, err
	}
	defer r.leave()
	var m C.edgeroute_endpoint_metrics_t
	m.struct_size = C.size_t(unsafe.Sizeof(m))
	var errptr *C.char
	p, n := cstr(endpoint)
	if err := status(C.edgeroute_router_endpoint_metrics(cr, p, n, &m, &errptr), errptr, nil); err != nil {
		return EndpointMetrics{}, err
	}
	return EndpointMetrics{
		Enqueued: uint64(m.enqueued), Delivered: uint64(m.delivered),
		Retried: uint64(m.retried), Expired: uint64(m.expired),
		Rejected: uint64(m.rejected), Dropped: uint64(m.dropped),
		QueueDepth:       uint64(m.queue_depth),
		OldestMessageAge: time.Duration(m.oldest_message_age_us) * time.Microsecond,
		LatencyP50:       time.Duration(m.latency_p50_us) * time.Microsecond,
		LatencyP99:       time.Duration(m.latency_p99_us) * time.Microsecond,
		HasSink:          m.has_sink != 0, Dead: m.dead != 0,
	}, nil
}

// PrometheusText returns the metrics in Prometheus text format.
func (r *Router) PrometheusText() (string, error) {
	cr, err := r.enter()
	if err != nil {
		return "", err
	}
	defer r.leave()
	var text, errptr *C.char
	var n C.size_t
	if err := status(C.edgeroute_router_prometheus_text(cr, &text, &n, &errptr), errptr, nil); err != nil {
		return "", err
	}
	defer C.edgeroute_free(unsafe.Pointer(text))
	return C.GoStringN(text, C.int(n)), nil
}
