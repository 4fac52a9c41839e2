#include "query/newtonsoft.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace edgeroute::query::internal {

IntResult ReadInteger(const JsonNode& node, int64_t min, int64_t max,
                      int64_t* value) {
  if (node.kind != JsonNode::Kind::kNumber) return IntResult::kNotNumber;
  const std::string& t = node.text;
  if (t.find_first_of(".eE") == std::string::npos) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(t, &v)) return IntResult::kOutOfRange;
    if (v < min || v > max) return IntResult::kOutOfRange;
    *value = v;
    return IntResult::kOk;
  }
  const double d = std::strtod(t.c_str(), nullptr);
  if (std::isfinite(d) && d != std::floor(d)) return IntResult::kNotInteger;
  if (!std::isfinite(d) || d < static_cast<double>(min) ||
      d > static_cast<double>(max)) {
    return IntResult::kOutOfRange;
  }
  *value = static_cast<int64_t>(d);
  return IntResult::kOk;
}

bool ParseDotNetVersion(absl::string_view text, int* major, int* minor) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  if (parts.size() < 2 || parts.size() > 4) return false;
  int values[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::string_view p = absl::StripAsciiWhitespace(parts[i]);
    bool negative = false;
    if (!p.empty() && (p[0] == '+' || p[0] == '-')) {
      negative = p[0] == '-';
      p.remove_prefix(1);
    }
    if (p.empty() || p.size() > 10) return false;
    int64_t v = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    if (negative) v = -v;
    if (v < 0 || v > std::numeric_limits<int32_t>::max()) return false;
    values[i] = static_cast<int>(v);
  }
  *major = values[0];
  *minor = values[1];
  return true;
}

std::string NewtonsoftPathName(absl::string_view name) {
  static constexpr absl::string_view kSpecial = ". '/\"[]()\t\n\r\f\b\\";
  bool special = name.find_first_of(kSpecial) != absl::string_view::npos ||
                 name.find("\xC2\x85") != absl::string_view::npos ||
                 name.find("\xE2\x80\xA8") != absl::string_view::npos ||
                 name.find("\xE2\x80\xA9") != absl::string_view::npos;
  if (!special) return std::string(name);
  std::string out = "['";
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    switch (c) {
      case '\'':
        out += "\\'";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\b':
        out += "\\b";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static const char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(kHex[(c >> 4) & 0xF]);
          out.push_back(kHex[c & 0xF]);
        } else if (name.substr(i, 2) == "\xC2\x85") {
          out += "\\u0085";
          ++i;
        } else if (name.substr(i, 3) == "\xE2\x80\xA8") {
          out += "\\u2028";
          i += 2;
        } else if (name.substr(i, 3) == "\xE2\x80\xA9") {
          out += "\\u2029";
          i += 2;
        } else {
          out.push_back(c);
        }
    }
  }
  out += "']";
  return out;
}

}  // namespace edgeroute::query::internal
