// edgeroute eval: conditions on messages, in batches (--tsv, --jsonl) or one
// at a time with an explanation.

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "message/message.h"
#include "query/query.h"
#include "tools/commands.h"
#include "base/json_reader.h"
#include "base/json_string.h"
#include "message/message_json.h"
#include "tools/json_lines.h"

namespace edgeroute::tools {
namespace {

using query::CompiledCondition;
using query::Diagnostic;
using query::Tri;

// A compiled condition, kept while consecutive lines repeat the condition.
struct CachedCondition {
  bool valid = false;
  std::string text;
  std::vector<Diagnostic> diagnostics;
  std::unique_ptr<CompiledCondition> compiled;  // null on compile error

  // Evaluates with a fresh scratch: the builder reuses one buffer for every
  // message, and a scratch recognises messages by buffer address and size.
  Tri Evaluate(const MessageView& view) const {
    std::unique_ptr<query::EvalScratch> scratch = compiled->NewScratch();
    return compiled->Evaluate(view, scratch.get());
  }

  void Compile(absl::string_view condition) {
    if (valid && text == condition) return;
    valid = true;
    text = std::string(condition);
    diagnostics.clear();
    absl::StatusOr<std::unique_ptr<CompiledCondition>> c =
        CompiledCondition::Compile(condition, &diagnostics);
    if (c.ok()) {
      compiled = *std::move(c);
    } else {
      compiled.reset();
      if (FirstError(diagnostics, "").empty()) {
        Diagnostic d;
        d.message = std::string(c.status().message());
        diagnostics.push_back(std::move(d));
      }
    }
  }

  std::vector<std::string> Warnings() const {
    std::vector<std::string> out;
    for (const Diagnostic& d : diagnostics) {
      if (!d.is_error()) {
        out.push_back(
            absl::StrCat("warning: ", d.line, ":", d.column, ": ", d.message));
      }
    }
    return out;
  }
};

// "condition<TAB>message[<TAB>ignored]" -> result line.
std::string EvalTsvLine(absl::string_view line, CachedCondition* cache,
                        MessageBuilder* builder) {
  const size_t tab = line.find('\t');
  absl::string_view condition = line.substr(0, tab);
  absl::string_view message = "{}";
  if (tab != absl::string_view::npos) {
    message = line.substr(tab + 1);
    message = message.substr(0, message.find('\t'));
  }
  cache->Compile(condition);
  if (cache->compiled == nullptr) {
    return absl::StrCat("compile-error\t",
                        OneLine(FirstError(cache->diagnostics, "")));
  }
  absl::StatusOr<MessageView> view = BuildMessageFromJson(message, builder);
  if (!view.ok()) {
    return absl::StrCat("error\t", OneLine(view.status().message()));
  }
  const Tri result = cache->Evaluate(*view);
  std::string out = query::TriName(result);
  const std::vector<std::string> warnings = cache->Warnings();
  if (!warnings.empty()) {
    absl::StrAppend(&out, "\t", OneLine(absl::StrJoin(warnings, "; ")));
  }
  return out;
}

std::string JsonError(absl::string_view result, absl::string_view message) {
  return absl::StrCat("{\"result\": ", JsonQuote(result),
                      ", \"error\": ", JsonQuote(message), "}");
}

// {"condition": S, "message": M} -> {"result": ...}.
std::string EvalJsonLine(absl::string_view line, CachedCondition* cache,
                         MessageBuilder* builder) {
  JsonNode root;
  absl::Status read = ReadJsonLine(line, &root);
  if (!read.ok()) return JsonError("error", read.message());
  absl::StatusOr<std::string> condition = StringMember(root, "condition");
  if (!condition.ok()) return JsonError("error", condition.status().message());
  cache->Compile(*condition);
  if (cache->compiled == nullptr) {
    std::vector<std::string> errors;
    const Diagnostic* first = nullptr;
    for (const Diagnostic& d : cache->diagnostics) {
      if (!d.is_error()) continue;
      if (first == nullptr) first = &d;
      errors.push_back(absl::StrCat(d.line, ":", d.column, ": ", d.message));
    }
    return absl::StrCat("{\"result\": \"compile-error\", \"error\": ",
                        JsonQuote(first != nullptr ? first->message : ""),
                        ", \"line\": ", first != nullptr ? first->line : 1,
                        ", \"column\": ", first != nullptr ? first->column : 1,
                        ", \"errors\": ", JsonList(errors), "}");
  }
  const JsonNode* message = FindJsonMember(root, "message", false);
  absl::StatusOr<MessageView> view =
      message != nullptr ? BuildMessageFromJsonNode(*message, line, builder)
                         : BuildMessageFromJson("{}", builder);
  if (!view.ok()) return JsonError("error", view.status().message());
  const Tri result = cache->Evaluate(*view);
  std::string out =
      absl::StrCat("{\"result\": ", JsonQuote(query::TriName(result)));
  const std::vector<std::string> warnings = cache->Warnings();
  if (!warnings.empty()) {
    absl::StrAppend(&out, ", \"warnings\": ", JsonList(warnings));
  }
  out += "}";
  return out;
}

int EvalBatch(const CommandContext& ctx, bool jsonl) {
  CachedCondition cache;
  MessageBuilder builder;
  std::string line;
  while (std::getline(*ctx.in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (IsPassThroughLine(line)) {
      *ctx.out << line << "\n";
      continue;
    }
    *ctx.out << (jsonl ? EvalJsonLine(line, &cache, &builder)
                       : EvalTsvLine(line, &cache, &builder))
             << "\n";
  }
  ctx.out->flush();
  return kExitOk;
}

int EvalOne(const CommandContext& ctx, const CommonOptions& options) {
  const std::string& condition = options.positional[0];
  std::string message_json = "{}";
  if (!options.message_file.empty() &&
      !ReadFileOrStdin(ctx, options.message_file, &message_json)) {
    return kExitUsage;
  }
  MessageBuilder builder;
  absl::StatusOr<MessageView> view =
      BuildMessageFromJson(message_json, &builder);
  if (!view.ok()) {
    *ctx.err << "error: " << view.status().message() << "\n";
    return kExitInvalid;
  }
  std::vector<Diagnostic> diags;
  absl::StatusOr<std::unique_ptr<CompiledCondition>> compiled =
      CompiledCondition::Compile(condition, &diags);
  for (const Diagnostic& d : diags) *ctx.out << d.ToString() << "\n";
  if (!compiled.ok()) {
    if (diags.empty()) *ctx.out << compiled.status().message() << "\n";
    *ctx.out << "compile-error\n";
    return kExitInvalid;
  }
  std::unique_ptr<query::EvalScratch> scratch = (*compiled)->NewScratch();
  const Tri result = (*compiled)->Evaluate(*view, scratch.get());
  const std::string explain = (*compiled)->Explain(*view);
  // Explain() normally opens with the result; say it when it does not.
  if (explain.rfind("result:", 0) != 0) {
    *ctx.out << "result: " << query::TriName(result) << "\n";
  }
  if (!explain.empty()) {
    *ctx.out << explain;
    if (explain.back() != '\n') *ctx.out << "\n";
  }
  if (result != Tri::kTrue) {
    *ctx.out << "(a route with this condition would not match: only true "
                "matches)\n";
  }
  return kExitOk;
}

}  // namespace

int EvalCommand(const CommandContext& ctx) {
  CommonOptions options;
  if (!ParseCommonOptions(ctx, /*allow_message=*/true, &options)) {
    return kExitUsage;
  }
  if (options.tsv || options.jsonl) {
    if (!options.positional.empty() || !options.message_file.empty()) {
      *ctx.err << "edgeroute eval: --tsv/--jsonl read stdin; a condition or "
                  "--message is not allowed with them\n";
      return kExitUsage;
    }
    return EvalBatch(ctx, options.jsonl);
  }
  if (options.positional.size() != 1) {
    *ctx.err << "usage: edgeroute eval 'CONDITION' [--message FILE.json] | "
                "eval --tsv|--jsonl\n";
    return kExitUsage;
  }
  return EvalOne(ctx, options);
}

}  // namespace edgeroute::tools
