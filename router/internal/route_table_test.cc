// Tests of the source index: it must return exactly the routes whose FROM
// matches (query::SourceMatches is the oracle), in ascending order.

#include "router/internal/route_table.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "query/query.h"

namespace edgeroute::router::internal {
namespace {

TEST(RouteTableTest, SourceIndexAgreesWithSourceMatches) {
  const std::vector<std::string> froms = {
      "/*",
      "/messages",
      "/messages/*",
      "/messages/modules/*",
      "/messages/modules/m1/*",
      "/messages/modules/M1/outputs/o1",
      "/messages/modules/m1/outputs/*",
      "/messages/modules/m10/*",
      "/messages/modules/m*",
      "/messages/modules/*/outputs/o1",
      "/twinChangeNotifications",
      "/messages/modules/m2/outputs/o2",
  };
  std::vector<query::RouteSpec> specs;
  for (size_t i = 0; i < froms.size(); ++i) {
    specs.push_back({absl::StrCat("r", i),
                     absl::StrCat("FROM ", froms[i], " INTO $upstream"),
                     query::kDefaultPriority, 0});
  }
  std::vector<query::Diagnostic> diags;
  auto set = query::RouteSet::Compile(specs, {}, &diags);
  ASSERT_TRUE(set.ok()) << set.status();
  std::vector<std::string> normalised;
  for (size_t i = 0; i < (*set)->size(); ++i) {
    normalised.push_back((*set)->route(i).source);
  }
  EndpointConfig config;
  Endpoint endpoint("iothub", config);
  RouteCounters counters("x", 1);
  auto table = RouteTable::Build(
      std::move(*set), -1, 1,
      [&](const std::string&, int bucket) -> absl::StatusOr<Endpoint*> {
        EXPECT_TRUE(endpoint.EnsureLane(bucket).ok());
        return &endpoint;
      },
      [&](const std::string&) { return &counters; });
  ASSERT_TRUE(table.ok()) << table.status();
  const std::vector<std::string> sources = {
      "/messages",
      "/messages/modules/m1",
      "/messages/modules/m1/outputs/o1",
      "/MESSAGES/modules/m1/outputs/O1",
      "/messages/modules/m10/outputs/o1",
      "/messages/modules/m2/outputs/o2",
      "/messages/modules/m2/outputs/o22",
      "/twinChangeNotifications",
      "/other",
      "",
  };
  for (const std::string& source : sources) {
    std::vector<uint32_t> got;
    (*table)->Candidates(source, &got);
    std::vector<uint32_t> want;
    for (size_t i = 0; i < normalised.size(); ++i) {
      if (query::SourceMatches(normalised[i], source)) {
        want.push_back(static_cast<uint32_t>(i));
      }
    }
    EXPECT_EQ(got, want) << "source '" << source << "'";
  }
}

TEST(RouteTableTest, TtlAndPriorityResolution) {
  std::vector<query::RouteSpec> specs = {
      {"a", "FROM /* INTO $upstream", 3, 0},
      {"b", "FROM /* WHERE x = 'y' INTO $upstream", query::kDefaultPriority,
       30},
  };
  std::vector<query::Diagnostic> diags;
  auto set = query::RouteSet::Compile(specs, {}, &diags);
  ASSERT_TRUE(set.ok()) << set.status();
  EndpointConfig config;
  Endpoint endpoint("iothub", config);
  RouteCounters counters("x", 1);
  auto table = RouteTable::Build(
      std::move(*set), 7200, 1,
      [&](const std::string& id, int bucket) -> absl::StatusOr<Endpoint*> {
        EXPECT_EQ(id, "iothub");
        EXPECT_TRUE(endpoint.EnsureLane(bucket).ok());
        return &endpoint;
      },
      [&](const std::string&) { return &counters; });
  ASSERT_TRUE(table.ok());
  EXPECT_EQ((*table)->route(0).bucket, 3);
  EXPECT_TRUE((*table)->route(0).always_true);
  EXPECT_EQ((*table)->route(0).ttl_us, int64_t{7200} * 1000000);
  EXPECT_EQ((*table)->route(1).bucket, kDefaultBucket);
  EXPECT_FALSE((*table)->route(1).always_true);
  EXPECT_EQ((*table)->route(1).ttl_us, int64_t{30} * 1000000);
  EXPECT_EQ((*table)->endpoint_count(), 1u);
}

}  // namespace
}  // namespace edgeroute::router::internal
