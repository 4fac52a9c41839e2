// libFuzzer target: evaluates conditions over random messages. The input is
//   <condition> '\n' <flags byte> <body bytes>
// The flags byte picks the content type/encoding headers and a few
// properties, so the body parser, the UTF-16/32 decoders and every property
// path see arbitrary data: with bit 4 the raw body bytes (any bytes, not
// only UTF-8) are also the values of the application property `p` and the
// system properties messageId and connectionModuleId. Evaluation must never
// crash and must be deterministic (two evaluations agree, through both APIs),
// and a route set evaluated as one selection must match what its routes give
// one by one.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "message/message.h"
#include "query/query.h"

using edgeroute::MessageBuilder;
using edgeroute::query::CompiledCondition;
using edgeroute::query::CompileOptions;
using edgeroute::query::RouteSet;
using edgeroute::query::RouteSpec;
using edgeroute::query::Tri;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t nl = input.find('\n');
  std::string condition = input.substr(0, nl);
  std::string rest = nl == std::string::npos ? "" : input.substr(nl + 1);
  uint8_t flags = rest.empty() ? 0 : uint8_t(rest[0]);
  std::string body = rest.empty() ? "" : rest.substr(1);

  auto compiled = CompiledCondition::Compile(condition, nullptr);
  if (!compiled.ok()) return 0;

  static MessageBuilder* builder = new MessageBuilder();
  builder->Clear();
  builder->SetBody(body);
  static const char* kEncodings[] = {"utf-8", "UTF-16", "utf-32", "utf8"};
  if ((flags & 1) == 0) {
    builder->AddSystemProperty("contentType",
                               (flags & 2) ? "text/plain" : "application/json");
  }
  if ((flags & 4) == 0) {
    builder->AddSystemProperty("contentEncoding", kEncodings[(flags >> 3) & 3]);
  }
  if (flags & 32) builder->AddProperty("k", body.substr(0, 8));
  if (flags & 64) builder->AddNullProperty("k");
  if (flags & 128) builder->AddProperty("$body.a", "shadow");
  if (flags & 16) {
    builder->AddProperty("p", body);
    builder->AddSystemProperty("messageId", body.substr(0, 16));
    builder->AddSystemProperty("connectionModuleId",
                               body.substr(body.size() / 2));
  }
  builder->AddSystemProperty("connectionDeviceId", "dev");
  builder->Finish();

  auto scratch = (*compiled)->NewScratch();
  Tri first = (*compiled)->Evaluate(builder->view(), scratch.get());
  Tri second = (*compiled)->Evaluate(builder->view(), scratch.get());
  if (first != second) std::abort();

  RouteSpec spec;
  spec.name = "r";
  // Not "/messages/*": its "/*" would open a comment if the condition
  // contains "*/" (edgeHub's trap), changing the route.
  spec.text = "FROM /messages WHERE " + condition + " INTO $upstream";
  auto set = RouteSet::Compile({spec}, CompileOptions(), nullptr);
  // A condition compiles alone exactly when it compiles as a WHERE clause
  // (an empty one does neither).
  if (!set.ok()) std::abort();
  auto set_scratch = (*set)->NewScratch();
  if ((*set)->EvaluateCondition(0, builder->view(), set_scratch.get()) !=
      first) {
    std::abort();
  }

  // The condition among equality routes on the properties it may read,
  // evaluated as one selection (shared loads, equality lookups through the
  // string index) must match exactly the routes whose conditions are true
  // one by one, ascending.
  static const char* kNeighbours[] = {"k = 'ab'",       "k = 'ab'",
                                      "'x' = k",        "$body.a = 'shadow'",
                                      "$body.a = 'ab'", "k = 'ab' OR k = ''",
                                      "NOT (k = 'x')",  "k <> 'ab'"};
  std::vector<RouteSpec> specs(1, spec);
  for (const char* neighbour : kNeighbours) {
    RouteSpec more;
    more.name = "n" + std::to_string(specs.size());
    more.text =
        std::string("FROM /messages WHERE ") + neighbour + " INTO $upstream";
    specs.push_back(more);
  }
  auto many = RouteSet::Compile(specs, CompileOptions(), nullptr);
  if (!many.ok()) std::abort();
  std::vector<uint32_t> all(specs.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  auto selection = (*many)->Select(all);
  auto selection_scratch = (*many)->NewScratch();
  std::vector<uint32_t> matched(all.size());
  const size_t n = selection->Evaluate(builder->view(), selection_scratch.get(),
                                       matched.data());
  std::vector<uint32_t> expected;
  for (uint32_t i = 0; i < all.size(); ++i) {
    auto alone = (*many)->NewScratch();
    if ((*many)->EvaluateCondition(i, builder->view(), alone.get()) ==
        Tri::kTrue) {
      expected.push_back(i);
    }
  }
  if (expected != std::vector<uint32_t>(matched.begin(), matched.begin() + n)) {
    std::abort();
  }
  return 0;
}
