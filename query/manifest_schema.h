// The schema of $edgeHub's desired properties (schemaVersion, routes,
// storeAndForwardConfiguration), read from a manifest exactly as edgeHub's
// config classes read it, with every problem reported at its place in the
// manifest. Internal to //query (manifest.h is the public API).
//
// Thread-safety: a reporter and a parse belong to one call.

#ifndef EDGEROUTE_QUERY_MANIFEST_SCHEMA_H_
#define EDGEROUTE_QUERY_MANIFEST_SCHEMA_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "base/json_reader.h"
#include "base/json_string.h"
#include "base/source_text.h"
#include "query/manifest.h"
#include "query/query.h"

namespace edgeroute::query::internal {

// How manifest strings are read: a lone surrogate escape reads as U+FFFD
// (it cannot be UTF-8); other bytes are kept as they are (route text is
// repaired when it is compiled).
inline constexpr JsonStringOptions kManifestStrings = {LoneSurrogate::kReplace,
                                                       /*require_utf8=*/false};

// Diagnostics positioned in the manifest text.
class ManifestReporter {
 public:
  explicit ManifestReporter(absl::string_view src) : src_(src), lines_(src) {}

  const LineIndex& lines() const { return lines_; }

  void Add(Diagnostic::Severity severity, size_t begin, size_t end,
           std::string message, std::string suggestion = "") {
    Diagnostic d;
    d.severity = severity;
    d.message = std::move(message);
    d.suggestion = std::move(suggestion);
    const TextPosition p = lines_.Position(begin);
    d.line = p.line;
    d.column = p.column;
    d.end_column = EndColumnOf(src_, begin, end, p);
    d.excerpt = CaretExcerpt(src_, p.line_begin, d.column, d.end_column);
    if (d.is_error()) ++errors_;
    diagnostics_.push_back(std::move(d));
  }
  void Error(const JsonNode& at, std::string message,
             std::string suggestion = "") {
    Add(Diagnostic::Severity::kError, at.begin, at.end, std::move(message),
        std::move(suggestion));
  }
  void Warning(const JsonNode& at, std::string message,
               std::string suggestion = "") {
    Add(Diagnostic::Severity::kWarning, at.begin, at.end, std::move(message),
        std::move(suggestion));
  }
  // Reports at a member's name rather than its value.
  void ErrorAtKey(const JsonNode& member, std::string message,
                  std::string suggestion = "") {
    Add(Diagnostic::Severity::kError, member.key_begin,
        member.key_begin + member.key.size() + 2, std::move(message),
        std::move(suggestion));
  }
  void WarningAtKey(const JsonNode& member, std::string message,
                    std::string suggestion = "") {
    Add(Diagnostic::Severity::kWarning, member.key_begin,
        member.key_begin + member.key.size() + 2, std::move(message),
        std::move(suggestion));
  }
  void Push(Diagnostic d) {
    if (d.is_error()) ++errors_;
    diagnostics_.push_back(std::move(d));
  }

  int errors() const { return errors_; }
  std::vector<Diagnostic>& diagnostics() { return diagnostics_; }

 private:
  absl::string_view src_;
  LineIndex lines_;
  std::vector<Diagnostic> diagnostics_;
  int errors_ = 0;
};

// What the parse learned, including what CompileEdgeHubConfig needs to map
// route diagnostics back into the manifest.
struct ManifestParse {
  EdgeHubConfig config;
  // Per route in config.routes: the source offset of its text's opening
  // quote (the route string itself, or the "route" member's value).
  std::vector<size_t> text_begin;
  // Routes that had manifest-level errors (bad priority, ...) but whose text
  // can still be compiled to find more errors. Parallel to extra_text_begin.
  std::vector<RouteSpec> extra_routes;
  std::vector<size_t> extra_text_begin;
  // The routes object could be read (routes can be compiled).
  bool routes_readable = false;
};

// Reads `manifest_json` (any of the shapes manifest.h accepts) into *out,
// reporting every problem through `reporter`.
void ParseManifest(absl::string_view manifest_json, ManifestReporter* reporter,
                   ManifestParse* out);

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_MANIFEST_SCHEMA_H_
