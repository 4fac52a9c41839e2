// MpscRing<T>: a bounded, lock-free, multi-producer single-consumer FIFO.
//
// Guarantees: linearizable TryPush/TryPop; FIFO in the order producers
// claimed positions, hence FIFO per producer. TryPush fails (returns false)
// only when the ring is full; TryPop fails when the ring is empty or the
// oldest claimed slot is still being written (the producer will publish it
// shortly and then notify the consumer).
//
// Algorithm (after D. Vyukov's bounded MPMC queue): each slot carries a
// sequence number. Slot i starts with seq = i. A producer claims position p
// with a CAS on tail_ when slot p % capacity has seq == p, writes the value
// and stores seq = p + 1. The consumer reads position h when its slot has
// seq == h + 1, takes the value and stores seq = h + capacity, handing the
// slot to the producer of the next lap.
//
// Memory ordering:
//   1. Producer: the release store of seq = p + 1 publishes the value; the
//      consumer's acquire load of seq synchronizes with it before it reads
//      the value.
//   2. Consumer: the release store of seq = h + capacity tells producers the
//      slot is free; a producer's acquire load of seq synchronizes with it,
//      so the consumer's read of the old value happens before the
//      producer's overwrite.
//   3. tail_ is only a position counter: slot ownership is decided by the
//      seq protocol above, not by tail_. (The claim is a seq_cst CAS only
//      for the producer's wake-up of a sleeping consumer, see TryPush.)
//   4. head_ is written only by the consumer; it is atomic (relaxed) only so
//      that other threads can read it for SizeGuess and Popped.
//
// Closing: Close() sets a bit in tail_, atomically with respect to claims:
// every TryPush that claimed a position before it completes normally, every
// later one returns kClosed. The consumer knows it has everything once
// Popped() == Pushed() after Close().
//
// Thread-safety: TryPush and Close from any number of threads; TryPop, PopBatch
// and Front from one consumer thread at a time, or instead TryPopShared from
// any number of consumer threads. SizeGuess/Pushed/Popped from
// any thread (best-effort snapshots).

#ifndef EDGEROUTE_ROUTER_INTERNAL_MPSC_RING_H_
#define EDGEROUTE_ROUTER_INTERNAL_MPSC_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

namespace edgeroute::router::internal {

inline constexpr size_t kCacheLine = 64;

inline size_t RoundUpPowerOfTwo(size_t n) {
  size_t c = 1;
  while (c < n) c <<= 1;
  return c;
}

template <typename T>
class MpscRing {
  static_assert(std::is_trivially_copyable<T>::value,
                "slots hold plain values");

 public:
  // REQUIRES: capacity >= 1 (rounded up to a power of two, at least 2).
  explicit MpscRing(size_t capacity)
      : capacity_(RoundUpPowerOfTwo(capacity < 2 ? 2 : capacity)),
        mask_(capacity_ - 1),
        slots_(new Slot[capacity_]) {
    for (size_t i = 0; i < capacity_; ++i) {
      slots_[i].seq.store(i, std::memory_order_relaxed);
    }
  }
  MpscRing(const MpscRing&) = delete;
  MpscRing& operator=(const MpscRing&) = delete;

  size_t capacity() const { return capacity_; }

  enum class PushResult { kOk, kFull, kClosed };

  // Appends `value` unless the ring is full or closed.
  PushResult TryPush(const T& value) {
    uint64_t pos = tail_.load(std::memory_order_relaxed);
    Slot* slot;
    for (;;) {
      if (pos & kClosedBit) return PushResult::kClosed;
      slot = &slots_[pos & mask_];
      // Acquire: see ordering note 2.
      const uint64_t seq = slot->seq.load(std::memory_order_acquire);
      const int64_t diff = static_cast<int64_t>(seq - pos);
      if (diff == 0) {
        // Note 3; seq_cst (the same locked instruction as relaxed on x86)
        // so that a producer can wake the consumer with
        // Doorbell::NotifyAfterSeqCstRmw, without a fence of its own.
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          break;
        }
      } else if (diff < 0) {
        return PushResult::kFull;  // the slot still holds last lap's value
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
    slot->value = value;
    // Release: note 1.
    slot->seq.store(pos + 1, std::memory_order_release);
    return PushResult::kOk;
  }

  // Refuses every later push. Relaxed: the bit is read by the CAS in TryPush
  // on the same variable (a single modification order), which is all the
  // protocol needs.
  void Close() { tail_.fetch_or(kClosedBit, std::memory_order_relaxed); }
  bool closed() const {
    return (tail_.load(std::memory_order_relaxed) & kClosedBit) != 0;
  }

  // Consumer only. Removes the oldest value into *value.
  bool TryPop(T* value) {
    const uint64_t pos = head_.load(std::memory_order_relaxed);
    Slot* slot = &slots_[pos & mask_];
    // Acquire: note 1.
    if (slot->seq.load(std::memory_order_acquire) != pos + 1) return false;
    *value = slot->value;
    // Release: note 2.
    slot->seq.store(pos + capacity_, std::memory_order_release);
    head_.store(pos + 1, std::memory_order_relaxed);
    return true;
  }

  // Multi-consumer pop: may be called by any number of threads at once
  // (Vyukov's MPMC dequeue: a consumer claims position h with a CAS on
  // head_ when its slot has seq == h + 1, then reads the value and hands the
  // slot on as TryPop does). A ring whose consumers use this must not use
  // TryPop, PopBatch or Front. A producer may see the ring full for a moment
  // while a consumer that claimed a slot has not released it yet.
  bool TryPopShared(T* value) {
    uint64_t pos = head_.load(std::memory_order_relaxed);
    Slot* slot;
    for (;;) {
      slot = &slots_[pos & mask_];
      // Acquire: note 1.
      const uint64_t seq = slot->seq.load(std::memory_order_acquire);
      const int64_t diff = static_cast<int64_t>(seq - (pos + 1));
      if (diff == 0) {
        // Relaxed: the slot's seq, not head_, carries the data (note 3).
        if (head_.compare_exchange_weak(pos, pos + 1,
                                        std::memory_order_relaxed)) {
          break;
        }
      } else if (diff < 0) {
        return false;  // empty, or the oldest slot is still being written
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
    *value = slot->value;
    // Release: note 2.
    slot->seq.store(pos + capacity_, std::memory_order_release);
    return true;
  }

  // Consumer only. Pops up to `max` values into out[]; returns how many.
  size_t PopBatch(T* out, size_t max) {
    uint64_t pos = head_.load(std::memory_order_relaxed);
    size_t n = 0;
    while (n < max) {
      Slot* slot = &slots_[pos & mask_];
      if (slot->seq.load(std::memory_order_acquire) != pos + 1) break;
      out[n++] = slot->value;
      slot->seq.store(pos + capacity_, std::memory_order_release);
      ++pos;
    }
    if (n != 0) head_.store(pos, std::memory_order_relaxed);
    return n;
  }

  // Consumer only. Copies the oldest value without removing it.
  bool Front(T* value) const {
    const uint64_t pos = head_.load(std::memory_order_relaxed);
    const Slot* slot = &slots_[pos & mask_];
    if (slot->seq.load(std::memory_order_acquire) != pos + 1) return false;
    *value = slot->value;
    return true;
  }

  // Positions claimed by producers so far (pushes started).
  uint64_t Pushed() const {
    return tail_.load(std::memory_order_relaxed) & ~kClosedBit;
  }
  // Values removed by the consumer so far.
  uint64_t Popped() const { return head_.load(std::memory_order_relaxed); }
  // Best-effort number of values in the ring.
  size_t SizeGuess() const {
    const uint64_t head = Popped();
    const uint64_t tail = Pushed();
    return tail > head ? static_cast<size_t>(tail - head) : 0;
  }

 private:
  static constexpr uint64_t kClosedBit = uint64_t{1} << 63;

  struct Slot {
    std::atomic<uint64_t> seq;
    T value;
  };

  const size_t capacity_;
  const uint64_t mask_;
  const std::unique_ptr<Slot[]> slots_;
  alignas(kCacheLine) std::atomic<uint64_t> tail_{0};
  alignas(kCacheLine) std::atomic<uint64_t> head_{0};
  char pad_[kCacheLine - sizeof(std::atomic<uint64_t>)];
};

}  // namespace edgeroute::router::internal

#endif  // EDGEROUTE_ROUTER_INTERNAL_MPSC_RING_H_
