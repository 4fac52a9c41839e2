#include "gateway/demo.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/auth/sas_token.h"
#include "gateway/client.h"
#include "gateway/demo_mqtt_module.h"
#include "gateway/demo_pki.h"
#include "gateway/gateway.h"
#include "message/message.h"
#include "message/status.h"
#include "router/router.h"
#include "store/store.h"

namespace edgeroute {
namespace gateway {

using router::EndpointMetrics;
using router::RouteMetrics;
using router::RouterMetrics;

// examples/demo-manifest.json, generated into demo_manifest.cc.
extern const char kDemoManifestText[];

namespace {

constexpr char kDevice[] = "demo-edge";
// The simulated upstream signs in over the native protocol as this device.
constexpr char kUpstreamDevice[] = "demo-cloud";
constexpr char kUpstreamEndpoint[] = "iothub";
// timeToLiveSecs of the alerts route in the manifest: the upstream stays
// away longer than this so that early alerts expire.
constexpr double kAlertTtlSeconds = 2.0;
// RouterOptions::endpoint_batch_size (the gateway keeps the default): after
// the reconnect one retried batch and one batch in flight may precede the
// alerts.
constexpr uint64_t kBatchSize = 100;
constexpr int kAlertThreshold = 30;
// Slack for TTL judgements: a reading enters the upstream queue a little
// after the filter forwarded it (admission), and the first alert batches
// after the reconnect take a moment.
constexpr int64_t kTtlMarginUs = 500000;

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

// Every tenth reading is above the alert threshold.
int Temperature(uint64_t seq) {
  return seq % 10 == 7 ? 31 + static_cast<int>(seq % 5)
                       : 20 + static_cast<int>((seq * 7) % 9);
}

uint64_t PropertyNumber(const MessageView& message, absl::string_view key) {
  const PropertyValue v = message.FindProperty(key);
  uint64_t n = 0;
  if (!v.has_string() || !absl::SimpleAtoi(v.value, &n)) return ~uint64_t{0};
  return n;
}

absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& address,
                                                absl::string_view device,
                                                absl::string_view module,
                                                const std::string& sas_token) {
  ClientOptions client_options;
  client_options.sas_token = sas_token;
  EDGEROUTE_ASSIGN_OR_RETURN(std::unique_ptr<Client> client,
                             Client::Connect(address, client_options));
  EDGEROUTE_RETURN_IF_ERROR(client->Hello(device, module));
  return client;
}

// A fresh directory under the system's temporary directory.
absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix) {
  std::error_code error;
  const std::filesystem::path tmp = std::filesystem::temp_directory_path(error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("demo: no temporary directory: ", error.message()));
  }
  std::string pattern = (tmp / absl::StrCat(prefix, "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) {
    return ErrnoToStatus(errno, absl::StrCat("demo: ", prefix));
  }
  return pattern;
}

absl::Status WriteFile(const std::string& path, absl::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out)
    return absl::InternalError(absl::StrCat("demo: cannot write ", path));
  return absl::OkStatus();
}

constexpr char kDemoHub[] = "demo-hub.example.net";

// What a real deployment brings and the demo makes on the spot: a CA and the
// gateway's certificate, and an identity with a key for each module.
struct DemoSecrets {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string identities_file;
  std::string sensor_token;
  std::string filter_token;
  std::string upstream_token;
};

absl::StatusOr<DemoSecrets> MakeDemoSecrets(const std::string& dir) {
  DemoSecrets out;
  EDGEROUTE_ASSIGN_OR_RETURN(const PemPair ca,
                             MakeCertificateAuthority("edgeroute demo CA", 1));
  EDGEROUTE_ASSIGN_OR_RETURN(
      const PemPair server,
      MakeSignedCertificate(ca, "edgeroute demo gateway", {"localhost"},
                            {"127.0.0.1"}, 1));
  out.ca_file = dir + "/ca.pem";
  out.cert_file = dir + "/gateway.pem";
  out.key_file = dir + "/gateway-key.pem";
  out.identities_file = dir + "/identities.json";
  EDGEROUTE_RETURN_IF_ERROR(WriteFile(out.ca_file, ca.cert_pem));
  EDGEROUTE_RETURN_IF_ERROR(WriteFile(out.cert_file, server.cert_pem));
  EDGEROUTE_RETURN_IF_ERROR(WriteFile(out.key_file, server.key_pem));
  std::string identities =
      absl::StrCat("{\"hub\": \"", kDemoHub, "\", \"identities\": [");
  const absl::Time expiry = absl::Now() + absl::Hours(1);
  const std::pair<Identity, std::string*> members[] = {
      {Identity{kDevice, "sensor"}, &out.sensor_token},
      {Identity{kDevice, "filter"}, &out.filter_token},
      {Identity{kUpstreamDevice, ""}, &out.upstream_token}};
  for (const auto& [identity, token] : members) {
    unsigned char key_bytes[32];
    if (RAND_bytes(key_bytes, sizeof key_bytes) != 1) {
      return absl::InternalError("demo: RAND_bytes failed");
    }
    const std::string key = auth::Base64Encode(absl::string_view(
        reinterpret_cast<const char*>(key_bytes), sizeof key_bytes));
    absl::StrAppend(&identities, token == &out.sensor_token ? "" : ",",
                    "\n  {\"deviceId\": \"", identity.device_id, "\"");
    if (!identity.module_id.empty()) {
      absl::StrAppend(&identities, ", \"moduleId\": \"", identity.module_id,
                      "\"");
    }
    absl::StrAppend(&identities, ", \"primaryKey\": \"", key, "\"}");
    *token = auth::MakeSasToken(auth::SasResourceUri(kDemoHub, identity), key,
                                expiry);
  }
  absl::StrAppend(&identities, "]}\n");
  EDGEROUTE_RETURN_IF_ERROR(WriteFile(out.identities_file, identities));
  return out;
}

// State shared by the simulated clients and the narrator. Counters are
// progress figures read while the threads run: relaxed loads and stores
// (nothing else is published through them); the detailed records are read
// only after the threads are joined.
struct Shared {
  // The native protocol's address (the simulated upstream connects there).
  std::string address;
  // The simulated upstream's SAS token (the gateway checks identities on
  // both heads).
  std::string upstream_token;
  // How the sensor and filter modules reach the MQTT head (TLS, SAS).
  DemoMqttOptions sensor_mqtt;
  DemoMqttOptions filter_mqtt;
  uint64_t messages = 0;
  int64_t start_us = 0;
  int64_t send_us = 0;

  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> sensor_acked{0};
  std::atomic<bool> sensor_done{false};
  // Wall-clock send time per reading (sensor thread; read after the join).
  std::vector<int64_t> sent_at_us;

  std::atomic<uint64_t> filter_received{0};
  std::atomic<uint64_t> filter_sent{0};
  std::atomic<uint64_t> filter_acked{0};
  std::atomic<bool> stop_filter{false};
  // Wall-clock time the filter forwarded each reading, i.e. about when it
  // entered the upstream queue and its TTL started (filter thread; read
  // after the join).
  std::vector<int64_t> forwarded_at_us;
  // When the filter saw the gateway's TelemetryAck for each forward: the
  // reading was in the upstream queue by then (filter thread; read after
  // the join; 0 = never acknowledged).
  std::vector<int64_t> admitted_by_us;

  std::atomic<bool> upstream_online{true};
  std::atomic<bool> stop_upstream{false};
  std::atomic<uint64_t> upstream_distinct{0};
  std::atomic<int64_t> reconnect_us{0};

  std::mutex error_mu;
  std::string first_error;  // guarded by error_mu

  void Fail(absl::string_view who, const absl::Status& status) {
    std::lock_guard<std::mutex> lock(error_mu);
    if (first_error.empty())
      first_error = absl::StrCat(who, ": ", status.ToString());
  }
};

// Waits this long for the gateway's PUBACKs before calling it a failure.
constexpr int kAckTimeoutMs = 60000;

void RunSensor(Shared* s) {
  auto module = DemoMqttModule::Connect(s->sensor_mqtt);
  if (!module.ok()) {
    s->Fail("sensor", module.status());
    s->sensor_done.store(true, std::memory_order_relaxed);
    return;
  }
  uint64_t seq = 0;
  PropertyList properties(2);
  properties[0].first = "seq";
  properties[1].first = "sentUs";
  while (seq < s->messages) {
    const int64_t elapsed = NowMicros() - s->start_us;
    const uint64_t target =
        elapsed >= s->send_us
            ? s->messages
            : static_cast<uint64_t>(static_cast<double>(s->messages) *
                                    static_cast<double>(elapsed) /
                                    static_cast<double>(s->send_us));
    absl::Status status;
    for (; seq < target && status.ok(); ++seq) {
      s->sent_at_us[seq] = NowMicros();
      properties[0].second = absl::StrCat(seq);
      properties[1].second = absl::StrCat(s->sent_at_us[seq]);
      status = (*module)->Send(
          "temperature", properties,
          absl::StrCat("{\"temperature\":", Temperature(seq), "}"),
          /*content_json=*/true);
    }
    // QoS 1: the gateway's PUBACK says the reading is in the store.
    if (status.ok()) status = (*module)->WaitForAcks(seq, kAckTimeoutMs);
    if (!status.ok()) {
      s->Fail("sensor", status);
      break;
    }
    s->sent.store(seq, std::memory_order_relaxed);
    s->sensor_acked.store((*module)->acks(), std::memory_order_relaxed);
    absl::SleepFor(absl::Milliseconds(5));
  }
  s->sensor_done.store(true, std::memory_order_relaxed);
}

absl::string_view Property(const PropertyList& properties,
                           absl::string_view key) {
  for (const auto& [k, v] : properties) {
    if (k == key) return v;
  }
  return {};
}

// Forwards each reading on "alerts" or "readings" (QoS 1). libmosquitto
// acknowledges each input message when it arrives.
void RunFilter(Shared* s) {
  auto module = DemoMqttModule::Connect(s->filter_mqtt);
  absl::Status status = module.status();
  if (status.ok()) status = (*module)->SubscribeInputs(kAckTimeoutMs);
  // The reading of each forward, in publish order: the gateway acknowledges
  // a connection's PUBLISHes in order, so the first acks() of these are
  // admitted.
  std::vector<uint64_t> forwarded_seqs;
  size_t acks_seen = 0;
  PropertyList forward(4);
  forward[0].first = "seq";
  forward[1].first = "sentUs";
  forward[2].first = "alert";
  forward[3].first = "forwardedUs";
  while (status.ok()) {
    absl::StatusOr<DemoInput> in = (*module)->Receive(50);
    const int64_t now_us = NowMicros();
    const uint64_t acks = (*module)->acks();
    for (; acks_seen < acks && acks_seen < forwarded_seqs.size(); ++acks_seen) {
      const uint64_t acked_seq = forwarded_seqs[acks_seen];
      if (acked_seq < s->messages) s->admitted_by_us[acked_seq] = now_us;
    }
    s->filter_acked.store(acks, std::memory_order_relaxed);
    if (!in.ok()) {
      if (in.status().code() != absl::StatusCode::kDeadlineExceeded) {
        status = in.status();
      } else if (s->stop_filter.load(std::memory_order_relaxed)) {
        break;
      }
      continue;
    }
    int temperature = 0;
    const absl::string_view body = in->body;
    const size_t colon = body.find(':');
    if (colon != absl::string_view::npos) {
      absl::string_view digits = body.substr(colon + 1);
      digits = digits.substr(0, digits.find('}'));
      if (!absl::SimpleAtoi(digits, &temperature)) temperature = 0;
    }
    const bool alert = temperature > kAlertThreshold;
    const absl::string_view seq_text = Property(in->properties, "seq");
    uint64_t seq = ~uint64_t{0};
    if (!absl::SimpleAtoi(seq_text, &seq)) seq = ~uint64_t{0};
    const int64_t forwarded_us = NowMicros();
    forward[0].second = std::string(seq_text);
    forward[1].second = std::string(Property(in->properties, "sentUs"));
    forward[2].second = alert ? "true" : "false";
    forward[3].second = absl::StrCat(forwarded_us);
    if (seq < s->messages) s->forwarded_at_us[seq] = forwarded_us;
    s->filter_received.fetch_add(1, std::memory_order_relaxed);
    status = (*module)->Send(alert ? "alerts" : "readings", forward, body,
                             /*content_json=*/true);
    if (status.ok()) {
      forwarded_seqs.push_back(seq);
      s->filter_sent.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!status.ok()) s->Fail("filter", status);
}

// What the upstream saw; read after its thread is joined.
struct UpstreamRecord {
  std::vector<uint8_t> seen;
  uint64_t duplicates = 0;
  std::vector<int64_t> alert_latency_us;
  std::vector<int64_t> bulk_latency_us;
  // Every delivery of an alert (repeats included): (reading, when).
  std::vector<std::pair<uint64_t, int64_t>> alert_deliveries;
  // First deliveries after the reconnect, in order: (reading, is alert).
  std::vector<std::pair<uint64_t, bool>> after_reconnect;
};

void RunUpstream(Shared* s, UpstreamRecord* r) {
  r->seen.assign(s->messages, 0);
  std::unique_ptr<Client> client;
  bool was_offline = false;
  int64_t reconnect_us = 0;
  while (!s->stop_upstream.load(std::memory_order_relaxed)) {
    if (!s->upstream_online.load(std::memory_order_relaxed)) {
      if (client != nullptr) {
        // Deliveries not acknowledged yet come again after the reconnect.
        client->Flush().IgnoreError();
        client.reset();
        was_offline = true;
      }
      absl::SleepFor(absl::Milliseconds(10));
      continue;
    }
    if (client == nullptr) {
      auto c = Connect(s->address, kUpstreamDevice, "", s->upstream_token);
      absl::Status status = c.status();
      if (status.ok()) status = (*c)->Subscribe({kUpstreamInput});
      if (!status.ok()) {
        s->Fail("upstream", status);
        return;
      }
      client = std::move(*c);
      if (was_offline) {
        reconnect_us = NowMicros();
        s->reconnect_us.store(reconnect_us, std::memory_order_relaxed);
      }
    }
    absl::StatusOr<Delivery> d = client->Receive(50);
    if (!d.ok()) {
      if (d.status().code() != absl::StatusCode::kDeadlineExceeded) {
        s->Fail("upstream", d.status());
        return;
      }
      continue;
    }
    const int64_t now = NowMicros();
    const uint64_t seq = PropertyNumber(d->message, "seq");
    const uint64_t sent_us = PropertyNumber(d->message, "sentUs");
    const bool alert = d->message.FindProperty("alert").value == "true";
    if (seq < s->messages) {
      if (alert) r->alert_deliveries.emplace_back(seq, now);
      if (r->seen[seq]) {
        ++r->duplicates;
      } else {
        r->seen[seq] = 1;
        s->upstream_distinct.fetch_add(1, std::memory_order_relaxed);
        const int64_t latency = now - static_cast<int64_t>(sent_us);
        (alert ? r->alert_latency_us : r->bulk_latency_us).push_back(latency);
        if (reconnect_us != 0) r->after_reconnect.emplace_back(seq, alert);
      }
    }
    absl::Status status = client->Ack(d->delivery_id);
    if (!status.ok()) {
      s->Fail("upstream", status);
      return;
    }
  }
  if (client != nullptr) client->Flush().IgnoreError();
}

int64_t Percentile(std::vector<int64_t>* v, double q) {
  if (v->empty()) return 0;
  const size_t k = std::min(
      v->size() - 1, static_cast<size_t>(q * static_cast<double>(v->size())));
  std::nth_element(v->begin(), v->begin() + static_cast<ptrdiff_t>(k),
                   v->end());
  return (*v)[k];
}

std::string Duration(int64_t micros) {
  if (micros < 1000) return absl::StrCat(micros, " us");
  if (micros < 1000000) return absl::StrFormat("%.1f ms", micros / 1e3);
  return absl::StrFormat("%.2f s", micros / 1e6);
}

// Prints the story: banners and result lines end any pending progress line.
class Narrator {
 public:
  explicit Narrator(std::FILE* out)
      : out_(out), tty_(isatty(fileno(out)) != 0) {}
  void Progress(const std::string& line) {
    if (tty_) {
      std::fprintf(out_, "\r%s\033[K", line.c_str());
      pending_ = true;
    } else {
      std::fprintf(out_, "%s\n", line.c_str());
    }
    std::fflush(out_);
  }
  void Line(const std::string& line) {
    if (pending_) std::fputc('\n', out_);
    pending_ = false;
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }

 private:
  std::FILE* const out_;
  const bool tty_;
  bool pending_ = false;
};

struct Totals {
  uint64_t stored = 0;  // admitted: each is appended to the store first
  uint64_t routed = 0;
  uint64_t delivered_upstream = 0;
  uint64_t expired = 0;
  uint64_t queued = 0;
  uint64_t dropped = 0;
};

// Expired messages: those the router found expired before an attempt plus
// those the store skipped as expired when the router read its queue.
Totals Sum(const RouterMetrics& m, const Gateway& gateway) {
  Totals t;
  absl::StatusOr<store::Store::Stats> stats = gateway.StoreStats();
  if (stats.ok()) t.expired = stats->expired;
  t.stored = m.received;
  for (const RouteMetrics& r : m.routes) t.routed += r.matched;
  for (const EndpointMetrics& e : m.endpoints) {
    if (e.endpoint_id == kUpstreamEndpoint) t.delivered_upstream = e.delivered;
    t.expired += e.expired;
    t.queued += e.queue_depth;
    t.dropped += e.rejected + e.dropped_queue_full + e.dropped_dead +
                 e.dropped_removed + e.dropped_close;
  }
  return t;
}

}  // namespace

absl::string_view DemoManifest() { return kDemoManifestText; }

bool DemoReport::passed() const {
  if (checks.empty()) return false;
  for (const DemoCheck& c : checks) {
    if (!c.passed) return false;
  }
  return true;
}

const DemoCheck* DemoReport::Find(absl::string_view name) const {
  for (const DemoCheck& c : checks) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

absl::StatusOr<DemoReport> RunDemo(const DemoOptions& options) {
  if (options.messages < 1 || options.seconds < 6 || options.seconds > 50) {
    return absl::InvalidArgumentError(
        "demo: messages must be >= 1 and seconds in [6, 50]");
  }
  Narrator say(options.out);

  // The store: a fresh temporary directory unless one was given.
  std::string store_dir = options.store_dir;
  const bool remove_store = store_dir.empty();
  if (remove_store) {
    EDGEROUTE_ASSIGN_OR_RETURN(store_dir, MakeTempDir("edgeroute-demo-store"));
  }
  // Certificates, keys and the identities file: always temporary.
  EDGEROUTE_ASSIGN_OR_RETURN(const std::string secrets_dir,
                             MakeTempDir("edgeroute-demo-secrets"));
  struct Cleanup {
    std::vector<std::string> dirs;
    ~Cleanup() {
      for (const std::string& dir : dirs) {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
      }
    }
  } cleanup;
  cleanup.dirs.push_back(secrets_dir);
  if (remove_store) cleanup.dirs.push_back(store_dir);
  EDGEROUTE_ASSIGN_OR_RETURN(const DemoSecrets secrets,
                             MakeDemoSecrets(secrets_dir));

  GatewayOptions gateway_options;
  gateway_options.manifest_json = std::string(DemoManifest());
  gateway_options.device_id = kDevice;
  gateway_options.tcp_port = 0;
  gateway_options.store_dir = store_dir;
  gateway_options.backend = options.backend;
  // The modules come in over MQTT with TLS and SAS tokens, as IoT Edge
  // modules do; the simulated upstream uses the native protocol.
  mqtt::MqttListener listener;
  listener.host = "127.0.0.1";
  listener.port = 0;
  gateway_options.mqtt_listeners.push_back(listener);
  gateway_options.tls_cert_path = secrets.cert_file;
  gateway_options.tls_key_path = secrets.key_file;
  gateway_options.identities_path = secrets.identities_file;
  EDGEROUTE_ASSIGN_OR_RETURN(std::unique_ptr<Gateway> gateway,
                             Gateway::Create(gateway_options));
  EDGEROUTE_RETURN_IF_ERROR(gateway->Start());

  const double total_s = options.seconds;
  const double off_s = 0.25 * total_s;
  const double on_s = off_s + std::max(0.35 * total_s, kAlertTtlSeconds + 1.5);
  const double send_s = std::max(0.85 * total_s, on_s + 1.0);

  Shared shared;
  shared.address = absl::StrCat("tcp:127.0.0.1:", gateway->tcp_port());
  const int mqtt_port = gateway->mqtt_ports().at(0);
  for (DemoMqttOptions* module : {&shared.sensor_mqtt, &shared.filter_mqtt}) {
    module->host = "127.0.0.1";
    module->port = mqtt_port;
    module->ca_file = secrets.ca_file;
    module->hub = kDemoHub;
    module->device_id = kDevice;
  }
  shared.upstream_token = secrets.upstream_token;
  shared.sensor_mqtt.module_id = "sensor";
  shared.sensor_mqtt.sas_token = secrets.sensor_token;
  shared.filter_mqtt.module_id = "filter";
  shared.filter_mqtt.sas_token = secrets.filter_token;
  shared.messages = static_cast<uint64_t>(options.messages);
  shared.send_us = static_cast<int64_t>(send_s * 1e6);
  shared.sent_at_us.assign(shared.messages, 0);
  shared.forwarded_at_us.assign(shared.messages, 0);
  shared.admitted_by_us.assign(shared.messages, 0);

  say.Line(absl::StrFormat(
      "edgeroute demo: gateway with MQTT (TLS) on 127.0.0.1:%d and the native "
      "protocol on %s (%s I/O), store %s%s",
      mqtt_port, shared.address, IoBackendName(gateway->backend()), store_dir,
      remove_store ? " (temporary)" : ""));
  say.Line(absl::StrFormat(
      "  modules sign in as %s/sensor and %s/filter with SAS tokens from the "
      "identities file (libmosquitto clients; throw-away CA in %s)",
      kDevice, kDevice, secrets_dir));
  say.Line(
      "  sensor -> filter module -> $upstream: alerts priority 0, TTL 2 s; "
      "bulk readings priority 5");
  say.Line(absl::StrFormat(
      "  %d readings over %.0f s; upstream offline from %.1f s to %.1f s",
      options.messages, send_s, off_s, on_s));

  UpstreamRecord record;
  shared.start_us = NowMicros();
  std::thread upstream(RunUpstream, &shared, &record);
  std::thread filter(RunFilter, &shared);
  std::thread sensor(RunSensor, &shared);

  enum class Phase {
    kNormal,
    kOffline,
    kBack,
    kDraining
  } phase = Phase::kNormal;
  say.Line("== phase 1: upstream online");
  uint64_t last_delivered = 0;
  int64_t last_tick = shared.start_us;
  int64_t drained_since = 0;
  const int64_t deadline_us =
      shared.start_us + static_cast<int64_t>((send_s + 25.0) * 1e6);
  bool drained = false;
  while (true) {
    absl::SleepFor(absl::Milliseconds(500));
    const int64_t now = NowMicros();
    const double t = static_cast<double>(now - shared.start_us) / 1e6;
    if (phase == Phase::kNormal && t >= off_s) {
      shared.upstream_online.store(false, std::memory_order_relaxed);
      say.Line(absl::StrFormat(
          "== phase 2 (%.1f s): upstream OFFLINE -- messages pile up in the "
          "store; alerts older than their TTL will expire",
          t));
      phase = Phase::kOffline;
    } else if (phase == Phase::kOffline && t >= on_s) {
      shared.upstream_online.store(true, std::memory_order_relaxed);
      say.Line(absl::StrFormat(
          "== phase 3 (%.1f s): upstream back -- the backlog drains, alerts "
          "first",
          t));
      phase = Phase::kBack;
    }
    const Totals totals = Sum(gateway->RouterMetricsSnapshot(), *gateway);
    const uint64_t delivered =
        shared.upstream_distinct.load(std::memory_order_relaxed);
    const double rate = static_cast<double>(delivered - last_delivered) /
                        (static_cast<double>(now - last_tick) / 1e6);
    last_delivered = delivered;
    last_tick = now;
    say.Progress(absl::StrFormat(
        "  %5.1f s  sent %llu  stored %llu  routed %llu  delivered %llu  "
        "expired %llu  queue %llu  upstream %.0f msg/s",
        t, static_cast<unsigned long long>(shared.sent.load()),
        static_cast<unsigned long long>(totals.stored),
        static_cast<unsigned long long>(totals.routed),
        static_cast<unsigned long long>(delivered),
        static_cast<unsigned long long>(totals.expired),
        static_cast<unsigned long long>(totals.queued), rate));

    if (phase == Phase::kBack &&
        shared.sensor_done.load(std::memory_order_relaxed)) {
      say.Line(absl::StrFormat(
          "== sensor finished (%.1f s): waiting for the store to drain", t));
      phase = Phase::kDraining;
    }
    if (phase == Phase::kDraining) {
      // Drained: every acknowledged reading went through the filter, every
      // forward was answered, and no queue holds anything (twice in a row).
      const bool idle =
          totals.queued == 0 &&
          shared.filter_received.load(std::memory_order_relaxed) >=
              shared.sensor_acked.load(std::memory_order_relaxed) &&
          shared.filter_acked.load(std::memory_order_relaxed) >=
              shared.filter_sent.load(std::memory_order_relaxed);
      if (!idle) {
        drained_since = 0;
      } else if (drained_since == 0) {
        drained_since = now;
      } else {
        drained = true;
        break;
      }
    }
    if (now >= deadline_us) {
      say.Line("== gave up waiting for the drain");
      shared.upstream_online.store(true, std::memory_order_relaxed);
      break;
    }
  }
  const int64_t end_us = NowMicros();
  sensor.join();
  shared.stop_filter.store(true, std::memory_order_relaxed);
  filter.join();
  shared.stop_upstream.store(true, std::memory_order_relaxed);
  upstream.join();
  const RouterMetrics metrics = gateway->RouterMetricsSnapshot();
  const Totals totals = Sum(metrics, *gateway);
  const absl::Status shutdown = gateway->Shutdown();
  // After the router closed (its last checkpoints are written), and after
  // the store's cleanup, which otherwise runs only every 30 s: what is left
  // then is what the store really still holds.
  const absl::Status store_cleanup = gateway->CleanUpStore();
  absl::StatusOr<store::Store::Stats> store_stats = gateway->StoreStats();
  gateway.reset();
  const double elapsed_s = static_cast<double>(end_us - shared.start_us) / 1e6;

  // The report.
  DemoReport report;
  report.sent = shared.sent.load();
  report.acknowledged = shared.sensor_acked.load();
  report.duplicates_upstream = record.duplicates;
  // A missing alert is explained by its TTL when the filter forwarded it more
  // than the TTL (less a margin) before the upstream came back; any other
  // missing reading is a loss.
  const int64_t reconnect_us = shared.reconnect_us.load();
  const int64_t ttl_us = static_cast<int64_t>(kAlertTtlSeconds * 1e6);
  // An alert whose TTL passed after the reconnect, while the backlog was
  // still draining (a slow drain: a sanitizer on a busy machine), is
  // explained too -- as far as the expiry counters account for it.
  uint64_t missing_alerts = 0;
  uint64_t missing_bulk = 0;
  for (uint64_t seq = 0; seq < report.sent; ++seq) {
    if (record.seen[seq]) {
      ++report.delivered_upstream;
    } else if (Temperature(seq) > kAlertThreshold) {
      ++missing_alerts;
      const int64_t forwarded_us = shared.forwarded_at_us[seq];
      if (reconnect_us != 0 && forwarded_us != 0 &&
          forwarded_us + ttl_us <= reconnect_us + kTtlMarginUs) {
        ++report.expired;
      } else if (forwarded_us != 0 && forwarded_us + ttl_us <= end_us) {
        ++report.expired_in_drain;
      }
    } else {
      ++missing_bulk;
    }
  }
  report.expired_counted = totals.expired;
  // How long alerts waited in the upstream queue: from admission, where
  // their TTL starts, to the upstream. The filter's sight of the
  // TelemetryAck bounds admission from above (the forward time, from below,
  // would count the wait for admission too, which a loaded machine makes
  // long); without it, the forward time.
  int64_t max_alert_latency_us = 0;
  for (const auto& [seq, received_us] : record.alert_deliveries) {
    const int64_t admitted_us = shared.admitted_by_us[seq] != 0
                                    ? shared.admitted_by_us[seq]
                                    : shared.forwarded_at_us[seq];
    max_alert_latency_us =
        std::max(max_alert_latency_us, received_us - admitted_us);
  }

  say.Line(absl::StrFormat("\nroutes (%.1f s):", elapsed_s));
  say.Line(absl::StrFormat("  %-18s %-40s %10s %10s", "route", "endpoint",
                           "matched", "msg/s"));
  for (const RouteMetrics& r : metrics.routes) {
    say.Line(absl::StrFormat("  %-18s %-40s %10llu %10.0f", r.name,
                             r.endpoint_id,
                             static_cast<unsigned long long>(r.matched),
                             static_cast<double>(r.matched) / elapsed_s));
  }
  say.Line("endpoints (latency: queued -> acknowledged):");
  say.Line(absl::StrFormat("  %-28s %9s %9s %8s %8s %8s %9s %10s %10s",
                           "endpoint", "enqueued", "delivered", "expired",
                           "retried", "dropped", "msg/s", "p50", "p99"));
  for (const EndpointMetrics& e : metrics.endpoints) {
    const uint64_t dropped = e.rejected + e.dropped_queue_full +
                             e.dropped_dead + e.dropped_removed +
                             e.dropped_close;
    say.Line(absl::StrFormat(
        "  %-28s %9llu %9llu %8llu %8llu %8llu %9.0f %10s %10s", e.endpoint_id,
        static_cast<unsigned long long>(e.enqueued),
        static_cast<unsigned long long>(e.delivered),
        static_cast<unsigned long long>(e.expired),
        static_cast<unsigned long long>(e.retried),
        static_cast<unsigned long long>(dropped),
        static_cast<double>(e.delivered) / elapsed_s,
        Duration(e.latency.QuantileMicros(0.5)),
        Duration(e.latency.QuantileMicros(0.99))));
  }
  if (store_stats.ok()) {
    say.Line(absl::StrFormat(
        "store after shutdown and cleanup: %llu expired references skipped "
        "on read or removed by cleanup, %llu payloads left, %.1f MB on disk",
        static_cast<unsigned long long>(store_stats->expired),
        static_cast<unsigned long long>(store_stats->payloads),
        static_cast<double>(store_stats->bytes_on_disk) / 1e6));
  }
  say.Line("sensor -> upstream (end to end, first delivery):");
  say.Line(
      absl::StrFormat("  alerts %zu  p50 %s  p99 %s;  bulk %zu  p50 %s  p99 %s",
                      record.alert_latency_us.size(),
                      Duration(Percentile(&record.alert_latency_us, 0.5)),
                      Duration(Percentile(&record.alert_latency_us, 0.99)),
                      record.bulk_latency_us.size(),
                      Duration(Percentile(&record.bulk_latency_us, 0.5)),
                      Duration(Percentile(&record.bulk_latency_us, 0.99))));
  say.Line(absl::StrFormat(
      "  sent %llu, acknowledged %llu, delivered %llu (+%llu redelivered "
      "copies), expired by TTL %llu",
      static_cast<unsigned long long>(report.sent),
      static_cast<unsigned long long>(report.acknowledged),
      static_cast<unsigned long long>(report.delivered_upstream),
      static_cast<unsigned long long>(report.duplicates_upstream),
      static_cast<unsigned long long>(report.expired)));

  // Checks.
  {
    std::lock_guard<std::mutex> lock(shared.error_mu);
    report.checks.push_back(
        {"clients", shared.first_error.empty() && shutdown.ok(),
         shared.first_error.empty()
             ? (shutdown.ok() ? "sensor, filter and upstream ran without "
                                "errors; clean shutdown"
                              : absl::StrCat("shutdown: ", shutdown.ToString()))
             : shared.first_error});
  }
  {
    // Bulk backlog delivered before the last backlog alert. The backlog is
    // what was in the upstream queue when the upstream came back (the
    // filter had its TelemetryAck before the reconnect): priorities order a
    // queue, so only those can be asked to overtake each other. Readings
    // the sensor sent earlier that were still on their way through the
    // filter (it lags under load, e.g. ThreadSanitizer on a busy machine)
    // joined the queue later, behind bulk that had already drained; they
    // are counted apart.
    uint64_t bulk_before_last_alert = 0;
    uint64_t bulk_seen = 0;
    for (const auto& [seq, is_alert] : record.after_reconnect) {
      const int64_t admitted_us = shared.admitted_by_us[seq];
      if (admitted_us == 0 || admitted_us >= reconnect_us) {
        if (shared.sent_at_us[seq] < reconnect_us) ++report.backlog_late;
        continue;
      }
      if (is_alert) {
        ++report.backlog_alerts;
        bulk_before_last_alert = bulk_seen;
      } else {
        ++bulk_seen;
      }
    }
    report.backlog_bulk = bulk_seen;
    const bool ok = report.backlog_alerts > 0 &&
                    report.backlog_bulk > 2 * kBatchSize &&
                    bulk_before_last_alert <= 2 * kBatchSize;
    report.checks.push_back(
        {"priority", ok,
         absl::StrFormat(
             "after the reconnect all %llu backlog alerts were delivered "
             "while %llu of %llu backlog bulk readings were (allowed: %llu); "
             "%llu earlier readings reached the upstream queue only after "
             "the reconnect (the filter was behind) and are not ordered "
             "against the backlog",
             static_cast<unsigned long long>(report.backlog_alerts),
             static_cast<unsigned long long>(bulk_before_last_alert),
             static_cast<unsigned long long>(report.backlog_bulk),
             static_cast<unsigned long long>(2 * kBatchSize),
             static_cast<unsigned long long>(report.backlog_late))});
  }
  {
    // MQTT 3.1.1 has no negative PUBACK: the gateway either acknowledged a
    // reading (then it must arrive or expire) or closed the connection.
    const uint64_t missing = missing_alerts + missing_bulk;
    const uint64_t counted_beyond =
        report.expired_counted > report.expired
            ? report.expired_counted - report.expired
            : 0;
    const uint64_t explained =
        report.expired + std::min(report.expired_in_drain, counted_beyond);
    const uint64_t lost = missing > explained ? missing - explained : 0;
    const bool ok = lost == 0 && report.sent > 0;
    report.checks.push_back(
        {"nothing acknowledged lost", ok,
         absl::StrFormat(
             "%llu readings missing upstream (%llu alerts, %llu bulk): %llu "
             "alerts past their TTL when the upstream came back, %llu "
             "expired while the backlog drained, %llu lost",
             static_cast<unsigned long long>(missing),
             static_cast<unsigned long long>(missing_alerts),
             static_cast<unsigned long long>(missing_bulk),
             static_cast<unsigned long long>(report.expired),
             static_cast<unsigned long long>(
                 std::min(report.expired_in_drain, counted_beyond)),
             static_cast<unsigned long long>(lost))});
  }
  {
    const bool ok = report.expired > 0 && totals.dropped == 0 &&
                    max_alert_latency_us <= ttl_us + kTtlMarginUs;
    report.checks.push_back(
        {"TTL expiry", ok,
         absl::StrFormat(
             "%llu alerts expired while the upstream was away (expiry "
             "counters: %llu); longest an alert waited in the upstream "
             "queue %s (TTL %.0f s); %llu messages dropped for other "
             "reasons",
             static_cast<unsigned long long>(report.expired),
             static_cast<unsigned long long>(report.expired_counted),
             Duration(max_alert_latency_us), kAlertTtlSeconds,
             static_cast<unsigned long long>(totals.dropped))});
  }
  report.checks.push_back(
      {"store drained",
       drained && totals.queued == 0 && store_cleanup.ok() &&
           store_stats.ok() && store_stats->payloads == 0,
       absl::StrFormat(
           "%llu messages left in the queues, %s payloads left after the "
           "cleanup%s",
           static_cast<unsigned long long>(totals.queued),
           store_stats.ok() ? absl::StrCat(store_stats->payloads)
                            : store_stats.status().ToString(),
           store_cleanup.ok()
               ? ""
               : absl::StrCat(" (", store_cleanup.ToString(), ")"))});
  say.Line("checks:");
  for (const DemoCheck& c : report.checks) {
    say.Line(absl::StrFormat("  %s  %s: %s", c.passed ? "PASS" : "FAIL", c.name,
                             c.detail));
  }
  say.Line(report.passed() ? "demo: PASS" : "demo: FAIL");
  return report;
}

}  // namespace gateway
}  // namespace edgeroute
