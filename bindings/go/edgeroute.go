// Package edgeroute is the Go binding of edgeroute's C ABI
// (<edgeroute/edgeroute.h>, libedgeroute.so.0): IoT Edge hub route checks,
// conditions, and routers that deliver messages to sinks written in Go,
// with optional store-and-forward.
//
// It links the installed library through pkg-config (scripts/install.sh or
// the Debian package); set PKG_CONFIG_PATH for another prefix. Errors are
// *Error values carrying the status code and, for route and manifest
// errors, the diagnostics with line and column.
package edgeroute

/*
#cgo pkg-config: edgeroute
#include <stdlib.h>
#include <edgeroute/edgeroute.h>
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Release is the version of the header this package was written against.
const Release = "0.2.0"

// The library must run this package's header: the same major version and,
// before 1.0, the same minor version (see "Growing the ABI" in
// bindings/README.md). Checked once, as the Python package does at import.
func init() {
	const major, minor = 0, 2
	n := int(C.edgeroute_version_number())
	if n/1000000 != major || (major == 0 && n/1000%1000 != minor) || n/1000%1000 < minor {
		panic(fmt.Sprintf("edgeroute: libedgeroute %s does not run this package (written for %d.%d)",
			Version(), major, minor))
	}
}

// Version returns the library's version, "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.edgeroute_version()) }

// Code is a status code (absl::StatusCode numbering, EDGEROUTE_* in C).
type Code int

const (
	OK                 Code = 0
	Cancelled          Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

var codeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
	"DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("CODE_%d", int(c))
}

// Severity of a diagnostic.
type Severity int

const (
	SeverityError   Severity = 0
	SeverityWarning Severity = 1
)

// Diagnostic is one error or warning about a route, condition or manifest,
// positioned in the text that was given (1-based; 0 when unknown).
type Diagnostic struct {
	Severity   Severity
	Message    string
	RouteName  string
	Line       int
	Column     int
	EndColumn  int
	Excerpt    string // the source line and a caret line
	Suggestion string
}

// Error is every error this package returns. Compare codes with errors.Is
// against the Err* values, or read Code.
type Error struct {
	Code    Code
	Message string
	// For route, condition and manifest errors: every error and warning.
	Diagnostics []Diagnostic
}

// Error is "edgeroute: CODE: message"; the message of a route error starts
// with its line and column.
func (e *Error) Error() string {
	return fmt.Sprintf("edgeroute: %s: %s", e.Code, e.Message)
}

// Is matches another *Error with the same Code (errors.Is(err,
// edgeroute.ErrInvalidArgument)).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func (e *Error) first() *Diagnostic {
	for i := range e.Diagnostics {
		if e.Diagnostics[i].Severity == SeverityError {
			return &e.Diagnostics[i]
		}
	}
	return nil
}

// Line is the line of the first error diagnostic, 0 without one.
func (e *Error) Line() int {
	if d := e.first(); d != nil {
		return d.Line
	}
	return 0
}

// Column is the column of the first error diagnostic, 0 without one.
func (e *Error) Column() int {
	if d := e.first(); d != nil {
		return d.Column
	}
	return 0
}

// Sentinels for errors.Is.
var (
	ErrInvalidArgument    = &Error{Code: InvalidArgument}
	ErrNotFound           = &Error{Code: NotFound}
	ErrResourceExhausted  = &Error{Code: ResourceExhausted}
	ErrFailedPrecondition = &Error{Code: FailedPrecondition}
	ErrDeadlineExceeded   = &Error{Code: DeadlineExceeded}
	ErrUnavailable        = &Error{Code: Unavailable}
	ErrOutOfRange         = &Error{Code: OutOfRange}
)

// status turns a C status and error string into an error (nil for OK),
// freeing the string.
func status(code C.int, errptr *C.char, diags *C.edgeroute_diagnostics_t) error {
	if errptr != nil {
		defer C.edgeroute_free(unsafe.Pointer(errptr))
	}
	if code == 0 {
		return nil
	}
	e := &Error{Code: Code(code), Message: C.GoString(errptr)}
	if diags != nil {
		e.Diagnostics = readDiagnostics(diags)
	}
	return e
}

func readDiagnostics(diags *C.edgeroute_diagnostics_t) []Diagnostic {
	n := int(C.edgeroute_diagnostics_count(diags))
	out := make([]Diagnostic, 0, n)
	for i := 0; i < n; i++ {
		var d C.edgeroute_diagnostic_t
		d.struct_size = C.size_t(unsafe.Sizeof(d))
		if C.edgeroute_diagnostics_get(diags, C.size_t(i), &d, nil) != 0 {
			continue
		}
		out = append(out, Diagnostic{
			Severity:   Severity(d.severity),
			Message:    C.GoString(d.message),
			RouteName:  C.GoString(d.route_name),
			Line:       int(d.line),
			Column:     int(d.column),
			EndColumn:  int(d.end_column),
			Excerpt:    C.GoString(d.excerpt),
			Suggestion: C.GoString(d.suggestion),
		})
	}
	return out
}

// cbytes and cstr point C at Go memory for the duration of a call (C copies
// what it keeps; cgo's pointer rules allow memory without Go pointers).
func cbytes(b []byte) (*C.char, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

func cstr(s string) (*C.char, C.size_t) {
	if len(s) == 0 {
		return nil, 0
	}
	// The string's data pointer: its header's first word (Go 1.19 has no
	// unsafe.StringData).
	return (*C.char)(*(*unsafe.Pointer)(unsafe.Pointer(&s))), C.size_t(len(s))
}

// CheckRoute parses and compiles one route ("FROM ... WHERE ... INTO ...").
// It returns every warning, and an *Error with the diagnostics when the
// route does not compile.
func CheckRoute(route string) ([]Diagnostic, error) {
	return check(route, false)
}

// CheckManifest checks a deployment manifest or its $edgeHub desired
// properties (JSON) as NewRouter would.
func CheckManifest(manifest []byte) ([]Diagnostic, error) {
	return check(string(manifest), true)
}

func check(text string, manifest bool) ([]Diagnostic, error) {
	diags := C.edgeroute_diagnostics_create()
	defer C.edgeroute_diagnostics_destroy(diags)
	var errptr *C.char
	p, n := cstr(text)
	var code C.int
	if manifest {
		code = C.edgeroute_check_manifest(p, n, diags, &errptr)
	} else {
		code = C.edgeroute_check_route(p, n, diags, &errptr)
	}
	if err := status(code, errptr, diags); err != nil {
		return err.(*Error).Diagnostics, err
	}
	return readDiagnostics(diags), nil
}
