#include "query/dotnet_text.h"

#include <locale.h>

#include <algorithm>
#include <clocale>
#include <cstdlib>
#include <cstring>
#include <cwctype>
#include <limits>
#include <string>

#include "absl/strings/match.h"
#include "base/utf8.h"

namespace edgeroute::query::internal {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

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

// Everything that enters from a message or a route text was repaired on
// the way in (ill-formed bytes read as U+FFFD), so this decoder never meets
// an ill-formed sequence; if it did, it would still read it as U+FFFD of at
// least one byte.
uint32_t DecodeChar(absl::string_view s, size_t i, size_t* len) {
  return DecodeUtf8OrSurrogate(s, i, len);
}

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
    uint32_t cp = DecodeChar(s, i, &len);
    units += cp >= 0x10000 ? 2 : 1;
    i += len;
  }
  return units;
}

size_t Utf16Offset(absl::string_view s, size_t units) {
  size_t i = 0, u = 0;
  while (i < s.size() && u < units) {
    size_t len;
    uint32_t cp = DecodeChar(s, i, &len);
    u += cp >= 0x10000 ? 2 : 1;
    i += len;
  }
  return i;
}

uint32_t MapCaseInvariant(uint32_t code_point, bool upper) {
  const locale_t loc = CLocale();
  if (loc == (locale_t)0) return code_point;
  return upper ? uint32_t(towupper_l(wint_t(code_point), loc))
               : uint32_t(towlower_l(wint_t(code_point), loc));
}

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
  uint32_t ca = DecodeChar(a, i, &la), cb = DecodeChar(b, i, &lb);
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

}  // namespace edgeroute::query::internal
