#include "router/internal/route_table.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"

namespace edgeroute::router::internal {

uint64_t RouteCounters::Evaluated() const {
  uint64_t total = 0;
  for (int w = 0; w < workers; ++w) {
    total += slots[w].evaluated.load(std::memory_order_relaxed);
  }
  return total;
}

uint64_t RouteCounters::Matched() const {
  uint64_t total = 0;
  for (int w = 0; w < workers; ++w) {
    total += slots[w].matched.load(std::memory_order_relaxed);
  }
  return total;
}

absl::StatusOr<std::shared_ptr<const RouteTable>> RouteTable::Build(
    std::unique_ptr<query::RouteSet> set, int64_t global_ttl_secs,
    uint64_t generation, const EndpointResolver& resolve_endpoint,
    const CounterResolver& resolve_counters) {
  std::shared_ptr<RouteTable> table(new RouteTable());
  table->generation_ = generation;
  table->global_ttl_secs_ = global_ttl_secs;
  absl::flat_hash_map<Endpoint*, uint32_t> endpoint_index;
  table->routes_.resize(set->size());
  constexpr int64_t kMaxSecs = std::numeric_limits<int64_t>::max() / 1000000;
  for (size_t i = 0; i < set->size(); ++i) {
    const query::RouteSet::RouteInfo& info = set->route(i);
    Route& r = table->routes_[i];
    r.bucket = static_cast<uint8_t>(PriorityBucket(info.priority));
    absl::StatusOr<Endpoint*> ep =
        resolve_endpoint(info.sink.endpoint_id, r.bucket);
    if (!ep.ok()) return ep.status();
    r.endpoint = *ep;
    auto [it, inserted] = endpoint_index.try_emplace(
        r.endpoint, static_cast<uint32_t>(table->endpoints_.size()));
    if (inserted) table->endpoints_.push_back(r.endpoint);
    r.endpoint_index = it->second;
    r.always_true = info.condition == "true";
    const int64_t ttl_secs =
        info.ttl_secs > 0 ? info.ttl_secs : global_ttl_secs;
    r.ttl_us = ttl_secs < 0 ? -1 : std::min(ttl_secs, kMaxSecs) * 1000000;
    r.counters = resolve_counters(info.name);
    table->by_source_[absl::AsciiStrToLower(info.source)].push_back(
        static_cast<uint32_t>(i));
  }
  table->set_ = std::move(set);
  return std::shared_ptr<const RouteTable>(std::move(table));
}

void RouteTable::Candidates(absl::string_view message_source,
                            std::vector<uint32_t>* out) const {
  std::string key;
  key.reserve(message_source.size() + 1);
  for (char c : message_source) key.push_back(absl::ascii_tolower(c));
  key.push_back('/');
  const size_t first = out->size();
  for (size_t i = 0; i < key.size(); ++i) {
    if (key[i] != '/') continue;
    auto it = by_source_.find(absl::string_view(key.data(), i + 1));
    if (it == by_source_.end()) continue;
    out->insert(out->end(), it->second.begin(), it->second.end());
  }
  std::sort(out->begin() + first, out->end());
}

}  // namespace edgeroute::router::internal
