#include "store/read_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace edgeroute::store::internal {
namespace {

// An index entry per 64 ring bytes at most (smaller messages than that are
// rare: the FlatBuffers envelope alone is about as large), and never more
// than this many per queue.
constexpr size_t kRingBytesPerEntry = 64;
constexpr size_t kMaxEntriesPerQueue = 1u << 16;
constexpr size_t kFirstSlots = 64;
constexpr size_t kHugePageBytes = 2u << 20;

size_t RingAllocationBytes(size_t capacity) {
  return (capacity + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
}

size_t MaxEntries(size_t capacity_bytes) {
  size_t max = 1;
  while (max < kMaxEntriesPerQueue &&
         2 * max <= capacity_bytes / kRingBytesPerEntry) {
    max *= 2;
  }
  return max;
}

}  // namespace

ReadCache::ReadCache(size_t capacity_bytes)
    : capacity_(capacity_bytes),
      max_entries_(MaxEntries(capacity_bytes)),
      max_total_entries_(
          std::max(kFirstSlots, capacity_bytes / kRingBytesPerEntry)) {}

uint64_t ReadCache::AddPayload(absl::Span<const uint8_t> bytes) {
  if (capacity_ == 0 || bytes.size() > capacity_ / 4) return kNotCached;
  if (ring_ == nullptr) {
    if (ring_failed_) return kNotCached;
    const size_t bytes = RingAllocationBytes(capacity_);
    ring_.reset(static_cast<char*>(std::aligned_alloc(kHugePageBytes, bytes)));
    if (ring_ == nullptr) {
      ring_failed_ = true;  // no memory: the store reads RocksDB
      return kNotCached;
    }
    // A hint; without transparent huge pages nothing changes.
    madvise(ring_.get(), bytes, MADV_HUGEPAGE);
  }
  // A payload never wraps: it starts the next lap instead.
  const uint64_t offset_in_lap = head_ % capacity_;
  if (offset_in_lap + bytes.size() > capacity_) {
    head_ += capacity_ - offset_in_lap;
  }
  const uint64_t pos = head_;
  if (!bytes.empty()) {
    std::memcpy(ring_.get() + pos % capacity_, bytes.data(), bytes.size());
  }
  head_ += bytes.size();
  return pos;
}

void ReadCache::AddRef(uint32_t queue, uint64_t offset, int64_t enqueue_us,
                       int64_t expiry_us, uint64_t payload, uint32_t size) {
  if (capacity_ == 0) return;
  if (queue >= queues_.size()) queues_.resize(queue + 1);
  QueueIndex& q = queues_[queue];
  if (q.size() != 0 && q.at(q.end - 1).offset + 1 != offset) {
    Clear(&q);  // a gap: start again from here
  }
  if (payload == kNotCached) {
    Clear(&q);
    return;
  }
  if (total_entries_ >= max_total_entries_) {
    // Every queue's index together stays bounded: first drop what the ring
    // no longer holds, then this queue's oldest (or, if it has none, do
    // not index this reference).
    for (QueueIndex& other : queues_) DropOverwritten(&other);
    if (total_entries_ >= max_total_entries_) {
      if (q.size() == 0) return;
      PopFront(&q);
    }
  }
  if (q.size() == q.slots.size()) {
    if (q.slots.size() >= max_entries_) {
      PopFront(&q);  // the oldest goes
    } else {
      // Powers of two up to max_entries_ (one as well).
      const size_t slots = q.slots.empty() ? std::min(kFirstSlots, max_entries_)
                                           : 2 * q.slots.size();
      std::vector<Entry> grown(slots);
      for (uint64_t i = q.first; i < q.end; ++i) {
        grown[i & (slots - 1)] = q.at(i);
      }
      q.slots = std::move(grown);
    }
  }
  q.at(q.end++) = Entry{offset, enqueue_us, expiry_us, payload, size};
  ++total_entries_;
}

void ReadCache::PopFront(QueueIndex* q) {
  ++q->first;
  --total_entries_;
  if (q->size() == 0) ReleaseIfLarge(q);
}

void ReadCache::Clear(QueueIndex* q) {
  total_entries_ -= q->size();
  q->first = q->end;
  ReleaseIfLarge(q);
}

void ReadCache::ReleaseIfLarge(QueueIndex* q) {
  // An empty index gives back what a backlog made it grow to.
  if (q->slots.size() > kFirstSlots) std::vector<Entry>().swap(q->slots);
}

void ReadCache::Forget(uint32_t queue, uint64_t offset) {
  if (queue >= queues_.size()) return;
  QueueIndex& q = queues_[queue];
  while (q.size() != 0 && q.at(q.first).offset <= offset) PopFront(&q);
}

void ReadCache::Free::operator()(char* p) const { std::free(p); }

void ReadCache::DropOverwritten(QueueIndex* q) {
  while (q->size() != 0 && !Intact(q->at(q->first).payload)) PopFront(q);
}

size_t ReadCache::MemoryBytes() const {
  size_t bytes = ring_ != nullptr ? RingAllocationBytes(capacity_) : 0;
  for (const QueueIndex& q : queues_)
    bytes += q.slots.capacity() * sizeof(Entry);
  return bytes;
}

}  // namespace edgeroute::store::internal
