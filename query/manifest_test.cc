#include "query/manifest.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace edgeroute::query {
namespace {

using ::testing::HasSubstr;

// Parses and returns the diagnostics; *ok tells whether parsing succeeded.
std::vector<Diagnostic> Diags(absl::string_view json, bool* ok = nullptr,
                              EdgeHubConfig* config = nullptr) {
  std::vector<Diagnostic> diags;
  absl::StatusOr<EdgeHubConfig> result = ParseEdgeHubConfig(json, &diags);
  if (ok != nullptr) *ok = result.ok();
  if (result.ok() && config != nullptr) *config = *result;
  return diags;
}

int ErrorCount(const std::vector<Diagnostic>& diags) {
  int n = 0;
  for (const Diagnostic& d : diags) n += d.is_error();
  return n;
}

// The only error; fails the test when there is not exactly one.
Diagnostic OnlyError(absl::string_view json) {
  bool ok = true;
  std::vector<Diagnostic> diags = Diags(json, &ok);
  EXPECT_FALSE(ok) << json;
  std::vector<Diagnostic> errors;
  for (const Diagnostic& d : diags) {
    if (d.is_error()) errors.push_back(d);
  }
  EXPECT_EQ(errors.size(), 1u) << json;
  return errors.empty() ? Diagnostic{} : errors[0];
}

EdgeHubConfig MustParse(absl::string_view json) {
  std::vector<Diagnostic> diags;
  absl::StatusOr<EdgeHubConfig> result = ParseEdgeHubConfig(json, &diags);
  EXPECT_TRUE(result.ok()) << result.status() << "\n" << json;
  return result.ok() ? *result : EdgeHubConfig{};
}

constexpr char kSaf[] =
    R"("storeAndForwardConfiguration": {"timeToLiveSecs": 7200})";

std::string Desired11(absl::string_view routes,
                      absl::string_view version = "1.1") {
  return absl::StrCat(R"({"schemaVersion": ")", version, R"(", "routes": )",
                      routes, ", ", kSaf, "}");
}

TEST(ParseEdgeHubConfig, Schema11StringAndObjectRoutes) {
  EdgeHubConfig c = MustParse(Desired11(R"({
      "r1": "FROM /messages/* INTO $upstream",
      "r2": {"route": "FROM /messages/modules/a/* INTO $upstream",
             "priority": 0, "timeToLiveSecs": 30},
      "r3": {"route": "FROM /* INTO $upstream"}})"));
  EXPECT_EQ(c.schema_version, "1.1");
  ASSERT_EQ(c.routes.size(), 3u);
  EXPECT_EQ(c.routes[0].name, "r1");
  EXPECT_EQ(c.routes[0].text, "FROM /messages/* INTO $upstream");
  EXPECT_EQ(c.routes[0].priority, kDefaultPriority);
  EXPECT_EQ(c.routes[0].ttl_secs, 0);
  EXPECT_EQ(c.routes[1].name, "r2");
  EXPECT_EQ(c.routes[1].priority, 0);
  EXPECT_EQ(c.routes[1].ttl_secs, 30);
  EXPECT_EQ(c.routes[2].priority, kDefaultPriority);
  EXPECT_EQ(c.routes[2].ttl_secs, 0);
  EXPECT_EQ(c.ttl_secs, 7200);
  EXPECT_FALSE(c.max_size_bytes.has_value());
}

TEST(ParseEdgeHubConfig, AllMinorVersionsAndVersionForms) {
  for (const char* v : {"1.1", "1.2", "1.3", "1.1.0", "1.2.3.4", " 1.1 "}) {
    EdgeHubConfig c = MustParse(Desired11("{}", v));
    EXPECT_EQ(c.schema_version, v);
    EXPECT_TRUE(c.routes.empty());
  }
}

TEST(ParseEdgeHubConfig, BadSchemaVersions) {
  for (const char* v :
       {"1", "", "1.", "1.1.1.1.1", "a.b", "1.x", "-1.1", "1.-1"}) {
    Diagnostic d = OnlyError(Desired11("{}", v));
    EXPECT_THAT(d.message, HasSubstr("invalid schemaVersion")) << v;
  }
  for (const char* v : {"2.0", "0.9", "1.4", "1.10"}) {
    Diagnostic d = OnlyError(Desired11("{}", v));
    EXPECT_THAT(d.message, HasSubstr("unsupported schemaVersion")) << v;
  }
}

TEST(ParseEdgeHubConfig, MissingOrNonStringSchemaVersion) {
  Diagnostic d = OnlyError(R"({"routes": {}})");
  EXPECT_THAT(d.message, HasSubstr("missing \"schemaVersion\""));
  // edgeHub looks the key up case-sensitively.
  d = OnlyError(R"({"SchemaVersion": "1.1", "routes": {}})");
  EXPECT_THAT(d.message, HasSubstr("missing \"schemaVersion\""));
  d = OnlyError(R"({"schemaVersion": true, "routes": {}})");
  EXPECT_THAT(d.message, HasSubstr("must be a string"));
}

TEST(ParseEdgeHubConfig, NumericSchemaVersionWarns) {
  bool ok = false;
  std::vector<Diagnostic> diags = Diags(
      absl::StrCat(R"({"schemaVersion": 1.1, "routes": {}, )", kSaf, "}"), &ok);
  EXPECT_TRUE(ok);
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_FALSE(diags[0].is_error());
  EXPECT_THAT(diags[0].suggestion, HasSubstr("\"1.1\""));
}

TEST(ParseEdgeHubConfig, Schema10) {
  EdgeHubConfig c = MustParse(R"({"schemaVersion": "1.0", "routes": {
      "a": "FROM /messages/* INTO $upstream", "blank": "  ", "empty": ""}})");
  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].name, "a");
  EXPECT_EQ(c.routes[0].priority, kDefaultPriority);
  EXPECT_EQ(c.ttl_secs, -1);  // no storeAndForwardConfiguration
  // Skipped routes are reported as warnings.
  std::vector<Diagnostic> diags =
      Diags(R"({"schemaVersion": "1.0", "routes": {"blank": " "}})");
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_FALSE(diags[0].is_error());
  EXPECT_THAT(diags[0].message, HasSubstr("route 'blank'"));
}

TEST(ParseEdgeHubConfig, Schema10WithoutRoutesAndWithTtl) {
  EdgeHubConfig c = MustParse(R"({"schemaVersion": "1.0"})");
  EXPECT_TRUE(c.routes.empty());
  c = MustParse(
      R"({"schemaVersion": "1.0", "storeAndForwardConfiguration": {"timeToLiveSecs": 60}})");
  EXPECT_EQ(c.ttl_secs, 60);
}

TEST(ParseEdgeHubConfig, Schema10RouteNamesAreNotEscaped) {
  EdgeHubConfig c = MustParse(
      R"({"schemaVersion": "1.0", "routes": {"a.b": "FROM /* INTO $upstream"}})");
  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].name, "a.b");
}

TEST(ParseEdgeHubConfig, Schema10ObjectRouteIsAnError) {
  Diagnostic d = OnlyError(R"({"schemaVersion": "1.0", "routes": {
      "r": {"route": "FROM /* INTO $upstream", "priority": 1}}})");
  EXPECT_THAT(d.message, HasSubstr("route 'r'"));
  EXPECT_THAT(d.message, HasSubstr("1.1"));
  EXPECT_EQ(d.line, 2);
  EXPECT_EQ(d.column, 12);
}

TEST(ParseEdgeHubConfig, Schema11RequiresRoutes) {
  Diagnostic d =
      OnlyError(absl::StrCat(R"({"schemaVersion": "1.1", )", kSaf, "}"));
  EXPECT_THAT(d.message, HasSubstr("requires \"routes\""));
  d = OnlyError(
      absl::StrCat(R"({"schemaVersion": "1.2", "routes": null, )", kSaf, "}"));
  EXPECT_THAT(d.message, HasSubstr("requires \"routes\""));
  d = OnlyError(Desired11("[]"));
  EXPECT_THAT(d.message, HasSubstr("must be an object"));
}

TEST(ParseEdgeHubConfig, Schema11RequiresStoreAndForward) {
  Diagnostic d = OnlyError(R"({"schemaVersion": "1.1", "routes": {}})");
  EXPECT_THAT(d.message, HasSubstr("storeAndForwardConfiguration"));
  d = OnlyError(
      R"({"schemaVersion": "1.1", "routes": {}, "storeAndForwardConfiguration": {}})");
  EXPECT_THAT(d.message, HasSubstr("timeToLiveSecs"));
  d = OnlyError(
      R"({"schemaVersion": "1.1", "routes": {}, "storeAndForwardConfiguration": 5})");
  EXPECT_THAT(d.message, HasSubstr("must be an object"));
}

TEST(ParseEdgeHubConfig, StoreAndForwardValues) {
  EdgeHubConfig c = MustParse(R"({"schemaVersion": "1.1", "routes": {},
      "storeAndForwardConfiguration": {"timeToLiveSecs": -1,
                                       "storeLimits": {"maxSizeBytes": 1048576}}})");
  EXPECT_EQ(c.ttl_secs, -1);
  ASSERT_TRUE(c.max_size_bytes.has_value());
  EXPECT_EQ(*c.max_size_bytes, 1048576);
  // Newtonsoft binds member names case-insensitively.
  c = MustParse(R"({"schemaVersion": "1.1", "Routes": {},
      "StoreAndForwardConfiguration": {"TimeToLiveSecs": 10}})");
  EXPECT_EQ(c.ttl_secs, 10);
  // An int32 overflow, a fraction and a string are errors.
  for (const char* ttl : {"2147483648", "1.5", "\"7200\""}) {
    Diagnostic d = OnlyError(absl::StrCat(
        R"({"schemaVersion": "1.1", "routes": {}, "storeAndForwardConfiguration": {"timeToLiveSecs": )",
        ttl, "}}"));
    EXPECT_THAT(d.message, HasSubstr("timeToLiveSecs")) << ttl;
  }
  Diagnostic d = OnlyError(R"({"schemaVersion": "1.1", "routes": {},
      "storeAndForwardConfiguration": {"timeToLiveSecs": 1,
                                       "storeLimits": {"maxSizeBytes": -5}}})");
  EXPECT_THAT(d.message, HasSubstr("maxSizeBytes"));
}

TEST(ParseEdgeHubConfig, PriorityRules) {
  for (const char* p : {"0", "9", "2000000000", "5.0"}) {
    EdgeHubConfig c = MustParse(Desired11(absl::StrCat(
        R"({"r": {"route": "FROM /* INTO $upstream", "priority": )", p, "}}")));
    ASSERT_EQ(c.routes.size(), 1u);
  }
  for (const char* p :
       {"10", "-1", "1.5", "\"1\"", "null", "99999999999999999999"}) {
    Diagnostic d = OnlyError(Desired11(absl::StrCat(
        R"({"r": {"route": "FROM /* INTO $upstream", "priority": )", p, "}}")));
    EXPECT_THAT(d.message, HasSubstr("route 'r': priority")) << p;
  }
}

TEST(ParseEdgeHubConfig, TimeToLiveRules) {
  EdgeHubConfig c = MustParse(Desired11(
      R"({"r": {"route": "FROM /* INTO $upstream", "timeToLiveSecs": 4294967295}})"));
  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].ttl_secs, 4294967295);
  for (const char* t : {"-1", "4294967296", "0.5", "true"}) {
    Diagnostic d = OnlyError(Desired11(absl::StrCat(
        R"({"r": {"route": "FROM /* INTO $upstream", "timeToLiveSecs": )", t,
        "}}")));
    EXPECT_THAT(d.message, HasSubstr("route 'r': timeToLiveSecs")) << t;
  }
}

TEST(ParseEdgeHubConfig, MalformedRoutes) {
  // Each malformed route kind of the spec, with the route named.
  struct Case {
    const char* routes;
    const char* expect;
  } cases[] = {
      {R"({"": "FROM /* INTO $upstream"})", "empty route name"},
      {R"({"r": 5})", "route 'r': Malformed route specification"},
      {R"({"r": ["FROM /* INTO $upstream"]})", "route 'r': Malformed"},
      {R"({"r": true})", "route 'r': Malformed"},
      {R"({"r": null})", "route 'r': Malformed"},
      {R"({"r": ""})", "route 'r': the route is empty"},
      {R"({"r": "   "})", "route 'r': the route is empty"},
      {R"({"r": {"priority": 1}})", "route 'r': missing \"route\""},
      {R"({"r": {"route": 5}})", "route 'r': \"route\" must be a string"},
      {R"({"r": {"route": " "}})", "route 'r': the route is empty"},
  };
  for (const Case& c : cases) {
    Diagnostic d = OnlyError(Desired11(c.routes));
    EXPECT_THAT(d.message, HasSubstr(c.expect)) << c.routes;
  }
}

TEST(ParseEdgeHubConfig, EveryErrorIsReported) {
  bool ok = true;
  std::vector<Diagnostic> diags = Diags(Desired11(R"({
      "a": {"route": "FROM /* INTO $upstream", "priority": 12},
      "b": 7,
      "c": {"route": "FROM /* INTO $upstream", "timeToLiveSecs": -3}})"),
                                        &ok);
  EXPECT_FALSE(ok);
  EXPECT_EQ(ErrorCount(diags), 3);
}

TEST(ParseEdgeHubConfig, UnknownRouteKeyWarns) {
  bool ok = false;
  std::vector<Diagnostic> diags = Diags(
      Desired11(
          R"({"r": {"route": "FROM /* INTO $upstream", "timeToLive": 5}})"),
      &ok);
  EXPECT_TRUE(ok);
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_FALSE(diags[0].is_error());
  EXPECT_THAT(diags[0].message, HasSubstr("\"timeToLive\""));
}

TEST(ParseEdgeHubConfig, DuplicateRouteNameLaterWins) {
  bool ok = false;
  EdgeHubConfig c;
  std::vector<Diagnostic> diags =
      Diags(Desired11(R"({"r": "FROM /a INTO $upstream",
                          "r": "FROM /b INTO $upstream"})"),
            &ok, &c);
  EXPECT_TRUE(ok);
  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].text, "FROM /b INTO $upstream");
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_FALSE(diags[0].is_error());
  EXPECT_EQ(diags[0].line, 2);
}

TEST(ParseEdgeHubConfig, RouteNamesTakeNewtonsoftPathForm) {
  EdgeHubConfig c = MustParse(Desired11(R"({
      "plain_name-1": "FROM /* INTO $upstream",
      "a.b": "FROM /* INTO $upstream",
      "it's": "FROM /* INTO $upstream",
      " ": "FROM /* INTO $upstream"})"));
  ASSERT_EQ(c.routes.size(), 4u);
  EXPECT_EQ(c.routes[0].name, "plain_name-1");
  EXPECT_EQ(c.routes[1].name, "['a.b']");
  EXPECT_EQ(c.routes[2].name, "['it\\'s']");
  EXPECT_EQ(c.routes[3].name, "[' ']");
}

TEST(ParseEdgeHubConfig, WholeManifestShapes) {
  const std::string desired =
      Desired11(R"({"up": "FROM /messages/* INTO $upstream"})");
  const std::string hub =
      absl::StrCat(R"({"properties.desired": )", desired, "}");
  const std::string modules = absl::StrCat(
      R"({"$edgeAgent": {"properties.desired": {}}, "$edgeHub": )", hub, "}");
  for (const std::string& json :
       {desired, absl::StrCat(R"({"modulesContent": )", modules, "}"),
        absl::StrCat(R"({"content": {"modulesContent": )", modules, "}}"),
        modules}) {
    EdgeHubConfig c = MustParse(json);
    ASSERT_EQ(c.routes.size(), 1u) << json;
    EXPECT_EQ(c.routes[0].name, "up");
  }
  Diagnostic d = OnlyError(R"({"modulesContent": {"$edgeAgent": {}}})");
  EXPECT_THAT(d.message, HasSubstr("$edgeHub"));
  d = OnlyError(R"({"modulesContent": {"$edgeHub": {}}})");
  EXPECT_THAT(d.message, HasSubstr("properties.desired"));
}

TEST(ParseEdgeHubConfig, JsonErrorsCarryLineAndColumn) {
  struct Case {
    const char* json;
    int line, column;
    const char* expect;
  } cases[] = {
      {"{\n  \"schemaVersion\": \"1.1\",\n  \"routes\": {,}\n}", 3, 14,
       "member name"},
      {"{\n  \"a\": 1,\n}", 3, 1, "trailing commas"},
      {"{\"a\": 'x'}", 1, 7, "double quotes"},
      {"{\"a\": 01}", 1, 7, "leading zeros"},
      {"{\"a\": \"x\" \"b\": 1}", 1, 11, "expected ',' or '}'"},
      {"{\"a\": tru}", 1, 7, "expected a value"},
      {"{\"a\": \"\\q\"}", 1, 8, "invalid escape"},
      {"{\"a\": \"\xc3\xa9\" x}", 1, 11, "expected ',' or '}'"},
      {"{} {}", 1, 4, "after the end"},
      {"", 1, 1, "empty"},
      {"{\"a\": \"open", 1, 7, "unterminated string"},
  };
  for (const Case& c : cases) {
    Diagnostic d = OnlyError(c.json);
    EXPECT_THAT(d.message, HasSubstr("invalid JSON")) << c.json;
    EXPECT_THAT(d.message, HasSubstr(c.expect)) << c.json;
    EXPECT_EQ(d.line, c.line) << c.json;
    EXPECT_EQ(d.column, c.column) << c.json;
  }
}

TEST(ParseEdgeHubConfig, DeepNestingIsRejectedNotCrashed) {
  std::string deep(100000, '[');
  Diagnostic d = OnlyError(deep);
  EXPECT_THAT(d.message, HasSubstr("nested deeper"));
}

TEST(ParseEdgeHubConfig, TopLevelMustBeAnObject) {
  Diagnostic d = OnlyError("[1]");
  EXPECT_THAT(d.message, HasSubstr("expected a JSON object"));
}

TEST(ParseEdgeHubConfig, ErrorExcerptHasCaretUnderTheValue) {
  Diagnostic d = OnlyError(Desired11(
      "{\n  \"r\": {\"route\": \"FROM /* INTO $upstream\", \"priority\": "
      "12}}"));
  EXPECT_EQ(d.line, 2);
  // The excerpt is the manifest line, then a caret under "12".
  const size_t nl = d.excerpt.find('\n');
  ASSERT_NE(nl, std::string::npos);
  const std::string line = d.excerpt.substr(0, nl);
  const std::string carets = d.excerpt.substr(nl + 1);
  EXPECT_EQ(line.substr(carets.find('^'), 2), "12");
  EXPECT_EQ(carets.substr(carets.find('^')), "^~");
}

TEST(ParseEdgeHubConfig, ExcerptOfAMinifiedManifestIsAWindowAroundTheCaret) {
  std::string routes = "{";
  for (int i = 0; i < 50; ++i) {
    absl::StrAppend(&routes, "\"r", i, "\":\"FROM /* INTO $upstream\",");
  }
  routes += "\"last\":{\"route\":\"FROM /* INTO $upstream\",\"priority\":77}}";
  Diagnostic d = OnlyError(Desired11(routes));
  EXPECT_EQ(d.line, 1);
  const size_t nl = d.excerpt.find('\n');
  ASSERT_NE(nl, std::string::npos);
  const std::string line = d.excerpt.substr(0, nl);
  const std::string carets = d.excerpt.substr(nl + 1);
  EXPECT_LT(line.size(), 120u);
  EXPECT_TRUE(absl::StartsWith(line, "...")) << line;
  EXPECT_EQ(line.substr(carets.find('^'), 2), "77") << d.excerpt;
}

TEST(ParseEdgeHubConfig, ColumnsCountCharactersNotBytes) {
  Diagnostic d = OnlyError("{\"\xc3\xa9\xc3\xa9\": 1 2}");
  EXPECT_EQ(d.column, 10);  // the "2"
}

TEST(ParseEdgeHubConfig, StatusListsEveryError) {
  absl::StatusOr<EdgeHubConfig> c =
      ParseEdgeHubConfig(Desired11(R"({"a": 1, "b": 2})"), nullptr);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("2 errors"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("route 'a'"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("route 'b'"));
}

// --- CompileEdgeHubConfig (needs the route compiler) -----------------------

TEST(CompileEdgeHubConfig, ValidManifestCompiles) {
  std::vector<Diagnostic> diags;
  CompileOptions options;
  options.device_id = "gw";
  absl::StatusOr<CompiledEdgeHubConfig> c =
      CompileEdgeHubConfig(Desired11(R"j({
        "up": "FROM /messages/* WHERE temperature > '5' INTO $upstream",
        "m": {"route": "FROM /messages/modules/a/* INTO BrokeredEndpoint(\"/modules/b/inputs/in1\")",
              "priority": 1, "timeToLiveSecs": 60}})j"),
                           options, &diags);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->routes->size(), 2u);
  EXPECT_EQ(c->routes->route(0).name, "up");
  EXPECT_EQ(c->routes->route(0).sink.endpoint_id, "iothub");
  EXPECT_EQ(c->routes->route(1).sink.endpoint_id, "gw/b/in1");
  EXPECT_EQ(c->routes->route(1).priority, 1);
  EXPECT_EQ(c->routes->route(1).ttl_secs, 60);
  EXPECT_EQ(c->config.ttl_secs, 7200);
}

TEST(CompileEdgeHubConfig, RouteErrorsPointIntoTheManifest) {
  // Line 3 holds the route; "foo(" is an unknown built-in.
  const std::string json = Desired11(
      "{\n  \"ok\": \"FROM /* INTO $upstream\",\n"
      "  \"bad\": \"FROM /messages/* WHERE foo(1) = 1 INTO $upstream\"}");
  std::vector<Diagnostic> diags;
  absl::StatusOr<CompiledEdgeHubConfig> c =
      CompileEdgeHubConfig(json, CompileOptions{}, &diags);
  ASSERT_FALSE(c.ok());
  ASSERT_GE(ErrorCount(diags), 1);
  const Diagnostic* err = nullptr;
  for (const Diagnostic& d : diags) {
    if (d.is_error() && absl::StrContains(d.message, "'foo'")) err = &d;
  }
  ASSERT_NE(err, nullptr);
  EXPECT_THAT(err->message, HasSubstr("route 'bad'"));
  EXPECT_EQ(err->line, 3);
  // Column of "foo" in the manifest line.
  const std::string line3 =
      "  \"bad\": \"FROM /messages/* WHERE foo(1) = 1 "
      "INTO $upstream\"}";
  EXPECT_EQ(err->column, static_cast<int>(line3.find("foo")) + 1);
  EXPECT_TRUE(absl::StartsWith(err->excerpt, line3)) << err->excerpt;
}

TEST(CompileEdgeHubConfig, EscapedRouteTextMapsCharacterByCharacter) {
  // \" and \n escapes before the error shift the manifest column.
  const std::string json = Desired11(
      R"({"r": "FROM /messages/*\nWHERE \"a\" = 'a' AND foo(1) INTO $upstream"})");
  std::vector<Diagnostic> diags;
  absl::StatusOr<CompiledEdgeHubConfig> c =
      CompileEdgeHubConfig(json, CompileOptions{}, &diags);
  ASSERT_FALSE(c.ok());
  const Diagnostic* err = nullptr;
  for (const Diagnostic& d : diags) {
    if (d.is_error() && absl::StrContains(d.message, "foo")) err = &d;
  }
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->line, 1);
  EXPECT_EQ(err->column, static_cast<int>(json.find("foo")) + 1);
}

TEST(CompileEdgeHubConfig, CollectsManifestAndRouteErrorsTogether) {
  const std::string json = Desired11(R"({
      "a": {"route": "FROM /* WHERE nosuch(1) INTO $upstream", "priority": 10},
      "b": "FROM /* INTO $nowhere",
      "c": 3})");
  std::vector<Diagnostic> diags;
  absl::StatusOr<CompiledEdgeHubConfig> c =
      CompileEdgeHubConfig(json, CompileOptions{}, &diags);
  ASSERT_FALSE(c.ok());
  // priority, the unknown built-in in a's text, b's sink, c's shape.
  EXPECT_GE(ErrorCount(diags), 4);
  for (const Diagnostic& d : diags) {
    EXPECT_TRUE(absl::StartsWith(d.message, "route '")) << d.message;
  }
}

}  // namespace
}  // namespace edgeroute::query
