#include "base/clock.h"

#include <time.h>

namespace edgeroute {
namespace {

int64_t ReadMicros(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

class RealClock final : public Clock {
 public:
  int64_t NowMicros() const override { return ReadMicros(CLOCK_REALTIME); }
  int64_t MonotonicMicros() const override { return ReadMicros(CLOCK_MONOTONIC); }
};

}  // namespace

Clock* SystemClock() {
  static RealClock* const clock = new RealClock();
  return clock;
}

}  // namespace edgeroute
