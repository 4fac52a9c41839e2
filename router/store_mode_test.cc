// The router with a store: Send returns after the append, executors read
// from the store and checkpoint after the sink answers, and messages survive
// a restart of the router (and of the store).

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "router/router.h"
#include "router/sinks.h"
#include "store/store.h"

namespace edgeroute::router {
namespace {

constexpr absl::Duration kWait = absl::Seconds(20);

std::string TestDir(absl::string_view name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
}

std::vector<query::RouteSpec> Routes() {
  return {
      {"toA", "FROM /* INTO BrokeredEndpoint(\"/modules/a/inputs/in\")", 1, 0},
      {"toB",
       "FROM /* WHERE level = 'critical' INTO "
       "BrokeredEndpoint(\"/modules/b/inputs/in\")",
       query::kDefaultPriority, 0},
  };
}

absl::Status Send(Router& router, uint64_t seq, bool critical) {
  MessageBuilder b;
  b.SetBody("{\"v\":1}");
  if (critical) b.AddProperty("level", "critical");
  b.SetSequenceNumber(seq);
  return router.Send(b.Finish());
}

std::vector<uint64_t> Seqs(const std::vector<CollectedMessage>& ms) {
  std::vector<uint64_t> out;
  for (const auto& m : ms) {
    out.push_back(MessageView::FromTrustedBytes(
                      absl::MakeConstSpan(
                          reinterpret_cast<const uint8_t*>(m.bytes.data()),
                          m.bytes.size()))
                      .sequence_number());
  }
  return out;
}

std::unique_ptr<store::Store> OpenStore(const std::string& dir, Clock* clock) {
  store::StoreOptions so;
  so.directory = dir;
  so.clock = clock;
  so.cleanup_interval_ms = 0;
  auto s = store::Store::Open(so);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

TEST(StoreModeTest, MessagesSurviveRestartAndAreCheckpointedAfterDelivery) {
  FakeClock clock;
  const std::string dir = TestDir("restart");
  {
    auto store = OpenStore(dir, &clock);
    ASSERT_NE(store, nullptr);
    RouterOptions o;
    o.clock = &clock;
    o.store = store.get();
    auto router = Router::Create(o, Routes(), -1);
    ASSERT_TRUE(router.ok()) << router.status();
    for (uint64_t i = 1; i <= 6; ++i) {
      ASSERT_TRUE(Send(**router, i, i % 2 == 0).ok());
    }
    // Deliver A's messages, leave B's in the store (no sink).
    auto a = std::make_shared<CollectingSink>();
    ASSERT_TRUE((*router)->SetSink("DEV/a/in", a).ok());
    ASSERT_TRUE(a->WaitForCount(6, kWait));
    ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
    EXPECT_EQ(Seqs(a->messages()), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
    RouterMetrics m = (*router)->GetMetrics();
    for (const auto& e : m.endpoints) {
      if (e.endpoint_id == "DEV/b/in") {
        EXPECT_EQ(e.queue_depth, 3u);
      }
      if (e.endpoint_id == "DEV/a/in") {
        EXPECT_EQ(e.queue_depth, 0u);
      }
    }
    ASSERT_TRUE((*router)->Close().ok());
    ASSERT_TRUE(store->Close().ok());
  }
  {
    auto store = OpenStore(dir, &clock);
    ASSERT_NE(store, nullptr);
    RouterOptions o;
    o.clock = &clock;
    o.store = store.get();
    auto router = Router::Create(o, Routes(), -1);
    ASSERT_TRUE(router.ok()) << router.status();
    auto a = std::make_shared<CollectingSink>();
    auto b = std::make_shared<CollectingSink>();
    ASSERT_TRUE((*router)->SetSink("DEV/a/in", a).ok());
    ASSERT_TRUE((*router)->SetSink("DEV/b/in", b).ok());
    ASSERT_TRUE(b->WaitForCount(3, kWait));
    ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
    EXPECT_EQ(Seqs(b->messages()), (std::vector<uint64_t>{2, 4, 6}));
    EXPECT_EQ(a->count(), 0u);  // checkpointed in the first run
    ASSERT_TRUE((*router)->Close().ok());
  }
}

TEST(StoreModeTest, RetriedMessageIsNotCheckpointedUntilDelivered) {
  FakeClock clock;
  const std::string dir = TestDir("retry");
  {
    auto store = OpenStore(dir, &clock);
    ASSERT_NE(store, nullptr);
    RouterOptions o;
    o.clock = &clock;
    o.store = store.get();
    o.retry.jitter = 0;
    auto router = Router::Create(o, Routes(), -1);
    ASSERT_TRUE(router.ok()) << router.status();
    for (uint64_t i = 1; i <= 3; ++i)
      ASSERT_TRUE(Send(**router, i, false).ok());
    auto sink = std::make_shared<ScriptedSink>([](const MessageView& v, int) {
      return v.sequence_number() == 2 ? DeliveryOutcome::kRetry
                                      : DeliveryOutcome::kDelivered;
    });
    ASSERT_TRUE((*router)->SetSink("DEV/a/in", sink).ok());
    ASSERT_TRUE(sink->WaitForBatches(1, kWait));
    ASSERT_TRUE((*router)->Close().ok());  // 2 is still waiting for a retry
    ASSERT_TRUE(store->Close().ok());
  }
  {
    auto store = OpenStore(dir, &clock);
    ASSERT_NE(store, nullptr);
    RouterOptions o;
    o.clock = &clock;
    o.store = store.get();
    auto router = Router::Create(o, Routes(), -1);
    ASSERT_TRUE(router.ok()) << router.status();
    auto a = std::make_shared<CollectingSink>();
    ASSERT_TRUE((*router)->SetSink("DEV/a/in", a).ok());
    ASSERT_TRUE(a->WaitForCount(2, kWait));
    ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
    // The checkpoint stopped below 2: 2 and 3 come again (at least once).
    EXPECT_EQ(Seqs(a->messages()), (std::vector<uint64_t>{2, 3}));
    ASSERT_TRUE((*router)->Close().ok());
  }
}

TEST(StoreModeTest, TtlFromTheRouteIsStoredWithTheReference) {
  FakeClock clock;
  auto store = OpenStore(TestDir("ttl"), &clock);
  ASSERT_NE(store, nullptr);
  RouterOptions o;
  o.clock = &clock;
  o.store = store.get();
  auto router = Router::Create(
      o,
      {{"short", "FROM /* INTO BrokeredEndpoint(\"/modules/a/inputs/in\")", 0,
        5}},
      3600);
  ASSERT_TRUE(router.ok()) << router.status();
  ASSERT_TRUE(Send(**router, 1, false).ok());
  clock.AdvanceSeconds(6);
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE((*router)->SetSink("DEV/a/in", a).ok());
  ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
  EXPECT_EQ(a->count(), 0u);
  ASSERT_TRUE((*router)->Close().ok());
}

// A store whose Append blocks until released: the dispatch worker stalls,
// the admission ring fills, and Send must give up after the timeout.
class BlockingStore : public store::Store {
 public:
  absl::StatusOr<uint32_t> OpenQueue(const store::QueueId&) override {
    return 0;
  }
  std::vector<store::QueueId> ListQueues() const override { return {}; }
  absl::Status Append(absl::Span<const store::AppendItem> batch) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++appends_;
    append_sizes_.push_back(batch.size());
    cv_.notify_all();
    cv_.wait(lock, [this] { return released_; });
    return absl::OkStatus();
  }
  absl::Status Read(uint32_t, size_t,
                    std::vector<store::StoredMessage>* out) override {
    out->clear();
    return absl::OkStatus();
  }
  absl::Status ReadAfter(uint32_t, uint64_t, size_t,
                         std::vector<store::StoredMessage>* out) override {
    out->clear();
    return absl::OkStatus();
  }
  absl::Status Checkpoint(uint32_t, uint64_t) override {
    return absl::OkStatus();
  }
  Stats GetStats() const override { return {}; }
  absl::Status RunCleanup(bool) override { return absl::OkStatus(); }
  absl::Status Close() override { return absl::OkStatus(); }

  void WaitForAppend() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return appends_ > 0; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // The number of items of each Append so far.
  std::vector<size_t> append_sizes() {
    std::lock_guard<std::mutex> lock(mu_);
    return append_sizes_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int appends_ = 0;
  std::vector<size_t> append_sizes_;
  bool released_ = false;
};

TEST(StoreModeTest, FullAdmissionMakesSendFailWithResourceExhausted) {
  BlockingStore store;
  RouterOptions o;
  o.store = &store;
  o.dispatch_workers = 1;
  o.admission_capacity = 2;
  o.admission_timeout = absl::Milliseconds(20);
  auto router = Router::Create(o, Routes(), -1);
  ASSERT_TRUE(router.ok()) << router.status();
  // The first message reaches the worker, which blocks in Append. Then four
  // concurrent Sends meet an empty ring of capacity 2: two get in, two time
  // out. (Sends wait for their append, so each runs on its own thread.)
  std::vector<std::thread> senders;
  std::atomic<int> ok{0}, exhausted{0};
  auto send = [&](uint64_t seq) {
    absl::Status s = Send(**router, seq, false);
    if (s.ok()) ++ok;
    if (s.code() == absl::StatusCode::kResourceExhausted) ++exhausted;
  };
  senders.emplace_back(send, 1);
  store.WaitForAppend();
  for (uint64_t seq = 2; seq <= 5; ++seq) senders.emplace_back(send, seq);
  // The two that cannot get in give up after 20 ms; wait for that event.
  const absl::Time deadline = absl::Now() + kWait;
  while (exhausted.load() < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(exhausted.load(), 2);
  EXPECT_EQ((*router)->GetMetrics().rejected_full, 2u);
  store.Release();
  for (auto& t : senders) t.join();
  EXPECT_EQ(ok.load(), 3);
  ASSERT_TRUE((*router)->Close().ok());
}

// SendViews puts a whole batch into the rings before it waits, so the worker
// appends it in one store write (one message per append round trip is what
// a Send per message gives), and answers each message.
TEST(StoreModeTest, SendViewsAppendsTheBatchTogether) {
  BlockingStore store;
  RouterOptions o;
  o.store = &store;
  o.dispatch_workers = 1;
  auto router = Router::Create(o, Routes(), -1);
  ASSERT_TRUE(router.ok()) << router.status();
  // Hold the worker in the append of a first message.
  std::thread first([&] { EXPECT_TRUE(Send(**router, 1, false).ok()); });
  store.WaitForAppend();
  constexpr int kBatch = 10;
  std::vector<std::string> bytes;
  for (int i = 0; i < kBatch; ++i) {
    MessageBuilder b;
    b.SetBody("{\"v\":1}");
    b.SetSequenceNumber(static_cast<uint64_t>(2 + i));
    const auto finished = b.Finish();
    bytes.emplace_back(reinterpret_cast<const char*>(finished.data()),
                       finished.size());
  }
  std::vector<MessageView> views;
  for (const std::string& m : bytes) {
    views.push_back(MessageView::FromTrustedBytes(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(m.data()), m.size())));
  }
  std::vector<absl::Status> results(kBatch, absl::UnknownError("unset"));
  std::thread batch(
      [&] { (*router)->SendViews(views, absl::MakeSpan(results)); });
  // All of the batch waits in the ring while the worker is held (one Send
  // per message would have only its first one there, waiting for it).
  const absl::Time deadline = absl::Now() + kWait;
  while ((*router)->GetMetrics().admission_queued < kBatch &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ((*router)->GetMetrics().admission_queued, uint64_t{kBatch});
  store.Release();
  first.join();
  batch.join();
  for (const absl::Status& r : results) EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(store.append_sizes(), (std::vector<size_t>{1, kBatch}));
  ASSERT_TRUE((*router)->Close().ok());
  // After Close every message of a batch gets the router's answer.
  (*router)->SendViews(views, absl::MakeSpan(results));
  for (const absl::Status& r : results) {
    EXPECT_EQ(r.code(), absl::StatusCode::kFailedPrecondition) << r;
  }
}

}  // namespace
}  // namespace edgeroute::router
