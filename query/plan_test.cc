// The route-set plan (plan.h) against the tree evaluator: every route of a
// set must give what its condition gives alone; route sets compile
// together, report every error and notice new messages.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "query/query.h"
#include "query/query_test_util.h"

namespace edgeroute::query {
namespace {

using ::testing::HasSubstr;

// Conditions compiled as one route set (route i reads FROM sources[i %
// sources.size()]) and each alone, to check the set's plan against the tree
// evaluator of a single condition. Conditions that do not compile are left
// out.
class PlanChecker {
 public:
  PlanChecker(const std::vector<std::string>& conditions,
              std::vector<std::string> sources)
      : sources_(std::move(sources)) {
    for (const std::string& c : conditions) {
      auto compiled = CompiledCondition::Compile(c, nullptr);
      if (!compiled.ok()) continue;  // e.g. level = 2: a type error
      RouteSpec r;
      r.name = absl::StrCat("r", routes_.size());
      r.text = absl::StrCat("FROM ", sources_[routes_.size() % sources_.size()],
                            " WHERE ", c, " INTO $upstream");
      routes_.push_back(std::move(r));
      alone_.push_back(std::move(*compiled));
    }
    auto set = RouteSet::Compile(routes_, CompileOptions(), nullptr);
    EXPECT_TRUE(set.ok()) << set.status();
    if (set.ok()) {
      set_ = std::move(*set);
      scratch_ = set_->NewScratch();
      // Selections: every route, and each source's routes.
      std::vector<uint32_t> all(routes_.size());
      for (size_t i = 0; i < all.size(); ++i) all[i] = uint32_t(i);
      selections_.push_back(set_->Select(all));
      for (size_t k = 0; k < sources_.size(); ++k) {
        std::vector<uint32_t> of_source;
        for (size_t i = k; i < routes_.size(); i += sources_.size()) {
          of_source.push_back(uint32_t(i));
        }
        selections_.push_back(set_->Select(of_source));
        EXPECT_EQ(selections_.back()->size(), of_source.size());
      }
    }
  }

  size_t size() const { return routes_.size(); }
  size_t trues() const { return trues_; }
  size_t falses() const { return falses_; }

  // Evaluates `view` through the set (EvaluateAll, EvaluateCondition and
  // the selections) and through each condition alone; `source_ok[k]` says
  // whether sources[k] matches the message. Returns false on the first
  // difference.
  bool Check(const MessageView& view, const std::vector<bool>& source_ok,
             const std::string& what) {
    if (set_ == nullptr) return false;
    std::vector<uint32_t> trues;  // routes whose condition is true alone
    std::vector<Tri> wants;
    for (size_t i = 0; i < routes_.size(); ++i) {
      auto s = alone_[i]->NewScratch();
      wants.push_back(alone_[i]->Evaluate(view, s.get()));
      if (wants.back() == Tri::kTrue) trues.push_back(uint32_t(i));
    }
    // Selections first, in a fresh scratch, so that they evaluate every
    // load and comparison themselves; then the whole selection again after
    // EvaluateAll and EvaluateCondition have filled the scratch.
    for (size_t k = 0; k < selections_.size(); ++k) {
      RouteSet::Reset(scratch_.get());
      if (!CheckSelection(k, view, trues, what)) return false;
    }
    set_->EvaluateAll(view, scratch_.get(), &matched_);
    EXPECT_EQ(matched_.size(), routes_.size());
    for (size_t i = 0; i < routes_.size(); ++i) {
      const Tri want = wants[i];
      trues_ += want == Tri::kTrue;
      falses_ += want == Tri::kFalse;
      const Tri one = set_->EvaluateCondition(i, view, scratch_.get());
      const int expected =
          source_ok[i % sources_.size()] && want == Tri::kTrue ? 1 : 0;
      if (one != want || matched_[i] != expected) {
        ADD_FAILURE() << routes_[i].text << " on " << what << ": alone "
                      << TriName(want) << ", in the set " << TriName(one)
                      << ", matched " << int(matched_[i]);
        return false;
      }
    }
    return CheckSelection(0, view, trues, what);
  }

 private:
  // Selection k (0: every route; k > 0: source k - 1's) gives the routes
  // among `trues` that it selected.
  bool CheckSelection(size_t k, const MessageView& view,
                      const std::vector<uint32_t>& trues,
                      const std::string& what) {
    std::vector<uint32_t> want;
    for (uint32_t i : trues) {
      if (k == 0 || i % sources_.size() == k - 1) want.push_back(i);
    }
    // One spare slot past size(), which must stay untouched.
    const size_t size = selections_[k]->size();
    std::vector<uint32_t> got(size + 1, 0xDEAD);
    const size_t n = selections_[k]->Evaluate(view, scratch_.get(), got.data());
    EXPECT_LE(n, size);
    EXPECT_EQ(got[size], 0xDEADu);
    got.resize(n);
    if (got != want) {
      ADD_FAILURE() << "selection " << k << " on " << what << ": got "
                    << testing::PrintToString(got) << ", want "
                    << testing::PrintToString(want);
      return false;
    }
    return true;
  }

  std::vector<std::string> sources_;
  std::vector<RouteSpec> routes_;
  std::vector<std::unique_ptr<CompiledCondition>> alone_;
  std::unique_ptr<RouteSet> set_;
  std::vector<std::unique_ptr<RouteSelection>> selections_;
  std::unique_ptr<EvalScratch> scratch_;
  std::vector<uint8_t> matched_;
  size_t trues_ = 0, falses_ = 0;
};

// A route set evaluates comparisons of one load with many constants as one
// group (vectorised four at a time per operator) and routes of the same shape
// together. Every route must still give what its condition gives alone, for
// values below, at and above each constant and for every kind of value.
TEST_F(QueryTest, RouteSetPlanMatchesConditionsAlone) {
  const std::vector<std::string> loads = {"$body.x", "level", "$body.s"};
  const std::vector<std::string> ops = {"=", "!=", "<", "<=", ">", ">=", "<>"};
  const std::vector<std::string> constants = {
      "-1",  "0",   "1.5", "2",    "3",  "50",    "1e300", "0/0", "'2'",
      "'b'", "'a'", "'c'", "'hi'", "''", "'2.0'", "true",  "null"};
  std::vector<std::string> conditions;
  for (const std::string& load : loads) {
    for (const std::string& op : ops) {
      for (const std::string& c : constants) {
        conditions.push_back(absl::StrCat(load, " ", op, " ", c));
        conditions.push_back(absl::StrCat(c, " ", op, " ", load));
      }
    }
  }
  // Shapes: the same formula over different atoms, NOT, and atoms that are
  // not comparisons with a constant.
  const size_t simple = conditions.size();
  for (size_t i = 0; i + 2 < simple; i += 3) {
    conditions.push_back(absl::StrCat(conditions[i], " AND (",
                                      conditions[i + 1], " OR ",
                                      conditions[i + 2], ")"));
    conditions.push_back(
        absl::StrCat("NOT (", conditions[i], ") OR ", conditions[i + 1]));
  }
  conditions.push_back("is_defined($body.x) AND $body.x * 2 > 3");
  conditions.push_back("$body.x ?? 7");
  conditions.push_back("$body.b");
  conditions.push_back("NOT $body.b AND level = 'hi'");
  conditions.push_back("null OR $body.x > 1");
  conditions.push_back("undefined OR true");
  // Three sources: groups and shapes are per source; the last one never
  // matches the messages' source.
  PlanChecker checker(conditions, {"/messages", "/messages/modules/a",
                                   "/messages/modules/zzz"});
  ASSERT_GT(checker.size(), 300u);

  const std::vector<std::string> values = {
      "-2",    "-1",   "0",     "1",     "1.5",   "2",     "2.5",
      "3",     "50",   "51",    "1e300", "\"2\"", "\"a\"", "\"b\"",
      "\"c\"", "true", "false", "null",  "[1]",   "{}"};
  std::vector<Msg> messages;
  for (const std::string& v : values) {
    Msg m = Body(absl::StrCat("{\"x\":", v, ",\"s\":", v, ",\"b\":", v, "}"));
    m.props = {{"level", "2"}};
    messages.push_back(m);
    m.props = {{"level", "hi"}};
    messages.push_back(m);
  }
  messages.push_back(Body("{}"));
  messages.push_back(Body("not json"));
  Msg no_level = Body("{\"x\":2}");
  no_level.props = {{"level", nullptr}};
  messages.push_back(no_level);
  for (Msg& m : messages) {
    m.source = "/messages/modules/a/outputs/b";
    ASSERT_TRUE(checker.Check(Build(m), {true, true, false}, m.body));
  }
  EXPECT_GT(checker.trues(), 1000u);
  EXPECT_GT(checker.falses(), 1000u);
}

// Routes of one shape over consecutive comparisons (as generated manifests
// have them) are evaluated 16 at a time; every route must still give what its
// condition gives alone.
TEST_F(QueryTest, RouteSetPlanConsecutiveShapes) {
  std::vector<std::string> conditions;
  for (int i = 0; i < 40; ++i) {
    conditions.push_back(absl::StrCat("$body.x > ", i, " AND ($body.y < ",
                                      100 - i, " OR $body.s = 't", i % 10,
                                      "')"));
  }
  for (int i = 0; i < 37; ++i) {
    conditions.push_back(
        absl::StrCat("NOT ($body.x >= ", i, ") OR $body.y <= ", i * 2));
  }
  for (int i = 0; i < 33; ++i) {
    conditions.push_back(absl::StrCat("$body.y = ", i));
  }
  PlanChecker checker(conditions, {"/messages"});
  ASSERT_EQ(checker.size(), conditions.size());
  for (const char* x :
       {"-1", "0", "5", "17", "20", "33", "50", "\"a\"", "null"}) {
    for (const char* y : {"0", "7", "20", "34", "60", "70", "99", "true"}) {
      for (const char* str : {"t3", "t7", "u"}) {
        Msg m = Body(
            absl::StrCat("{\"x\":", x, ",\"y\":", y, ",\"s\":\"", str, "\"}"));
        m.source = "/messages/modules/a/outputs/b";
        ASSERT_TRUE(checker.Check(Build(m), {true}, m.body));
      }
    }
  }
  EXPECT_GT(checker.trues(), 1000u);
  EXPECT_GT(checker.falses(), 1000u);
}

// Many routes whose whole condition is `load = 'constant'` (as a manifest
// with a route per key has them) are found by one hash lookup of the loaded
// string when a selection holds them; the same atoms under NOT, OR, AND
// and beside `!=` are evaluated as formulas. Every route must give what its
// condition gives alone, for matching, missing, null, repaired (invalid
// UTF-8) and non-string values.
TEST_F(QueryTest, RouteSelectionEqualityLookups) {
  // Source 0: equalities only (two indexed groups, duplicates, a constant
  // on the left, the empty string, U+FFFD, and constant conditions).
  std::vector<std::string> lookups;
  for (int j = 0; j < 12; ++j) lookups.push_back(absl::StrCat("k = '", j, "'"));
  for (int j = 0; j < 10; ++j) {
    lookups.push_back(absl::StrCat("$body.s = '", j, "'"));
  }
  for (const char* c :
       {"k = '3'", "'5' = k", "k = '3'", "k = 'a\xEF\xBF\xBD'", "k = ''",
        "$body.s = ''", "'7' = $body.s", "true", "false", "k = '0'"}) {
    lookups.push_back(c);
  }
  // Source 1: the same equalities, and formulas over them.
  std::vector<std::string> mixed;
  for (int j = 0; j < 12; ++j) mixed.push_back(absl::StrCat("k = '", j, "'"));
  for (const char* c : {"NOT (k = '2')",
                        "k = '3' OR k = '4'",
                        "k = '5' AND $body.n > 1",
                        "k != '6'",
                        "NOT (k != '7')",
                        "$body.s = 3",
                        "$body.s = true",
                        "$body.s = '1' OR $body.s = 1",
                        "NOT ($body.s = '3')",
                        "$body.s = '3' AND k = '3'",
                        "'3' = k",
                        "k = '3'",
                        "k <> '11'",
                        "k = '11' OR NOT (k = '11')",
                        "$body.s = null",
                        "$body.s = 's'",
                        "k = '8' OR k = '9'",
                        "NOT (k = '10') AND NOT (k = '1')",
                        "$body.s != '3'",
                        "k = '1' OR $body.s = '1'"}) {
    mixed.push_back(c);
  }
  // Source 2 (no message comes from it): more equalities.
  std::vector<std::string> other;
  for (int j = 0; j < 32; ++j) other.push_back(absl::StrCat("k = '", j, "'"));
  ASSERT_EQ(lookups.size(), mixed.size());
  std::vector<std::string> conditions;
  for (size_t i = 0; i < lookups.size(); ++i) {
    conditions.push_back(lookups[i]);
    conditions.push_back(mixed[i]);
    conditions.push_back(other[i]);
  }
  PlanChecker checker(conditions, {"/messages/modules/a", "/messages",
                                   "/messages/modules/zzz"});
  ASSERT_EQ(checker.size(), conditions.size());

  std::vector<const char*> keys = {
      "0", "3", "5", "7", "11", "12", "a\xFF", "a\xEF\xBF\xBD", "", nullptr};
  std::vector<std::string> bodies = {"{\"s\":\"3\",\"n\":2}",
                                     "{\"s\":\"7\"}",
                                     "{\"s\":3}",
                                     "{\"s\":true}",
                                     "{\"s\":null}",
                                     "{\"s\":\"\"}",
                                     "{\"s\":{}}",
                                     "{}",
                                     "not json"};
  for (size_t with_k = 0; with_k < 2; ++with_k) {
    for (const char* k : keys) {
      if (!with_k && k != keys[0]) continue;  // once without k
      for (const std::string& body : bodies) {
        Msg m = Body(body);
        if (with_k) m.props = {{"k", k}};
        m.source = "/messages/modules/a/outputs/b";
        ASSERT_TRUE(checker.Check(
            Build(m), {true, true, false},
            absl::StrCat(body, " k=",
                         with_k ? (k == nullptr ? "null" : k) : "missing")));
      }
    }
  }
  EXPECT_GT(checker.trues(), 400u);
  EXPECT_GT(checker.falses(), 4000u);
}

TEST(RouteSetTest, CompilesTogetherAndSharesLoads) {
  std::vector<RouteSpec> routes(3);
  routes[0].name = "hot";
  routes[0].text =
      "FROM /messages/modules/m/* WHERE $body.t > 50 INTO "
      "BrokeredEndpoint('/modules/alarm/inputs/in')";
  routes[0].priority = 0;
  routes[0].ttl_secs = 60;
  routes[1].name = "all";
  routes[1].text = "FROM /messages/* INTO $upstream";
  routes[2].name = "cold";
  routes[2].text = "FROM /messages/* WHERE $body.t <= 50 INTO $upstream";
  std::vector<Diagnostic> diags;
  auto set = RouteSet::Compile(routes, CompileOptions(), &diags);
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ((*set)->size(), 3u);
  EXPECT_EQ((*set)->route(0).name, "hot");
  EXPECT_EQ((*set)->route(0).priority, 0);
  EXPECT_EQ((*set)->route(0).ttl_secs, 60);
  EXPECT_EQ((*set)->route(0).sink.endpoint_id, "DEV/alarm/in");
  EXPECT_EQ((*set)->route(1).condition, "true");

  MessageBuilder b;
  auto scratch = (*set)->NewScratch();
  std::vector<uint8_t> matched;
  for (int t : {70, 20}) {
    b.Clear();
    b.SetBody(absl::StrCat("{\"t\":", t, "}"));
    b.AddSystemProperty("contentType", "application/json");
    b.AddSystemProperty("contentEncoding", "utf-8");
    b.AddSystemProperty("connectionModuleId", "m");
    b.AddSystemProperty("outputName", "o");
    b.Finish();
    (*set)->EvaluateAll(b.view(), scratch.get(), &matched);
    ASSERT_EQ(matched.size(), 3u);
    EXPECT_EQ(matched[0], t > 50 ? 1 : 0) << t;
    EXPECT_EQ(matched[1], 1);
    EXPECT_EQ(matched[2], t > 50 ? 0 : 1) << t;
    // Per-route evaluation agrees after an explicit reset.
    RouteSet::Reset(scratch.get());
    EXPECT_EQ((*set)->EvaluateCondition(0, b.view(), scratch.get()),
              t > 50 ? Tri::kTrue : Tri::kFalse);
    RouteSet::Reset(scratch.get());
  }
  // Device messages do not match the module route's source.
  b.Clear();
  b.SetBody("{\"t\":99}");
  b.AddSystemProperty("contentType", "application/json");
  b.AddSystemProperty("contentEncoding", "utf-8");
  b.Finish();
  (*set)->EvaluateAll(b.view(), scratch.get(), &matched);
  EXPECT_EQ(matched[0], 0);
  EXPECT_EQ(matched[1], 1);
}

TEST(RouteSetTest, ReportsEveryErrorWithRouteNames) {
  std::vector<RouteSpec> routes(3);
  routes[0].name = "ok";
  routes[0].text = "FROM /messages/* INTO $upstream";
  routes[1].name = "typed";
  routes[1].text = "FROM /messages/* WHERE k = 1 INTO $upstream";
  routes[2].name = "syntax";
  routes[2].text = "FROM /messages/* WHERE\nk == 1 INTO $upstream";
  std::vector<Diagnostic> diags;
  auto set = RouteSet::Compile(routes, CompileOptions(), &diags);
  ASSERT_FALSE(set.ok());
  std::string msg(set.status().message());
  EXPECT_THAT(msg, HasSubstr("route 'typed'"));
  EXPECT_THAT(msg, HasSubstr("route 'syntax'"));
  EXPECT_THAT(msg, HasSubstr("1:26:"));  // '=' in the typed route
  EXPECT_THAT(msg, HasSubstr("2:4:"));   // second '=' of '=='
  int errors = 0;
  for (const Diagnostic& d : diags) errors += d.is_error();
  EXPECT_EQ(errors, 2);
}

TEST(RouteSetTest, ScratchDetectsNewMessages) {
  RouteSpec r;
  r.name = "r";
  r.text = "FROM /messages/* WHERE level = 'critical' INTO $upstream";
  auto set = RouteSet::Compile({r}, CompileOptions(), nullptr);
  ASSERT_TRUE(set.ok());
  auto scratch = (*set)->NewScratch();
  MessageBuilder a, b;
  a.AddProperty("level", "critical");
  a.Finish();
  b.AddProperty("level", "info");
  b.Finish();
  EXPECT_EQ((*set)->EvaluateCondition(0, a.view(), scratch.get()), Tri::kTrue);
  EXPECT_EQ((*set)->EvaluateCondition(0, b.view(), scratch.get()), Tri::kFalse);
  EXPECT_EQ((*set)->EvaluateCondition(0, a.view(), scratch.get()), Tri::kTrue);
}

}  // namespace
}  // namespace edgeroute::query
