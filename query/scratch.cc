#include "query/scratch.h"

#include <algorithm>

#include "query/program.h"

namespace edgeroute::query::internal {

Scratch::Scratch(const Program& program, const PlanSizes& plan) {
  app_gen_.assign(program.app_slots(), 0);
  sys_gen_.assign(program.sys_slots(), 0);
  body_gen_.assign(program.body_slots(), 0);
  body_cache_gen_.assign(program.body_cache_slots(), 0);
  app_values_.resize(program.app_slots());
  sys_values_.resize(program.sys_slots());
  body_values_.resize(program.body_slots());
  body_cache_values_.resize(program.body_cache_slots());
  unit_gen_.assign(plan.units, 0);
  plan_values_.assign(plan.values, kPlanUndefined);
  shape_temps_.assign(plan.shape_temps, kPlanUndefined);
}

Scratch::~Scratch() = default;

void Scratch::NewMessage(absl::Span<const uint8_t> bytes) {
  msg_data_ = bytes.data();
  msg_size_ = bytes.size();
  message_arena_.Reset();
  ++gen_;
  if (gen_ == 0) {  // wrapped: forget everything
    std::fill(app_gen_.begin(), app_gen_.end(), 0);
    std::fill(sys_gen_.begin(), sys_gen_.end(), 0);
    std::fill(body_gen_.begin(), body_gen_.end(), 0);
    std::fill(body_cache_gen_.begin(), body_cache_gen_.end(), 0);
    std::fill(unit_gen_.begin(), unit_gen_.end(), 0);
    body_parsed_gen_ = 0;
    dollar_gen_ = 0;
    gen_ = 1;
  }
}

char* Arena::Alloc(size_t n) {
  while (true) {
    if (block_ < blocks_.size()) {
      if (used_ + n <= sizes_[block_]) {
        char* p = blocks_[block_].get() + used_;
        used_ += n;
        return p;
      }
      ++block_;
      used_ = 0;
      continue;
    }
    size_t size = std::max<size_t>(n, 4096);
    blocks_.emplace_back(new char[size]);
    sizes_.push_back(size);
    block_ = blocks_.size() - 1;
    used_ = 0;
  }
}

}  // namespace edgeroute::query::internal
