#include "gateway/upstream/connector.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/backoff.h"
#include "gateway/auth/sas_token.h"
#include "gateway/upstream/publish.h"

namespace edgeroute {
namespace gateway {
namespace upstream {

using router::DeliveryBatch;
using router::DeliveryOutcome;

namespace {

// Log lines about dropped or rejected messages: the first, then one per this
// many.
constexpr uint64_t kLogEvery = 1000;
// Poll timeout: keep-alive (mosquitto_loop_misc) and timers need no finer.
constexpr int kIdlePollMs = 500;
// While the connection is being made, libmosquitto may need to be called
// without the socket being ready (TLS handshake states).
constexpr int kConnectingPollMs = 10;
// After 80% of a SAS token's lifetime the connection is renewed; in-flight
// PUBLISHes get this long (and at most a tenth of the lifetime) to be
// acknowledged first.
constexpr absl::Duration kRenewGrace = absl::Seconds(10);
// A connection that lasted less than this counts as a failure for the
// backoff (a broker that accepts and then drops at once).
constexpr absl::Duration kStableConnection = absl::Seconds(5);

void InitLibraryOnce() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

int64_t NowWallMicros() { return absl::ToUnixMicros(absl::Now()); }

// libmosquitto's text for rc; MOSQ_ERR_ERRNO means errno holds the cause.
const char* ErrorText(int rc) {
  return rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc);
}

// "HOST:PORT (scheme)" for log lines: the address first, so that tools that
// look for the MQTT listener's port in the log ("mqtt ... HOST:PORT") do
// not take an upstream broker's for it.
std::string Describe(const UpstreamUrl& url) {
  const absl::string_view scheme = url.dialect == Dialect::kIotHub ? "iothub"
                                   : url.tls                       ? "mqtts"
                                                                   : "mqtt";
  return absl::StrCat(url.host, ":", url.port, " (", scheme, ")");
}

}  // namespace

// The router's view: hands each batch to the connector's thread.
class UpstreamSink final : public router::Sink {
 public:
  explicit UpstreamSink(ConnectorImpl* impl) : impl_(impl) {}
  void Deliver(DeliveryBatch* batch) override;

 private:
  ConnectorImpl* const impl_;
};

class ConnectorImpl {
 public:
  ConnectorImpl(const UpstreamOptions& options, router::Router* router,
                absl::string_view endpoint_id)
      : options_(options),
        router_(router),
        endpoint_id_(endpoint_id),
        builder_(options.urls.front().dialect, options.protocol_level,
                 options.topic_template),
        rng_(std::random_device()()) {}

  ~ConnectorImpl() {
    Stop();
    if (event_fd_ >= 0) close(event_fd_);
  }

  absl::Status Init() {
    InitLibraryOnce();
    event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (event_fd_ < 0) {
      return absl::InternalError(absl::StrCat("eventfd: errno ", errno));
    }
    sink_ = std::make_shared<UpstreamSink>(this);
    return absl::OkStatus();
  }

  void Start() {
    if (thread_.joinable()) return;
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    if (!thread_.joinable()) return;
    stop_.store(true, std::memory_order_release);
    Wake();
    thread_.join();
  }

  // The executor thread.
  void Handoff(DeliveryBatch* batch) {
    {
      std::lock_guard<std::mutex> lock(handoff_mu_);
      if (!stopped_) {
        handoff_ = batch;
        batch = nullptr;
      }
    }
    if (batch != nullptr) {
      // Stopped (or never started): the router keeps it.
      batch->CompleteAll(DeliveryOutcome::kRetry);
      return;
    }
    Wake();
  }

  UpstreamMetrics GetMetrics() const {
    UpstreamMetrics m;
    m.connected = connected_flag_.load(std::memory_order_relaxed);
    m.reconnects = reconnects_.load(std::memory_order_relaxed);
    m.connect_failures = connect_failures_.load(std::memory_order_relaxed);
    m.in_flight = in_flight_.load(std::memory_order_relaxed);
    m.sent = sent_.load(std::memory_order_relaxed);
    m.acknowledged = acknowledged_.load(std::memory_order_relaxed);
    m.dropped_hop_limit = dropped_hop_limit_.load(std::memory_order_relaxed);
    m.rejected = rejected_.load(std::memory_order_relaxed);
    m.url_index = url_index_flag_.load(std::memory_order_relaxed);
    return m;
  }

  UpstreamBacklog GetBacklog() const {
    UpstreamBacklog backlog;
    for (const router::EndpointMetrics& e : router_->GetMetrics().endpoints) {
      if (e.endpoint_id != endpoint_id_) continue;
      std::copy(std::begin(e.queue_depth_by_priority),
                std::end(e.queue_depth_by_priority),
                std::begin(backlog.by_priority));
      backlog.oldest_age = absl::Microseconds(e.oldest_message_age_micros);
    }
    return backlog;
  }

 private:
  // Why a session ended.
  enum class End { kStop, kLost, kRenew };

  void Log(absl::string_view line) const {
    if (options_.log) options_.log(absl::StrCat("upstream: ", line));
  }

  void Wake() {
    const uint64_t one = 1;
    // A full counter still wakes the poll; nothing to handle.
    [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof(one));
  }

  void DrainWake() {
    uint64_t value;
    [[maybe_unused]] ssize_t n = read(event_fd_, &value, sizeof(value));
  }

  // Relaxed single-writer counters (only this thread writes them).
  static void Bump(std::atomic<uint64_t>& c, uint64_t d = 1) {
    c.store(c.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
  }

  // --- the batch in hand (connector thread only) ---------------------------

  // Takes a batch the executor handed over, if any.
  void TakeHandoff() {
    DeliveryBatch* batch;
    {
      std::lock_guard<std::mutex> lock(handoff_mu_);
      batch = handoff_;
      handoff_ = nullptr;
    }
    if (batch == nullptr) return;
    batch_ = batch;
    next_ = 0;
    remaining_ = batch->size();
    if (remaining_ == 0) batch_ = nullptr;
  }

  // Completes message i of the batch. The last completion may let the
  // executor reuse the batch at once: nothing of it is touched afterwards.
  void Finish(size_t i, DeliveryOutcome outcome) {
    DeliveryBatch* batch = batch_;
    if (--remaining_ == 0) batch_ = nullptr;
    batch->Complete(i, outcome);
  }

  // Completes every message not completed yet with kRetry: the in-flight
  // ones and the ones not sent. The router sends them again later.
  void FailBack() {
    std::vector<size_t> pending;
    pending.reserve(in_flight_mids_.size());
    for (const auto& [mid, index] : in_flight_mids_) pending.push_back(index);
    in_flight_mids_.clear();
    in_flight_.store(0, std::memory_order_relaxed);
    if (batch_ == nullptr) return;
    for (size_t i = next_; i < batch_->size(); ++i) pending.push_back(i);
    std::sort(pending.begin(), pending.end());
    for (size_t i : pending) Finish(i, DeliveryOutcome::kRetry);
  }

  size_t Window() const {
    size_t window = static_cast<size_t>(options_.max_in_flight);
    if (receive_maximum_ > 0) {
      window = std::min(window, static_cast<size_t>(receive_maximum_));
    }
    return window;
  }

  // Publishes the batch's next messages while the window has room.
  // Returns false when the connection failed.
  bool Pump() {
    while (batch_ != nullptr && next_ < batch_->size() &&
           in_flight_mids_.size() < Window()) {
      const size_t i = next_++;
      const MessageView& message = batch_->message(i);
      const Verdict verdict = builder_.Build(
          message, batch_->expires_wall_us(i), NowWallMicros(), &publish_);
      if (verdict == Verdict::kHopLimit) {
        Bump(dropped_hop_limit_);
        const uint64_t n = dropped_hop_limit_.load(std::memory_order_relaxed);
        if (n == 1 || n % kLogEvery == 0) {
          Log(absl::StrCat(n, " message(s) dropped: crossed ", kMaxHops - 1,
                           " gateways already (hop limit ", kMaxHops, ")"));
        }
        Finish(i, DeliveryOutcome::kDelivered);
        continue;
      }
      if (verdict == Verdict::kBadMessage) {
        Reject(i,
               "cannot be expressed as an MQTT PUBLISH (topic or property "
               "not UTF-8, or too long)");
        continue;
      }
      const absl::string_view body = message.body();
      int mid = 0;
      const int rc = mosquitto_publish_v5(
          mosq_, &mid, publish_.topic().c_str(), static_cast<int>(body.size()),
          body.data(), /*qos=*/1, /*retain=*/false, publish_.properties());
      if (rc == MOSQ_ERR_SUCCESS) {
        in_flight_mids_[mid] = i;
        in_flight_.store(in_flight_mids_.size(), std::memory_order_relaxed);
        Bump(sent_);
        continue;
      }
      if (rc == MOSQ_ERR_PAYLOAD_SIZE || rc == MOSQ_ERR_MALFORMED_UTF8 ||
          rc == MOSQ_ERR_INVAL || rc == MOSQ_ERR_OVERSIZE_PACKET ||
          rc == MOSQ_ERR_DUPLICATE_PROPERTY ||
          rc == MOSQ_ERR_QOS_NOT_SUPPORTED) {
        Reject(i, mosquitto_strerror(rc));
        continue;
      }
      // Not connected any more (or out of memory): send it again later.
      --next_;
      Log(absl::StrCat("publish failed: ", mosquitto_strerror(rc)));
      return false;
    }
    return true;
  }

  void Reject(size_t i, absl::string_view why) {
    Bump(rejected_);
    const uint64_t n = rejected_.load(std::memory_order_relaxed);
    if (n == 1 || n % kLogEvery == 0) {
      Log(absl::StrCat(n, " message(s) rejected: ", why));
    }
    Finish(i, DeliveryOutcome::kReject);
  }

  // --- libmosquitto callbacks (connector thread, inside mosquitto_loop) ----

  static void OnConnect(mosquitto*, void* self, int rc, int /*flags*/,
                        const mosquitto_property* props) {
    auto* impl = static_cast<ConnectorImpl*>(self);
    if (rc != 0) {
      impl->refused_ = true;
      impl->Log(absl::StrCat(
          "connection to ", Describe(impl->options_.urls[impl->url_]),
          " refused: ",
          impl->protocol_level_ == 5 ? mosquitto_reason_string(rc)
                                     : mosquitto_connack_string(rc)));
      return;
    }
    uint16_t receive_maximum = 0;
    if (props != nullptr &&
        mosquitto_property_read_int16(props, MQTT_PROP_RECEIVE_MAXIMUM,
                                      &receive_maximum, false) != nullptr) {
      impl->receive_maximum_ = receive_maximum;
    }
    impl->connected_ = true;
  }

  static void OnPublish(mosquitto*, void* self, int mid, int reason,
                        const mosquitto_property*) {
    auto* impl = static_cast<ConnectorImpl*>(self);
    auto it = impl->in_flight_mids_.find(mid);
    if (it == impl->in_flight_mids_.end()) return;
    const size_t i = it->second;
    impl->in_flight_mids_.erase(it);
    impl->in_flight_.store(impl->in_flight_mids_.size(),
                           std::memory_order_relaxed);
    if (reason < 0x80) {  // success, or 0x10: no matching subscribers
      Bump(impl->acknowledged_);
      impl->Finish(i, DeliveryOutcome::kDelivered);
      return;
    }
    if (reason == MQTT_RC_QUOTA_EXCEEDED || reason == MQTT_RC_SERVER_BUSY ||
        reason == MQTT_RC_UNSPECIFIED) {
      // Not now: reconnect, and send it (and what follows) again.
      // It stays in flight: FailBack sends it back to the router.
      impl->in_flight_mids_[mid] = i;
      impl->Log(absl::StrCat("PUBACK says ", mosquitto_reason_string(reason),
                             "; reconnecting"));
      impl->lost_ = true;
      return;
    }
    impl->Reject(i, absl::StrCat("the broker refused it: ",
                                 mosquitto_reason_string(reason)));
  }

  static void OnDisconnect(mosquitto*, void* self, int /*rc*/,
                           const mosquitto_property*) {
    static_cast<ConnectorImpl*>(self)->lost_ = true;
  }

  // --- connections ---------------------------------------------------------

  // A new libmosquitto client for options_.urls[url_], connecting
  // asynchronously. nullptr (after logging) when it cannot even start.
  mosquitto* NewClient() {
    const UpstreamUrl& url = options_.urls[url_];
    const bool iothub = url.dialect == Dialect::kIotHub;
    protocol_level_ = iothub ? 4 : options_.protocol_level;
    const std::string client_id = iothub ? options_.device_id : std::string();
    mosquitto* mosq = mosquitto_new(
        client_id.empty() ? nullptr : client_id.c_str(), /*clean=*/true, this);
    if (mosq == nullptr) {
      Log("mosquitto_new failed");
      return nullptr;
    }
    auto fail = [&](absl::string_view what, int rc) -> mosquitto* {
      Log(absl::StrCat(Describe(url), ": ", what, ": ", ErrorText(rc)));
      mosquitto_destroy(mosq);
      return nullptr;
    };
    mosquitto_int_option(
        mosq, MOSQ_OPT_PROTOCOL_VERSION,
        protocol_level_ == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, options_.max_in_flight);
    // PUBLISHes leave as soon as they are made; the PUBACKs pace us.
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_v5_callback_set(mosq, &OnConnect);
    mosquitto_publish_v5_callback_set(mosq, &OnPublish);
    mosquitto_disconnect_v5_callback_set(mosq, &OnDisconnect);
    int rc;
    if (url.tls) {
      const char* ca =
          options_.ca_path.empty() ? nullptr : options_.ca_path.c_str();
      if (ca == nullptr) {
        mosquitto_int_option(mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
      }
      rc = mosquitto_tls_set(
          mosq, ca, nullptr,
          options_.cert_path.empty() ? nullptr : options_.cert_path.c_str(),
          options_.cert_key_path.empty() ? nullptr
                                         : options_.cert_key_path.c_str(),
          nullptr);
      if (rc != MOSQ_ERR_SUCCESS) return fail("TLS set-up", rc);
    }
    std::string username = options_.username;
    std::string password = options_.password;
    if (iothub) {
      const std::string hub = options_.hub.empty() ? url.host : options_.hub;
      username = absl::StrCat(hub, "/", options_.device_id,
                              "/?api-version=", kIotHubApiVersion);
      password.clear();
      renew_at_ = absl::InfiniteFuture();
      if (!options_.key_base64.empty()) {
        const absl::Time now = absl::Now();
        // Whole seconds, as the token carries it: renewal is timed from the
        // expiry the parent sees.
        const absl::Time expiry = absl::FromUnixSeconds(
            absl::ToUnixSeconds(now + options_.token_lifetime));
        password = auth::MakeSasToken(
            absl::StrCat(hub, "/devices/", options_.device_id),
            options_.key_base64, expiry);
        if (password.empty()) {
          Log("--upstream-key is not valid base64");
          mosquitto_destroy(mosq);
          return nullptr;
        }
        renew_at_ = now + (expiry - now) * 8 / 10;
        // Acknowledgements get until 90% of the lifetime at most: the new
        // token is in use before the old one expires.
        renew_grace_ = std::min(kRenewGrace, (expiry - now) / 10);
      }
    }
    if (!username.empty() || !password.empty()) {
      rc = mosquitto_username_pw_set(
          mosq, username.c_str(),
          password.empty() ? nullptr : password.c_str());
      if (rc != MOSQ_ERR_SUCCESS) return fail("user name", rc);
    }
    rc = mosquitto_connect_async(mosq, url.host.c_str(), url.port,
                                 options_.keep_alive_seconds);
    if (rc != MOSQ_ERR_SUCCESS) {
      // The same line as a connect refused later in the loop: on loopback
      // the TCP connect and the TLS handshake may end inside this call.
      Log(absl::StrCat("cannot connect to ", Describe(url), ": ",
                       ErrorText(rc)));
      mosquitto_destroy(mosq);
      return nullptr;
    }
    return mosq;
  }

  // Runs one connection attempt and, if it is accepted, the session, until
  // it ends. *accepted says whether a CONNACK accepted it.
  End Session(bool* accepted) {
    *accepted = false;
    connected_ = false;
    refused_ = false;
    lost_ = false;
    receive_maximum_ = 0;
    mosq_ = NewClient();
    if (mosq_ == nullptr) return End::kLost;
    const absl::Time connect_deadline = absl::Now() + options_.connect_timeout;
    End end = End::kLost;
    bool renewing = false;
    absl::Time renew_deadline;
    while (true) {
      if (stop_.load(std::memory_order_acquire)) {
        end = End::kStop;
        break;
      }
      TakeHandoff();
      if (!connected_) {
        // A batch handed over before the CONNACK goes back at once.
        FailBack();
      }
      if (connected_ && !*accepted) {
        *accepted = true;
        OnSessionUp();
      }
      if (connected_ && !renewing && absl::Now() >= renew_at_) {
        renewing = true;
        renew_deadline = absl::Now() + renew_grace_;
        Log("renewing the SAS token: reconnecting");
      }
      if (renewing &&
          (in_flight_mids_.empty() || absl::Now() >= renew_deadline)) {
        end = End::kRenew;
        break;
      }
      if (connected_ && !renewing && !Pump()) break;
      if (lost_ || refused_) break;
      if (!connected_ && absl::Now() >= connect_deadline) {
        Log(absl::StrCat("no CONNACK from ", Describe(options_.urls[url_]),
                         " within ",
                         absl::FormatDuration(options_.connect_timeout)));
        break;
      }
      const int sock = mosquitto_socket(mosq_);
      if (sock < 0) break;
      // The router hands over a batch only once the previous one is
      // acknowledged, so at the end of each batch nothing goes out until
      // the last PUBACKs come in; a delayed ACK from us would then stall a
      // broker that runs Nagle's algorithm (mosquitto's default) for up to
      // 40 ms per batch. Linux leaves quick-ack mode by itself: set it
      // before every wait.
      const int one = 1;
      setsockopt(sock, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
      pollfd fds[2] = {};
      fds[0].fd = sock;
      fds[0].events = POLLIN;
      if (mosquitto_want_write(mosq_)) fds[0].events |= POLLOUT;
      fds[1].fd = event_fd_;
      fds[1].events = POLLIN;
      int timeout = connected_ ? kIdlePollMs : kConnectingPollMs;
      if (connected_) {
        // Wake in time for the renewal (short tokens are renewed within
        // a fraction of a second of their margin).
        const absl::Time timer = renewing ? renew_deadline : renew_at_;
        if (timer != absl::InfiniteFuture()) {
          const int64_t until_ms =
              absl::ToInt64Milliseconds(timer - absl::Now()) + 1;
          timeout = static_cast<int>(
              std::clamp<int64_t>(until_ms, 0, int64_t{timeout}));
        }
      }
      const int n = poll(fds, 2, timeout);
      if (n < 0 && errno != EINTR) break;
      if (n > 0 && (fds[1].revents & POLLIN)) DrainWake();
      // libmosquitto's own loop with a zero timeout: it reads, writes,
      // completes the TLS handshake and keeps the connection alive.
      const int rc = mosquitto_loop(mosq_, 0, 1);
      if (rc != MOSQ_ERR_SUCCESS) {
        if (connected_) {
          Log(absl::StrCat("connection to ", Describe(options_.urls[url_]),
                           " lost: ", ErrorText(rc)));
        } else if (!refused_) {
          Log(absl::StrCat("cannot connect to ", Describe(options_.urls[url_]),
                           ": ", ErrorText(rc)));
        }
        break;
      }
    }
    // Whatever is not acknowledged goes back to the router.
    if (*accepted) OnSessionDown();
    FailBack();
    if (connected_ && end != End::kLost) mosquitto_disconnect(mosq_);
    mosquitto_destroy(mosq_);
    mosq_ = nullptr;
    connected_ = false;
    return end;
  }

  void OnSessionUp() {
    connected_flag_.store(true, std::memory_order_relaxed);
    url_index_flag_.store(static_cast<int>(url_), std::memory_order_relaxed);
    if (ever_connected_) Bump(reconnects_);
    ever_connected_ = true;
    Log(absl::StrCat("connected to ", Describe(options_.urls[url_]), ", MQTT ",
                     protocol_level_ == 5 ? "5" : "3.1.1",
                     receive_maximum_ > 0
                         ? absl::StrCat(", receive maximum ", receive_maximum_)
                         : std::string()));
    SetSink(sink_);
  }

  void OnSessionDown() {
    // First, so that the router stops handing batches over.
    SetSink(nullptr);
    connected_flag_.store(false, std::memory_order_relaxed);
    url_index_flag_.store(-1, std::memory_order_relaxed);
  }

  void SetSink(std::shared_ptr<router::Sink> sink) {
    const absl::Status s = router_->SetSink(endpoint_id_, std::move(sink));
    // A closed router (at shutdown) refuses; that is expected.
    if (!s.ok() && !stop_.load(std::memory_order_acquire)) {
      Log(absl::StrCat("SetSink: ", s.ToString()));
    }
  }

  // Sleeps for the backoff delay (or until Stop), sending back any batch
  // handed over meanwhile.
  void Backoff(int failures) {
    // Doubling from backoff_initial up to backoff_max, then a draw from
    // half to all of it, so that gateways cut off together do not
    // reconnect together.
    const int64_t delay_us = BackoffMicros(
        failures, absl::ToInt64Microseconds(options_.backoff_initial),
        absl::ToInt64Microseconds(options_.backoff_max), /*factor=*/1.0);
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    const absl::Time until =
        absl::Now() + absl::Microseconds(static_cast<int64_t>(
                          static_cast<double>(delay_us) * jitter(rng_)));
    while (!stop_.load(std::memory_order_acquire)) {
      TakeHandoff();
      FailBack();
      const absl::Duration left = until - absl::Now();
      if (left <= absl::ZeroDuration()) return;
      pollfd fd = {event_fd_, POLLIN, 0};
      const int n =
          poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (n > 0) DrainWake();
    }
  }

  void Run() {
    int failures = 0;
    while (!stop_.load(std::memory_order_acquire)) {
      if (failures > 0) {
        Backoff(failures);
        if (stop_.load(std::memory_order_acquire)) break;
      }
      bool accepted = false;
      const absl::Time started = absl::Now();
      const End end = Session(&accepted);
      if (end == End::kStop) break;
      if (end == End::kRenew) {
        failures = 0;
        continue;
      }
      if (!accepted) Bump(connect_failures_);
      if (accepted && absl::Now() - started >= kStableConnection) {
        failures = 0;  // try the same URL again at once
        continue;
      }
      ++failures;
      url_ = (url_ + 1) % options_.urls.size();
    }
    // Anything handed over from now on goes back at once (Handoff).
    {
      std::lock_guard<std::mutex> lock(handoff_mu_);
      stopped_ = true;
    }
    TakeHandoff();
    FailBack();
  }

  const UpstreamOptions options_;
  router::Router* const router_;
  const std::string endpoint_id_;
  const PublishBuilder builder_;
  std::shared_ptr<router::Sink> sink_;
  int event_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};

  std::mutex handoff_mu_;
  DeliveryBatch* handoff_ = nullptr;  // guarded by handoff_mu_
  bool stopped_ = false;              // guarded by handoff_mu_

  // Connector thread only.
  mosquitto* mosq_ = nullptr;
  size_t url_ = 0;
  int protocol_level_ = 5;
  bool connected_ = false;
  bool refused_ = false;
  bool lost_ = false;
  bool ever_connected_ = false;
  uint16_t receive_maximum_ = 0;
  absl::Time renew_at_ = absl::InfiniteFuture();
  absl::Duration renew_grace_ = kRenewGrace;
  DeliveryBatch* batch_ = nullptr;
  size_t next_ = 0;       // next message of batch_ to publish
  size_t remaining_ = 0;  // messages of batch_ not completed
  absl::flat_hash_map<int, size_t> in_flight_mids_;  // mid -> batch index
  Publish publish_;
  std::mt19937_64 rng_;

  // Metrics (written by the connector thread).
  std::atomic<bool> connected_flag_{false};
  std::atomic<int> url_index_flag_{-1};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> connect_failures_{0};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> acknowledged_{0};
  std::atomic<uint64_t> dropped_hop_limit_{0};
  std::atomic<uint64_t> rejected_{0};
};

void UpstreamSink::Deliver(DeliveryBatch* batch) { impl_->Handoff(batch); }

absl::StatusOr<std::unique_ptr<UpstreamConnector>> UpstreamConnector::Create(
    const UpstreamOptions& options, router::Router* router,
    absl::string_view endpoint_id) {
  absl::Status s = ValidateUpstreamOptions(options);
  if (!s.ok()) return s;
  if (options.urls.empty()) {
    return absl::InvalidArgumentError("no --upstream URL");
  }
  auto impl = std::make_unique<ConnectorImpl>(options, router, endpoint_id);
  s = impl->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<UpstreamConnector>(
      new UpstreamConnector(std::move(impl)));
}

UpstreamConnector::UpstreamConnector(std::unique_ptr<ConnectorImpl> impl)
    : impl_(std::move(impl)) {}
UpstreamConnector::~UpstreamConnector() = default;
void UpstreamConnector::Start() { impl_->Start(); }
void UpstreamConnector::Stop() { impl_->Stop(); }
UpstreamMetrics UpstreamConnector::GetMetrics() const {
  return impl_->GetMetrics();
}
UpstreamBacklog UpstreamConnector::GetBacklog() const {
  return impl_->GetBacklog();
}

std::string UpstreamConnector::PrometheusText() const {
  const UpstreamMetrics m = GetMetrics();
  std::string out = absl::StrCat(
      "# HELP edgeroute_upstream_connected 1 while the upstream connection "
      "is up.\n"
      "# TYPE edgeroute_upstream_connected gauge\n"
      "edgeroute_upstream_connected ",
      m.connected ? 1 : 0,
      "\n"
      "# HELP edgeroute_upstream_reconnects_total Connections made after the "
      "first.\n"
      "# TYPE edgeroute_upstream_reconnects_total counter\n"
      "edgeroute_upstream_reconnects_total ",
      m.reconnects,
      "\n"
      "# HELP edgeroute_upstream_connect_failures_total Connection attempts "
      "that failed.\n"
      "# TYPE edgeroute_upstream_connect_failures_total counter\n"
      "edgeroute_upstream_connect_failures_total ",
      m.connect_failures,
      "\n"
      "# HELP edgeroute_upstream_in_flight PUBLISHes waiting for a PUBACK.\n"
      "# TYPE edgeroute_upstream_in_flight gauge\n"
      "edgeroute_upstream_in_flight ",
      m.in_flight,
      "\n"
      "# HELP edgeroute_upstream_sent_total PUBLISHes sent upstream.\n"
      "# TYPE edgeroute_upstream_sent_total counter\n"
      "edgeroute_upstream_sent_total ",
      m.sent,
      "\n"
      "# HELP edgeroute_upstream_acknowledged_total PUBLISHes the broker "
      "acknowledged.\n"
      "# TYPE edgeroute_upstream_acknowledged_total counter\n"
      "edgeroute_upstream_acknowledged_total ",
      m.acknowledged,
      "\n"
      "# HELP edgeroute_upstream_dropped_total Messages not sent upstream, by "
      "reason.\n"
      "# TYPE edgeroute_upstream_dropped_total counter\n"
      "edgeroute_upstream_dropped_total{reason=\"hop_limit\"} ",
      m.dropped_hop_limit,
      "\n"
      "edgeroute_upstream_dropped_total{reason=\"rejected\"} ",
      m.rejected, "\n");
  const UpstreamBacklog backlog = GetBacklog();
  absl::StrAppend(&out,
                  "# HELP edgeroute_upstream_backlog Messages waiting for the "
                  "upstream (queued or in flight), by route priority.\n"
                  "# TYPE edgeroute_upstream_backlog gauge\n");
  for (int level = 0; level < router::kPriorityLevels; ++level) {
    absl::StrAppend(&out, "edgeroute_upstream_backlog{priority=\"",
                    level == router::kDefaultPriorityLevel
                        ? std::string("default")
                        : absl::StrCat(level),
                    "\"} ", backlog.by_priority[level], "\n");
  }
  absl::StrAppend(
      &out,
      "# HELP edgeroute_upstream_oldest_backlog_age_seconds Age of the "
      "oldest message waiting for the upstream (0 when none).\n"
      "# TYPE edgeroute_upstream_oldest_backlog_age_seconds gauge\n"
      "edgeroute_upstream_oldest_backlog_age_seconds ",
      absl::StrFormat("%.3f", absl::ToDoubleSeconds(backlog.oldest_age)), "\n");
  return out;
}

}  // namespace upstream
}  // namespace gateway
}  // namespace edgeroute
