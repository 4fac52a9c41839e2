#include "gateway/mqtt/codec.h"

#include <algorithm>

#include "base/utf8.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {
namespace {

// Reads the variable header and payload of one packet, remembering the
// first problem and where it was (offsets from the start of the packet).
class Reader {
 public:
  Reader(const uint8_t* packet, size_t begin, size_t end, DecodeError* error)
      : packet_(packet), pos_(begin), end_(end), error_(error) {}

  size_t pos() const { return pos_; }
  size_t left() const { return end_ - pos_; }

  bool Fail(size_t offset, const char* what,
            DecodeErrorCode code = DecodeErrorCode::kMalformed) {
    error_->code = code;
    error_->offset = offset;
    error_->what = what;
    return false;
  }

  bool U8(uint8_t* v, const char* what) {
    if (left() < 1) return Fail(pos_, what);
    *v = packet_[pos_++];
    return true;
  }
  bool U16(uint16_t* v, const char* what) {
    if (left() < 2) return Fail(pos_, what);
    *v = static_cast<uint16_t>(packet_[pos_] << 8 | packet_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool PacketId(uint16_t* id) {
    const size_t at = pos_;
    if (!U16(id, "packet ends inside the packet identifier")) return false;
    if (*id == 0) return Fail(at, "packet identifier 0");
    return true;
  }
  // Two-byte length, then that many bytes.
  bool Binary(absl::string_view* v, const char* what) {
    uint16_t n;
    if (!U16(&n, what)) return false;
    if (left() < n) return Fail(pos_ - 2, what);
    *v = absl::string_view(reinterpret_cast<const char*>(packet_ + pos_), n);
    pos_ += n;
    return true;
  }
  bool Utf8(absl::string_view* v, const char* what, const char* bad_utf8) {
    const size_t start = pos_ + 2;
    if (!Binary(v, what)) return false;
    size_t bad = 0;
    if (!IsMqttUtf8(*v, &bad)) return Fail(start + bad, bad_utf8);
    return true;
  }
  absl::string_view Rest() {
    absl::string_view v(reinterpret_cast<const char*>(packet_ + pos_), left());
    pos_ = end_;
    return v;
  }
  bool End(const char* what) {
    if (pos_ != end_) return Fail(pos_, what);
    return true;
  }

 private:
  const uint8_t* const packet_;
  size_t pos_;
  const size_t end_;
  DecodeError* const error_;
};

bool HasWildcard(absl::string_view s) {
  return s.find_first_of("+#") != absl::string_view::npos;
}

bool DecodeConnect(Reader& r, Connect* c) {
  const size_t name_at = r.pos();
  if (!r.Utf8(&c->protocol_name, "packet ends inside the protocol name",
              "protocol name is not valid UTF-8")) {
    return false;
  }
  if (!r.U8(&c->protocol_level, "packet ends before the protocol level")) {
    return false;
  }
  if (c->protocol_name == "MQIsdp") {
    return r.Fail(name_at, "MQTT 3.1 (MQIsdp) is not supported",
                  DecodeErrorCode::kUnacceptableProtocolLevel);
  }
  if (c->protocol_name != "MQTT") {
    return r.Fail(name_at, "protocol name is not MQTT");
  }
  if (c->protocol_level != 4) {
    return r.Fail(r.pos() - 1, "protocol level is not 4 (MQTT 3.1.1)",
                  DecodeErrorCode::kUnacceptableProtocolLevel);
  }
  const size_t flags_at = r.pos();
  uint8_t flags;
  if (!r.U8(&flags, "packet ends before the connect flags")) return false;
  if (flags & 0x01) return r.Fail(flags_at, "connect flags: reserved bit set");
  c->clean_session = (flags & 0x02) != 0;
  c->has_will = (flags & 0x04) != 0;
  c->will_qos = static_cast<uint8_t>((flags >> 3) & 0x03);
  c->will_retain = (flags & 0x20) != 0;
  c->has_password = (flags & 0x40) != 0;
  c->has_username = (flags & 0x80) != 0;
  if (!c->has_will && (c->will_qos != 0 || c->will_retain)) {
    return r.Fail(flags_at, "connect flags: will QoS or retain without will");
  }
  if (c->will_qos == 3) return r.Fail(flags_at, "connect flags: will QoS 3");
  if (c->has_password && !c->has_username) {
    return r.Fail(flags_at, "connect flags: password without user name");
  }
  if (!r.U16(&c->keep_alive_secs, "packet ends inside the keep-alive")) {
    return false;
  }
  if (!r.Utf8(&c->client_id, "packet ends inside the client identifier",
              "client identifier is not valid UTF-8")) {
    return false;
  }
  c->will_topic = c->will_message = c->username = c->password =
      absl::string_view();
  if (c->has_will) {
    const size_t topic_at = r.pos();
    if (!r.Utf8(&c->will_topic, "packet ends inside the will topic",
                "will topic is not valid UTF-8")) {
      return false;
    }
    if (c->will_topic.empty() || HasWildcard(c->will_topic)) {
      return r.Fail(topic_at, "will topic is empty or has a wildcard");
    }
    if (!r.Binary(&c->will_message, "packet ends inside the will message")) {
      return false;
    }
  }
  if (c->has_username &&
      !r.Utf8(&c->username, "packet ends inside the user name",
              "user name is not valid UTF-8")) {
    return false;
  }
  if (c->has_password &&
      !r.Binary(&c->password, "packet ends inside the password")) {
    return false;
  }
  return r.End("bytes after the last CONNECT field");
}

bool DecodeFilters(Reader& r, bool with_qos, TopicFilterList* list) {
  const size_t begin = r.pos();
  list->with_qos = with_qos;
  list->count = 0;
  if (r.left() == 0) return r.Fail(begin, "no topic filter");
  while (r.left() > 0) {
    const size_t at = r.pos();
    absl::string_view filter;
    if (!r.Utf8(&filter, "packet ends inside a topic filter",
                "topic filter is not valid UTF-8")) {
      return false;
    }
    if (!IsValidTopicFilter(filter)) {
      return r.Fail(at, "topic filter is empty or misuses a wildcard");
    }
    if (with_qos) {
      const size_t qos_at = r.pos();
      uint8_t qos;
      if (!r.U8(&qos, "packet ends before a requested QoS")) return false;
      if (qos > 2) return r.Fail(qos_at, "requested QoS above 2");
    }
    ++list->count;
  }
  return true;
}

void PutU16(uint16_t v, std::string* out) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xFF));
}

void PutString(absl::string_view s, std::string* out) {
  PutU16(static_cast<uint16_t>(s.size()), out);
  out->append(s.data(), s.size());
}

void PutHeader(uint8_t first, size_t remaining, std::string* out) {
  out->push_back(static_cast<char>(first));
  do {
    uint8_t b = static_cast<uint8_t>(remaining & 0x7F);
    remaining >>= 7;
    if (remaining > 0) b |= 0x80;
    out->push_back(static_cast<char>(b));
  } while (remaining > 0);
}

uint8_t FirstByte(PacketType type, uint8_t flags = 0) {
  return static_cast<uint8_t>(static_cast<uint8_t>(type) << 4 | flags);
}

}  // namespace

const char* PacketTypeName(PacketType type) {
  switch (type) {
    case PacketType::kConnect:
      return "CONNECT";
    case PacketType::kConnack:
      return "CONNACK";
    case PacketType::kPublish:
      return "PUBLISH";
    case PacketType::kPuback:
      return "PUBACK";
    case PacketType::kPubrec:
      return "PUBREC";
    case PacketType::kPubrel:
      return "PUBREL";
    case PacketType::kPubcomp:
      return "PUBCOMP";
    case PacketType::kSubscribe:
      return "SUBSCRIBE";
    case PacketType::kSuback:
      return "SUBACK";
    case PacketType::kUnsubscribe:
      return "UNSUBSCRIBE";
    case PacketType::kUnsuback:
      return "UNSUBACK";
    case PacketType::kPingreq:
      return "PINGREQ";
    case PacketType::kPingresp:
      return "PINGRESP";
    case PacketType::kDisconnect:
      return "DISCONNECT";
  }
  return "reserved";
}

bool TopicFilterReader::Next(TopicRequest* request) {
  const absl::string_view b = list_.bytes;
  if (pos_ + 2 > b.size()) return false;
  const size_t n =
      static_cast<uint8_t>(b[pos_]) << 8 | static_cast<uint8_t>(b[pos_ + 1]);
  request->filter = b.substr(pos_ + 2, n);
  pos_ += 2 + n;
  request->qos = 0;
  if (list_.with_qos) {
    request->qos = static_cast<uint8_t>(b[pos_]);
    ++pos_;
  }
  return true;
}

bool IsMqttUtf8(absl::string_view text, size_t* bad_offset) {
  const size_t nul = text.find('\0');
  const size_t bad = std::min(
      nul, FindInvalidUtf8(
               nul == absl::string_view::npos ? text : text.substr(0, nul)));
  if (bad == absl::string_view::npos) return true;
  if (bad_offset != nullptr) *bad_offset = bad;
  return false;
}

bool IsValidTopicName(absl::string_view topic) {
  return !topic.empty() && !HasWildcard(topic) && IsMqttUtf8(topic);
}

bool IsValidTopicFilter(absl::string_view filter) {
  if (filter.empty() || !IsMqttUtf8(filter)) return false;
  for (size_t i = 0; i < filter.size(); ++i) {
    const char c = filter[i];
    if (c != '+' && c != '#') continue;
    const bool starts_level = i == 0 || filter[i - 1] == '/';
    const bool ends_level = i + 1 == filter.size() || filter[i + 1] == '/';
    if (!starts_level || !ends_level) return false;
    if (c == '#' && i + 1 != filter.size()) return false;
  }
  return true;
}

bool TopicMatches(absl::string_view filter, absl::string_view topic) {
  if (!filter.empty() && (filter[0] == '+' || filter[0] == '#') &&
      !topic.empty() && topic[0] == '$') {
    return false;
  }
  size_t f = 0, t = 0;
  while (true) {
    const size_t f_end = std::min(filter.find('/', f), filter.size());
    const absl::string_view level = filter.substr(f, f_end - f);
    if (level == "#") return true;  // also matches the parent level
    if (t > topic.size()) return false;
    const size_t t_end = std::min(topic.find('/', t), topic.size());
    if (level != "+" && level != topic.substr(t, t_end - t)) return false;
    const bool filter_done = f_end == filter.size();
    const bool topic_done = t_end == topic.size();
    if (filter_done || topic_done) {
      if (filter_done && topic_done) return true;
      // "a/#" matches "a": the filter's next (and last) level is '#'.
      return topic_done && filter.substr(f_end) == "/#";
    }
    f = f_end + 1;
    t = t_end + 1;
  }
}

size_t RemainingLengthBytes(size_t remaining_length) {
  if (remaining_length < 128) return 1;
  if (remaining_length < 16384) return 2;
  if (remaining_length < 2097152) return 3;
  return 4;
}

DecodeStatus DecodePacket(absl::Span<const uint8_t> input,
                          size_t max_packet_bytes, Packet* packet,
                          size_t* consumed, DecodeError* error) {
  *consumed = 0;
  *error = DecodeError();
  auto fail = [error](size_t offset, const char* what,
                      DecodeErrorCode code = DecodeErrorCode::kMalformed) {
    error->code = code;
    error->offset = offset;
    error->what = what;
    return DecodeStatus::kError;
  };
  if (input.empty()) return DecodeStatus::kNeedMore;
  const uint8_t first = input[0];
  const uint8_t type_bits = first >> 4;
  const uint8_t flags = first & 0x0F;
  if (type_bits == 0 || type_bits == 15) {
    return fail(0, "reserved packet type");
  }
  const PacketType type = static_cast<PacketType>(type_bits);
  switch (type) {
    case PacketType::kPublish:
      if (((flags >> 1) & 0x03) == 3) return fail(0, "PUBLISH with QoS 3");
      if ((flags & 0x08) && ((flags >> 1) & 0x03) == 0) {
        return fail(0, "PUBLISH with DUP set and QoS 0");
      }
      break;
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      if (flags != 0x02) return fail(0, "reserved fixed-header flags");
      break;
    default:
      if (flags != 0) return fail(0, "reserved fixed-header flags");
      break;
  }
  size_t remaining = 0;
  size_t header = 1;
  for (int shift = 0;; shift += 7) {
    if (header >= input.size()) return DecodeStatus::kNeedMore;
    const uint8_t b = input[header];
    remaining |= static_cast<size_t>(b & 0x7F) << shift;
    ++header;
    if ((b & 0x80) == 0) {
      if (b == 0 && header > 2) {
        return fail(header - 1, "remaining length not minimally encoded");
      }
      break;
    }
    if (header == kMaxFixedHeaderBytes) {
      return fail(header - 1, "remaining length longer than 4 bytes");
    }
  }
  const size_t total = header + remaining;
  if (total > max_packet_bytes) {
    return fail(1, "packet larger than the limit",
                DecodeErrorCode::kPacketTooLarge);
  }
  if (input.size() < total) return DecodeStatus::kNeedMore;

  Packet& p = *packet;
  p.type = type;
  p.packet_id = 0;
  Reader r(input.data(), header, total, error);
  bool ok = true;
  switch (type) {
    case PacketType::kConnect:
      ok = DecodeConnect(r, &p.connect);
      break;
    case PacketType::kConnack: {
      uint8_t ack_flags = 0, code = 0;
      ok = r.U8(&ack_flags, "packet ends before the acknowledge flags") &&
           r.U8(&code, "packet ends before the return code") &&
           r.End("bytes after the CONNACK return code");
      if (!ok) break;
      if (ack_flags & 0xFE) {
        ok = r.Fail(header, "connack flags: reserved bits set");
      } else if (code > 5) {
        ok = r.Fail(header + 1, "connack return code above 5");
      } else if (code != 0 && (ack_flags & 1)) {
        ok = r.Fail(header, "session present on a refused connection");
      }
      p.connack.session_present = (ack_flags & 1) != 0;
      p.connack.code = static_cast<ConnectCode>(code);
      break;
    }
    case PacketType::kPublish: {
      Publish& pub = p.publish;
      pub.dup = (flags & 0x08) != 0;
      pub.qos = static_cast<uint8_t>((flags >> 1) & 0x03);
      pub.retain = (flags & 0x01) != 0;
      pub.packet_id = 0;
      const size_t topic_at = r.pos();
      ok = r.Utf8(&pub.topic, "packet ends inside the topic name",
                  "topic name is not valid UTF-8");
      if (!ok) break;
      if (pub.topic.empty()) {
        ok = r.Fail(topic_at, "empty topic name");
        break;
      }
      if (HasWildcard(pub.topic)) {
        ok = r.Fail(topic_at + 2 + pub.topic.find_first_of("+#"),
                    "wildcard in a PUBLISH topic name");
        break;
      }
      if (pub.qos > 0) {
        ok = r.PacketId(&pub.packet_id);
        if (!ok) break;
        p.packet_id = pub.packet_id;
      }
      pub.payload = r.Rest();
      break;
    }
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
    case PacketType::kUnsuback:
      ok = r.PacketId(&p.packet_id) &&
           r.End("bytes after the packet identifier");
      break;
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe: {
      ok = r.PacketId(&p.packet_id);
      if (!ok) break;
      const size_t begin = r.pos();
      ok = DecodeFilters(r, type == PacketType::kSubscribe, &p.filters);
      if (ok) {
        p.filters.bytes = absl::string_view(
            reinterpret_cast<const char*>(input.data()) + begin, total - begin);
      }
      break;
    }
    case PacketType::kSuback: {
      ok = r.PacketId(&p.packet_id);
      if (!ok) break;
      if (r.left() == 0) {
        ok = r.Fail(r.pos(), "SUBACK without return codes");
        break;
      }
      const size_t begin = r.pos();
      p.suback_codes = r.Rest();
      for (size_t i = 0; i < p.suback_codes.size(); ++i) {
        const uint8_t c = static_cast<uint8_t>(p.suback_codes[i]);
        if (c > 2 && c != kSubackFailure) {
          ok = r.Fail(begin + i, "SUBACK return code not 0, 1, 2 or 0x80");
          break;
        }
      }
      break;
    }
    case PacketType::kPingreq:
    case PacketType::kPingresp:
    case PacketType::kDisconnect:
      ok = r.End("remaining length of a packet without fields is not 0");
      break;
  }
  if (!ok) return DecodeStatus::kError;
  *consumed = total;
  return DecodeStatus::kPacket;
}

void EncodeConnect(const Connect& c, std::string* out) {
  size_t n = 2 + c.protocol_name.size() + 1 + 1 + 2 + 2 + c.client_id.size();
  if (c.has_will) n += 4 + c.will_topic.size() + c.will_message.size();
  if (c.has_username) n += 2 + c.username.size();
  if (c.has_password) n += 2 + c.password.size();
  PutHeader(FirstByte(PacketType::kConnect), n, out);
  PutString(c.protocol_name, out);
  out->push_back(static_cast<char>(c.protocol_level));
  uint8_t flags = 0;
  if (c.clean_session) flags |= 0x02;
  if (c.has_will) {
    flags |= 0x04;
    flags |= static_cast<uint8_t>((c.will_qos & 3) << 3);
    if (c.will_retain) flags |= 0x20;
  }
  if (c.has_password) flags |= 0x40;
  if (c.has_username) flags |= 0x80;
  out->push_back(static_cast<char>(flags));
  PutU16(c.keep_alive_secs, out);
  PutString(c.client_id, out);
  if (c.has_will) {
    PutString(c.will_topic, out);
    PutString(c.will_message, out);
  }
  if (c.has_username) PutString(c.username, out);
  if (c.has_password) PutString(c.password, out);
}

void EncodeConnack(bool session_present, ConnectCode code, std::string* out) {
  PutHeader(FirstByte(PacketType::kConnack), 2, out);
  out->push_back(session_present ? 1 : 0);
  out->push_back(static_cast<char>(code));
}

void EncodePublish(const Publish& p, std::string* out) {
  const size_t n = 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + p.payload.size();
  uint8_t flags = static_cast<uint8_t>((p.qos & 3) << 1);
  if (p.dup) flags |= 0x08;
  if (p.retain) flags |= 0x01;
  PutHeader(FirstByte(PacketType::kPublish, flags), n, out);
  PutString(p.topic, out);
  if (p.qos > 0) PutU16(p.packet_id, out);
  out->append(p.payload.data(), p.payload.size());
}

void EncodePacketId(PacketType type, uint16_t packet_id, std::string* out) {
  PutHeader(FirstByte(type, type == PacketType::kPubrel ? 0x02 : 0), 2, out);
  PutU16(packet_id, out);
}

void EncodeSubscribe(uint16_t packet_id,
                     absl::Span<const TopicRequest> requests,
                     std::string* out) {
  size_t n = 2;
  for (const TopicRequest& r : requests) n += 3 + r.filter.size();
  PutHeader(FirstByte(PacketType::kSubscribe, 0x02), n, out);
  PutU16(packet_id, out);
  for (const TopicRequest& r : requests) {
    PutString(r.filter, out);
    out->push_back(static_cast<char>(r.qos));
  }
}

void EncodeUnsubscribe(uint16_t packet_id,
                       absl::Span<const absl::string_view> filters,
                       std::string* out) {
  size_t n = 2;
  for (absl::string_view f : filters) n += 2 + f.size();
  PutHeader(FirstByte(PacketType::kUnsubscribe, 0x02), n, out);
  PutU16(packet_id, out);
  for (absl::string_view f : filters) PutString(f, out);
}

void EncodeSuback(uint16_t packet_id, absl::Span<const uint8_t> codes,
                  std::string* out) {
  PutHeader(FirstByte(PacketType::kSuback), 2 + codes.size(), out);
  PutU16(packet_id, out);
  out->append(reinterpret_cast<const char*>(codes.data()), codes.size());
}

void EncodeEmpty(PacketType type, std::string* out) {
  PutHeader(FirstByte(type), 0, out);
}

void EncodePacket(const Packet& p, std::string* out) {
  switch (p.type) {
    case PacketType::kConnect:
      EncodeConnect(p.connect, out);
      return;
    case PacketType::kConnack:
      EncodeConnack(p.connack.session_present, p.connack.code, out);
      return;
    case PacketType::kPublish:
      EncodePublish(p.publish, out);
      return;
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
    case PacketType::kUnsuback:
      EncodePacketId(p.type, p.packet_id, out);
      return;
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe: {
      // The filter list is kept in its wire form: copy it behind a header.
      const uint8_t flags = 0x02;
      PutHeader(FirstByte(p.type, flags), 2 + p.filters.bytes.size(), out);
      PutU16(p.packet_id, out);
      out->append(p.filters.bytes.data(), p.filters.bytes.size());
      return;
    }
    case PacketType::kSuback:
      EncodeSuback(p.packet_id,
                   absl::MakeConstSpan(
                       reinterpret_cast<const uint8_t*>(p.suback_codes.data()),
                       p.suback_codes.size()),
                   out);
      return;
    case PacketType::kPingreq:
    case PacketType::kPingresp:
    case PacketType::kDisconnect:
      EncodeEmpty(p.type, out);
      return;
  }
}

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute
