"""Shared pieces of the real-client MQTT tests.

Everything a test needs around the clients it exercises: a throw-away PKI made
with the openssl command line, identities with random keys, SAS tokens
computed here (independently of the gateway's code), the `edgeroute run`
process itself, and a mosquitto broker for checking the harness.

Every wait is bounded; a test that waits fails with a message that says what
it was waiting for, and the gateway's log is printed with every failure.
Standard library only (plus paho in the tests that use it), run by Debian's
/usr/bin/python3.
"""

import base64
import hashlib
import hmac
import json
import os
import pwd
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HUB = "testhub.azure-devices.net"
GATEWAY_DEVICE = "edge-gw"
API_VERSION = "2021-04-12"

# Bounds on waiting. Generous: a loaded machine makes a test slower, never
# wrong.
START_TIMEOUT_S = 30
CLIENT_TIMEOUT_S = 30
STOP_TIMEOUT_S = 20


def fail(message):
    raise AssertionError(message)


def runfile(relative):
    """Path of a data file of this test, inside or outside Bazel."""
    srcdir = os.environ.get("TEST_SRCDIR")
    if srcdir:
        workspace = os.environ.get("TEST_WORKSPACE", "edgeroute")
        path = os.path.join(srcdir, workspace, relative)
        if os.path.exists(path):
            return path
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", relative)


def edgeroute_binary():
    path = os.environ.get("EDGEROUTE_BINARY") or runfile("tools/edgeroute")
    if not os.path.exists(path):
        fail("edgeroute binary not found at %s (build //tools:edgeroute or set "
             "EDGEROUTE_BINARY)" % path)
    return path


def require_program(name):
    path = shutil.which(name)
    if path is None:
        fail("%s is not installed; scripts/setup.sh installs it" % name)
    return path


def run(args, timeout=CLIENT_TIMEOUT_S, check=True, **kwargs):
    """Runs a command with a deadline; returns CompletedProcess (text)."""
    try:
        result = subprocess.run(args, capture_output=True, text=True,
                                timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as e:
        fail("%s did not finish within %d s; output so far:\n%s\n%s" %
             (args[0], timeout, e.stdout, e.stderr))
    if check and result.returncode != 0:
        fail("%s exited %d:\n%s\n%s" % (" ".join(args), result.returncode,
                                        result.stdout, result.stderr))
    return result


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    fail("timed out after %.0f s waiting for %s" % (timeout, what))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PKI -------------------------------------------------------------------

class Pki:
    """A CA, a server certificate for localhost/127.0.0.1 and client
    certificates, made with the openssl command line in `directory`."""

    def __init__(self, directory):
        require_program("openssl")
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca_cert = self._path("ca.pem")
        self.ca_key = self._path("ca.key")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                      "-subj", "/CN=edgeroute test CA", "-keyout", self.ca_key,
                      "-out", self.ca_cert, "-addext",
                      "basicConstraints=critical,CA:TRUE", "-addext",
                      "keyUsage=critical,keyCertSign,cRLSign")
        self.server_cert, self.server_key = self._issue(
            "server", "localhost",
            ["subjectAltName=DNS:localhost,IP:127.0.0.1",
             "extendedKeyUsage=serverAuth"])

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        run(["openssl"] + list(args))

    def _issue(self, name, common_name, extensions, ca_cert=None, ca_key=None):
        key = self._path(name + ".key")
        csr = self._path(name + ".csr")
        cert = self._path(name + ".pem")
        ext = self._path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            f.write("keyUsage=critical,digitalSignature,keyEncipherment\n")
            for line in extensions:
                f.write(line + "\n")
        self._openssl("req", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                      "/CN=" + common_name, "-keyout", key, "-out", csr)
        self._openssl("x509", "-req", "-in", csr, "-CA",
                      ca_cert or self.ca_cert, "-CAkey", ca_key or self.ca_key,
                      "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
                      "-days", "2", "-out", cert, "-extfile", ext)
        return cert, key

    def client(self, name, common_name):
        """A client certificate signed by the CA: (cert, key, thumbprint)."""
        cert, key = self._issue(name, common_name,
                                ["extendedKeyUsage=clientAuth"])
        return cert, key, thumbprint(cert)

    def self_signed_client(self, name, common_name):
        """A client certificate no trusted CA signed: (cert, key, thumbprint)."""
        key = self._path(name + ".key")
        cert = self._path(name + ".pem")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                      "-subj", "/CN=" + common_name, "-keyout", key, "-out",
                      cert, "-addext", "extendedKeyUsage=clientAuth")
        return cert, key, thumbprint(cert)


def thumbprint(cert_path):
    """SHA-256 of the certificate's DER, lower-case hex."""
    der = subprocess.run(["openssl", "x509", "-in", cert_path, "-outform",
                          "DER"], capture_output=True, timeout=CLIENT_TIMEOUT_S,
                         check=True).stdout
    return hashlib.sha256(der).hexdigest()


# --- identities and SAS tokens -----------------------------------------------

def random_key():
    return base64.b64encode(os.urandom(32)).decode()


def sas_token(resource, key_b64, expiry=None, key_name=None):
    """An IoT Hub SAS token for `resource` ("{hub}/devices/{d}[/modules/{m}]"),
    signed over the URL-encoded resource and the expiry as the SDKs do."""
    if expiry is None:
        expiry = int(time.time()) + 3600
    encoded = urllib.parse.quote(resource, safe="")
    to_sign = ("%s\n%d" % (encoded, expiry)).encode()
    digest = hmac.new(base64.b64decode(key_b64), to_sign,
                      hashlib.sha256).digest()
    signature = urllib.parse.quote(base64.b64encode(digest).decode(), safe="")
    token = "SharedAccessSignature sr=%s&sig=%s&se=%d" % (encoded, signature,
                                                          expiry)
    if key_name:
        token += "&skn=" + key_name
    return token


class Identity:
    """A device or module the gateway lets in, and how a client proves it."""

    def __init__(self, device_id, module_id=None, key=None, secondary=None,
                 thumbprint_hex=None, x509_ca=False, parent=None,
                 gateway=False):
        self.device_id = device_id
        self.module_id = module_id
        self.key = key
        self.secondary = secondary
        self.thumbprint = thumbprint_hex
        self.x509_ca = x509_ca
        # Nested gateways: the gateway this device sits under, and whether
        # it is a gateway itself.
        self.parent = parent
        self.gateway = gateway

    @property
    def client_id(self):
        if self.module_id:
            return "%s/%s" % (self.device_id, self.module_id)
        return self.device_id

    @property
    def username(self):
        return "%s/%s/?api-version=%s" % (HUB, self.client_id, API_VERSION)

    @property
    def resource(self):
        r = "%s/devices/%s" % (HUB, self.device_id)
        if self.module_id:
            r += "/modules/" + self.module_id
        return r

    def password(self, key=None, expiry=None):
        return sas_token(self.resource, key or self.key, expiry)

    @property
    def events_topic(self):
        if self.module_id:
            return "devices/%s/modules/%s/messages/events/" % (
                self.device_id, self.module_id)
        return "devices/%s/messages/events/" % self.device_id

    def inputs_filter(self):
        return "devices/%s/modules/%s/inputs/#" % (self.device_id,
                                                   self.module_id)

    def connection_string(self, gateway_host, key=None):
        parts = ["HostName=" + HUB, "DeviceId=" + self.device_id]
        if self.module_id:
            parts.append("ModuleId=" + self.module_id)
        parts.append("SharedAccessKey=" + (key or self.key))
        parts.append("GatewayHostName=" + gateway_host)
        return ";".join(parts)

    def entry(self):
        e = {"deviceId": self.device_id}
        if self.module_id:
            e["moduleId"] = self.module_id
        if self.key:
            e["primaryKey"] = self.key
        if self.secondary:
            e["secondaryKey"] = self.secondary
        if self.thumbprint:
            e["x509Thumbprint"] = self.thumbprint
        if self.x509_ca:
            e["x509"] = "ca"
        if self.parent:
            e["parent"] = self.parent
        if self.gateway:
            e["gateway"] = True
        return e


def module(name, **kwargs):
    kwargs.setdefault("key", random_key())
    kwargs.setdefault("secondary", random_key())
    return Identity(GATEWAY_DEVICE, name, **kwargs)


def device(name, **kwargs):
    if "thumbprint_hex" not in kwargs and not kwargs.get("x509_ca"):
        kwargs.setdefault("key", random_key())
    return Identity(name, None, **kwargs)


def identities_document(identities):
    return {"hub": HUB, "identities": [i.entry() for i in identities]}


def manifest_document(routes, desired=None, ttl_secs=7200):
    """A deployment manifest in the form IoT Edge deploys: the routes in
    $edgeHub's desired properties, each module's desired properties under
    modulesContent.{module}."""
    content = {
        "$edgeAgent": {"properties.desired": {
            "schemaVersion": "1.1",
            "runtime": {"type": "docker", "settings": {}},
            "systemModules": {},
            "modules": {}}},
        "$edgeHub": {"properties.desired": {
            "schemaVersion": "1.1",
            "routes": routes,
            "storeAndForwardConfiguration": {"timeToLiveSecs": ttl_secs}}},
    }
    for module_id, properties in (desired or {}).items():
        content[module_id] = {"properties.desired": properties}
    return {"modulesContent": content}


def write_json_atomically(path, document):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(document, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- the gateway process ----------------------------------------------------

_ADDRESS = r"(?:\d{1,3}(?:\.\d{1,3}){3}|localhost|\[[0-9a-fA-F:.]+\]):(\d{1,5})"


def mqtt_port_from_log(text):
    """The MQTT listener's port from `edgeroute run`'s start-up lines: the
    first HOST:PORT on a line that mentions mqtt, after the word mqtt."""
    for line in text.splitlines():
        lower = line.lower()
        at = lower.find("mqtt")
        if at < 0:
            continue
        m = re.search(_ADDRESS, line[at:])
        if m and int(m.group(1)) != 0:
            return int(m.group(1))
    return None


def listening_tcp_ports(pid):
    """TCP ports process `pid` listens on (from /proc), or [] if unknown."""
    try:
        inodes = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                next(f)
                for row in f:
                    cols = row.split()
                    if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                        ports.append(int(cols[1].rsplit(":", 1)[1], 16))
        return sorted(set(ports))
    except OSError:
        return []


def short_socket_path(directory, name):
    """A Unix socket path in `directory`, or in a fresh directory under /tmp
    when that would pass the 107 bytes a socket address holds (Bazel's
    TEST_TMPDIR is long)."""
    path = os.path.join(directory, name)
    if len(path) <= 100:
        return path
    return os.path.join(tempfile.mkdtemp(prefix="er-", dir="/tmp"), name)


class Gateway:
    """`edgeroute run` with TLS, an identities file and (optionally) a store,
    listening for MQTT on an ephemeral loopback port."""

    def __init__(self, workdir, pki, identities, routes, desired=None,
                 store=True, client_ca=True, extra_args=()):
        self.dir = workdir
        self.pki = pki
        self.binary = edgeroute_binary()
        self.manifest_path = os.path.join(workdir, "deployment.json")
        self.identities_path = os.path.join(workdir, "identities.json")
        self.store_dir = os.path.join(workdir, "store") if store else None
        self.log_path = os.path.join(workdir, "gateway.log")
        self.routes = routes
        self.client_ca = client_ca
        self.extra_args = list(extra_args)
        self.process = None
        self.port = None
        self._log = None
        self.native_socket = short_socket_path(workdir, "native.sock")
        self.write_manifest(routes, desired)
        self.write_identities(identities)

    def write_manifest(self, routes=None, desired=None):
        if routes is not None:
            self.routes = routes
        write_json_atomically(self.manifest_path,
                              manifest_document(self.routes, desired))

    def write_identities(self, identities):
        write_json_atomically(self.identities_path,
                              identities_document(identities))

    def command(self):
        args = [self.binary, "run", "--manifest", self.manifest_path,
                "--device", GATEWAY_DEVICE,
                "--mqtt", "127.0.0.1:0",
                "--tls-cert", self.pki.server_cert,
                "--tls-key", self.pki.server_key,
                "--identities", self.identities_path,
                # The native protocol on a Unix socket only, so that tests
                # running side by side do not compete for its TCP port.
                "--listen", "unix:" + self.native_socket]
        if self.client_ca:
            args += ["--tls-client-ca", self.pki.ca_cert]
        if self.store_dir:
            args += ["--store", self.store_dir]
        return args + self.extra_args

    def start(self):
        assert self.process is None
        self._log = open(self.log_path, "a")
        self._log.write("==== %s\n" % " ".join(self.command()))
        self._log.flush()
        start_offset = self._log.tell()
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=self._log)

        def port():
            if self.process.poll() is not None:
                fail("edgeroute run exited with %s before listening:\n%s" %
                     (self.process.returncode, self.log()))
            # Only the log names the MQTT port: the process may listen on
            # other TCP ports first (the native protocol, metrics), so
            # "its one listening port" would race the MQTT listener.
            with open(self.log_path) as f:
                f.seek(start_offset)
                return mqtt_port_from_log(f.read())

        self.port = wait_until(port, START_TIMEOUT_S,
                               "edgeroute run to listen for MQTT")
        return self

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        """SIGTERM and wait; a gateway that does not stop fails the test."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
                self._log.close()
                fail("edgeroute run did not stop within %d s of SIGTERM" %
                     STOP_TIMEOUT_S)
        self._log.close()

    def kill(self):
        """SIGKILL, as a power cut would."""
        process, self.process = self.process, None
        process.kill()
        process.wait(STOP_TIMEOUT_S)
        self._log.close()

    def reload(self):
        self.process.send_signal(signal.SIGHUP)

    @property
    def host(self):
        return "localhost"


class GatewayTestCase(unittest.TestCase):
    """Per test: a temporary directory, a PKI, and teardown that stops the
    gateway and prints its log when the test failed."""

    maxDiff = None

    def setUp(self):
        base = os.environ.get("TEST_TMPDIR") or tempfile.gettempdir()
        self.dir = tempfile.mkdtemp(prefix="mqtt-", dir=base)
        self.pki = Pki(os.path.join(self.dir, "pki"))
        self.gateways = []
        self._cleanups_processes = []

    def start_gateway(self, identities, routes, **kwargs):
        workdir = os.path.join(self.dir, "gw%d" % len(self.gateways))
        os.makedirs(workdir)
        gw = Gateway(workdir, self.pki, identities, routes, **kwargs)
        self.gateways.append(gw)
        return gw.start()

    def spawn(self, args, **kwargs):
        """A background client process, killed at teardown if still running."""
        p = subprocess.Popen(args, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, **kwargs)
        self._cleanups_processes.append(p)
        return p

    def tearDown(self):
        for p in self._cleanups_processes:
            if p.poll() is None:
                p.kill()
                p.wait(STOP_TIMEOUT_S)
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
        failed = self._failed()
        for gw in self.gateways:
            try:
                gw.stop()
            except AssertionError as e:
                failed = True
                sys.stderr.write("%s\n" % e)
        if failed:
            for gw in self.gateways:
                sys.stderr.write("---- %s\n%s\n" % (gw.log_path, gw.log()))
        for gw in self.gateways:
            socket_dir = os.path.dirname(gw.native_socket)
            if not socket_dir.startswith(self.dir):
                shutil.rmtree(socket_dir, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        result = getattr(outcome, "result", None)
        if result is not None:
            return any(t is self for t, _ in result.errors + result.failures)
        errors = getattr(outcome, "errors", [])
        return any(exc is not None for _, exc in errors)


def parse_bag(bag):
    """A property bag `k=v&k2=v2` as a dict, URL-decoded (no '+' as space)."""
    props = {}
    bag = bag.rstrip("/")
    if not bag:
        return props
    for pair in bag.split("&"):
        key, _, value = pair.partition("=")
        props[urllib.parse.unquote(key)] = urllib.parse.unquote(value)
    return props


def split_input_topic(topic):
    """devices/{d}/modules/{m}/inputs/{input}/{bag} → (d, m, input, props)."""
    parts = topic.split("/", 6)
    if len(parts) < 6 or parts[0] != "devices" or parts[2] != "modules" or \
            parts[4] != "inputs":
        fail("not a module input topic: %r" % topic)
    bag = parts[6] if len(parts) > 6 else ""
    return parts[1], parts[3], parts[5], parse_bag(bag)


def main():
    unittest.main(verbosity=2)


# --- mosquitto command-line clients ----------------------------------------

def mosquitto_client_args(port, identity, ca_cert, password=None, cert=None,
                          key=None):
    """Connection arguments for mosquitto_pub/mosquitto_sub as `identity`
    (SAS token unless a client certificate is given)."""
    args = ["-h", "localhost", "-p", str(port), "--cafile", ca_cert,
            "-V", "mqttv311", "-i", identity.client_id, "-u", identity.username]
    if cert:
        args += ["--cert", cert, "--key", key]
    else:
        args += ["-P", password if password is not None else
                 identity.password()]
    return args


def line_buffered(args):
    """mosquitto_pub/sub print with stdio: line-buffer them so that a test
    sees each line as it is printed (and nothing is lost on a kill)."""
    stdbuf = shutil.which("stdbuf")
    return ([stdbuf, "-oL", "-eL"] if stdbuf else []) + args


class LineReader:
    """Reads a background process's stdout line by line with deadlines."""

    def __init__(self, process):
        self.process = process
        self.lines = []
        self._queue = queue.Queue()

        def pump():
            try:
                for line in process.stdout:
                    self._queue.put(line.rstrip("\n"))
            except (OSError, ValueError):
                pass  # closed at teardown
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self._eof = False
        self._cursor = 0

    def wait_for(self, predicate, timeout, what):
        """Returns the first new line for which predicate(line) is true."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if predicate(line):
                return line
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._eof:
                break
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self._eof = True
                break
            self.lines.append(line)
            if predicate(line):
                return line
        fail("timed out after %.0f s waiting for %s; the client printed:\n%s" %
             (timeout, what, "\n".join(self.lines)))

    def next(self, predicate, timeout, what):
        """Like wait_for, but only lines after the last one next() returned
        count: repeated identical lines are told apart."""
        start = self._cursor
        deadline = time.monotonic() + timeout
        while True:
            for i in range(start, len(self.lines)):
                if predicate(self.lines[i]):
                    self._cursor = i + 1
                    return self.lines[i]
            start = len(self.lines)
            if self._eof or time.monotonic() >= deadline:
                fail("timed out after %.0f s waiting for %s; the client "
                     "printed:\n%s" % (timeout, what, "\n".join(self.lines)))
            try:
                item = self._queue.get(
                    timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                continue
            if item is None:
                self._eof = True
            else:
                self.lines.append(item)

    def finish(self, timeout, what):
        """Waits for the process to exit; returns (exit code, all lines,
        stderr)."""
        deadline = time.monotonic() + timeout
        self.drain(timeout)
        if not self._eof:
            self.process.kill()
            fail("timed out after %.0f s waiting for %s; it printed:\n%s" %
                 (timeout, what, "\n".join(self.lines)))
        try:
            self.process.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            fail("%s closed its output but did not exit" % what)
        err = self.process.stderr.read() if self.process.stderr else ""
        return self.process.returncode, self.lines, err

    def drain(self, seconds):
        """Collects lines for `seconds`; returns all lines so far."""
        deadline = time.monotonic() + seconds
        while not self._eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self._eof = True
                break
            self.lines.append(line)
        return self.lines


# --- a mosquitto broker, for checking the harness itself ---------------------

class Mosquitto:
    """Debian's mosquitto broker with TLS on a free loopback port."""

    def __init__(self, workdir, pki, require_certificate=False):
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(self.binary):
            fail("mosquitto is not installed; scripts/setup.sh installs it")
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.config = os.path.join(workdir, "mosquitto.conf")
        self.log_path = os.path.join(workdir, "mosquitto.log")
        with open(self.config, "w") as f:
            f.write("listener %d 127.0.0.1\n" % self.port)
            f.write("cafile %s\ncertfile %s\nkeyfile %s\n" %
                    (pki.ca_cert, pki.server_cert, pki.server_key))
            f.write("require_certificate %s\n" %
                    ("true" if require_certificate else "false"))
            f.write("allow_anonymous true\npersistence false\n")
            # As root, mosquitto would switch to its own user, which cannot
            # read the test's key files.
            f.write("user %s\n" % pwd.getpwuid(os.getuid()).pw_name)
            f.write("log_dest stderr\nlog_type all\n")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen([self.binary, "-c", self.config],
                                        stdout=self._log, stderr=self._log)
        def listening():
            if self.process.poll() is not None:
                fail("mosquitto exited %d:\n%s" % (self.process.returncode,
                                                   self.log()))
            return self.port in listening_tcp_ports(self.process.pid)

        wait_until(listening, START_TIMEOUT_S, "mosquitto to listen")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        self._log.close()
