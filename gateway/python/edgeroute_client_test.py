"""Tests the Python client against a real gateway process over loopback."""

import os
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgeroute_client as er  # noqa: E402

MANIFEST = """{
  "schemaVersion": "1.1",
  "routes": {
    "toFilter": "FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint(\\"/modules/filter/inputs/input1\\")",
    "up": "FROM /messages/modules/filter/outputs/* INTO $upstream"
  },
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}
}"""


def find_gateway_binary():
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(here, "..", "gateway_main")]
    srcdir = os.environ.get("TEST_SRCDIR")
    if srcdir:
        candidates.append(os.path.join(srcdir, "edgeroute", "gateway", "gateway_main"))
    for c in candidates:
        if os.path.exists(c):
            return c
    raise unittest.SkipTest("gateway_main binary not found (run with bazel test)")


class EncodingTest(unittest.TestCase):
    def test_message_round_trip(self):
        raw = er.encode_message(b"body", {"a": "1", "n": None}, {"contentType": "json"},
                                source="/messages", enqueue_time_us=5, sequence_number=7)
        m = er.Message(raw)
        self.assertEqual(m.body, b"body")
        self.assertEqual(m.properties, {"a": "1", "n": None})
        self.assertEqual(m.system_properties, {"contentType": "json"})
        self.assertEqual(m.source, "/messages")
        self.assertEqual(m.enqueue_time_us, 5)
        self.assertEqual(m.sequence_number, 7)

    def test_frames_are_padded(self):
        for n in range(10):
            frame = er.encode_telemetry("o" * n, er.encode_message(b"x" * n), n)
            self.assertEqual(len(frame) % 8, 0)

    def test_hello_carries_the_sas_token_only_when_given(self):
        for token in (None, "SharedAccessSignature sr=a&sig=b&se=1"):
            frame = er.encode_hello("dev", "mod", sas_token=token)
            root = er._root(frame[4:], b"ERG1")
            self.assertEqual(root.scalar(0, "<B"), er.HELLO)
            hello = root.table(1)
            self.assertEqual(hello.string(1), "dev")
            self.assertEqual(hello.string(2), "mod")
            self.assertEqual(hello.string(3), token)

    def test_sas_token_matches_the_azure_iot_node_sdk_vector(self):
        # azure-iot-sdk-node common/core: key base64("password"), resource
        # "uri", expiry 12345.
        self.assertEqual(
            er.make_sas_token("uri", "cGFzc3dvcmQ=", 12345),
            "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCy"
            "Nuq2fPYCDhk%3D&se=12345")
        token = er.sas_token("h.example", "d1", "", "cGFzc3dvcmQ=", ttl=0, now=12345)
        self.assertTrue(token.startswith(
            "SharedAccessSignature sr=h.example%2Fdevices%2Fd1&sig="))
        self.assertTrue(token.endswith("&se=12345"))
        module = er.sas_token("h.example", "d1", "m", "cGFzc3dvcmQ=", ttl=5, now=10)
        self.assertIn("sr=h.example%2Fdevices%2Fd1%2Fmodules%2Fm&", module)
        self.assertTrue(module.endswith("&se=15"))

    def test_rejects_foreign_buffers(self):
        with self.assertRaises(ValueError):
            er.Message(b"\x08\x00\x00\x00XXXX" + bytes(16))


class GatewayProcessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        binary = find_gateway_binary()
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        manifest = os.path.join(cls.tmp, "manifest.json")
        with open(manifest, "w") as f:
            f.write(MANIFEST)
        cls.proc = subprocess.Popen([binary, "--manifest=" + manifest, "--device_id=edge-1",
                                     "--tcp_port=0"], stderr=subprocess.PIPE, text=True)
        # The gateway logs "listening: tcp 127.0.0.1:PORT, ..." once it is up.
        cls.port = None
        for line in cls.proc.stderr:
            sys.stderr.write(line)
            if "listening: tcp" in line:
                cls.port = int(line.split("listening: tcp ")[1].split(",")[0].rsplit(":", 1)[1])
                break
        if cls.port is None:
            raise RuntimeError("gateway did not start")

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.stderr.read()
        cls.proc.wait(timeout=30)
        assert cls.proc.returncode == 0, cls.proc.returncode

    def connect(self, module, device="edge-1"):
        c = er.Client("tcp:127.0.0.1:%d" % self.port)
        c.hello(device, module)
        return c

    def test_routes_between_python_modules(self):
        with self.connect("filter") as filt, self.connect("", "cloud") as up, \
                self.connect("sensor") as sensor:
            filt.subscribe("input1")
            up.subscribe(er.UPSTREAM)
            filt.receive(timeout=0.2)  # let the subscriptions land
            for i in range(20):
                sensor.send_telemetry("temperature", b"%d" % i, {"i": str(i)}, want_ack=True)
            sensor.wait_for_acks(20)
            self.assertEqual(sensor.acks_refused, 0)
            for i in range(20):
                d = filt.receive(timeout=10)
                self.assertIsNotNone(d)
                self.assertEqual(d.input, "input1")
                self.assertEqual(d.message.body, b"%d" % i)
                self.assertEqual(d.message.properties["i"], str(i))
                self.assertEqual(d.message.source, "/messages/modules/sensor/outputs/temperature")
                self.assertEqual(d.message.system_properties["connectionModuleId"], "sensor")
                filt.send_telemetry("out", d.message.body)
                filt.ack(d.delivery_id)
            for i in range(20):
                d = up.receive(timeout=10)
                self.assertIsNotNone(d)
                self.assertEqual(d.message.body, b"%d" % i)
                up.ack(d.delivery_id)

    def test_wrong_version_is_refused(self):
        c = er.Client("tcp:127.0.0.1:%d" % self.port)
        with self.assertRaises(er.GatewayError) as ctx:
            c.hello("edge-1", "x", version=99)
        self.assertEqual(ctx.exception.code, 3)
        c.close()


if __name__ == "__main__":
    unittest.main()
