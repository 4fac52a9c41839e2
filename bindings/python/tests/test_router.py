"""The router through Python: sinks, sends, acknowledgements, metrics,
route updates, store-and-forward, errors."""

import threading

import pytest

import edgeroute
from edgeroute import Message, Outcome, Router


class Collector:
    """A sink that records what it receives (thread-safe)."""

    def __init__(self, result=None):
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.bodies = []
        self.batches = []
        self.result = result

    def __call__(self, batch):
        with self.lock:
            self.batches.append((batch.endpoint, batch.priority,
                                 batch.attempt, len(batch)))
            self.bodies.extend(d.body for d in batch)
            self.last = list(batch)
            self.done.notify_all()
        return self.result

    def wait_for(self, n, timeout=30.0):
        with self.lock:
            self.done.wait_for(lambda: len(self.bodies) >= n, timeout)
            return list(self.bodies)


def test_routing_to_two_endpoints(manifest):
    up, mod = Collector(), Collector()
    with Router(manifest) as router:
        router.set_sink("iothub", up)
        router.set_sink("DEV/filter/in1", mod)
        router.send(b"hot", properties={"level": "critical"})
        router.send(Message(b"reading", {"level": "info"},
                            {"connectionModuleId": "sensor"}))
        router.send("ignored", properties={"level": "info"})
        router.wait_idle()
        assert up.bodies == [b"hot"]
        assert mod.bodies == [b"reading"]
        assert up.batches[0][:3] == ("iothub", 2000000000, 1)
        assert mod.batches[0][:2] == ("DEV/filter/in1", 1)
        delivery = mod.last[0]
        assert delivery.properties == {"level": "info"}
        assert delivery.system_properties == {"connectionModuleId": "sensor"}
        assert delivery.source == "/messages/modules/sensor"
        assert isinstance(delivery.enqueue_time_us, int)
        m = router.metrics()
        assert (m.received, m.orphaned, m.delivered) == (3, 1, 2)
        assert router.endpoint_metrics("iothub").delivered == 1
        assert router.endpoint_metrics("DEV/filter/in1").has_sink is True
        text = router.prometheus_text()
        assert "edgeroute_messages_received_total 3" in text


def test_send_batch_shares_properties(manifest):
    up = Collector()
    with Router(manifest) as router:
        router.set_sink("iothub", up)
        bodies = [b"m%d" % i for i in range(1000)]
        assert router.send_batch(bodies, properties={"level": "critical"}) \
            == 1000
        # Mixed items: Message objects carry their own properties.
        n = router.send_batch([b"x", Message(b"y", {"level": "critical"}),
                               "z"], properties={"level": "critical"})
        assert n == 3
        # Without properties nothing matches the "critical" route.
        assert router.send_batch([b"a", b"b"]) == 2
        router.wait_idle()
        assert up.bodies[:1000] == bodies
        assert up.bodies[1000:] == [b"x", b"y", b"z"]
        assert router.metrics().orphaned == 2


def test_send_encoded(manifest):
    up = Collector()
    with Router(manifest) as router:
        router.set_sink("iothub", up)
        router.send_encoded(Message(b"enc", {"level": "critical"}).encode())
        with pytest.raises(edgeroute.InvalidArgument):
            router.send_encoded(b"garbage")
        router.wait_idle()
        assert up.bodies == [b"enc"]
        assert router.metrics().received == 1


def test_outcomes_retry_then_deliver_and_reject(manifest):
    attempts = []

    def flaky(batch):
        attempts.append(batch.attempt)
        return Outcome.RETRY if batch.attempt == 1 else None

    with Router(manifest, retry_backoff=(0.001, 0.002)) as router:
        router.set_sink("iothub", flaky)
        router.send(b"r", properties={"level": "critical"})
        router.wait_idle(timeout=30)
        assert attempts == [1, 2]
        m = router.metrics()
        assert (m.retried, m.delivered) == (1, 1)

        router.set_sink("iothub", lambda batch: [Outcome.REJECT] * len(batch))
        router.send(b"x", properties={"level": "critical"})
        router.wait_idle()
        assert router.metrics().rejected == 1


def test_deferred_acknowledgement(manifest):
    kept = []
    ready = threading.Event()

    def later(batch):
        batch.defer()
        kept.append(batch)
        ready.set()

    with Router(manifest) as router:
        router.set_sink("iothub", later)
        router.send(b"d", properties={"level": "critical"})
        assert ready.wait(30)
        with pytest.raises(edgeroute.DeadlineExceeded):
            router.wait_idle(timeout=0.001)
        batch = kept[0]
        assert batch[0].body == b"d"
        batch.ack(0, Outcome.DELIVERED)
        with pytest.raises(ValueError):
            batch.ack(0)
        router.wait_idle()
        assert router.metrics().delivered == 1


def test_sink_exception_retries_and_is_recorded(manifest, capsys):
    calls = []

    def broken(batch):
        calls.append(batch.attempt)
        if len(calls) == 1:
            raise RuntimeError("sink failed")

    with Router(manifest, retry_backoff=(0.001, 0.002)) as router:
        router.set_sink("iothub", broken)
        router.send(b"e", properties={"level": "critical"})
        router.wait_idle(timeout=30)
        assert calls == [1, 2]
        assert isinstance(router.sink_errors[0], RuntimeError)
    assert "sink failed" in capsys.readouterr().err


def test_update_routes(manifest):
    up = Collector()
    everything = dict(manifest, routes={"all": "FROM /* INTO $upstream"})
    with Router(manifest) as router:
        router.set_sink("iothub", up)
        with pytest.raises(edgeroute.RouteError) as info:
            router.update_routes(dict(manifest, routes={"bad": "FROM"}))
        assert info.value.route_name == "bad"
        router.send(b"before", properties={"level": "info"})
        assert router.update_routes(everything) == []
        router.send(b"after", properties={"level": "info"})
        router.wait_idle()
        assert up.bodies == [b"after"]
        assert router.metrics().route_updates == 1


def test_remove_sink_keeps_messages_queued(manifest):
    up = Collector()
    with Router(manifest) as router:
        router.set_sink("iothub", up)
        router.set_sink("iothub", None)
        router.send(b"waits", properties={"level": "critical"})
        router.wait_idle()
        assert router.endpoint_metrics("iothub").queue_depth == 1
        router.set_sink("iothub", up)
        assert up.wait_for(1) == [b"waits"]


def test_closed_router_raises_failed_precondition(manifest):
    router = Router(manifest)
    router.close()
    router.close()  # idempotent
    for call in (lambda: router.send(b"x"),
                 lambda: router.send_batch([b"x"]),
                 lambda: router.send_encoded(Message(b"x").encode()),
                 lambda: router.update_routes(manifest),
                 lambda: router.set_sink("iothub", lambda b: None),
                 lambda: router.wait_idle()):
        with pytest.raises(edgeroute.FailedPrecondition):
            call()
    assert router.metrics().received == 0  # metrics still readable
    del router


def test_bad_manifest_and_options(manifest):
    with pytest.raises(edgeroute.RouteError):
        Router({"schemaVersion": "1.1", "routes": {"x": "FROM /m INTO $bad"},
                "storeAndForwardConfiguration": {"timeToLiveSecs": 1}})
    with pytest.raises(edgeroute.InvalidArgument):
        Router(manifest, dispatch_threads=0)
    with pytest.raises(edgeroute.InvalidArgument):
        Router(manifest, durability=7)  # type: ignore[arg-type]
    with pytest.raises(edgeroute.InvalidArgument):
        Router(manifest, retry_backoff=(2.0, 1.0))
    with pytest.raises(edgeroute.NotFound):
        with Router(manifest) as router:
            router.endpoint_metrics("no-such-endpoint")


def test_store_and_forward(manifest, tmp_path):
    directory = str(tmp_path / "store")
    with Router(manifest, store_directory=directory,
                durability=edgeroute.Durability.POWER) as router:
        router.send_batch([b"s1", b"s2"], properties={"level": "critical"})
    # The store is held by one router at a time.
    up = Collector()
    with Router(manifest, store_directory=directory) as router:
        with pytest.raises(edgeroute.EdgerouteError):
            Router(manifest, store_directory=directory)
        router.set_sink("iothub", up)
        assert up.wait_for(2) == [b"s1", b"s2"]


def test_context_manager_closes(manifest):
    with Router(manifest) as router:
        pass
    with pytest.raises(edgeroute.FailedPrecondition):
        router.send(b"x")
