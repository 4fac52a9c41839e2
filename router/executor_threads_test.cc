// The router's executor threads: a fixed pool drives every endpoint, so the
// thread count does not grow with the number of endpoints (10,000 module
// inputs here); a sink that answers later holds no thread, a sink that
// blocks holds one, a busy endpoint gets time slices, and the pool size is
// validated.

#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "router/router.h"
#include "router/sinks.h"

namespace edgeroute::router {
namespace {

constexpr absl::Duration kWait = absl::Seconds(60);

// Threads of this process: the entries of /proc/self/task.
int ThreadCount() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n;
}

absl::Status SendFrom(Router& router, absl::string_view module,
                      absl::string_view output, uint64_t seq) {
  MessageBuilder b;
  b.SetBody("{}");
  b.AddSystemProperty("connectionModuleId", module);
  b.AddSystemProperty("outputName", output);
  b.SetSequenceNumber(seq);
  return router.Send(b.Finish());
}

std::string Input(int i) { return absl::StrCat("in", i); }
std::string EndpointOf(int i) { return absl::StrCat("DEV/m/", Input(i)); }

// Counts what each endpoint received; completes at once (in Deliver) or,
// when `later`, from its own thread after Deliver has returned.
class CountingSink : public Sink {
 public:
  explicit CountingSink(bool later) : later_(later) {
    if (later_) completer_ = std::thread([this] { CompleteLoop(); });
  }
  ~CountingSink() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (completer_.joinable()) completer_.join();
  }

  void Deliver(DeliveryBatch* batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    counts_[std::string(batch->endpoint_id())] += batch->size();
    total_ += batch->size();
    if (!later_) {
      batch->CompleteAll(DeliveryOutcome::kDelivered);
      return;
    }
    queue_.push_back(batch);
    cv_.notify_all();
  }

  std::map<std::string, uint64_t> counts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_;
  }
  uint64_t total() const {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }

 private:
  void CompleteLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      DeliveryBatch* batch = queue_.front();
      queue_.pop_front();
      lock.unlock();
      for (size_t i = 0; i < batch->size(); ++i) {
        batch->Complete(i, DeliveryOutcome::kDelivered);
      }
      lock.lock();
    }
  }

  const bool later_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, uint64_t> counts_;
  uint64_t total_ = 0;
  std::deque<DeliveryBatch*> queue_;
  bool stop_ = false;
  std::thread completer_;
};

TEST(ExecutorThreadsTest, TenThousandEndpointsShareAFixedNumberOfThreads) {
  constexpr int kEndpoints = 10000;
  constexpr int kPerEndpoint = 2;
  RouterOptions o;
  o.dispatch_workers = 1;
  o.executor_threads = 2;
  o.endpoint_queue_capacity = 4;  // 10,000 endpoints x 11 lanes at most
  o.close_timeout = absl::Seconds(30);
  std::vector<query::RouteSpec> routes;
  for (int i = 0; i < kEndpoints; ++i) {
    routes.push_back(
        {absl::StrCat("r", i),
         absl::StrCat("FROM /messages/modules/src/outputs/o", i,
                      " INTO BrokeredEndpoint(\"/modules/m/inputs/", Input(i),
                      "\")"),
         query::kDefaultPriority, 0});
  }
  // Half the endpoints complete in Deliver, half from the sink's thread
  // later (each sink with one thread of its own: 1 more thread in all).
  auto now = std::make_shared<CountingSink>(/*later=*/false);
  auto later = std::make_shared<CountingSink>(/*later=*/true);
  const int before = ThreadCount();
  ASSERT_GT(before, 0);
  auto router = Router::Create(o, std::move(routes), -1);
  ASSERT_TRUE(router.ok()) << router.status();
  for (int i = 0; i < kEndpoints; ++i) {
    ASSERT_TRUE(
        (*router)->SetSink(EndpointOf(i), i % 2 == 0 ? now : later).ok());
  }
  // The bound: dispatch workers + executor threads + the pool's timer
  // thread + the sink's completer thread.
  const int bound = before + o.dispatch_workers + o.executor_threads + 2;
  int most = ThreadCount();
  for (int round = 0; round < kPerEndpoint; ++round) {
    for (int i = 0; i < kEndpoints; ++i) {
      ASSERT_TRUE(SendFrom(**router, "src", absl::StrCat("o", i),
                           static_cast<uint64_t>(round * kEndpoints + i))
                      .ok());
      if (i % 1000 == 0) most = std::max(most, ThreadCount());
    }
  }
  const absl::Time deadline = absl::Now() + kWait;
  while (now->total() + later->total() < uint64_t{kEndpoints} * kPerEndpoint &&
         absl::Now() < deadline) {
    most = std::max(most, ThreadCount());
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
  most = std::max(most, ThreadCount());
  EXPECT_LE(most, bound) << "threads before the router: " << before;

  // Every endpoint got its messages, exactly once each.
  std::map<std::string, uint64_t> counts = now->counts();
  for (const auto& [id, n] : later->counts()) counts[id] += n;
  ASSERT_EQ(counts.size(), size_t{kEndpoints});
  for (int i = 0; i < kEndpoints; ++i) {
    EXPECT_EQ(counts[EndpointOf(i)], uint64_t{kPerEndpoint}) << EndpointOf(i);
  }
  const RouterMetrics m = (*router)->GetMetrics();
  ASSERT_EQ(m.endpoints.size(), size_t{kEndpoints});
  for (const EndpointMetrics& e : m.endpoints) {
    EXPECT_EQ(e.delivered, uint64_t{kPerEndpoint}) << e.endpoint_id;
    EXPECT_EQ(e.queue_depth, 0u) << e.endpoint_id;
  }
  ASSERT_TRUE((*router)->Close().ok());
  EXPECT_EQ(now->total() + later->total(), uint64_t{kEndpoints} * kPerEndpoint);
}

// Holds every batch in Deliver (the calling thread blocks) until Open().
class BlockingSink : public Sink {
 public:
  void Deliver(DeliveryBatch* batch) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++blocked_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    --blocked_;
    delivered_ += batch->size();
    batch->CompleteAll(DeliveryOutcome::kDelivered);
  }
  bool WaitBlocked(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(kWait),
                        [&] { return blocked_ >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  uint64_t delivered() const {
    std::lock_guard<std::mutex> lock(mu_);
    return delivered_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int blocked_ = 0;
  bool open_ = false;
  uint64_t delivered_ = 0;
};

std::vector<query::RouteSpec> OneRoutePerModule(int n) {
  std::vector<query::RouteSpec> routes;
  for (int i = 0; i < n; ++i) {
    routes.push_back({absl::StrCat("r", i),
                      absl::StrCat("FROM /messages/modules/m", i,
                                   "/* INTO BrokeredEndpoint(\"/modules/t", i,
                                   "/inputs/in\")"),
                      query::kDefaultPriority, 0});
  }
  return routes;
}
std::string Target(int i) { return absl::StrCat("DEV/t", i, "/in"); }

// Sinks that answer later hold no executor thread: with one thread, five
// stalled endpoints do not stop a sixth.
TEST(ExecutorThreadsTest, SinksThatAnswerLaterHoldNoThread) {
  RouterOptions o;
  o.executor_threads = 1;
  o.drain_on_close = false;
  auto router = Router::Create(o, OneRoutePerModule(6), -1);
  ASSERT_TRUE(router.ok()) << router.status();
  std::vector<std::shared_ptr<StallingSink>> stalled;
  for (int i = 0; i < 5; ++i) {
    stalled.push_back(std::make_shared<StallingSink>());
    ASSERT_TRUE((*router)->SetSink(Target(i), stalled.back()).ok());
  }
  auto healthy = std::make_shared<CollectingSink>();
  ASSERT_TRUE((*router)->SetSink(Target(5), healthy).ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(SendFrom(**router, absl::StrCat("m", i), "out", 1).ok());
  }
  for (const auto& s : stalled) ASSERT_TRUE(s->WaitForHeld(1, kWait));
  for (uint64_t seq = 0; seq < 300; ++seq) {
    ASSERT_TRUE(SendFrom(**router, "m5", "out", seq).ok());
  }
  ASSERT_TRUE(healthy->WaitForCount(300, kWait));
  for (const auto& s : stalled) s->Release(/*stay_open=*/true);
  ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
  for (const auto& s : stalled) EXPECT_EQ(s->delivered(), 1u);
  ASSERT_TRUE((*router)->Close().ok());
}

// A Deliver that blocks holds one executor thread; with two, the other
// endpoints keep going.
TEST(ExecutorThreadsTest, ABlockingSinkHoldsOnlyOneThread) {
  RouterOptions o;
  o.executor_threads = 2;
  auto router = Router::Create(o, OneRoutePerModule(3), -1);
  ASSERT_TRUE(router.ok()) << router.status();
  auto blocking = std::make_shared<BlockingSink>();
  ASSERT_TRUE((*router)->SetSink(Target(0), blocking).ok());
  auto b = std::make_shared<CollectingSink>();
  auto c = std::make_shared<CollectingSink>();
  ASSERT_TRUE((*router)->SetSink(Target(1), b).ok());
  ASSERT_TRUE((*router)->SetSink(Target(2), c).ok());
  ASSERT_TRUE(SendFrom(**router, "m0", "out", 1).ok());
  ASSERT_TRUE(blocking->WaitBlocked(1));
  for (uint64_t seq = 0; seq < 200; ++seq) {
    ASSERT_TRUE(SendFrom(**router, "m1", "out", seq).ok());
    ASSERT_TRUE(SendFrom(**router, "m2", "out", seq).ok());
  }
  ASSERT_TRUE(b->WaitForCount(200, kWait));
  ASSERT_TRUE(c->WaitForCount(200, kWait));
  EXPECT_EQ(blocking->delivered(), 0u);
  blocking->Open();
  ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
  EXPECT_EQ(blocking->delivered(), 1u);
  ASSERT_TRUE((*router)->Close().ok());
}

// Accepts each batch after a short sleep in Deliver (a slow, synchronous
// endpoint). Its first Deliver waits until Open(), so that the test can
// queue another endpoint while this one holds the only thread.
class SlowSink : public Sink {
 public:
  void Open() { open_.store(true, std::memory_order_release); }
  void Deliver(DeliveryBatch* batch) override {
    const absl::Time deadline = absl::Now() + kWait;
    while (!open_.load(std::memory_order_acquire) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    absl::SleepFor(absl::Milliseconds(1));
    delivered_.fetch_add(batch->size(), std::memory_order_relaxed);
    batch->CompleteAll(DeliveryOutcome::kDelivered);
  }
  uint64_t delivered() const {
    return delivered_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<bool> open_{false};
  std::atomic<uint64_t> delivered_{0};
};

// Notes how many messages a SlowSink had delivered when this sink got its
// first batch.

class RecordingSink : public Sink {
 public:
  explicit RecordingSink(const SlowSink* other) : other_(other) {}
  void Deliver(DeliveryBatch* batch) override {
    other_seen_.store(other_->delivered(), std::memory_order_relaxed);
    done_.store(true, std::memory_order_release);
    batch->CompleteAll(DeliveryOutcome::kDelivered);
  }
  bool done() const { return done_.load(std::memory_order_acquire); }
  uint64_t other_seen() const {
    return other_seen_.load(std::memory_order_relaxed);
  }

 private:
  const SlowSink* const other_;
  std::atomic<bool> done_{false};
  std::atomic<uint64_t> other_seen_{0};
};

// A busy endpoint runs in slices: with one thread, another endpoint's
// message goes out long before the busy one's backlog is drained.
TEST(ExecutorThreadsTest, ABusyEndpointYieldsTheThreadBetweenSlices) {
  constexpr int kBacklog = 5000;  // 50 batches of 100, >= 50 ms to deliver
  RouterOptions o;
  o.executor_threads = 1;
  auto router = Router::Create(o, OneRoutePerModule(2), -1);
  ASSERT_TRUE(router.ok()) << router.status();
  // Both backlogs are queued before any sink is set.
  for (int seq = 0; seq < kBacklog; ++seq) {
    ASSERT_TRUE(SendFrom(**router, "m0", "out", seq).ok());
  }
  ASSERT_TRUE(SendFrom(**router, "m1", "out", 1).ok());
  const absl::Time deadline = absl::Now() + kWait;
  for (;;) {
    const RouterMetrics m = (*router)->GetMetrics();
    uint64_t enqueued = 0;
    for (const EndpointMetrics& e : m.endpoints) enqueued += e.enqueued;
    if (enqueued == kBacklog + 1) break;
    ASSERT_LT(absl::Now(), deadline);
    absl::SleepFor(absl::Milliseconds(1));
  }
  auto slow = std::make_shared<SlowSink>();
  auto quick = std::make_shared<RecordingSink>(slow.get());
  ASSERT_TRUE((*router)->SetSink(Target(0), slow).ok());
  ASSERT_TRUE((*router)->SetSink(Target(1), quick).ok());
  slow->Open();
  ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
  ASSERT_TRUE(quick->done());
  EXPECT_EQ(slow->delivered(), uint64_t{kBacklog});
  EXPECT_LT(quick->other_seen(), uint64_t{kBacklog} / 2);
  ASSERT_TRUE((*router)->Close().ok());
}

// Close waits for a batch that a sink completes later, then drains the
// rest: nothing is lost, nothing is delivered twice.
TEST(ExecutorThreadsTest, CloseWaitsForABatchASinkCompletesLater) {
  RouterOptions o;
  o.executor_threads = 1;
  o.endpoint_batch_size = 2;
  o.drain_on_close = true;
  o.close_timeout = kWait;
  auto router = Router::Create(o, OneRoutePerModule(1), -1);
  ASSERT_TRUE(router.ok()) << router.status();
  auto sink = std::make_shared<StallingSink>();
  ASSERT_TRUE((*router)->SetSink(Target(0), sink).ok());
  for (uint64_t seq = 0; seq < 5; ++seq) {
    ASSERT_TRUE(SendFrom(**router, "m0", "out", seq).ok());
  }
  ASSERT_TRUE(sink->WaitForHeld(1, kWait));
  std::atomic<bool> closed{false};
  std::thread closer([&] {
    EXPECT_TRUE((*router)->Close().ok());
    closed.store(true, std::memory_order_release);
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(closed.load(std::memory_order_acquire));
  sink->Release(/*stay_open=*/true);  // completes from this thread
  closer.join();
  EXPECT_EQ(sink->delivered(), 5u);
  const RouterMetrics m = (*router)->GetMetrics();
  ASSERT_EQ(m.endpoints.size(), 1u);
  EXPECT_EQ(m.endpoints[0].delivered, 5u);
  EXPECT_EQ(m.endpoints[0].dropped_close, 0u);
  EXPECT_EQ(m.endpoints[0].queue_depth, 0u);
}

TEST(ExecutorThreadsTest, ThePoolSizeIsValidated) {
  for (int bad : {-1, 257}) {
    RouterOptions o;
    o.executor_threads = bad;
    auto router = Router::Create(o, OneRoutePerModule(1), -1);
    ASSERT_FALSE(router.ok()) << bad;
    EXPECT_EQ(router.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(router.status().message(),
                                  absl::StrCat("executor_threads must be 0")))
        << router.status();
    EXPECT_TRUE(
        absl::StrContains(router.status().message(), absl::StrCat("got ", bad)))
        << router.status();
  }
  for (int good : {0, 1, 3}) {
    RouterOptions o;
    o.executor_threads = good;
    auto router = Router::Create(o, OneRoutePerModule(1), -1);
    ASSERT_TRUE(router.ok()) << router.status();
    auto sink = std::make_shared<CollectingSink>();
    ASSERT_TRUE((*router)->SetSink(Target(0), sink).ok());
    ASSERT_TRUE(SendFrom(**router, "m0", "out", 1).ok());
    EXPECT_TRUE(sink->WaitForCount(1, kWait));
    ASSERT_TRUE((*router)->Close().ok());
  }
}

}  // namespace
}  // namespace edgeroute::router
