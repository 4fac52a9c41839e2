// Tests of the lock-free ring, the event count, the doorbell, the node
// cache and the backoff arithmetic.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "router/internal/backoff.h"
#include "router/internal/event_count.h"
#include "router/internal/mpsc_ring.h"
#include "router/internal/node_cache.h"

namespace edgeroute::router::internal {
namespace {

using Ring = MpscRing<uint64_t>;

TEST(MpscRingTest, FifoFullAndEmpty) {
  Ring ring(3);  // rounded up to 4
  EXPECT_EQ(ring.capacity(), 4u);
  uint64_t v = 0;
  EXPECT_FALSE(ring.TryPop(&v));
  for (uint64_t i = 1; i <= 4; ++i) {
    EXPECT_EQ(ring.TryPush(i), Ring::PushResult::kOk);
  }
  EXPECT_EQ(ring.TryPush(5), Ring::PushResult::kFull);
  EXPECT_EQ(ring.SizeGuess(), 4u);
  ASSERT_TRUE(ring.Front(&v));
  EXPECT_EQ(v, 1u);
  ASSERT_TRUE(ring.TryPop(&v));
  EXPECT_EQ(v, 1u);
  EXPECT_EQ(ring.TryPush(5), Ring::PushResult::kOk);
  uint64_t out[8];
  ASSERT_EQ(ring.PopBatch(out, 8), 4u);
  EXPECT_EQ(out[0], 2u);
  EXPECT_EQ(out[3], 5u);
  EXPECT_EQ(ring.Pushed(), 5u);
  EXPECT_EQ(ring.Popped(), 5u);
  EXPECT_FALSE(ring.TryPop(&v));
}

TEST(MpscRingTest, CloseRefusesLaterPushesAndKeepsEarlierOnes) {
  Ring ring(8);
  EXPECT_EQ(ring.TryPush(7), Ring::PushResult::kOk);
  ring.Close();
  EXPECT_TRUE(ring.closed());
  EXPECT_EQ(ring.TryPush(8), Ring::PushResult::kClosed);
  EXPECT_EQ(ring.Pushed(), 1u);
  uint64_t v = 0;
  ASSERT_TRUE(ring.TryPop(&v));
  EXPECT_EQ(v, 7u);
  EXPECT_EQ(ring.Popped(), ring.Pushed());
}

// Several producers push (producer << 32 | sequence); the consumer checks
// that every value arrives exactly once and in order per producer.
TEST(MpscRingTest, MultiProducerChecksum) {
  constexpr int kProducers = 4;
  constexpr uint64_t kPerProducer = 20000;
  Ring ring(64);
  EventCount not_full;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        const uint64_t v = (static_cast<uint64_t>(p) << 32) | i;
        while (ring.TryPush(v) != Ring::PushResult::kOk) {
          std::this_thread::yield();
        }
      }
    });
  }
  std::vector<uint64_t> next(kProducers, 0);
  uint64_t sum = 0, expected_sum = 0;
  for (int p = 0; p < kProducers; ++p) {
    for (uint64_t i = 0; i < kPerProducer; ++i) {
      expected_sum += (static_cast<uint64_t>(p) << 32) | i;
    }
  }
  uint64_t received = 0;
  while (received < kProducers * kPerProducer) {
    uint64_t v;
    if (!ring.TryPop(&v)) {
      std::this_thread::yield();
      continue;
    }
    const int p = static_cast<int>(v >> 32);
    ASSERT_LT(p, kProducers);
    ASSERT_EQ(v & 0xffffffffu, next[p]) << "out of order for producer " << p;
    ++next[p];
    sum += v;
    ++received;
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(sum, expected_sum);
  uint64_t v;
  EXPECT_FALSE(ring.TryPop(&v));
}

// The waiter is asleep in Wait (no timeout) when the flag is set: only
// Notify can end that sleep, and the waiter must then see the flag.
TEST(EventCountTest, NotifyWakesWaiter) {
  EventCount ec;
  std::atomic<bool> flag{false};
  std::atomic<bool> waiting{false};
  std::atomic<int> sleeps{0};
  std::atomic<bool> saw_flag{false};
  std::thread waiter([&] {
    while (true) {
      const uint32_t key = ec.PrepareWait();
      if (flag.load()) {
        ec.CancelWait();
        saw_flag.store(true);
        return;
      }
      sleeps.fetch_add(1);
      waiting.store(true);
      ec.Wait(key, -1);  // no timeout: only Notify ends this
    }
  });
  while (!waiting.load()) std::this_thread::yield();
  flag.store(true);
  ec.Notify();
  waiter.join();
  EXPECT_TRUE(saw_flag.load());
  EXPECT_GE(sleeps.load(), 1);  // it did go to sleep before the flag was set
}

// Two threads hand a turn back and forth 2,000 times through one event
// count, each waiting with a 10 s timeout: a single lost wake-up would cost
// 10 s, so the whole exchange finishing quickly shows every Notify arrived.
TEST(EventCountTest, NoLostWakeUpsInAPingPong) {
  constexpr uint64_t kTurns = 2000;
  EventCount ec;
  std::atomic<uint64_t> turn{0};
  auto player = [&](uint64_t parity) {
    for (;;) {
      uint64_t t = turn.load();
      while (t < kTurns && t % 2 != parity) {
        const uint32_t key = ec.PrepareWait();
        t = turn.load();
        if (t >= kTurns || t % 2 == parity) {
          ec.CancelWait();
          break;
        }
        ec.Wait(key, 10'000'000);
        t = turn.load();
      }
      if (t >= kTurns) return;
      turn.store(t + 1);
      ec.Notify();
    }
  };
  const auto start = std::chrono::steady_clock::now();
  std::thread even(player, 0), odd(player, 1);
  even.join();
  odd.join();
  EXPECT_EQ(turn.load(), kTurns);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(9));
}

// As EventCountTest.NotifyWakesWaiter, for the Doorbell.
TEST(DoorbellTest, NotifyWakesWaiter) {
  Doorbell bell;
  std::atomic<bool> flag{false};
  std::atomic<bool> waiting{false};
  std::atomic<int> sleeps{0};
  std::atomic<bool> saw_flag{false};
  std::thread waiter([&] {
    while (true) {
      const uint32_t key = bell.PrepareWait();
      if (flag.load()) {
        bell.CancelWait(key);
        saw_flag.store(true);
        return;
      }
      sleeps.fetch_add(1);
      waiting.store(true);
      bell.Wait(key, -1);  // no timeout: only Notify ends this
    }
  });
  while (!waiting.load()) std::this_thread::yield();
  flag.store(true);
  bell.Notify();
  waiter.join();
  EXPECT_TRUE(saw_flag.load());
  EXPECT_GE(sleeps.load(), 1);
}

// One Notify wakes every thread asleep without a timeout.
TEST(DoorbellTest, NotifyWakesEveryWaiter) {
  constexpr int kWaiters = 4;
  Doorbell bell;
  std::atomic<bool> flag{false};
  std::atomic<int> asleep{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      bool counted = false;
      for (;;) {
        const uint32_t key = bell.PrepareWait();
        if (flag.load()) {
          bell.CancelWait(key);
          return;
        }
        if (!counted) asleep.fetch_add(1);
        counted = true;
        bell.Wait(key, -1);
      }
    });
  }
  while (asleep.load() < kWaiters) std::this_thread::yield();
  flag.store(true);
  bell.Notify();
  for (auto& t : waiters) t.join();
}

// The point of the Doorbell: a registered waiter that has not left yet (a
// woken thread not running again) is counted off by the first Notify;
// later ones find nobody and leave the epoch alone. The epoch is the key a
// new PrepareWait returns.
TEST(DoorbellTest, OneEpochStepPerRoundOfWaits) {
  Doorbell bell;
  const uint32_t key = bell.PrepareWait();
  for (int i = 0; i < 100; ++i) bell.Notify();
  bell.Wait(key, 0);  // returns at once: the epoch moved
  const uint32_t next = bell.PrepareWait();
  EXPECT_EQ(next, key + 1);
  bell.CancelWait(next);
  // A wait that times out leaves, so Notify has nobody to count off.
  const uint32_t k2 = bell.PrepareWait();
  bell.Wait(k2, 1000);
  bell.Notify();
  const uint32_t k3 = bell.PrepareWait();
  EXPECT_EQ(k3, k2);
  bell.CancelWait(k3);
  bell.Notify();
  EXPECT_EQ(bell.PrepareWait(), k2);
}

// As EventCountTest.NoLostWakeUpsInAPingPong, for the Doorbell.
TEST(DoorbellTest, NoLostWakeUpsInAPingPong) {
  constexpr uint64_t kTurns = 2000;
  Doorbell bell;
  std::atomic<uint64_t> turn{0};
  auto player = [&](uint64_t parity) {
    for (;;) {
      uint64_t t = turn.load();
      while (t < kTurns && t % 2 != parity) {
        const uint32_t key = bell.PrepareWait();
        t = turn.load();
        if (t >= kTurns || t % 2 == parity) {
          bell.CancelWait(key);
          break;
        }
        bell.Wait(key, 10'000'000);
        t = turn.load();
      }
      if (t >= kTurns) return;
      turn.store(t + 1);
      bell.Notify();
    }
  };
  const auto start = std::chrono::steady_clock::now();
  std::thread even(player, 0), odd(player, 1);
  even.join();
  odd.join();
  EXPECT_EQ(turn.load(), kTurns);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(9));
}

// The admission pattern: a producer's ring push (a seq_cst claim) is the
// condition, announced with NotifyAfterSeqCstRmw (no fence of its own); the
// consumer sleeps on the doorbell whenever the ring is empty, with a 10 s
// timeout. The producer waits for each value to be taken before the next,
// so the consumer goes to sleep about once per value: one lost wake-up
// would cost 10 s.
TEST(DoorbellTest, RingPushWakesSleepingConsumer) {
  constexpr uint64_t kValues = 2000;
  Ring ring(64);
  Doorbell bell;
  std::atomic<uint64_t> taken{0};
  std::thread consumer([&] {
    uint64_t v;
    while (taken.load() < kValues) {
      if (ring.TryPop(&v)) {
        taken.fetch_add(1);
        continue;
      }
      const uint32_t key = bell.PrepareWait();
      if (ring.SizeGuess() != 0) {
        bell.CancelWait(key);
        continue;
      }
      bell.Wait(key, 10'000'000);
    }
  });
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < kValues; ++i) {
    ASSERT_EQ(ring.TryPush(i), Ring::PushResult::kOk);
    bell.NotifyAfterSeqCstRmw();
    while (taken.load() <= i) std::this_thread::yield();
  }
  consumer.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(9));
}

TEST(NodeCacheTest, ClassesCoverEverySize) {
  for (size_t bytes = 1; bytes <= NodeCache::kMaxBlock; ++bytes) {
    const int c = NodeCache::ClassOf(bytes);
    ASSERT_GE(c, 0);
    ASSERT_LT(c, NodeCache::kClasses);
    ASSERT_GE(NodeCache::ClassBytes(c), bytes);
    if (c > 0) {
      ASSERT_LT(NodeCache::ClassBytes(c - 1), bytes);
    }
  }
  EXPECT_EQ(NodeCache::ClassOf(NodeCache::kMaxBlock + 1), -1);
}

#ifndef EDGEROUTE_NODE_CACHE_OFF
// A released block is the next one allocated in its class on that thread.
TEST(NodeCacheTest, ReusesReleasedBlocks) {
  void* a = NodeCache::Allocate(300);
  NodeCache::Release(a, 300);
  EXPECT_EQ(NodeCache::Allocate(290), a);  // same class (257-320)
  void* b = NodeCache::Allocate(300);
  EXPECT_NE(b, a);
  NodeCache::Release(b, 300);
  NodeCache::Release(a, 300);
}

// Blocks released on another thread come back to the allocating thread
// through the shared list: after the other thread released (and so handed
// over) many blocks, this thread's allocations reuse them.
TEST(NodeCacheTest, BlocksReleasedElsewhereComeBack) {
  constexpr size_t kBytes = 2000;
  constexpr int kBlocks = 1000;
  std::vector<void*> blocks;
  for (int i = 0; i < kBlocks; ++i)
    blocks.push_back(NodeCache::Allocate(kBytes));
  std::thread([&] {
    for (void* p : blocks) NodeCache::Release(p, kBytes);
  }).join();  // the thread's own list goes to the shared list on exit
  std::set<void*> released(blocks.begin(), blocks.end());
  int reused = 0;
  std::vector<void*> again;
  for (int i = 0; i < kBlocks; ++i) {
    again.push_back(NodeCache::Allocate(kBytes));
    if (released.count(again.back()) != 0) ++reused;
  }
  EXPECT_EQ(reused, kBlocks);
  // Blocks another thread frees go to the shared ring; a chain was just
  // taken, so TrimIfIdle keeps them; Trim(0) frees them all.
  const int c = NodeCache::ClassOf(kBytes);
  std::thread([&] {
    for (void* p : again) NodeCache::Release(p, kBytes);
  }).join();
  EXPECT_GE(NodeCache::SharedBlocks(c), static_cast<size_t>(kBlocks));
  NodeCache::TrimIfIdle();
  EXPECT_GE(NodeCache::SharedBlocks(c), static_cast<size_t>(kBlocks));
  NodeCache::Trim(0);
  EXPECT_EQ(NodeCache::SharedBlocks(c), 0u);
}
#endif

// Producers allocate blocks of several sizes, fill them and pass them
// through a ring to a consumer that checks and releases them: no block is
// handed out twice while in use (the contents would be overwritten).
TEST(NodeCacheTest, CrossThreadRecyclingKeepsContents) {
  constexpr int kProducers = 2;
  constexpr uint64_t kPerProducer = 50000;
  MpscRing<uint64_t*> ring(1024);
  std::vector<std::thread> producers;
  auto size_of = [](uint64_t v) { return 64 + (v % 7) * 150; };
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        const uint64_t v = (static_cast<uint64_t>(p) << 32) | i;
        const size_t bytes = size_of(v);
        auto* block = static_cast<uint64_t*>(NodeCache::Allocate(bytes));
        for (size_t k = 0; k < bytes / 8; ++k) block[k] = v + k;
        while (ring.TryPush(block) != MpscRing<uint64_t*>::PushResult::kOk) {
          std::this_thread::yield();
        }
      }
    });
  }
  uint64_t received = 0;
  while (received < kProducers * kPerProducer) {
    uint64_t* block;
    if (!ring.TryPop(&block)) {
      std::this_thread::yield();
      continue;
    }
    const uint64_t v = block[0];
    const size_t bytes = size_of(v);
    for (size_t k = 0; k < bytes / 8; ++k) ASSERT_EQ(block[k], v + k);
    NodeCache::Release(block, bytes);
    ++received;
  }
  for (auto& t : producers) t.join();
}

TEST(BackoffTest, DoublesFromInitialUpToMax) {
  const int64_t s = 1'000'000;
  EXPECT_EQ(BackoffMicros(1, s, 60 * s, 1.0), 1 * s);
  EXPECT_EQ(BackoffMicros(2, s, 60 * s, 1.0), 2 * s);
  EXPECT_EQ(BackoffMicros(3, s, 60 * s, 1.0), 4 * s);
  EXPECT_EQ(BackoffMicros(6, s, 60 * s, 1.0), 32 * s);
  EXPECT_EQ(BackoffMicros(7, s, 60 * s, 1.0), 60 * s);
  EXPECT_EQ(BackoffMicros(1000, s, 60 * s, 1.0), 60 * s);
  // Jitter scales the growth part only: 1 s + 3 s * 0.8.
  EXPECT_EQ(BackoffMicros(3, s, 60 * s, 0.8), s + 2'400'000);
  EXPECT_EQ(BackoffMicros(3, s, 60 * s, 1.2), s + 3'600'000);
}

TEST(BackoffTest, LatencyBuckets) {
  EXPECT_EQ(LatencyBucket(0, 28), 0);
  EXPECT_EQ(LatencyBucket(1, 28), 0);
  EXPECT_EQ(LatencyBucket(2, 28), 1);
  EXPECT_EQ(LatencyBucket(3, 28), 2);
  EXPECT_EQ(LatencyBucket(4, 28), 2);
  EXPECT_EQ(LatencyBucket(5, 28), 3);
  EXPECT_EQ(LatencyBucket(1024, 28), 10);
  EXPECT_EQ(LatencyBucket(int64_t{1} << 40, 28), 27);
}

}  // namespace
}  // namespace edgeroute::router::internal
