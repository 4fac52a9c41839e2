// EventCount: lets a thread sleep until another thread signals that a
// condition it checks without locks may have become true (an admission ring
// got a message, a lane got a message, a batch was completed).
//
// Guarantee: if the waiter calls PrepareWait(), then finds its condition
// false, then calls Wait(key), and a notifier makes the condition true and
// then calls Notify(), the waiter wakes up (no lost wake-up). Wake-ups may be
// spurious; waiters re-check their condition in a loop.
//
// Algorithm: `waiters_` counts threads between PrepareWait and the end of
// Wait; `epoch_` is a futex word bumped by Notify when there are waiters.
// Memory ordering (the Dekker pattern): the waiter increments waiters_ and
// issues a seq_cst fence before reading the condition; the notifier writes
// the condition, issues a seq_cst fence, then reads waiters_. The two fences
// are totally ordered, so either the waiter reads the new condition, or the
// notifier reads waiters_ > 0 and bumps epoch_ -- which makes the futex wait
// (which compares epoch_ with the key read in PrepareWait) return at once or
// be woken. Data behind the condition is published by the caller's own
// release/acquire pairs, not by this class.
//
// Notify costs one fence and one load when nobody waits; no system call.
// Thread-safety: all methods may be called concurrently.

#ifndef EDGEROUTE_ROUTER_INTERNAL_EVENT_COUNT_H_
#define EDGEROUTE_ROUTER_INTERNAL_EVENT_COUNT_H_

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

namespace edgeroute::router::internal {

inline void FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
                      int64_t timeout_micros);
inline void FutexWake(std::atomic<uint32_t>* word, int count = INT_MAX);

#if defined(__SANITIZE_THREAD__)
#define EDGEROUTE_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EDGEROUTE_TSAN_BUILD 1
#endif
#endif

// A pause hint for spin-wait loops.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// A full (seq_cst) fence. ThreadSanitizer does not model fences (and GCC
// warns about them); under TSan a seq_cst read-modify-write stands in, which
// is a full barrier on the hardware we build for.
inline void SeqCstFence() {
#ifdef EDGEROUTE_TSAN_BUILD
  static std::atomic<uint32_t> tsan_fence_word{0};
  tsan_fence_word.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

class EventCount {
 public:
  EventCount() = default;
  EventCount(const EventCount&) = delete;
  EventCount& operator=(const EventCount&) = delete;

  // Announces a wait; returns the key to pass to Wait. The caller must
  // re-check its condition after this and then call Wait or CancelWait.
  uint32_t PrepareWait() {
    waiters_.fetch_add(1, std::memory_order_relaxed);
    // seq_cst: pairs with the fence in Notify (see the header comment).
    SeqCstFence();
    // Relaxed: ordered after the fence; a stale epoch only makes the futex
    // wait return at once.
    return epoch_.load(std::memory_order_relaxed);
  }

  void CancelWait() { waiters_.fetch_sub(1, std::memory_order_relaxed); }

  // Sleeps until Notify() bumps the epoch past `key` or `timeout_micros`
  // (real time; <0 = no timeout) passes. May return spuriously.
  void Wait(uint32_t key, int64_t timeout_micros) {
    // Acquire: pairs with the release increment in Notify so that a waiter
    // that sees the new epoch also sees what the notifier wrote before it.
    if (epoch_.load(std::memory_order_acquire) == key) {
      FutexWait(&epoch_, key, timeout_micros);
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Wakes every thread waiting now.
  void Notify() {
    // seq_cst: pairs with the fence in PrepareWait.
    SeqCstFence();
    if (waiters_.load(std::memory_order_relaxed) == 0) return;
    // Release: see Wait.
    epoch_.fetch_add(1, std::memory_order_release);
    FutexWake(&epoch_, INT_MAX);
  }

  // Wakes at least one thread waiting now (if any), for a condition that
  // one waiter is enough to handle (one task queued for a pool of
  // interchangeable threads). Every waiter that has not reached the futex
  // yet sees the new epoch and returns as well; a waiter asleep in the
  // futex stays asleep unless it is the one woken, and is counted in
  // waiters_, so the next NotifyOne wakes it.
  void NotifyOne() {
    SeqCstFence();
    if (waiters_.load(std::memory_order_relaxed) == 0) return;
    epoch_.fetch_add(1, std::memory_order_release);
    FutexWake(&epoch_, 1);
  }

 private:
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t),
                "futex word must be a plain 32-bit integer");
  std::atomic<uint32_t> epoch_{0};
  std::atomic<int32_t> waiters_{0};
};

// Doorbell: an EventCount for waiters that all want the same news (a
// dispatch worker waiting for its admission ring, producers waiting for
// room in it), built so that a stream of Notify calls costs one futex wake
// per round of waits rather than one per call.
//
// Why: EventCount::Notify wakes as long as any waiter is registered, and a
// woken thread stays registered until it runs again -- on a loaded machine
// that is milliseconds, during which every message Send admits paid a
// futex system call (two thirds of all system calls in the router
// benchmark's profile). Here the first Notify after waiters registered
// counts them all off and moves the epoch on; later Notify calls see no
// waiters and return after a fence and a load, until a thread registers
// again.
//
// Guarantee and usage as EventCount's (PrepareWait, re-check, Wait or
// CancelWait), with the key passed to CancelWait too; Notify wakes every
// waiter (there is no NotifyOne: a pool that wants one thread per task
// uses EventCount).
//
// State: one 64-bit word, registered waiters in the low half, the epoch in
// the high half, which is the futex word (little-endian: its address is the
// word's + 4). A waiter registers with a fetch_add and then issues a
// seq_cst fence before it reads its condition; Notify issues a fence after
// the caller wrote the condition, reads the word, and if it holds waiters,
// replaces it by (epoch + 1, 0 waiters) with a CAS and wakes the futex. By
// the fences' total order either the waiter sees the condition or Notify
// sees the registration (the Dekker argument of EventCount). A waiter
// leaves by decrementing the count only while the epoch is still its key:
// once the epoch moved, a Notify has already counted it off.
// Thread-safety: all methods may be called concurrently.
class Doorbell {
 public:
  Doorbell() = default;
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;

  uint32_t PrepareWait() {
    const uint64_t before = state_.fetch_add(1, std::memory_order_relaxed);
    // seq_cst: pairs with the fence in Notify.
    SeqCstFence();
    return Epoch(before);
  }

  void CancelWait(uint32_t key) { Leave(key); }

  // Sleeps until a Notify after PrepareWait, or `timeout_micros` (real time;
  // <0 = none). May return spuriously.
  void Wait(uint32_t key, int64_t timeout_micros) {
    // Acquire: pairs with Notify's release CAS.
    if (Epoch(state_.load(std::memory_order_acquire)) == key) {
      FutexWait(EpochWord(), key, timeout_micros);
    }
    Leave(key);
  }

  void Notify() {
    // seq_cst: pairs with the fence in PrepareWait.
    SeqCstFence();
    NotifyAfterSeqCstRmw();
  }

  // As Notify, without its fence, for a caller that made its condition true
  // with a seq_cst read-modify-write (a ring's claim of a position):
  // either that write precedes the waiter's fence in the seq_cst total
  // order, and the waiter's re-check sees it, or the fence precedes it, and
  // then this seq_cst load, which follows the write in that order, sees
  // the waiter's registration ([atomics.order]: a fence X sequenced after
  // a modification A, and a seq_cst read B after X in the order, B sees A).
  // On x86 the read-modify-write is already a full barrier: this saves the
  // second one per message.
  void NotifyAfterSeqCstRmw() {
    uint64_t s = state_.load(std::memory_order_seq_cst);
    while (Waiters(s) != 0) {
      const uint64_t next = uint64_t{Epoch(s) + 1} << 32;
      // Release: a waiter that sees the new epoch sees what the caller
      // wrote before Notify.
      if (state_.compare_exchange_weak(s, next, std::memory_order_release,
                                       std::memory_order_relaxed)) {
        FutexWake(EpochWord(), INT_MAX);
        return;
      }
    }
  }

 private:
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
                "the futex word is the high half of state_");
  static uint32_t Epoch(uint64_t s) { return static_cast<uint32_t>(s >> 32); }
  static uint32_t Waiters(uint64_t s) { return static_cast<uint32_t>(s); }

  // The high half of state_, as the kernel reads it (only its address is
  // used here; the kernel compares the value in FUTEX_WAIT).
  std::atomic<uint32_t>* EpochWord() {
    return reinterpret_cast<std::atomic<uint32_t>*>(
        reinterpret_cast<char*>(&state_) + sizeof(uint32_t));
  }

  void Leave(uint32_t key) {
    uint64_t s = state_.load(std::memory_order_acquire);
    while (Epoch(s) == key) {
      if (state_.compare_exchange_weak(s, s - 1, std::memory_order_acquire,
                                       std::memory_order_acquire)) {
        return;
      }
    }
  }

  std::atomic<uint64_t> state_{0};
};

// Blocks while *word == expected (or until the timeout, real time, <0 =
// none). May return spuriously.
inline void FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
                      int64_t timeout_micros) {
  timespec ts;
  timespec* tsp = nullptr;
  if (timeout_micros >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout_micros / 1000000);
    ts.tv_nsec = static_cast<long>((timeout_micros % 1000000) * 1000);
    tsp = &ts;
  }
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE,
          expected, tsp, nullptr, 0);
}

// Wakes up to `count` threads blocked in FutexWait on `word`. Safe to call
// after the memory holding *word was freed by a woken thread: FUTEX_WAKE
// only uses the address as a key and never reads it.
inline void FutexWake(std::atomic<uint32_t>* word, int count) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE,
          count, nullptr, nullptr, 0);
}

}  // namespace edgeroute::router::internal

#endif  // EDGEROUTE_ROUTER_INTERNAL_EVENT_COUNT_H_
