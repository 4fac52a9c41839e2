"""A legitimate client that keeps connecting while a test attacks the
gateway: every `interval` seconds, alternately, an MQTT CONNECT with
python3-paho-mqtt (time to its CONNACK) and a native Hello with the Python
client of gateway/python (time to its HelloAck). Runs in a process of its
own, so that the attacking test's threads do not delay its measurements.

    probe.py CONFIG_JSON

CONFIG_JSON: {"mqtt_port", "mqtt_client_id", "mqtt_username",
"mqtt_password", "native_address", "device", "native_module",
"native_sas_token", "ca_cert" (TLS when set), "interval"}.

Prints one line per attempt until stdin closes:
    <mqtt|native> <seconds from TCP connect to the answer> <outcome>
outcome: accepted (CONNACK 0 / HelloAck), refused (another CONNACK code, or
an Error frame), closed (the gateway closed without an answer -- what a
connection refused for want of a file descriptor may see), or timeout.
"""

import json
import os
import select
import socket
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt

# An attempt without an answer after this long counts as "timeout".
ANSWER_TIMEOUT_S = 5.0


def mqtt_attempt(config):
    client = mqtt.Client(client_id=config["mqtt_client_id"], clean_session=True,
                         protocol=mqtt.MQTTv311, reconnect_on_failure=False)
    if config.get("ca_cert"):
        client.tls_set(ca_certs=config["ca_cert"],
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.username_pw_set(config["mqtt_username"], config["mqtt_password"])
    result = {}

    def on_connect(c, userdata, flags, rc):
        result.setdefault("rc", rc)

    def on_disconnect(c, userdata, rc):
        result.setdefault("closed", True)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    start = time.monotonic()
    try:
        client.connect("127.0.0.1", config["mqtt_port"], keepalive=30)
        while "rc" not in result and "closed" not in result:
            if time.monotonic() - start > ANSWER_TIMEOUT_S:
                return time.monotonic() - start, "timeout"
            if client.loop(timeout=0.01) != mqtt.MQTT_ERR_SUCCESS:
                result.setdefault("closed", True)
        elapsed = time.monotonic() - start
    except (OSError, ssl.SSLError):
        return time.monotonic() - start, "closed"
    finally:
        try:
            client.disconnect()
            client.loop(timeout=0.01)
        except (OSError, ssl.SSLError):
            pass
        try:
            client.socket() and client.socket().close()
        except (OSError, AttributeError):
            pass
    if "rc" in result:
        return elapsed, "accepted" if result["rc"] == 0 else "refused"
    return elapsed, "closed"


def native_attempt(config, er):
    context = None
    if config.get("ca_cert"):
        context = ssl.create_default_context(cafile=config["ca_cert"])
    start = time.monotonic()
    try:
        client = er.Client(config["native_address"], timeout=ANSWER_TIMEOUT_S,
                           ssl_context=context)
    except (OSError, ssl.SSLError):
        return time.monotonic() - start, "closed"
    try:
        client.hello(config["device"], config["native_module"],
                     sas_token=config["native_sas_token"])
        return time.monotonic() - start, "accepted"
    except er.GatewayError as e:
        elapsed = time.monotonic() - start
        if e.code == 0:
            return elapsed, "timeout"
        if e.code == 8 and "closed" in str(e):
            return elapsed, "closed"
        return elapsed, "refused"
    except (OSError, ssl.SSLError):
        return time.monotonic() - start, "closed"
    finally:
        client.close()


def main():
    config = json.loads(sys.argv[1])
    sys.path.insert(0, config["client_dir"])
    import edgeroute_client as er  # noqa: E402

    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    interval = config.get("interval", 0.1)
    turn = 0
    while not stop.is_set():
        if turn % 2 == 0 and config.get("mqtt_port"):
            kind, (elapsed, outcome) = "mqtt", mqtt_attempt(config)
        else:
            kind, (elapsed, outcome) = "native", native_attempt(config, er)
        turn += 1
        print("%s %.6f %s" % (kind, elapsed, outcome), flush=True)
        stop.wait(interval)


if __name__ == "__main__":
    main()
