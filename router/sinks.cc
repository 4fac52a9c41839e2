#include "router/sinks.h"

#include <mutex>
#include <utility>

namespace edgeroute::router {

uint64_t CollectedMessage::sequence_number() const {
  return MessageView::FromTrustedBytes(
             absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()),
                                 bytes.size()))
      .sequence_number();
}

void NullSink::Deliver(DeliveryBatch* batch) {
  const size_t n = batch->size();
  delivered_.fetch_add(n, std::memory_order_relaxed);
  batches_.fetch_add(1, std::memory_order_relaxed);
  batch->CompleteAll(DeliveryOutcome::kDelivered);
}

void CollectingSink::Deliver(DeliveryBatch* batch) {
  {
    std::lock_guard<std::mutex> lock(mu_);
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
  cv_.notify_all();
  batch->CompleteAll(DeliveryOutcome::kDelivered);
}

bool CollectingSink::WaitForCount(size_t n, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                      [&] { return messages_.size() >= n; });
}

size_t CollectingSink::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_.size();
}

std::vector<CollectedMessage> CollectingSink::messages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_;
}

size_t CollectingSink::batches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_;
}

void ScriptedSink::Deliver(DeliveryBatch* batch) {
  std::vector<DeliveryOutcome> outcomes(batch->size());
  {
    std::lock_guard<std::mutex> lock(mu_);
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
  cv_.notify_all();
  for (size_t i = 0; i < outcomes.size(); ++i) batch->Complete(i, outcomes[i]);
}

std::vector<CollectedMessage> ScriptedSink::delivered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return delivered_;
}

std::vector<ScriptedSink::Attempt> ScriptedSink::attempts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return attempts_;
}

size_t ScriptedSink::batches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_;
}

bool ScriptedSink::WaitForBatches(size_t n, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                      [&] { return batches_ >= n; });
}

StallingSink::~StallingSink() { Release(true); }

void StallingSink::Deliver(DeliveryBatch* batch) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_) {
      held_.push_back(batch);
      cv_.notify_all();
      return;
    }
    delivered_ += batch->size();
  }
  batch->CompleteAll(DeliveryOutcome::kDelivered);
}

size_t StallingSink::held() const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_.size();
}

uint64_t StallingSink::delivered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return delivered_;
}

bool StallingSink::WaitForHeld(size_t n, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                      [&] { return held_.size() >= n; });
}

void StallingSink::Release(bool stay_open) {
  std::vector<DeliveryBatch*> batches;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batches.swap(held_);
    open_ = stay_open;
    for (DeliveryBatch* b : batches) delivered_ += b->size();
  }
  for (DeliveryBatch* b : batches) b->CompleteAll(DeliveryOutcome::kDelivered);
}

}  // namespace edgeroute::router
