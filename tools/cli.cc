#include "tools/cli.h"

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tools/commands.h"

namespace edgeroute::tools {
namespace {

constexpr char kHelp[] =
    R"(edgeroute - Azure IoT Edge hub (edgeHub) routes, checked and evaluated offline

Usage:
  edgeroute check MANIFEST.json [--device NAME]
      Validate a deployment manifest (or a bare $edgeHub desired-properties
      object, schema 1.0-1.3) like a compiler: every error and warning with
      route name, line, column and a caret. MANIFEST "-" reads stdin.
      Exit 0 when valid (warnings allowed), 1 when not, 2 on usage errors.

  edgeroute eval 'CONDITION' [--message FILE.json]
      Evaluate one condition on one message and show the value of each
      sub-expression that decided it. Without --message the message is
      empty. FILE "-" reads stdin. Exit 1 when the condition does not compile.

  edgeroute eval --tsv [--device NAME]
      Read lines "condition<TAB>message-json[<TAB>anything]" from stdin and
      print one line each: true, false, undefined or compile-error, then
      optionally a TAB and the error or warnings. A line whose message is
      malformed prints "error<TAB>reason". Each condition is evaluated as the
      WHERE clause of: FROM /messages WHERE <condition> INTO $upstream

  edgeroute eval --jsonl [--device NAME]
      Read {"condition": STRING, "message": MESSAGE} per line; print
      {"result": "true"|"false"|"undefined"|"compile-error", ...} with
      "error", "line", "column" or "warnings" when there are any.

  edgeroute route --tsv [--device NAME]
      Read one route per line (anything after a TAB is ignored) and print
      edgeHub's first stage (route grammar and sink; the condition is not
      type-checked): source=S|condition=C|sink=E, or error, optionally
      followed by a TAB and the message.

  edgeroute route --jsonl [--device NAME]
      Read {"route": STRING} per line; print {"source": S, "condition": C,
      "sink": E} or {"error": MESSAGE, "line": L, "column": C}.

  edgeroute route 'ROUTE' [--device NAME]
      Parse one route and print its source, condition and sink.

  edgeroute store inspect DIR
      Report a store-and-forward directory: queues, depths, checkpoints,
      oldest message age, bytes on disk. Opens it read-only.

  edgeroute help | --help
      This text.

Messages (eval) are JSON: {"props": {...}, "sys": {...}, "body": B}.
  props  application properties, string or null values
  sys    system properties by edgeHub's names: contentType, contentEncoding,
         connectionDeviceId, connectionModuleId, outputName, messageId, cid...
  body   a JSON string is the raw body text; any other JSON value is sent as
         its JSON text; no "body" means an empty body. $body queries need
         sys contentType "application/json" and contentEncoding "utf-8".
Batch modes echo blank lines and lines starting with '#' unchanged; one bad
line never stops the batch. --device names the edge device in module
endpoint ids (DEV/module/input); the default is DEV.
)";

struct Command {
  const char* name;
  int (*run)(const CommandContext& ctx);
  bool hidden;
};

int NotYet(const CommandContext& ctx) {
  *ctx.err << "edgeroute: this command is not available in this build\n";
  return kExitUsage;
}

constexpr Command kCommands[] = {
    {"eval", EvalCommand, false},
    {"route", RouteCommand, false},
    {"check", CheckCommand, false},
    {"match-source", MatchSourceCommand, true},
    {"store", StoreCommand, false},
    // Reserved for the gateway: running it, the demo.
    {"run", NotYet, true},
    {"demo", NotYet, true},
};

}  // namespace

bool ParseCommonOptions(const CommandContext& ctx, bool allow_message,
                        CommonOptions* options) {
  const std::vector<std::string>& a = ctx.args;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string& arg = a[i];
    auto value = [&](absl::string_view flag, std::string* out) {
      if (absl::StartsWith(arg, absl::StrCat(flag, "="))) {
        *out = arg.substr(flag.size() + 1);
        return true;
      }
      if (i + 1 >= a.size()) {
        *ctx.err << "edgeroute: " << flag << " needs a value\n";
        return false;
      }
      *out = a[++i];
      return true;
    };
    if (arg == "--tsv") {
      options->tsv = true;
    } else if (arg == "--jsonl") {
      options->jsonl = true;
    } else if (arg == "--device" || absl::StartsWith(arg, "--device=")) {
      if (!value("--device", &options->device)) return false;
    } else if (allow_message &&
               (arg == "--message" || absl::StartsWith(arg, "--message="))) {
      if (!value("--message", &options->message_file)) return false;
    } else if (arg == "--") {
      for (++i; i < a.size(); ++i) options->positional.push_back(a[i]);
    } else if (arg.size() > 1 && arg[0] == '-' && arg != "-") {
      *ctx.err << "edgeroute: unknown option " << arg
               << " (see edgeroute help)\n";
      return false;
    } else {
      options->positional.push_back(arg);
    }
  }
  if (options->tsv && options->jsonl) {
    *ctx.err << "edgeroute: --tsv and --jsonl exclude each other\n";
    return false;
  }
  return true;
}

bool IsPassThroughLine(absl::string_view line) {
  if (!line.empty() && line[0] == '#') return true;
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

std::string OneLine(absl::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return out;
}

std::string FirstError(const std::vector<query::Diagnostic>& diags,
                       absl::string_view fallback) {
  for (const query::Diagnostic& d : diags) {
    if (d.is_error()) {
      return absl::StrCat(d.line, ":", d.column, ": ", d.message);
    }
  }
  return std::string(fallback);
}

bool ReadFileOrStdin(const CommandContext& ctx, const std::string& path,
                     std::string* contents) {
  std::ostringstream buffer;
  if (path == "-") {
    buffer << ctx.in->rdbuf();
  } else {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      *ctx.err << "edgeroute: cannot read " << path << "\n";
      return false;
    }
    buffer << file.rdbuf();
  }
  *contents = buffer.str();
  return true;
}

int RunEdgeroute(const std::vector<std::string>& args, std::istream& in,
                 std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << "usage: edgeroute check|eval|route|help ... (edgeroute help)\n";
    return kExitUsage;
  }
  const std::string& name = args[0];
  if (name == "help" || name == "--help" || name == "-h") {
    out << kHelp;
    return kExitOk;
  }
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      out << kHelp;
      return kExitOk;
    }
    if (args[i] == "--") break;
  }
  for (const Command& command : kCommands) {
    if (name == command.name) {
      CommandContext ctx{std::vector<std::string>(args.begin() + 1, args.end()),
                         &in, &out, &err};
      return command.run(ctx);
    }
  }
  err << "edgeroute: unknown command '" << name << "' (see edgeroute help)\n";
  return kExitUsage;
}

}  // namespace edgeroute::tools
