// Internal to the store: the most recent appends, kept in memory so that a
// reader that keeps up with the appenders (the router's executor reads what
// the dispatch worker has just appended) is served without a RocksDB
// iterator, a MultiGet and a re-verification of bytes it wrote itself.
//
// Payload bytes go into one ring of `capacity_bytes`, written forward and
// wrapping: a payload stays readable until later payloads overwrite it, so
// memory is bounded whatever the readers do. Per queue, an index of
// references with CONTIGUOUS offsets [front, back] points into the ring; a
// reference whose bytes were overwritten is dropped from the front. A read
// is served only if every offset it asks for is indexed, otherwise the
// store reads RocksDB as before (cold start, a lagging reader, a payload too
// large to cache).
//
// Thread-safety: none; the store guards it with a mutex of its own.

#ifndef EDGEROUTE_STORE_READ_CACHE_H_
#define EDGEROUTE_STORE_READ_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace edgeroute::store::internal {

class ReadCache {
 public:
  // A payload handle that AddRef accepts but never serves.
  static constexpr uint64_t kNotCached = UINT64_MAX;

  // capacity_bytes = 0 caches nothing (every Add* is a no-op).
  explicit ReadCache(size_t capacity_bytes);

  ReadCache(const ReadCache&) = delete;
  ReadCache& operator=(const ReadCache&) = delete;

  bool enabled() const { return capacity_ != 0; }

  // Copies a payload into the ring and returns its handle, or kNotCached
  // when it is larger than a quarter of the ring.
  uint64_t AddPayload(absl::Span<const uint8_t> bytes);

  // Indexes offset `offset` of `queue` as the payload `payload` (a handle
  // from AddPayload, of `size` bytes). Offsets of a queue must be added in
  // ascending order; a gap or kNotCached empties the queue's index first
  // (it stays contiguous).
  void AddRef(uint32_t queue, uint64_t offset, int64_t enqueue_us,
              int64_t expiry_us, uint64_t payload, uint32_t size);

  // Drops the references of `queue` with offset <= `offset` (delivered or
  // removed: never read again).
  void Forget(uint32_t queue, uint64_t offset);

  // One cached reference, as Visit hands it out. `bytes` is valid until
  // the next Add* call.
  struct Ref {
    uint64_t offset;
    int64_t enqueue_us;
    int64_t expiry_us;
    absl::string_view bytes;
  };

  // If every offset in [from, through] of `queue` is cached, calls
  // visit(const Ref&) for each in ascending order until it returns false,
  // and returns true. Returns false without calling it otherwise.
  // REQUIRES: from <= through.
  template <typename Visitor>
  bool Visit(uint32_t queue, uint64_t from, uint64_t through, Visitor&& visit) {
    if (queue >= queues_.size()) return false;
    QueueIndex& q = queues_[queue];
    DropOverwritten(&q);
    if (q.size() == 0) return false;
    const uint64_t front = q.at(q.first).offset;
    const uint64_t back = front + q.size() - 1;
    if (from < front || through > back) return false;
    for (uint64_t o = from; o <= through; ++o) {
      const Entry& e = q.at(q.first + (o - front));
      const Ref ref{
          e.offset, e.enqueue_us, e.expiry_us,
          absl::string_view(ring_.get() + e.payload % capacity_, e.size)};
      if (!visit(ref)) break;
    }
    return true;
  }

  // Memory held: the ring (once allocated) and every queue's index.
  size_t MemoryBytes() const;

 private:
  struct Entry {
    uint64_t offset;
    int64_t enqueue_us;
    int64_t expiry_us;
    uint64_t payload;  // logical ring position
    uint32_t size;
  };
  // A circular buffer of entries (power-of-two slots) with contiguous
  // offsets; first/end count entries ever pushed and popped.
  struct QueueIndex {
    std::vector<Entry> slots;
    uint64_t first = 0;
    uint64_t end = 0;
    size_t size() const { return static_cast<size_t>(end - first); }
    Entry& at(uint64_t i) { return slots[i & (slots.size() - 1)]; }
  };

  // True while the bytes at logical position [pos, pos + size) are intact.
  bool Intact(uint64_t pos) const { return head_ - pos <= capacity_; }
  void DropOverwritten(QueueIndex* q);
  void PopFront(QueueIndex* q);
  void Clear(QueueIndex* q);
  void ReleaseIfLarge(QueueIndex* q);

  const size_t capacity_;
  // Most index entries one queue holds (the oldest go first), and all
  // queues together (one per 64 ring bytes).
  const size_t max_entries_;
  const size_t max_total_entries_;
  size_t total_entries_ = 0;
  struct Free {
    void operator()(char* p) const;
  };
  // Allocated on the first payload, not zeroed, aligned to and advised for
  // transparent huge pages: a fresh ring costs a few page faults rather
  // than one per 4 KiB (expensive under virtualisation).
  std::unique_ptr<char, Free> ring_;
  bool ring_failed_ = false;
  // Logical bytes written to the ring so far.
  uint64_t head_ = 0;
  std::vector<QueueIndex> queues_;
};

}  // namespace edgeroute::store::internal

#endif  // EDGEROUTE_STORE_READ_CACHE_H_
