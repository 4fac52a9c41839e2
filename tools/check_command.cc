// edgeroute check: validates a deployment manifest like a compiler.

#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gateway/gateway.h"
#include "query/manifest.h"
#include "query/query.h"
#include "tools/commands.h"

namespace edgeroute::tools {
namespace {

using query::Diagnostic;

void PrintDiagnostic(std::ostream& out, absl::string_view file,
                     const Diagnostic& d) {
  out << file << ":" << d.line << ":" << d.column << ": "
      << (d.is_error() ? "error" : "warning") << ": " << d.message << "\n";
  if (!d.excerpt.empty()) {
    for (absl::string_view line : absl::StrSplit(d.excerpt, '\n')) {
      out << "    " << line << "\n";
    }
  }
  if (!d.suggestion.empty()) out << "    suggestion: " << d.suggestion << "\n";
}

std::string Plural(size_t n, absl::string_view word) {
  return absl::StrCat(n, " ", word, n == 1 ? "" : "s");
}

std::string TtlText(int64_t secs) {
  if (secs < 0) return "no expiry";
  return absl::StrCat(secs, " s");
}

}  // namespace

int CheckCommand(const CommandContext& ctx) {
  // --store-max-bytes N (as `edgeroute run` takes it): check then says
  // which store limit applies.
  CommandContext common = ctx;
  common.args.clear();
  std::optional<uint64_t> flag_max_bytes;
  for (size_t i = 0; i < ctx.args.size(); ++i) {
    const std::string& arg = ctx.args[i];
    if (arg != "--store-max-bytes" &&
        !absl::StartsWith(arg, "--store-max-bytes=")) {
      common.args.push_back(arg);
      continue;
    }
    std::string value;
    if (arg.size() > 17) {
      value = arg.substr(18);
    } else if (i + 1 < ctx.args.size()) {
      value = ctx.args[++i];
    }
    uint64_t bytes = 0;
    if (!absl::SimpleAtoi(value, &bytes)) {
      *ctx.err << "edgeroute: --store-max-bytes wants a number of bytes (got '"
               << value << "')\n";
      return kExitUsage;
    }
    flag_max_bytes = bytes;
  }
  CommonOptions options;
  if (!ParseCommonOptions(common, /*allow_message=*/false, &options)) {
    return kExitUsage;
  }
  if (options.tsv || options.jsonl || options.positional.size() != 1) {
    *ctx.err << "usage: edgeroute check MANIFEST.json [--device NAME] "
                "[--store-max-bytes N]\n";
    return kExitUsage;
  }
  const std::string& path = options.positional[0];
  const std::string file = path == "-" ? "<stdin>" : path;
  std::string text;
  if (!ReadFileOrStdin(ctx, path, &text)) return kExitUsage;

  query::CompileOptions compile_options;
  compile_options.device_id = options.device;
  std::vector<Diagnostic> diags;
  absl::StatusOr<query::CompiledEdgeHubConfig> result =
      query::CompileEdgeHubConfig(text, compile_options, &diags);
  size_t errors = 0, warnings = 0;
  for (const Diagnostic& d : diags) {
    PrintDiagnostic(*ctx.out, file, d);
    (d.is_error() ? errors : warnings)++;
  }
  if (!result.ok()) {
    if (errors == 0) {
      // Not expected: a failure always comes with diagnostics.
      *ctx.out << file << ": error: " << result.status().message() << "\n";
      errors = 1;
    }
    *ctx.out << file << ": invalid: " << Plural(errors, "error");
    if (warnings > 0) *ctx.out << ", " << Plural(warnings, "warning");
    *ctx.out << "\n";
    return kExitInvalid;
  }
  const query::EdgeHubConfig& config = result->config;
  *ctx.out << file << ": valid: schema " << config.schema_version << ", "
           << Plural(config.routes.size(), "route") << ", message TTL "
           << TtlText(config.ttl_secs);
  if (warnings > 0) *ctx.out << ", " << Plural(warnings, "warning");
  *ctx.out << "\n";
  // The one rule `edgeroute run` applies (gateway::ChooseStoreLimit).
  const gateway::StoreLimit limit =
      gateway::ChooseStoreLimit(flag_max_bytes, config.max_size_bytes);
  *ctx.out << "  store limit: "
           << (limit.max_bytes == 0 ? std::string("none")
                                    : absl::StrCat(limit.max_bytes, " bytes"))
           << " (" << limit.source;
  if (flag_max_bytes.has_value() && config.max_size_bytes.has_value()) {
    *ctx.out << "; the manifest's " << *config.max_size_bytes
             << " bytes do not apply";
  }
  *ctx.out << ")\n";
  const query::RouteSet& routes = *result->routes;
  for (size_t i = 0; i < routes.size(); ++i) {
    const query::RouteSet::RouteInfo& r = routes.route(i);
    *ctx.out << "  " << r.name << ": " << r.source;
    if (r.condition != "true") *ctx.out << " WHERE " << OneLine(r.condition);
    *ctx.out << " -> " << r.sink.endpoint_id << " (priority ";
    if (r.priority == query::kDefaultPriority) {
      *ctx.out << "default";
    } else {
      *ctx.out << r.priority;
    }
    *ctx.out << ", TTL "
             << (r.ttl_secs == 0 ? std::string("global") : TtlText(r.ttl_secs))
             << ")\n";
  }
  return kExitOk;
}

}  // namespace edgeroute::tools
