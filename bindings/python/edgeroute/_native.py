"""Loads libedgeroute.so and declares the C ABI (edgeroute.h) for ctypes.

Private: the rest of the package is the public API.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_int,
                    c_int64, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)
from typing import Optional

# The header version this package was written against.
_MAJOR = 0
_MINOR = 2

# Status codes (absl::StatusCode numbering).
OK = 0
SEVERITY_ERROR = 0
SEVERITY_WARNING = 1
PROPERTY_MISSING = 0
PROPERTY_NULL = 1
PROPERTY_STRING = 2


class SizedStructure(Structure):
    """A caller-allocated struct of edgeroute.h: its first member,
    struct_size, is set to the size ctypes gives it (see "Growing the ABI" in
    bindings/README.md), so the library fills only what this package knows.
    """

    def __init__(self) -> None:
        super().__init__()
        self.struct_size = ctypes.sizeof(self)


class Diagnostic_(SizedStructure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("severity", c_int),
        ("message", c_char_p),
        ("route_name", c_char_p),
        ("line", c_uint32),
        ("column", c_uint32),
        ("end_column", c_uint32),
        ("excerpt", c_char_p),
        ("suggestion", c_char_p),
    ]


class Metrics_(SizedStructure):
    _fields_ = [("struct_size", c_size_t)] + [(name, c_uint64) for name in (
        "received", "orphaned", "rejected_full", "rejected_invalid",
        "route_updates", "enqueued", "delivered", "retried", "expired",
        "rejected", "dropped", "queue_depth", "endpoints", "routes")]


class EndpointMetrics_(SizedStructure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("enqueued", c_uint64),
        ("delivered", c_uint64),
        ("retried", c_uint64),
        ("expired", c_uint64),
        ("rejected", c_uint64),
        ("dropped", c_uint64),
        ("queue_depth", c_uint64),
        ("oldest_message_age_us", c_int64),
        ("latency_p50_us", c_int64),
        ("latency_p99_us", c_int64),
        ("has_sink", c_uint8),
        ("dead", c_uint8),
    ]


SINK_FN = CFUNCTYPE(None, c_void_p, c_void_p)
SINK_DESTRUCTOR_FN = CFUNCTYPE(None, c_void_p)

_ERR = POINTER(c_char_p)
_P = c_void_p  # every opaque handle
_BYTES = c_char_p  # (const char*, size_t) inputs: bytes objects
_OUT_PTR = POINTER(POINTER(c_char))


# The soname of the library's ABI major version: how the dynamic loader finds
# an installed library (scripts/install.sh, the Debian package).
_SONAME = "libedgeroute.so.0"


def _candidates() -> list:
    paths = []
    env = os.environ.get("EDGEROUTE_LIBRARY")
    if env:
        paths.append(env)
    here = os.path.dirname(os.path.abspath(__file__))
    paths.append(os.path.join(here, "libedgeroute.so"))
    # bindings/python/edgeroute -> the repository root, then bazel-bin.
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    paths.append(os.path.join(root, "bazel-bin", "bindings", "c",
                              "libedgeroute.so"))
    return paths


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        if os.path.exists(path):
            return ctypes.CDLL(path)
        tried.append(path)
    # Installed: the loader's search path (ld.so.cache, LD_LIBRARY_PATH).
    try:
        return ctypes.CDLL(_SONAME)
    except OSError:
        tried.append(_SONAME + " (dynamic loader)")
    raise ImportError(
        "libedgeroute.so not found; install it (scripts/install.sh or the "
        "Debian package), build it with "
        "`bazel build //bindings/c:libedgeroute.so` or set EDGEROUTE_LIBRARY."
        " Tried: " + ", ".join(tried))


lib = _load()

_SIGNATURES = {
    "edgeroute_version": (c_char_p, []),
    "edgeroute_version_number": (c_int, []),
    "edgeroute_status_name": (c_char_p, [c_int]),
    "edgeroute_free": (None, [c_void_p]),
    "edgeroute_diagnostics_create": (_P, []),
    "edgeroute_diagnostics_destroy": (None, [_P]),
    "edgeroute_diagnostics_count": (c_size_t, [_P]),
    "edgeroute_diagnostics_error_count": (c_size_t, [_P]),
    "edgeroute_diagnostics_get": (
        c_int, [_P, c_size_t, POINTER(Diagnostic_), _ERR]),
    "edgeroute_check_route": (c_int, [_BYTES, c_size_t, _P, _ERR]),
    "edgeroute_check_manifest": (c_int, [_BYTES, c_size_t, _P, _ERR]),
    "edgeroute_message_create": (_P, []),
    "edgeroute_message_destroy": (None, [_P]),
    "edgeroute_message_clear": (None, [_P]),
    "edgeroute_message_set_body": (c_int, [_P, _BYTES, c_size_t, _ERR]),
    "edgeroute_message_add_property": (
        c_int, [_P, _BYTES, c_size_t, _BYTES, c_size_t, _ERR]),
    "edgeroute_message_add_system_property": (
        c_int, [_P, _BYTES, c_size_t, _BYTES, c_size_t, _ERR]),
    "edgeroute_message_set_source": (c_int, [_P, _BYTES, c_size_t, _ERR]),
    "edgeroute_message_set_encoded": (c_int, [_P, _BYTES, c_size_t, _ERR]),
    "edgeroute_message_encoded": (
        c_int, [_P, _OUT_PTR, POINTER(c_size_t), _ERR]),
    "edgeroute_message_view": (_P, [_P]),
    "edgeroute_view_body": (c_void_p, [_P, POINTER(c_size_t)]),
    "edgeroute_view_source": (c_void_p, [_P, POINTER(c_size_t)]),
    "edgeroute_view_encoded": (c_void_p, [_P, POINTER(c_size_t)]),
    "edgeroute_view_enqueue_time_us": (c_int64, [_P]),
    "edgeroute_view_sequence_number": (c_uint64, [_P]),
    "edgeroute_view_property_count": (c_size_t, [_P]),
    "edgeroute_view_system_property_count": (c_size_t, [_P]),
    "edgeroute_view_property": (
        c_int, [_P, c_size_t, POINTER(c_void_p), POINTER(c_size_t),
                POINTER(c_void_p), POINTER(c_size_t)]),
    "edgeroute_view_system_property": (
        c_int, [_P, c_size_t, POINTER(c_void_p), POINTER(c_size_t),
                POINTER(c_void_p), POINTER(c_size_t)]),
    "edgeroute_condition_compile": (
        c_int, [_BYTES, c_size_t, _P, POINTER(c_void_p), _ERR]),
    "edgeroute_condition_destroy": (None, [_P]),
    "edgeroute_condition_evaluate": (c_int, [_P, _P, POINTER(c_int), _ERR]),
    "edgeroute_condition_evaluate_view": (
        c_int, [_P, _P, POINTER(c_int), _ERR]),
    "edgeroute_options_create": (_P, []),
    "edgeroute_options_destroy": (None, [_P]),
    "edgeroute_options_set_store_directory": (None, [_P, _BYTES, c_size_t]),
    "edgeroute_options_set_durability": (None, [_P, c_int]),
    "edgeroute_options_set_store_max_bytes": (None, [_P, c_uint64]),
    "edgeroute_options_set_device_id": (None, [_P, _BYTES, c_size_t]),
    "edgeroute_options_set_dispatch_threads": (None, [_P, c_int]),
    "edgeroute_options_set_admission_timeout_us": (None, [_P, c_int64]),
    "edgeroute_options_set_max_batch_size": (None, [_P, c_size_t]),
    "edgeroute_options_set_drain_on_close": (None, [_P, c_uint8]),
    "edgeroute_options_set_retry_backoff_us": (None, [_P, c_int64, c_int64]),
    "edgeroute_router_create": (
        c_int, [_P, _BYTES, c_size_t, _P, POINTER(c_void_p), _ERR]),
    "edgeroute_router_update_routes": (
        c_int, [_P, _BYTES, c_size_t, _P, _ERR]),
    "edgeroute_router_destroy": (None, [_P]),
    "edgeroute_router_close": (c_int, [_P, _ERR]),
    "edgeroute_router_wait_idle": (c_int, [_P, c_int64, _ERR]),
    "edgeroute_router_send": (c_int, [_P, _P, _ERR]),
    "edgeroute_router_send_encoded": (c_int, [_P, _BYTES, c_size_t, _ERR]),
    "edgeroute_router_send_batch": (
        c_int, [_P, POINTER(c_void_p), c_size_t, POINTER(c_size_t), _ERR]),
    "edgeroute_router_send_bodies": (
        c_int, [_P, _P, POINTER(c_char_p), POINTER(c_size_t), c_size_t,
                POINTER(c_size_t), _ERR]),
    "edgeroute_router_set_sink": (
        c_int, [_P, _BYTES, c_size_t, c_void_p, SINK_DESTRUCTOR_FN, SINK_FN,
                _ERR]),
    "edgeroute_batch_count": (c_size_t, [_P]),
    "edgeroute_batch_endpoint": (c_char_p, [_P, POINTER(c_size_t)]),
    "edgeroute_batch_priority": (c_int64, [_P]),
    "edgeroute_batch_attempt": (c_int, [_P]),
    "edgeroute_batch_get": (_P, [_P, c_size_t]),
    "edgeroute_batch_ack": (c_int, [_P, c_size_t, c_int, _ERR]),
    "edgeroute_batch_ack_all": (c_int, [_P, c_int, _ERR]),
    "edgeroute_router_get_metrics": (c_int, [_P, POINTER(Metrics_), _ERR]),
    "edgeroute_router_endpoint_metrics": (
        c_int, [_P, _BYTES, c_size_t, POINTER(EndpointMetrics_), _ERR]),
    "edgeroute_router_prometheus_text": (
        c_int, [_P, POINTER(c_void_p), POINTER(c_size_t), _ERR]),
}

for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes


def compatible(number: int) -> bool:
    """Whether a library of version `number` (edgeroute_version_number)
    runs this package: the same major version and a minor version not
    below ours, or before 1.0 exactly our 0.MINOR (0.x minors may change
    the ABI)."""
    major, minor = number // 1000000, (number // 1000) % 1000
    if major != _MAJOR:
        return False
    return minor == _MINOR if _MAJOR == 0 else minor >= _MINOR


_number = lib.edgeroute_version_number()
if not compatible(_number):
    raise ImportError(
        "libedgeroute.so version %s is not compatible with this package "
        "(needs %d.%d%s)" %
        (lib.edgeroute_version().decode(), _MAJOR, _MINOR,
         "" if _MAJOR == 0 else " or a later %d.x" % _MAJOR))


def string_at(ptr: Optional[int], size: int) -> bytes:
    """Copies `size` bytes at `ptr` (b"" for size 0)."""
    if not size:
        return b""
    return ctypes.string_at(ptr, size)
