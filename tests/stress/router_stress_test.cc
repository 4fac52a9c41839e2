// Multithreaded stress test of the router with checksums: producers on
// several threads send messages whose routing an oracle computes; sinks
// (some failing at random and retrying) record what they get while the
// route table is reloaded concurrently. Every endpoint must receive exactly
// the messages the oracle expects, at the expected priority, and in send
// order per (source, endpoint, priority).
//
// The CI size is small so that it also runs under ThreadSanitizer
// (tags = ["tsan"]). EDGEROUTE_STRESS_SCALE=N multiplies the message count
// for soak runs.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "router/router.h"

namespace edgeroute::router {
namespace {

constexpr int kEndpoints = 4;
constexpr int kProducers = 4;

std::string Into(int e) {
  return absl::StrCat("INTO BrokeredEndpoint(\"/modules/e", e, "/inputs/in\")");
}

// The route table. `variant` changes names and order, not meaning.
std::vector<query::RouteSpec> Routes(int variant) {
  std::vector<query::RouteSpec> routes;
  for (int k = 0; k < kEndpoints; ++k) {
    // Selected by property s<k>, priority k (endpoint 3: default priority).
    routes.push_back(
        {absl::StrCat("sel", k, "_v", variant),
         absl::StrCat("FROM /messages/* WHERE s", k, " = 'y' ", Into(k)),
         k == 3 ? query::kDefaultPriority : k, 0});
    // Only producer 0's messages with h<k>: priority 0 (dedup with sel<k>).
    routes.push_back({absl::StrCat("hi", k, "_v", variant),
                      absl::StrCat("FROM /messages/modules/p0/* WHERE h", k,
                                   " = 'y' ", Into(k)),
                      0, 0});
  }
  if (variant % 2 == 1) std::reverse(routes.begin(), routes.end());
  return routes;
}

struct Expect {
  bool selected[kEndpoints] = {};
  int priority[kEndpoints] = {};
};

Expect Oracle(int producer, uint32_t bits) {
  Expect e;
  for (int k = 0; k < kEndpoints; ++k) {
    const bool s = (bits >> k) & 1;
    const bool h = producer == 0 && ((bits >> (4 + k)) & 1);
    e.selected[k] = s || h;
    e.priority[k] = h ? 0 : (k == 3 ? query::kDefaultPriority : k);
  }
  return e;
}

// Records (sequence, priority) in arrival order; fails the suffix of a
// batch from a random point on the first attempt (as a module endpoint
// does, which keeps order), so retries are exercised.
class CheckingSink : public Sink {
 public:
  explicit CheckingSink(uint64_t seed) : rng_(seed) {}
  void Deliver(DeliveryBatch* batch) override {
    size_t fail_from = batch->size();
    if (batch->attempt() == 1 && rng_() % 8 == 0) {
      fail_from = rng_() % batch->size();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < fail_from; ++i) {
        got_.emplace_back(batch->message(i).sequence_number(),
                          batch->priority());
      }
    }
    for (size_t i = 0; i < batch->size(); ++i) {
      batch->Complete(i, i < fail_from ? DeliveryOutcome::kDelivered
                                       : DeliveryOutcome::kRetry);
    }
  }
  std::vector<std::pair<uint64_t, int>> got() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }

 private:
  std::mt19937_64 rng_;  // only the executor thread calls Deliver
  std::mutex mu_;
  std::vector<std::pair<uint64_t, int>> got_ ABSL_GUARDED_BY(mu_);
};

TEST(RouterStressTest, EveryMessageToExactlyTheRightEndpointsInOrder) {
  int scale = 1;
  if (const char* s = std::getenv("EDGEROUTE_STRESS_SCALE")) {
    scale = std::max(1, std::atoi(s));
  }
  const uint32_t per_producer = 3000 * scale;

  RouterOptions options;
  options.dispatch_workers = 2;
  options.admission_capacity = 256;  // small: exercises backpressure
  options.admission_timeout = absl::Seconds(60);
  options.endpoint_batch_size = 16;
  options.retry.initial = absl::Microseconds(50);
  options.retry.max = absl::Microseconds(200);
  options.close_timeout = absl::Seconds(60);
  auto router = Router::Create(options, Routes(0), -1);
  ASSERT_TRUE(router.ok()) << router.status();
  std::vector<std::shared_ptr<CheckingSink>> sinks;
  for (int k = 0; k < kEndpoints; ++k) {
    sinks.push_back(std::make_shared<CheckingSink>(1000 + k));
    ASSERT_TRUE(
        (*router)->SetSink(absl::StrCat("DEV/e", k, "/in"), sinks[k]).ok());
  }

  std::atomic<int> producers_done{0};
  std::thread reloader([&] {
    int variant = 1;
    while (producers_done.load() < kProducers) {
      EXPECT_TRUE((*router)->UpdateRoutes(Routes(variant++), -1).ok());
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      MessageBuilder b;
      std::mt19937 rng(p + 1);
      for (uint32_t i = 0; i < per_producer; ++i) {
        const uint32_t bits = rng() & 0xff;
        b.Clear();
        b.SetBody(absl::StrCat("{\"i\":", i, "}"));
        b.AddSystemProperty("connectionModuleId", absl::StrCat("p", p));
        b.AddSystemProperty("outputName", absl::StrCat("o", i % 3));
        for (int k = 0; k < kEndpoints; ++k) {
          if ((bits >> k) & 1) b.AddProperty(absl::StrCat("s", k), "y");
          if ((bits >> (4 + k)) & 1) b.AddProperty(absl::StrCat("h", k), "y");
        }
        // sequence = producer | index | bits, so the checker can recompute
        // the oracle.
        b.SetSequenceNumber((static_cast<uint64_t>(p) << 48) |
                            (static_cast<uint64_t>(i) << 8) | bits);
        absl::Status s = (*router)->Send(b.Finish());
        ASSERT_TRUE(s.ok()) << s;
      }
      producers_done.fetch_add(1);
    });
  }
  for (auto& t : producers) t.join();
  reloader.join();
  ASSERT_TRUE((*router)->WaitIdle(absl::Seconds(120)).ok());
  ASSERT_TRUE((*router)->Close().ok());

  // Expected multiset per endpoint, and ordering per (endpoint, priority,
  // producer).
  uint64_t expected_total = 0;
  for (int k = 0; k < kEndpoints; ++k) {
    std::map<uint64_t, int> want;
    for (int p = 0; p < kProducers; ++p) {
      std::mt19937 rng(p + 1);
      for (uint32_t i = 0; i < per_producer; ++i) {
        const uint32_t bits = rng() & 0xff;
        const Expect e = Oracle(p, bits);
        if (!e.selected[k]) continue;
        want[(static_cast<uint64_t>(p) << 48) |
             (static_cast<uint64_t>(i) << 8) | bits] = e.priority[k];
      }
    }
    expected_total += want.size();
    // FIFO holds per (endpoint, priority) for messages of one source (one
    // producer's output): key (priority, producer, output).
    std::map<std::tuple<int, int, int>, uint64_t> last;
    size_t matched = 0;
    for (const auto& [seq, priority] : sinks[k]->got()) {
      auto it = want.find(seq);
      ASSERT_NE(it, want.end())
          << "endpoint " << k << " got unexpected or duplicate " << seq;
      EXPECT_EQ(it->second, priority) << "endpoint " << k << " seq " << seq;
      want.erase(it);
      ++matched;
      const int producer = static_cast<int>(seq >> 48);
      const int output = static_cast<int>(((seq >> 8) & 0xffffffffffu) % 3);
      auto key = std::make_tuple(priority, producer, output);
      auto l = last.find(key);
      if (l != last.end()) {
        EXPECT_LT(l->second, seq) << "endpoint " << k << " out of order";
      }
      last[key] = seq;
    }
    EXPECT_TRUE(want.empty()) << "endpoint " << k << " missed " << want.size();
  }
  RouterMetrics m = (*router)->GetMetrics();
  EXPECT_EQ(m.received, kProducers * per_producer);
  uint64_t delivered = 0;
  for (const auto& e : m.endpoints) {
    delivered += e.delivered;
    EXPECT_EQ(e.dropped_queue_full, 0u);
  }
  EXPECT_EQ(delivered, expected_total);
}

}  // namespace
}  // namespace edgeroute::router
