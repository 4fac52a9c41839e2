#include "router/router.h"

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "query/manifest.h"
#include "router/internal/endpoint.h"
#include "router/internal/event_count.h"
#include "router/internal/executor_pool.h"
#include "router/internal/message_node.h"
#include "router/internal/mpsc_ring.h"
#include "router/internal/node_cache.h"
#include "router/internal/route_table.h"
#include "store/store.h"

namespace edgeroute::router {

using internal::Bump;
using internal::Doorbell;
using internal::Endpoint;
using internal::EndpointConfig;
using internal::ExecutorPool;
using internal::FutexWait;
using internal::FutexWake;
using internal::kCacheLine;
using internal::MessageNode;
using internal::MpscRing;
using internal::QueuedRef;
using internal::RouteCounters;
using internal::RouteTable;

Sink::~Sink() = default;

void DeliveryBatch::Complete(size_t i, DeliveryOutcome outcome) {
  outcomes_[i] = outcome;
  // acq_rel: publishes outcomes_[i] (and acquires the earlier completions'
  // outcomes when this is the last one). Reaching 0 here means the executor
  // has left Deliver: the batch goes back to its endpoint, which stays
  // alive until that hand-off is over (Endpoint::OnBatchCompleted, Join).
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    owner_->OnBatchCompleted();
  }
}

void DeliveryBatch::CompleteAll(DeliveryOutcome outcome) {
  for (DeliveryOutcome& o : outcomes_) o = outcome;
  const uint32_t n = static_cast<uint32_t>(outcomes_.size());
  // acq_rel: as in Complete. REQUIRES (no earlier Complete): the count was
  // n + 1 with the executor still in Deliver, else n.
  if (remaining_.fetch_sub(n, std::memory_order_acq_rel) == n) {
    owner_->OnBatchCompleted();
  }
}

int64_t LatencyHistogram::QuantileMicros(double q) const {
  if (count == 0) return 0;
  const double target = q * static_cast<double>(count);
  uint64_t seen = 0;
  for (int i = 0; i < kLatencyBuckets; ++i) {
    seen += counts[i];
    if (static_cast<double>(seen) >= target && counts[i] != 0) {
      return i < kLatencyBuckets - 1 ? (int64_t{1} << i) : INT64_MAX;
    }
  }
  return INT64_MAX;
}

namespace internal {

// The rendezvous of a store-mode Send with its dispatch worker.
struct SendWaiter {
  // The futex word Send sleeps on: kPending until the worker has set
  // `status` (then kDone); kSleeping once Send is about to sleep, so the
  // worker makes the wake-up system call only for a Send that waits (a
  // batch's later messages are usually settled before Send looks).
  static constexpr uint32_t kPending = 0;
  static constexpr uint32_t kDone = 1;
  static constexpr uint32_t kSleeping = 2;
  std::atomic<uint32_t> done{kPending};
  absl::Status status;
};

}  // namespace internal

using internal::SendWaiter;

namespace {

constexpr size_t kDispatchBatch = 256;
constexpr size_t kSourceCacheLimit = 16384;
constexpr int kIdleSpins = 200;
// Messages ahead of the one being dispatched whose first bytes are
// prefetched: the producer wrote them on another core, and the worker's
// first reads (the source, the route's properties) otherwise wait for each
// message's cache lines in turn.
constexpr size_t kPrefetchAhead = 3;
constexpr size_t kPrefetchBytes = 512;

// One dispatch worker: its admission ring and thread.
struct Worker {
  explicit Worker(int i, size_t capacity) : index(i), ring(capacity) {}
  const int index;
  MpscRing<MessageNode*> ring;
  Doorbell not_empty;  // producers -> worker
  Doorbell not_full;   // worker -> producers waiting for room
  // Ring positions fully dispatched (release; read by UpdateRoutes and
  // WaitIdle with acquire).
  alignas(kCacheLine) std::atomic<uint64_t> processed{0};
  // Worker-written counters.
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> orphaned{0};
  std::thread thread;
};

void AppendEscaped(absl::string_view s, std::string* out) {
  for (char c : s) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '"') {
      out->append("\\\"");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

struct WorkerState;

class RouterImpl {
 public:
  explicit RouterImpl(const RouterOptions& options)
      : options_(options),
        clock_(options.clock != nullptr ? options.clock : SystemClock()) {}

  ~RouterImpl() { Close().IgnoreError(); }

  absl::Status Init(std::unique_ptr<query::RouteSet> set,
                    int64_t global_ttl_secs);
  absl::Status Install(std::unique_ptr<query::RouteSet> set,
                       int64_t global_ttl_secs);
  absl::Status Update(std::unique_ptr<query::RouteSet> set,
                      int64_t global_ttl_secs);
  absl::StatusOr<std::unique_ptr<query::RouteSet>> CompileRoutes(
      const std::vector<query::RouteSpec>& routes);

  absl::Status SetSink(absl::string_view endpoint_id,
                       std::shared_ptr<Sink> sink);
  // Pushes the message to its worker's ring (waiting for room up to the
  // admission timeout) and wakes the worker; with a store, `waiter` is told
  // when the message is appended. On error the message is not admitted.
  // With `wake_later`, the worker is not woken (unless its ring is full)
  // but its index is set there: the caller wakes it after a batch.
  absl::Status Enqueue(const MessageView& view, SendWaiter* waiter,
                       size_t* wake_later = nullptr);
  // Waits until the worker has settled `waiter`; returns its status.
  absl::Status Await(SendWaiter* waiter);
  absl::Status SendView(const MessageView& view);
  void SendViews(absl::Span<const MessageView> views,
                 absl::Span<absl::Status> results);
  absl::Status WaitIdle(absl::Duration timeout);
  void WakeExecutors();
  RouterMetrics GetMetrics() const;
  std::string PrometheusText() const;
  absl::Status Close();

  const RouterOptions& options() const { return options_; }

  std::atomic<uint64_t> rejected_invalid_{0};

 private:
  absl::StatusOr<Endpoint*> GetOrCreateEndpoint(const std::string& id);
  RouteCounters* GetOrCreateCounters(const std::string& name);
  void WorkerLoop(Worker* w);
  void Dispatch(Worker* w, MessageNode* const* nodes, size_t n,
                const RouteTable& table, WorkerState* state);
  // Adds the messages counted in the worker's source entries to their
  // routes' evaluated counters.
  void FlushEvaluated(Worker* w, const RouteTable& table, WorkerState* state);

  const RouterOptions options_;
  Clock* const clock_;

  std::vector<std::unique_ptr<Worker>> workers_;
  // Runs every endpoint's executor. Started in Init, stopped in Close after
  // every endpoint has finished.
  std::unique_ptr<ExecutorPool> pool_;

  // The current table. Workers re-read it when generation_ changes.
  mutable std::mutex table_mu_;
  std::shared_ptr<const RouteTable> table_ ABSL_GUARDED_BY(table_mu_);
  std::atomic<uint64_t> generation_{0};

  // Serialises UpdateRoutes and Close.
  std::mutex update_mu_;
  bool closed_ ABSL_GUARDED_BY(update_mu_) = false;
  std::atomic<bool> closing_{false};

  // Endpoints and route counters live until the router is destroyed.
  mutable std::mutex endpoints_mu_;
  std::map<std::string, std::unique_ptr<Endpoint>> endpoints_
      ABSL_GUARDED_BY(endpoints_mu_);
  std::map<std::string, std::unique_ptr<RouteCounters>> route_counters_
      ABSL_GUARDED_BY(endpoints_mu_);
  // Route name -> endpoint id in the current table (for metrics).
  absl::flat_hash_map<std::string, std::string> route_endpoint_
      ABSL_GUARDED_BY(endpoints_mu_);
  uint64_t endpoint_seed_ ABSL_GUARDED_BY(endpoints_mu_) = 1;

  std::atomic<uint64_t> rejected_full_{0};
  std::atomic<uint64_t> route_updates_{0};
};

// A source as the workers' candidate cache keys it: the text and the
// case-insensitive hash Enqueue already computed (MessageNode::source_hash),
// so that a lookup does not hash the text again. Equal texts have equal
// hashes; equality is exact.
struct SourceKey {
  absl::string_view text;
  uint64_t hash;
};
struct SourceCacheKey {
  std::string text;
  uint64_t hash;
};
struct SourceHash {
  using is_transparent = void;
  size_t operator()(const SourceKey& k) const { return size_t(k.hash); }
  size_t operator()(const SourceCacheKey& k) const { return size_t(k.hash); }
};
struct SourceEq {
  using is_transparent = void;
  static absl::string_view Text(const SourceKey& k) { return k.text; }
  static absl::string_view Text(const SourceCacheKey& k) { return k.text; }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return Text(a) == Text(b);
  }
};

// The routes a source can match, as a worker caches them.
struct SourceEntry {
  // Route indices, ascending.
  std::vector<uint32_t> candidates;
  // The candidates evaluated as one unit (one hash lookup for the routes
  // that compare one property with many constants).
  std::unique_ptr<query::RouteSelection> selection;
  // Messages of this source dispatched since the routes' evaluated counters
  // were last brought up to date: every candidate was evaluated for each,
  // so the counters get one addition per route per dispatch batch instead
  // of one per route per message (with thousands of routes, the counters'
  // cache lines were a large part of a message's cost).
  uint64_t unflushed = 0;
};

// Per-worker state that is not shared.
struct WorkerState {
  std::shared_ptr<const RouteTable> table;
  uint64_t generation = 0;
  std::unique_ptr<query::EvalScratch> scratch;
  // node_hash_map: `flush` keeps pointers to entries.
  absl::node_hash_map<SourceCacheKey, SourceEntry, SourceHash, SourceEq>
      source_cache;
  // Entries with unflushed messages (see SourceEntry).
  std::vector<SourceEntry*> flush;
  // The routes a message matched (room for every route of the table).
  std::vector<uint32_t> matched;
  // Dedup per message: best route per table endpoint index (-1 = none).
  std::vector<int32_t> best;
  std::vector<uint32_t> touched;
  // Endpoints to notify at the end of a dispatch batch.
  std::vector<uint8_t> notify_mark;
  std::vector<uint32_t> notify;
  // Store mode.
  std::vector<store::AppendItem> items;
  std::vector<store::QueueTarget> targets;
  std::vector<std::pair<size_t, size_t>> target_ranges;
  std::vector<uint64_t> appended_per_endpoint;
};

absl::StatusOr<Endpoint*> RouterImpl::GetOrCreateEndpoint(
    const std::string& id) {
  auto it = endpoints_.find(id);
  if (it != endpoints_.end()) return it->second.get();
  EndpointConfig config;
  config.batch_size = options_.endpoint_batch_size;
  config.lane_capacity = options_.endpoint_queue_capacity;
  config.retry = options_.retry;
  config.revive_period_us =
      absl::ToInt64Microseconds(options_.dead_revive_period);
  config.clock = clock_;
  config.store = options_.store;
  config.pool = pool_.get();
  config.seed = 0x9e3779b97f4a7c15ull * endpoint_seed_++;
  auto ep = std::make_unique<Endpoint>(id, config);
  EDGEROUTE_RETURN_IF_ERROR(ep->AdoptStoreQueues());
  Endpoint* raw = ep.get();
  endpoints_.emplace(id, std::move(ep));
  raw->Start();
  return raw;
}

RouteCounters* RouterImpl::GetOrCreateCounters(const std::string& name) {
  auto& slot = route_counters_[name];
  if (slot == nullptr) {
    slot = std::make_unique<RouteCounters>(name, options_.dispatch_workers);
  }
  return slot.get();
}

absl::StatusOr<std::unique_ptr<query::RouteSet>> RouterImpl::CompileRoutes(
    const std::vector<query::RouteSpec>& routes) {
  query::CompileOptions copts;
  copts.device_id = options_.device_id;
  std::vector<query::Diagnostic> diags;
  return query::RouteSet::Compile(routes, copts, &diags);
}

absl::Status RouterImpl::Install(std::unique_ptr<query::RouteSet> set,
                                 int64_t global_ttl_secs) {
  // REQUIRES: update_mu_ held by the caller (or Init before threads run).
  std::shared_ptr<const RouteTable> table;
  std::shared_ptr<const RouteTable> old;
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    old = table_;
  }
  {
    std::lock_guard<std::mutex> lock(endpoints_mu_);
    auto resolve = [this](const std::string& id,
                          int bucket) -> absl::StatusOr<Endpoint*> {
      EDGEROUTE_ASSIGN_OR_RETURN(Endpoint * ep, GetOrCreateEndpoint(id));
      EDGEROUTE_RETURN_IF_ERROR(ep->EnsureLane(bucket));
      return ep;
    };
    auto counters = [this](const std::string& name) {
      return GetOrCreateCounters(name);
    };
    const uint64_t gen = generation_.load(std::memory_order_relaxed) + 1;
    EDGEROUTE_ASSIGN_OR_RETURN(
        table, RouteTable::Build(std::move(set), global_ttl_secs, gen, resolve,
                                 counters));
    route_endpoint_.clear();
    for (size_t i = 0; i < table->size(); ++i) {
      const auto& info = table->set().route(i);
      route_endpoint_[info.name] = info.sink.endpoint_id;
    }
  }
  // Barrier: every message admitted before this point is dispatched with
  // the old table. Waits for the workers to pass the ring positions claimed
  // so far (workers never block on endpoints, so this is short).
  if (old != nullptr) {
    for (auto& w : workers_) {
      const uint64_t target = w->ring.Pushed();
      while (w->processed.load(std::memory_order_acquire) < target) {
        absl::SleepFor(absl::Microseconds(50));
      }
    }
  }
  // The referenced endpoints live; the others follow the removal rule.
  absl::flat_hash_map<Endpoint*, bool> live;
  for (size_t e = 0; e < table->endpoint_count(); ++e) {
    live[table->endpoint(e)] = true;
    table->endpoint(e)->SetRemoved(false);
  }
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    table_ = table;
  }
  // Release: workers that acquire the new generation then lock table_mu_
  // and find the new table.
  generation_.store(table->generation(), std::memory_order_release);
  if (old != nullptr && options_.removed_endpoint_rule ==
                            RouterOptions::RemovedEndpointRule::kDrop) {
    for (size_t e = 0; e < old->endpoint_count(); ++e) {
      Endpoint* ep = old->endpoint(e);
      if (!live.contains(ep)) ep->SetRemoved(true);
    }
  }
  return absl::OkStatus();
}

absl::Status RouterImpl::Update(std::unique_ptr<query::RouteSet> set,
                                int64_t global_ttl_secs) {
  std::lock_guard<std::mutex> lock(update_mu_);
  if (closed_) return absl::FailedPreconditionError("router is closed");
  EDGEROUTE_RETURN_IF_ERROR(Install(std::move(set), global_ttl_secs));
  route_updates_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status RouterImpl::Init(std::unique_ptr<query::RouteSet> set,
                              int64_t global_ttl_secs) {
  const RouterOptions& o = options_;
  if (o.dispatch_workers < 1 || o.dispatch_workers > 256) {
    return absl::InvalidArgumentError("dispatch_workers must be 1..256");
  }
  if (o.admission_capacity < 1 || o.endpoint_queue_capacity < 1 ||
      o.endpoint_batch_size < 1) {
    return absl::InvalidArgumentError(
        "admission_capacity, endpoint_queue_capacity and endpoint_batch_size "
        "must be >= 1");
  }
  if (o.endpoint_queue_capacity > (size_t{1} << 30) ||
      o.admission_capacity > (size_t{1} << 30)) {
    return absl::InvalidArgumentError("queue capacities must be <= 2^30");
  }
  if (o.retry.jitter < 0 || o.retry.jitter >= 1) {
    return absl::InvalidArgumentError("retry.jitter must be in [0, 1)");
  }
  if (o.retry.initial < absl::ZeroDuration() || o.retry.max < o.retry.initial ||
      o.retry.max_attempts < 0) {
    return absl::InvalidArgumentError(
        "retry: need 0 <= initial <= max and max_attempts >= 0");
  }
  if (o.admission_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("admission_timeout must be >= 0");
  }
  if (o.executor_threads < 0 || o.executor_threads > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "executor_threads must be 0 (one per hardware thread, at most 8) or "
        "1..256, got ",
        o.executor_threads));
  }
  int executor_threads = o.executor_threads;
  if (executor_threads == 0) {
    const unsigned hardware = std::thread::hardware_concurrency();
    executor_threads = static_cast<int>(std::clamp(hardware, 1u, 8u));
  }
  pool_ = std::make_unique<ExecutorPool>(executor_threads, clock_);
  pool_->Start();
  for (int i = 0; i < o.dispatch_workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, o.admission_capacity));
  }
  if (o.store != nullptr) {
    // Endpoints with messages left in the store from an earlier run.
    std::lock_guard<std::mutex> lock(endpoints_mu_);
    for (const store::QueueId& q : o.store->ListQueues()) {
      EDGEROUTE_RETURN_IF_ERROR(GetOrCreateEndpoint(q.endpoint_id).status());
    }
  }
  EDGEROUTE_RETURN_IF_ERROR(Install(std::move(set), global_ttl_secs));
  for (auto& w : workers_) {
    Worker* raw = w.get();
    w->thread = std::thread([this, raw] { WorkerLoop(raw); });
  }
  return absl::OkStatus();
}

absl::Status RouterImpl::SetSink(absl::string_view endpoint_id,
                                 std::shared_ptr<Sink> sink) {
  if (endpoint_id.empty()) {
    return absl::InvalidArgumentError("empty endpoint id");
  }
  if (closing_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError("router is closed");
  }
  std::lock_guard<std::mutex> lock(endpoints_mu_);
  EDGEROUTE_ASSIGN_OR_RETURN(Endpoint * ep,
                             GetOrCreateEndpoint(std::string(endpoint_id)));
  ep->SetSink(std::move(sink));
  return absl::OkStatus();
}

absl::Status RouterImpl::SendView(const MessageView& view) {
  SendWaiter waiter;
  EDGEROUTE_RETURN_IF_ERROR(Enqueue(view, &waiter));
  if (options_.store == nullptr) return absl::OkStatus();
  return Await(&waiter);
}

void RouterImpl::SendViews(absl::Span<const MessageView> views,
                           absl::Span<absl::Status> results) {
  if (options_.store == nullptr) {
    for (size_t i = 0; i < views.size(); ++i) {
      results[i] = Enqueue(views[i], nullptr);
    }
    return;
  }
  // Everything is in the rings before the first wait, so that the workers
  // append the whole batch in one store write group instead of one message
  // per round trip.
  // Each worker is woken once, after the batch is in its ring (a wake-up
  // per message would make a system call each while the worker is on its
  // way).
  std::unique_ptr<SendWaiter[]> waiters(new SendWaiter[views.size()]);
  std::vector<char> wake(workers_.size(), 0);
  for (size_t i = 0; i < views.size(); ++i) {
    size_t worker = 0;
    results[i] = Enqueue(views[i], &waiters[i], &worker);
    if (results[i].ok()) wake[worker] = 1;
  }
  for (size_t w = 0; w < workers_.size(); ++w) {
    if (wake[w]) workers_[w]->not_empty.Notify();
  }
  // Last first: a worker settles its messages in ring order, so once a
  // worker's last message is settled so are its others, and Send sleeps
  // about once per worker instead of once per append group.
  for (size_t i = views.size(); i-- > 0;) {
    if (results[i].ok()) results[i] = Await(&waiters[i]);
  }
}

absl::Status RouterImpl::Enqueue(const MessageView& view, SendWaiter* waiter,
                                 size_t* wake_later) {
  MessageNode* node = MessageNode::New(view.bytes());
  const uint64_t hash = internal::HashSourceIgnoreCase(view.source());
  node->source_hash = hash;
  if (options_.store != nullptr) node->waiter = waiter;
  Worker* w = workers_[hash % workers_.size()].get();
  using Push = MpscRing<MessageNode*>::PushResult;
  Push r = w->ring.TryPush(node);
  // A full ring needs its worker awake to drain, deferred wake-up or not.
  if (r == Push::kFull && wake_later != nullptr) w->not_empty.Notify();
  for (int spin = 0; r == Push::kFull && spin < 64; ++spin) {
    // Brief back-off first: the worker frees room in microseconds.
    std::this_thread::yield();
    r = w->ring.TryPush(node);
  }
  if (r == Push::kFull) {
    // Slow path: wait for room, up to the admission timeout (real time).
    const absl::Time deadline = absl::Now() + options_.admission_timeout;
    for (;;) {
      const uint32_t key = w->not_full.PrepareWait();
      r = w->ring.TryPush(node);
      if (r != Push::kFull) {
        w->not_full.CancelWait(key);
        break;
      }
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        w->not_full.CancelWait(key);
        break;
      }
      w->not_full.Wait(key, absl::ToInt64Microseconds(left) + 1);
    }
  }
  if (r != Push::kOk) {
    MessageNode::Free(node);
    if (r == Push::kClosed) {
      return absl::FailedPreconditionError("router is closed");
    }
    rejected_full_.fetch_add(1, std::memory_order_relaxed);
    return absl::ResourceExhaustedError(
        absl::StrCat("admission queue full for ",
                     absl::FormatDuration(options_.admission_timeout)));
  }
  if (wake_later != nullptr) {
    *wake_later = hash % workers_.size();
  } else {
    // The push's claim (a seq_cst CAS) is what the worker checks before it
    // sleeps: no second fence needed.
    w->not_empty.NotifyAfterSeqCstRmw();
  }
  return absl::OkStatus();
}

absl::Status RouterImpl::Await(SendWaiter* waiter) {
  for (;;) {
    // Acquire: pairs with the worker's release exchange; status is visible.
    uint32_t state = waiter->done.load(std::memory_order_acquire);
    if (state == SendWaiter::kDone) break;
    if (state == SendWaiter::kPending &&
        !waiter->done.compare_exchange_strong(state, SendWaiter::kSleeping,
                                              std::memory_order_acquire)) {
      continue;  // settled meanwhile
    }
    FutexWait(&waiter->done, SendWaiter::kSleeping, 1'000'000);
  }
  return std::move(waiter->status);
}

void RouterImpl::WorkerLoop(Worker* w) {
  WorkerState state;
  MessageNode* nodes[kDispatchBatch];
  for (;;) {
    size_t n = w->ring.PopBatch(nodes, kDispatchBatch);
    for (int spin = 0; n == 0 && spin < kIdleSpins; ++spin) {
      // Spin briefly before sleeping: under load the next message is
      // microseconds away, and a producer that finds the worker awake skips
      // the futex wake-up system call.
      internal::CpuRelax();
      if (w->ring.SizeGuess() != 0) n = w->ring.PopBatch(nodes, kDispatchBatch);
    }
    if (n == 0) {
      if (w->ring.closed() && w->ring.Popped() == w->ring.Pushed()) break;
      const uint32_t key = w->not_empty.PrepareWait();
      if (w->ring.SizeGuess() != 0 || w->ring.closed()) {
        w->not_empty.CancelWait(key);
        // A producer claimed a slot and is about to publish it.
        std::this_thread::yield();
        continue;
      }
      // Memory a burst left in the node cache goes back to the allocator
      // once no message has needed it for a while.
      internal::NodeCache::TrimIfIdle();
      w->not_empty.Wait(key, 1'000'000);
      continue;
    }
    w->not_full.Notify();
    // Acquire: pairs with the release store in Install; checked after the
    // pop so that a message sent after UpdateRoutes returned meets the new
    // table.
    const uint64_t gen = generation_.load(std::memory_order_acquire);
    if (gen != state.generation || state.table == nullptr) {
      // The cached selections and the scratch belong to the old table's
      // route set: gone before the table may be.
      state.source_cache.clear();
      state.scratch.reset();
      {
        std::lock_guard<std::mutex> lock(table_mu_);
        state.table = table_;
      }
      state.generation = state.table->generation();
      state.scratch = state.table->set().NewScratch();
      state.matched.assign(state.table->set().size(), 0);
      state.best.assign(state.table->endpoint_count(), -1);
      state.notify_mark.assign(state.table->endpoint_count(), 0);
      state.appended_per_endpoint.assign(state.table->endpoint_count(), 0);
    }
    // One clock reading per batch: the enqueue time of these messages (TTL
    // start, latency start).
    const int64_t now_wall = clock_->NowMicros();
    const int64_t now_mono = clock_->MonotonicMicros();
    for (size_t i = 0; i < n; ++i) {
      nodes[i]->admit_wall_us = now_wall;
      nodes[i]->admit_mono_us = now_mono;
    }
    Dispatch(w, nodes, n, *state.table, &state);
    Bump(w->received, n);
    // Release: UpdateRoutes/WaitIdle acquire this and know these messages
    // are in their lanes.
    w->processed.store(w->ring.Popped(), std::memory_order_release);
  }
}

void RouterImpl::Dispatch(Worker* w, MessageNode* const* nodes, size_t n,
                          const RouteTable& table, WorkerState* s) {
  const bool store_mode = options_.store != nullptr;
  const query::RouteSet& set = table.set();
  uint64_t orphaned = 0;
  if (store_mode) {
    s->items.clear();
    s->targets.clear();
    s->target_ranges.clear();
  }
  for (size_t m = 0; m < n; ++m) {
    if (m + kPrefetchAhead < n) {
      const char* ahead =
          reinterpret_cast<const char*>(nodes[m + kPrefetchAhead]);
      for (size_t b = 0; b < kPrefetchBytes; b += kCacheLine) {
        __builtin_prefetch(ahead + b);
      }
    }
    MessageNode* node = nodes[m];
    const MessageView view = node->view();
    const absl::string_view source = view.source();
    auto it = s->source_cache.find(SourceKey{source, node->source_hash});
    if (it == s->source_cache.end()) {
      if (s->source_cache.size() >= kSourceCacheLimit) {
        FlushEvaluated(w, table, s);
        s->source_cache.clear();
      }
      SourceEntry entry;
      table.Candidates(source, &entry.candidates);
      entry.selection = set.Select(entry.candidates);
      it = s->source_cache
               .emplace(SourceCacheKey{std::string(source), node->source_hash},
                        std::move(entry))
               .first;
    }
    SourceEntry& entry = it->second;
    if (entry.unflushed++ == 0) s->flush.push_back(&entry);
    // Buffers are reused by the allocator: forget the previous message.
    if (s->scratch != nullptr) query::RouteSet::Reset(s->scratch.get());
    s->touched.clear();
    const size_t hits =
        entry.selection->Evaluate(view, s->scratch.get(), s->matched.data());
    for (size_t h = 0; h < hits; ++h) {
      const uint32_t idx = s->matched[h];
      const RouteTable::Route& r = table.route(idx);
      Bump(r.counters->slots[w->index].matched);
      int32_t& best = s->best[r.endpoint_index];
      if (best < 0) {
        best = static_cast<int32_t>(idx);
        s->touched.push_back(r.endpoint_index);
      } else if (r.bucket < table.route(best).bucket) {
        // Lowest priority number wins; on a tie the first route does.
        best = static_cast<int32_t>(idx);
      }
    }
    if (s->touched.empty()) {
      ++orphaned;
      if (store_mode) {
        s->target_ranges.emplace_back(s->targets.size(), 0);
      } else {
        MessageNode::Free(node);
      }
      continue;
    }
    if (store_mode) {
      const size_t begin = s->targets.size();
      for (uint32_t e : s->touched) {
        const RouteTable::Route& r = table.route(s->best[e]);
        store::QueueTarget t;
        t.queue = r.endpoint->store_queue(r.bucket);
        t.ttl_secs = r.ttl_us < 0 ? -1 : r.ttl_us / 1000000;
        if (r.ttl_us >= 0 && t.ttl_secs == 0) t.ttl_secs = 1;
        s->targets.push_back(t);
        ++s->appended_per_endpoint[e];
        s->best[e] = -1;
      }
      s->target_ranges.emplace_back(begin, s->targets.size() - begin);
      continue;
    }
    // Memory mode: the refs are set before the first push publishes the
    // node (relaxed; the push's release store publishes it).
    node->refs.store(static_cast<uint32_t>(s->touched.size()),
                     std::memory_order_relaxed);
    for (uint32_t e : s->touched) {
      const RouteTable::Route& r = table.route(s->best[e]);
      s->best[e] = -1;
      QueuedRef ref;
      ref.node = node;
      ref.expires_wall_us =
          r.ttl_us < 0 ? INT64_MAX : node->admit_wall_us + r.ttl_us;
      if (!r.endpoint->Push(r.bucket, ref)) MessageNode::Unref(node);
      if (!s->notify_mark[e]) {
        s->notify_mark[e] = 1;
        s->notify.push_back(e);
      }
    }
  }
  if (store_mode) {
    for (size_t m = 0; m < n; ++m) {
      const auto& range = s->target_ranges[m];
      if (range.second == 0) continue;
      store::AppendItem item;
      item.message = nodes[m]->bytes();
      item.targets =
          absl::MakeConstSpan(s->targets.data() + range.first, range.second);
      s->items.push_back(item);
    }
    absl::Status status =
        s->items.empty() ? absl::OkStatus() : options_.store->Append(s->items);
    for (size_t e = 0; e < s->appended_per_endpoint.size(); ++e) {
      uint64_t& count = s->appended_per_endpoint[e];
      if (count == 0) continue;
      if (status.ok()) {
        table.endpoint(e)->NoteStoreAppend(count);
        s->notify.push_back(static_cast<uint32_t>(e));
      }
      count = 0;
    }
    for (size_t m = 0; m < n; ++m) {
      SendWaiter* waiter = nodes[m]->waiter;
      MessageNode::Free(nodes[m]);
      if (waiter != nullptr) {
        waiter->status = status;
        // Release: publishes status to the Send that acquires done. The
        // waiter may be gone right after; only the address is used below.
        if (waiter->done.exchange(SendWaiter::kDone,
                                  std::memory_order_acq_rel) ==
            SendWaiter::kSleeping) {
          FutexWake(&waiter->done);
        }
      }
    }
  }
  for (uint32_t e : s->notify) {
    table.endpoint(e)->NotifyWork();
    if (e < s->notify_mark.size()) s->notify_mark[e] = 0;
  }
  s->notify.clear();
  FlushEvaluated(w, table, s);
  if (orphaned != 0) Bump(w->orphaned, orphaned);
}

void RouterImpl::FlushEvaluated(Worker* w, const RouteTable& table,
                                WorkerState* s) {
  for (SourceEntry* entry : s->flush) {
    for (const uint32_t c : entry->candidates) {
      Bump(table.route(c).counters->slots[w->index].evaluated,
           entry->unflushed);
    }
    entry->unflushed = 0;
  }
  s->flush.clear();
}

absl::Status RouterImpl::WaitIdle(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    bool idle = true;
    for (auto& w : workers_) {
      const uint64_t pushed = w->ring.Pushed();
      if (w->processed.load(std::memory_order_acquire) < pushed) idle = false;
    }
    if (idle) {
      std::lock_guard<std::mutex> lock(endpoints_mu_);
      for (auto& [id, ep] : endpoints_) {
        if (!ep->Idle()) {
          idle = false;
          break;
        }
      }
    }
    if (idle) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError("router did not become idle");
    }
    absl::SleepFor(absl::Microseconds(100));
  }
}

void RouterImpl::WakeExecutors() {
  std::lock_guard<std::mutex> lock(endpoints_mu_);
  for (auto& [id, ep] : endpoints_) ep->Wake();
}

RouterMetrics RouterImpl::GetMetrics() const {
  RouterMetrics m;
  for (const auto& w : workers_) {
    m.received += w->received.load(std::memory_order_relaxed);
    m.orphaned += w->orphaned.load(std::memory_order_relaxed);
    m.admission_queued += w->ring.SizeGuess();
  }
  m.rejected_full = rejected_full_.load(std::memory_order_relaxed);
  m.rejected_invalid = rejected_invalid_.load(std::memory_order_relaxed);
  m.route_updates = route_updates_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(endpoints_mu_);
  for (const auto& [name, counters] : route_counters_) {
    RouteMetrics r;
    r.name = name;
    auto it = route_endpoint_.find(name);
    if (it != route_endpoint_.end()) r.endpoint_id = it->second;
    r.evaluated = counters->Evaluated();
    r.matched = counters->Matched();
    m.routes.push_back(std::move(r));
  }
  for (const auto& [id, ep] : endpoints_) m.endpoints.push_back(ep->Metrics());
  if (options_.store != nullptr) {
    // Store mode: depth and oldest age from the store itself.
    store::Store::Stats stats = options_.store->GetStats();
    const int64_t now = clock_->NowMicros();
    for (EndpointMetrics& e : m.endpoints) {
      uint64_t depth = 0;
      int64_t oldest = 0;
      for (const auto& q : stats.queues) {
        if (q.id.endpoint_id != e.endpoint_id) continue;
        depth += q.depth;
        if (q.id.priority < kPriorityLevels) {
          e.queue_depth_by_priority[q.id.priority] += q.depth;
        }
        if (q.oldest_enqueue_us != 0 &&
            (oldest == 0 || q.oldest_enqueue_us < oldest)) {
          oldest = q.oldest_enqueue_us;
        }
      }
      e.queue_depth = depth;
      e.oldest_message_age_micros =
          oldest == 0 ? 0 : std::max<int64_t>(0, now - oldest);
    }
  }
  return m;
}

std::string RouterImpl::PrometheusText() const {
  const RouterMetrics m = GetMetrics();
  std::string out;
  auto header = [&out](const char* name, const char* type, const char* help) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                    type, "\n");
  };
  header("edgeroute_messages_received_total", "counter",
         "Messages admitted by Send.");
  absl::StrAppend(&out, "edgeroute_messages_received_total ", m.received, "\n");
  header("edgeroute_admission_queued", "gauge",
         "Messages admitted and waiting for a dispatch worker.");
  absl::StrAppend(&out, "edgeroute_admission_queued ", m.admission_queued,
                  "\n");
  header("edgeroute_messages_orphaned_total", "counter",
         "Messages that matched no route.");
  absl::StrAppend(&out, "edgeroute_messages_orphaned_total ", m.orphaned, "\n");
  header("edgeroute_send_rejected_total", "counter",
         "Sends refused, by reason.");
  absl::StrAppend(&out,
                  "edgeroute_send_rejected_total{reason=\"admission_full\"} ",
                  m.rejected_full, "\n");
  absl::StrAppend(&out, "edgeroute_send_rejected_total{reason=\"invalid\"} ",
                  m.rejected_invalid, "\n");
  header("edgeroute_route_updates_total", "counter",
         "Successful route table updates.");
  absl::StrAppend(&out, "edgeroute_route_updates_total ", m.route_updates,
                  "\n");

  auto route_label = [](const RouteMetrics& r) {
    std::string l = "{route=\"";
    AppendEscaped(r.name, &l);
    l += "\",endpoint=\"";
    AppendEscaped(r.endpoint_id, &l);
    l += "\"}";
    return l;
  };
  header("edgeroute_route_evaluated_total", "counter",
         "Messages whose source matched the route.");
  for (const RouteMetrics& r : m.routes) {
    absl::StrAppend(&out, "edgeroute_route_evaluated_total", route_label(r),
                    " ", r.evaluated, "\n");
  }
  header("edgeroute_route_matched_total", "counter",
         "Messages the route selected.");
  for (const RouteMetrics& r : m.routes) {
    absl::StrAppend(&out, "edgeroute_route_matched_total", route_label(r), " ",
                    r.matched, "\n");
  }

  auto ep_label = [](const EndpointMetrics& e, absl::string_view extra = "") {
    std::string l = "{endpoint=\"";
    AppendEscaped(e.endpoint_id, &l);
    l += "\"";
    if (!extra.empty()) absl::StrAppend(&l, ",", extra);
    l += "}";
    return l;
  };
  struct Counter {
    const char* name;
    const char* help;
    uint64_t EndpointMetrics::*field;
  };
  const Counter counters[] = {
      {"edgeroute_endpoint_enqueued_total", "Messages queued for the endpoint.",
       &EndpointMetrics::enqueued},
      {"edgeroute_endpoint_delivered_total", "Messages the sink accepted.",
       &EndpointMetrics::delivered},
      {"edgeroute_endpoint_retried_total",
       "Messages handed to the sink again after a retryable failure.",
       &EndpointMetrics::retried},
      {"edgeroute_endpoint_expired_total",
       "Messages whose TTL passed before delivery.", &EndpointMetrics::expired},
  };
  for (const Counter& c : counters) {
    header(c.name, "counter", c.help);
    for (const EndpointMetrics& e : m.endpoints) {
      absl::StrAppend(&out, c.name, ep_label(e), " ", e.*(c.field), "\n");
    }
  }
  header("edgeroute_endpoint_dropped_total", "counter",
         "Messages dropped for the endpoint, by reason.");
  for (const EndpointMetrics& e : m.endpoints) {
    const std::pair<const char*, uint64_t> reasons[] = {
        {"rejected", e.rejected},
        {"queue_full", e.dropped_queue_full},
        {"endpoint_dead", e.dropped_dead},
        {"endpoint_removed", e.dropped_removed},
        {"close", e.dropped_close},
    };
    for (const auto& [reason, value] : reasons) {
      absl::StrAppend(&out, "edgeroute_endpoint_dropped_total",
                      ep_label(e, absl::StrCat("reason=\"", reason, "\"")), " ",
                      value, "\n");
    }
  }
  header("edgeroute_endpoint_queue_depth", "gauge",
         "Messages queued or in flight.");
  for (const EndpointMetrics& e : m.endpoints) {
    absl::StrAppend(&out, "edgeroute_endpoint_queue_depth", ep_label(e), " ",
                    e.queue_depth, "\n");
  }
  header("edgeroute_endpoint_oldest_message_age_seconds", "gauge",
         "Age of the oldest queued message.");
  for (const EndpointMetrics& e : m.endpoints) {
    absl::StrAppend(
        &out, "edgeroute_endpoint_oldest_message_age_seconds", ep_label(e), " ",
        absl::StrFormat("%.6f", e.oldest_message_age_micros / 1e6), "\n");
  }
  header("edgeroute_endpoint_dead", "gauge",
         "1 while the endpoint is dead (dropping batches until revived).");
  for (const EndpointMetrics& e : m.endpoints) {
    absl::StrAppend(&out, "edgeroute_endpoint_dead", ep_label(e), " ",
                    e.dead ? 1 : 0, "\n");
  }
  header("edgeroute_endpoint_delivery_latency_seconds", "histogram",
         "Time from Send to the sink's acknowledgement.");
  for (const EndpointMetrics& e : m.endpoints) {
    uint64_t cumulative = 0;
    for (int i = 0; i < kLatencyBuckets; ++i) {
      cumulative += e.latency.counts[i];
      const std::string le =
          i == kLatencyBuckets - 1
              ? std::string("+Inf")
              : absl::StrFormat("%g",
                                static_cast<double>(int64_t{1} << i) / 1e6);
      absl::StrAppend(
          &out, "edgeroute_endpoint_delivery_latency_seconds_bucket",
          ep_label(e, absl::StrCat("le=\"", le, "\"")), " ", cumulative, "\n");
    }
    absl::StrAppend(&out, "edgeroute_endpoint_delivery_latency_seconds_sum",
                    ep_label(e), " ",
                    absl::StrFormat("%.6f", e.latency.sum_micros / 1e6), "\n");
    absl::StrAppend(&out, "edgeroute_endpoint_delivery_latency_seconds_count",
                    ep_label(e), " ", e.latency.count, "\n");
  }
  return out;
}

absl::Status RouterImpl::Close() {
  std::lock_guard<std::mutex> update_lock(update_mu_);
  if (closed_) return absl::OkStatus();
  closed_ = true;
  closing_.store(true, std::memory_order_release);
  // 1. No more admissions; the workers dispatch what was admitted.
  for (auto& w : workers_) {
    w->ring.Close();
    w->not_empty.Notify();
    w->not_full.Notify();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  // 2. The executors drain or stop.
  const absl::Time deadline = absl::Now() + options_.close_timeout;
  std::lock_guard<std::mutex> lock(endpoints_mu_);
  for (auto& [id, ep] : endpoints_) {
    ep->BeginClose(options_.drain_on_close, deadline);
  }
  for (auto& [id, ep] : endpoints_) ep->Join();
  // 3. Every executor has finished: nothing is queued on the pool any more.
  if (pool_ != nullptr) pool_->Stop();
  internal::NodeCache::Trim(internal::NodeCache::kIdleKeepBytes);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Router

Router::Router(std::unique_ptr<RouterImpl> impl) : impl_(std::move(impl)) {}
Router::~Router() = default;

absl::StatusOr<std::unique_ptr<Router>> Router::Create(
    const RouterOptions& options, std::vector<query::RouteSpec> routes,
    int64_t global_ttl_secs) {
  auto impl = std::make_unique<RouterImpl>(options);
  EDGEROUTE_ASSIGN_OR_RETURN(std::unique_ptr<query::RouteSet> set,
                             impl->CompileRoutes(routes));
  EDGEROUTE_RETURN_IF_ERROR(impl->Init(std::move(set), global_ttl_secs));
  return std::unique_ptr<Router>(new Router(std::move(impl)));
}

namespace {

struct ManifestRoutes {
  std::unique_ptr<query::RouteSet> set;
  int64_t ttl_secs = -1;
};

absl::StatusOr<ManifestRoutes> CompileManifest(absl::string_view manifest,
                                               const RouterOptions& options) {
  query::CompileOptions copts;
  copts.device_id = options.device_id;
  std::vector<query::Diagnostic> diags;
  EDGEROUTE_ASSIGN_OR_RETURN(
      query::CompiledEdgeHubConfig config,
      query::CompileEdgeHubConfig(manifest, copts, &diags));
  ManifestRoutes out;
  out.set = std::move(config.routes);
  out.ttl_secs = config.config.ttl_secs;
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Router>> Router::Create(
    const RouterOptions& options, absl::string_view manifest_json) {
  EDGEROUTE_ASSIGN_OR_RETURN(ManifestRoutes routes,
                             CompileManifest(manifest_json, options));
  auto impl = std::make_unique<RouterImpl>(options);
  EDGEROUTE_RETURN_IF_ERROR(impl->Init(std::move(routes.set), routes.ttl_secs));
  return std::unique_ptr<Router>(new Router(std::move(impl)));
}

absl::Status Router::SetSink(absl::string_view endpoint_id,
                             std::shared_ptr<Sink> sink) {
  return impl_->SetSink(endpoint_id, std::move(sink));
}

absl::Status Router::Send(absl::Span<const uint8_t> message) {
  if (!impl_->options().verify_messages) {
    return impl_->SendView(MessageView::FromTrustedBytes(message));
  }
  absl::StatusOr<MessageView> view = MessageView::Verify(message);
  if (!view.ok()) {
    impl_->rejected_invalid_.fetch_add(1, std::memory_order_relaxed);
    return view.status();
  }
  return impl_->SendView(*view);
}

absl::Status Router::SendView(const MessageView& message) {
  return impl_->SendView(message);
}

void Router::SendViews(absl::Span<const MessageView> messages,
                       absl::Span<absl::Status> results) {
  impl_->SendViews(messages, results);
}

absl::Status Router::SendBatch(
    absl::Span<const absl::Span<const uint8_t>> messages) {
  for (absl::Span<const uint8_t> m : messages) {
    EDGEROUTE_RETURN_IF_ERROR(Send(m));
  }
  return absl::OkStatus();
}

absl::Status Router::UpdateRoutes(absl::string_view manifest_json) {
  EDGEROUTE_ASSIGN_OR_RETURN(ManifestRoutes routes,
                             CompileManifest(manifest_json, impl_->options()));
  return impl_->Update(std::move(routes.set), routes.ttl_secs);
}

absl::Status Router::UpdateRoutes(std::vector<query::RouteSpec> routes,
                                  int64_t global_ttl_secs) {
  EDGEROUTE_ASSIGN_OR_RETURN(std::unique_ptr<query::RouteSet> set,
                             impl_->CompileRoutes(routes));
  return impl_->Update(std::move(set), global_ttl_secs);
}

absl::Status Router::WaitIdle(absl::Duration timeout) {
  return impl_->WaitIdle(timeout);
}

void Router::WakeExecutors() { impl_->WakeExecutors(); }

RouterMetrics Router::GetMetrics() const { return impl_->GetMetrics(); }

std::string Router::PrometheusText() const { return impl_->PrometheusText(); }

absl::Status Router::Close() { return impl_->Close(); }

}  // namespace edgeroute::router
