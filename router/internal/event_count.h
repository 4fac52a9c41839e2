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
