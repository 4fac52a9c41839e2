#include "query/diagnostics.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace edgeroute::query {

std::string Diagnostic::ToString() const {
  std::string out = absl::StrCat(
      line, ":", column, ": ",
      severity == Severity::kError ? "error" : "warning", ": ", message);
  if (!excerpt.empty()) absl::StrAppend(&out, "\n", excerpt);
  if (!suggestion.empty()) {
    absl::StrAppend(&out, "\n  suggestion: ", suggestion);
  }
  return out;
}

namespace internal {

Diagnostic MakeDiagnostic(absl::string_view text, const LineIndex& lines,
                          const RawDiag& raw) {
  Diagnostic d;
  d.severity = raw.severity;
  d.message = raw.message;
  d.suggestion = raw.suggestion;
  const size_t begin = std::min<size_t>(raw.begin, text.size());
  const TextPosition p = lines.Position(begin);
  d.line = p.line;
  d.column = p.column;
  d.end_column =
      EndColumnOf(text, begin, std::max<size_t>(raw.end, begin + 1), p);
  d.excerpt = CaretExcerpt(text, p.line_begin, d.column, d.end_column);
  return d;
}

std::string PublishDiagnostics(absl::string_view text,
                               const std::vector<RawDiag>& raw,
                               absl::string_view prefix,
                               std::vector<Diagnostic>* out,
                               std::vector<std::string>* errors) {
  std::string first;
  if (raw.empty()) return first;
  const LineIndex lines(text);
  for (const RawDiag& r : raw) {
    Diagnostic d = MakeDiagnostic(text, lines, r);
    if (!prefix.empty()) d.message = absl::StrCat(prefix, d.message);
    if (d.is_error()) {
      std::string e = absl::StrCat(d.line, ":", d.column, ": ", d.message);
      if (first.empty()) first = e;
      if (errors != nullptr) errors->push_back(std::move(e));
    }
    if (out != nullptr) out->push_back(std::move(d));
  }
  return first;
}

}  // namespace internal
}  // namespace edgeroute::query
