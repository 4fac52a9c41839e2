"""Messages, conditions, route and manifest checks, errors."""

import json

import pytest

import edgeroute
from edgeroute import Condition, Message


def test_version():
    major, minor, patch = (int(x) for x in edgeroute.version().split("."))
    assert (major, minor) >= (0, 1)


def test_check_route_ok_and_warning():
    assert edgeroute.check_route(
        "FROM /messages/* WHERE level = 'critical' INTO $upstream") == []
    warnings = edgeroute.check_route(
        "FROM /messages WHERE k!='x' INTO $upstream")
    assert len(warnings) >= 1
    assert warnings[0].severity == "warning"
    assert warnings[0].line == 1 and warnings[0].column == 22
    assert warnings[0].suggestion


def test_check_route_error_has_position():
    with pytest.raises(edgeroute.RouteError) as info:
        edgeroute.check_route("FROM /messages WHERE a = @ INTO $upstream")
    e = info.value
    assert isinstance(e, edgeroute.InvalidArgument)
    assert isinstance(e, edgeroute.EdgerouteError)
    assert e.code == 3
    assert (e.line, e.column) == (1, 26)
    assert "invalid symbol '@'" in str(e)
    assert any(d.is_error and "^" in d.excerpt for d in e.diagnostics)


def test_check_manifest(manifest):
    assert edgeroute.check_manifest(manifest) == []
    assert edgeroute.check_manifest(json.dumps(manifest)) == []
    bad = dict(manifest, routes={"broken": "FROM /messages INTO $nowhere"})
    with pytest.raises(edgeroute.RouteError) as info:
        edgeroute.check_manifest(bad)
    assert info.value.route_name == "broken"
    assert info.value.line >= 1
    with pytest.raises(edgeroute.RouteError):
        edgeroute.check_manifest("{not json")


def test_message_round_trip():
    m = Message(b"\x00body\xff", {"level": "critical", "none": None},
                {"connectionModuleId": "sensor", "outputName": "out1"})
    decoded = Message.decode(m.encode())
    assert decoded.body == b"\x00body\xff"
    assert decoded.properties == {"level": "critical", "none": None}
    assert decoded.system_properties == {"connectionModuleId": "sensor",
                                         "outputName": "out1"}
    assert decoded.source == "/messages/modules/sensor/outputs/out1"
    explicit = Message(b"", source="/messages/modules/x")
    assert Message.decode(explicit.encode()).source == "/messages/modules/x"
    assert Message("text").body == b"text"


def test_message_decode_rejects_garbage():
    with pytest.raises(edgeroute.InvalidArgument):
        Message.decode(b"definitely not a message")
    with pytest.raises(edgeroute.InvalidArgument):
        Message.decode(b"")
    with pytest.raises(TypeError):
        Message(12345)  # type: ignore[arg-type]


def test_condition_three_values():
    c = Condition("level = 'critical' AND $contentType = 'application/json'")
    sys_props = {"contentType": "application/json"}
    assert c.evaluate(Message(b"", {"level": "critical"}, sys_props)) is True
    assert c.evaluate(Message(b"", {"level": "info"}, sys_props)) is False
    assert c.evaluate(Message(b"", {}, sys_props)) is None
    # Case-insensitive property names, as in edgeHub.
    assert c.evaluate(Message(b"", {"LEVEL": "critical"}, sys_props)) is True


def test_condition_body_query():
    c = Condition("$body.temperature > 30")
    sys_props = {"contentType": "application/json",
                 "contentEncoding": "utf-8"}
    assert c.evaluate(Message(b'{"temperature": 31}', None, sys_props)) is True
    assert c.evaluate(Message(b'{"temperature": 3}', None, sys_props)) is False


def test_condition_errors():
    with pytest.raises(edgeroute.RouteError) as info:
        Condition("level = 3")
    assert "Invalid operands" in str(info.value)
    assert info.value.line == 1 and info.value.column >= 1
    with pytest.raises(edgeroute.RouteError):
        Condition("foo(1)")


def test_null_property_differs_from_missing():
    c = Condition("is_null(k)")
    assert c.evaluate(Message(b"", {"k": None})) is True
    assert c.evaluate(Message(b"", {"k": "v"})) is False
    d = Condition("is_defined(k)")
    assert d.evaluate(Message(b"", {"k": None})) is True
    assert d.evaluate(Message(b"", {})) is False


def test_error_mapping():
    from edgeroute.errors import error_for
    assert isinstance(error_for(8, "full"), edgeroute.ResourceExhausted)
    assert isinstance(error_for(9, "closed"), edgeroute.FailedPrecondition)
    assert isinstance(error_for(14, "x"), edgeroute.Unavailable)
    e = error_for(99, "odd")
    assert isinstance(e, edgeroute.Unknown) and e.code == 99


def test_empty_condition_is_a_route_error():
    # A condition is a WHERE clause, and a WHERE clause needs a condition.
    for empty in ("", "   ", "/* nothing */"):
        with pytest.raises(edgeroute.RouteError) as info:
            Condition(empty)
        assert "empty" in str(info.value)


def test_caller_allocated_structs_carry_their_size():
    import ctypes

    from edgeroute import _native
    for cls in (_native.Diagnostic_, _native.Metrics_,
                _native.EndpointMetrics_):
        s = cls()
        assert cls._fields_[0][0] == "struct_size"
        assert s.struct_size == ctypes.sizeof(cls)


def test_version_compatibility_rule():
    from edgeroute import _native
    number = lambda major, minor: major * 1000000 + minor * 1000
    assert _native.compatible(number(_native._MAJOR, _native._MINOR))
    # Before 1.0 another minor version may have another ABI.
    assert not _native.compatible(number(0, _native._MINOR + 1))
    assert not _native.compatible(number(0, _native._MINOR - 1))
    assert not _native.compatible(number(1, 0))


def test_modules_do_not_import_each_other_in_a_cycle():
    import ast
    import os

    package = os.path.dirname(edgeroute.__file__)
    graph = {}
    for name in os.listdir(package):
        if not name.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(package, name)).read())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "edgeroute":
                    deps.update(a.name for a in node.names)
                elif node.module.startswith("edgeroute."):
                    deps.add(node.module.split(".", 1)[1])
        graph[name[:-3]] = deps

    def reaches(start, target, seen):
        for dep in graph.get(start, ()):
            if dep == target:
                return True
            if dep not in seen:
                seen.add(dep)
                if reaches(dep, target, seen):
                    return True
        return False

    for module in graph:
        if module != "__init__":
            assert not reaches(module, module, set()), module
