#include "gateway/gateway.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/client.h"
#include "gateway/test_socket.h"
#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
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
