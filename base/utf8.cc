#include "base/utf8.h"

#include <cstring>

namespace edgeroute {

namespace {

template <bool kSurrogates>
uint32_t Decode(absl::string_view s, size_t i, size_t* len) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  const size_t avail = s.size() - i;
  const unsigned lead = p[0];
  if (lead < 0x80) {
    *len = 1;
    return lead;
  }
  // Table 3-7 of the Unicode standard: the lead byte fixes the length and
  // the range of the first continuation byte; later ones are 80..BF.
  size_t continuation;
  uint32_t cp;
  unsigned low = 0x80, high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuation = 1;
    cp = lead & 0x1Fu;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    continuation = 2;
    cp = lead & 0x0Fu;
    if (lead == 0xE0) low = 0xA0;   // no overlong forms
    if (lead == 0xED && !kSurrogates) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    continuation = 3;
    cp = lead & 0x07u;
    if (lead == 0xF0) low = 0x90;   // no overlong forms
    if (lead == 0xF4) high = 0x8F;  // nothing past U+10FFFF
  } else {
    *len = 1;  // 80..C1, F5..FF never start a sequence
    return kReplacementCharacter;
  }
  size_t used = 1;
  while (used <= continuation) {
    if (used >= avail) break;  // truncated
    const unsigned byte = p[used];
    if (byte < low || byte > high) break;
    low = 0x80;
    high = 0xBF;
    cp = (cp << 6) | (byte & 0x3Fu);
    ++used;
  }
  *len = used;
  return used == continuation + 1 ? cp : kReplacementCharacter;
}

}  // namespace

uint32_t DecodeUtf8(absl::string_view s, size_t i, size_t* len) {
  return Decode<false>(s, i, len);
}

uint32_t DecodeUtf8OrSurrogate(absl::string_view s, size_t i, size_t* len) {
  return Decode<true>(s, i, len);
}

size_t EncodeUtf8(uint32_t cp, char* out) {
  if (cp < 0x80) {
    out[0] = char(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = char(0xC0 | (cp >> 6));
    out[1] = char(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = char(0xE0 | (cp >> 12));
    out[1] = char(0x80 | ((cp >> 6) & 0x3F));
    out[2] = char(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = char(0xF0 | (cp >> 18));
  out[1] = char(0x80 | ((cp >> 12) & 0x3F));
  out[2] = char(0x80 | ((cp >> 6) & 0x3F));
  out[3] = char(0x80 | (cp & 0x3F));
  return 4;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  char buf[4];
  out->append(buf, EncodeUtf8(cp, buf));
}

namespace {

// Length of the ASCII prefix of s[i..], eight bytes at a time.
size_t SkipAscii(absl::string_view s, size_t i) {
  while (i + 8 <= s.size()) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if (word & 0x8080808080808080ull) break;
    i += 8;
  }
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
  return i;
}

}  // namespace

size_t FindInvalidUtf8(absl::string_view s) {
  size_t i = SkipAscii(s, 0);
  while (i < s.size()) {
    size_t len;
    if (DecodeUtf8(s, i, &len) == kReplacementCharacter) {
      // U+FFFD itself is well-formed (EF BF BD).
      if (len != 3 || static_cast<unsigned char>(s[i]) != 0xEF) return i;
    }
    i = SkipAscii(s, i + len);
  }
  return absl::string_view::npos;
}

size_t ReplaceInvalidUtf8(absl::string_view s, char* out) {
  size_t o = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t ascii_end = SkipAscii(s, i);
    if (ascii_end > i) {
      std::memcpy(out + o, s.data() + i, ascii_end - i);
      o += ascii_end - i;
      i = ascii_end;
      if (i == s.size()) break;
    }
    size_t len;
    const uint32_t cp = DecodeUtf8(s, i, &len);
    // Well-formed sequences are copied as they are; an ill-formed subpart
    // of `len` >= 1 bytes becomes the 3 bytes of U+FFFD.
    o += EncodeUtf8(cp, out + o);
    i += len;
  }
  return o;
}

void ReplaceInvalidUtf8(absl::string_view s, std::string* out) {
  out->resize(s.size() * kUtf8RepairGrowth);
  out->resize(ReplaceInvalidUtf8(s, &(*out)[0]));
}

}  // namespace edgeroute
