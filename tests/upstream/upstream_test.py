"""The upstream connector against real brokers: `edgeroute run --upstream`
forwarding what its routes put INTO $upstream to Debian's mosquitto (MQTT 5
and 3.1.1) and to a parent `edgeroute run` (iothub://), across broker
outages and a gateway SIGKILL, with a subscriber that counts.

Devices publish with python3-paho-mqtt over the gateway's MQTT head (TLS,
SAS tokens); see tests/mqtt/harness.py for the gateway and PKI pieces.
"""

import os
import re
import select
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "mqtt"))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

import harness  # noqa: E402
from harness import fail  # noqa: E402
from paho_client import Paho  # noqa: E402

TO_UPSTREAM = {"toUpstream": "FROM /messages/* INTO $upstream"}
# How long a drain may take on a loaded 2-core machine.
DRAIN_TIMEOUT_S = 240


class Broker:
    """Debian's mosquitto on a fixed loopback port, plain TCP, with
    persistence (so a subscriber's session and its queued messages survive a
    restart) and no limit on queued messages. Can be stopped and started
    again on the same port."""

    def __init__(self, workdir, port=None):
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(self.binary):
            fail("mosquitto is not installed; scripts/setup.sh installs it")
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = port or harness.free_port()
        self.config = os.path.join(workdir, "mosquitto.conf")
        self.log_path = os.path.join(workdir, "mosquitto.log")
        import pwd
        with open(self.config, "w") as f:
            f.write("listener %d 127.0.0.1\n" % self.port)
            f.write("allow_anonymous true\n")
            f.write("persistence true\npersistence_location %s/\n" % workdir)
            f.write("max_queued_messages 0\n")
            f.write("user %s\n" % pwd.getpwuid(os.getuid()).pw_name)
            f.write("log_dest stderr\nlog_type error\nlog_type warning\n"
                    "log_type notice\n")
        self.process = None
        self._log = None

    def start(self):
        self._log = open(self.log_path, "a")
        self.process = subprocess.Popen([self.binary, "-c", self.config],
                                        stdout=self._log, stderr=self._log)

        def listening():
            if self.process.poll() is not None:
                fail("mosquitto exited %d:\n%s" % (self.process.returncode,
                                                   self.log()))
            return self.port in harness.listening_tcp_ports(self.process.pid)

        harness.wait_until(listening, harness.START_TIMEOUT_S,
                           "mosquitto to listen")
        return self

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(harness.STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(harness.STOP_TIMEOUT_S)
        self.process = None
        self._log.close()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class NatsCluster:
    """Three Debian nats-server processes in one cluster on loopback, with
    JetStream and an MQTT listener each (NATS speaks MQTT 3.1.1, QoS 1 on
    JetStream)."""

    def __init__(self, workdir):
        self.binary = shutil.which("nats-server")
        if self.binary is None:
            fail("nats-server is not installed; scripts/setup.sh installs it")
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.client_ports = [harness.free_port() for _ in range(3)]
        self.route_ports = [harness.free_port() for _ in range(3)]
        self.mqtt_ports = [harness.free_port() for _ in range(3)]
        self.processes = [None] * 3
        self.logs = [os.path.join(workdir, "n%d.log" % i) for i in range(3)]

    def start(self):
        for i in range(3):
            routes = ", ".join("nats-route://127.0.0.1:%d" % self.route_ports[j]
                               for j in range(3) if j != i)
            config = os.path.join(self.dir, "n%d.conf" % i)
            with open(config, "w") as f:
                f.write("server_name: n%d\n" % i)
                f.write("listen: 127.0.0.1:%d\n" % self.client_ports[i])
                f.write('jetstream { store_dir: "%s" }\n' %
                        os.path.join(self.dir, "js%d" % i))
                f.write("cluster { name: edge, listen: 127.0.0.1:%d, "
                        "routes: [%s] }\n" % (self.route_ports[i], routes))
                # Every MQTT stream and consumer on all three nodes, so that
                # losing one node loses no session and no message.
                f.write("mqtt { listen: 127.0.0.1:%d, stream_replicas: 3, "
                        "consumer_replicas: 3 }\n" % self.mqtt_ports[i])
            log = open(self.logs[i], "a")
            self.processes[i] = subprocess.Popen(
                [self.binary, "-c", config], stdout=log, stderr=log)
            log.close()
        for i in range(3):
            harness.wait_until(
                lambda i=i: self.mqtt_ports[i] in harness.listening_tcp_ports(
                    self.processes[i].pid),
                harness.START_TIMEOUT_S, "nats-server n%d's MQTT listener" % i)
        return self

    def kill(self, i):
        self.processes[i].kill()
        self.processes[i].wait(harness.STOP_TIMEOUT_S)

    def stop(self):
        for p in self.processes:
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(harness.STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(harness.STOP_TIMEOUT_S)

    def log(self):
        text = []
        for path in self.logs:
            with open(path, errors="replace") as f:
                text.append("---- %s\n%s" % (path, f.read()[-4000:]))
        return "\n".join(text)


class Counter:
    """A paho subscriber with a persistent session (MQTT 5 or 3.1.1) that
    records every message it receives; reconnects by itself while the
    broker restarts."""

    def __init__(self, port, topic_filter, protocol=mqtt.MQTTv5, ca=None):
        self.protocol = protocol
        self.messages = []
        self.lock = threading.Condition()
        self._subscribed = threading.Event()
        self.filter = topic_filter
        if protocol == mqtt.MQTTv5:
            self.client = mqtt.Client(client_id="upstream-counter",
                                      protocol=protocol)
        else:
            self.client = mqtt.Client(client_id="upstream-counter",
                                      clean_session=False, protocol=protocol)
        if ca is not None:  # TLS, the server checked against `ca`
            self.client.tls_set(ca_certs=ca,
                                tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.port = port

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        client.subscribe(self.filter, qos=1)

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append(message)
            self.lock.notify_all()

    def start(self):
        if self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self.client.connect("127.0.0.1", self.port, clean_start=False,
                                properties=props)
        else:
            self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if not self._subscribed.wait(harness.CLIENT_TIMEOUT_S):
            fail("the counting subscriber got no SUBACK")
        return self

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %d s waiting for %s (%d messages "
                         "received)" % (timeout, what, len(self.messages)))
                self.lock.wait(min(left, 1.0))
            return list(self.messages)

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def connect_password(data):
    """The password of the MQTT 3.1.1 CONNECT at the start of `data` ("" if
    it has none), or None while the packet is incomplete."""
    length, multiplier, i = 0, 1, 1
    while True:
        if i >= len(data):
            return None
        byte = data[i]
        length += (byte & 127) * multiplier
        multiplier *= 128
        i += 1
        if not byte & 128:
            break
    if len(data) < i + length:
        return None
    packet = data[i:i + length]

    def field(offset):
        size = struct.unpack(">H", packet[offset:offset + 2])[0]
        return packet[offset + 2:offset + 2 + size], offset + 2 + size

    _, offset = field(0)  # protocol name
    flags = packet[offset + 1]
    _, offset = field(offset + 4)  # after level, flags, keep-alive: client id
    if flags & 0x04:  # will topic and message
        _, offset = field(offset)
        _, offset = field(offset)
    if flags & 0x80:
        _, offset = field(offset)
    password = b""
    if flags & 0x40:
        password, offset = field(offset)
    return password.decode()


class TlsRelay:
    """A TLS relay between a child gateway and its parent (both legs TLS,
    with the test PKI) that records, for every connection, the time its
    CONNECT went through and the SAS token it carried: what the parent saw,
    observed from outside both gateways."""

    def __init__(self, pki, target_port):
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.load_cert_chain(pki.server_cert, pki.server_key)
        self.client_context = ssl.create_default_context(cafile=pki.ca_cert)
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.5)
        self.port = self.listener.getsockname()[1]
        self.connects = []  # (wall-clock time, password)
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(harness.CLIENT_TIMEOUT_S)
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    @staticmethod
    def _read(sock):
        """What one readable TLS socket has: a record, and whatever else
        OpenSSL already decrypted. b"" at the end."""
        try:
            data = sock.recv(65536)
        except ssl.SSLWantReadError:
            return None
        while data and sock.pending():
            data += sock.recv(sock.pending())
        return data

    def _serve(self, raw):
        try:
            down = self.server_context.wrap_socket(raw, server_side=True)
            up = self.client_context.wrap_socket(
                socket.create_connection(("127.0.0.1", self.target_port),
                                         harness.CLIENT_TIMEOUT_S),
                server_hostname="localhost")
        except (OSError, ssl.SSLError):
            raw.close()
            return
        down.settimeout(None)
        up.settimeout(None)
        first = b""
        recorded = False
        try:
            while not self.closed:
                readable, _, _ = select.select([down, up], [], [], 0.5)
                for sock in readable:
                    data = self._read(sock)
                    if data is None:
                        continue
                    if not data:
                        return
                    if sock is down and not recorded:
                        first += data
                        password = connect_password(first)
                        if password is not None:
                            recorded = True
                            with self.lock:
                                self.connects.append((time.time(), password))
                    (up if sock is down else down).sendall(data)
        except (OSError, ssl.SSLError):
            return
        finally:
            down.close()
            up.close()

    def snapshot(self):
        with self.lock:
            return list(self.connects)

    def close(self):
        self.closed = True
        self.listener.close()


def token_expiry(token):
    m = re.search(r"(?:^|[ &])se=(\d+)(?:&|$)", token)
    if not m:
        fail("no se= in the SAS token %r" % token)
    return int(m.group(1))


def user_properties(message):
    props = getattr(message, "properties", None)
    return dict(getattr(props, "UserProperty", []) or [])


def publish_many(client, topic_of, count):
    """Publishes `count` QoS 1 messages without waiting for each PUBACK;
    returns the sequence numbers that were PUBACKed."""
    infos = []
    for n in range(count):
        topic, payload = topic_of(n)
        infos.append((n, client.client.publish(topic, payload, qos=1)))
    acked = []
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    for n, info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        if info.is_published():
            acked.append(n)
    return acked


def first_arrivals(messages, key):
    """The messages' keys in order of first arrival (duplicates dropped)."""
    seen = set()
    order = []
    for m in messages:
        k = key(m)
        if k not in seen:
            seen.add(k)
            order.append(k)
    return order


class UpstreamGateway(harness.Gateway):
    """harness.Gateway with a device id of its own and extra arguments."""

    def __init__(self, *args, device="edge-gw", **kwargs):
        self.device = device
        super().__init__(*args, **kwargs)

    def command(self):
        args = super().command()
        args[args.index("--device") + 1] = self.device
        return args

    def start(self):
        # harness.Gateway takes the only listening port when the log has no
        # MQTT line yet; with --metrics there are two: read the log's line,
        # this process's (after a restart the log holds earlier ones too).
        offset = (os.path.getsize(self.log_path)
                  if os.path.exists(self.log_path) else 0)
        super().start()

        def mqtt_port():
            with open(self.log_path, errors="replace") as f:
                f.seek(offset)
                ports = re.findall(r"mqtt listening on 127\.0\.0\.1:(\d+)",
                                   f.read())
            return int(ports[-1]) if ports else None

        self.port = harness.wait_until(mqtt_port, harness.START_TIMEOUT_S,
                                       "the MQTT listening line")
        return self

    def metrics(self):
        with open(self.log_path, errors="replace") as f:
            ports = re.findall(r"metrics http://127\.0\.0\.1:(\d+)/metrics",
                               f.read())
        if not ports:
            fail("no metrics port in the gateway's log")
        url = "http://127.0.0.1:%s/metrics" % ports[-1]
        with urllib.request.urlopen(url, timeout=harness.CLIENT_TIMEOUT_S) as r:
            return r.read().decode()


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def backlog(text):
    """edgeroute_upstream_backlog by priority ("0".."9", "default") and
    edgeroute_upstream_oldest_backlog_age_seconds."""
    counts = {p: int(n) for p, n in re.findall(
        r'^edgeroute_upstream_backlog\{priority="(\w+)"\} (\d+)$', text,
        re.M)}
    m = re.search(r"^edgeroute_upstream_oldest_backlog_age_seconds "
                  r"([0-9.]+)$", text, re.M)
    if len(counts) != 11 or not m:
        fail("no upstream backlog metrics in:\n" + text)
    return counts, float(m.group(1))


def backlog_empty(gw):
    counts, age = backlog(gw.metrics())
    return not any(counts.values()) and age == 0


class UpstreamTest(harness.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.brokers = []
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:  # pylint: disable=broad-except
                pass
        failed = self._failed()
        for b in self.brokers:
            b.stop()
            if failed:
                sys.stderr.write("---- %s\n%s\n" % (b.log_path, b.log()))
        super().tearDown()

    def broker(self, **kwargs):
        b = Broker(os.path.join(self.dir, "broker%d" % len(self.brokers)),
                   **kwargs)
        self.brokers.append(b)
        return b

    def gateway(self, identities, routes, device="edge-gw", **kwargs):
        workdir = os.path.join(self.dir, "gw%d" % len(self.gateways))
        os.makedirs(workdir)
        gw = UpstreamGateway(workdir, self.pki, identities, routes,
                             device=device, **kwargs)
        self.gateways.append(gw)
        return gw.start()

    def paho(self, gw, identity):
        c = Paho(gw.port, identity, self.pki.ca_cert)
        self.clients.append(c)
        c.connect()
        c.client.max_inflight_messages_set(100)
        return c

    # -- broker outage -------------------------------------------------------

    def outage(self, total, kill_during_drain):
        broker = self.broker().start()
        counter = Counter(broker.port, "edgeroute/#").start()
        broker.stop()  # the counter's session waits in the broker's store
        leaves = [harness.device("leaf-a"), harness.device("leaf-b")]
        gw = self.gateway(
            leaves, TO_UPSTREAM,
            extra_args=["--upstream", "mqtt://127.0.0.1:%d" % broker.port,
                        "--metrics", "127.0.0.1:0"] +
            # One PUBLISH at a time: a drain slow enough for the kill to
            # land in its middle, however fast the machine.
            (["--upstream-max-in-flight", "1"] if kill_during_drain else []))
        acked = {}

        def publish(leaf):
            client = self.paho(gw, leaf)

            def topic_of(n):
                return (leaf.events_topic +
                        "seq=%d&src=%s&%%24.ct=application%%2Fjson&"
                        "%%24.cid=c-%d" % (n, leaf.device_id, n),
                        '{"seq": %d}' % n)

            acked[leaf.device_id] = publish_many(client, topic_of,
                                                 total // len(leaves))

        threads = [threading.Thread(target=publish, args=(leaf,))
                   for leaf in leaves]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DRAIN_TIMEOUT_S)
        expected = {(d, n) for d, ns in acked.items() for n in ns}
        self.assertEqual(len(expected), total, "every message was PUBACKed")
        self.assertEqual(metric(gw.metrics(), "edgeroute_upstream_connected"),
                         0)
        # The backlog, from the store: every message, at the default priority.
        counts, age = backlog(gw.metrics())
        self.assertEqual(counts["default"], total)
        self.assertEqual(sum(counts.values()), total)
        self.assertGreater(age, 0)

        broker.start()

        def key(m):
            props = user_properties(m)
            return (props.get("src"), int(props.get("seq", -1)))

        if kill_during_drain:
            # Kill as soon as the gateway reports the drain under way (the
            # counting subscriber may reconnect to the broker only later).
            # Scraped back to back (no sleep), so that the kill lands
            # early in the drain; `acked_at_kill` is what the old process
            # had sent when it was killed, as far as the last scrape saw.
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            acked_at_kill = 0
            while acked_at_kill < 1:
                self.assertLess(time.monotonic(), deadline,
                                "the drain did not start")
                acked_at_kill = metric(
                    gw.metrics(), "edgeroute_upstream_acknowledged_total") or 0
            gw.kill()
            self.assertLess(acked_at_kill, total,
                            "the kill came after the drain had ended")
            gw.start()
        received = counter.wait_for(
            lambda ms: expected <= {key(m) for m in ms}, DRAIN_TIMEOUT_S,
            "every acknowledged message")
        counter.stop()
        # In order per source (first arrivals; a resend may repeat some).
        order = first_arrivals(received, key)
        for leaf in leaves:
            seqs = [n for d, n in order if d == leaf.device_id]
            self.assertEqual(seqs, sorted(seqs),
                             "out of order for %s" % leaf.device_id)
        self.assertEqual(set(order), expected)
        # Properties mapped to MQTT 5.
        for m in received[:50]:
            d, n = key(m)
            self.assertEqual(m.topic, "edgeroute/%s//" % d)
            self.assertEqual(m.payload.decode(), '{"seq": %d}' % n)
            self.assertEqual(m.properties.ContentType, "application/json")
            self.assertEqual(m.properties.CorrelationData, b"c-%d" % n)
            self.assertGreater(m.properties.MessageExpiryInterval, 0)
        harness.wait_until(lambda: backlog_empty(gw), DRAIN_TIMEOUT_S,
                           "the backlog metrics to return to 0")
        text = gw.metrics()
        self.assertEqual(metric(text, "edgeroute_upstream_connected"), 1)
        return gw

    def test_broker_outage_10000_messages(self):
        self.outage(10000, kill_during_drain=False)

    def test_broker_outage_with_gateway_sigkill_during_drain(self):
        self.outage(10000, kill_during_drain=True)

    # -- MQTT 3.1.1 and TTL --------------------------------------------------

    def test_mqtt311_property_bag(self):
        broker = self.broker().start()
        counter = Counter(broker.port, "site/#", protocol=mqtt.MQTTv311).start()
        leaf = harness.device("leaf-311")
        gw = self.gateway(
            [leaf], TO_UPSTREAM, store=False,
            extra_args=["--upstream", "mqtt://127.0.0.1:%d" % broker.port,
                        "--upstream-protocol", "3.1.1",
                        "--upstream-topic", "site/{deviceId}"])
        client = self.paho(gw, leaf)
        for n in range(20):
            client.publish(leaf.events_topic +
                           "n=%d&%%24.mid=m-%d&k%%20x=v%%26w" % (n, n),
                           "body-%d" % n)
        received = counter.wait_for(lambda ms: len(ms) >= 20,
                                    harness.CLIENT_TIMEOUT_S, "20 messages")
        counter.stop()
        for n, m in enumerate(received[:20]):
            prefix = "site/leaf-311/"
            self.assertTrue(m.topic.startswith(prefix), m.topic)
            props = harness.parse_bag(m.topic[len(prefix):])
            self.assertEqual(props, {"$.mid": "m-%d" % n, "n": str(n),
                                     "k x": "v&w"})
            self.assertEqual(m.payload, b"body-%d" % n)

    def test_messages_past_ttl_are_not_delivered(self):
        broker = self.broker().start()
        counter = Counter(broker.port, "edgeroute/#").start()
        broker.stop()
        leaf = harness.device("leaf-ttl")
        routes = {
            "short": {"route": "FROM /messages/* WHERE kind = 'short' "
                               "INTO $upstream", "timeToLiveSecs": 3},
            "long": "FROM /messages/* WHERE kind = 'long' INTO $upstream",
        }
        gw = self.gateway(
            [leaf], routes,
            extra_args=["--upstream", "mqtt://127.0.0.1:%d" % broker.port])
        client = self.paho(gw, leaf)
        for n in range(50):
            client.publish(leaf.events_topic + "kind=short&n=%d" % n, "s")
        time.sleep(4)  # the TTL of the short ones passes (not a sync)
        for n in range(10):
            client.publish(leaf.events_topic + "kind=long&n=%d" % n, "l")
        broker.start()
        received = counter.wait_for(lambda ms: len(ms) >= 10, DRAIN_TIMEOUT_S,
                                    "the 10 messages within their TTL")
        # Give stragglers a moment: nothing short may follow.
        time.sleep(2)
        received = counter.snapshot()
        counter.stop()
        kinds = [user_properties(m).get("kind") for m in received]
        self.assertEqual(kinds.count("short"), 0, kinds)
        self.assertEqual(kinds.count("long"), 10)

    # -- a clustered engine: three nats-server nodes -------------------------

    def test_nats_cluster_node_killed_during_drain(self):
        cluster = NatsCluster(os.path.join(self.dir, "nats")).start()
        self.addCleanup(cluster.stop)
        # A persistent session (a JetStream consumer underneath) on the
        # node that stays up, made before anything is sent. JetStream may
        # still be electing its leaders: retry until the SUBACK grants QoS 1.
        deadline = time.monotonic() + 60
        while True:
            counter = Counter(cluster.mqtt_ports[2], "edgeroute/#",
                              protocol=mqtt.MQTTv311)
            granted = []
            counter.client.on_subscribe = (
                lambda c, u, mid, qos, g=granted: (g.extend(qos),
                                                   counter._subscribed.set()))
            try:
                counter.start()
            except (AssertionError, OSError):
                pass
            if granted and granted[0] == 1:
                break
            counter.stop()
            if time.monotonic() > deadline:
                fail("NATS never granted a QoS 1 subscription:\n" +
                     cluster.log())
            time.sleep(1)
        leaf = harness.device("leaf-nats")
        gw = self.gateway(
            [leaf], TO_UPSTREAM,
            extra_args=["--upstream-protocol", "3.1.1",
                        "--upstream-topic", "edgeroute/{deviceId}",
                        "--metrics", "127.0.0.1:0"] +
            sum((["--upstream", "mqtt://127.0.0.1:%d" % p]
                 for p in cluster.mqtt_ports), []))
        harness.wait_until(
            lambda: "connected to 127.0.0.1:%d" % cluster.mqtt_ports[0]
            in gw.log(), harness.CLIENT_TIMEOUT_S, "the gateway on node 0")
        total = 3000
        client = self.paho(gw, leaf)
        acked = []
        publisher = threading.Thread(target=lambda: acked.extend(publish_many(
            client, lambda n: (leaf.events_topic + "seq=%d" % n, "m%d" % n),
            total)))
        publisher.start()

        def seq(m):
            props = harness.parse_bag(m.topic[len("edgeroute/leaf-nats/"):])
            return int(props.get("seq", -1))

        counter.wait_for(lambda ms: len(ms) >= total // 10, DRAIN_TIMEOUT_S,
                         "a tenth of the messages through NATS")
        cluster.kill(0)
        publisher.join(DRAIN_TIMEOUT_S)
        self.assertEqual(len(acked), total)
        received = counter.wait_for(
            lambda ms: set(acked) <= {seq(m) for m in ms}, DRAIN_TIMEOUT_S,
            "every acknowledged message from the surviving nodes")
        counter.stop()
        self.assertEqual(set(seq(m) for m in received), set(acked))
        log = gw.log()
        self.assertTrue(
            "connected to 127.0.0.1:%d" % cluster.mqtt_ports[1] in log or
            "connected to 127.0.0.1:%d" % cluster.mqtt_ports[2] in log, log)
        self.assertGreaterEqual(
            metric(gw.metrics(), "edgeroute_upstream_reconnects_total"), 1)


    # -- a parent edgeroute over iothub:// -----------------------------------

    def test_iothub_child_to_parent(self):
        child_key = harness.random_key()
        child_as_device = harness.Identity("child-gw", None, key=child_key)
        sink = harness.Identity("parent-gw", "sink", key=harness.random_key())
        parent = self.gateway(
            [child_as_device, sink],
            {"fromChild": "FROM /messages/* WHERE $connectionDeviceId = "
                          "'child-gw' INTO "
                          'BrokeredEndpoint("/modules/sink/inputs/in")'},
            device="parent-gw", store=False)
        receiver = self.paho(parent, sink)
        receiver.subscribe(sink.inputs_filter())
        child = self.gateway(
            [child_as_device], TO_UPSTREAM, device="child-gw",
            extra_args=["--upstream", "iothub://localhost:%d" % parent.port,
                        "--upstream-key", child_key,
                        "--upstream-hub", harness.HUB,
                        "--upstream-ca", self.pki.ca_cert,
                        "--metrics", "127.0.0.1:0"])
        device = self.paho(child, child_as_device)
        for n in range(30):
            device.publish(child_as_device.events_topic +
                           "n=%d&%%24.mid=mid-%d&%%24.ct=text%%2Fplain" % (n, n),
                           "reading %d" % n)
        for n in range(30):
            m = receiver.receive(what="forwarded message %d" % n)
            d, mod, inp, props = harness.split_input_topic(m.topic)
            self.assertEqual((d, mod, inp), ("parent-gw", "sink", "in"))
            self.assertEqual(props["$.cdid"], "child-gw")
            self.assertEqual(props["n"], str(n))
            self.assertEqual(props["$.mid"], "mid-%d" % n)
            self.assertEqual(props["$.ct"], "text/plain")
            self.assertEqual(m.payload, b"reading %d" % n)
        text = child.metrics()
        self.assertEqual(metric(text, "edgeroute_upstream_connected"), 1)
        self.assertEqual(metric(text, "edgeroute_upstream_acknowledged_total"),
                         30)

    def iothub_upstream(self, parent_gw, key):
        return ["--upstream", "iothub://localhost:%d" % parent_gw.port,
                "--upstream-key", key, "--upstream-hub", harness.HUB,
                "--upstream-ca", self.pki.ca_cert, "--metrics", "127.0.0.1:0"]

    def test_three_level_hierarchy(self):
        """leaf -> gateway C -> gateway B -> gateway A -> mosquitto, each an
        `edgeroute run` with its own manifest, store and identities. A's
        route filters on the leaf's $connectionDeviceId, which it sees
        although the leaf is two gateways away; B is SIGKILLed under load and
        restarted, and nothing acknowledged is lost."""
        broker = self.broker().start()
        counter = Counter(broker.port, "edgeroute/#").start()
        key_b, key_c = harness.random_key(), harness.random_key()
        # A knows B (a gateway that signs in), C under B, the leaf under C.
        a = self.gateway(
            [harness.Identity("gw-b", key=key_b, gateway=True),
             harness.Identity("gw-c", parent="gw-b", gateway=True),
             harness.Identity("leaf-1", parent="gw-c")],
            {"leafUp": "FROM /messages/* WHERE $connectionDeviceId = 'leaf-1' "
                       "INTO $upstream"},
            device="gw-a",
            extra_args=["--upstream", "mqtt://127.0.0.1:%d" % broker.port,
                        "--metrics", "127.0.0.1:0"])
        # B listens on a fixed port, so that C finds it again after the
        # restart.
        b = self.gateway(
            [harness.Identity("gw-c", key=key_c, gateway=True),
             harness.Identity("leaf-1", parent="gw-c")],
            TO_UPSTREAM, device="gw-b",
            extra_args=["--mqtt", "127.0.0.1:%d" % harness.free_port()] +
            self.iothub_upstream(a, key_b))
        leaf = harness.device("leaf-1")
        c = self.gateway([leaf], TO_UPSTREAM, device="gw-c",
                         extra_args=self.iothub_upstream(b, key_c))
        client = self.paho(c, leaf)
        half = 300

        def topic_of(n):
            return (leaf.events_topic + "seq=%d" % n, '{"seq": %d}' % n)

        acked = publish_many(client, topic_of, half)
        counter.wait_for(lambda ms: len(ms) >= 10, DRAIN_TIMEOUT_S,
                         "the first messages at the top")
        # B goes away under load; C keeps what it cannot send in its store.
        b.kill()
        acked += [n + half for n in
                  publish_many(client, lambda n: topic_of(n + half), half)]
        b.start()
        self.assertEqual(len(acked), 2 * half, "every message was PUBACKed")

        def seq(m):
            return int(user_properties(m).get("seq", -1))

        received = counter.wait_for(
            lambda ms: set(acked) <= {seq(m) for m in ms}, DRAIN_TIMEOUT_S,
            "every acknowledged message at the top")
        counter.stop()
        order = first_arrivals(received, seq)
        self.assertEqual(order, sorted(order), "out of order")
        # A's route selected on the original identity, and the topic names it.
        self.assertEqual(received[0].topic, "edgeroute/leaf-1//")
        self.assertEqual(metric(a.metrics(), "edgeroute_upstream_connected"), 1)

    def test_scope_refusal_and_hop_limit(self):
        """A gateway may forward only for the identities in its scope; and a
        loop (P's upstream is Q, Q's is P) ends at the 5-gateway limit."""
        key_p, key_q = harness.random_key(), harness.random_key()
        p_port = harness.free_port()
        # Q's file: P is a gateway and the leaf sits under it.
        q = self.gateway(
            [harness.Identity("gw-p", key=key_p, gateway=True),
             harness.Identity("leaf-9", parent="gw-p"),
             harness.Identity("stranger", key=harness.random_key())],
            TO_UPSTREAM, device="gw-q",
            extra_args=["--upstream", "iothub://localhost:%d" % p_port,
                        "--upstream-key", key_q, "--upstream-hub", harness.HUB,
                        "--upstream-ca", self.pki.ca_cert,
                        "--metrics", "127.0.0.1:0"])
        # Out of scope (before P runs, so that its own connection to Q does
        # not take this identity over): as gw-p, publishing for "stranger".
        as_p = self.paho(q, harness.Identity("gw-p", key=key_p))
        as_p.publish("devices/stranger/messages/events/", "x", wait=False)
        as_p.wait_disconnected()
        as_p.close()
        harness.wait_until(lambda: "outside this gateway's scope" in q.log(),
                           harness.CLIENT_TIMEOUT_S, "the refusal in Q's log")
        # P's file: the leaf signs in here, and Q is a gateway through which
        # the leaf's messages come back (the loop).
        leaf = harness.device("leaf-9", parent="gw-q")
        p = self.gateway(
            [leaf, harness.Identity("gw-q", key=key_q, gateway=True)],
            TO_UPSTREAM, device="gw-p",
            extra_args=["--mqtt", "127.0.0.1:%d" % p_port] +
            self.iothub_upstream(q, key_p))
        client = self.paho(p, leaf)
        client.publish(leaf.events_topic + "loop=1", "around")

        def dropped():
            total = 0
            for gw in (p, q):
                m = re.search(r'^edgeroute_upstream_dropped_total'
                              r'\{reason="hop_limit"\} (\d+)$',
                              gw.metrics(), re.M)
                total += int(m.group(1)) if m else 0
            return total >= 1

        harness.wait_until(dropped, DRAIN_TIMEOUT_S,
                           "the hop limit to stop the loop")

    def test_iothub_wrong_key_is_refused_and_messages_wait(self):
        child_as_device = harness.Identity("child-gw", None,
                                           key=harness.random_key())
        sink = harness.Identity("parent-gw", "sink", key=harness.random_key())
        parent = self.gateway(
            [child_as_device, sink],
            {"fromChild": "FROM /messages/* INTO "
                          'BrokeredEndpoint("/modules/sink/inputs/in")'},
            device="parent-gw", store=False)
        receiver = self.paho(parent, sink)
        receiver.subscribe(sink.inputs_filter())
        child = self.gateway(
            [child_as_device], TO_UPSTREAM, device="child-gw",
            extra_args=["--upstream", "iothub://localhost:%d" % parent.port,
                        "--upstream-key", harness.random_key(),
                        "--upstream-hub", harness.HUB,
                        "--upstream-ca", self.pki.ca_cert,
                        "--metrics", "127.0.0.1:0"])
        device = self.paho(child, child_as_device)
        device.publish(child_as_device.events_topic + "n=1", "x")
        harness.wait_until(
            lambda: "refused" in child.log(), harness.CLIENT_TIMEOUT_S,
            "the parent to refuse the child's CONNECT")
        receiver.receive_none(1)
        text = child.metrics()
        self.assertEqual(metric(text, "edgeroute_upstream_connected"), 0)
        self.assertGreater(
            metric(text, "edgeroute_upstream_connect_failures_total"), 0)


    # -- SAS token renewal, X.509 sign-in, mqtts:// --------------------------

    def parent_with_sink(self, children):
        """A parent edgeroute that sends everything to module `sink`, and a
        client subscribed to it."""
        sink = harness.Identity("parent-gw", "sink", key=harness.random_key())
        parent = self.gateway(
            children + [sink],
            {"toSink": "FROM /messages/* INTO "
                       'BrokeredEndpoint("/modules/sink/inputs/in")'},
            device="parent-gw", store=False)
        receiver = self.paho(parent, sink)
        receiver.subscribe(sink.inputs_filter())
        return parent, receiver

    @staticmethod
    def collect(receiver, received, done, what):
        """Adds what `receiver` gets to `received` ({device: {seq}}) until
        done(received)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while not done(received):
            left = deadline - time.monotonic()
            if left <= 0:
                fail("timed out waiting for %s; got %s" % (
                    what, {d: len(s) for d, s in received.items()}))
            m = receiver.receive(timeout=left, what=what)
            _, _, _, props = harness.split_input_topic(m.topic)
            received.setdefault(props["$.cdid"], set()).add(
                int(props["seq"]))

    def test_iothub_sas_token_renewal(self):
        """With 10-second tokens the child reconnects with a new token before
        the old one expires, as a TLS relay in front of the parent sees, and
        nothing is lost across the renewals."""
        child_key = harness.random_key()
        child = harness.Identity("child-gw", None, key=child_key)
        parent, receiver = self.parent_with_sink([child])
        relay = TlsRelay(self.pki, parent.port)
        self.addCleanup(relay.close)
        ttl = 10
        gw = self.gateway(
            [child], TO_UPSTREAM, device="child-gw",
            extra_args=["--upstream", "iothub://localhost:%d" % relay.port,
                        "--upstream-key", child_key,
                        "--upstream-hub", harness.HUB,
                        "--upstream-ca", self.pki.ca_cert,
                        "--upstream-token-ttl", str(ttl),
                        "--metrics", "127.0.0.1:0"])
        device = self.paho(gw, child)
        # Publish steadily until two renewals have gone through.
        sent = 0
        deadline = time.monotonic() + 6 * ttl
        while len(relay.snapshot()) < 3 or sent < 20:
            if time.monotonic() > deadline:
                fail("fewer than 3 CONNECTs through the relay in %d s:\n%s" %
                     (6 * ttl, gw.log()))
            device.publish(child.events_topic + "seq=%d" % sent, "m%d" % sent)
            sent += 1
            time.sleep(0.02)  # pacing, not a sync
        received = {}
        self.collect(receiver, received,
                     lambda r: r.get("child-gw", set()) >= set(range(sent)),
                     "all %d messages across the renewals" % sent)
        self.assertEqual(received["child-gw"], set(range(sent)))
        connects = relay.snapshot()
        start = connects[0][0]
        sys.stderr.write(
            "%d messages; CONNECTs at +s (token expiry +s): %s\n" %
            (sent, ", ".join("%.2f (%.2f)" % (at - start,
                                              token_expiry(token) - start)
                             for at, token in connects)))
        for at, token in connects:
            lifetime = token_expiry(token) - at
            # Made just before the CONNECT, expiry in whole seconds.
            self.assertTrue(ttl - 3 < lifetime <= ttl, lifetime)
        for (t0, token0), (t1, token1) in zip(connects, connects[1:]):
            self.assertLess(t1, token_expiry(token0),
                            "a new token before the old one expired")
            self.assertGreater(t1 - t0, 0.6 * ttl, "renewed at about 80%")
            self.assertGreater(token_expiry(token1), token_expiry(token0))
        self.assertGreaterEqual(gw.log().count("renewing the SAS token"), 2)
        text = gw.metrics()
        self.assertEqual(
            metric(text, "edgeroute_upstream_connect_failures_total"), 0)
        self.assertGreaterEqual(
            metric(text, "edgeroute_upstream_reconnects_total"), 2)

    def test_iothub_x509_sign_in(self):
        """Children sign in to the parent with certificates: one listed by
        thumbprint (self-signed), one by CA and subject CN. A third presents
        a certificate that is not the one listed: refused, reported, backed
        off, its messages kept until the parent lists that certificate."""
        tp_cert, tp_key, tp_print = self.pki.self_signed_client(
            "child-tp", "child-tp")
        ca_cert, ca_key, _ = self.pki.client("child-ca", "child-ca")
        _, _, listed_print = self.pki.self_signed_client("listed", "child-bad")
        bad_cert, bad_key, bad_print = self.pki.self_signed_client(
            "presented", "child-bad")
        parent_entries = [
            harness.Identity("child-tp", thumbprint_hex=tp_print),
            harness.Identity("child-ca", x509_ca=True),
            harness.Identity("child-bad", thumbprint_hex=listed_print),
        ]
        parent, receiver = self.parent_with_sink(parent_entries)
        children = {}
        for name, cert, key in (("child-tp", tp_cert, tp_key),
                                ("child-ca", ca_cert, ca_key),
                                ("child-bad", bad_cert, bad_key)):
            own = harness.device(name)
            gw = self.gateway(
                [own], TO_UPSTREAM, device=name,
                extra_args=["--upstream", "iothub://localhost:%d" % parent.port,
                            "--upstream-cert", cert, "--upstream-cert-key", key,
                            "--upstream-hub", harness.HUB,
                            "--upstream-ca", self.pki.ca_cert,
                            "--metrics", "127.0.0.1:0"])
            client = self.paho(gw, own)
            for n in range(10):
                client.publish(own.events_topic + "seq=%d" % n, "x509 %d" % n)
            children[name] = gw
        received = {}
        self.collect(receiver, received,
                     lambda r: all(len(r.get(c, ())) == 10
                                   for c in ("child-tp", "child-ca")),
                     "the messages of the certificate children")
        bad = children["child-bad"]
        harness.wait_until(
            lambda: (metric(bad.metrics(),
                            "edgeroute_upstream_connect_failures_total") or 0)
            >= 1, harness.CLIENT_TIMEOUT_S, "the refusal to be counted")
        self.assertIn("refused", bad.log())
        # Backing off: after failure k the delay is at least 0.1 s * 2^(k-1)
        # (200 ms doubling, jitter down to half), so from failure f on, the
        # next three attempts take at least the delays after f+1 and f+2.
        failures = metric(bad.metrics(),
                          "edgeroute_upstream_connect_failures_total")
        since = time.monotonic()
        harness.wait_until(
            lambda: metric(bad.metrics(),
                           "edgeroute_upstream_connect_failures_total")
            >= failures + 3, DRAIN_TIMEOUT_S, "three more attempts")
        self.assertGreater(time.monotonic() - since,
                           min(0.3 * 2 ** failures, 7.5) * 0.9)
        text = bad.metrics()
        self.assertEqual(metric(text, "edgeroute_upstream_connected"), 0)
        counts, _ = backlog(text)
        self.assertEqual(counts["default"], 10)  # kept
        self.assertNotIn("child-bad", received)
        # The parent lists the presented certificate: the backlog drains.
        parent_entries[2] = harness.Identity("child-bad",
                                             thumbprint_hex=bad_print)
        parent.write_identities(parent_entries + [receiver.identity])
        parent.reload()
        self.collect(receiver, received,
                     lambda r: len(r.get("child-bad", ())) == 10,
                     "child-bad's kept messages")
        self.assertEqual(received["child-bad"], set(range(10)))
        harness.wait_until(lambda: backlog_empty(bad), DRAIN_TIMEOUT_S,
                           "child-bad's backlog to return to 0")

    def test_mqtts_broker_and_wrong_ca(self):
        """mqtts:// to Debian's mosquitto with a TLS listener, checked
        against --upstream-ca; a gateway given another CA refuses the
        broker and keeps its messages, which arrive once it trusts the
        right CA."""
        broker = harness.Mosquitto(os.path.join(self.dir, "tls-broker"),
                                   self.pki)
        self.addCleanup(broker.stop)
        counter = Counter(broker.port, "edgeroute/#",
                          ca=self.pki.ca_cert).start()
        self.addCleanup(counter.stop)
        other_ca = harness.Pki(os.path.join(self.dir, "other-pki")).ca_cert
        upstream = ["--upstream", "mqtts://localhost:%d" % broker.port,
                    "--metrics", "127.0.0.1:0", "--upstream-ca"]
        good_leaf, bad_leaf = harness.device("leaf-ok"), harness.device(
            "leaf-bad")
        good = self.gateway([good_leaf], TO_UPSTREAM,
                            extra_args=upstream + [self.pki.ca_cert])
        bad = self.gateway([bad_leaf], TO_UPSTREAM, device="edge-gw-2",
                           extra_args=upstream + [other_ca])
        for gw, leaf in ((good, good_leaf), (bad, bad_leaf)):
            client = self.paho(gw, leaf)
            for n in range(10):
                client.publish(leaf.events_topic + "seq=%d" % n, "tls %d" % n)

        def from_leaf(messages, device_id):
            return {int(user_properties(m)["seq"]) for m in messages
                    if m.topic == "edgeroute/%s//" % device_id}

        counter.wait_for(lambda ms: from_leaf(ms, "leaf-ok") == set(range(10)),
                         DRAIN_TIMEOUT_S, "leaf-ok's messages over TLS")
        harness.wait_until(
            lambda: (metric(bad.metrics(),
                            "edgeroute_upstream_connect_failures_total") or 0)
            >= 2, harness.CLIENT_TIMEOUT_S, "the wrong CA to fail connects")
        self.assertIn("cannot connect to localhost:%d (mqtts)" % broker.port,
                      bad.log())
        text = bad.metrics()
        self.assertEqual(metric(text, "edgeroute_upstream_connected"), 0)
        self.assertEqual(metric(text, "edgeroute_upstream_sent_total"), 0)
        self.assertEqual(backlog(text)[0]["default"], 10)
        self.assertEqual(from_leaf(counter.snapshot(), "leaf-bad"), set())
        # The same store, the right CA: everything kept arrives.
        bad.stop()
        bad.extra_args[bad.extra_args.index(other_ca)] = self.pki.ca_cert
        bad.start()
        counter.wait_for(
            lambda ms: from_leaf(ms, "leaf-bad") == set(range(10)),
            DRAIN_TIMEOUT_S, "leaf-bad's kept messages")


if __name__ == "__main__":
    harness.main()
