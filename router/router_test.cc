// End-to-end tests of the router with in-memory queues. Time is a FakeClock:
// tests move it and call WakeExecutors(); they wait for events (messages
// arriving, the router becoming idle), never for time to pass.

#include "router/router.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/clock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "router/internal/message_node.h"
#include "router/sinks.h"

namespace edgeroute::router {
namespace {

constexpr absl::Duration kWait = absl::Seconds(20);
const char kEpA[] = "DEV/a/in";
const char kEpB[] = "DEV/b/in";

std::string IntoA() {
  return "INTO BrokeredEndpoint(\"/modules/a/inputs/in\")";
}
std::string IntoB() {
  return "INTO BrokeredEndpoint(\"/modules/b/inputs/in\")";
}

struct Msg {
  uint64_t seq = 0;
  std::string module;  // empty: device message (/messages)
  std::string output;
  std::vector<std::pair<std::string, std::string>> props;
  std::string body = "{}";
};

absl::Status SendMsg(Router& router, const Msg& m) {
  MessageBuilder b;
  b.SetBody(m.body);
  if (!m.module.empty()) b.AddSystemProperty("connectionModuleId", m.module);
  if (!m.output.empty()) b.AddSystemProperty("outputName", m.output);
  for (const auto& [k, v] : m.props) b.AddProperty(k, v);
  b.SetSequenceNumber(m.seq);
  return router.Send(b.Finish());
}

std::vector<uint64_t> Seqs(const std::vector<CollectedMessage>& ms) {
  std::vector<uint64_t> out;
  for (const auto& m : ms) out.push_back(m.sequence_number());
  return out;
}

const EndpointMetrics* FindEndpoint(const RouterMetrics& m,
                                    absl::string_view id) {
  for (const auto& e : m.endpoints) {
    if (e.endpoint_id == id) return &e;
  }
  return nullptr;
}

const RouteMetrics* FindRoute(const RouterMetrics& m, absl::string_view n) {
  for (const auto& r : m.routes) {
    if (r.name == n) return &r;
  }
  return nullptr;
}

// Polls the metrics until `pred` holds (an event, not a time); false after
// kWait.
template <typename Pred>
bool WaitForMetrics(const Router& router, Pred pred) {
  const absl::Time deadline = absl::Now() + kWait;
  while (absl::Now() < deadline) {
    if (pred(router.GetMetrics())) return true;
    absl::SleepFor(absl::Microseconds(200));
  }
  return false;
}

class RouterTest : public ::testing::Test {
 protected:
  RouterOptions Options() {
    RouterOptions o;
    o.clock = &clock_;
    o.retry.jitter = 0;
    o.close_timeout = absl::Seconds(5);
    return o;
  }
  std::unique_ptr<Router> Make(std::vector<query::RouteSpec> routes,
                               int64_t ttl = -1) {
    return MakeWith(Options(), std::move(routes), ttl);
  }
  std::unique_ptr<Router> MakeWith(const RouterOptions& o,
                                   std::vector<query::RouteSpec> routes,
                                   int64_t ttl = -1) {
    auto r = Router::Create(o, std::move(routes), ttl);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(*r) : nullptr;
  }
  FakeClock clock_;
};

query::RouteSpec Route(std::string name, std::string text,
                       int priority = query::kDefaultPriority,
                       int64_t ttl = 0) {
  return {std::move(name), std::move(text), priority, ttl};
}

TEST_F(RouterTest, RoutesBySourceAndConditionAndCountsOrphans) {
  auto router = Make({
      Route("fromM1", "FROM /messages/modules/m1/* " + IntoA()),
      Route("critical", "FROM /messages/* WHERE level = 'critical' " + IntoB()),
  });
  ASSERT_NE(router, nullptr);
  auto a = std::make_shared<CollectingSink>();
  auto b = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(router->SetSink(kEpB, b).ok());
  ASSERT_TRUE(SendMsg(*router, {1, "m1", "o1", {}}).ok());
  ASSERT_TRUE(SendMsg(*router, {2, "m1", "", {{"level", "critical"}}}).ok());
  ASSERT_TRUE(SendMsg(*router, {3, "", "", {{"level", "critical"}}}).ok());
  ASSERT_TRUE(SendMsg(*router, {4, "m10", "o1", {}}).ok());  // orphan
  ASSERT_TRUE(SendMsg(*router, {5, "", "", {{"level", "info"}}}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  // 1 (output o1) and 2 (no output) come from different sources, which
  // may go to different workers: no order between them, nor between 2 and
  // 3 below.
  std::vector<uint64_t> got_a = Seqs(a->messages());
  std::sort(got_a.begin(), got_a.end());
  EXPECT_EQ(got_a, (std::vector<uint64_t>{1, 2}));
  std::vector<uint64_t> got_b = Seqs(b->messages());
  std::sort(got_b.begin(), got_b.end());
  EXPECT_EQ(got_b, (std::vector<uint64_t>{2, 3}));
  RouterMetrics m = router->GetMetrics();
  EXPECT_EQ(m.received, 5u);
  EXPECT_EQ(m.orphaned, 2u);
  ASSERT_NE(FindRoute(m, "critical"), nullptr);
  EXPECT_EQ(FindRoute(m, "critical")->evaluated, 5u);
  EXPECT_EQ(FindRoute(m, "critical")->matched, 2u);
  EXPECT_EQ(FindRoute(m, "fromM1")->evaluated, 2u);
  EXPECT_EQ(FindRoute(m, "fromM1")->endpoint_id, kEpA);
  ASSERT_NE(FindEndpoint(m, kEpA), nullptr);
  EXPECT_EQ(FindEndpoint(m, kEpA)->delivered, 2u);
  EXPECT_EQ(FindEndpoint(m, kEpA)->enqueued, 2u);
  EXPECT_EQ(FindEndpoint(m, kEpA)->latency.count, 2u);
  EXPECT_TRUE(router->Close().ok());
}

// Route counters stay exact when each worker adds its evaluations once per
// dispatch batch: thousands of messages from many sources (several batches,
// both workers), a route without a condition, and a reload in the middle
// (the counts carry over to the new table's routes of the same name).
TEST_F(RouterTest, RouteCountersAreExactAcrossBatchesSourcesAndReloads) {
  std::vector<query::RouteSpec> routes = {
      Route("all", "FROM /messages/* " + IntoA()),
      Route("even", "FROM /messages/modules/* WHERE k = 'even' " + IntoB()),
      Route("m3", "FROM /messages/modules/m3/* WHERE k = 'odd' " + IntoB()),
  };
  auto router = Make(routes);
  ASSERT_NE(router, nullptr);
  ASSERT_TRUE(router->SetSink(kEpA, std::make_shared<NullSink>()).ok());
  ASSERT_TRUE(router->SetSink(kEpB, std::make_shared<NullSink>()).ok());
  constexpr int kSources = 10;
  constexpr int kPerPass = 3000;
  uint64_t sent = 0, even = 0, m3 = 0, m3_odd = 0;
  auto send_pass = [&] {
    for (int i = 0; i < kPerPass; ++i) {
      const int src = i % kSources;
      const bool is_even = (i / kSources) % 2 == 0;
      ASSERT_TRUE(SendMsg(*router, {sent,
                                    absl::StrCat("m", src),
                                    "out",
                                    {{"k", is_even ? "even" : "odd"}}})
                      .ok());
      ++sent;
      if (is_even) ++even;
      if (src == 3) {
        ++m3;
        if (!is_even) ++m3_odd;
      }
    }
  };
  send_pass();
  ASSERT_TRUE(router->UpdateRoutes(routes, -1).ok());
  send_pass();
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  const RouterMetrics m = router->GetMetrics();
  ASSERT_NE(FindRoute(m, "all"), nullptr);
  EXPECT_EQ(FindRoute(m, "all")->evaluated, sent);
  EXPECT_EQ(FindRoute(m, "all")->matched, sent);
  EXPECT_EQ(FindRoute(m, "even")->evaluated, sent);
  EXPECT_EQ(FindRoute(m, "even")->matched, even);
  EXPECT_EQ(FindRoute(m, "m3")->evaluated, m3);
  EXPECT_EQ(FindRoute(m, "m3")->matched, m3_odd);
}

TEST_F(RouterTest, EachEndpointGetsAMessageOnceAtTheBestPriorityWithItsTtl) {
  // Three routes select every message for endpoint A: priorities 5, 1, 7.
  // The priority-1 route (TTL 10 s) must decide both priority and TTL.
  auto router = Make(
      {
          Route("p5", "FROM /messages/* " + IntoA(), 5, 1000),
          Route("p1", "FROM /messages/* WHERE k = 'short' " + IntoA(), 1, 10),
          Route("p7", "FROM /* " + IntoA(), 7, 1000),
      },
      /*ttl=*/-1);
  ASSERT_NE(router, nullptr);
  ASSERT_TRUE(SendMsg(*router, {1, "", "", {{"k", "short"}}}).ok());
  ASSERT_TRUE(SendMsg(*router, {2, "", "", {{"k", "long"}}}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());  // no sink yet: both queued
  clock_.AdvanceSeconds(11);  // past the priority-1 route's TTL only
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  std::vector<CollectedMessage> got = a->messages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].sequence_number(), 2u);
  EXPECT_EQ(got[0].priority, 5);
  RouterMetrics m = router->GetMetrics();
  EXPECT_EQ(FindEndpoint(m, kEpA)->enqueued, 2u);
  EXPECT_EQ(FindEndpoint(m, kEpA)->expired, 1u);
  EXPECT_EQ(FindEndpoint(m, kEpA)->delivered, 1u);
}

// A source's candidates are evaluated as one selection, where routes of
// the form `k = 'constant'` come from one hash lookup per route source.
// The routes a message matches must still be taken in route order: of two
// routes of the same priority to one endpoint, the first decides the TTL,
// even when the second's route source has its lookup done first.
TEST_F(RouterTest, EqualityRoutesMatchExactlyAndTiesGoToTheFirstRoute) {
  std::vector<query::RouteSpec> routes;
  for (int key = 0; key < 10; ++key) {  // their lookup comes first
    routes.push_back(Route(absl::StrCat("any", key),
                           absl::StrCat("FROM /messages/modules/* WHERE k = 'z",
                                        key, "' ", IntoA())));
  }
  for (int key = 0; key < 12; ++key) {
    routes.push_back(
        Route(absl::StrCat("m0_", key),
              absl::StrCat("FROM /messages/modules/m0/* WHERE k = '", key, "' ",
                           IntoA())));
  }
  routes.push_back(Route("tie_first",
                         "FROM /messages/modules/m0/* WHERE k = '5' " + IntoB(),
                         3, 10));
  routes.push_back(Route("tie_second",
                         "FROM /messages/modules/* WHERE k = '5' " + IntoB(), 3,
                         1000));
  auto router = Make(routes, /*ttl=*/-1);
  ASSERT_NE(router, nullptr);
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(SendMsg(*router, {1, "m0", "out", {{"k", "5"}}}).ok());
  ASSERT_TRUE(SendMsg(*router, {2, "m0", "out", {{"k", "z3"}}}).ok());
  ASSERT_TRUE(SendMsg(*router, {3, "m1", "out", {{"k", "5"}}}).ok());
  ASSERT_TRUE(SendMsg(*router, {4, "m0", "out", {{"k", "12"}}}).ok());
  ASSERT_TRUE(SendMsg(*router, {5, "m0", "out", {}}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());  // B has no sink: queued
  clock_.AdvanceSeconds(11);                  // past tie_first's TTL only
  auto b = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpB, b).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  std::vector<uint64_t> got_a = Seqs(a->messages());
  std::sort(got_a.begin(), got_a.end());
  EXPECT_EQ(got_a, (std::vector<uint64_t>{1, 2}));
  // 1 went to B through tie_first (expired), 3 through tie_second.
  EXPECT_EQ(Seqs(b->messages()), (std::vector<uint64_t>{3}));
  const RouterMetrics m = router->GetMetrics();
  EXPECT_EQ(FindEndpoint(m, kEpB)->expired, 1u);
  EXPECT_EQ(FindRoute(m, "m0_5")->matched, 1u);
  EXPECT_EQ(FindRoute(m, "m0_5")->evaluated, 4u);
  EXPECT_EQ(FindRoute(m, "any3")->matched, 1u);
  EXPECT_EQ(FindRoute(m, "any3")->evaluated, 5u);
  EXPECT_EQ(FindRoute(m, "tie_first")->matched, 1u);
  EXPECT_EQ(FindRoute(m, "tie_second")->matched, 2u);
  EXPECT_EQ(m.orphaned, 2u);
}

TEST_F(RouterTest, GlobalTtlAtEnqueueAndNegativeMeansForever) {
  auto router = Make({Route("all", "FROM /* " + IntoA())}, /*ttl=*/60);
  ASSERT_NE(router, nullptr);
  ASSERT_TRUE(SendMsg(*router, {1}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  // A new table with an infinite TTL does not change the queued message.
  ASSERT_TRUE(
      router->UpdateRoutes({Route("all", "FROM /* " + IntoA())}, -1).ok());
  ASSERT_TRUE(SendMsg(*router, {2}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  clock_.AdvanceSeconds(365 * 24 * 3600);
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  EXPECT_EQ(Seqs(a->messages()), (std::vector<uint64_t>{2}));
  EXPECT_EQ(FindEndpoint(router->GetMetrics(), kEpA)->expired, 1u);
}

TEST_F(RouterTest, DrainsStrictlyByPriorityFifoWithinPriority) {
  RouterOptions o = Options();
  o.endpoint_batch_size = 3;
  auto router =
      MakeWith(o, {
                      Route("p0", "FROM /* WHERE p = '0' " + IntoA(), 0),
                      Route("p4", "FROM /* WHERE p = '4' " + IntoA(), 4),
                      Route("pd", "FROM /* WHERE p = 'd' " + IntoA()),
                  });
  ASSERT_NE(router, nullptr);
  // Interleaved priorities, queued while there is no sink.
  const char* prios[] = {"d", "4", "0", "d", "4", "0", "0", "d", "4", "0"};
  for (uint64_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(SendMsg(*router, {i, "", "", {{"p", prios[i]}}}).ok());
  }
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  std::vector<CollectedMessage> got = a->messages();
  ASSERT_EQ(got.size(), 10u);
  // Without a sink nothing leaves the lanes; then every batch restarts from
  // priority 0: 3 + 1 at priority 0, 3 at 4, 3 at the default.
  std::vector<uint64_t> seqs = Seqs(got);
  std::vector<int> priorities;
  for (const auto& m : got) priorities.push_back(m.priority);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{2, 5, 6, 9, 1, 4, 8, 0, 3, 7}));
  EXPECT_EQ(priorities, (std::vector<int>{
                            0, 0, 0, 0, 4, 4, 4, query::kDefaultPriority,
                            query::kDefaultPriority, query::kDefaultPriority}));
  EXPECT_EQ(a->batches(), 4u);  // 3 + 1 at p0, 3 at p4, 3 at default
}

TEST_F(RouterTest, RetriesWithExponentialBackoffOnTheInjectedClock) {
  RouterOptions o = Options();
  o.retry.initial = absl::Seconds(1);
  o.retry.max = absl::Seconds(4);
  auto router = MakeWith(o, {Route("all", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  std::atomic<int> failures_left{5};
  auto sink = std::make_shared<ScriptedSink>([&](const MessageView&, int) {
    return failures_left.fetch_sub(1) > 0 ? DeliveryOutcome::kRetry
                                          : DeliveryOutcome::kDelivered;
  });
  ASSERT_TRUE(router->SetSink(kEpA, sink).ok());
  ASSERT_TRUE(SendMsg(*router, {42}).ok());
  // Expected delays: 1, 2, 4, 4 (capped), 4 s.
  const int64_t delays[] = {1, 2, 4, 4, 4};
  for (int attempt = 1; attempt <= 5; ++attempt) {
    ASSERT_TRUE(sink->WaitForBatches(attempt, kWait));
    const int64_t expected =
        clock_.MonotonicMicros() + delays[attempt - 1] * 1'000'000;
    ASSERT_TRUE(WaitForMetrics(
        *router,
        [&](const RouterMetrics& m) {
          return FindEndpoint(m, kEpA)->next_retry_mono_micros == expected;
        }))
        << "attempt " << attempt << ": next retry "
        << FindEndpoint(router->GetMetrics(), kEpA)->next_retry_mono_micros
        << " != " << expected;
    clock_.AdvanceMicros(delays[attempt - 1] * 1'000'000);
    router->WakeExecutors();
  }
  ASSERT_TRUE(sink->WaitForBatches(6, kWait));
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  std::vector<ScriptedSink::Attempt> attempts = sink->attempts();
  ASSERT_EQ(attempts.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(attempts[i].sequence, 42u);
    EXPECT_EQ(attempts[i].attempt, i + 1);
  }
  RouterMetrics m = router->GetMetrics();
  EXPECT_EQ(FindEndpoint(m, kEpA)->retried, 5u);
  EXPECT_EQ(FindEndpoint(m, kEpA)->delivered, 1u);
  EXPECT_EQ(FindEndpoint(m, kEpA)->next_retry_mono_micros, 0);
}

TEST_F(RouterTest, JitteredBackoffStaysInBounds) {
  RouterOptions o = Options();
  o.retry.initial = absl::Seconds(1);
  o.retry.max = absl::Seconds(60);
  o.retry.jitter = 0.2;
  auto router = MakeWith(o, {Route("all", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  std::atomic<int> failures_left{3};
  auto sink = std::make_shared<ScriptedSink>([&](const MessageView&, int) {
    return failures_left.fetch_sub(1) > 0 ? DeliveryOutcome::kRetry
                                          : DeliveryOutcome::kDelivered;
  });
  ASSERT_TRUE(router->SetSink(kEpA, sink).ok());
  ASSERT_TRUE(SendMsg(*router, {1}).ok());
  for (int attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_TRUE(sink->WaitForBatches(attempt, kWait));
    const int64_t now = clock_.MonotonicMicros();
    int64_t next = 0;
    ASSERT_TRUE(WaitForMetrics(*router, [&](const RouterMetrics& m) {
      next = FindEndpoint(m, kEpA)->next_retry_mono_micros;
      return next > now;
    }));
    const double growth = (1 << (attempt - 1)) - 1;
    EXPECT_GE(next - now, static_cast<int64_t>(1e6 + growth * 0.8e6));
    EXPECT_LE(next - now, static_cast<int64_t>(1e6 + growth * 1.2e6));
    clock_.AdvanceMicros(next - now);
    router->WakeExecutors();
  }
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  EXPECT_EQ(sink->delivered().size(), 1u);
}

TEST_F(RouterTest, RetryKeepsOrderAndRejectsAreDroppedAndCounted) {
  RouterOptions o = Options();
  o.retry.initial = absl::Seconds(1);
  auto router = MakeWith(o, {Route("all", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  // No sink while queuing, so the first batch holds all five.
  for (uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(SendMsg(*router, {i}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  auto sink =
      std::make_shared<ScriptedSink>([](const MessageView& v, int attempt) {
        if (v.sequence_number() == 3) return DeliveryOutcome::kReject;
        if (attempt == 1 && v.sequence_number() >= 2) {
          return DeliveryOutcome::kRetry;
        }
        return DeliveryOutcome::kDelivered;
      });
  ASSERT_TRUE(router->SetSink(kEpA, sink).ok());
  ASSERT_TRUE(sink->WaitForBatches(1, kWait));
  ASSERT_TRUE(WaitForMetrics(*router, [](const RouterMetrics& m) {
    return FindEndpoint(m, kEpA)->next_retry_mono_micros != 0;
  }));
  clock_.AdvanceSeconds(1);
  router->WakeExecutors();
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  EXPECT_EQ(Seqs(sink->delivered()), (std::vector<uint64_t>{1, 2, 4, 5}));
  RouterMetrics m = router->GetMetrics();
  EXPECT_EQ(FindEndpoint(m, kEpA)->rejected, 1u);
  EXPECT_EQ(FindEndpoint(m, kEpA)->retried, 3u);  // 2, 4, 5
  EXPECT_EQ(FindEndpoint(m, kEpA)->delivered, 4u);
}

TEST_F(RouterTest, TtlIsCheckedAgainBeforeEveryRetry) {
  RouterOptions o = Options();
  o.retry.initial = absl::Seconds(30);
  o.retry.max = absl::Seconds(30);
  auto router = MakeWith(o, {Route("all", "FROM /* " + IntoA())}, /*ttl=*/20);
  ASSERT_NE(router, nullptr);
  auto sink = std::make_shared<ScriptedSink>(
      [](const MessageView&, int) { return DeliveryOutcome::kRetry; });
  ASSERT_TRUE(router->SetSink(kEpA, sink).ok());
  ASSERT_TRUE(SendMsg(*router, {1}).ok());
  ASSERT_TRUE(sink->WaitForBatches(1, kWait));
  ASSERT_TRUE(WaitForMetrics(*router, [](const RouterMetrics& m) {
    return FindEndpoint(m, kEpA)->next_retry_mono_micros != 0;
  }));
  clock_.AdvanceSeconds(30);
  router->WakeExecutors();
  ASSERT_TRUE(WaitForMetrics(*router, [](const RouterMetrics& m) {
    return FindEndpoint(m, kEpA)->expired == 1;
  }));
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  EXPECT_EQ(sink->batches(), 1u);  // never re-sent after its TTL
}

TEST_F(RouterTest, DeadEndpointDropsBatchesUntilRevived) {
  RouterOptions o = Options();
  o.retry.initial = absl::Seconds(1);
  o.retry.max_attempts = 2;
  o.dead_revive_period = absl::Seconds(30);
  auto router = MakeWith(o, {Route("all", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  std::atomic<bool> healthy{false};
  auto sink = std::make_shared<ScriptedSink>([&](const MessageView&, int) {
    return healthy.load() ? DeliveryOutcome::kDelivered
                          : DeliveryOutcome::kRetry;
  });
  ASSERT_TRUE(router->SetSink(kEpA, sink).ok());
  ASSERT_TRUE(SendMsg(*router, {1}).ok());
  ASSERT_TRUE(sink->WaitForBatches(1, kWait));
  ASSERT_TRUE(WaitForMetrics(*router, [](const RouterMetrics& m) {
    return FindEndpoint(m, kEpA)->next_retry_mono_micros != 0;
  }));
  clock_.AdvanceSeconds(1);
  router->WakeExecutors();
  ASSERT_TRUE(WaitForMetrics(*router, [](const RouterMetrics& m) {
    return FindEndpoint(m, kEpA)->dead;
  }));
  healthy.store(true);
  ASSERT_TRUE(SendMsg(*router, {2}).ok());  // dropped: still dead
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  RouterMetrics m = router->GetMetrics();
  EXPECT_EQ(FindEndpoint(m, kEpA)->dropped_dead, 2u);
  clock_.AdvanceSeconds(30);
  ASSERT_TRUE(SendMsg(*router, {3}).ok());  // revived
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  EXPECT_EQ(Seqs(sink->delivered()), (std::vector<uint64_t>{3}));
  EXPECT_FALSE(FindEndpoint(router->GetMetrics(), kEpA)->dead);
}

TEST_F(RouterTest, SlowEndpointDoesNotHoldBackOthers) {
  auto router = Make(
      {Route("toA", "FROM /* " + IntoA()), Route("toB", "FROM /* " + IntoB())});
  ASSERT_NE(router, nullptr);
  auto stalled = std::make_shared<StallingSink>();
  auto b = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, stalled).ok());
  ASSERT_TRUE(router->SetSink(kEpB, b).ok());
  for (uint64_t i = 0; i < 500; ++i) ASSERT_TRUE(SendMsg(*router, {i}).ok());
  ASSERT_TRUE(b->WaitForCount(500, kWait));
  EXPECT_TRUE(stalled->WaitForHeld(1, kWait));
  EXPECT_EQ(stalled->delivered(), 0u);
  stalled->Release(/*stay_open=*/true);
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  EXPECT_EQ(stalled->delivered(), 500u);
}

TEST_F(RouterTest, FullLaneDropsAreCountedNotSilent) {
  RouterOptions o = Options();
  o.endpoint_queue_capacity = 4;
  o.endpoint_batch_size = 1;
  auto router = MakeWith(o, {Route("all", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(SendMsg(*router, {i}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  RouterMetrics m = router->GetMetrics();
  const EndpointMetrics* e = FindEndpoint(m, kEpA);
  // Without a sink nothing leaves the lane: 4 fit, 6 are dropped.
  EXPECT_EQ(e->enqueued, 4u);
  EXPECT_EQ(e->dropped_queue_full, 6u);
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  EXPECT_EQ(a->count(), e->enqueued);
}

TEST_F(RouterTest, InvalidUpdateIsRejectedWholeAndOldRoutesStay) {
  auto router = Make({Route("toA", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  absl::Status s = router->UpdateRoutes(
      {Route("good", "FROM /* " + IntoB()),
       Route("bad1", "FROM /* WHERE a = INTO $upstream"),
       Route("bad2", "FROM /* INTO BrokeredEndpoint(\"/x\")")},
      -1);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("bad1"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("bad2"), absl::string_view::npos) << s;
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(SendMsg(*router, {1}).ok());
  ASSERT_TRUE(a->WaitForCount(1, kWait));
  EXPECT_EQ(router->GetMetrics().route_updates, 0u);
}

TEST_F(RouterTest, UpdateSplitsTrafficExactlyAtTheCall) {
  auto router = Make({Route("r", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  auto a = std::make_shared<CollectingSink>();
  auto b = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(router->SetSink(kEpB, b).ok());
  for (int round = 0; round < 20; ++round) {
    for (uint64_t i = 0; i < 50; ++i) {
      ASSERT_TRUE(SendMsg(*router, {round * 100 + i}).ok());
    }
    const bool to_b = round % 2 == 0;
    ASSERT_TRUE(
        router
            ->UpdateRoutes({Route("r", absl::StrCat("FROM /* ",
                                                    to_b ? IntoB() : IntoA()))},
                           -1)
            .ok());
  }
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  // Round r's messages went to A when r is even (table before the update of
  // round r routes to A for r = 0, 2, ...).
  std::vector<uint64_t> want_a, want_b;
  for (int round = 0; round < 20; ++round) {
    for (uint64_t i = 0; i < 50; ++i) {
      (round % 2 == 0 ? want_a : want_b).push_back(round * 100 + i);
    }
  }
  EXPECT_EQ(Seqs(a->messages()), want_a);
  EXPECT_EQ(Seqs(b->messages()), want_b);
  EXPECT_EQ(router->GetMetrics().route_updates, 20u);
}

TEST_F(RouterTest, ReloadUnderLoadLosesAndDuplicatesNothing) {
  auto router = Make({Route("r1", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  constexpr int kProducers = 3;
  constexpr uint64_t kPer = 2000;
  std::atomic<bool> go{true};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPer; ++i) {
        Msg m{p * kPer + i, absl::StrCat("m", p), "o", {}};
        ASSERT_TRUE(SendMsg(*router, m).ok());
      }
    });
  }
  int updates = 0;
  while (a->count() < kProducers * kPer / 2 && updates < 200) {
    // Alternate between two equivalent tables (one with dedup twins).
    std::vector<query::RouteSpec> routes =
        updates % 2 == 0
            ? std::vector<query::RouteSpec>{Route("r1", "FROM /* " + IntoA()),
                                            Route("twin",
                                                  "FROM /messages/* " + IntoA(),
                                                  3)}
            : std::vector<query::RouteSpec>{Route("r1", "FROM /* " + IntoA())};
    ASSERT_TRUE(router->UpdateRoutes(routes, -1).ok());
    ++updates;
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  std::vector<uint64_t> seqs = Seqs(a->messages());
  std::set<uint64_t> unique(seqs.begin(), seqs.end());
  EXPECT_EQ(seqs.size(), kProducers * kPer);
  EXPECT_EQ(unique.size(), kProducers * kPer);
  EXPECT_GT(updates, 0);
}

TEST_F(RouterTest, RemovedEndpointDropRule) {
  RouterOptions o = Options();
  o.removed_endpoint_rule = RouterOptions::RemovedEndpointRule::kDrop;
  auto router = MakeWith(o, {Route("toA", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(SendMsg(*router, {i}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  ASSERT_TRUE(
      router->UpdateRoutes({Route("toB", "FROM /* " + IntoB())}, -1).ok());
  ASSERT_TRUE(WaitForMetrics(*router, [](const RouterMetrics& m) {
    return FindEndpoint(m, kEpA)->dropped_removed == 5;
  }));
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  EXPECT_EQ(a->count(), 0u);
}

TEST_F(RouterTest, RemovedEndpointDrainRule) {
  auto router = Make({Route("toA", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(SendMsg(*router, {i}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  ASSERT_TRUE(
      router->UpdateRoutes({Route("toB", "FROM /* " + IntoB())}, -1).ok());
  ASSERT_TRUE(SendMsg(*router, {5}).ok());
  auto a = std::make_shared<CollectingSink>();
  auto b = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(router->SetSink(kEpB, b).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  EXPECT_EQ(Seqs(a->messages()), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(Seqs(b->messages()), (std::vector<uint64_t>{5}));
}

TEST_F(RouterTest, CloseDrainsQueuedMessages) {
  auto router = Make({Route("toA", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  for (uint64_t i = 0; i < 1000; ++i) ASSERT_TRUE(SendMsg(*router, {i}).ok());
  ASSERT_TRUE(router->Close().ok());
  EXPECT_EQ(a->count(), 1000u);
  EXPECT_EQ(SendMsg(*router, {1}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(router->Close().ok());  // idempotent
}

TEST_F(RouterTest, CloseWithoutDrainCountsWhatIsLeft) {
  RouterOptions o = Options();
  o.drain_on_close = false;
  auto router = MakeWith(o, {Route("toA", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  for (uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(SendMsg(*router, {i}).ok());
  ASSERT_TRUE(router->Close().ok());
  RouterMetrics m = router->GetMetrics();
  EXPECT_EQ(m.received, 100u);
  EXPECT_EQ(FindEndpoint(m, kEpA)->dropped_close, 100u);
  EXPECT_EQ(FindEndpoint(m, kEpA)->queue_depth, 0u);
}

TEST_F(RouterTest, RejectsInvalidBuffersAndBadOptions) {
  auto router = Make({Route("toA", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  alignas(8) uint8_t junk[64] = {1, 2, 3};
  EXPECT_EQ(router->Send(absl::MakeConstSpan(junk)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router->GetMetrics().rejected_invalid, 1u);
  RouterOptions bad = Options();
  bad.dispatch_workers = 0;
  EXPECT_EQ(Router::Create(bad, {}, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = Options();
  bad.retry.jitter = 1.5;
  EXPECT_EQ(Router::Create(bad, {}, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RouterTest, PrometheusTextHasEveryFamily) {
  auto router = Make({Route("to\"A", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  auto a = std::make_shared<CollectingSink>();
  ASSERT_TRUE(router->SetSink(kEpA, a).ok());
  ASSERT_TRUE(SendMsg(*router, {1}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  const std::string text = router->PrometheusText();
  for (const char* want : {
           "edgeroute_messages_received_total 1\n",
           "edgeroute_messages_orphaned_total 0\n",
           "edgeroute_route_matched_total{route=\"to\\\"A\",endpoint=\"DEV/a/"
           "in\"} 1\n",
           "edgeroute_endpoint_delivered_total{endpoint=\"DEV/a/in\"} 1\n",
           "edgeroute_endpoint_dropped_total{endpoint=\"DEV/a/in\",reason="
           "\"queue_full\"} 0\n",
           "edgeroute_endpoint_queue_depth{endpoint=\"DEV/a/in\"} 0\n",
           "# TYPE edgeroute_endpoint_delivery_latency_seconds histogram\n",
           "edgeroute_endpoint_delivery_latency_seconds_bucket{endpoint=\"DEV/"
           "a/in\",le=\"+Inf\"} 1\n",
           "edgeroute_endpoint_delivery_latency_seconds_count{endpoint=\"DEV/"
           "a/in\"} 1\n",
       }) {
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  }
}

TEST_F(RouterTest, QueueDepthAndOldestAgeWhileWaitingForASink) {
  auto router = Make({Route("toA", "FROM /* " + IntoA())});
  ASSERT_NE(router, nullptr);
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(SendMsg(*router, {i}).ok());
  ASSERT_TRUE(router->WaitIdle(kWait).ok());
  clock_.AdvanceSeconds(7);
  ASSERT_TRUE(WaitForMetrics(*router, [](const RouterMetrics& m) {
    const EndpointMetrics* e = FindEndpoint(m, kEpA);
    return e->queue_depth == 3 && e->oldest_message_age_micros == 7'000'000;
  })) << router->PrometheusText();
}

}  // namespace
}  // namespace edgeroute::router

namespace edgeroute::router {
namespace {

// The worker a message goes to follows its source, compared ignoring ASCII
// case: every length (whole words and tails), letters only.
TEST(HashSourceIgnoreCaseTest, FoldsAsciiLettersOnly) {
  using internal::HashSourceIgnoreCase;
  std::string lower, upper;
  for (int len = 0; len <= 40; ++len) {
    EXPECT_EQ(HashSourceIgnoreCase(lower), HashSourceIgnoreCase(upper))
        << lower;
    const char c = char('a' + len % 26);
    lower.push_back(c);
    upper.push_back(char(c - 32));
  }
  EXPECT_EQ(HashSourceIgnoreCase("/messages/modules/Filter/outputs/OUT"),
            HashSourceIgnoreCase("/messages/modules/filter/outputs/out"));
  // Neighbours of the letters, and bytes past ASCII, are not folded.
  for (const auto& pair : std::vector<std::pair<std::string, std::string>>{
           {"@", "`"},
           {"[", "{"},
           {"/m@", "/m`"},
           {"\xC1", "\xE1"},
           {"/messages/modules/\xC9", "/messages/modules/\xE9"},
           {"ab", std::string("ab\0", 3)}}) {
    EXPECT_NE(HashSourceIgnoreCase(pair.first),
              HashSourceIgnoreCase(pair.second))
        << pair.first;
  }
  // The low bit chooses between two workers: both occur.
  int odd = 0;
  for (int m = 0; m < 64; ++m) {
    odd += HashSourceIgnoreCase(
               absl::StrCat("/messages/modules/m", m, "/outputs/out")) &
           1;
  }
  EXPECT_GT(odd, 16);
  EXPECT_LT(odd, 48);
}

}  // namespace
}  // namespace edgeroute::router
