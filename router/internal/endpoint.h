// Endpoint: the queues of one endpoint (one lane per priority) and its
// executor thread, which drains the lanes strictly by priority, in batches,
// to the endpoint's Sink, with TTL checks, retry with backoff, and the
// dead/revive state machine.
//
// Lanes: lane b (b = 0..9 for priorities 0-9, 10 for the default priority)
// is an MpscRing of QueuedRef. Producers are the dispatch workers (Push);
// the consumer is the executor thread. See mpsc_ring.h for the ordering
// argument; a lane pointer is published with a release store when the lane
// is created (control plane, under lanes_mu_) and read with acquire.
//
// Store mode (a store::Store is given): the lanes are not used. Dispatch
// workers append to the store and then call NoteStoreAppend, which bumps an
// atomic counter (release) and wakes the executor; the executor reads the
// store queues after the last offset it has read and checkpoints after the
// sink has answered (edgeHub's rule: the highest delivered or rejected offset
// below the lowest offset still to be retried).
//
// Executor algorithm, per iteration:
//   1. If there is no current batch, take up to batch_size refs from the
//      first non-empty lane in priority order (0 first; edgeHub restarts from
//      the highest priority after every batch). Sleep when there is none.
//   2. Before every attempt, drop refs whose TTL has passed (counted as
//      expired). edgeHub checks TTL only when reading from the queue; here
//      a message is also never re-sent after its TTL during retries.
//   3. While the endpoint is dead (retries exhausted), batches are dropped
//      (counted) until the revive time; then it lives again.
//   4. Wait for the backoff time of a retried batch, and for a sink.
//   5. Deliver, wait until every message is completed, then release the
//      delivered and rejected ones and keep the kRetry ones (in order) as the
//      next current batch. A batch finishes before the next one starts
//      (head-of-line blocking per endpoint, as in edgeHub).
//
// Counters are written only by the executor thread (relaxed load + store on
// its own cache line), except dropped_queue_full_, which producers bump
// with a relaxed fetch_add (a rare event).
//
// Thread-safety: Push/NoteStoreAppend from dispatch workers; the control
// methods from any thread (they take mu_ or use atomics); Metrics from any
// thread.

#ifndef EDGEROUTE_ROUTER_INTERNAL_ENDPOINT_H_
#define EDGEROUTE_ROUTER_INTERNAL_ENDPOINT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "router/internal/event_count.h"
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
  uint64_t seed = 1;
};

// Relaxed single-writer increment (no RMW): only the owning thread writes.
inline void Bump(std::atomic<uint64_t>& counter, uint64_t delta = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + delta,
                std::memory_order_relaxed);
}

class Endpoint {
 public:
  Endpoint(std::string id, const EndpointConfig& config);
  // REQUIRES: the executor was never started or was joined.
  ~Endpoint();
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
  void Start();
  // Tells the executor to finish: drain (deliver everything, up to
  // `deadline`) or stop after the batch in flight. Remaining messages are
  // dropped and counted (memory mode) or left in the store.
  void BeginClose(bool drain, absl::Time deadline);
  void Join();
  // Makes the executor re-read the clock and its configuration.
  void Wake();

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
  // Wakes the executor after pushes (once per dispatch batch).
  void NotifyWork() { wake_.Notify(); }

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

  void Run();
  bool LanesEmpty() const;
  bool HasWork() const;
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
  // Sleeps until a control event, new data (when `wait_for_data`), the
  // clock reaching `until_mono_us` (when > 0) or `timeout_us` of real time.
  void Sleep(int64_t timeout_us, bool wait_for_data, int64_t until_mono_us);

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

  EventCount wake_;
  // Bumped (release) by every control event; the executor sleeps only if it
  // has not changed since the top of its loop.
  std::atomic<uint64_t> control_generation_{0};

  std::mutex sink_mu_;
  std::shared_ptr<Sink> sink_ ABSL_GUARDED_BY(sink_mu_);
  std::atomic<uint64_t> sink_generation_{0};
  std::atomic<bool> has_sink_{false};

  std::atomic<bool> removed_{false};
  std::atomic<bool> closing_{false};
  std::atomic<bool> drain_{true};
  std::atomic<int64_t> close_deadline_us_{0};  // absl::Now() micros
  std::thread thread_;

  // Executor-private state.
  uint64_t seen_control_ = 0;
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
