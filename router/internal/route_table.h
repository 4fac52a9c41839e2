// RouteTable: one immutable snapshot of the compiled routes, with the
// source index and the per-route data the dispatch workers need.
//
// Source index: a route matches a message when message_source + "/" starts
// with the route's normalised source (which always ends in "/"), ignoring
// ASCII case. So the routes that can match are exactly those whose source is
// one of the "/"-terminated prefixes of lower(message_source) + "/": one hash
// lookup per path segment (at most 5 for edgeHub's sources) instead of a scan
// over every route. Dispatch workers cache the result per distinct source.
//
// Route counters (evaluated / matched) live in RouteCounters blocks keyed by
// route name and shared by successive tables, so counts survive reloads;
// each worker writes only its own cache line of each block.
//
// Thread-safety: immutable after Build; shared by the dispatch workers
// through std::shared_ptr. The counters are atomics written by one worker
// each.

#ifndef EDGEROUTE_ROUTER_INTERNAL_ROUTE_TABLE_H_
#define EDGEROUTE_ROUTER_INTERNAL_ROUTE_TABLE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "query/query.h"
#include "router/internal/endpoint.h"

namespace edgeroute::router::internal {

// Counters of one route name, one cache line per dispatch worker.
struct RouteCounters {
  struct alignas(kCacheLine) Slot {
    std::atomic<uint64_t> evaluated{0};
    std::atomic<uint64_t> matched{0};
  };
  RouteCounters(std::string n, int workers)
      : name(std::move(n)), slots(new Slot[workers]), workers(workers) {}
  const std::string name;
  const std::unique_ptr<Slot[]> slots;
  const int workers;
  uint64_t Evaluated() const;
  uint64_t Matched() const;
};

class RouteTable {
 public:
  struct Route {
    Endpoint* endpoint = nullptr;
    // Dense index of the endpoint within this table (for dedup arrays).
    uint32_t endpoint_index = 0;
    uint8_t bucket = kDefaultBucket;
    // The route has no WHERE clause: no evaluation needed.
    bool always_true = false;
    // Effective TTL in microseconds (route TTL, else global); < 0 = never.
    int64_t ttl_us = -1;
    RouteCounters* counters = nullptr;
  };

  // Resolves an endpoint id and priority bucket to the router's Endpoint
  // (creating it and its lane if needed).
  using EndpointResolver =
      std::function<absl::StatusOr<Endpoint*>(const std::string&, int)>;
  // Resolves a route name to its counters (creating them if needed).
  using CounterResolver = std::function<RouteCounters*(const std::string&)>;

  static absl::StatusOr<std::shared_ptr<const RouteTable>> Build(
      std::unique_ptr<query::RouteSet> set, int64_t global_ttl_secs,
      uint64_t generation, const EndpointResolver& resolve_endpoint,
      const CounterResolver& resolve_counters);

  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  uint64_t generation() const { return generation_; }
  int64_t global_ttl_secs() const { return global_ttl_secs_; }
  const query::RouteSet& set() const { return *set_; }
  size_t size() const { return routes_.size(); }
  const Route& route(size_t i) const { return routes_[i]; }
  size_t endpoint_count() const { return endpoints_.size(); }
  Endpoint* endpoint(size_t e) const { return endpoints_[e]; }

  // Appends to *out, in ascending order, the index of every route whose
  // source can match a message with source `message_source`.
  void Candidates(absl::string_view message_source,
                  std::vector<uint32_t>* out) const;

 private:
  RouteTable() = default;

  uint64_t generation_ = 0;
  int64_t global_ttl_secs_ = -1;
  std::unique_ptr<query::RouteSet> set_;
  std::vector<Route> routes_;
  std::vector<Endpoint*> endpoints_;
  // Lower-cased normalised route source -> route indices (ascending).
  absl::flat_hash_map<std::string, std::vector<uint32_t>> by_source_;
};

}  // namespace edgeroute::router::internal

#endif  // EDGEROUTE_ROUTER_INTERNAL_ROUTE_TABLE_H_
