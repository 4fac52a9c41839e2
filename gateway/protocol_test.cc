#include "gateway/protocol.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace {

absl::Span<const uint8_t> AsBytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()),
                             s.size());
}

// Holds bytes at a chosen offset from an 8-byte boundary.
class Placed {
 public:
  Placed(absl::Span<const uint8_t> bytes, size_t misalign)
      : storage_((bytes.size() + misalign + 7) / 8 + 1) {
    uint8_t* base = reinterpret_cast<uint8_t*>(storage_.data()) + misalign;
    if (!bytes.empty()) std::memcpy(base, bytes.data(), bytes.size());
    span_ = absl::MakeConstSpan(base, bytes.size());
  }
  absl::Span<const uint8_t> span() const { return span_; }

 private:
  std::vector<uint64_t> storage_;
  absl::Span<const uint8_t> span_;
};

std::string MakeMessage(absl::string_view body) {
  MessageBuilder builder;
  builder.SetBody(body);
  builder.AddProperty("level", "critical");
  builder.AddSystemProperty("contentType", "application/json");
  absl::Span<const uint8_t> bytes = builder.Finish();
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Splits exactly one frame out of `stream` and returns its payload.
absl::Span<const uint8_t> OnlyPayload(const std::string& stream) {
  absl::Span<const uint8_t> payload;
  size_t consumed = 0;
  EXPECT_EQ(
      SplitFrame(AsBytes(stream), kDefaultMaxFrameBytes, &payload, &consumed),
      SplitResult::kFrame);
  EXPECT_EQ(consumed, stream.size());
  return payload;
}

TEST(ProtocolTest, EveryFrameIsPaddedToEightBytes) {
  FrameEncoder encoder;
  std::string out;
  for (int i = 0; i < 20; ++i) {
    out.clear();
    encoder.Hello(std::string(i, 'd'), std::string(i % 3, 'm'), &out);
    EXPECT_EQ(out.size() % 8, 0u) << i;
    out.clear();
    encoder.Telemetry("out", AsBytes(MakeMessage(std::string(i, 'x'))), i,
                      &out);
    EXPECT_EQ(out.size() % 8, 0u) << i;
  }
}

TEST(ProtocolTest, HelloRoundTrip) {
  FrameEncoder encoder;
  std::string out;
  encoder.Hello("device-1", "module-a", &out, 7);
  Placed placed(OnlyPayload(out), 0);
  FrameDecoder decoder;
  DecodedFrame frame;
  DecodeError error;
  ASSERT_TRUE(decoder.Decode(placed.span(), &frame, &error)) << error.reason;
  ASSERT_EQ(frame.type, fb::Body::Hello);
  EXPECT_EQ(frame.hello()->protocol_version(), 7u);
  EXPECT_EQ(FieldView(frame.hello()->device_id()), "device-1");
  EXPECT_EQ(FieldView(frame.hello()->module_id()), "module-a");
  EXPECT_TRUE(frame.message.empty());
}

TEST(ProtocolTest, TelemetryAndDeliverCarryAVerifiedMessage) {
  const std::string message = MakeMessage("{\"temperature\":21}");
  FrameEncoder encoder;
  std::string stream;
  encoder.Telemetry("output1", AsBytes(message), 42, &stream);
  encoder.Deliver(9, "input1", AsBytes(message), &stream);

  // Both frames in one stream, read at offset 4 mod 8 like the event loop.
  Placed placed(AsBytes(stream), 4);
  absl::Span<const uint8_t> rest = placed.span();
  FrameDecoder decoder;
  DecodedFrame frame;
  DecodeError error;
  absl::Span<const uint8_t> payload;
  size_t consumed;

  ASSERT_EQ(SplitFrame(rest, 1 << 20, &payload, &consumed),
            SplitResult::kFrame);
  ASSERT_TRUE(decoder.Decode(payload, &frame, &error)) << error.reason;
  ASSERT_EQ(frame.type, fb::Body::Telemetry);
  EXPECT_EQ(FieldView(frame.telemetry()->output()), "output1");
  EXPECT_EQ(frame.telemetry()->sequence(), 42u);
  EXPECT_EQ(frame.message.body(), "{\"temperature\":21}");
  EXPECT_EQ(frame.message.FindProperty("LEVEL").value, "critical");
  // Aligned input: the nested message is read in place, not copied.
  EXPECT_GE(frame.message.bytes().data(), payload.data());
  EXPECT_LT(frame.message.bytes().data(), payload.data() + payload.size());

  rest = rest.subspan(consumed);
  ASSERT_EQ(SplitFrame(rest, 1 << 20, &payload, &consumed),
            SplitResult::kFrame);
  ASSERT_TRUE(decoder.Decode(payload, &frame, &error)) << error.reason;
  ASSERT_EQ(frame.type, fb::Body::Deliver);
  EXPECT_EQ(frame.deliver()->delivery_id(), 9u);
  EXPECT_EQ(FieldView(frame.deliver()->input()), "input1");
  EXPECT_EQ(frame.message.body(), "{\"temperature\":21}");
  EXPECT_EQ(consumed, rest.size());
}

TEST(ProtocolTest, UnalignedPayloadIsCopiedAndStillDecodes) {
  const std::string message = MakeMessage("body");
  FrameEncoder encoder;
  std::string out;
  encoder.Telemetry("o", AsBytes(message), 1, &out);
  for (size_t misalign = 1; misalign < 8; ++misalign) {
    Placed placed(OnlyPayload(out), misalign);
    FrameDecoder decoder;
    DecodedFrame frame;
    DecodeError error;
    ASSERT_TRUE(decoder.Decode(placed.span(), &frame, &error))
        << misalign << ": " << error.reason;
    EXPECT_EQ(frame.message.body(), "body");
  }
}

TEST(ProtocolTest, SmallFramesRoundTrip) {
  FrameEncoder encoder;
  FrameDecoder decoder;
  DecodedFrame frame;
  DecodeError error;
  std::string out;

  const absl::string_view inputs[] = {"input1", "$upstream"};
  encoder.Subscribe(inputs, &out);
  {
    Placed p(OnlyPayload(out), 0);
    ASSERT_TRUE(decoder.Decode(p.span(), &frame, &error));
    ASSERT_EQ(frame.type, fb::Body::Subscribe);
    ASSERT_EQ(frame.subscribe()->inputs()->size(), 2u);
    EXPECT_EQ(FieldView(frame.subscribe()->inputs()->Get(1)), "$upstream");
  }
  out.clear();
  encoder.Nack(77, true, &out);
  {
    Placed p(OnlyPayload(out), 0);
    ASSERT_TRUE(decoder.Decode(p.span(), &frame, &error));
    ASSERT_EQ(frame.type, fb::Body::Nack);
    EXPECT_EQ(frame.nack()->delivery_id(), 77u);
    EXPECT_TRUE(frame.nack()->retry());
  }
  out.clear();
  encoder.Error(fb::ErrorCode::kSlowConsumer, "too slow", &out);
  {
    Placed p(OnlyPayload(out), 0);
    ASSERT_TRUE(decoder.Decode(p.span(), &frame, &error));
    ASSERT_EQ(frame.type, fb::Body::Error);
    EXPECT_EQ(frame.error()->code(), fb::ErrorCode::kSlowConsumer);
    EXPECT_EQ(FieldView(frame.error()->text()), "too slow");
  }
  out.clear();
  encoder.TelemetryAck(5, fb::ErrorCode::kOverloaded, &out);
  {
    Placed p(OnlyPayload(out), 0);
    ASSERT_TRUE(decoder.Decode(p.span(), &frame, &error));
    ASSERT_EQ(frame.type, fb::Body::TelemetryAck);
    EXPECT_EQ(frame.telemetry_ack()->sequence(), 5u);
    EXPECT_EQ(frame.telemetry_ack()->code(), fb::ErrorCode::kOverloaded);
  }
  EXPECT_STREQ(ErrorCodeName(fb::ErrorCode::kSlowConsumer), "SlowConsumer");
  EXPECT_STREQ(FrameTypeName(fb::Body::Deliver), "Deliver");
}

TEST(ProtocolTest, TruncatedStreamNeedsMore) {
  FrameEncoder encoder;
  std::string out;
  encoder.Ack(3, &out);
  absl::Span<const uint8_t> payload;
  size_t consumed = 123;
  for (size_t n = 0; n < out.size(); ++n) {
    const SplitResult r =
        SplitFrame(AsBytes(out).subspan(0, n), 1 << 20, &payload, &consumed);
    EXPECT_EQ(r, SplitResult::kNeedMore) << n;
    EXPECT_EQ(consumed, n < kFrameHeaderBytes ? 0u : out.size()) << n;
  }
}

TEST(ProtocolTest, TruncatedPayloadFailsVerification) {
  FrameEncoder encoder;
  std::string out;
  encoder.Telemetry("o", AsBytes(MakeMessage("some body")), 1, &out);
  absl::Span<const uint8_t> full = OnlyPayload(out);
  FrameDecoder decoder;
  DecodedFrame frame;
  DecodeError error;
  // Cut anywhere before the end of the FlatBuffer (the 4 bytes of padding
  // at most are not part of it).
  for (size_t n = 1; n + 8 < full.size(); ++n) {
    Placed p(full.subspan(0, n), 0);
    EXPECT_FALSE(decoder.Decode(p.span(), &frame, &error)) << n;
    EXPECT_EQ(error.code, fb::ErrorCode::kBadFrame) << n;
    EXPECT_EQ(frame.type, fb::Body::NONE);
  }
}

TEST(ProtocolTest, OversizedAndEmptyFramesAreRejectedFromThePrefix) {
  std::string out;
  const std::string big(1000, 'x');
  FrameEncoder::AppendRaw(AsBytes(big), &out);
  absl::Span<const uint8_t> payload;
  size_t consumed;
  // Only the prefix is needed to refuse it.
  EXPECT_EQ(SplitFrame(AsBytes(out).subspan(0, 4), 999, &payload, &consumed),
            SplitResult::kTooLarge);
  EXPECT_EQ(SplitFrame(AsBytes(out), 1000, &payload, &consumed),
            SplitResult::kFrame);
  std::string empty;
  FrameEncoder::AppendRaw({}, &empty);
  EXPECT_EQ(SplitFrame(AsBytes(empty), 1000, &payload, &consumed),
            SplitResult::kEmpty);

  FrameDecoder small(16);
  FrameEncoder encoder;
  std::string hello;
  encoder.Hello("a-device-with-a-long-name", "", &hello);
  Placed p(OnlyPayload(hello), 0);
  DecodedFrame frame;
  DecodeError error;
  EXPECT_FALSE(small.Decode(p.span(), &frame, &error));
  EXPECT_EQ(error.code, fb::ErrorCode::kFrameTooLarge);
}

TEST(ProtocolTest, WrongIdentifierIsRejected) {
  FrameEncoder encoder;
  std::string out;
  encoder.Ack(1, &out);
  std::string payload(reinterpret_cast<const char*>(OnlyPayload(out).data()),
                      OnlyPayload(out).size());
  ASSERT_EQ(payload.substr(4, 4), "ERG1");
  payload[7] = '2';
  Placed p(AsBytes(payload), 0);
  FrameDecoder decoder;
  DecodedFrame frame;
  DecodeError error;
  EXPECT_FALSE(decoder.Decode(p.span(), &frame, &error));
  EXPECT_EQ(error.code, fb::ErrorCode::kBadFrame);

  // A message buffer (identifier ERM1) is not a frame.
  Placed m(AsBytes(MakeMessage("x")), 0);
  EXPECT_FALSE(decoder.Decode(m.span(), &frame, &error));
}

TEST(ProtocolTest, CorruptNestedMessageIsRejected) {
  std::string message = MakeMessage("payload");
  ASSERT_EQ(message.substr(4, 4), "ERM1");
  message[4] = 'X';  // break the nested file identifier
  FrameEncoder encoder;
  std::string out;
  encoder.Deliver(1, "in", AsBytes(message), &out);
  Placed p(OnlyPayload(out), 0);
  FrameDecoder decoder;
  DecodedFrame frame;
  DecodeError error;
  EXPECT_FALSE(decoder.Decode(p.span(), &frame, &error));
  EXPECT_EQ(error.code, fb::ErrorCode::kBadFrame);
  EXPECT_NE(error.reason.find("nested"), absl::string_view::npos);

  // A Telemetry without any message bytes.
  out.clear();
  encoder.Telemetry("o", {}, 0, &out);
  Placed q(OnlyPayload(out), 0);
  EXPECT_FALSE(decoder.Decode(q.span(), &frame, &error));
  EXPECT_EQ(error.code, fb::ErrorCode::kBadFrame);
}

TEST(ProtocolTest, UnknownUnionMemberIsUnsupported) {
  // A frame whose union type is beyond this build's last member.
  flatbuffers::FlatBufferBuilder fbb;
  auto ack = fb::CreateAck(fbb, 1);
  fbb.Finish(fb::CreateFrame(fbb, static_cast<fb::Body>(200), ack.Union()),
             fb::FrameIdentifier());
  Placed p(absl::MakeConstSpan(fbb.GetBufferPointer(), fbb.GetSize()), 0);
  FrameDecoder decoder;
  DecodedFrame frame;
  DecodeError error;
  EXPECT_FALSE(decoder.Decode(p.span(), &frame, &error));
  EXPECT_EQ(error.code, fb::ErrorCode::kUnsupportedFrame);
}

TEST(ProtocolTest, GarbageNeverCrashesAndIsAlmostAlwaysRejected) {
  std::mt19937_64 rng(12345);
  FrameDecoder decoder;
  DecodedFrame frame;
  DecodeError error;
  FrameEncoder encoder;
  std::string valid;
  encoder.Telemetry("o", AsBytes(MakeMessage("garbage test body")), 3, &valid);
  const absl::Span<const uint8_t> base = OnlyPayload(valid);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes;
    if (i % 2 == 0) {
      // Pure noise.
      bytes.resize(1 + rng() % 300);
      for (char& c : bytes) c = static_cast<char>(rng());
    } else {
      // A valid frame with a few bytes flipped.
      bytes.assign(reinterpret_cast<const char*>(base.data()), base.size());
      for (int k = 0; k < 3; ++k) {
        bytes[rng() % bytes.size()] = static_cast<char>(rng());
      }
    }
    Placed p(AsBytes(bytes), rng() % 8);
    if (decoder.Decode(p.span(), &frame, &error)) {
      ++accepted;
      // Whatever was accepted must be safe to read.
      if (!frame.message.empty()) (void)frame.message.body().size();
    } else {
      EXPECT_NE(error.code, fb::ErrorCode::kUnknown);
      EXPECT_FALSE(error.reason.empty());
    }
  }
  // Flips in padding or unused bytes may leave a frame valid; noise must not.
  EXPECT_LT(accepted, 10000);
}

}  // namespace
}  // namespace gateway
}  // namespace edgeroute
