// The allocation-free evaluator: lazily loaded property and body slots
// shared by every condition of a route set, three-valued logic and the
// built-ins with edgeHub's run-time semantics.

#include <locale.h>

#include <algorithm>
#include <clocale>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <cwctype>
#include <functional>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/json_string.h"
#include "base/utf8.h"
#include "query/json.h"
#include "query/program.h"
#include "simdjson.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace edgeroute::query::internal {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Value Undef() { return Value(); }
Value Num(double d) {
  Value v;
  v.k = VK::kNum;
  v.n = d;
  return v;
}
Value Bool(bool b) {
  Value v;
  v.k = VK::kBool;
  v.b = b;
  return v;
}
Value Str(absl::string_view s) {
  Value v;
  v.k = VK::kStr;
  v.set_s(s);
  return v;
}

// Strings inside the evaluator are UTF-8 that may also hold encoded lone
// surrogates (from "\uD800" escapes in route constants, which .NET strings
// can hold too). Everything that enters from a message or a route text was
// repaired on the way in (ill-formed bytes read as U+FFFD), so this decoder
// never meets an ill-formed sequence; if it did, it would still read it as
// U+FFFD of at least one byte.
uint32_t Decode(absl::string_view s, size_t i, size_t* len) {
  return DecodeUtf8OrSurrogate(s, i, len);
}

// Length in UTF-16 code units.
size_t Utf16Length(absl::string_view s) {
  size_t units = 0;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++units;
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp = Decode(s, i, &len);
    units += cp >= 0x10000 ? 2 : 1;
    i += len;
  }
  return units;
}

// Byte offset of UTF-16 unit `units` (rounded up past a split pair).
size_t ByteOffset(absl::string_view s, size_t units) {
  size_t i = 0, u = 0;
  while (i < s.size() && u < units) {
    size_t len;
    uint32_t cp = Decode(s, i, &len);
    u += cp >= 0x10000 ? 2 : 1;
    i += len;
  }
  return i;
}


locale_t CLocale() {
  static locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
  return loc;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool Digits(absl::string_view s, size_t i, size_t n) {
  if (i + n > s.size()) return false;
  for (size_t k = 0; k < n; ++k) {
    if (!IsDigit(s[i + k])) return false;
  }
  return true;
}
int Num2(absl::string_view s, size_t i) {
  return (s[i] - '0') * 10 + (s[i + 1] - '0');
}

}  // namespace

bool ParseDotNetDouble(absl::string_view s, double* out) {
  auto is_white = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (!s.empty() && is_white(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_white(s.back())) s.remove_suffix(1);
  if (s.empty()) return false;
  {
    absl::string_view t = s;
    bool neg = false;
    if (t[0] == '-' || t[0] == '+') {
      neg = t[0] == '-';
      t.remove_prefix(1);
    }
    if (absl::EqualsIgnoreCase(t, "infinity") || t == "\xE2\x88\x9E") {
      *out = neg ? -std::numeric_limits<double>::infinity()
                 : std::numeric_limits<double>::infinity();
      return true;
    }
    if (absl::EqualsIgnoreCase(t, "nan")) {
      *out = kNaN;
      return true;
    }
  }
  char buf[512];
  size_t b = 0;
  std::string big;
  auto put = [&](char c) {
    if (b < sizeof(buf) - 1) {
      buf[b++] = c;
    } else {
      if (big.empty()) big.assign(buf, b);
      big.push_back(c);
    }
  };
  size_t i = 0;
  bool neg = false, sign = false, paren = false;
  if (s[i] == '(') {
    paren = true;
    neg = true;
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    sign = true;
    neg = s[i] == '-';
    ++i;
  }
  bool digits = false, decimal = false;
  while (i < s.size()) {
    char c = s[i];
    if (IsDigit(c)) {
      digits = true;
      put(c);
    } else if (c == '.' && !decimal) {
      decimal = true;
      put('.');
    } else if (c == ',' && digits && !decimal) {
      // thousands separator
    } else {
      break;
    }
    ++i;
  }
  if (!digits) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1;
    bool eneg = false;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) {
      eneg = s[j] == '-';
      ++j;
    }
    if (j < s.size() && IsDigit(s[j])) {
      put('e');
      if (eneg) put('-');
      while (j < s.size() && IsDigit(s[j])) put(s[j++]);
      i = j;
    }
  }
  if (i < s.size() && !sign && !paren && (s[i] == '+' || s[i] == '-')) {
    neg = s[i] == '-';
    ++i;
  }
  if (paren) {
    if (i >= s.size() || s[i] != ')') return false;
    ++i;
  }
  if (i != s.size()) return false;
  buf[b] = '\0';
  double v = big.empty() ? std::strtod(buf, nullptr)
                         : std::strtod(big.c_str(), nullptr);
  *out = neg ? -v : v;
  return true;
}

bool LooksLikeJsonDate(absl::string_view s) {
  if (s.empty()) return false;
  if (s[0] == '/') {
    if (s.size() < 9 || !absl::StartsWith(s, "/Date(") ||
        !absl::EndsWith(s, ")/")) {
      return false;
    }
    absl::string_view in = s.substr(6, s.size() - 8);
    size_t i = 0;
    if (i < in.size() && in[i] == '-') ++i;
    size_t d = 0;
    while (i < in.size() && IsDigit(in[i])) ++i, ++d;
    if (d == 0 || d > 19) return false;
    if (i == in.size()) return true;
    if (in[i] != '+' && in[i] != '-') return false;
    return in.size() - i - 1 == 4 && Digits(in, i + 1, 4);
  }
  if (s.size() < 19 || s.size() > 40 || !IsDigit(s[0]) || s[10] != 'T') {
    return false;
  }
  if (!Digits(s, 0, 4) || s[4] != '-' || !Digits(s, 5, 2) || s[7] != '-' ||
      !Digits(s, 8, 2)) {
    return false;
  }
  int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + Num2(s, 2);
  int month = Num2(s, 5), day = Num2(s, 8);
  if (year < 1 || month < 1 || month > 12 || day < 1) return false;
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int dim = kDays[month - 1];
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 2 && leap) dim = 29;
  if (day > dim) return false;
  size_t i = 11;
  if (!Digits(s, i, 2) || s[i + 2] != ':' || !Digits(s, i + 3, 2) ||
      s.size() < i + 8 || s[i + 5] != ':' || !Digits(s, i + 6, 2)) {
    return false;
  }
  if (Num2(s, i) > 23 || Num2(s, i + 3) > 59 || Num2(s, i + 6) > 59) {
    return false;
  }
  i += 8;
  if (i < s.size() && s[i] == '.') {
    size_t d = 0;
    ++i;
    while (i < s.size() && IsDigit(s[i]) && d < 7) ++i, ++d;
    if (d == 0) return false;
  }
  if (i == s.size()) return true;
  if (s[i] == 'Z' || s[i] == 'z') return i + 1 == s.size();
  if (s[i] != '+' && s[i] != '-') return false;
  ++i;
  if (!Digits(s, i, 2)) return false;
  i += 2;
  if (i == s.size()) return true;
  if (s[i] == ':') ++i;
  if (!Digits(s, i, 2) || Num2(s, i) > 59) return false;
  return i + 2 == s.size();
}

int CompareUtf16(absl::string_view a, absl::string_view b) {
  size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  int c = n == 0 ? 0 : std::memcmp(a.data(), b.data(), n);
  if (c == 0) {
    return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
  }
  while (i < n && a[i] == b[i]) ++i;
  // Back up to the start of the differing character.
  while (i > 0 && (static_cast<unsigned char>(a[i]) & 0xC0) == 0x80) --i;
  size_t la, lb;
  uint32_t ca = Decode(a, i, &la), cb = Decode(b, i, &lb);
  auto key = [](uint32_t cp) -> uint32_t {
    // Supplementary characters sort as their high surrogate (D800-DBFF),
    // below U+E000-U+FFFF.
    return cp >= 0x10000 ? (0xD800 + ((cp - 0x10000) >> 10)) * 0x10000 +
                               (0xDC00 + ((cp - 0x10000) & 0x3FF))
                         : cp * 0x10000;
  };
  uint32_t ka = key(ca), kb = key(cb);
  if (ka != kb) return ka < kb ? -1 : 1;
  return c < 0 ? -1 : 1;
}

struct Scratch::Impl {
  JsonTape tape;
  std::string buf;  // transcoded UTF-16/UTF-32 bodies
};

Scratch::Scratch(const Program& program) : impl_(new Impl) {
  app_gen_.assign(program.app_slots(), 0);
  sys_gen_.assign(program.sys_slots(), 0);
  body_gen_.assign(program.body_slots(), 0);
  qv_gen_.assign(program.qv_slots(), 0);
  qv_val_.resize(program.qv_slots());
  app_val_.resize(program.app_slots());
  sys_val_.resize(program.sys_slots());
  body_val_.resize(program.body_slots());
  unit_gen_.assign(program.plan_units(), 0);
  plan_values_.assign(program.plan_values(), kPlanUndefined);
  shape_temps_.assign(program.plan_shape_temps(), kPlanUndefined);
}

Scratch::~Scratch() = default;

void Scratch::NewMessage(absl::Span<const uint8_t> bytes) {
  msg_data_ = bytes.data();
  msg_size_ = bytes.size();
  message_arena_.Reset();
  ++gen_;
  if (gen_ == 0) {  // wrapped: forget everything
    std::fill(app_gen_.begin(), app_gen_.end(), 0);
    std::fill(sys_gen_.begin(), sys_gen_.end(), 0);
    std::fill(body_gen_.begin(), body_gen_.end(), 0);
    std::fill(qv_gen_.begin(), qv_gen_.end(), 0);
    std::fill(unit_gen_.begin(), unit_gen_.end(), 0);
    body_parsed_gen_ = 0;
    dollar_gen_ = 0;
    gen_ = 1;
  }
}

char* Arena::Alloc(size_t n) {
  while (true) {
    if (block_ < blocks_.size()) {
      if (used_ + n <= sizes_[block_]) {
        char* p = blocks_[block_].get() + used_;
        used_ += n;
        return p;
      }
      ++block_;
      used_ = 0;
      continue;
    }
    size_t size = std::max<size_t>(n, 4096);
    blocks_.emplace_back(new char[size]);
    sizes_.push_back(size);
    block_ = blocks_.size() - 1;
    used_ = 0;
  }
}

struct Evaluator {
  const Program& p;
  const MessageView& m;
  Scratch* s;

  PropertyValue App(int slot) {
    if (s->app_gen_[slot] != s->gen_) {
      s->app_val_[slot] = m.FindProperty(p.app_names_[slot]);
      s->app_gen_[slot] = s->gen_;
    }
    return s->app_val_[slot];
  }
  PropertyValue Sys(int slot) {
    if (s->sys_gen_[slot] != s->gen_) {
      s->sys_val_[slot] = m.FindSystemProperty(p.sys_names_[slot]);
      s->sys_gen_[slot] = s->gen_;
    }
    return s->sys_val_[slot];
  }
  // A property's value as the language reads it: ill-formed UTF-8 is
  // repaired (each maximal ill-formed subsequence reads as U+FFFD, as when
  // edgeHub decodes the bytes into a .NET string); the message keeps its
  // bytes.
  Value FromProperty(PropertyValue v) {
    Value r;
    if (v.has_string()) {
      r.k = VK::kStr;
      absl::string_view text = v.value;
      if (!IsAscii(text) && !simdjson::validate_utf8(text.data(), text.size())) {
        char* out = s->AllocForMessage(text.size() * kUtf8RepairGrowth);
        text = absl::string_view(out, ReplaceInvalidUtf8(text, out));
      }
      r.set_s(text);
    } else if (v.is_null()) {
      r.k = VK::kNullStr;
    }
    return r;
  }

  bool EnsureBody() {
    if (s->body_parsed_gen_ == s->gen_) return s->body_ok_;
    s->body_parsed_gen_ = s->gen_;
    s->body_ok_ = false;
    // FindSystemProperty for both names in one pass, trying the usual exact
    // spelling before case folding (the first match of each name wins).
    PropertyValue type, enc;
    bool have_type = false, have_enc = false;
    for (size_t i = 0, n = m.system_property_count();
         i < n && !(have_type && have_enc); ++i) {
      std::pair<absl::string_view, PropertyValue> prop = m.system_property(i);
      const absl::string_view name = prop.first;
      if (!have_type && name.size() == 11 &&
          (name == "contentType" ||
           EqualsIgnoreAsciiCase(name, "contentType"))) {
        type = prop.second;
        have_type = true;
      } else if (!have_enc && name.size() == 15 &&
                 (name == "contentEncoding" ||
                  EqualsIgnoreAsciiCase(name, "contentEncoding"))) {
        enc = prop.second;
        have_enc = true;
      }
    }
    if (!type.has_string() || !enc.has_string()) return false;
    // Exact spellings first: the common case without a case-folding loop.
    if (type.value != "application/json" &&
        !absl::EqualsIgnoreCase(type.value, "application/json")) {
      return false;
    }
    absl::string_view body = m.body();
    absl::string_view text;
    if (enc.value == "utf-8" || absl::EqualsIgnoreCase(enc.value, "utf-8")) {
      text = body;
    } else {
      bool utf16 = absl::EqualsIgnoreCase(enc.value, "utf-16");
      bool utf32 = absl::EqualsIgnoreCase(enc.value, "utf-32");
      if (!utf16 && !utf32) return false;
      std::string& buf = s->impl_->buf;
      size_t need = body.size() * 2 + 8;
      if (buf.size() < need) buf.resize(need);
      const unsigned char* in =
          reinterpret_cast<const unsigned char*>(body.data());
      size_t n = body.size();
      size_t i = 0, len = 0;
      while (i < n) {
        uint32_t cp;
        if (utf16) {
          if (i + 1 >= n) {
            cp = 0xFFFD;
            i = n;
          } else {
            uint32_t u = in[i] | (uint32_t(in[i + 1]) << 8);
            i += 2;
            if (IsHighSurrogate(u) && i + 1 < n) {
              uint32_t u2 = in[i] | (uint32_t(in[i + 1]) << 8);
              if (IsLowSurrogate(u2)) {
                i += 2;
                cp = CombineSurrogates(u, u2);
              } else {
                cp = kReplacementCharacter;
              }
            } else if (IsSurrogate(u)) {
              cp = kReplacementCharacter;
            } else {
              cp = u;
            }
          }
        } else {
          if (i + 3 >= n) {
            cp = 0xFFFD;
            i = n;
          } else {
            cp = in[i] | (uint32_t(in[i + 1]) << 8) |
                 (uint32_t(in[i + 2]) << 16) | (uint32_t(in[i + 3]) << 24);
            i += 4;
            if (cp > 0x10FFFF || IsSurrogate(cp)) cp = kReplacementCharacter;
          }
        }
        len += EncodeUtf8(cp, &buf[len]);
      }
      text = absl::string_view(buf.data(), len);
    }
    // Encoding.GetString keeps a byte-order mark as U+FEFF, which
    // Newtonsoft does not accept before a value.
    if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
        static_cast<unsigned char>(text[1]) == 0xBB &&
        static_cast<unsigned char>(text[2]) == 0xBF) {
      return false;
    }
    if (!s->impl_->tape.Parse(text)) return false;
    s->body_ok_ = true;
    return true;
  }

  // A JSON string's text: unescaped, and with invalid UTF-8 replaced by
  // U+FFFD as .NET's decoder does.
  absl::string_view JsonString(const JsonTape& tape, const JsonTape::Entry& e) {
    absl::string_view raw = tape.raw(e);
    if (e.flags & JsonTape::kEscaped) {
      char* out = s->AllocForMessage(raw.size());
      raw = absl::string_view(out, UnescapeValidJsonString(raw, out));
    }
    if ((e.flags & JsonTape::kHighBit) &&
        !simdjson::validate_utf8(raw.data(), raw.size())) {
      char* out = s->AllocForMessage(raw.size() * kUtf8RepairGrowth);
      raw = absl::string_view(out, ReplaceInvalidUtf8(raw, out));
    }
    return raw;
  }

  Value FromJson(const JsonTape& tape, uint32_t index) {
    const JsonTape::Entry& e = tape.entry(index);
    switch (e.type) {
      case JsonTape::kNull: {
        Value v;
        v.k = VK::kNull;
        return v;
      }
      case JsonTape::kTrue:
        return Bool(true);
      case JsonTape::kFalse:
        return Bool(false);
      case JsonTape::kNumber: {
        // As strtod: overflow gives +-infinity, underflow 0, as double.Parse.
        double d = 0;
        tape.NumberValue(e, &d);
        if ((e.flags & JsonTape::kInteger) && d == 0) d = 0;  // -0 is 0
        return Num(d);
      }
      case JsonTape::kString: {
        absl::string_view v = JsonString(tape, e);
        if (LooksLikeJsonDate(v)) return Undef();
        return Str(v);
      }
      default:
        return Undef();  // object or array
    }
  }

  bool KeyEquals(const JsonTape& tape, const JsonTape::Entry& key,
                 absl::string_view name) {
    absl::string_view raw = tape.raw(key);
    if (!(key.flags & JsonTape::kEscaped)) return raw == name;
    return JsonString(tape, key) == name;
  }

  // Counts matches of segments[si..] (index ii of segment si) under entry
  // `e`, keeping the first; stops after 2.
  void Resolve(const JsonTape& tape, const BodyPath& path, size_t si, size_t ii,
               uint32_t e, int* count, uint32_t* found) {
    if (*count > 1) return;
    if (si == path.segments.size()) {
      if (++*count == 1) *found = e;
      return;
    }
    const JsonTape::Entry& entry = tape.entry(e);
    const BodyPath::Segment& seg = path.segments[si];
    if (ii == 0) {
      if (seg.name == "*") {
        // Wildcard: every member value or array item.
        if (entry.type == JsonTape::kObject) {
          for (uint32_t k = e + 1; k < entry.next; k = tape.entry(k + 1).next) {
            Resolve(tape, path, si, 1, k + 1, count, found);
          }
        } else if (entry.type == JsonTape::kArray) {
          for (uint32_t k = e + 1; k < entry.next; k = tape.entry(k).next) {
            Resolve(tape, path, si, 1, k, count, found);
          }
        }
        return;
      }
      if (entry.type != JsonTape::kObject) return;
      uint32_t last = 0;
      bool have = false;
      for (uint32_t k = e + 1; k < entry.next; k = tape.entry(k + 1).next) {
        if (KeyEquals(tape, tape.entry(k), seg.name)) {
          last = k + 1;  // duplicate keys: the last one wins
          have = true;
        }
      }
      if (have) Resolve(tape, path, si, 1, last, count, found);
      return;
    }
    if (ii - 1 < seg.indexes.size()) {
      if (entry.type != JsonTape::kArray) return;
      uint32_t k = e + 1;
      for (uint32_t skip = seg.indexes[ii - 1]; skip > 0 && k < entry.next;
           --skip) {
        k = tape.entry(k).next;
      }
      if (k >= entry.next) return;
      Resolve(tape, path, si, ii + 1, k, count, found);
      return;
    }
    Resolve(tape, path, si + 1, 0, e, count, found);
  }

  Value Body(int slot) {
    if (s->body_gen_[slot] == s->gen_) return s->body_val_[slot];
    return BodySlow(slot);
  }

  __attribute__((noinline)) Value BodySlow(int slot) {
    Value v;
    const BodyPath& path = p.body_paths_[slot];
    if (EnsureBody() && !path.junk) {
      int count = 0;
      uint32_t found = 0;
      const JsonTape& tape = s->impl_->tape;
      if (path.top_member) {
        // One member of the top-level object (the usual $body.name): the
        // same walk as Resolve without the recursion. Last duplicate wins.
        const absl::string_view name = path.segments[0].name;
        const char* const text = tape.text().data();
        const uint32_t members_end = tape.entry(0).next;
        for (uint32_t k = 1; k < members_end; k = tape.entry(k + 1).next) {
          const JsonTape::Entry& key = tape.entry(k);
          if (key.flags & JsonTape::kEscaped) {
            if (KeyEquals(tape, key, name)) {
              found = k + 1;
              count = 1;
            }
          } else if (key.end - key.begin == name.size() &&
                     std::memcmp(text + key.begin, name.data(), name.size()) ==
                         0) {
            found = k + 1;
            count = 1;
          }
        }
      } else {
        Resolve(tape, path, 0, 0, 0, &count, &found);
      }
      if (count == 0) {
        v.k = VK::kMissing;
      } else if (count == 1) {
        v = FromJson(tape, found);
      }
    }
    s->body_gen_[slot] = s->gen_;
    s->body_val_[slot] = v;
    return v;
  }

  static bool Defined(const Value& v, SType t) {
    switch (t) {
      case SType::kNumber:
        return !std::isnan(v.n);
      case SType::kNull:
        return true;
      case SType::kUndefined:
        return false;
      default:
        return v.k != VK::kUndef;
    }
  }

  __attribute__((noinline)) static Value Compare(uint8_t op, SType mode,
                                                 const Value& l,
                                                 const Value& r) {
    int c = 0;
    switch (mode) {
      case SType::kString:
        if (l.k != VK::kStr || r.k != VK::kStr) return Undef();
        c = CompareUtf16(l.s(), r.s());
        break;
      case SType::kNumber:
        if (std::isnan(l.n) || std::isnan(r.n)) return Undef();
        c = l.n < r.n ? -1 : (l.n > r.n ? 1 : 0);
        break;
      case SType::kBool:
        if (l.k != VK::kBool || r.k != VK::kBool) return Undef();
        c = int(l.b) - int(r.b);
        break;
      case SType::kNull:
        c = 0;
        break;
      case SType::kUndefined:
        return Undef();
      case SType::kQV: {
        if (l.k == VK::kUndef || r.k == VK::kUndef) return Undef();
        // An undefined number (NaN) wraps as an undefined body value.
        if ((l.k == VK::kNum && std::isnan(l.n)) ||
            (r.k == VK::kNum && std::isnan(r.n))) {
          return Undef();
        }
        auto rank = [](VK k) {
          switch (k) {
            case VK::kBool:
              return 0;
            case VK::kNum:
              return 1;
            case VK::kStr:
            case VK::kNullStr:
              return 2;
            default:
              return 3;  // null
          }
        };
        int rl = rank(l.k), rr = rank(r.k);
        if (rl != rr) {
          c = rl < rr ? -1 : 1;
        } else if (rl == 0) {
          c = int(l.b) - int(r.b);
        } else if (rl == 1) {
          if (std::isnan(l.n) || std::isnan(r.n)) return Undef();
          c = l.n < r.n ? -1 : (l.n > r.n ? 1 : 0);
        } else if (rl == 2) {
          bool ln = l.k == VK::kNullStr, rn = r.k == VK::kNullStr;
          if (ln || rn) {
            c = (ln && rn) ? 0 : (ln ? -1 : 1);
          } else {
            c = CompareUtf16(l.s(), r.s());
          }
        } else {
          c = 0;
        }
        break;
      }
    }
    switch (op) {
      case 0:
        return Bool(c == 0);
      case 1:
        return Bool(c != 0);
      case 2:
        return Bool(c < 0);
      case 3:
        return Bool(c <= 0);
      case 4:
        return Bool(c > 0);
      default:
        return Bool(c >= 0);
    }
  }

  static double Arith(uint8_t op, double a, double b) {
    switch (op) {
      case '+':
        return a + b;
      case '-':
        return a - b;
      case '*':
        return a * b;
      case '/':
        return a / b;
      default:
        return std::fmod(a, b);
    }
  }

  __attribute__((noinline)) Value Concat(const std::vector<int>& args) {
    // Each argument is evaluated once (re-evaluating would be exponential in
    // the nesting of ||); more than kMax arguments are evaluated twice.
    constexpr size_t kMax = 32;
    Value vals[kMax];
    size_t total = 0;
    for (size_t i = 0; i < args.size(); ++i) {
      Value v = Eval(args[i]);
      if (i < kMax) vals[i] = v;
      if (v.k == VK::kStr) {
        total += v.s().size();
      } else if (v.k != VK::kNullStr) {
        return Undef();
      }
    }
    char* out = s->Alloc(total + 1);
    size_t pos = 0;
    for (size_t i = 0; i < args.size(); ++i) {
      Value v = i < kMax ? vals[i] : Eval(args[i]);
      if (v.k == VK::kStr && !v.s().empty()) {
        std::memcpy(out + pos, v.s().data(), v.s().size());
        pos += v.s().size();
      }
    }
    return Str(absl::string_view(out, pos));
  }

  __attribute__((noinline)) Value CaseMap(const Value& v, bool upper) {
    if (v.k != VK::kStr) return Undef();
    // Every sequence of `len` bytes is written as at most 3 * len bytes: a
    // one-byte sequence decodes to at most U+FFFD (3 bytes), and a mapping
    // that would need more than 3 * len is not applied (the character is
    // kept; it is at most as long as its own sequence, or 3 bytes for
    // U+FFFD). So 3 * size bytes always suffice, whatever Decode returns.
    const absl::string_view in = v.s();
    char* out = s->Alloc(in.size() * 3 + 4);
    size_t pos = 0;
    locale_t loc = CLocale();
    for (size_t i = 0; i < in.size();) {
      unsigned char c = static_cast<unsigned char>(in[i]);
      if (c < 0x80) {
        out[pos++] = upper ? absl::ascii_toupper(c) : absl::ascii_tolower(c);
        ++i;
        continue;
      }
      size_t len;
      uint32_t cp = Decode(in, i, &len);
      uint32_t mapped = cp;
      if (loc != (locale_t)0) {
        mapped = upper ? uint32_t(towupper_l(wint_t(cp), loc))
                       : uint32_t(towlower_l(wint_t(cp), loc));
      }
      if (mapped > 0x10FFFF || EncodedUtf8Length(mapped) > 3 * len) mapped = cp;
      pos += EncodeUtf8(mapped, out + pos);
      i += len;
    }
    return Str(absl::string_view(out, pos));
  }

  __attribute__((noinline)) Value Call(const Node& n) {
    Fn fn = Fn(n.sub);
    Value a = Eval(n.args[0]);
    switch (fn) {
      case Fn::kAbs:
      case Fn::kCeiling:
      case Fn::kFloor:
      case Fn::kExp:
      case Fn::kSign:
      case Fn::kSqrt:
      case Fn::kSquare: {
        if (a.k != VK::kNum) return Num(kNaN);
        double x = a.n;
        switch (fn) {
          case Fn::kAbs:
            return Num(std::fabs(x));
          case Fn::kCeiling:
            return Num(std::ceil(x));
          case Fn::kFloor:
            return Num(std::floor(x));
          case Fn::kExp:
            return Num(std::exp(x));
          case Fn::kSign:
            return Num(std::isnan(x) ? kNaN
                                     : (x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0)));
          case Fn::kSqrt:
            return Num(std::sqrt(x));
          default:
            return Num(x * x);
        }
      }
      case Fn::kPower: {
        Value b = Eval(n.args[1]);
        if (a.k != VK::kNum || b.k != VK::kNum) return Num(kNaN);
        return Num(std::pow(a.n, b.n));
      }
      case Fn::kAsNumber: {
        if (a.k == VK::kNum) return a;
        double d;
        if (a.k == VK::kStr && ParseDotNetDouble(a.s(), &d)) return Num(d);
        return Num(kNaN);
      }
      case Fn::kIsDefined:
        return Bool(Defined(a, n.ltype));
      case Fn::kIsNull:
        switch (n.ltype) {
          case SType::kString:
            return Bool(a.k == VK::kNullStr);
          case SType::kNull:
            return Bool(true);
          case SType::kQV:
            if (a.k == VK::kUndef) return Undef();
            return Bool(a.k != VK::kMissing);
          default:
            return Bool(false);
        }
      case Fn::kIsNumber:
        return Bool(a.k == VK::kNum && std::isfinite(a.n) &&
                    (n.ltype == SType::kNumber || n.ltype == SType::kQV));
      case Fn::kIsString:
        return Bool(a.k == VK::kStr &&
                    (n.ltype == SType::kString || n.ltype == SType::kQV));
      case Fn::kIsBool:
        if (n.ltype == SType::kBool) {
          return a.k == VK::kBool ? Bool(true) : Undef();
        }
        if (n.ltype == SType::kQV && a.k == VK::kUndef) return Undef();
        return Bool(n.ltype == SType::kQV && a.k == VK::kBool);
      case Fn::kLength:
        if (a.k != VK::kStr) return Num(kNaN);
        return Num(double(Utf16Length(a.s())));
      case Fn::kLower:
        return CaseMap(a, false);
      case Fn::kUpper:
        return CaseMap(a, true);
      case Fn::kSubstring2:
      case Fn::kSubstring3: {
        Value st = Eval(n.args[1]);
        Value cnt;
        if (fn == Fn::kSubstring3) cnt = Eval(n.args[2]);
        if (a.k != VK::kStr || st.k != VK::kNum) return Undef();
        if (fn == Fn::kSubstring3 && cnt.k != VK::kNum) return Undef();
        double len = double(Utf16Length(a.s()));
        if (std::isnan(st.n)) return Undef();
        double start = std::trunc(st.n);
        if (fn == Fn::kSubstring2) {
          if (!(start >= 0 && start <= len)) return Undef();
          return Str(a.s().substr(ByteOffset(a.s(), size_t(start))));
        }
        if (std::isnan(cnt.n)) return Undef();
        double count = std::trunc(cnt.n);
        if (!(start >= 0 && start < len)) return Undef();
        if (!(count >= 0 && count <= len - start)) return Undef();
        size_t b = ByteOffset(a.s(), size_t(start));
        size_t e = ByteOffset(a.s(), size_t(start + count));
        return Str(a.s().substr(b, e - b));
      }
      case Fn::kIndexOf:
      case Fn::kStartsWith:
      case Fn::kEndsWith:
      case Fn::kContains: {
        Value b = Eval(n.args[1]);
        if (a.k != VK::kStr || b.k != VK::kStr) {
          return fn == Fn::kIndexOf ? Num(kNaN) : Undef();
        }
        switch (fn) {
          case Fn::kIndexOf: {
            size_t at = a.s().find(b.s());
            if (at == absl::string_view::npos) return Num(-1);
            return Num(double(Utf16Length(a.s().substr(0, at))));
          }
          case Fn::kStartsWith:
            return Bool(absl::StartsWith(a.s(), b.s()));
          case Fn::kEndsWith:
            return Bool(absl::EndsWith(a.s(), b.s()));
          default:
            return Bool(absl::StrContains(a.s(), b.s()));
        }
      }
    }
    return Undef();
  }

  // A kBody load: a "$body.x" application property if there is one, else
  // the body path; cached per message in qv slot `qv`.
  Value BodyLoad(int qv, int slot, int slot2) {
    if (s->qv_gen_[qv] == s->gen_) return s->qv_val_[qv];
    return BodyLoadSlow(qv, slot, slot2);
  }
  __attribute__((noinline)) Value BodyLoadSlow(int qv, int slot, int slot2) {
    Value v;
    PropertyValue prop;
    if (slot2 >= 0) {
      if (s->dollar_gen_ != s->gen_) {
        s->dollar_gen_ = s->gen_;
        s->dollar_props_ = m.AnyPropertyKeyStartsWith('$');
      }
      if (s->dollar_props_) prop = App(slot2);
    }
    v = prop.missing() ? Body(slot) : FromProperty(prop);
    s->qv_gen_[qv] = s->gen_;
    s->qv_val_[qv] = v;
    return v;
  }

  // A property or body load (`op` of a load node and its slots).
  Value Load(Op op, int slot, int slot2, int qv) {
    switch (op) {
      case Op::kAppProp:
        return FromProperty(App(slot));
      case Op::kSysProp:
        return FromProperty(Sys(slot));
      case Op::kDollarProp: {
        PropertyValue v = App(slot);
        if (!v.missing()) return FromProperty(v);
        return FromProperty(Sys(slot2));
      }
      default:  // kBody
        return BodyLoad(qv, slot, slot2);
    }
  }

  // The nodes most conditions consist of, in a function with a small frame;
  // everything else is in EvalSlow.
  Value Eval(int i) {
    const Node& n = p.nodes_[i];
    switch (n.op) {
      case Op::kConst:
        return n.constant;
      case Op::kCompareLoadConst:
        return CompareLoadConst(n);
      case Op::kAnd:
      case Op::kOr: {
        if (n.mode != SType::kBool) break;
        const bool is_and = n.op == Op::kAnd;
        Value l = Eval(n.a);
        // False AND x = False, True OR x = True (see EvalSlow).
        if (l.k == VK::kBool && l.b != is_and) return l;
        Value r = Eval(n.b);
        return AndOrBool(is_and, l, r);
      }
      default:
        break;
    }
    return EvalSlow(i);
  }

  static Value AndOrBool(bool is_and, const Value& l, const Value& r) {
    bool lf = l.k == VK::kBool && !l.b, rf = r.k == VK::kBool && !r.b;
    bool lt = l.k == VK::kBool && l.b, rt = r.k == VK::kBool && r.b;
    if (is_and) {
      if (lf || rf) return Bool(false);
      if (lt && rt) return Bool(true);
      return Undef();
    }
    if (lt || rt) return Bool(true);
    if (lf && rf) return Bool(false);
    return Undef();
  }

  __attribute__((always_inline)) Value CompareLoadConst(const Node& n) {
    // The load and the constant were copied into this node.
    Value v = Load(n.load_op, n.slot, n.slot2, n.qv);
    const Value& c = n.constant;
    if (v.k == VK::kNum && c.k == VK::kNum && !std::isnan(v.n) &&
        !std::isnan(c.n)) {
      double l = n.flip ? c.n : v.n, r = n.flip ? v.n : c.n;
      switch (n.sub) {
        case 0:
          return Bool(l == r);
        case 1:
          return Bool(l != r);
        case 2:
          return Bool(l < r);
        case 3:
          return Bool(l <= r);
        case 4:
          return Bool(l > r);
        default:
          return Bool(l >= r);
      }
    }
    if (n.sub <= 1 && v.k == VK::kStr && c.k == VK::kStr) {
      bool eq = v.s() == c.s();
      return Bool(n.sub == 0 ? eq : !eq);
    }
    return n.flip ? Compare(n.sub, n.mode, c, v) : Compare(n.sub, n.mode, v, c);
  }

  __attribute__((noinline)) Value EvalSlow(int i) {
    const Node& n = p.nodes_[i];
    switch (n.op) {
      case Op::kConst:
        return n.constant;
      case Op::kAppProp:
        return FromProperty(App(n.slot));
      case Op::kSysProp:
        return FromProperty(Sys(n.slot));
      case Op::kDollarProp: {
        PropertyValue v = App(n.slot);
        if (!v.missing()) return FromProperty(v);
        return FromProperty(Sys(n.slot2));
      }
      case Op::kBody:
        return BodyLoad(n.qv, n.slot, n.slot2);
      case Op::kNeg: {
        Value v = Eval(n.a);
        return Num(-v.n);
      }
      case Op::kNot: {
        Value v = Eval(n.a);
        return v.k == VK::kBool ? Bool(!v.b) : Undef();
      }
      case Op::kNotQV: {
        Value v = Eval(n.a);
        return v.k == VK::kBool ? Bool(!v.b) : Undef();
      }
      case Op::kArith: {
        Value l = Eval(n.a);
        Value r = Eval(n.b);
        return Num(Arith(n.sub, l.n, r.n));
      }
      case Op::kArithQV: {
        Value l = Eval(n.a);
        Value r = Eval(n.b);
        if (l.k != VK::kNum || r.k != VK::kNum) return Undef();
        return Num(Arith(n.sub, l.n, r.n));
      }
      case Op::kConcat:
        return Concat(n.args);
      case Op::kCompare: {
        Value l = Eval(n.a);
        Value r = Eval(n.b);
        return Compare(n.sub, n.mode, l, r);
      }
      case Op::kCompareLoadConst:
        return CompareLoadConst(n);
      case Op::kAnd:
      case Op::kOr: {
        bool is_and = n.op == Op::kAnd;
        if (n.mode == SType::kNull && (is_and || n.type == SType::kNull)) {
          Value v;  // null AND x is null whatever x is; nothing to evaluate
          v.k = VK::kNull;
          return v;
        }
        Value l = Eval(n.a);
        // Evaluation has no side effects, so the three-valued logic may
        // skip the right side once the left decides: False AND x = False,
        // True OR x = True (for Bool operands; QV logic needs both).
        if (n.mode == SType::kBool && l.k == VK::kBool && l.b != is_and) {
          return l;
        }
        Value r = Eval(n.b);
        switch (n.mode) {
          case SType::kQV:
            if (l.k != VK::kBool || r.k != VK::kBool) return Undef();
            return Bool(is_and ? (l.b && r.b) : (l.b || r.b));
          case SType::kNull: {
            if (is_and || n.type == SType::kNull) {
              Value v;
              v.k = VK::kNull;
              return v;
            }
            return n.ltype == SType::kNull ? r : l;
          }
          case SType::kUndefined:
            return Undef();
          default:
            return AndOrBool(is_and, l, r);
        }
      }
      case Op::kCoalesce: {
        Value l = Eval(n.a);
        if (Defined(l, n.mode == SType::kQV ? n.ltype : n.mode)) return l;
        return Eval(n.b);
      }
      case Op::kCall:
        return Call(n);
    }
    return Undef();
  }
};

namespace {

Tri Final(const Value& v, SType t) {
  switch (t) {
    case SType::kBool:
    case SType::kQV:
      if (v.k == VK::kBool) return v.b ? Tri::kTrue : Tri::kFalse;
      return Tri::kUndefined;
    case SType::kNull:
      return Tri::kFalse;
    default:
      return Tri::kUndefined;
  }
}

std::string Show(const Value& v, SType t) {
  switch (v.k) {
    case VK::kUndef:
      return "undefined";
    case VK::kNull:
      return "null";
    case VK::kMissing:
      return "null (no such body path)";
    case VK::kBool:
      return v.b ? "true" : "false";
    case VK::kNum:
      if (std::isnan(v.n)) return "undefined (NaN)";
      return absl::StrCat(v.n);
    case VK::kStr:
      return absl::StrCat("'", v.s(), "'");
    case VK::kNullStr:
      return "null";
  }
  (void)t;
  return "?";
}

void ExplainNode(const Program& p, const std::vector<Node>& nodes, int i,
                 int depth, absl::string_view text, Evaluator* ev,
                 std::string* out) {
  const Node& n = nodes[i];
  Value v = ev->Eval(i);
  absl::string_view src;
  if (n.end > n.begin && n.end <= text.size()) {
    src = text.substr(n.begin, n.end - n.begin);
  }
  absl::StrAppend(out, std::string(size_t(depth) * 2, ' '), src, "  ->  ",
                  Show(v, n.type), "  (", STypeName(n.type), ")\n");
  for (int k : {n.a, n.b, n.c}) {
    if (k >= 0) ExplainNode(p, nodes, k, depth + 1, text, ev, out);
  }
  for (int k : n.args) ExplainNode(p, nodes, k, depth + 1, text, ev, out);
}

}  // namespace

Value Program::FoldNode(int i) {
  Scratch tmp(*this);
  MessageView empty;
  tmp.Begin(empty);
  Evaluator ev{*this, empty, &tmp};
  Value v = ev.Eval(i);
  if (v.k == VK::kStr) {
    strings_.emplace_back(v.s());
    v.set_s(strings_.back());
  }
  return v;
}

Tri Program::Evaluate(int root, const MessageView& message,
                      Scratch* scratch) const {
  scratch->Begin(message);
  Evaluator ev{*this, message, scratch};
  return Final(ev.Eval(root), nodes_[root].type);
}

std::string Program::Explain(int root, absl::string_view text,
                             const MessageView& message,
                             Scratch* scratch) const {
  scratch->Reset();
  scratch->Begin(message);
  Evaluator ev{*this, message, scratch};
  std::string out;
  ExplainNode(*this, nodes_, root, 0, text, &ev, &out);
  return out;
}

std::unique_ptr<Scratch> Program::NewScratch() const {
  return std::make_unique<Scratch>(*this);
}

// ---------------------------------------------------------------------------
// The route-set plan.

namespace {

uint8_t PlanTri(Tri t) {
  switch (t) {
    case Tri::kTrue:
      return kPlanTrue;
    case Tri::kFalse:
      return kPlanFalse;
    default:
      return kPlanUndefined;
  }
}

#if defined(__SSE2__)
// 4 comparison bits -> 4 result bytes (kPlanTrue or kPlanFalse each), in
// memory order on a little-endian machine.
constexpr uint32_t PlanBytes(int bits) {
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) {
    r |= uint32_t((bits >> i) & 1 ? kPlanTrue : kPlanFalse) << (8 * i);
  }
  return r;
}
constexpr uint32_t kPlanBytes[16] = {
    PlanBytes(0),  PlanBytes(1),  PlanBytes(2),  PlanBytes(3),
    PlanBytes(4),  PlanBytes(5),  PlanBytes(6),  PlanBytes(7),
    PlanBytes(8),  PlanBytes(9),  PlanBytes(10), PlanBytes(11),
    PlanBytes(12), PlanBytes(13), PlanBytes(14), PlanBytes(15)};
#endif

// Formula operators on 16 routes at once (the plan's byte encoding).
#if defined(__SSE2__)
struct Min16 {
  __m128i operator()(__m128i x, __m128i y) const { return _mm_min_epu8(x, y); }
};
struct Max16 {
  __m128i operator()(__m128i x, __m128i y) const { return _mm_max_epu8(x, y); }
};
struct Not16 {
  __m128i operator()(__m128i x, __m128i) const {
    return _mm_sub_epi8(_mm_set1_epi8(char(kPlanTrue)), x);
  }
};
#else
struct Min16 {};
struct Max16 {};
struct Not16 {};
#endif

uint8_t PlanBool(const Value& v) {
  if (v.k != VK::kBool) return kPlanUndefined;
  return v.b ? kPlanTrue : kPlanFalse;
}

// The operator that puts the load on the left: c < v is v > c.
uint8_t FlipComparison(uint8_t sub) {
  switch (sub) {
    case 2:
      return 4;
    case 3:
      return 5;
    case 4:
      return 2;
    case 5:
      return 3;
    default:
      return sub;  // = and != are symmetric
  }
}

// Identifies a constant for de-duplication (compile time only).
std::string ConstantKey(const Value& v) {
  std::string key(1, char(v.k));
  switch (v.k) {
    case VK::kNum: {
      uint64_t bits;
      std::memcpy(&bits, &v.n, sizeof(bits));
      absl::StrAppend(&key, bits);
      break;
    }
    case VK::kStr:
      key.append(v.s().data(), v.s().size());
      break;
    case VK::kBool:
      key.push_back(v.b ? '1' : '0');
      break;
    default:
      break;
  }
  return key;
}

}  // namespace

void Program::BuildPlan(const std::vector<int>& roots,
                        const std::vector<uint32_t>& source_of,
                        size_t sources) {
  constexpr uint32_t kTemp = 0x80000000u;  // temporaries, numbered later
  absl::flat_hash_map<std::string, uint32_t> group_index, atom_index;
  uint32_t atoms = 0;
  plan_groups_.clear();
  plan_generics_.clear();
  plan_units_.clear();
  plan_deps_.clear();
  plan_code_.clear();
  plan_routes_.clear();
  plan_temps_ = 0;
  std::vector<uint32_t> route_deps;
  uint32_t temps = 0;

  auto add_dep = [&](uint32_t unit) {
    if (std::find(route_deps.begin(), route_deps.end(), unit) ==
        route_deps.end()) {
      route_deps.push_back(unit);
    }
  };
  // Groups are per route source, so that evaluating the routes of one
  // source (the router's candidates) never compares constants of others.
  uint32_t route_source = 0;
  auto group_atom = [&](const Node& n) -> uint32_t {
    std::string gkey = absl::StrCat(route_source, ":", int(n.load_op), ",",
                                    n.slot, ",", n.slot2, ",", n.qv);
    auto [git, gnew] = group_index.try_emplace(gkey, 0);
    if (gnew) {
      git->second = uint32_t(plan_units_.size());
      PlanGroup g;
      g.load_op = n.load_op;
      g.slot = n.slot;
      g.slot2 = n.slot2;
      g.qv = n.qv;
      plan_groups_.push_back(std::move(g));
      plan_units_.push_back({true, uint32_t(plan_groups_.size() - 1)});
    }
    const uint32_t unit = git->second;
    add_dep(unit);
    std::string akey = absl::StrCat(unit, ",", int(n.sub), ",", n.flip, ",",
                                    int(n.mode), ",", ConstantKey(n.constant));
    auto [ait, anew] = atom_index.try_emplace(akey, 0);
    if (anew) {
      ait->second = atoms++;
      PlanGroup& g = plan_groups_[plan_units_[unit].index];
      PlanAtom a;
      a.sub = n.sub;
      a.flip = n.flip;
      a.mode = n.mode;
      a.constant = n.constant;
      a.out = ait->second;
      const uint32_t k = uint32_t(g.atoms.size());
      g.atoms.push_back(a);
      if (a.constant.k == VK::kNum && !std::isnan(a.constant.n)) {
        const uint8_t op = a.flip ? FlipComparison(a.sub) : a.sub;
        g.num_const[op].push_back(a.constant.n);
      } else {
        g.not_num.push_back(k);
      }
      if (a.sub <= 1 && a.constant.k == VK::kStr) {
        g.str_eq.push_back(k);
      } else {
        g.not_str.push_back(k);
      }
    }
    return ait->second;
  };
  // Returns the value index of node i's three-valued result, emitting
  // formula code for bool AND / OR / NOT.
  std::function<uint32_t(int)> formula = [&](int i) -> uint32_t {
    const Node& n = nodes_[i];
    if ((n.op == Op::kAnd || n.op == Op::kOr) && n.mode == SType::kBool) {
      PlanInstr in;
      in.code = n.op == Op::kAnd ? PlanInstr::kAnd : PlanInstr::kOr;
      in.a = formula(n.a);
      in.b = formula(n.b);
      in.dest = kTemp | temps++;
      plan_code_.push_back(in);
      return in.dest;
    }
    if (n.op == Op::kNot) {
      PlanInstr in;
      in.code = PlanInstr::kNot;
      in.a = formula(n.a);
      in.b = in.a;
      in.dest = kTemp | temps++;
      plan_code_.push_back(in);
      return in.dest;
    }
    if (n.op == Op::kCompareLoadConst) return group_atom(n);
    plan_generics_.push_back({i, atoms++});
    plan_units_.push_back({false, uint32_t(plan_generics_.size() - 1)});
    add_dep(uint32_t(plan_units_.size() - 1));
    return plan_generics_.back().out;
  };

  for (size_t i = 0; i < roots.size(); ++i) {
    const int root = roots[i];
    route_source = source_of[i];
    PlanRoute r;
    route_deps.clear();
    temps = 0;
    r.code_begin = uint32_t(plan_code_.size());
    const Node& n = nodes_[root];
    if (n.type == SType::kBool || n.type == SType::kUndefined) {
      r.result = formula(root);
    } else {
      // Not a bool (null, a body value...): converted as a whole by Final.
      plan_generics_.push_back({root, atoms++});
      plan_units_.push_back({false, uint32_t(plan_generics_.size() - 1)});
      add_dep(uint32_t(plan_units_.size() - 1));
      r.result = plan_generics_.back().out;
    }
    r.code_end = uint32_t(plan_code_.size());
    r.deps_begin = uint32_t(plan_deps_.size());
    plan_deps_.insert(plan_deps_.end(), route_deps.begin(), route_deps.end());
    r.deps_end = uint32_t(plan_deps_.size());
    plan_routes_.push_back(r);
    plan_temps_ = std::max<size_t>(plan_temps_, temps);
  }
  // Temporaries live after the atoms.
  plan_atoms_ = atoms;
  auto fix = [&](uint32_t* v) {
    if (*v & kTemp) *v = (*v & ~kTemp) + atoms;
  };
  for (PlanInstr& in : plan_code_) {
    fix(&in.a);
    fix(&in.b);
    fix(&in.dest);
  }
  for (PlanRoute& r : plan_routes_) fix(&r.result);

  // Renumber the atoms so that each group's number comparisons of one
  // operator have consecutive results.
  std::vector<uint32_t> renumber(atoms, 0);
  uint32_t next = 0;
  for (PlanGroup& g : plan_groups_) {
    // num_const[op] lists these atoms' constants in atom order.
    for (uint8_t op = 0; op < 6; ++op) {
      g.num_first[op] = next;
      for (const PlanAtom& a : g.atoms) {
        if (a.constant.k == VK::kNum && !std::isnan(a.constant.n) &&
            (a.flip ? FlipComparison(a.sub) : a.sub) == op) {
          renumber[a.out] = next++;
        }
      }
    }
    std::vector<bool> is_str(g.atoms.size(), false);
    for (uint8_t sub : {0, 1}) {
      (sub == 0 ? g.str_eq_first : g.str_ne_first) = next;
      for (uint32_t k : g.str_eq) {
        if (g.atoms[k].sub != sub) continue;
        is_str[k] = true;
        renumber[g.atoms[k].out] = next++;
      }
      (sub == 0 ? g.str_eq_count : g.str_ne_count) =
          next - (sub == 0 ? g.str_eq_first : g.str_ne_first);
    }
    for (uint32_t k : g.not_num) {
      if (!is_str[k]) renumber[g.atoms[k].out] = next++;
    }
    for (PlanAtom& a : g.atoms) a.out = renumber[a.out];
    if (g.str_eq.size() > 8) {
      // Result indexes of the atoms comparing with each distinct constant.
      absl::flat_hash_map<absl::string_view, std::vector<uint32_t>> by_value;
      for (uint32_t k : g.str_eq) {
        by_value[g.atoms[k].constant.s()].push_back(g.atoms[k].out);
      }
      for (auto& [value, outs] : by_value) {
        const uint32_t begin = uint32_t(g.str_hits.size());
        g.str_hits.insert(g.str_hits.end(), outs.begin(), outs.end());
        g.str_index[value] = {begin, uint32_t(g.str_hits.size())};
      }
    }
  }
  for (PlanGeneric& g : plan_generics_) {
    renumber[g.out] = next++;
    g.out = renumber[g.out];
  }
  auto apply = [&](uint32_t* v) {
    if (*v < atoms) *v = renumber[*v];
  };
  for (PlanInstr& in : plan_code_) {
    apply(&in.a);
    apply(&in.b);
  }
  for (PlanRoute& r : plan_routes_) apply(&r.result);

  // Shapes: the same source and the same code once atoms are abstracted.
  plan_shapes_.clear();
  plan_shape_temps_ = 0;
  plan_source_units_.assign(sources, {});
  absl::flat_hash_map<std::string, uint32_t> shape_index;
  std::vector<std::vector<uint32_t>> shape_atoms;  // per shape, route-major
  for (size_t i = 0; i < plan_routes_.size(); ++i) {
    const PlanRoute& r = plan_routes_[i];
    const uint32_t source = source_of[i];
    std::vector<uint32_t>& units = plan_source_units_[source];
    for (uint32_t k = r.deps_begin; k < r.deps_end; ++k) {
      if (std::find(units.begin(), units.end(), plan_deps_[k]) == units.end()) {
        units.push_back(plan_deps_[k]);
      }
    }
    // Operand v of this route: an atom becomes the next column, a
    // temporary its instruction's number (temporaries are numbered in
    // emission order from `atoms`, one per instruction).
    std::vector<uint32_t> atom_operands;
    auto abstract = [&](uint32_t v) -> uint32_t {
      if (v >= atoms) return kShapeTemp | (v - atoms);
      atom_operands.push_back(v);
      return uint32_t(atom_operands.size() - 1);
    };
    std::vector<PlanInstr> code;
    std::string key = absl::StrCat(source, ":");
    for (uint32_t k = r.code_begin; k < r.code_end; ++k) {
      PlanInstr in = plan_code_[k];
      in.a = abstract(in.a);
      in.b = in.code == PlanInstr::kNot ? in.a : abstract(in.b);
      in.dest = kShapeTemp | (in.dest - atoms);
      absl::StrAppend(&key, int(in.code), ",", in.a, ",", in.b, ",", in.dest,
                      ";");
      code.push_back(in);
    }
    const uint32_t result = abstract(r.result);
    absl::StrAppend(&key, "=", result);
    auto [it, added] = shape_index.try_emplace(key, 0);
    if (added) {
      it->second = uint32_t(plan_shapes_.size());
      PlanShape shape;
      shape.source = source;
      shape.code = std::move(code);
      shape.result = result;
      plan_shapes_.push_back(std::move(shape));
      shape_atoms.emplace_back();
    }
    plan_shapes_[it->second].routes.push_back(uint32_t(i));
    std::vector<uint32_t>& all = shape_atoms[it->second];
    all.insert(all.end(), atom_operands.begin(), atom_operands.end());
  }
  for (size_t k = 0; k < plan_shapes_.size(); ++k) {
    PlanShape& shape = plan_shapes_[k];
    const size_t n = shape.routes.size();
    const size_t columns = n == 0 ? 0 : shape_atoms[k].size() / n;
    shape.columns.resize(columns * n);
    for (size_t r = 0; r < n; ++r) {
      for (size_t c = 0; c < columns; ++c) {
        shape.columns[c * n + r] = shape_atoms[k][r * columns + c];
      }
    }
    // Consecutive columns and routes are read and written as whole ranges.
    shape.column_base.assign(columns, kNotConsecutive);
    for (size_t c = 0; c < columns; ++c) {
      const uint32_t* col = shape.columns.data() + c * n;
      bool consecutive = true;
      for (size_t r = 1; r < n && consecutive; ++r) {
        consecutive = col[r] == col[0] + r;
      }
      if (consecutive && n > 0) shape.column_base[c] = col[0];
    }
    shape.routes_base = kNotConsecutive;
    bool consecutive = n > 0;
    for (size_t r = 1; r < n && consecutive; ++r) {
      consecutive = shape.routes[r] == shape.routes[0] + r;
    }
    if (consecutive) shape.routes_base = shape.routes[0];
    plan_shape_temps_ =
        std::max(plan_shape_temps_, shape.code.size() * shape.routes.size());
  }
}

void Program::EvaluateUnit(uint32_t unit, const MessageView& message,
                           Scratch* scratch) const {
  scratch->unit_gen_[unit] = scratch->gen_;
  uint8_t* out = scratch->plan_values_.data();
  Evaluator ev{*this, message, scratch};
  const PlanUnit& u = plan_units_[unit];
  if (!u.is_group) {
    const PlanGeneric& g = plan_generics_[u.index];
    const Node& n = nodes_[g.node];
    out[g.out] = PlanTri(Final(ev.Eval(g.node), n.type));
    return;
  }
  const PlanGroup& g = plan_groups_[u.index];
  const Value v = ev.Load(g.load_op, g.slot, g.slot2, g.qv);
  // The tree evaluator's comparison, for atoms no fast path covers.
  auto compare = [&](const PlanAtom& a) {
    out[a.out] =
        PlanBool(a.flip ? Evaluator::Compare(a.sub, a.mode, a.constant, v)
                        : Evaluator::Compare(a.sub, a.mode, v, a.constant));
  };
  auto general = [&](const std::vector<uint32_t>& which) {
    for (uint32_t k : which) compare(g.atoms[k]);
  };
  if (v.k == VK::kNum && !std::isnan(v.n)) {
    // Both sides are numbers: an IEEE comparison, whatever the static mode.
    const double x = v.n;
    auto run = [&](int op, auto cmp, auto cmp2) {
      const double* c = g.num_const[op].data();
      uint8_t* o = out + g.num_first[op];
      const size_t e = g.num_const[op].size();
      size_t k = 0;
#if defined(__SSE2__)
      // Four comparisons per step: two 2-lane compares, their sign masks
      // joined into 4 bits, and a 4-byte store of the matching results.
      const __m128d xx = _mm_set1_pd(x);
      for (; k + 4 <= e; k += 4) {
        const int lo = _mm_movemask_pd(cmp2(xx, _mm_loadu_pd(c + k)));
        const int hi = _mm_movemask_pd(cmp2(xx, _mm_loadu_pd(c + k + 2)));
        const uint32_t bytes = kPlanBytes[lo | (hi << 2)];
        std::memcpy(o + k, &bytes, sizeof(bytes));
      }
#endif
      for (; k < e; ++k) {
        o[k] = uint8_t(cmp(x, c[k]) << 1);  // kPlanTrue or kPlanFalse
      }
    };
    run(
        0, [](double l, double r) { return l == r; },
        [](auto l, auto r) { return _mm_cmpeq_pd(l, r); });
    run(
        1, [](double l, double r) { return l != r; },
        [](auto l, auto r) { return _mm_cmpneq_pd(l, r); });
    run(
        2, [](double l, double r) { return l < r; },
        [](auto l, auto r) { return _mm_cmplt_pd(l, r); });
    run(
        3, [](double l, double r) { return l <= r; },
        [](auto l, auto r) { return _mm_cmple_pd(l, r); });
    run(
        4, [](double l, double r) { return l > r; },
        [](auto l, auto r) { return _mm_cmpgt_pd(l, r); });
    run(
        5, [](double l, double r) { return l >= r; },
        [](auto l, auto r) { return _mm_cmpge_pd(l, r); });
    general(g.not_num);
    return;
  }
  if (v.k == VK::kStr) {
    const absl::string_view x = v.s();
    if (!g.str_index.empty()) {
      // Every `=` false and every `!=` true, except those whose constant
      // equals the value.
      std::memset(out + g.str_eq_first, kPlanFalse, g.str_eq_count);
      std::memset(out + g.str_ne_first, kPlanTrue, g.str_ne_count);
      auto it = g.str_index.find(x);
      if (it != g.str_index.end()) {
        for (uint32_t k = it->second.first; k < it->second.second; ++k) {
          const uint32_t o = g.str_hits[k];
          out[o] = o < g.str_ne_first ? kPlanTrue : kPlanFalse;
        }
      }
      general(g.not_str);
      return;
    }
    for (uint32_t k : g.str_eq) {
      const PlanAtom& a = g.atoms[k];
      const bool eq = x.size() == a.constant.sl &&
                      std::memcmp(x.data(), a.constant.sp, x.size()) == 0;
      out[a.out] = (eq == (a.sub == 0)) ? kPlanTrue : kPlanFalse;
    }
    general(g.not_str);
    return;
  }
  for (const PlanAtom& a : g.atoms) compare(a);
}

void Program::EvaluateAllPlanned(const uint8_t* source_ok,
                                 const MessageView& message, Scratch* scratch,
                                 uint8_t* matched) const {
  const uint32_t gen = scratch->gen_;
  for (size_t source = 0; source < plan_source_units_.size(); ++source) {
    if (!source_ok[source]) continue;
    for (uint32_t unit : plan_source_units_[source]) {
      if (scratch->unit_gen_[unit] != gen) {
        EvaluateUnit(unit, message, scratch);
      }
    }
  }
  const uint8_t* values = scratch->plan_values_.data();
  uint8_t* temps = scratch->shape_temps_.data();
  for (const PlanShape& shape : plan_shapes_) {
    if (!source_ok[shape.source]) continue;
    const size_t n = shape.routes.size();
    // Operand x for every route: consecutive bytes (a temporary, or a
    // column whose atoms are consecutive values) or gathered from `values`.
    struct Operand {
      const uint8_t* direct;
      const uint32_t* gather;
    };
    auto operand = [&](uint32_t x) -> Operand {
      const size_t i = x & ~kShapeTemp;
      if (x & kShapeTemp) return {temps + i * n, nullptr};
      if (shape.column_base[i] != kNotConsecutive) {
        return {values + shape.column_base[i], nullptr};
      }
      return {nullptr, shape.columns.data() + i * n};
    };
    auto binary = [&](Operand a, Operand b, uint8_t* dest, auto op, auto op16) {
      (void)op16;  // unused without SSE2
      size_t r = 0;
      if (a.direct != nullptr && b.direct != nullptr) {
#if defined(__SSE2__)
        for (; r + 16 <= n; r += 16) {
          const __m128i x =
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.direct + r));
          const __m128i y =
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.direct + r));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dest + r), op16(x, y));
        }
#endif
        for (; r < n; ++r) dest[r] = op(a.direct[r], b.direct[r]);
      } else if (a.direct != nullptr) {
        for (; r < n; ++r) dest[r] = op(a.direct[r], values[b.gather[r]]);
      } else if (b.direct != nullptr) {
        for (; r < n; ++r) dest[r] = op(values[a.gather[r]], b.direct[r]);
      } else {
        for (; r < n; ++r) {
          dest[r] = op(values[a.gather[r]], values[b.gather[r]]);
        }
      }
    };
    for (const PlanInstr& in : shape.code) {
      uint8_t* dest = temps + size_t(in.dest & ~kShapeTemp) * n;
      const Operand a = operand(in.a), b = operand(in.b);
      switch (in.code) {
        case PlanInstr::kAnd:
          binary(
              a, b, dest, [](uint8_t x, uint8_t y) { return std::min(x, y); },
              Min16());
          break;
        case PlanInstr::kOr:
          binary(
              a, b, dest, [](uint8_t x, uint8_t y) { return std::max(x, y); },
              Max16());
          break;
        case PlanInstr::kNot:
          binary(
              a, a, dest,
              [](uint8_t x, uint8_t) { return uint8_t(kPlanTrue - x); },
              Not16());
          break;
      }
    }
    const Operand result = operand(shape.result);
    if (result.direct != nullptr && shape.routes_base != kNotConsecutive) {
      uint8_t* out = matched + shape.routes_base;
      size_t r = 0;
#if defined(__SSE2__)
      const __m128i true16 = _mm_set1_epi8(kPlanTrue);
      const __m128i one16 = _mm_set1_epi8(1);
      for (; r + 16 <= n; r += 16) {
        const __m128i v = _mm_loadu_si128(
            reinterpret_cast<const __m128i*>(result.direct + r));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + r),
                         _mm_and_si128(_mm_cmpeq_epi8(v, true16), one16));
      }
#endif
      for (; r < n; ++r) out[r] = result.direct[r] == kPlanTrue;
    } else {
      const uint32_t* routes = shape.routes.data();
      for (size_t r = 0; r < n; ++r) {
        const uint8_t v = result.direct != nullptr ? result.direct[r]
                                                   : values[result.gather[r]];
        matched[routes[r]] = v == kPlanTrue;
      }
    }
  }
}

Tri Program::EvaluatePlanned(size_t route, const MessageView& message,
                             Scratch* scratch) const {
  const PlanRoute& r = plan_routes_[route];
  const uint32_t gen = scratch->gen_;
  const uint32_t* deps = plan_deps_.data();
  for (uint32_t k = r.deps_begin; k < r.deps_end; ++k) {
    if (scratch->unit_gen_[deps[k]] != gen) {
      EvaluateUnit(deps[k], message, scratch);
    }
  }
  uint8_t* v = scratch->plan_values_.data();
  for (uint32_t k = r.code_begin; k < r.code_end; ++k) {
    const PlanInstr& in = plan_code_[k];
    switch (in.code) {
      case PlanInstr::kAnd:
        v[in.dest] = std::min(v[in.a], v[in.b]);
        break;
      case PlanInstr::kOr:
        v[in.dest] = std::max(v[in.a], v[in.b]);
        break;
      case PlanInstr::kNot:
        v[in.dest] = uint8_t(kPlanTrue - v[in.a]);
        break;
    }
  }
  const uint8_t result = v[r.result];
  return result == kPlanTrue    ? Tri::kTrue
         : result == kPlanFalse ? Tri::kFalse
                                : Tri::kUndefined;
}

}  // namespace edgeroute::query::internal
