// libFuzzer target for the MQTT codec and the session state machine: any
// bytes, in any order, as a client would send them. Build and run with
// scripts/fuzz.sh mqtt; the checked-in corpus (fuzz_corpus/) is replayed by
// //gateway/mqtt:mqtt_fuzzer_replay_test.
//
// Checks, beyond "no crash, no sanitizer report":
//   * every packet DecodePacket accepts re-encodes to exactly the bytes it
//     was decoded from (the validation leaves one encoding per packet);
//   * everything the session writes back decodes as valid packets;
//   * every delivery handed to the session is completed exactly once, by
//     the time the session is closed.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "gateway/mqtt/codec.h"
#include "gateway/mqtt/session.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    __builtin_trap();
  }
  (void)what;
}

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()),
                             s.size());
}

// Codec: decode packets back to back; each must re-encode to its bytes.
void FuzzCodec(absl::Span<const uint8_t> data, size_t limit) {
  std::string again;
  while (!data.empty()) {
    Packet packet;
    size_t consumed = 0;
    DecodeError error;
    const DecodeStatus status =
        DecodePacket(data, limit, &packet, &consumed, &error);
    if (status != DecodeStatus::kPacket) {
      if (status == DecodeStatus::kError) {
        Check(error.code != DecodeErrorCode::kNone, "error without code");
        Check(error.offset <= data.size(), "error offset");
      }
      return;
    }
    Check(consumed > 0 && consumed <= data.size() && consumed <= limit,
          "consumed");
    again.clear();
    EncodePacket(packet, &again);
    Check(again.size() == consumed &&
              again.compare(0, consumed,
                            reinterpret_cast<const char*>(data.data()),
                            consumed) == 0,
          "re-encoding differs");
    data.remove_prefix(consumed);
  }
}

class FuzzBatch final : public OutboundBatch {
 public:
  explicit FuzzBatch(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      MessageBuilder b;
      b.SetBody(std::string(i % 3, 'x'));
      b.AddSystemProperty("messageId", std::to_string(i));
      b.AddSystemProperty("connectionDeviceId", "d");
      b.AddSystemProperty("connectionModuleId", "m");
      if (i % 2 == 0) b.AddProperty("k&=", "v /%");
      if (i % 5 == 0) b.AddNullProperty("n");
      const absl::Span<const uint8_t> bytes = b.Finish();
      buffers_.emplace_back(reinterpret_cast<const char*>(bytes.data()),
                            bytes.size());
    }
    done_.assign(n, false);
  }
  size_t size() const override { return buffers_.size(); }
  MessageView message(size_t i) const override {
    Check(!done_[i], "message read after completion");
    return MessageView::FromTrustedBytes(Bytes(buffers_[i]));
  }
  void Complete(size_t i, DeliveryResult) override {
    Check(i < done_.size() && !done_[i], "completed twice");
    done_[i] = true;
  }
  bool AllDone() const {
    for (bool d : done_) {
      if (!d) return false;
    }
    return true;
  }

 private:
  std::vector<std::string> buffers_;
  std::vector<bool> done_;
};

class FuzzHost final : public SessionHost {
 public:
  std::string* BeginSend(Session*) override { return closing ? nullptr : &out; }
  bool EndSend(Session*) override { return out.size() < (1u << 20); }
  ConnectCode Authenticate(Session*, const Connect& connect,
                           Identity* identity) override {
    if (!connect.password.empty() && connect.password[0] == 'x') {
      return ConnectCode::kNotAuthorized;
    }
    const absl::string_view id = connect.client_id;
    const size_t slash = id.find('/');
    identity->device_id = std::string(id.substr(0, slash));
    identity->module_id = slash == absl::string_view::npos
                              ? std::string()
                              : std::string(id.substr(slash + 1));
    return ConnectCode::kAccepted;
  }
  bool Attach(Session* session, bool clean_session,
              SavedSession* saved) override {
    const std::string key =
        session->identity().device_id + "/" + session->identity().module_id;
    auto it = saved_sessions.find(key);
    if (it == saved_sessions.end()) return false;
    if (clean_session) {
      saved_sessions.erase(it);
      return false;
    }
    *saved = std::move(it->second);
    saved_sessions.erase(it);
    return true;
  }
  void SubscriptionsChanged(Session*) override {}
  Admission Telemetry(Session*, const Identity&, absl::string_view,
                      const MessageView& message) override {
    // The stamped message must verify like any message from outside.
    Check(MessageView::Verify(message.bytes()).ok(), "stamped message");
    if (message.body().size() == 13) return Admission::kRefused;
    return message.body().size() % 2 == 0 ? Admission::kAdmitted
                                          : Admission::kQueued;
  }
  std::string TwinGet(Session*) override { return "{}"; }
  absl::StatusOr<int64_t> TwinPatchReported(Session*,
                                            absl::string_view json) override {
    if (json.empty() || json[0] != '{') {
      return absl::InvalidArgumentError("not an object \xff");
    }
    return 2;
  }

  // Everything written must be valid packets.
  void CheckOutput() {
    absl::Span<const uint8_t> rest = Bytes(out);
    while (!rest.empty()) {
      Packet p;
      size_t n = 0;
      DecodeError e;
      Check(DecodePacket(rest, 1u << 24, &p, &n, &e) == DecodeStatus::kPacket,
            "the session wrote a bad packet");
      rest.remove_prefix(n);
    }
    out.clear();
  }

  std::string out;
  bool closing = false;
  std::map<std::string, SavedSession> saved_sessions;
};

}  // namespace
}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeroute::gateway::mqtt;
  const absl::Span<const uint8_t> input(data, size);
  edgeroute::gateway::mqtt::FuzzCodec(input, 4096);

  // The session: the input in chunks whose sizes, and the events between
  // them, come from a small generator seeded by the input.
  SessionOptions options;
  options.max_message_bytes = 512;
  options.max_packet_bytes = 4096;
  options.max_inflight = 3;
  options.max_subscriptions = 4;
  edgeroute::FakeClock clock;
  FuzzHost host;
  SessionScratch scratch;
  FuzzBatch batch(24);
  size_t handed = 0;
  uint32_t seed = 2166136261u;
  for (size_t i = 0; i < size && i < 64; ++i)
    seed = (seed ^ data[i]) * 16777619u;
  auto next = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return seed >> 16;
  };

  for (int round = 0; round < 2; ++round) {
    Session session(options, &host, &clock, &scratch);
    std::string pending;
    size_t pos = 0;
    bool open = true;
    while (open && pos < size) {
      const size_t chunk = 1 + next() % 64;
      const size_t take = std::min(chunk, size - pos);
      pending.append(reinterpret_cast<const char*>(data + pos), take);
      pos += take;
      size_t consumed = 0;
      open = session.OnBytes(Bytes(pending), &consumed);
      Check(consumed <= pending.size(), "consumed too much");
      pending.erase(0, consumed);
      switch (next() % 8) {
        case 0:
          clock.AdvanceMicros(static_cast<int64_t>(next() % 4) * 1'000'000);
          open = open && session.OnTick();
          break;
        case 1:
        case 2:
          if (handed < batch.size()) {
            session.Deliver(next() % 2 ? "in1" : "in2", &batch, handed++);
          }
          break;
        case 3:
          session.SendDesiredPatch(next() % 5, R"({"a":1})");
          break;
        case 4:
        case 5:
          // The host's verdicts on queued messages, in order.
          while (open && session.admissions_pending() > 0 && next() % 4 != 0) {
            open = session.Admitted(next() % 8 != 0);
          }
          break;
        default:
          break;
      }
      host.CheckOutput();
    }
    edgeroute::gateway::mqtt::SavedSession saved;
    session.Close(SessionEnd::kPeerClosed, &saved);
    host.CheckOutput();
    if (session.identity().device_id.size() > 0 && !session.clean_session()) {
      host.saved_sessions[session.identity().device_id + "/" +
                          session.identity().module_id] = std::move(saved);
    }
  }
  // Anything not handed out completes here, so the check below covers all.
  while (handed < batch.size()) {
    batch.Complete(handed++, edgeroute::gateway::DeliveryResult::kRetry);
  }
  edgeroute::gateway::mqtt::Check(batch.AllDone(),
                                  "a delivery never completed");
  return 0;
}
