// Private to //tools:cli: the subcommands behind RunEdgeroute and the small
// helpers they share.

#ifndef EDGEROUTE_TOOLS_COMMANDS_H_
#define EDGEROUTE_TOOLS_COMMANDS_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "query/query.h"

namespace edgeroute::tools {

// Exit codes.
constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;
constexpr int kExitUsage = 2;

// What a subcommand gets: its arguments (after the subcommand name) and the
// three streams.
struct CommandContext {
  std::vector<std::string> args;
  std::istream* in;
  std::ostream* out;
  std::ostream* err;
};

// Parsed common options. Unknown flags are usage errors.
struct CommonOptions {
  bool tsv = false;
  bool jsonl = false;
  std::string device = "DEV";
  std::string message_file;  // eval --message
  std::vector<std::string> positional;
};

// Parses --tsv, --jsonl, --device NAME (or --device=NAME), --message FILE
// (only when `allow_message`). Returns false after writing the problem to
// ctx.err.
bool ParseCommonOptions(const CommandContext& ctx, bool allow_message,
                        CommonOptions* options);

// Batch input lines that are passed through unchanged: blank (only spaces,
// tabs) or starting with '#'.
bool IsPassThroughLine(absl::string_view line);

// One line of text for a TSV/plain output field: newlines and tabs become
// spaces.
std::string OneLine(absl::string_view text);

// "line:col: message" of the first error in `diags`, or `fallback`.
std::string FirstError(const std::vector<query::Diagnostic>& diags,
                       absl::string_view fallback);

// Reads a whole file ("-" = ctx.in). Returns false after reporting.
bool ReadFileOrStdin(const CommandContext& ctx, const std::string& path,
                     std::string* contents);

int EvalCommand(const CommandContext& ctx);
int RouteCommand(const CommandContext& ctx);
int CheckCommand(const CommandContext& ctx);
// store inspect DIR.
int StoreCommand(const CommandContext& ctx);
// Hidden: "FROM-path<TAB>message-source" lines -> true/false (sources.tsv).
int MatchSourceCommand(const CommandContext& ctx);
// identity add|token|connection-string|list|remove: the identities file.
int IdentityCommand(const CommandContext& ctx);

}  // namespace edgeroute::tools

#endif  // EDGEROUTE_TOOLS_COMMANDS_H_
