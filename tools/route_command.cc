// edgeroute route: edgeHub's first stage (route grammar and sink creation)
// for batches of routes or one route; and the hidden match-source command.

#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "query/query.h"
#include "tools/commands.h"
#include "base/json_reader.h"
#include "base/json_string.h"
#include "tools/json_lines.h"

namespace edgeroute::tools {
namespace {

using query::Diagnostic;
using query::ParsedRoute;

struct RouteResult {
  absl::StatusOr<ParsedRoute> parsed;
  std::vector<Diagnostic> diagnostics;
};

RouteResult Parse(absl::string_view route, const std::string& device) {
  RouteResult r{absl::UnknownError(""), {}};
  r.parsed = query::ParseRoute(route, device, &r.diagnostics);
  return r;
}

std::vector<std::string> Messages(const std::vector<Diagnostic>& diags,
                                  bool errors) {
  std::vector<std::string> out;
  for (const Diagnostic& d : diags) {
    if (d.is_error() != errors) continue;
    out.push_back(absl::StrCat(errors ? "" : "warning: ", d.line, ":", d.column,
                               ": ", d.message));
  }
  return out;
}

std::string RouteTsvLine(absl::string_view line, const std::string& device) {
  const absl::string_view route = line.substr(0, line.find('\t'));
  RouteResult r = Parse(route, device);
  if (!r.parsed.ok()) {
    return absl::StrCat(
        "error\t",
        OneLine(FirstError(r.diagnostics, r.parsed.status().message())));
  }
  std::string out = absl::StrCat("source=", r.parsed->source,
                                 "|condition=", OneLine(r.parsed->condition),
                                 "|sink=", r.parsed->sink.endpoint_id);
  const std::vector<std::string> warnings = Messages(r.diagnostics, false);
  if (!warnings.empty()) {
    absl::StrAppend(&out, "\t", OneLine(absl::StrJoin(warnings, "; ")));
  }
  return out;
}

std::string RouteJsonLine(absl::string_view line, const std::string& device) {
  JsonNode root;
  absl::Status read = ReadJsonLine(line, &root);
  absl::StatusOr<std::string> route =
      read.ok() ? StringMember(root, "route") : read;
  if (!route.ok()) {
    return absl::StrCat("{\"error\": ", JsonQuote(route.status().message()),
                        ", \"input_error\": true}");
  }
  RouteResult r = Parse(*route, device);
  if (!r.parsed.ok()) {
    const Diagnostic* first = nullptr;
    for (const Diagnostic& d : r.diagnostics) {
      if (d.is_error()) {
        first = &d;
        break;
      }
    }
    return absl::StrCat(
        "{\"error\": ",
        JsonQuote(first != nullptr ? first->message
                                   : r.parsed.status().message()),
        ", \"line\": ", first != nullptr ? first->line : 1,
        ", \"column\": ", first != nullptr ? first->column : 1,
        ", \"errors\": ", JsonList(Messages(r.diagnostics, true)), "}");
  }
  std::string out =
      absl::StrCat("{\"source\": ", JsonQuote(r.parsed->source),
                   ", \"condition\": ", JsonQuote(r.parsed->condition),
                   ", \"sink\": ", JsonQuote(r.parsed->sink.endpoint_id));
  const std::vector<std::string> warnings = Messages(r.diagnostics, false);
  if (!warnings.empty()) {
    absl::StrAppend(&out, ", \"warnings\": ", JsonList(warnings));
  }
  out += "}";
  return out;
}

int RouteOne(const CommandContext& ctx, const CommonOptions& options) {
  RouteResult r = Parse(options.positional[0], options.device);
  for (const Diagnostic& d : r.diagnostics) *ctx.out << d.ToString() << "\n";
  if (!r.parsed.ok()) {
    if (r.diagnostics.empty()) *ctx.out << r.parsed.status().message() << "\n";
    return kExitInvalid;
  }
  *ctx.out << "source:    " << r.parsed->source << "\n"
           << "condition: " << r.parsed->condition << "\n"
           << "sink:      " << r.parsed->sink.endpoint_id << "\n";
  return kExitOk;
}

template <typename LineFn>
int Batch(const CommandContext& ctx, LineFn fn) {
  std::string line;
  while (std::getline(*ctx.in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (IsPassThroughLine(line)) {
      *ctx.out << line << "\n";
      continue;
    }
    *ctx.out << fn(line) << "\n";
  }
  ctx.out->flush();
  return kExitOk;
}

}  // namespace

int RouteCommand(const CommandContext& ctx) {
  CommonOptions options;
  if (!ParseCommonOptions(ctx, /*allow_message=*/false, &options)) {
    return kExitUsage;
  }
  if (options.tsv || options.jsonl) {
    if (!options.positional.empty()) {
      *ctx.err << "edgeroute route: --tsv/--jsonl read stdin; no route "
                  "argument is allowed with them\n";
      return kExitUsage;
    }
    const std::string device = options.device;
    if (options.jsonl) {
      return Batch(
          ctx, [&](absl::string_view l) { return RouteJsonLine(l, device); });
    }
    return Batch(ctx,
                 [&](absl::string_view l) { return RouteTsvLine(l, device); });
  }
  if (options.positional.size() != 1) {
    *ctx.err << "usage: edgeroute route 'ROUTE' [--device NAME] | route "
                "--tsv|--jsonl [--device NAME]\n";
    return kExitUsage;
  }
  return RouteOne(ctx, options);
}

int MatchSourceCommand(const CommandContext& ctx) {
  CommonOptions options;
  if (!ParseCommonOptions(ctx, /*allow_message=*/false, &options)) {
    return kExitUsage;
  }
  return Batch(ctx, [&](absl::string_view line) -> std::string {
    const size_t tab = line.find('\t');
    if (tab == absl::string_view::npos) {
      return "error\texpected FROM-path<TAB>message-source";
    }
    const absl::string_view path = line.substr(0, tab);
    absl::string_view source = line.substr(tab + 1);
    source = source.substr(0, source.find('\t'));
    RouteResult r =
        Parse(absl::StrCat("FROM ", path, " INTO $upstream"), options.device);
    if (!r.parsed.ok()) {
      return absl::StrCat("error\t", OneLine(r.parsed.status().message()));
    }
    return query::SourceMatches(r.parsed->source, source) ? "true" : "false";
  });
}

}  // namespace edgeroute::tools
