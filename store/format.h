// Internal: the byte encodings of store/FORMAT.md. Not part of the public API.

#ifndef EDGEROUTE_STORE_FORMAT_H_
#define EDGEROUTE_STORE_FORMAT_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"

namespace edgeroute::store::format {

// Column family names.
inline constexpr char kMetaCf[] = "default";
inline constexpr char kPayloadsCf[] = "payloads";
inline constexpr char kPayloadRefsCf[] = "payload_refs";
inline constexpr char kRefsCf[] = "refs";

// Metadata keys (column family "default").
inline constexpr char kFormatKey[] = "format";
inline constexpr char kPayloadFloorKey[] = "payload_floor";
inline constexpr char kFormatMagic[] = "edgeroute-store";
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr char kQueueTag = 'Q';
inline constexpr char kCheckpointTag = 'C';
inline constexpr char kRemovedTag = 'R';

inline constexpr size_t kRefKeySize = 12;
inline constexpr size_t kRefValueSize = 24;
inline constexpr size_t kPayloadRefsValueSize = 8;
// Bytes counted against max_bytes for one reference and, on top of the
// message bytes, for one payload (its key and its payload_refs record).
inline constexpr uint64_t kRefBytes = kRefKeySize + kRefValueSize;
inline constexpr uint64_t kPayloadOverheadBytes = 8 + 8 + kPayloadRefsValueSize;

inline void PutBe32(char* p, uint32_t v) {
  for (int i = 3; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}
inline void PutBe64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}
inline uint32_t GetBe32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline uint64_t GetBe64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// "refs" key: queue handle (4 bytes BE) + offset (8 bytes BE).
struct RefKey {
  char data[kRefKeySize];
  RefKey(uint32_t queue, uint64_t offset) {
    PutBe32(data, queue);
    PutBe64(data + 4, offset);
  }
  absl::string_view view() const { return {data, sizeof(data)}; }
};

// "payloads" / "payload_refs" key: payload sequence (8 bytes BE).
struct SeqKey {
  char data[8];
  explicit SeqKey(uint64_t seq) { PutBe64(data, seq); }
  absl::string_view view() const { return {data, sizeof(data)}; }
};

// "refs" value.
struct RefValue {
  uint64_t payload_seq = 0;
  int64_t enqueue_us = 0;
  int64_t expiry_us = 0;

  void Encode(char* out) const {
    PutBe64(out, payload_seq);
    PutBe64(out + 8, static_cast<uint64_t>(enqueue_us));
    PutBe64(out + 16, static_cast<uint64_t>(expiry_us));
  }
  // False if `in` has the wrong size or values the store never writes
  // (payload sequence 0, a negative enqueue time, an expiry before it).
  bool Decode(absl::string_view in) {
    if (in.size() != kRefValueSize) return false;
    payload_seq = GetBe64(in.data());
    enqueue_us = static_cast<int64_t>(GetBe64(in.data() + 8));
    expiry_us = static_cast<int64_t>(GetBe64(in.data() + 16));
    return payload_seq != 0 && enqueue_us >= 0 && expiry_us >= enqueue_us;
  }
};

// "payload_refs" value: live reference count and payload size, both 4 bytes
// BE.
struct PayloadRefsValue {
  uint32_t refs = 0;
  uint32_t size = 0;
  void Encode(char* out) const {
    PutBe32(out, refs);
    PutBe32(out + 4, size);
  }
  bool Decode(absl::string_view in) {
    if (in.size() != kPayloadRefsValueSize) return false;
    refs = GetBe32(in.data());
    size = GetBe32(in.data() + 4);
    return true;
  }
};

// Metadata key: tag + queue handle (4 bytes BE).
inline std::string QueueMetaKey(char tag, uint32_t queue) {
  std::string key(5, '\0');
  key[0] = tag;
  PutBe32(&key[1], queue);
  return key;
}

inline std::string Be64String(uint64_t v) {
  std::string s(8, '\0');
  PutBe64(&s[0], v);
  return s;
}

// Format value: magic + 4-byte BE version.
inline std::string FormatValue() {
  std::string s(kFormatMagic);
  s.resize(s.size() + 4);
  PutBe32(&s[s.size() - 4], kFormatVersion);
  return s;
}

}  // namespace edgeroute::store::format

#endif  // EDGEROUTE_STORE_FORMAT_H_
