/* edgeroute C ABI: the message-routing engine for IoT edge gateways, usable
 * from C, Go, Rust, Python, Node... through one header and one shared library
 * (libedgeroute.so, which exports only edgeroute_* symbols).
 *
 * Conventions (the same as LevelDB's, RocksDB's and SQLite's C APIs):
 *
 *  - Objects are opaque handles. Every `X_create` has an `X_destroy`;
 *    `X_destroy(NULL)` does nothing.
 *  - Bytes and strings are passed as (const char* data, size_t len) and are
 *    never required to be NUL-terminated. Strings may contain any bytes.
 *    `data` may be NULL only when `len` is 0.
 *  - Booleans are uint8_t (0 = false, anything else = true).
 *  - Every call that can fail returns an int status: EDGEROUTE_OK (0) or one
 *    of the EDGEROUTE_* codes below, numbered exactly like absl::StatusCode
 *    (and gRPC's status codes), so bindings can map them to exception types.
 *    Such calls also take `char** errptr` as their last argument, which may be
 *    NULL. On failure, when errptr is not NULL, the call frees *errptr (which
 *    must be NULL or a message from an earlier call) and stores a
 *    NUL-terminated, malloc()ed description of the error there; free it with
 *    edgeroute_free(). On success *errptr is left untouched.
 *  - NULL handles or invalid arguments give EDGEROUTE_INVALID_ARGUMENT; a
 *    call on a closed router gives EDGEROUTE_FAILED_PRECONDITION. No call
 *    throws a C++ exception or aborts on bad input; an unexpected internal
 *    failure is reported as EDGEROUTE_INTERNAL.
 *  - Every function documents its thread-safety. "Thread-safe" means the
 *    call may run concurrently with any other call on the same object;
 *    "not thread-safe" means the caller serialises calls on that object
 *    (different objects are always independent).
 *  - A new capability is a new function; existing signatures never change.
 *  - Structs the caller allocates and the library fills
 *    (edgeroute_diagnostic_t, edgeroute_metrics_t,
 *    edgeroute_endpoint_metrics_t) begin with `size_t struct_size`, which
 *    the caller sets to the struct's size as its header defines it:
 *      edgeroute_metrics_t m = {sizeof(m)};
 *    Fields are only ever added at the end, and the library writes at most
 *    struct_size bytes, so a program built against an older header (a
 *    smaller struct) works with a newer library, and a newer program on an
 *    older library gets the fields that library knows while the rest keep
 *    what the caller put there (zero above). A struct_size too small for
 *    the first field after it (0: forgotten) gives INVALID_ARGUMENT. The
 *    rules are in bindings/README.md ("Growing the ABI").
 *
 * Typical use:
 *
 *   edgeroute_router_t* router = NULL;
 *   char* err = NULL;
 *   if (edgeroute_router_create(NULL, manifest, manifest_len, NULL, &router,
 *                               &err) != EDGEROUTE_OK) { ...; }
 *   edgeroute_router_set_sink(router, "iothub", 6, state, NULL, on_batch,
 *                             &err);
 *   edgeroute_message_t* msg = edgeroute_message_create();
 *   edgeroute_message_set_body(msg, "{\"t\":21}", 8);
 *   edgeroute_router_send(router, msg, &err);
 *   edgeroute_router_close(router, &err);
 *   edgeroute_router_destroy(router);
 *   edgeroute_message_destroy(msg);
 */

#ifndef EDGEROUTE_BINDINGS_C_EDGEROUTE_H_
#define EDGEROUTE_BINDINGS_C_EDGEROUTE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EDGEROUTE_EXPORT __attribute__((visibility("default")))
#else
#define EDGEROUTE_EXPORT
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

/* The version of this header. Compare with edgeroute_version_number() to
 * detect a header/library mismatch. From 1.0 on, the library is compatible
 * with every header of the same MAJOR version and a MINOR version not above
 * its own. Before 1.0 a MINOR version may change the ABI: the library is
 * compatible with headers of its own 0.MINOR only (0.2 added struct_size to
 * the caller-allocated structs). */
#define EDGEROUTE_VERSION_MAJOR 0
#define EDGEROUTE_VERSION_MINOR 2
#define EDGEROUTE_VERSION_PATCH 0
#define EDGEROUTE_VERSION_STRING "0.2.0"
/* MAJOR * 1000000 + MINOR * 1000 + PATCH (like SQLITE_VERSION_NUMBER). */
#define EDGEROUTE_VERSION_NUMBER                                        \
  (EDGEROUTE_VERSION_MAJOR * 1000000 + EDGEROUTE_VERSION_MINOR * 1000 + \
   EDGEROUTE_VERSION_PATCH)

/* The library's version as "MAJOR.MINOR.PATCH" (static storage; never free).
 * Thread-safe. */
EDGEROUTE_EXPORT const char* edgeroute_version(void);
/* The library's EDGEROUTE_VERSION_NUMBER. Thread-safe. */
EDGEROUTE_EXPORT int edgeroute_version_number(void);

/* ------------------------------------------------------------------------ */
/* Status codes (absl::StatusCode numbering)                                */
/* ------------------------------------------------------------------------ */

#define EDGEROUTE_OK 0
#define EDGEROUTE_CANCELLED 1
#define EDGEROUTE_UNKNOWN 2
/* Bad input: NULL handle, malformed route/manifest/message, bad option. */
#define EDGEROUTE_INVALID_ARGUMENT 3
#define EDGEROUTE_DEADLINE_EXCEEDED 4
#define EDGEROUTE_NOT_FOUND 5
#define EDGEROUTE_ALREADY_EXISTS 6
#define EDGEROUTE_PERMISSION_DENIED 7
/* A full queue or store: the caller may retry later, slow down or drop. */
#define EDGEROUTE_RESOURCE_EXHAUSTED 8
/* The object is in the wrong state (closed router, acknowledged message). */
#define EDGEROUTE_FAILED_PRECONDITION 9
#define EDGEROUTE_ABORTED 10
#define EDGEROUTE_OUT_OF_RANGE 11
#define EDGEROUTE_UNIMPLEMENTED 12
#define EDGEROUTE_INTERNAL 13
/* A transient failure (e.g. the store's disk); retrying may succeed. */
#define EDGEROUTE_UNAVAILABLE 14
/* Stored data is corrupt. */
#define EDGEROUTE_DATA_LOSS 15
#define EDGEROUTE_UNAUTHENTICATED 16

/* The constant's name without the prefix, e.g. "INVALID_ARGUMENT";
 * "UNKNOWN" for a number that is not a code. Static storage. Thread-safe. */
EDGEROUTE_EXPORT const char* edgeroute_status_name(int code);

/* Frees memory the library returned to the caller (error messages,
 * Prometheus text). edgeroute_free(NULL) does nothing. Thread-safe. */
EDGEROUTE_EXPORT void edgeroute_free(void* ptr);

/* ------------------------------------------------------------------------ */
/* Diagnostics: errors and warnings from compiling routes and manifests     */
/* ------------------------------------------------------------------------ */

/* A list of diagnostics, filled by the calls that compile routes
 * (edgeroute_check_route, edgeroute_check_manifest,
 * edgeroute_condition_compile, edgeroute_router_create,
 * edgeroute_router_update_routes). Each such call first empties the list.
 * Strings returned by the accessors are borrowed: valid until the list is
 * refilled or destroyed. Not thread-safe. */
typedef struct edgeroute_diagnostics_t edgeroute_diagnostics_t;

#define EDGEROUTE_SEVERITY_ERROR 0
#define EDGEROUTE_SEVERITY_WARNING 1

EDGEROUTE_EXPORT edgeroute_diagnostics_t* edgeroute_diagnostics_create(void);
EDGEROUTE_EXPORT void edgeroute_diagnostics_destroy(
    edgeroute_diagnostics_t* diags);
/* Number of diagnostics (0 for NULL). */
EDGEROUTE_EXPORT size_t
edgeroute_diagnostics_count(const edgeroute_diagnostics_t* diags);
/* Number of diagnostics with severity EDGEROUTE_SEVERITY_ERROR. */
EDGEROUTE_EXPORT size_t
edgeroute_diagnostics_error_count(const edgeroute_diagnostics_t* diags);

/* One diagnostic, as filled by edgeroute_diagnostics_get. All strings are
 * borrowed from the list (see above) and NUL-terminated; absent ones are
 * empty strings, never NULL. Positions are 1-based; 0 when unknown. */
typedef struct edgeroute_diagnostic_t {
  size_t struct_size;     /* set by the caller: sizeof(edgeroute_diagnostic_t) */
  int severity;           /* EDGEROUTE_SEVERITY_* */
  const char* message;    /* e.g. "Syntax error: unterminated string" */
  const char* route_name; /* the manifest's route name; "" for one route */
  /* Position in the text given to the call (the route, the condition, or
   * the manifest JSON, where routes' diagnostics are moved to the route
   * string's place). */
  uint32_t line;
  uint32_t column;        /* first column (characters) of the offending text */
  uint32_t end_column;    /* one past its last column */
  const char* excerpt;    /* the source line, "\n", a caret line "  ^~~" */
  const char* suggestion; /* a suggested rewrite for warnings, or "" */
} edgeroute_diagnostic_t;

/* Fills *out with diagnostic `index` (< count); set out->struct_size first.
 * INVALID_ARGUMENT for NULL arguments or a struct_size too small,
 * OUT_OF_RANGE for a bad index. */
EDGEROUTE_EXPORT int edgeroute_diagnostics_get(
    const edgeroute_diagnostics_t* diags, size_t index,
    edgeroute_diagnostic_t* out, char** errptr);

/* ------------------------------------------------------------------------ */
/* Checking routes and manifests                                            */
/* ------------------------------------------------------------------------ */

/* Parses and compiles one route ("FROM /messages WHERE ... INTO
 * $upstream"). Returns OK when it compiles (warnings may still be added to
 * `diags`), INVALID_ARGUMENT with every error in `diags` (optional, may be
 * NULL) and the first one in *errptr otherwise. Thread-safe. */
EDGEROUTE_EXPORT int edgeroute_check_route(const char* route, size_t len,
                                           edgeroute_diagnostics_t* diags,
                                           char** errptr);

/* Parses an IoT Edge deployment manifest or just its $edgeHub desired
 * properties (JSON) and compiles every route, exactly as
 * edgeroute_router_create would. Same results as edgeroute_check_route;
 * each diagnostic names its route. Thread-safe. */
EDGEROUTE_EXPORT int edgeroute_check_manifest(const char* json, size_t len,
                                              edgeroute_diagnostics_t* diags,
                                              char** errptr);

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

/* A message under construction and, once finished, its encoded bytes.
 * Reused across messages with edgeroute_message_clear (which keeps the
 * memory, so a reused message does not allocate per message). The first use
 * that needs the bytes (send, evaluate, edgeroute_message_encoded) finishes
 * the message; adding to a finished message gives FAILED_PRECONDITION until
 * the next clear. Property values may be NULL (with len 0) for a property
 * whose value is null, which differs from a missing one in conditions.
 * Not thread-safe: one thread at a time per message. */
typedef struct edgeroute_message_t edgeroute_message_t;

EDGEROUTE_EXPORT edgeroute_message_t* edgeroute_message_create(void);
EDGEROUTE_EXPORT void edgeroute_message_destroy(edgeroute_message_t* msg);
/* Starts a new, empty message. No-op for NULL. */
EDGEROUTE_EXPORT void edgeroute_message_clear(edgeroute_message_t* msg);
EDGEROUTE_EXPORT int edgeroute_message_set_body(edgeroute_message_t* msg,
                                                const char* body, size_t len,
                                                char** errptr);
/* Application properties (`key` in route conditions). */
EDGEROUTE_EXPORT int edgeroute_message_add_property(
    edgeroute_message_t* msg, const char* key, size_t key_len,
    const char* value, size_t value_len, char** errptr);
/* System properties (`$key` in route conditions), e.g. "contentType",
 * "connectionDeviceId", "connectionModuleId", "outputName", "messageType". */
EDGEROUTE_EXPORT int edgeroute_message_add_system_property(
    edgeroute_message_t* msg, const char* key, size_t key_len,
    const char* value, size_t value_len, char** errptr);
/* The message source that routes' FROM clauses match, e.g.
 * "/messages/modules/m1/outputs/out1". When not set it is derived from the
 * system properties as edgeHub does: messageType "twinChangeNotification"
 * -> "/twinChangeNotifications", connectionModuleId [+ outputName] ->
 * "/messages/modules/{m}[/outputs/{o}]", otherwise "/messages". */
EDGEROUTE_EXPORT int edgeroute_message_set_source(edgeroute_message_t* msg,
                                                  const char* source,
                                                  size_t len, char** errptr);
/* Replaces the message with a copy of an encoded message (bytes from
 * edgeroute_message_encoded or edgeroute_view_encoded, any alignment),
 * after verifying it. INVALID_ARGUMENT when the bytes are not a message. */
EDGEROUTE_EXPORT int edgeroute_message_set_encoded(edgeroute_message_t* msg,
                                                   const char* data, size_t len,
                                                   char** errptr);
/* Finishes the message and points *data and *len at its encoded bytes, valid
 * until the message is cleared, changed or destroyed. */
EDGEROUTE_EXPORT int edgeroute_message_encoded(edgeroute_message_t* msg,
                                               const char** data, size_t* len,
                                               char** errptr);

/* ------------------------------------------------------------------------ */
/* Message views: borrowed, read-only, zero-copy                            */
/* ------------------------------------------------------------------------ */

/* A read-only view of a message delivered to a sink (edgeroute_batch_get)
 * or of a finished edgeroute_message_t (edgeroute_message_view). Every
 * pointer a view returns points into the message itself (no copies) and is
 * valid as long as the view is. Thread-safe (read-only). */
typedef struct edgeroute_view_t edgeroute_view_t;

/* Property lookups return one of these. */
#define EDGEROUTE_PROPERTY_MISSING 0
#define EDGEROUTE_PROPERTY_NULL 1
#define EDGEROUTE_PROPERTY_STRING 2

/* Finishes `msg` and returns a view of it, valid until `msg` is cleared,
 * changed or destroyed. NULL if msg is NULL. */
EDGEROUTE_EXPORT const edgeroute_view_t* edgeroute_message_view(
    edgeroute_message_t* msg);

/* Accessors. For a NULL view they return empty strings and zero. */
EDGEROUTE_EXPORT const char* edgeroute_view_body(const edgeroute_view_t* view,
                                                 size_t* len);
EDGEROUTE_EXPORT const char* edgeroute_view_source(const edgeroute_view_t* view,
                                                   size_t* len);
/* The whole encoded message: store it, or send it again with
 * edgeroute_router_send_encoded. */
EDGEROUTE_EXPORT const char* edgeroute_view_encoded(
    const edgeroute_view_t* view, size_t* len);
/* The enqueue time and sequence number recorded in the message encoding
 * (microseconds since the Unix epoch); 0 when the producer set none. */
EDGEROUTE_EXPORT int64_t
edgeroute_view_enqueue_time_us(const edgeroute_view_t* view);
EDGEROUTE_EXPORT uint64_t
edgeroute_view_sequence_number(const edgeroute_view_t* view);
/* Number of application / system properties, in insertion order. */
EDGEROUTE_EXPORT size_t
edgeroute_view_property_count(const edgeroute_view_t* view);
EDGEROUTE_EXPORT size_t
edgeroute_view_system_property_count(const edgeroute_view_t* view);
/* Property `index` (< count): sets *key and *key_len, and *value and
 * *value_len unless the value is null. Returns EDGEROUTE_PROPERTY_STRING,
 * EDGEROUTE_PROPERTY_NULL, or EDGEROUTE_PROPERTY_MISSING for a bad index or
 * NULL argument. */
EDGEROUTE_EXPORT int edgeroute_view_property(const edgeroute_view_t* view,
                                             size_t index, const char** key,
                                             size_t* key_len,
                                             const char** value,
                                             size_t* value_len);
EDGEROUTE_EXPORT int edgeroute_view_system_property(
    const edgeroute_view_t* view, size_t index, const char** key,
    size_t* key_len, const char** value, size_t* value_len);
/* Case-insensitive lookup (ASCII letters fold), as route conditions do.
 * Returns EDGEROUTE_PROPERTY_*; sets *value and *value_len for a
 * string. */
EDGEROUTE_EXPORT int edgeroute_view_find_property(const edgeroute_view_t* view,
                                                  const char* key,
                                                  size_t key_len,
                                                  const char** value,
                                                  size_t* value_len);
EDGEROUTE_EXPORT int edgeroute_view_find_system_property(
    const edgeroute_view_t* view, const char* key, size_t key_len,
    const char** value, size_t* value_len);

/* ------------------------------------------------------------------------ */
/* Conditions: compile a WHERE clause, evaluate it against a message        */
/* ------------------------------------------------------------------------ */

/* A compiled route condition. Immutable: thread-safe. */
typedef struct edgeroute_condition_t edgeroute_condition_t;

/* The three results of a condition. */
#define EDGEROUTE_FALSE 0
#define EDGEROUTE_TRUE 1
#define EDGEROUTE_UNDEFINED 2

/* Compiles a condition such as "temperature > '30' AND $contentType =
 * 'application/json'". On success stores a new condition in *out (free with
 * edgeroute_condition_destroy); on failure INVALID_ARGUMENT, the errors in
 * `diags` (optional) and *out untouched. */
EDGEROUTE_EXPORT int edgeroute_condition_compile(const char* condition,
                                                 size_t len,
                                                 edgeroute_diagnostics_t* diags,
                                                 edgeroute_condition_t** out,
                                                 char** errptr);
EDGEROUTE_EXPORT void edgeroute_condition_destroy(
    edgeroute_condition_t* condition);
/* Evaluates the condition against a message (finishing it) and stores
 * EDGEROUTE_TRUE, EDGEROUTE_FALSE or EDGEROUTE_UNDEFINED in *result. Routes
 * deliver only on TRUE. Thread-safe for the condition; `msg` as above. */
EDGEROUTE_EXPORT int edgeroute_condition_evaluate(
    const edgeroute_condition_t* condition, edgeroute_message_t* msg,
    int* result, char** errptr);
/* The same against a view (e.g. a delivered message). Thread-safe. */
EDGEROUTE_EXPORT int edgeroute_condition_evaluate_view(
    const edgeroute_condition_t* condition, const edgeroute_view_t* view,
    int* result, char** errptr);

/* ------------------------------------------------------------------------ */
/* Router options                                                           */
/* ------------------------------------------------------------------------ */

/* Options for edgeroute_router_create. Setters never fail; values are
 * checked by edgeroute_router_create (INVALID_ARGUMENT). Setters on NULL do
 * nothing. Not thread-safe. */
typedef struct edgeroute_options_t edgeroute_options_t;

#define EDGEROUTE_DURABILITY_PROCESS 0 /* RocksDB WAL, no fsync (edgeHub) */
#define EDGEROUTE_DURABILITY_POWER 1   /* fsync, group-committed */

EDGEROUTE_EXPORT edgeroute_options_t* edgeroute_options_create(void);
EDGEROUTE_EXPORT void edgeroute_options_destroy(edgeroute_options_t* options);
/* Directory of the store-and-forward store (created if missing); the
 * router opens it, owns it and closes it. Default: "" = no store; messages
 * are queued in memory only. */
EDGEROUTE_EXPORT void edgeroute_options_set_store_directory(
    edgeroute_options_t* options, const char* dir, size_t len);
/* EDGEROUTE_DURABILITY_*; only used with a store. Default PROCESS. */
EDGEROUTE_EXPORT void edgeroute_options_set_durability(
    edgeroute_options_t* options, int durability);
/* Upper bound on the bytes the store holds; sends fail with
 * RESOURCE_EXHAUSTED beyond it. Default 0 = unlimited. */
EDGEROUTE_EXPORT void edgeroute_options_set_store_max_bytes(
    edgeroute_options_t* options, uint64_t max_bytes);
/* The gateway's device id, the first part of BrokeredEndpoint endpoint ids
 * ("{device_id}/{module}/{input}"). Default "DEV". */
EDGEROUTE_EXPORT void edgeroute_options_set_device_id(
    edgeroute_options_t* options, const char* id, size_t len);
/* Number of dispatch threads, >= 1. Default 2. */
EDGEROUTE_EXPORT void edgeroute_options_set_dispatch_threads(
    edgeroute_options_t* options, int threads);
/* Longest time a send waits for room before RESOURCE_EXHAUSTED, in
 * microseconds, >= 0. Default 1 s. */
EDGEROUTE_EXPORT void edgeroute_options_set_admission_timeout_us(
    edgeroute_options_t* options, int64_t micros);
/* Largest number of messages handed to a sink at once, >= 1. Default 100. */
EDGEROUTE_EXPORT void edgeroute_options_set_max_batch_size(
    edgeroute_options_t* options, size_t messages);
/* Backoff before redelivering messages a sink acknowledged RETRY: the n-th
 * retry waits min(initial + (2^(n-1) - 1) * initial * jitter(0.8..1.2), max)
 * microseconds. Both > 0, initial <= max. Default 1 s and 60 s (edgeHub's). */
EDGEROUTE_EXPORT void edgeroute_options_set_retry_backoff_us(
    edgeroute_options_t* options, int64_t initial_us, int64_t max_us);
/* Close: 1 (default) = deliver what is queued first (up to 10 s);
 * 0 = stop after the batches in flight. */
EDGEROUTE_EXPORT void edgeroute_options_set_drain_on_close(
    edgeroute_options_t* options, uint8_t drain);

/* ------------------------------------------------------------------------ */
/* Router                                                                   */
/* ------------------------------------------------------------------------ */

/* A live router: routes messages to per-endpoint sinks, with optional
 * store-and-forward. All router functions are thread-safe, including
 * concurrent sends from many threads, except edgeroute_router_destroy.
 * After edgeroute_router_close every call except edgeroute_router_destroy,
 * edgeroute_router_close, edgeroute_router_get_metrics,
 * edgeroute_router_endpoint_metrics and edgeroute_router_prometheus_text
 * gives FAILED_PRECONDITION. */
typedef struct edgeroute_router_t edgeroute_router_t;

/* Creates a router from a deployment manifest or its $edgeHub section
 * (JSON), with `options` (NULL = defaults; not retained). On success stores
 * it in *out. Route errors give INVALID_ARGUMENT; `diags` (optional)
 * receives every error and warning, positioned in the manifest text. A
 * store that cannot be opened gives its error (e.g. UNAVAILABLE when
 * another process holds it). */
EDGEROUTE_EXPORT int edgeroute_router_create(const edgeroute_options_t* options,
                                             const char* manifest, size_t len,
                                             edgeroute_diagnostics_t* diags,
                                             edgeroute_router_t** out,
                                             char** errptr);

/* Replaces every route (and the global TTL) with the manifest's,
 * atomically: every message sent before the call is routed with the old
 * table, every message sent after it returns with the new one. On error
 * nothing changes. */
EDGEROUTE_EXPORT int edgeroute_router_update_routes(
    edgeroute_router_t* router, const char* manifest, size_t len,
    edgeroute_diagnostics_t* diags, char** errptr);

/* Closes the router if needed, destroys every sink state and frees the
 * router. No-op for NULL. Not thread-safe: no other call on the router may
 * run concurrently or follow; must not be called from a sink callback. */
EDGEROUTE_EXPORT void edgeroute_router_destroy(edgeroute_router_t* router);

/* Stops accepting messages, dispatches what was accepted, delivers what is
 * queued (see edgeroute_options_set_drain_on_close), waits for the batches
 * in flight to be acknowledged, stops every thread and closes the store.
 * Messages not delivered stay in the store for the next router on the same
 * directory (without a store they are dropped and counted). A second close
 * is a no-op. Must not be called from a sink callback. */
EDGEROUTE_EXPORT int edgeroute_router_close(edgeroute_router_t* router,
                                            char** errptr);

/* Waits until everything sent so far is dispatched and every endpoint that
 * has a sink has an empty queue and nothing in flight, or `timeout_us`
 * passes (DEADLINE_EXCEEDED). Must not be called from a sink callback. */
EDGEROUTE_EXPORT int edgeroute_router_wait_idle(edgeroute_router_t* router,
                                                int64_t timeout_us,
                                                char** errptr);

/* --- sending --- */

/* Routes one message (finishing it; `msg` may be cleared and reused as soon
 * as the call returns: the bytes are copied). Returns once the message is
 * accepted (with a store: once it is in the store).
 * RESOURCE_EXHAUSTED when the router stayed full for the admission timeout
 * (or the store is full): the message was not accepted. */
EDGEROUTE_EXPORT int edgeroute_router_send(edgeroute_router_t* router,
                                           edgeroute_message_t* msg,
                                           char** errptr);

/* Routes an encoded message (edgeroute_message_encoded /
 * edgeroute_view_encoded). The bytes may have any alignment; they are
 * verified (INVALID_ARGUMENT if they are not a message) and copied. */
EDGEROUTE_EXPORT int edgeroute_router_send_encoded(edgeroute_router_t* router,
                                                   const char* data, size_t len,
                                                   char** errptr);

/* Routes `count` messages in order. Stops at the first failure, whose
 * status it returns; *accepted (optional) tells how many messages, from the
 * start, were accepted. */
EDGEROUTE_EXPORT int edgeroute_router_send_batch(
    edgeroute_router_t* router, edgeroute_message_t* const* msgs, size_t count,
    size_t* accepted, char** errptr);

/* Routes `count` messages that share the properties, system properties and
 * source of `prototype` (NULL = none; finished by the call) and have bodies
 * bodies[i] of lengths[i] bytes (the prototype's own body is ignored). The
 * fast path for a stream of readings; *accepted as for send_batch. A
 * finished prototype is only read, so concurrent calls may share one once it
 * is finished (e.g. by edgeroute_message_view). */
EDGEROUTE_EXPORT int edgeroute_router_send_bodies(
    edgeroute_router_t* router, edgeroute_message_t* prototype,
    const char* const* bodies, const size_t* lengths, size_t count,
    size_t* accepted, char** errptr);

/* --- sinks --- */

/* The messages handed to a sink at once: all from one endpoint and one
 * priority, in queue order. Read them with edgeroute_batch_get and
 * acknowledge each exactly once with edgeroute_batch_ack (or the rest with
 * edgeroute_batch_ack_all), from any thread, during the callback or later.
 * A message's view stays valid until that message is acknowledged; the
 * batch handle stays valid until every message is acknowledged. The
 * endpoint's next batch comes only after that. Accessors are thread-safe;
 * acks of different messages may run concurrently. */
typedef struct edgeroute_batch_t edgeroute_batch_t;

/* Acknowledgement outcomes. */
#define EDGEROUTE_DELIVERED 0 /* done; the message is released */
#define EDGEROUTE_RETRY                                                    \
  1                        /* transient failure; redelivered after backoff \
                              (1 s, 2 s, 4 s ... 60 s) while its TTL lasts */
#define EDGEROUTE_REJECT 2 /* never deliverable; dropped and counted */

/* Called on one of the router's executor threads (a fixed pool shared by
 * every endpoint), one batch at a time per endpoint. A callback that may
 * wait should keep the batch, return, and acknowledge later from its own
 * thread: a callback that blocks holds an executor thread until it
 * returns. Must not call edgeroute_router_close, _destroy or _wait_idle.
 * A sink that wants strict ordering on failure acknowledges RETRY for every
 * message after the first failed one. */
typedef void (*edgeroute_sink_fn)(void* state, edgeroute_batch_t* batch);
/* Called once with `state` when the router lets go of the sink: some time
 * after it was replaced or removed (once no batch of it is in flight), and at
 * the latest in edgeroute_router_destroy. May be NULL. */
typedef void (*edgeroute_sink_destructor_fn)(void* state);

/* Registers the sink for an endpoint id: "iothub" for $upstream routes,
 * "{device_id}/{module}/{input}" for BrokeredEndpoint(...) routes. The
 * endpoint need not be used by a route yet. Replaces an earlier sink for
 * the same id from its next batch. `deliver` NULL removes the sink (then
 * `destructor` and `state` are ignored). Messages for an endpoint without a
 * sink wait in its queue. On failure `destructor` is not called: the caller
 * still owns `state`. */
EDGEROUTE_EXPORT int edgeroute_router_set_sink(
    edgeroute_router_t* router, const char* endpoint_id, size_t len,
    void* state, edgeroute_sink_destructor_fn destructor,
    edgeroute_sink_fn deliver, char** errptr);

/* Batch accessors. Thread-safe. For a NULL batch: 0 / "" / NULL / -1. */
EDGEROUTE_EXPORT size_t edgeroute_batch_count(const edgeroute_batch_t* batch);
/* The endpoint id (borrowed, NUL-terminated; *len optional). */
EDGEROUTE_EXPORT const char* edgeroute_batch_endpoint(
    const edgeroute_batch_t* batch, size_t* len);
/* The priority of the batch's messages: 0..9, or 2000000000 for routes
 * without one. */
EDGEROUTE_EXPORT int64_t
edgeroute_batch_priority(const edgeroute_batch_t* batch);
/* 1 for the first delivery attempt of these messages, 2 for the first
 * retry, ... */
EDGEROUTE_EXPORT int edgeroute_batch_attempt(const edgeroute_batch_t* batch);
/* The view of message `index`, or NULL for a bad index or a message
 * already acknowledged. */
EDGEROUTE_EXPORT const edgeroute_view_t* edgeroute_batch_get(
    const edgeroute_batch_t* batch, size_t index);
/* Acknowledges message `index` with EDGEROUTE_DELIVERED, _RETRY or
 * _REJECT. OUT_OF_RANGE for a bad index, INVALID_ARGUMENT for a bad
 * outcome, FAILED_PRECONDITION if it was acknowledged already. */
EDGEROUTE_EXPORT int edgeroute_batch_ack(edgeroute_batch_t* batch, size_t index,
                                         int outcome, char** errptr);
/* Acknowledges every message not yet acknowledged with `outcome`. Must not
 * race edgeroute_batch_ack calls on the same batch. */
EDGEROUTE_EXPORT int edgeroute_batch_ack_all(edgeroute_batch_t* batch,
                                             int outcome, char** errptr);

/* --- metrics --- */

/* Router-wide counters since creation (never decrease, except the gauges
 * marked "now"). Filled into a caller-owned struct (set struct_size). */
typedef struct edgeroute_metrics_t {
  size_t struct_size;        /* set by the caller: sizeof(edgeroute_metrics_t) */
  uint64_t received;         /* messages accepted by the send calls */
  uint64_t orphaned;         /* of those, matched no route */
  uint64_t rejected_full;    /* sends refused: router full */
  uint64_t rejected_invalid; /* sends refused: not a valid message */
  uint64_t route_updates;    /* successful edgeroute_router_update_routes */
  /* Sums over every endpoint (see edgeroute_endpoint_metrics_t). */
  uint64_t enqueued;
  uint64_t delivered;
  uint64_t retried;
  uint64_t expired;
  uint64_t rejected;
  uint64_t dropped;
  uint64_t queue_depth; /* now */
  uint64_t endpoints;   /* endpoints seen since creation */
  uint64_t routes;      /* route names loaded since creation */
} edgeroute_metrics_t;

/* One endpoint's counters since creation (set struct_size). */
typedef struct edgeroute_endpoint_metrics_t {
  size_t struct_size;   /* set by the caller: sizeof(the struct) */
  uint64_t enqueued;    /* messages queued for it (once per message) */
  uint64_t delivered;   /* acknowledged DELIVERED */
  uint64_t retried;     /* handed to the sink again after RETRY */
  uint64_t expired;     /* TTL passed before delivery */
  uint64_t rejected;    /* acknowledged REJECT */
  uint64_t dropped;     /* queue full, retries exhausted, removed, close */
  uint64_t queue_depth; /* now: queued or in flight */
  int64_t oldest_message_age_us; /* now: 0 when empty */
  int64_t latency_p50_us;        /* enqueue -> delivered, estimates */
  int64_t latency_p99_us;
  uint8_t has_sink; /* now */
  uint8_t dead;     /* now: dropping batches until revived */
} edgeroute_endpoint_metrics_t;

/* Fills *out (set out->struct_size first). Works after close (final
 * values). Thread-safe. */
EDGEROUTE_EXPORT int edgeroute_router_get_metrics(edgeroute_router_t* router,
                                                  edgeroute_metrics_t* out,
                                                  char** errptr);
/* Fills *out for one endpoint id (set out->struct_size first); NOT_FOUND if
 * the router has never seen it. Works after close. Thread-safe. */
EDGEROUTE_EXPORT int edgeroute_router_endpoint_metrics(
    edgeroute_router_t* router, const char* endpoint_id, size_t len,
    edgeroute_endpoint_metrics_t* out, char** errptr);
/* Stores the metrics in Prometheus text exposition format (0.0.4), per
 * route and endpoint, in *text (malloc()ed, NUL-terminated, free with
 * edgeroute_free) and its length in *len (optional). Works after close.
 * Thread-safe. */
EDGEROUTE_EXPORT int edgeroute_router_prometheus_text(
    edgeroute_router_t* router, char** text, size_t* len, char** errptr);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EDGEROUTE_BINDINGS_C_EDGEROUTE_H_ */
