// The edgeHub route language: parsing, compilation and evaluation of routes
// and conditions, compatible with Azure IoT Edge's hub (see the route-language
// specification for the exact semantics reproduced here).
//
//   ParseRoute        -- edgeHub's first stage only: route grammar and sink
//                        creation; the condition is not type-checked.
//   RouteSet          -- a whole manifest's routes compiled together (both
//                        stages, with type checks); every property and $body
//                        path the set reads is loaded once per message, each
//                        distinct comparison of a load with a constant is
//                        computed once, and routes of the same shape are
//                        evaluated together.
//   RouteSelection    -- some routes of a RouteSet (the routes one message
//                        source can match) evaluated as one unit, equality
//                        routes by one hash lookup.
//   CompiledCondition -- one standalone condition, evaluated as the WHERE
//                        clause of "FROM /messages WHERE <c> INTO $upstream".
//
// Strings that are not UTF-8 (one rule everywhere a string enters): route
// text, application and system property values and $body strings are read
// as edgeHub reads them once they are .NET strings -- each maximal
// ill-formed UTF-8 subsequence (Unicode's "substitution of maximal
// subparts", base/utf8.h) is one U+FFFD. So 'a\xFF' = 'a\uFFFD' is true,
// length('\xF0\x9F\x98') is 1, an overlong or byte-encoded surrogate is
// never the character it spells, and every built-in (length, substring,
// index_of, upper/lower, concat, comparisons) sees the same characters.
// Messages keep their bytes: only what the language reads is repaired.
// Property keys are compared as bytes (ASCII letters folded); a key that is
// not UTF-8 matches no name a route spells.
//
// Compilation (the control plane) allocates and reports every problem as a
// Diagnostic with line, column and a caret excerpt. Evaluation (the data
// plane) neither allocates after warm-up nor throws nor locks.
//
// query/README.md says which file holds which part of the language.

#ifndef EDGEROUTE_QUERY_QUERY_H_
#define EDGEROUTE_QUERY_QUERY_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "message/message.h"

namespace edgeroute::query {

// The result of evaluating a condition. A route matches only on kTrue.
enum class Tri : uint8_t { kFalse = 0, kTrue = 1, kUndefined = 2 };

// "true", "false" or "undefined".
const char* TriName(Tri value);

// One compile error or warning.
struct Diagnostic {
  enum class Severity : uint8_t { kError, kWarning };

  Severity severity = Severity::kError;
  // edgeHub's wording where it has one, e.g. "Syntax error: invalid symbol
  // '@'" or "Invalid built-in function 'foo'".
  std::string message;
  // 1-based position of the problem in the text that was compiled (the whole
  // route for a route, the condition for a standalone condition). Columns
  // count characters (UTF-8 sequences), tabs count as one.
  int line = 1;
  int column = 1;
  // 1-based column one past the last offending character on `line`
  // (end_column > column).
  int end_column = 2;
  // The offending source line, "\n", and a caret line such as "    ^~~~".
  std::string excerpt;
  // A rewrite hint (mostly for warnings); may be empty.
  std::string suggestion;

  bool is_error() const { return severity == Severity::kError; }
  // "line:col: error: message\n<excerpt>" (plus "\nsuggestion: ..." when
  // there is one), compiler style.
  std::string ToString() const;
};

// Where a route delivers.
struct SinkSpec {
  enum class Kind : uint8_t { kUpstream, kModule };

  Kind kind = Kind::kUpstream;
  // "iothub" for $upstream, "{device}/{module}/{input}" for a module input.
  std::string endpoint_id;
  // Module and input name for kModule; empty for kUpstream.
  std::string module;
  std::string input;
};

// The result of edgeHub's first stage (RouteFactory): route grammar and sink
// creation. The condition is NOT type-checked here, so "WHERE k = 1" parses.
struct ParsedRoute {
  // The normalised source, e.g. "/messages/" or "/messages/modules/m/".
  std::string source;
  // The WHERE text as cut from the route (comments and inner whitespace
  // kept), or "true" when the route has no WHERE clause.
  std::string condition;
  SinkSpec sink;
  // Offset of `condition` in the route text (0 when there is no WHERE).
  size_t condition_offset = 0;
};

// Parses `route` with edgeHub's route grammar and creates its sink for an
// edge device named `device_id`. Returns InvalidArgument with the first
// error's text (with line and column) on failure. When `diagnostics` is not
// null, every error and warning found is appended to it.
absl::StatusOr<ParsedRoute> ParseRoute(absl::string_view route,
                                       absl::string_view device_id,
                                       std::vector<Diagnostic>* diagnostics);

// Message-source matching exactly as edgeHub does it: true when
// `message_source` + "/" starts with `normalised_route_source`, ignoring
// ASCII case. `normalised_route_source` is ParsedRoute::source.
bool SourceMatches(absl::string_view normalised_route_source,
                   absl::string_view message_source);

// edgeHub's default route priority (lower numbers are more important; 0-9
// are the explicit priorities).
constexpr int kDefaultPriority = 2000000000;

// One route of a manifest.
struct RouteSpec {
  std::string name;
  std::string text;
  int priority = kDefaultPriority;
  // 0 means "use the global store-and-forward TTL".
  int64_t ttl_secs = 0;
};

struct CompileOptions {
  // The edge device's id, used in module endpoint ids.
  std::string device_id = "DEV";
  // Longer routes (in bytes) are rejected with an error that says so.
  size_t max_route_length = 64 * 1024;
  // Deeper expression nesting (parentheses, NOT, unary minus, function
  // arguments) is rejected with an error that says so.
  int max_depth = 256;
};

// Per-thread scratch space for evaluation: the loaded property slots and the
// parsed body of the current message. Create with NewScratch() of the
// RouteSet or CompiledCondition that uses it; one per thread.
// Thread-safety: none; not shared between threads.
class EvalScratch {
 public:
  virtual ~EvalScratch();

 protected:
  EvalScratch() = default;
};

class RouteSelection;

// A compiled route set.
// Thread-safety: immutable after Compile; Evaluate* may be called from many
// threads concurrently, each with its own EvalScratch.
class RouteSet {
 public:
  struct RouteInfo {
    std::string name;
    std::string source;     // normalised, as ParsedRoute::source
    std::string condition;  // WHERE text, or "true"
    SinkSpec sink;
    int priority = kDefaultPriority;
    int64_t ttl_secs = 0;
  };

  // Compiles all routes together (edgeHub's stage 1 and stage 2, with type
  // checks). On any error returns InvalidArgument whose message lists every
  // error (route name, line, column). When `diagnostics` is not null it
  // receives every error and warning; each diagnostic's message is prefixed
  // with "route '<name>': ", and positions are in that route's text.
  static absl::StatusOr<std::unique_ptr<RouteSet>> Compile(
      absl::Span<const RouteSpec> routes, const CompileOptions& options,
      std::vector<Diagnostic>* diagnostics);

  ~RouteSet();
  RouteSet(const RouteSet&) = delete;
  RouteSet& operator=(const RouteSet&) = delete;

  size_t size() const;
  // REQUIRES: i < size().
  const RouteInfo& route(size_t i) const;

  std::unique_ptr<EvalScratch> NewScratch() const;

  // Evaluates route i's condition; does NOT check the source. Property and
  // body loads are shared across all routes evaluated for the same message
  // in the same scratch: a scratch notices a new message by its buffer
  // address and size; call Reset(scratch) when a buffer is reused for a
  // different message. No allocation after warm-up, no exceptions.
  // REQUIRES: i < size(); scratch came from this->NewScratch().
  Tri EvaluateCondition(size_t i, const MessageView& message,
                        EvalScratch* scratch) const;

  // Evaluates every route whose source matches message.source(); sets
  // (*matched)[i] to 1 when route i matches (condition true), else 0.
  // Resizes *matched to size().
  void EvaluateAll(const MessageView& message, EvalScratch* scratch,
                   std::vector<uint8_t>* matched) const;

  // Prepares routes `routes` (ascending, distinct, each < size()) to be
  // evaluated together on many messages, e.g. the routes whose source
  // matches one message source. Control plane (allocates); the selection
  // refers to this set and must not outlive it.
  std::unique_ptr<RouteSelection> Select(
      absl::Span<const uint32_t> routes) const;

  // Forgets the message cached in `scratch`.
  static void Reset(EvalScratch* scratch);

 private:
  friend class CompiledCondition;
  struct Impl;
  explicit RouteSet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Some routes of a RouteSet evaluated as one unit: each load and each
// distinct comparison once, and the routes whose whole condition is an
// equality of one property or $body path with a string constant (`k =
// 'v'`) found by one hash lookup of the loaded value, however many such
// routes there are.
// Thread-safety: immutable; Evaluate may be called from many threads
// concurrently, each with its own EvalScratch.
class RouteSelection {
 public:
  ~RouteSelection();
  RouteSelection(const RouteSelection&) = delete;
  RouteSelection& operator=(const RouteSelection&) = delete;

  // The number of routes selected.
  size_t size() const;

  // Writes the selected routes whose conditions are true on `message` to
  // matched[0..n), ascending, and returns n; does NOT check sources. Loads
  // are shared with other evaluations of the same message in the same
  // scratch (as RouteSet::EvaluateCondition). No allocation after warm-up,
  // no exceptions.
  // REQUIRES: matched has room for size() routes; scratch came from the
  // set's NewScratch().
  size_t Evaluate(const MessageView& message, EvalScratch* scratch,
                  uint32_t* matched) const;

 private:
  friend class RouteSet;
  struct Impl;
  explicit RouteSelection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A standalone condition, compiled as the WHERE clause of
// "FROM /messages WHERE <condition> INTO $upstream" (so trailing junk is a
// syntax error, as in edgeHub). An empty condition (nothing but white
// space and comments) is a compile error, as an empty WHERE clause is.
// Diagnostic positions are in the condition text.
// Thread-safety: as RouteSet.
class CompiledCondition {
 public:
  static absl::StatusOr<std::unique_ptr<CompiledCondition>> Compile(
      absl::string_view condition, std::vector<Diagnostic>* diagnostics);

  ~CompiledCondition();
  CompiledCondition(const CompiledCondition&) = delete;
  CompiledCondition& operator=(const CompiledCondition&) = delete;

  // REQUIRES: scratch came from this->NewScratch().
  Tri Evaluate(const MessageView& message, EvalScratch* scratch) const;
  std::unique_ptr<EvalScratch> NewScratch() const;

  // For people: the result and the value of each sub-expression that
  // decided it, one per line, e.g. "level = 'critical' -> true". Allocates.
  std::string Explain(const MessageView& message) const;

 private:
  CompiledCondition();
  std::unique_ptr<RouteSet> set_;  // one route, FROM /messages
  std::string text_;
  friend class RouteSet;
};

}  // namespace edgeroute::query

#endif  // EDGEROUTE_QUERY_QUERY_H_
