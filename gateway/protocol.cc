#include "gateway/protocol.h"

#include <cstring>

namespace edgeroute {
namespace gateway {
namespace {

// A frame is a handful of small tables; the nested message is verified on its
// own with the message limits. These bound the verifier's work on hostile
// input.
constexpr flatbuffers::uoffset_t kFrameMaxDepth = 8;
constexpr flatbuffers::uoffset_t kFrameMaxTables = 64;
// Alignment of payloads and nested messages (FlatBuffers' largest scalar).
constexpr size_t kAlign = 8;

bool IsAligned(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & (kAlign - 1)) == 0;
}

uint32_t LoadLittleEndian32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

void StoreLittleEndian32(uint32_t v, char* p) {
  p[0] = static_cast<char>(v & 0xff);
  p[1] = static_cast<char>((v >> 8) & 0xff);
  p[2] = static_cast<char>((v >> 16) & 0xff);
  p[3] = static_cast<char>((v >> 24) & 0xff);
}

bool Fail(fb::ErrorCode code, absl::string_view reason, DecodeError* error) {
  error->code = code;
  error->reason = reason;
  return false;
}

}  // namespace

const char* FrameTypeName(fb::Body type) {
  switch (type) {
    case fb::Body::NONE:
      return "None";
    case fb::Body::Hello:
      return "Hello";
    case fb::Body::HelloAck:
      return "HelloAck";
    case fb::Body::Subscribe:
      return "Subscribe";
    case fb::Body::Telemetry:
      return "Telemetry";
    case fb::Body::Deliver:
      return "Deliver";
    case fb::Body::Ack:
      return "Ack";
    case fb::Body::Nack:
      return "Nack";
    case fb::Body::Error:
      return "Error";
    case fb::Body::TelemetryAck:
      return "TelemetryAck";
  }
  return "Unknown";
}

const char* ErrorCodeName(fb::ErrorCode code) {
  const char* name = fb::EnumNameErrorCode(code);
  if (name == nullptr || *name == '\0') return "Unknown";
  // Drop the leading 'k'.
  return name[0] == 'k' ? name + 1 : name;
}

SplitResult SplitFrame(absl::Span<const uint8_t> stream, size_t max_frame_bytes,
                       absl::Span<const uint8_t>* payload, size_t* consumed) {
  *consumed = 0;
  if (stream.size() < kFrameHeaderBytes) return SplitResult::kNeedMore;
  const uint32_t length = LoadLittleEndian32(stream.data());
  if (length == 0) return SplitResult::kEmpty;
  if (length > max_frame_bytes) return SplitResult::kTooLarge;
  *consumed = kFrameHeaderBytes + length;
  if (stream.size() < *consumed) return SplitResult::kNeedMore;
  *payload = stream.subspan(kFrameHeaderBytes, length);
  return SplitResult::kFrame;
}

FrameDecoder::FrameDecoder(size_t max_frame_bytes,
                           const VerifyLimits& message_limits)
    : max_frame_bytes_(max_frame_bytes), message_limits_(message_limits) {}

absl::Span<const uint8_t> FrameDecoder::Aligned(
    absl::Span<const uint8_t> bytes, std::vector<uint64_t>* scratch) {
  if (IsAligned(bytes.data())) return bytes;
  // Capacity is kept across frames: no allocation after warm-up.
  scratch->resize((bytes.size() + kAlign - 1) / kAlign);
  std::memcpy(scratch->data(), bytes.data(), bytes.size());
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(scratch->data()),
                             bytes.size());
}

bool FrameDecoder::Decode(absl::Span<const uint8_t> payload, DecodedFrame* out,
                          DecodeError* error) {
  *out = DecodedFrame();
  if (payload.empty())
    return Fail(fb::ErrorCode::kBadFrame, "empty frame", error);
  if (payload.size() > max_frame_bytes_) {
    return Fail(fb::ErrorCode::kFrameTooLarge, "frame too large", error);
  }
  payload = Aligned(payload, &frame_scratch_);
  flatbuffers::Verifier verifier(payload.data(), payload.size(), kFrameMaxDepth,
                                 kFrameMaxTables);
  if (!fb::VerifyFrameBuffer(verifier)) {
    return Fail(fb::ErrorCode::kBadFrame,
                "frame failed verification (not an ERG1 FlatBuffer)", error);
  }
  const fb::Frame* frame = fb::GetFrame(payload.data());
  const fb::Body type = frame->body_type();
  if (type == fb::Body::NONE || type > fb::Body::MAX) {
    return Fail(fb::ErrorCode::kUnsupportedFrame, "unknown frame type", error);
  }
  if (frame->body() == nullptr) {
    return Fail(fb::ErrorCode::kBadFrame, "frame has no body", error);
  }
  out->type = type;
  out->frame = frame;

  const flatbuffers::Vector<uint8_t>* message = nullptr;
  if (type == fb::Body::Telemetry) {
    message = frame->body_as_Telemetry()->message();
  } else if (type == fb::Body::Deliver) {
    message = frame->body_as_Deliver()->message();
  } else {
    return true;
  }
  if (message == nullptr || message->size() == 0) {
    *out = DecodedFrame();
    return Fail(fb::ErrorCode::kBadFrame, "frame carries no message", error);
  }
  absl::Span<const uint8_t> bytes = Aligned(
      absl::MakeConstSpan(message->data(), message->size()), &message_scratch_);
  absl::StatusOr<MessageView> view =
      MessageView::Verify(bytes, message_limits_);
  if (!view.ok()) {
    *out = DecodedFrame();
    return Fail(fb::ErrorCode::kBadFrame, "nested message failed verification",
                error);
  }
  out->message = *view;
  return true;
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> FrameEncoder::AlignedBytes(
    absl::Span<const uint8_t> bytes) {
  fbb_.ForceVectorAlignment(bytes.size(), sizeof(uint8_t), kAlign);
  return fbb_.CreateVector(bytes.data(), bytes.size());
}

template <typename T>
void FrameEncoder::Finish(flatbuffers::Offset<T> body, fb::Body type,
                          std::string* out) {
  fbb_.Finish(fb::CreateFrame(fbb_, type, body.Union()), fb::FrameIdentifier());
  const size_t size = fbb_.GetSize();
  // Pad so that prefix + payload is a multiple of 8 (see class comment).
  const size_t padding =
      (kAlign - (kFrameHeaderBytes + size) % kAlign) % kAlign;
  const size_t start = out->size();
  out->resize(start + kFrameHeaderBytes + size + padding);
  char* p = &(*out)[start];
  StoreLittleEndian32(static_cast<uint32_t>(size + padding), p);
  std::memcpy(p + kFrameHeaderBytes, fbb_.GetBufferPointer(), size);
  std::memset(p + kFrameHeaderBytes + size, 0, padding);
  fbb_.Clear();
}

void FrameEncoder::Hello(absl::string_view device_id,
                         absl::string_view module_id, std::string* out,
                         uint32_t protocol_version,
                         absl::string_view sas_token) {
  auto device = fbb_.CreateString(device_id.data(), device_id.size());
  flatbuffers::Offset<flatbuffers::String> module;
  if (!module_id.empty()) {
    module = fbb_.CreateString(module_id.data(), module_id.size());
  }
  flatbuffers::Offset<flatbuffers::String> token;
  if (!sas_token.empty()) {
    token = fbb_.CreateString(sas_token.data(), sas_token.size());
  }
  Finish(fb::CreateHello(fbb_, protocol_version, device, module, token),
         fb::Body::Hello, out);
}

void FrameEncoder::HelloAck(uint32_t max_frame_bytes, std::string* out) {
  Finish(fb::CreateHelloAck(fbb_, kProtocolVersion, max_frame_bytes),
         fb::Body::HelloAck, out);
}

void FrameEncoder::Subscribe(absl::Span<const absl::string_view> inputs,
                             std::string* out) {
  strings_.clear();
  for (absl::string_view input : inputs) {
    strings_.push_back(fbb_.CreateString(input.data(), input.size()));
  }
  Finish(fb::CreateSubscribe(fbb_, fbb_.CreateVector(strings_)),
         fb::Body::Subscribe, out);
}

void FrameEncoder::Telemetry(absl::string_view output,
                             absl::Span<const uint8_t> message,
                             uint64_t sequence, std::string* out) {
  auto bytes = AlignedBytes(message);
  flatbuffers::Offset<flatbuffers::String> name;
  if (!output.empty()) name = fbb_.CreateString(output.data(), output.size());
  Finish(fb::CreateTelemetry(fbb_, name, bytes, sequence), fb::Body::Telemetry,
         out);
}

void FrameEncoder::Deliver(uint64_t delivery_id, absl::string_view input,
                           absl::Span<const uint8_t> message,
                           std::string* out) {
  auto bytes = AlignedBytes(message);
  auto name = fbb_.CreateString(input.data(), input.size());
  Finish(fb::CreateDeliver(fbb_, delivery_id, name, bytes), fb::Body::Deliver,
         out);
}

void FrameEncoder::Ack(uint64_t delivery_id, std::string* out) {
  Finish(fb::CreateAck(fbb_, delivery_id), fb::Body::Ack, out);
}

void FrameEncoder::Nack(uint64_t delivery_id, bool retry, std::string* out) {
  Finish(fb::CreateNack(fbb_, delivery_id, retry), fb::Body::Nack, out);
}

void FrameEncoder::Error(fb::ErrorCode code, absl::string_view text,
                         std::string* out) {
  auto t = fbb_.CreateString(text.data(), text.size());
  Finish(fb::CreateError(fbb_, code, t), fb::Body::Error, out);
}

void FrameEncoder::TelemetryAck(uint64_t sequence, fb::ErrorCode code,
                                std::string* out) {
  Finish(fb::CreateTelemetryAck(fbb_, sequence, code), fb::Body::TelemetryAck,
         out);
}

void FrameEncoder::AppendRaw(absl::Span<const uint8_t> payload,
                             std::string* out) {
  const size_t start = out->size();
  out->resize(start + kFrameHeaderBytes + payload.size());
  StoreLittleEndian32(static_cast<uint32_t>(payload.size()), &(*out)[start]);
  if (!payload.empty()) {
    std::memcpy(&(*out)[start + kFrameHeaderBytes], payload.data(),
                payload.size());
  }
}

}  // namespace gateway
}  // namespace edgeroute
