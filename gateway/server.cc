#include "gateway/server.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/admission_queue.h"
#include "gateway/log_limiter.h"
#include "message/status.h"

namespace edgeroute {
namespace gateway {
namespace {

constexpr absl::string_view kDeviceIdKey = "connectionDeviceId";
constexpr absl::string_view kModuleIdKey = "connectionModuleId";
constexpr absl::string_view kOutputNameKey = "outputName";
constexpr absl::string_view kMessageTypeKey = "messageType";
constexpr size_t kMaxInputBytes = 256;

bool Is(PropertyValue v, absl::string_view expected) {
  return expected.empty() ? v.missing() : v.has_string() && v.value == expected;
}

bool IsStampedKey(absl::string_view key) {
  return EqualsIgnoreAsciiCase(key, kDeviceIdKey) ||
         EqualsIgnoreAsciiCase(key, kModuleIdKey) ||
         EqualsIgnoreAsciiCase(key, kOutputNameKey);
}

// "device/module" or "device".
std::string IdentityKey(absl::string_view device, absl::string_view module) {
  return module.empty() ? std::string(device)
                        : absl::StrCat(device, "/", module);
}

std::string SubscriptionKey(const std::string& identity_key,
                            absl::string_view input) {
  return absl::StrCat(identity_key, "\n", input);
}

// Counters written by the loop thread, read by anyone. Relaxed: each is an
// independent statistic that publishes no other data.
struct Counters {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> telemetry_received{0};
  std::atomic<uint64_t> telemetry_refused{0};
  std::atomic<uint64_t> producer_pauses{0};
  std::atomic<uint64_t> deliveries_sent{0};
  std::atomic<uint64_t> acks{0};
  std::atomic<uint64_t> nacks{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> slow_consumer_disconnects{0};
  std::atomic<uint64_t> hellos_not_authorized{0};
  std::atomic<uint64_t> hello_timeouts{0};
  std::atomic<uint64_t> deliveries_timed_out{0};
  std::atomic<uint64_t> late_acks{0};
};

void Bump(std::atomic<uint64_t>& counter, int64_t delta = 1) {
  counter.fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
}

// The server thread's identity, so Deliver can tell whether it already runs
// on the loop thread.
thread_local const void* current_loop_owner = nullptr;

}  // namespace

MessageView StampIdentity(const Identity& from, absl::string_view output,
                          const MessageView& message, MessageBuilder* builder,
                          std::string* scratch) {
  const PropertyValue type = message.FindSystemProperty(kMessageTypeKey);
  if (Is(message.FindSystemProperty(kDeviceIdKey), from.device_id) &&
      Is(message.FindSystemProperty(kModuleIdKey), from.module_id) &&
      Is(message.FindSystemProperty(kOutputNameKey), output)) {
    scratch->clear();
    AppendMessageSource(type, message.FindSystemProperty(kModuleIdKey),
                        message.FindSystemProperty(kOutputNameKey), scratch);
    if (message.source() == *scratch) return message;
  }
  builder->Clear();
  builder->SetBody(message.body());
  for (size_t i = 0; i < message.property_count(); ++i) {
    auto [key, value] = message.property(i);
    if (value.has_string()) {
      builder->AddProperty(key, value.value);
    } else {
      builder->AddNullProperty(key);
    }
  }
  for (size_t i = 0; i < message.system_property_count(); ++i) {
    auto [key, value] = message.system_property(i);
    if (IsStampedKey(key)) continue;
    if (value.has_string()) {
      builder->AddSystemProperty(key, value.value);
    } else {
      builder->AddNullSystemProperty(key);
    }
  }
  builder->AddSystemProperty(kDeviceIdKey, from.device_id);
  if (!from.module_id.empty()) {
    builder->AddSystemProperty(kModuleIdKey, from.module_id);
  }
  if (!output.empty()) builder->AddSystemProperty(kOutputNameKey, output);
  builder->SetEnqueueTimeMicros(message.enqueue_time_us());
  builder->SetSequenceNumber(message.sequence_number());
  builder->Finish();
  return builder->view();
}

class ServerImpl final : public LoopHandler {
 public:
  ServerImpl(const ServerOptions& options, ServerHooks* hooks)
      : options_(options),
        hooks_(hooks),
        decoder_(options.loop.max_frame_bytes),
        identities_(options.identities) {}

  ~ServerImpl() override { Stop(); }

  absl::Status Init() {
    // Deadlines are checked every tick: a quarter of the shortest, at most
    // a second.
    absl::Duration shortest = absl::InfiniteDuration();
    for (absl::Duration d : {options_.hello_timeout, options_.ack_timeout}) {
      if (d > absl::ZeroDuration()) shortest = std::min(shortest, d);
    }
    if (shortest != absl::InfiniteDuration() &&
        options_.loop.tick_interval_ms == 0) {
      options_.loop.tick_interval_ms =
          static_cast<uint32_t>(std::clamp<int64_t>(
              absl::ToInt64Milliseconds(shortest) / 4, 1, 1000));
    }
    EDGEROUTE_ASSIGN_OR_RETURN(loop_, EventLoop::Create(options_.loop, this));
    if (options_.admission_queue_bytes > 0) {
      admission_ = std::make_unique<AdmissionQueue>(
          loop_.get(), hooks_, options_.admission_queue_bytes,
          [this](absl::Span<const AdmissionQueue::Verdict> verdicts) {
            Decided(verdicts);
          });
    }
    if (options_.tcp_port >= 0) {
      EDGEROUTE_ASSIGN_OR_RETURN(
          tcp_port_,
          loop_->ListenTcp(options_.tcp_host, options_.tcp_port, options_.tls));
    }
    if (!options_.unix_path.empty()) {
      EDGEROUTE_RETURN_IF_ERROR(loop_->ListenUnix(options_.unix_path));
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
    // acks to the loop, which runs them before it returns) and from then on
    // the loop refuses telemetry itself instead of waiting for room.
    if (admission_ != nullptr) admission_->Stop();
    loop_->Stop();
    thread_.join();
  }

  int tcp_port() const { return tcp_port_; }
  IoBackend backend() const { return loop_->backend(); }

  void Deliver(const Identity& target, absl::string_view input,
               OutboundBatch* batch) {
    if (current_loop_owner == this) {
      DeliverNow(target, input, batch);
      return;
    }
    loop_->Post([this, target, input = std::string(input), batch] {
      DeliverNow(target, input, batch);
    });
  }

  ServerStats stats() const {
    ServerStats s;
    auto get = [](const std::atomic<uint64_t>& c) {
      return c.load(std::memory_order_relaxed);
    };
    s.connections_accepted = get(counters_.connections_accepted);
    s.connections_open = get(counters_.connections_open);
    s.telemetry_received = get(counters_.telemetry_received);
    s.telemetry_refused = get(counters_.telemetry_refused);
    s.producer_pauses = get(counters_.producer_pauses);
    s.deliveries_sent = get(counters_.deliveries_sent);
    s.acks = get(counters_.acks);
    s.nacks = get(counters_.nacks);
    s.protocol_errors = get(counters_.protocol_errors);
    s.slow_consumer_disconnects = get(counters_.slow_consumer_disconnects);
    s.hellos_not_authorized = get(counters_.hellos_not_authorized);
    s.hello_timeouts = get(counters_.hello_timeouts);
    s.deliveries_timed_out = get(counters_.deliveries_timed_out);
    s.late_acks = get(counters_.late_acks);
    s.connections_refused = loop_ != nullptr ? loop_->RefusedConnections() : 0;
    return s;
  }

  void SetIdentities(std::shared_ptr<const auth::IdentityRegistry> identities) {
    std::lock_guard<std::mutex> lock(identities_mu_);
    identities_ = std::move(identities);
  }

  // LoopHandler.
  void OnOpen(ConnectionId id) override {
    sessions_.try_emplace(id);
    if (options_.hello_timeout > absl::ZeroDuration()) {
      awaiting_hello_.emplace_back(id, absl::Now() + options_.hello_timeout);
    }
    Bump(counters_.connections_accepted);
    Bump(counters_.connections_open);
  }

  // Closes the connections whose Hello deadline passed. awaiting_hello_ is
  // in deadline order (one timeout for all), so only its front is looked at.
  void OnTick() override {
    const absl::Time now = absl::Now();
    if (options_.ack_timeout > absl::ZeroDuration()) ExpireDeliveries(now);
    while (!awaiting_hello_.empty() && awaiting_hello_.front().second <= now) {
      const ConnectionId id = awaiting_hello_.front().first;
      awaiting_hello_.pop_front();
      auto it = sessions_.find(id);
      if (it == sessions_.end() || it->second.hello) continue;
      Bump(counters_.hello_timeouts);
      if (options_.log && log_limiter_.Allow()) {
        const PeerInfo* peer = loop_->Peer(id);
        options_.log(absl::StrCat(
            "no Hello within ", absl::FormatDuration(options_.hello_timeout),
            " from ", peer != nullptr ? peer->address : "?", "; closed"));
      }
      loop_->Close(id, /*flush=*/false);
    }
  }

  // Sent to a connection the loop has no room for.
  std::string RefusalBytes() override {
    std::string out;
    encoder_.Error(fb::ErrorCode::kOverloaded,
                   "the gateway has too many connections; retry later", &out);
    return out;
  }

  bool OnFrame(ConnectionId id, absl::Span<const uint8_t> payload) override {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return false;
    Session& s = it->second;
    DecodedFrame frame;
    DecodeError error;
    if (!decoder_.Decode(payload, &frame, &error)) {
      return Refuse(id, error.code, error.reason);
    }
    if (!s.hello && frame.type != fb::Body::Hello) {
      return Refuse(
          id, fb::ErrorCode::kProtocolViolation,
          absl::StrCat("expected Hello, got ", FrameTypeName(frame.type)));
    }
    switch (frame.type) {
      case fb::Body::Hello:
        return OnHello(id, s, *frame.hello());
      case fb::Body::Subscribe:
        return OnSubscribe(id, s, *frame.subscribe());
      case fb::Body::Telemetry:
        return OnTelemetry(id, s, *frame.telemetry(), frame.message);
      case fb::Body::Ack:
        return OnAck(id, s, frame.ack()->delivery_id(), DeliveryResult::kAcked);
      case fb::Body::Nack:
        return OnAck(id, s, frame.nack()->delivery_id(),
                     frame.nack()->retry() ? DeliveryResult::kRetry
                                           : DeliveryResult::kRejected);
      case fb::Body::Error:
        return false;  // the client is leaving
      default:
        return Refuse(
            id, fb::ErrorCode::kProtocolViolation,
            absl::StrCat(FrameTypeName(frame.type), " is not sent by clients"));
    }
  }

  void OnBadPrefix(ConnectionId id, SplitResult why) override {
    Bump(counters_.protocol_errors);
    if (why == SplitResult::kTooLarge) {
      SendError(id, fb::ErrorCode::kFrameTooLarge,
                absl::StrCat("frame larger than ",
                             options_.loop.max_frame_bytes, " bytes"));
    } else {
      SendError(id, fb::ErrorCode::kBadFrame, "zero-length frame");
    }
  }

  void OnClose(ConnectionId id, CloseReason reason) override {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    Bump(counters_.connections_open, -1);
    if (reason == CloseReason::kSlowConsumer) {
      Bump(counters_.slow_consumer_disconnects);
    }
    Session session = std::move(it->second);
    sessions_.erase(it);
    if (session.hello) {
      auto owner = by_identity_.find(session.key);
      if (owner != by_identity_.end() && owner->second == id) {
        by_identity_.erase(owner);
      }
    }
    // Complete what this connection held before telling the hooks that its
    // subscriptions are gone.
    for (auto& entry : session.unacked) {
      entry.second.batch->Complete(entry.second.index, DeliveryResult::kRetry);
    }
    for (const Waiting& w : session.waiting) {
      w.batch->Complete(w.index, DeliveryResult::kRetry);
    }
    for (const std::string& input : session.inputs) {
      Unsubscribe(id, session, input);
    }
  }

 private:
  struct Pending {
    OutboundBatch* batch;
    size_t index;
    absl::Time sent;
  };
  struct Waiting {
    OutboundBatch* batch;
    size_t index;
    const std::string* input;  // points into Session::inputs
  };
  // Connections without a Hello yet, with their deadlines (ascending).
  std::deque<std::pair<ConnectionId, absl::Time>> awaiting_hello_;
  LogLimiter log_limiter_;

  struct Session {
    bool hello = false;
    Identity identity;
    std::string key;
    // Subscribed inputs; a deque so that pointers into it stay valid.
    std::deque<std::string> inputs;
    uint64_t next_delivery_id = 1;
    absl::flat_hash_map<uint64_t, Pending> unacked;
    std::deque<Waiting> waiting;
  };

  bool Refuse(ConnectionId id, fb::ErrorCode code, absl::string_view text) {
    Bump(counters_.protocol_errors);
    SendError(id, code, text);
    return false;
  }

  void SendError(ConnectionId id, fb::ErrorCode code, absl::string_view text) {
    std::string* out = loop_->BeginSend(id);
    if (out == nullptr) return;
    encoder_.Error(code, text, out);
    loop_->EndSend(id);
  }

  bool OnHello(ConnectionId id, Session& s, const fb::Hello& hello) {
    if (s.hello) {
      return Refuse(id, fb::ErrorCode::kProtocolViolation, "second Hello");
    }
    if (hello.protocol_version() != kProtocolVersion) {
      return Refuse(id, fb::ErrorCode::kUnsupportedVersion,
                    absl::StrCat("protocol version ", hello.protocol_version(),
                                 " is not supported; this gateway speaks ",
                                 kProtocolVersion));
    }
    const absl::string_view device = FieldView(hello.device_id());
    const absl::string_view module = FieldView(hello.module_id());
    if (device.empty() || device.size() > kMaxInputBytes ||
        module.size() > kMaxInputBytes) {
      return Refuse(id, fb::ErrorCode::kProtocolViolation,
                    "device_id must be 1..256 bytes, module_id 0..256");
    }
    Identity claimed{std::string(device), std::string(module)};
    if (!Authorized(id, claimed, FieldView(hello.sas_token()))) return false;
    s.hello = true;
    s.identity = std::move(claimed);
    s.key = IdentityKey(device, module);
    auto [owner, inserted] = by_identity_.try_emplace(s.key, id);
    if (!inserted) {
      // The newer connection wins, as edgeHub's connection manager does.
      SendError(owner->second, fb::ErrorCode::kReplaced,
                "another connection took over this identity");
      loop_->Close(owner->second, /*flush=*/true);
      owner->second = id;
    }
    std::string* out = loop_->BeginSend(id);
    if (out == nullptr) return true;
    encoder_.HelloAck(static_cast<uint32_t>(options_.loop.max_frame_bytes),
                      out);
    return loop_->EndSend(id);
  }

  // With identities to check: whether the Hello proved `claimed` (otherwise
  // it is refused with kNotAuthorized, counted and logged). Without: true.
  bool Authorized(ConnectionId id, const Identity& claimed,
                  absl::string_view sas_token) {
    std::shared_ptr<const auth::IdentityRegistry> identities;
    {
      std::lock_guard<std::mutex> lock(identities_mu_);
      identities = identities_;
    }
    if (identities == nullptr) return true;
    const PeerInfo* peer = loop_->Peer(id);
    absl::Status status = auth::ValidateId("device_id", claimed.device_id);
    if (status.ok() && !claimed.module_id.empty()) {
      status = auth::ValidateId("module_id", claimed.module_id);
    }
    if (status.ok()) {
      status = identities->Verify(claimed, sas_token, peer, absl::Now());
    }
    if (status.ok()) return true;
    Bump(counters_.hellos_not_authorized);
    if (options_.log && log_limiter_.Allow()) {
      options_.log(absl::StrCat("Hello refused from ",
                                peer != nullptr ? peer->address : "?", ": ",
                                status.message()));
    }
    SendError(id, fb::ErrorCode::kNotAuthorized, status.message());
    return false;
  }

  bool OnSubscribe(ConnectionId id, Session& s, const fb::Subscribe& sub) {
    if (sub.inputs() == nullptr) return true;
    for (const flatbuffers::String* name : *sub.inputs()) {
      const absl::string_view input = FieldView(name);
      if (input.empty() || input.size() > kMaxInputBytes) {
        return Refuse(id, fb::ErrorCode::kProtocolViolation,
                      "input names must be 1..256 bytes");
      }
      bool known = false;
      for (const std::string& existing : s.inputs) known |= existing == input;
      if (known) continue;
      if (s.inputs.size() >= options_.max_subscriptions) {
        return Refuse(id, fb::ErrorCode::kProtocolViolation,
                      "too many subscriptions");
      }
      s.inputs.emplace_back(input);
      if (input == kUpstreamInput) {
        upstream_.push_back(id);
        if (upstream_.size() == 1) {
          hooks_->OnSubscription(Identity(), kUpstreamInput, true);
        }
        continue;
      }
      auto [entry, inserted] =
          subscribers_.insert_or_assign(SubscriptionKey(s.key, input), id);
      (void)entry;
      if (inserted) hooks_->OnSubscription(s.identity, input, true);
    }
    return true;
  }

  void Unsubscribe(ConnectionId id, const Session& s,
                   const std::string& input) {
    if (input == kUpstreamInput) {
      for (size_t i = 0; i < upstream_.size(); ++i) {
        if (upstream_[i] == id) {
          upstream_.erase(upstream_.begin() + static_cast<ptrdiff_t>(i));
          break;
        }
      }
      if (upstream_.empty()) {
        hooks_->OnSubscription(Identity(), kUpstreamInput, false);
      }
      return;
    }
    auto it = subscribers_.find(SubscriptionKey(s.key, input));
    if (it != subscribers_.end() && it->second == id) {
      subscribers_.erase(it);
      hooks_->OnSubscription(s.identity, input, false);
    }
  }

  bool OnTelemetry(ConnectionId id, Session& s, const fb::Telemetry& t,
                   const MessageView& message) {
    Bump(counters_.telemetry_received);
    const absl::string_view output = FieldView(t.output());
    const MessageView stamped =
        StampIdentity(s.identity, output, message, &builder_, &scratch_);
    if (options_.admission_queue_bytes > 0) {
      bool paused = false;
      if (admission_->Queue(id, t.sequence(), s.identity, output, stamped,
                            &paused)) {
        if (paused) Bump(counters_.producer_pauses);
        return true;
      }
      // Stopping: refused below without calling the hook.
      Bump(counters_.telemetry_refused);
      return SendTelemetryAck(id, t.sequence(), fb::ErrorCode::kShuttingDown);
    }
    const fb::ErrorCode code = hooks_->OnTelemetry(s.identity, output, stamped);
    if (code != fb::ErrorCode::kUnknown) Bump(counters_.telemetry_refused);
    return SendTelemetryAck(id, t.sequence(), code);
  }

  // Loop thread. True if sent or not wanted (sequence 0) or the connection
  // is already going away; false if the send queue overflowed (closing).
  bool SendTelemetryAck(ConnectionId id, uint64_t sequence,
                        fb::ErrorCode code) {
    if (sequence == 0) return true;
    std::string* out = loop_->BeginSend(id);
    if (out == nullptr) return true;
    encoder_.TelemetryAck(sequence, code, out);
    return loop_->EndSend(id);
  }

  // Loop thread: the admission thread's verdicts, in queued order.
  void Decided(absl::Span<const AdmissionQueue::Verdict> verdicts) {
    for (const AdmissionQueue::Verdict& v : verdicts) {
      if (v.code != fb::ErrorCode::kUnknown) Bump(counters_.telemetry_refused);
      if (v.tag != 0) SendTelemetryAck(v.id, v.tag, v.code);
    }
  }

  bool OnAck(ConnectionId id, Session& s, uint64_t delivery_id,
             DeliveryResult result) {
    auto it = s.unacked.find(delivery_id);
    if (it == s.unacked.end()) {
      // A delivery given back after the ack timeout (or answered twice):
      // it is no longer this connection's to answer.
      if (delivery_id != 0 && delivery_id < s.next_delivery_id) {
        Bump(counters_.late_acks);
        return true;
      }
      return Refuse(
          id, fb::ErrorCode::kProtocolViolation,
          absl::StrCat("Ack/Nack for unknown delivery ", delivery_id));
    }
    Bump(result == DeliveryResult::kAcked ? counters_.acks : counters_.nacks);
    const Pending pending = it->second;
    s.unacked.erase(it);
    pending.batch->Complete(pending.index, result);
    // Completing may have closed or replaced nothing on this loop; refill the
    // window from the waiting list.
    SendWaiting(id, s);
    return true;
  }

  void SendWaiting(ConnectionId id, Session& s) {
    while (!s.waiting.empty() &&
           s.unacked.size() < options_.max_unacked_deliveries) {
      const Waiting w = s.waiting.front();
      s.waiting.pop_front();
      if (!SendDeliver(id, s, *w.input, w.batch, w.index)) break;
    }
  }

  // Gives deliveries unacknowledged for ack_timeout back to the router for
  // a retry (oldest first), so a silent client holds nothing forever.
  void ExpireDeliveries(absl::Time now) {
    for (auto& [id, s] : sessions_) {
      if (s.unacked.empty()) continue;
      std::vector<uint64_t> late;
      for (const auto& [delivery_id, pending] : s.unacked) {
        if (now - pending.sent >= options_.ack_timeout) {
          late.push_back(delivery_id);
        }
      }
      if (late.empty()) continue;
      std::sort(late.begin(), late.end());
      for (uint64_t delivery_id : late) {
        auto it = s.unacked.find(delivery_id);
        const Pending pending = it->second;
        s.unacked.erase(it);
        Bump(counters_.deliveries_timed_out);
        pending.batch->Complete(pending.index, DeliveryResult::kRetry);
      }
      if (options_.log && log_limiter_.Allow()) {
        options_.log(
            absl::StrCat(late.size(), " deliveries to ", s.identity.device_id,
                         "/", s.identity.module_id, " not acknowledged within ",
                         absl::FormatDuration(options_.ack_timeout),
                         "; they go back to their queues"));
      }
      SendWaiting(id, s);
    }
  }

  // Sends one Deliver frame. Returns false if the connection is closing (the
  // message then completes with kRetry through OnClose or here).
  bool SendDeliver(ConnectionId id, Session& s, const std::string& input,
                   OutboundBatch* batch, size_t index) {
    std::string* out = loop_->BeginSend(id);
    if (out == nullptr) {
      batch->Complete(index, DeliveryResult::kRetry);
      return false;
    }
    const uint64_t delivery_id = s.next_delivery_id++;
    encoder_.Deliver(delivery_id, input, batch->message(index).bytes(), out);
    s.unacked.emplace(delivery_id, Pending{batch, index, absl::Now()});
    Bump(counters_.deliveries_sent);
    // On overflow the loop closes the connection; OnClose completes the
    // message (now in `unacked`) with kRetry.
    return loop_->EndSend(id);
  }

  void Enqueue(ConnectionId id, Session& s, const std::string& input,
               OutboundBatch* batch, size_t index) {
    if (s.waiting.empty() &&
        s.unacked.size() < options_.max_unacked_deliveries) {
      SendDeliver(id, s, input, batch, index);
    } else {
      s.waiting.push_back(Waiting{batch, index, &input});
    }
  }

  const std::string* FindInput(const Session& s, absl::string_view input) {
    for (const std::string& name : s.inputs) {
      if (name == input) return &name;
    }
    return nullptr;
  }

  void DeliverNow(const Identity& target, absl::string_view input,
                  OutboundBatch* batch) {
    const size_t n = batch->size();
    if (input == kUpstreamInput) {
      for (size_t i = 0; i < n; ++i) {
        if (upstream_.empty()) {
          batch->Complete(i, DeliveryResult::kRetry);
          continue;
        }
        const MessageView m = batch->message(i);
        const size_t h = absl::HashOf(m.FindSystemProperty(kDeviceIdKey).value,
                                      m.FindSystemProperty(kModuleIdKey).value);
        const ConnectionId id = upstream_[h % upstream_.size()];
        Session& s = sessions_.find(id)->second;
        Enqueue(id, s, *FindInput(s, kUpstreamInput), batch, i);
      }
      return;
    }
    auto it = subscribers_.find(SubscriptionKey(
        IdentityKey(target.device_id, target.module_id), input));
    Session* s = nullptr;
    const std::string* name = nullptr;
    if (it != subscribers_.end()) {
      auto session = sessions_.find(it->second);
      if (session != sessions_.end()) {
        s = &session->second;
        name = FindInput(*s, input);
      }
    }
    for (size_t i = 0; i < n; ++i) {
      if (name == nullptr) {
        batch->Complete(i, DeliveryResult::kRetry);
      } else {
        Enqueue(it->second, *s, *name, batch, i);
      }
    }
  }

  ServerOptions options_;  // set in the constructor and Init only
  ServerHooks* const hooks_;
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
  int tcp_port_ = -1;
  Counters counters_;

  // With admission_queue_bytes > 0.
  std::unique_ptr<AdmissionQueue> admission_;

  // Loop-thread state.
  FrameDecoder decoder_;
  FrameEncoder encoder_;
  MessageBuilder builder_;
  std::string scratch_;
  // Node map: Session addresses (and pointers into Session::inputs) stay
  // valid while other sessions come and go.
  absl::node_hash_map<ConnectionId, Session> sessions_;
  // Identity key -> the connection that holds it.
  absl::flat_hash_map<std::string, ConnectionId> by_identity_;
  // "identity\ninput" -> subscribed connection.
  absl::flat_hash_map<std::string, ConnectionId> subscribers_;
  std::vector<ConnectionId> upstream_;

  // Read by the loop thread at each Hello, replaced by SetIdentities from
  // any thread.
  std::mutex identities_mu_;
  std::shared_ptr<const auth::IdentityRegistry> identities_;  // guarded
};

absl::StatusOr<std::unique_ptr<Server>> Server::Create(
    const ServerOptions& options, ServerHooks* hooks) {
  auto impl = std::make_unique<ServerImpl>(options, hooks);
  EDGEROUTE_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<ServerImpl> impl) : impl_(std::move(impl)) {}
Server::~Server() { impl_->Stop(); }
absl::Status Server::Start() { return impl_->Start(); }
void Server::Stop() { impl_->Stop(); }
int Server::tcp_port() const { return impl_->tcp_port(); }
void Server::SetIdentities(
    std::shared_ptr<const auth::IdentityRegistry> identities) {
  impl_->SetIdentities(std::move(identities));
}
IoBackend Server::backend() const { return impl_->backend(); }

void Server::Deliver(const Identity& target, absl::string_view input,
                     OutboundBatch* batch) {
  impl_->Deliver(target, input, batch);
}

ServerStats Server::stats() const { return impl_->stats(); }

std::string Server::PrometheusText() const {
  const ServerStats s = stats();
  std::string out;
  auto counter = [&out](absl::string_view name, absl::string_view help,
                        uint64_t value, absl::string_view type = "counter") {
    absl::StrAppend(&out, "# HELP edgeroute_gateway_", name, " ", help, "\n",
                    "# TYPE edgeroute_gateway_", name, " ", type, "\n",
                    "edgeroute_gateway_", name, " ", value, "\n");
  };
  counter("connections_accepted_total", "Connections accepted.",
          s.connections_accepted);
  counter("connections_open", "Connections open now.", s.connections_open,
          "gauge");
  counter("telemetry_received_total", "Telemetry frames received.",
          s.telemetry_received);
  counter("telemetry_refused_total",
          "Telemetry the router did not admit (overloaded, shutting down).",
          s.telemetry_refused);
  counter("producer_pauses_total",
          "Producers not read from while the admission queue was full.",
          s.producer_pauses);
  counter("deliveries_sent_total", "Deliver frames sent.", s.deliveries_sent);
  counter("acks_total", "Ack frames received.", s.acks);
  counter("nacks_total", "Nack frames received.", s.nacks);
  counter("protocol_errors_total", "Connections closed for a protocol error.",
          s.protocol_errors);
  counter("slow_consumer_disconnects_total",
          "Connections closed because their send queue was full.",
          s.slow_consumer_disconnects);
  counter("hellos_not_authorized_total",
          "Hellos refused because they did not prove their identity.",
          s.hellos_not_authorized);
  counter("hello_timeouts_total", "Connections closed without a Hello in time.",
          s.hello_timeouts);
  counter("deliveries_timed_out_total",
          "Deliveries given back for a retry: no Ack within the ack timeout.",
          s.deliveries_timed_out);
  counter("late_acks_total",
          "Acks for deliveries already given back (or answered twice).",
          s.late_acks);
  counter("connections_refused_total",
          "Connections refused: connection limit, or no file descriptor.",
          s.connections_refused);
  return out;
}

}  // namespace gateway
}  // namespace edgeroute
