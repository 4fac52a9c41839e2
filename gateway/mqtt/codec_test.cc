#include "gateway/mqtt/codec.h"

#include <deque>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {
namespace {

constexpr size_t kLimit = 1 << 20;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()),
                             s.size());
}

std::string Hex(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

struct Decoded {
  DecodeStatus status;
  Packet packet;
  size_t consumed = 0;
  DecodeError error;
};

Decoded Decode(const std::string& bytes, size_t limit = kLimit) {
  Decoded d;
  d.status =
      DecodePacket(Bytes(bytes), limit, &d.packet, &d.consumed, &d.error);
  return d;
}

// Decodes `bytes`, expecting a malformed-packet error at `offset` whose
// text contains `what`.
void ExpectError(const std::string& bytes, size_t offset, const char* what,
                 DecodeErrorCode code = DecodeErrorCode::kMalformed) {
  const Decoded d = Decode(bytes);
  ASSERT_EQ(d.status, DecodeStatus::kError) << what;
  EXPECT_EQ(d.error.code, code) << d.error.what;
  EXPECT_EQ(d.error.offset, offset) << d.error.what;
  EXPECT_NE(std::string(d.error.what).find(what), std::string::npos)
      << "got: " << d.error.what;
}

// Every proper prefix of a packet needs more; the whole packet decodes and
// re-encodes to the same bytes.
Packet RoundTrip(const std::string& bytes) {
  for (size_t n = 0; n < bytes.size(); ++n) {
    const Decoded d = Decode(bytes.substr(0, n));
    EXPECT_EQ(d.status, DecodeStatus::kNeedMore) << "prefix " << n;
  }
  // Decoded packets view into their input: keep it for the whole test.
  static std::deque<std::string>* inputs = new std::deque<std::string>;
  inputs->push_back(bytes + "trailing");
  const Decoded d = Decode(inputs->back());
  EXPECT_EQ(d.status, DecodeStatus::kPacket) << d.error.what;
  EXPECT_EQ(d.consumed, bytes.size());
  std::string again;
  EncodePacket(d.packet, &again);
  EXPECT_EQ(again, bytes);
  return d.packet;
}

Connect SampleConnect() {
  Connect c;
  c.client_id = "edge-gw/sensor";
  c.clean_session = false;
  c.keep_alive_secs = 240;
  c.has_username = true;
  c.username = "hub.example/edge-gw/sensor/?api-version=2021-04-12";
  c.has_password = true;
  c.password = "SharedAccessSignature sr=x&sig=y&se=1";
  return c;
}

TEST(CodecTest, ConnectRoundTrip) {
  std::string bytes;
  Connect c = SampleConnect();
  c.has_will = true;
  c.will_qos = 1;
  c.will_retain = true;
  c.will_topic = "devices/edge-gw/modules/sensor/messages/events/";
  const std::string will_message("gone\0!", 6);
  c.will_message = will_message;
  EncodeConnect(c, &bytes);
  const Packet p = RoundTrip(bytes);
  ASSERT_EQ(p.type, PacketType::kConnect);
  EXPECT_EQ(p.connect.protocol_name, "MQTT");
  EXPECT_EQ(p.connect.protocol_level, 4);
  EXPECT_FALSE(p.connect.clean_session);
  EXPECT_EQ(p.connect.keep_alive_secs, 240);
  EXPECT_EQ(p.connect.client_id, "edge-gw/sensor");
  EXPECT_TRUE(p.connect.has_will);
  EXPECT_EQ(p.connect.will_qos, 1);
  EXPECT_TRUE(p.connect.will_retain);
  EXPECT_EQ(p.connect.will_message, std::string("gone\0!", 6));
  EXPECT_EQ(p.connect.username, c.username);
  EXPECT_EQ(p.connect.password, c.password);
}

TEST(CodecTest, ConnectMinimal) {
  Connect c;
  c.client_id = "";
  std::string bytes;
  EncodeConnect(c, &bytes);
  const Packet p = RoundTrip(bytes);
  EXPECT_TRUE(p.connect.clean_session);
  EXPECT_FALSE(p.connect.has_username);
  EXPECT_FALSE(p.connect.has_password);
  EXPECT_EQ(p.connect.client_id, "");
}

TEST(CodecTest, ConnackRoundTrip) {
  std::string bytes;
  EncodeConnack(true, ConnectCode::kAccepted, &bytes);
  EXPECT_EQ(bytes, Hex({0x20, 2, 1, 0}));
  Packet p = RoundTrip(bytes);
  EXPECT_TRUE(p.connack.session_present);
  bytes.clear();
  EncodeConnack(false, ConnectCode::kNotAuthorized, &bytes);
  p = RoundTrip(bytes);
  EXPECT_EQ(p.connack.code, ConnectCode::kNotAuthorized);
  ExpectError(Hex({0x20, 2, 2, 0}), 2, "reserved bits");
  ExpectError(Hex({0x20, 2, 0, 6}), 3, "above 5");
  ExpectError(Hex({0x20, 2, 1, 5}), 2, "session present");
  ExpectError(Hex({0x20, 3, 0, 0, 0}), 4, "bytes after");
}

TEST(CodecTest, PublishRoundTrip) {
  for (uint8_t qos : {0, 1, 2}) {
    Publish pub;
    pub.qos = qos;
    pub.dup = qos > 0;
    pub.retain = true;
    pub.topic = "devices/d/messages/events/a=1&%24.mid=7";
    pub.packet_id = qos > 0 ? 513 : 0;
    const std::string payload(300, 'x');  // two-byte remaining length
    pub.payload = payload;
    std::string bytes;
    EncodePublish(pub, &bytes);
    const Packet p = RoundTrip(bytes);
    ASSERT_EQ(p.type, PacketType::kPublish);
    EXPECT_EQ(p.publish.qos, qos);
    EXPECT_EQ(p.publish.dup, qos > 0);
    EXPECT_TRUE(p.publish.retain);
    EXPECT_EQ(p.publish.topic, pub.topic);
    EXPECT_EQ(p.publish.packet_id, pub.packet_id);
    EXPECT_EQ(p.packet_id, pub.packet_id);
    EXPECT_EQ(p.publish.payload, pub.payload);
  }
}

TEST(CodecTest, PublishEmptyPayload) {
  Publish pub;
  pub.topic = "t";
  std::string bytes;
  EncodePublish(pub, &bytes);
  EXPECT_EQ(bytes, Hex({0x30, 3, 0, 1, 't'}));
  EXPECT_EQ(RoundTrip(bytes).publish.payload, "");
}

TEST(CodecTest, PacketIdPacketsRoundTrip) {
  for (PacketType type :
       {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel,
        PacketType::kPubcomp, PacketType::kUnsuback}) {
    std::string bytes;
    EncodePacketId(type, 0xBEEF, &bytes);
    const Packet p = RoundTrip(bytes);
    EXPECT_EQ(p.type, type);
    EXPECT_EQ(p.packet_id, 0xBEEF);
    // Packet identifier 0.
    std::string zero = bytes;
    zero[2] = zero[3] = 0;
    ExpectError(zero, 2, "packet identifier 0");
    // Too short, too long.
    std::string shorter = bytes.substr(0, 3);
    shorter[1] = 1;
    ExpectError(shorter, 2, "inside the packet identifier");
    std::string longer = bytes + "x";
    longer[1] = 3;
    ExpectError(longer, 4, "bytes after");
  }
  EXPECT_EQ(static_cast<uint8_t>([] {
              std::string b;
              EncodePacketId(PacketType::kPubrel, 1, &b);
              return b;
            }()[0]),
            0x62);
}

TEST(CodecTest, SubscribeRoundTrip) {
  const TopicRequest requests[] = {
      {"devices/d/modules/m/inputs/#", 1},
      {"$iothub/twin/res/#", 0},
      {"+/a/+", 2},
  };
  std::string bytes;
  EncodeSubscribe(7, requests, &bytes);
  const Packet p = RoundTrip(bytes);
  ASSERT_EQ(p.type, PacketType::kSubscribe);
  EXPECT_EQ(p.packet_id, 7);
  EXPECT_EQ(p.filters.count, 3u);
  TopicFilterReader reader(p.filters);
  TopicRequest r;
  for (const TopicRequest& want : requests) {
    ASSERT_TRUE(reader.Next(&r));
    EXPECT_EQ(r.filter, want.filter);
    EXPECT_EQ(r.qos, want.qos);
  }
  EXPECT_FALSE(reader.Next(&r));
}

TEST(CodecTest, UnsubscribeRoundTrip) {
  const absl::string_view filters[] = {"a/b", "$iothub/methods/POST/#"};
  std::string bytes;
  EncodeUnsubscribe(9, filters, &bytes);
  const Packet p = RoundTrip(bytes);
  ASSERT_EQ(p.type, PacketType::kUnsubscribe);
  EXPECT_EQ(p.packet_id, 9);
  TopicFilterReader reader(p.filters);
  TopicRequest r;
  ASSERT_TRUE(reader.Next(&r));
  EXPECT_EQ(r.filter, "a/b");
  ASSERT_TRUE(reader.Next(&r));
  EXPECT_EQ(r.filter, "$iothub/methods/POST/#");
  EXPECT_FALSE(reader.Next(&r));
}

TEST(CodecTest, SubackRoundTrip) {
  const uint8_t codes[] = {0, 1, 2, kSubackFailure};
  std::string bytes;
  EncodeSuback(3, codes, &bytes);
  const Packet p = RoundTrip(bytes);
  EXPECT_EQ(p.suback_codes, std::string("\0\1\2\x80", 4));
  ExpectError(Hex({0x90, 3, 0, 3, 3}), 4, "return code");
  ExpectError(Hex({0x90, 2, 0, 3}), 4, "without return codes");
}

TEST(CodecTest, EmptyPacketsRoundTrip) {
  for (PacketType type :
       {PacketType::kPingreq, PacketType::kPingresp, PacketType::kDisconnect}) {
    std::string bytes;
    EncodeEmpty(type, &bytes);
    EXPECT_EQ(bytes.size(), 2u);
    EXPECT_EQ(RoundTrip(bytes).type, type);
    std::string longer = bytes + "x";
    longer[1] = 1;
    ExpectError(longer, 2, "not 0");
  }
}

TEST(CodecTest, RemainingLength) {
  // The boundaries of each encoding length.
  for (size_t rl : {3u, 127u, 128u, 16383u, 16384u, 2097151u, 2097152u}) {
    Publish pub;
    pub.topic = "t";
    const std::string payload(rl - 3, 'p');
    pub.payload = payload;
    std::string bytes;
    EncodePublish(pub, &bytes);
    EXPECT_EQ(bytes.size(), 1 + RemainingLengthBytes(rl) + rl);
    const Decoded d = Decode(bytes, 4 << 20);
    ASSERT_EQ(d.status, DecodeStatus::kPacket) << rl << d.error.what;
    EXPECT_EQ(d.consumed, bytes.size());
    EXPECT_EQ(d.packet.publish.payload.size(), rl - 3);
  }
  EXPECT_EQ(RemainingLengthBytes(127), 1u);
  EXPECT_EQ(RemainingLengthBytes(128), 2u);
  EXPECT_EQ(RemainingLengthBytes(kMaxRemainingLength), 4u);
}

TEST(CodecTest, RemainingLengthLongerThanFourBytes) {
  ExpectError(Hex({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), 4,
              "longer than 4 bytes");
  // Refused as soon as the fifth byte would be needed.
  ExpectError(Hex({0x30, 0x80, 0x80, 0x80, 0x80}), 4, "longer than 4 bytes");
}

TEST(CodecTest, RemainingLengthNotMinimal) {
  ExpectError(Hex({0xC0, 0x80, 0x00}), 2, "minimally");
  ExpectError(Hex({0x30, 0x83, 0x80, 0x00}), 3, "minimally");
}

TEST(CodecTest, RemainingLengthPastThePacketFields) {
  // A topic length that runs past the remaining length.
  ExpectError(Hex({0x30, 4, 0, 9, 'a', 'b'}), 2, "inside the topic name");
  // SUBSCRIBE whose filter runs past the end.
  ExpectError(Hex({0x82, 6, 0, 1, 0, 5, 'a', 'b'}), 4, "inside a topic filter");
  // CONNECT fields past the end.
  Connect c = SampleConnect();
  std::string bytes;
  EncodeConnect(c, &bytes);
  bytes[1] = static_cast<char>(bytes[1] - 5);
  bytes.resize(bytes.size() - 5);
  const Decoded d = Decode(bytes);
  ASSERT_EQ(d.status, DecodeStatus::kError);
  EXPECT_NE(std::string(d.error.what).find("inside the password"),
            std::string::npos);
}

TEST(CodecTest, PacketLargerThanLimitRefusedEarly) {
  Publish pub;
  pub.topic = "t";
  const std::string payload(1000, 'p');
  pub.payload = payload;
  std::string bytes;
  EncodePublish(pub, &bytes);
  // Only the fixed header has arrived: already refused.
  Decoded d;
  d.status = DecodePacket(Bytes(bytes.substr(0, 3)), 500, &d.packet,
                          &d.consumed, &d.error);
  EXPECT_EQ(d.status, DecodeStatus::kError);
  EXPECT_EQ(d.error.code, DecodeErrorCode::kPacketTooLarge);
  EXPECT_EQ(d.error.offset, 1u);
  // Exactly at the limit is fine.
  d.status = DecodePacket(Bytes(bytes), bytes.size(), &d.packet, &d.consumed,
                          &d.error);
  EXPECT_EQ(d.status, DecodeStatus::kPacket);
}

TEST(CodecTest, ReservedPacketTypes) {
  ExpectError(Hex({0x00, 0}), 0, "reserved packet type");
  ExpectError(Hex({0xF0, 0}), 0, "reserved packet type");
}

TEST(CodecTest, ReservedFlags) {
  ExpectError(Hex({0xC1, 0}), 0, "reserved fixed-header flags");   // PINGREQ
  ExpectError(Hex({0x80, 5, 0, 1, 0, 1, 'a', 0}), 0, "reserved");  // SUBSCRIBE
}

TEST(CodecTest, ReservedFlagsEveryType) {
  for (int type = 1; type <= 14; ++type) {
    if (type == 3) continue;  // PUBLISH has its own flags
    const int required = (type == 6 || type == 8 || type == 10) ? 2 : 0;
    for (int flags = 0; flags < 16; ++flags) {
      if (flags == required) continue;
      const Decoded d = Decode(Hex({type << 4 | flags, 0}));
      ASSERT_EQ(d.status, DecodeStatus::kError) << type << " " << flags;
      EXPECT_EQ(d.error.offset, 0u);
    }
  }
}

TEST(CodecTest, PublishQos3AndDupOnQos0) {
  ExpectError(Hex({0x36, 3, 0, 1, 't'}), 0, "QoS 3");
  ExpectError(Hex({0x38, 3, 0, 1, 't'}), 0, "DUP");
}

TEST(CodecTest, PublishPacketIdZero) {
  ExpectError(Hex({0x32, 5, 0, 1, 't', 0, 0}), 5, "packet identifier 0");
  ExpectError(Hex({0x82, 6, 0, 0, 0, 1, 'a', 0}), 2, "packet identifier 0");
  ExpectError(Hex({0xA2, 5, 0, 0, 0, 1, 'a'}), 2, "packet identifier 0");
}

TEST(CodecTest, WildcardInPublishTopic) {
  ExpectError(Hex({0x30, 5, 0, 3, 'a', '/', '#'}), 6, "wildcard");
  ExpectError(Hex({0x30, 5, 0, 3, '+', '/', 'a'}), 4, "wildcard");
  ExpectError(Hex({0x30, 2, 0, 0}), 2, "empty topic");
}

TEST(CodecTest, BadUtf8InTopic) {
  // Overlong '/', a surrogate, U+0000, a lone continuation byte, 5-byte
  // lead, above U+10FFFF, and a truncated sequence.
  const std::vector<std::string> bad = {
      Hex({0xC0, 0xAF}),
      Hex({0xED, 0xA0, 0x80}),
      Hex({0x00}),
      Hex({0x80}),
      Hex({0xF8, 0x88, 0x80, 0x80, 0x80}),
      Hex({0xF4, 0x90, 0x80, 0x80}),
      Hex({0xE2, 0x82}),
      Hex({0xE0, 0x80, 0xAF}),        // overlong 3-byte
      Hex({0xF0, 0x80, 0x80, 0xAF}),  // overlong 4-byte
  };
  for (const std::string& seq : bad) {
    const std::string topic = "ab" + seq;
    std::string bytes = Hex({0x30, static_cast<int>(2 + topic.size()), 0,
                             static_cast<int>(topic.size())}) +
                        topic;
    ExpectError(bytes, 6, "not valid UTF-8");
  }
  // Valid: 2-, 3- and 4-byte forms, U+FFFF, U+10FFFF.
  for (const std::string& seq :
       {Hex({0xC3, 0xA9}), Hex({0xE2, 0x82, 0xAC}), Hex({0xEF, 0xBF, 0xBF}),
        Hex({0xF0, 0x9F, 0x98, 0x80}), Hex({0xF4, 0x8F, 0xBF, 0xBF})}) {
    EXPECT_TRUE(IsMqttUtf8(seq));
    EXPECT_TRUE(IsMqttUtf8("abcdefghij" + seq + "klmnopqrstuvw"));
  }
  size_t at = 0;
  EXPECT_FALSE(IsMqttUtf8(std::string("0123456789abcdef\0", 17), &at));
  EXPECT_EQ(at, 16u);
}

TEST(CodecTest, BadUtf8InClientId) {
  Connect c;
  const std::string id = "dev" + Hex({0xED, 0xB0, 0x80});
  c.client_id = id;
  std::string bytes;
  EncodeConnect(c, &bytes);
  // Header 2 + name 6 + level 1 + flags 1 + keep-alive 2 + length 2 + "dev".
  ExpectError(bytes, 17, "client identifier is not valid UTF-8");
}

TEST(CodecTest, ConnectProtocolNameAndLevel) {
  Connect c;
  c.client_id = "d";
  c.protocol_level = 3;
  std::string bytes;
  EncodeConnect(c, &bytes);
  ExpectError(bytes, 8, "protocol level",
              DecodeErrorCode::kUnacceptableProtocolLevel);
  c.protocol_level = 5;
  bytes.clear();
  EncodeConnect(c, &bytes);
  ExpectError(bytes, 8, "protocol level",
              DecodeErrorCode::kUnacceptableProtocolLevel);
  c.protocol_name = "MQIsdp";
  c.protocol_level = 3;
  bytes.clear();
  EncodeConnect(c, &bytes);
  ExpectError(bytes, 2, "MQIsdp", DecodeErrorCode::kUnacceptableProtocolLevel);
  c.protocol_name = "MQTX";
  c.protocol_level = 4;
  bytes.clear();
  EncodeConnect(c, &bytes);
  ExpectError(bytes, 2, "protocol name");
}

TEST(CodecTest, ConnectFlagRules) {
  Connect c;
  c.client_id = "d";
  std::string good;
  EncodeConnect(c, &good);
  const size_t flags_at = 9;
  auto with_flags = [&](int flags) {
    std::string b = good;
    b[flags_at] = static_cast<char>(flags);
    return b;
  };
  ExpectError(with_flags(0x03), flags_at, "reserved bit");
  ExpectError(with_flags(0x02 | 0x08), flags_at, "without will");  // QoS 1
  ExpectError(with_flags(0x02 | 0x20), flags_at, "without will");  // retain
  ExpectError(with_flags(0x02 | 0x04 | 0x18), flags_at, "will QoS 3");
  ExpectError(with_flags(0x02 | 0x40), flags_at, "password without user");
  // Trailing bytes after the last field.
  std::string longer = good + "x";
  longer[1] = static_cast<char>(longer[1] + 1);
  ExpectError(longer, good.size(), "bytes after the last CONNECT field");
}

TEST(CodecTest, ConnectWillTopicRules) {
  Connect c;
  c.client_id = "d";
  c.has_will = true;
  c.will_topic = "a/#";
  std::string bytes;
  EncodeConnect(c, &bytes);
  ExpectError(bytes, 15, "will topic");
}

TEST(CodecTest, SubscribeRules) {
  // No filter at all.
  ExpectError(Hex({0x82, 2, 0, 1}), 4, "no topic filter");
  ExpectError(Hex({0xA2, 2, 0, 1}), 4, "no topic filter");
  // Requested QoS 3, and reserved bits in the QoS byte.
  ExpectError(Hex({0x82, 6, 0, 1, 0, 1, 'a', 3}), 7, "QoS above 2");
  ExpectError(Hex({0x82, 6, 0, 1, 0, 1, 'a', 0x41}), 7, "QoS above 2");
  // Misplaced wildcards.
  for (const char* f : {"a/#/b", "a#", "a+/b", "#a", ""}) {
    const std::string filter(f);
    std::string bytes = Hex({0x82, static_cast<int>(5 + filter.size()), 0, 1, 0,
                             static_cast<int>(filter.size())}) +
                        filter + Hex({1});
    ExpectError(bytes, 4, "topic filter");
  }
}

TEST(CodecTest, TopicFilters) {
  EXPECT_TRUE(IsValidTopicFilter("#"));
  EXPECT_TRUE(IsValidTopicFilter("+"));
  EXPECT_TRUE(IsValidTopicFilter("a/+/b/#"));
  EXPECT_TRUE(IsValidTopicFilter("/"));
  EXPECT_FALSE(IsValidTopicFilter("a/#/"));
  EXPECT_FALSE(IsValidTopicFilter("a/b+"));
  EXPECT_TRUE(TopicMatches("a/#", "a"));
  EXPECT_TRUE(TopicMatches("a/#", "a/b/c"));
  EXPECT_TRUE(TopicMatches("a/+/c", "a/b/c"));
  EXPECT_TRUE(TopicMatches("+/+", "/x"));
  EXPECT_TRUE(TopicMatches("#", "a/b"));
  EXPECT_FALSE(TopicMatches("#", "$iothub/twin"));
  EXPECT_FALSE(TopicMatches("+/twin", "$iothub/twin"));
  EXPECT_TRUE(
      TopicMatches("$iothub/twin/res/#", "$iothub/twin/res/200/?$rid=1"));
  EXPECT_FALSE(TopicMatches("a/+", "a"));
  EXPECT_FALSE(TopicMatches("a/b", "a/b/c"));
  EXPECT_FALSE(TopicMatches("a/b/c", "a/b"));
  EXPECT_TRUE(TopicMatches("a/", "a/"));
  EXPECT_TRUE(TopicMatches("a/+", "a/"));
}

TEST(CodecTest, ConcatenatedPacketsDecodeOneByOne) {
  std::string stream;
  EncodeEmpty(PacketType::kPingreq, &stream);
  EncodePacketId(PacketType::kPuback, 5, &stream);
  EncodeEmpty(PacketType::kDisconnect, &stream);
  std::vector<PacketType> types;
  absl::Span<const uint8_t> rest = Bytes(stream);
  while (!rest.empty()) {
    Packet p;
    size_t consumed = 0;
    DecodeError e;
    ASSERT_EQ(DecodePacket(rest, kLimit, &p, &consumed, &e),
              DecodeStatus::kPacket);
    types.push_back(p.type);
    rest.remove_prefix(consumed);
  }
  EXPECT_EQ(types,
            (std::vector<PacketType>{PacketType::kPingreq, PacketType::kPuback,
                                     PacketType::kDisconnect}));
}

}  // namespace
}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute
