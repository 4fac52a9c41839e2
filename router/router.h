// The edgeroute router: the engine an application embeds. It takes a route
// table (an IoT Edge deployment manifest, its `$edgeHub` desired properties,
// or a list of routes), accepts messages from any number of threads, and
// hands each message to every endpoint whose route matched it -- at most once
// per endpoint, at the best priority among the matching routes, in order per
// (endpoint, priority), at least once.
//
// Flow: Send -> admission ring (one per dispatch worker, sharded by message
// source) -> dispatch worker (source index, route conditions, per-endpoint
// dedup) -> per-endpoint lane per priority -> endpoint executor (a task on a
// fixed pool of executor threads) -> Sink.
//
// Semantics (edgeHub's, see the route-language specification, section 6):
//  * An endpoint receives a message at most once however many routes select
//    it, at the lowest priority number among those routes (ties: the route
//    listed first), with that route's timeToLiveSecs, else the global TTL
//    of the table in force when the message is dispatched.
//  * A message that matches no route is counted as orphaned and released.
//  * Order: FIFO per (endpoint, priority) for the messages of one source
//    (messages of one source go through one dispatch worker). Nothing is
//    ordered across sources, priorities or endpoints.
//  * Each endpoint's executor takes a batch from its highest-priority
//    non-empty lane, delivers it, and starts over from the highest priority.
//    A batch finishes before the next starts (head-of-line per endpoint).
//  * TTL is checked before every delivery attempt, retries included. edgeHub
//    checks it only when it reads from its queue, so it may re-send an
//    expired message that is already in a retried batch; edgeroute never
//    delivers a message after its TTL.
//  * A full (endpoint, priority) lane drops the new message for that
//    endpoint only, counted as dropped{reason="queue_full"}; admission and
//    the other endpoints are unaffected. A stalled endpoint therefore costs
//    at most endpoint_queue_capacity messages of memory per priority.
//  * A full admission ring makes Send wait up to admission_timeout, then
//    fail with ResourceExhausted: nothing is dropped silently.
//
// Usage:
//   RouterOptions options;
//   auto router = Router::Create(options, manifest_json).value();
//   router->SetSink("iothub", std::make_shared<MyUpstreamSink>());
//   router->Send(builder.Finish());
//   ...
//   router->Close();

#ifndef EDGEROUTE_ROUTER_ROUTER_H_
#define EDGEROUTE_ROUTER_ROUTER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/clock.h"
#include "message/message.h"
#include "query/query.h"

namespace edgeroute::store {
class Store;
}  // namespace edgeroute::store

namespace edgeroute::router {

namespace internal {
class Endpoint;
}  // namespace internal

// What happened to one message of a delivery batch.
enum class DeliveryOutcome : uint8_t {
  // The endpoint has the message; it is released.
  kDelivered = 0,
  // A transient failure: the message is retried after the backoff delay
  // (while its TTL lasts).
  kRetry = 1,
  // A permanent failure: the message is dropped and counted as rejected.
  kReject = 2,
};

// A batch of messages handed to Sink::Deliver. All messages of a batch come
// from one priority lane of one endpoint, in queue order.
//
// Ownership: owned by the router. The messages stay valid until the batch is
// completed, i.e. until Complete/CompleteAll has been called for every
// message; after that the sink must not touch the batch again.
// Thread-safety: Complete may be called from any thread, concurrently for
// different indices. REQUIRES: each index is completed exactly once.
class DeliveryBatch {
 public:
  DeliveryBatch(const DeliveryBatch&) = delete;
  DeliveryBatch& operator=(const DeliveryBatch&) = delete;

  absl::string_view endpoint_id() const { return endpoint_id_; }
  size_t size() const { return views_.size(); }
  // REQUIRES: i < size().
  const MessageView& message(size_t i) const { return views_[i]; }
  // The priority the message was queued at (0-9, or kDefaultPriority).
  int priority() const { return priority_; }
  // 1 for the first attempt of these messages, 2 for the first retry, ...
  int attempt() const { return attempt_; }
  // When message i's TTL runs out (wall clock, microseconds since the Unix
  // epoch, by the router's clock); INT64_MAX = never. For sinks that pass
  // the remaining TTL on (an MQTT 5 message expiry interval).
  // REQUIRES: i < size().
  int64_t expires_wall_us(size_t i) const { return expires_wall_us_[i]; }

  // Reports the outcome for message i.
  void Complete(size_t i, DeliveryOutcome outcome);
  // Reports the same outcome for every message.
  // REQUIRES: no message of the batch was completed before.
  void CompleteAll(DeliveryOutcome outcome);

 private:
  friend class internal::Endpoint;
  DeliveryBatch() = default;

  std::string endpoint_id_;
  std::vector<MessageView> views_;
  std::vector<DeliveryOutcome> outcomes_;
  std::vector<int64_t> expires_wall_us_;
  int priority_ = query::kDefaultPriority;
  int attempt_ = 1;
  // Messages not completed yet, plus 1 while the executor is in Deliver.
  // Each completion decrements it (acq_rel, publishing its outcome);
  // whoever takes it to 0 ends the batch: the executor goes on, or the last
  // completion hands the batch back to the owner (a pool task).
  std::atomic<uint32_t> remaining_{0};
  internal::Endpoint* owner_ = nullptr;
};

// The user's side of an endpoint.
// Thread-safety: Deliver is called on one of the router's executor threads
// (a pool of RouterOptions::executor_threads shared by every endpoint), for
// one endpoint one batch at a time (the next batch comes after every message
// of the previous one is completed), not always on the same thread.
//
// Isolation: a sink that may wait (a network write, an acknowledgement from
// a client) should return from Deliver at once and complete the messages
// later from its own thread: while it waits it holds no executor thread, so
// any number of slow endpoints leave the others running. A Deliver that
// blocks holds one executor thread until it returns; the other endpoints
// keep running as long as fewer than executor_threads sinks block at the
// same time.
class Sink {
 public:
  virtual ~Sink();
  // Delivers `batch`. Returns at once or after delivering; either way it must
  // eventually complete every message (from any thread). A sink that wants
  // strict ordering on failure reports kRetry for every message after the
  // first failed one, as edgeHub's module endpoints do.
  virtual void Deliver(DeliveryBatch* batch) = 0;
};

// Retry of messages a sink reported as kRetry. The delay before retry n
// (n = 1, 2, ...) is min(initial + (2^(n-1) - 1) * U(1 - jitter, 1 + jitter)
// * initial, max): 1 s, ~2 s, ~4 s, ... up to 60 s by default --
// edgeHub's ExponentialBackoff with its defaults.
struct RetryPolicy {
  absl::Duration initial = absl::Seconds(1);
  absl::Duration max = absl::Seconds(60);
  // Relative jitter in [0, 1).
  double jitter = 0.2;
  // Attempts per batch before the endpoint is declared dead and the batch
  // dropped (counted); 0 = retry while the TTL allows (edgeHub's default).
  int max_attempts = 0;
};

struct RouterOptions {
  // The edge device id; module endpoints are "{device_id}/{module}/{input}".
  std::string device_id = "DEV";
  // Dispatch worker threads (each with its own admission ring). >= 1.
  int dispatch_workers = 2;
  // Executor threads: one pool that drives every endpoint (batches, retries,
  // TTL, sink calls), however many endpoints there are. 0 = the number of
  // hardware threads, at most 8; otherwise 1..256. The router's threads are
  // dispatch_workers + executor threads + 1 timer thread.
  int executor_threads = 0;
  // Capacity of each admission ring, in messages (rounded up to a power of
  // two).
  size_t admission_capacity = 65536;
  // How long Send waits for room in a full admission ring before it returns
  // ResourceExhausted.
  absl::Duration admission_timeout = absl::Seconds(1);
  // Largest batch handed to a sink.
  size_t endpoint_batch_size = 100;
  // Capacity of each (endpoint, priority) lane, in messages (rounded up to a
  // power of two; allocated when the lane is first used). When a lane is
  // full, messages routed to it are dropped for that endpoint and counted as
  // dropped{reason="queue_full"}; other endpoints are not affected.
  size_t endpoint_queue_capacity = 65536;
  RetryPolicy retry;
  // How long a dead endpoint drops new batches before it is revived.
  absl::Duration dead_revive_period = absl::Seconds(30);
  // Time source for TTLs, backoff and latencies. nullptr = SystemClock().
  Clock* clock = nullptr;
  // Optional store-and-forward store (not owned; must outlive the router).
  // nullptr = in-memory queues only.
  store::Store* store = nullptr;
  // What happens to an endpoint that a route update no longer references:
  //   kDrain -- it keeps delivering what is already queued for it (and what
  //             messages admitted before the update route to it); nothing
  //             new is routed to it. The default.
  //   kDrop  -- what is queued for it is dropped and counted as
  //             dropped{reason="endpoint_removed"} (edgeHub's behaviour).
  // Either way it comes back to life if a later update references it again.
  enum class RemovedEndpointRule { kDrain, kDrop };
  RemovedEndpointRule removed_endpoint_rule = RemovedEndpointRule::kDrain;
  // Close(): true = deliver everything queued first (up to close_timeout;
  // endpoints without a sink are not waited for); false = stop after the
  // batches in flight. What is left is dropped and counted as
  // dropped{reason="close"}. With a store, Close always stops after the
  // batches in flight and everything undelivered stays in the store.
  bool drain_on_close = true;
  absl::Duration close_timeout = absl::Seconds(10);
  // Send(bytes) verifies each buffer with MessageView::Verify. Only turn off
  // when every buffer comes from a MessageBuilder in this process.
  bool verify_messages = true;
};

// Counts since the router was created. Counters never decrease.
struct RouteMetrics {
  std::string name;
  std::string endpoint_id;
  // Messages whose source matched the route (its condition was evaluated).
  uint64_t evaluated = 0;
  // Messages whose condition was true.
  uint64_t matched = 0;
};

// Enqueue (into the endpoint queue) -> sink acknowledgement latency, in
// power-of-two buckets; the last bucket is unbounded.
inline constexpr int kLatencyBuckets = 28;
struct LatencyHistogram {
  // counts[i] = deliveries with latency <= 2^i microseconds and above the
  // previous bound; counts[kLatencyBuckets - 1] holds everything larger.
  uint64_t counts[kLatencyBuckets] = {};
  uint64_t count = 0;
  uint64_t sum_micros = 0;
  // An estimate of quantile q in [0, 1] (the bucket's upper bound), in
  // microseconds; 0 when empty.
  int64_t QuantileMicros(double q) const;
};

// Priority levels of an endpoint's queues: 0-9, then the default priority
// (a route without "priority") as level kDefaultPriorityLevel.
inline constexpr int kPriorityLevels = 11;
inline constexpr int kDefaultPriorityLevel = 10;

struct EndpointMetrics {
  std::string endpoint_id;
  // References to messages queued for this endpoint (after dedup).
  uint64_t enqueued = 0;
  uint64_t delivered = 0;
  // Messages handed to the sink again after a kRetry.
  uint64_t retried = 0;
  // Messages whose TTL passed before they could be delivered.
  uint64_t expired = 0;
  // Dropped, by reason.
  uint64_t rejected = 0;            // the sink said kReject
  uint64_t dropped_queue_full = 0;  // the lane was full
  uint64_t dropped_dead = 0;        // retries exhausted / endpoint dead
  uint64_t dropped_removed = 0;     // endpoint removed (kDrop rule)
  uint64_t dropped_close = 0;       // left over at Close()
  // Messages queued or in flight now.
  uint64_t queue_depth = 0;
  // queue_depth by priority level (index 0-9: priority 0-9; index
  // kDefaultPriorityLevel: the default priority). A batch in flight or
  // waiting for a retry counts at its level.
  uint64_t queue_depth_by_priority[kPriorityLevels] = {};
  // Age of the oldest message queued or in flight (0 when none). Updated by
  // the executor once per batch.
  int64_t oldest_message_age_micros = 0;
  // Clock::MonotonicMicros() time at which the batch waiting for a retry is
  // sent again; 0 when no batch waits for a retry.
  int64_t next_retry_mono_micros = 0;
  bool has_sink = false;
  bool dead = false;
  LatencyHistogram latency;
};

struct RouterMetrics {
  uint64_t received = 0;          // messages admitted by Send
  uint64_t orphaned = 0;          // messages that matched no route
  uint64_t rejected_full = 0;     // Sends refused: admission ring full
  uint64_t rejected_invalid = 0;  // Sends refused: buffer failed Verify
  uint64_t route_updates = 0;     // successful UpdateRoutes calls
  // Messages in the admission rings, not yet taken by a dispatch worker (a
  // snapshot; with a store, Sends waiting for their append are among them).
  uint64_t admission_queued = 0;
  std::vector<RouteMetrics> routes;
  std::vector<EndpointMetrics> endpoints;
};

class RouterImpl;

// The router.
// Thread-safety: every method may be called from any number of threads
// concurrently, except that nothing may be called after the destructor
// starts. Send* never block longer than options.admission_timeout (except in
// store mode, where they also wait for the store append).
class Router {
 public:
  // Creates a router from a deployment manifest (the whole manifest or just
  // the `$edgeHub` desired properties; schema 1.0-1.3). Returns
  // InvalidArgument listing every error of the manifest or its routes.
  static absl::StatusOr<std::unique_ptr<Router>> Create(
      const RouterOptions& options, absl::string_view manifest_json);

  // Creates a router from routes. `global_ttl_secs` is the store-and-forward
  // TTL for routes whose ttl_secs is 0; negative = infinite.
  static absl::StatusOr<std::unique_ptr<Router>> Create(
      const RouterOptions& options, std::vector<query::RouteSpec> routes,
      int64_t global_ttl_secs);

  // Closes (if not closed yet) and destroys the router.
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Sets (or replaces, or with nullptr removes) the sink of an endpoint.
  // Messages for an endpoint without a sink wait in its queue. The endpoint
  // need not be referenced by a route yet. Replacing takes effect from the
  // next batch.
  absl::Status SetSink(absl::string_view endpoint_id,
                       std::shared_ptr<Sink> sink);

  // Admits one message (a buffer produced by MessageBuilder or received from
  // outside; it is verified when options.verify_messages is set). The bytes
  // are copied; the caller keeps ownership.
  // Returns OK once the message is admitted (in store mode: once it is in the
  // store); ResourceExhausted when admission stayed full for
  // admission_timeout; InvalidArgument for a buffer that fails verification;
  // FailedPrecondition after Close.
  absl::Status Send(absl::Span<const uint8_t> message);
  // As Send, for a view that is already trusted (from MessageBuilder::view()
  // or MessageView::Verify): no verification.
  absl::Status SendView(const MessageView& message);
  // As SendView for each message, in order, with results[i] its outcome.
  // With a store the messages are appended together (one write group) and
  // the call returns once all of them are settled: a producer with many
  // messages at hand pays one append round trip, not one per message.
  // Unlike SendBatch, an error does not stop the later messages.
  // REQUIRES: results.size() == messages.size().
  void SendViews(absl::Span<const MessageView> messages,
                 absl::Span<absl::Status> results);
  // Sends each message in order; stops at the first error and returns it
  // (earlier messages stay admitted).
  absl::Status SendBatch(absl::Span<const absl::Span<const uint8_t>> messages);

  // Replaces the route table with the manifest's (or the `$edgeHub`
  // section's) routes and global TTL. The new table is compiled off the hot
  // path and swapped in atomically; on any error nothing changes and the
  // error lists every problem. Every message whose Send returned before this
  // call started is routed with the old table, every message sent after it
  // returns with the new one, and each message is routed exactly once.
  absl::Status UpdateRoutes(absl::string_view manifest_json);
  absl::Status UpdateRoutes(std::vector<query::RouteSpec> routes,
                            int64_t global_ttl_secs);

  // Waits until everything admitted so far has been dispatched and every
  // endpoint that has a sink has an empty queue and no batch in flight (or
  // the timeout passes: DeadlineExceeded). For tests and benchmarks.
  absl::Status WaitIdle(absl::Duration timeout);

  // Runs every endpoint executor so that it re-reads the clock (retry
  // backoff, dead-endpoint revival). With the system clock executors wake by
  // themselves; with a FakeClock, tests advance the clock and call this.
  void WakeExecutors();

  RouterMetrics GetMetrics() const;
  // The metrics in Prometheus text exposition format (version 0.0.4).
  std::string PrometheusText() const;

  // Stops admission (later Sends return FailedPrecondition), dispatches what
  // was admitted, drains or abandons the queues as options.drain_on_close
  // says, and joins every thread. Waits for batches in flight: sinks must
  // complete them. Idempotent.
  absl::Status Close();

 private:
  explicit Router(std::unique_ptr<RouterImpl> impl);
  std::unique_ptr<RouterImpl> impl_;
};

}  // namespace edgeroute::router

#endif  // EDGEROUTE_ROUTER_ROUTER_H_
