#!/usr/bin/env python3
"""Turns the Google Benchmark JSON files bench/report.sh collects into
bench/results/: RESULTS.md (each result beside the peer measured in the same
run, and their ratio) and charts as SVG (python3-matplotlib).

    python3 bench/report.py --raw bench/results/raw --out bench/results

Results that a run did not produce are left out of the tables and charts.
"""

import argparse
import glob
import json
import os
import re
import sys

# (section, what is compared, edgeroute's benchmark, the peer's benchmark,
# the peer's name, the measure). Measures: "rate" (items_per_second, higher
# is better), "time" (CPU time per iteration of a single-threaded
# micro-benchmark, lower is better: unlike wall time, it leaves out the time
# other processes on a shared machine take) or a counter name ending in
# "_us" (lower is better).
PAIRS = [
    ("Route language", "$body.temperature > 50, 256 B body",
     "BM_EvalBodyCompare/256", "BM_SqliteBodyCompare/256",
     "SQLite json_extract", "time"),
    ("Route language", "$body.temperature > 50, 1 KiB body",
     "BM_EvalBodyCompare/1024", "BM_SqliteBodyCompare/1024",
     "SQLite json_extract", "time"),
    ("Route language", "$body.temperature > 50, 4 KiB body",
     "BM_EvalBodyCompare/4096", "BM_SqliteBodyCompare/4096",
     "SQLite json_extract", "time"),
    ("Router", "10 routes, messages/s", "BM_Throughput/10",
     "BM_Baseline_MutexQueue/10", "mutex + deque", "rate"),
    ("Router", "1,000 routes, messages/s", "BM_RouteScaling/1000",
     "BM_Baseline_MutexQueue/1000", "mutex + deque", "rate"),
    ("Router", "8,000 routes, messages/s", "BM_RouteScaling/8000",
     "BM_Baseline_MutexQueue/8000", "mutex + deque", "rate"),
    ("Store", "append 256 B, process durability", "BM_Append/process/256/1",
     "BM_RawRocksDbBatch/process/256/1", "raw RocksDB", "rate"),
    ("Store", "append 256 B to 3 queues, process durability",
     "BM_Append/process/256/3", "BM_RawRocksDbBatch/process/256/3",
     "raw RocksDB", "rate"),
    ("Store", "append 256 B, power durability, 16 writers",
     "BM_Append/power/256/1/threads:16",
     "BM_RawRocksDbBatch/power/256/1/threads:16", "raw RocksDB", "rate"),
    ("Gateway", "native protocol, QoS 0, messages/s",
     "BM_Gateway/qos:0/store:0", "BM_Mosquitto/qos:0", "mosquitto", "rate"),
    ("Gateway", "native protocol, QoS 1, messages/s",
     "BM_Gateway/qos:1/store:0", "BM_Mosquitto/qos:1", "mosquitto", "rate"),
    ("Gateway", "native protocol, QoS 1 with the store, messages/s",
     "BM_Gateway/qos:1/store:1", "BM_Mosquitto/qos:1", "mosquitto", "rate"),
    ("Gateway", "MQTT over TLS, messages/s", "BM_MqttEdgeroute/store:0",
     "BM_MqttMosquitto", "mosquitto", "rate"),
    ("Gateway", "native ping-pong QoS 1, p50", "BM_GatewayPingPong/qos:1",
     "BM_MosquittoPingPong/qos:1", "mosquitto", "p50_us"),
    ("Gateway", "MQTT over TLS with the store, messages/s",
     "BM_MqttEdgeroute/store:1", "BM_MqttMosquitto", "mosquitto", "rate"),
    ("Gateway", "MQTT over TLS ping-pong, p50",
     "BM_MqttEdgeroutePingPong/store:0",
     "BM_MqttMosquittoPingPong", "mosquitto", "p50_us"),
]


def normalize(name):
    """The benchmark's name without the suffixes options add."""
    name = re.sub(r"/real_time", "", name)
    name = re.sub(r"/iterations:\d+", "", name)
    name = re.sub(r"/min_time:[0-9.]+", "", name)
    name = re.sub(r"/repeats:\d+", "", name)
    # One thread is the default: BM_x/threads:1 is BM_x.
    return re.sub(r"/threads:1$", "", name)


def load(documents):
    """Maps normalized names to one result each: the median of repetitions
    where there are some, else the single run. Also returns the first
    document's context (machine, date)."""
    results = {}
    medians = {}
    context = {}
    for doc in documents:
        context = context or doc.get("context", {})
        for b in doc.get("benchmarks", []):
            if b.get("error_occurred"):
                continue
            name = normalize(b.get("run_name", b["name"]))
            if b.get("run_type") == "aggregate":
                if b.get("aggregate_name") == "median":
                    medians[name] = b
            else:
                results.setdefault(name, b)
    results.update(medians)
    return results, context


def measure(result, kind):
    if kind == "rate":
        return result.get("items_per_second")
    if kind == "time":
        scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
        return result["cpu_time"] * scale[result.get("time_unit", "ns")]
    return result.get(kind)


def higher_is_better(kind):
    return kind == "rate"


def three_digits(value):
    return "%.3g" % value if value < 1000 else "%.0f" % value


def show(value, kind):
    if value is None:
        return "–"
    if kind == "rate":
        for unit, size in (("G/s", 1e9), ("M/s", 1e6), ("k/s", 1e3)):
            if value >= size:
                return "%s %s" % (three_digits(value / size), unit)
        return "%s /s" % three_digits(value)
    if kind == "time":
        for unit, size in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
            if value >= size:
                return "%s %s" % (three_digits(value / size), unit)
        return "%s ns" % three_digits(value)
    if value >= 1000:
        return "%s ms" % three_digits(value / 1000)
    return "%s µs" % three_digits(value)


def comparisons(results):
    """The pairs both sides of which ran: (section, label, ours, peer,
    peer name, kind, ratio), ratio > 1 where edgeroute is better."""
    rows = []
    for section, label, ours_name, peer_name, peer, kind in PAIRS:
        if ours_name not in results or peer_name not in results:
            continue
        ours = measure(results[ours_name], kind)
        theirs = measure(results[peer_name], kind)
        if not ours or not theirs:
            continue
        ratio = ours / theirs if higher_is_better(kind) else theirs / ours
        rows.append((section, label, ours, theirs, peer, kind, ratio))
    return rows


def peer_table(results):
    lines = [
        "| Section | Comparison | edgeroute | Peer | Peer result | "
        "edgeroute vs peer |",
        "|---|---|---:|---|---:|---:|",
    ]
    for section, label, ours, theirs, peer, kind, ratio in comparisons(
            results):
        lines.append("| %s | %s | %s | %s | %s | **%.2f×** %s |" %
                     (section, label, show(ours, kind), peer,
                      show(theirs, kind), ratio,
                      "faster" if ratio >= 1 else "slower"))
    return "\n".join(lines)


def scaling_rows(results):
    rows = []
    for name, r in results.items():
        m = re.fullmatch(r"BM_RouteScaling/(\d+)", name)
        if m:
            base = results.get("BM_Baseline_MutexQueue/" + m.group(1))
            rows.append((int(m.group(1)), r.get("items_per_second"),
                         base.get("items_per_second") if base else None))
    return sorted(rows)


def latency_rows(results):
    """(what, p50, p99, p99.9) in microseconds."""
    rows = []
    for name, label in (
        ("BM_Latency", "router, offered at half its peak"),
        ("BM_GatewayPingPong/qos:0", "gateway native ping-pong, QoS 0"),
        ("BM_GatewayPingPong/qos:1", "gateway native ping-pong, QoS 1"),
        ("BM_MosquittoPingPong/qos:0", "mosquitto ping-pong, QoS 0"),
        ("BM_MosquittoPingPong/qos:1", "mosquitto ping-pong, QoS 1"),
        ("BM_MqttEdgeroutePingPong/store:0", "gateway MQTT/TLS ping-pong"),
        ("BM_MqttMosquittoPingPong", "mosquitto MQTT/TLS ping-pong"),
    ):
        r = results.get(name)
        if r and "p50_us" in r:
            rows.append((label, r.get("p50_us"), r.get("p99_us"),
                         r.get("p999_us")))
    return rows


def store_rows(results):
    """(durability, body bytes, queues, writers, edgeroute/s, raw/s)."""
    rows = []
    for name, r in results.items():
        m = re.fullmatch(r"BM_Append/(\w+)/(\d+)/(\d+)(?:/threads:(\d+))?",
                         name)
        if not m:
            continue
        raw = results.get(name.replace("BM_Append", "BM_RawRocksDbBatch"))
        rows.append((m.group(1), int(m.group(2)), int(m.group(3)),
                     int(m.group(4) or 1), r.get("items_per_second"),
                     raw.get("items_per_second") if raw else None))
    return sorted(rows, key=lambda x: (x[0] != "process", ) + x[1:4])


def markdown(results, context, charts=()):
    out = ["# Benchmark results", ""]
    if context:
        out.append(
            "Run %s on %s CPUs at %s MHz (load average %s), "
            "`-c opt`; each row's peer ran in the same run (route-language rows: CPU "
            "time per evaluation, the median of the repetitions). Regenerate with "
            "`bench/report.sh` (see the README's Benchmarks section)." %
            (context.get("date", "?"), context.get("num_cpus", "?"),
             context.get("mhz_per_cpu", "?"), ", ".join(
                 "%.2f" % x for x in context.get("load_avg", []))))
        out.append("")
    out += ["## Against a peer", "", peer_table(results), ""]
    if "peer_ratios.svg" in charts:
        out += ["![edgeroute vs peer](peer_ratios.svg)", ""]
    scaling = scaling_rows(results)
    if scaling:
        out += [
            "## Route scaling (router, one producer)", "",
            "| Routes | edgeroute | mutex + deque baseline |",
            "|---:|---:|---:|"
        ]
        for n, ours, base in scaling:
            out.append("| %d | %s | %s |" %
                       (n, show(ours, "rate"), show(base, "rate")))
        out.append("")
        if "route_scaling.svg" in charts:
            out += ["![route scaling](route_scaling.svg)", ""]
    latency = latency_rows(results)
    if latency:
        out += [
            "## Latency percentiles", "", "| What | p50 | p99 | p99.9 |",
            "|---|---:|---:|---:|"
        ]
        for label, p50, p99, p999 in latency:
            out.append("| %s | %s | %s | %s |" %
                       (label, show(p50, "us"), show(p99, "us"),
                        show(p999, "us")))
        out.append("")
        if "latency.svg" in charts:
            out += ["![latency percentiles](latency.svg)", ""]
    store = store_rows(results)
    if store:
        out += [
            "## Store throughput by durability", "",
            "| Durability | Body | Queues | Writers | edgeroute store | "
            "raw RocksDB |", "|---|---:|---:|---:|---:|---:|"
        ]
        for durability, size, queues, writers, ours, raw in store:
            out.append("| %s | %d B | %d | %d | %s | %s |" %
                       (durability, size, queues, writers, show(ours, "rate"),
                        show(raw, "rate")))
        out.append("")
        if "store_durability.svg" in charts:
            out += ["![store throughput by durability](store_durability.svg)",
                    ""]
    return "\n".join(out)


def charts(results, out_dir):
    """Writes the SVG charts; returns their file names."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.ticker
    import matplotlib.pyplot as plt
    # Reproducible SVG text: no random ids, no date.
    plt.rcParams["svg.hashsalt"] = "edgeroute"
    plt.rcParams["svg.fonttype"] = "none"
    meta = {"Date": None}
    written = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, name), metadata=meta)
        plt.close(fig)
        written.append(name)

    rows = comparisons(results)
    if rows:
        fig, ax = plt.subplots(figsize=(10, 0.4 * len(rows) + 1.2))
        labels = ["%s: %s (vs %s)" % (r[0], r[1], r[4]) for r in rows]
        ratios = [r[6] for r in rows]
        colors = ["#2a7ab9" if x >= 1 else "#d9822b" for x in ratios]
        ax.barh(range(len(rows)), ratios, color=colors)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda x, _: "%g×" % x))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks([t for t in (0.25, 0.5, 1, 2, 4, 8, 16, 32)
                       if min(ratios) / 2 <= t <= max(ratios) * 2])
        ax.set_xlabel("edgeroute vs the peer in the same run "
                      "(> 1: edgeroute better; log scale)")
        for y, x in enumerate(ratios):
            ax.text(x, y, " %.2f×" % x, va="center", fontsize=8)
        save(fig, "peer_ratios.svg")

    scaling = scaling_rows(results)
    if scaling:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([r[0] for r in scaling], [r[1] for r in scaling], "o-",
                label="edgeroute router")
        base = [(r[0], r[2]) for r in scaling if r[2]]
        if base:
            ax.plot([b[0] for b in base], [b[1] for b in base], "s--",
                    label="mutex + deque baseline")
        ax.set_xscale("log")
        ax.set_xlabel("routes")
        ax.set_ylabel("messages/s")
        ax.set_ylim(bottom=0)
        ax.legend()
        save(fig, "route_scaling.svg")

    latency = latency_rows(results)
    if latency:
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(latency) + 1.2))
        width = 0.27
        for k, (pct, color) in enumerate(
            (("p50", "#2a7ab9"), ("p99", "#7fb0d8"), ("p99.9", "#c6dbef"))):
            ys = [y + (k - 1) * width for y in range(len(latency))]
            xs = [r[1 + k] or 0 for r in latency]
            ax.barh(ys, xs, height=width, label=pct, color=color)
        ax.set_yticks(range(len(latency)))
        ax.set_yticklabels([r[0] for r in latency], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("µs (log)")
        ax.legend(fontsize=8)
        save(fig, "latency.svg")

    store = [r for r in store_rows(results) if r[1] == 256 and r[2] == 1]
    if store:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        labels = ["%s\n%d writer%s" % (r[0], r[3], "" if r[3] == 1 else "s")
                  for r in store]
        xs = range(len(store))
        ax.bar([x - 0.2 for x in xs], [r[4] or 0 for r in store], 0.4,
               label="edgeroute store")
        ax.bar([x + 0.2 for x in xs], [r[5] or 0 for r in store], 0.4,
               label="raw RocksDB WriteBatch")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("256 B messages/s (log)")
        ax.legend(fontsize=8)
        save(fig, "store_durability.svg")
    return written


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", required=True,
                        help="directory of benchmark JSON files")
    parser.add_argument("--out", required=True,
                        help="directory for RESULTS.md and the charts")
    parser.add_argument("--no-charts", action="store_true")
    args = parser.parse_args(argv)
    documents = []
    for path in sorted(glob.glob(os.path.join(args.raw, "*.json"))):
        with open(path) as f:
            try:
                documents.append(json.load(f))
            except ValueError as e:
                print("skipping %s: %s" % (path, e), file=sys.stderr)
    results, context = load(documents)
    written = () if args.no_charts else charts(results, args.out)
    with open(os.path.join(args.out, "RESULTS.md"), "w") as f:
        f.write(markdown(results, context, written))
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
