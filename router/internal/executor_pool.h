// ExecutorPool: a fixed number of threads that run many tasks (the router's
// endpoints), so that the thread count does not grow with the number of
// endpoints.
//
// A PoolTask is runnable after Schedule(). The pool runs it on one of its
// threads, one slice at a time (RunSlice), never on two threads at once. A
// slice does a bounded amount of work and says what comes next:
//   * more work now     -> the task goes to the back of the run queue;
//   * a time to wake at -> the pool's timer thread schedules it then (on the
//                          pool's clock: retry backoff);
//   * nothing           -> it runs again at the next Schedule() (new data, a
//                          control event, a batch completed by a sink);
//   * finished          -> it never runs again; Schedule() becomes a no-op.
//
// Scheduling state: `pending_` counts Schedule() calls not yet seen by a
// slice. Schedule increments it (acq_rel) and queues the task only on the
// 0 -> 1 transition, so a task is in the run queue or running at most once.
// Before a slice the runner loads the count (acquire: whatever a scheduler
// published before its increment is visible to the slice); after an idle
// slice it compare-exchanges the count it loaded back to 0. If a Schedule
// came in between, the exchange fails and the task is queued again: no
// wake-up is lost, and no lock is taken. A finished task keeps its count
// above 0 forever. Successive slices of one task happen-before each other
// (through the count and the run queue's release/acquire hand-off), so a
// task's private state needs no synchronisation even though its slices run
// on different threads.
//
// Run queue: a bounded lock-free ring of task pointers (MpscRing used with
// TryPopShared by the pool threads), and, when that ring is full (more
// runnable tasks than its capacity), an unbounded intrusive overflow list
// (a Treiber stack that is only ever emptied whole, so it has no ABA
// problem). While the list holds tasks, newly runnable ones join it rather
// than the ring, and pool threads move the list into the ring (oldest
// first) whenever the ring is at most half full, so no task waits behind
// tasks that became runnable after it for longer than one refill. Idle pool
// threads spin briefly, then sleep on an EventCount.
//
// Timers: an ordered set of (deadline, task) under a mutex, driven by one
// timer thread. Only slices that wait for a retry arm a timer, with at most
// one entry per task (an earlier deadline replaces a later one), so the set
// stays small and the mutex is off the message path. The timer thread
// schedules due tasks while it holds the mutex, and a task's final slice
// cancels its timer under the same mutex, so the timer thread never touches
// a task that its owner may already have destroyed.
//
// Threads: `threads` pool threads + 1 timer thread, for the pool's life.
// Thread-safety: Schedule from any thread; Start/Stop from one control
// thread. REQUIRES: every task outlives the pool's threads or is finished
// (its last slice returned kFinished) before it is destroyed.

#ifndef EDGEROUTE_ROUTER_INTERNAL_EXECUTOR_POOL_H_
#define EDGEROUTE_ROUTER_INTERNAL_EXECUTOR_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/clock.h"
#include "router/internal/event_count.h"
#include "router/internal/mpsc_ring.h"

namespace edgeroute::router::internal {

class ExecutorPool;

class PoolTask {
 public:
  PoolTask() = default;
  virtual ~PoolTask() = default;
  PoolTask(const PoolTask&) = delete;
  PoolTask& operator=(const PoolTask&) = delete;

  // Makes the task run a slice soon. Any thread; one atomic read-modify-write
  // when the task is already queued or running. REQUIRES: attached to a pool
  // (AttachPool) that has not been stopped, unless the task is finished.
  void Schedule();

  struct Slice {
    enum class Next { kIdle, kMore, kWakeAt, kFinished };
    Next next = Next::kIdle;
    // kWakeAt: the pool clock's MonotonicMicros() at which to run again.
    int64_t wake_mono_us = 0;
  };

 protected:
  void AttachPool(ExecutorPool* pool) { pool_ = pool; }
  // Removes the task's timer, if armed. A task's last slice calls this
  // before it lets its owner know it finished.
  void CancelTimer();
  // Runs on a pool thread; never concurrently with itself.
  virtual Slice RunSlice() = 0;

 private:
  friend class ExecutorPool;

  ExecutorPool* pool_ = nullptr;
  std::atomic<uint64_t> pending_{0};
  // Overflow list link (owned by the pool while the task is on it).
  PoolTask* overflow_next_ = nullptr;
  // The deadline of this task's timer entry; 0 = none. Written under the
  // pool's timer_mu_; read without it as a hint.
  std::atomic<int64_t> timer_due_{0};
};

class ExecutorPool {
 public:
  // REQUIRES: threads >= 1, run_queue_capacity >= 1. `clock` (not owned;
  // nullptr = SystemClock()) is the clock of timer deadlines.
  ExecutorPool(int threads, Clock* clock, size_t run_queue_capacity = 4096);
  // Stops if not stopped.
  ~ExecutorPool();
  ExecutorPool(const ExecutorPool&) = delete;
  ExecutorPool& operator=(const ExecutorPool&) = delete;

  void Start();
  // Stops and joins every thread. Tasks still queued are not run.
  void Stop();

  int threads() const { return threads_; }
  // Slices run so far (for tests).
  uint64_t slices() const { return slices_.load(std::memory_order_relaxed); }

 private:
  friend class PoolTask;

  void Push(PoolTask* task);
  void PushOverflow(PoolTask* task);
  PoolTask* Pop();
  // Moves what the overflow list holds into the ring, as far as it fits.
  void RefillFromOverflow();
  void RunTask(PoolTask* task);
  void ArmTimer(PoolTask* task, int64_t due_mono_us);
  void CancelTimer(PoolTask* task);
  void WorkerLoop();
  void TimerLoop();

  const int threads_;
  Clock* const clock_;
  MpscRing<PoolTask*> ring_;
  alignas(kCacheLine) std::atomic<PoolTask*> overflow_{nullptr};
  EventCount work_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> slices_{0};
  std::vector<std::thread> workers_;

  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  // (deadline on clock_'s monotonic time, task).
  std::set<std::pair<int64_t, PoolTask*>> timers_ ABSL_GUARDED_BY(timer_mu_);
  bool timer_stop_ ABSL_GUARDED_BY(timer_mu_) = false;
  std::thread timer_thread_;
};

}  // namespace edgeroute::router::internal

#endif  // EDGEROUTE_ROUTER_INTERNAL_EXECUTOR_POOL_H_
