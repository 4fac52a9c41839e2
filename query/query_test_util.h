// Test helpers of the route language's tests: messages written as a few
// properties and a body, and a fixture that compiles a condition and
// evaluates it on one. Test-only.

#ifndef EDGEROUTE_QUERY_QUERY_TEST_UTIL_H_
#define EDGEROUTE_QUERY_QUERY_TEST_UTIL_H_

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "message/message.h"
#include "query/query.h"

namespace edgeroute::query {

// A message: properties and system properties (a null value pointer is a
// null-valued property), a body, and an optional source.
struct Msg {
  std::vector<std::pair<std::string, const char*>> props;  // null = null
  std::vector<std::pair<std::string, const char*>> sys;
  std::string body;
  bool json = true;  // add contentType/contentEncoding for a JSON body
  std::string source;
};

class QueryTest : public ::testing::Test {
 protected:
  MessageView Build(const Msg& m) {
    builder_.Clear();
    if (!m.source.empty()) builder_.SetSource(m.source);
    builder_.SetBody(m.body);
    for (const auto& [k, v] : m.props) {
      if (v == nullptr) {
        builder_.AddNullProperty(k);
      } else {
        builder_.AddProperty(k, v);
      }
    }
    if (m.json) {
      builder_.AddSystemProperty("contentType", "application/json");
      builder_.AddSystemProperty("contentEncoding", "utf-8");
    }
    for (const auto& [k, v] : m.sys) {
      if (v == nullptr) {
        builder_.AddNullSystemProperty(k);
      } else {
        builder_.AddSystemProperty(k, v);
      }
    }
    builder_.Finish();
    return builder_.view();
  }

  // "true", "false", "undefined" or "compile-error".
  std::string Eval(const std::string& condition, const Msg& m = Msg()) {
    auto c = CompiledCondition::Compile(condition, nullptr);
    if (!c.ok()) return "compile-error";
    auto scratch = (*c)->NewScratch();
    return TriName((*c)->Evaluate(Build(m), scratch.get()));
  }

  std::vector<Diagnostic> Diags(const std::string& condition) {
    std::vector<Diagnostic> diags;
    (void)CompiledCondition::Compile(condition, &diags);
    return diags;
  }

  MessageBuilder builder_;
};

inline Msg Props() {
  Msg m;
  m.props = {{"k", "v"}, {"n", "3"}, {"nul", nullptr}, {"Level", "critical"}};
  m.sys = {{"connectionDeviceId", "dev1"}, {"cid", "c-9"}};
  return m;
}

inline Msg Body(std::string body) {
  Msg m;
  m.body = std::move(body);
  return m;
}

}  // namespace edgeroute::query

#endif  // EDGEROUTE_QUERY_QUERY_TEST_UTIL_H_
