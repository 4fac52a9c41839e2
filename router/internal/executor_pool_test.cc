// Unit tests of the executor pool (executor_pool.h): a task runs at most one
// slice at a time, every Schedule is followed by a slice that sees what was
// written before it, a full run queue overflows without losing tasks,
// timers, finished tasks, and the multi-consumer ring pop.

#include "router/internal/executor_pool.h"

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "gtest/gtest.h"
#include "router/internal/mpsc_ring.h"

namespace edgeroute::router::internal {
namespace {

constexpr absl::Duration kWait = absl::Seconds(30);

bool WaitFor(const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + kWait;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Microseconds(200));
  }
  return true;
}

// Counts its slices; fails the test if two of them overlap. `wanted` is
// what schedulers wrote before Schedule(); `seen` what the last slice read.
class CountingTask : public PoolTask {
 public:
  explicit CountingTask(ExecutorPool* pool) { AttachPool(pool); }

  std::atomic<uint64_t> wanted{0};
  std::atomic<uint64_t> seen{0};
  std::atomic<uint64_t> slices{0};
  std::atomic<bool> overlap{false};
  // Slices that ask to run again at once before going idle.
  int more = 0;

 protected:
  Slice RunSlice() override {
    if (running_.exchange(true, std::memory_order_acq_rel)) {
      overlap.store(true, std::memory_order_relaxed);
    }
    // Plain (non-atomic) state: slices must be ordered, or TSan reports it.
    ++private_slices_;
    seen.store(wanted.load(std::memory_order_relaxed),
               std::memory_order_relaxed);
    slices.fetch_add(1, std::memory_order_relaxed);
    running_.store(false, std::memory_order_release);
    if (more > 0) {
      --more;
      return Slice{Slice::Next::kMore, 0};
    }
    return Slice{Slice::Next::kIdle, 0};
  }

 private:
  std::atomic<bool> running_{false};
  uint64_t private_slices_ = 0;
};

TEST(ExecutorPoolTest, EveryScheduleIsFollowedByASliceThatSeesItsWrites) {
  ExecutorPool pool(3, nullptr, /*run_queue_capacity=*/64);
  pool.Start();
  constexpr int kTasks = 500;  // more than the ring holds: overflow is used
  constexpr int kProducers = 4;
  constexpr uint64_t kRounds = 200;
  std::vector<std::unique_ptr<CountingTask>> tasks;
  for (int i = 0; i < kTasks; ++i) {
    tasks.push_back(std::make_unique<CountingTask>(&pool));
    tasks.back()->more = i % 3;  // some tasks take several slices
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint64_t round = 1; round <= kRounds; ++round) {
        for (int i = p; i < kTasks; i += kProducers) {
          // Producer p owns task i: its wanted values only grow.
          tasks[i]->wanted.store(round, std::memory_order_relaxed);
          tasks[i]->Schedule();
        }
      }
    });
  }
  for (std::thread& t : producers) t.join();
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& t : tasks) {
      if (t->seen.load(std::memory_order_relaxed) != kRounds) return false;
    }
    return true;
  }));
  pool.Stop();
  for (const auto& t : tasks) {
    EXPECT_FALSE(t->overlap.load()) << "two slices of one task overlapped";
    EXPECT_GE(t->slices.load(), 1u);
  }
}

class TimedTask : public PoolTask {
 public:
  TimedTask(ExecutorPool* pool, Clock* clock) : clock_(clock) {
    AttachPool(pool);
  }
  std::atomic<int> slices{0};
  std::atomic<int64_t> last_slice_mono{0};
  int64_t wake_at = 0;  // written before the first Schedule

 protected:
  Slice RunSlice() override {
    const int n = slices.fetch_add(1, std::memory_order_relaxed) + 1;
    last_slice_mono.store(clock_->MonotonicMicros(), std::memory_order_relaxed);
    if (n == 1) return Slice{Slice::Next::kWakeAt, wake_at};
    if (n == 2) return Slice{Slice::Next::kFinished, 0};
    return Slice{Slice::Next::kIdle, 0};
  }

 private:
  Clock* const clock_;
};

TEST(ExecutorPoolTest, AWakeTimeRunsTheTaskAgainOnlyWhenTheClockGetsThere) {
  FakeClock clock;
  ExecutorPool pool(1, &clock);
  pool.Start();
  TimedTask task(&pool, &clock);
  task.wake_at = clock.MonotonicMicros() + 5'000'000;
  task.Schedule();
  ASSERT_TRUE(WaitFor([&] { return task.slices.load() == 1; }));
  // The clock has not moved: no second slice (the timer thread re-checks
  // the clock at least once a second).
  absl::SleepFor(absl::Milliseconds(1200));
  EXPECT_EQ(task.slices.load(), 1);
  clock.AdvanceMicros(5'000'000);
  ASSERT_TRUE(WaitFor([&] { return task.slices.load() == 2; }));
  EXPECT_GE(task.last_slice_mono.load(), task.wake_at);
  // Finished: later Schedules never run it again.
  for (int i = 0; i < 10; ++i) task.Schedule();
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(task.slices.load(), 2);
  pool.Stop();
}

TEST(ExecutorPoolTest, TheSystemClockFiresTimersByItself) {
  ExecutorPool pool(2, nullptr);
  pool.Start();
  TimedTask task(&pool, SystemClock());
  const int64_t start = SystemClock()->MonotonicMicros();
  task.wake_at = start + 30'000;
  task.Schedule();
  ASSERT_TRUE(WaitFor([&] { return task.slices.load() == 2; }));
  EXPECT_GE(task.last_slice_mono.load(), start + 30'000);
  pool.Stop();
}

TEST(ExecutorPoolTest, TheRingPopsEachValueOnceWithManyConsumers) {
  MpscRing<uint64_t> ring(64);
  constexpr int kThreads = 3;
  constexpr uint64_t kPerProducer = 5000;
  std::atomic<uint64_t> popped{0};
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int p = 0; p < kThreads; ++p) {
    threads.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        const uint64_t v = p * kPerProducer + i;
        while (ring.TryPush(v) != MpscRing<uint64_t>::PushResult::kOk) {
          std::this_thread::yield();
        }
      }
    });
  }
  for (int c = 0; c < kThreads; ++c) {
    threads.emplace_back([&, c] {
      uint64_t v;
      while (popped.load(std::memory_order_relaxed) < kThreads * kPerProducer) {
        if (ring.TryPopShared(&v)) {
          got[c].push_back(v);
          popped.fetch_add(1, std::memory_order_relaxed);
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<uint64_t> all;
  size_t total = 0;
  for (int c = 0; c < kThreads; ++c) {
    // FIFO per producer within each consumer's share.
    std::vector<uint64_t> last(kThreads, 0);
    std::vector<bool> any(kThreads, false);
    for (uint64_t v : got[c]) {
      const int p = static_cast<int>(v / kPerProducer);
      if (any[p]) {
        EXPECT_GT(v, last[p]);
      }
      any[p] = true;
      last[p] = v;
      all.insert(v);
    }
    total += got[c].size();
  }
  EXPECT_EQ(total, kThreads * kPerProducer);
  EXPECT_EQ(all.size(), kThreads * kPerProducer);
}

}  // namespace
}  // namespace edgeroute::router::internal
