"""Steady state of a gateway hierarchy: leaf -> gateway(s) -> mosquitto.

For chains of 1, 2 and 3 `edgeroute run` gateways (each with a store, TLS
and SAS between them, the top one publishing to Debian's mosquitto), it
reports the throughput a QoS 1 leaf reaches end to end, and the latency of
one message at a time (p50/p99, leaf PUBLISH to arrival at the broker's
subscriber); the difference between chain lengths is the cost of a hop.

    bazel run //tests/upstream:hierarchy_bench

Not a test: the figures depend on the machine. It prints a Markdown table.
"""

import os
import statistics
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upstream_test as up  # noqa: E402  (puts tests/mqtt on the path)
import harness  # noqa: E402

THROUGHPUT_MESSAGES = int(os.environ.get("HIERARCHY_MESSAGES", "3000"))
LATENCY_MESSAGES = int(os.environ.get("HIERARCHY_PINGS", "200"))


class HierarchyBench(up.UpstreamTest):
    """The upstream tests' set-up and helpers; only test_report runs."""

    def chain(self, levels, broker):
        """Starts `levels` gateways; returns (bottom gateway, leaf)."""
        names = ["gw-%d" % i for i in range(levels)]  # gw-0 is the top
        keys = {n: harness.random_key() for n in names}
        leaf = harness.device("leaf-1")
        parent = None
        for i, name in enumerate(names):
            identities = []
            if i + 1 < levels:
                child = names[i + 1]
                identities.append(harness.Identity(child, key=keys[child],
                                                   gateway=True))
                for j in range(i + 2, levels):
                    identities.append(harness.Identity(
                        names[j], parent=names[j - 1], gateway=True))
                identities.append(harness.Identity("leaf-1",
                                                   parent=names[-1]))
            else:
                identities.append(leaf)
            if parent is None:
                extra = ["--upstream", "mqtt://127.0.0.1:%d" % broker.port,
                         "--metrics", "127.0.0.1:0"]
            else:
                extra = self.iothub_upstream(parent, keys[name])
            parent = self.gateway(identities, up.TO_UPSTREAM, device=name,
                                  extra_args=extra)
        return parent, leaf

    def measure(self, levels):
        broker = self.broker().start()
        counter = up.Counter(broker.port, "edgeroute/#").start()
        bottom, leaf = self.chain(levels, broker)
        client = self.paho(bottom, leaf)
        # Latency: one message in flight end to end.
        latencies = []
        for n in range(LATENCY_MESSAGES):
            sent = time.monotonic_ns()
            client.publish(leaf.events_topic + "ping=%d" % n, str(sent))
            counter.wait_for(lambda ms: len(ms) > n, up.DRAIN_TIMEOUT_S,
                             "ping %d" % n)
            latencies.append((time.monotonic_ns() - sent) / 1000.0)
        # Throughput: a window of QoS 1 messages, until all have arrived.
        base = len(counter.snapshot())
        start = time.monotonic()
        acked = up.publish_many(
            client, lambda n: (leaf.events_topic + "n=%d" % n, "x" * 256),
            THROUGHPUT_MESSAGES)
        counter.wait_for(lambda ms: len(ms) >= base + len(acked),
                         up.DRAIN_TIMEOUT_S, "the throughput run")
        elapsed = time.monotonic() - start
        counter.stop()
        latencies.sort()
        return {
            "levels": levels,
            "msgs_per_s": len(acked) / elapsed,
            "p50_us": statistics.median(latencies),
            "p99_us": latencies[int(len(latencies) * 0.99) - 1],
        }

    def test_report(self):
        rows = []
        for levels in (1, 2, 3):
            self.setUp()
            try:
                rows.append(self.measure(levels))
            finally:
                self.tearDown()
        print("\n| gateways | leaf -> broker msg/s | p50 us | p99 us |"
              " p50 added by the last hop |")
        print("|---|---|---|---|---|")
        previous = None
        for r in rows:
            hop = "" if previous is None else "%.0f" % (r["p50_us"] -
                                                        previous["p50_us"])
            print("| %d | %.0f | %.0f | %.0f | %s |" % (
                r["levels"], r["msgs_per_s"], r["p50_us"], r["p99_us"], hop))
            previous = r
        sys.stdout.flush()


if __name__ == "__main__":
    unittest.main(verbosity=1, argv=[sys.argv[0], "HierarchyBench.test_report"])
