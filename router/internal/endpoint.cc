#include "router/internal/endpoint.h"

#include <time.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "router/internal/backoff.h"

namespace edgeroute::router::internal {
namespace {

// How often Join schedules an executor that has not finished, so that it
// re-reads the close deadline (real time) while it waits for a retry.
constexpr int64_t kJoinPollMicros = 50'000;

int64_t RealNowMicros() { return absl::ToUnixMicros(absl::Now()); }

// A monotonic real-time clock for slice budgets (not the router's clock,
// which may be a FakeClock).
int64_t RealMonoMicros() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000 + ts.tv_nsec / 1000;
}

}  // namespace

Endpoint::Endpoint(std::string id, const EndpointConfig& config)
    : id_(std::move(id)),
      config_(config),
      clock_(config.clock != nullptr ? config.clock : SystemClock()),
      rng_(config.seed) {
  for (int b = 0; b < kPriorityBuckets; ++b) store_queues_[b] = UINT32_MAX;
  AttachPool(config.pool);
  batch_.endpoint_id_ = id_;
  batch_.owner_ = this;
  current_.reserve(config_.batch_size);
}

Endpoint::~Endpoint() {
  // Memory mode: release what is still referenced (only after Join, when no
  // producer or executor runs).
  for (Pending& p : current_) {
    if (p.node != nullptr) MessageNode::Unref(p.node);
  }
  current_.clear();
  for (int b = 0; b < kPriorityBuckets; ++b) {
    MpscRing<QueuedRef>* lane = lanes_[b].load(std::memory_order_acquire);
    if (lane == nullptr) continue;
    QueuedRef ref;
    while (lane->TryPop(&ref)) MessageNode::Unref(ref.node);
  }
}

absl::Status Endpoint::EnsureLane(int bucket) {
  if (bucket < 0 || bucket >= kPriorityBuckets) {
    return absl::InvalidArgumentError("priority bucket out of range");
  }
  std::lock_guard<std::mutex> lock(lanes_mu_);
  if (config_.store != nullptr) {
    if (has_queue_[bucket].load(std::memory_order_acquire)) {
      return absl::OkStatus();
    }
    store::QueueId qid{id_, static_cast<uint8_t>(bucket)};
    absl::StatusOr<uint32_t> q = config_.store->OpenQueue(qid);
    if (!q.ok()) return q.status();
    store_queues_[bucket] = *q;
    // Release: publishes store_queues_[bucket] to the executor and workers.
    has_queue_[bucket].store(true, std::memory_order_release);
    return absl::OkStatus();
  }
  if (owned_lanes_[bucket] == nullptr) {
    owned_lanes_[bucket] =
        std::make_unique<MpscRing<QueuedRef>>(config_.lane_capacity);
    // Release: the ring's initialised slots are visible to whoever loads the
    // pointer with acquire (Push, the executor).
    lanes_[bucket].store(owned_lanes_[bucket].get(), std::memory_order_release);
  }
  return absl::OkStatus();
}

absl::Status Endpoint::AdoptStoreQueues() {
  if (config_.store == nullptr) return absl::OkStatus();
  std::vector<store::QueueId> queues = config_.store->ListQueues();
  for (const store::QueueId& q : queues) {
    if (q.endpoint_id == id_ && q.priority < kPriorityBuckets) {
      absl::Status s = EnsureLane(q.priority);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

void Endpoint::SetSink(std::shared_ptr<Sink> sink) {
  {
    std::lock_guard<std::mutex> lock(sink_mu_);
    has_sink_.store(sink != nullptr, std::memory_order_relaxed);
    sink_ = std::move(sink);
    // Release: the executor acquires the generation, then locks sink_mu_.
    sink_generation_.fetch_add(1, std::memory_order_release);
  }
  Schedule();
}

void Endpoint::SetRemoved(bool removed) {
  removed_.store(removed, std::memory_order_release);
  Schedule();
}

void Endpoint::BeginClose(bool drain, absl::Time deadline) {
  drain_.store(drain, std::memory_order_relaxed);
  close_deadline_us_.store(absl::ToUnixMicros(deadline),
                           std::memory_order_relaxed);
  // Release: publishes drain_ and the deadline with the flag.
  closing_.store(true, std::memory_order_release);
  Schedule();
}

void Endpoint::Join() {
  // Acquire: pairs with the release store in Finish; the executor's last
  // writes (counters, released messages) are visible.
  while (finished_.load(std::memory_order_acquire) == 0) {
    // Again and again: a draining executor that waits for a retry must see
    // the close deadline pass (a spurious slice costs little).
    Schedule();
    FutexWait(&finished_, 0, kJoinPollMicros);
  }
  // A completer that handed a batch over may still be inside
  // OnBatchCompleted (a few instructions).
  while (completing_.load(std::memory_order_acquire) != 0) {
    std::this_thread::yield();
  }
}

void Endpoint::OnBatchCompleted() {
  // Raised before the executor can see the batch as complete (batch_ready_
  // below), so that Join, which runs after the executor finished, waits for
  // the decrement: nothing of `this` is touched after it.
  completing_.fetch_add(1, std::memory_order_relaxed);
  // Release: the outcomes (acquired by the count's decrement chain) and the
  // count reaching 0 happen before the slice that reads this with acquire.
  batch_ready_.store(true, std::memory_order_release);
  Schedule();
  completing_.fetch_sub(1, std::memory_order_release);
}

uint64_t Endpoint::Finished() const {
  return delivered_.load(std::memory_order_relaxed) +
         expired_.load(std::memory_order_relaxed) +
         rejected_.load(std::memory_order_relaxed) +
         dropped_dead_.load(std::memory_order_relaxed) +
         dropped_removed_.load(std::memory_order_relaxed) +
         dropped_close_.load(std::memory_order_relaxed);
}

bool Endpoint::Idle() const {
  if (!has_sink_.load(std::memory_order_relaxed)) return true;
  if (config_.store != nullptr) {
    // store_idle_ is set only when the executor found the store empty with
    // no batch of its own.
    return in_flight_.load(std::memory_order_acquire) == 0 &&
           store_idle_.load(std::memory_order_acquire) ==
               store_appended_.load(std::memory_order_acquire);
  }
  // Every reference pushed has been finished (delivered, expired, rejected
  // or dropped). Pushes are read first: a later push only makes this
  // conservative.
  uint64_t pushed = 0;
  for (int b = 0; b < kPriorityBuckets; ++b) {
    const MpscRing<QueuedRef>* lane = lanes_[b].load(std::memory_order_acquire);
    if (lane != nullptr) pushed += lane->Pushed();
  }
  return Finished() >= pushed;
}

std::shared_ptr<Sink> Endpoint::CurrentSink() {
  // Acquire: pairs with the release increment in SetSink.
  const uint64_t gen = sink_generation_.load(std::memory_order_acquire);
  if (gen != cached_sink_generation_) {
    std::lock_guard<std::mutex> lock(sink_mu_);
    cached_sink_ = sink_;
    cached_sink_generation_ = sink_generation_.load(std::memory_order_relaxed);
  }
  return cached_sink_;
}

void Endpoint::Count(Reason reason, uint64_t n) {
  if (n == 0) return;
  switch (reason) {
    case Reason::kExpired:
      Bump(expired_, n);
      break;
    case Reason::kRejected:
      Bump(rejected_, n);
      break;
    case Reason::kDead:
      Bump(dropped_dead_, n);
      break;
    case Reason::kRemoved:
      Bump(dropped_removed_, n);
      break;
    case Reason::kClose:
      Bump(dropped_close_, n);
      break;
    case Reason::kDelivered:
      Bump(delivered_, n);
      break;
  }
}

void Endpoint::ReleaseCurrent(size_t i) {
  Pending& p = current_[i];
  if (p.node != nullptr) {
    MessageNode::Unref(p.node);
    p.node = nullptr;
  }
}

void Endpoint::DropCurrent(Reason reason) {
  if (current_.empty()) return;
  // Store mode: a dropped batch is checkpointed (gone for good), except at
  // close, where it stays in the store for the next run.
  if (config_.store != nullptr && reason != Reason::kClose) {
    for (const Pending& p : current_) {
      done_offset_ = std::max(done_offset_, p.offset);
    }
  }
  for (size_t i = 0; i < current_.size(); ++i) ReleaseCurrent(i);
  if (config_.store == nullptr || reason != Reason::kClose) {
    Count(reason, current_.size());
  }
  current_.clear();
  if (config_.store != nullptr && reason == Reason::kClose) {
    // Keep the checkpoint below what was not delivered: the next run
    // delivers it again.
    done_offsets_.clear();
    done_offset_ = 0;
    return;
  }
  FinishStoreBatch();
}

void Endpoint::DrainAll(Reason reason) {
  if (config_.store != nullptr) {
    if (reason == Reason::kClose) return;  // stays in the store
    while (TakeFromStore()) DropCurrent(reason);
    return;
  }
  for (int b = 0; b < kPriorityBuckets; ++b) {
    MpscRing<QueuedRef>* lane = lanes_[b].load(std::memory_order_acquire);
    if (lane == nullptr) continue;
    QueuedRef ref;
    uint64_t n = 0;
    while (lane->TryPop(&ref)) {
      MessageNode::Unref(ref.node);
      ++n;
    }
    Count(reason, n);
  }
}

bool Endpoint::TakeBatch() {
  if (config_.store != nullptr) return TakeFromStore();
  QueuedRef refs[256];
  const size_t max = std::min<size_t>(config_.batch_size, 256);
  for (int b = 0; b < kPriorityBuckets; ++b) {
    MpscRing<QueuedRef>* lane = lanes_[b].load(std::memory_order_acquire);
    if (lane == nullptr) continue;
    const size_t n = lane->PopBatch(refs, max);
    if (n == 0) continue;
    current_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      Pending& p = current_[i];
      p.node = refs[i].node;
      p.expires_wall_us = refs[i].expires_wall_us;
      p.admit_wall_us = refs[i].node->admit_wall_us;
      p.admit_mono_us = refs[i].node->admit_mono_us;
      p.offset = 0;
    }
    current_bucket_ = b;
    in_flight_bucket_.store(b, std::memory_order_relaxed);
    return true;
  }
  return false;
}

bool Endpoint::TakeFromStore() {
  // Acquire: pairs with NoteStoreAppend; what was appended before is
  // readable.
  const uint64_t appended = store_appended_.load(std::memory_order_acquire);
  if (!store_initial_scan_ && appended == store_seen_) return false;
  const size_t max = config_.batch_size;
  for (int b = 0; b < kPriorityBuckets; ++b) {
    if (!has_queue_[b].load(std::memory_order_acquire)) continue;
    const uint32_t q = store_queues_[b];
    absl::Status s = started_[b] ? config_.store->ReadAfter(q, read_offset_[b],
                                                            max, &store_buf_)
                                 : config_.store->Read(q, max, &store_buf_);
    if (!s.ok()) {
      Bump(store_errors_);
      continue;
    }
    if (store_buf_.empty()) continue;
    current_.resize(store_buf_.size());
    for (size_t i = 0; i < store_buf_.size(); ++i) {
      store::StoredMessage& m = store_buf_[i];
      Pending& p = current_[i];
      p.node = nullptr;
      p.offset = m.offset;
      p.expires_wall_us = m.expiry_us;
      p.admit_wall_us = m.enqueue_time_us;
      p.admit_mono_us = 0;
      // FlatBuffers needs 8-byte alignment: std::string storage from the
      // usual allocators has it; otherwise keep an aligned copy.
      if (reinterpret_cast<uintptr_t>(m.bytes.data()) % 8 != 0) {
        if (store_aligned_.size() <= i) store_aligned_.resize(i + 1);
        store_aligned_[i].resize((m.bytes.size() + 7) / 8);
        std::memcpy(store_aligned_[i].data(), m.bytes.data(), m.bytes.size());
        p.data = reinterpret_cast<const uint8_t*>(store_aligned_[i].data());
      } else {
        p.data = reinterpret_cast<const uint8_t*>(m.bytes.data());
      }
      p.size = m.bytes.size();
    }
    read_offset_[b] = store_buf_.back().offset;
    started_[b] = true;
    current_bucket_ = b;
    in_flight_bucket_.store(b, std::memory_order_relaxed);
    return true;
  }
  store_seen_ = appended;
  store_initial_scan_ = false;
  // Release: WaitIdle's reader sees the executor is caught up.
  store_idle_.store(appended, std::memory_order_release);
  return false;
}

void Endpoint::FinishStoreBatch() {
  if (config_.store == nullptr) return;
  // Checkpoint the highest finished offset below the lowest one still to be
  // retried (everything when nothing is).
  uint64_t limit = UINT64_MAX;
  for (const Pending& p : current_) limit = std::min(limit, p.offset);
  uint64_t ckpt = 0;
  if (limit == UINT64_MAX) {
    ckpt = done_offset_;
  } else {
    for (uint64_t off : done_offsets_) {
      if (off < limit) ckpt = std::max(ckpt, off);
    }
  }
  if (current_.empty()) done_offsets_.clear();
  if (ckpt > checkpointed_[current_bucket_]) {
    absl::Status s =
        config_.store->Checkpoint(store_queues_[current_bucket_], ckpt);
    if (s.ok()) {
      checkpointed_[current_bucket_] = ckpt;
    } else {
      Bump(store_errors_);
    }
  }
  if (current_.empty()) done_offset_ = 0;
}

void Endpoint::PublishOldest() {
  int64_t oldest = current_.empty() ? 0 : current_.front().admit_wall_us;
  if (config_.store == nullptr) {
    for (int b = 0; b < kPriorityBuckets; ++b) {
      MpscRing<QueuedRef>* lane = lanes_[b].load(std::memory_order_acquire);
      QueuedRef ref;
      if (lane != nullptr && lane->Front(&ref)) {
        const int64_t t = ref.node->admit_wall_us;
        if (oldest == 0 || t < oldest) oldest = t;
      }
    }
  }
  oldest_admit_wall_us_.store(oldest, std::memory_order_relaxed);
}

PoolTask::Slice Endpoint::RunSlice() {
  using Next = Slice::Next;
  const bool store_mode = config_.store != nullptr;
  const int64_t slice_end = RealMonoMicros() + kSliceMicros;
  for (int step = 0;; ++step) {
    if (awaiting_completion_) {
      // Acquire: pairs with OnBatchCompleted; the outcomes are visible.
      if (!batch_ready_.load(std::memory_order_acquire)) {
        return Slice{Next::kIdle, 0};  // the last Complete schedules us
      }
      batch_ready_.store(false, std::memory_order_relaxed);
      awaiting_completion_ = false;
      FinishAttempt();
      continue;
    }
    if (step >= kMaxStepsPerSlice ||
        (step > 0 && RealMonoMicros() >= slice_end)) {
      return Slice{Next::kMore, 0};
    }
    const bool closing = closing_.load(std::memory_order_acquire);
    if (removed_.load(std::memory_order_acquire)) {
      DropCurrent(Reason::kRemoved);
      DrainAll(Reason::kRemoved);
      in_flight_.store(0, std::memory_order_release);
      oldest_admit_wall_us_.store(0, std::memory_order_relaxed);
      if (closing) return Finish();
      return Slice{Next::kIdle, 0};  // the next Push schedules us
    }
    if (closing) {
      // With a store everything is persisted: stop after the batch in
      // flight.
      const bool drain =
          drain_.load(std::memory_order_relaxed) && config_.store == nullptr;
      const bool late =
          RealNowMicros() >= close_deadline_us_.load(std::memory_order_relaxed);
      if (!drain || late) return Finish();
    }
    if (current_.empty() && !has_sink_.load(std::memory_order_acquire) &&
        !dead_) {
      // No sink: leave the messages in their lanes (so priorities still
      // apply when one is set) until SetSink schedules us. Keep the
      // oldest-age gauge current (a Push schedules us too).
      if (closing) return Finish();
      PublishOldest();
      return Slice{Next::kIdle, 0};
    }
    if (current_.empty()) {
      if (!TakeBatch()) {
        in_flight_.store(0, std::memory_order_release);
        oldest_admit_wall_us_.store(0, std::memory_order_relaxed);
        if (closing) return Finish();  // drained
        return Slice{Next::kIdle, 0};
      }
      attempt_ = 0;
      // Release: Idle() readers see the batch before the lane looks empty.
      in_flight_.store(current_.size(), std::memory_order_release);
    }

    // TTL, before every attempt.
    const int64_t now_wall = clock_->NowMicros();
    size_t keep = 0;
    uint64_t expired = 0;
    for (size_t i = 0; i < current_.size(); ++i) {
      if (current_[i].expires_wall_us <= now_wall) {
        done_offset_ = std::max(done_offset_, current_[i].offset);
        if (store_mode) done_offsets_.push_back(current_[i].offset);
        ReleaseCurrent(i);
        ++expired;
        continue;
      }
      if (keep != i) current_[keep] = std::move(current_[i]);
      ++keep;
    }
    current_.resize(keep);
    Count(Reason::kExpired, expired);
    if (current_.empty()) {
      FinishStoreBatch();
      continue;
    }
    in_flight_.store(current_.size(), std::memory_order_release);
    PublishOldest();

    const int64_t now_mono = clock_->MonotonicMicros();
    if (dead_) {
      if (now_mono < revive_mono_us_) {
        DropCurrent(Reason::kDead);
        continue;
      }
      dead_ = false;
      dead_flag_.store(false, std::memory_order_relaxed);
    }
    if (attempt_ > 0 && now_mono < next_attempt_mono_us_) {
      return Slice{Next::kWakeAt, next_attempt_mono_us_};
    }
    std::shared_ptr<Sink> sink = CurrentSink();
    if (sink == nullptr) return Slice{Next::kIdle, 0};  // SetSink schedules

    // Deliver.
    const size_t n = current_.size();
    batch_.views_.resize(n);
    batch_.expires_wall_us_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const Pending& p = current_[i];
      batch_.views_[i] = p.node != nullptr
                             ? p.node->view()
                             : MessageView::FromTrustedBytes(
                                   absl::MakeConstSpan(p.data, p.size));
      batch_.expires_wall_us_[i] = p.expires_wall_us;
    }
    batch_.outcomes_.assign(n, DeliveryOutcome::kRetry);
    batch_.priority_ = BucketPriority(current_bucket_);
    batch_.attempt_ = attempt_ + 1;
    if (attempt_ > 0) Bump(retried_, n);
    // Relaxed: Deliver is called after this store on this thread, and the
    // sink's completions are ordered after Deliver. The extra unit is ours.
    batch_.remaining_.store(static_cast<uint32_t>(n) + 1,
                            std::memory_order_relaxed);
    sink->Deliver(&batch_);
    // acq_rel: if this takes the count to 0, every completion's outcome
    // (released by its decrement) is visible; otherwise our earlier writes
    // go to the completer that will.
    if (batch_.remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1) {
      // The sink answers later: free this pool thread.
      awaiting_completion_ = true;
      delivering_sink_ = std::move(sink);
      return Slice{Next::kIdle, 0};
    }
    FinishAttempt();
  }
}

void Endpoint::FinishAttempt() {
  delivering_sink_.reset();
  const bool store_mode = config_.store != nullptr;
  const size_t n = batch_.views_.size();
  ++attempt_;
  const int64_t done_wall = clock_->NowMicros();
  const int64_t done_mono = clock_->MonotonicMicros();
  size_t keep = 0;
  uint64_t delivered = 0, rejected = 0;
  for (size_t i = 0; i < n; ++i) {
    const DeliveryOutcome o = batch_.outcomes_[i];
    if (o == DeliveryOutcome::kRetry) {
      if (keep != i) current_[keep] = std::move(current_[i]);
      ++keep;
      continue;
    }
    Pending& p = current_[i];
    if (o == DeliveryOutcome::kDelivered) {
      ++delivered;
      const int64_t latency = p.admit_mono_us != 0
                                  ? done_mono - p.admit_mono_us
                                  : done_wall - p.admit_wall_us;
      const int bucket = LatencyBucket(latency, kLatencyBuckets);
      Bump(latency_counts_[bucket]);
      Bump(latency_sum_us_, static_cast<uint64_t>(latency > 0 ? latency : 0));
    } else {
      ++rejected;
    }
    if (store_mode) {
      done_offset_ = std::max(done_offset_, p.offset);
      done_offsets_.push_back(p.offset);
    }
    ReleaseCurrent(i);
  }
  current_.resize(keep);
  Bump(latency_count_, delivered);
  Count(Reason::kDelivered, delivered);
  Count(Reason::kRejected, rejected);
  FinishStoreBatch();
  if (!current_.empty()) {
    if (config_.retry.max_attempts > 0 &&
        attempt_ >= config_.retry.max_attempts) {
      DropCurrent(Reason::kDead);
      dead_ = true;
      dead_flag_.store(true, std::memory_order_relaxed);
      revive_mono_us_ = done_mono + config_.revive_period_us;
    } else {
      const double jitter = config_.retry.jitter;
      std::uniform_real_distribution<double> dist(1.0 - jitter, 1.0 + jitter);
      const double factor = jitter > 0 ? dist(rng_) : 1.0;
      next_attempt_mono_us_ =
          done_mono +
          BackoffMicros(attempt_,
                        absl::ToInt64Microseconds(config_.retry.initial),
                        absl::ToInt64Microseconds(config_.retry.max), factor);
      next_retry_mono_us_.store(next_attempt_mono_us_,
                                std::memory_order_relaxed);
    }
  }
  if (current_.empty()) {
    next_retry_mono_us_.store(0, std::memory_order_relaxed);
  }
  in_flight_.store(current_.size(), std::memory_order_release);
}

PoolTask::Slice Endpoint::Finish() {
  // Whatever is left (no sink to drain to, or not draining) is dropped and
  // counted; in store mode it stays in the store.
  DropCurrent(Reason::kClose);
  DrainAll(Reason::kClose);
  in_flight_.store(0, std::memory_order_release);
  oldest_admit_wall_us_.store(0, std::memory_order_relaxed);
  CancelTimer();
  // Release: pairs with Join's acquire load. After this store the owner may
  // destroy the endpoint: only the futex wake (which uses the address, not
  // the memory) follows, and the pool does not touch a finished task.
  finished_.store(1, std::memory_order_release);
  FutexWake(&finished_);
  return Slice{Slice::Next::kFinished, 0};
}

EndpointMetrics Endpoint::Metrics() const {
  EndpointMetrics m;
  m.endpoint_id = id_;
  uint64_t enqueued = 0, depth = 0;
  if (config_.store != nullptr) {
    enqueued = store_appended_.load(std::memory_order_relaxed);
  } else {
    for (int b = 0; b < kPriorityBuckets; ++b) {
      const MpscRing<QueuedRef>* lane =
          lanes_[b].load(std::memory_order_acquire);
      if (lane == nullptr) continue;
      enqueued += lane->Pushed();
      const uint64_t lane_depth = lane->SizeGuess();
      depth += lane_depth;
      m.queue_depth_by_priority[b] = lane_depth;
    }
  }
  m.enqueued = enqueued;
  m.delivered = delivered_.load(std::memory_order_relaxed);
  m.retried = retried_.load(std::memory_order_relaxed);
  m.expired = expired_.load(std::memory_order_relaxed);
  m.rejected = rejected_.load(std::memory_order_relaxed);
  m.dropped_queue_full = dropped_queue_full_.load(std::memory_order_relaxed);
  m.dropped_dead = dropped_dead_.load(std::memory_order_relaxed);
  m.dropped_removed = dropped_removed_.load(std::memory_order_relaxed);
  m.dropped_close = dropped_close_.load(std::memory_order_relaxed);
  const uint64_t in_flight = in_flight_.load(std::memory_order_relaxed);
  m.queue_depth = depth + in_flight;
  if (config_.store == nullptr) {
    m.queue_depth_by_priority[in_flight_bucket_.load(
        std::memory_order_relaxed)] += in_flight;
  }
  const int64_t oldest = oldest_admit_wall_us_.load(std::memory_order_relaxed);
  if (oldest != 0) {
    const int64_t age = clock_->NowMicros() - oldest;
    m.oldest_message_age_micros = age > 0 ? age : 0;
  }
  m.next_retry_mono_micros =
      next_retry_mono_us_.load(std::memory_order_relaxed);
  m.has_sink = has_sink_.load(std::memory_order_relaxed);
  m.dead = dead_flag_.load(std::memory_order_relaxed);
  for (int i = 0; i < kLatencyBuckets; ++i) {
    m.latency.counts[i] = latency_counts_[i].load(std::memory_order_relaxed);
  }
  m.latency.count = latency_count_.load(std::memory_order_relaxed);
  m.latency.sum_micros = latency_sum_us_.load(std::memory_order_relaxed);
  return m;
}

int64_t Endpoint::NextRetryMonoMicros() const {
  return next_retry_mono_us_.load(std::memory_order_relaxed);
}

}  // namespace edgeroute::router::internal
