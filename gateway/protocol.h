// The gateway wire protocol codec (protocol.fbs, PROTOCOL.md).
//
//   SplitFrame    -- finds the next length-prefixed frame in a byte stream.
//   FrameEncoder  -- appends complete frames (prefix + payload) to a buffer.
//   FrameDecoder  -- verifies one frame payload, including the nested
//                    `//message` buffer of Telemetry and Deliver frames, and
//                    gives typed read-only access to it.
//
// Nothing here allocates per frame after warm-up, throws, or trusts its
// input: every accessor is reached only through FrameDecoder::Decode, which
// runs the FlatBuffers verifier first.

#ifndef EDGEROUTE_GATEWAY_PROTOCOL_H_
#define EDGEROUTE_GATEWAY_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "flatbuffers/flatbuffers.h"
#include "gateway/protocol_generated.h"
#include "message/message.h"

namespace edgeroute {
namespace gateway {

// The protocol version this build speaks (Hello.protocol_version).
inline constexpr uint32_t kProtocolVersion = 1;
// Bytes of the little-endian length prefix in front of every frame.
inline constexpr size_t kFrameHeaderBytes = 4;
// Default largest payload (length prefix excluded): a 256 KiB edgeHub message
// plus its properties and the frame's own fields fit with a wide margin.
inline constexpr size_t kDefaultMaxFrameBytes = 1u << 20;
// The subscription name of the gateway's upstream endpoint.
inline constexpr absl::string_view kUpstreamInput = "$upstream";

// The short name of a frame type ("Hello", "Deliver", ...), for logs.
const char* FrameTypeName(fb::Body type);
// The short name of an error code ("kBadFrame" -> "BadFrame").
const char* ErrorCodeName(fb::ErrorCode code);

enum class SplitResult : uint8_t {
  kFrame,     // *payload is one complete frame; consume *consumed bytes.
  kNeedMore,  // not a whole frame yet; *consumed says how many bytes the
              // whole frame needs once the prefix is known (0 if unknown).
  kTooLarge,  // the prefix announces more than max_frame_bytes.
  kEmpty,     // the prefix announces a zero-length payload (never valid).
};

// Looks at the start of `stream` for one frame of at most `max_frame_bytes`
// payload bytes.
SplitResult SplitFrame(absl::Span<const uint8_t> stream, size_t max_frame_bytes,
                       absl::Span<const uint8_t>* payload, size_t* consumed);

// Why a frame was rejected. `reason` points to a static string.
struct DecodeError {
  fb::ErrorCode code = fb::ErrorCode::kUnknown;
  absl::string_view reason;
};

// One verified frame. Views point into the decoded bytes (or the decoder's
// scratch buffer) and are valid until the next Decode on the same decoder or
// until those bytes change.
struct DecodedFrame {
  fb::Body type = fb::Body::NONE;
  const fb::Frame* frame = nullptr;
  // The nested message of Telemetry and Deliver frames, verified; empty for
  // other frame types.
  MessageView message;

  const fb::Hello* hello() const { return frame->body_as_Hello(); }
  const fb::HelloAck* hello_ack() const { return frame->body_as_HelloAck(); }
  const fb::Subscribe* subscribe() const { return frame->body_as_Subscribe(); }
  const fb::Telemetry* telemetry() const { return frame->body_as_Telemetry(); }
  const fb::Deliver* deliver() const { return frame->body_as_Deliver(); }
  const fb::Ack* ack() const { return frame->body_as_Ack(); }
  const fb::Nack* nack() const { return frame->body_as_Nack(); }
  const fb::Error* error() const { return frame->body_as_Error(); }
  const fb::TelemetryAck* telemetry_ack() const {
    return frame->body_as_TelemetryAck();
  }
};

// A string field as a string_view ("" when absent).
inline absl::string_view FieldView(const flatbuffers::String* s) {
  return s == nullptr ? absl::string_view()
                      : absl::string_view(s->data(), s->size());
}

// Verifies frame payloads.
// Thread-safety: none; one decoder per connection or per I/O thread.
class FrameDecoder {
 public:
  // `max_frame_bytes` bounds the payload; `message_limits` bound the nested
  // message.
  explicit FrameDecoder(size_t max_frame_bytes = kDefaultMaxFrameBytes,
                        const VerifyLimits& message_limits = {});
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;

  // Verifies `payload` (one frame without its length prefix): file
  // identifier "ERG1", the FlatBuffers verifier with tight depth/table
  // limits, a known union member, and for Telemetry/Deliver the nested
  // message with MessageView::Verify. A payload (or nested message) that is
  // not 8-byte aligned is first copied into an aligned scratch buffer.
  // Returns false and fills *error for anything invalid.
  bool Decode(absl::Span<const uint8_t> payload, DecodedFrame* out,
              DecodeError* error);

 private:
  absl::Span<const uint8_t> Aligned(absl::Span<const uint8_t> bytes,
                                    std::vector<uint64_t>* scratch);

  size_t max_frame_bytes_;
  VerifyLimits message_limits_;
  std::vector<uint64_t> frame_scratch_;
  std::vector<uint64_t> message_scratch_;
};

// Appends complete frames to a byte buffer. Every frame is padded so its
// total size (prefix included) is a multiple of 8; a receiver that reads a
// stream of such frames into an aligned buffer at offset 4 mod 8 sees every
// payload 8-byte aligned and never has to copy.
// Thread-safety: none; one encoder per thread. Reuses its builder, so after
// warm-up encoding does not allocate (beyond growing `out`).
class FrameEncoder {
 public:
  FrameEncoder() : fbb_(1024) {}
  FrameEncoder(const FrameEncoder&) = delete;
  FrameEncoder& operator=(const FrameEncoder&) = delete;

  // `sas_token` is sent only when not empty.
  void Hello(absl::string_view device_id, absl::string_view module_id,
             std::string* out, uint32_t protocol_version = kProtocolVersion,
             absl::string_view sas_token = {});
  void HelloAck(uint32_t max_frame_bytes, std::string* out);
  void Subscribe(absl::Span<const absl::string_view> inputs, std::string* out);
  // `message` is the bytes of one message (copied into the frame).
  void Telemetry(absl::string_view output, absl::Span<const uint8_t> message,
                 uint64_t sequence, std::string* out);
  void Deliver(uint64_t delivery_id, absl::string_view input,
               absl::Span<const uint8_t> message, std::string* out);
  void Ack(uint64_t delivery_id, std::string* out);
  void Nack(uint64_t delivery_id, bool retry, std::string* out);
  void Error(fb::ErrorCode code, absl::string_view text, std::string* out);
  void TelemetryAck(uint64_t sequence, fb::ErrorCode code, std::string* out);

  // Appends an arbitrary payload with a correct prefix (for tests and tools
  // that need to send frames this encoder would never produce).
  static void AppendRaw(absl::Span<const uint8_t> payload, std::string* out);

 private:
  template <typename T>
  void Finish(flatbuffers::Offset<T> body, fb::Body type, std::string* out);
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> AlignedBytes(
      absl::Span<const uint8_t> bytes);

  flatbuffers::FlatBufferBuilder fbb_;
  std::vector<flatbuffers::Offset<flatbuffers::String>> strings_;
};

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_PROTOCOL_H_
