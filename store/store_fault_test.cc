// Fault injection: the disk fills up (ENOSPC) under the store.

#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "rocksdb/env.h"
#include "store/fault_fs.h"
#include "store/store.h"

namespace edgeroute::store {
namespace {

std::string TestDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/", name);
  EXPECT_EQ(std::system(absl::StrCat("rm -rf '", dir, "'").c_str()), 0);
  return dir;
}

std::string MakeMessage(int i, size_t size) {
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

int MessageNumber(const StoredMessage& m) {
  absl::StatusOr<MessageView> view = MessageView::Verify(
      {reinterpret_cast<const uint8_t*>(m.bytes.data()), m.bytes.size()});
  if (!view.ok()) return -1;
  return std::atoi(std::string(view->FindProperty("n").value).c_str());
}

absl::Status AppendOne(Store* store, const std::string& message, uint32_t q) {
  QueueTarget target{q, -1};
  AppendItem item{
      {reinterpret_cast<const uint8_t*>(message.data()), message.size()},
      absl::MakeConstSpan(&target, 1)};
  return store->Append(absl::MakeConstSpan(&item, 1));
}

std::vector<int> ReadAll(Store* store, uint32_t q) {
  std::vector<StoredMessage> out;
  absl::Status s = store->Read(q, 100000, &out);
  EXPECT_TRUE(s.ok()) << s;
  std::vector<int> numbers;
  for (const StoredMessage& m : out) numbers.push_back(MessageNumber(m));
  return numbers;
}

class StoreFaultTest : public ::testing::TestWithParam<Durability> {};

// The disk fills in the middle of appends (a budget smaller than one batch,
// so the write-ahead log record is torn), then space returns.
TEST_P(StoreFaultTest, FullDiskGivesClearErrorAndStoreRecovers) {
  auto fs = std::make_shared<FaultFileSystem>();
  std::unique_ptr<rocksdb::Env> env = NewFaultEnv(fs);
  FakeClock clock;
  StoreOptions options;
  options.directory =
      TestDir(absl::StrCat("enospc", static_cast<int>(GetParam())));
  options.durability = GetParam();
  options.clock = &clock;
  options.cleanup_interval_ms = 0;
  options.env = env.get();
  std::vector<int> acknowledged;
  {
    absl::StatusOr<std::unique_ptr<Store>> opened = Store::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    Store* store = opened->get();
    absl::StatusOr<uint32_t> q = store->OpenQueue({"q", 0});
    ASSERT_TRUE(q.ok());
    int n = 0;
    for (; n < 20; ++n) {
      ASSERT_TRUE(AppendOne(store, MakeMessage(n, 3000), *q).ok());
      acknowledged.push_back(n);
    }
    fs->SetBudget(1000);
    absl::Status s = AppendOne(store, MakeMessage(n++, 3000), *q);
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("space"));
    EXPECT_GT(fs->failures(), 0);
    // Still full: still a clear error, never a crash -- and refused appends
    // write nothing (no reserve rewritten per attempt).
    const int64_t left = fs->budget();
    for (int i = 0; i < 10; ++i) {
      s = AppendOne(store, MakeMessage(n++, 3000), *q);
      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    }
    EXPECT_EQ(fs->budget(), left);
    // Readable while full.
    EXPECT_EQ(ReadAll(store, *q), acknowledged);

    fs->SetBudget(-1);  // Space returns.
    for (int i = 0; i < 5; ++i, ++n) {
      s = AppendOne(store, MakeMessage(n, 3000), *q);
      ASSERT_TRUE(s.ok()) << s;
      acknowledged.push_back(n);
    }
    EXPECT_EQ(ReadAll(store, *q), acknowledged);
    ASSERT_TRUE(store->Checkpoint(*q, 3).ok());
    ASSERT_TRUE(store->Close().ok());
  }
  // Reopened (with a normal environment): every acknowledged message is
  // there, the failed ones are not.
  options.env = nullptr;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<int> expected(acknowledged.begin() + 3, acknowledged.end());
  EXPECT_EQ(ReadAll(store->get(), 0), expected);
}

// Every write path -- checkpoint and cleanup as well as append -- resumes
// the database once space returns, in whatever order the calls come.
TEST_P(StoreFaultTest, CheckpointAndCleanupRecoverAfterFullDisk) {
  auto fs = std::make_shared<FaultFileSystem>();
  std::unique_ptr<rocksdb::Env> env = NewFaultEnv(fs);
  FakeClock clock;
  StoreOptions options;
  options.directory =
      TestDir(absl::StrCat("enospc_paths", static_cast<int>(GetParam())));
  options.durability = GetParam();
  options.clock = &clock;
  options.cleanup_interval_ms = 0;
  options.env = env.get();
  absl::StatusOr<std::unique_ptr<Store>> opened = Store::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store* store = opened->get();
  absl::StatusOr<uint32_t> q = store->OpenQueue({"q", 0});
  ASSERT_TRUE(q.ok());
  std::vector<int> expected;
  for (int n = 0; n < 20; ++n) {
    ASSERT_TRUE(AppendOne(store, MakeMessage(n, 3000), *q).ok());
    if (n >= 10) expected.push_back(n);
  }
  ASSERT_TRUE(store->Checkpoint(*q, 5).ok());

  fs->SetBudget(0);  // The disk is full.
  EXPECT_EQ(AppendOne(store, MakeMessage(99, 3000), *q).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(store->Checkpoint(*q, 8).ok());
  EXPECT_FALSE(store->RunCleanup(/*force_compaction=*/true).ok());
  Store::Stats stats = store->GetStats();
  EXPECT_GE(stats.append_errors, 1u);
  EXPECT_GE(stats.checkpoint_errors, 1u);
  EXPECT_GE(stats.cleanup_errors, 1u);

  // Space returns. No append comes first: the checkpoint and the cleanup
  // must resume the database themselves.
  fs->SetBudget(-1);
  absl::Status s = store->Checkpoint(*q, 10);
  ASSERT_TRUE(s.ok()) << s;
  s = store->RunCleanup(/*force_compaction=*/true);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(store->GetStats().queues[0].head, 11u);
  EXPECT_EQ(ReadAll(store, *q), expected);
  ASSERT_TRUE(AppendOne(store, MakeMessage(20, 3000), *q).ok());
  expected.push_back(20);
  EXPECT_EQ(ReadAll(store, *q), expected);
}

// The store fills the disk itself; a consumer then delivers everything and
// the space the store's own cleanup frees (deleted files give their bytes
// back) is enough for appends to go on -- no restart, nobody else freeing
// anything. The reserve (StoreOptions::reserve_bytes) is what lets the
// checkpoint and the cleanup write on a full disk.
TEST_P(StoreFaultTest, SpaceTheStoreFreesItselfLetsAppendsResume) {
  auto fs = std::make_shared<FaultFileSystem>();
  fs->SetDeletesFreeSpace(true);
  std::unique_ptr<rocksdb::Env> env = NewFaultEnv(fs);
  FakeClock clock;
  StoreOptions options;
  options.directory =
      TestDir(absl::StrCat("enospc_self", static_cast<int>(GetParam())));
  options.durability = GetParam();
  options.clock = &clock;
  options.cleanup_interval_ms = 0;
  options.write_buffer_bytes = 64 << 10;  // Flushes (and frees logs) often.
  options.reserve_bytes = 256 << 10;
  options.env = env.get();
  fs->SetBudget(4 << 20);  // A 4 MiB disk.
  absl::StatusOr<std::unique_ptr<Store>> opened = Store::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store* store = opened->get();
  absl::StatusOr<uint32_t> q = store->OpenQueue({"q", 0});
  ASSERT_TRUE(q.ok());
  int n = 0;
  absl::Status s;
  for (; n < 10000; ++n) {
    s = AppendOne(store, MakeMessage(n, 4000), *q);
    if (!s.ok()) break;
  }
  ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  // Refused by the store's own space check before RocksDB met ENOSPC (its
  // recovery from that can hang; see CheckFreeSpace in store.cc).
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("disk nearly full"))
      << s;
  const int filled = n;
  ASSERT_GT(filled, 10);
  // Deliver everything, then let cleanup delete and compact.
  std::vector<int> all = ReadAll(store, *q);
  ASSERT_EQ(all.size(), static_cast<size_t>(filled));
  s = store->Checkpoint(*q, filled);
  ASSERT_TRUE(s.ok()) << s;
  // No RunCleanup: the refused append runs the cleanup itself. A good part
  // as much again fits (RocksDB's own files -- info log, MANIFEST -- grew
  // meanwhile).
  const int again = filled / 4;
  for (int i = 0; i < again; ++i) {
    s = AppendOne(store, MakeMessage(100000 + i, 4000), *q);
    ASSERT_TRUE(s.ok()) << i << " of " << again << ": " << s << " (budget "
                        << fs->budget() << ")";
  }
  EXPECT_EQ(ReadAll(store, *q).size(), static_cast<size_t>(again));
}

// Space runs out during open (a brand-new store cannot be created).
TEST(StoreFaultOpenTest, OpenOnFullDiskFailsCleanly) {
  auto fs = std::make_shared<FaultFileSystem>();
  std::unique_ptr<rocksdb::Env> env = NewFaultEnv(fs);
  StoreOptions options;
  options.directory = TestDir("open_full");
  options.cleanup_interval_ms = 0;
  options.env = env.get();
  fs->SetBudget(0);
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kResourceExhausted)
      << store.status();
  fs->SetBudget(-1);
  store = Store::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
}

// Power loss: every file is cut back to what was synced when the power
// failed. kPower must keep every acknowledged message; kProcess (no fsync)
// loses the unsynced ones, which shows that the check can fail.
TEST_P(StoreFaultTest, PowerLossKeepsWhatPowerDurabilityAcknowledged) {
  auto fs = std::make_shared<FaultFileSystem>();
  std::unique_ptr<rocksdb::Env> env = NewFaultEnv(fs);
  FakeClock clock;
  StoreOptions options;
  options.directory =
      TestDir(absl::StrCat("power_loss", static_cast<int>(GetParam())));
  options.durability = GetParam();
  options.clock = &clock;
  options.cleanup_interval_ms = 0;
  options.env = env.get();
  std::vector<int> acknowledged;
  std::map<std::string, uint64_t> synced;
  {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<uint32_t> q = (*store)->OpenQueue({"q", 0});
    ASSERT_TRUE(q.ok());
    for (int n = 0; n < 50; ++n) {
      ASSERT_TRUE(AppendOne(store->get(), MakeMessage(n, 500), *q).ok());
      acknowledged.push_back(n);
    }
    synced = fs->SyncedSizes();  // The power fails here.
    ASSERT_TRUE((*store)->Close().ok());
  }
  const int cut = FaultFileSystem::DropUnsynced(synced);
  if (GetParam() == Durability::kProcess) {
    EXPECT_GT(cut, 0);
  }
  options.env = nullptr;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_EQ((*store)->ListQueues().size(), 1u);  // OpenQueue syncs.
  std::vector<int> present = ReadAll(store->get(), 0);
  if (GetParam() == Durability::kPower) {
    EXPECT_EQ(present, acknowledged);
  } else {
    EXPECT_LT(present.size(), acknowledged.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Durabilities, StoreFaultTest,
                         ::testing::Values(Durability::kProcess,
                                           Durability::kPower));

}  // namespace
}  // namespace edgeroute::store
