// Endpoint: the queues of one endpoint (one lane per priority) and its
// executor: a task on the router's ExecutorPool (executor_pool.h) that
// drains the lanes strictly by priority, in batches, to the endpoint's Sink,
// with TTL checks, retry with backoff, and the dead/revive state machine.
// Endpoints do not own threads: any number of them share the pool's.
//
// Lanes: lane b (b = 0..9 for priorities 0-9, 10 for the default priority)
// is an MpscRing of QueuedRef. Producers are the dispatch workers (Push);
// the consumer is the executor (the pool runs one slice of an endpoint at a
// time, so the ring has one consumer at a time). See mpsc_ring.h for the
// ordering argument; a lane pointer is published with a release store when
// the lane is created (control plane, under lanes_mu_) and read with
// acquire.
//
// Store mode (a store::Store is given): the lanes are not used. Dispatch
// workers append to the store and then call NoteStoreAppend, which bumps an
// atomic counter (release) and schedules the executor; the executor reads the
// store queues after the last offset it has read and checkpoints after the
// sink has answered (edgeHub's rule: the highest delivered or rejected offset
// below the lowest offset still to be retried).
//
// Executor algorithm, per step of a slice:
//   1. If there is no current batch, take up to batch_size refs from the
//      first non-empty lane in priority order (0 first; edgeHub restarts from
//      the highest priority after every batch). End the slice (idle) when
//      there is none: the next Push's NotifyWork schedules it again.
//   2. Before every attempt, drop refs whose TTL has passed (counted as
//      expired). edgeHub checks TTL only when reading from the queue; here
//      a message is also never re-sent after its TTL during retries.
//   3. While the endpoint is dead (retries exhausted), batches are dropped
//      (counted) until the revive time; then it lives again.
//   4. A retried batch waits for its backoff time: the slice ends with a
//      timer on the pool. Without a sink the slice ends (SetSink schedules).
//   5. Deliver. If the sink completed every message before Deliver returned,
//      go on at once; otherwise the slice ends and the pool thread is free:
//      the sink's last Complete schedules the endpoint again
//      (OnBatchCompleted). Then release the delivered and rejected messages
//      and keep the kRetry ones (in order) as the next current batch. A batch
//      finishes before the next one starts (head-of-line blocking per
//      endpoint, as in edgeHub).
// A slice ends after kMaxStepsPerSlice steps or about kSliceMicros of real
// time, whichever comes first, and the endpoint goes to the back of the run
// queue if it still has work: one busy endpoint cannot keep the others
// waiting for more than a slice.
//
// Isolation: a sink that answers later (completes from its own thread) holds
// no pool thread while it waits. A sink whose Deliver blocks holds one pool
// thread for as long as it blocks; up to (pool size - 1) such endpoints at
// once leave at least one thread for the others (router.h, Sink).
//
// Completion hand-off: DeliveryBatch::remaining_ starts at size + 1; the
// extra unit belongs to the executor, which drops it after Deliver returns.
// Whoever takes the count to 0 owns the batch's end: the executor (it goes
// on in the same slice) or the sink's last Complete, which calls
// OnBatchCompleted: it raises completing_, sets batch_ready_ (release),
// schedules the endpoint, and lowers completing_. A slice that finds the
// endpoint waiting acts only on batch_ready_, never on remaining_, and Join
// waits for completing_ to be 0, so no completer touches the endpoint after
// its owner may destroy it.
//
// Counters are written only by the executor (relaxed load + store on its own
// cache line; one slice at a time, each after the previous one), except
// dropped_queue_full_, which producers bump with a relaxed fetch_add (a rare
// event).
//
// Thread-safety: Push/NoteStoreAppend/NotifyWork from dispatch workers; the
// control methods from any thread (they take mu_ or use atomics); Metrics
// from any thread.

#ifndef EDGEROUTE_ROUTER_INTERNAL_ENDPOINT_H_
#define EDGEROUTE_ROUTER_INTERNAL_ENDPOINT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "router/internal/event_count.h"
#include "router/internal/executor_pool.h"
#include "router/internal/message_node.h"
#include "router/internal/mpsc_ring.h"
#include "router/router.h"
#include "store/store.h"

namespace edgeroute::router::internal {

inline constexpr int kPriorityBuckets = kPriorityLevels;
inline constexpr int kDefaultBucket = kDefaultPriorityLevel;

inline int PriorityBucket(int priority) {
  return priority >= 0 && priority <= 9 ? priority : kDefaultBucket;
}
inline int BucketPriority(int bucket) {
  return bucket < kDefaultBucket ? bucket : query::kDefaultPriority;
}

// One reference to a message in a lane.
struct QueuedRef {
  MessageNode* node;
  // Wall-clock expiry in microseconds; INT64_MAX = never.
  int64_t expires_wall_us;
};

struct EndpointConfig {
  size_t batch_size = 100;
  size_t lane_capacity = 65536;
  RetryPolicy retry;
  int64_t revive_period_us = 30'000'000;
  Clock* clock = nullptr;
  store::Store* store = nullptr;
  // The pool that runs the executor (not owned; outlives the endpoint's
  // executor). Required.
  ExecutorPool* pool = nullptr;
  uint64_t seed = 1;
};

// Relaxed single-writer increment (no RMW): only the owning thread writes.
inline void Bump(std::atomic<uint64_t>& counter, uint64_t delta = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + delta,
                std::memory_order_relaxed);
}

class Endpoint final : public PoolTask {
 public:
  Endpoint(std::string id, const EndpointConfig& config);
  // REQUIRES: the executor was never started (and never scheduled) or was
  // joined.
  ~Endpoint() override;
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  const std::string& id() const { return id_; }

  // Control plane. Creates lane `bucket` if it does not exist yet (and in
  // store mode opens the store queue).
  absl::Status EnsureLane(int bucket);
  // The store queue handle of `bucket`. REQUIRES: store mode, EnsureLane.
  uint32_t store_queue(int bucket) const { return store_queues_[bucket]; }
  // Store mode: opens the queues of every priority already in the store for
  // this endpoint (after a restart).
  absl::Status AdoptStoreQueues();

  void SetSink(std::shared_ptr<Sink> sink);
  // kDrop rule: while removed, everything queued is dropped and counted.
  void SetRemoved(bool removed);
  // Schedules the executor's first slice (in store mode it scans the store
  // for messages left by an earlier run). Every control method and
  // NotifyWork schedules a slice as well, started or not.
  void Start() { Schedule(); }
  // Tells the executor to finish: drain (deliver everything, up to
  // `deadline`) or stop after the batch in flight. Remaining messages are
  // dropped and counted (memory mode) or left in the store.
  void BeginClose(bool drain, absl::Time deadline);
  // Waits until the executor has finished (after BeginClose). Waits for a
  // batch in flight: its sink must complete it.
  void Join();
  // Makes the executor re-read the clock and its configuration.
  void Wake() { Schedule(); }

  // Called by the completion that takes a batch's count to 0 when the
  // executor has already left Deliver (see the header comment).
  void OnBatchCompleted();

  // Data plane (dispatch workers). Returns false when the lane is full (the
  // caller still owns the reference); counts the drop.
  bool Push(int bucket, const QueuedRef& ref) {
    MpscRing<QueuedRef>* lane = lanes_[bucket].load(std::memory_order_acquire);
    if (lane != nullptr &&
        lane->TryPush(ref) == MpscRing<QueuedRef>::PushResult::kOk) {
      return true;
    }
    dropped_queue_full_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // Store mode: `count` references were appended for this endpoint.
  void NoteStoreAppend(uint64_t count) {
    // Release: pairs with the executor's acquire load; the append happened
    // before.
    store_appended_.fetch_add(count, std::memory_order_release);
  }
  // Schedules the executor after pushes (once per dispatch batch).
  void NotifyWork() { Schedule(); }

  // True when every message queued so far has been finished (delivered,
  // expired, rejected or dropped), or no sink is set.
  bool Idle() const;
  EndpointMetrics Metrics() const;
  // Monotonic time of the next retry of the current batch (for tests).
  int64_t NextRetryMonoMicros() const;

 private:
  // Trivially copyable, so that batches are cheap to build and compact.
  struct Pending {
    MessageNode* node = nullptr;    // memory mode
    const uint8_t* data = nullptr;  // store mode: bytes in store_buf_
    size_t size = 0;                // store mode
    uint64_t offset = 0;            // store mode
    int64_t expires_wall_us = INT64_MAX;
    int64_t admit_wall_us = 0;
    int64_t admit_mono_us = 0;  // 0 in store mode (use wall time)
  };
  enum class Reason {
    kDelivered,
    kExpired,
    kRejected,
    kDead,
    kRemoved,
    kClose
  };

  // At most this many steps (batches taken, delivered or dropped) per slice.
  static constexpr int kMaxStepsPerSlice = 16;
  // A slice ends at its next step after this much real time.
  static constexpr int64_t kSliceMicros = 2000;

  Slice RunSlice() override;
  // The end of the executor: drops or leaves what is left, marks it
  // finished and wakes Join. Nothing of the endpoint is touched by the
  // executor afterwards.
  Slice Finish();
  // Steps 5's second half: the outcomes of the batch just delivered.
  void FinishAttempt();
  // Messages the executor is done with (delivered, expired, rejected,
  // dropped by it).
  uint64_t Finished() const;
  // Fills current_ from the lanes or the store; false when nothing.
  bool TakeBatch();
  bool TakeFromStore();
  void ReleaseCurrent(size_t i);
  void DropCurrent(Reason reason);
  void DrainAll(Reason reason);
  void Count(Reason reason, uint64_t n);
  void FinishStoreBatch();
  void PublishOldest();
  std::shared_ptr<Sink> CurrentSink();

  const std::string id_;
  const EndpointConfig config_;
  Clock* const clock_;

  std::atomic<MpscRing<QueuedRef>*> lanes_[kPriorityBuckets] = {};
  std::mutex lanes_mu_;
  std::unique_ptr<MpscRing<QueuedRef>>
      owned_lanes_[kPriorityBuckets] ABSL_GUARDED_BY(lanes_mu_);
  // Store mode: queue handle per bucket, UINT32_MAX when not open. Written
  // under lanes_mu_ before has_queue_[b] is set (release).
  uint32_t store_queues_[kPriorityBuckets];
  std::atomic<bool> has_queue_[kPriorityBuckets] = {};
  std::atomic<uint64_t> store_appended_{0};
  // The store_appended_ value the executor had fully read when it last
  // found the store empty.
  std::atomic<uint64_t> store_idle_{0};

  std::mutex sink_mu_;
  std::shared_ptr<Sink> sink_ ABSL_GUARDED_BY(sink_mu_);
  std::atomic<uint64_t> sink_generation_{0};
  std::atomic<bool> has_sink_{false};

  std::atomic<bool> removed_{false};
  std::atomic<bool> closing_{false};
  std::atomic<bool> drain_{true};
  std::atomic<int64_t> close_deadline_us_{0};  // absl::Now() micros
  // Completion hand-off (see the header comment).
  std::atomic<bool> batch_ready_{false};
  std::atomic<uint32_t> completing_{0};
  // 1 once the executor has finished; the futex word Join sleeps on.
  std::atomic<uint32_t> finished_{0};

  // Executor-private state.
  // A batch is with the sink and the slice that delivered it has ended.
  bool awaiting_completion_ = false;
  // The sink of that batch, kept alive until it completes.
  std::shared_ptr<Sink> delivering_sink_;
  std::vector<Pending> current_;
  int current_bucket_ = kDefaultBucket;
  int attempt_ = 0;  // attempts made on current_
  int64_t next_attempt_mono_us_ = 0;
  bool dead_ = false;
  int64_t revive_mono_us_ = 0;
  std::shared_ptr<Sink> cached_sink_;
  uint64_t cached_sink_generation_ = ~uint64_t{0};
  uint64_t store_seen_ = 0;
  bool store_initial_scan_ = true;
  bool started_[kPriorityBuckets] = {};
  uint64_t read_offset_[kPriorityBuckets] = {};
  uint64_t checkpointed_[kPriorityBuckets] = {};
  uint64_t done_offset_ = 0;
  std::vector<uint64_t> done_offsets_;
  // Store mode: the messages of current_ (kept until the next read, which
  // happens only when current_ is empty) and aligned copies if needed.
  std::vector<store::StoredMessage> store_buf_;
  std::vector<std::vector<uint64_t>> store_aligned_;
  std::mt19937_64 rng_;
  DeliveryBatch batch_;

  // Metrics (executor-written unless noted).
  alignas(kCacheLine) std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> retried_{0};
  std::atomic<uint64_t> expired_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> dropped_dead_{0};
  std::atomic<uint64_t> dropped_removed_{0};
  std::atomic<uint64_t> dropped_close_{0};
  std::atomic<uint64_t> store_errors_{0};
  std::atomic<uint64_t> in_flight_{0};
  // The bucket of the messages in flight (current_bucket_, for Metrics).
  std::atomic<int> in_flight_bucket_{kDefaultBucket};
  std::atomic<int64_t> oldest_admit_wall_us_{0};
  std::atomic<int64_t> next_retry_mono_us_{0};
  std::atomic<bool> dead_flag_{false};
  std::atomic<uint64_t> latency_counts_[kLatencyBuckets] = {};
  std::atomic<uint64_t> latency_count_{0};
  std::atomic<uint64_t> latency_sum_us_{0};
  // Written by dispatch workers (fetch_add; rare).
  alignas(kCacheLine) std::atomic<uint64_t> dropped_queue_full_{0};
};

}  // namespace edgeroute::router::internal

#endif  // EDGEROUTE_ROUTER_INTERNAL_ENDPOINT_H_
