// Sinks for tests and benchmarks (//router:sinks is testonly).
//
//   NullSink       -- accepts everything at once; counts.
//   CollectingSink -- accepts everything and keeps a copy of each message.
//   ScriptedSink   -- answers each message with the outcome a function
//                     chooses (failing endpoints, permanent rejects).
//   StallingSink   -- holds every batch until Release() (a slow or hung
//                     endpoint); then accepts it.
//
// Thread-safety: every method may be called from any thread.

#ifndef EDGEROUTE_ROUTER_SINKS_H_
#define EDGEROUTE_ROUTER_SINKS_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "router/router.h"

namespace edgeroute::router {

class NullSink : public Sink {
 public:
  void Deliver(DeliveryBatch* batch) override;
  uint64_t delivered() const {
    return delivered_.load(std::memory_order_relaxed);
  }
  uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> batches_{0};
};

// One message as a sink saw it.
struct CollectedMessage {
  std::string bytes;  // the message buffer, copied
  int priority = 0;
  int attempt = 1;

  // The message's sequence number (MessageView::sequence_number).
  uint64_t sequence_number() const;
};

class CollectingSink : public Sink {
 public:
  void Deliver(DeliveryBatch* batch) override;
  // Waits until at least `n` messages were collected; false on timeout.
  bool WaitForCount(size_t n, absl::Duration timeout);
  size_t count() const;
  std::vector<CollectedMessage> messages() const;
  // Number of Deliver calls.
  size_t batches() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<CollectedMessage> messages_ ABSL_GUARDED_BY(mu_);
  size_t batches_ ABSL_GUARDED_BY(mu_) = 0;
};

class ScriptedSink : public Sink {
 public:
  // `decide` is called for each message with its view and attempt number.
  using Decide =
      std::function<DeliveryOutcome(const MessageView& message, int attempt)>;
  explicit ScriptedSink(Decide decide) : decide_(std::move(decide)) {}

  void Deliver(DeliveryBatch* batch) override;
  // The delivered (kDelivered) messages, in delivery order.
  std::vector<CollectedMessage> delivered() const;
  // Every attempt: (message sequence number, attempt, outcome).
  struct Attempt {
    uint64_t sequence;
    int attempt;
    DeliveryOutcome outcome;
  };
  std::vector<Attempt> attempts() const;
  size_t batches() const;
  // Waits until at least `n` Deliver calls happened; false on timeout.
  bool WaitForBatches(size_t n, absl::Duration timeout);

 private:
  const Decide decide_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<CollectedMessage> delivered_ ABSL_GUARDED_BY(mu_);
  std::vector<Attempt> attempts_ ABSL_GUARDED_BY(mu_);
  size_t batches_ ABSL_GUARDED_BY(mu_) = 0;
};

class StallingSink : public Sink {
 public:
  ~StallingSink() override;
  void Deliver(DeliveryBatch* batch) override;
  // Number of batches held now.
  size_t held() const;
  // Messages accepted so far (after Release).
  uint64_t delivered() const;
  // Waits until at least `n` batches are held; false on timeout.
  bool WaitForHeld(size_t n, absl::Duration timeout);
  // Accepts every batch held now; with `stay_open` later batches are
  // accepted at once, otherwise they are held again.
  void Release(bool stay_open);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<DeliveryBatch*> held_ ABSL_GUARDED_BY(mu_);
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t delivered_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace edgeroute::router

#endif  // EDGEROUTE_ROUTER_SINKS_H_
