"""Property values that are not UTF-8, sent through the C ABI: the route
language reads each maximal ill-formed subsequence as U+FFFD (as edgeHub's
.NET strings do), every built-in works on that text, and the message itself
is delivered with its bytes unchanged. Run with an ASan build of the
library (see bindings/README.md) this is also the regression test for the
case-mapping heap overflow."""

import threading

import edgeroute


def _routes(**routes):
    return {"schemaVersion": "1.0", "routes": routes}


def _deliveries(manifest, messages):
    """Sends (body, properties) pairs; returns {endpoint: [(body, props)]}."""
    seen = {}
    lock = threading.Lock()

    def sink(batch):
        with lock:
            for d in batch:
                seen.setdefault(batch.endpoint, []).append(
                    (d.body, dict(d.properties)))

    with edgeroute.Router(manifest) as router:
        router.set_sink("iothub", sink)
        for body, props in messages:
            router.send(body, properties=props)
        router.wait_idle()
    return seen


def test_case_mapping_of_long_invalid_values_is_safe_and_defined():
    lone_leads = b"\xf2" * 3000
    manifest = _routes(
        exact="FROM /messages/* WHERE upper(p) = 'X' INTO $upstream",
        defined="FROM /messages/* WHERE length(upper(p)) = 3000 AND "
                "upper(p) = lower(p) AND p = upper(p) INTO $upstream")
    seen = _deliveries(manifest, [(b"{}", {"p": lone_leads})])
    got = seen.get("iothub", [])
    assert len(got) == 1  # only `defined` matched, and one copy is delivered
    body, props = got[0]
    assert body == b"{}"
    raw = props["p"]
    raw = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
    assert raw == lone_leads  # bytes kept as sent


def test_invalid_bytes_read_as_replacement_characters():
    manifest = _routes(
        r="FROM /messages/* WHERE p = concat('a', '\\uFFFD', 'b') INTO $upstream")
    seen = _deliveries(manifest, [
        (b"1", {"p": b"a\xffb"}),           # a byte that starts nothing
        (b"2", {"p": b"a\xf0\x9f\x98b"}),   # a truncated sequence: one U+FFFD
        (b"3", {"p": b"a\xc0\xafb"}),       # overlong '/': two U+FFFD
        (b"4", {"p": "a\ufffdb".encode()}),  # the character itself
    ])
    assert sorted(body for body, _ in seen.get("iothub", [])) == [b"1", b"2", b"4"]
