#include "gateway/gateway.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/auth/sas_token.h"
#include "gateway/client.h"
#include "gateway/mqtt/test_client.h"
#include "gateway/test_socket.h"
#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {

using router::EndpointMetrics;
using router::RouterMetrics;

namespace {

constexpr char kDevice[] = "edge-1";

constexpr char kManifest[] = R"json({
  "schemaVersion": "1.1",
  "routes": {
    "toFilter": "FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint(\"/modules/filter/inputs/input1\")",
    "filterUp": "FROM /messages/modules/filter/outputs/* INTO $upstream",
    "alerts": {"route": "FROM /messages/modules/sensor/outputs/alerts WHERE level = 'critical' INTO $upstream", "priority": 0}
  },
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}
})json";

constexpr char kManifestOnlyAlerts[] = R"({
  "schemaVersion": "1.1",
  "routes": {
    "alerts": "FROM /messages/modules/sensor/outputs/alerts INTO $upstream"
  },
  "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}
})";

absl::Span<const uint8_t> AsBytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()),
                             s.size());
}

std::string Message(absl::string_view body, absl::string_view level = "") {
  MessageBuilder builder;
  builder.SetBody(body);
  if (!level.empty()) builder.AddProperty("level", level);
  absl::Span<const uint8_t> b = builder.Finish();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::string TempPath(absl::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : ".", "/", name);
}

class GatewayTest : public ::testing::Test {
 protected:
  void Start(GatewayOptions options = {}) {
    options.device_id = kDevice;
    options.tcp_port = 0;
    options.metrics_port = 0;
    if (options.manifest_path.empty() && options.manifest_json.empty()) {
      options.manifest_json = kManifest;
    }
    auto gateway = Gateway::Create(options);
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = std::move(*gateway);
    ASSERT_TRUE(gateway_->Start().ok());
  }
  void TearDown() override {
    if (gateway_ != nullptr) {
      EXPECT_TRUE(gateway_->Shutdown().ok());
    }
  }
  std::unique_ptr<Client> Connect(absl::string_view module,
                                  absl::string_view device = kDevice) {
    auto client =
        Client::Connect(absl::StrCat("tcp:127.0.0.1:", gateway_->tcp_port()));
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return nullptr;
    absl::Status hello = (*client)->Hello(device, module);
    EXPECT_TRUE(hello.ok()) << hello;
    return std::move(*client);
  }

  std::unique_ptr<Gateway> gateway_;
};

// GatewayOptions::executor_threads reaches the router, which checks it.
TEST(GatewayCreateTest, ExecutorThreadsReachTheRouter) {
  GatewayOptions options;
  options.manifest_json = kManifest;
  options.tcp_port = -1;
  options.metrics_port = -1;
  options.executor_threads = 257;
  auto refused = Gateway::Create(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "executor_threads"))
      << refused.status();
  options.executor_threads = 1;
  auto gateway = Gateway::Create(options);
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  EXPECT_TRUE((*gateway)->Shutdown().ok());
}

// A listener that cannot be opened fails Create with the reason, and the
// half-made gateway is torn down cleanly (it once crashed here).
TEST(GatewayCreateTest, UnopenableListenerFailsCreateCleanly) {
  GatewayOptions options;
  options.manifest_json = kManifest;
  options.tcp_port = -1;
  options.unix_path = TempPath(std::string(120, 'u'));
  auto gateway = Gateway::Create(options);
  ASSERT_FALSE(gateway.ok());
  EXPECT_EQ(gateway.status().code(), absl::StatusCode::kInvalidArgument)
      << gateway.status();
  EXPECT_TRUE(absl::StrContains(gateway.status().message(), "Unix socket path"))
      << gateway.status();

  // The same for a TCP port that is taken.
  GatewayOptions first;
  first.manifest_json = kManifest;
  first.tcp_port = 0;
  auto running = Gateway::Create(first);
  ASSERT_TRUE(running.ok()) << running.status();
  GatewayOptions second;
  second.manifest_json = kManifest;
  second.tcp_port = (*running)->tcp_port();
  auto clash = Gateway::Create(second);
  ASSERT_FALSE(clash.ok());
  EXPECT_TRUE((*running)->Shutdown().ok());
}

TEST_F(GatewayTest, RoutesFromModuleToModuleToUpstream) {
  Start();
  auto filter = Connect("filter");
  auto upstream = Connect("", "cloud-forwarder");
  auto sensor = Connect("sensor");
  ASSERT_TRUE(filter && upstream && sensor);
  ASSERT_TRUE(filter->Subscribe({"input1"}).ok());
  ASSERT_TRUE(upstream->Subscribe({kUpstreamInput}).ok());

  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(sensor
                    ->SendTelemetry("temperature",
                                    AsBytes(Message(absl::StrCat(i))), true)
                    .ok());
  }
  ASSERT_TRUE(sensor->WaitForAcks(kCount).ok());
  EXPECT_EQ(sensor->acks_refused(), 0u);

  // The filter gets every message in order and forwards it.
  for (int i = 0; i < kCount; ++i) {
    auto d = filter->Receive(10000);
    ASSERT_TRUE(d.ok()) << i << ": " << d.status();
    EXPECT_EQ(d->input, "input1");
    EXPECT_EQ(d->message.body(), absl::StrCat(i));
    EXPECT_EQ(d->message.source(),
              "/messages/modules/sensor/outputs/temperature");
    const std::string forward(d->message.body());
    const uint64_t id = d->delivery_id;
    ASSERT_TRUE(filter->SendTelemetry("out", AsBytes(Message(forward))).ok());
    ASSERT_TRUE(filter->Ack(id).ok());
  }
  ASSERT_TRUE(filter->Flush().ok());
  // Upstream gets the filter's output, in order.
  for (int i = 0; i < kCount; ++i) {
    auto d = upstream->Receive(10000);
    ASSERT_TRUE(d.ok()) << i << ": " << d.status();
    EXPECT_EQ(d->input, kUpstreamInput);
    EXPECT_EQ(d->message.body(), absl::StrCat(i));
    EXPECT_EQ(d->message.source(), "/messages/modules/filter/outputs/out");
    EXPECT_EQ(d->message.FindSystemProperty("connectionDeviceId").value,
              kDevice);
    ASSERT_TRUE(upstream->Ack(d->delivery_id).ok());
  }
  ASSERT_TRUE(upstream->Flush().ok());
  EXPECT_TRUE(gateway_->WaitIdle(10000).ok());
}

TEST_F(GatewayTest, ConditionsApplyAndUnroutedMessagesGoNowhere) {
  Start();
  auto upstream = Connect("", "cloud-forwarder");
  auto sensor = Connect("sensor");
  ASSERT_TRUE(upstream && sensor);
  ASSERT_TRUE(upstream->Subscribe({kUpstreamInput}).ok());
  ASSERT_TRUE(
      sensor->SendTelemetry("alerts", AsBytes(Message("a", "info")), true)
          .ok());
  ASSERT_TRUE(
      sensor->SendTelemetry("alerts", AsBytes(Message("b", "critical")), true)
          .ok());
  ASSERT_TRUE(sensor->WaitForAcks(2).ok());
  auto d = upstream->Receive(10000);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->message.body(), "b");
  ASSERT_TRUE(upstream->Ack(d->delivery_id).ok());
  ASSERT_TRUE(upstream->Flush().ok());
  EXPECT_TRUE(gateway_->WaitIdle(10000).ok());
  EXPECT_EQ(upstream->Receive(100).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(GatewayTest, MessagesForADisconnectedModuleWaitAndDrainOnReconnect) {
  Start();
  auto sensor = Connect("sensor");
  ASSERT_NE(sensor, nullptr);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(sensor
                    ->SendTelemetry("temperature",
                                    AsBytes(Message(absl::StrCat(i))), true)
                    .ok());
  }
  ASSERT_TRUE(sensor->WaitForAcks(20).ok());
  auto filter = Connect("filter");
  ASSERT_NE(filter, nullptr);
  ASSERT_TRUE(filter->Subscribe({"input1"}).ok());
  for (int i = 0; i < 20; ++i) {
    auto d = filter->Receive(10000);
    ASSERT_TRUE(d.ok()) << i << ": " << d.status();
    EXPECT_EQ(d->message.body(), absl::StrCat(i));
    ASSERT_TRUE(filter->Ack(d->delivery_id).ok());
  }
  ASSERT_TRUE(filter->Flush().ok());
  EXPECT_TRUE(gateway_->WaitIdle(10000).ok());
}

TEST_F(GatewayTest, StoredMessagesSurviveARestart) {
  GatewayOptions options;
  options.store_dir = TempPath("store-restart");
  Start(options);
  {
    auto sensor = Connect("sensor");
    ASSERT_NE(sensor, nullptr);
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(sensor
                      ->SendTelemetry("temperature",
                                      AsBytes(Message(absl::StrCat("s", i))),
                                      true)
                      .ok());
    }
    ASSERT_TRUE(sensor->WaitForAcks(5).ok());
  }
  ASSERT_TRUE(gateway_->Shutdown().ok());
  gateway_.reset();

  Start(options);
  auto filter = Connect("filter");
  ASSERT_NE(filter, nullptr);
  ASSERT_TRUE(filter->Subscribe({"input1"}).ok());
  for (int i = 0; i < 5; ++i) {
    auto d = filter->Receive(10000);
    ASSERT_TRUE(d.ok()) << i << ": " << d.status();
    EXPECT_EQ(d->message.body(), absl::StrCat("s", i));
    ASSERT_TRUE(filter->Ack(d->delivery_id).ok());
  }
  ASSERT_TRUE(filter->Flush().ok());
}

// GET path from the metrics port; returns the whole response.
std::string HttpGet(int port, absl::string_view path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n\r\n");
  (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
  close(fd);
  return response;
}

TEST_F(GatewayTest, ServesPrometheusMetrics) {
  Start();
  auto sensor = Connect("sensor");
  ASSERT_NE(sensor, nullptr);
  ASSERT_TRUE(
      sensor->SendTelemetry("temperature", AsBytes(Message("x")), true).ok());
  ASSERT_TRUE(sensor->WaitForAcks(1).ok());
  const std::string response = HttpGet(gateway_->metrics_port(), "/metrics");
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK", 0), 0u) << response;
  EXPECT_NE(response.find("edgeroute_gateway_telemetry_received_total 1"),
            std::string::npos)
      << response;
  EXPECT_NE(response.find("edgeroute_gateway_connections_open 1"),
            std::string::npos);
  EXPECT_NE(HttpGet(gateway_->metrics_port(), "/other").find("404"),
            std::string::npos);
}

// A subscription to an input no route names creates no router endpoint
// (each would keep an executor thread for the life of the process, so a
// client reconnecting with new input names could add threads without end);
// it takes effect when a reload names the input.
TEST_F(GatewayTest, SubscriptionsToUnroutedInputsCreateNoEndpoints) {
  const std::string path = TempPath("manifest-unrouted.json");
  std::ofstream(path, std::ios::trunc) << kManifest;
  GatewayOptions options;
  options.manifest_path = path;
  options.manifest_watch = ManifestWatch::kOff;
  Start(options);
  const size_t routed = gateway_->RouterMetricsSnapshot().endpoints.size();
  auto subscribe = [](Client* c, absl::string_view prefix, int n,
                      std::vector<std::string> extra) {
    std::vector<std::string> names = std::move(extra);
    for (int i = 0; i < n; ++i) names.push_back(absl::StrCat(prefix, i));
    std::vector<absl::string_view> views(names.begin(), names.end());
    ASSERT_TRUE(c->Subscribe(absl::MakeConstSpan(views)).ok());
    // Frames are handled in order: once this is acknowledged, the
    // subscriptions are in place.
    ASSERT_TRUE(c->SendTelemetry("sync", AsBytes(Message("s")), true).ok());
    ASSERT_TRUE(c->WaitForAcks(c->acks_received() + 1).ok());
  };
  auto filter = Connect("filter");
  ASSERT_TRUE(filter);
  subscribe(filter.get(), "x", 40, {"input1", "later"});
  EXPECT_EQ(gateway_->RouterMetricsSnapshot().endpoints.size(), routed);

  // A reload that names filter/later attaches the waiting subscription.
  std::string manifest = kManifest;
  const std::string route = R"("toFilter": )";
  manifest.insert(
      manifest.find(route),
      R"json("later": "FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint(\"/modules/filter/inputs/later\")",
    )json");
  std::ofstream(path, std::ios::trunc) << manifest;
  absl::Status reloaded = gateway_->Reload();
  ASSERT_TRUE(reloaded.ok()) << reloaded;
  auto sensor = Connect("sensor");
  ASSERT_TRUE(sensor);
  ASSERT_TRUE(
      sensor->SendTelemetry("temperature", AsBytes(Message("t")), true).ok());
  ASSERT_TRUE(sensor->WaitForAcks(1).ok());
  std::vector<std::string> inputs;
  for (int i = 0; i < 2; ++i) {
    auto d = filter->Receive(10000);
    ASSERT_TRUE(d.ok()) << d.status();
    inputs.emplace_back(d->input);
    ASSERT_TRUE(filter->Ack(d->delivery_id).ok());
  }
  std::sort(inputs.begin(), inputs.end());
  EXPECT_EQ(inputs, (std::vector<std::string>{"input1", "later"}));

  // Reconnecting with other names adds nothing either.
  filter.reset();
  for (int round = 0; round < 3; ++round) {
    auto again = Connect("filter");
    ASSERT_TRUE(again);
    subscribe(again.get(), absl::StrCat("y", round, "_"), 60, {});
  }
  EXPECT_EQ(gateway_->RouterMetricsSnapshot().endpoints.size(), routed + 1);
}

TEST_F(GatewayTest, ReloadSwapsRoutesAndKeepsThemOnError) {
  const std::string path = TempPath("manifest-reload.json");
  std::ofstream(path) << kManifest;
  GatewayOptions options;
  options.manifest_path = path;
  // Only explicit reloads here; file watching is ManifestWatchTest's.
  options.manifest_watch = ManifestWatch::kOff;
  Start(options);
  auto upstream = Connect("", "cloud-forwarder");
  auto sensor = Connect("sensor");
  ASSERT_TRUE(upstream && sensor);
  ASSERT_TRUE(upstream->Subscribe({kUpstreamInput}).ok());

  std::ofstream(path, std::ios::trunc) << "{ not json";
  EXPECT_FALSE(gateway_->Reload().ok());
  // Old routes: only critical alerts go upstream.
  ASSERT_TRUE(
      sensor->SendTelemetry("alerts", AsBytes(Message("old", "info")), true)
          .ok());
  ASSERT_TRUE(sensor->WaitForAcks(1).ok());

  std::ofstream(path, std::ios::trunc) << kManifestOnlyAlerts;
  absl::Status reloaded = gateway_->Reload();
  ASSERT_TRUE(reloaded.ok()) << reloaded;
  ASSERT_TRUE(
      sensor->SendTelemetry("alerts", AsBytes(Message("new", "info")), true)
          .ok());
  ASSERT_TRUE(sensor->WaitForAcks(2).ok());
  auto d = upstream->Receive(10000);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->message.body(), "new");
  ASSERT_TRUE(upstream->Ack(d->delivery_id).ok());
  ASSERT_TRUE(upstream->Flush().ok());
}

// Polls `done` every 10 ms for up to 30 s (generous: the watcher needs
// kManifestDebounce, or kManifestPollInterval when polling).
template <typename Predicate>
bool Eventually(Predicate done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// Replaces `path` the way editors and configuration tools do: a new file
// renamed over the old one.
void WriteByRename(const std::string& path, absl::string_view text) {
  const std::string tmp = path + ".new";
  std::ofstream(tmp, std::ios::trunc) << text;
  ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0);
}

class ManifestWatchTest : public GatewayTest,
                          public ::testing::WithParamInterface<ManifestWatch> {
};

TEST_P(ManifestWatchTest, FileChangesReloadRoutesAndBadFilesAreRefused) {
  const std::string dir = TempPath(
      GetParam() == ManifestWatch::kPoll ? "watch-poll" : "watch-auto");
  ASSERT_EQ(
      std::system(
          absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'").c_str()),
      0);
  const std::string path = dir + "/manifest.json";
  ASSERT_NO_FATAL_FAILURE(WriteByRename(path, kManifestOnlyAlerts));
  GatewayOptions options;
  options.manifest_path = path;
  options.manifest_watch = GetParam();
  Start(options);
  auto upstream = Connect("", "cloud-forwarder");
  auto sensor = Connect("sensor");
  ASSERT_TRUE(upstream && sensor);
  ASSERT_TRUE(upstream->Subscribe({kUpstreamInput}).ok());
  uint64_t acks = 0;
  // Sends an info and a critical alert; under kManifest only the critical
  // one may reach upstream (first), and the info one is orphaned.
  auto expect_kmanifest_routes = [&](absl::string_view tag) {
    const uint64_t orphaned = gateway_->RouterMetricsSnapshot().orphaned;
    ASSERT_TRUE(sensor
                    ->SendTelemetry(
                        "alerts",
                        AsBytes(Message(absl::StrCat(tag, "-info"), "info")),
                        true)
                    .ok());
    ASSERT_TRUE(
        sensor
            ->SendTelemetry(
                "alerts",
                AsBytes(Message(absl::StrCat(tag, "-critical"), "critical")),
                true)
            .ok());
    acks += 2;
    ASSERT_TRUE(sensor->WaitForAcks(acks).ok());
    auto d = upstream->Receive(30000);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->message.body(), absl::StrCat(tag, "-critical"));
    ASSERT_TRUE(upstream->Ack(d->delivery_id).ok());
    ASSERT_TRUE(upstream->Flush().ok());
    ASSERT_TRUE(gateway_->WaitIdle(30000).ok());
    EXPECT_EQ(gateway_->RouterMetricsSnapshot().orphaned, orphaned + 1);
  };

  // kManifestOnlyAlerts sends every alert upstream; kManifest only critical
  // ones.
  ASSERT_NO_FATAL_FAILURE(WriteByRename(path, kManifest));
  ASSERT_TRUE(Eventually([&] {
    return gateway_->reload_counts().applied == 1;
  })) << "the new manifest was not applied";
  EXPECT_EQ(gateway_->reload_counts().refused, 0u);
  ASSERT_NO_FATAL_FAILURE(expect_kmanifest_routes("new"));

  // A broken manifest, written in place this time: refused, old routes kept.
  std::ofstream(path, std::ios::trunc) << "{\"routes\": {\"r\": \"FROM\"}}";
  ASSERT_TRUE(Eventually([&] {
    return gateway_->reload_counts().refused == 1;
  })) << "the broken manifest was not noticed";
  EXPECT_EQ(gateway_->reload_counts().applied, 1u);
  ASSERT_NO_FATAL_FAILURE(expect_kmanifest_routes("kept"));
  const std::string metrics = gateway_->PrometheusText();
  EXPECT_NE(
      metrics.find(
          "edgeroute_gateway_manifest_reloads_total{result=\"applied\"} 1\n"),
      std::string::npos)
      << metrics;
  EXPECT_NE(
      metrics.find(
          "edgeroute_gateway_manifest_reloads_total{result=\"refused\"} 1\n"),
      std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Watchers, ManifestWatchTest,
    ::testing::Values(ManifestWatch::kAuto, ManifestWatch::kPoll),
    [](const ::testing::TestParamInfo<ManifestWatch>& info) {
      return std::string(info.param == ManifestWatch::kPoll ? "Poll"
                                                            : "Inotify");
    });

// The MQTT head composed with the router: an MQTT sensor's output reaches
// an MQTT filter's input through the manifest's route.
constexpr char kMqttManifest[] = R"json({
  "modulesContent": {
    "$edgeAgent": {"properties.desired": {}},
    "$edgeHub": {"properties.desired": {
      "schemaVersion": "1.1",
      "routes": {
        "toFilter": "FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint(\"/modules/filter/inputs/input1\")",
        "hot": "FROM /messages/modules/sensor/outputs/temperature WHERE level = 'high temp' INTO BrokeredEndpoint(\"/modules/filter/inputs/alerts\")"
      },
      "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}},
    "filter": {"properties.desired": {"threshold": 30}}
  }
})json";

void WriteFile(const std::string& path, absl::string_view text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

class GatewayMqttTest : public GatewayTest {
 protected:
  void StartMqtt(GatewayOptions options = {}) {
    options.mqtt_listeners.push_back(mqtt::MqttListener{"127.0.0.1", 0});
    if (options.manifest_path.empty()) options.manifest_json = kMqttManifest;
    Start(options);
    ASSERT_EQ(gateway_->mqtt_ports().size(), 1u);
    mqtt_port_ = gateway_->mqtt_ports()[0];
  }
  std::unique_ptr<mqtt::TestClient> MqttClient() {
    auto c = mqtt::TestClient::Open(mqtt_port_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  int mqtt_port_ = 0;
};

TEST_F(GatewayMqttTest, TelemetryIsRoutedToAModuleInput) {
  StartMqtt();
  auto filter = MqttClient();
  ASSERT_EQ(*filter->Connect("edge-1/filter", /*clean=*/false),
            mqtt::ConnectCode::kAccepted);
  ASSERT_EQ(*filter->Subscribe("devices/edge-1/modules/filter/inputs/#", 1), 1);
  auto sensor = MqttClient();
  ASSERT_EQ(*sensor->Connect("edge-1/sensor"), mqtt::ConnectCode::kAccepted);
  ASSERT_TRUE(sensor
                  ->Publish("devices/edge-1/modules/sensor/messages/events/"
                            "%24.on=temperature&%24.mid=m1&level=high%20temp/",
                            R"({"t":104})", 1, 5)
                  .ok());
  // Both routes match: input1 and alerts, one PUBLISH each.
  std::vector<std::string> topics;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<mqtt::Packet> p = filter->Read();
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_EQ(p->type, mqtt::PacketType::kPublish);
    EXPECT_EQ(p->publish.payload, R"({"t":104})");
    topics.emplace_back(p->publish.topic);
    ASSERT_TRUE(filter->Puback(p->packet_id).ok());
  }
  std::sort(topics.begin(), topics.end());
  EXPECT_EQ(topics[0],
            "devices/edge-1/modules/filter/inputs/alerts/"
            "%24.mid=m1&%24.cdid=edge-1&%24.cmid=sensor&level=high%20temp");
  EXPECT_EQ(topics[1],
            "devices/edge-1/modules/filter/inputs/input1/"
            "%24.mid=m1&%24.cdid=edge-1&%24.cmid=sensor&level=high%20temp");
  ASSERT_TRUE(gateway_->WaitIdle(10000).ok());
  const RouterMetrics m = gateway_->RouterMetricsSnapshot();
  uint64_t delivered = 0;
  for (const EndpointMetrics& e : m.endpoints) delivered += e.delivered;
  EXPECT_EQ(delivered, 2u);
  EXPECT_TRUE(absl::StrContains(gateway_->PrometheusText(),
                                "edgeroute_mqtt_deliveries_acked_total 2"));
}

TEST_F(GatewayMqttTest, WithAStoreMessagesAreAcknowledgedOnceStored) {
  GatewayOptions options;
  options.store_dir = TempPath("mqtt-store");
  StartMqtt(options);
  auto sensor = MqttClient();
  ASSERT_EQ(*sensor->Connect("edge-1/sensor"), mqtt::ConnectCode::kAccepted);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(sensor
                    ->Publish("devices/edge-1/modules/sensor/messages/events/"
                              "%24.on=temperature",
                              absl::StrCat(i), 1, static_cast<uint16_t>(i + 1))
                    .ok());
  }
  // Acknowledged means stored: they wait there for the filter.
  absl::StatusOr<store::Store::Stats> stats = gateway_->StoreStats();
  ASSERT_TRUE(stats.ok());
  uint64_t depth = 0;
  for (const auto& q : stats->queues) depth += q.depth;
  EXPECT_EQ(depth, 20u);
  auto filter = MqttClient();
  ASSERT_EQ(*filter->Connect("edge-1/filter"), mqtt::ConnectCode::kAccepted);
  ASSERT_EQ(
      *filter->Subscribe("devices/edge-1/modules/filter/inputs/input1/#", 1),
      1);
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<mqtt::Packet> p = filter->Read();
    ASSERT_TRUE(p.ok()) << i << ": " << p.status();
    EXPECT_EQ(p->publish.payload, absl::StrCat(i));
    ASSERT_TRUE(filter->Puback(p->packet_id).ok());
  }
}

TEST_F(GatewayMqttTest, NativeAndMqttModulesShareTheRoutes) {
  StartMqtt();
  // The filter on the native protocol, the sensor over MQTT.
  auto filter = Connect("filter");
  ASSERT_TRUE(filter != nullptr);
  ASSERT_TRUE(filter->Subscribe({"input1"}).ok());
  auto sensor = MqttClient();
  ASSERT_EQ(*sensor->Connect("edge-1/sensor"), mqtt::ConnectCode::kAccepted);
  ASSERT_TRUE(sensor
                  ->Publish("devices/edge-1/modules/sensor/messages/events/"
                            "%24.on=temperature",
                            "42", 1)
                  .ok());
  auto d = filter->Receive(10000);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->message.body(), "42");
  EXPECT_EQ(d->message.FindSystemProperty("connectionModuleId").value,
            "sensor");
  ASSERT_TRUE(filter->Ack(d->delivery_id).ok());
}

TEST_F(GatewayMqttTest, MessagesWaitForAnMqttModuleAndDrainWhenItSubscribes) {
  StartMqtt();
  auto sensor = MqttClient();
  ASSERT_EQ(*sensor->Connect("edge-1/sensor"), mqtt::ConnectCode::kAccepted);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(sensor
                    ->Publish("devices/edge-1/modules/sensor/messages/events/"
                              "%24.on=temperature",
                              absl::StrCat(i), 1, static_cast<uint16_t>(i + 1))
                    .ok());
  }
  auto filter = MqttClient();
  ASSERT_EQ(*filter->Connect("edge-1/filter"), mqtt::ConnectCode::kAccepted);
  ASSERT_EQ(
      *filter->Subscribe("devices/edge-1/modules/filter/inputs/input1/#", 1),
      1);
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<mqtt::Packet> p = filter->Read();
    ASSERT_TRUE(p.ok()) << i << ": " << p.status();
    EXPECT_EQ(p->publish.payload, absl::StrCat(i));
    ASSERT_TRUE(filter->Puback(p->packet_id).ok());
  }
}

TEST_F(GatewayMqttTest, TwinsAndDesiredPatchesOnReload) {
  const std::string manifest = TempPath("mqtt-twin-manifest.json");
  WriteFile(manifest, kMqttManifest);
  GatewayOptions options;
  options.manifest_path = manifest;
  options.manifest_watch = ManifestWatch::kOff;
  StartMqtt(options);
  auto filter = MqttClient();
  ASSERT_EQ(*filter->Connect("edge-1/filter"), mqtt::ConnectCode::kAccepted);
  ASSERT_EQ(*filter->Subscribe("$iothub/twin/res/#", 0), 0);
  ASSERT_EQ(*filter->Subscribe("$iothub/twin/PATCH/properties/desired/#", 0, 2),
            0);
  ASSERT_TRUE(filter->Publish("$iothub/twin/GET/?$rid=1", " ", 0).ok());
  absl::StatusOr<mqtt::Packet> p = filter->Read();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->publish.topic, "$iothub/twin/res/200/?$rid=1");
  EXPECT_TRUE(absl::StrContains(p->publish.payload, R"("threshold":30)"))
      << p->publish.payload;
  std::string changed = kMqttManifest;
  changed.replace(changed.find(R"("threshold": 30)"), 15, R"("threshold": 31)");
  WriteFile(manifest, changed);
  ASSERT_TRUE(gateway_->Reload().ok());
  p = filter->Read();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->publish.topic,
            "$iothub/twin/PATCH/properties/desired/?$version=2");
  EXPECT_TRUE(absl::StrContains(p->publish.payload, R"("threshold":31)"))
      << p->publish.payload;
}

TEST_F(GatewayMqttTest, IdentitiesAreCheckedAndReloaded) {
  const std::string key1 = auth::Base64Encode(std::string(32, '1'));
  const std::string key2 = auth::Base64Encode(std::string(32, '2'));
  auto identities_json = [](const std::string& key) {
    return absl::StrCat(
        R"({"hub": "h.example", "identities": [)",
        R"({"deviceId": "edge-1", "moduleId": "sensor", "primaryKey": ")", key,
        R"("}]})");
  };
  const std::string path = TempPath("mqtt-identities.json");
  WriteFile(path, identities_json(key1));
  GatewayOptions options;
  options.identities_path = path;
  StartMqtt(options);
  const std::string username = "h.example/edge-1/sensor/?api-version=1";
  auto token = [](const std::string& key) {
    return auth::MakeSasToken(
        auth::SasResourceUri("h.example", Identity{"edge-1", "sensor"}), key,
        absl::Now() + absl::Hours(1));
  };
  const std::string token1 = token(key1), token2 = token(key2);
  EXPECT_EQ(
      *MqttClient()->Connect("edge-1/sensor", true, 60, &username, &token1),
      mqtt::ConnectCode::kAccepted);
  EXPECT_EQ(
      *MqttClient()->Connect("edge-1/sensor", true, 60, &username, &token2),
      mqtt::ConnectCode::kNotAuthorized);
  const std::string other = "h.example/edge-1/filter/?api-version=1";
  EXPECT_EQ(*MqttClient()->Connect("edge-1/sensor", true, 60, &other, &token1),
            mqtt::ConnectCode::kBadUserNameOrPassword);
  // A bad file is refused with its position; the old identities stay.
  WriteFile(path, "{\n  \"hub\": \"h.example\",\n  \"identities\": [\n");
  absl::Status reload = gateway_->Reload();
  ASSERT_FALSE(reload.ok());
  EXPECT_TRUE(absl::StrContains(reload.message(), path + ":"))
      << reload.message();
  EXPECT_EQ(
      *MqttClient()->Connect("edge-1/sensor", true, 60, &username, &token1),
      mqtt::ConnectCode::kAccepted);
  // A good one takes effect.
  WriteFile(path, identities_json(key2));
  ASSERT_TRUE(gateway_->Reload().ok());
  EXPECT_EQ(
      *MqttClient()->Connect("edge-1/sensor", true, 60, &username, &token2),
      mqtt::ConnectCode::kAccepted);
  EXPECT_EQ(
      *MqttClient()->Connect("edge-1/sensor", true, 60, &username, &token1),
      mqtt::ConnectCode::kNotAuthorized);
}

TEST_F(GatewayMqttTest, BadIdentitiesFileStopsTheStart) {
  const std::string path = TempPath("mqtt-bad-identities.json");
  WriteFile(path,
            "{\"hub\": \"h.example\", \"identities\": [{\"deviceId\": 7}]}");
  GatewayOptions options;
  options.manifest_json = kMqttManifest;
  options.mqtt_listeners.push_back(mqtt::MqttListener{"127.0.0.1", 0});
  options.identities_path = path;
  options.tcp_port = 0;
  auto gateway = Gateway::Create(options);
  ASSERT_FALSE(gateway.ok());
  EXPECT_TRUE(absl::StrContains(gateway.status().message(), ":1:"))
      << gateway.status();
}

TEST_F(GatewayMqttTest, NonLoopbackMqttNeedsIdentities) {
  GatewayOptions options;
  options.manifest_json = kMqttManifest;
  options.mqtt_listeners.push_back(mqtt::MqttListener{"0.0.0.0", 0});
  options.tcp_port = 0;
  auto gateway = Gateway::Create(options);
  ASSERT_FALSE(gateway.ok());
  EXPECT_TRUE(absl::StrContains(gateway.status().message(), "identities"));
}

// GatewayOptions::connect_timeout reaches both heads: a native socket that
// sends only a length prefix and an MQTT socket that sends half a CONNECT
// are closed at the deadline (both heads' defaults are 10 s). A deadline
// that is not positive is refused.
TEST_F(GatewayMqttTest, ConnectTimeoutClosesSilentSocketsOnBothHeads) {
  GatewayOptions options;
  options.connect_timeout = absl::Milliseconds(500);
  StartMqtt(options);
  auto native = TestSocket::ConnectTcp(gateway_->tcp_port());
  ASSERT_TRUE(native.ok()) << native.status();
  ASSERT_TRUE(native->Write(std::string("\x40\x00\x00\x00", 4)).ok());
  auto mqtt = TestSocket::ConnectTcp(mqtt_port_);
  ASSERT_TRUE(mqtt.ok()) << mqtt.status();
  ASSERT_TRUE(mqtt->Write(std::string("\x10\x20\x00\x04MQ", 6)).ok());
  const absl::Time start = absl::Now();
  EXPECT_TRUE(native->ReadsEof());
  EXPECT_TRUE(mqtt->ReadsEof());
  // Well before the 10 s default (the MQTT head checks once a second).
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  GatewayOptions zero;
  zero.manifest_json = kManifest;
  zero.tcp_port = 0;
  zero.connect_timeout = absl::ZeroDuration();
  auto refused = Gateway::Create(zero);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "connect_timeout"))
      << refused.status();
}

// Real clients no one here wrote: mosquitto_sub as the filter module,
// mosquitto_pub as the sensor, through the gateway's routes.
TEST_F(GatewayMqttTest, MosquittoClientsThroughTheRoutes) {
  if (access("/usr/bin/mosquitto_sub", X_OK) != 0 ||
      access("/usr/bin/mosquitto_pub", X_OK) != 0) {
    GTEST_SKIP() << "mosquitto-clients is not installed";
  }
  StartMqtt();
  const std::string sub = absl::StrCat(
      "timeout 20 /usr/bin/mosquitto_sub -h 127.0.0.1 -p ", mqtt_port_,
      " -V mqttv311 -i edge-1/filter"
      " -u 'hub/edge-1/filter/?api-version=2021-04-12'"
      " -t 'devices/edge-1/modules/filter/inputs/input1/#' -q 1 -C 1 -v");
  FILE* subscriber = popen(sub.c_str(), "r");
  ASSERT_NE(subscriber, nullptr);
  // Wait until the subscription gave the endpoint its sink.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  bool has_sink = false;
  while (!has_sink && absl::Now() < deadline) {
    for (const EndpointMetrics& e :
         gateway_->RouterMetricsSnapshot().endpoints) {
      has_sink |= e.endpoint_id == "edge-1/filter/input1" && e.has_sink;
    }
    if (!has_sink) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(has_sink);
  const std::string pub = absl::StrCat(
      "timeout 20 /usr/bin/mosquitto_pub -h 127.0.0.1 -p ", mqtt_port_,
      " -V mqttv311 -i edge-1/sensor"
      " -u 'hub/edge-1/sensor/?api-version=2021-04-12'"
      " -t 'devices/edge-1/modules/sensor/messages/events/"
      "%24.on=temperature&%24.ct=application%2Fjson&level=high%20temp'"
      " -q 1 -m '{\"temp\":104}'");
  ASSERT_EQ(system(pub.c_str()), 0);
  std::string out;
  char line[4096];
  while (fgets(line, sizeof(line), subscriber) != nullptr) out += line;
  EXPECT_EQ(pclose(subscriber), 0);
  EXPECT_EQ(out,
            "devices/edge-1/modules/filter/inputs/input1/"
            "%24.ct=application%2Fjson&%24.cdid=edge-1&%24.cmid=sensor&"
            "level=high%20temp {\"temp\":104}\n");
}

// TLS with SAS tokens: mosquitto clients verify the gateway's certificate
// (made here with the openssl command line) and sign in with tokens.
TEST_F(GatewayMqttTest, TlsAndSasTokensWithMosquittoClients) {
  if (access("/usr/bin/mosquitto_sub", X_OK) != 0 ||
      access("/usr/bin/openssl", X_OK) != 0) {
    GTEST_SKIP() << "mosquitto-clients or openssl is not installed";
  }
  const std::string dir = TempPath("mqtt-tls");
  ASSERT_EQ(system(absl::StrCat("mkdir -p ", dir).c_str()), 0);
  const std::string make_certs = absl::StrCat(
      "cd ", dir,
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key"
      " -out ca.pem -days 1 -subj /CN=test-ca 2>/dev/null"
      " && openssl req -newkey rsa:2048 -nodes -keyout server.key"
      " -out server.csr -subj /CN=localhost 2>/dev/null"
      " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > ext.cnf"
      " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key"
      " -CAcreateserial -out server.pem -days 1 -extfile ext.cnf"
      " 2>/dev/null");
  ASSERT_EQ(system(make_certs.c_str()), 0);
  const std::string key = auth::Base64Encode(std::string(32, 'k'));
  const std::string identities = absl::StrCat(dir, "/identities.json");
  WriteFile(identities,
            absl::StrCat(R"({"hub": "h.example", "identities": [)",
                         R"({"deviceId": "edge-1", "moduleId": "sensor", )",
                         R"("primaryKey": ")", key, R"("},)",
                         R"({"deviceId": "edge-1", "moduleId": "filter", )",
                         R"("primaryKey": ")", key, R"("}]})"));
  GatewayOptions options;
  options.tls_cert_path = dir + "/server.pem";
  options.tls_key_path = dir + "/server.key";
  options.identities_path = identities;
  StartMqtt(options);
  auto token = [&key](absl::string_view module) {
    return auth::MakeSasToken(
        auth::SasResourceUri("h.example",
                             Identity{"edge-1", std::string(module)}),
        key, absl::Now() + absl::Hours(1));
  };
  auto client = [&](absl::string_view tool, absl::string_view module,
                    const std::string& password) {
    return absl::StrCat("timeout 20 /usr/bin/", tool, " -h 127.0.0.1 -p ",
                        mqtt_port_, " --cafile ", dir,
                        "/ca.pem -V mqttv311 -i edge-1/", module,
                        " -u 'h.example/edge-1/", module,
                        "/?api-version=2021-04-12' -P '", password, "' -q 1");
  };
  FILE* subscriber =
      popen(absl::StrCat(client("mosquitto_sub", "filter", token("filter")),
                         " -t 'devices/edge-1/modules/filter/inputs/#' -C 1 -v")
                .c_str(),
            "r");
  ASSERT_NE(subscriber, nullptr);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  bool has_sink = false;
  while (!has_sink && absl::Now() < deadline) {
    for (const EndpointMetrics& e :
         gateway_->RouterMetricsSnapshot().endpoints) {
      has_sink |= e.endpoint_id == "edge-1/filter/input1" && e.has_sink;
    }
    if (!has_sink) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(has_sink);
  // A wrong token is refused (mosquitto_pub exits non-zero).
  EXPECT_NE(
      system(absl::StrCat(client("mosquitto_pub", "sensor", token("filter")),
                          " -t 'devices/edge-1/modules/sensor/messages/events/'"
                          " -m x 2>/dev/null")
                 .c_str()),
      0);
  ASSERT_EQ(
      system(absl::StrCat(client("mosquitto_pub", "sensor", token("sensor")),
                          " -t 'devices/edge-1/modules/sensor/messages/events/"
                          "%24.on=temperature' -m secure")
                 .c_str()),
      0);
  std::string out;
  char line[4096];
  while (fgets(line, sizeof(line), subscriber) != nullptr) out += line;
  EXPECT_EQ(pclose(subscriber), 0);
  EXPECT_EQ(out,
            "devices/edge-1/modules/filter/inputs/input1/"
            "%24.cdid=edge-1&%24.cmid=sensor secure\n");
  EXPECT_TRUE(absl::StrContains(
      gateway_->PrometheusText(),
      "edgeroute_mqtt_connects_total{result=\"not_authorized\"} 1"));
}

TEST(RunGatewayTest, SighupReloadsAndSigtermStops) {
  // Signals stay pending for RunGateway's sigwait, whichever thread they hit.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &signals, nullptr), 0);

  const std::string path = TempPath("manifest-signals.json");
  std::ofstream(path) << kManifestOnlyAlerts;
  GatewayOptions options;
  options.manifest_path = path;
  options.tcp_port = 0;
  std::promise<int> ready;
  options.on_ready = [&ready](int tcp_port, int) { ready.set_value(tcp_port); };
  std::promise<absl::Status> done;
  std::future<absl::Status> result = done.get_future();
  std::thread runner(
      [&options, &done] { done.set_value(RunGateway(options)); });
  std::future<int> port = ready.get_future();
  // Either the gateway comes up, or RunGateway returns an error.
  while (port.wait_for(std::chrono::milliseconds(100)) !=
         std::future_status::ready) {
    if (result.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      runner.join();
      FAIL() << result.get();
    }
  }
  auto client = Client::Connect(absl::StrCat("127.0.0.1:", port.get()));
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->Hello("edge-gateway", "sensor").ok());
  ASSERT_TRUE(
      (*client)->SendTelemetry("alerts", AsBytes(Message("x")), true).ok());
  ASSERT_TRUE((*client)->WaitForAcks(1).ok());

  // Directed at the gateway's thread: library threads from earlier tests
  // (RocksDB's pool) do not block these signals.
  ASSERT_EQ(pthread_kill(runner.native_handle(), SIGHUP), 0);
  ASSERT_EQ(pthread_kill(runner.native_handle(), SIGTERM), 0);
  ASSERT_EQ(result.wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  runner.join();
  EXPECT_TRUE(result.get().ok());
  // The gateway closed the connection on shutdown.
  auto after = (*client)->Receive(10000);
  EXPECT_EQ(after.status().code(), absl::StatusCode::kUnavailable)
      << after.status();
}

}  // namespace
}  // namespace gateway
}  // namespace edgeroute
