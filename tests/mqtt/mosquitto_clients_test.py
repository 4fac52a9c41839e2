"""mosquitto_pub and mosquitto_sub (Debian's mosquitto-clients) against a real
`edgeroute run`, over TLS with SAS tokens."""

import time

import harness
from harness import LineReader, line_buffered

ROUTES = {
    "sensorToReceiver":
        'FROM /messages/modules/sensor/outputs/out1 '
        'INTO BrokeredEndpoint("/modules/receiver/inputs/in1")',
    "leafToReceiver":
        'FROM /messages/* WHERE NOT is_defined($connectionModuleId) '
        'INTO BrokeredEndpoint("/modules/receiver/inputs/fromleaf")',
}


class MosquittoClientsTest(harness.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.pub_bin = harness.require_program("mosquitto_pub")
        self.sub_bin = harness.require_program("mosquitto_sub")
        self.sensor = harness.module("sensor")
        self.receiver = harness.module("receiver")
        self.leaf1 = harness.device("leaf-1")
        self.leaf2 = harness.device("leaf-2")
        self.identities = [self.sensor, self.receiver, self.leaf1, self.leaf2]

    def start(self, **kwargs):
        return self.start_gateway(self.identities, ROUTES, **kwargs)

    def conn(self, gw, identity, **kwargs):
        return harness.mosquitto_client_args(gw.port, identity,
                                             self.pki.ca_cert, **kwargs)

    def subscribe(self, gw, identity, filters, count=1, extra=(), timeout=40):
        """mosquitto_sub in the background; returns (process, reader, suback
        line) once the SUBACK arrived."""
        args = [self.sub_bin] + self.conn(gw, identity) + [
            "-q", "1", "-d", "-C", str(count), "-W", str(timeout),
            "-F", "MSG\t%q\t%t\t%p"] + list(extra)
        for f in filters:
            args += ["-t", f]
        p = self.spawn(line_buffered(args))
        reader = LineReader(p)
        suback = reader.wait_for(lambda l: l.startswith("Subscribed (mid:"),
                                 harness.CLIENT_TIMEOUT_S,
                                 "mosquitto_sub's SUBACK")
        return p, reader, suback

    def publish(self, gw, identity, topic, payload, qos=1, check=True,
                **kwargs):
        args = [self.pub_bin] + self.conn(gw, identity, **kwargs) + [
            "-q", str(qos), "-t", topic, "-m", payload, "-d"]
        return harness.run(line_buffered(args), check=check)

    def messages(self, reader, count, timeout=harness.CLIENT_TIMEOUT_S):
        got = []
        for _ in range(count):
            line = reader.wait_for(
                lambda l: l.startswith("MSG\t") and l not in got, timeout,
                "a message on mosquitto_sub")
            got.append(line)
        return [tuple(l.split("\t", 3)[1:]) for l in got]

    # -- telemetry and module inputs ---------------------------------------

    def test_telemetry_property_bag_reaches_module_input(self):
        gw = self.start(store=False)
        sub, reader, suback = self.subscribe(
            gw, self.receiver, [self.receiver.inputs_filter()], count=2)
        self.assertIn(": 1", suback)  # granted QoS 1

        body = '{"temperature": 21.5, "unit": "C"}'
        self.publish(gw, self.sensor,
                     self.sensor.events_topic +
                     "%24.on=out1&%24.mid=msg-1&%24.ct=application%2Fjson"
                     "&%24.ce=utf-8&alert=high%20temp&a%26b=x%3Dy"
                     # A client cannot claim another sender: the gateway
                     # stamps the connection's identity.
                     "&%24.cdid=intruder&%24.cmid=intruder", body)
        self.publish(gw, self.leaf1, self.leaf1.events_topic + "level=warn",
                     '{"leaf": 1}')

        got = {}
        for qos, topic, payload in self.messages(reader, 2):
            d, m, input_name, props = harness.split_input_topic(topic)
            self.assertEqual((d, m), ("edge-gw", "receiver"), topic)
            self.assertEqual(qos, "1", topic)
            got[input_name] = (props, payload)
        rc, _, err = reader.finish(harness.CLIENT_TIMEOUT_S,
                                   "mosquitto_sub to exit")
        self.assertEqual(rc, 0, err)

        self.assertEqual(set(got), {"in1", "fromleaf"})
        props, payload = got["in1"]
        self.assertEqual(payload, body)
        self.assertEqual(props.get("alert"), "high temp")
        self.assertEqual(props.get("a&b"), "x=y")
        self.assertEqual(props.get("$.mid"), "msg-1")
        self.assertEqual(props.get("$.ct"), "application/json")
        self.assertEqual(props.get("$.ce"), "utf-8")
        self.assertEqual(props.get("$.cdid"), "edge-gw")
        self.assertEqual(props.get("$.cmid"), "sensor")
        props, payload = got["fromleaf"]
        self.assertEqual(payload, '{"leaf": 1}')
        self.assertEqual(props.get("level"), "warn")
        self.assertEqual(props.get("$.cdid"), "leaf-1")
        self.assertNotIn("$.cmid", props)

    # -- authentication ------------------------------------------------------

    def test_refused_credentials(self):
        gw = self.start(store=False)
        topic = self.leaf1.events_topic
        cases = {
            "wrong key": self.leaf1.password(key=harness.random_key()),
            # Beyond any allowance for clock skew.
            "expired token": self.leaf1.password(
                expiry=int(time.time()) - 3600),
            "another identity's token": self.leaf2.password(),
            "not a SAS token": "hunter2",
        }
        for name, password in cases.items():
            r = self.publish(gw, self.leaf1, topic, "x", check=False,
                             password=password)
            self.assertNotEqual(r.returncode, 0, name)
            self.assertIn("not authorised", r.stdout + r.stderr, name)
        # The right key gets in, and the secondary key signs as well as the
        # primary.
        self.publish(gw, self.leaf1, topic, "x")
        self.publish(gw, self.sensor, self.sensor.events_topic, "x",
                     password=self.sensor.password(key=self.sensor.secondary))

    # -- authorization -------------------------------------------------------

    def assert_closed_without_ack(self, result, ack="received PUBACK"):
        """mosquitto_pub whose connection the gateway closed after its
        PUBLISH: no acknowledgement, "connection was lost", a failure exit."""
        text = result.stdout + result.stderr
        self.assertIn("sending PUBLISH", text)
        self.assertNotIn(ack, text)
        self.assertIn("connection was lost", text)
        self.assertNotEqual(result.returncode, 0, text)

    def test_foreign_publish_closes_the_connection(self):
        gw = self.start(store=False)
        sub, reader, _ = self.subscribe(
            gw, self.receiver, [self.receiver.inputs_filter()])
        # leaf-1 sends as leaf-2.
        self.assert_closed_without_ack(self.publish(
            gw, self.leaf1, self.leaf2.events_topic, "forged", check=False))
        # A module claiming another module's outputs.
        self.assert_closed_without_ack(self.publish(
            gw, self.sensor,
            "devices/edge-gw/modules/receiver/messages/events/%24.on=out1",
            "forged", check=False))
        # A device publishing on a module's topic, and on a topic outside
        # the dialect.
        self.assert_closed_without_ack(self.publish(
            gw, self.leaf1,
            "devices/leaf-1/modules/sensor/messages/events/%24.on=out1",
            "forged", check=False))
        self.assert_closed_without_ack(self.publish(
            gw, self.leaf1, "some/other/topic", "forged", check=False))
        # Nothing reached the receiver.
        extra = reader.drain(1)
        self.assertFalse([l for l in extra if l.startswith("MSG\t")], extra)
        # And the gateway still serves leaf-1's own telemetry.
        self.publish(gw, self.leaf1, self.leaf1.events_topic, "own")
        self.assertEqual(self.messages(reader, 1)[0][2], "own")

    def test_foreign_subscription_gets_0x80(self):
        gw = self.start(store=False)
        # sensor asks for the receiver's inputs and for its own: the first
        # is refused, the second granted.
        _, _, suback = self.subscribe(
            gw, self.sensor,
            [self.receiver.inputs_filter(), self.sensor.inputs_filter()])
        self.assertRegex(suback, r"Subscribed \(mid: \d+\): 128, 1$")
        _, _, suback = self.subscribe(gw, self.leaf1,
                                      ["devices/leaf-2/messages/devicebound/#"])
        self.assertRegex(suback, r"Subscribed \(mid: \d+\): 128$")

    def test_qos2_publish_closes_the_connection(self):
        gw = self.start(store=False)
        self.assert_closed_without_ack(
            self.publish(gw, self.leaf1, self.leaf1.events_topic, "x", qos=2,
                         check=False),
            ack="received PUBREC")

    # -- durability ----------------------------------------------------------

    def test_sigkill_after_puback_then_restart_delivers(self):
        gw = self.start(store=True)
        body = '{"seq": 7, "pad": "%s"}' % ("x" * 200)
        # mosquitto_pub exits 0 only after the PUBACK: from then on the
        # message is the gateway's to keep.
        r = self.publish(gw, self.sensor,
                         self.sensor.events_topic + "%24.on=out1&k=v", body)
        self.assertIn("received PUBACK", r.stdout)
        gw.kill()
        gw.start()
        sub, reader, _ = self.subscribe(gw, self.receiver,
                                        [self.receiver.inputs_filter()],
                                        extra=["-c"])
        ((qos, topic, payload),) = self.messages(reader, 1)
        _, _, input_name, props = harness.split_input_topic(topic)
        self.assertEqual(input_name, "in1")
        self.assertEqual(payload, body)
        self.assertEqual(props.get("k"), "v")
        self.assertEqual(props.get("$.cmid"), "sensor")
        rc, _, err = reader.finish(harness.CLIENT_TIMEOUT_S,
                                   "mosquitto_sub to exit")
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    harness.main()
