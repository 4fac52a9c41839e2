// Retry delays and latency buckets: small pure functions, unit-tested alone.

#ifndef EDGEROUTE_ROUTER_INTERNAL_BACKOFF_H_
#define EDGEROUTE_ROUTER_INTERNAL_BACKOFF_H_

#include <algorithm>
#include <cstdint>

namespace edgeroute::router::internal {

// The delay before retry `retry` (1-based) in microseconds:
// min(initial + (2^(retry-1) - 1) * factor * initial, max), where `factor`
// is the jitter draw in [1 - jitter, 1 + jitter].
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

// The latency bucket of `micros`: the smallest i with micros <= 2^i, capped
// at `buckets - 1`.
inline int LatencyBucket(int64_t micros, int buckets) {
  if (micros <= 1) return 0;
  const int bits = 64 - __builtin_clzll(static_cast<uint64_t>(micros - 1));
  return bits < buckets - 1 ? bits : buckets - 1;
}

}  // namespace edgeroute::router::internal

#endif  // EDGEROUTE_ROUTER_INTERNAL_BACKOFF_H_
