// Tokeniser reproducing edgeHub's ANTLR lexer (GrammarLexer.g4): longest
// match wins, ties go to the rule declared first. Internal to //query.

#ifndef EDGEROUTE_QUERY_LEXER_H_
#define EDGEROUTE_QUERY_LEXER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"

namespace edgeroute::query::internal {

enum class Tok : uint8_t {
  kSelect,
  kFrom,
  kWhere,
  kInto,
  kString,
  kUntermString,
  kInteger,
  kHex,
  kReal,
  kTrue,
  kFalse,
  kNull,
  kUndefined,
  kLParen,
  kRParen,
  kComma,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kAnd,
  kOr,
  kNot,
  kEq,
  kNe1,  // !=
  kNe2,  // <>
  kLe,
  kGe,
  kGt,
  kLt,
  kConcat,    // ||
  kCoalesce,  // ??
  kSysProp,   // $name
  kId,
  kQueryPath,  // never valid in the grammar
  kLBrace,
  kRBrace,
  kUnknown,  // any other single character
  kEof,
};

// Printable name of a token kind, for error messages.
const char* TokName(Tok kind);

struct Token {
  Tok kind;
  uint32_t begin;  // byte offsets into the text
  uint32_t end;
};

struct Comment {
  uint32_t begin;
  uint32_t end;
};

// Tokenises `text` (which must be shorter than 4 GiB). Whitespace is
// dropped; comments go to `comments` (may be null). The last token is kEof.
std::vector<Token> Lex(absl::string_view text, std::vector<Comment>* comments);

// Character classes of the lexer.
bool IsIdChar(unsigned char c);
bool IsQueryPathChar(unsigned char c);

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_LEXER_H_
