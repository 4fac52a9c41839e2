// How the protocol heads keep hostile clients from flooding the log: lines
// about one connection's misbehaviour (a missing Hello/CONNECT, a refused
// identity, a broken stream) go through a LogLimiter, which lets the first
// kFirstLines through and then one in kEvery. Every event is still counted
// in the heads' metrics; the log only has to say that it happens.

#ifndef EDGEROUTE_GATEWAY_LOG_LIMITER_H_
#define EDGEROUTE_GATEWAY_LOG_LIMITER_H_

#include <cstdint>

namespace edgeroute {
namespace gateway {

// Thread-safety: none; one per loop thread.
class LogLimiter {
 public:
  static constexpr uint64_t kFirstLines = 100;
  static constexpr uint64_t kEvery = 1000;

  // Whether the next line should be written.
  bool Allow() {
    const uint64_t n = ++lines_;
    return n <= kFirstLines || n % kEvery == 0;
  }

 private:
  uint64_t lines_ = 0;
};

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_LOG_LIMITER_H_
