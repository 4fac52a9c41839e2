"""Messages, conditions and route checks over the C ABI."""

from __future__ import annotations

import ctypes
import json
import threading
from ctypes import byref, c_char_p, c_int, c_size_t, c_void_p
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from edgeroute import _native
from edgeroute._native import lib
from edgeroute.diagnostic import Diagnostic
from edgeroute.errors import RouteError, error_for

Text = Union[str, bytes]
Properties = Mapping[str, Optional[str]]


def to_bytes(value: Text) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError("expected str or bytes, got %s" % type(value).__name__)


def to_text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def manifest_bytes(manifest: Union[Text, Mapping[str, Any]]) -> bytes:
    """A manifest given as JSON text, bytes, or a dict."""
    if isinstance(manifest, Mapping):
        return json.dumps(manifest).encode("utf-8")
    return to_bytes(manifest)


def check(rc: int, err: c_char_p) -> None:
    """Raises the exception for a failed call and frees its message."""
    if rc == _native.OK:
        return
    message = err.value.decode("utf-8", "replace") if err.value else ""
    lib.edgeroute_free(ctypes.cast(err, c_void_p))
    raise error_for(rc, message)


def version() -> str:
    """The library's version, "MAJOR.MINOR.PATCH"."""
    return lib.edgeroute_version().decode()


# ---------------------------------------------------------------- diagnostics

class Diagnostics:
    """Owns an edgeroute_diagnostics_t (internal)."""

    def __init__(self) -> None:
        self.handle = lib.edgeroute_diagnostics_create()
        if not self.handle:
            raise MemoryError("edgeroute_diagnostics_create")

    def __del__(self) -> None:
        handle, self.handle = getattr(self, "handle", None), None
        if handle:
            lib.edgeroute_diagnostics_destroy(handle)

    def to_list(self) -> List[Diagnostic]:
        out = []
        d = _native.Diagnostic_()
        err = c_char_p()
        for i in range(lib.edgeroute_diagnostics_count(self.handle)):
            check(lib.edgeroute_diagnostics_get(self.handle, i, byref(d),
                                                byref(err)), err)
            out.append(Diagnostic(
                severity="error" if d.severity == _native.SEVERITY_ERROR
                else "warning",
                message=to_text(d.message or b""),
                route_name=to_text(d.route_name or b""),
                line=d.line, column=d.column, end_column=d.end_column,
                excerpt=to_text(d.excerpt or b""),
                suggestion=to_text(d.suggestion or b"")))
        return out

    def call(self, fn, *args) -> List[Diagnostic]:
        """Calls a compiling function (diagnostics, errptr last two args);
        raises RouteError when it reports errors, else returns the
        warnings."""
        err = c_char_p()
        rc = fn(*args, self.handle, byref(err))
        found = self.to_list()
        if rc != _native.OK:
            if any(d.is_error for d in found):
                message = err.value.decode("utf-8", "replace") if err.value \
                    else ""
                lib.edgeroute_free(ctypes.cast(err, c_void_p))
                raise RouteError(message, found)
            check(rc, err)
        return found


def check_route(route: Text) -> List[Diagnostic]:
    """Compiles one route ("FROM ... WHERE ... INTO ..."). Returns its
    warnings; raises RouteError (with line/column) when it does not
    compile."""
    data = to_bytes(route)
    return Diagnostics().call(lib.edgeroute_check_route, data, len(data))


def check_manifest(manifest: Union[Text, Mapping[str, Any]]) -> \
        List[Diagnostic]:
    """Checks a deployment manifest or its $edgeHub section (JSON text or a
    dict) as a router would load it. Returns the warnings; raises RouteError
    listing every error."""
    data = manifest_bytes(manifest)
    return Diagnostics().call(lib.edgeroute_check_manifest, data, len(data))


# ------------------------------------------------------------------- messages


class Message:
    """A message: body bytes, application properties, system properties and
    an optional source (derived from the system properties when None).

    A property value of None is a null-valued property (it differs from a
    missing one in route conditions)."""

    __slots__ = ("body", "properties", "system_properties", "source")

    def __init__(self, body: Text = b"",
                 properties: Optional[Properties] = None,
                 system_properties: Optional[Properties] = None,
                 source: Optional[str] = None) -> None:
        self.body: bytes = to_bytes(body)
        self.properties: Dict[str, Optional[str]] = dict(properties or {})
        self.system_properties: Dict[str, Optional[str]] = dict(
            system_properties or {})
        self.source = source

    def __repr__(self) -> str:
        return ("Message(body=%r, properties=%r, system_properties=%r, "
                "source=%r)" % (self.body, self.properties,
                                self.system_properties, self.source))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Message) and self.body == other.body
                and self.properties == other.properties
                and self.system_properties == other.system_properties
                and self.source == other.source)

    def encode(self) -> bytes:
        """The message's canonical encoding (as stored and delivered)."""
        builder = thread_builder()
        builder.load(self)
        return builder.encoded()

    @classmethod
    def decode(cls, data: bytes) -> "Message":
        """Reads an encoded message (raises InvalidArgument if it is not
        one). The source is filled in."""
        builder = thread_builder()
        builder.load_encoded(to_bytes(data))
        return builder.view_message()


def _read_properties(view: int, count_fn, get_fn) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    key, klen = c_void_p(), c_size_t()
    value, vlen = c_void_p(), c_size_t()
    for i in range(count_fn(view)):
        state = get_fn(view, i, byref(key), byref(klen), byref(value),
                       byref(vlen))
        k = to_text(_native.string_at(key.value, klen.value))
        if k in out:
            continue  # the first property with a key wins, as in lookups
        out[k] = (to_text(_native.string_at(value.value, vlen.value))
                  if state == _native.PROPERTY_STRING else None)
    return out


def view_body(view: int) -> bytes:
    n = c_size_t()
    ptr = lib.edgeroute_view_body(view, byref(n))
    return _native.string_at(ptr, n.value)


def view_message(view: int) -> Message:
    """A Python copy of the message behind an edgeroute_view_t."""
    n = c_size_t()
    src = lib.edgeroute_view_source(view, byref(n))
    message = Message(view_body(view))
    message.source = to_text(_native.string_at(src, n.value))
    message.properties = _read_properties(
        view, lib.edgeroute_view_property_count, lib.edgeroute_view_property)
    message.system_properties = _read_properties(
        view, lib.edgeroute_view_system_property_count,
        lib.edgeroute_view_system_property)
    return message


class NativeMessage:
    """Owns an edgeroute_message_t, reused across messages (internal)."""

    def __init__(self) -> None:
        self.handle = lib.edgeroute_message_create()
        if not self.handle:
            raise MemoryError("edgeroute_message_create")

    def __del__(self) -> None:
        handle, self.handle = getattr(self, "handle", None), None
        if handle:
            lib.edgeroute_message_destroy(handle)

    def load(self, message: Message, with_body: bool = True) -> None:
        h = self.handle
        lib.edgeroute_message_clear(h)
        err = c_char_p()
        if with_body and message.body:
            body = message.body
            check(lib.edgeroute_message_set_body(h, body, len(body),
                                                 byref(err)), err)
        for k, v in message.properties.items():
            kb = to_bytes(k)
            vb = None if v is None else to_bytes(v)
            check(lib.edgeroute_message_add_property(
                h, kb, len(kb), vb, 0 if vb is None else len(vb),
                byref(err)), err)
        for k, v in message.system_properties.items():
            kb = to_bytes(k)
            vb = None if v is None else to_bytes(v)
            check(lib.edgeroute_message_add_system_property(
                h, kb, len(kb), vb, 0 if vb is None else len(vb),
                byref(err)), err)
        if message.source is not None:
            sb = to_bytes(message.source)
            check(lib.edgeroute_message_set_source(h, sb, len(sb),
                                                   byref(err)), err)

    def load_encoded(self, data: bytes) -> None:
        err = c_char_p()
        check(lib.edgeroute_message_set_encoded(self.handle, data, len(data),
                                                byref(err)), err)

    def encoded(self) -> bytes:
        ptr = ctypes.POINTER(ctypes.c_char)()
        n = c_size_t()
        err = c_char_p()
        check(lib.edgeroute_message_encoded(self.handle, byref(ptr), byref(n),
                                            byref(err)), err)
        return ctypes.string_at(ptr, n.value)

    def view_message(self) -> Message:
        return view_message(lib.edgeroute_message_view(self.handle))


_local = threading.local()


def thread_builder() -> NativeMessage:
    """This thread's reusable native message."""
    builder = getattr(_local, "builder", None)
    if builder is None:
        builder = _local.builder = NativeMessage()
    return builder


# ----------------------------------------------------------------- conditions


class Condition:
    """A compiled route condition (the WHERE clause), e.g.
    Condition("level = 'critical' AND $contentType = 'application/json'").

    Raises RouteError when it does not compile; `warnings` lists what it
    compiled with. Thread-safe."""

    def __init__(self, text: Text) -> None:
        data = to_bytes(text)
        self.text = to_text(data)
        self._handle = None
        out = c_void_p()

        def compile_(diags, err):
            return lib.edgeroute_condition_compile(data, len(data), diags,
                                                   byref(out), err)

        self.warnings: List[Diagnostic] = Diagnostics().call(compile_)
        self._handle = out.value

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            lib.edgeroute_condition_destroy(handle)

    def __repr__(self) -> str:
        return "Condition(%r)" % self.text

    def evaluate(self, message: Message) -> Optional[bool]:
        """True, False, or None for undefined. Routes deliver on True."""
        builder = thread_builder()
        builder.load(message)
        result = c_int()
        err = c_char_p()
        check(lib.edgeroute_condition_evaluate(self._handle, builder.handle,
                                               byref(result), byref(err)),
              err)
        return _TRI[result.value]


_TRI: Tuple[Optional[bool], ...] = (False, True, None)
