// Route-language evaluation and compilation benchmarks, with SQLite's JSON
// functions as a peer baseline measured in the same run.
//   bazel run -c opt //bench:query_bench -- --benchmark_format=console
//
// Each iteration evaluates one message as a new message (the scratch is
// reset), so property loads and the $body parse are included.

#include <sqlite3.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "message/message.h"
#include "query/query.h"

namespace edgeroute::query {
namespace {

// A JSON telemetry body of `size` bytes (at least 256). The 256-byte one is
// flat; larger ones carry what bigger telemetry usually does: a batch of
// readings (objects in an array) before the members a route reads, and
// nested metadata.
std::string TelemetryBody(size_t size = 256) {
  std::string body =
      "{\"deviceId\":\"sensor-0042\",\"deviceType\":\"type3\",";
  if (size > 256) {
    body += "\"readings\":[";
    for (int i = 0; body.size() + 300 < size; ++i) {
      absl::StrAppend(&body, i == 0 ? "" : ",", "{\"t\":", 1700000000000 + i,
                      ",\"temperature\":", 70 + i % 7, ".", i % 10,
                      ",\"humidity\":", 40 + i % 3, ",\"ok\":true}");
    }
    body += "],\"meta\":{\"site\":\"plant-7\",\"line\":3,\"calibrated\":null},";
  }
  body +=
      "\"temperature\":72.5,\"humidity\":41.25,\"pressure\":1013.2,"
      "\"battery\":87,\"status\":\"ok\",\"firmware\":\"1.4.2\","
      "\"location\":{\"lat\":47.6062,\"lon\":-122.3321},"
      "\"ts\":1700000000123,\"seq\":123456,\"tags\":[\"a\",\"b\"],"
      "\"note\":\"";
  while (body.size() < size - 2) body.push_back('x');
  body += "\"}";
  return body;
}

struct Fixture {
  MessageBuilder builder;
  std::string body;
  MessageView view;
  explicit Fixture(size_t body_size = 256) : body(TelemetryBody(body_size)) {
    builder.Clear();
    builder.SetBody(body);
    builder.AddSystemProperty("contentType", "application/json");
    builder.AddSystemProperty("contentEncoding", "utf-8");
    builder.AddSystemProperty("connectionDeviceId", "sensor-0042");
    builder.AddSystemProperty("connectionModuleId", "collector");
    builder.AddSystemProperty("outputName", "telemetry");
    builder.AddSystemProperty("messageId", "7f9c2ba4-e88f-11e4-a7d4");
    builder.AddProperty("level", "critical");
    builder.AddProperty("region", "eu-west");
    builder.Finish();
    view = builder.view();
  }
};

void RunCondition(benchmark::State& state, const char* condition,
                  Tri expected, size_t body_size = 256) {
  Fixture f(body_size);
  if (f.body.size() != body_size) {
    state.SkipWithError("the body generator missed its size");
    return;
  }
  auto compiled = CompiledCondition::Compile(condition, nullptr);
  if (!compiled.ok()) {
    state.SkipWithError(std::string(compiled.status().message()).c_str());
    return;
  }
  auto scratch = (*compiled)->NewScratch();
  if ((*compiled)->Evaluate(f.view, scratch.get()) != expected) {
    state.SkipWithError("unexpected result");
    return;
  }
  for (auto _ : state) {
    // Evaluate resets the scratch: every iteration is a new message.
    Tri r = (*compiled)->Evaluate(f.view, scratch.get());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_EvalPropertyEquals(benchmark::State& state) {
  RunCondition(state, "level = 'critical'", Tri::kTrue);
}
BENCHMARK(BM_EvalPropertyEquals);

void BM_EvalBodyCompare(benchmark::State& state) {
  RunCondition(state, "$body.temperature > 50", Tri::kTrue,
               size_t(state.range(0)));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
// The body's size in bytes; BM_SqliteBodyCompare reads the same bodies.
BENCHMARK(BM_EvalBodyCompare)->Arg(256)->Arg(1024)->Arg(4096);

void BM_EvalCompound(benchmark::State& state) {
  RunCondition(state,
               "(starts_with($connectionDeviceId, 'sensor') AND "
               "is_defined(level)) AND ($body.temperature * 1.8 + 32 > 120 "
               "OR region = 'us-east') AND NOT (level = 'debug')",
               Tri::kTrue);
}
BENCHMARK(BM_EvalCompound);

void BM_EvalRouteSet(benchmark::State& state) {
  Fixture f;
  std::vector<RouteSpec> routes;
  const int n = int(state.range(0));
  for (int i = 0; i < n; ++i) {
    RouteSpec r;
    r.name = absl::StrCat("r", i);
    r.text = absl::StrCat(
        "FROM /messages/modules/collector/* WHERE $body.temperature > ", i,
        " AND ($body.humidity < ", 100 - i, " OR $body.deviceType = 'type",
        i % 10, "') INTO BrokeredEndpoint(\"/modules/m", i, "/inputs/in\")");
    routes.push_back(std::move(r));
  }
  auto set = RouteSet::Compile(routes, CompileOptions(), nullptr);
  if (!set.ok()) {
    state.SkipWithError(std::string(set.status().message()).c_str());
    return;
  }
  auto scratch = (*set)->NewScratch();
  std::vector<uint8_t> matched;
  (*set)->EvaluateAll(f.view, scratch.get(), &matched);
  int hits = 0;
  for (uint8_t m : matched) hits += m;
  state.counters["matches"] = hits;
  for (auto _ : state) {
    // EvaluateAll treats each call as a new message.
    (*set)->EvaluateAll(f.view, scratch.get(), &matched);
    benchmark::DoNotOptimize(matched.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EvalRouteSet)->Arg(100);

void BM_SqliteBodyCompare(benchmark::State& state) {
  std::string body = TelemetryBody(size_t(state.range(0)));
  sqlite3* db = nullptr;
  sqlite3_open(":memory:", &db);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT json_extract(?, '$.temperature') > 50",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    state.SkipWithError(sqlite3_errmsg(db));
    sqlite3_close(db);
    return;
  }
  sqlite3_bind_text(stmt, 1, body.data(), int(body.size()), SQLITE_STATIC);
  const bool matches =
      sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_int(stmt, 0) == 1;
  sqlite3_reset(stmt);
  if (!matches) state.SkipWithError("unexpected result");
  for (auto _ : state) {
    sqlite3_bind_text(stmt, 1, body.data(), int(body.size()), SQLITE_STATIC);
    int rc = sqlite3_step(stmt);
    int r = rc == SQLITE_ROW ? sqlite3_column_int(stmt, 0) : -1;
    benchmark::DoNotOptimize(r);
    sqlite3_reset(stmt);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}
BENCHMARK(BM_SqliteBodyCompare)->Arg(256)->Arg(1024)->Arg(4096);

void BM_CompileRoutes(benchmark::State& state) {
  std::vector<RouteSpec> routes;
  for (int i = 0; i < 10000; ++i) {
    RouteSpec r;
    r.name = absl::StrCat("route", i);
    r.text = absl::StrCat(
        "FROM /messages/modules/m", i % 50, "/* WHERE $body.sensor", i % 100,
        ".value > ", i, " AND (level = 'l", i % 7,
        "' OR starts_with($connectionDeviceId, 'dev", i,
        "')) INTO BrokeredEndpoint(\"/modules/sink", i % 20, "/inputs/in",
        i, "\")");
    routes.push_back(std::move(r));
  }
  for (auto _ : state) {
    auto set = RouteSet::Compile(routes, CompileOptions(), nullptr);
    if (!set.ok()) {
      state.SkipWithError(std::string(set.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(set->get());
  }
  state.SetItemsProcessed(state.iterations() * int64_t(routes.size()));
}
BENCHMARK(BM_CompileRoutes)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace edgeroute::query
