"""Load a manifest, route messages to callbacks, print metrics."""
import collections

import edgeroute

MANIFEST = {
    "schemaVersion": "1.1",
    "routes": {
        "alerts": "FROM /messages/* WHERE level = 'critical' INTO $upstream",
        "toFilter": {"route": "FROM /messages/modules/sensor/* INTO "
                              "BrokeredEndpoint(\"/modules/filter/inputs/in\")",
                     "priority": 0},
    },
    "storeAndForwardConfiguration": {"timeToLiveSecs": 7200},
}

counts = collections.Counter()


def sink(batch: edgeroute.Batch) -> None:
    counts[batch.endpoint] += len(batch)  # returning None = all delivered


with edgeroute.Router(MANIFEST) as router:
    router.set_sink("iothub", sink)
    router.set_sink("DEV/filter/in", sink)
    for i in range(1000):
        router.send(b'{"t": %d}' % i,
                    properties={"level": "critical" if i % 10 == 0 else "info"},
                    system_properties={"connectionModuleId": "sensor"})
    router.wait_idle()
    m = router.metrics()
    print("received", m.received, "delivered", m.delivered, dict(counts))
