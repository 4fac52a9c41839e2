"""Routes a few thousand messages from a deployment manifest and prints how
many each endpoint received.

    python3 route_manifest.py [manifest.json] [--messages N] [--store DIR]

Without a manifest file it uses a built-in one with four routes. Messages
come from three simulated modules and plain devices, with a mix of levels.
"""

import argparse
import collections
import json
import random
import sys
import threading

import edgeroute

DEFAULT_MANIFEST = {
    "modulesContent": {
        "$edgeHub": {
            "properties.desired": {
                "schemaVersion": "1.1",
                "routes": {
                    "critical": {
                        "route": "FROM /messages/* WHERE level = 'critical' "
                                 "INTO $upstream",
                        "priority": 0,
                    },
                    "sensorToFilter": "FROM /messages/modules/sensor/* INTO "
                                      "BrokeredEndpoint(\"/modules/filter/"
                                      "inputs/input1\")",
                    "filterUp": "FROM /messages/modules/filter/outputs/* "
                                "INTO $upstream",
                    "hotBody": "FROM /messages/* WHERE "
                               "$body.temperature > 30 INTO "
                               "BrokeredEndpoint(\"/modules/alarm/inputs/"
                               "hot\")",
                },
                "storeAndForwardConfiguration": {"timeToLiveSecs": 7200},
            }
        }
    }
}


def messages(n: int, seed: int = 7):
    rng = random.Random(seed)
    modules = [("sensor", "out1"), ("filter", "output1"), ("camera", None),
               (None, None)]
    for i in range(n):
        module, output = rng.choice(modules)
        sys_props = {"contentType": "application/json",
                     "contentEncoding": "utf-8"}
        if module:
            sys_props["connectionModuleId"] = module
            if output:
                sys_props["outputName"] = output
        level = rng.choice(["info", "info", "warning", "critical"])
        body = json.dumps({"seq": i, "temperature": rng.randint(10, 40)})
        yield edgeroute.Message(body, {"level": level}, sys_props)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", nargs="?")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--store", help="store-and-forward directory")
    args = parser.parse_args()

    manifest = DEFAULT_MANIFEST
    if args.manifest:
        with open(args.manifest, encoding="utf-8") as f:
            manifest = f.read()
    try:
        warnings = edgeroute.check_manifest(manifest)
    except edgeroute.RouteError as e:
        for d in e.diagnostics:
            print(d, file=sys.stderr)
        return 1
    for w in warnings:
        print(w, file=sys.stderr)

    counts = collections.Counter()
    lock = threading.Lock()

    def count(batch: edgeroute.Batch) -> None:
        with lock:
            counts[batch.endpoint] += len(batch)

    with edgeroute.Router(manifest, store_directory=args.store) as router:
        endpoints = ["iothub", "DEV/filter/input1", "DEV/alarm/hot"]
        for endpoint in endpoints:
            router.set_sink(endpoint, count)
        sent = router.send_batch(list(messages(args.messages)))
        router.wait_idle(timeout=60)
        m = router.metrics()

    print("sent %d messages, %d matched no route" % (sent, m.orphaned))
    for endpoint in endpoints:
        print("  %-20s %6d" % (endpoint, counts[endpoint]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
