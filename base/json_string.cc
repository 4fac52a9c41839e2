#include "base/json_string.h"

#include "absl/strings/str_cat.h"
#include "base/utf8.h"

namespace edgeroute {
namespace {

// The character a one-letter escape (the byte after '\\', other than 'u')
// stands for, or -1.
int SimpleEscape(char e) {
  switch (e) {
    case '"':
      return '"';
    case '\\':
      return '\\';
    case '/':
      return '/';
    case 'b':
      return '\b';
    case 'f':
      return '\f';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    default:
      return -1;
  }
}

// The "\uXXXX" escape at s[i] (s[i] == '\\', s[i + 1] == 'u', four hex
// digits follow): its code point, a surrogate pair combined when a low
// surrogate escape follows a high one. Sets *len to the escape's length
// (6 or 12).
uint32_t UnicodeEscape(absl::string_view s, size_t i, size_t* len) {
  uint32_t unit = 0;
  ReadHex4(s, i + 2, &unit);
  *len = 6;
  uint32_t low = 0;
  if (IsHighSurrogate(unit) && i + 7 < s.size() && s[i + 6] == '\\' &&
      s[i + 7] == 'u' && ReadHex4(s, i + 8, &low) && IsLowSurrogate(low)) {
    *len = 12;
    return CombineSurrogates(unit, low);
  }
  return unit;
}

}  // namespace

void AppendJsonQuoted(absl::string_view text, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->reserve(out->size() + text.size() + 2);
  out->push_back('"');
  for (char c : text) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[(c >> 4) & 0xF]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

std::string JsonQuote(absl::string_view text) {
  std::string out;
  AppendJsonQuoted(text, &out);
  return out;
}

bool ReadHex4(absl::string_view s, size_t at, uint32_t* unit) {
  if (at > s.size() || s.size() - at < 4) return false;
  uint32_t v = 0;
  for (size_t k = 0; k < 4; ++k) {
    const int h = HexDigitValue(s[at + k]);
    if (h < 0) return false;
    v = v * 16 + static_cast<uint32_t>(h);
  }
  *unit = v;
  return true;
}

size_t UnescapeValidJsonString(absl::string_view raw, char* out) {
  size_t o = 0;
  for (size_t i = 0; i < raw.size();) {
    const char c = raw[i];
    if (c != '\\' || i + 1 >= raw.size()) {
      out[o++] = c;
      ++i;
      continue;
    }
    if (raw[i + 1] == 'u') {
      if (i + 5 >= raw.size()) {  // cannot happen after validation
        out[o++] = c;
        ++i;
        continue;
      }
      size_t len;
      // A lone surrogate is kept as its 3-byte form, at most as long as
      // its 6-byte escape.
      o += EncodeUtf8(UnicodeEscape(raw, i, &len), out + o);
      i += len;
      continue;
    }
    const int e = SimpleEscape(raw[i + 1]);
    out[o++] = e >= 0 ? char(e) : raw[i + 1];
    i += 2;
  }
  return o;
}

size_t DecodeJsonString(absl::string_view text, size_t begin,
                        const JsonStringOptions& options, std::string* out,
                        std::vector<size_t>* offsets, JsonStringError* error) {
  out->clear();
  if (offsets != nullptr) offsets->clear();
  auto fail = [&](size_t at, std::string message) -> size_t {
    error->at = at;
    error->message = std::move(message);
    return 0;
  };
  // Maps every byte appended since the last call to the source offset
  // `from` of the character or escape that produced it.
  auto mark = [&](size_t from) {
    if (offsets == nullptr) return;
    while (offsets->size() < out->size()) offsets->push_back(from);
  };
  size_t i = begin + 1;
  while (true) {
    if (i >= text.size()) return fail(begin, "unterminated string");
    const char c = text[i];
    if (c == '"') {
      if (offsets != nullptr) offsets->push_back(i);
      return i + 1;
    }
    if (static_cast<unsigned char>(c) < 0x20) {
      return fail(
          i, "control character in string (write \\n, \\t or \\u00XX instead)");
    }
    if (c != '\\') {
      // A run of plain characters is copied at once.
      size_t j = i + 1;
      while (j < text.size() && text[j] != '"' && text[j] != '\\' &&
             static_cast<unsigned char>(text[j]) >= 0x20) {
        ++j;
      }
      const absl::string_view run = text.substr(i, j - i);
      if (options.require_utf8) {
        const size_t bad = FindInvalidUtf8(run);
        if (bad != absl::string_view::npos) {
          return fail(i + bad, "string is not valid UTF-8");
        }
      }
      out->append(run.data(), run.size());
      if (offsets != nullptr) {
        for (size_t k = i; k < j; ++k) offsets->push_back(k);
      }
      i = j;
      continue;
    }
    if (i + 1 >= text.size()) return fail(i, "unterminated string");
    const size_t start = i;
    const char e = text[i + 1];
    if (e == 'u') {
      uint32_t unit = 0;
      if (!ReadHex4(text, i + 2, &unit)) {
        return fail(start, "\\u must be followed by 4 hex digits");
      }
      size_t len;
      uint32_t cp = UnicodeEscape(text, i, &len);
      if (IsSurrogate(cp)) {
        switch (options.lone_surrogate) {
          case LoneSurrogate::kKeep:
            break;
          case LoneSurrogate::kReplace:
            cp = kReplacementCharacter;
            break;
          case LoneSurrogate::kReject:
            return fail(start,
                        "\\u escape of a lone surrogate (not half of a pair)");
        }
      }
      AppendUtf8(cp, out);
      i += len;
    } else {
      const int simple = SimpleEscape(e);
      if (simple < 0) {
        return fail(start,
                    absl::StrCat("invalid escape '\\", absl::string_view(&e, 1),
                                 "' in string"));
      }
      out->push_back(char(simple));
      i += 2;
    }
    mark(start);
  }
}

}  // namespace edgeroute
