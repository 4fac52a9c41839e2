// An injectable source of time. Production code takes a `Clock*` (default
// SystemClock()); tests pass a FakeClock and move time forward explicitly, so
// no test sleeps to wait for time to pass.

#ifndef EDGEROUTE_BASE_CLOCK_H_
#define EDGEROUTE_BASE_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace edgeroute {

// Thread-safety: implementations must be safe for concurrent use.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, microseconds since the Unix epoch (UTC). Used for
  // enqueue times and TTL; may jump.
  virtual int64_t NowMicros() const = 0;
  // Monotonic time in microseconds from an arbitrary origin. Used for
  // latencies, timeouts and backoff.
  virtual int64_t MonotonicMicros() const = 0;
};

// The process's real clock. Never null; lives forever.
Clock* SystemClock();

// A clock that only moves when told to. Both readings start at `start_micros`
// and advance together.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_micros = 1'700'000'000'000'000)
      : now_(start_micros) {}

  int64_t NowMicros() const override {
    // Relaxed: the value is a plain counter with no data published by it.
    return now_.load(std::memory_order_relaxed);
  }
  int64_t MonotonicMicros() const override {
    return now_.load(std::memory_order_relaxed);
  }
  void AdvanceMicros(int64_t delta) {
    now_.fetch_add(delta, std::memory_order_relaxed);
  }
  void AdvanceSeconds(int64_t seconds) { AdvanceMicros(seconds * 1'000'000); }
  void SetMicros(int64_t micros) {
    now_.store(micros, std::memory_order_relaxed);
  }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace edgeroute

#endif  // EDGEROUTE_BASE_CLOCK_H_
