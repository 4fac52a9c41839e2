#include "gateway/mqtt/mqtt_server.h"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status.h"
#include "gateway/admission_queue.h"
#include "gateway/log_limiter.h"
#include "gateway/mqtt/iothub.h"
#include "gateway/mqtt/session_files.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {
namespace {

// Counters written by the loop thread, read by anyone. Relaxed: each is an
// independent statistic that publishes no other data.
struct Counters {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> connects_accepted{0};
  std::atomic<uint64_t> connects_bad_credentials{0};
  std::atomic<uint64_t> connects_not_authorized{0};
  std::atomic<uint64_t> connects_refused_other{0};
  std::atomic<uint64_t> telemetry_received{0};
  std::atomic<uint64_t> telemetry_refused{0};
  std::atomic<uint64_t> producer_pauses{0};
  std::atomic<uint64_t> deliveries_sent{0};
  std::atomic<uint64_t> deliveries_acked{0};
  std::atomic<uint64_t> deliveries_timed_out{0};
  std::atomic<uint64_t> subscriptions_refused{0};
  std::atomic<uint64_t> twin_requests{0};
  std::atomic<uint64_t> takeovers{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> too_large{0};
  std::atomic<uint64_t> refused_publishes{0};
  std::atomic<uint64_t> qos2_closes{0};
  std::atomic<uint64_t> keep_alive_timeouts{0};
  std::atomic<uint64_t> connect_timeouts{0};
  std::atomic<uint64_t> slow_consumer_disconnects{0};
};

void Bump(std::atomic<uint64_t>& counter, int64_t delta = 1) {
  counter.fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
}

uint64_t Get(const std::atomic<uint64_t>& counter) {
  return counter.load(std::memory_order_relaxed);
}

// "device/module" or "device": the client id of an identity.
std::string ClientId(const Identity& identity) {
  return identity.module_id.empty()
             ? identity.device_id
             : absl::StrCat(identity.device_id, "/", identity.module_id);
}

// The loop thread's owner, so Deliver can tell whether it already runs on
// the loop thread.
thread_local const void* current_loop_owner = nullptr;

constexpr char kEmptyTwin[] =
    R"({"desired":{"$version":1},"reported":{"$version":1}})";

}  // namespace

bool IsLoopbackHost(absl::string_view host) {
  return absl::StartsWith(host, "127.") || host == "::1" || host == "[::1]" ||
         host == "localhost";
}

class MqttServerImpl final : public LoopHandler, public SessionHost {
 public:
  MqttServerImpl(const MqttServerOptions& options, ServerHooks* hooks)
      : options_(options),
        hooks_(hooks),
        clock_(options.clock != nullptr ? options.clock : SystemClock()),
        identities_(options.identities) {}

  ~MqttServerImpl() override { Stop(); }

  absl::Status Init() {
    if (options_.listeners.empty()) {
      return absl::InvalidArgumentError("an MQTT listener is required");
    }
    if (options_.identities == nullptr && !AllLoopback()) {
      return absl::FailedPreconditionError(
          "MQTT listeners on non-loopback addresses need an identities file: "
          "without one any client could claim any identity");
    }
    if (options_.session.max_inflight == 0 ||
        options_.session.max_inflight > 32768) {
      return absl::InvalidArgumentError("max_inflight must be 1..32768");
    }
    LoopOptions loop = options_.loop;
    loop.framing = Framing::kStream;
    loop.max_frame_bytes = options_.session.packet_limit();
    if (loop.tick_interval_ms == 0) loop.tick_interval_ms = 1000;
    EDGEROUTE_ASSIGN_OR_RETURN(loop_, EventLoop::Create(loop, this));
    if (options_.admission_queue_bytes > 0) {
      admission_ = std::make_unique<AdmissionQueue>(
          loop_.get(), hooks_, options_.admission_queue_bytes,
          [this](absl::Span<const AdmissionQueue::Verdict> verdicts) {
            Decided(verdicts);
          });
    }
    for (const MqttListener& l : options_.listeners) {
      EDGEROUTE_ASSIGN_OR_RETURN(
          int port, loop_->ListenTcp(l.host, l.port, options_.tls));
      ports_.push_back(port);
    }
    if (!options_.session_dir.empty()) {
      EDGEROUTE_ASSIGN_OR_RETURN(files_,
                                 SessionFiles::Open(options_.session_dir));
      std::vector<std::string> problems;
      for (auto& [client_id, subscriptions] : files_->LoadAll(&problems)) {
        saved_[client_id].subscriptions = std::move(subscriptions);
      }
      for (const std::string& p : problems) Log(absl::StrCat("sessions: ", p));
    }
    return absl::OkStatus();
  }

  absl::Status Start() {
    if (thread_.joinable()) {
      return absl::FailedPreconditionError("server already started");
    }
    if (admission_ != nullptr) admission_->Start();
    thread_ = std::thread([this] {
      current_loop_owner = this;
      loop_->Run();
      current_loop_owner = nullptr;
    });
    return absl::OkStatus();
  }

  void Stop() {
    if (!thread_.joinable()) return;
    // The admission thread first: it finishes what is queued (posting the
    // verdicts to the loop, which runs them before it returns) and from then
    // on the loop refuses telemetry itself instead of waiting for room.
    if (admission_ != nullptr) admission_->Stop();
    loop_->Stop();
    thread_.join();
  }

  std::vector<int> ports() const { return ports_; }
  IoBackend backend() const { return loop_->backend(); }
  bool tls() const { return options_.tls != nullptr; }

  void Deliver(const Identity& target, absl::string_view input,
               OutboundBatch* batch) {
    if (current_loop_owner == this) {
      DeliverNow(ClientId(target), input, batch);
      return;
    }
    loop_->Post([this, key = ClientId(target), input = std::string(input),
                 batch] { DeliverNow(key, input, batch); });
  }

  absl::Status SetIdentities(
      std::shared_ptr<const auth::IdentityRegistry> identities) {
    if (identities == nullptr && !AllLoopback()) {
      return absl::InvalidArgumentError(
          "identities are required: an MQTT listener is not on loopback");
    }
    std::lock_guard<std::mutex> lock(identities_mu_);
    identities_ = std::move(identities);
    return absl::OkStatus();
  }

  void PublishDesired(std::vector<twins::DesiredPatch> patches) {
    auto shared =
        std::make_shared<std::vector<twins::DesiredPatch>>(std::move(patches));
    auto send = [this, shared] {
      for (const twins::DesiredPatch& p : *shared) {
        Session* s =
            FindSession(absl::StrCat(options_.device_id, "/", p.module_id));
        if (s != nullptr) s->SendDesiredPatch(p.version, p.patch_json);
      }
    };
    if (current_loop_owner == this) {
      send();
    } else {
      loop_->Post(std::move(send));
    }
  }

  MqttServerStats stats() const {
    MqttServerStats s;
    s.connections_accepted = Get(counters_.connections_accepted);
    s.connections_open = Get(counters_.connections_open);
    s.connects_accepted = Get(counters_.connects_accepted);
    s.connects_bad_credentials = Get(counters_.connects_bad_credentials);
    s.connects_not_authorized = Get(counters_.connects_not_authorized);
    s.connects_refused_other = Get(counters_.connects_refused_other);
    s.telemetry_received = Get(counters_.telemetry_received);
    s.telemetry_refused = Get(counters_.telemetry_refused);
    s.producer_pauses = Get(counters_.producer_pauses);
    s.deliveries_sent = Get(counters_.deliveries_sent);
    s.deliveries_acked = Get(counters_.deliveries_acked);
    s.deliveries_timed_out = Get(counters_.deliveries_timed_out);
    s.subscriptions_refused = Get(counters_.subscriptions_refused);
    s.twin_requests = Get(counters_.twin_requests);
    s.takeovers = Get(counters_.takeovers);
    s.connections_refused = loop_ != nullptr ? loop_->RefusedConnections() : 0;
    s.protocol_errors = Get(counters_.protocol_errors);
    s.too_large = Get(counters_.too_large);
    s.refused_publishes = Get(counters_.refused_publishes);
    s.qos2_closes = Get(counters_.qos2_closes);
    s.keep_alive_timeouts = Get(counters_.keep_alive_timeouts);
    s.connect_timeouts = Get(counters_.connect_timeouts);
    s.slow_consumer_disconnects = Get(counters_.slow_consumer_disconnects);
    return s;
  }

  // LoopHandler.
  void OnOpen(ConnectionId id) override {
    auto session =
        std::make_unique<Session>(options_.session, this, clock_, &scratch_);
    session->tag = id;
    conns_.emplace(id, std::move(session));
    Bump(counters_.connections_accepted);
    Bump(counters_.connections_open);
  }

  bool OnStream(ConnectionId id, absl::Span<const uint8_t> bytes,
                size_t* consumed) override {
    *consumed = 0;
    auto it = conns_.find(id);
    if (it == conns_.end()) return false;
    Session* s = it->second.get();
    if (s->OnBytes(bytes, consumed)) return true;
    Ended(s);
    return false;
  }

  // A connection the loop has no room for gets CONNACK 3 (server
  // unavailable) before it is closed: MQTT clients report that and retry.
  std::string RefusalBytes() override {
    std::string out;
    EncodeConnack(false, ConnectCode::kServerUnavailable, &out);
    return out;
  }

  void OnTick() override {
    std::vector<ConnectionId> expired;
    for (auto& [id, session] : conns_) {
      // A session that already ended waits for its close; not again.
      if (session->closed() || session->end() != SessionEnd::kOpen) continue;
      if (!session->OnTick()) expired.push_back(id);
    }
    for (ConnectionId id : expired) {
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      Ended(it->second.get());
      loop_->Close(id, /*flush=*/true);
    }
  }

  void OnClose(ConnectionId id, CloseReason reason) override {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    std::unique_ptr<Session> session = std::move(it->second);
    conns_.erase(it);
    forwarders_.erase(id);
    Bump(counters_.connections_open, -1);
    if (reason == CloseReason::kSlowConsumer) {
      Bump(counters_.slow_consumer_disconnects);
      LogLimited(absl::StrCat(PeerName(session.get()),
                              ": closed: its output queue overflowed (the "
                              "client does not read fast enough)"));
    } else if (reason == CloseReason::kBadFrame) {
      Bump(counters_.too_large);
      LogLimited(absl::StrCat(PeerName(session.get()),
                              ": closed: more unread bytes than a packet "
                              "may have"));
    }
    const bool was_connected = session->connected();
    const std::string key = ClientId(session->identity());
    SavedSession saved;
    session->Close(SessionEnd::kPeerClosed, &saved);
    if (!was_connected) return;  // never signed in, or taken over
    auto owner = by_identity_.find(key);
    if (owner == by_identity_.end() || owner->second != id) return;
    by_identity_.erase(owner);
    if (!session->clean_session()) Keep(key, std::move(saved));
    AnnounceInputs(session->identity(), {});
  }

  // SessionHost.
  std::string* BeginSend(Session* session) override {
    return loop_->BeginSend(session->tag);
  }
  bool EndSend(Session* session) override {
    return loop_->EndSend(session->tag);
  }

  bool IsGateway(Session* session) override {
    return forwarders_.contains(session->tag);
  }
  bool MayActFor(Session* session, const Identity& origin) override {
    auto it = forwarders_.find(session->tag);
    if (it == forwarders_.end()) return false;
    // A refusal closes the connection and is counted as a refused publish.
    return it->second->MayActFor(session->identity(), origin);
  }

  ConnectCode Authenticate(Session* session, const Connect& connect,
                           Identity* identity) override {
    const PeerInfo* peer = loop_->Peer(session->tag);
    std::shared_ptr<const auth::IdentityRegistry> registry;
    {
      std::lock_guard<std::mutex> lock(identities_mu_);
      registry = identities_;
    }
    absl::StatusOr<Identity> proven;
    if (registry != nullptr) {
      auth::Credentials credentials;
      credentials.client_id = connect.client_id;
      credentials.username = connect.username;
      if (connect.has_password) {
        credentials.password = std::string(connect.password);
      }
      credentials.peer = peer;
      proven = registry->Authenticate(credentials, absl::Now());
    } else {
      proven = IdentityWithoutRegistry(connect);
    }
    if (proven.ok()) {
      *identity = *std::move(proven);
      Bump(counters_.connects_accepted);
      // A gateway keeps the registry it signed in with for the scope
      // checks of what it forwards (reloads apply to later CONNECTs).
      const auth::IdentityEntry* entry =
          registry != nullptr ? registry->Find(*identity) : nullptr;
      if (entry != nullptr && entry->gateway) {
        forwarders_[session->tag] = registry;
      } else {
        forwarders_.erase(session->tag);
      }
      return ConnectCode::kAccepted;
    }
    ConnectCode code = ConnectCode::kServerUnavailable;
    if (proven.status().code() == absl::StatusCode::kUnauthenticated) {
      code = ConnectCode::kBadUserNameOrPassword;
      Bump(counters_.connects_bad_credentials);
    } else if (proven.status().code() == absl::StatusCode::kPermissionDenied) {
      code = ConnectCode::kNotAuthorized;
      Bump(counters_.connects_not_authorized);
    } else {
      Bump(counters_.connects_refused_other);
    }
    // The registry's messages name the identity and the reason, never a
    // key, token or signature.
    LogLimited(absl::StrCat(PeerName(session), ": CONNECT as '",
                            connect.client_id, "' refused (CONNACK ",
                            static_cast<int>(code),
                            "): ", proven.status().message()));
    return code;
  }

  bool Attach(Session* session, bool clean_session,
              SavedSession* saved) override {
    const std::string key = ClientId(session->identity());
    auto [owner, inserted] = by_identity_.try_emplace(key, session->tag);
    if (!inserted) {
      // The newer connection wins, as edgeHub's connection manager does.
      const ConnectionId old_id = owner->second;
      owner->second = session->tag;
      auto old = conns_.find(old_id);
      if (old != conns_.end()) {
        Session* previous = old->second.get();
        SavedSession previous_state;
        previous->Close(SessionEnd::kTakenOver, &previous_state);
        if (!previous->clean_session()) {
          Keep(key, std::move(previous_state));
        }
        Bump(counters_.takeovers);
        Log(absl::StrCat(PeerName(previous), ": '", key,
                         "' closed: a newer connection (", PeerName(session),
                         ") took over the identity"));
        loop_->Close(old_id, /*flush=*/true);
      }
    }
    bool present = false;
    auto it = saved_.find(key);
    if (clean_session) {
      if (it != saved_.end()) saved_.erase(it);
      if (files_ != nullptr) LogIfError(files_->Remove(key));
    } else if (it != saved_.end()) {
      *saved = std::move(it->second);
      saved_.erase(it);
      present = true;
    }
    AnnounceInputs(session->identity(), present ? saved->subscriptions
                                                : std::vector<Subscription>());
    return present;
  }

  void SubscriptionsChanged(Session* session) override {
    AnnounceInputs(session->identity(), session->subscriptions());
    if (files_ != nullptr && !session->clean_session()) {
      LogIfError(files_->Save(ClientId(session->identity()),
                              session->subscriptions()));
    }
  }

  void SubscriptionRefused(Session* session,
                           absl::string_view filter) override {
    Bump(counters_.subscriptions_refused);
    LogLimited(absl::StrCat(PeerName(session), ": '",
                            ClientId(session->identity()),
                            "' may not subscribe to '", filter, "' (0x80)"));
  }

  Admission Telemetry(Session* session, const Identity& from,
                      absl::string_view output,
                      const MessageView& message) override {
    Bump(counters_.telemetry_received);
    if (options_.admission_queue_bytes > 0) {
      bool paused = false;
      if (admission_->Queue(session->tag, 0, from, output, message, &paused)) {
        if (paused) Bump(counters_.producer_pauses);
        return Admission::kQueued;
      }
      Bump(counters_.telemetry_refused);  // stopping
      return Admission::kRefused;
    }
    const fb::ErrorCode code = hooks_->OnTelemetry(from, output, message);
    if (code == fb::ErrorCode::kUnknown) return Admission::kAdmitted;
    Bump(counters_.telemetry_refused);
    return Admission::kRefused;
  }

  void DeliverySent(Session*) override { Bump(counters_.deliveries_sent); }
  void DeliveryAcked(Session*) override { Bump(counters_.deliveries_acked); }
  void DeliveryTimedOut(Session* session) override {
    Bump(counters_.deliveries_timed_out);
    LogLimited(absl::StrCat(PeerName(session), ": '",
                            ClientId(session->identity()),
                            "' did not acknowledge a delivery in time; it "
                            "goes back to its queue"));
  }

  std::string TwinGet(Session* session) override {
    Bump(counters_.twin_requests);
    if (options_.twins == nullptr) return kEmptyTwin;
    return options_.twins->Get(session->identity().device_id,
                               session->identity().module_id);
  }

  absl::StatusOr<int64_t> TwinPatchReported(
      Session* session, absl::string_view patch_json) override {
    Bump(counters_.twin_requests);
    if (options_.twins == nullptr) {
      return absl::UnimplementedError("this gateway keeps no twins");
    }
    return options_.twins->PatchReported(session->identity().device_id,
                                         session->identity().module_id,
                                         patch_json);
  }

 private:
  bool AllLoopback() const {
    for (const MqttListener& l : options_.listeners) {
      if (!IsLoopbackHost(l.host)) return false;
    }
    return true;
  }

  // Without an identities file (loopback only): the client id names the
  // identity; a user name, when given, must name the same one.
  static absl::StatusOr<Identity> IdentityWithoutRegistry(
      const Connect& connect) {
    if (connect.has_username) {
      return auth::ParseMqttIdentity(connect.client_id, connect.username);
    }
    const absl::string_view id = connect.client_id;
    const size_t slash = id.find('/');
    Identity identity;
    identity.device_id = std::string(id.substr(0, slash));
    absl::Status valid =
        auth::ValidateId("client id's device id", identity.device_id);
    if (valid.ok() && slash != absl::string_view::npos) {
      identity.module_id = std::string(id.substr(slash + 1));
      valid = auth::ValidateId("client id's module id", identity.module_id);
    }
    if (!valid.ok()) return absl::UnauthenticatedError(valid.message());
    return identity;
  }

  // Loop thread: the admission thread's verdicts, in queued order.
  void Decided(absl::Span<const AdmissionQueue::Verdict> verdicts) {
    for (const AdmissionQueue::Verdict& v : verdicts) {
      const bool admitted = v.code == fb::ErrorCode::kUnknown;
      if (!admitted) Bump(counters_.telemetry_refused);
      Decided(v.id, admitted);
    }
  }

  // Loop thread: the verdict on a connection's oldest queued message.
  void Decided(ConnectionId id, bool admitted) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;  // gone meanwhile
    Session* s = it->second.get();
    const bool was_open = !s->closed() && s->end() == SessionEnd::kOpen;
    if (s->Admitted(admitted) || !was_open) return;
    Ended(s);
    loop_->Close(id, /*flush=*/true);
  }

  // Counts and logs why a session ended (the server's own decisions).
  void Ended(Session* s) {
    switch (s->end()) {
      case SessionEnd::kProtocolError:
        Bump(counters_.protocol_errors);
        break;
      case SessionEnd::kPacketTooLarge:
        Bump(counters_.too_large);
        break;
      case SessionEnd::kRefusedPublish:
        Bump(counters_.refused_publishes);
        break;
      case SessionEnd::kQos2:
        Bump(counters_.qos2_closes);
        break;
      case SessionEnd::kKeepAlive:
        Bump(counters_.keep_alive_timeouts);
        break;
      case SessionEnd::kConnectTimeout:
        Bump(counters_.connect_timeouts);
        break;
      case SessionEnd::kSlowConsumer:
        Bump(counters_.slow_consumer_disconnects);
        break;
      case SessionEnd::kNotAdmitted:
        break;  // counted as telemetry_refused
      default:
        return;  // DISCONNECT, refused sign-in (logged)
    }
    const std::string who =
        s->connected() ? absl::StrCat(" '", ClientId(s->identity()), "'") : "";
    LogLimited(absl::StrCat(
        PeerName(s), who, ": closed (", SessionEndName(s->end()),
        "): ", s->error(),
        s->end() == SessionEnd::kProtocolError
            ? absl::StrCat(" at byte ", s->error_offset(), " of the packet")
            : std::string()));
  }

  std::string PeerName(Session* s) const {
    const PeerInfo* peer = loop_->Peer(s->tag);
    return peer != nullptr ? peer->address
                           : absl::StrCat("connection ", s->tag);
  }

  // Tells the hooks which inputs of `identity` gained or lost their
  // subscriber. Only a module of any device has inputs.
  void AnnounceInputs(const Identity& identity,
                      const std::vector<Subscription>& subscriptions) {
    if (identity.module_id.empty()) return;
    std::set<std::string> wanted;
    const IdentityRef ref{identity.device_id, identity.module_id};
    for (const Subscription& s : subscriptions) {
      const FilterGrant grant = ClassifyFilter(s.filter, ref);
      if (grant.kind != FilterKind::kInputs) continue;
      wanted.insert(grant.input.empty() ? std::string(kAllInputs)
                                        : std::string(grant.input));
    }
    const std::string key = ClientId(identity);
    std::set<std::string>& active = announced_[key];
    for (const std::string& input : active) {
      if (!wanted.count(input)) hooks_->OnSubscription(identity, input, false);
    }
    for (const std::string& input : wanted) {
      if (!active.count(input)) hooks_->OnSubscription(identity, input, true);
    }
    if (wanted.empty()) {
      announced_.erase(key);
    } else {
      active = std::move(wanted);
    }
  }

  // Keeps a disconnected CleanSession=0 session, up to kMaxSessions of
  // them (without an identities file any client id may make one).
  void Keep(const std::string& key, SavedSession state) {
    if (saved_.size() >= SessionFiles::kMaxSessions && !saved_.contains(key)) {
      LogLimited(absl::StrCat("sessions: more than ",
                              SessionFiles::kMaxSessions, " saved; '", key,
                              "' is not kept"));
      return;
    }
    saved_[key] = std::move(state);
  }

  Session* FindSession(const std::string& key) {
    auto owner = by_identity_.find(key);
    if (owner == by_identity_.end()) return nullptr;
    auto it = conns_.find(owner->second);
    if (it == conns_.end() || !it->second->connected()) return nullptr;
    return it->second.get();
  }

  void DeliverNow(const std::string& key, absl::string_view input,
                  OutboundBatch* batch) {
    Session* s = FindSession(key);
    const size_t n = batch->size();
    for (size_t i = 0; i < n; ++i) {
      if (s == nullptr || !s->connected()) {
        batch->Complete(i, DeliveryResult::kRetry);
      } else {
        s->Deliver(input, batch, i);
      }
    }
  }

  void Log(absl::string_view line) {
    if (options_.log) {
      options_.log(line);
    } else {
      std::fprintf(stderr, "edgeroute mqtt: %.*s\n",
                   static_cast<int>(line.size()), line.data());
    }
  }

  // A flood of bad clients cannot flood the log (everything is counted).
  void LogLimited(absl::string_view line) {
    if (log_limiter_.Allow()) Log(line);
  }

  void LogIfError(const absl::Status& status) {
    if (!status.ok()) Log(absl::StrCat("sessions: ", status.ToString()));
  }

  const MqttServerOptions options_;
  ServerHooks* const hooks_;
  const Clock* const clock_;
  std::unique_ptr<EventLoop> loop_;
  std::vector<int> ports_;
  std::thread thread_;
  Counters counters_;
  std::mutex identities_mu_;
  std::shared_ptr<const auth::IdentityRegistry> identities_;  // guarded
  // Loop thread: the connections signed in as gateways ("gateway": true),
  // with the registry they signed in with.
  absl::flat_hash_map<ConnectionId,
                      std::shared_ptr<const auth::IdentityRegistry>>
      forwarders_;

  // With admission_queue_bytes > 0.
  std::unique_ptr<AdmissionQueue> admission_;

  // Loop-thread state.
  SessionScratch scratch_;
  absl::flat_hash_map<ConnectionId, std::unique_ptr<Session>> conns_;
  // Client id -> the connection that holds the identity.
  absl::flat_hash_map<std::string, ConnectionId> by_identity_;
  // Client id -> the state of a CleanSession=0 session while disconnected.
  absl::flat_hash_map<std::string, SavedSession> saved_;
  // Client id -> inputs announced active through OnSubscription.
  absl::flat_hash_map<std::string, std::set<std::string>> announced_;
  std::unique_ptr<SessionFiles> files_;
  LogLimiter log_limiter_;
};

absl::StatusOr<std::unique_ptr<MqttServer>> MqttServer::Create(
    const MqttServerOptions& options, ServerHooks* hooks) {
  auto impl = std::make_unique<MqttServerImpl>(options, hooks);
  EDGEROUTE_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<MqttServer>(new MqttServer(std::move(impl)));
}

MqttServer::MqttServer(std::unique_ptr<MqttServerImpl> impl)
    : impl_(std::move(impl)) {}
MqttServer::~MqttServer() { impl_->Stop(); }
absl::Status MqttServer::Start() { return impl_->Start(); }
void MqttServer::Stop() { impl_->Stop(); }
std::vector<int> MqttServer::ports() const { return impl_->ports(); }
IoBackend MqttServer::backend() const { return impl_->backend(); }
bool MqttServer::tls() const { return impl_->tls(); }

void MqttServer::Deliver(const Identity& target, absl::string_view input,
                         OutboundBatch* batch) {
  impl_->Deliver(target, input, batch);
}

absl::Status MqttServer::SetIdentities(
    std::shared_ptr<const auth::IdentityRegistry> identities) {
  return impl_->SetIdentities(std::move(identities));
}

void MqttServer::PublishDesired(std::vector<twins::DesiredPatch> patches) {
  impl_->PublishDesired(std::move(patches));
}

MqttServerStats MqttServer::stats() const { return impl_->stats(); }

std::string MqttServer::PrometheusText() const {
  const MqttServerStats s = stats();
  std::string out;
  auto metric = [&out](absl::string_view name, absl::string_view help,
                       absl::string_view type) {
    absl::StrAppend(&out, "# HELP edgeroute_mqtt_", name, " ", help, "\n",
                    "# TYPE edgeroute_mqtt_", name, " ", type, "\n");
  };
  auto value = [&out](absl::string_view name, absl::string_view labels,
                      uint64_t v) {
    absl::StrAppend(&out, "edgeroute_mqtt_", name, labels, " ", v, "\n");
  };
  auto counter = [&](absl::string_view name, absl::string_view help,
                     uint64_t v) {
    metric(name, help, "counter");
    value(name, "", v);
  };
  counter("connections_accepted_total", "TCP connections accepted.",
          s.connections_accepted);
  counter("connections_refused_total",
          "Connections refused: connection limit, or no file descriptor.",
          s.connections_refused);
  metric("connections_open", "Connections open now.", "gauge");
  value("connections_open", "", s.connections_open);
  metric("connects_total", "CONNECTs answered, by result.", "counter");
  value("connects_total", "{result=\"accepted\"}", s.connects_accepted);
  value("connects_total", "{result=\"bad_credentials\"}",
        s.connects_bad_credentials);
  value("connects_total", "{result=\"not_authorized\"}",
        s.connects_not_authorized);
  value("connects_total", "{result=\"other\"}", s.connects_refused_other);
  counter("telemetry_received_total", "Telemetry PUBLISHes received.",
          s.telemetry_received);
  counter("telemetry_refused_total",
          "Telemetry the router did not admit (connection closed).",
          s.telemetry_refused);
  counter("producer_pauses_total",
          "Producers not read from while the admission queue was full.",
          s.producer_pauses);
  counter("deliveries_sent_total", "Module input PUBLISHes sent.",
          s.deliveries_sent);
  counter("deliveries_acked_total", "Module input PUBACKs received.",
          s.deliveries_acked);
  counter("deliveries_timed_out_total",
          "Deliveries given back for a retry: no PUBACK within the ack "
          "timeout.",
          s.deliveries_timed_out);
  counter("subscriptions_refused_total", "Topic filters refused (0x80).",
          s.subscriptions_refused);
  counter("twin_requests_total", "Twin GET and PATCH requests.",
          s.twin_requests);
  counter("takeovers_total",
          "Connections closed because a newer one took their identity.",
          s.takeovers);
  metric("closes_total", "Connections the server closed, by reason.",
         "counter");
  value("closes_total", "{reason=\"protocol_error\"}", s.protocol_errors);
  value("closes_total", "{reason=\"too_large\"}", s.too_large);
  value("closes_total", "{reason=\"refused_publish\"}", s.refused_publishes);
  value("closes_total", "{reason=\"qos2\"}", s.qos2_closes);
  value("closes_total", "{reason=\"keep_alive\"}", s.keep_alive_timeouts);
  value("closes_total", "{reason=\"connect_timeout\"}", s.connect_timeouts);
  value("closes_total", "{reason=\"slow_consumer\"}",
        s.slow_consumer_disconnects);
  return out;
}

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute
