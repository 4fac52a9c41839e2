#include "gateway/admission_queue.h"

#include <memory>
#include <utility>

namespace edgeroute::gateway {

AdmissionQueue::AdmissionQueue(EventLoop* loop, ServerHooks* hooks,
                               size_t max_bytes, VerdictsFn on_verdicts)
    : loop_(loop),
      hooks_(hooks),
      max_bytes_(max_bytes),
      on_verdicts_(std::move(on_verdicts)) {}

AdmissionQueue::~AdmissionQueue() { Stop(); }

void AdmissionQueue::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void AdmissionQueue::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool AdmissionQueue::Queue(ConnectionId id, uint64_t tag,
                           const Identity& identity, absl::string_view output,
                           const MessageView& message, bool* paused) {
  *paused = false;
  const size_t size = message.bytes().size();
  std::unique_lock<std::mutex> lock(mu_);
  if (stop_) return false;
  if (queued_count_ == queued_.size()) queued_.emplace_back();
  Entry& e = queued_[queued_count_++];
  e.id = id;
  e.tag = tag;
  e.identity.device_id.assign(identity.device_id);
  e.identity.module_id.assign(identity.module_id);
  e.output.assign(output.data(), output.size());
  e.bytes.assign(reinterpret_cast<const char*>(message.bytes().data()), size);
  queued_bytes_ += size;
  const bool full = queued_bytes_ > max_bytes_;
  lock.unlock();
  cv_.notify_one();
  // Back-pressure on this producer, never on the loop: it is not read from
  // until the queue has drained (ResumeProducers).
  if (full) *paused = loop_->PauseReading(id);
  return true;
}

void AdmissionQueue::ResumeProducers() {
  if (loop_->PausedCount() == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_ && queued_bytes_ > max_bytes_ / 2) return;
  }
  loop_->ResumeAllReading();
}

void AdmissionQueue::Run() {
  std::vector<Entry> batch;
  std::vector<TelemetryItem> items;
  std::vector<fb::ErrorCode> codes;
  for (;;) {
    size_t n = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || queued_count_ > 0; });
      if (queued_count_ == 0) return;  // stopping, and nothing left
      batch.swap(queued_);
      n = queued_count_;
      queued_count_ = 0;
      queued_bytes_ = 0;
    }
    items.clear();
    for (size_t i = 0; i < n; ++i) {
      const Entry& e = batch[i];
      // std::string storage from the allocator is 8-byte aligned, as
      // FlatBuffers wants; the bytes were verified on the loop thread.
      items.push_back(
          TelemetryItem{&e.identity, e.output,
                        MessageView::FromTrustedBytes(absl::MakeConstSpan(
                            reinterpret_cast<const uint8_t*>(e.bytes.data()),
                            e.bytes.size()))});
    }
    codes.resize(n);
    hooks_->OnTelemetryBatch(items, absl::MakeSpan(codes));
    auto verdicts = std::make_shared<std::vector<Verdict>>();
    verdicts->reserve(n);
    for (size_t i = 0; i < n; ++i) {
      verdicts->push_back({batch[i].id, batch[i].tag, codes[i]});
    }
    // Always posted: besides the verdicts it resumes paused producers.
    loop_->Post([this, verdicts] {
      on_verdicts_(*verdicts);
      ResumeProducers();
    });
    // `batch` keeps its entries: the next swap hands them (and their
    // strings' capacity) back to the loop thread.
  }
}

}  // namespace edgeroute::gateway
