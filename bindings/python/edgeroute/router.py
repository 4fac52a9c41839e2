"""The router: load a manifest, send messages, receive them in sinks."""

from __future__ import annotations

import ctypes
import enum
import itertools
import sys
import threading
import traceback
from ctypes import byref, c_char_p, c_size_t, c_void_p
from dataclasses import dataclass, fields
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Union)

from edgeroute import _native
from edgeroute._native import lib
from edgeroute.core import (Diagnostic, Diagnostics, Message, NativeMessage,
                            Properties, Text, check, manifest_bytes,
                            thread_builder, to_bytes, view_body)
from edgeroute.errors import EdgerouteError


class Outcome(enum.IntEnum):
    """How a sink acknowledges a message."""

    DELIVERED = 0  # done; the message is released
    RETRY = 1      # transient failure; redelivered after a backoff
    REJECT = 2     # never deliverable; dropped and counted


class Durability(enum.IntEnum):
    PROCESS = 0  # survives a crash of the process (edgeHub's level)
    POWER = 1    # survives a power loss (fsync, group-committed)


class Delivery:
    """One message handed to a sink: a copy, valid after acknowledgement.
    The body and encoding are copied at once; the rest is decoded from the
    encoding on first use."""

    __slots__ = ("body", "encoded", "_message", "_times")

    def __init__(self, view: int) -> None:
        n = c_size_t()
        ptr = lib.edgeroute_view_encoded(view, byref(n))
        self.encoded: bytes = _native.string_at(ptr, n.value)
        self.body: bytes = view_body(view)
        self._message: Optional[Message] = None
        self._times: Optional[tuple] = None

    @property
    def message(self) -> Message:
        if self._message is None:
            self._message = Message.decode(self.encoded)
        return self._message

    @property
    def properties(self) -> Dict[str, Optional[str]]:
        return self.message.properties

    @property
    def system_properties(self) -> Dict[str, Optional[str]]:
        return self.message.system_properties

    @property
    def source(self) -> str:
        return self.message.source or ""

    def _load_times(self) -> tuple:
        if self._times is None:
            native = thread_builder()
            native.load_encoded(self.encoded)
            view = lib.edgeroute_message_view(native.handle)
            self._times = (lib.edgeroute_view_enqueue_time_us(view),
                           lib.edgeroute_view_sequence_number(view))
        return self._times

    @property
    def enqueue_time_us(self) -> int:
        """Recorded in the message by its producer; 0 when none."""
        return self._load_times()[0]

    @property
    def sequence_number(self) -> int:
        return self._load_times()[1]

    def __repr__(self) -> str:
        return "Delivery(body=%r)" % self.body


class Batch(Sequence[Delivery]):
    """The messages handed to a sink at once (one endpoint, one priority).

    The sink callable may acknowledge messages itself with ack()/ack_all();
    whatever it leaves unacknowledged when it returns is acknowledged with
    its return value (None = DELIVERED, an Outcome, or one Outcome per
    message). To acknowledge later, from any thread, call defer() first.
    """

    def __init__(self, handle: int) -> None:
        self._handle = handle
        n = lib.edgeroute_batch_count(handle)
        self.endpoint: str = lib.edgeroute_batch_endpoint(
            handle, None).decode("utf-8", "surrogateescape")
        self.priority: int = lib.edgeroute_batch_priority(handle)
        self.attempt: int = lib.edgeroute_batch_attempt(handle)
        self._messages = [Delivery(lib.edgeroute_batch_get(handle, i))
                          for i in range(n)]
        self._acked = [False] * n
        self._deferred = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._messages)

    def __getitem__(self, i):  # type: ignore[override]
        return self._messages[i]

    def defer(self) -> None:
        """Leaves acknowledgement to the caller (every message, exactly
        once, with ack() or ack_all())."""
        self._deferred = True

    def ack(self, index: int, outcome: Outcome = Outcome.DELIVERED) -> None:
        with self._lock:
            if not 0 <= index < len(self._acked):
                raise IndexError(index)
            if self._acked[index]:
                raise ValueError("message %d already acknowledged" % index)
            self._acked[index] = True
        err = c_char_p()
        check(lib.edgeroute_batch_ack(self._handle, index, int(outcome),
                                      byref(err)), err)

    def ack_all(self, outcome: Outcome = Outcome.DELIVERED) -> None:
        """Acknowledges every message not acknowledged yet."""
        with self._lock:
            if all(self._acked):
                return
            self._acked = [True] * len(self._acked)
        err = c_char_p()
        check(lib.edgeroute_batch_ack_all(self._handle, int(outcome),
                                          byref(err)), err)

    def _finish(self, result: Any) -> None:
        if self._deferred:
            return
        if result is None:
            self.ack_all(Outcome.DELIVERED)
        elif isinstance(result, (Outcome, int)):
            self.ack_all(Outcome(result))
        else:
            outcomes = list(result)
            if len(outcomes) != len(self):
                raise ValueError("sink returned %d outcomes for %d messages"
                                 % (len(outcomes), len(self)))
            for i, outcome in enumerate(outcomes):
                if not self._acked[i]:
                    self.ack(i, Outcome(outcome))


Sink = Callable[[Batch], Any]


class _SinkRecord:
    __slots__ = ("fn", "router_errors")

    def __init__(self, fn: Sink, router_errors: List[BaseException]) -> None:
        self.fn = fn
        self.router_errors = router_errors


# Sinks by the integer passed as the C `state`; the two C trampolines
# below live as long as the module.
_sinks: Dict[int, _SinkRecord] = {}
_sink_ids = itertools.count(1)
_sinks_lock = threading.Lock()


def _deliver(state: int, handle: int) -> None:
    record = _sinks.get(state)
    if record is None:  # cannot happen while registered; stay safe
        lib.edgeroute_batch_ack_all(handle, int(Outcome.RETRY), None)
        return
    batch = None
    try:
        batch = Batch(handle)
        batch._finish(record.fn(batch))
    except BaseException as e:  # noqa: B902 -- nothing may escape to C
        if len(record.router_errors) < 100:
            record.router_errors.append(e)
        traceback.print_exc(file=sys.stderr)
        # Whatever the sink did not acknowledge is retried.
        lib.edgeroute_batch_ack_all(handle, int(Outcome.RETRY), None)


def _destroy(state: int) -> None:
    with _sinks_lock:
        _sinks.pop(state, None)


_DELIVER = _native.SINK_FN(_deliver)
_DESTROY = _native.SINK_DESTRUCTOR_FN(_destroy)


@dataclass(frozen=True)
class Metrics:
    """Router-wide counters (see edgeroute_metrics_t)."""

    received: int
    orphaned: int
    rejected_full: int
    rejected_invalid: int
    route_updates: int
    enqueued: int
    delivered: int
    retried: int
    expired: int
    rejected: int
    dropped: int
    queue_depth: int
    endpoints: int
    routes: int


@dataclass(frozen=True)
class EndpointMetrics:
    """One endpoint's counters (see edgeroute_endpoint_metrics_t)."""

    enqueued: int
    delivered: int
    retried: int
    expired: int
    rejected: int
    dropped: int
    queue_depth: int
    oldest_message_age_us: int
    latency_p50_us: int
    latency_p99_us: int
    has_sink: bool
    dead: bool


def _from_struct(cls, struct):
    values = {}
    for f in fields(cls):
        v = getattr(struct, f.name)
        values[f.name] = bool(v) if f.type in ("bool", bool) else int(v)
    return cls(**values)


Manifest = Union[Text, Mapping[str, Any]]


class Router:
    """A live router built from a deployment manifest (or its $edgeHub
    section), as JSON text or a dict.

    Options: store_directory (store-and-forward; None = in memory),
    durability, store_max_bytes, device_id (module endpoint ids
    "{device_id}/{module}/{input}", default "DEV"), dispatch_threads,
    admission_timeout (seconds), max_batch_size, retry_backoff ((initial,
    max) seconds; default (1, 60)), drain_on_close.

    Use as a context manager (closes on exit). Every method is thread-safe.
    Raises RouteError when the manifest's routes do not compile.

        with Router(manifest) as router:
            router.set_sink("iothub", lambda batch: print(len(batch)))
            router.send(b'{"t": 21}', properties={"level": "critical"})
    """

    def __init__(self, manifest: Manifest, *,
                 store_directory: Optional[str] = None,
                 durability: Durability = Durability.PROCESS,
                 store_max_bytes: int = 0,
                 device_id: Optional[str] = None,
                 dispatch_threads: Optional[int] = None,
                 admission_timeout: Optional[float] = None,
                 max_batch_size: Optional[int] = None,
                 retry_backoff: Optional[tuple] = None,
                 drain_on_close: bool = True) -> None:
        self._handle: Optional[int] = None
        self._sink_ids: Dict[str, int] = {}
        self._prototypes: Dict[Any, NativeMessage] = {}
        #: Exceptions raised by sink callables (the last 100).
        self.sink_errors: List[BaseException] = []
        options = lib.edgeroute_options_create()
        if not options:
            raise MemoryError("edgeroute_options_create")
        try:
            if store_directory is not None:
                d = to_bytes(store_directory)
                lib.edgeroute_options_set_store_directory(options, d, len(d))
            lib.edgeroute_options_set_durability(options, int(durability))
            lib.edgeroute_options_set_store_max_bytes(options,
                                                      store_max_bytes)
            if device_id is not None:
                d = to_bytes(device_id)
                lib.edgeroute_options_set_device_id(options, d, len(d))
            if dispatch_threads is not None:
                lib.edgeroute_options_set_dispatch_threads(options,
                                                           dispatch_threads)
            if admission_timeout is not None:
                lib.edgeroute_options_set_admission_timeout_us(
                    options, int(admission_timeout * 1e6))
            if max_batch_size is not None:
                lib.edgeroute_options_set_max_batch_size(options,
                                                         max_batch_size)
            if retry_backoff is not None:
                initial, maximum = retry_backoff
                lib.edgeroute_options_set_retry_backoff_us(
                    options, int(initial * 1e6), int(maximum * 1e6))
            lib.edgeroute_options_set_drain_on_close(options,
                                                     1 if drain_on_close
                                                     else 0)
            data = manifest_bytes(manifest)
            out = c_void_p()

            def create(diags, err):
                return lib.edgeroute_router_create(options, data, len(data),
                                                   diags, byref(out), err)

            #: Warnings from compiling the manifest.
            self.warnings: List[Diagnostic] = Diagnostics().call(create)
            self._handle = out.value
        finally:
            lib.edgeroute_options_destroy(options)

    # -- lifetime

    def __enter__(self) -> "Router":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stops accepting messages, delivers what is queued (when
        drain_on_close), and stops. Idempotent."""
        if self._handle is None:
            return
        err = c_char_p()
        check(lib.edgeroute_router_close(self._handle, byref(err)), err)

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            lib.edgeroute_router_destroy(handle)

    # -- configuration

    def update_routes(self, manifest: Manifest) -> List[Diagnostic]:
        """Replaces the routes atomically; raises RouteError (keeping the old
        routes) when the new ones do not compile. Returns the warnings."""
        data = manifest_bytes(manifest)

        def update(diags, err):
            return lib.edgeroute_router_update_routes(self._handle, data,
                                                      len(data), diags, err)

        return Diagnostics().call(update)

    def set_sink(self, endpoint_id: str, sink: Optional[Sink]) -> None:
        """Registers `sink(batch)` for an endpoint ("iothub" for $upstream,
        "{device}/{module}/{input}" for BrokeredEndpoint), or removes it
        with None. Sinks run on the router's threads."""
        eid = to_bytes(endpoint_id)
        err = c_char_p()
        if sink is None:
            check(lib.edgeroute_router_set_sink(
                self._handle, eid, len(eid), None, _native.SINK_DESTRUCTOR_FN(),
                _native.SINK_FN(), byref(err)), err)
            return
        state = next(_sink_ids)
        with _sinks_lock:
            _sinks[state] = _SinkRecord(sink, self.sink_errors)
        rc = lib.edgeroute_router_set_sink(self._handle, eid, len(eid), state,
                                           _DESTROY, _DELIVER, byref(err))
        if rc != _native.OK:
            _destroy(state)
            check(rc, err)

    # -- sending

    def send(self, message: Union[Message, Text] = b"", *,
             properties: Optional[Properties] = None,
             system_properties: Optional[Properties] = None,
             source: Optional[str] = None) -> None:
        """Routes one message: a Message, or a body (bytes/str) with the
        given properties. Raises ResourceExhausted when the router stays
        full for the admission timeout."""
        if isinstance(message, Message):
            body = message.body
            properties = message.properties
            system_properties = message.system_properties
            source = message.source
        else:
            body = to_bytes(message)
        err = c_char_p()
        proto = self._prototype(properties, system_properties, source)
        if proto is not None:
            # One foreign call: the body plus cached, already encoded
            # properties (edgeroute_router_send_bodies with one body).
            body_ptr = c_char_p(body)
            size = c_size_t(len(body))
            check(lib.edgeroute_router_send_bodies(
                self._handle, proto.handle, byref(body_ptr), byref(size), 1,
                None, byref(err)), err)
            return
        builder = thread_builder()
        builder.load(Message(body, properties, system_properties, source))
        check(lib.edgeroute_router_send(self._handle, builder.handle,
                                        byref(err)), err)

    def _prototype(self, properties: Optional[Properties],
                   system_properties: Optional[Properties],
                   source: Optional[str]) -> Optional[NativeMessage]:
        """A finished native message carrying these properties, cached (up
        to 256 distinct sets), or None when they cannot be cached."""
        try:
            key = (tuple(properties.items()) if properties else (),
                   tuple(system_properties.items()) if system_properties
                   else (), source)
            proto = self._prototypes.get(key)
        except TypeError:  # unhashable values: not cached
            return None
        if proto is None:
            proto = NativeMessage()
            proto.load(Message(b"", properties, system_properties, source),
                       with_body=False)
            # Finish it now: afterwards it is only read, from any thread.
            lib.edgeroute_message_view(proto.handle)
            if len(self._prototypes) >= 256:
                self._prototypes.clear()
            self._prototypes[key] = proto
        return proto

    def send_encoded(self, data: bytes) -> None:
        """Routes an encoded message (Message.encode(), Delivery.encoded)."""
        err = c_char_p()
        check(lib.edgeroute_router_send_encoded(self._handle, data,
                                                len(data), byref(err)), err)

    def send_batch(self, messages: Iterable[Union[Message, Text]], *,
                   properties: Optional[Properties] = None,
                   system_properties: Optional[Properties] = None,
                   source: Optional[str] = None) -> int:
        """Routes messages in order and returns how many were sent. Bodies
        (bytes/str) get the keyword properties and source; Message items
        carry their own. On an error, the exception's `accepted` attribute
        tells how many were accepted before it."""
        items = messages if isinstance(messages, list) else list(messages)
        proto: Optional[NativeMessage] = None
        if properties or system_properties or source is not None:
            proto = NativeMessage()
            proto.load(Message(b"", properties, system_properties, source),
                       with_body=False)
        sent = 0
        i, n = 0, len(items)
        try:
            while i < n:
                if isinstance(items[i], Message):
                    self.send(items[i])
                    sent += 1
                    i += 1
                    continue
                j = i
                while j < n and not isinstance(items[j], Message):
                    j += 1
                bodies = [to_bytes(b) for b in items[i:j]]
                count = len(bodies)
                body_array = (c_char_p * count)(*bodies)
                len_array = (c_size_t * count)(*map(len, bodies))
                accepted = c_size_t()
                err = c_char_p()
                rc = lib.edgeroute_router_send_bodies(
                    self._handle, proto.handle if proto else None,
                    body_array, len_array, count, byref(accepted),
                    byref(err))
                sent += accepted.value
                check(rc, err)
                i = j
        except EdgerouteError as e:
            e.accepted = sent  # type: ignore[attr-defined]
            raise
        return sent

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Waits until everything sent is delivered to the registered sinks
        (DeadlineExceeded after `timeout` seconds)."""
        err = c_char_p()
        check(lib.edgeroute_router_wait_idle(self._handle,
                                             int(timeout * 1e6), byref(err)),
              err)

    # -- metrics

    def metrics(self) -> Metrics:
        m = _native.Metrics_()
        err = c_char_p()
        check(lib.edgeroute_router_get_metrics(self._handle, byref(m),
                                               byref(err)), err)
        return _from_struct(Metrics, m)

    def endpoint_metrics(self, endpoint_id: str) -> EndpointMetrics:
        eid = to_bytes(endpoint_id)
        m = _native.EndpointMetrics_()
        err = c_char_p()
        check(lib.edgeroute_router_endpoint_metrics(
            self._handle, eid, len(eid), byref(m), byref(err)), err)
        return _from_struct(EndpointMetrics, m)

    def prometheus_text(self) -> str:
        """The metrics in Prometheus text exposition format."""
        text = c_void_p()
        n = c_size_t()
        err = c_char_p()
        check(lib.edgeroute_router_prometheus_text(self._handle, byref(text),
                                                   byref(n), byref(err)), err)
        try:
            return ctypes.string_at(text, n.value).decode("utf-8", "replace")
        finally:
            lib.edgeroute_free(text)
