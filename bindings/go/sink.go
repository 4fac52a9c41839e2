package edgeroute

/*
#include <stdlib.h>
#include <edgeroute/edgeroute.h>
*/
import "C"

import (
	"runtime/cgo"
	"sync/atomic"
	"unsafe"
)

// Outcome acknowledges a delivered message.
type Outcome int

const (
	Delivered Outcome = 0 // done; the message is released
	Retry     Outcome = 1 // transient failure; redelivered after backoff
	Reject    Outcome = 2 // never deliverable; dropped and counted
)

// Sink receives an endpoint's messages, one batch at a time per endpoint,
// on a router thread. Returning nil acknowledges every message not yet
// acknowledged as Delivered, returning an error as Retry; a sink that calls
// Batch.Defer acknowledges later instead, from any goroutine. A panic is
// recovered and counts as Retry. A sink must not call Router.Close or
// Router.WaitIdle.
type Sink func(batch *Batch) error

// Batch is the messages handed to a sink at once: one endpoint, one
// priority, in queue order.
type Batch struct {
	b        *C.edgeroute_batch_t
	deferred atomic.Bool
}

// Endpoint is the endpoint id the batch is for.
func (b *Batch) Endpoint() string { return C.GoString(C.edgeroute_batch_endpoint(b.b, nil)) }

// Len is the number of messages.
func (b *Batch) Len() int { return int(C.edgeroute_batch_count(b.b)) }

// Priority of the batch's messages: 0..9, or 2000000000 without one.
func (b *Batch) Priority() int64 { return int64(C.edgeroute_batch_priority(b.b)) }

// Attempt is 1 for a first delivery, 2 for the first retry, ...
func (b *Batch) Attempt() int { return int(C.edgeroute_batch_attempt(b.b)) }

// Message copies message i; false for a bad index or a message already
// acknowledged.
func (b *Batch) Message(i int) (Delivery, bool) {
	v := C.edgeroute_batch_get(b.b, C.size_t(i))
	if v == nil {
		return Delivery{}, false
	}
	return readView(v), true
}

// Messages copies every message not yet acknowledged.
func (b *Batch) Messages() []Delivery {
	n := b.Len()
	out := make([]Delivery, 0, n)
	for i := 0; i < n; i++ {
		if d, ok := b.Message(i); ok {
			out = append(out, d)
		}
	}
	return out
}

// Ack acknowledges message i.
func (b *Batch) Ack(i int, outcome Outcome) error {
	var errptr *C.char
	return status(C.edgeroute_batch_ack(b.b, C.size_t(i), C.int(outcome), &errptr), errptr, nil)
}

// AckAll acknowledges every message not yet acknowledged.
func (b *Batch) AckAll(outcome Outcome) error {
	var errptr *C.char
	return status(C.edgeroute_batch_ack_all(b.b, C.int(outcome), &errptr), errptr, nil)
}

// Defer tells the router the sink acknowledges later (Ack/AckAll from any
// goroutine); the endpoint's next batch comes after that.
func (b *Batch) Defer() { b.deferred.Store(true) }

//export edgerouteGoSink
func edgerouteGoSink(state unsafe.Pointer, cbatch *C.edgeroute_batch_t) {
	sink := (*(*cgo.Handle)(state)).Value().(Sink)
	batch := &Batch{b: cbatch}
	outcome := Retry
	defer func() {
		recover() // a panicking sink retries its batch
		if !batch.deferred.Load() {
			batch.AckAll(outcome)
		}
	}()
	if sink(batch) == nil {
		outcome = Delivered
	}
}

//export edgerouteGoSinkDestroy
func edgerouteGoSinkDestroy(state unsafe.Pointer) {
	(*(*cgo.Handle)(state)).Delete()
	C.free(state)
}
