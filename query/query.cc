// Temporary placeholder implementation; replaced by the real compiler.
#include "query/query.h"

#include "absl/status/status.h"

namespace edgeroute::query {

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

std::string Diagnostic::ToString() const { return message; }

absl::StatusOr<ParsedRoute> ParseRoute(absl::string_view, absl::string_view,
                                       std::vector<Diagnostic>*) {
  return absl::UnimplementedError("ParseRoute");
}

bool SourceMatches(absl::string_view, absl::string_view) { return false; }

struct RouteSet::Impl {
  std::vector<RouteInfo> routes;
};
RouteSet::RouteSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RouteSet::~RouteSet() = default;
absl::StatusOr<std::unique_ptr<RouteSet>> RouteSet::Compile(
    absl::Span<const RouteSpec>, const CompileOptions&,
    std::vector<Diagnostic>*) {
  return absl::UnimplementedError("RouteSet::Compile");
}
size_t RouteSet::size() const { return impl_->routes.size(); }
const RouteSet::RouteInfo& RouteSet::route(size_t i) const {
  return impl_->routes[i];
}
std::unique_ptr<EvalScratch> RouteSet::NewScratch() const { return nullptr; }
Tri RouteSet::EvaluateCondition(size_t, const MessageView&,
                                EvalScratch*) const {
  return Tri::kUndefined;
}
void RouteSet::EvaluateAll(const MessageView&, EvalScratch*,
                           std::vector<uint8_t>* matched) const {
  matched->assign(size(), 0);
}
void RouteSet::Reset(EvalScratch*) {}

CompiledCondition::CompiledCondition() = default;
CompiledCondition::~CompiledCondition() = default;
absl::StatusOr<std::unique_ptr<CompiledCondition>> CompiledCondition::Compile(
    absl::string_view, std::vector<Diagnostic>*) {
  return absl::UnimplementedError("CompiledCondition::Compile");
}
Tri CompiledCondition::Evaluate(const MessageView&, EvalScratch*) const {
  return Tri::kUndefined;
}
std::unique_ptr<EvalScratch> CompiledCondition::NewScratch() const {
  return nullptr;
}
std::string CompiledCondition::Explain(const MessageView&) const { return ""; }

}  // namespace edgeroute::query
