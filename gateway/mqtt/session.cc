#include "gateway/mqtt/session.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"
#include "nlohmann/json.hpp"

namespace edgeroute {
namespace gateway {
namespace mqtt {
namespace {

constexpr size_t kMaxTopicBytes = 65535;

IdentityRef Ref(const Identity& identity) {
  return IdentityRef{identity.device_id, identity.module_id};
}

// The twin error body the SDKs read: {"errorCode": status, "message": ...}.
std::string ErrorBody(int status, absl::string_view message) {
  nlohmann::json body = {{"errorCode", status},
                         {"message", std::string(message)}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int TwinStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

}  // namespace

uint64_t MessageHash(const MessageView& message) {
  const absl::Span<const uint8_t> bytes = message.bytes();
  return absl::HashOf(absl::string_view(
      reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

const char* SessionEndName(SessionEnd end) {
  switch (end) {
    case SessionEnd::kOpen:
      return "open";
    case SessionEnd::kDisconnect:
      return "disconnect";
    case SessionEnd::kPeerClosed:
      return "peer_closed";
    case SessionEnd::kProtocolError:
      return "protocol_error";
    case SessionEnd::kPacketTooLarge:
      return "too_large";
    case SessionEnd::kAuthFailed:
      return "auth_failed";
    case SessionEnd::kKeepAlive:
      return "keep_alive";
    case SessionEnd::kConnectTimeout:
      return "connect_timeout";
    case SessionEnd::kRefusedPublish:
      return "refused_publish";
    case SessionEnd::kQos2:
      return "qos2";
    case SessionEnd::kNotAdmitted:
      return "not_admitted";
    case SessionEnd::kTakenOver:
      return "taken_over";
    case SessionEnd::kSlowConsumer:
      return "slow_consumer";
  }
  return "unknown";
}

Session::Session(const SessionOptions& options, SessionHost* host,
                 const Clock* clock, SessionScratch* scratch)
    : options_(options),
      host_(host),
      clock_(clock),
      scratch_(scratch),
      opened_micros_(clock->MonotonicMicros()),
      last_packet_micros_(opened_micros_) {}

Session::~Session() { Close(SessionEnd::kPeerClosed, nullptr); }

bool Session::Fail(SessionEnd end, const char* what) {
  if (end_ == SessionEnd::kOpen) end_ = end;
  error_ = what;
  return false;
}

bool Session::OnBytes(absl::Span<const uint8_t> bytes, size_t* consumed) {
  *consumed = 0;
  if (state_ == State::kClosed || end_ != SessionEnd::kOpen) return false;
  const size_t limit = options_.packet_limit();
  bool any = false;
  while (*consumed < bytes.size()) {
    Packet packet;
    size_t n = 0;
    DecodeError error;
    const DecodeStatus status =
        DecodePacket(bytes.subspan(*consumed), limit, &packet, &n, &error);
    if (status == DecodeStatus::kNeedMore) break;
    if (status == DecodeStatus::kError) {
      error_offset_ = error.offset;
      if (error.code == DecodeErrorCode::kUnacceptableProtocolLevel &&
          state_ == State::kAwaitConnect) {
        SendConnack(false, ConnectCode::kUnacceptableProtocolVersion);
        return Fail(SessionEnd::kAuthFailed, error.what);
      }
      return Fail(error.code == DecodeErrorCode::kPacketTooLarge
                      ? SessionEnd::kPacketTooLarge
                      : SessionEnd::kProtocolError,
                  error.what);
    }
    *consumed += n;
    any = true;
    if (!OnPacket(packet)) return false;
  }
  if (any) last_packet_micros_ = clock_->MonotonicMicros();
  return true;
}

bool Session::OnTick() {
  if (state_ == State::kClosed || end_ != SessionEnd::kOpen) return false;
  const int64_t now = clock_->MonotonicMicros();
  if (state_ == State::kAwaitConnect) {
    if (now - opened_micros_ > options_.connect_timeout_micros) {
      return Fail(SessionEnd::kConnectTimeout, "no CONNECT in time");
    }
    return true;
  }
  if (keep_alive_secs_ > 0 &&
      now - last_packet_micros_ > int64_t{keep_alive_secs_} * 1'500'000) {
    return Fail(SessionEnd::kKeepAlive,
                "no packet within 1.5 times the keep-alive");
  }
  if (options_.ack_timeout_micros > 0 && inflight_deliveries_ > 0) {
    ExpireDeliveries(now);
  }
  return state_ != State::kClosed && end_ == SessionEnd::kOpen;
}

void Session::ExpireDeliveries(int64_t now) {
  std::vector<std::pair<uint16_t, Inflight>> late;
  for (const auto& [packet_id, inflight] : inflight_) {
    if (inflight.batch != nullptr &&
        now - inflight.sent_micros >= options_.ack_timeout_micros) {
      late.emplace_back(packet_id, inflight);
    }
  }
  // Oldest first, so that the retries keep the order they were sent in.
  std::sort(late.begin(), late.end(), [](const auto& a, const auto& b) {
    return a.second.sent_micros < b.second.sent_micros;
  });
  for (const auto& [packet_id, inflight] : late) {
    inflight_.erase(packet_id);
    --inflight_deliveries_;
    host_->DeliveryTimedOut(this);
    inflight.batch->Complete(inflight.index, DeliveryResult::kRetry);
  }
  SendWaiting();
}

bool Session::OnPacket(const Packet& packet) {
  if (state_ == State::kAwaitConnect && packet.type != PacketType::kConnect) {
    return Fail(SessionEnd::kProtocolError, "first packet is not CONNECT");
  }
  switch (packet.type) {
    case PacketType::kConnect:
      if (state_ != State::kAwaitConnect) {
        return Fail(SessionEnd::kProtocolError, "second CONNECT");
      }
      return OnConnect(packet.connect);
    case PacketType::kPublish:
      return OnPublish(packet.publish);
    case PacketType::kPuback:
      return OnPuback(packet.packet_id);
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return Fail(SessionEnd::kQos2, "QoS 2 is not supported");
    case PacketType::kSubscribe:
      return OnSubscribe(packet);
    case PacketType::kUnsubscribe:
      return OnUnsubscribe(packet);
    case PacketType::kPingreq:
      return SendSimple(PacketType::kPingresp, 0);
    case PacketType::kDisconnect:
      end_ = SessionEnd::kDisconnect;
      return false;
    case PacketType::kConnack:
    case PacketType::kSuback:
    case PacketType::kUnsuback:
    case PacketType::kPingresp:
      break;
  }
  return Fail(SessionEnd::kProtocolError, "a server's packet from a client");
}

bool Session::OnConnect(const Connect& connect) {
  if (connect.client_id.empty()) {
    SendConnack(false, ConnectCode::kIdentifierRejected);
    return Fail(SessionEnd::kAuthFailed, "empty client identifier");
  }
  Identity identity;
  const ConnectCode code = host_->Authenticate(this, connect, &identity);
  if (code != ConnectCode::kAccepted) {
    SendConnack(false, code);
    return Fail(SessionEnd::kAuthFailed, "authentication failed");
  }
  identity_ = std::move(identity);
  is_gateway_ = host_->IsGateway(this);
  clean_session_ = connect.clean_session;
  keep_alive_secs_ = connect.keep_alive_secs;
  state_ = State::kConnected;
  SavedSession saved;
  const bool present = host_->Attach(this, clean_session_, &saved);
  if (present) {
    subscriptions_ = std::move(saved.subscriptions);
    redeliveries_ = std::move(saved.unacknowledged);
  }
  if (!SendConnack(present, ConnectCode::kAccepted)) return false;
  if (!subscriptions_.empty()) host_->SubscriptionsChanged(this);
  return true;
}

bool Session::OnPublish(const Publish& publish) {
  if (publish.qos == 2) return Fail(SessionEnd::kQos2, "QoS 2 PUBLISH");
  if (publish.payload.size() > options_.max_message_bytes) {
    return Fail(SessionEnd::kPacketTooLarge, "message larger than the limit");
  }
  const PublishTopic topic = ClassifyPublishTopic(publish.topic);
  switch (topic.kind) {
    case TopicKind::kTelemetry: {
      // A gateway forwards for the identities in its scope under their own
      // topics, so that routes here see the original identity.
      Identity origin;
      const bool own = topic.device_id == identity_.device_id &&
                       topic.module_id == identity_.module_id;
      if (!own) {
        origin.device_id.assign(topic.device_id.data(), topic.device_id.size());
        origin.module_id.assign(topic.module_id.data(), topic.module_id.size());
        if (!is_gateway_ || !host_->MayActFor(this, origin)) {
          return Fail(SessionEnd::kRefusedPublish,
                      is_gateway_ ? "telemetry topic of an identity outside "
                                    "this gateway's scope"
                                  : "telemetry topic of another identity");
        }
      }
      const Identity& from = own ? identity_ : origin;
      if (!BuildTelemetry(Ref(from), topic.bag, publish.payload,
                          &scratch_->builder, &scratch_->output, &scratch_->bag,
                          /*keep_hops=*/is_gateway_)) {
        return Fail(SessionEnd::kPacketTooLarge,
                    "property bag with too many properties");
      }
      // BuildTelemetry stamped the identity already; StampIdentity checks
      // it (no copy when it agrees) so that both heads share one rule.
      const MessageView stamped =
          StampIdentity(from, scratch_->output, scratch_->builder.view(),
                        &scratch_->stamp_builder, &scratch_->stamp);
      switch (host_->Telemetry(this, from, scratch_->output, stamped)) {
        case Admission::kAdmitted:
          break;
        case Admission::kRefused:
          return Fail(SessionEnd::kNotAdmitted,
                      "the router did not admit the message");
        case Admission::kQueued:
          if (pending_acks_ == nullptr) {
            pending_acks_ = std::make_unique<std::deque<PendingAck>>();
          }
          pending_acks_->push_back(
              PendingAck{publish.qos == 1 ? publish.packet_id : uint16_t{0},
                         /*queued=*/true, /*ready=*/false});
          ++queued_admissions_;
          return true;
      }
      break;
    }
    case TopicKind::kTwinGet:
      SendTwinResponse(200, topic.rid, -1, host_->TwinGet(this));
      break;
    case TopicKind::kTwinPatchReported: {
      const absl::StatusOr<int64_t> version =
          host_->TwinPatchReported(this, publish.payload);
      if (version.ok()) {
        SendTwinResponse(204, topic.rid, *version, "");
      } else {
        const int status = TwinStatus(version.status());
        SendTwinResponse(status, topic.rid, -1,
                         ErrorBody(status, version.status().message()));
      }
      break;
    }
    case TopicKind::kMethodResponse:
      break;  // nothing invokes methods yet
    case TopicKind::kUnknown:
      return Fail(SessionEnd::kRefusedPublish,
                  "PUBLISH to a topic this identity may not use");
  }
  if (publish.qos == 1) return Acknowledge(publish.packet_id);
  return true;
}

bool Session::Acknowledge(uint16_t packet_id) {
  if (pending_acks_ == nullptr || pending_acks_->empty()) {
    return SendSimple(PacketType::kPuback, packet_id);
  }
  pending_acks_->push_back(
      PendingAck{packet_id, /*queued=*/false, /*ready=*/true});
  return true;
}

bool Session::Admitted(bool admitted) {
  if (queued_admissions_ == 0 || pending_acks_ == nullptr) return false;
  --queued_admissions_;
  if (state_ == State::kClosed || end_ != SessionEnd::kOpen) return false;
  if (!admitted) {
    return Fail(SessionEnd::kNotAdmitted,
                "the router did not admit the message");
  }
  for (PendingAck& p : *pending_acks_) {
    if (p.queued && !p.ready) {
      p.ready = true;
      break;
    }
  }
  return FlushAcks();
}

bool Session::FlushAcks() {
  while (!pending_acks_->empty() && pending_acks_->front().ready) {
    const uint16_t id = pending_acks_->front().packet_id;
    pending_acks_->pop_front();
    if (id != 0 && !SendSimple(PacketType::kPuback, id)) return false;
  }
  return true;
}

bool Session::OnSubscribe(const Packet& packet) {
  std::vector<uint8_t> codes;
  codes.reserve(packet.filters.count);
  TopicFilterReader reader(packet.filters);
  TopicRequest request;
  while (reader.Next(&request)) {
    const FilterGrant grant = ClassifyFilter(request.filter, Ref(identity_));
    if (grant.kind == FilterKind::kRefused) {
      codes.push_back(kSubackFailure);
      host_->SubscriptionRefused(this, request.filter);
      continue;
    }
    const uint8_t qos = std::min<uint8_t>(request.qos, 1);
    auto same = std::find_if(
        subscriptions_.begin(), subscriptions_.end(),
        [&](const Subscription& s) { return s.filter == request.filter; });
    if (same != subscriptions_.end()) {
      same->qos = qos;
    } else if (subscriptions_.size() >= options_.max_subscriptions) {
      codes.push_back(kSubackFailure);
      host_->SubscriptionRefused(this, request.filter);
      continue;
    } else {
      subscriptions_.push_back(Subscription{std::string(request.filter), qos});
    }
    codes.push_back(qos);
  }
  std::string* out = host_->BeginSend(this);
  if (out != nullptr) {
    EncodeSuback(packet.packet_id, codes, out);
    if (!host_->EndSend(this)) {
      return Fail(SessionEnd::kSlowConsumer, "output queue overflowed");
    }
  }
  host_->SubscriptionsChanged(this);
  return true;
}

bool Session::OnUnsubscribe(const Packet& packet) {
  TopicFilterReader reader(packet.filters);
  TopicRequest request;
  while (reader.Next(&request)) {
    subscriptions_.erase(
        std::remove_if(
            subscriptions_.begin(), subscriptions_.end(),
            [&](const Subscription& s) { return s.filter == request.filter; }),
        subscriptions_.end());
  }
  if (!SendSimple(PacketType::kUnsuback, packet.packet_id)) return false;
  host_->SubscriptionsChanged(this);
  return true;
}

bool Session::OnPuback(uint16_t packet_id) {
  auto it = inflight_.find(packet_id);
  // An unknown id: a PUBACK for a twin response we no longer track, or a
  // late one for a delivery of the previous connection. Harmless.
  if (it == inflight_.end()) return true;
  const Inflight done = it->second;
  inflight_.erase(it);
  if (done.batch != nullptr) {
    --inflight_deliveries_;
    host_->DeliveryAcked(this);
    done.batch->Complete(done.index, DeliveryResult::kAcked);
  }
  SendWaiting();
  return true;
}

void Session::SendWaiting() {
  while (waiting_ != nullptr && !waiting_->empty() &&
         state_ == State::kConnected &&
         inflight_deliveries_ < options_.max_inflight) {
    Waiting next = std::move(waiting_->front());
    waiting_->pop_front();
    const int qos = InputQos(next.input);
    if (qos < 0) {
      next.batch->Complete(next.index, DeliveryResult::kRetry);
      continue;
    }
    SendInput(next.input, qos, next.batch, next.index);
  }
}

bool Session::SendConnack(bool session_present, ConnectCode code) {
  std::string* out = host_->BeginSend(this);
  if (out == nullptr) return false;
  EncodeConnack(session_present, code, out);
  if (!host_->EndSend(this)) {
    return Fail(SessionEnd::kSlowConsumer, "output queue overflowed");
  }
  return true;
}

bool Session::SendSimple(PacketType type, uint16_t packet_id) {
  std::string* out = host_->BeginSend(this);
  if (out == nullptr) return false;
  if (type == PacketType::kPingresp) {
    EncodeEmpty(type, out);
  } else {
    EncodePacketId(type, packet_id, out);
  }
  if (!host_->EndSend(this)) {
    return Fail(SessionEnd::kSlowConsumer, "output queue overflowed");
  }
  return true;
}

uint16_t Session::NextPacketId() {
  while (true) {
    const uint16_t id = next_packet_id_;
    next_packet_id_ = next_packet_id_ == 65535 ? 1 : next_packet_id_ + 1;
    if (!inflight_.contains(id)) return id;
  }
}

bool Session::SendPublish(uint8_t qos, bool dup, absl::string_view payload,
                          OutboundBatch* batch, size_t index) {
  std::string* out = host_->BeginSend(this);
  if (out == nullptr) return false;
  Publish publish;
  publish.topic = scratch_->topic;
  publish.qos = qos;
  publish.dup = dup && qos > 0;
  publish.payload = payload;
  if (qos > 0) {
    publish.packet_id = NextPacketId();
    inflight_.emplace(publish.packet_id,
                      Inflight{batch, index, clock_->MonotonicMicros()});
    if (batch != nullptr) ++inflight_deliveries_;
  }
  EncodePublish(publish, out);
  // On overflow the connection closes; Close completes what is in flight.
  host_->EndSend(this);
  return true;
}

void Session::SendInput(absl::string_view input, int qos, OutboundBatch* batch,
                        size_t index) {
  const MessageView message = batch->message(index);
  scratch_->topic.clear();
  AppendInputTopic(Ref(identity_), input, message, &scratch_->topic);
  if (scratch_->topic.size() > kMaxTopicBytes) {
    batch->Complete(index, DeliveryResult::kRejected);
    return;
  }
  bool dup = false;
  if (!redeliveries_.empty()) {
    dup = redeliveries_.erase(MessageHash(message)) > 0;
  }
  if (!SendPublish(static_cast<uint8_t>(qos), dup, message.body(),
                   qos > 0 ? batch : nullptr, index)) {
    batch->Complete(index, DeliveryResult::kRetry);
    return;
  }
  host_->DeliverySent(this);
  if (qos == 0) batch->Complete(index, DeliveryResult::kAcked);
}

void Session::SendTwinResponse(int status, absl::string_view rid,
                               int64_t version, absl::string_view body) {
  const int qos = GrantFor(FilterKind::kTwinResponses);
  if (qos < 0) return;
  scratch_->topic.clear();
  AppendTwinResponseTopic(status, rid, version, &scratch_->topic);
  if (scratch_->topic.size() > kMaxTopicBytes) return;
  SendPublish(static_cast<uint8_t>(qos), false, body, nullptr, 0);
}

void Session::SendDesiredPatch(int64_t version, absl::string_view patch_json) {
  if (state_ != State::kConnected) return;
  const int qos = GrantFor(FilterKind::kTwinDesired);
  if (qos < 0) return;
  scratch_->topic.clear();
  AppendDesiredPatchTopic(version, &scratch_->topic);
  SendPublish(static_cast<uint8_t>(qos), false, patch_json, nullptr, 0);
}

int Session::GrantFor(FilterKind kind) const {
  for (const Subscription& s : subscriptions_) {
    if (ClassifyFilter(s.filter, Ref(identity_)).kind == kind) return s.qos;
  }
  return -1;
}

int Session::InputQos(absl::string_view input) const {
  int qos = -1;
  for (const Subscription& s : subscriptions_) {
    const FilterGrant grant = ClassifyFilter(s.filter, Ref(identity_));
    if (grant.kind != FilterKind::kInputs) continue;
    if (grant.input.empty() || grant.input == input) {
      qos = std::max<int>(qos, s.qos);
    }
  }
  return qos;
}

void Session::Deliver(absl::string_view input, OutboundBatch* batch,
                      size_t index) {
  const int qos = state_ == State::kConnected && end_ == SessionEnd::kOpen
                      ? InputQos(input)
                      : -1;
  if (qos < 0) {
    batch->Complete(index, DeliveryResult::kRetry);
    return;
  }
  if (qos > 0 && ((waiting_ != nullptr && !waiting_->empty()) ||
                  inflight_deliveries_ >= options_.max_inflight)) {
    if (waiting_ == nullptr) waiting_ = std::make_unique<std::deque<Waiting>>();
    waiting_->push_back(Waiting{std::string(input), batch, index});
    return;
  }
  SendInput(input, qos, batch, index);
}

void Session::Close(SessionEnd end, SavedSession* saved) {
  if (state_ == State::kClosed) return;
  const bool was_connected = state_ == State::kConnected;
  state_ = State::kClosed;
  if (end_ == SessionEnd::kOpen) end_ = end;
  // Take the containers first: completing may reach code that looks at
  // this session.
  absl::flat_hash_map<uint16_t, Inflight> inflight;
  inflight.swap(inflight_);
  std::unique_ptr<std::deque<Waiting>> waiting = std::move(waiting_);
  inflight_deliveries_ = 0;
  if (saved != nullptr && was_connected && !clean_session_) {
    saved->subscriptions = subscriptions_;
    saved->unacknowledged = std::move(redeliveries_);
    for (const auto& [id, f] : inflight) {
      if (f.batch != nullptr) {
        saved->unacknowledged.insert(MessageHash(f.batch->message(f.index)));
      }
    }
    if (waiting != nullptr) {
      for (const Waiting& w : *waiting) {
        saved->unacknowledged.insert(MessageHash(w.batch->message(w.index)));
      }
    }
  }
  redeliveries_.clear();
  for (const auto& [id, f] : inflight) {
    if (f.batch != nullptr) f.batch->Complete(f.index, DeliveryResult::kRetry);
  }
  if (waiting != nullptr) {
    for (const Waiting& w : *waiting) {
      w.batch->Complete(w.index, DeliveryResult::kRetry);
    }
  }
}

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute
