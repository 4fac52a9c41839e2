"""A client for the edgeroute gateway protocol (see gateway/PROTOCOL.md).

Standard library only: the FlatBuffers encoding of the protocol frames
(gateway/protocol.fbs) and of messages (message/message.fbs) is written and
read by hand here, following the FlatBuffers binary format.

    client = Client("tcp:127.0.0.1:7411")
    client.hello("edge-gateway", "filter")   # sas_token=... when the gateway
                                             # checks identities
    client.subscribe("input1")
    client.send_telemetry("output1", b'{"t": 21}', properties={"level": "info"})
    delivery = client.receive(timeout=5.0)
    client.ack(delivery.delivery_id)
"""

import base64
import hashlib
import hmac
import select
import socket
import struct
import time
import urllib.parse

PROTOCOL_VERSION = 1
UPSTREAM = "$upstream"
DEFAULT_MAX_FRAME_BYTES = 1 << 20

# Frame union members (protocol.fbs `union Body`).
HELLO, HELLO_ACK, SUBSCRIBE, TELEMETRY, DELIVER, ACK, NACK, ERROR, TELEMETRY_ACK = range(1, 10)

ERROR_NAMES = {
    0: "Unknown", 1: "BadFrame", 2: "FrameTooLarge", 3: "UnsupportedVersion",
    4: "ProtocolViolation", 5: "UnsupportedFrame", 6: "SlowConsumer",
    7: "Overloaded", 8: "ShuttingDown", 9: "Replaced", 10: "NotAuthorized",
}


class GatewayError(Exception):
    """An Error frame from the gateway, or a broken connection."""

    def __init__(self, code, text):
        super().__init__("gateway error %s: %s" % (ERROR_NAMES.get(code, code), text))
        self.code = code
        self.text = text


# ---------------------------------------------------------------------------
# FlatBuffers writing. Objects are laid out front to back: a table's vtable
# right before it, its strings/vectors/sub-tables after it, so every uoffset
# points forward as the format requires.

class _Str:
    def __init__(self, data):
        self.data = data.encode() if isinstance(data, str) else bytes(data)


class _Bytes:
    """A [ubyte] vector, its data 8-byte aligned (like ForceVectorAlignment)."""

    def __init__(self, data):
        self.data = bytes(data)


class _Vec:
    """A vector of strings or tables."""

    def __init__(self, items):
        self.items = list(items)


class _Table:
    """fields: list of (slot, kind, value); kind in u8 bool u16 u32 u64 i64 obj."""

    def __init__(self, fields):
        self.fields = [f for f in fields if f[2] is not None]


_SCALARS = {"u8": "<B", "bool": "<B", "u16": "<H", "u32": "<I", "u64": "<Q", "i64": "<q"}


class _Writer:
    def __init__(self):
        self.buf = bytearray()

    def pad(self, align, offset=0):
        while (len(self.buf) + offset) % align:
            self.buf.append(0)

    def patch_uoffset(self, at, target):
        struct.pack_into("<I", self.buf, at, target - at)

    def write(self, obj):
        """Writes obj and returns the position uoffsets must point at."""
        if isinstance(obj, _Str):
            self.pad(4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(obj.data)) + obj.data + b"\0"
            return pos
        if isinstance(obj, _Bytes):
            self.pad(8, 4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(obj.data)) + obj.data
            return pos
        if isinstance(obj, _Vec):
            self.pad(4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(obj.items))
            slots = []
            for _ in obj.items:
                slots.append(len(self.buf))
                self.buf += b"\0\0\0\0"
            for at, item in zip(slots, obj.items):
                self.patch_uoffset(at, self.write(item))
            return pos
        return self._table(obj)

    def _table(self, table):
        size = {"u8": 1, "bool": 1, "u16": 2, "u32": 4, "obj": 4, "u64": 8, "i64": 8}
        # Largest fields first; the table starts at 4 mod 8 so that 8-byte
        # fields right after the 4-byte soffset are aligned.
        fields = sorted(table.fields, key=lambda f: -size[f[1]])
        layout, offset = [], 4
        for slot, kind, value in fields:
            # Absolute alignment: the table starts at 4 mod 8.
            while (4 + offset) % size[kind]:
                offset += 1
            layout.append((slot, kind, value, offset))
            offset += size[kind]
        inline = offset
        nslots = 1 + max([f[0] for f in fields], default=-1)
        vtable = struct.pack("<HH", 4 + 2 * nslots, inline)
        field_offsets = [0] * nslots
        for slot, _, _, off in layout:
            field_offsets[slot] = off
        vtable += b"".join(struct.pack("<H", o) for o in field_offsets)
        self.pad(2)
        vtable_pos = len(self.buf)
        self.buf += vtable
        self.pad(8, 4)
        pos = len(self.buf)
        self.buf += struct.pack("<i", pos - vtable_pos) + bytes(inline - 4)
        children = []
        for slot, kind, value, off in layout:
            if kind == "obj":
                children.append((pos + off, value))
            else:
                struct.pack_into(_SCALARS[kind], self.buf, pos + off, value)
        for at, child in children:
            self.patch_uoffset(at, self.write(child))
        return pos


def _finish(root, identifier):
    w = _Writer()
    w.buf += b"\0\0\0\0" + identifier
    w.patch_uoffset(0, w.write(root))
    w.pad(8)
    return bytes(w.buf)


def _properties(props):
    if not props:
        return None
    items = []
    for key, value in props.items():
        fields = [(0, "obj", _Str(key))]
        if value is not None:
            fields.append((1, "obj", _Str(value)))
        items.append(_Table(fields))
    return _Vec(items)


def encode_message(body=b"", properties=None, system_properties=None, source=None,
                   enqueue_time_us=0, sequence_number=0):
    """Returns the bytes of one message (message.fbs, identifier ERM1).
    Property values may be None (a present, null property)."""
    fields = [
        (0, "obj", _Bytes(body.encode() if isinstance(body, str) else body)),
        (1, "obj", _properties(properties)),
        (2, "obj", _properties(system_properties)),
        (3, "obj", _Str(source) if source is not None else None),
        (4, "i64", enqueue_time_us or None),
        (5, "u64", sequence_number or None),
    ]
    return _finish(_Table(fields), b"ERM1")


def _frame(body_type, table):
    payload = _finish(_Table([(0, "u8", body_type), (1, "obj", table)]), b"ERG1")
    # Pad so that prefix + payload is a multiple of 8 (PROTOCOL.md).
    payload += bytes((8 - (4 + len(payload)) % 8) % 8)
    return struct.pack("<I", len(payload)) + payload


def encode_hello(device_id, module_id="", version=PROTOCOL_VERSION, sas_token=None):
    return _frame(HELLO, _Table([(0, "u32", version), (1, "obj", _Str(device_id)),
                                 (2, "obj", _Str(module_id) if module_id else None),
                                 (3, "obj", _Str(sas_token) if sas_token else None)]))


def sas_token(hub, device_id, module_id, key, ttl=3600.0, now=None):
    """A SAS token for `device_id` (and `module_id`, unless empty) signed with
    the base64 `key`, valid for `ttl` seconds (gateway/auth/README.md)."""
    resource = "%s/devices/%s" % (hub, device_id)
    if module_id:
        resource += "/modules/%s" % module_id
    return make_sas_token(resource, key, int((time.time() if now is None else now) + ttl))


def make_sas_token(resource, key, expiry):
    """A SAS token for `resource` (not URL-encoded) signed with the base64
    `key`, valid until `expiry` (Unix seconds)."""
    sr = urllib.parse.quote(resource, safe="")
    se = str(int(expiry))
    mac = hmac.new(base64.b64decode(key, validate=True),
                   (sr + "\n" + se).encode("utf-8"), hashlib.sha256).digest()
    sig = urllib.parse.quote(base64.b64encode(mac), safe="")
    return "SharedAccessSignature sr=%s&sig=%s&se=%s" % (sr, sig, se)


def encode_subscribe(inputs):
    return _frame(SUBSCRIBE, _Table([(0, "obj", _Vec(_Str(i) for i in inputs))]))


def encode_telemetry(output, message, sequence=0):
    return _frame(TELEMETRY, _Table([(0, "obj", _Str(output) if output else None),
                                     (1, "obj", _Bytes(message)),
                                     (2, "u64", sequence or None)]))


def encode_ack(delivery_id):
    return _frame(ACK, _Table([(0, "u64", delivery_id)]))


def encode_nack(delivery_id, retry):
    return _frame(NACK, _Table([(0, "u64", delivery_id), (1, "bool", 1 if retry else 0)]))


# ---------------------------------------------------------------------------
# FlatBuffers reading. The gateway is trusted to send valid frames (its
# frames are built by the FlatBuffers library), but every read is bounds
# checked by Python's slicing and struct, so a bad frame raises, never
# corrupts.

class _View:
    def __init__(self, buf, pos):
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vsize = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, slot):
        at = 4 + 2 * slot
        if at >= self.vsize:
            return None
        off = struct.unpack_from("<H", self.buf, self.vtable + at)[0]
        return self.pos + off if off else None

    def scalar(self, slot, fmt, default=0):
        at = self._field(slot)
        return default if at is None else struct.unpack_from(fmt, self.buf, at)[0]

    def _target(self, slot):
        at = self._field(slot)
        return None if at is None else at + struct.unpack_from("<I", self.buf, at)[0]

    def bytes(self, slot):
        at = self._target(slot)
        if at is None:
            return None
        n = struct.unpack_from("<I", self.buf, at)[0]
        data = self.buf[at + 4:at + 4 + n]
        if len(data) != n:
            raise ValueError("vector out of bounds")
        return bytes(data)

    def string(self, slot):
        data = self.bytes(slot)
        return None if data is None else data.decode("utf-8", "replace")

    def table(self, slot):
        at = self._target(slot)
        return None if at is None else _View(self.buf, at)

    def tables(self, slot):
        at = self._target(slot)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        out = []
        for i in range(n):
            e = at + 4 + 4 * i
            out.append(_View(self.buf, e + struct.unpack_from("<I", self.buf, e)[0]))
        return out


def _root(buf, identifier):
    if len(buf) < 8 or buf[4:8] != identifier:
        raise ValueError("not a %s buffer" % identifier.decode())
    return _View(buf, struct.unpack_from("<I", buf, 0)[0])


class Message:
    """A decoded message: body bytes, property dicts (values may be None),
    source, enqueue time and sequence number."""

    def __init__(self, raw):
        root = _root(raw, b"ERM1")
        self.raw = raw
        self.body = root.bytes(0) or b""
        self.properties = {p.string(0): p.string(1) for p in root.tables(1)}
        self.system_properties = {p.string(0): p.string(1) for p in root.tables(2)}
        self.source = root.string(3) or ""
        self.enqueue_time_us = root.scalar(4, "<q")
        self.sequence_number = root.scalar(5, "<Q")


class Delivery:
    def __init__(self, delivery_id, input_name, message):
        self.delivery_id = delivery_id
        self.input = input_name
        self.message = message


# ---------------------------------------------------------------------------

class Client:
    """One gateway connection. Not thread-safe."""

    def __init__(self, address, timeout=10.0, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES,
                 ssl_context=None):
        """address: unix:PATH, tcp:HOST:PORT or tls:HOST:PORT (the latter
        with an ssl.SSLContext that trusts the gateway's certificate)."""
        self.timeout = timeout
        self.max_frame_bytes = max_frame_bytes
        self.acks_received = 0
        self.acks_refused = 0
        self._next_sequence = 1
        self._rbuf = bytearray()
        self._pending = []  # Deliver frames read while waiting for acks
        if address.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(address[len("unix:"):])
        else:
            tls = address.startswith("tls:")
            if tls and ssl_context is None:
                raise ValueError("a tls: address needs an ssl_context")
            if address.startswith("tcp:") or tls:
                address = address[len("tcp:"):]
            host, _, port = address.rpartition(":")
            self.sock = socket.create_connection((host or "127.0.0.1", int(port)), timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                self.sock = ssl_context.wrap_socket(
                    self.sock, server_hostname=host or "127.0.0.1")

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, data):
        self.sock.sendall(data)

    def _read_frame(self, deadline):
        """Returns (type, root view) of the next frame, or None on timeout."""
        while True:
            if len(self._rbuf) >= 4:
                n = struct.unpack_from("<I", self._rbuf, 0)[0]
                if n == 0 or n > self.max_frame_bytes:
                    raise GatewayError(1, "bad frame length %d from gateway" % n)
                if len(self._rbuf) >= 4 + n:
                    payload = bytes(self._rbuf[4:4 + n])
                    del self._rbuf[:4 + n]
                    root = _root(payload, b"ERG1")
                    return root.scalar(0, "<B"), root.table(1)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            # TLS: decrypted bytes may wait inside the SSL object, where
            # select cannot see them.
            pending = getattr(self.sock, "pending", None)
            if pending is None or pending() == 0:
                ready, _, _ = select.select([self.sock], [], [], left)
                if not ready:
                    return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise GatewayError(8, "gateway closed the connection")
            self._rbuf += chunk

    def _handle(self, kind, body):
        """Processes one frame; returns a Delivery for Deliver frames."""
        if kind == ERROR:
            raise GatewayError(body.scalar(0, "<H"), body.string(1) or "")
        if kind == TELEMETRY_ACK:
            self.acks_received += 1
            if body.scalar(1, "<H"):
                self.acks_refused += 1
        elif kind == DELIVER:
            return Delivery(body.scalar(0, "<Q"), body.string(1) or "",
                            Message(body.bytes(2)))
        return None

    def hello(self, device_id, module_id="", version=PROTOCOL_VERSION, sas_token=None):
        """Sends Hello and waits for HelloAck. `sas_token` proves the identity
        to a gateway with an identities file; a refusal raises GatewayError
        with code 10 (NotAuthorized)."""
        self._send(encode_hello(device_id, module_id, version, sas_token))
        deadline = time.monotonic() + self.timeout
        while True:
            frame = self._read_frame(deadline)
            if frame is None:
                raise GatewayError(0, "no HelloAck")
            if frame[0] == HELLO_ACK:
                return
            self._handle(*frame)

    def subscribe(self, *inputs):
        self._send(encode_subscribe(inputs))

    def send_telemetry(self, output, body, properties=None, system_properties=None,
                       want_ack=False):
        """Sends one message on `output`; returns its sequence (0 = no ack)."""
        sequence = 0
        if want_ack:
            sequence = self._next_sequence
            self._next_sequence += 1
        message = encode_message(body, properties, system_properties)
        self._send(encode_telemetry(output, message, sequence))
        return sequence

    def wait_for_acks(self, count, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while self.acks_received < count:
            frame = self._read_frame(deadline)
            if frame is None:
                raise TimeoutError("got %d of %d TelemetryAcks" % (self.acks_received, count))
            delivery = self._handle(*frame)
            if delivery is not None:
                self._pending.append(delivery)

    def receive(self, timeout=None):
        """The next Delivery, or None after `timeout` seconds."""
        if self._pending:
            return self._pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            frame = self._read_frame(deadline)
            if frame is None:
                return None
            delivery = self._handle(*frame)
            if delivery is not None:
                return delivery

    def ack(self, delivery_id):
        self._send(encode_ack(delivery_id))

    def nack(self, delivery_id, retry=True):
        self._send(encode_nack(delivery_id, retry))
