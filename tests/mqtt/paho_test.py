"""python3-paho-mqtt (Debian) against a real `edgeroute run`, over TLS with
SAS tokens and X.509 client certificates."""

import time

import harness
from paho_client import Paho

ROUTES = {
    "sensorToReceiver":
        'FROM /messages/modules/sensor/outputs/out1 '
        'INTO BrokeredEndpoint("/modules/receiver/inputs/in1")',
    "leafToReceiver":
        'FROM /messages/* WHERE NOT is_defined($connectionModuleId) '
        'INTO BrokeredEndpoint("/modules/receiver/inputs/fromleaf")',
}

CONNACK_BAD_USERNAME_OR_PASSWORD = 4
CONNACK_NOT_AUTHORIZED = 5


class PahoTest(harness.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.sensor = harness.module("sensor")
        self.receiver = harness.module("receiver")
        self.leaf1 = harness.device("leaf-1")
        self.leaf2 = harness.device("leaf-2")
        self.clients = []
        self.x509_leaf_cert = self.pki.client("x509-leaf", "x509-leaf")
        self.self_signed_cert = self.pki.self_signed_client("self-signed",
                                                            "leaf-self")
        self.x509_leaf = harness.device(
            "x509-leaf", thumbprint_hex=self.x509_leaf_cert[2])
        self.self_signed_leaf = harness.device(
            "leaf-self", thumbprint_hex=self.self_signed_cert[2])
        self.ca_leaf = harness.device("ca-leaf", x509_ca=True)
        self.identities = [self.sensor, self.receiver, self.leaf1, self.leaf2,
                           self.x509_leaf, self.self_signed_leaf, self.ca_leaf]

    def tearDown(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:  # pylint: disable=broad-except
                pass
        super().tearDown()

    def start(self, **kwargs):
        return self.start_gateway(self.identities, ROUTES, **kwargs)

    def paho(self, gw, identity, connect=True, **kwargs):
        c = Paho(gw.port, identity, self.pki.ca_cert, **kwargs)
        self.clients.append(c)
        if connect:
            c.connect()
        return c

    def refused(self, gw, identity, **kwargs):
        c = self.paho(gw, identity, connect=False, **kwargs)
        rc = c.connect(expect_rc=None)
        c.wait_disconnected()
        return rc

    # -- telemetry and inputs, QoS 1 both ways -------------------------------

    def test_qos1_both_ways_with_property_bag(self):
        gw = self.start(store=False)
        receiver = self.paho(gw, self.receiver)
        self.assertEqual(receiver.subscribe(self.receiver.inputs_filter()), [1])
        sensor = self.paho(gw, self.sensor)
        # QoS 1 telemetry: publish() waits for the PUBACK.
        for n in range(20):
            sensor.publish(
                self.sensor.events_topic +
                "%%24.on=out1&%%24.mid=m%d&%%24.ct=application%%2Fjson&n=%d" %
                (n, n), '{"n": %d}' % n)
        for n in range(20):
            m = receiver.receive(what="message %d" % n)
            self.assertEqual(m.qos, 1)
            self.assertFalse(m.dup)
            d, mod, input_name, props = harness.split_input_topic(m.topic)
            self.assertEqual((d, mod, input_name),
                             ("edge-gw", "receiver", "in1"))
            self.assertEqual(m.payload, b'{"n": %d}' % n)
            self.assertEqual(props["n"], str(n))
            self.assertEqual(props["$.mid"], "m%d" % n)
            self.assertEqual(props["$.ct"], "application/json")
            self.assertEqual(props["$.cdid"], "edge-gw")
            self.assertEqual(props["$.cmid"], "sensor")
        # QoS 0 telemetry is accepted too; a device's reaches its route.
        leaf = self.paho(gw, self.leaf1)
        leaf.publish(self.leaf1.events_topic + "q=0", "zero", qos=0)
        m = receiver.receive(what="the leaf's QoS 0 message")
        _, _, input_name, props = harness.split_input_topic(m.topic)
        self.assertEqual((input_name, m.payload, props["q"]),
                         ("fromleaf", b"zero", "0"))
        self.assertEqual(props["$.cdid"], "leaf-1")
        receiver.disconnect()

    def test_c_sdk_subscription_form(self):
        # The C SDK subscribes to devices/{d}/modules/{m}/#.
        gw = self.start(store=False)
        receiver = self.paho(gw, self.receiver)
        self.assertEqual(
            receiver.subscribe("devices/edge-gw/modules/receiver/#", qos=2),
            [1])  # QoS 2 is granted as 1
        sensor = self.paho(gw, self.sensor)
        sensor.publish(self.sensor.events_topic + "%24.on=out1", "c-sdk")
        m = receiver.receive()
        self.assertEqual(m.payload, b"c-sdk")
        self.assertTrue(m.topic.startswith(
            "devices/edge-gw/modules/receiver/inputs/in1/"), m.topic)

    # -- authentication ------------------------------------------------------

    def test_refused_credentials(self):
        gw = self.start(store=False)
        self.assertEqual(
            self.refused(gw, self.leaf1,
                         password=self.leaf1.password(
                             key=harness.random_key())),
            CONNACK_NOT_AUTHORIZED)
        self.assertEqual(
            self.refused(gw, self.leaf1,
                         password=self.leaf1.password(
                             expiry=int(time.time()) - 3600)),
            CONNACK_NOT_AUTHORIZED)
        unknown = harness.device("nobody")
        self.assertEqual(self.refused(gw, unknown), CONNACK_NOT_AUTHORIZED)
        # Client id and user name naming different identities.
        self.assertIn(
            self.refused(gw, self.leaf1, client_id="leaf-2"),
            (CONNACK_BAD_USERNAME_OR_PASSWORD, CONNACK_NOT_AUTHORIZED))
        # No password and no certificate.
        self.assertIn(
            self.refused(gw, self.leaf1, password=""),
            (CONNACK_BAD_USERNAME_OR_PASSWORD, CONNACK_NOT_AUTHORIZED))
        # A user name without api-version.
        self.assertIn(
            self.refused(gw, self.leaf1,
                         username="%s/leaf-1/" % harness.HUB),
            (CONNACK_BAD_USERNAME_OR_PASSWORD, CONNACK_NOT_AUTHORIZED))
        # And the right ones get in (secondary key too).
        self.paho(gw, self.leaf1)
        self.paho(gw, self.receiver,
                  password=self.receiver.password(key=self.receiver.secondary))

    def test_x509_identities(self):
        gw = self.start(store=False)
        receiver = self.paho(gw, self.receiver)
        receiver.subscribe(self.receiver.inputs_filter())
        cert, key, _ = self.x509_leaf_cert
        leaf = self.paho(gw, self.x509_leaf, cert=cert, key=key)
        leaf.publish(self.x509_leaf.events_topic, "by thumbprint")
        m = receiver.receive()
        self.assertEqual(m.payload, b"by thumbprint")
        self.assertEqual(harness.split_input_topic(m.topic)[3]["$.cdid"],
                         "x509-leaf")
        # A certificate the CA signed, whose subject CN is the device id.
        cert, key, _ = self.pki.client("ca-leaf", "ca-leaf")
        self.paho(gw, self.ca_leaf, cert=cert, key=key).publish(
            self.ca_leaf.events_topic, "by CA")
        self.assertEqual(receiver.receive().payload, b"by CA")
        # A valid certificate, but not the listed thumbprint.
        cert, key, _ = self.pki.client("other", "x509-leaf")
        self.assertEqual(self.refused(gw, self.x509_leaf, cert=cert, key=key),
                         CONNACK_NOT_AUTHORIZED)
        # A CA-signed certificate for another device id.
        cert, key, _ = self.pki.client("wrong-cn", "leaf-1")
        self.assertEqual(self.refused(gw, self.ca_leaf, cert=cert, key=key),
                         CONNACK_NOT_AUTHORIZED)

    def test_x509_self_signed_thumbprint(self):
        # IoT Hub's "X.509 self-signed" devices: no CA, the thumbprint is the
        # whole credential.
        gw = self.start(store=False)
        cert, key, _ = self.self_signed_cert
        self.paho(gw, self.self_signed_leaf, cert=cert,
                  key=key).publish(self.self_signed_leaf.events_topic, "self")

    # -- authorization -------------------------------------------------------

    def test_foreign_topics(self):
        gw = self.start(store=False)
        sensor = self.paho(gw, self.sensor)
        self.assertEqual(
            sensor.subscribe([self.receiver.inputs_filter(),
                              self.sensor.inputs_filter(),
                              "devices/leaf-1/messages/devicebound/#",
                              "$iothub/twin/res/#"]),
            [128, 1, 128, 1])
        self.assertEqual(sensor.subscribe("#"), [128])
        leaf = self.paho(gw, self.leaf1)
        self.assertEqual(
            leaf.subscribe(["devices/leaf-1/messages/devicebound/#",
                            "devices/leaf-2/messages/devicebound/#"]),
            [1, 128])
        receiver = self.paho(gw, self.receiver)
        receiver.subscribe(self.receiver.inputs_filter())
        # A PUBLISH to another device's telemetry closes the connection.
        leaf.publish(self.leaf2.events_topic, "forged", wait=False)
        self.assertNotEqual(leaf.wait_disconnected(), 0)
        receiver.receive_none(1)
        # A module publishing as another module: closed as well.
        sensor.publish("devices/edge-gw/modules/receiver/messages/events/"
                       "%24.on=out1", "forged", wait=False)
        self.assertNotEqual(sensor.wait_disconnected(), 0)
        receiver.receive_none(1)

    def test_qos2_publish_closes(self):
        gw = self.start(store=False)
        leaf = self.paho(gw, self.leaf1)
        leaf.publish(self.leaf1.events_topic, "two", qos=2, wait=False)
        self.assertNotEqual(leaf.wait_disconnected(), 0)

    def test_one_connection_per_identity(self):
        gw = self.start(store=False)
        first = self.paho(gw, self.leaf1)
        second = self.paho(gw, self.leaf1)
        self.assertNotEqual(first.wait_disconnected(), 0)
        second.publish(self.leaf1.events_topic, "still here")

    # -- sessions ------------------------------------------------------------

    def test_clean_session_0_gets_messages_routed_while_away(self):
        gw = self.start(store=False)
        receiver = self.paho(gw, self.receiver, clean_session=False)
        receiver.subscribe(self.receiver.inputs_filter())
        receiver.disconnect()
        sensor = self.paho(gw, self.sensor)
        for n in range(5):
            sensor.publish(self.sensor.events_topic + "%24.on=out1",
                           "away %d" % n)
        # Back without subscribing again: the session kept the subscription.
        receiver = self.paho(gw, self.receiver, clean_session=False)
        self.assertTrue(receiver.session_present)
        for n in range(5):
            self.assertEqual(receiver.receive(what="message %d" % n).payload,
                             b"away %d" % n)
        # A clean session starts without the subscription.
        receiver.disconnect()
        receiver = self.paho(gw, self.receiver, clean_session=True)
        self.assertFalse(receiver.session_present)
        sensor.publish(self.sensor.events_topic + "%24.on=out1", "later")
        receiver.receive_none(1)

    def test_unacknowledged_delivery_is_redelivered_with_dup(self):
        gw = self.start(store=False)
        receiver = self.paho(gw, self.receiver, clean_session=False)
        receiver.subscribe(self.receiver.inputs_filter())
        # Drop the connection without a PUBACK: paho acknowledges from its
        # network thread, so stop that thread before the message arrives.
        receiver.client.loop_stop()
        sensor = self.paho(gw, self.sensor)
        sensor.publish(self.sensor.events_topic + "%24.on=out1", "again")
        time.sleep(0.5)
        receiver.close()
        receiver = self.paho(gw, self.receiver, clean_session=False)
        m = receiver.receive()
        self.assertEqual(m.payload, b"again")
        self.assertTrue(m.dup)
        receiver.receive_none(1)

    def test_sigkill_after_puback_then_restart_delivers(self):
        gw = self.start(store=True)
        receiver = self.paho(gw, self.receiver, clean_session=False)
        receiver.subscribe(self.receiver.inputs_filter())
        receiver.disconnect()
        sensor = self.paho(gw, self.sensor)
        for n in range(10):
            sensor.publish(self.sensor.events_topic + "%24.on=out1",
                           "durable %d" % n)  # returns after the PUBACK
        gw.kill()
        gw.start()
        # The session (and its subscription) survived the restart too.
        receiver = self.paho(gw, self.receiver, clean_session=False)
        for n in range(10):
            self.assertEqual(receiver.receive(what="message %d" % n).payload,
                             b"durable %d" % n)


if __name__ == "__main__":
    harness.main()
