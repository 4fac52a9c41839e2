// Retry delays: exponential backoff shared by the router's endpoint retries
// and the upstream connector's reconnects.

#ifndef EDGEROUTE_BASE_BACKOFF_H_
#define EDGEROUTE_BASE_BACKOFF_H_

#include <algorithm>
#include <cstdint>

namespace edgeroute {

// The delay before retry `retry` (1-based) in microseconds:
// min(initial + (2^(retry-1) - 1) * factor * initial, max), where `factor`
// is the caller's jitter draw (edgeHub's formula; factor 1 doubles the delay
// from one retry to the next: initial, 2 initial, 4 initial, ...).
// REQUIRES: retry >= 1, initial_us >= 0, max_us >= 0.
inline int64_t BackoffMicros(int retry, int64_t initial_us, int64_t max_us,
                             double factor) {
  const int n = std::min(retry - 1, 62);
  const double growth = static_cast<double>((int64_t{1} << n) - 1);
  const double delay = static_cast<double>(initial_us) +
                       growth * factor * static_cast<double>(initial_us);
  if (delay >= static_cast<double>(max_us)) return max_us;
  return static_cast<int64_t>(delay);
}

}  // namespace edgeroute

#endif  // EDGEROUTE_BASE_BACKOFF_H_
