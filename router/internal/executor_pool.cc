#include "router/internal/executor_pool.h"

#include <algorithm>
#include <chrono>

namespace edgeroute::router::internal {
namespace {

// Spins of an idle pool thread before it sleeps: under load the next task
// is microseconds away, and a scheduler that finds a thread awake skips the
// futex wake-up.
constexpr int kIdleSpins = 200;
// Longest sleep of an idle pool or timer thread (real time). Every event
// that matters wakes them earlier; this bounds the cost of a clock that
// moved without a wake-up (a FakeClock advanced in a test).
constexpr int64_t kMaxSleepUs = 1'000'000;

}  // namespace

void PoolTask::Schedule() {
  // acq_rel: release publishes what the caller wrote before (lane pushes,
  // control flags) to the slice that loads the count; acquire orders this
  // after the runner's last exchange, so a 0 read here means the runner is
  // done with the task.
  if (pending_.fetch_add(1, std::memory_order_acq_rel) == 0) {
    pool_->Push(this);
  }
}

ExecutorPool::ExecutorPool(int threads, Clock* clock, size_t run_queue_capacity)
    : threads_(std::max(threads, 1)),
      clock_(clock != nullptr ? clock : SystemClock()),
      ring_(run_queue_capacity) {}

ExecutorPool::~ExecutorPool() { Stop(); }

void ExecutorPool::Start() {
  for (int i = 0; i < threads_; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  timer_thread_ = std::thread([this] { TimerLoop(); });
}

void ExecutorPool::Stop() {
  stop_.store(true, std::memory_order_release);
  work_.Notify();
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    timer_stop_ = true;
  }
  timer_cv_.notify_all();
  if (timer_thread_.joinable()) timer_thread_.join();
}

void ExecutorPool::Push(PoolTask* task) {
  using Result = MpscRing<PoolTask*>::PushResult;
  // While tasks wait in the overflow list, later ones queue behind them
  // there (relaxed: a hint; a task that passes one in the ring meanwhile
  // waits at most one refill longer).
  if (overflow_.load(std::memory_order_relaxed) != nullptr ||
      ring_.TryPush(task) != Result::kOk) {
    PushOverflow(task);
  }
  work_.NotifyOne();
}

void ExecutorPool::PushOverflow(PoolTask* task) {
  // Release: publishes overflow_next_ (and the scheduler's writes) to the
  // thread that takes the list.
  PoolTask* head = overflow_.load(std::memory_order_relaxed);
  do {
    task->overflow_next_ = head;
  } while (!overflow_.compare_exchange_weak(
      head, task, std::memory_order_release, std::memory_order_relaxed));
}

void ExecutorPool::RefillFromOverflow() {
  // Acquire: pairs with the release in PushOverflow.
  PoolTask* list = overflow_.exchange(nullptr, std::memory_order_acquire);
  if (list == nullptr) return;
  // The list is newest first: reverse it so that older tasks go first.
  PoolTask* fifo = nullptr;
  while (list != nullptr) {
    PoolTask* next = list->overflow_next_;
    list->overflow_next_ = fifo;
    fifo = list;
    list = next;
  }
  using Result = MpscRing<PoolTask*>::PushResult;
  while (fifo != nullptr) {
    PoolTask* next = fifo->overflow_next_;
    if (ring_.TryPush(fifo) != Result::kOk) break;
    fifo = next;
  }
  // What did not fit goes back, oldest first, so that the next refill
  // (which reverses the list again) still takes it before newer arrivals.
  while (fifo != nullptr) {
    PoolTask* next = fifo->overflow_next_;
    PushOverflow(fifo);
    fifo = next;
  }
}

PoolTask* ExecutorPool::Pop() {
  PoolTask* task = nullptr;
  // Relaxed: a hint; RefillFromOverflow's exchange is the real read. Refill
  // only when the ring has room for many (so that each refill moves a
  // large share of the list).
  if (overflow_.load(std::memory_order_relaxed) != nullptr &&
      ring_.SizeGuess() <= ring_.capacity() / 2) {
    RefillFromOverflow();
  }
  if (ring_.TryPopShared(&task)) return task;
  return nullptr;
}

void ExecutorPool::RunTask(PoolTask* task) {
  // Acquire: pairs with Schedule's increments (see the header comment).
  uint64_t seen = task->pending_.load(std::memory_order_acquire);
  const PoolTask::Slice slice = task->RunSlice();
  slices_.fetch_add(1, std::memory_order_relaxed);
  using Next = PoolTask::Slice::Next;
  switch (slice.next) {
    case Next::kFinished:
      // The count stays above 0: the task is never queued again. Nothing of
      // the task is touched after this point (its owner may destroy it).
      return;
    case Next::kMore:
      Push(task);
      return;
    case Next::kWakeAt:
      ArmTimer(task, slice.wake_mono_us);
      break;
    case Next::kIdle:
      break;
  }
  // acq_rel: release hands this slice's writes to the next runner (through
  // the scheduler that reads 0); acquire on failure makes a Schedule that
  // came in during the slice visible to the next slice.
  if (!task->pending_.compare_exchange_strong(
          seen, 0, std::memory_order_acq_rel, std::memory_order_acquire)) {
    Push(task);
  }
}

void ExecutorPool::WorkerLoop() {
  for (;;) {
    if (stop_.load(std::memory_order_acquire)) return;
    PoolTask* task = Pop();
    for (int spin = 0; task == nullptr && spin < kIdleSpins; ++spin) {
      CpuRelax();
      if (ring_.SizeGuess() != 0) task = Pop();
    }
    if (task != nullptr) {
      RunTask(task);
      continue;
    }
    const uint32_t key = work_.PrepareWait();
    if (ring_.SizeGuess() != 0 ||
        overflow_.load(std::memory_order_relaxed) != nullptr ||
        stop_.load(std::memory_order_acquire)) {
      work_.CancelWait();
      continue;
    }
    work_.Wait(key, kMaxSleepUs);
  }
}

void PoolTask::CancelTimer() {
  if (pool_ != nullptr) pool_->CancelTimer(this);
}

void ExecutorPool::ArmTimer(PoolTask* task, int64_t due_mono_us) {
  // Relaxed hint: an armed timer that fires no later already covers this
  // one (the slice it starts arms again if it still has to wait).
  const int64_t armed = task->timer_due_.load(std::memory_order_relaxed);
  if (armed != 0 && armed <= due_mono_us) return;
  bool earliest = false;
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    const int64_t now_armed = task->timer_due_.load(std::memory_order_relaxed);
    if (now_armed != 0) {
      if (now_armed <= due_mono_us) return;
      timers_.erase({now_armed, task});
    }
    task->timer_due_.store(due_mono_us, std::memory_order_relaxed);
    earliest = timers_.empty() || due_mono_us < timers_.begin()->first;
    timers_.emplace(due_mono_us, task);
  }
  if (earliest) timer_cv_.notify_one();
}

void ExecutorPool::CancelTimer(PoolTask* task) {
  std::lock_guard<std::mutex> lock(timer_mu_);
  const int64_t armed = task->timer_due_.load(std::memory_order_relaxed);
  if (armed == 0) return;
  timers_.erase({armed, task});
  task->timer_due_.store(0, std::memory_order_relaxed);
}

void ExecutorPool::TimerLoop() {
  std::unique_lock<std::mutex> lock(timer_mu_);
  while (!timer_stop_) {
    const int64_t now = clock_->MonotonicMicros();
    // Due tasks are scheduled under the mutex: CancelTimer (a task's last
    // slice) waits for this, so no task is touched after it finished.
    while (!timers_.empty() && timers_.begin()->first <= now) {
      PoolTask* task = timers_.begin()->second;
      timers_.erase(timers_.begin());
      task->timer_due_.store(0, std::memory_order_relaxed);
      task->Schedule();
    }
    int64_t sleep_us = kMaxSleepUs;
    if (!timers_.empty()) {
      sleep_us = std::min(sleep_us, timers_.begin()->first - now);
    }
    timer_cv_.wait_for(
        lock, std::chrono::microseconds(std::max<int64_t>(sleep_us, 1)));
  }
}

}  // namespace edgeroute::router::internal
