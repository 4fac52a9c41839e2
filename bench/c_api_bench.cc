// Cost of the C ABI (libedgeroute.so, edgeroute.h) against the C++ API it
// wraps, measured in the same run on the same workload:
//
//   BM_Build_Cpp / BM_Build_CApi   -- build one message (body, 2 application
//                                     and 2 system properties) and finish it:
//                                     the ABI's own per-message overhead.
//   BM_Send_Cpp / BM_Send_CApi     -- build + send into a live router with
//                                     one dispatch worker and a sink that
//                                     acknowledges at once.
//   BM_SendBodies_Cpp / _CApi      -- a batch of 256 bodies sharing the
//                                     properties (edgeroute_router_send_bodies
//                                     vs the same loop in C++).
//
// The C side goes through the shared library (its own copy of the router,
// with hidden internals), exactly as a C program would.
//   bazel run -c opt //bench:c_api_bench -- --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "bindings/c/edgeroute.h"
#include "message/message.h"
#include "router/router.h"

namespace {

constexpr char kManifest[] = R"json({
  "schemaVersion": "1.1",
  "routes": {
    "critical": "FROM /messages/* WHERE level = 'critical' INTO $upstream",
    "telemetry": "FROM /messages/modules/sensor/* WHERE $contentType = 'application/json' INTO BrokeredEndpoint(\"/modules/filter/inputs/in1\")"
  },
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}
})json";

constexpr char kBody[] =
    R"({"temperature": 21.5, "humidity": 40, "device": "sensor-0042"})";
constexpr size_t kBatch = 256;

void Die(const char* what, const char* err) {
  std::fprintf(stderr, "%s: %s\n", what, err != nullptr ? err : "");
  std::abort();
}

// ------------------------------------------------------------------ C++ API

class AckSink final : public edgeroute::router::Sink {
 public:
  void Deliver(edgeroute::router::DeliveryBatch* batch) override {
    batch->CompleteAll(edgeroute::router::DeliveryOutcome::kDelivered);
  }
};

void BuildCpp(edgeroute::MessageBuilder* b) {
  b->Clear();
  b->SetBody(kBody);
  b->AddProperty("level", "critical");
  b->AddProperty("site", "plant-7");
  b->AddSystemProperty("contentType", "application/json");
  b->AddSystemProperty("connectionModuleId", "sensor");
  b->Finish();
}

std::unique_ptr<edgeroute::router::Router> NewCppRouter() {
  edgeroute::router::RouterOptions options;
  options.dispatch_workers = 1;
  options.admission_timeout = absl::Seconds(10);
  auto router = edgeroute::router::Router::Create(options, kManifest);
  if (!router.ok()) Die("Router::Create", router.status().ToString().c_str());
  auto sink = std::make_shared<AckSink>();
  (void)(*router)->SetSink("iothub", sink);
  (void)(*router)->SetSink("DEV/filter/in1", sink);
  return std::move(*router);
}

void BM_Build_Cpp(benchmark::State& state) {
  edgeroute::MessageBuilder builder;
  for (auto _ : state) {
    BuildCpp(&builder);
    benchmark::DoNotOptimize(builder.view().bytes().data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Send_Cpp(benchmark::State& state) {
  auto router = NewCppRouter();
  edgeroute::MessageBuilder builder;
  for (auto _ : state) {
    BuildCpp(&builder);
    absl::Status s = router->SendView(builder.view());
    if (!s.ok()) Die("SendView", s.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  (void)router->WaitIdle(absl::Seconds(60));
  (void)router->Close();
}

void BM_SendBodies_Cpp(benchmark::State& state) {
  auto router = NewCppRouter();
  edgeroute::MessageBuilder builder;
  for (auto _ : state) {
    for (size_t i = 0; i < kBatch; ++i) {
      BuildCpp(&builder);
      absl::Status s = router->SendView(builder.view());
      if (!s.ok()) Die("SendView", s.ToString().c_str());
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  (void)router->WaitIdle(absl::Seconds(60));
  (void)router->Close();
}

// -------------------------------------------------------------------- C ABI

void CAck(void* /*state*/, edgeroute_batch_t* batch) {
  edgeroute_batch_ack_all(batch, EDGEROUTE_DELIVERED, nullptr);
}

void Check(int rc, char* err, const char* what) {
  if (rc != EDGEROUTE_OK) Die(what, err);
}

void AddProperties(edgeroute_message_t* m) {
  char* err = nullptr;
  Check(edgeroute_message_add_property(m, "level", 5, "critical", 8, &err), err,
        "add_property");
  Check(edgeroute_message_add_property(m, "site", 4, "plant-7", 7, &err), err,
        "add_property");
  Check(edgeroute_message_add_system_property(m, "contentType", 11,
                                              "application/json", 16, &err),
        err, "add_system_property");
  Check(edgeroute_message_add_system_property(m, "connectionModuleId", 18,
                                              "sensor", 6, &err),
        err, "add_system_property");
}

void BuildC(edgeroute_message_t* m) {
  char* err = nullptr;
  edgeroute_message_clear(m);
  Check(edgeroute_message_set_body(m, kBody, sizeof(kBody) - 1, &err), err,
        "set_body");
  AddProperties(m);
}

edgeroute_router_t* NewCRouter() {
  char* err = nullptr;
  edgeroute_options_t* options = edgeroute_options_create();
  edgeroute_options_set_dispatch_threads(options, 1);
  edgeroute_options_set_admission_timeout_us(options, 10'000'000);
  edgeroute_router_t* router = nullptr;
  Check(edgeroute_router_create(options, kManifest, sizeof(kManifest) - 1,
                                nullptr, &router, &err),
        err, "router_create");
  edgeroute_options_destroy(options);
  Check(edgeroute_router_set_sink(router, "iothub", 6, nullptr, nullptr, CAck,
                                  &err),
        err, "set_sink");
  Check(edgeroute_router_set_sink(router, "DEV/filter/in1", 14, nullptr,
                                  nullptr, CAck, &err),
        err, "set_sink");
  return router;
}

void BM_Build_CApi(benchmark::State& state) {
  edgeroute_message_t* m = edgeroute_message_create();
  for (auto _ : state) {
    BuildC(m);
    size_t len;
    const char* data;
    edgeroute_message_encoded(m, &data, &len, nullptr);
    benchmark::DoNotOptimize(data);
  }
  state.SetItemsProcessed(state.iterations());
  edgeroute_message_destroy(m);
}

void BM_Send_CApi(benchmark::State& state) {
  edgeroute_router_t* router = NewCRouter();
  edgeroute_message_t* m = edgeroute_message_create();
  char* err = nullptr;
  for (auto _ : state) {
    BuildC(m);
    Check(edgeroute_router_send(router, m, &err), err, "send");
  }
  state.SetItemsProcessed(state.iterations());
  edgeroute_router_wait_idle(router, 60'000'000, nullptr);
  edgeroute_router_destroy(router);
  edgeroute_message_destroy(m);
}

void BM_SendBodies_CApi(benchmark::State& state) {
  edgeroute_router_t* router = NewCRouter();
  edgeroute_message_t* proto = edgeroute_message_create();
  AddProperties(proto);
  std::vector<const char*> bodies(kBatch, kBody);
  std::vector<size_t> lengths(kBatch, sizeof(kBody) - 1);
  char* err = nullptr;
  for (auto _ : state) {
    size_t accepted = 0;
    Check(edgeroute_router_send_bodies(router, proto, bodies.data(),
                                       lengths.data(), kBatch, &accepted, &err),
          err, "send_bodies");
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  edgeroute_router_wait_idle(router, 60'000'000, nullptr);
  edgeroute_router_destroy(router);
  edgeroute_message_destroy(proto);
}

// Pairs are registered next to each other so that they run back to back.
BENCHMARK(BM_Build_Cpp);
BENCHMARK(BM_Build_CApi);
BENCHMARK(BM_Send_Cpp)->UseRealTime();
BENCHMARK(BM_Send_CApi)->UseRealTime();
BENCHMARK(BM_SendBodies_Cpp)->UseRealTime();
BENCHMARK(BM_SendBodies_CApi)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
