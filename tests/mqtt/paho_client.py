"""A thin synchronous face on python3-paho-mqtt (Debian, 1.6) for the tests:
every call waits for its acknowledgement with a deadline and fails with what
it was waiting for."""

import queue
import ssl
import threading

import paho.mqtt.client as mqtt

import harness
from harness import fail

TIMEOUT_S = harness.CLIENT_TIMEOUT_S


class Paho:
    """One MQTT 3.1.1 connection over TLS as `identity`."""

    def __init__(self, port, identity, ca_cert, password=None, cert=None,
                 key=None, clean_session=True, client_id=None, username=None,
                 keepalive=60):
        self.identity = identity
        self.client = mqtt.Client(
            client_id=client_id if client_id is not None else
            identity.client_id, clean_session=clean_session,
            protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        self.client.tls_set(ca_certs=ca_cert, certfile=cert, keyfile=key,
                            tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if cert is None and password is None:
            password = identity.password()
        self.client.username_pw_set(
            username if username is not None else identity.username, password)
        self.port = port
        self.keepalive = keepalive
        self.messages = queue.Queue()
        self.connack = None
        self.session_present = None
        self.disconnect_rc = None
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._subacks = {}
        self._suback_event = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # paho callbacks (its network thread)
    def _on_connect(self, client, userdata, flags, rc):
        self.connack = rc
        self.session_present = flags.get("session present")
        self._connected.set()

    def _on_disconnect(self, client, userdata, rc):
        self.disconnect_rc = rc
        self._disconnected.set()
        self._connected.set()  # wakes a connect() waiting on a refused CONNECT

    def _on_subscribe(self, client, userdata, mid, granted_qos):
        with self._suback_event:
            self._subacks[mid] = list(granted_qos)
            self._suback_event.notify_all()

    def _on_message(self, client, userdata, message):
        self.messages.put(message)

    def connect(self, expect_rc=0):
        """Connects and waits for the CONNACK; returns its return code."""
        self.client.connect("localhost", self.port, keepalive=self.keepalive)
        self.client.loop_start()
        if not self._connected.wait(TIMEOUT_S):
            fail("no CONNACK within %d s for %s" % (TIMEOUT_S,
                                                    self.identity.client_id))
        if expect_rc is not None and self.connack != expect_rc:
            fail("CONNACK for %s: %s (expected %s); disconnect rc %s" %
                 (self.identity.client_id, self.connack, expect_rc,
                  self.disconnect_rc))
        return self.connack

    def subscribe(self, filters, qos=1):
        """Subscribes and returns the granted QoS list from the SUBACK."""
        if isinstance(filters, str):
            filters = [filters]
        rc, mid = self.client.subscribe([(f, qos) for f in filters])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            fail("subscribe failed locally: %s" % mqtt.error_string(rc))
        with self._suback_event:
            if not self._suback_event.wait_for(lambda: mid in self._subacks,
                                               TIMEOUT_S):
                fail("no SUBACK within %d s for %s" % (TIMEOUT_S, filters))
            return self._subacks.pop(mid)

    def publish(self, topic, payload, qos=1, wait=True):
        info = self.client.publish(topic, payload, qos=qos)
        if wait and qos > 0:
            info.wait_for_publish(TIMEOUT_S)
            if not info.is_published():
                fail("no PUBACK within %d s for %s" % (TIMEOUT_S, topic))
        return info

    def receive(self, timeout=TIMEOUT_S, what="a message"):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            fail("timed out after %d s waiting for %s on %s" %
                 (timeout, what, self.identity.client_id))

    def receive_none(self, seconds):
        """Asserts nothing arrives for `seconds`."""
        try:
            m = self.messages.get(timeout=seconds)
        except queue.Empty:
            return
        fail("unexpected message on %s: %s %r" % (self.identity.client_id,
                                                  m.topic, m.payload))

    def wait_disconnected(self, timeout=TIMEOUT_S):
        if not self._disconnected.wait(timeout):
            fail("%s was not disconnected within %d s" %
                 (self.identity.client_id, timeout))
        return self.disconnect_rc

    def disconnect(self):
        self.client.disconnect()
        self._disconnected.wait(TIMEOUT_S)
        self.client.loop_stop()

    def close(self):
        """Drops the connection without DISCONNECT (as a crash would)."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()
