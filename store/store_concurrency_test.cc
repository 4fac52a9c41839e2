// Concurrent appenders, readers and cleanup (also run under TSan).

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "store/store.h"

namespace edgeroute::store {
namespace {

constexpr int kProducers = 4;
constexpr int kBatches = 150;
constexpr int kBatchSize = 2;

std::string TestDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/", name);
  EXPECT_EQ(std::system(absl::StrCat("rm -rf '", dir, "'").c_str()), 0);
  return dir;
}

// Reads a queue until it has seen every message, checkpointing each batch,
// and checks that each producer's messages arrive in order, once.
void Consume(Store* store, uint32_t queue, std::atomic<int>* errors) {
  std::vector<int> next(kProducers, 0);
  int seen = 0;
  uint64_t last_offset = 0;
  std::vector<StoredMessage> batch;
  while (seen < kProducers * kBatches * kBatchSize) {
    absl::Status s = store->Read(queue, 64, &batch);
    if (!s.ok()) {
      ADD_FAILURE() << s;
      errors->fetch_add(1);
      return;
    }
    for (const StoredMessage& m : batch) {
      if (m.offset <= last_offset) errors->fetch_add(1);
      last_offset = m.offset;
      absl::StatusOr<MessageView> view = MessageView::Verify(
          {reinterpret_cast<const uint8_t*>(m.bytes.data()), m.bytes.size()});
      if (!view.ok()) {
        errors->fetch_add(1);
        continue;
      }
      int p = std::atoi(std::string(view->FindProperty("p").value).c_str());
      int i = std::atoi(std::string(view->FindProperty("i").value).c_str());
      if (p < 0 || p >= kProducers || next[p] != i) {
        ADD_FAILURE() << "queue " << queue << " producer " << p << " got " << i
                      << " expected " << next[p];
        errors->fetch_add(1);
        return;
      }
      ++next[p];
      ++seen;
    }
    if (!batch.empty()) {
      s = store->Checkpoint(queue, batch.back().offset);
      if (!s.ok()) errors->fetch_add(1);
    } else {
      std::this_thread::yield();
    }
  }
}

class StoreConcurrencyTest : public ::testing::TestWithParam<Durability> {};

TEST_P(StoreConcurrencyTest, AppendersReadersAndCleanupAgree) {
  StoreOptions options;
  options.directory =
      TestDir(absl::StrCat("concurrent", static_cast<int>(GetParam())));
  options.durability = GetParam();
  options.cleanup_interval_ms = 0;
  absl::StatusOr<std::unique_ptr<Store>> opened = Store::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store* store = opened->get();
  uint32_t a = store->OpenQueue({"a", 0}).value();
  uint32_t b = store->OpenQueue({"b", kDefaultPriority}).value();

  std::atomic<int> errors{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      MessageBuilder builders[kBatchSize];
      std::vector<AppendItem> items(kBatchSize);
      const QueueTarget targets[] = {{a, -1}, {b, 3600}};
      for (int n = 0; n < kBatches; ++n) {
        for (int k = 0; k < kBatchSize; ++k) {
          builders[k].Clear();
          builders[k].SetBody("{}");
          builders[k].AddProperty("p", absl::StrCat(p));
          builders[k].AddProperty("i", absl::StrCat(n * kBatchSize + k));
          items[k].message = builders[k].Finish();
          items[k].targets = targets;
        }
        absl::Status s = store->Append(items);
        if (!s.ok()) {
          ADD_FAILURE() << s;
          errors.fetch_add(1);
          return;
        }
      }
    });
  }
  std::thread consume_a(Consume, store, a, &errors);
  std::thread consume_b(Consume, store, b, &errors);
  std::thread cleaner([&] {
    while (!done.load()) {
      absl::Status s = store->RunCleanup();
      if (!s.ok()) {
        ADD_FAILURE() << s;
        errors.fetch_add(1);
        return;
      }
      (void)store->GetStats();
    }
  });
  for (std::thread& t : threads) t.join();
  consume_a.join();
  consume_b.join();
  done.store(true);
  cleaner.join();
  EXPECT_EQ(errors.load(), 0);

  ASSERT_TRUE(store->RunCleanup(true).ok());
  Store::Stats stats = store->GetStats();
  EXPECT_EQ(stats.payloads, 0u);
  EXPECT_EQ(stats.stored_bytes, 0u);
  const uint64_t total = kProducers * kBatches * kBatchSize;
  EXPECT_EQ(stats.queues[a].tail, total);
  EXPECT_EQ(stats.queues[b].tail, total);
  EXPECT_EQ(stats.queues[a].depth, 0u);
  ASSERT_TRUE(store->Close().ok());
}

INSTANTIATE_TEST_SUITE_P(Durabilities, StoreConcurrencyTest,
                         ::testing::Values(Durability::kProcess,
                                           Durability::kPower));

}  // namespace
}  // namespace edgeroute::store
