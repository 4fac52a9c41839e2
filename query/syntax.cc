#include "query/syntax.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace edgeroute::query::internal {
namespace {

bool IsComparison(Tok t) {
  return t == Tok::kEq || t == Tok::kNe1 || t == Tok::kNe2 || t == Tok::kLt ||
         t == Tok::kLe || t == Tok::kGt || t == Tok::kGe;
}

// Binary precedence: higher binds tighter; 0 = not a binary operator.
int Precedence(Tok t) {
  switch (t) {
    case Tok::kStar:
    case Tok::kSlash:
    case Tok::kPercent:
      return 8;
    case Tok::kPlus:
    case Tok::kMinus:
    case Tok::kConcat:
      return 7;
    case Tok::kLt:
    case Tok::kLe:
    case Tok::kGt:
    case Tok::kGe:
      return 6;
    case Tok::kEq:
    case Tok::kNe1:
    case Tok::kNe2:
      return 5;
    case Tok::kAnd:
      return 4;
    case Tok::kOr:
      return 3;
    case Tok::kCoalesce:
      return 2;
    case Tok::kUnknown:
      return 1;  // error alternative: expr UNKNOWN_CHAR expr
    default:
      return 0;
  }
}

// Tokens that can start an expression (including error alternatives).
bool StartsExpr(Tok t) {
  switch (t) {
    case Tok::kLParen:
    case Tok::kString:
    case Tok::kUntermString:
    case Tok::kInteger:
    case Tok::kHex:
    case Tok::kReal:
    case Tok::kTrue:
    case Tok::kFalse:
    case Tok::kNull:
    case Tok::kUndefined:
    case Tok::kSysProp:
    case Tok::kId:
    case Tok::kLBrace:
    case Tok::kMinus:
    case Tok::kNot:
    case Tok::kUnknown:
      return true;
    default:
      return false;
  }
}

class Parser {
 public:
  Parser(absl::string_view text, const std::vector<Token>& toks,
         const ParseLimits& limits, std::vector<RawDiag>* diags)
      : text_(text), toks_(toks), limits_(limits), diags_(diags) {}

  const Token& Peek() const { return toks_[pos_]; }
  const Token& Next() { return toks_[pos_ < toks_.size() - 1 ? pos_++ : pos_]; }
  size_t pos() const { return pos_; }
  bool failed() const { return failed_; }
  absl::string_view Text(const Token& t) const {
    return text_.substr(t.begin, t.end - t.begin);
  }

  void Error(const Token& at, std::string message) {
    if (failed_) return;
    failed_ = true;
    diags_->push_back(RawDiag::Error(at.begin, at.end, std::move(message)));
  }
  void Warn(uint32_t begin, uint32_t end, std::string message,
            std::string suggestion) {
    diags_->push_back(RawDiag::Warning(begin, end, std::move(message),
                                       std::move(suggestion)));
  }

  // Reports the token `t` as unexpected, with the most useful wording.
  void Unexpected(const Token& t, absl::string_view expected) {
    switch (t.kind) {
      case Tok::kUnknown:
        Error(t, absl::StrCat("Syntax error: invalid symbol '", Text(t), "'"));
        return;
      case Tok::kUntermString:
        Error(t, "Syntax error: unterminated string");
        return;
      case Tok::kQueryPath:
        Error(t, absl::StrCat("Syntax error: invalid symbol '", Text(t),
                              "' ('[' and ']' are only allowed in $body "
                              "paths)"));
        return;
      case Tok::kEof:
        Error(t,
              absl::StrCat("Syntax error: unexpected end of input, expected ",
                           expected));
        return;
      default:
        Error(t, absl::StrCat("Syntax error: unexpected ", TokName(t.kind),
                              " '", Text(t), "', expected ", expected));
    }
  }

  int Add(AstNode node) {
    ast_->nodes.push_back(std::move(node));
    return int(ast_->nodes.size() - 1);
  }

  // expr with binary operators of precedence >= min_prec.
  int ParseExpr(int min_prec, int depth) {
    if (depth > limits_.max_depth) {
      Error(Peek(), absl::StrCat("expression nesting is deeper than the limit "
                                 "of ",
                                 limits_.max_depth));
      return -1;
    }
    int left = ParseUnary(depth);
    if (left < 0) return -1;
    while (true) {
      const Token& op = Peek();
      int prec = Precedence(op.kind);
      if (prec == 0 || prec < min_prec) break;
      if (op.kind == Tok::kUnknown && !StartsExpr(toks_[pos_ + 1].kind)) {
        break;
      }
      Next();
      int right = ParseExpr(prec + 1, depth + 1);
      if (right < 0) return -1;
      AstNode n;
      n.kind = AstKind::kBinary;
      n.op = op.kind;
      n.begin = ast_->nodes[left].begin;
      n.end = ast_->nodes[right].end;
      n.tok_begin = op.begin;
      n.tok_end = op.end;
      n.kids = {left, right};
      if (op.kind == Tok::kUnknown) {
        n.kind = AstKind::kError;
        n.message =
            absl::StrCat("Syntax error: invalid symbol '", Text(op), "'");
      }
      const AstNode& l = ast_->nodes[left];
      if (IsComparison(op.kind) && l.kind == AstKind::kUnary &&
          l.op == Tok::kNot && !l.parenthesised) {
        absl::string_view operand = text_.substr(
            ast_->nodes[l.kids[0]].begin, n.end - ast_->nodes[l.kids[0]].begin);
        Warn(l.tok_begin, l.tok_end,
             "NOT binds tighter than a comparison: this is (NOT ...) "
             "compared, not NOT (comparison)",
             absl::StrCat("write NOT (", operand, ")"));
      }
      left = Add(std::move(n));
    }
    return left;
  }

  int ParseUnary(int depth) {
    const Token& t = Peek();
    if (t.kind == Tok::kMinus || t.kind == Tok::kNot) {
      if (depth > limits_.max_depth) {
        Error(t, absl::StrCat("expression nesting is deeper than the limit "
                              "of ",
                              limits_.max_depth));
        return -1;
      }
      Next();
      int operand = ParseUnary(depth + 1);
      if (operand < 0) return -1;
      AstNode n;
      n.kind = AstKind::kUnary;
      n.op = t.kind;
      n.begin = t.begin;
      n.end = ast_->nodes[operand].end;
      n.tok_begin = t.begin;
      n.tok_end = t.end;
      n.kids = {operand};
      return Add(std::move(n));
    }
    return ParsePrimary(depth);
  }

  int ParsePrimary(int depth) {
    const Token t = Next();
    AstNode n;
    n.begin = n.tok_begin = t.begin;
    n.end = n.tok_end = t.end;
    switch (t.kind) {
      case Tok::kLParen: {
        ++open_;
        int inner = ParseExpr(1, depth + 1);
        --open_;
        if (inner < 0) return -1;
        const Token& close = Peek();
        if (close.kind != Tok::kRParen) {
          // Error alternative '(' expr: accepted by the grammar, rejected
          // when compiled.
          n.kind = AstKind::kError;
          n.message = "Syntax error: missing closing ')'";
          n.end = ast_->nodes[inner].end;
          n.kids = {inner};
          return Add(std::move(n));
        }
        Next();
        if (open_ == 0 && Peek().kind == Tok::kRParen) {
          // Error alternative '(' expr ')' ')'.
          const Token extra = Next();
          n.kind = AstKind::kError;
          n.message = "Syntax error: unmatched closing ')'";
          n.tok_begin = extra.begin;
          n.tok_end = extra.end;
          n.end = extra.end;
          n.kids = {inner};
          return Add(std::move(n));
        }
        AstNode& in = ast_->nodes[inner];
        in.parenthesised = true;
        in.begin = t.begin;
        in.end = close.end;
        return inner;
      }
      case Tok::kUntermString:
        n.kind = AstKind::kError;
        n.message = "Syntax error: unterminated string";
        return Add(std::move(n));
      case Tok::kUnknown: {
        n.kind = AstKind::kError;
        n.message =
            absl::StrCat("Syntax error: invalid symbol '", Text(t), "'");
        if (StartsExpr(Peek().kind)) {
          int operand = ParseUnary(depth + 1);
          if (operand < 0) return -1;
          n.kids = {operand};
          n.end = ast_->nodes[operand].end;
        }
        return Add(std::move(n));
      }
      case Tok::kString:
      case Tok::kInteger:
      case Tok::kHex:
      case Tok::kReal:
      case Tok::kTrue:
      case Tok::kFalse:
      case Tok::kNull:
      case Tok::kUndefined:
        n.kind = AstKind::kLiteral;
        n.op = t.kind;
        return Add(std::move(n));
      case Tok::kSysProp:
        n.kind = AstKind::kSysProp;
        return Add(std::move(n));
      case Tok::kLBrace: {
        const Token p = Next();
        if (p.kind != Tok::kSysProp) {
          Unexpected(p, "a $property inside '{ }'");
          return -1;
        }
        const Token close = Next();
        if (close.kind != Tok::kRBrace) {
          Unexpected(close, "'}'");
          return -1;
        }
        n.kind = AstKind::kEscSysProp;
        n.tok_begin = p.begin;
        n.tok_end = p.end;
        n.end = close.end;
        return Add(std::move(n));
      }
      case Tok::kId: {
        if (Peek().kind != Tok::kLParen) {
          n.kind = AstKind::kId;
          return Add(std::move(n));
        }
        Next();
        n.kind = AstKind::kCall;
        ++open_;
        if (Peek().kind != Tok::kRParen) {
          while (true) {
            if (depth + 1 > limits_.max_depth) {
              Error(t, absl::StrCat("expression nesting is deeper than the "
                                    "limit of ",
                                    limits_.max_depth));
              return -1;
            }
            int arg = ParseExpr(1, depth + 1);
            if (arg < 0) return -1;
            n.kids.push_back(arg);
            if (Peek().kind == Tok::kComma) {
              Next();
              continue;
            }
            break;
          }
        }
        --open_;
        const Token close = Peek();
        if (close.kind != Tok::kRParen) {
          Unexpected(close,
                     absl::StrCat("')' closing the call of '", Text(t), "'"));
          return -1;
        }
        Next();
        n.end = close.end;
        if (open_ == 0 && Peek().kind == Tok::kRParen) {
          const Token extra = Next();
          n.kind = AstKind::kError;
          n.message = "Syntax error: unmatched closing ')'";
          n.tok_begin = extra.begin;
          n.tok_end = extra.end;
          n.end = extra.end;
          n.kids.clear();
        }
        return Add(std::move(n));
      }
      case Tok::kRParen:
        Error(t, "Syntax error: unmatched closing ')'");
        return -1;
      default:
        Unexpected(t, "an expression");
        return -1;
    }
  }

  void set_ast(Ast* ast) { ast_ = ast; }

 private:
  absl::string_view text_;
  const std::vector<Token>& toks_;
  ParseLimits limits_;
  std::vector<RawDiag>* diags_;
  size_t pos_ = 0;
  int open_ = 0;  // enclosing '(' of groups and calls
  bool failed_ = false;
  Ast* ast_ = nullptr;
};

// Warns about operator characters absorbed into a name.
void WarnAbsorbedOperators(absl::string_view text,
                           const std::vector<Token>& toks, size_t from,
                           size_t to, std::vector<RawDiag>* diags) {
  for (size_t i = from; i < to && i < toks.size(); ++i) {
    const Token& t = toks[i];
    if (t.kind != Tok::kId && t.kind != Tok::kSysProp) continue;
    absl::string_view word = text.substr(t.begin, t.end - t.begin);
    if (t.kind == Tok::kSysProp && absl::StartsWithIgnoreCase(word, "$body.")) {
      continue;  // JSON keys may legitimately contain these characters
    }
    // A function name followed by '(' is fine unless it holds operators.
    size_t op_at = word.find_first_of("!+-*%|&");
    if (op_at == absl::string_view::npos) continue;
    if (op_at == 0 && word.size() > 1 && (word[0] == '-' || word[0] == '+') &&
        false) {
      continue;
    }
    std::string suggestion;
    if (word.back() == '!' && i + 1 < toks.size() &&
        toks[i + 1].kind == Tok::kEq) {
      suggestion = absl::StrCat("write '", word.substr(0, word.size() - 1),
                                " != ...' (with spaces)");
    } else {
      std::string spaced;
      for (size_t k = 0; k < word.size(); ++k) {
        char c = word[k];
        bool op = (c == '!' || c == '+' || c == '-' || c == '*' || c == '%' ||
                   c == '|');
        if (op && c == '|' && k + 1 < word.size() && word[k + 1] == '|') {
          absl::StrAppend(&spaced, k == 0 ? "" : " ", "||",
                          k + 2 < word.size() ? " " : "");
          ++k;
          continue;
        }
        if (op) {
          absl::StrAppend(&spaced, k == 0 ? "" : " ", std::string(1, c),
                          k + 1 < word.size() ? " " : "");
        } else {
          spaced.push_back(c);
        }
      }
      suggestion =
          absl::StrCat("write '", spaced, "' with spaces around the operator");
    }
    RawDiag d;
    d.severity = Diagnostic::Severity::kWarning;
    d.message = absl::StrCat("'", word,
                             "' is read as one name: the characters "
                             "! + - * % | are part of names unless separated "
                             "by spaces");
    d.begin = t.begin;
    d.end = t.end;
    d.suggestion = std::move(suggestion);
    diags->push_back(std::move(d));
  }
}

}  // namespace

std::string NormaliseSource(absl::string_view raw) {
  // CustomMessageSource.Create: trim, strip trailing '*', strip a trailing
  // '/' when longer than 1.
  std::string s(absl::StripAsciiWhitespace(raw));
  while (!s.empty() && s.back() == '*') s.pop_back();
  if (s.size() > 1) {
    while (!s.empty() && s.back() == '/') s.pop_back();
  }
  // BaseMessageSource: trim, strip trailing '/', append one '/'.
  absl::string_view v = absl::StripAsciiWhitespace(s);
  while (!v.empty() && v.back() == '/') v.remove_suffix(1);
  return absl::StrCat(v, "/");
}

bool ParseRouteSyntax(absl::string_view text, absl::string_view device_id,
                      const ParseLimits& limits, RouteSyntax* out,
                      std::vector<RawDiag>* diags) {
  if (text.size() > limits.max_length) {
    RawDiag d;
    d.message =
        absl::StrCat("route is ", text.size(),
                     " bytes long, more than the limit of ", limits.max_length);
    d.begin = 0;
    d.end = 1;
    diags->push_back(std::move(d));
    return false;
  }
  std::vector<Comment> comments;
  std::vector<Token> toks = Lex(text, &comments);
  for (const Comment& c : comments) {
    absl::string_view body = text.substr(c.begin, c.end - c.begin);
    std::string upper = absl::AsciiStrToUpper(body);
    if (upper.find("INTO") != std::string::npos ||
        upper.find("WHERE") != std::string::npos ||
        body.find("/*", 2) != absl::string_view::npos ||
        body.find('\'') != absl::string_view::npos ||
        body.find('"') != absl::string_view::npos) {
      RawDiag d;
      d.severity = Diagnostic::Severity::kWarning;
      d.message =
          "'/*' starts a comment that runs to the next '*/' and swallows "
          "the text in between";
      d.begin = c.begin;
      d.end = c.end;
      d.suggestion =
          "do not write '/*' in a route (in a FROM path write /messages/* "
          "only when no '*/' follows)";
      diags->push_back(std::move(d));
    }
  }
  Parser p(text, toks, limits, diags);
  if (p.Peek().kind == Tok::kEof) {
    RawDiag d;
    d.message = "Source cannot be null or empty";
    d.begin = 0;
    d.end = text.empty() ? 1 : uint32_t(text.size());
    diags->push_back(std::move(d));
    return false;
  }
  if (p.Peek().kind == Tok::kSelect) {
    p.Next();
    if (p.Peek().kind != Tok::kStar) {
      p.Unexpected(p.Peek(), "'*' after SELECT");
      return false;
    }
    p.Next();
  }
  if (p.Peek().kind != Tok::kFrom) {
    p.Unexpected(p.Peek(), "FROM");
    return false;
  }
  p.Next();
  // path ::= '/' item { '/' item }
  std::string raw_source;
  size_t first_path_tok = p.pos();
  if (p.Peek().kind != Tok::kSlash) {
    p.Unexpected(p.Peek(), "a source path starting with '/'");
    return false;
  }
  std::vector<Token> items;
  while (p.Peek().kind == Tok::kSlash) {
    absl::StrAppend(&raw_source, p.Text(p.Next()));
    const Token item = p.Next();
    if (item.kind != Tok::kStar && item.kind != Tok::kId) {
      p.Unexpected(item, "a path segment (a name or '*')");
      return false;
    }
    items.push_back(item);
    absl::StrAppend(&raw_source, p.Text(item));
  }
  size_t last_path_tok = p.pos();
  (void)first_path_tok;
  for (size_t k = 0; k + 1 < items.size(); ++k) {
    if (p.Text(items[k]).find('*') != absl::string_view::npos) {
      RawDiag d;
      d.severity = Diagnostic::Severity::kWarning;
      d.message =
          "a '*' that is not at the end of the FROM path is a literal "
          "character, not a wildcard: this route matches no real source";
      d.begin = items[k].begin;
      d.end = items[k].end;
      d.suggestion =
          "end the path at the wildcard (e.g. FROM /messages/modules/*) and "
          "test the rest in WHERE, e.g. $outputName = 'o1'";
      diags->push_back(std::move(d));
    }
  }
  if (!items.empty()) {
    absl::string_view last = p.Text(items.back());
    size_t star = last.find('*');
    if (star != absl::string_view::npos && star + 1 < last.size()) {
      RawDiag d;
      d.severity = Diagnostic::Severity::kWarning;
      d.message = "a '*' inside a path segment is a literal character";
      d.begin = items.back().begin;
      d.end = items.back().end;
      diags->push_back(std::move(d));
    } else if (star != absl::string_view::npos && last.size() > 1) {
      RawDiag d;
      d.severity = Diagnostic::Severity::kWarning;
      d.message = absl::StrCat("'", last,
                               "' is not a prefix wildcard: edgeHub strips "
                               "the trailing '*' and matches exactly '",
                               last.substr(0, last.size() - 1), "'");
      d.begin = items.back().begin;
      d.end = items.back().end;
      d.suggestion =
          "use a WHERE condition such as "
          "starts_with($connectionModuleId, '...') for a prefix";
      diags->push_back(std::move(d));
    }
  }
  out->source = NormaliseSource(raw_source);
  out->has_where = false;
  out->condition = Ast();
  if (p.Peek().kind == Tok::kWhere) {
    p.Next();
    out->has_where = true;
    out->condition.nodes.reserve(16);
    p.set_ast(&out->condition);
    size_t first = p.pos();
    if (p.Peek().kind == Tok::kInto) {
      p.Unexpected(p.Peek(), "a condition after WHERE");
      return false;
    }
    int root = p.ParseExpr(1, 0);
    if (root < 0) return false;
    out->condition.root = root;
    size_t last = p.pos() - 1;
    out->cond_begin = toks[first].begin;
    out->cond_end = toks[last].end;
    WarnAbsorbedOperators(text, toks, first, last + 1, diags);
  }
  if (p.Peek().kind != Tok::kInto) {
    const Token& t = p.Peek();
    p.Unexpected(t, out->has_where ? "INTO (or an operator)"
                                   : (last_path_tok == p.pos() ? "WHERE or INTO"
                                                               : "INTO"));
    return false;
  }
  p.Next();
  const Token sink = p.Next();
  SinkSpec& s = out->sink;
  if (sink.kind == Tok::kSysProp) {
    absl::string_view name = p.Text(sink);
    if (!absl::EqualsIgnoreCase(name, "$upstream")) {
      p.Error(sink,
              absl::StrCat("System endpoint type '", name, "' not supported"));
      return false;
    }
    s.kind = SinkSpec::Kind::kUpstream;
    s.endpoint_id = "iothub";
    s.module.clear();
    s.input.clear();
  } else if (sink.kind == Tok::kId) {
    if (p.Peek().kind != Tok::kLParen) {
      p.Unexpected(p.Peek(), "'(' after the endpoint function name");
      return false;
    }
    p.Next();
    const Token str = p.Next();
    if (str.kind != Tok::kString) {
      p.Unexpected(str, "a quoted endpoint address");
      return false;
    }
    if (p.Peek().kind != Tok::kRParen) {
      p.Unexpected(p.Peek(), "')'");
      return false;
    }
    p.Next();
    absl::string_view fname = p.Text(sink);
    if (!absl::EqualsIgnoreCase(fname, "BrokeredEndpoint")) {
      p.Error(sink, absl::StrCat("Function endpoint '", fname,
                                 "' not supported; use "
                                 "BrokeredEndpoint(\"/modules/{module}/"
                                 "inputs/{input}\") or $upstream"));
      return false;
    }
    absl::string_view addr = p.Text(str);
    addr = addr.substr(1, addr.size() - 2);
    // .NET Trim() also trims other Unicode spaces; ASCII covers real use.
    absl::string_view a = absl::StripAsciiWhitespace(addr);
    if (!a.empty() && a.front() == '/') a.remove_prefix(1);
    if (!a.empty() && a.back() == '/') a.remove_suffix(1);
    std::vector<absl::string_view> parts = absl::StrSplit(a, '/');
    if (parts.size() != 4) {
      p.Error(str, absl::StrCat("Endpoint address '", addr,
                                "' is invalid: expected "
                                "\"/modules/{module}/inputs/{input}\""));
      return false;
    }
    if (parts[0] != "modules" || parts[2] != "inputs") {
      RawDiag d;
      d.severity = Diagnostic::Severity::kWarning;
      d.message = absl::StrCat(
          "endpoint address '", addr,
          "' does not read /modules/{module}/inputs/{input}; edgeHub "
          "accepts it anyway and delivers to module '",
          parts[1], "', input '", parts[3], "'");
      d.begin = str.begin;
      d.end = str.end;
      d.suggestion = absl::StrCat("write BrokeredEndpoint(\"/modules/",
                                  parts[1], "/inputs/", parts[3], "\")");
      diags->push_back(std::move(d));
    }
    s.kind = SinkSpec::Kind::kModule;
    s.module = std::string(parts[1]);
    s.input = std::string(parts[3]);
    s.endpoint_id = absl::StrCat(device_id, "/", parts[1], "/", parts[3]);
  } else {
    p.Unexpected(sink, "$upstream or BrokeredEndpoint(\"...\")");
    return false;
  }
  if (p.Peek().kind != Tok::kEof) {
    const Token& t = p.Peek();
    RawDiag d;
    d.severity = Diagnostic::Severity::kWarning;
    d.message = "text after the sink is ignored (as in edgeHub)";
    d.begin = t.begin;
    d.end = uint32_t(text.size());
    d.suggestion = "remove it";
    diags->push_back(std::move(d));
  }
  return true;
}

}  // namespace edgeroute::query::internal
