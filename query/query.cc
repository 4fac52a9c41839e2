#include "query/query.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/utf8.h"
#include "query/compiler.h"
#include "query/diagnostics.h"
#include "query/evaluator.h"
#include "query/lexer.h"
#include "query/plan.h"
#include "query/program.h"
#include "query/scratch.h"
#include "query/syntax.h"

namespace edgeroute::query {

using internal::Ast;
using internal::ParseLimits;
using internal::Program;
using internal::PublishDiagnostics;
using internal::RawDiag;
using internal::RoutePlan;
using internal::RouteSyntax;
using internal::Scratch;

const char* TriName(Tri value) {
  switch (value) {
    case Tri::kFalse:
      return "false";
    case Tri::kTrue:
      return "true";
    default:
      return "undefined";
  }
}

EvalScratch::~EvalScratch() = default;

namespace {

// Route text is read as edgeHub reads it once decoded into a .NET string:
// each maximal ill-formed UTF-8 subsequence is one U+FFFD. Returns `text`
// itself when it is well-formed (the usual case), else the repaired copy
// in *storage.
absl::string_view RepairedText(absl::string_view text, std::string* storage) {
  if (IsValidUtf8(text)) return text;
  ReplaceInvalidUtf8(text, storage);
  return *storage;
}

}  // namespace

absl::StatusOr<ParsedRoute> ParseRoute(absl::string_view route_bytes,
                                       absl::string_view device_id,
                                       std::vector<Diagnostic>* diagnostics) {
  std::string repaired;
  const absl::string_view route = RepairedText(route_bytes, &repaired);
  RouteSyntax syntax;
  std::vector<RawDiag> raw;
  ParseLimits limits;
  bool ok = internal::ParseRouteSyntax(route, device_id, limits, &syntax, &raw);
  std::string first = PublishDiagnostics(route, raw, "", diagnostics, nullptr);
  if (!ok) return absl::InvalidArgumentError(first);
  ParsedRoute out;
  out.source = std::move(syntax.source);
  if (syntax.has_where) {
    out.condition = std::string(
        route.substr(syntax.cond_begin, syntax.cond_end - syntax.cond_begin));
    out.condition_offset = syntax.cond_begin;
  } else {
    out.condition = "true";
  }
  out.sink = std::move(syntax.sink);
  return out;
}

bool SourceMatches(absl::string_view route_source,
                   absl::string_view message_source) {
  // (message_source + "/").StartsWith(route_source, OrdinalIgnoreCase)
  size_t n = route_source.size();
  if (n > message_source.size() + 1) return false;
  if (n == message_source.size() + 1) {
    if (route_source.back() != '/') return false;
    n -= 1;
  }
  // Sources are usually spelled alike: one memcmp before the folding loop.
  if (std::memcmp(route_source.data(), message_source.data(), n) == 0) {
    return true;
  }
  for (size_t i = 0; i < n; ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(route_source[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(message_source[i]))) {
      return false;
    }
  }
  return true;
}

struct RouteSet::Impl {
  std::vector<RouteInfo> routes;
  std::vector<int> roots;
  // Distinct route sources; source_of[i] indexes them for route i, so
  // EvaluateAll matches each distinct source once per message.
  std::vector<std::string> sources;
  std::vector<uint32_t> source_of;
  Program program;
  std::unique_ptr<RoutePlan> plan;  // made by Finish()

  // After the last route is added.
  void Finish() {
    IndexSources();
    plan =
        std::make_unique<RoutePlan>(program, roots, source_of, sources.size());
  }

  std::unique_ptr<Scratch> NewScratch() const {
    return std::make_unique<Scratch>(program, plan->sizes());
  }

  void IndexSources() {
    sources.clear();
    source_of.clear();
    // A hash index, not a scan of the sources so far: a table with 10,000
    // distinct sources (one route per module input) would otherwise take
    // 50 million string comparisons to compile.
    absl::flat_hash_map<absl::string_view, uint32_t> index;
    index.reserve(routes.size());
    for (const RouteInfo& r : routes) {
      auto [it, added] = index.try_emplace(
          absl::string_view(r.source), static_cast<uint32_t>(sources.size()));
      if (added) sources.push_back(r.source);
      source_of.push_back(it->second);
    }
  }
};

RouteSet::RouteSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RouteSet::~RouteSet() = default;

absl::StatusOr<std::unique_ptr<RouteSet>> RouteSet::Compile(
    absl::Span<const RouteSpec> routes, const CompileOptions& options,
    std::vector<Diagnostic>* diagnostics) {
  auto impl = std::make_unique<Impl>();
  std::vector<std::string> errors;
  ParseLimits limits;
  limits.max_length = options.max_route_length;
  limits.max_depth = options.max_depth;
  std::string repaired;
  for (const RouteSpec& spec : routes) {
    const absl::string_view text = RepairedText(spec.text, &repaired);
    RouteSyntax syntax;
    std::vector<RawDiag> raw;
    int root = -1;
    bool ok = internal::ParseRouteSyntax(text, options.device_id, limits,
                                         &syntax, &raw);
    if (ok) {
      if (syntax.has_where) {
        root = internal::CompileCondition(text, syntax.condition,
                                          &impl->program, &raw);
      } else {
        root = impl->program.AddConstant(internal::StaticType::kBool,
                                         internal::MakeBool(true));
      }
    }
    std::vector<std::string> route_errors;
    PublishDiagnostics(text, raw, absl::StrCat("route '", spec.name, "': "),
                       diagnostics, &route_errors);
    for (std::string& e : route_errors) errors.push_back(std::move(e));
    if (root < 0) {
      if (route_errors.empty()) {
        errors.push_back(absl::StrCat("route '", spec.name, "': invalid"));
      }
      continue;
    }
    RouteInfo info;
    info.name = spec.name;
    info.source = syntax.source;
    info.condition =
        syntax.has_where
            ? std::string(text.substr(syntax.cond_begin,
                                      syntax.cond_end - syntax.cond_begin))
            : "true";
    info.sink = syntax.sink;
    info.priority = spec.priority;
    info.ttl_secs = spec.ttl_secs;
    impl->routes.push_back(std::move(info));
    impl->roots.push_back(root);
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  }
  impl->Finish();
  return std::unique_ptr<RouteSet>(new RouteSet(std::move(impl)));
}

size_t RouteSet::size() const { return impl_->routes.size(); }

const RouteSet::RouteInfo& RouteSet::route(size_t i) const {
  return impl_->routes[i];
}

std::unique_ptr<EvalScratch> RouteSet::NewScratch() const {
  return impl_->NewScratch();
}

Tri RouteSet::EvaluateCondition(size_t i, const MessageView& message,
                                EvalScratch* scratch) const {
  Scratch* s = static_cast<Scratch*>(scratch);
  s->Begin(message);
  return impl_->plan->EvaluateRoute(i, message, s);
}

void RouteSet::EvaluateAll(const MessageView& message, EvalScratch* scratch,
                           std::vector<uint8_t>* matched) const {
  matched->assign(impl_->routes.size(), 0);
  Scratch* s = static_cast<Scratch*>(scratch);
  s->Reset();
  s->Begin(message);  // once for all routes
  // Each distinct source is matched once.
  const absl::string_view source = message.source();
  uint8_t* source_ok = s->source_ok(impl_->sources.size());
  for (size_t k = 0; k < impl_->sources.size(); ++k) {
    source_ok[k] = SourceMatches(impl_->sources[k], source);
  }
  impl_->plan->EvaluateAll(source_ok, message, s, matched->data());
}

struct RouteSelection::Impl {
  const RoutePlan* plan;
  RoutePlan::Selection selection;
};

std::unique_ptr<RouteSelection> RouteSet::Select(
    absl::Span<const uint32_t> routes) const {
  auto impl = std::make_unique<RouteSelection::Impl>();
  impl->plan = impl_->plan.get();
  impl->selection = impl_->plan->Select(routes.data(), routes.size());
  return std::unique_ptr<RouteSelection>(new RouteSelection(std::move(impl)));
}

RouteSelection::RouteSelection(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
RouteSelection::~RouteSelection() = default;

size_t RouteSelection::size() const { return impl_->selection.size; }

size_t RouteSelection::Evaluate(const MessageView& message,
                                EvalScratch* scratch, uint32_t* matched) const {
  Scratch* s = static_cast<Scratch*>(scratch);
  s->Begin(message);
  return impl_->plan->EvaluateSelection(impl_->selection, message, s, matched);
}

void RouteSet::Reset(EvalScratch* scratch) {
  static_cast<Scratch*>(scratch)->Reset();
}

namespace {
constexpr absl::string_view kPrefix = "FROM /messages WHERE ";
constexpr char kEmptyCondition[] =
    "Syntax error: the condition is empty (a WHERE clause needs a condition)";
constexpr absl::string_view kSuffix = " INTO $upstream";
}  // namespace

CompiledCondition::CompiledCondition() = default;
CompiledCondition::~CompiledCondition() = default;

absl::StatusOr<std::unique_ptr<CompiledCondition>> CompiledCondition::Compile(
    absl::string_view condition_bytes, std::vector<Diagnostic>* diagnostics) {
  std::string repaired;
  const absl::string_view condition = RepairedText(condition_bytes, &repaired);
  std::unique_ptr<CompiledCondition> c(new CompiledCondition());
  c->text_ = absl::StrCat(kPrefix, condition, kSuffix);
  auto impl = std::make_unique<RouteSet::Impl>();
  std::vector<internal::Token> toks = internal::Lex(condition, nullptr);
  int root;
  std::vector<RawDiag> raw;
  if (toks.size() == 1) {
    // Only whitespace or comments: a WHERE clause needs a condition, as in
    // edgeHub's route grammar ("WHERE INTO" is a syntax error).
    raw.push_back(
        RawDiag::Error(0, uint32_t(condition.size()), kEmptyCondition));
    root = -1;
  } else {
    // An unterminated string would swallow the text the condition is
    // wrapped in; report it here, where it is.
    for (const internal::Token& t : toks) {
      if (t.kind == internal::Tok::kUntermString) {
        const uint32_t at = t.begin + uint32_t(kPrefix.size());
        raw.push_back(
            RawDiag::Error(at, at + 1, "Syntax error: unterminated string"));
        break;
      }
    }
    RouteSyntax syntax;
    ParseLimits limits;
    bool ok =
        internal::ParseRouteSyntax(c->text_, "DEV", limits, &syntax, &raw);
    root = -1;
    if (ok) {
      root = internal::CompileCondition(c->text_, syntax.condition,
                                        &impl->program, &raw);
    }
    // Map positions back into the condition text.
    for (RawDiag& r : raw) {
      auto map = [&](uint32_t x) {
        if (x < kPrefix.size()) return uint32_t(0);
        x -= uint32_t(kPrefix.size());
        return x > condition.size() ? uint32_t(condition.size()) : x;
      };
      r.begin = map(r.begin);
      r.end = map(r.end);
    }
  }
  std::vector<std::string> errors;
  std::string first =
      PublishDiagnostics(condition, raw, "", diagnostics, &errors);
  if (root < 0) {
    return absl::InvalidArgumentError(errors.empty()
                                          ? std::string("invalid condition")
                                          : absl::StrJoin(errors, "\n"));
  }
  RouteSet::RouteInfo info;
  info.source = "/messages/";
  info.condition = std::string(condition);
  info.sink.kind = SinkSpec::Kind::kUpstream;
  info.sink.endpoint_id = "iothub";
  impl->routes.push_back(std::move(info));
  impl->roots.push_back(root);
  impl->Finish();
  c->set_.reset(new RouteSet(std::move(impl)));
  return c;
}

Tri CompiledCondition::Evaluate(const MessageView& message,
                                EvalScratch* scratch) const {
  Scratch* s = static_cast<Scratch*>(scratch);
  s->Reset();
  return internal::EvaluateRoot(set_->impl_->program, set_->impl_->roots[0],
                                message, s);
}

std::unique_ptr<EvalScratch> CompiledCondition::NewScratch() const {
  return set_->NewScratch();
}

std::string CompiledCondition::Explain(const MessageView& message) const {
  const RouteSet::Impl& impl = *set_->impl_;
  std::unique_ptr<Scratch> scratch = impl.NewScratch();
  const Tri result = internal::EvaluateRoot(impl.program, impl.roots[0],
                                            message, scratch.get());
  std::string out = absl::StrCat("result: ", TriName(result), "\n");
  absl::StrAppend(&out, internal::ExplainRoot(impl.program, impl.roots[0],
                                              text_, message, scratch.get()));
  return out;
}

}  // namespace edgeroute::query
