// Unit tests of the endpoint executor (endpoint.h) on its own, in memory
// mode: lanes drained by priority in batches, retry with backoff on an
// injected clock, TTL, dead/revive, full lanes, rejection, removal and
// close. Time is a FakeClock; tests wait for events with a bounded wait.

#include "router/internal/endpoint.h"

#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "router/internal/executor_pool.h"
#include "router/internal/message_node.h"
#include "router/sinks.h"

namespace edgeroute::router::internal {
namespace {

constexpr absl::Duration kWait = absl::Seconds(20);

// Waits (in real time, bounded) until `done` holds.
bool WaitFor(const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + kWait;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// A message whose sequence number identifies it, as the router would queue
// it (one reference, admitted at `admit_wall_us`).
MessageNode* NewNode(uint64_t seq, int64_t admit_wall_us = 0) {
  MessageBuilder builder;
  builder.SetBody("{}");
  builder.SetSequenceNumber(seq);
  MessageNode* node = MessageNode::New(builder.Finish());
  node->refs.store(1, std::memory_order_relaxed);
  node->admit_wall_us = admit_wall_us;
  return node;
}

QueuedRef Ref(MessageNode* node, int64_t expires_wall_us = INT64_MAX) {
  return QueuedRef{node, expires_wall_us};
}

// The (sequence number, attempt) of every message a ScriptedSink saw.
std::vector<std::pair<uint64_t, int>> Attempts(const ScriptedSink& sink) {
  std::vector<std::pair<uint64_t, int>> out;
  for (const ScriptedSink::Attempt& a : sink.attempts()) {
    out.emplace_back(a.sequence, a.attempt);
  }
  return out;
}

class EndpointTest : public ::testing::Test {
 protected:
  EndpointConfig Config() {
    EndpointConfig config;
    config.batch_size = 2;
    config.lane_capacity = 16;
    config.retry.initial = absl::Seconds(1);
    config.retry.max = absl::Seconds(60);
    config.retry.jitter = 0;  // exact backoff times
    config.revive_period_us = 30'000'000;
    config.clock = &clock_;
    config.pool = &pool_;
    return config;
  }

  void SetUp() override { pool_.Start(); }

  // Pushes `node` to lane `bucket` and wakes the executor.
  static void Push(Endpoint* ep, int bucket, MessageNode* node,
                   int64_t expires_wall_us = INT64_MAX) {
    ASSERT_TRUE(ep->Push(bucket, Ref(node, expires_wall_us)));
    ep->NotifyWork();
  }

  static void Close(Endpoint* ep) {
    ep->BeginClose(/*drain=*/true, absl::Now() + kWait);
    ep->Join();
  }

  FakeClock clock_;
  // One thread: every test also shows that an endpoint needs none of its own.
  ExecutorPool pool_{1, &clock_};
};

TEST_F(EndpointTest, DrainsTheHighestPriorityFirstInBatchesInQueueOrder) {
  Endpoint ep("ep", Config());
  ASSERT_TRUE(ep.EnsureLane(5).ok());
  ASSERT_TRUE(ep.EnsureLane(0).ok());
  for (uint64_t seq : {1, 2, 3}) Push(&ep, 5, NewNode(seq));
  for (uint64_t seq : {10, 11}) Push(&ep, 0, NewNode(seq));
  auto sink = std::make_shared<CollectingSink>();
  ep.SetSink(sink);
  ep.Start();
  ASSERT_TRUE(WaitFor([&] { return ep.Metrics().delivered == 5; }));
  EXPECT_TRUE(WaitFor([&] { return ep.Idle(); }));
  Close(&ep);
  // Priority 0 first, then priority 5 in queue order, two at a time.
  const std::vector<CollectedMessage> got = sink->messages();
  ASSERT_EQ(got.size(), 5u);
  const uint64_t seqs[] = {10, 11, 1, 2, 3};
  const int priorities[] = {0, 0, 5, 5, 5};
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].sequence_number(), seqs[i]) << i;
    EXPECT_EQ(got[i].priority, priorities[i]) << i;
    EXPECT_EQ(got[i].attempt, 1) << i;
  }
  EXPECT_EQ(sink->batches(), 3u);
  const EndpointMetrics m = ep.Metrics();
  EXPECT_EQ(m.enqueued, 5u);
  EXPECT_EQ(m.queue_depth, 0u);
  EXPECT_EQ(m.retried, 0u);
}

TEST_F(EndpointTest, RetriesOnlyWhenTheBackoffHasPassedOnTheClock) {
  Endpoint ep("ep", Config());
  ASSERT_TRUE(ep.EnsureLane(kDefaultBucket).ok());
  auto sink =
      std::make_shared<ScriptedSink>([](const MessageView& m, int attempt) {
        return m.sequence_number() == 2 && attempt == 1
                   ? DeliveryOutcome::kRetry
                   : DeliveryOutcome::kDelivered;
      });
  // Both messages are queued before the sink is set (SetSink schedules the
  // executor), so that they go out as one batch.
  Push(&ep, kDefaultBucket, NewNode(1));
  Push(&ep, kDefaultBucket, NewNode(2));
  const int64_t start = clock_.MonotonicMicros();
  ep.SetSink(sink);
  ep.Start();
  ASSERT_TRUE(WaitFor([&] { return ep.NextRetryMonoMicros() != 0; }));
  EXPECT_EQ(ep.NextRetryMonoMicros(), start + 1'000'000);  // 1 s, no jitter
  EXPECT_EQ(ep.Metrics().delivered, 1u);
  // The clock has not moved: however often the executor wakes, no retry.
  for (int i = 0; i < 20; ++i) {
    ep.Wake();
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_EQ(sink->batches(), 1u);
  EXPECT_FALSE(ep.Idle());
  clock_.AdvanceMicros(1'000'000);
  ep.Wake();
  ASSERT_TRUE(WaitFor([&] { return ep.Metrics().delivered == 2; }));
  Close(&ep);
  EXPECT_EQ(sink->batches(), 2u);
  EXPECT_EQ(Attempts(*sink),
            (std::vector<std::pair<uint64_t, int>>{{1, 1}, {2, 1}, {2, 2}}));
  EXPECT_EQ(ep.Metrics().retried, 1u);
  EXPECT_EQ(ep.NextRetryMonoMicros(), 0);
}

TEST_F(EndpointTest, MessagesPastTheirTtlAreNeverDelivered) {
  Endpoint ep("ep", Config());
  ASSERT_TRUE(ep.EnsureLane(kDefaultBucket).ok());
  const int64_t now = clock_.NowMicros();
  Push(&ep, kDefaultBucket, NewNode(1, now), now + 1'000'000);
  Push(&ep, kDefaultBucket, NewNode(2, now));  // never expires
  ep.Start();                                  // no sink yet: they wait
  clock_.AdvanceSeconds(2);
  auto sink = std::make_shared<CollectingSink>();
  ep.SetSink(sink);
  ASSERT_TRUE(WaitFor([&] { return ep.Metrics().delivered == 1; }));
  Close(&ep);
  EXPECT_EQ(ep.Metrics().expired, 1u);
  const std::vector<CollectedMessage> got = sink->messages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].sequence_number(), 2u);
}

TEST_F(EndpointTest, ExhaustedRetriesKillTheEndpointUntilTheRevivePeriod) {
  EndpointConfig config = Config();
  config.retry.max_attempts = 1;
  Endpoint ep("ep", config);
  ASSERT_TRUE(ep.EnsureLane(kDefaultBucket).ok());
  auto sink = std::make_shared<ScriptedSink>([](const MessageView& m, int) {
    return m.sequence_number() == 1 ? DeliveryOutcome::kRetry
                                    : DeliveryOutcome::kDelivered;
  });
  ep.SetSink(sink);
  ep.Start();
  Push(&ep, kDefaultBucket, NewNode(1));
  ASSERT_TRUE(WaitFor([&] { return ep.Metrics().dead; }));
  EXPECT_EQ(ep.Metrics().dropped_dead, 1u);
  // While dead, batches are dropped without reaching the sink.
  Push(&ep, kDefaultBucket, NewNode(2));
  ASSERT_TRUE(WaitFor([&] { return ep.Metrics().dropped_dead == 2; }));
  EXPECT_EQ(sink->batches(), 1u);
  // After the revive period it lives again.
  clock_.AdvanceMicros(30'000'000);
  Push(&ep, kDefaultBucket, NewNode(3));
  ASSERT_TRUE(WaitFor([&] { return ep.Metrics().delivered == 1; }));
  EXPECT_FALSE(ep.Metrics().dead);
  Close(&ep);
  EXPECT_EQ(Attempts(*sink),
            (std::vector<std::pair<uint64_t, int>>{{1, 1}, {3, 1}}));
}

TEST_F(EndpointTest, AFullLaneRefusesAndCounts) {
  EndpointConfig config = Config();
  config.lane_capacity = 4;
  Endpoint ep("ep", config);
  ASSERT_TRUE(ep.EnsureLane(3).ok());
  for (uint64_t seq = 1; seq <= 4; ++seq) {
    ASSERT_TRUE(ep.Push(3, Ref(NewNode(seq))));
  }
  MessageNode* refused = NewNode(5);
  EXPECT_FALSE(ep.Push(3, Ref(refused)));
  MessageNode::Unref(refused);  // the caller still owns a refused reference
  // A lane that does not exist refuses too.
  MessageNode* no_lane = NewNode(6);
  EXPECT_FALSE(ep.Push(7, Ref(no_lane)));
  MessageNode::Unref(no_lane);
  const EndpointMetrics m = ep.Metrics();
  EXPECT_EQ(m.dropped_queue_full, 2u);
  EXPECT_EQ(m.enqueued, 4u);
  EXPECT_EQ(m.queue_depth, 4u);
  // Never started: the destructor releases what the lane holds.
}

TEST_F(EndpointTest, RejectionsAndRemovalAreCounted) {
  Endpoint ep("ep", Config());
  ASSERT_TRUE(ep.EnsureLane(kDefaultBucket).ok());
  auto sink = std::make_shared<ScriptedSink>([](const MessageView& m, int) {
    return m.sequence_number() == 1 ? DeliveryOutcome::kReject
                                    : DeliveryOutcome::kDelivered;
  });
  ep.SetSink(sink);
  ep.Start();
  Push(&ep, kDefaultBucket, NewNode(1));
  ASSERT_TRUE(WaitFor([&] { return ep.Metrics().rejected == 1; }));
  ep.SetRemoved(true);
  Push(&ep, kDefaultBucket, NewNode(2));
  ASSERT_TRUE(WaitFor([&] { return ep.Metrics().dropped_removed == 1; }));
  EXPECT_EQ(ep.Metrics().delivered, 0u);
  EXPECT_EQ(sink->batches(), 1u);
  Close(&ep);
}

TEST_F(EndpointTest, CloseWithoutDrainDropsWhatIsQueued) {
  Endpoint ep("ep", Config());
  ASSERT_TRUE(ep.EnsureLane(kDefaultBucket).ok());
  for (uint64_t seq : {1, 2, 3}) Push(&ep, kDefaultBucket, NewNode(seq));
  ep.Start();  // no sink: nothing can be delivered
  ep.BeginClose(/*drain=*/false, absl::Now());
  ep.Join();
  const EndpointMetrics m = ep.Metrics();
  EXPECT_EQ(m.dropped_close, 3u);
  EXPECT_EQ(m.delivered, 0u);
  EXPECT_EQ(m.queue_depth, 0u);
}

}  // namespace
}  // namespace edgeroute::router::internal
