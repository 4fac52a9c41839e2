// The upstream connector draining a backlog into Debian's mosquitto broker,
// against a plain libmosquitto publisher sending the same messages to the
// same broker in the same run (issue 13: the drain should reach >= 80% of
// the plain publisher's rate).
//
//   BM_UpstreamDrain/0      100,000 messages of 256 bytes queued in the
//                           router (memory) while the connector is stopped;
//                           timed from Start until the broker has PUBACKed
//                           all of them (QoS 1, MQTT 5).
//   BM_UpstreamDrain/1      the same backlog in a RocksDB store.
//   BM_MosquittoPublisher   one libmosquitto client publishing the same
//                           100,000 messages, QoS 1, MQTT 5, at most as many
//                           in flight as the broker's receive maximum.
//
// Both report items_per_second. The broker runs with max_inflight_messages
// kWindow (its receive maximum for MQTT 5 clients) and no subscribers.
// UPSTREAM_BENCH_LOG=1 prints the connector's log lines.
//   bazel run -c opt //bench:upstream_bench

#include <mosquitto.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "gateway/upstream/connector.h"
#include "gateway/upstream/options.h"
#include "gateway/upstream/test_broker.h"
#include "message/message.h"
#include "router/router.h"
#include "store/store.h"

namespace edgeroute {
namespace {

constexpr int kMessages = 100'000;
constexpr size_t kBodyBytes = 256;
constexpr int kWindow = 100;
constexpr char kRoutes[] = R"({"schemaVersion": "1.1",
  "routes": {"up": "FROM /messages/* INTO $upstream"},
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}})";

// Debian's mosquitto on a free loopback port for the whole run; null when
// it cannot start.
gateway::upstream::TestBroker* Broker() {
  static gateway::upstream::TestBroker* broker = [] {
    auto* b = new gateway::upstream::TestBroker(kWindow);
    if (!b->Start().ok()) {
      delete b;
      return static_cast<gateway::upstream::TestBroker*>(nullptr);
    }
    std::atexit([] { delete Broker(); });
    return b;
  }();
  return broker;
}

void BuildMessage(MessageBuilder* b, int n) {
  b->Clear();
  std::string body(kBodyBytes, 'x');
  std::snprintf(body.data(), body.size(), "{\"n\":%d}", n);
  b->SetBody(body);
  b->AddSystemProperty("connectionDeviceId", "bench-device");
  b->Finish();
}

void BM_UpstreamDrain(benchmark::State& state) {
  gateway::upstream::TestBroker* broker = Broker();
  if (broker == nullptr) {
    state.SkipWithError("mosquitto not available");
    return;
  }
  mosquitto_lib_init();
  const bool with_store = state.range(0) != 0;
  for (auto _ : state) {
    std::unique_ptr<store::Store> store;
    std::string dir;
    if (with_store) {
      const char* tmp = std::getenv("TEST_TMPDIR");
      dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp",
                         "/upstream_bench_store.", getpid());
      std::filesystem::remove_all(dir);
      store::StoreOptions so;
      so.directory = dir;
      store = store::Store::Open(so).value();
    }
    router::RouterOptions ro;
    ro.endpoint_queue_capacity = 2 * kMessages;
    ro.store = store.get();
    auto router = router::Router::Create(ro, kRoutes).value();
    MessageBuilder b;
    for (int n = 0; n < kMessages; ++n) {
      BuildMessage(&b, n);
      while (!router->SendView(b.view()).ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    // The backlog is queued once the endpoint holds every message.
    for (;;) {
      const router::RouterMetrics m = router->GetMetrics();
      uint64_t enqueued = 0;
      for (const auto& e : m.endpoints) enqueued += e.enqueued;
      if (enqueued >= static_cast<uint64_t>(kMessages)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    gateway::upstream::UpstreamOptions uo;
    if (std::getenv("UPSTREAM_BENCH_LOG") != nullptr) {
      uo.log = [](absl::string_view line) {
        std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()),
                     line.data());
      };
    }
    uo.urls.push_back(gateway::upstream::ParseUpstreamUrl(
                          absl::StrCat("mqtt://127.0.0.1:", broker->port()))
                          .value());
    auto connector =
        gateway::upstream::UpstreamConnector::Create(uo, router.get(), "iothub")
            .value();
    const auto start = std::chrono::steady_clock::now();
    connector->Start();
    while (connector->GetMetrics().acknowledged <
           static_cast<uint64_t>(kMessages)) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    const auto end = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(end - start).count());
    connector->Stop();
    router->Close().IgnoreError();
    router.reset();
    store.reset();
    if (with_store) std::filesystem::remove_all(dir);
  }
  state.SetItemsProcessed(state.iterations() * kMessages);
}
BENCHMARK(BM_UpstreamDrain)
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

struct PublisherState {
  std::mutex mu;
  std::condition_variable cv;
  int acked = 0;
  int in_flight = 0;
};

void OnPublishAck(mosquitto*, void* obj, int, int, const mosquitto_property*) {
  auto* s = static_cast<PublisherState*>(obj);
  std::lock_guard<std::mutex> lock(s->mu);
  ++s->acked;
  --s->in_flight;
  s->cv.notify_all();
}

void BM_MosquittoPublisher(benchmark::State& state) {
  gateway::upstream::TestBroker* broker = Broker();
  if (broker == nullptr) {
    state.SkipWithError("mosquitto not available");
    return;
  }
  mosquitto_lib_init();
  // The same messages' bodies and topic, built beforehand.
  std::vector<std::string> bodies;
  bodies.reserve(kMessages);
  MessageBuilder b;
  for (int n = 0; n < kMessages; ++n) {
    BuildMessage(&b, n);
    bodies.emplace_back(b.view().body());
  }
  for (auto _ : state) {
    PublisherState s;
    mosquitto* mosq = mosquitto_new(nullptr, true, &s);
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_publish_v5_callback_set(mosq, OnPublishAck);
    if (mosquitto_connect(mosq, "127.0.0.1", broker->port(), 60) !=
        MOSQ_ERR_SUCCESS) {
      state.SkipWithError("cannot connect to mosquitto");
      mosquitto_destroy(mosq);
      return;
    }
    mosquitto_loop_start(mosq);
    const auto start = std::chrono::steady_clock::now();
    for (int n = 0; n < kMessages; ++n) {
      {
        std::unique_lock<std::mutex> lock(s.mu);
        s.cv.wait(lock, [&] { return s.in_flight < kWindow; });
        ++s.in_flight;
      }
      mosquitto_publish_v5(mosq, nullptr, "edgeroute/bench-device//",
                           static_cast<int>(bodies[n].size()), bodies[n].data(),
                           1, false, nullptr);
    }
    {
      std::unique_lock<std::mutex> lock(s.mu);
      s.cv.wait(lock, [&] { return s.acked == kMessages; });
    }
    const auto end = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(end - start).count());
    mosquitto_disconnect(mosq);
    mosquitto_loop_stop(mosq, false);
    mosquitto_destroy(mosq);
  }
  state.SetItemsProcessed(state.iterations() * kMessages);
}
BENCHMARK(BM_MosquittoPublisher)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

}  // namespace
}  // namespace edgeroute

BENCHMARK_MAIN();
