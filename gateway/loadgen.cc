// Load generator for a running gateway: P producer connections send N
// messages each (256-byte bodies by default) and one consumer connection,
// subscribed to "$upstream", receives and acknowledges them. Prints
// throughput and end-to-end latency percentiles (each body starts with its
// send time).
//
// The gateway's routes must send the producers' output upstream, e.g.
//   {"schemaVersion": "1.1",
//    "routes": {"all": "FROM /messages/modules/* INTO $upstream"},
//    "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}
//
//   loadgen --address=tcp:127.0.0.1:7411 --device_id=edge-gateway
//           --producers=2 --messages=100000 --size=256 --ack=0|1

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gateway/client.h"
#include "message/message.h"

namespace {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Flags {
  std::string address = "tcp:127.0.0.1:7411";
  std::string device_id = "edge-gateway";
  int producers = 1;
  int64_t messages = 100000;
  int size = 256;
  bool ack = false;
  // Telemetry with ack: messages in flight per producer before waiting.
  int window = 1000;
};

bool Parse(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    const std::string key = arg.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    bool ok = true;
    if (key == "--address") {
      f->address = value;
    } else if (key == "--device_id") {
      f->device_id = value;
    } else if (key == "--producers") {
      ok = absl::SimpleAtoi(value, &f->producers) && f->producers > 0;
    } else if (key == "--messages") {
      ok = absl::SimpleAtoi(value, &f->messages) && f->messages > 0;
    } else if (key == "--size") {
      ok = absl::SimpleAtoi(value, &f->size) && f->size >= 16;
    } else if (key == "--ack") {
      f->ack = value == "1" || value == "true";
    } else if (key == "--window") {
      ok = absl::SimpleAtoi(value, &f->window) && f->window > 0;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad argument: %s\n", arg.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using edgeroute::gateway::Client;
  Flags flags;
  if (!Parse(argc, argv, &flags)) return 2;

  auto consumer = Client::Connect(flags.address);
  if (!consumer.ok() || !(*consumer)->Hello("loadgen-sink", "").ok() ||
      !(*consumer)->Subscribe({edgeroute::gateway::kUpstreamInput}).ok()) {
    std::fprintf(stderr, "consumer could not connect to %s\n",
                 flags.address.c_str());
    return 1;
  }
  const int64_t total = flags.messages * flags.producers;
  std::vector<int64_t> latencies;
  latencies.reserve(static_cast<size_t>(total));
  std::atomic<bool> failed{false};

  const int64_t start = NowNanos();
  std::vector<std::thread> producers;
  for (int p = 0; p < flags.producers; ++p) {
    producers.emplace_back([&, p] {
      auto client = Client::Connect(flags.address);
      if (!client.ok() ||
          !(*client)
               ->Hello(flags.device_id, absl::StrCat("loadgen-", p))
               .ok()) {
        failed = true;
        return;
      }
      edgeroute::MessageBuilder builder;
      std::string body(static_cast<size_t>(flags.size), 'x');
      for (int64_t i = 0; i < flags.messages && !failed; ++i) {
        const int64_t now = NowNanos();
        std::memcpy(&body[0], &now, sizeof(now));
        builder.Clear();
        builder.SetBody(body);
        builder.AddSystemProperty("connectionDeviceId", flags.device_id);
        builder.AddSystemProperty("connectionModuleId",
                                  absl::StrCat("loadgen-", p));
        builder.AddSystemProperty("outputName", "out");
        if (!(*client)
                 ->SendTelemetry("out", builder.Finish(), flags.ack)
                 .ok()) {
          failed = true;
          return;
        }
        if (flags.ack && (i + 1) % flags.window == 0 &&
            !(*client)->WaitForAcks(static_cast<uint64_t>(i + 1)).ok()) {
          failed = true;
          return;
        }
      }
      if (!(*client)->Flush().ok() ||
          (flags.ack &&
           !(*client)
                ->WaitForAcks(static_cast<uint64_t>(flags.messages))
                .ok())) {
        failed = true;
      }
    });
  }
  int64_t received = 0;
  while (received < total && !failed) {
    auto d = (*consumer)->Receive(10000);
    if (!d.ok()) {
      std::fprintf(stderr, "consumer: %s\n", d.status().ToString().c_str());
      failed = true;
      break;
    }
    int64_t sent;
    std::memcpy(&sent, d->message.body().data(), sizeof(sent));
    latencies.push_back(NowNanos() - sent);
    if (!(*consumer)->Ack(d->delivery_id).ok()) failed = true;
    ++received;
  }
  (*consumer)->Flush().IgnoreError();
  const int64_t elapsed = NowNanos() - start;
  for (auto& t : producers) t.join();
  if (failed || latencies.empty()) return 1;
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double q) {
    return latencies[std::min(latencies.size() - 1,
                              static_cast<size_t>(q * latencies.size()))] /
           1000.0;
  };
  std::printf(
      "%lld messages of %d bytes, %d producer(s), ack=%d: %.0f msg/s, "
      "latency p50 %.1f us, p99 %.1f us, max %.1f us\n",
      static_cast<long long>(received), flags.size, flags.producers,
      flags.ack ? 1 : 0, received * 1e9 / static_cast<double>(elapsed),
      pct(0.5), pct(0.99), latencies.back() / 1000.0);
  return 0;
}
