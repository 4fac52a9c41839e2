#include "query/manifest.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/json_string.h"
#include "base/source_text.h"
#include "query/manifest_schema.h"

namespace edgeroute::query {
namespace {

using internal::kManifestStrings;
using internal::ManifestParse;
using internal::ManifestReporter;
using internal::ParseManifest;

absl::Status ErrorsToStatus(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> lines;
  for (const Diagnostic& d : diagnostics) {
    if (!d.is_error()) continue;
    lines.push_back(absl::StrCat(d.line, ":", d.column, ": ", d.message));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(lines.size(), lines.size() == 1 ? " error" : " errors",
                   " in the manifest:\n", absl::StrJoin(lines, "\n")));
}

// Moves a diagnostic about a route's text to the text's place in the
// manifest source. `string_begin` is the offset of the route string's
// opening quote.
void MapIntoManifest(absl::string_view src, const LineIndex& lines,
                     size_t string_begin, Diagnostic* d) {
  std::string decoded;
  std::vector<size_t> offsets;
  JsonStringError error;
  if (DecodeJsonString(src, string_begin, kManifestStrings, &decoded, &offsets,
                       &error) == 0) {
    return;  // cannot happen: the string was decoded before
  }
  const size_t begin_in_text = OffsetOfLineColumn(decoded, d->line, d->column);
  size_t end_in_text = OffsetOfLineColumn(decoded, d->line, d->end_column);
  if (end_in_text <= begin_in_text) end_in_text = begin_in_text + 1;
  if (end_in_text >= offsets.size()) end_in_text = offsets.size() - 1;
  const size_t begin = offsets[begin_in_text];
  size_t end = offsets[end_in_text];
  if (end <= begin) end = begin + 1;
  const TextPosition p = lines.Position(begin);
  d->line = p.line;
  d->column = p.column;
  d->end_column = EndColumnOf(src, begin, end, p);
  d->excerpt = CaretExcerpt(src, p.line_begin, d->column, d->end_column);
}

// Finds the route a RouteSet diagnostic is about from its "route '<name>': "
// prefix (the longest name that matches wins).
class RouteFinder {
 public:
  explicit RouteFinder(const std::vector<RouteSpec>& routes) {
    for (size_t i = 0; i < routes.size(); ++i) {
      index_.emplace(routes[i].name, static_cast<int>(i));
    }
  }

  // The route's index, or -1.
  int Find(absl::string_view message) const {
    constexpr absl::string_view kPrefix = "route '";
    if (message.substr(0, kPrefix.size()) != kPrefix) return -1;
    int best = -1;
    for (size_t at = message.find("': ", kPrefix.size());
         at != absl::string_view::npos; at = message.find("': ", at + 1)) {
      auto it =
          index_.find(message.substr(kPrefix.size(), at - kPrefix.size()));
      if (it != index_.end()) best = it->second;
    }
    return best;
  }

 private:
  absl::flat_hash_map<std::string, int> index_;
};

}  // namespace

absl::StatusOr<EdgeHubConfig> ParseEdgeHubConfig(
    absl::string_view manifest_json, std::vector<Diagnostic>* diagnostics) {
  ManifestReporter reporter(manifest_json);
  ManifestParse result;
  ParseManifest(manifest_json, &reporter, &result);
  const absl::Status status = reporter.errors() > 0
                                  ? ErrorsToStatus(reporter.diagnostics())
                                  : absl::OkStatus();
  if (diagnostics != nullptr) {
    for (Diagnostic& d : reporter.diagnostics()) {
      diagnostics->push_back(std::move(d));
    }
  }
  if (!status.ok()) return status;
  return std::move(result.config);
}

absl::StatusOr<CompiledEdgeHubConfig> CompileEdgeHubConfig(
    absl::string_view manifest_json, const CompileOptions& options,
    std::vector<Diagnostic>* diagnostics) {
  ManifestReporter reporter(manifest_json);
  ManifestParse result;
  ParseManifest(manifest_json, &reporter, &result);
  std::unique_ptr<RouteSet> set;
  if (result.routes_readable) {
    // Compile the well-formed routes together; routes with manifest-level
    // errors are compiled separately, only to find errors in their text.
    std::vector<Diagnostic> route_diags;
    absl::StatusOr<std::unique_ptr<RouteSet>> compiled =
        RouteSet::Compile(result.config.routes, options, &route_diags);
    if (compiled.ok()) {
      set = *std::move(compiled);
    } else if (route_diags.empty()) {
      // A failure without diagnostics: report the status itself.
      Diagnostic d;
      d.message = std::string(compiled.status().message());
      reporter.Push(std::move(d));
    }
    std::vector<Diagnostic> extra_diags;
    if (!result.extra_routes.empty()) {
      (void)RouteSet::Compile(result.extra_routes, options, &extra_diags);
    }
    auto map_all = [&](std::vector<Diagnostic>* diags,
                       const std::vector<RouteSpec>& routes,
                       const std::vector<size_t>& begins) {
      const RouteFinder finder(routes);
      for (Diagnostic& d : *diags) {
        const int i = finder.Find(d.message);
        if (i >= 0) {
          MapIntoManifest(manifest_json, reporter.lines(), begins[i], &d);
        }
        reporter.Push(std::move(d));
      }
    };
    map_all(&route_diags, result.config.routes, result.text_begin);
    map_all(&extra_diags, result.extra_routes, result.extra_text_begin);
  }
  std::vector<Diagnostic>& all = reporter.diagnostics();
  // Report in manifest order.
  std::stable_sort(
      all.begin(), all.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return a.line != b.line ? a.line < b.line : a.column < b.column;
      });
  const int errors = reporter.errors();
  absl::Status status = errors > 0 ? ErrorsToStatus(all) : absl::OkStatus();
  if (diagnostics != nullptr) {
    for (Diagnostic& d : all) diagnostics->push_back(std::move(d));
  }
  if (!status.ok()) return status;
  if (set == nullptr) {
    return absl::InternalError("route set missing after a clean compile");
  }
  CompiledEdgeHubConfig out;
  out.config = std::move(result.config);
  out.routes = std::move(set);
  return out;
}

}  // namespace edgeroute::query
