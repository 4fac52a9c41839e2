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
    }
  }

  size_t size() const { return routes_.size(); }
  size_t trues() const { return trues_; }
  size_t falses() const { return falses_; }

  // Evaluates `view` through the set (EvaluateAll and EvaluateCondition)
  // and through each condition alone; `source_ok[k]` says whether
  // sources[k] matches the message. Returns false on the first difference.
  bool Check(const MessageView& view, const std::vector<bool>& source_ok,
             const std::string& what) {
    if (set_ == nullptr) return false;
    set_->EvaluateAll(view, scratch_.get(), &matched_);
    EXPECT_EQ(matched_.size(), routes_.size());
    for (size_t i = 0; i < routes_.size(); ++i) {
      auto s = alone_[i]->NewScratch();
      const Tri want = alone_[i]->Evaluate(view, s.get());
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
    return true;
  }

 private:
  std::vector<std::string> sources_;
  std::vector<RouteSpec> routes_;
  std::vector<std::unique_ptr<CompiledCondition>> alone_;
  std::unique_ptr<RouteSet> set_;
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
