package edgeroute

/*
#include <edgeroute/edgeroute.h>
*/
import "C"

import (
	"runtime"
	"unsafe"
)

func unsafePointer(p *C.char) unsafe.Pointer { return unsafe.Pointer(p) }

// Result of a condition: routes deliver only on True.
type Result int

const (
	False     Result = 0
	True      Result = 1
	Undefined Result = 2
)

func (r Result) String() string {
	switch r {
	case False:
		return "false"
	case True:
		return "true"
	}
	return "undefined"
}

// Condition is a compiled route condition (a WHERE clause). Immutable and
// safe for concurrent use. Free it with Close (or leave it to the GC).
type Condition struct {
	c *C.edgeroute_condition_t
}

// CompileCondition compiles a condition such as
// "temperature > '30' AND $contentType = 'application/json'". A condition
// that does not compile gives an *Error with diagnostics (line, column).
func CompileCondition(text string) (*Condition, error) {
	diags := C.edgeroute_diagnostics_create()
	defer C.edgeroute_diagnostics_destroy(diags)
	var out *C.edgeroute_condition_t
	var errptr *C.char
	p, n := cstr(text)
	if err := status(C.edgeroute_condition_compile(p, n, diags, &out, &errptr), errptr, diags); err != nil {
		return nil, err
	}
	c := &Condition{c: out}
	runtime.SetFinalizer(c, (*Condition).Close)
	return c, nil
}

// Evaluate evaluates the condition against a message.
func (c *Condition) Evaluate(msg *Message) (Result, error) {
	if c.c == nil {
		return Undefined, &Error{Code: FailedPrecondition, Message: "condition is closed"}
	}
	m := getMessage()
	defer putMessage(m)
	if err := m.fill(msg, true); err != nil {
		return Undefined, err
	}
	var result C.int
	var errptr *C.char
	err := status(C.edgeroute_condition_evaluate(c.c, m.m, &result, &errptr), errptr, nil)
	runtime.KeepAlive(c)
	return Result(result), err
}

// Close frees the condition. Idempotent.
func (c *Condition) Close() {
	if c.c != nil {
		C.edgeroute_condition_destroy(c.c)
		c.c = nil
		runtime.SetFinalizer(c, nil)
	}
}
