"""edgeroute: the IoT Edge hub route language and store-and-forward router,
from Python (ctypes over libedgeroute.so; no compiler needed).

    import edgeroute
    with edgeroute.Router(manifest) as router:
        router.set_sink("iothub", lambda batch: print(len(batch), "messages"))
        router.send(b'{"temperature": 31}', properties={"alert": "true"})

The library is found through $EDGEROUTE_LIBRARY, next to this package, in
the repository's bazel-bin, or as the installed libedgeroute.so.0 (the
dynamic loader's search path).
"""

from edgeroute.core import (Condition, Diagnostic, Message, check_manifest,
                            check_route, version)
from edgeroute.errors import (Aborted, AlreadyExists, Cancelled, DataLoss,
                              DeadlineExceeded, EdgerouteError,
                              FailedPrecondition, Internal, InvalidArgument,
                              NotFound, OutOfRange, PermissionDenied,
                              ResourceExhausted, RouteError, Unauthenticated,
                              Unavailable, Unimplemented, Unknown)
from edgeroute.router import (Batch, Delivery, Durability, EndpointMetrics,
                              Metrics, Outcome, Router)

__all__ = [
    "Aborted", "AlreadyExists", "Batch", "Cancelled", "Condition", "DataLoss",
    "DeadlineExceeded", "Delivery", "Diagnostic", "Durability",
    "EdgerouteError", "EndpointMetrics", "FailedPrecondition", "Internal",
    "InvalidArgument", "Message", "Metrics", "NotFound", "OutOfRange",
    "Outcome", "PermissionDenied", "ResourceExhausted", "RouteError",
    "Router", "Unauthenticated", "Unavailable", "Unimplemented", "Unknown",
    "check_manifest", "check_route", "version",
]
