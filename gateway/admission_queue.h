// Internal to the gateway: moves telemetry admission off the event loop for
// both protocol heads (the native Server and the MQTT head).
//
// The loop thread queues each verified, stamped message (copied into reused
// entries: no allocation once warmed up). One admission thread takes
// everything queued at once, hands it to ServerHooks::OnTelemetryBatch (so a
// store appends the batch together, and may wait, without stalling any
// socket), and posts the batch's verdicts back to the loop thread in one
// function. A producer whose message takes the queue past its byte bound is
// paused (EventLoop::PauseReading) -- back-pressure on that producer, never
// on the loop; every paused producer is read again once the queue is at
// most half full.

#ifndef EDGEROUTE_GATEWAY_ADMISSION_QUEUE_H_
#define EDGEROUTE_GATEWAY_ADMISSION_QUEUE_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "gateway/event_loop.h"
#include "gateway/server.h"
#include "message/message.h"

namespace edgeroute::gateway {

// Thread-safety: Queue runs on the loop thread only; Start and Stop on the
// owner's control thread. The verdicts function runs on the loop thread.
// Ownership: `loop` and `hooks` are not owned and must outlive the queue.
class AdmissionQueue {
 public:
  // The decision on one queued message, in the order they were queued.
  // `tag` is the caller's (a sequence number, a packet's position).
  // `code` is fb::ErrorCode::kUnknown when admitted.
  struct Verdict {
    ConnectionId id;
    uint64_t tag;
    fb::ErrorCode code;
  };
  using VerdictsFn = std::function<void(absl::Span<const Verdict>)>;

  // REQUIRES: max_bytes > 0.
  AdmissionQueue(EventLoop* loop, ServerHooks* hooks, size_t max_bytes,
                 VerdictsFn on_verdicts);
  ~AdmissionQueue();  // Stop()s.

  AdmissionQueue(const AdmissionQueue&) = delete;
  AdmissionQueue& operator=(const AdmissionQueue&) = delete;

  // Starts the admission thread.
  void Start();
  // Finishes what is queued -- its verdicts are posted to the loop, which
  // runs them before it stops -- and joins the thread. From then on Queue
  // refuses. Idempotent.
  void Stop();

  // Loop thread: queues a copy of `message` (stamped with `identity`).
  // False once stopping (nothing queued: the caller refuses the message
  // itself). Sets *paused when this producer was paused for back-pressure.
  bool Queue(ConnectionId id, uint64_t tag, const Identity& identity,
             absl::string_view output, const MessageView& message,
             bool* paused);

 private:
  struct Entry {
    ConnectionId id = 0;
    uint64_t tag = 0;
    Identity identity;
    std::string output;
    std::string bytes;
  };

  void Run();
  // Loop thread, after each batch's verdicts.
  void ResumeProducers();

  EventLoop* const loop_;
  ServerHooks* const hooks_;
  const size_t max_bytes_;
  const VerdictsFn on_verdicts_;

  std::thread thread_;
  // std::mutex rather than absl::Mutex: the system Abseil has no
  // ThreadSanitizer annotations.
  std::mutex mu_;
  std::condition_variable cv_;  // something queued, or stopping
  std::vector<Entry> queued_;   // guarded by mu_; entries are reused
  size_t queued_count_ = 0;     // guarded by mu_
  size_t queued_bytes_ = 0;     // guarded by mu_
  bool stop_ = false;           // guarded by mu_
};

}  // namespace edgeroute::gateway

#endif  // EDGEROUTE_GATEWAY_ADMISSION_QUEUE_H_
