#include "store/store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "rocksdb/db.h"

namespace edgeroute::store {
namespace {

using ::testing::HasSubstr;

std::string TestDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/", name);
  std::string cmd = absl::StrCat("rm -rf '", dir, "'");
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return dir;
}

uint64_t DirBytes(const std::string& dir) {
  uint64_t total = 0;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (struct dirent* e = readdir(d)) {
    struct stat st;
    if (stat((dir + "/" + e->d_name).c_str(), &st) == 0 &&
        S_ISREG(st.st_mode)) {
      total += st.st_size;
    }
  }
  closedir(d);
  return total;
}

// A message whose body names it, padded with incompressible letters to about
// `size` bytes.
std::string MakeMessage(int i, size_t size = 0) {
  MessageBuilder builder;
  builder.Clear();
  std::string body = absl::StrCat("{\"n\":", i, "}");
  std::mt19937 random(i);
  while (body.size() < size) body.push_back('a' + random() % 26);
  builder.SetBody(body);
  builder.AddProperty("n", absl::StrCat(i));
  absl::Span<const uint8_t> bytes = builder.Finish();
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// The "n" property of a stored message.
int MessageNumber(const StoredMessage& m) {
  absl::StatusOr<MessageView> view = MessageView::Verify(
      {reinterpret_cast<const uint8_t*>(m.bytes.data()), m.bytes.size()});
  if (!view.ok()) return -1;
  return std::atoi(std::string(view->FindProperty("n").value).c_str());
}

absl::Status AppendOne(Store* store, const std::string& message,
                       std::vector<QueueTarget> targets) {
  AppendItem item;
  item.message = {reinterpret_cast<const uint8_t*>(message.data()),
                  message.size()};
  item.targets = targets;
  return store->Append(absl::MakeConstSpan(&item, 1));
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.directory = TestDir(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    options_.clock = &clock_;
    options_.cleanup_interval_ms = 0;
  }
  std::unique_ptr<Store> OpenStore() {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  uint32_t Queue(Store* store, const std::string& name,
                 uint8_t priority = kDefaultPriority) {
    absl::StatusOr<uint32_t> q = store->OpenQueue({name, priority});
    EXPECT_TRUE(q.ok()) << q.status();
    return q.value_or(0);
  }
  std::vector<int> ReadAll(Store* store, uint32_t q) {
    std::vector<StoredMessage> out;
    absl::Status s = store->Read(q, 1000000, &out);
    EXPECT_TRUE(s.ok()) << s;
    std::vector<int> numbers;
    for (const StoredMessage& m : out) numbers.push_back(MessageNumber(m));
    return numbers;
  }

  FakeClock clock_;
  StoreOptions options_;
};

TEST_F(StoreTest, AppendReadCheckpointInOrder) {
  auto store = OpenStore();
  uint32_t q = Queue(store.get(), "upstream");
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(AppendOne(store.get(), MakeMessage(i), {{q, -1}}).ok());
  }
  std::vector<StoredMessage> out;
  ASSERT_TRUE(store->Read(q, 3, &out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].offset, 1u);
  EXPECT_EQ(out[2].offset, 3u);
  EXPECT_EQ(MessageNumber(out[1]), 1);
  EXPECT_EQ(out[0].enqueue_time_us, clock_.NowMicros());
  // Reading again without a checkpoint returns the same messages.
  ASSERT_TRUE(store->Read(q, 3, &out).ok());
  EXPECT_EQ(out[0].offset, 1u);
  ASSERT_TRUE(store->Checkpoint(q, 3).ok());
  EXPECT_EQ(ReadAll(store.get(), q), (std::vector<int>{3, 4}));
  // ReadAfter skips further without moving the checkpoint.
  ASSERT_TRUE(store->ReadAfter(q, 4, 10, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].offset, 5u);
  // A checkpoint never moves back; beyond the tail is an error.
  EXPECT_TRUE(store->Checkpoint(q, 1).ok());
  EXPECT_EQ(ReadAll(store.get(), q).size(), 2u);
  EXPECT_EQ(store->Checkpoint(q, 6).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, RejectsBadArguments) {
  auto store = OpenStore();
  EXPECT_EQ(store->OpenQueue({"", 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->OpenQueue({"a", 11}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AppendOne(store.get(), MakeMessage(1), {{7, -1}}).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<StoredMessage> out;
  EXPECT_EQ(store->Read(3, 1, &out).code(), absl::StatusCode::kInvalidArgument);
  uint32_t a = Queue(store.get(), "a", 0);
  EXPECT_EQ(Queue(store.get(), "a", 0), a);
  EXPECT_NE(Queue(store.get(), "a", 1), a);
  EXPECT_EQ(store->ListQueues().size(), 2u);
}

TEST_F(StoreTest, PayloadStoredOnceAndDeletedWithLastReference) {
  auto store = OpenStore();
  uint32_t a = Queue(store.get(), "a"), b = Queue(store.get(), "b"),
           c = Queue(store.get(), "c", 3);
  ASSERT_TRUE(
      AppendOne(store.get(), MakeMessage(7, 500), {{a, -1}, {b, -1}, {c, -1}})
          .ok());
  EXPECT_EQ(store->GetStats().payloads, 1u);
  const uint64_t stored = store->GetStats().stored_bytes;
  EXPECT_GT(stored, 500u);
  EXPECT_LT(stored, 1000u);  // Not three copies.
  for (uint32_t q : {a, b, c})
    EXPECT_EQ(ReadAll(store.get(), q), (std::vector<int>{7}));

  ASSERT_TRUE(store->Checkpoint(a, 1).ok());
  ASSERT_TRUE(store->Checkpoint(b, 1).ok());
  ASSERT_TRUE(store->RunCleanup().ok());
  EXPECT_EQ(store->GetStats().payloads, 1u);
  EXPECT_EQ(ReadAll(store.get(), c), (std::vector<int>{7}));
  ASSERT_TRUE(store->Checkpoint(c, 1).ok());
  ASSERT_TRUE(store->RunCleanup().ok());
  Store::Stats stats = store->GetStats();
  EXPECT_EQ(stats.payloads, 0u);
  EXPECT_EQ(stats.stored_bytes, 0u);

  // The count survives a reopen.
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(8), {{a, -1}, {b, -1}}).ok());
  ASSERT_TRUE(store->Close().ok());
  store = OpenStore();
  EXPECT_EQ(store->GetStats().payloads, 1u);
  ASSERT_TRUE(store->Checkpoint(a, 2).ok());
  ASSERT_TRUE(store->RunCleanup().ok());
  EXPECT_EQ(store->GetStats().payloads, 1u);
  EXPECT_EQ(ReadAll(store.get(), b), (std::vector<int>{8}));
}

TEST_F(StoreTest, RecentAppendsAreReadFromTheCacheOlderFromRocksDb) {
  auto store = OpenStore();
  uint32_t q = Queue(store.get(), "upstream");
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(AppendOne(store.get(), MakeMessage(i, 300), {{q, -1}}).ok());
  }
  // A reader that keeps up: served from memory, RocksDB not read (GetStats
  // itself reads a little: measured first).
  const uint64_t stats_reads_before = store->GetStats().db_records_read;
  const uint64_t reads_before = store->GetStats().db_records_read;
  const uint64_t stats_reads = reads_before - stats_reads_before;
  std::vector<StoredMessage> out;
  ASSERT_TRUE(store->Read(q, 5, &out).ok());
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[4].offset, 5u);
  EXPECT_EQ(MessageNumber(out[4]), 4);
  ASSERT_TRUE(store->ReadAfter(q, 5, 100, &out).ok());
  ASSERT_EQ(out.size(), 15u);
  EXPECT_EQ(MessageNumber(out[14]), 19);
  EXPECT_EQ(out[14].enqueue_time_us, clock_.NowMicros());
  EXPECT_EQ(store->GetStats().db_records_read, reads_before + stats_reads);
  // Delivered offsets leave the cache; reading them again reads RocksDB
  // and returns the same bytes.
  std::vector<StoredMessage> cached;
  ASSERT_TRUE(store->Read(q, 100, &cached).ok());
  ASSERT_TRUE(store->Checkpoint(q, 10).ok());
  ASSERT_TRUE(store->ReadAfter(q, 0, 100, &out).ok());
  ASSERT_EQ(out.size(), 20u);
  EXPECT_GT(store->GetStats().db_records_read, reads_before + 2 * stats_reads);
  for (size_t i = 0; i < cached.size(); ++i) {
    EXPECT_EQ(out[i].bytes, cached[i].bytes);
    EXPECT_EQ(out[i].expiry_us, cached[i].expiry_us);
  }
  // After a reopen (an empty cache) everything comes from RocksDB.
  ASSERT_TRUE(store->Close().ok());
  store = OpenStore();
  EXPECT_EQ(ReadAll(store.get(), q),
            (std::vector<int>{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}));
  EXPECT_GT(store->GetStats().db_records_read, 0u);
}

TEST_F(StoreTest, WithoutTheCacheReadsGoToRocksDb) {
  options_.read_cache_bytes = 0;
  auto store = OpenStore();
  uint32_t q = Queue(store.get(), "upstream");
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(1), {{q, -1}}).ok());
  EXPECT_EQ(ReadAll(store.get(), q), (std::vector<int>{1}));
  EXPECT_GT(store->GetStats().db_records_read, 0u);
}

TEST_F(StoreTest, CleanupDeletesARunOfPayloadsWithRangeDeletions) {
  auto store = OpenStore();
  uint32_t q = Queue(store.get(), "upstream");
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(AppendOne(store.get(), MakeMessage(i), {{q, -1}}).ok());
  }
  ASSERT_TRUE(store->Checkpoint(q, 200).ok());
  const uint64_t written = store->GetStats().db_records_written;
  ASSERT_TRUE(store->RunCleanup().ok());
  const Store::Stats stats = store->GetStats();
  EXPECT_EQ(stats.payloads, 0u);
  EXPECT_EQ(stats.stored_bytes, 0u);
  // One range deletion per column family and the markers, not two
  // tombstones per message.
  EXPECT_LE(stats.db_records_written - written, 8u);
  ASSERT_TRUE(store->Close().ok());
  store = OpenStore();
  EXPECT_EQ(store->GetStats().payloads, 0u);
  EXPECT_TRUE(ReadAll(store.get(), q).empty());
}

TEST_F(StoreTest, CheckpointAfterHalfAWriteBufferCleansUpEarly) {
  options_.cleanup_interval_ms = 3'600'000;  // the periodic one: an hour
  options_.write_buffer_bytes = 64u << 10;
  auto store = OpenStore();
  uint32_t q = Queue(store.get(), "upstream");
  for (int i = 0; i < 60; ++i) {  // 60 KB: more than half of 64 KiB
    ASSERT_TRUE(AppendOne(store.get(), MakeMessage(i, 1000), {{q, -1}}).ok());
  }
  ASSERT_EQ(ReadAll(store.get(), q).size(), 60u);
  ASSERT_TRUE(store->Checkpoint(q, 60).ok());
  // The background cleanup runs now, not in an hour.
  for (int i = 0; i < 3000 && store->GetStats().payloads != 0; ++i) {
    usleep(10'000);
  }
  EXPECT_EQ(store->GetStats().payloads, 0u);
}

TEST_F(StoreTest, TtlFixedAtEnqueueExpiredNeverReturnedAndCounted) {
  auto store = OpenStore();
  uint32_t q = Queue(store.get(), "q");
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(1), {{q, 10}}).ok());
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(2), {{q, -1}}).ok());
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(3), {{q, 100}}).ok());
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(4), {{q, 0}}).ok());
  clock_.AdvanceSeconds(9);
  EXPECT_EQ(ReadAll(store.get(), q), (std::vector<int>{1, 2, 3, 4}));
  clock_.AdvanceSeconds(1);  // Exactly at expiry: expired.
  EXPECT_EQ(ReadAll(store.get(), q), (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(store->GetStats().expired, 1u);
  EXPECT_EQ(ReadAll(store.get(), q), (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(store->GetStats().expired, 1u);  // Counted once.
  // Negative and zero TTL are infinite, even centuries later.
  clock_.AdvanceSeconds(int64_t{200} * 365 * 24 * 3600);
  EXPECT_EQ(ReadAll(store.get(), q), (std::vector<int>{2, 4}));
  ASSERT_TRUE(store->RunCleanup().ok());
  EXPECT_EQ(ReadAll(store.get(), q), (std::vector<int>{2, 4}));
  Store::Stats stats = store->GetStats();
  EXPECT_EQ(stats.expired, 2u);
  EXPECT_EQ(stats.payloads, 2u);
}

// A consumer that reads forward with ReadAfter and checkpoints past what it
// delivered: expired references skipped in the middle are still counted, once.
TEST_F(StoreTest, ExpiredSkippedByReadAfterAreCountedOnce) {
  auto store = OpenStore();
  uint32_t q = Queue(store.get(), "q");
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(1), {{q, -1}}).ok());
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(2), {{q, 5}}).ok());
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(3), {{q, 5}}).ok());
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(4), {{q, -1}}).ok());
  std::vector<StoredMessage> out;
  ASSERT_TRUE(store->Read(q, 1, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  const uint64_t first = out[0].offset;
  clock_.AdvanceSeconds(6);
  ASSERT_TRUE(store->ReadAfter(q, first, 10, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(MessageNumber(out[0]), 4);
  EXPECT_EQ(store->GetStats().expired, 2u);
  // Reading again from the checkpoint, then delivering everything and
  // cleaning up, does not count them a second time.
  EXPECT_EQ(ReadAll(store.get(), q), (std::vector<int>{1, 4}));
  ASSERT_TRUE(store->Checkpoint(q, out[0].offset).ok());
  ASSERT_TRUE(store->RunCleanup().ok());
  Store::Stats stats = store->GetStats();
  EXPECT_EQ(stats.expired, 2u);
  EXPECT_EQ(stats.payloads, 0u);
}

TEST_F(StoreTest, CleanupRemovesExpiredBehindLiveHead) {
  auto store = OpenStore();
  uint32_t q = Queue(store.get(), "q");
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(1), {{q, -1}}).ok());
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(2), {{q, 5}}).ok());
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(3), {{q, -1}}).ok());
  clock_.AdvanceSeconds(6);
  ASSERT_TRUE(store->RunCleanup().ok());
  EXPECT_EQ(store->GetStats().payloads, 2u);
  EXPECT_EQ(store->GetStats().expired, 1u);
  EXPECT_EQ(ReadAll(store.get(), q), (std::vector<int>{1, 3}));
}

TEST_F(StoreTest, DirectorySizeFallsAfterExpiryAndCleanup) {
  options_.reserve_bytes = 0;  // Only what the data takes.
  auto store = OpenStore();
  uint32_t a = Queue(store.get(), "a"), b = Queue(store.get(), "b", 1);
  std::vector<std::string> messages;
  for (int i = 0; i < 4000; ++i) messages.push_back(MakeMessage(i, 1000));
  std::vector<QueueTarget> targets = {{a, 60}, {b, 120}};
  std::vector<AppendItem> batch;
  for (const std::string& m : messages) {
    batch.push_back(
        {{reinterpret_cast<const uint8_t*>(m.data()), m.size()}, targets});
    if (batch.size() == 100) {
      ASSERT_TRUE(store->Append(batch).ok());
      batch.clear();
    }
  }
  // Flush to files so the size is what the data takes on disk.
  ASSERT_TRUE(store->RunCleanup(/*force_compaction=*/true).ok());
  const uint64_t full = DirBytes(options_.directory);
  EXPECT_GT(full, 1'000'000u);

  clock_.AdvanceSeconds(61);  // Only queue a has expired.
  ASSERT_TRUE(store->RunCleanup(true).ok());
  EXPECT_EQ(store->GetStats().payloads, 4000u);
  clock_.AdvanceSeconds(60);
  ASSERT_TRUE(store->RunCleanup(true).ok());
  Store::Stats stats = store->GetStats();
  EXPECT_EQ(stats.payloads, 0u);
  EXPECT_EQ(stats.expired, 8000u);
  const uint64_t after = DirBytes(options_.directory);
  EXPECT_LT(after, full / 4) << "full " << full << " after " << after;
  // What remains is bookkeeping (manifest, options, bounded info log).
  EXPECT_LT(after, 2'000'000u);
  EXPECT_EQ(stats.bytes_on_disk, after);
}

TEST_F(StoreTest, RejectPolicyKeepsTheLimitAndRecoversAfterDelivery) {
  options_.max_bytes = 20'000;
  options_.full_policy = FullPolicy::kReject;
  auto store = OpenStore();
  uint32_t q = Queue(store.get(), "q");
  int accepted = 0;
  absl::Status s;
  for (int i = 0; i < 100; ++i) {
    s = AppendOne(store.get(), MakeMessage(i, 900), {{q, -1}});
    if (!s.ok()) break;
    ++accepted;
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("full"));
  EXPECT_GT(accepted, 10);
  EXPECT_LT(accepted, 25);
  Store::Stats stats = store->GetStats();
  EXPECT_LE(stats.stored_bytes, options_.max_bytes);
  EXPECT_EQ(stats.rejected_full, 1u);
  // Nothing of the rejected message is visible.
  EXPECT_EQ(ReadAll(store.get(), q).size(), static_cast<size_t>(accepted));
  // Delivery frees space; the next append succeeds without explicit cleanup.
  ASSERT_TRUE(store->Checkpoint(q, 5).ok());
  EXPECT_TRUE(AppendOne(store.get(), MakeMessage(1000, 900), {{q, -1}}).ok());
  std::vector<int> numbers = ReadAll(store.get(), q);
  ASSERT_FALSE(numbers.empty());
  EXPECT_EQ(numbers.front(), 5);
  EXPECT_EQ(numbers.back(), 1000);
  // A batch larger than the whole limit is rejected outright.
  EXPECT_EQ(AppendOne(store.get(), MakeMessage(1, 30'000), {{q, -1}}).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(StoreTest, DropOldestDropsLowestPriorityFirst) {
  options_.max_bytes = 40'000;
  options_.full_policy = FullPolicy::kDropOldest;
  auto store = OpenStore();
  uint32_t high = Queue(store.get(), "ep", 0);
  uint32_t low = Queue(store.get(), "ep", kDefaultPriority);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(AppendOne(store.get(), MakeMessage(i, 900), {{high, -1}}).ok());
  }
  for (int i = 100; i < 200; ++i) {
    ASSERT_TRUE(AppendOne(store.get(), MakeMessage(i, 900), {{low, -1}}).ok())
        << i;
  }
  Store::Stats stats = store->GetStats();
  EXPECT_LE(stats.stored_bytes, options_.max_bytes);
  EXPECT_GT(stats.dropped_full, 50u);
  // The high-priority queue is intact; the low one lost its oldest.
  std::vector<int> h = ReadAll(store.get(), high);
  EXPECT_EQ(h.size(), 10u);
  std::vector<int> l = ReadAll(store.get(), low);
  ASSERT_FALSE(l.empty());
  EXPECT_GT(l.front(), 100);
  EXPECT_EQ(l.back(), 199);
  EXPECT_EQ(stats.dropped_full + l.size(), 100u);
}

TEST_F(StoreTest, ReopenRestoresHeadTailAndCheckpoint) {
  {
    auto store = OpenStore();
    uint32_t a = Queue(store.get(), "a", 0), b = Queue(store.get(), "b");
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(
          AppendOne(store.get(), MakeMessage(i), {{a, -1}, {b, -1}}).ok());
    }
    ASSERT_TRUE(store->Checkpoint(a, 4).ok());
    ASSERT_TRUE(store->Checkpoint(b, 10).ok());
    ASSERT_TRUE(store->RunCleanup().ok());
    // Destroyed without Close(): the destructor closes.
  }
  auto store = OpenStore();
  std::vector<QueueId> ids = store->ListQueues();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0].endpoint_id, "a");
  EXPECT_EQ(ids[0].priority, 0);
  Store::Stats stats = store->GetStats();
  EXPECT_EQ(stats.queues[0].checkpoint, 4u);
  EXPECT_EQ(stats.queues[0].tail, 10u);
  EXPECT_EQ(stats.queues[0].head, 5u);
  EXPECT_EQ(stats.queues[0].depth, 6u);
  EXPECT_EQ(stats.queues[1].tail, 10u);
  EXPECT_EQ(stats.queues[1].depth, 0u);
  EXPECT_EQ(stats.queues[1].head, 11u);
  EXPECT_EQ(stats.payloads, 6u);
  EXPECT_EQ(ReadAll(store.get(), 0), (std::vector<int>{4, 5, 6, 7, 8, 9}));
  // Offsets continue after the removed ones, never reused.
  ASSERT_TRUE(AppendOne(store.get(), MakeMessage(42), {{1, -1}}).ok());
  std::vector<StoredMessage> out;
  ASSERT_TRUE(store->Read(1, 10, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].offset, 11u);
}

TEST_F(StoreTest, CorruptFileIsDataLoss) {
  {
    auto store = OpenStore();
    uint32_t q = Queue(store.get(), "q");
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(AppendOne(store.get(), MakeMessage(i, 2000), {{q, -1}}).ok());
    }
    ASSERT_TRUE(store->RunCleanup(true).ok());  // Flush into table files.
    ASSERT_TRUE(store->Close().ok());
  }
  // Overwrite the middle of every table file.
  DIR* d = opendir(options_.directory.c_str());
  ASSERT_NE(d, nullptr);
  int corrupted = 0;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 4 || name.substr(name.size() - 4) != ".sst") continue;
    std::string path = options_.directory + "/" + name;
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    FILE* file = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(file, nullptr);
    std::fseek(file, st.st_size / 3, SEEK_SET);
    std::string junk(st.st_size / 4, 'X');
    std::fwrite(junk.data(), 1, junk.size(), file);
    std::fclose(file);
    ++corrupted;
  }
  closedir(d);
  ASSERT_GT(corrupted, 0);
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options_);
  absl::Status status = store.status();
  if (store.ok()) {
    std::vector<StoredMessage> out;
    status = (*store)->Read(0, 1000, &out);
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

TEST_F(StoreTest, ADirectoryThatIsNotAStoreIsRefused) {
  ASSERT_EQ(
      std::system(("mkdir -p '" + options_.directory + "' && echo hi > '" +
                   options_.directory + "/notes.txt'")
                      .c_str()),
      0);
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("is not an edgeroute store"));
  // Nothing was written into it.
  EXPECT_FALSE(Exists(options_.directory + "/CURRENT"));
  EXPECT_FALSE(Exists(options_.directory + "/EDGEROUTE-STORE"));
}

TEST_F(StoreTest, AForeignRocksDbIsRefused) {
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, options_.directory, &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "k", "v").ok());
    delete db;
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  // Its column families were left alone.
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(),
                                              options_.directory, &names)
                  .ok());
  EXPECT_EQ(names, std::vector<std::string>{"default"});
}

TEST_F(StoreTest, EmptyDirectoryGetsTheMarkerAndEarlierStoresAreAdopted) {
  ASSERT_EQ(std::system(("mkdir -p '" + options_.directory + "'").c_str()), 0);
  {
    auto store = OpenStore();
    uint32_t q = Queue(store.get(), "q");
    ASSERT_TRUE(AppendOne(store.get(), MakeMessage(7), {{q, -1}}).ok());
    ASSERT_TRUE(store->Close().ok());
  }
  const std::string marker = options_.directory + "/EDGEROUTE-STORE";
  ASSERT_TRUE(Exists(marker));
  // A store made before the marker existed: recognised by its column
  // families and format record, and marked.
  ASSERT_EQ(std::remove(marker.c_str()), 0);
  auto store = OpenStore();
  EXPECT_TRUE(Exists(marker));
  std::vector<StoredMessage> out;
  ASSERT_TRUE(store->Read(0, 10, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(MessageNumber(out[0]), 7);
}

TEST_F(StoreTest, UnknownFormatVersionIsRefused) {
  ASSERT_TRUE(OpenStore()->Close().ok());
  {
    rocksdb::Options options;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* name : {"default", "payloads", "payload_refs", "refs"}) {
      cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(
        rocksdb::DB::Open(options, options_.directory, cfs, &handles, &db)
            .ok());
    std::string v2 =
        std::string("edgeroute-store") + std::string("\0\0\0\2", 4);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "format", v2).ok());
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    delete db;
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("format"));
}

TEST_F(StoreTest, InspectReportsQueues) {
  {
    auto store = OpenStore();
    uint32_t a = Queue(store.get(), "upstream", 0),
             b = Queue(store.get(), "alerts");
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(
          AppendOne(store.get(), MakeMessage(i), {{a, -1}, {b, -1}}).ok());
    }
    ASSERT_TRUE(store->Checkpoint(b, 3).ok());
    clock_.AdvanceSeconds(3600 + 120);
    // Inspecting works while the store is open.
    absl::StatusOr<std::string> report =
        InspectStore(options_.directory, &clock_);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_THAT(*report, HasSubstr("upstream"));
    EXPECT_THAT(*report, HasSubstr("alerts"));
    EXPECT_THAT(*report, HasSubstr("0d01h02m00s"));
    EXPECT_THAT(*report, HasSubstr("bytes on disk: "));
    EXPECT_THAT(*report, HasSubstr("payloads: 5"));
  }
  EXPECT_EQ(InspectStore(options_.directory + "/nope", &clock_).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace edgeroute::store
