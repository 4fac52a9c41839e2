"""The native protocol's TCP listener over TLS (`edgeroute run --listen
tls:HOST:PORT`), with the certificate the MQTT head uses and SAS tokens
checked against the identities file, driven by the Python client over
Python's ssl module (OpenSSL)."""

import os
import socket
import ssl
import sys
import time

import harness

sys.path.insert(0, os.path.dirname(harness.runfile("gateway/python/edgeroute_client.py")))
import edgeroute_client as er  # noqa: E402

ROUTES = {
    "sensorToFilter":
        'FROM /messages/modules/sensor/outputs/temperature '
        'INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
}


class NativeTlsTest(harness.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.sensor = harness.module("sensor")
        self.filter = harness.module("filter")
        self.native_port = harness.free_port()
        self.gw = self.start_gateway(
            [self.sensor, self.filter], ROUTES,
            extra_args=["--listen", "tls:127.0.0.1:%d" % self.native_port])
        harness.wait_until(lambda: "(tls)" in self.gw.log().split("listening: tcp", 1)[-1],
                           harness.START_TIMEOUT_S, "the native TLS listener")

    def context(self):
        context = ssl.create_default_context(cafile=self.pki.ca_cert)
        context.check_hostname = True
        return context

    def client(self, identity, key=None):
        c = er.Client("tls:127.0.0.1:%d" % self.native_port, timeout=20,
                      ssl_context=self.context())
        c.hello(harness.GATEWAY_DEVICE, identity.module_id,
                sas_token=identity.password(key=key))
        return c

    def test_telemetry_and_deliveries_cross_tls(self):
        with self.client(self.filter) as filt, self.client(self.sensor) as sensor:
            self.assertEqual(filt.sock.version() in ("TLSv1.2", "TLSv1.3"), True)
            filt.subscribe("input1")
            filt.receive(timeout=0.3)  # let the subscription land
            for i in range(50):
                sensor.send_telemetry("temperature", b'{"t":%d}' % i, {"i": str(i)},
                                      want_ack=True)
            sensor.wait_for_acks(50)
            self.assertEqual(sensor.acks_refused, 0)
            got = []
            deadline = time.monotonic() + 30
            while len(got) < 50 and time.monotonic() < deadline:
                d = filt.receive(timeout=5)
                if d is None:
                    continue
                got.append(d.message.body)
                filt.ack(d.delivery_id)
            self.assertEqual(got, [b'{"t":%d}' % i for i in range(50)])

    def test_wrong_key_is_refused(self):
        with self.assertRaises(er.GatewayError) as refused:
            self.client(self.sensor, key=harness.random_key())
        self.assertEqual(refused.exception.code, 10)

    def test_plain_tcp_and_untrusted_clients_get_nothing(self):
        # A plaintext Hello on the TLS port is not a ClientHello: the
        # connection ends without an answer.
        with socket.create_connection(("127.0.0.1", self.native_port), 10) as s:
            s.sendall(er.encode_hello(harness.GATEWAY_DEVICE, "sensor", sas_token=self.sensor.password()))
            s.settimeout(10)
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            self.assertNotIn(b"ERG1", data)
        # A client that does not trust the gateway's CA refuses the handshake.
        untrusting = ssl.create_default_context()
        with self.assertRaises(ssl.SSLError):
            er.Client("tls:127.0.0.1:%d" % self.native_port, timeout=10,
                      ssl_context=untrusting)


if __name__ == "__main__":
    harness.main()
