"""The Azure IoT Node.js device SDK (npm azure-iot-device and
azure-iot-device-mqtt, MQTT transport) against a real `edgeroute run`:
module and device code written for Azure IoT Edge, run unchanged.

Needs Node.js and the packages of tests/mqtt/node (`npm ci` there; the
project's scripts/test.sh does it and passes EDGEROUTE_NODE_MODULES). Without
them every test fails, unless EDGEROUTE_SDK_TESTS=skip says to skip (see
README.md).
"""

import json
import os
import shutil
import subprocess
import time
import unittest

import harness
from harness import LineReader, fail
from paho_client import Paho

ROUTES = {
    "sensorToFilter":
        'FROM /messages/modules/sensor/outputs/temperature '
        'INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
    "leafToFilter":
        'FROM /messages/* WHERE NOT is_defined($connectionModuleId) '
        'INTO BrokeredEndpoint("/modules/filter/inputs/fromLeaf")',
}

FILTER_DESIRED = {"threshold": 30, "unit": "C", "limits": {"low": -10}}

NODE_TIMEOUT_MS = 40000


def node_modules_dir():
    """Where `npm ci` put the SDK: $EDGEROUTE_NODE_MODULES, or node_modules
    beside the script in the source tree."""
    configured = os.environ.get("EDGEROUTE_NODE_MODULES")
    if configured:
        return configured
    script = os.path.realpath(harness.runfile("tests/mqtt/node/sdk_client.js"))
    return os.path.join(os.path.dirname(script), "node_modules")


def check_prerequisites():
    node = shutil.which("node")
    if node is None:
        return None, "Node.js (node) is not installed"
    modules = node_modules_dir()
    for package in ("azure-iot-device", "azure-iot-device-mqtt"):
        if not os.path.isdir(os.path.join(modules, package)):
            return None, ("npm package %s is not installed in %s; run `npm ci` "
                          "in tests/mqtt/node (scripts/test.sh does)" %
                          (package, modules))
    return node, None


class SdkTestCase(harness.GatewayTestCase):
    """Runs sdk_client.js roles; fails when Node.js or the SDK is missing."""

    @classmethod
    def setUpClass(cls):
        cls.node, problem = check_prerequisites()
        if problem:
            if os.environ.get("EDGEROUTE_SDK_TESTS") == "skip":
                raise unittest.SkipTest(problem + " (EDGEROUTE_SDK_TESTS=skip)")
            raise AssertionError(
                problem + ". These tests are required; to skip them on a "
                "machine without npm set EDGEROUTE_SDK_TESTS=skip.")
        cls.script = harness.runfile("tests/mqtt/node/sdk_client.js")
        cls.env = dict(os.environ, NODE_PATH=node_modules_dir())

    def setUp(self):
        super().setUp()
        self.sensor = harness.module("sensor")
        self.filter = harness.module("filter")
        self.leaf = harness.device("leaf-1")
        self.x509_cert = self.pki.client("leaf-x509", "leaf-x509")
        self.x509_leaf = harness.device("leaf-x509",
                                        thumbprint_hex=self.x509_cert[2])
        self.identities = [self.sensor, self.filter, self.leaf, self.x509_leaf]

    def start(self, **kwargs):
        kwargs.setdefault("desired", {"filter": FILTER_DESIRED})
        return self.start_gateway(self.identities, ROUTES, **kwargs)

    # -- driving sdk_client.js ---------------------------------------------

    def node_process(self, role, stdin=False, **config):
        config.setdefault("ca", self.pki.ca_cert)
        config.setdefault("timeoutMs", NODE_TIMEOUT_MS)
        config["role"] = role
        p = self.spawn([self.node, self.script, json.dumps(config)],
                       env=self.env, cwd=self.dir,
                       stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        return p, LineReader(p)

    def node_run(self, role, **config):
        """Runs a role to its end; returns (exit code, events, stderr)."""
        _, reader = self.node_process(role, **config)
        rc, lines, err = reader.finish(NODE_TIMEOUT_MS / 1000 + 20,
                                       "node " + role)
        return rc, events(lines), err

    def expect_success(self, role, **config):
        rc, evs, err = self.node_run(role, **config)
        if rc != 0:
            fail("node %s exited %d:\n%s\n%s" % (role, rc,
                                                 "\n".join(map(str, evs)), err))
        return evs

    def cs(self, gw, identity, key=None):
        return identity.connection_string("%s:%d" % (gw.host, gw.port), key)




class SdkTest(SdkTestCase):
    """Module and device code on the SDK, against `edgeroute run`."""

    def test_harness_sas_token_is_the_sdks(self):
        # The tokens every other test computes must be exactly the SDK's.
        for identity in (self.sensor, self.leaf):
            (event,) = [e for e in self.expect_success(
                "sas", cs=identity.connection_string("localhost"))
                if e["event"] == "sas"]
            token = event["token"]
            expiry = int(token.rsplit("se=", 1)[1].split("&")[0])
            self.assertEqual(token, identity.password(expiry=expiry))

    def test_module_output_events_reach_module_input(self):
        gw = self.start(store=True)
        receiver, reader = self.node_process(
            "module-receive", cs=self.cs(gw, self.filter), count=5)
        reader.wait_for(lambda l: '"listening"' in l, NODE_TIMEOUT_MS / 1000,
                        "the filter module to listen")
        sent = self.expect_success(
            "module-send", cs=self.cs(gw, self.sensor), count=5,
            output="temperature",
            message={"body": '{"machine": {"temperature": {n}}}',
                     "messageId": "reading-{n}",
                     "correlationId": "batch-7",
                     "contentType": "application/json",
                     "contentEncoding": "utf-8",
                     "properties": {"alert": "n={n} & more",
                                    "site": "Zürich"}})
        self.assertEqual([e["n"] for e in sent if e["event"] == "sent"],
                         list(range(5)))
        rc, lines, err = reader.finish(
            NODE_TIMEOUT_MS / 1000 + 10, "the filter module to receive 5 messages")
        evs = events(lines)
        self.assertEqual(rc, 0, evs)
        messages = [e for e in evs if e["event"] == "message"]
        self.assertEqual(len(messages), 5, evs)
        self.assertEqual(sum(e["event"] == "completed" for e in evs), 5)
        for n, m in enumerate(messages):
            self.assertEqual(m["input"], "input1")
            self.assertEqual(m["data"], '{"machine": {"temperature": %d}}' % n)
            self.assertEqual(m["messageId"], "reading-%d" % n)
            self.assertEqual(m["correlationId"], "batch-7")
            self.assertEqual(m["contentType"], "application/json")
            self.assertEqual(m["contentEncoding"], "utf-8")
            self.assertEqual(m["properties"]["alert"], "n=%d & more" % n)
            self.assertEqual(m["properties"]["site"], "Zürich")
            # The sender's identity, as the gateway stamped it.
            self.assertEqual(m["properties"]["$.cdid"], "edge-gw")
            self.assertEqual(m["properties"]["$.cmid"], "sensor")
        # Completed means done: the module's next session gets nothing again.
        rc, evs, _ = self.node_run("module-receive", cs=self.cs(gw, self.filter),
                                   count=1, timeoutMs=3000)
        self.assertEqual(rc, 3, evs)
        self.assertFalse([e for e in evs if e["event"] == "message"], evs)

    def test_leaf_device_sends_events(self):
        gw = self.start(store=False)
        receiver, reader = self.node_process(
            "module-receive", cs=self.cs(gw, self.filter), count=3)
        reader.wait_for(lambda l: '"listening"' in l, NODE_TIMEOUT_MS / 1000,
                        "the filter module to listen")
        self.expect_success(
            "device-send", cs=self.cs(gw, self.leaf), count=3,
            message={"body": "leaf {n}", "properties": {"n": "{n}"}})
        rc, lines, err = reader.finish(
            NODE_TIMEOUT_MS / 1000 + 10, "the filter module to receive 3 messages")
        evs = events(lines)
        self.assertEqual(rc, 0, evs)
        messages = [e for e in evs if e["event"] == "message"]
        self.assertEqual([m["data"] for m in messages],
                         ["leaf 0", "leaf 1", "leaf 2"])
        for n, m in enumerate(messages):
            self.assertEqual(m["input"], "fromLeaf")
            self.assertEqual(m["properties"]["n"], str(n))
            self.assertEqual(m["properties"]["$.cdid"], "leaf-1")
            self.assertNotIn("$.cmid", m["properties"])

    def test_wrong_key_is_refused(self):
        gw = self.start(store=False)
        for identity, device in ((self.filter, False), (self.leaf, True)):
            rc, evs, err = self.node_run(
                "open", cs=self.cs(gw, identity, key=harness.random_key()),
                device=device)
            self.assertEqual(rc, 0, err)
            refusals = [e for e in evs if e["event"] == "open-error"]
            self.assertEqual(len(refusals), 1, evs)
            self.assertEqual(refusals[0]["name"], "UnauthorizedError")
            self.assertIn("Not authorized", refusals[0]["message"])
            self.assertNotIn("opened", [e["event"] for e in evs])
        # The right key opens.
        evs = self.expect_success("open", cs=self.cs(gw, self.filter))
        self.assertIn("opened", [e["event"] for e in evs])

    def test_x509_thumbprint_leaf_device(self):
        gw = self.start(store=False)
        receiver, reader = self.node_process(
            "module-receive", cs=self.cs(gw, self.filter), count=1)
        reader.wait_for(lambda l: '"listening"' in l, NODE_TIMEOUT_MS / 1000,
                        "the filter module to listen")
        cert, key, _ = self.x509_cert
        evs = self.expect_success(
            "x509", hub=harness.HUB, deviceId="leaf-x509",
            gatewayHostName="%s:%d" % (gw.host, gw.port), cert=cert, key=key,
            count=1, message={"body": "signed {n}"})
        self.assertIn("sent", [e["event"] for e in evs], evs)
        rc, lines, err = reader.finish(
            NODE_TIMEOUT_MS / 1000 + 10, "the filter module to receive")
        evs = events(lines)
        (m,) = [e for e in evs if e["event"] == "message"]
        self.assertEqual(m["data"], "signed 0")
        self.assertEqual(m["properties"]["$.cdid"], "leaf-x509")
        # Another certificate from the same CA with the same CN: refused.
        other_cert, other_key, _ = self.pki.client("impostor", "leaf-x509")
        rc, evs, err = self.node_run(
            "x509", hub=harness.HUB, deviceId="leaf-x509",
            gatewayHostName="%s:%d" % (gw.host, gw.port), cert=other_cert,
            key=other_key, count=1, message={"body": "x"})
        self.assertIn("open-error", [e["event"] for e in evs], (evs, err))

    def test_module_twin(self):
        gw = self.start(store=True)
        twin, reader = self.node_process("twin", stdin=True,
                                         cs=self.cs(gw, self.filter))
        timeout = NODE_TIMEOUT_MS / 1000

        def next_event(kind):
            return json.loads(reader.next(lambda l: event_of(l) == kind,
                                          timeout, "twin event " + kind))

        def command(text):
            twin.stdin.write(text + "\n")
            twin.stdin.flush()

        first = next_event("twin")["properties"]
        desired = first["desired"]
        self.assertEqual(desired["threshold"], 30)
        self.assertEqual(desired["unit"], "C")
        self.assertEqual(desired["limits"], {"low": -10})
        self.assertIsInstance(desired["$version"], int)
        self.assertIsInstance(first["reported"]["$version"], int)

        command('report {"firmware": "1.2.3", "status": {"ok": true}}')
        next_event("reported")
        command("get")
        second = next_event("twin")["properties"]
        self.assertEqual(second["reported"]["firmware"], "1.2.3")
        self.assertEqual(second["reported"]["status"], {"ok": True})
        self.assertGreater(second["reported"]["$version"],
                           first["reported"]["$version"])
        command('report {"status": null}')
        next_event("reported")

        command("watch")
        next_event("watching")
        # A new deployment: threshold changed, unit removed. The gateway
        # reloads the manifest file by itself.
        gw.write_manifest(desired={"filter": {"threshold": 35,
                                              "limits": {"low": -10}}})
        deadline = time.monotonic() + timeout
        while True:
            patch = next_event("desired")["patch"]
            if patch.get("threshold") == 35:
                break
            if time.monotonic() > deadline:
                fail("no desired patch with threshold 35")
        self.assertIn("unit", patch)
        self.assertIsNone(patch["unit"])
        self.assertGreater(patch["$version"], desired["$version"])
        command("get")
        third = next_event("twin")["properties"]
        self.assertEqual(third["desired"]["threshold"], 35)
        self.assertNotIn("unit", third["desired"])
        self.assertNotIn("status", third["reported"])
        command("exit")
        rc, _, err = reader.finish(timeout, "the twin module to exit")
        self.assertEqual(rc, 0, err)

        # Reported properties are durable: they survive a SIGKILL.
        gw.kill()
        gw.start()
        (event,) = [e for e in self.node_run_twin_once(gw)
                    if e["event"] == "twin"]
        self.assertEqual(event["properties"]["reported"]["firmware"], "1.2.3")
        self.assertEqual(event["properties"]["desired"]["threshold"], 35)

    def node_run_twin_once(self, gw):
        p, reader = self.node_process("twin", stdin=True,
                                      cs=self.cs(gw, self.filter))
        reader.wait_for(lambda l: '"twin"' in l, NODE_TIMEOUT_MS / 1000,
                        "the twin after the restart")
        p.stdin.write("exit\n")
        p.stdin.flush()
        rc, lines, err = reader.finish(NODE_TIMEOUT_MS / 1000, "node to exit")
        self.assertEqual(rc, 0, err)
        return events(lines)

    def test_leaf_device_twin_is_empty_desired(self):
        gw = self.start(store=False)
        evs = self.node_run_device_twin(gw)
        (event,) = [e for e in evs if e["event"] == "twin"]
        desired = dict(event["properties"]["desired"])
        desired.pop("$version", None)
        self.assertEqual(desired, {})

    def node_run_device_twin(self, gw):
        p, reader = self.node_process("twin", stdin=True, device=True,
                                      cs=self.cs(gw, self.leaf))
        reader.wait_for(lambda l: '"twin"' in l, NODE_TIMEOUT_MS / 1000,
                        "the leaf device's twin")
        p.stdin.write('report {"battery": 80}\n')
        p.stdin.flush()
        reader.wait_for(lambda l: '"reported"' in l, NODE_TIMEOUT_MS / 1000,
                        "the leaf device's reported patch")
        p.stdin.write("exit\n")
        p.stdin.flush()
        rc, lines, err = reader.finish(NODE_TIMEOUT_MS / 1000, "node to exit")
        self.assertEqual(rc, 0, err)
        return events(lines)


class SdkAgainstBrokerTest(SdkTestCase):
    """sdk_client.js itself, checked against the mosquitto broker with a
    paho client playing the hub, so that a failure of the tests above is the
    gateway's and not the script's."""

    def setUp(self):
        super().setUp()
        self.broker = harness.Mosquitto(os.path.join(self.dir, "broker"),
                                        self.pki)
        self.hub = Paho(self.broker.port, harness.module("hub"),
                        self.pki.ca_cert)
        self.hub.connect()

    def tearDown(self):
        self.hub.close()
        self.broker.stop()
        super().tearDown()

    def broker_cs(self, identity):
        return identity.connection_string("localhost:%d" % self.broker.port)

    def test_send_roles(self):
        self.hub.subscribe(["devices/edge-gw/modules/sensor/messages/events/#",
                            "devices/leaf-1/messages/events/#"])
        self.expect_success("module-send", cs=self.broker_cs(self.sensor),
                            count=1, output="temperature",
                            message={"body": "b{n}", "messageId": "m{n}",
                                     "properties": {"k": "v w"}})
        m = self.hub.receive()
        self.assertEqual(m.payload, b"b0")
        self.assertEqual(
            m.topic, "devices/edge-gw/modules/sensor/messages/events/"
            "%24.on=temperature&%24.mid=m0&k=v%20w/")
        self.expect_success("device-send", cs=self.broker_cs(self.leaf),
                            count=1, message={"body": "d{n}"})
        m = self.hub.receive()
        self.assertEqual((m.topic, m.payload),
                         ("devices/leaf-1/messages/events/", b"d0"))
        cert, key, _ = self.x509_cert
        self.hub.subscribe("devices/leaf-x509/messages/events/#")
        self.expect_success(
            "x509", hub=harness.HUB, deviceId="leaf-x509",
            gatewayHostName="localhost:%d" % self.broker.port, cert=cert,
            key=key, count=1, message={"body": "x{n}"})
        self.assertEqual(self.hub.receive().payload, b"x0")

    def test_receive_role(self):
        _, reader = self.node_process(
            "module-receive", cs=self.broker_cs(self.filter), count=2)
        reader.wait_for(lambda l: event_of(l) == "listening", 30, "listening")
        self.hub.publish("devices/edge-gw/modules/filter/inputs/input1/"
                         "%24.mid=x1&%24.cdid=edge-gw&k=a%26b", b"one")
        self.hub.publish("devices/edge-gw/modules/filter/inputs/other/", b"two")
        rc, lines, err = reader.finish(30, "module-receive")
        self.assertEqual(rc, 0, err)
        messages = [e for e in events(lines) if e["event"] == "message"]
        self.assertEqual([(m["input"], m["data"]) for m in messages],
                         [("input1", "one"), ("other", "two")])
        self.assertEqual(messages[0]["messageId"], "x1")
        self.assertEqual(messages[0]["properties"],
                         {"$.cdid": "edge-gw", "k": "a&b"})

    def test_twin_role(self):
        self.hub.subscribe(["$iothub/twin/GET/#", "$iothub/twin/PATCH/#"])
        replies = {"version": 1}

        def answer(message):
            rid = message.topic.split("$rid=")[1]
            if message.topic.startswith("$iothub/twin/GET/"):
                self.hub.publish("$iothub/twin/res/200/?$rid=" + rid, json.dumps(
                    {"desired": {"threshold": 30, "$version": 4},
                     "reported": {"$version": replies["version"]}}), qos=0)
            else:
                replies["version"] += 1
                self.hub.publish("$iothub/twin/res/204/?$rid=%s&$version=%d" %
                                 (rid, replies["version"]), b"", qos=0)

        p, reader = self.node_process("twin", stdin=True,
                                      cs=self.broker_cs(self.filter))
        answer(self.hub.receive())
        reader.wait_for(lambda l: event_of(l) == "twin", 30, "twin")
        p.stdin.write('report {"a": 1}\nwatch\n')
        p.stdin.flush()
        answer(self.hub.receive())
        reader.wait_for(lambda l: event_of(l) == "watching", 30, "watching")
        self.hub.publish("$iothub/twin/PATCH/properties/desired/?$version=5",
                         b'{"threshold": 31, "$version": 5}', qos=0)
        line = reader.wait_for(
            lambda l: event_of(l) == "desired" and
            json.loads(l)["patch"].get("threshold") == 31, 30, "the patch")
        self.assertEqual(json.loads(line)["patch"],
                         {"threshold": 31, "$version": 5})
        p.stdin.write("exit\n")
        p.stdin.flush()
        rc, lines, err = reader.finish(30, "twin")
        self.assertEqual(rc, 0, err)
        first = [e for e in events(lines) if e["event"] == "twin"][0]
        self.assertEqual(first["properties"]["desired"],
                         {"threshold": 30, "$version": 4})


def events(lines):
    """Parsed JSON-line events (anything else the script printed is kept as
    {"event": "text"} so that failures show it)."""
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"event": "text", "text": line})
    return out


def event_of(line):
    try:
        return json.loads(line).get("event")
    except (ValueError, AttributeError):
        return None


if __name__ == "__main__":
    harness.main()
