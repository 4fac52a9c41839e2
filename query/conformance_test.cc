// Runs the conformance files in tests/conformance/data/ (conditions*.tsv,
// routes.tsv, routes-generated.jsonl, sources.tsv) through the query API.

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "base/json_reader.h"
#include "message/message.h"
#include "message/message_json.h"
#include "query/query.h"

namespace edgeroute::query {
namespace {

std::vector<std::string> ReadLines(const std::string& name) {
  std::ifstream in("tests/conformance/data/" + name);
  EXPECT_TRUE(in.good()) << "cannot open tests/conformance/data/" << name;
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

void RunConditions(const std::string& file) {
  std::vector<std::string> lines = ReadLines(file);
  int cases = 0, failures = 0;
  MessageBuilder builder;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    ASSERT_EQ(cols.size(), 3u) << file << ":" << i + 1;
    ++cases;
    std::string got;
    std::vector<Diagnostic> diags;
    auto compiled = CompiledCondition::Compile(cols[0], &diags);
    std::string detail;
    if (!compiled.ok()) {
      got = "compile-error";
      detail = std::string(compiled.status().message());
    } else {
      ASSERT_TRUE(BuildMessageFromJson(cols[1], &builder).ok())
          << file << ":" << i + 1;
      auto scratch = (*compiled)->NewScratch();
      got = TriName((*compiled)->Evaluate(builder.view(), scratch.get()));
    }
    if (got != cols[2]) {
      ++failures;
      ADD_FAILURE() << file << ":" << i + 1 << ": " << cols[0]
                    << "\n  message: " << cols[1] << "\n  expected " << cols[2]
                    << ", got " << got << " " << detail;
    }
  }
  EXPECT_GT(cases, 0);
  std::cout << file << ": " << cases - failures << "/" << cases << " passed\n";
}

TEST(ConformanceTest, HandWrittenConditions) {
  RunConditions("conditions.tsv");
}

TEST(ConformanceTest, GeneratedConditions) {
  RunConditions("conditions-generated.tsv");
}

// The route-set plan (RouteSet::EvaluateAll / EvaluateCondition) against
// the tree evaluator (CompiledCondition): every conformance condition that
// compiles becomes a route of one set, and the set is evaluated on every
// conformance message. Shared loads, grouped comparisons and formula shapes
// must never change a result.
TEST(ConformanceTest, RouteSetPlanAgreesWithConditions) {
  std::vector<std::string> conditions;
  std::vector<std::string> messages;
  for (const char* file : {"conditions.tsv", "conditions-generated.tsv"}) {
    for (const std::string& line : ReadLines(file)) {
      if (line.empty() || line[0] == '#') continue;
      std::vector<std::string> cols = absl::StrSplit(line, '\t');
      ASSERT_EQ(cols.size(), 3u) << line;
      conditions.push_back(cols[0]);
      messages.push_back(cols[1]);
    }
  }
  std::sort(messages.begin(), messages.end());
  messages.erase(std::unique(messages.begin(), messages.end()), messages.end());
  std::vector<RouteSpec> routes;
  std::vector<std::unique_ptr<CompiledCondition>> singles;
  for (const std::string& c : conditions) {
    RouteSpec r;
    r.name = absl::StrCat("r", routes.size());
    r.text = absl::StrCat("FROM /messages WHERE ", c, " INTO $upstream");
    auto single = CompiledCondition::Compile(c, nullptr);
    if (!single.ok() ||
        !RouteSet::Compile({r}, CompileOptions(), nullptr).ok()) {
      continue;
    }
    routes.push_back(std::move(r));
    singles.push_back(std::move(*single));
  }
  ASSERT_GT(routes.size(), 1000u);
  auto set = RouteSet::Compile(routes, CompileOptions(), nullptr);
  ASSERT_TRUE(set.ok()) << set.status();
  auto set_scratch = (*set)->NewScratch();
  std::vector<std::unique_ptr<EvalScratch>> single_scratch;
  for (const auto& c : singles) single_scratch.push_back(c->NewScratch());
  MessageBuilder builder;
  std::vector<uint8_t> matched;
  size_t true_count = 0, mismatches = 0;
  for (const std::string& json : messages) {
    ASSERT_TRUE(
        BuildMessageFromJson(json, &builder, "/messages/modules/m/outputs/o")
            .ok())
        << json;
    (*set)->EvaluateAll(builder.view(), set_scratch.get(), &matched);
    ASSERT_EQ(matched.size(), routes.size());
    for (size_t i = 0; i < routes.size(); ++i) {
      const Tri want =
          singles[i]->Evaluate(builder.view(), single_scratch[i].get());
      const Tri one =
          (*set)->EvaluateCondition(i, builder.view(), set_scratch.get());
      true_count += want == Tri::kTrue;
      if (one != want || matched[i] != (want == Tri::kTrue ? 1 : 0)) {
        if (++mismatches <= 20) {
          ADD_FAILURE() << routes[i].text << "\n  message: " << json
                        << "\n  condition alone: " << TriName(want)
                        << ", in the set: " << TriName(one)
                        << ", matched: " << int(matched[i]);
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(true_count, 0u);
}

// A routes-generated.jsonl line: {"route": R, "expect": "error" |
// {"source": S, "condition": C, "sink": E}} -> the route and the expected
// first stage in FirstStage's form.
bool ParseRouteCase(absl::string_view line, std::string* route,
                    std::string* expected) {
  JsonNode root;
  JsonReadError error;
  if (!ReadJson(line, MessageJsonReaderOptions(), &root, &error)) return false;
  const JsonNode* r = FindJsonMember(root, "route", false);
  const JsonNode* e = FindJsonMember(root, "expect", false);
  if (r == nullptr || r->kind != JsonNode::Kind::kString || e == nullptr) {
    return false;
  }
  *route = r->text;
  if (e->kind == JsonNode::Kind::kString) {
    *expected = e->text;
    return true;
  }
  const JsonNode* source = FindJsonMember(*e, "source", false);
  const JsonNode* condition = FindJsonMember(*e, "condition", false);
  const JsonNode* sink = FindJsonMember(*e, "sink", false);
  if (source == nullptr || condition == nullptr || sink == nullptr) {
    return false;
  }
  *expected = absl::StrCat("source=", source->text, "|condition=",
                           condition->text, "|sink=", sink->text);
  return true;
}

std::string FirstStage(const std::string& route) {
  auto parsed = ParseRoute(route, "DEV", nullptr);
  if (!parsed.ok()) return "error";
  return absl::StrCat("source=", parsed->source,
                      "|condition=", parsed->condition,
                      "|sink=", parsed->sink.endpoint_id);
}

TEST(ConformanceTest, Routes) {
  int cases = 0;
  for (const std::string& line : ReadLines("routes.tsv")) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    ASSERT_EQ(cols.size(), 2u) << line;
    ++cases;
    EXPECT_EQ(FirstStage(cols[0]), cols[1]) << cols[0];
  }
  EXPECT_GT(cases, 0);
}

TEST(ConformanceTest, GeneratedRoutes) {
  int cases = 0;
  for (const std::string& line : ReadLines("routes-generated.jsonl")) {
    if (line.empty()) continue;
    std::string route, expected;
    ASSERT_TRUE(ParseRouteCase(line, &route, &expected)) << line;
    ++cases;
    EXPECT_EQ(FirstStage(route), expected) << line;
  }
  EXPECT_GT(cases, 0);
}

TEST(ConformanceTest, Sources) {
  int cases = 0;
  for (const std::string& line : ReadLines("sources.tsv")) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    ASSERT_EQ(cols.size(), 3u) << line;
    ++cases;
    auto parsed = ParseRoute(absl::StrCat("FROM ", cols[0], " INTO $upstream"),
                             "DEV", nullptr);
    ASSERT_TRUE(parsed.ok()) << cols[0];
    EXPECT_EQ(SourceMatches(parsed->source, cols[1]) ? "true" : "false",
              cols[2])
        << line;
  }
  EXPECT_GT(cases, 0);
}

}  // namespace
}  // namespace edgeroute::query
