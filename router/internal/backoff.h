// Latency buckets (and the shared retry delays of base/backoff.h): small
// pure functions, unit-tested alone.

#ifndef EDGEROUTE_ROUTER_INTERNAL_BACKOFF_H_
#define EDGEROUTE_ROUTER_INTERNAL_BACKOFF_H_

#include <algorithm>
#include <cstdint>

#include "base/backoff.h"

namespace edgeroute::router::internal {

using ::edgeroute::BackoffMicros;

// The latency bucket of `micros`: the smallest i with micros <= 2^i, capped
// at `buckets - 1`.
inline int LatencyBucket(int64_t micros, int buckets) {
  if (micros <= 1) return 0;
  const int bits = 64 - __builtin_clzll(static_cast<uint64_t>(micros - 1));
  return bits < buckets - 1 ? bits : buckets - 1;
}

}  // namespace edgeroute::router::internal

#endif  // EDGEROUTE_ROUTER_INTERNAL_BACKOFF_H_
