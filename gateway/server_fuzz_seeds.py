"""Writes the seed corpus of server_fuzzer.cc into fuzz_corpus/server/:
byte streams a client could send, each after the fuzzer's options byte
(bit 0: the server with an admission thread). Frames come from the Python
client's encoders (gateway/python/edgeroute_client.py), so the seeds are
independent of the C++ encoder. Run from the repository root:

    python3 gateway/server_fuzz_seeds.py
"""

import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "python"))
import edgeroute_client as er  # noqa: E402

DEVICE = "edge-gw"


def message(body, **properties):
    return er.encode_message(body, properties=properties or None)


def hello(module="sensor"):
    return er.encode_hello(DEVICE, module)


def seeds():
    telemetry = [er.encode_telemetry("out1", message(b'{"t":%d}' % i, i=str(i)),
                                     sequence=i + 1) for i in range(3)]
    yield "hello", hello()
    yield "hello_device", er.encode_hello("leaf-1")
    yield "hello_version_2", er.encode_hello(DEVICE, "sensor", version=2)
    yield "hello_sas", er.encode_hello(
        DEVICE, "sensor", sas_token="SharedAccessSignature sr=x&sig=y&se=1")
    yield "hello_twice", hello() + hello()
    yield "telemetry_before_hello", telemetry[0]
    yield "telemetry", hello() + b"".join(telemetry)
    yield "telemetry_no_ack_wanted", hello() + er.encode_telemetry(
        "out1", message(b"x"))
    # A body of 13 bytes is refused by the fuzzer's hooks (kOverloaded).
    yield "telemetry_refused", hello() + er.encode_telemetry(
        "out1", message(b"1234567890abc"), sequence=9)
    yield "subscribe", hello("filter") + er.encode_subscribe(["input1"])
    yield "subscribe_upstream", hello("up") + er.encode_subscribe(["$upstream"])
    yield "subscribe_many", hello("filter") + er.encode_subscribe(
        ["in%d" % i for i in range(8)])
    yield "subscribe_twice", hello("filter") + er.encode_subscribe(
        ["input1"]) + er.encode_subscribe(["input1", "input2"])
    # Deliveries are numbered from 1 per connection.
    yield "subscribe_ack", hello("filter") + er.encode_subscribe(
        ["input1"]) + er.encode_ack(1) + er.encode_ack(2) + er.encode_ack(3)
    yield "subscribe_nack", hello("filter") + er.encode_subscribe(
        ["input1"]) + er.encode_nack(1, True) + er.encode_nack(2, False)
    yield "ack_unknown", hello("filter") + er.encode_ack(77)
    yield "ack_zero", hello("filter") + er.encode_ack(0)
    yield "everything", (hello("filter") + er.encode_subscribe(["input1"]) +
                         b"".join(telemetry) + er.encode_ack(1) +
                         er.encode_nack(2, True) + er.encode_ack(4))
    # Framing edge cases.
    yield "prefix_only", struct.pack("<I", 64)
    yield "prefix_zero", struct.pack("<I", 0)
    yield "prefix_huge", struct.pack("<I", 0xFFFFFFFF)
    yield "half_hello", hello()[:10]
    yield "garbage_frame", struct.pack("<I", 16) + b"ERG1" + b"\xff" * 12
    yield "unaligned", struct.pack("<I", 5) + b"ERG1\x00" + hello()


def main():
    out = os.path.join(HERE, "fuzz_corpus", "server")
    os.makedirs(out, exist_ok=True)
    for name, stream in seeds():
        for options in (0, 1):
            data = bytes([options]) + stream
            digest = hashlib.sha1(data).hexdigest()[:12]
            path = os.path.join(out, "seed-%s-%d-%s" % (name, options, digest))
            with open(path, "wb") as f:
                f.write(data)
    print("wrote seeds to %s" % out)


if __name__ == "__main__":
    main()
