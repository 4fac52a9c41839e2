// End to end over loopback TCP: a producer connection sends 256-byte
// messages, the gateway routes them ("FROM /messages/modules/* INTO
// $upstream") and delivers them to a consumer connection subscribed to
// "$upstream", which acknowledges each one. Reported: messages/s
// (items_per_second) and the p50/p99 latency from the producer's send call
// to the consumer's receive (counters p50_us, p99_us). Each gateway run is
// made without and with store-and-forward (store:0 / store:1, RocksDB in a
// temporary directory at the default `process` durability).
//
// Baseline, same run, same machine: Debian's mosquitto broker on a loopback
// port with libmosquitto clients (publisher -> broker -> subscriber) at MQTT
// QoS 0 and QoS 1. Our "qos:1" means the producer asks for TelemetryAcks
// (admission into the router) with at most kWindow unacknowledged, like an
// MQTT QoS 1 publisher with kWindow messages in flight; deliveries to the
// consumer are always acknowledged (the gateway's delivery is at least
// once in both modes).
//
//   bazel run -c opt //bench:e2e_bench
// The mosquitto binary is looked up in $MOSQUITTO, then PATH, then Debian's
// sbin directories; without it the mosquitto benchmarks are skipped.

#include <arpa/inet.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "gateway/client.h"
#include "gateway/gateway.h"
#include "message/message.h"

extern char** environ;

namespace {

using edgeroute::gateway::Client;
using edgeroute::gateway::Gateway;
using edgeroute::gateway::GatewayOptions;

constexpr int kBatch = 20000;     // messages per benchmark iteration
constexpr int kBodyBytes = 256;   // message body size
constexpr int kWindow = 100;      // unacknowledged publishes (QoS 1)
constexpr int kPingBatch = 2000;  // messages per ping-pong iteration
constexpr char kDevice[] = "bench-edge";

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Latency samples of one benchmark run, summarised into counters.
class Latencies {
 public:
  void Reserve(size_t n) { samples_.reserve(n); }
  void Add(int64_t nanos) { samples_.push_back(nanos); }
  void Report(benchmark::State& state) {
    if (samples_.empty()) return;
    std::sort(samples_.begin(), samples_.end());
    auto at = [&](double q) {
      return samples_[std::min(samples_.size() - 1,
                               static_cast<size_t>(q * samples_.size()))] /
             1000.0;
    };
    state.counters["p50_us"] = at(0.50);
    state.counters["p99_us"] = at(0.99);
  }

 private:
  std::vector<int64_t> samples_;
};

void StampBody(std::string* body) {
  const int64_t now = NowNanos();
  std::memcpy(&(*body)[0], &now, sizeof(now));
}

int64_t LatencyOf(const void* body) {
  int64_t sent;
  std::memcpy(&sent, body, sizeof(sent));
  return NowNanos() - sent;
}

// ---------------------------------------------------------------------------
// edgeroute gateway

// A gateway on a free loopback port routing every module message to
// $upstream, a consumer subscribed to $upstream and a producer module.
struct GatewayRig {
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<Client> consumer;
  std::unique_ptr<Client> producer;

  std::string store_dir;  // removed by the destructor

  // Returns nullptr when everything is connected, else what failed. With
  // `with_store`, the gateway keeps its queues in a RocksDB store in a fresh
  // temporary directory (the store's default durability, `process`).
  const char* Start(bool with_store = false) {
    GatewayOptions options;
    options.device_id = kDevice;
    options.tcp_port = 0;
    if (with_store) {
      std::error_code ec;
      std::string dir = (std::filesystem::temp_directory_path(ec) /
                         "edgeroute-e2e-bench-XXXXXX")
                            .string();
      if (ec || mkdtemp(dir.data()) == nullptr) {
        return "cannot create a store directory";
      }
      store_dir = dir;
      options.store_dir = store_dir;
    }
    options.manifest_json = R"({
      "schemaVersion": "1.1",
      "routes": {"all": "FROM /messages/modules/* INTO $upstream"},
      "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}})";
    auto created = Gateway::Create(options);
    if (!created.ok() || !(*created)->Start().ok()) {
      return "gateway did not start";
    }
    gateway = std::move(*created);
    const std::string address =
        absl::StrCat("tcp:127.0.0.1:", gateway->tcp_port());
    auto c = Client::Connect(address);
    auto p = Client::Connect(address);
    if (!c.ok() || !p.ok()) return "clients could not connect";
    consumer = std::move(*c);
    producer = std::move(*p);
    if (!consumer->Hello("bench-cloud", "").ok() ||
        !consumer->Subscribe({edgeroute::gateway::kUpstreamInput}).ok() ||
        !producer->Hello(kDevice, "producer").ok()) {
      return "clients could not connect";
    }
    return nullptr;
  }

  // Clients first, then the gateway, then its store.
  ~GatewayRig() {
    consumer.reset();
    producer.reset();
    if (gateway != nullptr) gateway->Shutdown().IgnoreError();
    gateway.reset();
    if (!store_dir.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(store_dir, ignored);
    }
  }
};

void BM_Gateway(benchmark::State& state) {
  const bool qos1 = state.range(0) == 1;
  GatewayRig rig;
  if (const char* error = rig.Start(/*with_store=*/state.range(1) == 1)) {
    state.SkipWithError(error);
    return;
  }
  Latencies latencies;
  latencies.Reserve(static_cast<size_t>(kBatch) * 8);
  uint64_t acked = 0;
  std::atomic<bool> failed{false};
  for (auto _ : state) {
    std::thread sender([&] {
      edgeroute::MessageBuilder builder;
      std::string body(kBodyBytes, 'x');
      for (int i = 0; i < kBatch; ++i) {
        StampBody(&body);
        builder.Clear();
        builder.SetBody(body);
        builder.AddSystemProperty("connectionDeviceId", kDevice);
        builder.AddSystemProperty("connectionModuleId", "producer");
        builder.AddSystemProperty("outputName", "out");
        if (!rig.producer->SendTelemetry("out", builder.Finish(), qos1).ok()) {
          failed = true;
          return;
        }
        if (qos1) {
          ++acked;
          if (acked % kWindow == 0 && !rig.producer->WaitForAcks(acked).ok()) {
            failed = true;
            return;
          }
        } else if ((i + 1) % kWindow == 0) {
          // Hand batches to the kernel regularly (as the MQTT client does
          // per publish), so latency is not dominated by client buffering.
          rig.producer->Flush().IgnoreError();
        }
      }
      if (!rig.producer->Flush().ok() ||
          (qos1 && !rig.producer->WaitForAcks(acked).ok())) {
        failed = true;
      }
    });
    for (int i = 0; i < kBatch && !failed; ++i) {
      auto d = rig.consumer->Receive(10000);
      if (!d.ok()) {
        failed = true;
        break;
      }
      latencies.Add(LatencyOf(d->message.body().data()));
      rig.consumer->Ack(d->delivery_id).IgnoreError();
    }
    rig.consumer->Flush().IgnoreError();
    sender.join();
    if (failed) {
      state.SkipWithError("delivery failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  latencies.Report(state);
  state.counters["backend_io_uring"] =
      rig.gateway->backend() == edgeroute::gateway::IoBackend::kIoUring;
}
// store=1: store-and-forward on RocksDB (`process` durability); with qos=1
// the producer's acknowledgement waits for the store append.
BENCHMARK(BM_Gateway)
    ->ArgNames({"qos", "store"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One message in flight: send, receive at the consumer, ack, repeat. The
// latency counters here are the unloaded end-to-end latency (the pipelined
// benchmarks above measure throughput; their latency includes queueing).
void BM_GatewayPingPong(benchmark::State& state) {
  const bool qos1 = state.range(0) == 1;
  GatewayRig rig;
  if (const char* error = rig.Start()) {
    state.SkipWithError(error);
    return;
  }
  Latencies latencies;
  edgeroute::MessageBuilder builder;
  std::string body(kBodyBytes, 'x');
  uint64_t acked = 0;
  for (auto _ : state) {
    for (int i = 0; i < kPingBatch; ++i) {
      StampBody(&body);
      builder.Clear();
      builder.SetBody(body);
      builder.AddSystemProperty("connectionDeviceId", kDevice);
      builder.AddSystemProperty("connectionModuleId", "producer");
      builder.AddSystemProperty("outputName", "out");
      bool ok =
          rig.producer->SendTelemetry("out", builder.Finish(), qos1).ok() &&
          rig.producer->Flush().ok();
      if (ok && qos1) ok = rig.producer->WaitForAcks(++acked).ok();
      auto d = ok ? rig.consumer->Receive(10000)
                  : absl::StatusOr<edgeroute::gateway::Delivery>(
                        absl::InternalError("send failed"));
      if (!d.ok()) {
        state.SkipWithError("delivery failed");
        break;
      }
      latencies.Add(LatencyOf(d->message.body().data()));
      rig.consumer->Ack(d->delivery_id).IgnoreError();
    }
  }
  state.SetItemsProcessed(state.iterations() * kPingBatch);
  latencies.Report(state);
}
BENCHMARK(BM_GatewayPingPong)
    ->ArgName("qos")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------
// mosquitto baseline

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

class Mosquitto {
 public:
  // Starts the broker once for the whole run; null when unavailable.
  static Mosquitto* Get() {
    static Mosquitto* broker = Start();
    return broker;
  }
  static void StopAll() {
    Mosquitto* b = Get();
    if (b != nullptr) {
      kill(b->pid_, SIGTERM);
      waitpid(b->pid_, nullptr, 0);
      unlink(b->config_.c_str());
    }
  }
  int port() const { return port_; }

 private:
  static Mosquitto* Start() {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("MOSQUITTO")) candidates.push_back(env);
    candidates.push_back("mosquitto");
    candidates.push_back("/usr/sbin/mosquitto");
    candidates.push_back("/usr/local/sbin/mosquitto");
    // A free loopback port: let the kernel pick one, release it, reuse it.
    const int port = FreeLoopbackPort();
    if (port <= 0) return nullptr;
    const char* tmp = std::getenv("TEST_TMPDIR");
    if (tmp == nullptr) tmp = std::getenv("TMPDIR");
    const std::string config = absl::StrCat(
        tmp != nullptr ? tmp : ".", "/e2e_bench_mosquitto.", getpid(), ".conf");
    FILE* f = std::fopen(config.c_str(), "w");
    if (f == nullptr) return nullptr;
    std::fprintf(f,
                 "listener %d 127.0.0.1\nallow_anonymous true\n"
                 "max_inflight_messages %d\nmax_queued_messages 1000000\n"
                 "log_dest none\n",
                 port, kWindow);
    std::fclose(f);
    for (const std::string& binary : candidates) {
      pid_t pid;
      char* argv[] = {const_cast<char*>(binary.c_str()),
                      const_cast<char*>("-c"),
                      const_cast<char*>(config.c_str()), nullptr};
      if (posix_spawnp(&pid, binary.c_str(), nullptr, nullptr, argv, environ) !=
          0) {
        continue;
      }
      // Wait (bounded) until the broker accepts connections.
      mosquitto* probe = mosquitto_new(nullptr, true, nullptr);
      bool up = false;
      for (int i = 0; i < 200 && !up; ++i) {
        up =
            mosquitto_connect(probe, "127.0.0.1", port, 60) == MOSQ_ERR_SUCCESS;
        if (!up) {
          int status;
          if (waitpid(pid, &status, WNOHANG) == pid) break;  // it exited
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      mosquitto_destroy(probe);
      if (up) return new Mosquitto(pid, port, config);
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
    unlink(config.c_str());
    return nullptr;
  }
  Mosquitto(pid_t pid, int port, std::string config)
      : pid_(pid), port_(port), config_(std::move(config)) {}

  pid_t pid_;
  int port_;
  std::string config_;
};

// Subscriber side: counts messages and records latencies.
struct Subscriber {
  std::mutex mu;
  std::condition_variable cv;
  int64_t received = 0;
  Latencies* latencies = nullptr;
  bool subscribed = false;
};

void OnMessage(mosquitto*, void* obj, const mosquitto_message* m) {
  auto* s = static_cast<Subscriber*>(obj);
  const int64_t latency = LatencyOf(m->payload);
  std::lock_guard<std::mutex> lock(s->mu);
  s->latencies->Add(latency);
  ++s->received;
  s->cv.notify_all();
}

void OnSubscribe(mosquitto*, void* obj, int, int, const int*) {
  auto* s = static_cast<Subscriber*>(obj);
  std::lock_guard<std::mutex> lock(s->mu);
  s->subscribed = true;
  s->cv.notify_all();
}

// Publisher side for QoS 1: completed publishes (PUBACK received).
struct Publisher {
  std::mutex mu;
  std::condition_variable cv;
  int64_t completed = 0;
};

void OnPublish(mosquitto*, void* obj, int) {
  auto* p = static_cast<Publisher*>(obj);
  std::lock_guard<std::mutex> lock(p->mu);
  ++p->completed;
  p->cv.notify_all();
}

void BM_Mosquitto(benchmark::State& state) {
  const int qos = static_cast<int>(state.range(0));
  Mosquitto* broker = Mosquitto::Get();
  if (broker == nullptr) {
    state.SkipWithError("mosquitto broker not available");
    return;
  }
  Latencies latencies;
  latencies.Reserve(static_cast<size_t>(kBatch) * 8);
  Subscriber sub;
  sub.latencies = &latencies;
  Publisher pub;
  mosquitto* consumer = mosquitto_new("bench-sub", true, &sub);
  mosquitto* producer = mosquitto_new("bench-pub", true, &pub);
  mosquitto_message_callback_set(consumer, OnMessage);
  mosquitto_subscribe_callback_set(consumer, OnSubscribe);
  mosquitto_publish_callback_set(producer, OnPublish);
  mosquitto_max_inflight_messages_set(producer, kWindow);
  if (mosquitto_connect(consumer, "127.0.0.1", broker->port(), 60) !=
          MOSQ_ERR_SUCCESS ||
      mosquitto_connect(producer, "127.0.0.1", broker->port(), 60) !=
          MOSQ_ERR_SUCCESS) {
    state.SkipWithError("could not connect to mosquitto");
    return;
  }
  mosquitto_loop_start(consumer);
  mosquitto_loop_start(producer);
  mosquitto_subscribe(consumer, nullptr, "bench/telemetry", qos);
  {
    std::unique_lock<std::mutex> lock(sub.mu);
    sub.cv.wait_for(lock, std::chrono::seconds(10),
                    [&] { return sub.subscribed; });
  }
  std::string body(kBodyBytes, 'x');
  int64_t expected = 0;
  int64_t published = 0;
  bool failed = false;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      if (qos == 1) {
        // Keep at most kWindow publishes unacknowledged.
        std::unique_lock<std::mutex> lock(pub.mu);
        if (!pub.cv.wait_for(lock, std::chrono::seconds(10), [&] {
              return published - pub.completed < kWindow;
            })) {
          failed = true;
          break;
        }
      }
      StampBody(&body);
      if (mosquitto_publish(producer, nullptr, "bench/telemetry",
                            static_cast<int>(body.size()), body.data(), qos,
                            false) != MOSQ_ERR_SUCCESS) {
        failed = true;
        break;
      }
      ++published;
    }
    expected += kBatch;
    std::unique_lock<std::mutex> lock(sub.mu);
    if (failed || !sub.cv.wait_for(lock, std::chrono::seconds(30),
                                   [&] { return sub.received >= expected; })) {
      state.SkipWithError(
          absl::StrCat("mosquitto delivered ", sub.received, " of ", expected)
              .c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  mosquitto_disconnect(producer);
  mosquitto_disconnect(consumer);
  mosquitto_loop_stop(producer, false);
  mosquitto_loop_stop(consumer, false);
  mosquitto_destroy(producer);
  mosquitto_destroy(consumer);
  std::lock_guard<std::mutex> lock(sub.mu);
  latencies.Report(state);
}
BENCHMARK(BM_Mosquitto)
    ->ArgName("qos")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_MosquittoPingPong(benchmark::State& state) {
  const int qos = static_cast<int>(state.range(0));
  Mosquitto* broker = Mosquitto::Get();
  if (broker == nullptr) {
    state.SkipWithError("mosquitto broker not available");
    return;
  }
  Latencies latencies;
  Subscriber sub;
  sub.latencies = &latencies;
  Publisher pub;
  mosquitto* consumer = mosquitto_new("bench-ping-sub", true, &sub);
  mosquitto* producer = mosquitto_new("bench-ping-pub", true, &pub);
  mosquitto_message_callback_set(consumer, OnMessage);
  mosquitto_subscribe_callback_set(consumer, OnSubscribe);
  mosquitto_publish_callback_set(producer, OnPublish);
  if (mosquitto_connect(consumer, "127.0.0.1", broker->port(), 60) !=
          MOSQ_ERR_SUCCESS ||
      mosquitto_connect(producer, "127.0.0.1", broker->port(), 60) !=
          MOSQ_ERR_SUCCESS) {
    state.SkipWithError("could not connect to mosquitto");
    return;
  }
  mosquitto_loop_start(consumer);
  mosquitto_loop_start(producer);
  mosquitto_subscribe(consumer, nullptr, "bench/ping", qos);
  {
    std::unique_lock<std::mutex> lock(sub.mu);
    sub.cv.wait_for(lock, std::chrono::seconds(10),
                    [&] { return sub.subscribed; });
  }
  std::string body(kBodyBytes, 'x');
  int64_t expected = 0;
  for (auto _ : state) {
    bool failed = false;
    for (int i = 0; i < kPingBatch && !failed; ++i) {
      StampBody(&body);
      failed = mosquitto_publish(producer, nullptr, "bench/ping",
                                 static_cast<int>(body.size()), body.data(),
                                 qos, false) != MOSQ_ERR_SUCCESS;
      ++expected;
      std::unique_lock<std::mutex> lock(sub.mu);
      failed = failed || !sub.cv.wait_for(lock, std::chrono::seconds(10), [&] {
        return sub.received >= expected;
      });
    }
    if (failed) {
      state.SkipWithError("mosquitto ping-pong failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kPingBatch);
  mosquitto_disconnect(producer);
  mosquitto_disconnect(consumer);
  mosquitto_loop_stop(producer, false);
  mosquitto_loop_stop(consumer, false);
  mosquitto_destroy(producer);
  mosquitto_destroy(consumer);
  std::lock_guard<std::mutex> lock(sub.mu);
  latencies.Report(state);
}
BENCHMARK(BM_MosquittoPingPong)
    ->ArgName("qos")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  mosquitto_lib_init();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  Mosquitto::StopAll();
  mosquitto_lib_cleanup();
  return 0;
}
