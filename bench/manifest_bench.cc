// Deployment-manifest reading (query/manifest.h): the positioned JSON reader
// and schema checks against simdjson's DOM parser reading the same fields
// (a peer baseline in the same run), and the full compile with and without
// route errors.
//   bazel run -c opt //bench:manifest_bench -- --benchmark_format=console

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "query/manifest.h"
#include "query/query.h"
#include "simdjson.h"

namespace {

using edgeroute::query::CompileEdgeHubConfig;
using edgeroute::query::CompileOptions;
using edgeroute::query::Diagnostic;
using edgeroute::query::ParseEdgeHubConfig;

// A pretty-printed schema-1.1 manifest with `n` object routes spread over
// 100 module outputs. With `broken`, every route calls an unknown built-in
// (two errors per route).
std::string Manifest(int n, bool broken = false) {
  std::string routes;
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&routes, i == 0 ? "" : ",\n", "      \"route", i,
                    "\": {\n        \"route\": \"FROM /messages/modules/m",
                    i % 100, "/outputs/o", i, " WHERE ",
                    broken ? "nosuch(1)" : "level", " = 'x", i,
                    "' AND $body.temperature > ", i,
                    " INTO BrokeredEndpoint(\\\"/modules/a", i % 7,
                    "/inputs/in\\\")\",\n        \"priority\": ", i % 10,
                    ",\n        \"timeToLiveSecs\": ", 60 + i, "\n      }");
  }
  return absl::StrCat(
      "{\n  \"modulesContent\": {\n    \"$edgeHub\": {\n"
      "      \"properties.desired\": {\n"
      "    \"schemaVersion\": \"1.1\",\n    \"routes\": {\n",
      routes,
      "\n    },\n    \"storeAndForwardConfiguration\": {\"timeToLiveSecs\": "
      "7200}\n  }}}}\n");
}

void BM_ParseManifest(benchmark::State& state) {
  const std::string text = Manifest(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto config = ParseEdgeHubConfig(text, nullptr);
    if (!config.ok()) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(config);
  }
  state.SetBytesProcessed(state.iterations() * text.size());
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ParseManifest)->Arg(100)->Arg(10000);

// Baseline: simdjson DOM parses the text and the same fields are read
// (route text, priority, TTL), without positions or diagnostics.
void BM_SimdjsonDomManifest(benchmark::State& state) {
  const std::string text = Manifest(static_cast<int>(state.range(0)));
  simdjson::dom::parser parser;
  simdjson::padded_string padded(text);
  for (auto _ : state) {
    simdjson::dom::element root;
    if (parser.parse(padded).get(root) != simdjson::SUCCESS) {
      state.SkipWithError("simdjson failed");
      break;
    }
    simdjson::dom::object routes;
    if (root["modulesContent"]["$edgeHub"]["properties.desired"]["routes"].get(
            routes) != simdjson::SUCCESS) {
      state.SkipWithError("no routes");
      break;
    }
    std::vector<std::string> texts;
    int64_t sum = 0;
    for (auto field : routes) {
      std::string_view route;
      int64_t priority = 0, ttl = 0;
      if (field.value["route"].get(route) != simdjson::SUCCESS ||
          field.value["priority"].get(priority) != simdjson::SUCCESS ||
          field.value["timeToLiveSecs"].get(ttl) != simdjson::SUCCESS) {
        state.SkipWithError("bad route");
        break;
      }
      texts.emplace_back(route);
      sum += priority + ttl;
    }
    benchmark::DoNotOptimize(texts);
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(state.iterations() * text.size());
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SimdjsonDomManifest)->Arg(100)->Arg(10000);

// Parse + RouteSet::Compile of every route.
void BM_CompileManifest(benchmark::State& state) {
  const std::string text = Manifest(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto compiled = CompileEdgeHubConfig(text, CompileOptions{}, nullptr);
    if (!compiled.ok()) state.SkipWithError("compile failed");
    benchmark::DoNotOptimize(compiled);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_CompileManifest)
    ->Arg(100)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond);

// Every route broken: the cost of collecting and positioning 2 diagnostics
// per route in the manifest (what `edgeroute check` does).
void BM_CompileManifestAllRoutesBroken(benchmark::State& state) {
  const std::string text = Manifest(static_cast<int>(state.range(0)), true);
  for (auto _ : state) {
    std::vector<Diagnostic> diags;
    auto compiled = CompileEdgeHubConfig(text, CompileOptions{}, &diags);
    if (compiled.ok()) state.SkipWithError("expected errors");
    benchmark::DoNotOptimize(diags);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_CompileManifestAllRoutesBroken)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
