// The connector against a real mosquitto broker (a child process), with an
// in-process router: drain, outage (the router keeps what waits), the hop
// limit, URLs in turn, and Stop while disconnected. Tagged tsan: the
// router's executor, the connector's thread and the test thread meet here.

#include "gateway/upstream/connector.h"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gateway/upstream/options.h"
#include "gateway/upstream/test_broker.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "router/router.h"
#include "store/store.h"

namespace edgeroute::gateway::upstream {
namespace {

constexpr char kRoutes[] = R"({"schemaVersion": "1.1",
  "routes": {"up": "FROM /messages/* INTO $upstream"},
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}})";

template <typename Predicate>
bool WaitFor(Predicate done, int seconds = 60) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class ConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker_.Start().ok());
    router::RouterOptions ro;
    router_ = router::Router::Create(ro, kRoutes).value();
  }
  void TearDown() override {
    if (connector_ != nullptr) connector_->Stop();
    router_->Close().IgnoreError();
  }

  void Send(int count, const char* hops = nullptr, const char* kind = nullptr) {
    MessageBuilder b;
    for (int i = 0; i < count; ++i) {
      b.Clear();
      b.SetBody(absl::StrCat("m", sent_++));
      b.AddSystemProperty("connectionDeviceId", "dev");
      if (hops != nullptr) b.AddSystemProperty("hops", hops);
      if (kind != nullptr) b.AddProperty("kind", kind);
      b.Finish();
      ASSERT_TRUE(router_->SendView(b.view()).ok());
    }
  }

  void StartConnector(std::vector<std::string> urls) {
    UpstreamOptions o;
    for (const std::string& u : urls) {
      o.urls.push_back(ParseUpstreamUrl(u).value());
    }
    o.backoff_initial = absl::Milliseconds(20);
    o.backoff_max = absl::Milliseconds(200);
    connector_ = UpstreamConnector::Create(o, router_.get(), "iothub").value();
    connector_->Start();
  }

  uint64_t Delivered() const {
    for (const auto& e : router_->GetMetrics().endpoints) {
      if (e.endpoint_id == "iothub") return e.delivered;
    }
    return 0;
  }

  // Replaces the router with one that keeps its queues in a new store.
  void UseStore(absl::string_view name) {
    router_->Close().IgnoreError();
    router_.reset();
    const char* tmp = std::getenv("TEST_TMPDIR");
    store::StoreOptions so;
    so.directory = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
    store_ = store::Store::Open(so).value();
    router::RouterOptions ro;
    ro.store = store_.get();
    router_ = router::Router::Create(ro, kRoutes).value();
  }

  void CheckBacklog();

  std::string Url() const {
    return absl::StrCat("mqtt://127.0.0.1:", broker_.port());
  }

  TestBroker broker_;
  std::unique_ptr<store::Store> store_;  // outlives router_
  std::unique_ptr<router::Router> router_;
  std::unique_ptr<UpstreamConnector> connector_;
  int sent_ = 0;
};

TEST_F(ConnectorTest, DrainsAndKeepsWhatWaitsDuringAnOutage) {
  Send(500);  // a backlog before any connection
  StartConnector({Url()});
  ASSERT_TRUE(WaitFor([&] { return Delivered() == 500; }));
  EXPECT_TRUE(connector_->GetMetrics().connected);
  EXPECT_EQ(connector_->GetMetrics().acknowledged, 500u);

  broker_.Stop();
  ASSERT_TRUE(WaitFor([&] { return !connector_->GetMetrics().connected; }));
  Send(300);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Delivered(), 500u);  // nothing acknowledged without a broker

  ASSERT_TRUE(broker_.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return Delivered() == 800; }));
  const UpstreamMetrics m = connector_->GetMetrics();
  EXPECT_TRUE(m.connected);
  EXPECT_GE(m.reconnects, 1u);
  EXPECT_GE(m.acknowledged, 800u);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_NE(connector_->PrometheusText().find("edgeroute_upstream_connected 1"),
            std::string::npos);
}

// The backlog metrics while the broker is away: the router's (or the
// store's) counts per priority, an oldest age that grows, and zero once the
// broker is back.
TEST_F(ConnectorTest, BacklogPerPriorityAndOldestAge) { CheckBacklog(); }

TEST_F(ConnectorTest, BacklogPerPriorityAndOldestAgeFromTheStore) {
  UseStore("backlog");
  CheckBacklog();
}

void ConnectorTest::CheckBacklog() {
  const absl::Status routes = router_->UpdateRoutes(R"({
    "schemaVersion": "1.1", "routes": {
      "alerts": {"route": "FROM /messages/* WHERE kind = 'alert' INTO $upstream",
                 "priority": 1},
      "bulk": {"route": "FROM /messages/* WHERE kind = 'bulk' INTO $upstream",
               "priority": 5}},
    "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}})");
  ASSERT_TRUE(routes.ok()) << routes;
  broker_.Stop();
  StartConnector({Url()});
  ASSERT_TRUE(
      WaitFor([&] { return connector_->GetMetrics().connect_failures > 0; }));
  UpstreamBacklog backlog = connector_->GetBacklog();
  for (uint64_t n : backlog.by_priority) EXPECT_EQ(n, 0u);
  EXPECT_EQ(backlog.oldest_age, absl::ZeroDuration());

  Send(30, nullptr, "alert");
  Send(20, nullptr, "bulk");
  Send(7);  // no route: not upstream's backlog
  // The counts move as messages are queued; the oldest age once the
  // endpoint's executor has looked at its queue (a gauge, not a barrier).
  ASSERT_TRUE(WaitFor([&] {
    const UpstreamBacklog b = connector_->GetBacklog();
    return b.by_priority[1] == 30 && b.by_priority[5] == 20 &&
           b.oldest_age > absl::ZeroDuration();
  }));
  backlog = connector_->GetBacklog();
  for (int level = 0; level < router::kPriorityLevels; ++level) {
    if (level != 1 && level != 5) {
      EXPECT_EQ(backlog.by_priority[level], 0u) << level;
    }
  }
  const absl::Duration first_age = backlog.oldest_age;
  EXPECT_GT(first_age, absl::ZeroDuration());
  ASSERT_TRUE(WaitFor([&] {
    return connector_->GetBacklog().oldest_age >=
           first_age + absl::Milliseconds(300);
  }));
  const std::string text = connector_->PrometheusText();
  for (const char* line :
       {"edgeroute_upstream_backlog{priority=\"1\"} 30\n",
        "edgeroute_upstream_backlog{priority=\"5\"} 20\n",
        "edgeroute_upstream_backlog{priority=\"0\"} 0\n",
        "edgeroute_upstream_backlog{priority=\"default\"} 0\n",
        "# TYPE edgeroute_upstream_oldest_backlog_age_seconds gauge\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  EXPECT_EQ(text.find("edgeroute_upstream_oldest_backlog_age_seconds 0.000"),
            std::string::npos)
      << text;

  ASSERT_TRUE(broker_.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return Delivered() == 50; }));
  ASSERT_TRUE(WaitFor([&] {
    const UpstreamBacklog b = connector_->GetBacklog();
    for (uint64_t n : b.by_priority) {
      if (n != 0) return false;
    }
    return b.oldest_age == absl::ZeroDuration();
  }));
  EXPECT_NE(connector_->PrometheusText().find(
                "edgeroute_upstream_oldest_backlog_age_seconds 0.000\n"),
            std::string::npos);
}

TEST_F(ConnectorTest, HopLimitDropsAndCounts) {
  StartConnector({Url()});
  Send(10, "4");
  Send(5, "3");
  ASSERT_TRUE(WaitFor([&] { return Delivered() == 15; }));
  const UpstreamMetrics m = connector_->GetMetrics();
  EXPECT_EQ(m.dropped_hop_limit, 10u);
  EXPECT_EQ(m.acknowledged, 5u);
}

TEST_F(ConnectorTest, TriesTheUrlsInTurn) {
  TestBroker dead;  // a port nobody listens on
  StartConnector({absl::StrCat("mqtt://127.0.0.1:", dead.port()), Url()});
  Send(50);
  ASSERT_TRUE(WaitFor([&] { return Delivered() == 50; }));
  const UpstreamMetrics m = connector_->GetMetrics();
  EXPECT_EQ(m.url_index, 1);
  EXPECT_GE(m.connect_failures, 1u);
}

TEST_F(ConnectorTest, StopWhileDisconnectedReturnsTheBatch) {
  broker_.Stop();
  StartConnector({Url()});
  Send(20);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  connector_->Stop();
  EXPECT_EQ(Delivered(), 0u);
  // Close does not wait for a batch that nobody completes.
}

}  // namespace
}  // namespace edgeroute::gateway::upstream
