// The route-set plan: how a whole route set's conditions are evaluated on a
// message so that shared work is done once. Internal to //query.
//
// Each condition is split into a three-valued formula (bool AND, OR, NOT)
// over atoms. Comparisons of a property or body load with a constant are
// atoms grouped by their load: the load happens once per message and the
// group's comparisons run as one tight loop per operator, each distinct
// comparison once however many routes use it. Any other sub-expression is
// an atom of its own, evaluated by the tree evaluator. Evaluation is pure,
// so evaluating every atom of a route (no short-circuit) gives the tree
// evaluator's result. Routes with the same source and the same formula
// shape (the same code over other atoms) are evaluated together, one
// formula instruction at a time over all of them (EvaluateAll).
//
// A selection (Select) is a fixed list of routes, such as the routes a
// message source can match, evaluated together on each message: the units
// they read once, and the routes whose whole condition is `load = 'c'` in
// a group with a string index by one lookup of the loaded string, which
// gives the few atoms that are true instead of a check per route.
//
// Atom and temporary results are bytes in the scratch (kPlanFalse <
// kPlanUndefined < kPlanTrue, scratch.h): AND is min, OR is max and NOT is
// kPlanTrue - x.
//
// Thread-safety: immutable after construction; evaluation may run on many
// threads at once, each with its own scratch.

#ifndef EDGEROUTE_QUERY_PLAN_H_
#define EDGEROUTE_QUERY_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "message/message.h"
#include "query/program.h"
#include "query/query.h"
#include "query/scratch.h"
#include "query/value.h"

namespace edgeroute::query::internal {

class RoutePlan {
 public:
  // Plans the routes whose conditions are `roots` in `program` (route i's
  // root is roots[i]); `source_of[i]` < `sources` numbers route i's source.
  // `program` must outlive the plan and not change.
  RoutePlan(const Program& program, const std::vector<int>& roots,
            const std::vector<uint32_t>& source_of, size_t sources);
  RoutePlan(const RoutePlan&) = delete;
  RoutePlan& operator=(const RoutePlan&) = delete;

  // What a scratch needs to hold this plan's results.
  PlanSizes sizes() const;

  // Route `route`'s condition: the same result as evaluating its root with
  // the tree evaluator. REQUIRES: scratch->Begin(message) was called for
  // this message; the scratch was made with sizes().
  Tri EvaluateRoute(size_t route, const MessageView& message,
                    Scratch* scratch) const;

  // Every route whose source matches: sets matched[i] to 1 when route i's
  // condition is true and to 0 when it is not; leaves the routes of other
  // sources alone. `source_ok[k]` tells whether source k matches the
  // message. REQUIRES: as EvaluateRoute; matched has a byte per route.
  void EvaluateAll(const uint8_t* source_ok, const MessageView& message,
                   Scratch* scratch, uint8_t* matched) const;

  // A fixed list of routes prepared to be evaluated together (Select).
  struct Selection;

  // Prepares `routes` (ascending, distinct, each a route of this plan).
  // Routes whose condition is a single `load = 'constant'` atom of a group
  // with a string index, when no other selected route reads that group,
  // are found by one hash lookup of the loaded string (EvaluateSelection)
  // instead of one check each; the other routes are evaluated as by
  // EvaluateRoute, each distinct atom once.
  Selection Select(const uint32_t* routes, size_t count) const;

  // Writes the routes of `selection` whose conditions are true to
  // matched[0..n), ascending, and returns n. REQUIRES: as EvaluateRoute;
  // matched has room for every route of the selection.
  size_t EvaluateSelection(const Selection& selection,
                           const MessageView& message, Scratch* scratch,
                           uint32_t* matched) const;

 private:
  class FormulaBuilder;

  // One comparison of a group's load with a constant.
  struct Atom {
    Comparison comparison = Comparison::kEq;
    bool constant_on_left = false;
    StaticType operand_type = StaticType::kUndefined;
    Value constant;
    uint32_t out = 0;  // index of its result
  };
  // Atoms that compare the same load, evaluated as one unit.
  struct Group {
    Op load_op = Op::kConst;
    LoadSlots load;
    std::vector<Atom> atoms;
    // When the load is a number: the atoms with a number constant, by
    // comparison with the load on the left. Their results are consecutive
    // from number_first[c], so the loops store contiguously (and
    // vectorise).
    std::vector<double> number_constants[kComparisons];
    uint32_t number_first[kComparisons] = {};
    std::vector<uint32_t> not_number;  // indexes in atoms of the others
    // When the load is a string: atoms `= 'c'` / `!= 'c'`. Their results
    // are consecutive too: the `=` ones from string_eq_first, then the
    // `!=` ones. Larger groups find the equal constants in string_index
    // (ranges of string_hits, which holds result indexes) instead of
    // comparing each.
    std::vector<uint32_t> string_eq;   // indexes in atoms
    std::vector<uint32_t> not_string;  // the others
    uint32_t string_eq_first = 0, string_eq_count = 0;
    uint32_t string_ne_first = 0, string_ne_count = 0;
    absl::flat_hash_map<absl::string_view, std::pair<uint32_t, uint32_t>>
        string_index;
    std::vector<uint32_t> string_hits;
    // Whether no `=` string atom can be true unless the load is a string:
    // their operands are strings or body values (which compare by type
    // rank across types), so a lookup of any other value finds nothing.
    bool string_eq_needs_string = false;
  };
  // Any other atom: node `node`, result at `out`.
  struct Generic {
    int node = -1;
    uint32_t out = 0;
  };
  // Evaluated at most once per message: a group or a generic atom.
  struct Unit {
    bool is_group = false;
    uint32_t index = 0;  // in groups_ or generics_
  };
  struct Instruction {
    enum Code : uint8_t { kAnd, kOr, kNot };
    Code code = kAnd;
    uint32_t a = 0, b = 0, dest = 0;  // value indexes
  };
  struct Route {
    uint32_t units_begin = 0, units_end = 0;  // in route_units_
    uint32_t code_begin = 0, code_end = 0;    // in code_
    uint32_t result = 0;                      // value index
  };
  static constexpr uint32_t kShapeTemp = 0x80000000u;
  static constexpr uint32_t kNotConsecutive = 0xFFFFFFFFu;
  // Routes of one source whose formulas have the same shape. Operands of
  // `code` are columns (an atom per route) or, with kShapeTemp set,
  // temporaries (instruction j's results for every route).
  struct Shape {
    uint32_t source = 0;
    std::vector<Instruction> code;
    uint32_t result = 0;  // column or kShapeTemp | instruction
    std::vector<uint32_t> routes;
    std::vector<uint32_t> columns;  // column k of route r: [k * routes + r]
    // Per column, the first value index when route r's atom is that + r
    // (else kNotConsecutive); likewise the first route when routes are
    // consecutive.
    std::vector<uint32_t> column_base;
    uint32_t routes_base = kNotConsecutive;
  };

  // Building, in three steps.
  // Gives each group's number comparisons of one operator, and its string
  // equalities, consecutive result indexes; generic atoms follow.
  void NumberAtoms(uint32_t atoms);
  // Groups routes of one source and one formula shape.
  void FindShapes(const std::vector<uint32_t>& source_of, size_t sources);

  void EvaluateUnit(uint32_t unit, const MessageView& message,
                    Scratch* scratch) const;
  // Runs route r's formula code over the scratch's values (its units
  // evaluated) and returns its result byte.
  uint8_t RunFormula(const Route& r, uint8_t* values) const;

  const Program& program_;
  std::vector<Group> groups_;
  std::vector<Generic> generics_;
  std::vector<Unit> units_;
  std::vector<uint32_t> route_units_;  // the units each route depends on
  std::vector<Instruction> code_;
  std::vector<Route> routes_;
  std::vector<Shape> shapes_;
  std::vector<std::vector<uint32_t>> source_units_;  // by source
  size_t atoms_ = 0, temps_ = 0, shape_temps_ = 0;
};

struct RoutePlan::Selection {
  // A group evaluated by one lookup of its load in string_index: the
  // selected routes whose condition is its k-th `=` atom (result
  // string_eq_first + k) are routes[first[k]..first[k+1]).
  struct Lookup {
    uint32_t group = 0;
    std::vector<uint32_t> first;
    std::vector<uint32_t> routes;
  };
  size_t size = 0;  // routes selected
  // Units evaluated first: those that `single` and `formula` read.
  std::vector<uint32_t> units;
  // Routes whose condition is the constant true.
  std::vector<uint32_t> always;
  // Routes whose result is one atom: {value index, route}.
  std::vector<std::pair<uint32_t, uint32_t>> single;
  // Routes with formula code.
  std::vector<uint32_t> formula;
  std::vector<Lookup> lookups;
};

}  // namespace edgeroute::query::internal

#endif  // EDGEROUTE_QUERY_PLAN_H_
