// libFuzzer target: arbitrary text as a route (first stage and full route-set
// compile) and as a standalone condition; whatever compiles is evaluated on a
// fixed message. Checks that nothing crashes, hangs or trips a sanitizer, and
// that every diagnostic is well-formed.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "message/message.h"
#include "query/query.h"

namespace {

using edgeroute::MessageBuilder;
using edgeroute::query::CompiledCondition;
using edgeroute::query::CompileOptions;
using edgeroute::query::Diagnostic;
using edgeroute::query::ParseRoute;
using edgeroute::query::RouteSet;
using edgeroute::query::RouteSpec;
using edgeroute::query::SourceMatches;
using edgeroute::query::Tri;

void CheckDiagnostics(const std::vector<Diagnostic>& diags) {
  for (const Diagnostic& d : diags) {
    if (d.line < 1 || d.column < 1 || d.end_column <= d.column ||
        d.message.empty()) {
      std::abort();
    }
    (void)d.ToString();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  static MessageBuilder* builder = [] {
    auto* b = new MessageBuilder();
    b->Clear();
    b->SetSource("/messages/modules/m/outputs/o");
    b->SetBody("{\"a\":1,\"b\":{\"c\":[1,\"x\",true,null]},\"s\":\"str\"}");
    b->AddSystemProperty("contentType", "application/json");
    b->AddSystemProperty("contentEncoding", "utf-8");
    b->AddSystemProperty("connectionDeviceId", "dev");
    b->AddProperty("k", "v");
    // Values that are not UTF-8 (a lone lead byte, an overlong '/', a
    // truncated sequence): every built-in reads them repaired.
    b->AddProperty("p", "\xF2\xF2" "a\xC0\xAF\xF0\x9F\x98");
    b->AddSystemProperty("messageId", "\xFF\xFE");
    b->AddNullProperty("nul");
    b->Finish();
    return b;
  }();

  std::vector<Diagnostic> diags;
  auto parsed = ParseRoute(text, "DEV", &diags);
  CheckDiagnostics(diags);

  diags.clear();
  RouteSpec spec;
  spec.name = "r";
  spec.text = text;
  CompileOptions options;
  options.max_depth = 64;
  auto set = RouteSet::Compile({spec}, options, &diags);
  CheckDiagnostics(diags);
  if (set.ok()) {
    if (!parsed.ok()) std::abort();  // stage 2 implies stage 1
    auto scratch = (*set)->NewScratch();
    std::vector<uint8_t> matched;
    (*set)->EvaluateAll(builder->view(), scratch.get(), &matched);
    const Tri one =
        (*set)->EvaluateCondition(0, builder->view(), scratch.get());
    const bool source_ok =
        SourceMatches((*set)->route(0).source, builder->view().source());
    // EvaluateAll and EvaluateCondition agree.
    if (matched.size() != 1 || matched[0] != (source_ok && one == Tri::kTrue)) {
      std::abort();
    }
    // The same route twice in one set shares every atom and the shape; both
    // copies give the single route's result.
    auto twice = RouteSet::Compile({spec, spec}, options, nullptr);
    if (!twice.ok()) std::abort();
    auto scratch2 = (*twice)->NewScratch();
    (*twice)->EvaluateAll(builder->view(), scratch2.get(), &matched);
    if (matched.size() != 2 || matched[0] != matched[1] ||
        (*twice)->EvaluateCondition(1, builder->view(), scratch2.get()) !=
            one) {
      std::abort();
    }
  }

  diags.clear();
  auto cond = CompiledCondition::Compile(text, &diags);
  CheckDiagnostics(diags);
  if (cond.ok()) {
    auto scratch = (*cond)->NewScratch();
    (void)(*cond)->Evaluate(builder->view(), scratch.get());
    (void)(*cond)->Explain(builder->view());
  }
  return 0;
}
