// End to end over loopback TCP: a producer connection sends 256-byte
// messages, the gateway routes them ("FROM /messages/modules/* INTO
// $upstream") and delivers them to a consumer connection subscribed to
// "$upstream", which acknowledges each one. Reported: messages/s
// (items_per_second) and the p50/p99 latency from the producer's send call
// to the consumer's receive (counters p50_us, p99_us). Each gateway run is
// made without and with store-and-forward (store:0 / store:1, RocksDB in a
// temporary directory at the default `process` durability; store:2 is the
// same at `power` durability, every append fsynced). Every gateway run
// reports cpu_us_per_msg, the CPU time of the whole process (gateway and
// both clients) per message, which a busy machine disturbs less than the
// rate, and switches_per_msg, its threads' context switches; runs with a store also report what the store asked of RocksDB per
// message, cleanup included (Store::Stats: db_writes, records written,
// bytes written, write-ahead log bytes and syncs, records read), and
// disk_B_per_msg, what RocksDB wrote to files during the run.
//
// Baseline, same run, same machine: Debian's mosquitto broker on a loopback
// port with libmosquitto clients (publisher -> broker -> subscriber) at MQTT
// QoS 0 and QoS 1. Our "qos:1" means the producer asks for TelemetryAcks
// (admission into the router) with at most kWindow unacknowledged, like an
// MQTT QoS 1 publisher with kWindow messages in flight; deliveries to the
// consumer are always acknowledged (the gateway's delivery is at least
// once in both modes).
//
// MQTT over TLS (issue 12): the same libmosquitto client code, QoS 1,
// 256-byte JSON bodies, through `edgeroute run` (a separate process: one
// route from a module output to a module input, SAS tokens; store:0/store:1)
// and through a mosquitto broker process (publisher -> topic -> subscriber):
// BM_MqttEdgeroute/store:{0,1} and BM_MqttMosquitto (items_per_second; the
// clients as they come, Nagle's algorithm on), the same with TCP_NODELAY on
// the clients (…NoDelay), with one message in flight (…PingPong:
// p50_us/p99_us), and 10,000 idle TLS connections per server
// (…IdleConnections: rss_per_conn_KiB, connects_per_s and
// connects_per_server_cpu_s).
//
//   bazel run -c opt //bench:e2e_bench
//   bazel run -c opt //bench:e2e_bench -- --benchmark_filter=Mqtt
// The mosquitto binary is looked up in $MOSQUITTO, then PATH, then Debian's
// sbin directories; without it the mosquitto benchmarks are skipped. The
// edgeroute binary comes from the runfiles (//tools:edgeroute), or $EDGEROUTE.

#include <arpa/inet.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
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
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "gateway/auth/identity.h"
#include "gateway/auth/sas_token.h"
#include "gateway/client.h"
#include "gateway/demo_pki.h"
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

// CPU time of every thread of this process (user + system), in seconds.
double ProcessCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Context switches of every thread of this process (a thread that sleeps
// and is woken, or is preempted).
double ProcessContextSwitches() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_nvcsw + u.ru_nivcsw);
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
  // `store` 1 or 2, the gateway keeps its queues in a RocksDB store in a
  // fresh temporary directory, at `process` (1) or `power` (2) durability.
  const char* Start(int store = 0) {
    GatewayOptions options;
    options.device_id = kDevice;
    options.tcp_port = 0;
    if (store != 0) {
      options.store_durability = store == 2
                                     ? edgeroute::store::Durability::kPower
                                     : edgeroute::store::Durability::kProcess;
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
  const int store = static_cast<int>(state.range(1));
  if (const char* error = rig.Start(store)) {
    state.SkipWithError(error);
    return;
  }
  Latencies latencies;
  latencies.Reserve(static_cast<size_t>(kBatch) * 8);
  uint64_t acked = 0;
  std::atomic<bool> failed{false};
  edgeroute::store::Store::Stats store_before;
  if (store != 0) store_before = *rig.gateway->StoreStats();
  const double cpu_before = ProcessCpuSeconds();
  const double switches_before = ProcessContextSwitches();
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
  const double messages = static_cast<double>(state.iterations() * kBatch);
  state.counters["cpu_us_per_msg"] =
      (ProcessCpuSeconds() - cpu_before) * 1e6 / messages;
  state.counters["switches_per_msg"] =
      (ProcessContextSwitches() - switches_before) / messages;
  if (store != 0) {
    // What RocksDB wrote to files during the run (write-ahead log, memtable
    // flushes, compactions), before the forced compaction below.
    state.counters["disk_B_per_msg"] =
        static_cast<double>(rig.gateway->StoreStats()->bytes_written_to_disk -
                            store_before.bytes_written_to_disk) /
        messages;
    // Everything was delivered and acknowledged: the cleanup that would
    // run in the background removes it now, and its writes are counted.
    rig.gateway->WaitIdle(10000).IgnoreError();
    rig.gateway->CleanUpStore().IgnoreError();
    const edgeroute::store::Store::Stats after = *rig.gateway->StoreStats();
    auto per_message = [&](uint64_t a, uint64_t b) {
      return static_cast<double>(a - b) / messages;
    };
    state.counters["db_writes_per_msg"] =
        per_message(after.db_writes, store_before.db_writes);
    state.counters["records_w_per_msg"] =
        per_message(after.db_records_written, store_before.db_records_written);
    state.counters["B_w_per_msg"] =
        per_message(after.db_bytes_written, store_before.db_bytes_written);
    state.counters["wal_B_per_msg"] =
        per_message(after.wal_bytes, store_before.wal_bytes);
    state.counters["syncs_per_msg"] =
        per_message(after.wal_syncs, store_before.wal_syncs);
    state.counters["records_r_per_msg"] =
        per_message(after.db_records_read, store_before.db_records_read);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  latencies.Report(state);
  state.counters["backend_io_uring"] =
      rig.gateway->backend() == edgeroute::gateway::IoBackend::kIoUring;
}
// store=1: store-and-forward on RocksDB (`process` durability), store=2 at
// `power` durability; with qos=1 the producer's acknowledgement waits for
// the store append.
BENCHMARK(BM_Gateway)
    ->ArgNames({"qos", "store"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({1, 2})
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
        tmp != nullptr ? tmp : "/tmp", "/e2e_bench_mosquitto.", getpid(), ".conf");
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

// ---------------------------------------------------------------------------
// MQTT over TLS: `edgeroute run` vs the mosquitto broker, same client code
//
// The same libmosquitto clients, QoS 1 with kWindow publishes in flight,
// 256-byte JSON bodies, TLS to `localhost`, against
//  - edgeroute: a separate `edgeroute run` process, one route from a module
//    output (sensor/out) to another module's input (receiver/in), SAS
//    tokens; store:1 adds --store (RocksDB, `process` durability);
//  - mosquitto: a separate broker process with a TLS listener, publisher ->
//    topic -> subscriber (it ignores the user names and tokens).
// Plus one message in flight (p50/p99 from publish to delivery), and
// kIdleConnections idle TLS connections per server: resident memory per
// connection and connects accepted per second.

constexpr char kHub[] = "bench.azure-devices.net";
constexpr char kMqttDevice[] = "bench-edge";
constexpr char kApiVersion[] = "/?api-version=2021-04-12";
constexpr int kIdleConnections = 10000;
constexpr int kConnectsInFlight = 64;  // concurrent handshakes when scaling
constexpr int kServerStartSeconds = 30;

std::string ProcessTempDir(const char* prefix) {
  std::error_code ec;
  std::string dir =
      (std::filesystem::temp_directory_path(ec) / absl::StrCat(prefix, "XXXXXX"))
          .string();
  if (ec || mkdtemp(dir.data()) == nullptr) return "";
  return dir;
}

bool WriteFile(const std::string& path, absl::string_view content) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(content.data(), 1, content.size(), f) ==
                  content.size();
  return std::fclose(f) == 0 && ok;
}

// Throw-away TLS material shared by both servers: a CA, and a server
// certificate for localhost and 127.0.0.1 (made with OpenSSL at run time).
struct TlsFiles {
  std::string dir;
  std::string ca;
  std::string cert;
  std::string key;
};

const TlsFiles* BenchTls() {
  static const TlsFiles* files = [] () -> const TlsFiles* {
    auto ca = edgeroute::gateway::MakeCertificateAuthority("e2e_bench CA", 2);
    if (!ca.ok()) return nullptr;
    auto server = edgeroute::gateway::MakeSignedCertificate(
        *ca, "localhost", {"localhost"}, {"127.0.0.1"}, 2);
    auto* f = new TlsFiles;
    f->dir = ProcessTempDir("edgeroute-e2e-bench-tls-");
    f->ca = f->dir + "/ca.pem";
    f->cert = f->dir + "/server.pem";
    f->key = f->dir + "/server.key";
    if (!server.ok() || f->dir.empty() || !WriteFile(f->ca, ca->cert_pem) ||
        !WriteFile(f->cert, server->cert_pem) ||
        !WriteFile(f->key, server->key_pem)) {
      return nullptr;
    }
    return f;
  }();
  return files;
}

void RemoveBenchTls() {
  const TlsFiles* f = BenchTls();
  if (f == nullptr) return;
  std::error_code ignored;
  std::filesystem::remove_all(f->dir, ignored);
}

bool AcceptsConnections(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool up =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return up;
}

// A server in its own process (so that its resident memory is its own),
// output to a log file, stopped with SIGTERM.
class ServerProcess {
 public:
  // Spawns argv and waits (bounded) until `port` accepts connections.
  static std::unique_ptr<ServerProcess> Start(
      const std::vector<std::string>& argv, const std::string& log_path,
      int port, std::string* error) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid;
    const int rc = posix_spawnp(&pid, argv[0].c_str(), &actions, nullptr,
                                args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      *error = absl::StrCat("cannot start ", argv[0]);
      return nullptr;
    }
    std::unique_ptr<ServerProcess> server(new ServerProcess(pid, log_path));
    for (int i = 0; i < kServerStartSeconds * 100; ++i) {
      if (AcceptsConnections(port)) return server;
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        server->pid_ = -1;
        *error = absl::StrCat(argv[0], " exited at start; see ", log_path);
        return nullptr;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    *error = absl::StrCat(argv[0], " did not listen; see ", log_path);
    return nullptr;
  }

  ~ServerProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 2000; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  // The end of the server's output (for a failed run's report).
  std::string LogTail(size_t bytes) const {
    FILE* f = std::fopen(log_.c_str(), "r");
    if (f == nullptr) return "";
    std::string text;
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) {
      text.append(buffer, n);
      if (text.size() > 4 * bytes) text.erase(0, text.size() - bytes);
    }
    std::fclose(f);
    return text.size() > bytes ? text.substr(text.size() - bytes) : text;
  }

  // CPU time (user + system) the server has used, in seconds; -1 when
  // unknown.
  double CpuSeconds() const {
    FILE* f = std::fopen(absl::StrCat("/proc/", pid_, "/stat").c_str(), "r");
    if (f == nullptr) return -1;
    char buffer[1024];
    const size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, f);
    std::fclose(f);
    buffer[n] = '\0';
    // Fields after the command name, which ends at the last ')': state is
    // field 3, utime and stime are fields 14 and 15.
    const char* p = std::strrchr(buffer, ')');
    unsigned long long utime = 0, stime = 0;
    if (p == nullptr ||
        std::sscanf(p + 1,
                    " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                    &utime, &stime) != 2) {
      return -1;
    }
    return static_cast<double>(utime + stime) /
           static_cast<double>(sysconf(_SC_CLK_TCK));
  }

  // Resident set size (VmRSS) in bytes; -1 when unknown.
  int64_t RssBytes() const {
    FILE* f = std::fopen(absl::StrCat("/proc/", pid_, "/status").c_str(), "r");
    if (f == nullptr) return -1;
    char line[256];
    int64_t kib = -1;
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      if (std::sscanf(line, "VmRSS: %" SCNd64 " kB", &kib) == 1) break;
    }
    std::fclose(f);
    return kib < 0 ? -1 : kib * 1024;
  }

 private:
  ServerProcess(pid_t pid, std::string log) : pid_(pid), log_(std::move(log)) {}
  pid_t pid_;
  std::string log_;
};

// How a client connects: client id, user name and password (SAS token).
struct MqttLogin {
  std::string client_id;
  std::string username;
  std::string password;
};

// One server under test, as the clients see it.
struct MqttTarget {
  int port = 0;
  MqttLogin producer;
  MqttLogin consumer;
  std::string publish_topic;
  std::string subscribe_filter;
  std::vector<MqttLogin> idle;  // for the connection-scaling measurement
};

MqttLogin DeviceLogin(const std::string& device, const std::string& module,
                      const std::string& key) {
  MqttLogin login;
  login.client_id = module.empty() ? device : absl::StrCat(device, "/", module);
  login.username = absl::StrCat(kHub, "/", login.client_id, kApiVersion);
  namespace auth = edgeroute::gateway::auth;
  login.password = auth::MakeSasToken(
      auth::SasResourceUri(kHub, edgeroute::gateway::Identity{device, module}),
      key, absl::Now() + absl::Hours(24));
  return login;
}

std::string RandomKey() {
  unsigned char raw[32];
  RAND_bytes(raw, sizeof(raw));
  return edgeroute::gateway::auth::Base64Encode(
      absl::string_view(reinterpret_cast<const char*>(raw), sizeof(raw)));
}

std::string EdgerouteBinary() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("EDGEROUTE")) candidates.push_back(env);
  if (const char* runfiles = std::getenv("RUNFILES_DIR")) {
    candidates.push_back(absl::StrCat(runfiles, "/edgeroute/tools/edgeroute"));
  }
  candidates.push_back("tools/edgeroute");  // `bazel run`'s working directory
  candidates.push_back("bazel-bin/tools/edgeroute");
  for (const std::string& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) return c;
  }
  return "";
}

// `edgeroute run` with TLS, an identities file and a route sensor/out ->
// receiver/in; `idle_devices` more leaf devices for connection scaling.
struct EdgerouteServer {
  std::string dir;
  std::unique_ptr<ServerProcess> process;
  MqttTarget target;

  const char* Start(bool with_store, int idle_devices, std::string* error) {
    const TlsFiles* tls = BenchTls();
    if (tls == nullptr) return "cannot make TLS certificates";
    const std::string binary = EdgerouteBinary();
    if (binary.empty()) return "edgeroute binary not found (set $EDGEROUTE)";
    dir = ProcessTempDir("edgeroute-e2e-bench-mqtt-");
    if (dir.empty()) return "cannot create a temporary directory";
    const std::string sensor_key = RandomKey();
    const std::string receiver_key = RandomKey();
    std::string identities = absl::StrCat(
        R"({"hub": ")", kHub, R"(", "identities": [)",
        R"({"deviceId": ")", kMqttDevice, R"(", "moduleId": "sensor", )",
        R"("primaryKey": ")", sensor_key, R"("},)",
        R"({"deviceId": ")", kMqttDevice, R"(", "moduleId": "receiver", )",
        R"("primaryKey": ")", receiver_key, R"("})");
    for (int i = 0; i < idle_devices; ++i) {
      const std::string id = absl::StrCat("idle-", i);
      const std::string key = RandomKey();
      absl::StrAppend(&identities, R"(,{"deviceId": ")", id,
                      R"(", "primaryKey": ")", key, R"("})");
      target.idle.push_back(DeviceLogin(id, "", key));
    }
    identities += "]}";
    const std::string manifest = R"json({
      "schemaVersion": "1.1",
      "routes": {"toReceiver": "FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint(\"/modules/receiver/inputs/in\")"},
      "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}})json";
    if (!WriteFile(dir + "/identities.json", identities) ||
        !WriteFile(dir + "/manifest.json", manifest)) {
      return "cannot write the gateway's files";
    }
    target.port = FreeLoopbackPort();
    std::vector<std::string> argv = {
        binary, "run", "--manifest", dir + "/manifest.json",
        "--device", kMqttDevice,
        "--mqtt", absl::StrCat("127.0.0.1:", target.port),
        "--tls-cert", tls->cert, "--tls-key", tls->key,
        "--identities", dir + "/identities.json",
        "--listen", "unix:" + dir + "/native.sock"};
    if (with_store) {
      argv.push_back("--store");
      argv.push_back(dir + "/store");
    }
    process = ServerProcess::Start(argv, dir + "/edgeroute.log", target.port,
                                   error);
    if (process == nullptr) return error->c_str();
    target.producer = DeviceLogin(kMqttDevice, "sensor", sensor_key);
    target.consumer = DeviceLogin(kMqttDevice, "receiver", receiver_key);
    target.publish_topic = absl::StrCat("devices/", kMqttDevice,
                                        "/modules/sensor/messages/events/"
                                        "%24.on=out&%24.ct=application%2Fjson");
    target.subscribe_filter =
        absl::StrCat("devices/", kMqttDevice, "/modules/receiver/inputs/#");
    return nullptr;
  }

  ~EdgerouteServer() {
    process.reset();
    if (!dir.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  }
};

// The mosquitto broker with a TLS listener, in a process of its own.
struct MosquittoServer {
  std::string dir;
  std::unique_ptr<ServerProcess> process;
  MqttTarget target;

  const char* Start(int idle_clients, std::string* error) {
    const TlsFiles* tls = BenchTls();
    if (tls == nullptr) return "cannot make TLS certificates";
    dir = ProcessTempDir("edgeroute-e2e-bench-mosquitto-");
    if (dir.empty()) return "cannot create a temporary directory";
    target.port = FreeLoopbackPort();
    const passwd* user = getpwuid(getuid());
    const std::string config = absl::StrCat(
        "listener ", target.port, " 127.0.0.1\n",
        "cafile ", tls->ca, "\ncertfile ", tls->cert, "\nkeyfile ", tls->key,
        "\nallow_anonymous true\n",
        "max_inflight_messages ", kWindow, "\nmax_queued_messages 1000000\n",
        // As root, mosquitto would switch to its own user, which cannot read
        // the key file.
        "user ", user != nullptr ? user->pw_name : "root", "\n",
        "log_dest stderr\nlog_type error\n");
    if (!WriteFile(dir + "/mosquitto.conf", config)) {
      return "cannot write mosquitto.conf";
    }
    std::string binary = "mosquitto";  // from PATH, unless one of these
    if (const char* env = std::getenv("MOSQUITTO")) {
      binary = env;
    } else if (access("/usr/sbin/mosquitto", X_OK) == 0) {
      binary = "/usr/sbin/mosquitto";
    } else if (access("/usr/local/sbin/mosquitto", X_OK) == 0) {
      binary = "/usr/local/sbin/mosquitto";
    }
    process = ServerProcess::Start({binary, "-c", dir + "/mosquitto.conf"},
                                   dir + "/mosquitto.log", target.port, error);
    if (process == nullptr) return error->c_str();
    // The same logins as for edgeroute (mosquitto ignores the tokens).
    const std::string key = RandomKey();
    target.producer = DeviceLogin(kMqttDevice, "sensor", key);
    target.consumer = DeviceLogin(kMqttDevice, "receiver", key);
    target.publish_topic = absl::StrCat("devices/", kMqttDevice,
                                        "/modules/sensor/messages/events/"
                                        "%24.on=out&%24.ct=application%2Fjson");
    target.subscribe_filter =
        absl::StrCat("devices/", kMqttDevice, "/modules/sensor/messages/events/#");
    for (int i = 0; i < idle_clients; ++i) {
      target.idle.push_back(DeviceLogin(absl::StrCat("idle-", i), "", key));
    }
    return nullptr;
  }

  ~MosquittoServer() {
    process.reset();
    if (!dir.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  }
};

// A 256-byte JSON telemetry body whose "ts" is the send time (ns).
void StampJsonBody(std::string* body) {
  char head[64];
  const int n = std::snprintf(head, sizeof(head),
                              "{\"ts\":%019" PRId64 ",\"temperature\":21.5,\"pad\":\"",
                              NowNanos());
  body->assign(head, static_cast<size_t>(n));
  body->append(kBodyBytes - body->size() - 2, 'x');
  body->append("\"}");
}

int64_t JsonLatencyOf(const void* payload, int length) {
  if (length < 25) return -1;
  const char* p = static_cast<const char*>(payload) + 6;  // after {"ts":
  int64_t sent = 0;
  for (int i = 0; i < 19; ++i) sent = sent * 10 + (p[i] - '0');
  return NowNanos() - sent;
}

// State shared with one libmosquitto client's callbacks (its loop thread).
struct MqttClientState {
  std::mutex mu;
  std::condition_variable cv;
  int connack = -1;
  int granted_qos = -1;
  int64_t received = 0;
  int64_t completed = 0;  // PUBACKs
  Latencies* latencies = nullptr;
};

void OnMqttConnect(mosquitto*, void* obj, int rc) {
  auto* s = static_cast<MqttClientState*>(obj);
  std::lock_guard<std::mutex> lock(s->mu);
  s->connack = rc;
  s->cv.notify_all();
}

void OnMqttSubscribe(mosquitto*, void* obj, int, int count, const int* granted) {
  auto* s = static_cast<MqttClientState*>(obj);
  std::lock_guard<std::mutex> lock(s->mu);
  s->granted_qos = count > 0 ? granted[0] : 128;
  s->cv.notify_all();
}

void OnMqttMessage(mosquitto*, void* obj, const mosquitto_message* m) {
  auto* s = static_cast<MqttClientState*>(obj);
  const int64_t latency = JsonLatencyOf(m->payload, m->payloadlen);
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->latencies != nullptr && latency >= 0) s->latencies->Add(latency);
  ++s->received;
  s->cv.notify_all();
}

void OnMqttPublish(mosquitto*, void* obj, int) {
  auto* s = static_cast<MqttClientState*>(obj);
  std::lock_guard<std::mutex> lock(s->mu);
  ++s->completed;
  s->cv.notify_all();
}

// A connected libmosquitto client over TLS, its network loop on a thread.
class MqttClient {
 public:
  ~MqttClient() {
    if (mosq_ == nullptr) return;
    if (started_) {
      mosquitto_disconnect(mosq_);
      mosquitto_loop_stop(mosq_, false);
    }
    mosquitto_destroy(mosq_);
  }

  // Returns nullptr once the CONNACK accepted the client, else the problem.
  // `no_delay` turns Nagle's algorithm off on the client's socket (most
  // clients, libmosquitto's default included, leave it on).
  const char* Connect(int port, const MqttLogin& login, Latencies* latencies,
                      bool no_delay) {
    state_.latencies = latencies;
    mosq_ = mosquitto_new(login.client_id.c_str(), /*clean_session=*/true,
                          &state_);
    if (mosq_ == nullptr) return "mosquitto_new failed";
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(mosq_, OnMqttConnect);
    mosquitto_subscribe_callback_set(mosq_, OnMqttSubscribe);
    mosquitto_message_callback_set(mosq_, OnMqttMessage);
    mosquitto_publish_callback_set(mosq_, OnMqttPublish);
    mosquitto_max_inflight_messages_set(mosq_, kWindow);
    if (no_delay) mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
    if (mosquitto_username_pw_set(mosq_, login.username.c_str(),
                                  login.password.c_str()) != MOSQ_ERR_SUCCESS ||
        mosquitto_tls_set(mosq_, BenchTls()->ca.c_str(), nullptr, nullptr,
                          nullptr, nullptr) != MOSQ_ERR_SUCCESS ||
        mosquitto_connect(mosq_, "localhost", port, 60) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(mosq_) != MOSQ_ERR_SUCCESS) {
      return "could not connect over TLS";
    }
    started_ = true;
    std::unique_lock<std::mutex> lock(state_.mu);
    if (!state_.cv.wait_for(lock, std::chrono::seconds(10),
                            [&] { return state_.connack >= 0; })) {
      return "no CONNACK";
    }
    return state_.connack == 0 ? nullptr : "CONNACK refused the login";
  }

  const char* Subscribe(const std::string& filter) {
    if (mosquitto_subscribe(mosq_, nullptr, filter.c_str(), 1) !=
        MOSQ_ERR_SUCCESS) {
      return "subscribe failed";
    }
    std::unique_lock<std::mutex> lock(state_.mu);
    if (!state_.cv.wait_for(lock, std::chrono::seconds(10),
                            [&] { return state_.granted_qos >= 0; })) {
      return "no SUBACK";
    }
    return state_.granted_qos == 1 ? nullptr : "subscription not granted QoS 1";
  }

  bool Publish(const std::string& topic, const std::string& body) {
    return mosquitto_publish(mosq_, nullptr, topic.c_str(),
                             static_cast<int>(body.size()), body.data(), 1,
                             false) == MOSQ_ERR_SUCCESS;
  }

  MqttClientState& state() { return state_; }

 private:
  mosquitto* mosq_ = nullptr;
  bool started_ = false;
  MqttClientState state_;
};

// Throughput: kBatch QoS 1 publishes per iteration with at most kWindow
// unacknowledged, all delivered to the subscriber.
void RunMqttThroughput(benchmark::State& state, const MqttTarget& target,
                       bool no_delay) {
  Latencies latencies;
  latencies.Reserve(static_cast<size_t>(kBatch) * 8);
  MqttClient consumer;
  MqttClient producer;
  const char* error =
      consumer.Connect(target.port, target.consumer, &latencies, no_delay);
  if (error == nullptr) error = consumer.Subscribe(target.subscribe_filter);
  if (error == nullptr) {
    error = producer.Connect(target.port, target.producer, nullptr, no_delay);
  }
  if (error != nullptr) {
    state.SkipWithError(error);
    return;
  }
  MqttClientState& pub = producer.state();
  MqttClientState& sub = consumer.state();
  std::string body;
  int64_t published = 0;
  int64_t expected = 0;
  for (auto _ : state) {
    bool failed = false;
    for (int i = 0; i < kBatch && !failed; ++i) {
      {
        std::unique_lock<std::mutex> lock(pub.mu);
        failed = !pub.cv.wait_for(lock, std::chrono::seconds(30), [&] {
          return published - pub.completed < kWindow;
        });
      }
      StampJsonBody(&body);
      failed = failed || !producer.Publish(target.publish_topic, body);
      ++published;
    }
    expected += kBatch;
    std::unique_lock<std::mutex> lock(sub.mu);
    if (failed || !sub.cv.wait_for(lock, std::chrono::seconds(60),
                                   [&] { return sub.received >= expected; })) {
      state.SkipWithError(absl::StrCat("delivered ", sub.received, " of ",
                                       expected, failed ? " (publish failed)" : "")
                              .c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  std::lock_guard<std::mutex> lock(sub.mu);
  latencies.Report(state);
}

// One message in flight: publish, wait for the delivery and the PUBACK,
// repeat. p50_us/p99_us: publish to delivery.
void RunMqttPingPong(benchmark::State& state, const MqttTarget& target) {
  Latencies latencies;
  MqttClient consumer;
  MqttClient producer;
  const char* error =
      consumer.Connect(target.port, target.consumer, &latencies, false);
  if (error == nullptr) error = consumer.Subscribe(target.subscribe_filter);
  if (error == nullptr) {
    error = producer.Connect(target.port, target.producer, nullptr, false);
  }
  if (error != nullptr) {
    state.SkipWithError(error);
    return;
  }
  MqttClientState& pub = producer.state();
  MqttClientState& sub = consumer.state();
  std::string body;
  int64_t sent = 0;
  for (auto _ : state) {
    bool failed = false;
    for (int i = 0; i < kPingBatch && !failed; ++i) {
      StampJsonBody(&body);
      failed = !producer.Publish(target.publish_topic, body);
      ++sent;
      {
        std::unique_lock<std::mutex> lock(sub.mu);
        failed = failed || !sub.cv.wait_for(lock, std::chrono::seconds(10),
                                            [&] { return sub.received >= sent; });
      }
      std::unique_lock<std::mutex> lock(pub.mu);
      failed = failed || !pub.cv.wait_for(lock, std::chrono::seconds(10),
                                          [&] { return pub.completed >= sent; });
    }
    if (failed) {
      state.SkipWithError("ping-pong failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kPingBatch);
  std::lock_guard<std::mutex> lock(sub.mu);
  latencies.Report(state);
}

void MqttEdgerouteThroughput(benchmark::State& state, bool no_delay) {
  EdgerouteServer server;
  std::string error;
  if (const char* e = server.Start(state.range(0) == 1, 0, &error)) {
    state.SkipWithError(e);
    return;
  }
  RunMqttThroughput(state, server.target, no_delay);
  if (state.error_occurred()) {
    std::fprintf(stderr, "edgeroute's output ends:\n%s\n",
                 server.process->LogTail(2000).c_str());
  }
}

void MqttMosquittoThroughput(benchmark::State& state, bool no_delay) {
  MosquittoServer server;
  std::string error;
  if (const char* e = server.Start(0, &error)) {
    state.SkipWithError(e);
    return;
  }
  RunMqttThroughput(state, server.target, no_delay);
}

// The clients as they come (Nagle's algorithm on).
void BM_MqttEdgeroute(benchmark::State& state) {
  MqttEdgerouteThroughput(state, false);
}
BENCHMARK(BM_MqttEdgeroute)
    ->ArgName("store")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_MqttMosquitto(benchmark::State& state) {
  MqttMosquittoThroughput(state, false);
}
BENCHMARK(BM_MqttMosquitto)->UseRealTime()->Unit(benchmark::kMillisecond);

// The same with TCP_NODELAY on the clients' sockets: how much of the above
// is Nagle's algorithm on the subscriber's PUBACKs meeting a server that
// waits for a whole delivery batch (and delays its TCP ACKs).
void BM_MqttEdgerouteNoDelay(benchmark::State& state) {
  MqttEdgerouteThroughput(state, true);
}
BENCHMARK(BM_MqttEdgerouteNoDelay)
    ->ArgName("store")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_MqttMosquittoNoDelay(benchmark::State& state) {
  MqttMosquittoThroughput(state, true);
}
BENCHMARK(BM_MqttMosquittoNoDelay)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_MqttEdgeroutePingPong(benchmark::State& state) {
  EdgerouteServer server;
  std::string error;
  if (const char* e = server.Start(state.range(0) == 1, 0, &error)) {
    state.SkipWithError(e);
    return;
  }
  RunMqttPingPong(state, server.target);
}
BENCHMARK(BM_MqttEdgeroutePingPong)
    ->ArgName("store")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_MqttMosquittoPingPong(benchmark::State& state) {
  MosquittoServer server;
  std::string error;
  if (const char* e = server.Start(0, &error)) {
    state.SkipWithError(e);
    return;
  }
  RunMqttPingPong(state, server.target);
}
BENCHMARK(BM_MqttMosquittoPingPong)->UseRealTime()->Unit(benchmark::kMillisecond);

// --- connection scaling ------------------------------------------------------

// The MQTT CONNECT packet (3.1.1, clean session, user name and password).
std::string MqttConnectPacket(const MqttLogin& login, int keepalive) {
  auto str = [](std::string* out, absl::string_view s) {
    out->push_back(static_cast<char>(s.size() >> 8));
    out->push_back(static_cast<char>(s.size() & 0xff));
    out->append(s.data(), s.size());
  };
  std::string body;
  str(&body, "MQTT");
  body.push_back(4);                        // protocol level 3.1.1
  body.push_back(static_cast<char>(0xC2));  // user name, password, clean
  body.push_back(static_cast<char>(keepalive >> 8));
  body.push_back(static_cast<char>(keepalive & 0xff));
  str(&body, login.client_id);
  str(&body, login.username);
  str(&body, login.password);
  std::string packet(1, static_cast<char>(0x10));
  size_t remaining = body.size();
  do {
    uint8_t byte = remaining % 128;
    remaining /= 128;
    if (remaining > 0) byte |= 0x80;
    packet.push_back(static_cast<char>(byte));
  } while (remaining > 0);
  return packet + body;
}

// Opens TLS connections that each send CONNECT and wait for a CONNACK,
// kConnectsInFlight at a time (non-blocking sockets, one epoll set), and
// then leaves them idle.
class IdleConnections {
 public:
  IdleConnections() {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_load_verify_locations(ctx_, BenchTls()->ca.c_str(), nullptr);
    // Keep only what an idle connection needs.
    SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS);
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
  }
  ~IdleConnections() {
    for (Conn& c : conns_) {
      if (c.ssl != nullptr) SSL_free(c.ssl);
      if (c.fd >= 0) close(c.fd);
    }
    if (epoll_ >= 0) close(epoll_);
    SSL_CTX_free(ctx_);
  }

  // Returns "" when every login got CONNACK 0 before the deadline.
  std::string Open(int port, const std::vector<MqttLogin>& logins,
                   int timeout_seconds) {
    conns_.resize(logins.size());
    size_t next = 0;
    size_t ready = 0;
    int pending = 0;
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::seconds(timeout_seconds);
    std::vector<epoll_event> events(256);
    while (ready < logins.size()) {
      while (pending < kConnectsInFlight && next < logins.size()) {
        std::string error = Start(next, port, logins[next]);
        if (!error.empty()) return error;
        ++next;
        ++pending;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::StrCat("timed out with ", ready, " of ", logins.size(),
                            " connected");
      }
      const int n = epoll_wait(epoll_, events.data(),
                               static_cast<int>(events.size()), 100);
      for (int i = 0; i < n; ++i) {
        const size_t index = events[i].data.u64;
        std::string error;
        const bool done = Advance(&conns_[index], &error);
        if (!error.empty()) {
          return absl::StrCat("connection ", index, ": ", error);
        }
        if (done) {
          epoll_ctl(epoll_, EPOLL_CTL_DEL, conns_[index].fd, nullptr);
          ++ready;
          --pending;
        }
      }
    }
    return "";
  }

 private:
  enum class Step { kTcp, kHandshake, kConnect, kConnack };
  struct Conn {
    int fd = -1;
    SSL* ssl = nullptr;
    Step step = Step::kTcp;
    std::string out;
    size_t written = 0;
    uint8_t connack[4];
    size_t read = 0;
  };

  std::string Start(size_t index, int port, const MqttLogin& login) {
    Conn& c = conns_[index];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return absl::StrCat("socket: ", std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
        errno != EINPROGRESS) {
      return absl::StrCat("connect: ", std::strerror(errno));
    }
    c.ssl = SSL_new(ctx_);
    SSL_set_fd(c.ssl, c.fd);
    SSL_set_tlsext_host_name(c.ssl, "localhost");
    SSL_set1_host(c.ssl, "localhost");
    SSL_set_connect_state(c.ssl);
    c.out = MqttConnectPacket(login, 3600);
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u64 = index;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
    return "";
  }

  // Moves a connection on as far as it goes; true once it has its CONNACK.
  bool Advance(Conn* c, std::string* error) {
    auto want = [&](int ssl_error) {
      epoll_event ev{};
      ev.events = ssl_error == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN;
      ev.data.u64 = static_cast<uint64_t>(c - conns_.data());
      epoll_ctl(epoll_, EPOLL_CTL_MOD, c->fd, &ev);
    };
    if (c->step == Step::kTcp) c->step = Step::kHandshake;
    if (c->step == Step::kHandshake) {
      const int rc = SSL_do_handshake(c->ssl);
      if (rc != 1) {
        const int e = SSL_get_error(c->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
          want(e);
          return false;
        }
        *error = "TLS handshake failed";
        return false;
      }
      c->step = Step::kConnect;
    }
    if (c->step == Step::kConnect) {
      while (c->written < c->out.size()) {
        const int rc = SSL_write(c->ssl, c->out.data() + c->written,
                                 static_cast<int>(c->out.size() - c->written));
        if (rc <= 0) {
          const int e = SSL_get_error(c->ssl, rc);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            want(e);
            return false;
          }
          *error = "write failed";
          return false;
        }
        c->written += static_cast<size_t>(rc);
      }
      c->step = Step::kConnack;
      std::string().swap(c->out);
    }
    while (c->read < sizeof(c->connack)) {
      const int rc = SSL_read(c->ssl, c->connack + c->read,
                              static_cast<int>(sizeof(c->connack) - c->read));
      if (rc <= 0) {
        const int e = SSL_get_error(c->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
          want(e);
          return false;
        }
        *error = "closed before CONNACK";
        return false;
      }
      c->read += static_cast<size_t>(rc);
    }
    if (c->connack[0] != 0x20 || c->connack[3] != 0) {
      *error = absl::StrCat("CONNACK return code ", c->connack[3]);
      return false;
    }
    return true;
  }

  SSL_CTX* ctx_ = nullptr;
  int epoll_ = -1;
  std::vector<Conn> conns_;
};

// Holds kIdleConnections idle TLS connections to a server and reports its
// resident memory per connection and the connects accepted per second.
void RunIdleConnections(benchmark::State& state, const ServerProcess& server,
                        const MqttTarget& target) {
  for (auto _ : state) {
    // Settle, then the server's memory before any client connected.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const int64_t before = server.RssBytes();
    IdleConnections conns;
    const double cpu_before = server.CpuSeconds();
    const int64_t start = NowNanos();
    const std::string error = conns.Open(target.port, target.idle, 300);
    const double seconds = (NowNanos() - start) / 1e9;
    const double server_cpu = server.CpuSeconds() - cpu_before;
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      return;
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const int64_t after = server.RssBytes();
    const double n = static_cast<double>(target.idle.size());
    state.counters["connections"] = n;
    // Wall clock: bounded by the client's own handshakes on a small
    // machine. Per server CPU second: what the server could accept with a
    // core to itself.
    state.counters["connects_per_s"] = n / seconds;
    if (server_cpu > 0) {
      state.counters["connects_per_server_cpu_s"] = n / server_cpu;
    }
    state.counters["server_rss_before_MiB"] = before / 1048576.0;
    state.counters["server_rss_after_MiB"] = after / 1048576.0;
    state.counters["rss_per_conn_KiB"] = (after - before) / n / 1024.0;
  }
}

void BM_MqttEdgerouteIdleConnections(benchmark::State& state) {
  EdgerouteServer server;
  std::string error;
  if (const char* e = server.Start(false, kIdleConnections, &error)) {
    state.SkipWithError(e);
    return;
  }
  RunIdleConnections(state, *server.process, server.target);
}
BENCHMARK(BM_MqttEdgerouteIdleConnections)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_MqttMosquittoIdleConnections(benchmark::State& state) {
  MosquittoServer server;
  std::string error;
  if (const char* e = server.Start(kIdleConnections, &error)) {
    state.SkipWithError(e);
    return;
  }
  RunIdleConnections(state, *server.process, server.target);
}
BENCHMARK(BM_MqttMosquittoIdleConnections)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  mosquitto_lib_init();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  Mosquitto::StopAll();
  RemoveBenchTls();
  mosquitto_lib_cleanup();
  return 0;
}
