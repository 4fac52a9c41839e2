#include "query/plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "query/evaluator.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace edgeroute::query::internal {
namespace {

uint8_t PlanTri(Tri t) {
  switch (t) {
    case Tri::kTrue:
      return kPlanTrue;
    case Tri::kFalse:
      return kPlanFalse;
    default:
      return kPlanUndefined;
  }
}

uint8_t PlanBool(const Value& v) {
  if (v.kind != ValueKind::kBool) return kPlanUndefined;
  return v.boolean ? kPlanTrue : kPlanFalse;
}

#if defined(__SSE2__)
// 4 comparison bits -> 4 result bytes (kPlanTrue or kPlanFalse each), in
// memory order on a little-endian machine.
constexpr uint32_t PlanBytes(int bits) {
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) {
    r |= uint32_t((bits >> i) & 1 ? kPlanTrue : kPlanFalse) << (8 * i);
  }
  return r;
}
constexpr uint32_t kPlanBytes[16] = {
    PlanBytes(0),  PlanBytes(1),  PlanBytes(2),  PlanBytes(3),
    PlanBytes(4),  PlanBytes(5),  PlanBytes(6),  PlanBytes(7),
    PlanBytes(8),  PlanBytes(9),  PlanBytes(10), PlanBytes(11),
    PlanBytes(12), PlanBytes(13), PlanBytes(14), PlanBytes(15)};

// Formula operators on 16 routes at once (the plan's byte encoding).
struct Min16 {
  __m128i operator()(__m128i x, __m128i y) const { return _mm_min_epu8(x, y); }
};
struct Max16 {
  __m128i operator()(__m128i x, __m128i y) const { return _mm_max_epu8(x, y); }
};
struct Not16 {
  __m128i operator()(__m128i x, __m128i) const {
    return _mm_sub_epi8(_mm_set1_epi8(char(kPlanTrue)), x);
  }
};
#else
struct Min16 {};
struct Max16 {};
struct Not16 {};
#endif

// The comparison an atom makes with its load on the left.
Comparison LoadOnLeft(Comparison c, bool constant_on_left) {
  return constant_on_left ? SwapOperands(c) : c;
}

bool IsNumberConstant(const Value& v) {
  return v.kind == ValueKind::kNumber && !std::isnan(v.number);
}

bool IsEquality(Comparison c) {
  return c == Comparison::kEq || c == Comparison::kNe;
}

// Identifies a constant for de-duplication (compile time only).
std::string ConstantKey(const Value& v) {
  std::string key(1, char(v.kind));
  switch (v.kind) {
    case ValueKind::kNumber: {
      uint64_t bits;
      std::memcpy(&bits, &v.number, sizeof(bits));
      absl::StrAppend(&key, bits);
      break;
    }
    case ValueKind::kString:
      key.append(v.str().data(), v.str().size());
      break;
    case ValueKind::kBool:
      key.push_back(v.boolean ? '1' : '0');
      break;
    default:
      break;
  }
  return key;
}

}  // namespace

// ---------------------------------------------------------------------------
// Building.

// Step one: each route's formula, its atoms (de-duplicated per source and
// load) and the units it depends on. Atoms are numbered in the order they
// are found, temporaries of each route from 0 with kTemp set; Finish() puts
// the temporaries after the atoms.
class RoutePlan::FormulaBuilder {
 public:
  explicit FormulaBuilder(RoutePlan* plan) : plan_(*plan) {}

  void AddRoute(int root, uint32_t source) {
    route_source_ = source;
    route_units_.clear();
    temps_ = 0;
    Route r;
    r.code_begin = uint32_t(plan_.code_.size());
    const Node& n = plan_.program_.node(root);
    if (n.type == StaticType::kBool || n.type == StaticType::kUndefined) {
      r.result = Formula(root);
    } else {
      // Not a bool (null, a body value...): converted as a whole.
      r.result = GenericAtom(root);
    }
    r.code_end = uint32_t(plan_.code_.size());
    r.units_begin = uint32_t(plan_.route_units_.size());
    plan_.route_units_.insert(plan_.route_units_.end(), route_units_.begin(),
                              route_units_.end());
    r.units_end = uint32_t(plan_.route_units_.size());
    plan_.routes_.push_back(r);
    plan_.temps_ = std::max<size_t>(plan_.temps_, temps_);
  }

  // Temporaries live after the atoms. Returns the number of atoms.
  uint32_t Finish() {
    plan_.atoms_ = atoms_;
    auto place = [&](uint32_t* v) {
      if (*v & kTemp) *v = (*v & ~kTemp) + atoms_;
    };
    for (Instruction& in : plan_.code_) {
      place(&in.a);
      place(&in.b);
      place(&in.dest);
    }
    for (Route& r : plan_.routes_) place(&r.result);
    return atoms_;
  }

 private:
  static constexpr uint32_t kTemp = 0x80000000u;  // numbered by Finish

  void DependOn(uint32_t unit) {
    if (std::find(route_units_.begin(), route_units_.end(), unit) ==
        route_units_.end()) {
      route_units_.push_back(unit);
    }
  }

  // The value index of node i's three-valued result, emitting formula code
  // for bool AND / OR / NOT.
  uint32_t Formula(int i) {
    const Node& n = plan_.program_.node(i);
    if ((n.op == Op::kAnd || n.op == Op::kOr) &&
        n.operand_type == StaticType::kBool) {
      Instruction in;
      in.code = n.op == Op::kAnd ? Instruction::kAnd : Instruction::kOr;
      in.a = Formula(n.left);
      in.b = Formula(n.right);
      in.dest = kTemp | temps_++;
      plan_.code_.push_back(in);
      return in.dest;
    }
    if (n.op == Op::kNot) {
      Instruction in;
      in.code = Instruction::kNot;
      in.a = Formula(n.left);
      in.b = in.a;
      in.dest = kTemp | temps_++;
      plan_.code_.push_back(in);
      return in.dest;
    }
    if (n.op == Op::kCompareLoadConst) return GroupAtom(n);
    return GenericAtom(i);
  }

  uint32_t GenericAtom(int i) {
    plan_.generics_.push_back({i, atoms_++});
    plan_.units_.push_back({false, uint32_t(plan_.generics_.size() - 1)});
    DependOn(uint32_t(plan_.units_.size() - 1));
    return plan_.generics_.back().out;
  }

  // The atom of a load compared with a constant, in its load's group.
  // Groups are per route source, so that evaluating the routes of one
  // source (the router's candidates) never compares constants of others.
  uint32_t GroupAtom(const Node& n) {
    const std::string group_key =
        absl::StrCat(route_source_, ":", int(n.load_op), ",", n.load.app, ",",
                     n.load.sys, ",", n.load.body, ",", n.load.body_cache);
    auto [group_it, new_group] = group_index_.try_emplace(group_key, 0);
    if (new_group) {
      group_it->second = uint32_t(plan_.units_.size());
      Group g;
      g.load_op = n.load_op;
      g.load = n.load;
      plan_.groups_.push_back(std::move(g));
      plan_.units_.push_back({true, uint32_t(plan_.groups_.size() - 1)});
    }
    const uint32_t unit = group_it->second;
    DependOn(unit);
    const std::string atom_key =
        absl::StrCat(unit, ",", int(n.comparison), ",", n.constant_on_left, ",",
                     int(n.operand_type), ",", ConstantKey(n.constant));
    auto [atom_it, new_atom] = atom_index_.try_emplace(atom_key, 0);
    if (new_atom) {
      atom_it->second = atoms_++;
      Group& g = plan_.groups_[plan_.units_[unit].index];
      Atom a;
      a.comparison = n.comparison;
      a.constant_on_left = n.constant_on_left;
      a.operand_type = n.operand_type;
      a.constant = n.constant;
      a.out = atom_it->second;
      const uint32_t k = uint32_t(g.atoms.size());
      g.atoms.push_back(a);
      if (IsNumberConstant(a.constant)) {
        g.number_constants[int(LoadOnLeft(a.comparison, a.constant_on_left))]
            .push_back(a.constant.number);
      } else {
        g.not_number.push_back(k);
      }
      if (IsEquality(a.comparison) && a.constant.kind == ValueKind::kString) {
        g.string_eq.push_back(k);
      } else {
        g.not_string.push_back(k);
      }
    }
    return atom_it->second;
  }

  RoutePlan& plan_;
  absl::flat_hash_map<std::string, uint32_t> group_index_, atom_index_;
  uint32_t atoms_ = 0;
  // The route being added: its source, units and temporaries.
  uint32_t route_source_ = 0;
  std::vector<uint32_t> route_units_;
  uint32_t temps_ = 0;
};

RoutePlan::RoutePlan(const Program& program, const std::vector<int>& roots,
                     const std::vector<uint32_t>& source_of, size_t sources)
    : program_(program) {
  FormulaBuilder builder(this);
  for (size_t i = 0; i < roots.size(); ++i) {
    builder.AddRoute(roots[i], source_of[i]);
  }
  NumberAtoms(builder.Finish());
  FindShapes(source_of, sources);
}

void RoutePlan::NumberAtoms(uint32_t atoms) {
  std::vector<uint32_t> renumber(atoms, 0);
  uint32_t next = 0;
  for (Group& g : groups_) {
    // number_constants[c] lists these atoms' constants in atom order.
    for (int c = 0; c < kComparisons; ++c) {
      g.number_first[c] = next;
      for (const Atom& a : g.atoms) {
        if (IsNumberConstant(a.constant) &&
            int(LoadOnLeft(a.comparison, a.constant_on_left)) == c) {
          renumber[a.out] = next++;
        }
      }
    }
    std::vector<bool> is_string(g.atoms.size(), false);
    for (Comparison c : {Comparison::kEq, Comparison::kNe}) {
      const bool eq = c == Comparison::kEq;
      (eq ? g.string_eq_first : g.string_ne_first) = next;
      for (uint32_t k : g.string_eq) {
        if (g.atoms[k].comparison != c) continue;
        is_string[k] = true;
        renumber[g.atoms[k].out] = next++;
      }
      (eq ? g.string_eq_count : g.string_ne_count) =
          next - (eq ? g.string_eq_first : g.string_ne_first);
    }
    for (uint32_t k : g.not_number) {
      if (!is_string[k]) renumber[g.atoms[k].out] = next++;
    }
    for (Atom& a : g.atoms) a.out = renumber[a.out];
    g.string_eq_needs_string = true;
    for (uint32_t k : g.string_eq) {
      const StaticType t = g.atoms[k].operand_type;
      if (g.atoms[k].comparison == Comparison::kEq &&
          t != StaticType::kString && t != StaticType::kQueryValue) {
        g.string_eq_needs_string = false;
      }
    }
    if (g.string_eq.size() > 8) {
      // Result indexes of the atoms comparing with each distinct constant.
      absl::flat_hash_map<absl::string_view, std::vector<uint32_t>> by_value;
      for (uint32_t k : g.string_eq) {
        by_value[g.atoms[k].constant.str()].push_back(g.atoms[k].out);
      }
      for (auto& [value, outs] : by_value) {
        const uint32_t begin = uint32_t(g.string_hits.size());
        g.string_hits.insert(g.string_hits.end(), outs.begin(), outs.end());
        g.string_index[value] = {begin, uint32_t(g.string_hits.size())};
      }
    }
  }
  for (Generic& g : generics_) {
    renumber[g.out] = next++;
    g.out = renumber[g.out];
  }
  auto apply = [&](uint32_t* v) {
    if (*v < atoms) *v = renumber[*v];
  };
  for (Instruction& in : code_) {
    apply(&in.a);
    apply(&in.b);
  }
  for (Route& r : routes_) apply(&r.result);
}

void RoutePlan::FindShapes(const std::vector<uint32_t>& source_of,
                           size_t sources) {
  const uint32_t atoms = uint32_t(atoms_);
  source_units_.assign(sources, {});
  absl::flat_hash_map<std::string, uint32_t> shape_index;
  std::vector<std::vector<uint32_t>> shape_atoms;  // per shape, route-major
  for (size_t i = 0; i < routes_.size(); ++i) {
    const Route& r = routes_[i];
    const uint32_t source = source_of[i];
    std::vector<uint32_t>& units = source_units_[source];
    for (uint32_t k = r.units_begin; k < r.units_end; ++k) {
      if (std::find(units.begin(), units.end(), route_units_[k]) ==
          units.end()) {
        units.push_back(route_units_[k]);
      }
    }
    // Operand v of this route: an atom becomes the next column, a
    // temporary its instruction's number (temporaries are numbered in
    // emission order from `atoms`, one per instruction).
    std::vector<uint32_t> atom_operands;
    auto abstract = [&](uint32_t v) -> uint32_t {
      if (v >= atoms) return kShapeTemp | (v - atoms);
      atom_operands.push_back(v);
      return uint32_t(atom_operands.size() - 1);
    };
    std::vector<Instruction> code;
    std::string key = absl::StrCat(source, ":");
    for (uint32_t k = r.code_begin; k < r.code_end; ++k) {
      Instruction in = code_[k];
      in.a = abstract(in.a);
      in.b = in.code == Instruction::kNot ? in.a : abstract(in.b);
      in.dest = kShapeTemp | (in.dest - atoms);
      absl::StrAppend(&key, int(in.code), ",", in.a, ",", in.b, ",", in.dest,
                      ";");
      code.push_back(in);
    }
    const uint32_t result = abstract(r.result);
    absl::StrAppend(&key, "=", result);
    auto [it, added] = shape_index.try_emplace(key, 0);
    if (added) {
      it->second = uint32_t(shapes_.size());
      Shape shape;
      shape.source = source;
      shape.code = std::move(code);
      shape.result = result;
      shapes_.push_back(std::move(shape));
      shape_atoms.emplace_back();
    }
    shapes_[it->second].routes.push_back(uint32_t(i));
    std::vector<uint32_t>& all = shape_atoms[it->second];
    all.insert(all.end(), atom_operands.begin(), atom_operands.end());
  }
  for (size_t k = 0; k < shapes_.size(); ++k) {
    Shape& shape = shapes_[k];
    const size_t n = shape.routes.size();
    const size_t columns = n == 0 ? 0 : shape_atoms[k].size() / n;
    shape.columns.resize(columns * n);
    for (size_t r = 0; r < n; ++r) {
      for (size_t c = 0; c < columns; ++c) {
        shape.columns[c * n + r] = shape_atoms[k][r * columns + c];
      }
    }
    // Consecutive columns and routes are read and written as whole ranges.
    shape.column_base.assign(columns, kNotConsecutive);
    for (size_t c = 0; c < columns; ++c) {
      const uint32_t* col = shape.columns.data() + c * n;
      bool consecutive = true;
      for (size_t r = 1; r < n && consecutive; ++r) {
        consecutive = col[r] == col[0] + r;
      }
      if (consecutive && n > 0) shape.column_base[c] = col[0];
    }
    shape.routes_base = kNotConsecutive;
    bool consecutive = n > 0;
    for (size_t r = 1; r < n && consecutive; ++r) {
      consecutive = shape.routes[r] == shape.routes[0] + r;
    }
    if (consecutive) shape.routes_base = shape.routes[0];
    shape_temps_ = std::max(shape_temps_, shape.code.size() * n);
  }
}

PlanSizes RoutePlan::sizes() const {
  PlanSizes s;
  s.units = units_.size();
  s.values = atoms_ + temps_;
  s.shape_temps = shape_temps_;
  return s;
}

// ---------------------------------------------------------------------------
// Evaluation.

void RoutePlan::EvaluateUnit(uint32_t unit, const MessageView& message,
                             Scratch* scratch) const {
  scratch->unit_gen_[unit] = scratch->gen_;
  uint8_t* out = scratch->plan_values_.data();
  Evaluator ev(program_, message, scratch);
  const Unit& u = units_[unit];
  if (!u.is_group) {
    const Generic& g = generics_[u.index];
    out[g.out] =
        PlanTri(FinalResult(ev.Eval(g.node), program_.node(g.node).type));
    return;
  }
  const Group& g = groups_[u.index];
  const Value v = ev.Load(g.load_op, g.load);
  // The tree evaluator's comparison, for atoms no fast path covers.
  auto compare = [&](const Atom& a) {
    out[a.out] = PlanBool(
        a.constant_on_left
            ? Evaluator::Compare(a.comparison, a.operand_type, a.constant, v)
            : Evaluator::Compare(a.comparison, a.operand_type, v, a.constant));
  };
  auto general = [&](const std::vector<uint32_t>& which) {
    for (uint32_t k : which) compare(g.atoms[k]);
  };
  if (v.kind == ValueKind::kNumber && !std::isnan(v.number)) {
    // Both sides are numbers: an IEEE comparison, whatever the static type.
    const double x = v.number;
    auto run = [&](Comparison c, auto cmp, auto cmp2) {
      const double* constants = g.number_constants[int(c)].data();
      uint8_t* o = out + g.number_first[int(c)];
      const size_t e = g.number_constants[int(c)].size();
      size_t k = 0;
#if defined(__SSE2__)
      // Four comparisons per step: two 2-lane compares, their sign masks
      // joined into 4 bits, and a 4-byte store of the matching results.
      const __m128d xx = _mm_set1_pd(x);
      for (; k + 4 <= e; k += 4) {
        const int lo = _mm_movemask_pd(cmp2(xx, _mm_loadu_pd(constants + k)));
        const int hi =
            _mm_movemask_pd(cmp2(xx, _mm_loadu_pd(constants + k + 2)));
        const uint32_t bytes = kPlanBytes[lo | (hi << 2)];
        std::memcpy(o + k, &bytes, sizeof(bytes));
      }
#endif
      for (; k < e; ++k) {
        o[k] = uint8_t(cmp(x, constants[k]) << 1);  // kPlanTrue or kPlanFalse
      }
    };
    run(
        Comparison::kEq, [](double l, double r) { return l == r; },
        [](auto l, auto r) { return _mm_cmpeq_pd(l, r); });
    run(
        Comparison::kNe, [](double l, double r) { return l != r; },
        [](auto l, auto r) { return _mm_cmpneq_pd(l, r); });
    run(
        Comparison::kLt, [](double l, double r) { return l < r; },
        [](auto l, auto r) { return _mm_cmplt_pd(l, r); });
    run(
        Comparison::kLe, [](double l, double r) { return l <= r; },
        [](auto l, auto r) { return _mm_cmple_pd(l, r); });
    run(
        Comparison::kGt, [](double l, double r) { return l > r; },
        [](auto l, auto r) { return _mm_cmpgt_pd(l, r); });
    run(
        Comparison::kGe, [](double l, double r) { return l >= r; },
        [](auto l, auto r) { return _mm_cmpge_pd(l, r); });
    general(g.not_number);
    return;
  }
  if (v.kind == ValueKind::kString) {
    const absl::string_view x = v.str();
    if (!g.string_index.empty()) {
      // Every `=` false and every `!=` true, except those whose constant
      // equals the value.
      std::memset(out + g.string_eq_first, kPlanFalse, g.string_eq_count);
      std::memset(out + g.string_ne_first, kPlanTrue, g.string_ne_count);
      auto it = g.string_index.find(x);
      if (it != g.string_index.end()) {
        for (uint32_t k = it->second.first; k < it->second.second; ++k) {
          const uint32_t o = g.string_hits[k];
          out[o] = o < g.string_ne_first ? kPlanTrue : kPlanFalse;
        }
      }
      general(g.not_string);
      return;
    }
    for (uint32_t k : g.string_eq) {
      const Atom& a = g.atoms[k];
      const bool eq =
          x.size() == a.constant.string_size &&
          std::memcmp(x.data(), a.constant.string_data, x.size()) == 0;
      out[a.out] =
          (eq == (a.comparison == Comparison::kEq)) ? kPlanTrue : kPlanFalse;
    }
    general(g.not_string);
    return;
  }
  for (const Atom& a : g.atoms) compare(a);
}

void RoutePlan::EvaluateAll(const uint8_t* source_ok,
                            const MessageView& message, Scratch* scratch,
                            uint8_t* matched) const {
  const uint32_t gen = scratch->gen_;
  for (size_t source = 0; source < source_units_.size(); ++source) {
    if (!source_ok[source]) continue;
    for (uint32_t unit : source_units_[source]) {
      if (scratch->unit_gen_[unit] != gen) {
        EvaluateUnit(unit, message, scratch);
      }
    }
  }
  const uint8_t* values = scratch->plan_values_.data();
  uint8_t* temps = scratch->shape_temps_.data();
  for (const Shape& shape : shapes_) {
    if (!source_ok[shape.source]) continue;
    const size_t n = shape.routes.size();
    // Operand x for every route: consecutive bytes (a temporary, or a
    // column whose atoms are consecutive values) or gathered from `values`.
    struct Operand {
      const uint8_t* direct;
      const uint32_t* gather;
    };
    auto operand = [&](uint32_t x) -> Operand {
      const size_t i = x & ~kShapeTemp;
      if (x & kShapeTemp) return {temps + i * n, nullptr};
      if (shape.column_base[i] != kNotConsecutive) {
        return {values + shape.column_base[i], nullptr};
      }
      return {nullptr, shape.columns.data() + i * n};
    };
    auto binary = [&](Operand a, Operand b, uint8_t* dest, auto op, auto op16) {
      (void)op16;  // unused without SSE2
      size_t r = 0;
      if (a.direct != nullptr && b.direct != nullptr) {
#if defined(__SSE2__)
        for (; r + 16 <= n; r += 16) {
          const __m128i x =
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.direct + r));
          const __m128i y =
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.direct + r));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dest + r), op16(x, y));
        }
#endif
        for (; r < n; ++r) dest[r] = op(a.direct[r], b.direct[r]);
      } else if (a.direct != nullptr) {
        for (; r < n; ++r) dest[r] = op(a.direct[r], values[b.gather[r]]);
      } else if (b.direct != nullptr) {
        for (; r < n; ++r) dest[r] = op(values[a.gather[r]], b.direct[r]);
      } else {
        for (; r < n; ++r) {
          dest[r] = op(values[a.gather[r]], values[b.gather[r]]);
        }
      }
    };
    for (const Instruction& in : shape.code) {
      uint8_t* dest = temps + size_t(in.dest & ~kShapeTemp) * n;
      const Operand a = operand(in.a), b = operand(in.b);
      switch (in.code) {
        case Instruction::kAnd:
          binary(
              a, b, dest, [](uint8_t x, uint8_t y) { return std::min(x, y); },
              Min16());
          break;
        case Instruction::kOr:
          binary(
              a, b, dest, [](uint8_t x, uint8_t y) { return std::max(x, y); },
              Max16());
          break;
        case Instruction::kNot:
          binary(
              a, a, dest,
              [](uint8_t x, uint8_t) { return uint8_t(kPlanTrue - x); },
              Not16());
          break;
      }
    }
    const Operand result = operand(shape.result);
    if (result.direct != nullptr && shape.routes_base != kNotConsecutive) {
      uint8_t* out = matched + shape.routes_base;
      size_t r = 0;
#if defined(__SSE2__)
      const __m128i true16 = _mm_set1_epi8(kPlanTrue);
      const __m128i one16 = _mm_set1_epi8(1);
      for (; r + 16 <= n; r += 16) {
        const __m128i v = _mm_loadu_si128(
            reinterpret_cast<const __m128i*>(result.direct + r));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + r),
                         _mm_and_si128(_mm_cmpeq_epi8(v, true16), one16));
      }
#endif
      for (; r < n; ++r) out[r] = result.direct[r] == kPlanTrue;
    } else {
      const uint32_t* routes = shape.routes.data();
      for (size_t r = 0; r < n; ++r) {
        const uint8_t v = result.direct != nullptr ? result.direct[r]
                                                   : values[result.gather[r]];
        matched[routes[r]] = v == kPlanTrue;
      }
    }
  }
}

Tri RoutePlan::EvaluateRoute(size_t route, const MessageView& message,
                             Scratch* scratch) const {
  const Route& r = routes_[route];
  const uint32_t gen = scratch->gen_;
  const uint32_t* units = route_units_.data();
  for (uint32_t k = r.units_begin; k < r.units_end; ++k) {
    if (scratch->unit_gen_[units[k]] != gen) {
      EvaluateUnit(units[k], message, scratch);
    }
  }
  const uint8_t result = RunFormula(r, scratch->plan_values_.data());
  return result == kPlanTrue    ? Tri::kTrue
         : result == kPlanFalse ? Tri::kFalse
                                : Tri::kUndefined;
}

uint8_t RoutePlan::RunFormula(const Route& r, uint8_t* v) const {
  for (uint32_t k = r.code_begin; k < r.code_end; ++k) {
    const Instruction& in = code_[k];
    switch (in.code) {
      case Instruction::kAnd:
        v[in.dest] = std::min(v[in.a], v[in.b]);
        break;
      case Instruction::kOr:
        v[in.dest] = std::max(v[in.a], v[in.b]);
        break;
      case Instruction::kNot:
        v[in.dest] = uint8_t(kPlanTrue - v[in.a]);
        break;
    }
  }
  return v[r.result];
}

// ---------------------------------------------------------------------------
// Selections.

RoutePlan::Selection RoutePlan::Select(const uint32_t* routes,
                                       size_t count) const {
  enum class Kind : uint8_t { kAlways, kNever, kLookup, kSingle, kFormula };
  // What each route is, and the units read other than through a lookup.
  std::vector<Kind> kinds(count);
  absl::flat_hash_map<uint32_t, bool> read;  // unit -> not only by lookups
  std::vector<uint32_t> unit_order;
  for (size_t i = 0; i < count; ++i) {
    const Route& r = routes_[routes[i]];
    Kind kind = r.code_begin != r.code_end ? Kind::kFormula : Kind::kSingle;
    if (kind == Kind::kSingle && r.units_end == r.units_begin + 1) {
      const Unit& u = units_[route_units_[r.units_begin]];
      if (u.is_group) {
        // The k-th `=` string atom of an indexed group.
        const Group& g = groups_[u.index];
        if (!g.string_index.empty() && g.string_eq_needs_string &&
            r.result >= g.string_eq_first &&
            r.result < g.string_eq_first + g.string_eq_count) {
          kind = Kind::kLookup;
        }
      } else {
        const Node& root = program_.node(generics_[u.index].node);
        if (root.op == Op::kConst && root.constant.kind == ValueKind::kBool) {
          kind = root.constant.boolean ? Kind::kAlways : Kind::kNever;
        }
      }
    }
    kinds[i] = kind;
    if (kind == Kind::kAlways || kind == Kind::kNever) continue;
    for (uint32_t k = r.units_begin; k < r.units_end; ++k) {
      auto [it, added] = read.try_emplace(route_units_[k], false);
      if (added) unit_order.push_back(route_units_[k]);
      if (kind != Kind::kLookup) it->second = true;
    }
  }
  Selection sel;
  sel.size = count;
  absl::flat_hash_map<uint32_t, uint32_t> lookup_of;  // unit -> lookups index
  for (uint32_t unit : unit_order) {
    if (read[unit]) {
      sel.units.push_back(unit);
      continue;
    }
    Selection::Lookup lookup;
    lookup.group = units_[unit].index;
    lookup.first.assign(groups_[lookup.group].string_eq_count + 1, 0);
    lookup_of[unit] = uint32_t(sel.lookups.size());
    sel.lookups.push_back(std::move(lookup));
  }
  for (size_t i = 0; i < count; ++i) {
    const uint32_t route = routes[i];
    const Route& r = routes_[route];
    Kind kind = kinds[i];
    auto lookup = lookup_of.end();
    if (kind == Kind::kLookup) {
      lookup = lookup_of.find(route_units_[r.units_begin]);
      // Another selected route reads the group: checked after it runs.
      if (lookup == lookup_of.end()) kind = Kind::kSingle;
    }
    switch (kind) {
      case Kind::kAlways:
        sel.always.push_back(route);
        break;
      case Kind::kNever:
        break;
      case Kind::kLookup: {
        Selection::Lookup& l = sel.lookups[lookup->second];
        ++l.first[r.result - groups_[l.group].string_eq_first + 1];
        l.routes.push_back(route);  // placed by atom below
        break;
      }
      case Kind::kSingle:
        sel.single.emplace_back(r.result, route);
        break;
      case Kind::kFormula:
        sel.formula.push_back(route);
        break;
    }
  }
  // Each lookup's routes by atom (a stable counting sort: ascending within
  // an atom).
  for (Selection::Lookup& l : sel.lookups) {
    for (size_t k = 1; k < l.first.size(); ++k) l.first[k] += l.first[k - 1];
    const uint32_t base = groups_[l.group].string_eq_first;
    std::vector<uint32_t> next(l.first.begin(), l.first.end() - 1);
    std::vector<uint32_t> placed(l.routes.size());
    for (uint32_t route : l.routes) {
      placed[next[routes_[route].result - base]++] = route;
    }
    l.routes = std::move(placed);
  }
  return sel;
}

size_t RoutePlan::EvaluateSelection(const Selection& sel,
                                    const MessageView& message,
                                    Scratch* scratch, uint32_t* matched) const {
  const uint32_t gen = scratch->gen_;
  for (uint32_t unit : sel.units) {
    if (scratch->unit_gen_[unit] != gen) EvaluateUnit(unit, message, scratch);
  }
  uint8_t* values = scratch->plan_values_.data();
  size_t n = 0;
  for (uint32_t route : sel.always) matched[n++] = route;
  for (const auto& [value, route] : sel.single) {
    if (values[value] == kPlanTrue) matched[n++] = route;
  }
  for (uint32_t route : sel.formula) {
    if (RunFormula(routes_[route], values) == kPlanTrue) matched[n++] = route;
  }
  for (const Selection::Lookup& l : sel.lookups) {
    const Group& g = groups_[l.group];
    auto emit = [&](uint32_t k) {
      for (uint32_t i = l.first[k]; i < l.first[k + 1]; ++i) {
        matched[n++] = l.routes[i];
      }
    };
    const Value v =
        Evaluator(program_, message, scratch).Load(g.load_op, g.load);
    // `load = 'c'` is true exactly when the load is the string c
    // (string_eq_needs_string).
    if (v.kind != ValueKind::kString) continue;
    auto it = g.string_index.find(v.str());
    if (it == g.string_index.end()) continue;
    for (uint32_t h = it->second.first; h < it->second.second; ++h) {
      const uint32_t o = g.string_hits[h];
      if (o < g.string_ne_first) emit(o - g.string_eq_first);
    }
  }
  if (!std::is_sorted(matched, matched + n)) std::sort(matched, matched + n);
  return n;
}

}  // namespace edgeroute::query::internal
