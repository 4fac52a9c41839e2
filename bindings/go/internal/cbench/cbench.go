// Package cbench sends messages through the C ABI from C, as
// bindings/c/example.c does, so that the Go benchmarks can compare the Go
// binding's send path with C's in the same run (cgo is not allowed in
// _test.go files, hence this package).
package cbench

/*
#cgo pkg-config: edgeroute
#include <stdlib.h>
#include <edgeroute/edgeroute.h>

static void cbench_on_batch(void* state, edgeroute_batch_t* batch) {
  (void)state;
  edgeroute_batch_ack_all(batch, EDGEROUTE_DELIVERED, NULL);
}

// Sends n messages like example.c (one in ten with hot = 'yes'); returns the
// number of messages that failed to send, or -1 when the router fails.
static long cbench_send(const char* manifest, size_t len, long n) {
  edgeroute_router_t* router = NULL;
  if (edgeroute_router_create(NULL, manifest, len, NULL, &router, NULL) != 0)
    return -1;
  edgeroute_router_set_sink(router, "iothub", 6, NULL, NULL, cbench_on_batch,
                            NULL);
  edgeroute_message_t* m = edgeroute_message_create();
  long failed = 0;
  for (long i = 0; i < n; ++i) {
    edgeroute_message_clear(m);
    edgeroute_message_set_body(m, "{\"t\": 21.5}", 11, NULL);
    if (i % 10 == 0)
      edgeroute_message_add_property(m, "hot", 3, "yes", 3, NULL);
    if (edgeroute_router_send(router, m, NULL) != 0) ++failed;
  }
  edgeroute_router_close(router, NULL);
  edgeroute_router_destroy(router);
  edgeroute_message_destroy(m);
  return failed;
}
*/
import "C"

import "unsafe"

// Send creates a router from manifest, sends n messages from C and closes
// it (delivering everything). It returns the sends that failed, -1 when the
// manifest is refused.
func Send(manifest string, n int) int {
	p := C.CString(manifest)
	defer C.free(unsafe.Pointer(p))
	return int(C.cbench_send(p, C.size_t(len(manifest)), C.long(n)))
}
