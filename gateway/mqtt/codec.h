// MQTT 3.1.1 (OASIS standard, protocol level 4) packets: decoding from a
// byte stream with strict validation, and encoding.
//
//   DecodePacket -- looks at the start of a byte stream for one complete
//                   packet. Returns it (fields view into the input, nothing
//                   is copied or allocated), or says that more bytes are
//                   needed, or reports what is wrong and at which byte.
//   Encode*      -- append one packet to a std::string.
//
// Everything the standard says a receiver must treat as malformed is an
// error here: a remaining length longer than 4 bytes or not minimally
// encoded; fields that run past the remaining length or bytes left over after
// them; reserved packet types and fixed-header flags; QoS 3; DUP on QoS 0;
// packet identifier 0; strings that are not well-formed UTF-8 or contain
// U+0000 (surrogates, overlong forms and code points above U+10FFFF are not
// well-formed); wildcards in topic names; misplaced wildcards in topic
// filters; empty topics; SUBSCRIBE/UNSUBSCRIBE without filters; CONNECT with
// an unknown protocol name, a set reserved flag, will QoS/retain without the
// will flag, or a password without a user name.
//
// Thread-safety: the functions are pure; Packet and TopicFilterReader are
// plain values.

#ifndef EDGEROUTE_GATEWAY_MQTT_CODEC_H_
#define EDGEROUTE_GATEWAY_MQTT_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};
// "CONNECT", "PUBLISH", ... ("reserved" for anything else).
const char* PacketTypeName(PacketType type);

// CONNACK return codes (3.2.2.3).
enum class ConnectCode : uint8_t {
  kAccepted = 0,
  kUnacceptableProtocolVersion = 1,
  kIdentifierRejected = 2,
  kServerUnavailable = 3,
  kBadUserNameOrPassword = 4,
  kNotAuthorized = 5,
};

// The SUBACK return code of a refused topic filter.
inline constexpr uint8_t kSubackFailure = 0x80;
// The largest remaining length a 4-byte encoding can carry.
inline constexpr size_t kMaxRemainingLength = 268435455;
// The largest fixed header: type/flags byte + 4 length bytes.
inline constexpr size_t kMaxFixedHeaderBytes = 5;

struct Connect {
  absl::string_view protocol_name = "MQTT";
  uint8_t protocol_level = 4;
  bool clean_session = true;
  uint16_t keep_alive_secs = 0;
  absl::string_view client_id;
  bool has_will = false;
  uint8_t will_qos = 0;
  bool will_retain = false;
  absl::string_view will_topic;
  absl::string_view will_message;
  bool has_username = false;
  absl::string_view username;
  bool has_password = false;
  absl::string_view password;
};

struct Connack {
  bool session_present = false;
  ConnectCode code = ConnectCode::kAccepted;
};

struct Publish {
  bool dup = false;
  uint8_t qos = 0;
  bool retain = false;
  absl::string_view topic;
  uint16_t packet_id = 0;  // only with qos > 0
  absl::string_view payload;
};

// One topic filter of a SUBSCRIBE, with the QoS asked for.
struct TopicRequest {
  absl::string_view filter;
  uint8_t qos = 0;
};

// The topic filters of a decoded SUBSCRIBE (each followed by its requested
// QoS byte) or UNSUBSCRIBE, already validated; read them with
// TopicFilterReader. `bytes` views into the decoded input.
struct TopicFilterList {
  absl::string_view bytes;
  bool with_qos = false;
  size_t count = 0;
};

// Iterates over a TopicFilterList. REQUIRES: the list came from
// DecodePacket (its encoding is not checked again).
class TopicFilterReader {
 public:
  explicit TopicFilterReader(const TopicFilterList& list) : list_(list) {}
  // The next filter and its requested QoS (0 for UNSUBSCRIBE); false after
  // the last one.
  bool Next(TopicRequest* request);

 private:
  TopicFilterList list_;
  size_t pos_ = 0;
};

// One decoded packet. Only the fields of `type` are meaningful; string
// fields view into the input given to DecodePacket.
struct Packet {
  PacketType type = PacketType::kPingreq;
  // PUBLISH with QoS > 0, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK,
  // UNSUBSCRIBE, UNSUBACK. Never 0 after a successful decode.
  uint16_t packet_id = 0;
  Connect connect;                 // CONNECT
  Connack connack;                 // CONNACK
  Publish publish;                 // PUBLISH (publish.packet_id == packet_id)
  TopicFilterList filters;         // SUBSCRIBE, UNSUBSCRIBE
  absl::string_view suback_codes;  // SUBACK: one return code per byte
};

enum class DecodeStatus : uint8_t {
  kPacket,    // *packet holds one packet of *consumed bytes
  kNeedMore,  // the input holds the start of a packet, not all of it
  kError,     // *error says what and where; the stream cannot continue
};

enum class DecodeErrorCode : uint8_t {
  kNone,
  // Anything the standard calls a protocol violation.
  kMalformed,
  // Fixed header + remaining length exceed the configured limit (reported
  // as soon as the remaining length is read, before the packet arrives).
  kPacketTooLarge,
  // A CONNECT for another protocol level (or MQTT 3.1's "MQIsdp"): the
  // server answers CONNACK 1 before closing.
  kUnacceptableProtocolLevel,
};

struct DecodeError {
  DecodeErrorCode code = DecodeErrorCode::kNone;
  // Offset of the offending byte from the start of the packet.
  size_t offset = 0;
  // What is wrong; a static string.
  const char* what = "";
};

// Decodes the packet at the start of `input`. A packet whose fixed header
// and remaining length exceed `max_packet_bytes` is refused with
// kPacketTooLarge as soon as its first (at most 5) bytes are seen.
DecodeStatus DecodePacket(absl::Span<const uint8_t> input,
                          size_t max_packet_bytes, Packet* packet,
                          size_t* consumed, DecodeError* error);

// Whether `text` is an MQTT UTF-8 string: well-formed UTF-8 (RFC 3629: no
// surrogates, no overlong forms, nothing above U+10FFFF) without U+0000.
// On false, *bad_offset (when not null) is the offset of the first byte of
// the offending sequence.
bool IsMqttUtf8(absl::string_view text, size_t* bad_offset = nullptr);
// A topic name: non-empty MQTT UTF-8 without '+' or '#'.
bool IsValidTopicName(absl::string_view topic);
// A topic filter: non-empty MQTT UTF-8 where '#' is only the whole last
// level and '+' only a whole level.
bool IsValidTopicFilter(absl::string_view filter);
// Whether `topic` matches `filter` (4.7). Topics starting with '$' are not
// matched by a filter starting with a wildcard.
bool TopicMatches(absl::string_view filter, absl::string_view topic);

// Encoders. REQUIRES: the fields are valid (strings at most 65,535 bytes,
// the whole packet within kMaxRemainingLength); nothing is checked.
void EncodeConnect(const Connect& connect, std::string* out);
void EncodeConnack(bool session_present, ConnectCode code, std::string* out);
// Appends the publish packet; `publish.packet_id` is written when qos > 0.
void EncodePublish(const Publish& publish, std::string* out);
// PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK.
void EncodePacketId(PacketType type, uint16_t packet_id, std::string* out);
void EncodeSubscribe(uint16_t packet_id,
                     absl::Span<const TopicRequest> requests, std::string* out);
void EncodeUnsubscribe(uint16_t packet_id,
                       absl::Span<const absl::string_view> filters,
                       std::string* out);
void EncodeSuback(uint16_t packet_id, absl::Span<const uint8_t> codes,
                  std::string* out);
// PINGREQ, PINGRESP or DISCONNECT.
void EncodeEmpty(PacketType type, std::string* out);
// Any decoded packet, re-encoded (for tests and the fuzzer: decoding the
// result gives the same packet).
void EncodePacket(const Packet& packet, std::string* out);

// Bytes of the remaining-length field for `remaining_length` (1 to 4).
size_t RemainingLengthBytes(size_t remaining_length);

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_MQTT_CODEC_H_
