// The example manifests in examples/ routed end to end.

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "message/message.h"
#include "router/router.h"
#include "router/sinks.h"

namespace edgeroute::router {
namespace {

constexpr absl::Duration kWait = absl::Seconds(20);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Sent {
  std::string module, output;
  std::vector<std::pair<std::string, std::string>> props;
  std::string body;
};

absl::Status Send(Router& r, const Sent& m, uint64_t seq) {
  MessageBuilder b;
  b.SetBody(m.body);
  b.AddSystemProperty("connectionDeviceId", "line-7");
  if (!m.module.empty()) b.AddSystemProperty("connectionModuleId", m.module);
  if (!m.output.empty()) b.AddSystemProperty("outputName", m.output);
  b.AddSystemProperty("contentType", "application/json");
  b.AddSystemProperty("contentEncoding", "utf-8");
  for (const auto& [k, v] : m.props) b.AddProperty(k, v);
  b.SetSequenceNumber(seq);
  return r.Send(b.Finish());
}

std::vector<std::pair<uint64_t, int>> Got(const CollectingSink& s) {
  std::vector<std::pair<uint64_t, int>> out;
  for (const auto& m : s.messages()) {
    out.emplace_back(MessageView::FromTrustedBytes(
                         absl::MakeConstSpan(
                             reinterpret_cast<const uint8_t*>(m.bytes.data()),
                             m.bytes.size()))
                         .sequence_number(),
                     m.priority);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ManifestTest, DeploymentExampleRoutesEndToEnd) {
  FakeClock clock;
  RouterOptions o;
  o.clock = &clock;
  o.device_id = "gw";
  auto router = Router::Create(o, ReadFile("examples/deployment.json"));
  ASSERT_TRUE(router.ok()) << router.status();
  auto upstream = std::make_shared<CollectingSink>();
  auto filter = std::make_shared<CollectingSink>();
  ASSERT_TRUE((*router)->SetSink("iothub", upstream).ok());
  ASSERT_TRUE((*router)->SetSink("gw/filter/input1", filter).ok());
  const std::string hot = R"({"machine":{"temperature":104.2}})";
  // is_defined($body.ambient) needs a scalar: an object is undefined.
  const std::string ambient = R"({"ambient":21.3})";
  // 1: sensor -> filter, and bulkTelemetry (ambient) -> upstream at 9.
  ASSERT_TRUE(
      Send(**router, {"tempSensor", "temperatureOutput", {}, ambient}, 1).ok());
  // 2: filter output1 -> upstream (default priority) and alerts (hot) -> 0:
  // one delivery, at priority 0.
  ASSERT_TRUE(Send(**router, {"filter", "output1", {}, hot}, 2).ok());
  // 3: filter output1, not hot -> upstream at the default priority. (A
  // missing $body.machine.temperature would compare as null > 100 = true in
  // edgeHub, so the body has one.)
  ASSERT_TRUE(
      Send(**router,
           {"filter", "output1", {}, R"({"machine":{"temperature":50}})"}, 3)
          .ok());
  // 4: filter alerts output with alertType -> priority 0 only.
  ASSERT_TRUE(
      Send(**router, {"filter", "alerts", {{"alertType", "overheat"}}, "{}"}, 4)
          .ok());
  // 5: a device message: no route.
  ASSERT_TRUE(Send(**router, {"", "", {}, hot}, 5).ok());
  ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
  EXPECT_EQ(Got(*filter),
            (std::vector<std::pair<uint64_t, int>>{{1, 2000000000}}));
  EXPECT_EQ(Got(*upstream), (std::vector<std::pair<uint64_t, int>>{
                                {1, 9}, {2, 0}, {3, 2000000000}, {4, 0}}));
  EXPECT_EQ((*router)->GetMetrics().orphaned, 1u);
  // The alerts route's 60 s TTL: an alert queued while upstream has no sink
  // expires after 61 s; a bulk message (1 day) does not.
  ASSERT_TRUE((*router)->SetSink("iothub", nullptr).ok());
  ASSERT_TRUE(
      Send(**router, {"filter", "alerts", {{"alertType", "overheat"}}, "{}"}, 6)
          .ok());
  ASSERT_TRUE(Send(**router, {"tempSensor", "x", {}, ambient}, 7).ok());
  ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
  clock.AdvanceSeconds(61);
  auto later = std::make_shared<CollectingSink>();
  ASSERT_TRUE((*router)->SetSink("iothub", later).ok());
  ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
  EXPECT_EQ(Got(*later), (std::vector<std::pair<uint64_t, int>>{{7, 9}}));
}

TEST(ManifestTest, DesiredPropertiesExampleAndInvalidUpdate) {
  FakeClock clock;
  RouterOptions o;
  o.clock = &clock;
  auto router = Router::Create(o, ReadFile("examples/edgehub-desired.json"));
  ASSERT_TRUE(router.ok()) << router.status();
  auto upstream = std::make_shared<CollectingSink>();
  auto agg = std::make_shared<CollectingSink>();
  ASSERT_TRUE((*router)->SetSink("iothub", upstream).ok());
  ASSERT_TRUE((*router)->SetSink("DEV/aggregator/readings", agg).ok());
  ASSERT_TRUE(Send(**router, {"", "", {}, "{}"}, 1).ok());  // device: upstream
  ASSERT_TRUE(Send(**router,
                   {"sensor",
                    "telemetry",
                    {{"level", "critical"}},
                    R"({"temperature":25})"},
                   2)
                  .ok());
  ASSERT_TRUE((*router)->WaitIdle(kWait).ok());
  EXPECT_EQ(Got(*upstream),
            (std::vector<std::pair<uint64_t, int>>{{1, 2000000000}, {2, 1}}));
  EXPECT_EQ(Got(*agg),
            (std::vector<std::pair<uint64_t, int>>{{2, 2000000000}}));
  // An invalid manifest is rejected whole, with every error; routing stays.
  absl::Status s = (*router)->UpdateRoutes(ReadFile("examples/invalid.json"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*router)->GetMetrics().route_updates, 0u);
  ASSERT_TRUE(Send(**router, {"", "", {}, "{}"}, 3).ok());
  ASSERT_TRUE(upstream->WaitForCount(3, kWait));
  // A valid update through the manifest path.
  ASSERT_TRUE(
      (*router)->UpdateRoutes(ReadFile("examples/deployment.json")).ok());
  EXPECT_EQ((*router)->GetMetrics().route_updates, 1u);
}

}  // namespace
}  // namespace edgeroute::router
