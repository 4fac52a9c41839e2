package edgeroute

/*
#include <edgeroute/edgeroute.h>
*/
import "C"

import (
	"sort"
	"sync"
)

// Message is a message to route or evaluate: a body, application
// properties (`key` in route conditions), system properties (`$key`, e.g.
// "connectionModuleId", "outputName", "contentType") and an optional
// source ("/messages/modules/m1/outputs/out1"; derived from the system
// properties when empty, as edgeHub does).
type Message struct {
	Body             []byte
	Properties       map[string]string
	NullProperties   []string // properties whose value is null (not missing)
	SystemProperties map[string]string
	Source           string
}

// Delivery is a message as a sink receives it (copies; safe to keep).
type Delivery struct {
	Body             []byte
	Properties       map[string]string
	NullProperties   []string
	SystemProperties map[string]string
	Source           string
	// The encoded message, to store or to send again with SendEncoded.
	Encoded        []byte
	SequenceNumber uint64
}

// A pool of C messages: building one reuses its memory, and a router's
// Send may run on many goroutines at once (a C message is single-threaded).
var messagePool = sync.Pool{New: func() interface{} { return &cMessage{C.edgeroute_message_create()} }}

type cMessage struct{ m *C.edgeroute_message_t }

func getMessage() *cMessage  { return messagePool.Get().(*cMessage) }
func putMessage(m *cMessage) { messagePool.Put(m) }

// fill clears the C message and copies msg into it, in a stable order.
func (c *cMessage) fill(msg *Message, withBody bool) error {
	C.edgeroute_message_clear(c.m)
	var errptr *C.char
	if withBody && len(msg.Body) > 0 {
		p, n := cbytes(msg.Body)
		if err := status(C.edgeroute_message_set_body(c.m, p, n, &errptr), errptr, nil); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(msg.Properties) {
		kp, kn := cstr(k)
		vp, vn := cstr(msg.Properties[k])
		if vp == nil {
			vp = emptyString // "" is a value, NULL would be null
		}
		if err := status(C.edgeroute_message_add_property(c.m, kp, kn, vp, vn, &errptr), errptr, nil); err != nil {
			return err
		}
	}
	for _, k := range msg.NullProperties {
		kp, kn := cstr(k)
		if err := status(C.edgeroute_message_add_property(c.m, kp, kn, nil, 0, &errptr), errptr, nil); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(msg.SystemProperties) {
		kp, kn := cstr(k)
		vp, vn := cstr(msg.SystemProperties[k])
		if vp == nil {
			vp = emptyString
		}
		if err := status(C.edgeroute_message_add_system_property(c.m, kp, kn, vp, vn, &errptr), errptr, nil); err != nil {
			return err
		}
	}
	if msg.Source != "" {
		p, n := cstr(msg.Source)
		if err := status(C.edgeroute_message_set_source(c.m, p, n, &errptr), errptr, nil); err != nil {
			return err
		}
	}
	return nil
}

var emptyString = C.CString("")

func sortedKeys(m map[string]string) []string {
	if len(m) == 0 {
		return nil
	}
	if len(m) == 1 { // the common case, without sorting
		for k := range m {
			return []string{k}
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readView copies a C view into a Delivery.
func readView(v *C.edgeroute_view_t) Delivery {
	var d Delivery
	var n C.size_t
	p := C.edgeroute_view_body(v, &n)
	d.Body = C.GoBytes(unsafePointer(p), C.int(n))
	p = C.edgeroute_view_source(v, &n)
	d.Source = C.GoStringN(p, C.int(n))
	p = C.edgeroute_view_encoded(v, &n)
	d.Encoded = C.GoBytes(unsafePointer(p), C.int(n))
	d.SequenceNumber = uint64(C.edgeroute_view_sequence_number(v))
	count := int(C.edgeroute_view_property_count(v))
	if count > 0 {
		d.Properties = make(map[string]string, count)
	}
	for i := 0; i < count; i++ {
		var k, val *C.char
		var kn, vn C.size_t
		switch C.edgeroute_view_property(v, C.size_t(i), &k, &kn, &val, &vn) {
		case C.EDGEROUTE_PROPERTY_STRING:
			d.Properties[C.GoStringN(k, C.int(kn))] = C.GoStringN(val, C.int(vn))
		case C.EDGEROUTE_PROPERTY_NULL:
			d.NullProperties = append(d.NullProperties, C.GoStringN(k, C.int(kn)))
		}
	}
	count = int(C.edgeroute_view_system_property_count(v))
	if count > 0 {
		d.SystemProperties = make(map[string]string, count)
	}
	for i := 0; i < count; i++ {
		var k, val *C.char
		var kn, vn C.size_t
		if C.edgeroute_view_system_property(v, C.size_t(i), &k, &kn, &val, &vn) == C.EDGEROUTE_PROPERTY_STRING {
			d.SystemProperties[C.GoStringN(k, C.int(kn))] = C.GoStringN(val, C.int(vn))
		}
	}
	return d
}
