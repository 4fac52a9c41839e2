"""Crash torture of a real `edgeroute run`: SIGKILL under load, restart on
the same store, and after every restart each acknowledged message reaches
both subscribers, in order per producer, duplicated only across a kill.

Load: two MQTT devices (python3-paho-mqtt, QoS 1, over TLS) and two native
modules (gateway/python's client, TelemetryAck) publish numbered messages;
one route takes every message to an MQTT module's input and another to a
native module's input. "Acknowledged" means PUBACKed (MQTT) or answered
with a TelemetryAck of code 0 (native); a message the gateway never
acknowledged may or may not arrive.

Kill moments, chosen at random each round:
  * random: after a random time under load (checkpoints are written as the
    subscribers acknowledge, so most of these land among checkpoint writes);
  * cleanup: the store is given a small --store-max-bytes, so appends that
    reach it run the cleanup (and, every few runs, a compaction) inline; the
    kill comes as soon as the metrics endpoint shows the store at its limit
    or just after a cleanup made it shrink;
  * checkpoint: as soon as the metrics show a subscriber's acknowledgements
    moving (each one writes a checkpoint).

After each restart the test waits until every message acknowledged before
the kill has been received by both subscribers. A duplicate is allowed only
when the two copies arrived over different connections (a redelivery after
a restart: at-least-once); within one connection it is an error.

Kills: 40 with --durability process and 10 with --durability power.
EDGEROUTE_CRASH_KILLS=N runs N in all (four fifths process, one fifth
power), e.g.
  bazel test //tests/crash:gateway_crash_test --test_output=streamed \
    --test_timeout=7200 --test_env=EDGEROUTE_CRASH_KILLS=1000
EDGEROUTE_CRASH_SEED fixes the random choices (default: 1).
"""

import collections
import os
import random
import re
import shutil
import ssl
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mqtt"))
sys.path.insert(0, os.path.join(HERE, "..", "upstream"))

import paho.mqtt.client as mqtt  # noqa: E402

import harness  # noqa: E402
from harness import fail  # noqa: E402
from upstream_test import UpstreamGateway, metric  # noqa: E402

sys.path.insert(0, os.path.dirname(
    harness.runfile("gateway/python/edgeroute_client.py")))
import edgeroute_client as er  # noqa: E402

ROUTES = {
    "toMqttModule": 'FROM /messages/* INTO '
                    'BrokeredEndpoint("/modules/msub/inputs/in")',
    "toNativeModule": 'FROM /messages/* INTO '
                      'BrokeredEndpoint("/modules/nsub/inputs/in")',
}
# Small enough that appends reach it every second or so under this load,
# which runs the cleanup inline (store.h, StoreOptions::max_bytes).
STORE_MAX_BYTES = 256 * 1024
# Unacknowledged publishes a producer keeps in flight, and the most it sends
# per second: the subscribers keep up, so the store fills with delivered
# messages (cleanup) rather than with a backlog (refusals).
WINDOW = 16
RATE = 150
# How long the messages acknowledged before a kill may take to arrive after
# the restart, on a loaded 2-core machine.
DELIVERY_TIMEOUT_S = 120
# How long a round waits for load before it kills anyway.
LOAD_TIMEOUT_S = 60


def kills_from_env():
    total = int(os.environ.get("EDGEROUTE_CRASH_KILLS") or 50)
    power = max(1, total // 5)
    return total - power, power


class Ledger:
    """What the producers had acknowledged and what the subscribers
    received. Keys are (producer, sequence number)."""

    def __init__(self):
        self.lock = threading.Condition()
        # Acknowledged keys, by the gateway generation that acknowledged them.
        self.acked = collections.defaultdict(list)
        self.acked_total = 0
        # subscriber -> key -> number of arrivals
        self.arrivals = {"mqtt": collections.Counter(),
                         "native": collections.Counter()}
        # subscriber -> producer -> sequence numbers in order of first arrival
        self.first_order = {"mqtt": collections.defaultdict(list),
                            "native": collections.defaultdict(list)}
        # subscriber -> set of (connection, key): duplicates on one
        # connection are errors
        self.seen_on = {"mqtt": set(), "native": set()}
        self.errors = []
        self.refused = 0

    def ack(self, generation, key):
        with self.lock:
            self.acked[generation].append(key)
            self.acked_total += 1
            self.lock.notify_all()

    def arrive(self, subscriber, connection, key):
        with self.lock:
            n = self.arrivals[subscriber][key]
            self.arrivals[subscriber][key] = n + 1
            if n == 0:
                self.first_order[subscriber][key[0]].append(key[1])
            tag = (connection, key)
            if tag in self.seen_on[subscriber]:
                self.errors.append("%s subscriber got %r twice on connection "
                                   "%d" % (subscriber, key, connection))
            self.seen_on[subscriber].add(tag)
            self.lock.notify_all()

    def acked_in(self, generation):
        with self.lock:
            return len(self.acked.get(generation, ()))

    def missing(self, keys):
        """The keys one of the subscribers has not received (caller holds
        the lock)."""
        return [k for k in keys
                if not self.arrivals["mqtt"][k] or
                not self.arrivals["native"][k]]

    def wait_delivered(self, generations, timeout, what):
        """Waits until both subscribers received every message acknowledged
        by the gateway generations `generations`."""
        deadline = time.monotonic() + timeout
        with self.lock:
            pending = [k for g in generations for k in self.acked.get(g, ())]
            while True:
                pending = self.missing(pending)
                if not pending:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("%s: %d acknowledged messages not delivered within "
                         "%d s, e.g. %r (mqtt has %d, native has %d)" %
                         (what, len(pending), timeout, pending[:5],
                          self.arrivals["mqtt"][pending[0]],
                          self.arrivals["native"][pending[0]]))
                self.lock.wait(min(left, 0.5))


class GatewayHandle:
    """The gateway the clients should talk to: its MQTT port, native
    socket and generation (one per process), or down."""

    def __init__(self):
        self.cond = threading.Condition()
        self.generation = 0
        self.port = None
        self.socket = None
        self.stopping = False

    def up(self, gw):
        with self.cond:
            self.generation += 1
            self.port = gw.port
            self.socket = gw.native_socket
            self.cond.notify_all()

    def down(self):
        with self.cond:
            self.port = None

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def wait_up(self, finished):
        """Blocks until a gateway is up; returns (generation, port, socket),
        or None once finished() or the test is stopping."""
        with self.cond:
            while self.port is None and not self.stopping and not finished():
                self.cond.wait(0.1)
            if self.stopping or finished():
                return None
            return self.generation, self.port, self.socket


class Pacer:
    """Spaces one producer's messages at RATE per second."""

    def __init__(self):
        self.next = time.monotonic()

    def ready(self):
        now = time.monotonic()
        if now < self.next:
            return False
        self.next = max(self.next + 1.0 / RATE, now - 0.1)
        return True


class Worker(threading.Thread):
    """A client that follows the gateway from generation to generation."""

    def __init__(self, name, handle, ledger):
        super().__init__(name=name, daemon=True)
        self.handle = handle
        self.ledger = ledger
        self.generation = 0
        self.connected_generation = 0
        self.failure = None

    def finished(self):
        return self.handle.stopping

    def replaced(self):
        """True once the gateway this session talks to was killed."""
        return (self.handle.generation != self.generation or
                self.handle.port is None)

    def run(self):
        try:
            while True:
                up = self.handle.wait_up(self.finished)
                if up is None:
                    return
                self.generation, port, sock = up
                try:
                    self.session(port, sock)
                except (OSError, er.GatewayError, ConnectionError,
                        ssl.SSLError, ValueError):
                    pass  # the gateway went away or closed the connection
                if self.handle.generation == self.generation:
                    # Closed by a live gateway (e.g. the store was full):
                    # connect again.
                    time.sleep(0.05)
        except Exception as e:  # pylint: disable=broad-except
            self.failure = "%s: %r" % (self.name, e)
            raise


def paho_client(identity, pki):
    """A paho client for `identity` over TLS with a SAS token. The caller
    drives its network loop (client.loop) on its own thread: paho 1.6's
    loop thread dies of a TLS error when the peer vanishes mid-write,
    without calling on_disconnect."""
    client = mqtt.Client(client_id=identity.client_id, clean_session=True,
                         protocol=mqtt.MQTTv311, reconnect_on_failure=False)
    client.tls_set(ca_certs=pki.ca_cert, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.username_pw_set(identity.username, identity.password())
    return client


def paho_connect(client, port, worker):
    """Connects and runs the loop until the CONNACK; False if refused or
    the gateway went away."""
    connected = []
    client.on_connect = lambda c, u, f, rc: connected.append(rc)
    client.connect("localhost", port, keepalive=30)
    deadline = time.monotonic() + harness.CLIENT_TIMEOUT_S
    while not connected and time.monotonic() < deadline:
        if worker.replaced() or client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
            return False
    return connected == [0]


class MqttProducer(Worker):
    """A device publishing QoS 1 telemetry `seq=N&src=NAME` with paho, up to
    WINDOW unacknowledged at a time. A new connection per gateway process;
    nothing is published again (paho's resend on reconnect is not used)."""

    def __init__(self, identity, pki, handle, ledger, stop):
        super().__init__("mqtt-" + identity.device_id, handle, ledger)
        self.identity = identity
        self.pki = pki
        self.stop = stop
        self.next_seq = 1
        self.pacer = Pacer()

    def finished(self):
        return self.stop.is_set() or self.handle.stopping

    def session(self, port, _):
        client = paho_client(self.identity, self.pki)
        client.max_inflight_messages_set(WINDOW)
        in_flight = collections.deque()
        try:
            if not paho_connect(client, port, self):
                return
            while not self.stop.is_set() and not self.replaced():
                while in_flight and in_flight[0][1].is_published():
                    self.ledger.ack(self.generation,
                                    (self.name, in_flight.popleft()[0]))
                if len(in_flight) < WINDOW and self.pacer.ready():
                    seq = self.next_seq
                    self.next_seq += 1
                    topic = self.identity.events_topic + "seq=%d&src=%s" % (
                        seq, self.name)
                    info = client.publish(topic, b'{"seq":%d}' % seq, qos=1)
                    in_flight.append((seq, info))
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        return
                if client.loop(0.002) != mqtt.MQTT_ERR_SUCCESS:
                    return
        finally:
            # PUBACKs that came before the connection ended count.
            for seq, info in in_flight:
                if info.is_published():
                    self.ledger.ack(self.generation, (self.name, seq))
            try:
                client.disconnect()
            except Exception:  # pylint: disable=broad-except
                pass


class AckingClient(er.Client):
    """The native client with each TelemetryAck's sequence and code."""

    def poll_acks(self, timeout):
        """[(sequence, code)] of the TelemetryAcks read within `timeout`."""
        acks = []
        deadline = time.monotonic() + timeout
        while True:
            frame = self._read_frame(deadline)
            if frame is None:
                return acks
            kind, body = frame
            if kind == er.TELEMETRY_ACK:
                acks.append((body.scalar(0, "<Q"), body.scalar(1, "<H")))
                deadline = time.monotonic()  # take what is buffered, no more
                if not self._rbuf:
                    return acks
            else:
                self._handle(kind, body)


class NativeProducer(Worker):
    """A module sending telemetry on output "out" with TelemetryAck, up to
    WINDOW unacknowledged at a time."""

    def __init__(self, identity, handle, ledger, stop):
        super().__init__("native-" + identity.module_id, handle, ledger)
        self.identity = identity
        self.stop = stop
        self.next_seq = 1
        self.pacer = Pacer()

    def finished(self):
        return self.stop.is_set() or self.handle.stopping

    def session(self, _, sock):
        with AckingClient("unix:" + sock, timeout=10) as client:
            client.hello(harness.GATEWAY_DEVICE, self.identity.module_id,
                         sas_token=self.identity.password())
            pending = {}  # protocol sequence -> our sequence number
            while not self.stop.is_set() and not self.replaced():
                if len(pending) < WINDOW and self.pacer.ready():
                    seq = self.next_seq
                    self.next_seq += 1
                    wire = client.send_telemetry(
                        "out", b'{"seq":%d}' % seq,
                        {"seq": str(seq), "src": self.name}, want_ack=True)
                    pending[wire] = seq
                for wire, code in client.poll_acks(0.002):
                    seq = pending.pop(wire, None)
                    if seq is None:
                        fail("%s: a TelemetryAck for sequence %d it never "
                             "sent" % (self.name, wire))
                    if code == 0:
                        self.ledger.ack(self.generation, (self.name, seq))
                    else:
                        self.ledger.refused += 1


class MqttSubscriber(Worker):
    """The MQTT module `msub`: subscribes to its inputs; paho PUBACKs each
    delivery after recording it."""

    def __init__(self, identity, pki, handle, ledger):
        super().__init__("mqtt-subscriber", handle, ledger)
        self.identity = identity
        self.pki = pki
        self.connection = 0

    def session(self, port, _):
        self.connection += 1
        connection = self.connection
        client = paho_client(self.identity, self.pki)
        subscribed = []

        def on_message(c, userdata, message):
            _, _, _, props = harness.split_input_topic(message.topic)
            self.ledger.arrive("mqtt", connection,
                               (props["src"], int(props["seq"])))

        client.on_subscribe = lambda *args: subscribed.append(True)
        client.on_message = on_message
        try:
            if not paho_connect(client, port, self):
                return
            client.subscribe(self.identity.inputs_filter(), qos=1)
            while not self.handle.stopping and not self.replaced():
                if subscribed:
                    self.connected_generation = self.generation
                if client.loop(0.1) != mqtt.MQTT_ERR_SUCCESS:
                    return
        finally:
            try:
                client.disconnect()
            except Exception:  # pylint: disable=broad-except
                pass


class NativeSubscriber(Worker):
    """The native module `nsub`: acks each delivery after recording it."""

    def __init__(self, identity, handle, ledger):
        super().__init__("native-subscriber", handle, ledger)
        self.identity = identity
        self.connection = 0

    def session(self, _, sock):
        self.connection += 1
        with er.Client("unix:" + sock, timeout=10) as client:
            client.hello(harness.GATEWAY_DEVICE, self.identity.module_id,
                         sas_token=self.identity.password())
            client.subscribe("in")
            self.connected_generation = self.generation
            while not self.handle.stopping and not self.replaced():
                d = client.receive(timeout=0.2)
                if d is None:
                    continue
                props = d.message.properties
                self.ledger.arrive("native", self.connection,
                                   (props["src"], int(props["seq"])))
                client.ack(d.delivery_id)


class GatewayCrashTest(harness.GatewayTestCase):

    def torture(self, kills, durability):
        rng = random.Random(int(os.environ.get("EDGEROUTE_CRASH_SEED") or 1))
        leaves = [harness.device("leaf-%d" % i) for i in range(2)]
        producers = [harness.module("nprod%d" % i) for i in range(2)]
        msub = harness.module("msub")
        nsub = harness.module("nsub")
        workdir = os.path.join(self.dir, "gw")
        os.makedirs(workdir)
        gw = UpstreamGateway(
            workdir, self.pki, leaves + producers + [msub, nsub], ROUTES,
            extra_args=["--metrics", "127.0.0.1:0",
                        "--durability", durability,
                        "--store-max-bytes", str(STORE_MAX_BYTES)])
        self.gateways.append(gw)
        ledger = Ledger()
        handle = GatewayHandle()
        stop = threading.Event()
        subscribers = [MqttSubscriber(msub, self.pki, handle, ledger),
                       NativeSubscriber(nsub, handle, ledger)]
        workers = subscribers + [
            MqttProducer(leaf, self.pki, handle, ledger, stop)
            for leaf in leaves] + [
            NativeProducer(p, handle, ledger, stop) for p in producers]
        for w in workers:
            w.start()
        modes = collections.Counter()
        started = time.monotonic()
        try:
            gw.start()
            handle.up(gw)
            for k in range(kills):
                generation = handle.generation
                # Load first: both subscribers connected and acknowledged
                # messages in this generation.
                self.wait_for_load(gw, workers, subscribers, ledger, generation)
                # Everything the killed process acknowledged arrived (what
                # earlier ones acknowledged was checked in earlier rounds;
                # the end checks everything again).
                ledger.wait_delivered([generation - 1], DELIVERY_TIMEOUT_S,
                                      "after restart %d" % k)
                modes[self.wait_for_kill_moment(gw, rng)] += 1
                handle.down()
                gw.kill()
                gw.start()
                handle.up(gw)
                if (k + 1) % 10 == 0:
                    sys.stderr.write("%d kills, %d messages acknowledged, "
                                     "%.0f s\n" % (k + 1, ledger.acked_total,
                                                   time.monotonic() - started))
            # The last process: stop the load, then everything arrives.
            stop.set()
            harness.wait_until(
                lambda: self.check_workers(workers) or
                all(not w.is_alive() for w in workers
                    if isinstance(w, (MqttProducer, NativeProducer))),
                harness.CLIENT_TIMEOUT_S, "the producers to stop")
            ledger.wait_delivered(range(handle.generation + 1),
                                  DELIVERY_TIMEOUT_S, "at the end")
        finally:
            stop.set()
            handle.stop()
            for w in workers:
                w.join(harness.STOP_TIMEOUT_S)
        self.check_workers(workers)
        self.assertEqual(ledger.errors, [])
        self.report(ledger, kills, durability, modes,
                    time.monotonic() - started)

    def wait_for_load(self, gw, workers, subscribers, ledger, generation):
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_workers(workers)
            if (all(s.connected_generation == generation
                    for s in subscribers) and
                    ledger.acked_in(generation) > 0):
                return
            time.sleep(0.02)
        self.dump_gateway(gw)
        fail("no load on gateway generation %d within %d s: subscribers on "
             "generations %s, %d messages acknowledged in it; workers alive: "
             "%s" % (generation, LOAD_TIMEOUT_S,
                     [s.connected_generation for s in subscribers],
                     ledger.acked_in(generation),
                     {w.name: w.is_alive() for w in workers}))

    @staticmethod
    def dump_gateway(gw):
        """The stuck gateway's metrics and thread stacks, for the log."""
        try:
            sys.stderr.write("---- metrics\n%s\n" % gw.metrics())
        except Exception as e:  # pylint: disable=broad-except
            sys.stderr.write("---- no metrics: %r\n" % e)
        ss = shutil.which("ss")
        if ss:
            out = harness.run([ss, "-tan"], check=False)
            sys.stderr.write("---- sockets of MQTT port %s\n%s\n" % (
                gw.port, "\n".join(line for line in out.stdout.splitlines()
                                   if ":%s " % gw.port in line)))
        stack = shutil.which("eu-stack")
        if stack and gw.process is not None:
            out = harness.run([stack, "-p", str(gw.process.pid)], check=False)
            sys.stderr.write("---- threads\n%s%s\n" % (out.stdout, out.stderr))

    @staticmethod
    def check_workers(workers):
        for w in workers:
            if w.failure:
                fail(w.failure)
        return False

    def wait_for_kill_moment(self, gw, rng):
        """Waits for a kill moment of a random kind; returns its name."""
        mode = rng.choice(["random", "random", "cleanup", "checkpoint"])
        if mode == "random":
            time.sleep(rng.uniform(0.05, 1.5))
            return mode
        deadline = time.monotonic() + 10
        text = gw.metrics()
        if mode == "cleanup":
            # At the limit the next append runs the cleanup; a smaller value
            # than last time means one just ran (or is running).
            last = metric(text, "edgeroute_store_bytes") or 0
            while time.monotonic() < deadline:
                now = metric(gw.metrics(), "edgeroute_store_bytes") or 0
                if now >= STORE_MAX_BYTES * 0.97 or now < last:
                    time.sleep(rng.uniform(0, 0.02))
                    return "cleanup (store full)" if now >= last else \
                        "cleanup (just ran)"
                last = now
            return "cleanup-timeout"
        # checkpoint: the subscribers' acknowledgements moving.
        before = self.acks_metric(text)
        while time.monotonic() < deadline:
            if self.acks_metric(gw.metrics()) > before:
                return mode
        return "checkpoint-timeout"

    @staticmethod
    def acks_metric(text):
        """Deliveries acknowledged by the subscribers, all endpoints."""
        return sum(int(n) for n in re.findall(
            r"^edgeroute_endpoint_delivered_total\{[^}]*\} (\d+)$", text,
            re.M))

    def report(self, ledger, kills, durability, modes, seconds):
        with ledger.lock:
            acked = set(k for keys in ledger.acked.values() for k in keys)
            summary = []
            for sub in ("mqtt", "native"):
                arrivals = ledger.arrivals[sub]
                delivered = len(arrivals)
                copies = sum(arrivals.values())
                missing = [k for k in acked if not arrivals[k]]
                summary.append("%s subscriber: %d delivered (%d of them "
                               "acknowledged), %d duplicates, %d lost" %
                               (sub, delivered, len(acked) - len(missing),
                                copies - delivered, len(missing)))
                self.assertEqual(missing, [], "%s subscriber lost "
                                 "acknowledged messages" % sub)
                for producer, order in ledger.first_order[sub].items():
                    self.assertEqual(
                        order, sorted(order),
                        "%s subscriber: %s out of order" % (sub, producer))
                    self.assertEqual(len(order), len(set(order)))
        sys.stderr.write(
            "gateway crash torture (%s durability): %d kills (%s) in %.0f s; "
            "%d messages acknowledged, %d refused (store full); %s\n" %
            (durability, kills, ", ".join("%s %d" % kv for kv in
                                           sorted(modes.items())),
             seconds, ledger.acked_total, ledger.refused, "; ".join(summary)))
        self.assertGreater(ledger.acked_total, kills)

    def test_sigkill_with_process_durability(self):
        self.torture(kills_from_env()[0], "process")

    def test_sigkill_with_power_durability(self):
        self.torture(kills_from_env()[1], "power")


if __name__ == "__main__":
    harness.main()
