#include "router/sinks.h"

#include <utility>

namespace edgeroute {

void NullSink::Deliver(DeliveryBatch* batch) {
  const size_t n = batch->size();
  delivered_.fetch_add(n, std::memory_order_relaxed);
  batches_.fetch_add(1, std::memory_order_relaxed);
  batch->CompleteAll(DeliveryOutcome::kDelivered);
}

void CollectingSink::Deliver(DeliveryBatch* batch) {
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < batch->size(); ++i) {
      absl::Span<const uint8_t> b = batch->message(i).bytes();
      CollectedMessage m;
      m.bytes.assign(reinterpret_cast<const char*>(b.data()), b.size());
      m.priority = batch->priority();
      m.attempt = batch->attempt();
      messages_.push_back(std::move(m));
    }
    ++batches_;
  }
  batch->CompleteAll(DeliveryOutcome::kDelivered);
}

bool CollectingSink::WaitForCount(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return messages_.size() >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

size_t CollectingSink::count() const {
  absl::MutexLock lock(&mu_);
  return messages_.size();
}

std::vector<CollectedMessage> CollectingSink::messages() const {
  absl::MutexLock lock(&mu_);
  return messages_;
}

size_t CollectingSink::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

void ScriptedSink::Deliver(DeliveryBatch* batch) {
  std::vector<DeliveryOutcome> outcomes(batch->size());
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < batch->size(); ++i) {
      const MessageView& view = batch->message(i);
      outcomes[i] = decide_(view, batch->attempt());
      attempts_.push_back(
          {view.sequence_number(), batch->attempt(), outcomes[i]});
      if (outcomes[i] == DeliveryOutcome::kDelivered) {
        CollectedMessage m;
        m.bytes.assign(reinterpret_cast<const char*>(view.bytes().data()),
                       view.bytes().size());
        m.priority = batch->priority();
        m.attempt = batch->attempt();
        delivered_.push_back(std::move(m));
      }
    }
    ++batches_;
  }
  for (size_t i = 0; i < outcomes.size(); ++i) batch->Complete(i, outcomes[i]);
}

std::vector<CollectedMessage> ScriptedSink::delivered() const {
  absl::MutexLock lock(&mu_);
  return delivered_;
}

std::vector<ScriptedSink::Attempt> ScriptedSink::attempts() const {
  absl::MutexLock lock(&mu_);
  return attempts_;
}

size_t ScriptedSink::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

bool ScriptedSink::WaitForBatches(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this, n]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return batches_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

StallingSink::~StallingSink() { Release(true); }

void StallingSink::Deliver(DeliveryBatch* batch) {
  {
    absl::MutexLock lock(&mu_);
    if (!open_) {
      held_.push_back(batch);
      return;
    }
    delivered_ += batch->size();
  }
  batch->CompleteAll(DeliveryOutcome::kDelivered);
}

size_t StallingSink::held() const {
  absl::MutexLock lock(&mu_);
  return held_.size();
}

uint64_t StallingSink::delivered() const {
  absl::MutexLock lock(&mu_);
  return delivered_;
}

bool StallingSink::WaitForHeld(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return held_.size() >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

void StallingSink::Release(bool stay_open) {
  std::vector<DeliveryBatch*> batches;
  {
    absl::MutexLock lock(&mu_);
    batches.swap(held_);
    open_ = stay_open;
    for (DeliveryBatch* b : batches) delivered_ += b->size();
  }
  for (DeliveryBatch* b : batches) b->CompleteAll(DeliveryOutcome::kDelivered);
}

}  // namespace edgeroute
