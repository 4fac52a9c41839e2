// Stage 2 of compiling a condition, edgeHub's ConditionVisitor: literal
// values, property resolution, the static types and operand rules of every
// operator, constant folding, and the fusing of a load compared with a
// constant. The built-ins' overload rules are in builtins.cc. Internal to
// //query.
//
// Thread-safety: a Compiler is used once, on one thread.

#ifndef EDGEROUTE_QUERY_COMPILER_H_
#define EDGEROUTE_QUERY_COMPILER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "query/diagnostics.h"
#include "query/lexer.h"
#include "query/program.h"
#include "query/syntax.h"
#include "query/value.h"

namespace edgeroute::query::internal {

// Type-checks and compiles the condition `ast` (positions in `text`) into
// `program`. Returns the root node, or -1 with the errors appended to
// `diags` (warnings are appended either way). An empty condition (no
// root) is an error: a WHERE clause needs a condition.
int CompileCondition(absl::string_view text, const Ast& ast, Program* program,
                     std::vector<RawDiag>* diags);

class Compiler {
 public:
  Compiler(Program* p, absl::string_view text, const Ast& ast,
           std::vector<RawDiag>* diags)
      : p_(p), text_(text), ast_(ast), diags_(diags) {}

  // Returns the root node, or -1 after reporting every error.
  int Run();

 private:
  absl::string_view Text(uint32_t b, uint32_t e) const;
  void Error(uint32_t b, uint32_t e, std::string msg,
             std::string suggestion = "");
  void Warn(uint32_t b, uint32_t e, std::string msg, std::string suggestion);

  int Add(Node n);
  int Const(StaticType t, Value v, const AstNode& a);
  int Undefined(const AstNode& a);
  const Node& N(int i) const;
  StaticType T(int i) const;
  bool IsConst(int i) const;

  // Folds node `i` to a constant when its operands are constants.
  int Fold(int i);

  int Literal(const AstNode& a);

  // $name / {$name}.
  int Property(const AstNode& a, bool escaped);

  static bool IsCmp(Tok t);
  static bool QvCompatible(StaticType t);

  void OperandError(const AstNode& a, StaticType l, StaticType r, StaticType el,
                    StaticType er, std::string extra = "");

  int Binary(const AstNode& a, int l, int r);

  // A built-in call: its overload rules are in builtins.cc.
  int Call(const AstNode& a, std::vector<int> args);

  int Build(int idx);

  Program* p_;
  absl::string_view text_;
  const Ast& ast_;
  std::vector<RawDiag>* diags_;
  int errors_ = 0;
};

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_COMPILER_H_
