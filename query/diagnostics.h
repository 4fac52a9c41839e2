// Diagnostics while compiling: the parsers and the compiler report problems
// as byte ranges of the text they read (RawDiag); these turn them into the
// public Diagnostic (line, columns, caret excerpt from base/source_text.h).
// Internal to //query.

#ifndef EDGEROUTE_QUERY_DIAGNOSTICS_H_
#define EDGEROUTE_QUERY_DIAGNOSTICS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "base/source_text.h"
#include "query/query.h"

namespace edgeroute::query::internal {

// A problem at a byte range of the text being compiled.
struct RawDiag {
  Diagnostic::Severity severity = Diagnostic::Severity::kError;
  std::string message;
  uint32_t begin = 0;
  uint32_t end = 0;
  std::string suggestion;

  // An error or warning over [begin, end), widened to one byte when empty.
  static RawDiag Error(uint32_t begin, uint32_t end, std::string message,
                       std::string suggestion = "") {
    return Make(Diagnostic::Severity::kError, begin, end, std::move(message),
                std::move(suggestion));
  }
  static RawDiag Warning(uint32_t begin, uint32_t end, std::string message,
                         std::string suggestion = "") {
    return Make(Diagnostic::Severity::kWarning, begin, end, std::move(message),
                std::move(suggestion));
  }

 private:
  static RawDiag Make(Diagnostic::Severity severity, uint32_t begin,
                      uint32_t end, std::string message,
                      std::string suggestion) {
    RawDiag d;
    d.severity = severity;
    d.message = std::move(message);
    d.begin = begin;
    d.end = end > begin ? end : begin + 1;
    d.suggestion = std::move(suggestion);
    return d;
  }
};

// Converts a byte range of `text` into a Diagnostic (line, columns, caret
// excerpt). `lines` indexes `text`.
Diagnostic MakeDiagnostic(absl::string_view text, const LineIndex& lines,
                          const RawDiag& raw);

// Converts every diagnostic of `raw` (positions in `text`), prefixes its
// message with `prefix`, and appends it to `out` (when not null); appends
// each error's "line:col: message" to `errors` (when not null). Returns
// the first error's "line:col: message", or "" when there is none.
std::string PublishDiagnostics(absl::string_view text,
                               const std::vector<RawDiag>& raw,
                               absl::string_view prefix,
                               std::vector<Diagnostic>* out,
                               std::vector<std::string>* errors);

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_DIAGNOSTICS_H_
