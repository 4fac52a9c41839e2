// Router dispatch benchmarks: end-to-end throughput (Send -> null sinks),
// scaling with the number of routes, isolation from a stalled endpoint,
// Send -> sink latency at half the peak rate, and memory per queued
// message. A mutex-and-deque pipeline that scans every route is measured in
// the same run as the baseline.
//
//   bazel run -c opt //bench:dispatch_bench -- --benchmark_format=console
//
// Messages: 256-byte JSON bodies, one property, module/output sources.
// Every benchmark reports messages as items (items_per_second).

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "message/message.h"
#include "query/query.h"
#include "router/router.h"
#include "router/sinks.h"

namespace edgeroute::router {
namespace {

constexpr int kEndpoints = 4;
constexpr int kProducers = 2;

std::string Body256(int i) {
  std::string body = absl::StrCat(
      "{\"machine\":{\"temperature\":", 20 + i % 80,
      ".5,\"pressure\":1.1},\"ambient\":{\"temperature\":21.3,\"humidity\":",
      i % 100, "},\"pad\":\"");
  body.append(256 - body.size() - 2, 'x');
  body.append("\"}");
  return body;
}

std::string EndpointInto(int e) {
  return absl::StrCat("INTO BrokeredEndpoint(\"/modules/ep", e,
                      "/inputs/in\")");
}
std::string EndpointId(int e) { return absl::StrCat("DEV/ep", e, "/in"); }

// Message buffers kept 8-byte aligned.
struct Messages {
  std::vector<std::vector<uint64_t>> storage;
  std::vector<MessageView> views;
  void Add(absl::Span<const uint8_t> bytes) {
    storage.emplace_back((bytes.size() + 7) / 8);
    std::memcpy(storage.back().data(), bytes.data(), bytes.size());
    views.push_back(MessageView::FromTrustedBytes(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(storage.back().data()),
        bytes.size())));
  }
};

// `variants` messages from module m<src>/outputs/out with property k.
Messages BuildMessages(int sources, int keys, int variants) {
  Messages m;
  MessageBuilder b;
  std::mt19937 rng(7);
  for (int i = 0; i < variants; ++i) {
    b.Clear();
    b.SetBody(Body256(i));
    b.AddSystemProperty("connectionModuleId", absl::StrCat("m", i % sources));
    b.AddSystemProperty("outputName", "out");
    b.AddSystemProperty("contentType", "application/json");
    b.AddProperty("k", absl::StrCat(rng() % keys));
    m.Add(b.Finish());
  }
  return m;
}

// N routes over min(N, 100) module outputs; route i reads property k, so
// each message (k uniform over the keys of its output) matches exactly one
// route. Endpoint = i % 4.
std::vector<query::RouteSpec> ScalingRoutes(int n, int* sources, int* keys) {
  *sources = std::min(n, 100);
  *keys = std::max(1, n / 100);
  std::vector<query::RouteSpec> routes;
  for (int i = 0; i < n; ++i) {
    const int src = i % *sources;
    const int key = i / *sources;
    routes.push_back({absl::StrCat("r", i),
                      absl::StrCat("FROM /messages/modules/m", src,
                                   "/outputs/out WHERE k = '", key, "' ",
                                   EndpointInto(i % kEndpoints)),
                      query::kDefaultPriority, 0});
  }
  return routes;
}

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

RouterOptions BenchOptions() {
  RouterOptions o;
  o.verify_messages = false;
  o.dispatch_workers = 2;
  o.endpoint_batch_size = 256;
  // A lane holds a whole iteration (200,000 messages; each iteration waits
  // for the router to go idle), so a slow executor on a loaded machine makes
  // the run slower instead of dropping messages (a full lane drops, counted
  // in dropped_queue_full).
  o.endpoint_queue_capacity = 262144;
  return o;
}

// Sends `per_producer` messages from each of kProducers threads.
void Produce(Router* router, const Messages& msgs, size_t per_producer,
             std::atomic<bool>* failed) {
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      const size_t n = msgs.views.size();
      size_t j = static_cast<size_t>(p) * 7919 % n;
      for (size_t i = 0; i < per_producer; ++i) {
        if (!router->SendView(msgs.views[j]).ok()) failed->store(true);
        if (++j == n) j = 0;
      }
    });
  }
  for (auto& t : threads) t.join();
}

// Shared driver for throughput-style runs: `routes`, `msgs`, null sinks.
void RunThroughput(benchmark::State& state,
                   std::vector<query::RouteSpec> routes, const Messages& msgs,
                   size_t per_iteration) {
  auto router = Router::Create(BenchOptions(), std::move(routes), -1);
  if (!router.ok()) {
    state.SkipWithError(router.status().ToString().c_str());
    return;
  }
  std::vector<std::shared_ptr<NullSink>> sinks;
  for (int e = 0; e < kEndpoints; ++e) {
    sinks.push_back(std::make_shared<NullSink>());
    (*router)->SetSink(EndpointId(e), sinks.back()).IgnoreError();
  }
  std::atomic<bool> failed{false};
  const double cpu0 = CpuSeconds();
  const auto wall0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    Produce(router->get(), msgs, per_iteration / kProducers, &failed);
    if (!(*router)->WaitIdle(absl::Seconds(60)).ok()) {
      state.SkipWithError("router did not drain");
      return;
    }
  }
  const double cpu = CpuSeconds() - cpu0;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0)
          .count();
  uint64_t delivered = 0;
  for (auto& s : sinks) delivered += s->delivered();
  const uint64_t sent = state.iterations() * per_iteration;
  const RouterMetrics m = (*router)->GetMetrics();
  uint64_t dropped = 0;
  for (const EndpointMetrics& e : m.endpoints) dropped += e.dropped_queue_full;
  if (failed.load() || delivered + m.orphaned + dropped != sent) {
    state.SkipWithError("messages lost");
    return;
  }
  if (dropped != 0) {
    state.SkipWithError(
        absl::StrCat(dropped, " messages dropped by full lanes").c_str());
    return;
  }
  state.SetItemsProcessed(static_cast<int64_t>(sent));
  state.counters["cores_used"] = cpu / wall;
  state.counters["items_per_cpu_second"] = sent / cpu;
  state.counters["ns_per_message"] = wall * 1e9 / sent;
  (*router)->Close().IgnoreError();
}

// 10 routes, each message matches one, 4 endpoints.
void BM_Throughput(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  int sources, keys;
  std::vector<query::RouteSpec> routes = ScalingRoutes(n, &sources, &keys);
  Messages msgs = BuildMessages(sources, keys, 1000);
  RunThroughput(state, std::move(routes), msgs, 200000);
}
BENCHMARK(BM_Throughput)->Arg(10)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_RouteScaling(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  int sources, keys;
  std::vector<query::RouteSpec> routes = ScalingRoutes(n, &sources, &keys);
  Messages msgs = BuildMessages(sources, keys, 4000);
  RunThroughput(state, std::move(routes), msgs, 200000);
}
BENCHMARK(BM_RouteScaling)
    ->Arg(1)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(8000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Endpoint 3 stalls (arg 1) or not (arg 0). Items = messages delivered to
// the three healthy endpoints; compare the two rates.
void BM_SlowEndpoint(benchmark::State& state) {
  const bool stall = state.range(0) != 0;
  int sources, keys;
  std::vector<query::RouteSpec> routes = ScalingRoutes(10, &sources, &keys);
  Messages msgs = BuildMessages(sources, keys, 1000);
  RouterOptions o = BenchOptions();
  o.close_timeout = absl::Seconds(1);
  o.drain_on_close = false;
  auto router = Router::Create(o, std::move(routes), -1);
  if (!router.ok()) {
    state.SkipWithError(router.status().ToString().c_str());
    return;
  }
  std::vector<std::shared_ptr<NullSink>> healthy;
  for (int e = 0; e < 3; ++e) {
    healthy.push_back(std::make_shared<NullSink>());
    (*router)->SetSink(EndpointId(e), healthy.back()).IgnoreError();
  }
  auto stalled = std::make_shared<StallingSink>();
  auto normal = std::make_shared<NullSink>();
  if (stall) {
    (*router)->SetSink(EndpointId(3), stalled).IgnoreError();
  } else {
    (*router)->SetSink(EndpointId(3), normal).IgnoreError();
  }
  // Which endpoint each prebuilt message goes to (route i -> endpoint
  // i % 4; with 10 routes, route = source).
  std::vector<int> endpoint_of(msgs.views.size());
  uint64_t healthy_per_pass = 0;
  for (size_t i = 0; i < msgs.views.size(); ++i) {
    endpoint_of[i] = static_cast<int>(i % sources) % kEndpoints;
  }
  std::atomic<bool> failed{false};
  const size_t per_iteration = 200000;
  uint64_t expected_healthy = 0;
  for (auto _ : state) {
    Produce(router->get(), msgs, per_iteration / kProducers, &failed);
    // Count what the healthy endpoints must get from this iteration.
    for (int p = 0; p < kProducers; ++p) {
      size_t j = static_cast<size_t>(p) * 7919 % msgs.views.size();
      for (size_t i = 0; i < per_iteration / kProducers; ++i) {
        if (endpoint_of[j] != 3) ++expected_healthy;
        if (++j == msgs.views.size()) j = 0;
      }
    }
    for (;;) {
      uint64_t got = 0;
      for (auto& s : healthy) got += s->delivered();
      if (got >= expected_healthy) break;
      std::this_thread::yield();
    }
  }
  (void)healthy_per_pass;
  state.SetItemsProcessed(static_cast<int64_t>(expected_healthy));
  const RouterMetrics m = (*router)->GetMetrics();
  for (const auto& e : m.endpoints) {
    if (e.endpoint_id == EndpointId(3)) {
      state.counters["stalled_queued"] = static_cast<double>(e.queue_depth);
      state.counters["stalled_dropped_full"] =
          static_cast<double>(e.dropped_queue_full);
    }
  }
  stalled->Release(true);
  (*router)->Close().IgnoreError();
  if (failed.load()) state.SkipWithError("send failed");
}
BENCHMARK(BM_SlowEndpoint)
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Records Send -> sink latency: the producer stores its steady-clock time
// in the sequence number field.
class LatencySink : public Sink {
 public:
  explicit LatencySink(size_t capacity) { samples_.reserve(capacity); }
  void Deliver(DeliveryBatch* batch) override {
    const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    for (size_t i = 0; i < batch->size(); ++i) {
      const int64_t sent =
          static_cast<int64_t>(batch->message(i).sequence_number());
      if (samples_.size() < samples_.capacity()) {
        samples_.push_back(now - sent);
      }
    }
    batch->CompleteAll(DeliveryOutcome::kDelivered);
    count_.fetch_add(batch->size(), std::memory_order_release);
  }
  uint64_t count() const { return count_.load(std::memory_order_acquire); }
  // REQUIRES: no delivery in progress.
  const std::vector<int64_t>& samples() const { return samples_; }

 private:
  std::vector<int64_t> samples_;  // executor thread only
  std::atomic<uint64_t> count_{0};
};

double MeasurePeak() {
  int sources, keys;
  std::vector<query::RouteSpec> routes = ScalingRoutes(10, &sources, &keys);
  Messages msgs = BuildMessages(sources, keys, 1000);
  auto router = Router::Create(BenchOptions(), std::move(routes), -1);
  if (!router.ok()) return 0;
  for (int e = 0; e < kEndpoints; ++e) {
    (*router)
        ->SetSink(EndpointId(e), std::make_shared<NullSink>())
        .IgnoreError();
  }
  std::atomic<bool> failed{false};
  const size_t n = 400000;
  const auto t0 = std::chrono::steady_clock::now();
  Produce(router->get(), msgs, n / kProducers, &failed);
  (*router)->WaitIdle(absl::Seconds(60)).IgnoreError();
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  (*router)->Close().IgnoreError();
  return n / s;
}

void BM_Latency(benchmark::State& state) {
  static const double peak = MeasurePeak();
  const double rate = peak / 2;
  int sources, keys;
  std::vector<query::RouteSpec> routes = ScalingRoutes(10, &sources, &keys);
  RouterOptions o = BenchOptions();
  o.endpoint_batch_size = 64;
  auto router = Router::Create(o, std::move(routes), -1);
  if (!router.ok()) {
    state.SkipWithError(router.status().ToString().c_str());
    return;
  }
  const size_t per_iteration = 100000;
  std::vector<std::shared_ptr<LatencySink>> sinks;
  for (int e = 0; e < kEndpoints; ++e) {
    sinks.push_back(std::make_shared<LatencySink>(per_iteration * 8));
    (*router)->SetSink(EndpointId(e), sinks.back()).IgnoreError();
  }
  MessageBuilder b;
  const std::string body = Body256(1);
  uint64_t sent = 0;
  const double interval_ns = 1e9 / rate;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < per_iteration; ++i) {
      const auto due = start + std::chrono::nanoseconds(
                                   static_cast<int64_t>(i * interval_ns));
      while (std::chrono::steady_clock::now() < due) {
      }
      b.Clear();
      b.SetBody(body);
      b.AddSystemProperty("connectionModuleId", absl::StrCat("m", i % 10));
      b.AddSystemProperty("outputName", "out");
      b.AddProperty("k", "0");
      b.SetSequenceNumber(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(
              std::chrono::steady_clock::now().time_since_epoch())
              .count()));
      b.Finish();
      if (!(*router)->SendView(b.view()).ok()) {
        state.SkipWithError("send failed");
        return;
      }
      ++sent;
    }
    (*router)->WaitIdle(absl::Seconds(60)).IgnoreError();
  }
  (*router)->Close().IgnoreError();
  std::vector<int64_t> all;
  for (auto& s : sinks) {
    all.insert(all.end(), s->samples().begin(), s->samples().end());
  }
  std::sort(all.begin(), all.end());
  auto q = [&](double p) {
    return all.empty() ? 0.0
                       : all[std::min(all.size() - 1,
                                      static_cast<size_t>(p * all.size()))] /
                             1000.0;
  };
  state.SetItemsProcessed(static_cast<int64_t>(sent));
  state.counters["peak_per_s"] = peak;
  state.counters["offered_per_s"] = rate;
  state.counters["p50_us"] = q(0.50);
  state.counters["p99_us"] = q(0.99);
  state.counters["p999_us"] = q(0.999);
}
BENCHMARK(BM_Latency)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

int64_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long size = 0, resident = 0;
  if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
  std::fclose(f);
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

// Messages queued for an endpoint without a sink: resident bytes per
// queued message versus the message's size.
void BM_MemoryPerQueuedMessage(benchmark::State& state) {
  const size_t n = 200000;
  Messages msgs = BuildMessages(10, 1, 1000);
  double per_message = 0;
  for (auto _ : state) {
    RouterOptions o = BenchOptions();
    o.endpoint_queue_capacity = 262144;
    o.drain_on_close = false;
    auto router = Router::Create(o,
                                 {{"all", "FROM /messages/* " + EndpointInto(0),
                                   query::kDefaultPriority, 0}},
                                 -1);
    if (!router.ok()) {
      state.SkipWithError(router.status().ToString().c_str());
      return;
    }
    (*router)->WaitIdle(absl::Seconds(10)).IgnoreError();
    const int64_t before = ResidentBytes();
    std::atomic<bool> failed{false};
    Produce(router->get(), msgs, n / kProducers, &failed);
    (*router)->WaitIdle(absl::Seconds(60)).IgnoreError();
    const int64_t after = ResidentBytes();
    per_message = static_cast<double>(after - before) / n;
    (*router)->Close().IgnoreError();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.counters["payload_bytes"] =
      static_cast<double>(msgs.views[0].bytes().size());
  state.counters["resident_bytes_per_message"] = per_message;
  state.counters["overhead_bytes_per_message"] =
      per_message - static_cast<double>(msgs.views[0].bytes().size());
}
BENCHMARK(BM_MemoryPerQueuedMessage)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Baseline: the obvious design. Producers evaluate every route of the set
// (RouteSet::EvaluateAll, no source index), copy the message into a
// heap vector and push it into a std::deque per endpoint under a mutex;
// one consumer thread per endpoint pops batches under the mutex and drops
// them.
class BaselinePipeline {
 public:
  BaselinePipeline(std::unique_ptr<query::RouteSet> set)
      : set_(std::move(set)) {
    for (int e = 0; e < kEndpoints; ++e) {
      queues_.push_back(std::make_unique<Queue>());
    }
    for (size_t i = 0; i < set_->size(); ++i) {
      const std::string& id = set_->route(i).sink.endpoint_id;
      int e = 0;
      for (int k = 0; k < kEndpoints; ++k) {
        if (id == EndpointId(k)) e = k;
      }
      endpoint_of_route_.push_back(e);
    }
    for (int e = 0; e < kEndpoints; ++e) {
      consumers_.emplace_back([this, e] { Consume(queues_[e].get()); });
    }
  }
  ~BaselinePipeline() {
    for (auto& q : queues_) {
      std::lock_guard<std::mutex> l(q->mu);
      q->stop = true;
      q->cv.notify_all();
    }
    for (auto& t : consumers_) t.join();
  }
  void Send(const MessageView& view, query::EvalScratch* scratch,
            std::vector<uint8_t>* matched) {
    query::RouteSet::Reset(scratch);
    set_->EvaluateAll(view, scratch, matched);
    bool sent_to[kEndpoints] = {};
    for (size_t i = 0; i < matched->size(); ++i) {
      if (!(*matched)[i]) continue;
      const int e = endpoint_of_route_[i];
      if (sent_to[e]) continue;
      sent_to[e] = true;
      auto copy = std::make_shared<std::vector<uint8_t>>(view.bytes().begin(),
                                                         view.bytes().end());
      Queue* q = queues_[e].get();
      std::lock_guard<std::mutex> l(q->mu);
      q->items.push_back(std::move(copy));
      q->cv.notify_one();
    }
  }
  uint64_t consumed() const { return consumed_.load(); }
  std::unique_ptr<query::EvalScratch> NewScratch() {
    return set_->NewScratch();
  }

 private:
  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::shared_ptr<std::vector<uint8_t>>> items;
    bool stop = false;
  };
  void Consume(Queue* q) {
    std::vector<std::shared_ptr<std::vector<uint8_t>>> batch;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(q->mu);
        q->cv.wait(l, [q] { return q->stop || !q->items.empty(); });
        if (q->items.empty() && q->stop) return;
        while (!q->items.empty() && batch.size() < 256) {
          batch.push_back(std::move(q->items.front()));
          q->items.pop_front();
        }
      }
      consumed_.fetch_add(batch.size());
      batch.clear();
    }
  }
  std::unique_ptr<query::RouteSet> set_;
  std::vector<int> endpoint_of_route_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::vector<std::thread> consumers_;
  std::atomic<uint64_t> consumed_{0};
};

void BM_Baseline_MutexQueue(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  int sources, keys;
  std::vector<query::RouteSpec> routes = ScalingRoutes(n, &sources, &keys);
  Messages msgs = BuildMessages(sources, keys, 4000);
  query::CompileOptions copts;
  std::vector<query::Diagnostic> diags;
  auto set = query::RouteSet::Compile(routes, copts, &diags);
  if (!set.ok()) {
    state.SkipWithError(set.status().ToString().c_str());
    return;
  }
  BaselinePipeline pipeline(std::move(*set));
  const size_t per_iteration = n >= 1000 ? 20000 : 200000;
  uint64_t sent = 0;
  for (auto _ : state) {
    std::vector<std::thread> threads;
    for (int p = 0; p < kProducers; ++p) {
      threads.emplace_back([&, p] {
        auto scratch = pipeline.NewScratch();
        std::vector<uint8_t> matched;
        size_t j = static_cast<size_t>(p) * 7919 % msgs.views.size();
        for (size_t i = 0; i < per_iteration / kProducers; ++i) {
          pipeline.Send(msgs.views[j], scratch.get(), &matched);
          if (++j == msgs.views.size()) j = 0;
        }
      });
    }
    for (auto& t : threads) t.join();
    sent += per_iteration;
    while (pipeline.consumed() < sent) std::this_thread::yield();
  }
  state.SetItemsProcessed(static_cast<int64_t>(sent));
}
BENCHMARK(BM_Baseline_MutexQueue)
    ->Arg(10)
    ->Arg(1000)
    ->Arg(8000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace edgeroute::router

// glibc's malloc gives memory back to the kernel whenever the top of the
// heap is free, and the router's producer-allocates / executor-frees
// pattern then pays page faults again and again. An application with this
// traffic sets a trim threshold (or uses a scalable allocator); so does this
// benchmark, unless EDGEROUTE_BENCH_DEFAULT_MALLOC is set.
int main(int argc, char** argv) {
  if (std::getenv("EDGEROUTE_BENCH_DEFAULT_MALLOC") == nullptr) {
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
