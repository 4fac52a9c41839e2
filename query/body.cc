// $body queries: the compile-time path check, body decoding, and the
// Evaluator's run-time lookups of paths in the parsed body (edgeHub's
// BodyQuery and JsonMessageQueryValueProvider over Newtonsoft.Json).

#include "query/body.h"

#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/json_string.h"
#include "base/utf8.h"
#include "message/message.h"
#include "query/dotnet_text.h"
#include "query/evaluator.h"
#include "query/lexer.h"

namespace edgeroute::query::internal {

bool ParseBodyPath(absl::string_view path, BodyPath* parsed,
                   std::string* error) {
  // JsonPath.g4: seg ('.' seg)*, seg = IDENT ('[' INT ']')*. A purely
  // numeric name lexes as INT and is rejected. No EOF rule: a valid prefix
  // followed by anything else compiles (the rest is "junk").
  // IDENT is the lexer's ID character set less '.', plus the space.
  auto is_ident_char = [](char c) {
    return c != '.' && (c == ' ' || IsIdChar(static_cast<unsigned char>(c)));
  };
  size_t i = 0;
  const size_t n = path.size();
  while (true) {
    size_t start = i;
    while (i < n && is_ident_char(path[i])) ++i;
    if (i == start) {
      *error = i >= n ? "a property name is missing at the end"
                      : absl::StrCat("a property name is expected at '",
                                     path.substr(i), "'");
      return false;
    }
    absl::string_view name = path.substr(start, i - start);
    bool numeric = true;
    for (char c : name) {
      if (c < '0' || c > '9') numeric = false;
    }
    if (numeric) {
      *error =
          absl::StrCat("'", name, "' is a number, not a property name (use [",
                       name, "] for an array index)");
      return false;
    }
    BodyPath::Segment seg;
    seg.name = std::string(name);
    while (i < n && path[i] == '[') {
      size_t j = i + 1;
      uint64_t v = 0;
      size_t d = 0;
      while (j < n && path[j] >= '0' && path[j] <= '9') {
        if (v < (uint64_t(1) << 40)) v = v * 10 + uint64_t(path[j] - '0');
        ++j;
        ++d;
      }
      if (d == 0 || j >= n || path[j] != ']') {
        *error = "an array index must be written [digits]";
        return false;
      }
      seg.indexes.push_back(v > 0xFFFFFFFFu ? 0xFFFFFFFFu : uint32_t(v));
      i = j + 1;
    }
    parsed->segments.push_back(std::move(seg));
    if (i >= n) return true;
    if (path[i] == '.') {
      ++i;
      continue;
    }
    parsed->junk = true;
    return true;
  }
}

absl::string_view TranscodeBody(absl::string_view body, BodyEncoding encoding,
                                std::string* buffer) {
  if (encoding == BodyEncoding::kUtf8) return body;
  const size_t need = body.size() * 2 + 8;
  if (buffer->size() < need) buffer->resize(need);
  char* out = &(*buffer)[0];
  const unsigned char* in = reinterpret_cast<const unsigned char*>(body.data());
  const size_t n = body.size();
  size_t i = 0, len = 0;
  while (i < n) {
    uint32_t cp;
    if (encoding == BodyEncoding::kUtf16) {
      if (i + 1 >= n) {
        cp = kReplacementCharacter;
        i = n;
      } else {
        const uint32_t u = in[i] | (uint32_t(in[i + 1]) << 8);
        i += 2;
        if (IsHighSurrogate(u) && i + 1 < n) {
          const uint32_t u2 = in[i] | (uint32_t(in[i + 1]) << 8);
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
        cp = kReplacementCharacter;
        i = n;
      } else {
        cp = in[i] | (uint32_t(in[i + 1]) << 8) | (uint32_t(in[i + 2]) << 16) |
             (uint32_t(in[i + 3]) << 24);
        i += 4;
        if (cp > 0x10FFFF || IsSurrogate(cp)) cp = kReplacementCharacter;
      }
    }
    len += EncodeUtf8(cp, out + len);
  }
  return absl::string_view(out, len);
}

bool Evaluator::EnsureBody() {
  if (s_->body_parsed_gen_ == s_->gen_) return s_->body_ok_;
  s_->body_parsed_gen_ = s_->gen_;
  s_->body_ok_ = false;
  // FindSystemProperty for both names in one pass, trying the usual exact
  // spelling before case folding (the first match of each name wins).
  PropertyValue type, enc;
  bool have_type = false, have_enc = false;
  for (size_t i = 0, n = m_.system_property_count();
       i < n && !(have_type && have_enc); ++i) {
    std::pair<absl::string_view, PropertyValue> prop = m_.system_property(i);
    const absl::string_view name = prop.first;
    if (!have_type && name.size() == 11 &&
        (name == "contentType" || EqualsIgnoreAsciiCase(name, "contentType"))) {
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
  BodyEncoding encoding;
  if (enc.value == "utf-8" || absl::EqualsIgnoreCase(enc.value, "utf-8")) {
    encoding = BodyEncoding::kUtf8;
  } else if (absl::EqualsIgnoreCase(enc.value, "utf-16")) {
    encoding = BodyEncoding::kUtf16;
  } else if (absl::EqualsIgnoreCase(enc.value, "utf-32")) {
    encoding = BodyEncoding::kUtf32;
  } else {
    return false;
  }
  const absl::string_view text =
      TranscodeBody(m_.body(), encoding, &s_->transcoded_body_);
  // Encoding.GetString keeps a byte-order mark as U+FEFF, which
  // Newtonsoft does not accept before a value.
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
      static_cast<unsigned char>(text[1]) == 0xBB &&
      static_cast<unsigned char>(text[2]) == 0xBF) {
    return false;
  }
  // Validates all of the text; the tape holds only the members the
  // program's paths can reach.
  if (!s_->body_tape_.Parse(text, p_.body_members())) return false;
  s_->body_ok_ = true;
  return true;
}

absl::string_view Evaluator::JsonString(const JsonTape& tape,
                                        const JsonTape::Entry& e) {
  absl::string_view raw = tape.raw(e);
  if (e.flags & JsonTape::kEscaped) {
    char* out = s_->AllocForMessage(raw.size());
    raw = absl::string_view(out, UnescapeValidJsonString(raw, out));
  }
  // Only strings with a byte >= 0x80 can be ill-formed.
  if (e.flags & JsonTape::kHighBit) raw = RepairedText(raw);
  return raw;
}

Value Evaluator::FromJson(const JsonTape& tape, uint32_t index) {
  const JsonTape::Entry& e = tape.entry(index);
  switch (e.type) {
    case JsonTape::kNull:
      return MakeNull();
    case JsonTape::kTrue:
      return MakeBool(true);
    case JsonTape::kFalse:
      return MakeBool(false);
    case JsonTape::kNumber: {
      // As strtod: overflow gives +-infinity, underflow 0, as double.Parse.
      double d = 0;
      tape.NumberValue(e, &d);
      if ((e.flags & JsonTape::kInteger) && d == 0) d = 0;  // -0 is 0
      return MakeNumber(d);
    }
    case JsonTape::kString: {
      const absl::string_view v = JsonString(tape, e);
      if (LooksLikeJsonDate(v)) return MakeUndefined();
      return MakeString(v);
    }
    default:
      return MakeUndefined();  // object or array
  }
}

bool Evaluator::KeyEquals(const JsonTape& tape, const JsonTape::Entry& key,
                          absl::string_view name) {
  absl::string_view raw = tape.raw(key);
  if (!(key.flags & JsonTape::kEscaped)) return raw == name;
  return JsonString(tape, key) == name;
}

// Counts matches of segments[segment..] (index `index` of that segment)
// under entry `entry`, keeping the first; stops after 2 (more than one match
// is undefined).
void Evaluator::Resolve(const JsonTape& tape, const BodyPath& path,
                        size_t segment, size_t index, uint32_t entry,
                        int* count, uint32_t* found) {
  if (*count > 1) return;
  if (segment == path.segments.size()) {
    if (++*count == 1) *found = entry;
    return;
  }
  const JsonTape::Entry& e = tape.entry(entry);
  const BodyPath::Segment& seg = path.segments[segment];
  if (index == 0) {
    if (seg.name == "*") {
      // Wildcard: every member value or array item.
      if (e.type == JsonTape::kObject) {
        for (uint32_t k = entry + 1; k < e.next; k = tape.entry(k + 1).next) {
          Resolve(tape, path, segment, 1, k + 1, count, found);
        }
      } else if (e.type == JsonTape::kArray) {
        for (uint32_t k = entry + 1; k < e.next; k = tape.entry(k).next) {
          Resolve(tape, path, segment, 1, k, count, found);
        }
      }
      return;
    }
    if (e.type != JsonTape::kObject) return;
    uint32_t last = 0;
    bool have = false;
    for (uint32_t k = entry + 1; k < e.next; k = tape.entry(k + 1).next) {
      if (KeyEquals(tape, tape.entry(k), seg.name)) {
        last = k + 1;  // duplicate keys: the last one wins
        have = true;
      }
    }
    if (have) Resolve(tape, path, segment, 1, last, count, found);
    return;
  }
  if (index - 1 < seg.indexes.size()) {
    if (e.type != JsonTape::kArray) return;
    uint32_t k = entry + 1;
    for (uint32_t skip = seg.indexes[index - 1]; skip > 0 && k < e.next;
         --skip) {
      k = tape.entry(k).next;
    }
    if (k >= e.next) return;
    Resolve(tape, path, segment, index + 1, k, count, found);
    return;
  }
  Resolve(tape, path, segment + 1, 0, entry, count, found);
}

__attribute__((noinline)) Value Evaluator::BodySlow(int slot) {
  Value v;
  const BodyPath& path = p_.body_path(slot);
  if (EnsureBody() && !path.junk) {
    int count = 0;
    uint32_t found = 0;
    const JsonTape& tape = s_->body_tape_;
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
      v.kind = ValueKind::kMissing;
    } else if (count == 1) {
      v = FromJson(tape, found);
    }
  }
  s_->body_gen_[slot] = s_->gen_;
  s_->body_values_[slot] = v;
  return v;
}

}  // namespace edgeroute::query::internal
