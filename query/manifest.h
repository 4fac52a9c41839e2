// IoT Edge deployment manifests: the routing part of edgeHub's desired
// properties (schema versions 1.0 to 1.3), read exactly as edgeHub reads
// them, with every problem reported at its line and column in the manifest.
//
//   ParseEdgeHubConfig   -- the JSON and the desired-properties schema
//                           (schemaVersion, routes, storeAndForward...).
//                           Route texts are not parsed.
//   CompileEdgeHubConfig -- the above, then every route compiled together
//                           (RouteSet::Compile, both of edgeHub's stages).
//
// Accepted input: a whole deployment manifest
// ({"modulesContent": {"$edgeHub": {"properties.desired": {...}}}}, also
// wrapped in {"content": ...} as `az iot edge` writes it), the
// modulesContent object itself, or a bare $edgeHub desired-properties object
// ({"schemaVersion": ..., "routes": ..., ...}).
//
// The JSON must be strict RFC 8259 JSON (no comments, no trailing commas).
// Where edgeroute deliberately differs from edgeHub it says so below.

#ifndef EDGEROUTE_QUERY_MANIFEST_H_
#define EDGEROUTE_QUERY_MANIFEST_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "query/query.h"

namespace edgeroute::query {

// The routing configuration from $edgeHub's desired properties.
struct EdgeHubConfig {
  // As written in the manifest, e.g. "1.1". Always major 1, minor 0-3.
  std::string schema_version;
  // In manifest order. Names are edgeHub's route keys: as written for schema
  // 1.0; for 1.1+ a name that needs JSON-path escaping takes edgeHub's
  // (Newtonsoft) path form, e.g. "a.b" becomes "['a.b']". priority is 0-9 or
  // kDefaultPriority; ttl_secs is 0 ("use the global TTL") or positive.
  // Schema 1.0 routes that are empty or whitespace are skipped (as edgeHub
  // does, with a warning).
  std::vector<RouteSpec> routes;
  // storeAndForwardConfiguration.timeToLiveSecs: the global TTL of new
  // messages, in seconds. Negative means infinite. Schema 1.0 may omit
  // storeAndForwardConfiguration: then -1 (infinite, edgeHub's own fallback).
  int64_t ttl_secs = -1;
  // storeAndForwardConfiguration.storeLimits.maxSizeBytes, when given.
  std::optional<int64_t> max_size_bytes;
};

// A manifest whose routes compiled.
struct CompiledEdgeHubConfig {
  EdgeHubConfig config;
  // The compiled routes, in config.routes order. Never null.
  std::unique_ptr<RouteSet> routes;
};

// Parses `manifest_json` (see the file comment for the accepted shapes) into
// an EdgeHubConfig. Route texts are not parsed here.
//
// Rules (edgeHub's, from its config classes and Newtonsoft.Json):
//  * schemaVersion is required and parsed like .NET's Version
//    ("major.minor[.build[.revision]]": "1" is invalid, "1.1.0" is fine);
//    major must be 1 and minor 0-3. A JSON number is accepted by its text,
//    with a warning.
//  * 1.0: "routes" (optional) maps names to route strings; an object route is
//    an error; empty or whitespace strings (and null) are skipped.
//  * 1.1-1.3: "routes" is required (may be {}); each value is a string or
//    {"route": "...", "priority": 0-9, "timeToLiveSecs": uint}; the route
//    text must not be empty or whitespace; priority defaults to
//    kDefaultPriority; timeToLiveSecs defaults to 0. An empty route name, a
//    value that is neither a string nor an object, a priority outside 0-9,
//    or a negative or non-integer number are errors. Unknown keys in a route
//    object are ignored with a warning. Member names below the top level
//    match case-insensitively, as Newtonsoft binds them.
//  * storeAndForwardConfiguration is required for 1.1+ and must carry
//    timeToLiveSecs (a 32-bit integer; negative = infinite). Unlike edgeHub,
//    which silently reads a missing timeToLiveSecs as 0 (every message
//    expires at once), edgeroute reports it as an error. storeLimits is
//    optional; when present it needs maxSizeBytes >= 0.
//  * A route name that appears twice: the later one wins (as in edgeHub),
//    with a warning.
//
// Returns the config when there is no error, else InvalidArgument whose
// message lists every error. When `diagnostics` is not null it receives every
// error and warning; positions (line, column in characters) are in
// `manifest_json`, and every message about a route names it ("route 'x': ").
absl::StatusOr<EdgeHubConfig> ParseEdgeHubConfig(
    absl::string_view manifest_json, std::vector<Diagnostic>* diagnostics);

// ParseEdgeHubConfig, then RouteSet::Compile over all routes with `options`.
// Every error is collected: routes are compiled even when other parts of the
// manifest are wrong (as long as the routes object itself could be read).
// Diagnostics from a route's text are moved to that text's place in the
// manifest (a route string with JSON escapes maps character by character),
// with the manifest line as excerpt; they keep the "route '<name>': " prefix.
// Returns InvalidArgument listing every error when there is any.
absl::StatusOr<CompiledEdgeHubConfig> CompileEdgeHubConfig(
    absl::string_view manifest_json, const CompileOptions& options,
    std::vector<Diagnostic>* diagnostics);

}  // namespace edgeroute::query

#endif  // EDGEROUTE_QUERY_MANIFEST_H_
