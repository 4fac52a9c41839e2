#include "gateway/gateway.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status.h"
#include "gateway/auth/identities.h"
#include "gateway/client.h"
#include "gateway/net/tls.h"
#include "gateway/systemd_notify.h"
#include "gateway/twins/twin_store.h"
#include "gateway/upstream/connector.h"
#include "query/manifest.h"
#include "router/router.h"
#include "store/store.h"

namespace edgeroute {
namespace gateway {

using router::DeliveryBatch;
using router::DeliveryOutcome;
using router::EndpointMetrics;
using router::Router;
using router::RouterMetrics;
using router::RouterOptions;
using router::Sink;

namespace {

constexpr absl::string_view kUpstreamEndpoint = "iothub";

void Log(absl::string_view line) {
  std::fprintf(stderr, "edgeroute gateway: %.*s\n",
               static_cast<int>(line.size()), line.data());
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The answer to a producer for the router's verdict on its message.
fb::ErrorCode AdmissionCode(const absl::Status& status) {
  if (status.ok()) return fb::ErrorCode::kUnknown;
  if (store::IsStoreError(status)) {
    return status.code() == absl::StatusCode::kResourceExhausted
               ? fb::ErrorCode::kStoreFull
               : fb::ErrorCode::kStoreUnavailable;
  }
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    return fb::ErrorCode::kOverloaded;
  }
  if (status.code() == absl::StatusCode::kFailedPrecondition) {
    return fb::ErrorCode::kShuttingDown;
  }
  return fb::ErrorCode::kBadFrame;
}

// Presents one router DeliveryBatch at a time to the server, and completes
// it once every message has an answer. Order is kept on failure: after the
// first message that was not acknowledged, every later one is retried (as
// edgeHub's module endpoints do), even if the client acked it.
// Thread-safety: Reset is called by the endpoint executor, Complete by the
// server's loop thread; they never overlap because the router hands the next
// batch only after the previous one is completed.
class BatchAdapter final : public OutboundBatch {
 public:
  void Reset(DeliveryBatch* batch) {
    batch_ = batch;
    results_.assign(batch->size(), DeliveryResult::kAcked);
    remaining_ = batch->size();
  }
  size_t size() const override { return results_.size(); }
  MessageView message(size_t i) const override { return batch_->message(i); }
  void Complete(size_t i, DeliveryResult result) override {
    results_[i] = result;
    if (--remaining_ > 0) return;
    // The last Complete below may let the executor call Reset at once:
    // nothing of `this` is touched after it.
    DeliveryBatch* batch = batch_;
    const size_t n = results_.size();
    bool failed = false;
    for (size_t k = 0; k < n; ++k) {
      DeliveryOutcome outcome = DeliveryOutcome::kRetry;
      if (!failed) {
        switch (results_[k]) {
          case DeliveryResult::kAcked:
            outcome = DeliveryOutcome::kDelivered;
            break;
          case DeliveryResult::kRetry:
            outcome = DeliveryOutcome::kRetry;
            failed = true;
            break;
          case DeliveryResult::kRejected:
            outcome = DeliveryOutcome::kReject;
            break;
        }
      }
      batch->Complete(k, outcome);
    }
  }

 private:
  DeliveryBatch* batch_ = nullptr;
  std::vector<DeliveryResult> results_;
  size_t remaining_ = 0;
};

// The protocol heads a module can be connected on.
enum class Head : uint8_t { kNative, kMqtt };

// Server::Deliver or MqttServer::Deliver.
using DeliverFn =
    std::function<void(const Identity&, absl::string_view, OutboundBatch*)>;

// A router sink that delivers over one head's connections.
class ConnectionSink final : public Sink {
 public:
  ConnectionSink(DeliverFn deliver, Identity target, std::string input)
      : deliver_(std::move(deliver)),
        target_(std::move(target)),
        input_(std::move(input)) {}
  void Deliver(DeliveryBatch* batch) override {
    if (batch->size() == 0) return;
    adapter_.Reset(batch);
    deliver_(target_, input_, &adapter_);
  }

 private:
  const DeliverFn deliver_;
  const Identity target_;
  const std::string input_;
  BatchAdapter adapter_;
};

// Minimal HTTP/1.1 responder for GET /metrics on a loopback port.
class MetricsServer {
 public:
  using Render = std::function<std::string()>;

  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(
      const std::string& host, int port, Render render) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics host is not an IPv4 address: '", host, "'"));
    }
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoToStatus(errno, "socket");
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd, 16) != 0) {
      const int e = errno;
      close(fd);
      return ErrnoToStatus(e,
                           absl::StrCat("metrics listener ", host, ":", port));
    }
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    return std::unique_ptr<MetricsServer>(
        new MetricsServer(fd, ntohs(addr.sin_port), std::move(render)));
  }

  ~MetricsServer() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Serve(); });
  }
  void Stop() {
    if (fd_ < 0) return;
    // Relaxed: the flag publishes nothing; shutdown() wakes accept().
    stop_.store(true, std::memory_order_relaxed);
    shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(fd_);
    fd_ = -1;
  }
  int port() const { return port_; }

 private:
  MetricsServer(int fd, int port, Render render)
      : fd_(fd), port_(port), render_(std::move(render)) {}

  void Serve() {
    while (!stop_.load(std::memory_order_relaxed)) {
      const int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) {
        if (errno == EINTR) continue;
        return;
      }
      Answer(conn);
      close(conn);
    }
  }

  void Answer(int conn) {
    // Read the request head (bounded in size and time).
    std::string request;
    char buf[1024];
    while (request.find("\r\n\r\n") == std::string::npos &&
           request.size() < 8192) {
      pollfd p{conn, POLLIN, 0};
      if (poll(&p, 1, 2000) <= 0) return;
      const ssize_t n = recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) return;
      request.append(buf, static_cast<size_t>(n));
    }
    std::string status = "200 OK";
    std::string body;
    if (request.rfind("GET /metrics", 0) == 0) {
      body = render_();
    } else {
      status = "404 Not Found";
      body = "try GET /metrics\n";
    }
    const std::string response = absl::StrCat(
        "HTTP/1.1 ", status,
        "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: ",
        body.size(), "\r\nConnection: close\r\n\r\n", body);
    size_t done = 0;
    while (done < response.size()) {
      const ssize_t n = send(conn, response.data() + done,
                             response.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }

  int fd_;
  const int port_;
  const Render render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

class GatewayImpl final : public ServerHooks {
 public:
  explicit GatewayImpl(const GatewayOptions& options)
      : options_(options), mqtt_hooks_(this) {}

  ~GatewayImpl() override { Shutdown().IgnoreError(); }

  absl::Status Init() {
    std::string manifest = options_.manifest_json;
    if (!options_.manifest_path.empty()) {
      EDGEROUTE_ASSIGN_OR_RETURN(manifest, ReadFile(options_.manifest_path));
    }
    if (manifest.empty()) {
      return absl::InvalidArgumentError(
          "a deployment manifest is required (manifest_path)");
    }
    last_manifest_ = manifest;
    if (options_.connect_timeout <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "connect_timeout must be positive: a connection that never says "
          "CONNECT or Hello would otherwise stay open forever");
    }
    if (!options_.identities_path.empty()) {
      EDGEROUTE_RETURN_IF_ERROR(ApplyIdentities(/*only_if_changed=*/false));
    }
    if (!options_.store_dir.empty()) {
      EDGEROUTE_RETURN_IF_ERROR(OpenStore(manifest));
    }
    RouterOptions router_options;
    router_options.device_id = options_.device_id;
    router_options.dispatch_workers = options_.dispatch_workers;
    router_options.executor_threads = options_.executor_threads;
    // A full router answers TelemetryAck{kOverloaded} soon rather than hold
    // up admission (on the I/O thread, or the admission thread with its
    // queue behind it).
    router_options.admission_timeout = absl::Milliseconds(10);
    router_options.close_timeout = absl::Seconds(5);
    router_options.store = store_.get();
    EDGEROUTE_ASSIGN_OR_RETURN(router_,
                               Router::Create(router_options, manifest));
    {
      std::lock_guard<std::mutex> lock(sinks_mu_);
      RefreshKnownEndpoints();
    }

    twins::TwinStoreOptions twin_options;
    twin_options.device_id = options_.device_id;
    if (!options_.store_dir.empty()) {
      twin_options.dir = options_.store_dir + "/twins";
    }
    EDGEROUTE_ASSIGN_OR_RETURN(twins_, twins::TwinStore::Open(twin_options));
    // The first manifest defines the desired versions; with a directory,
    // what changed since the last run is sent to modules as they subscribe
    // (a GET returns the current document anyway).
    absl::StatusOr<std::vector<twins::DesiredPatch>> patches =
        twins_->SetDesired(manifest);
    if (!patches.ok()) {
      Log(absl::StrCat("twins: desired properties not read: ",
                       patches.status().ToString()));
    }

    EDGEROUTE_RETURN_IF_ERROR(CreateTls());
    ServerOptions server_options;
    if (options_.native_tls) {
      if (tls_ == nullptr) {
        return absl::InvalidArgumentError(
            "a TLS native listener needs a server certificate and key");
      }
      server_options.tls = tls_;
    }
    server_options.loop.backend = options_.backend;
    server_options.loop.max_frame_bytes = options_.max_frame_bytes;
    server_options.loop.max_send_queue_bytes = options_.max_send_queue_bytes;
    server_options.loop.max_connections = options_.max_connections;
    server_options.ack_timeout = options_.ack_timeout;
    server_options.hello_timeout = options_.connect_timeout;
    server_options.tcp_host = options_.tcp_host;
    server_options.tcp_port = options_.tcp_port;
    server_options.unix_path = options_.unix_path;
    server_options.max_unacked_deliveries = options_.max_unacked_deliveries;
    server_options.identities = identities_;
    server_options.log = [](absl::string_view line) { Log(line); };
    // Only a store makes admission wait (Send returns once the append is
    // done); without one it is a ring push, cheaper than a thread hop.
    server_options.admission_queue_bytes =
        store_ != nullptr ? options_.admission_queue_bytes : 0;
    EDGEROUTE_ASSIGN_OR_RETURN(server_, Server::Create(server_options, this));

    if (!options_.mqtt_listeners.empty()) {
      EDGEROUTE_RETURN_IF_ERROR(CreateMqtt());
    }
    if (!options_.upstream.urls.empty()) {
      upstream::UpstreamOptions upstream_options = options_.upstream;
      upstream_options.device_id = options_.device_id;
      upstream_options.log = [](absl::string_view line) { Log(line); };
      EDGEROUTE_ASSIGN_OR_RETURN(
          upstream_, upstream::UpstreamConnector::Create(
                         upstream_options, router_.get(), kUpstreamEndpoint));
    }

    if (options_.metrics_port >= 0) {
      EDGEROUTE_ASSIGN_OR_RETURN(
          metrics_,
          MetricsServer::Create(options_.metrics_host, options_.metrics_port,
                                [this] { return PrometheusText(); }));
    }
    return absl::OkStatus();
  }

  absl::Status Start() {
    EDGEROUTE_RETURN_IF_ERROR(server_->Start());
    if (mqtt_ != nullptr) EDGEROUTE_RETURN_IF_ERROR(mqtt_->Start());
    if (upstream_ != nullptr) upstream_->Start();
    if (metrics_ != nullptr) metrics_->Start();
    if (!options_.manifest_path.empty() &&
        options_.manifest_watch != ManifestWatch::kOff) {
      EDGEROUTE_ASSIGN_OR_RETURN(
          watcher_, ManifestWatcher::Create(
                        options_.manifest_path, options_.manifest_watch,
                        [this] { ReloadIfChanged(); }, Log));
    }
    if (!options_.identities_path.empty() &&
        options_.manifest_watch != ManifestWatch::kOff) {
      EDGEROUTE_ASSIGN_OR_RETURN(
          identities_watcher_,
          ManifestWatcher::Create(
              options_.identities_path, options_.manifest_watch,
              [this] { ReloadIdentitiesIfChanged(); }, Log));
    }
    started_ = true;
    return absl::OkStatus();
  }

  absl::Status Reload() {
    // A gateway given its manifest as text has only identities to reload.
    const absl::Status routes =
        options_.manifest_path.empty() && !options_.identities_path.empty()
            ? absl::OkStatus()
            : ApplyManifest(/*only_if_changed=*/false);
    const absl::Status identities =
        options_.identities_path.empty()
            ? absl::OkStatus()
            : ApplyIdentities(/*only_if_changed=*/false);
    return !routes.ok() ? routes : identities;
  }

  Gateway::ReloadCounts reload_counts() const {
    std::lock_guard<std::mutex> lock(reload_mu_);
    return reload_counts_;
  }

  // The watcher's callback: reloads when the file's text differs from the
  // last text read (or the file became readable again), and logs why.
  void ReloadIfChanged() {
    bool attempted = false;
    const absl::Status s = ApplyManifest(/*only_if_changed=*/true, &attempted);
    if (!attempted) return;
    const std::string what =
        absl::StrCat("manifest '", options_.manifest_path, "' changed: ");
    Log(s.ok() ? absl::StrCat(what, "routes reloaded")
               : absl::StrCat(
                     what, "reload refused, old routes kept: ", s.ToString()));
  }

  void ReloadIdentitiesIfChanged() {
    bool attempted = false;
    const absl::Status s =
        ApplyIdentities(/*only_if_changed=*/true, &attempted);
    if (!attempted) return;
    const std::string what =
        absl::StrCat("identities '", options_.identities_path, "' changed: ");
    Log(s.ok() ? absl::StrCat(what, "reloaded")
               : absl::StrCat(what,
                              "refused, old identities kept: ", s.ToString()));
  }

  absl::Status Shutdown() {
    if (shut_down_ || router_ == nullptr) return absl::OkStatus();
    shut_down_ = true;
    // First, so that no reload races the router's Close.
    watcher_.reset();
    identities_watcher_.reset();
    // Relaxed: read by the loop threads only to refuse new telemetry.
    closing_.store(true, std::memory_order_relaxed);
    if (metrics_ != nullptr) metrics_->Stop();
    // Drain the router while clients are still connected to ack; if a
    // client holds a delivery past the router's close timeout, stopping the
    // servers completes it with a retry so Close can finish.
    std::future<absl::Status> closed =
        std::async(std::launch::async, [this] { return router_->Close(); });
    if (closed.wait_for(std::chrono::seconds(6)) != std::future_status::ready) {
      Log("router drain timed out; closing connections");
    }
    // Init may have failed before the heads were made (e.g. a listener
    // that could not bind).
    if (server_ != nullptr) server_->Stop();
    if (mqtt_ != nullptr) mqtt_->Stop();
    // Completes (for a retry) a batch the broker has not acknowledged.
    if (upstream_ != nullptr) upstream_->Stop();
    absl::Status status = closed.get();
    std::lock_guard<std::mutex> lock(sinks_mu_);
    sinks_.clear();
    retired_.clear();
    return status;
  }

  int tcp_port() const { return server_->tcp_port(); }
  std::vector<int> mqtt_ports() const {
    return mqtt_ != nullptr ? mqtt_->ports() : std::vector<int>();
  }
  int metrics_port() const {
    return metrics_ == nullptr ? -1 : metrics_->port();
  }
  IoBackend backend() const { return server_->backend(); }

  std::string PrometheusText() const {
    const Gateway::ReloadCounts reloads = reload_counts();
    return absl::StrCat(
        router_->PrometheusText(), server_->PrometheusText(),
        mqtt_ != nullptr ? mqtt_->PrometheusText() : std::string(),
        StorePrometheusText(),
        upstream_ != nullptr ? upstream_->PrometheusText() : std::string(),
        "# HELP edgeroute_gateway_manifest_reloads_total Manifest reloads "
        "(SIGHUP, file changes) by result.\n"
        "# TYPE edgeroute_gateway_manifest_reloads_total counter\n"
        "edgeroute_gateway_manifest_reloads_total{result=\"applied\"} ",
        reloads.applied,
        "\n"
        "edgeroute_gateway_manifest_reloads_total{result=\"refused\"} ",
        reloads.refused, "\n");
  }

  RouterMetrics RouterMetricsSnapshot() const { return router_->GetMetrics(); }

  // The store's counters (empty without a store).
  std::string StorePrometheusText() const {
    if (store_ == nullptr) return "";
    const store::Store::Stats stats = store_->GetStats();
    return absl::StrCat(
        "# HELP edgeroute_store_errors_total Failed store operations "
        "(full disk, I/O errors) by operation.\n"
        "# TYPE edgeroute_store_errors_total counter\n"
        "edgeroute_store_errors_total{op=\"append\"} ",
        stats.append_errors, "\nedgeroute_store_errors_total{op=\"read\"} ",
        stats.read_errors, "\nedgeroute_store_errors_total{op=\"checkpoint\"} ",
        stats.checkpoint_errors,
        "\nedgeroute_store_errors_total{op=\"cleanup\"} ", stats.cleanup_errors,
        "\n# HELP edgeroute_store_quarantined_total Corrupt store records "
        "skipped (logged with queue and offset).\n"
        "# TYPE edgeroute_store_quarantined_total counter\n"
        "edgeroute_store_quarantined_total ",
        stats.quarantined,
        "\n# HELP edgeroute_store_rejected_full_total Appends refused because "
        "the store was at its size limit.\n"
        "# TYPE edgeroute_store_rejected_full_total counter\n"
        "edgeroute_store_rejected_full_total ",
        stats.rejected_full,
        "\n# HELP edgeroute_store_dropped_full_total Messages dropped "
        "(--store-full drop_oldest) to make room.\n"
        "# TYPE edgeroute_store_dropped_full_total counter\n"
        "edgeroute_store_dropped_full_total ",
        stats.dropped_full,
        "\n# HELP edgeroute_store_bytes Bytes counted against the store "
        "limit.\n"
        "# TYPE edgeroute_store_bytes gauge\n"
        "edgeroute_store_bytes ",
        stats.stored_bytes, "\n");
  }

  // Opens the store with the limit of ChooseStoreLimit. A manifest that
  // does not parse leaves the limit to the flag (Router::Create reports it).
  absl::Status OpenStore(const std::string& manifest) {
    absl::StatusOr<query::EdgeHubConfig> config =
        query::ParseEdgeHubConfig(manifest, nullptr);
    const StoreLimit limit =
        ChooseStoreLimit(options_.store_max_bytes,
                         config.ok() ? config->max_size_bytes : std::nullopt);
    store::StoreOptions store_options;
    store_options.directory = options_.store_dir;
    store_options.max_bytes = limit.max_bytes;
    store_options.full_policy = options_.store_full_policy;
    store_options.durability = options_.store_durability;
    store_options.env = options_.store_env;
    EDGEROUTE_ASSIGN_OR_RETURN(store_, store::Store::Open(store_options));
    Log(absl::StrCat(
        "store ", options_.store_dir, ": limit ",
        limit.max_bytes == 0 ? std::string("none")
                             : absl::StrCat(limit.max_bytes, " bytes"),
        " (", limit.source, "), ",
        options_.store_full_policy == store::FullPolicy::kReject
            ? "reject"
            : "drop_oldest",
        " when full, ",
        options_.store_durability == store::Durability::kPower ? "power"
                                                               : "process",
        " durability"));
    return absl::OkStatus();
  }
  absl::StatusOr<store::Store::Stats> StoreStats() const {
    if (store_ == nullptr) return absl::FailedPreconditionError("no store");
    return store_->GetStats();
  }

  absl::Status CleanUpStore() {
    if (store_ == nullptr) return absl::FailedPreconditionError("no store");
    return store_->RunCleanup(/*force_compaction=*/true);
  }

  absl::Status WaitIdle(int timeout_ms) {
    return router_->WaitIdle(absl::Milliseconds(timeout_ms));
  }

  // ServerHooks (both heads): the admission thread or a loop thread.
  fb::ErrorCode OnTelemetry(const Identity&, absl::string_view,
                            const MessageView& message) override {
    if (closing_.load(std::memory_order_relaxed)) {
      return fb::ErrorCode::kShuttingDown;
    }
    return AdmissionCode(router_->SendView(message));
  }

  // ServerHooks (both heads): the admission thread.
  void OnTelemetryBatch(absl::Span<const TelemetryItem> items,
                        absl::Span<fb::ErrorCode> verdicts) override {
    if (closing_.load(std::memory_order_relaxed)) {
      std::fill(verdicts.begin(), verdicts.end(), fb::ErrorCode::kShuttingDown);
      return;
    }
    // Each head has an admission thread of its own: the buffers are the
    // call's (one allocation per batch, not per message).
    std::vector<MessageView> views;
    views.reserve(items.size());
    for (const TelemetryItem& item : items) views.push_back(item.message);
    std::vector<absl::Status> results(items.size());
    router_->SendViews(views, absl::MakeSpan(results));
    for (size_t i = 0; i < items.size(); ++i) {
      verdicts[i] = AdmissionCode(results[i]);
    }
  }

  // ServerHooks of the native server: its loop thread.
  void OnSubscription(const Identity& identity, absl::string_view input,
                      bool active) override {
    OnHeadSubscription(Head::kNative, identity, input, active);
  }

 private:
  // The MQTT head's hooks: the same hub, with subscriptions marked as MQTT.
  class MqttHooks final : public ServerHooks {
   public:
    explicit MqttHooks(GatewayImpl* hub) : hub_(hub) {}
    fb::ErrorCode OnTelemetry(const Identity& from, absl::string_view output,
                              const MessageView& message) override {
      return hub_->OnTelemetry(from, output, message);
    }
    void OnTelemetryBatch(absl::Span<const TelemetryItem> items,
                          absl::Span<fb::ErrorCode> verdicts) override {
      hub_->OnTelemetryBatch(items, verdicts);
    }
    void OnSubscription(const Identity& identity, absl::string_view input,
                        bool active) override {
      hub_->OnHeadSubscription(Head::kMqtt, identity, input, active);
    }

   private:
    GatewayImpl* const hub_;
  };

  // The TLS context of every TLS listener (MQTT, and native with
  // native_tls), when a certificate is given.
  absl::Status CreateTls() {
    if (!options_.tls_cert_path.empty() || !options_.tls_key_path.empty()) {
      TlsServerOptions tls;
      tls.cert_chain_pem_path = options_.tls_cert_path;
      tls.private_key_pem_path = options_.tls_key_path;
      tls.client_ca_pem_path = options_.tls_client_ca_path;
      // Self-signed device certificates are named by their thumbprint in
      // the identities file: the registry, not the TLS layer, decides.
      tls.admit_unverified_client_certs = identities_ != nullptr;
      EDGEROUTE_ASSIGN_OR_RETURN(tls_, TlsServerContext::Create(tls));
    } else if (!options_.tls_client_ca_path.empty()) {
      return absl::InvalidArgumentError(
          "a client CA bundle needs a server certificate and key (TLS)");
    }
    return absl::OkStatus();
  }

  absl::Status CreateMqtt() {
    mqtt::MqttServerOptions mqtt_options;
    mqtt_options.loop.backend = options_.backend;
    mqtt_options.loop.max_send_queue_bytes = options_.max_send_queue_bytes;
    mqtt_options.loop.max_connections = options_.max_connections;
    mqtt_options.session.ack_timeout_micros =
        absl::ToInt64Microseconds(options_.ack_timeout);
    mqtt_options.session.connect_timeout_micros =
        absl::ToInt64Microseconds(options_.connect_timeout);
    mqtt_options.listeners = options_.mqtt_listeners;
    mqtt_options.session.max_message_bytes = options_.max_message_bytes;
    // As for the native head: only a store makes admission wait.
    mqtt_options.admission_queue_bytes =
        store_ != nullptr ? options_.admission_queue_bytes : 0;
    mqtt_options.identities = identities_;
    mqtt_options.twins = twins_.get();
    mqtt_options.device_id = options_.device_id;
    if (!options_.store_dir.empty()) {
      mqtt_options.session_dir = options_.store_dir + "/mqtt-sessions";
    }
    mqtt_options.tls = tls_;
    EDGEROUTE_ASSIGN_OR_RETURN(
        mqtt_, mqtt::MqttServer::Create(mqtt_options, &mqtt_hooks_));
    return absl::OkStatus();
  }

  // Subscriptions of either head (their loop threads). Sets the router
  // sink of each endpoint the subscription covers to a sink bound to that
  // head; a head only removes sinks it owns.
  void OnHeadSubscription(Head head, const Identity& identity,
                          absl::string_view input, bool active) {
    std::lock_guard<std::mutex> lock(sinks_mu_);
    if (input == kUpstreamInput) {
      // With an upstream connector, it alone is the endpoint's sink.
      if (head == Head::kNative && upstream_ == nullptr) {
        SetEndpointSink(head, std::string(kUpstreamEndpoint), identity, input,
                        active);
      }
      return;
    }
    if (identity.device_id != options_.device_id ||
        identity.module_id.empty()) {
      return;  // only this device's modules have inputs
    }
    const std::string prefix =
        absl::StrCat(options_.device_id, "/", identity.module_id, "/");
    if (head == Head::kMqtt && input == mqtt::kAllInputs) {
      if (active) {
        all_inputs_.insert(identity.module_id);
      } else {
        all_inputs_.erase(identity.module_id);
      }
      for (const std::string& endpoint : ModuleEndpoints(prefix)) {
        const std::string name = endpoint.substr(prefix.size());
        if (!active && explicit_mqtt_.contains(endpoint)) continue;
        SetEndpointSink(head, endpoint, identity, name, active);
      }
      return;
    }
    const std::string endpoint = absl::StrCat(prefix, input);
    if (head == Head::kMqtt) {
      if (active) {
        explicit_mqtt_.insert(endpoint);
      } else {
        explicit_mqtt_.erase(endpoint);
        // Still covered by an all-inputs subscription.
        if (all_inputs_.contains(identity.module_id)) return;
      }
    }
    SetEndpointSink(head, endpoint, identity, input, active);
  }

  // REQUIRES: sinks_mu_ held. The router's endpoints: those the routes
  // name, those with messages in the store, and those a route once named.
  void RefreshKnownEndpoints() {
    known_endpoints_.clear();
    for (const EndpointMetrics& e : router_->GetMetrics().endpoints) {
      known_endpoints_.insert(e.endpoint_id);
    }
  }

  // The endpoints of the current routes whose ids start with `prefix`.
  std::vector<std::string> ModuleEndpoints(const std::string& prefix) const {
    std::vector<std::string> ids;
    for (const EndpointMetrics& e : router_->GetMetrics().endpoints) {
      if (absl::StartsWith(e.endpoint_id, prefix) &&
          e.endpoint_id.size() > prefix.size()) {
        ids.push_back(e.endpoint_id);
      }
    }
    return ids;
  }

  // REQUIRES: sinks_mu_ held.
  void SetEndpointSink(Head head, const std::string& endpoint,
                       const Identity& identity, absl::string_view input,
                       bool active) {
    // A subscription to an input no route names creates no router endpoint
    // (each has an executor thread, for the life of the process): it waits
    // here, one entry per subscription, until a reload names its endpoint.
    if (!known_endpoints_.contains(endpoint)) {
      auto waiting = unrouted_.find(endpoint);
      if (active) {
        unrouted_[endpoint] = Unrouted{head, identity, std::string(input)};
      } else if (waiting != unrouted_.end() && waiting->second.head == head) {
        unrouted_.erase(waiting);
      }
      return;
    }
    auto owned = sinks_.find(endpoint);
    if (!active && (owned == sinks_.end() || owned->second.head != head ||
                    owned->second.sink == nullptr)) {
      return;  // another head holds it now (or nobody)
    }
    std::shared_ptr<Sink> sink;
    if (active) {
      DeliverFn deliver;
      if (head == Head::kNative) {
        deliver = [server = server_.get()](const Identity& target,
                                           absl::string_view in,
                                           OutboundBatch* batch) {
          server->Deliver(target, in, batch);
        };
      } else {
        deliver = [server = mqtt_.get()](const Identity& target,
                                         absl::string_view in,
                                         OutboundBatch* batch) {
          server->Deliver(target, in, batch);
        };
      }
      sink = std::make_shared<ConnectionSink>(std::move(deliver), identity,
                                              std::string(input));
    }
    absl::Status s = router_->SetSink(endpoint, sink);
    if (!s.ok() && !closing_.load(std::memory_order_relaxed)) {
      Log(absl::StrCat("SetSink ", endpoint, ": ", s.ToString()));
    }
    if (!s.ok()) return;
    // Replaced sinks are retired, not destroyed: a batch of theirs may
    // still be posted to a loop thread. They are freed at shutdown (one
    // small object per reconnect).
    Owned& slot = sinks_[endpoint];
    if (slot.sink != nullptr) retired_.push_back(std::move(slot.sink));
    slot.head = head;
    slot.sink = std::move(sink);
  }

  // After a route change: MQTT modules subscribed to all their inputs get
  // sinks for the inputs the new routes name.
  void CoverNewEndpoints() {
    std::lock_guard<std::mutex> lock(sinks_mu_);
    RefreshKnownEndpoints();
    // Subscriptions that waited for a route naming their endpoint.
    std::vector<std::pair<std::string, Unrouted>> routed;
    for (const auto& [endpoint, waiting] : unrouted_) {
      if (known_endpoints_.contains(endpoint)) {
        routed.emplace_back(endpoint, waiting);
      }
    }
    for (const auto& [endpoint, waiting] : routed) {
      unrouted_.erase(endpoint);
      SetEndpointSink(waiting.head, endpoint, waiting.identity, waiting.input,
                      true);
    }
    for (const std::string& module : all_inputs_) {
      const std::string prefix =
          absl::StrCat(options_.device_id, "/", module, "/");
      for (const std::string& endpoint : ModuleEndpoints(prefix)) {
        auto owned = sinks_.find(endpoint);
        if (owned != sinks_.end() && owned->second.sink != nullptr) continue;
        SetEndpointSink(Head::kMqtt, endpoint,
                        Identity{options_.device_id, module},
                        endpoint.substr(prefix.size()), true);
      }
    }
  }

  // SIGHUP, Reload() and the watcher all come here, one at a time. With
  // `only_if_changed`, a text equal to the last one read (applied or
  // refused) is not applied again, and an unreadable file is reported once
  // until it can be read again; *attempted says whether anything was tried.
  absl::Status ApplyManifest(bool only_if_changed, bool* attempted = nullptr) {
    if (attempted != nullptr) *attempted = false;
    if (options_.manifest_path.empty()) {
      return absl::FailedPreconditionError("no manifest file to reload");
    }
    std::lock_guard<std::mutex> lock(reload_mu_);
    absl::StatusOr<std::string> text = ReadFile(options_.manifest_path);
    if (!text.ok()) {
      if (only_if_changed && last_read_failed_) return text.status();
      last_read_failed_ = true;
      ++reload_counts_.refused;
      if (attempted != nullptr) *attempted = true;
      return text.status();
    }
    const bool was_unreadable = last_read_failed_;
    last_read_failed_ = false;
    if (only_if_changed && !was_unreadable && *text == last_manifest_) {
      return absl::OkStatus();
    }
    if (attempted != nullptr) *attempted = true;
    last_manifest_ = std::move(*text);
    const absl::Status s = router_->UpdateRoutes(last_manifest_);
    ++(s.ok() ? reload_counts_.applied : reload_counts_.refused);
    if (!s.ok()) return s;
    CoverNewEndpoints();
    absl::StatusOr<std::vector<twins::DesiredPatch>> patches =
        twins_->SetDesired(last_manifest_);
    if (!patches.ok()) {
      Log(absl::StrCat("twins: desired properties not updated: ",
                       patches.status().ToString()));
    } else if (mqtt_ != nullptr && !patches->empty()) {
      mqtt_->PublishDesired(*std::move(patches));
    }
    return s;
  }

  // Re-reads the identities file; a file with errors is refused (the
  // message has its line and column) and the old identities stay.
  absl::Status ApplyIdentities(bool only_if_changed,
                               bool* attempted = nullptr) {
    if (attempted != nullptr) *attempted = false;
    std::lock_guard<std::mutex> lock(identities_mu_);
    absl::StatusOr<std::string> text = ReadFile(options_.identities_path);
    if (text.ok() && only_if_changed && *text == last_identities_text_) {
      return absl::OkStatus();
    }
    if (attempted != nullptr) *attempted = true;
    if (!text.ok()) return text.status();
    if (text->size() > auth::kMaxIdentitiesFileBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(options_.identities_path, ": larger than ",
                       auth::kMaxIdentitiesFileBytes, " bytes"));
    }
    last_identities_text_ = *text;
    absl::StatusOr<std::shared_ptr<const auth::IdentityRegistry>> registry =
        auth::IdentityRegistry::Parse(*text);
    if (!registry.ok()) {
      return absl::Status(registry.status().code(),
                          absl::StrCat(options_.identities_path, ":",
                                       registry.status().message()));
    }
    identities_ = *registry;
    // Null before Init created the heads (which then take identities_).
    if (server_ != nullptr) server_->SetIdentities(identities_);
    if (mqtt_ != nullptr) {
      EDGEROUTE_RETURN_IF_ERROR(mqtt_->SetIdentities(identities_));
    }
    return absl::OkStatus();
  }

  const GatewayOptions options_;
  MqttHooks mqtt_hooks_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<twins::TwinStore> twins_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<mqtt::MqttServer> mqtt_;
  std::unique_ptr<MetricsServer> metrics_;
  // After router_: destroyed first (the router is closed by then).
  std::unique_ptr<upstream::UpstreamConnector> upstream_;
  // Endpoint sinks, set from both heads' loop threads (and reloads).
  struct Owned {
    Head head = Head::kNative;
    std::shared_ptr<Sink> sink;
  };
  std::mutex sinks_mu_;
  absl::flat_hash_map<std::string, Owned> sinks_;  // guarded by sinks_mu_
  std::vector<std::shared_ptr<Sink>> retired_;     // guarded by sinks_mu_
  // MQTT modules subscribed to all their inputs, and MQTT endpoints
  // subscribed by name (guarded by sinks_mu_).
  absl::flat_hash_set<std::string> all_inputs_;
  absl::flat_hash_set<std::string> explicit_mqtt_;
  // The router's endpoints (RefreshKnownEndpoints), and the subscriptions
  // to endpoints it does not have (guarded by sinks_mu_). unrouted_ holds
  // at most one entry per open subscription.
  absl::flat_hash_set<std::string> known_endpoints_;
  struct Unrouted {
    Head head;
    Identity identity;
    std::string input;
  };
  absl::flat_hash_map<std::string, Unrouted> unrouted_;
  std::atomic<bool> closing_{false};
  // std::mutex rather than absl::Mutex: the system Abseil has no
  // ThreadSanitizer annotations.
  mutable std::mutex reload_mu_;
  std::string last_manifest_;            // guarded by reload_mu_
  bool last_read_failed_ = false;        // guarded by reload_mu_
  Gateway::ReloadCounts reload_counts_;  // guarded by reload_mu_
  std::mutex identities_mu_;
  std::shared_ptr<const auth::IdentityRegistry> identities_;  // guarded
  std::string last_identities_text_;                          // guarded
  std::shared_ptr<TlsServerContext> tls_;
  std::unique_ptr<ManifestWatcher> watcher_;
  std::unique_ptr<ManifestWatcher> identities_watcher_;
  bool started_ = false;
  bool shut_down_ = false;
};

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(
    const GatewayOptions& options) {
  auto impl = std::make_unique<GatewayImpl>(options);
  EDGEROUTE_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

Gateway::Gateway(std::unique_ptr<GatewayImpl> impl) : impl_(std::move(impl)) {}
Gateway::~Gateway() = default;
absl::Status Gateway::Start() { return impl_->Start(); }
absl::Status Gateway::Reload() { return impl_->Reload(); }
Gateway::ReloadCounts Gateway::reload_counts() const {
  return impl_->reload_counts();
}
absl::Status Gateway::Shutdown() { return impl_->Shutdown(); }
int Gateway::tcp_port() const { return impl_->tcp_port(); }
std::vector<int> Gateway::mqtt_ports() const { return impl_->mqtt_ports(); }
int Gateway::metrics_port() const { return impl_->metrics_port(); }
IoBackend Gateway::backend() const { return impl_->backend(); }
StoreLimit ChooseStoreLimit(std::optional<uint64_t> flag_bytes,
                            std::optional<int64_t> manifest_bytes) {
  if (flag_bytes.has_value()) return {*flag_bytes, "--store-max-bytes"};
  if (manifest_bytes.has_value() && *manifest_bytes >= 0) {
    return {static_cast<uint64_t>(*manifest_bytes),
            "manifest storeAndForwardConfiguration.storeLimits.maxSizeBytes"};
  }
  return {0, "no limit given"};
}

std::string Gateway::PrometheusText() const { return impl_->PrometheusText(); }
RouterMetrics Gateway::RouterMetricsSnapshot() const {
  return impl_->RouterMetricsSnapshot();
}
absl::StatusOr<store::Store::Stats> Gateway::StoreStats() const {
  return impl_->StoreStats();
}
absl::Status Gateway::CleanUpStore() { return impl_->CleanUpStore(); }
absl::Status Gateway::WaitIdle(int timeout_ms) {
  return impl_->WaitIdle(timeout_ms);
}

absl::Status RunGateway(const GatewayOptions& options) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &signals, &previous);
  auto restore = [&previous] {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  };

  auto gateway = Gateway::Create(options);
  if (!gateway.ok()) {
    restore();
    return gateway.status();
  }
  absl::Status status = (*gateway)->Start();
  if (!status.ok()) {
    restore();
    return status;
  }
  Log(absl::StrCat(
      "listening: tcp ",
      (*gateway)->tcp_port() >= 0
          ? absl::StrCat(options.tcp_host, ":", (*gateway)->tcp_port(),
                         options.native_tls ? " (tls)" : "")
          : std::string("off"),
      ", unix ", options.unix_path.empty() ? "off" : options.unix_path,
      ", metrics ",
      (*gateway)->metrics_port() >= 0
          ? absl::StrCat("http://", options.metrics_host, ":",
                         (*gateway)->metrics_port(), "/metrics")
          : std::string("off"),
      ", I/O ", IoBackendName((*gateway)->backend())));
  const std::vector<int> mqtt_ports = (*gateway)->mqtt_ports();
  for (size_t i = 0; i < mqtt_ports.size(); ++i) {
    Log(absl::StrCat(
        "mqtt listening on ", options.mqtt_listeners[i].host, ":",
        mqtt_ports[i],
        options.tls_cert_path.empty() ? " (plain TCP)" : " (tls)"));
  }
  if (!mqtt_ports.empty() && options.identities_path.empty()) {
    Log("warning: no identities file: any MQTT client on this machine may "
        "connect as any device or module (allowed on loopback only; give "
        "--identities FILE)");
  }
  if (options.on_ready) {
    options.on_ready((*gateway)->tcp_port(), (*gateway)->metrics_port());
  }
  // Under systemd (Type=notify): ready now, and a watchdog ping each time
  // this loop wakes, at least every half watchdog timeout.
  SystemdNotifier systemd;
  systemd.Ready();
  const bool watchdog = systemd.watchdog_interval() > absl::ZeroDuration();
  const timespec watchdog_wait = absl::ToTimespec(systemd.watchdog_interval());
  while (true) {
    int signal_number = 0;
    if (watchdog) {
      signal_number = sigtimedwait(&signals, nullptr, &watchdog_wait);
      systemd.WatchdogPing();
      if (signal_number < 0) continue;  // timeout (EAGAIN) or EINTR
    } else if (sigwait(&signals, &signal_number) != 0) {
      continue;
    }
    if (signal_number == SIGHUP) {
      const absl::Status reload = (*gateway)->Reload();
      Log(reload.ok()
              ? std::string("SIGHUP: routes reloaded")
              : absl::StrCat("SIGHUP: reload refused, old routes kept: ",
                             reload.ToString()));
      continue;
    }
    Log(absl::StrCat("signal ", signal_number, ": shutting down"));
    break;
  }
  systemd.Stopping();
  status = (*gateway)->Shutdown();
  Log(status.ok() ? std::string("stopped")
                  : absl::StrCat("shutdown: ", status.ToString()));
  gateway->reset();
  restore();
  return status;
}

}  // namespace gateway
}  // namespace edgeroute
