'use strict';
// edgeroute from Node.js: the C ABI (<edgeroute/edgeroute.h>) through koffi,
// an FFI package with prebuilt binaries, so installing needs no compiler and
// no Node headers (offline-friendly). Sinks are JS functions: the router's
// delivery threads hand each batch to the main thread (koffi queues the
// call), and a sink acknowledges by returning, by returning a promise, or
// later through the batch. Calls that wait for sinks (close, waitIdle) run
// on a worker thread and return promises, so the event loop stays free to
// run the sinks.
//
// The library is found through $EDGEROUTE_LIBRARY, then the installed
// libedgeroute.so.0 (the dynamic loader's path), then the repository's
// bazel-bin.

const fs = require('fs');
const path = require('path');
const koffi = require('koffi');

// The header version this package was written against.
const MAJOR = 0;
const MINOR = 2;

function loadLibrary() {
  const tried = [];
  const candidates = [];
  if (process.env.EDGEROUTE_LIBRARY) candidates.push(process.env.EDGEROUTE_LIBRARY);
  candidates.push('libedgeroute.so.0');
  candidates.push(path.join(__dirname, '..', '..', 'bazel-bin', 'bindings', 'c', 'libedgeroute.so'));
  for (const candidate of candidates) {
    if (candidate.includes('/') && !fs.existsSync(candidate)) {
      tried.push(candidate);
      continue;
    }
    try {
      return koffi.load(candidate);
    } catch (e) {
      tried.push(`${candidate} (${e.message})`);
    }
  }
  throw new Error('libedgeroute.so.0 not found; install it (scripts/install.sh or the ' +
                  'Debian package) or set EDGEROUTE_LIBRARY. Tried: ' + tried.join(', '));
}

const lib = loadLibrary();

const Diagnostic_ = koffi.struct('edgeroute_diagnostic_t', {
  struct_size: 'size_t', severity: 'int', message: 'const char *', route_name: 'const char *',
  line: 'uint32_t', column: 'uint32_t', end_column: 'uint32_t', excerpt: 'const char *',
  suggestion: 'const char *',
});
const METRIC_NAMES = ['received', 'orphaned', 'rejected_full', 'rejected_invalid', 'route_updates',
  'enqueued', 'delivered', 'retried', 'expired', 'rejected', 'dropped', 'queue_depth', 'endpoints',
  'routes'];
const Metrics_ = koffi.struct('edgeroute_metrics_t', Object.assign({struct_size: 'size_t'},
  ...METRIC_NAMES.map((name) => ({[name]: 'uint64_t'}))));
const EndpointMetrics_ = koffi.struct('edgeroute_endpoint_metrics_t', {
  struct_size: 'size_t', enqueued: 'uint64_t', delivered: 'uint64_t', retried: 'uint64_t',
  expired: 'uint64_t', rejected: 'uint64_t', dropped: 'uint64_t', queue_depth: 'uint64_t',
  oldest_message_age_us: 'int64_t', latency_p50_us: 'int64_t', latency_p99_us: 'int64_t',
  has_sink: 'uint8_t', dead: 'uint8_t',
});
const SinkFn = koffi.proto('void edgeroute_sink_fn(void *state, void *batch)');

const ERR = '_Out_ void **errptr';
const C = {};
for (const [name, decl] of Object.entries({
  version: 'const char *edgeroute_version(void)',
  version_number: 'int edgeroute_version_number(void)',
  free: 'void edgeroute_free(void *ptr)',
  diagnostics_create: 'void *edgeroute_diagnostics_create(void)',
  diagnostics_destroy: 'void edgeroute_diagnostics_destroy(void *d)',
  diagnostics_count: 'size_t edgeroute_diagnostics_count(void *d)',
  diagnostics_get: `int edgeroute_diagnostics_get(void *d, size_t i, _Inout_ edgeroute_diagnostic_t *out, ${ERR})`,
  check_route: `int edgeroute_check_route(const char *s, size_t n, void *d, ${ERR})`,
  check_manifest: `int edgeroute_check_manifest(const char *s, size_t n, void *d, ${ERR})`,
  message_create: 'void *edgeroute_message_create(void)',
  message_destroy: 'void edgeroute_message_destroy(void *m)',
  message_clear: 'void edgeroute_message_clear(void *m)',
  message_set_body: `int edgeroute_message_set_body(void *m, const uint8_t *b, size_t n, ${ERR})`,
  message_add_property: `int edgeroute_message_add_property(void *m, const char *k, size_t kn, const char *v, size_t vn, ${ERR})`,
  message_add_system_property: `int edgeroute_message_add_system_property(void *m, const char *k, size_t kn, const char *v, size_t vn, ${ERR})`,
  message_set_source: `int edgeroute_message_set_source(void *m, const char *s, size_t n, ${ERR})`,
  view_body: 'void *edgeroute_view_body(void *v, _Out_ size_t *n)',
  view_source: 'void *edgeroute_view_source(void *v, _Out_ size_t *n)',
  view_encoded: 'void *edgeroute_view_encoded(void *v, _Out_ size_t *n)',
  view_property_count: 'size_t edgeroute_view_property_count(void *v)',
  view_system_property_count: 'size_t edgeroute_view_system_property_count(void *v)',
  view_property: 'int edgeroute_view_property(void *v, size_t i, _Out_ void **k, _Out_ size_t *kn, _Out_ void **val, _Out_ size_t *vn)',
  view_system_property: 'int edgeroute_view_system_property(void *v, size_t i, _Out_ void **k, _Out_ size_t *kn, _Out_ void **val, _Out_ size_t *vn)',
  condition_compile: `int edgeroute_condition_compile(const char *s, size_t n, void *d, _Out_ void **out, ${ERR})`,
  condition_destroy: 'void edgeroute_condition_destroy(void *c)',
  condition_evaluate: `int edgeroute_condition_evaluate(void *c, void *m, _Out_ int *result, ${ERR})`,
  options_create: 'void *edgeroute_options_create(void)',
  options_destroy: 'void edgeroute_options_destroy(void *o)',
  options_set_store_directory: 'void edgeroute_options_set_store_directory(void *o, const char *s, size_t n)',
  options_set_durability: 'void edgeroute_options_set_durability(void *o, int d)',
  options_set_store_max_bytes: 'void edgeroute_options_set_store_max_bytes(void *o, uint64_t n)',
  options_set_device_id: 'void edgeroute_options_set_device_id(void *o, const char *s, size_t n)',
  options_set_dispatch_threads: 'void edgeroute_options_set_dispatch_threads(void *o, int n)',
  options_set_max_batch_size: 'void edgeroute_options_set_max_batch_size(void *o, size_t n)',
  options_set_retry_backoff_us: 'void edgeroute_options_set_retry_backoff_us(void *o, int64_t a, int64_t b)',
  router_create: `int edgeroute_router_create(void *o, const char *s, size_t n, void *d, _Out_ void **out, ${ERR})`,
  router_update_routes: `int edgeroute_router_update_routes(void *r, const char *s, size_t n, void *d, ${ERR})`,
  router_destroy: 'void edgeroute_router_destroy(void *r)',
  router_close: `int edgeroute_router_close(void *r, ${ERR})`,
  router_wait_idle: `int edgeroute_router_wait_idle(void *r, int64_t us, ${ERR})`,
  router_send: `int edgeroute_router_send(void *r, void *m, ${ERR})`,
  router_send_encoded: `int edgeroute_router_send_encoded(void *r, const uint8_t *data, size_t n, ${ERR})`,
  router_send_bodies: `int edgeroute_router_send_bodies(void *r, void *proto, const void **bodies, const size_t *lengths, size_t count, _Out_ size_t *accepted, ${ERR})`,
  router_set_sink: `int edgeroute_router_set_sink(void *r, const char *id, size_t n, void *state, void *destructor, edgeroute_sink_fn *deliver, ${ERR})`,
  router_get_metrics: `int edgeroute_router_get_metrics(void *r, _Inout_ edgeroute_metrics_t *out, ${ERR})`,
  router_endpoint_metrics: `int edgeroute_router_endpoint_metrics(void *r, const char *id, size_t n, _Inout_ edgeroute_endpoint_metrics_t *out, ${ERR})`,
  router_prometheus_text: `int edgeroute_router_prometheus_text(void *r, _Out_ void **text, _Out_ size_t *n, ${ERR})`,
  batch_count: 'size_t edgeroute_batch_count(void *b)',
  batch_endpoint: 'const char *edgeroute_batch_endpoint(void *b, void *n)',
  batch_priority: 'int64_t edgeroute_batch_priority(void *b)',
  batch_attempt: 'int edgeroute_batch_attempt(void *b)',
  batch_get: 'void *edgeroute_batch_get(void *b, size_t i)',
  batch_ack: `int edgeroute_batch_ack(void *b, size_t i, int outcome, ${ERR})`,
  batch_ack_all: `int edgeroute_batch_ack_all(void *b, int outcome, ${ERR})`,
})) {
  C[name] = lib.func(decl);
}

const versionNumber = C.version_number();
if (Math.floor(versionNumber / 1000000) !== MAJOR ||
    (MAJOR === 0 ? Math.floor(versionNumber / 1000) % 1000 !== MINOR
                 : Math.floor(versionNumber / 1000) % 1000 < MINOR)) {
  throw new Error(`libedgeroute ${C.version()} does not run this package (written for ${MAJOR}.${MINOR})`);
}

// ------------------------------------------------------------------ errors

const CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED',
  'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

/** Every error of this package: `code` (a name such as "INVALID_ARGUMENT"),
 * `status` (its number), and for route and manifest errors `diagnostics`
 * with `line` and `column` of the first error. */
class EdgerouteError extends Error {
  constructor(status, message, diagnostics) {
    super(message);
    this.name = 'EdgerouteError';
    this.status = status;
    this.code = CODES[status] || `CODE_${status}`;
    this.diagnostics = diagnostics || [];
    const first = this.diagnostics.find((d) => d.severity === 'error');
    this.line = first ? first.line : 0;
    this.column = first ? first.column : 0;
  }
}

function takeString(ptr) {
  if (!ptr) return '';
  const s = koffi.decode(ptr, 'char', -1);
  C.free(ptr);
  return s;
}

function check(status, err, diags) {
  const message = takeString(err[0]);
  if (status === 0) return;
  throw new EdgerouteError(status, message, diags ? readDiagnostics(diags) : []);
}

function readDiagnostics(diags) {
  const out = [];
  const n = Number(C.diagnostics_count(diags));
  for (let i = 0; i < n; i++) {
    const d = {struct_size: koffi.sizeof(Diagnostic_)};
    if (C.diagnostics_get(diags, i, d, [null]) !== 0) continue;
    out.push({
      severity: d.severity === 0 ? 'error' : 'warning', message: d.message,
      routeName: d.route_name, line: d.line, column: d.column, endColumn: d.end_column,
      excerpt: d.excerpt, suggestion: d.suggestion,
    });
  }
  return out;
}

function withDiagnostics(fn) {
  const diags = C.diagnostics_create();
  try {
    return fn(diags);
  } finally {
    C.diagnostics_destroy(diags);
  }
}

// ------------------------------------------------------------------ checks

/** The library's version, "MAJOR.MINOR.PATCH". */
function version() { return C.version(); }

function checkText(fn, text) {
  return withDiagnostics((diags) => {
    const err = [null];
    check(fn(text, Buffer.byteLength(text), diags, err), err, diags);
    return readDiagnostics(diags);
  });
}

/** Checks one route; returns its warnings, throws EdgerouteError. */
function checkRoute(route) { return checkText(C.check_route, route); }

/** Checks a deployment manifest (object or JSON text) as a Router would. */
function checkManifest(manifest) { return checkText(C.check_manifest, manifestText(manifest)); }

function manifestText(manifest) {
  return typeof manifest === 'string' ? manifest : JSON.stringify(manifest);
}

// ---------------------------------------------------------------- messages

function toBuffer(body) {
  if (body === undefined || body === null) return null;
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return Buffer.from(JSON.stringify(body));
}

// Fills the C message `m` from a JS message
// {body, properties: {k: string|null}, systemProperties: {k: string}, source}.
function fillMessage(m, msg, withBody) {
  C.message_clear(m);
  const err = [null];
  const body = withBody ? toBuffer(msg.body) : null;
  if (body && body.length) check(C.message_set_body(m, body, body.length, err), err);
  for (const [k, v] of Object.entries(msg.properties || {})) {
    const value = v === null ? null : String(v);
    check(C.message_add_property(m, k, Buffer.byteLength(k), value,
                                 value === null ? 0 : Buffer.byteLength(value), err), err);
  }
  for (const [k, v] of Object.entries(msg.systemProperties || {})) {
    const value = String(v);
    check(C.message_add_system_property(m, k, Buffer.byteLength(k), value,
                                        Buffer.byteLength(value), err), err);
  }
  if (msg.source) check(C.message_set_source(m, msg.source, Buffer.byteLength(msg.source), err), err);
}

function copyBytes(ptr, n) {
  n = Number(n);
  if (!ptr || n === 0) return Buffer.alloc(0);
  return Buffer.from(new Uint8Array(koffi.view(ptr, n)));
}

function readProperties(view, count, get) {
  const out = {};
  for (let i = 0; i < count; i++) {
    const k = [null]; const kn = [0]; const v = [null]; const vn = [0];
    const kind = get(view, i, k, kn, v, vn);
    if (kind === 0) continue;
    out[copyBytes(k[0], kn[0]).toString()] = kind === 1 ? null : copyBytes(v[0], vn[0]).toString();
  }
  return out;
}

// A delivered message, copied out of the batch (safe to keep).
function readView(view) {
  const n = [0];
  const body = copyBytes(C.view_body(view, n), n[0]);
  const source = copyBytes(C.view_source(view, n), n[0]).toString();
  const encoded = copyBytes(C.view_encoded(view, n), n[0]);
  return {
    body, source, encoded,
    properties: readProperties(view, Number(C.view_property_count(view)), C.view_property),
    systemProperties: readProperties(view, Number(C.view_system_property_count(view)),
                                     C.view_system_property),
  };
}

// -------------------------------------------------------------- conditions

/** A compiled route condition. `evaluate(message)` gives true, false or
 * undefined (the three values of the route language). Call close(). */
class Condition {
  constructor(text) {
    this._c = withDiagnostics((diags) => {
      const out = [null]; const err = [null];
      check(C.condition_compile(text, Buffer.byteLength(text), diags, out, err), err, diags);
      return out[0];
    });
    this._m = C.message_create();
  }

  evaluate(message) {
    if (!this._c) throw new EdgerouteError(9, 'condition is closed');
    fillMessage(this._m, message, true);
    const result = [0]; const err = [null];
    check(C.condition_evaluate(this._c, this._m, result, err), err);
    return result[0] === 1 ? true : result[0] === 0 ? false : undefined;
  }

  close() {
    if (this._c) {
      C.condition_destroy(this._c);
      C.message_destroy(this._m);
      this._c = null;
    }
  }
}

// ------------------------------------------------------------------ sinks

const Outcome = Object.freeze({DELIVERED: 0, RETRY: 1, REJECT: 2});

/** The messages handed to a sink at once (one endpoint and priority). */
class Batch {
  constructor(handle) {
    this._b = handle;
    this._deferred = false;
    this.endpoint = C.batch_endpoint(handle, null);
    this.priority = Number(C.batch_priority(handle));
    this.attempt = C.batch_attempt(handle);
    this.length = Number(C.batch_count(handle));
  }

  /** Message i (a copy), or null once acknowledged. */
  message(i) {
    const view = C.batch_get(this._b, i);
    return view ? readView(view) : null;
  }

  /** Every message not yet acknowledged (copies). */
  messages() {
    const out = [];
    for (let i = 0; i < this.length; i++) {
      const m = this.message(i);
      if (m) out.push(m);
    }
    return out;
  }

  ack(i, outcome) {
    const err = [null];
    check(C.batch_ack(this._b, i, outcome, err), err);
  }

  ackAll(outcome) {
    const err = [null];
    check(C.batch_ack_all(this._b, outcome, err), err);
  }

  /** The sink acknowledges later (ack/ackAll); the endpoint's next batch
   * comes after that. */
  defer() { this._deferred = true; }
}

// One registered trampoline serves every sink: `state` is the sink's id.
const sinks = new Map();
let nextSinkId = 1;
const sinkTrampoline = koffi.register((state, handle) => {
  const sink = sinks.get(Number(koffi.address(state)));
  const batch = new Batch(handle);
  const settle = (outcome) => {
    try {
      batch.ackAll(outcome);
    } catch (e) {
      // Acknowledged by the sink already.
    }
  };
  let result;
  try {
    result = sink ? sink(batch) : undefined;
  } catch (e) {
    settle(Outcome.RETRY);
    return;
  }
  if (result && typeof result.then === 'function') {
    // A promise: resolved = delivered (or the outcome it resolves to),
    // rejected = retry. Acknowledged from the main thread later.
    result.then((o) => settle(typeof o === 'number' ? o : Outcome.DELIVERED),
                () => settle(Outcome.RETRY));
  } else if (!batch._deferred) {
    settle(typeof result === 'number' ? result : Outcome.DELIVERED);
  }
}, koffi.pointer(SinkFn));

// ------------------------------------------------------------------ router

function promisify(fn, ...args) {
  return new Promise((resolve, reject) => {
    fn.async(...args, (e, status) => (e ? reject(e) : resolve(status)));
  });
}

/** A router over a deployment manifest (object or JSON text). Options:
 * storeDirectory, durability ('process' | 'power'), storeMaxBytes,
 * deviceId, dispatchThreads, maxBatchSize, retryInitialMs, retryMaxMs. */
class Router {
  constructor(manifest, options = {}) {
    const o = C.options_create();
    try {
      if (options.storeDirectory) {
        C.options_set_store_directory(o, options.storeDirectory, Buffer.byteLength(options.storeDirectory));
      }
      if (options.durability === 'power') C.options_set_durability(o, 1);
      if (options.storeMaxBytes) C.options_set_store_max_bytes(o, options.storeMaxBytes);
      if (options.deviceId) C.options_set_device_id(o, options.deviceId, Buffer.byteLength(options.deviceId));
      if (options.dispatchThreads) C.options_set_dispatch_threads(o, options.dispatchThreads);
      if (options.maxBatchSize) C.options_set_max_batch_size(o, options.maxBatchSize);
      if (options.retryInitialMs || options.retryMaxMs) {
        C.options_set_retry_backoff_us(o, Math.round((options.retryInitialMs || 1000) * 1000),
                                       Math.round((options.retryMaxMs || 60000) * 1000));
      }
      const text = manifestText(manifest);
      this._r = withDiagnostics((diags) => {
        const out = [null]; const err = [null];
        check(C.router_create(o, text, Buffer.byteLength(text), diags, out, err), err, diags);
        return out[0];
      });
    } finally {
      C.options_destroy(o);
    }
    this._m = C.message_create();
    this._sinkIds = [];
  }

  _handle() {
    if (!this._r) throw new EdgerouteError(9, 'router is closed');
    return this._r;
  }

  /** Routes one message: {body, properties, systemProperties, source}. */
  send(message) {
    const r = this._handle();
    fillMessage(this._m, message, true);
    const err = [null];
    check(C.router_send(r, this._m, err), err);
  }

  /** Routes an encoded message (a Delivery's `encoded`) again. */
  sendEncoded(encoded) {
    const r = this._handle();
    const err = [null];
    check(C.router_send_encoded(r, encoded, encoded.length, err), err);
  }

  /** Routes one message per body, sharing prototype's properties; returns
   * how many were accepted. */
  sendBodies(prototype, bodies) {
    const r = this._handle();
    fillMessage(this._m, prototype || {}, false);
    const buffers = bodies.map(toBuffer);
    const lengths = buffers.map((b) => b.length);
    const accepted = [0]; const err = [null];
    check(C.router_send_bodies(r, this._m, buffers, lengths, buffers.length, accepted, err), err);
    return Number(accepted[0]);
  }

  /** Sets the sink of an endpoint ("iothub" for $upstream,
   * "{device}/{module}/{input}"): a function (batch) => undefined |
   * outcome | Promise. null removes it. */
  setSink(endpoint, sink) {
    const r = this._handle();
    const err = [null];
    if (sink === null) {
      check(C.router_set_sink(r, endpoint, Buffer.byteLength(endpoint), null, null, null, err), err);
      return;
    }
    const id = nextSinkId++;
    sinks.set(id, sink);
    // Batches arrive from the router's threads through koffi's queue, which
    // does not keep the event loop alive by itself: a router with sinks
    // does, until close() (like an open server).
    if (!this._keepAlive) this._keepAlive = setInterval(() => {}, 1 << 30);
    this._sinkIds.push(id);
    check(C.router_set_sink(r, endpoint, Buffer.byteLength(endpoint), koffi.as(BigInt(id), 'void *'),
                            null, sinkTrampoline, err), err);
  }

  /** Replaces every route, atomically. */
  updateRoutes(manifest) {
    const r = this._handle();
    const text = manifestText(manifest);
    withDiagnostics((diags) => {
      const err = [null];
      check(C.router_update_routes(r, text, Buffer.byteLength(text), diags, err), err, diags);
    });
  }

  /** Resolves once everything sent so far reached the sinks there are. */
  async waitIdle(timeoutMs = 30000) {
    const err = [null];
    const status = await promisify(C.router_wait_idle, this._handle(), Math.round(timeoutMs * 1000), err);
    check(status, err);
  }

  metrics() {
    const m = {struct_size: koffi.sizeof(Metrics_)};
    const err = [null];
    check(C.router_get_metrics(this._handle(), m, err), err);
    const out = {};
    for (const name of METRIC_NAMES) out[camel(name)] = Number(m[name]);
    return out;
  }

  endpointMetrics(endpoint) {
    const m = {struct_size: koffi.sizeof(EndpointMetrics_)};
    const err = [null];
    check(C.router_endpoint_metrics(this._handle(), endpoint, Buffer.byteLength(endpoint), m, err), err);
    const out = {};
    for (const [k, v] of Object.entries(m)) if (k !== 'struct_size') out[camel(k)] = Number(v);
    out.hasSink = Boolean(out.hasSink);
    out.dead = Boolean(out.dead);
    return out;
  }

  prometheusText() {
    const text = [null]; const n = [0]; const err = [null];
    check(C.router_prometheus_text(this._handle(), text, n, err), err);
    const s = copyBytes(text[0], n[0]).toString();
    C.free(text[0]);
    return s;
  }

  /** Delivers what is queued, waits for the sinks, frees the router. */
  async close() {
    if (!this._r) return;
    const r = this._r;
    const err = [null];
    let status;
    try {
      status = await promisify(C.router_close, r, err);
    } finally {
      this._r = null;
      C.router_destroy(r);
      C.message_destroy(this._m);
      for (const id of this._sinkIds) sinks.delete(id);
      if (this._keepAlive) clearInterval(this._keepAlive);
    }
    check(status, err);
  }
}

function camel(name) { return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase()); }

module.exports = {
  version, checkRoute, checkManifest, Condition, Router, Batch, Outcome, EdgerouteError,
  RELEASE: `${MAJOR}.${MINOR}.0`,
};
