#include "tools/cli.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gateway/demo.h"
#include "gateway/gateway.h"
#include "gateway/upstream/options.h"
#include "tools/commands.h"
#include "version.h"

namespace edgeroute::tools {
namespace {

constexpr char kHelp[] =
    R"(edgeroute - Azure IoT Edge hub (edgeHub) routes, checked and evaluated offline

Usage:
  edgeroute check MANIFEST.json [--device NAME]
      Validate a deployment manifest (or a bare $edgeHub desired-properties
      object, schema 1.0-1.3) like a compiler: every error and warning with
      route name, line, column and a caret. MANIFEST "-" reads stdin.
      Exit 0 when valid (warnings allowed), 1 when not, 2 on usage errors.

  edgeroute eval 'CONDITION' [--message FILE.json]
      Evaluate one condition on one message and show the value of each
      sub-expression that decided it. Without --message the message is
      empty. FILE "-" reads stdin. Exit 1 when the condition does not compile.

  edgeroute eval --tsv [--device NAME]
      Read lines "condition<TAB>message-json[<TAB>anything]" from stdin and
      print one line each: true, false, undefined or compile-error, then
      optionally a TAB and the error or warnings. A line whose message is
      malformed prints "error<TAB>reason". Each condition is evaluated as the
      WHERE clause of: FROM /messages WHERE <condition> INTO $upstream

  edgeroute eval --jsonl [--device NAME]
      Read {"condition": STRING, "message": MESSAGE} per line; print
      {"result": "true"|"false"|"undefined"|"compile-error", ...} with
      "error", "line", "column" or "warnings" when there are any.

  edgeroute route --tsv [--device NAME]
      Read one route per line (anything after a TAB is ignored) and print
      edgeHub's first stage (route grammar and sink; the condition is not
      type-checked): source=S|condition=C|sink=E, or error, optionally
      followed by a TAB and the message.

  edgeroute route --jsonl [--device NAME]
      Read {"route": STRING} per line; print {"source": S, "condition": C,
      "sink": E} or {"error": MESSAGE, "line": L, "column": C}.

  edgeroute route 'ROUTE' [--device NAME]
      Parse one route and print its source, condition and sink.

  edgeroute store inspect DIR
      Report a store-and-forward directory: queues, depths, checkpoints,
      oldest message age, bytes on disk. Opens it read-only.

  edgeroute store repair DIR
      Repair a store that does not open or holds corrupt records (the
      gateway must be stopped): where RocksDB cannot read the database it
      is rebuilt from the readable files; references to missing or invalid
      messages are removed, reference counts recounted, corrupt checkpoints
      reset (messages are delivered again, never lost). Prints what it
      removed, with queue and offset.

  edgeroute run --manifest M.json [--store DIR] [--device ID]
                [--store-max-bytes N] [--store-full reject|drop_oldest]
                [--durability process|power]
                [--mqtt HOST:PORT ...] [--tls-cert PEM --tls-key PEM]
                [--tls-client-ca PEM] [--identities FILE]
                [--max-message-bytes N]
                [--listen unix:PATH|tcp:HOST:PORT|tls:HOST:PORT ...]
                [--max-connections N] [--ack-timeout SECONDS]
                [--connect-timeout SECONDS] [--executor-threads N]
                [--metrics HOST:PORT]
                [--io epoll|uring] [--watch auto|poll|off]
                [--upstream mqtt://HOST[:PORT]|mqtts://HOST[:PORT]|
                            iothub://HOST[:PORT] ...]
                [--upstream-protocol 5|3.1.1] [--upstream-username U]
                [--upstream-password P] [--upstream-topic TEMPLATE]
                [--upstream-key BASE64] [--upstream-cert PEM
                 --upstream-cert-key PEM] [--upstream-ca PEM]
                [--upstream-hub NAME] [--upstream-max-in-flight N]
                [--upstream-token-ttl SECONDS]
      Run the gateway until SIGTERM/SIGINT. The manifest is reloaded on
      SIGHUP and when the file changes: --watch auto (default) watches its
      directory with inotify, so files replaced by rename are seen, and
      polls every second where inotify is unavailable; poll always polls;
      off reloads on SIGHUP only. Changes apply 200 ms after the last one;
      a manifest with errors is refused with a log line and the old routes
      stay. Modules and devices connect over MQTT 3.1.1 in the IoT Hub
      dialect (--mqtt, repeatable; port 0 picks a free port; the bound
      ports are printed as "mqtt listening on HOST:PORT") or with the
      protocol of gateway/PROTOCOL.md (--listen; default
      tcp:127.0.0.1:7411; tls:HOST:PORT is the same over TLS). With
      --tls-cert and --tls-key every MQTT listener is TLS;
      --tls-client-ca asks clients for certificates (X.509 identities). --identities names the devices and modules that
      may connect and their keys or certificates (see edgeroute identity);
      it is reloaded with the manifest. Without it MQTT accepts any
      identity, which is allowed only on loopback addresses. --max-message-
      bytes bounds an MQTT message's payload (default 262144). --store
      keeps messages in a RocksDB store-and-forward directory (default: in
      memory), twins' reported properties and MQTT sessions below it.
      --max-connections bounds the open connections of each protocol head
      (default 10000); beyond it a client gets a "busy" answer (CONNACK 3,
      or Error Overloaded) and is closed. A connection must complete its
      CONNECT or Hello (and TLS handshake) within --connect-timeout
      (default 10 s, 1..3600), else it is closed. A delivery not acknowledged within
      --ack-timeout (default 30 s, 0 = forever) goes back to its queue and
      is sent again (to another $upstream subscriber where there is one).
      --executor-threads sets the threads that deliver to every endpoint
      (module inputs, $upstream), however many there are (default 0: one
      per hardware thread, at most 8; 1..256).
      --store-max-bytes bounds what the store holds (0 = no limit; default:
      the manifest's storeLimits.maxSizeBytes, else no limit; edgeroute
      check shows which applies). At the limit, or on a full disk,
      --store-full reject (default) refuses new messages (clients get
      "store full"; native TelemetryAck kStoreFull, MQTT no PUBACK) and
      drop_oldest removes the oldest messages of the lowest priority.
      --durability power fsyncs before acknowledging, so acknowledged
      messages survive a power cut; process (default) survives a crash of
      the gateway only.
      --metrics serves Prometheus text on http://HOST:PORT/metrics.
      --device is the edge device id (default edge-gateway): modules are
      {device}/{module}.
      --upstream sends what routes put INTO $upstream to an MQTT broker
      (mqtt://, mqtts://; MQTT 5, or --upstream-protocol 3.1.1) or to a
      parent hub in the IoT Hub dialect (iothub://, TLS, signed in as
      --device with --upstream-key or --upstream-cert/--upstream-cert-key;
      --upstream-hub names the hub in tokens, default HOST;
      --upstream-token-ttl is the tokens' lifetime, 5..31536000 s, default
      3600, renewed by reconnecting after 80% of it;
      --upstream-max-in-flight bounds the PUBLISHes awaiting a PUBACK,
      default 1000, lowered to the broker's receive maximum). QoS 1; what
      cannot be sent waits in the store (or memory) and drains when the
      connection returns; several --upstream URLs are tried in turn.
      --upstream-topic (mqtt:// only) defaults to
      edgeroute/{deviceId}/{moduleId}/{outputName}. --upstream-ca is the CA
      the server is checked against (default: the system's).

  edgeroute demo [--seconds S] [--messages N] [--store DIR]
      Run a gateway with a temporary store and simulated sensor, filter
      module and upstream over loopback; take the upstream offline and bring
      it back; print progress, a report per route and endpoint, and
      PASS/FAIL checks. Default 20 s, 1000 readings a second. Exit 1 when a
      check fails.

  edgeroute identity add --identities FILE --device D [--module M]
                         [--hub HOST] [--x509-thumbprint HEX | --x509-ca]
                         [--gateway-host HOST] [--gateway]
                         [--parent GATEWAY_ID [--scope-only]]
  edgeroute identity token --identities FILE --device D [--module M]
                           [--ttl SECS] [--secondary]
  edgeroute identity connection-string --identities FILE --device D
                           [--module M] [--gateway-host HOST] [--secondary]
  edgeroute identity list --identities FILE
  edgeroute identity remove --identities FILE --device D [--module M]
      Manage the identities file that `run --identities` checks MQTT and
      native sign-ins against. add creates the file when --hub is given,
      makes a random 32-byte primary and secondary key (or records an X.509
      thumbprint, or a CA-signed certificate with CN = device id) and prints
      the identity's connection string. Nested gateways: --gateway marks a
      device that forwards for its children, --parent names the gateway a
      device is connected under (--scope-only: no credential, it only
      connects through that gateway). token prints a SAS token (default
      TTL 3600 s) for clients that take a password, e.g. mosquitto_pub -P.

  edgeroute help | --help
      This text.

  edgeroute --version
      Print the version, "edgeroute MAJOR.MINOR.PATCH".

Messages (eval) are JSON: {"props": {...}, "sys": {...}, "body": B}.
  props  application properties, string or null values
  sys    system properties by edgeHub's names: contentType, contentEncoding,
         connectionDeviceId, connectionModuleId, outputName, messageId, cid...
  body   a JSON string is the raw body text; any other JSON value is sent as
         its JSON text; no "body" means an empty body. $body queries need
         sys contentType "application/json" and contentEncoding "utf-8".
Batch modes echo blank lines and lines starting with '#' unchanged; one bad
line never stops the batch. --device names the edge device in module
endpoint ids (DEV/module/input); the default is DEV.
)";

struct Command {
  const char* name;
  int (*run)(const CommandContext& ctx);
  bool hidden;
};

// Takes the value of `flag` from "--flag=value" or the next argument.
// Returns false (after reporting) when it is missing.
bool FlagValue(const CommandContext& ctx, absl::string_view flag, size_t* i,
               std::string* out) {
  const std::string& arg = ctx.args[*i];
  if (arg.size() > flag.size() && arg[flag.size()] == '=') {
    *out = arg.substr(flag.size() + 1);
    return true;
  }
  if (*i + 1 >= ctx.args.size()) {
    *ctx.err << "edgeroute: " << flag << " needs a value\n";
    return false;
  }
  *out = ctx.args[++*i];
  return true;
}

bool IsFlag(const std::string& arg, absl::string_view flag) {
  return arg == flag || absl::StartsWith(arg, absl::StrCat(flag, "="));
}

// "HOST:PORT" with a port in [0, 65535].
bool SplitHostPort(absl::string_view text, std::string* host, int* port) {
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  *host = std::string(text.substr(0, colon));
  return absl::SimpleAtoi(text.substr(colon + 1), port) && *port >= 0 &&
         *port <= 65535;
}

// --store-max-bytes N, --store-full reject|drop_oldest,
// --durability process|power at ctx.args[*i].
bool ParseStoreFlag(const CommandContext& ctx, size_t* i,
                    gateway::GatewayOptions* options) {
  const std::string& arg = ctx.args[*i];
  std::string value;
  if (IsFlag(arg, "--store-max-bytes")) {
    uint64_t bytes = 0;
    if (!FlagValue(ctx, "--store-max-bytes", i, &value)) return false;
    if (!absl::SimpleAtoi(value, &bytes)) {
      *ctx.err << "edgeroute: --store-max-bytes wants a number of bytes, 0 "
                  "for no limit (got '"
               << value << "')\n";
      return false;
    }
    options->store_max_bytes = bytes;
  } else if (IsFlag(arg, "--store-full")) {
    if (!FlagValue(ctx, "--store-full", i, &value)) return false;
    if (value == "reject") {
      options->store_full_policy = store::FullPolicy::kReject;
    } else if (value == "drop_oldest") {
      options->store_full_policy = store::FullPolicy::kDropOldest;
    } else {
      *ctx.err << "edgeroute: --store-full wants reject or drop_oldest (got '"
               << value << "')\n";
      return false;
    }
  } else {
    if (!FlagValue(ctx, "--durability", i, &value)) return false;
    if (value == "process") {
      options->store_durability = store::Durability::kProcess;
    } else if (value == "power") {
      options->store_durability = store::Durability::kPower;
    } else {
      *ctx.err << "edgeroute: --durability wants process or power (got '"
               << value << "')\n";
      return false;
    }
  }
  return true;
}

int RunCommand(const CommandContext& ctx) {
  gateway::GatewayOptions options;
  bool tcp_listener = false;
  bool unix_listener = false;
  bool max_message_given = false;
  bool store_flag_given = false;
  for (size_t i = 0; i < ctx.args.size(); ++i) {
    const std::string& arg = ctx.args[i];
    std::string value;
    if (IsFlag(arg, "--manifest")) {
      if (!FlagValue(ctx, "--manifest", &i, &options.manifest_path)) {
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--store")) {
      if (!FlagValue(ctx, "--store", &i, &options.store_dir)) return kExitUsage;
    } else if (IsFlag(arg, "--store-max-bytes") ||
               IsFlag(arg, "--store-full") || IsFlag(arg, "--durability")) {
      if (!ParseStoreFlag(ctx, &i, &options)) return kExitUsage;
      store_flag_given = true;
    } else if (IsFlag(arg, "--device")) {
      if (!FlagValue(ctx, "--device", &i, &options.device_id)) {
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--listen")) {
      if (!FlagValue(ctx, "--listen", &i, &value)) return kExitUsage;
      if (absl::StartsWith(value, "unix:") && value.size() > 5 &&
          !unix_listener) {
        options.unix_path = value.substr(5);
        unix_listener = true;
      } else if ((absl::StartsWith(value, "tcp:") ||
                  absl::StartsWith(value, "tls:")) &&
                 !tcp_listener &&
                 SplitHostPort(absl::string_view(value).substr(4),
                               &options.tcp_host, &options.tcp_port)) {
        tcp_listener = true;
        options.native_tls = absl::StartsWith(value, "tls:");
      } else {
        *ctx.err << "edgeroute: --listen wants unix:PATH, tcp:HOST:PORT or "
                    "tls:HOST:PORT, at most one TCP and one Unix listener "
                    "(got '"
                 << value << "')\n";
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--mqtt")) {
      if (!FlagValue(ctx, "--mqtt", &i, &value)) return kExitUsage;
      gateway::mqtt::MqttListener listener;
      if (!SplitHostPort(value, &listener.host, &listener.port)) {
        *ctx.err << "edgeroute: --mqtt wants HOST:PORT (got '" << value
                 << "')\n";
        return kExitUsage;
      }
      options.mqtt_listeners.push_back(listener);
    } else if (IsFlag(arg, "--tls-cert")) {
      if (!FlagValue(ctx, "--tls-cert", &i, &options.tls_cert_path)) {
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--tls-key")) {
      if (!FlagValue(ctx, "--tls-key", &i, &options.tls_key_path)) {
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--tls-client-ca")) {
      if (!FlagValue(ctx, "--tls-client-ca", &i, &options.tls_client_ca_path)) {
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--identities")) {
      if (!FlagValue(ctx, "--identities", &i, &options.identities_path)) {
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--max-message-bytes")) {
      if (!FlagValue(ctx, "--max-message-bytes", &i, &value)) {
        return kExitUsage;
      }
      if (!absl::SimpleAtoi(value, &options.max_message_bytes) ||
          options.max_message_bytes < 1 ||
          options.max_message_bytes > (16u << 20)) {
        *ctx.err << "edgeroute: --max-message-bytes wants 1..16777216 (got '"
                 << value << "')\n";
        return kExitUsage;
      }
      max_message_given = true;
    } else if (IsFlag(arg, "--ack-timeout")) {
      if (!FlagValue(ctx, "--ack-timeout", &i, &value)) return kExitUsage;
      int64_t seconds = 0;
      if (!absl::SimpleAtoi(value, &seconds) || seconds < 0 ||
          seconds > 86400) {
        *ctx.err << "edgeroute: --ack-timeout wants 0..86400 seconds (got '"
                 << value << "')\n";
        return kExitUsage;
      }
      options.ack_timeout = absl::Seconds(seconds);
    } else if (IsFlag(arg, "--connect-timeout")) {
      if (!FlagValue(ctx, "--connect-timeout", &i, &value)) return kExitUsage;
      int64_t seconds = 0;
      if (!absl::SimpleAtoi(value, &seconds) || seconds < 1 || seconds > 3600) {
        *ctx.err << "edgeroute: --connect-timeout wants 1..3600 seconds (got '"
                 << value << "')\n";
        return kExitUsage;
      }
      options.connect_timeout = absl::Seconds(seconds);
    } else if (IsFlag(arg, "--executor-threads")) {
      if (!FlagValue(ctx, "--executor-threads", &i, &value)) return kExitUsage;
      if (!absl::SimpleAtoi(value, &options.executor_threads) ||
          options.executor_threads < 0 || options.executor_threads > 256) {
        *ctx.err << "edgeroute: --executor-threads wants 0..256 (got '" << value
                 << "')\n";
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--max-connections")) {
      if (!FlagValue(ctx, "--max-connections", &i, &value)) return kExitUsage;
      if (!absl::SimpleAtoi(value, &options.max_connections) ||
          options.max_connections < 1 || options.max_connections > 1000000) {
        *ctx.err << "edgeroute: --max-connections wants 1..1000000 (got '"
                 << value << "')\n";
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--metrics")) {
      if (!FlagValue(ctx, "--metrics", &i, &value)) return kExitUsage;
      if (!SplitHostPort(value, &options.metrics_host, &options.metrics_port)) {
        *ctx.err << "edgeroute: --metrics wants HOST:PORT (got '" << value
                 << "')\n";
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--io")) {
      if (!FlagValue(ctx, "--io", &i, &value)) return kExitUsage;
      if (value == "epoll") {
        options.backend = gateway::IoBackend::kEpoll;
      } else if (value == "uring" || value == "io_uring") {
        options.backend = gateway::IoBackend::kIoUring;
      } else {
        *ctx.err << "edgeroute: --io wants epoll or uring (got '" << value
                 << "')\n";
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--watch")) {
      if (!FlagValue(ctx, "--watch", &i, &value)) return kExitUsage;
      if (value == "auto") {
        options.manifest_watch = gateway::ManifestWatch::kAuto;
      } else if (value == "poll") {
        options.manifest_watch = gateway::ManifestWatch::kPoll;
      } else if (value == "off") {
        options.manifest_watch = gateway::ManifestWatch::kOff;
      } else {
        *ctx.err << "edgeroute: --watch wants auto, poll or off (got '" << value
                 << "')\n";
        return kExitUsage;
      }
    } else if (absl::StartsWith(arg, "--upstream")) {
      const std::string name = arg.substr(0, arg.find('='));
      if (!FlagValue(ctx, name, &i, &value)) return kExitUsage;
      const absl::Status s =
          gateway::upstream::SetUpstreamFlag(name, value, &options.upstream);
      if (!s.ok()) {
        *ctx.err << "edgeroute: run: " << s.message() << "\n";
        return kExitUsage;
      }
    } else {
      *ctx.err << "edgeroute: run: unexpected argument '" << arg
               << "' (see edgeroute help)\n";
      return kExitUsage;
    }
  }
  options.upstream.device_id = options.device_id;
  if (const absl::Status s =
          gateway::upstream::ValidateUpstreamOptions(options.upstream);
      !s.ok()) {
    *ctx.err << "edgeroute: run: " << s.message() << "\n";
    return kExitUsage;
  }
  if (options.manifest_path.empty()) {
    *ctx.err << "edgeroute: run needs --manifest M.json\n";
    return kExitUsage;
  }
  if (store_flag_given && options.store_dir.empty()) {
    *ctx.err << "edgeroute: --store-max-bytes, --store-full and --durability "
                "apply to a store: add --store DIR\n";
    return kExitUsage;
  }
  if (unix_listener && !tcp_listener) options.tcp_port = -1;
  if (options.tls_cert_path.empty() != options.tls_key_path.empty()) {
    *ctx.err << "edgeroute: --tls-cert and --tls-key go together\n";
    return kExitUsage;
  }
  if (!options.tls_client_ca_path.empty() && options.tls_cert_path.empty()) {
    *ctx.err << "edgeroute: --tls-client-ca needs --tls-cert and --tls-key\n";
    return kExitUsage;
  }
  if (options.native_tls && options.tls_cert_path.empty()) {
    *ctx.err << "edgeroute: --listen tls:HOST:PORT needs --tls-cert and "
                "--tls-key\n";
    return kExitUsage;
  }
  if (options.mqtt_listeners.empty() && !options.native_tls &&
      !options.tls_cert_path.empty()) {
    *ctx.err << "edgeroute: --tls-cert applies to MQTT listeners and "
                "--listen tls:HOST:PORT: add one of them\n";
    return kExitUsage;
  }
  if (options.mqtt_listeners.empty() && max_message_given) {
    *ctx.err << "edgeroute: --max-message-bytes applies to MQTT listeners: "
                "add --mqtt HOST:PORT\n";
    return kExitUsage;
  }
  if (options.identities_path.empty()) {
    for (const gateway::mqtt::MqttListener& l : options.mqtt_listeners) {
      if (!gateway::mqtt::IsLoopbackHost(l.host)) {
        *ctx.err << "edgeroute: run: --mqtt " << l.host << ":" << l.port
                 << " is not a loopback address: without --identities any "
                    "client could connect as any device or module. Give "
                    "--identities FILE (see edgeroute identity add), or "
                    "listen on 127.0.0.1.\n";
        return kExitInvalid;
      }
    }
  }
  const absl::Status status = gateway::RunGateway(options);
  if (!status.ok()) {
    *ctx.err << "edgeroute: run: " << status.ToString() << "\n";
    return kExitInvalid;
  }
  return kExitOk;
}

int DemoCommand(const CommandContext& ctx) {
  gateway::DemoOptions options;
  bool messages_given = false;
  for (size_t i = 0; i < ctx.args.size(); ++i) {
    const std::string& arg = ctx.args[i];
    std::string value;
    if (IsFlag(arg, "--messages")) {
      if (!FlagValue(ctx, "--messages", &i, &value)) return kExitUsage;
      if (!absl::SimpleAtoi(value, &options.messages) || options.messages < 1 ||
          options.messages > 10000000) {
        *ctx.err << "edgeroute: --messages wants 1..10000000\n";
        return kExitUsage;
      }
      messages_given = true;
    } else if (IsFlag(arg, "--seconds")) {
      if (!FlagValue(ctx, "--seconds", &i, &value)) return kExitUsage;
      if (!absl::SimpleAtoi(value, &options.seconds) || options.seconds < 6 ||
          options.seconds > 50) {
        *ctx.err << "edgeroute: --seconds wants 6..50\n";
        return kExitUsage;
      }
    } else if (IsFlag(arg, "--store")) {
      if (!FlagValue(ctx, "--store", &i, &options.store_dir)) {
        return kExitUsage;
      }
    } else {
      *ctx.err << "edgeroute: demo: unexpected argument '" << arg
               << "' (see edgeroute help)\n";
      return kExitUsage;
    }
  }
  if (!messages_given) options.messages = 1000 * options.seconds;
  // The demo prints through stdio; other streams get a copy at the end.
  const bool direct = ctx.out == &std::cout;
  std::FILE* capture = direct ? nullptr : std::tmpfile();
  if (!direct && capture == nullptr) {
    *ctx.err << "edgeroute: demo: cannot create a temporary file\n";
    return kExitInvalid;
  }
  if (direct) std::cout.flush();
  options.out = direct ? stdout : capture;
  absl::StatusOr<gateway::DemoReport> report = gateway::RunDemo(options);
  if (capture != nullptr) {
    std::rewind(capture);
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), capture)) > 0) {
      ctx.out->write(buffer, static_cast<std::streamsize>(n));
    }
    std::fclose(capture);
  }
  if (!report.ok()) {
    *ctx.err << "edgeroute: demo: " << report.status().ToString() << "\n";
    return kExitInvalid;
  }
  return report->passed() ? kExitOk : kExitInvalid;
}

constexpr Command kCommands[] = {
    {"eval", EvalCommand, false},   {"route", RouteCommand, false},
    {"check", CheckCommand, false}, {"match-source", MatchSourceCommand, true},
    {"store", StoreCommand, false}, {"run", RunCommand, false},
    {"demo", DemoCommand, false},   {"identity", IdentityCommand, false},
};

}  // namespace

bool ParseCommonOptions(const CommandContext& ctx, bool allow_message,
                        CommonOptions* options) {
  const std::vector<std::string>& a = ctx.args;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string& arg = a[i];
    auto value = [&](absl::string_view flag, std::string* out) {
      if (absl::StartsWith(arg, absl::StrCat(flag, "="))) {
        *out = arg.substr(flag.size() + 1);
        return true;
      }
      if (i + 1 >= a.size()) {
        *ctx.err << "edgeroute: " << flag << " needs a value\n";
        return false;
      }
      *out = a[++i];
      return true;
    };
    if (arg == "--tsv") {
      options->tsv = true;
    } else if (arg == "--jsonl") {
      options->jsonl = true;
    } else if (arg == "--device" || absl::StartsWith(arg, "--device=")) {
      if (!value("--device", &options->device)) return false;
    } else if (allow_message &&
               (arg == "--message" || absl::StartsWith(arg, "--message="))) {
      if (!value("--message", &options->message_file)) return false;
    } else if (arg == "--") {
      for (++i; i < a.size(); ++i) options->positional.push_back(a[i]);
    } else if (arg.size() > 1 && arg[0] == '-' && arg != "-") {
      *ctx.err << "edgeroute: unknown option " << arg
               << " (see edgeroute help)\n";
      return false;
    } else {
      options->positional.push_back(arg);
    }
  }
  if (options->tsv && options->jsonl) {
    *ctx.err << "edgeroute: --tsv and --jsonl exclude each other\n";
    return false;
  }
  return true;
}

bool IsPassThroughLine(absl::string_view line) {
  if (!line.empty() && line[0] == '#') return true;
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

std::string OneLine(absl::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return out;
}

std::string FirstError(const std::vector<query::Diagnostic>& diags,
                       absl::string_view fallback) {
  for (const query::Diagnostic& d : diags) {
    if (d.is_error()) {
      return absl::StrCat(d.line, ":", d.column, ": ", d.message);
    }
  }
  return std::string(fallback);
}

bool ReadFileOrStdin(const CommandContext& ctx, const std::string& path,
                     std::string* contents) {
  std::ostringstream buffer;
  if (path == "-") {
    buffer << ctx.in->rdbuf();
  } else {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      *ctx.err << "edgeroute: cannot read " << path << "\n";
      return false;
    }
    buffer << file.rdbuf();
  }
  *contents = buffer.str();
  return true;
}

int RunEdgeroute(const std::vector<std::string>& args, std::istream& in,
                 std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << "usage: edgeroute check|eval|route|store|run|demo|identity|help ... "
           "(edgeroute help)\n";
    return kExitUsage;
  }
  const std::string& name = args[0];
  if (name == "help" || name == "--help" || name == "-h") {
    out << kHelp;
    return kExitOk;
  }
  if (name == "--version" || name == "version") {
    out << "edgeroute " << EDGEROUTE_RELEASE_VERSION << "\n";
    return kExitOk;
  }
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      out << kHelp;
      return kExitOk;
    }
    if (args[i] == "--") break;
  }
  for (const Command& command : kCommands) {
    if (name == command.name) {
      CommandContext ctx{std::vector<std::string>(args.begin() + 1, args.end()),
                         &in, &out, &err};
      return command.run(ctx);
    }
  }
  err << "edgeroute: unknown command '" << name << "' (see edgeroute help)\n";
  return kExitUsage;
}

}  // namespace edgeroute::tools
