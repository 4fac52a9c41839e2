#include "query/lexer.h"

#include <cstring>

#include "base/json_string.h"

namespace edgeroute::query::internal {
namespace {

bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return HexDigitValue(c) >= 0; }
bool IsWs(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
char Lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool EqualsCi(absl::string_view text, size_t at, size_t len, const char* word) {
  if (std::strlen(word) != len) return false;
  for (size_t i = 0; i < len; ++i) {
    if (Lower(text[at + i]) != word[i]) return false;
  }
  return true;
}

// Length of `[0-9]+` at `i`.
size_t Digits(absl::string_view t, size_t i) {
  size_t j = i;
  while (j < t.size() && IsDigit(t[j])) ++j;
  return j - i;
}

// Length of EXP = [Ee] [+-]? [0-9]+ at `i`, or 0.
size_t Exp(absl::string_view t, size_t i) {
  if (i >= t.size() || (t[i] != 'e' && t[i] != 'E')) return 0;
  size_t j = i + 1;
  if (j < t.size() && (t[j] == '+' || t[j] == '-')) ++j;
  size_t d = Digits(t, j);
  return d == 0 ? 0 : j + d - i;
}

// REAL_LITERAL: '-'? [0-9]* '.' [0-9]+ EXP? | '-'? [0-9]* EXP
size_t RealLen(absl::string_view t, size_t i) {
  size_t j = i;
  if (j < t.size() && t[j] == '-') ++j;
  j += Digits(t, j);
  size_t best = 0;
  if (j < t.size() && t[j] == '.') {
    size_t f = Digits(t, j + 1);
    if (f > 0) {
      size_t k = j + 1 + f;
      k += Exp(t, k);
      best = k - i;
    }
  }
  size_t e = Exp(t, j);
  if (e > 0 && j + e - i > best) best = j + e - i;
  return best;
}

// STRING / UNTERMINATED_STRING starting at a quote. Sets *terminated.
size_t StringLen(absl::string_view t, size_t i, bool* terminated) {
  char q = t[i];
  size_t j = i + 1;
  while (true) {
    if (j >= t.size()) {
      *terminated = false;
      return j - i;
    }
    char c = t[j];
    if (c == q) {
      *terminated = true;
      return j + 1 - i;
    }
    if (c == '\\') {
      if (j + 1 < t.size() &&
          (t[j + 1] == '"' || t[j + 1] == '\'' || t[j + 1] == '\\')) {
        j += 2;
        continue;
      }
      if (j + 5 < t.size() + 0 && t[j + 1] == 'u' && IsHex(t[j + 2]) &&
          IsHex(t[j + 3]) && IsHex(t[j + 4]) && IsHex(t[j + 5])) {
        j += 6;
        continue;
      }
      *terminated = false;
      return j - i;
    }
    ++j;
  }
}

}  // namespace

bool IsIdChar(unsigned char c) {
  switch (c) {
    case '(':
    case ')':
    case '<':
    case '>':
    case '@':
    case ',':
    case ';':
    case ':':
    case '\\':
    case '"':
    case '/':
    case '[':
    case ']':
    case '?':
    case '=':
    case '{':
    case '}':
    case ' ':
    case '\t':
    case '\r':
    case '\n':
      return false;
    default:
      return true;
  }
}

bool IsQueryPathChar(unsigned char c) {
  return c == '[' || c == ']' || IsIdChar(c);
}

const char* TokName(Tok kind) {
  switch (kind) {
    case Tok::kSelect:
      return "SELECT";
    case Tok::kFrom:
      return "FROM";
    case Tok::kWhere:
      return "WHERE";
    case Tok::kInto:
      return "INTO";
    case Tok::kString:
      return "string";
    case Tok::kUntermString:
      return "unterminated string";
    case Tok::kInteger:
      return "integer";
    case Tok::kHex:
      return "hex integer";
    case Tok::kReal:
      return "real number";
    case Tok::kTrue:
      return "'true'";
    case Tok::kFalse:
      return "'false'";
    case Tok::kNull:
      return "'null'";
    case Tok::kUndefined:
      return "'undefined'";
    case Tok::kLParen:
      return "'('";
    case Tok::kRParen:
      return "')'";
    case Tok::kComma:
      return "','";
    case Tok::kPlus:
      return "'+'";
    case Tok::kMinus:
      return "'-'";
    case Tok::kStar:
      return "'*'";
    case Tok::kSlash:
      return "'/'";
    case Tok::kPercent:
      return "'%'";
    case Tok::kAnd:
      return "AND";
    case Tok::kOr:
      return "OR";
    case Tok::kNot:
      return "NOT";
    case Tok::kEq:
      return "'='";
    case Tok::kNe1:
      return "'!='";
    case Tok::kNe2:
      return "'<>'";
    case Tok::kLe:
      return "'<='";
    case Tok::kGe:
      return "'>='";
    case Tok::kGt:
      return "'>'";
    case Tok::kLt:
      return "'<'";
    case Tok::kConcat:
      return "'||'";
    case Tok::kCoalesce:
      return "'?\?'";
    case Tok::kSysProp:
      return "system property";
    case Tok::kId:
      return "identifier";
    case Tok::kQueryPath:
      return "query path";
    case Tok::kLBrace:
      return "'{'";
    case Tok::kRBrace:
      return "'}'";
    case Tok::kUnknown:
      return "symbol";
    case Tok::kEof:
      return "end of input";
  }
  return "token";
}

std::vector<Token> Lex(absl::string_view t, std::vector<Comment>* comments) {
  std::vector<Token> out;
  size_t i = 0;
  const size_t n = t.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(t[i]);
    if (IsWs(c)) {
      ++i;
      continue;
    }
    if (c == '/' && i + 1 < n && t[i + 1] == '*') {
      size_t close = t.find("*/", i + 2);
      if (close != absl::string_view::npos) {
        if (comments != nullptr) {
          comments->push_back({uint32_t(i), uint32_t(close + 2)});
        }
        i = close + 2;
        continue;
      }
    }
    // Candidates in declaration order; the first with the greatest length
    // wins.
    Tok best = Tok::kUnknown;
    size_t best_len = 0;
    auto offer = [&](Tok kind, size_t len) {
      if (len > best_len) {
        best = kind;
        best_len = len;
      }
    };
    size_t id_len = 0;
    while (i + id_len < n && IsIdChar(t[i + id_len])) ++id_len;
    size_t qp_len = id_len;
    while (i + qp_len < n && IsQueryPathChar(t[i + qp_len])) ++qp_len;

    if (id_len > 0) {
      if (EqualsCi(t, i, id_len, "select")) offer(Tok::kSelect, id_len);
      if (EqualsCi(t, i, id_len, "from")) offer(Tok::kFrom, id_len);
      if (EqualsCi(t, i, id_len, "where")) offer(Tok::kWhere, id_len);
      if (EqualsCi(t, i, id_len, "into")) offer(Tok::kInto, id_len);
    }
    if (c == '"' || c == '\'') {
      bool terminated = false;
      size_t len = StringLen(t, i, &terminated);
      offer(terminated ? Tok::kString : Tok::kUntermString, len);
    }
    {
      size_t j = i;
      if (j < n && t[j] == '-') ++j;
      size_t d = Digits(t, j);
      if (d > 0) offer(Tok::kInteger, j + d - i);
    }
    if (c == '0' && i + 2 < n && (t[i + 1] == 'x' || t[i + 1] == 'X')) {
      size_t j = i + 2;
      while (j < n && IsHex(t[j])) ++j;
      if (j > i + 2) offer(Tok::kHex, j - i);
    }
    offer(Tok::kReal, RealLen(t, i));
    if (id_len > 0) {
      absl::string_view word = t.substr(i, id_len);
      if (word == "true") offer(Tok::kTrue, id_len);
      if (word == "false") offer(Tok::kFalse, id_len);
      if (word == "null") offer(Tok::kNull, id_len);
      if (word == "undefined") offer(Tok::kUndefined, id_len);
    }
    switch (c) {
      case '(':
        offer(Tok::kLParen, 1);
        break;
      case ')':
        offer(Tok::kRParen, 1);
        break;
      case ',':
        offer(Tok::kComma, 1);
        break;
      case '+':
        offer(Tok::kPlus, 1);
        break;
      case '-':
        offer(Tok::kMinus, 1);
        break;
      case '*':
        offer(Tok::kStar, 1);
        break;
      case '/':
        offer(Tok::kSlash, 1);
        break;
      case '%':
        offer(Tok::kPercent, 1);
        break;
      default:
        break;
    }
    if (id_len > 0) {
      if (EqualsCi(t, i, id_len, "and")) offer(Tok::kAnd, id_len);
      if (EqualsCi(t, i, id_len, "or")) offer(Tok::kOr, id_len);
      if (EqualsCi(t, i, id_len, "not")) offer(Tok::kNot, id_len);
    }
    char c1 = i + 1 < n ? t[i + 1] : '\0';
    switch (c) {
      case '=':
        offer(Tok::kEq, 1);
        break;
      case '!':
        if (c1 == '=') offer(Tok::kNe1, 2);
        break;
      case '<':
        if (c1 == '>') offer(Tok::kNe2, 2);
        if (c1 == '=') offer(Tok::kLe, 2);
        offer(Tok::kLt, 1);
        break;
      case '>':
        if (c1 == '=') offer(Tok::kGe, 2);
        offer(Tok::kGt, 1);
        break;
      case '|':
        if (c1 == '|') offer(Tok::kConcat, 2);
        break;
      case '?':
        if (c1 == '?') offer(Tok::kCoalesce, 2);
        break;
      default:
        break;
    }
    if (c == '$' && qp_len > 1) offer(Tok::kSysProp, qp_len);
    offer(Tok::kId, id_len);
    offer(Tok::kQueryPath, qp_len);
    if (c == '{') offer(Tok::kLBrace, 1);
    if (c == '}') offer(Tok::kRBrace, 1);
    offer(Tok::kUnknown, 1);
    out.push_back({best, uint32_t(i), uint32_t(i + best_len)});
    i += best_len;
  }
  out.push_back({Tok::kEof, uint32_t(n), uint32_t(n)});
  return out;
}

}  // namespace edgeroute::query::internal
