// Route and condition syntax trees and their parsers (edgeHub's Route.g4 and
// Condition.g4, precedence resolved by hand), with FROM-path normalisation
// and sink creation (edgeHub's first stage). Internal to //query.

#ifndef EDGEROUTE_QUERY_SYNTAX_H_
#define EDGEROUTE_QUERY_SYNTAX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "query/diagnostics.h"
#include "query/lexer.h"
#include "query/query.h"

namespace edgeroute::query::internal {

enum class AstKind : uint8_t {
  kLiteral,     // tok = literal token kind
  kSysProp,     // $name
  kEscSysProp,  // {$name}; text is the $name token
  kId,          // bare property name
  kCall,        // text = function name; kids = args
  kUnary,       // op = kMinus or kNot; kids[0]
  kBinary,      // op; kids[0], kids[1]
  kError,       // an error alternative of Condition.g4: parses (so edgeHub's
                // first stage accepts it) but never compiles; message says why
};

struct AstNode {
  AstKind kind;
  Tok op = Tok::kEof;  // literal kind / operator
  bool parenthesised = false;
  uint32_t begin = 0;  // source range of the whole node
  uint32_t end = 0;
  uint32_t tok_begin = 0;  // the operator / name / literal token
  uint32_t tok_end = 0;
  std::vector<int> kids;
  std::string message;  // kError
};

struct Ast {
  std::vector<AstNode> nodes;
  int root = -1;  // -1: empty condition
};

// The first stage of a route.
struct RouteSyntax {
  std::string source;  // normalised
  bool has_where = false;
  uint32_t cond_begin = 0;  // WHERE text range (when has_where)
  uint32_t cond_end = 0;
  Ast condition;
  SinkSpec sink;
};

struct ParseLimits {
  size_t max_length = 64 * 1024;
  int max_depth = 256;
};

// Parses a route (grammar + sink). Returns false with at least one error in
// `diags` on failure. Warnings are appended too.
bool ParseRouteSyntax(absl::string_view text, absl::string_view device_id,
                      const ParseLimits& limits, RouteSyntax* out,
                      std::vector<RawDiag>* diags);

// Normalises a FROM path as edgeHub's CustomMessageSource does.
std::string NormaliseSource(absl::string_view raw);


}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_SYNTAX_H_
