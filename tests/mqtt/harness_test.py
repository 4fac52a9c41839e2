"""Checks the test harness itself against known answers and against the
mosquitto broker, so that a failure of the gateway tests is the gateway's:
the certificates verify, SAS tokens are the SDK's, and the client
invocations and the paho wrapper work over TLS with a real broker."""

import os
import subprocess
import tempfile
import unittest

import harness
from harness import LineReader, line_buffered
from paho_client import Paho


class KnownAnswerTest(unittest.TestCase):

    def test_sas_token_matches_one_the_sdk_made(self):
        # Made by azure-iot-device 1.18.4 for this module, key and expiry.
        key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
        self.assertEqual(
            harness.sas_token(
                "myhub.azure-devices.net/devices/edge-gw/modules/sensor", key,
                1796451134),
            "SharedAccessSignature "
            "sr=myhub.azure-devices.net%2Fdevices%2Fedge-gw%2Fmodules%2Fsensor"
            "&sig=tta3Aq4TUmvhFsLkx88ljIalt%2BK0hn9Ix1ik%2FyT0w%2Fk%3D"
            "&se=1796451134")

    def test_port_from_log(self):
        self.assertEqual(harness.mqtt_port_from_log(
            "edgeroute gateway: listening: tcp off, unix /x, "
            "mqtt 127.0.0.1:40123 (tls), metrics off\n"), 40123)
        self.assertEqual(harness.mqtt_port_from_log(
            "listening: tcp 127.0.0.1:7411\nMQTT (TLS) on [::1]:8883\n"), 8883)
        self.assertIsNone(harness.mqtt_port_from_log("listening: tcp 1.2.3.4:5"))

    def test_property_bags(self):
        self.assertEqual(harness.split_input_topic(
            "devices/d/modules/m/inputs/in/%24.mid=1&a%26b=x%3Dy&s=a%20b/"),
            ("d", "m", "in", {"$.mid": "1", "a&b": "x=y", "s": "a b"}))
        self.assertEqual(harness.split_input_topic(
            "devices/d/modules/m/inputs/in/"), ("d", "m", "in", {}))


class BrokerTest(unittest.TestCase):
    """The clients as the gateway tests drive them, through mosquitto."""

    def setUp(self):
        base = os.environ.get("TEST_TMPDIR") or tempfile.gettempdir()
        self.dir = tempfile.mkdtemp(prefix="harness-", dir=base)
        self.pki = harness.Pki(os.path.join(self.dir, "pki"))
        self.broker = harness.Mosquitto(os.path.join(self.dir, "broker"),
                                        self.pki)
        self.processes = []

    def tearDown(self):
        for p in self.processes:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.broker.stop()

    def test_certificates_verify(self):
        harness.run(["openssl", "verify", "-CAfile", self.pki.ca_cert,
                     self.pki.server_cert])
        cert, _, thumb = self.pki.client("c", "leaf-9")
        harness.run(["openssl", "verify", "-CAfile", self.pki.ca_cert, cert])
        out = harness.run(["openssl", "x509", "-in", cert, "-noout",
                           "-fingerprint", "-sha256"]).stdout
        self.assertEqual(out.strip().split("=", 1)[1].replace(":", "").lower(),
                         thumb)
        cert, _, _ = self.pki.self_signed_client("s", "leaf-s")
        r = harness.run(["openssl", "verify", "-CAfile", self.pki.ca_cert,
                         cert], check=False)
        self.assertNotEqual(r.returncode, 0)

    def test_mosquitto_clients_over_tls(self):
        receiver = harness.module("receiver")
        topic = receiver.inputs_filter().replace("#", "in1/%24.mid=1&k=v")
        sub_args = ["mosquitto_sub"] + harness.mosquitto_client_args(
            self.broker.port, receiver, self.pki.ca_cert) + [
            "-q", "1", "-d", "-C", "1", "-W", "20",
            "-F", "MSG\t%q\t%t\t%p", "-t", receiver.inputs_filter()]
        p = subprocess.Popen(line_buffered(sub_args),
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.processes.append(p)
        reader = LineReader(p)
        suback = reader.wait_for(lambda l: l.startswith("Subscribed (mid:"),
                                 20, "SUBACK")
        self.assertRegex(suback, r"Subscribed \(mid: \d+\): 1$")
        sensor = harness.module("sensor")
        r = harness.run(line_buffered(
            ["mosquitto_pub"] + harness.mosquitto_client_args(
                self.broker.port, sensor, self.pki.ca_cert) +
            ["-q", "1", "-t", topic, "-m", '{"a": 1}', "-d"]))
        self.assertIn("received PUBACK", r.stdout)
        line = reader.wait_for(lambda l: l.startswith("MSG\t"), 20, "message")
        self.assertEqual(line.split("\t"), ["MSG", "1", topic, '{"a": 1}'])
        rc, _, err = reader.finish(20, "mosquitto_sub")
        self.assertEqual(rc, 0, err)

    def test_paho_over_tls(self):
        a = Paho(self.broker.port, harness.module("a"), self.pki.ca_cert)
        b = Paho(self.broker.port, harness.module("b"), self.pki.ca_cert,
                 clean_session=False)
        a.connect()
        b.connect()
        self.assertEqual(b.subscribe(["x/#", "y/+"], qos=1), [1, 1])
        a.publish("x/1", b"one")
        m = b.receive()
        self.assertEqual((m.topic, m.payload, m.qos), ("x/1", b"one", 1))
        b.receive_none(0.2)
        a.disconnect()
        b.disconnect()

    def test_paho_client_certificate(self):
        broker = harness.Mosquitto(os.path.join(self.dir, "broker2"), self.pki,
                                   require_certificate=True)
        try:
            cert, key, _ = self.pki.client("c", "leaf-9")
            c = Paho(broker.port, harness.device("leaf-9"), self.pki.ca_cert,
                     cert=cert, key=key)
            c.connect()
            c.publish("t", b"x")
            c.disconnect()
        finally:
            broker.stop()


if __name__ == "__main__":
    harness.main()
