"""Python send throughput through the ctypes binding.

    EDGEROUTE_LIBRARY=.../libedgeroute.so PYTHONPATH=bindings/python \\
        /usr/bin/python3 bindings/python/bench/send_bench.py [--messages N]

Reports, for ~64-byte JSON bodies with two application properties:
  * batch send (Router.send_batch of 1000 bodies sharing properties), msg/s;
  * single send (Router.send of body + properties), microseconds/message;
  * the same with a Python sink consuming everything (end to end).
The router has one route to an endpoint; "no sink" runs leave the messages
queued (the queue drops what does not fit, which the sender does not see),
so they measure the caller's cost only. Build the library with -c opt.
"""

import argparse
import time

import edgeroute

MANIFEST = {
    "schemaVersion": "1.1",
    "routes": {"r": "FROM /messages/* WHERE level = 'critical' INTO $upstream"},
    "storeAndForwardConfiguration": {"timeToLiveSecs": 7200},
}
PROPS = {"level": "critical", "site": "plant-7"}


def bodies(n):
    return [b'{"temperature": %5d, "humidity": 40, "device": "s-42"}' % i
            for i in range(n)]


def batch_rate(router, data, batch=1000):
    start = time.perf_counter()
    for i in range(0, len(data), batch):
        router.send_batch(data[i:i + batch], properties=PROPS)
    return len(data) / (time.perf_counter() - start)


def single_cost_us(router, data):
    start = time.perf_counter()
    for body in data:
        router.send(body, properties=PROPS)
    return (time.perf_counter() - start) / len(data) * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    data = bodies(args.messages)
    single = data[: max(1, args.messages // 4)]
    print("edgeroute %s, %d messages per run, best of %d" %
          (edgeroute.version(), args.messages, args.repetitions))

    for with_sink in (False, True):
        rates, costs = [], []
        for _ in range(args.repetitions):
            with edgeroute.Router(MANIFEST, drain_on_close=False) as router:
                if with_sink:
                    router.set_sink("iothub", lambda batch: None)
                rates.append(batch_rate(router, data))
                costs.append(single_cost_us(router, single))
                if with_sink:
                    router.wait_idle(timeout=120)
        label = "python sink" if with_sink else "no sink"
        print("%-12s batch send: %9.0f msg/s   single send: %6.2f us/msg" %
              (label, max(rates), min(costs)))


if __name__ == "__main__":
    main()
