// Per-thread evaluation state: the message being evaluated, every load and
// plan result cached for it (by generation number, so a new message costs
// no clearing), the parsed body, and bump arenas for strings built during
// evaluation. Internal to //query.
//
// Thread-safety: none; one scratch per thread (query.h's EvalScratch).

#ifndef EDGEROUTE_QUERY_SCRATCH_H_
#define EDGEROUTE_QUERY_SCRATCH_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "message/message.h"
#include "query/json.h"
#include "query/query.h"
#include "query/value.h"

namespace edgeroute::query::internal {

class Program;

// Plan result bytes (plan.h): kPlanFalse < kPlanUndefined < kPlanTrue, so
// that AND is min, OR is max and NOT is kPlanTrue - x (Kleene logic, which
// is edgeHub's Bool).
constexpr uint8_t kPlanFalse = 0, kPlanUndefined = 1, kPlanTrue = 2;

// Bump allocator whose blocks are kept across Reset() (no allocation after
// warm-up).
class Arena {
 public:
  char* Alloc(size_t n);
  void Reset() {
    block_ = 0;
    used_ = 0;
  }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
  std::vector<size_t> sizes_;
  size_t block_ = 0, used_ = 0;
};

// The sizes a route-set plan needs in a scratch (0 without a plan).
struct PlanSizes {
  size_t units = 0;
  size_t values = 0;
  size_t shape_temps = 0;
};

class Scratch : public EvalScratch {
 public:
  Scratch(const Program& program, const PlanSizes& plan);
  ~Scratch() override;

  // Starts a new message unless `message` is the cached one.
  void Begin(const MessageView& message) {
    absl::Span<const uint8_t> bytes = message.bytes();
    if (bytes.data() != msg_data_ || bytes.size() != msg_size_ ||
        bytes.data() == nullptr) {
      NewMessage(bytes);
    }
    arena_.Reset();
  }
  // Forgets the cached message.
  void Reset() {
    msg_data_ = nullptr;
    msg_size_ = 0;
  }
  // A byte per route source (RouteSet::EvaluateAll), allocated once.
  uint8_t* source_ok(size_t sources) {
    if (source_ok_.size() < sources) source_ok_.resize(sources);
    return source_ok_.data();
  }
  // Allocates `n` bytes valid until the next Begin().
  char* Alloc(size_t n) { return arena_.Alloc(n); }
  // Allocates `n` bytes valid while the message is cached.
  char* AllocForMessage(size_t n) { return message_arena_.Alloc(n); }

 private:
  friend class Evaluator;
  friend class RoutePlan;
  void NewMessage(absl::Span<const uint8_t> bytes);

  const uint8_t* msg_data_ = nullptr;
  size_t msg_size_ = 0;
  // The current message's generation; a slot holds a value for the current
  // message when its generation is gen_.
  uint32_t gen_ = 0;
  std::vector<uint32_t> app_gen_, sys_gen_, body_gen_, body_cache_gen_;
  std::vector<PropertyValue> app_values_, sys_values_;
  std::vector<Value> body_values_, body_cache_values_;
  // The plan's: per unit the generation it was evaluated for, and the atom
  // and temporary results.
  std::vector<uint32_t> unit_gen_;
  std::vector<uint8_t> plan_values_;
  std::vector<uint8_t> shape_temps_;
  std::vector<uint8_t> source_ok_;
  // The parsed body, for generation body_parsed_gen_.
  JsonTape body_tape_;
  std::string transcoded_body_;  // UTF-16/UTF-32 bodies as UTF-8
  uint32_t body_parsed_gen_ = 0;
  bool body_ok_ = false;
  // Whether some application property's key starts with '$' (only such a
  // key can shadow a $body path), for generation dollar_gen_.
  uint32_t dollar_gen_ = 0;
  bool dollar_props_ = false;
  Arena arena_, message_arena_;
};

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_SCRATCH_H_
