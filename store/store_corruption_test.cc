// Corrupt records (payloads, references, reference counts, checkpoints) are
// quarantined -- logged, counted once, skipped -- and the queue moves on.
// Records are damaged through RocksDB itself, as flipped bits that the
// block checksums did not catch would look to the store.

#include <dirent.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "rocksdb/db.h"
#include "store/store.h"

namespace edgeroute::store {
namespace {

std::string TestDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/", name);
  EXPECT_EQ(std::system(absl::StrCat("rm -rf '", dir, "'").c_str()), 0);
  return dir;
}

std::string MakeMessage(int i) {
  MessageBuilder builder;
  builder.SetBody(absl::StrCat("{\"n\":", i, "}"));
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

std::string Be(uint64_t v, int bytes) {
  std::string s(bytes, '\0');
  for (int i = bytes - 1; i >= 0; --i, v >>= 8) s[i] = static_cast<char>(v);
  return s;
}
std::string RefKey(uint32_t queue, uint64_t offset) {
  return Be(queue, 4) + Be(offset, 8);
}
std::string SeqKey(uint64_t seq) { return Be(seq, 8); }
std::string MetaKey(char tag, uint32_t queue) {
  return std::string(1, tag) + Be(queue, 4);
}

enum Cf { kMeta = 0, kPayloads = 1, kPayloadRefs = 2, kRefs = 3 };

class StoreCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.directory = TestDir(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    options_.clock = &clock_;
    options_.cleanup_interval_ms = 0;
    options_.reserve_bytes = 0;
  }

  // Creates queue 0 ("q") with messages 0..n-1 at offsets 1..n (payload
  // sequences 1..n) and closes the store.
  void Fill(int n) {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options_);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<uint32_t> q = (*store)->OpenQueue({"q", 0});
    ASSERT_TRUE(q.ok());
    for (int i = 0; i < n; ++i) {
      const std::string m = MakeMessage(i);
      QueueTarget target{*q, -1};
      AppendItem item{{reinterpret_cast<const uint8_t*>(m.data()), m.size()},
                      absl::MakeConstSpan(&target, 1)};
      ASSERT_TRUE((*store)->Append(absl::MakeConstSpan(&item, 1)).ok());
    }
    ASSERT_TRUE((*store)->Close().ok());
  }

  // Changes the records with raw RocksDB: `edit` gets the database and the
  // four column families (Cf order).
  void Damage(
      const std::function<void(
          rocksdb::DB*, std::vector<rocksdb::ColumnFamilyHandle*>&)>& edit) {
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
    edit(db, handles);
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    delete db;
  }
  // Flips bits of byte `at` of a record.
  static void Flip(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                   const std::string& key, size_t at) {
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), cf, key, &value).ok());
    ASSERT_LT(at, value.size());
    value[at] = static_cast<char>(value[at] ^ 0xA5);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cf, key, value).ok());
  }

  std::vector<int> ReadNumbers(Store* store, size_t max = 1000) {
    std::vector<StoredMessage> out;
    absl::Status s = store->Read(0, max, &out);
    EXPECT_TRUE(s.ok()) << s;
    std::vector<int> numbers;
    for (const StoredMessage& m : out) numbers.push_back(MessageNumber(m));
    return numbers;
  }

  std::unique_ptr<Store> Reopen() {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  FakeClock clock_;
  StoreOptions options_;
};

TEST_F(StoreCorruptionTest, CorruptPayloadsAreQuarantinedAndTheQueueMovesOn) {
  Fill(8);
  Damage([](rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cf) {
    Flip(db, cf[kPayloads], SeqKey(3), 5);  // message 2: file identifier
    ASSERT_TRUE(                            // message 5: gone
        db->Delete(rocksdb::WriteOptions(), cf[kPayloads], SeqKey(6)).ok());
  });
  std::unique_ptr<Store> store = Reopen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ReadNumbers(store.get()), (std::vector<int>{0, 1, 3, 4, 6, 7}));
  EXPECT_EQ(store->GetStats().quarantined, 2u);
  // Counted once however often a reader passes them.
  EXPECT_EQ(ReadNumbers(store.get()), (std::vector<int>{0, 1, 3, 4, 6, 7}));
  EXPECT_EQ(store->GetStats().quarantined, 2u);
  EXPECT_EQ(store->GetStats().read_errors, 0u);
  // Delivered past them: cleanup removes everything, the damaged too.
  ASSERT_TRUE(store->Checkpoint(0, 8).ok());
  absl::Status s = store->RunCleanup(true);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(store->GetStats().queues[0].head, 9u);
  EXPECT_EQ(store->GetStats().cleanup_errors, 0u);
}

TEST_F(StoreCorruptionTest, ShortReadsNeverComeBackEmptyBecauseOfCorruption) {
  Fill(8);
  Damage([](rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cf) {
    for (uint64_t seq : {1, 2, 3}) Flip(db, cf[kPayloads], SeqKey(seq), 4);
  });
  std::unique_ptr<Store> store = Reopen();
  ASSERT_NE(store, nullptr);
  // The first two references are corrupt: a read of 2 still returns 2.
  EXPECT_EQ(ReadNumbers(store.get(), 2), (std::vector<int>{3, 4}));
  EXPECT_EQ(store->GetStats().quarantined, 3u);
}

TEST_F(StoreCorruptionTest, CorruptReferencesAreQuarantined) {
  Fill(8);
  Damage([](rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cf) {
    // Offset 2: payload sequence points nowhere. Offset 4: an expiry before
    // the enqueue time. Offset 6: truncated.
    Flip(db, cf[kRefs], RefKey(0, 2), 0);
    Flip(db, cf[kRefs], RefKey(0, 4), 16);
    std::string value;
    ASSERT_TRUE(
        db->Get(rocksdb::ReadOptions(), cf[kRefs], RefKey(0, 6), &value).ok());
    value.resize(20);
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), cf[kRefs], RefKey(0, 6), value).ok());
  });
  std::unique_ptr<Store> store = Reopen();  // Open no longer fails.
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ReadNumbers(store.get()), (std::vector<int>{0, 2, 4, 6, 7}));
  EXPECT_EQ(store->GetStats().quarantined, 3u);
  ASSERT_TRUE(store->Checkpoint(0, 8).ok());
  absl::Status s = store->RunCleanup(true);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(store->GetStats().queues[0].head, 9u);
  // Appends go on.
  const std::string m = MakeMessage(8);
  QueueTarget target{0, -1};
  AppendItem item{{reinterpret_cast<const uint8_t*>(m.data()), m.size()},
                  absl::MakeConstSpan(&target, 1)};
  ASSERT_TRUE(store->Append(absl::MakeConstSpan(&item, 1)).ok());
  EXPECT_EQ(ReadNumbers(store.get()), (std::vector<int>{8}));
}

TEST_F(StoreCorruptionTest,
       CorruptReferenceCountIsQuarantinedAndCleanupGoesOn) {
  Fill(4);
  Damage([](rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cf) {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cf[kPayloadRefs], SeqKey(2),
                        "\x01\x02\x03")
                    .ok());
  });
  std::unique_ptr<Store> store = Reopen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetStats().quarantined, 1u);
  EXPECT_EQ(ReadNumbers(store.get()), (std::vector<int>{0, 1, 2, 3}));
  ASSERT_TRUE(store->Checkpoint(0, 4).ok());
  absl::Status s = store->RunCleanup(true);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(store->GetStats().queues[0].head, 5u);
}

TEST_F(StoreCorruptionTest, CorruptCheckpointDeliversAgainInsteadOfLosing) {
  Fill(6);
  {
    std::unique_ptr<Store> store = Reopen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Checkpoint(0, 2).ok());
    ASSERT_TRUE(store->Close().ok());
  }
  // The checkpoint's top byte flips: it would claim offsets that were never
  // appended, and skip (lose) 3..6.
  Damage([](rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cf) {
    Flip(db, cf[kMeta], MetaKey('C', 0), 0);
  });
  std::unique_ptr<Store> store = Reopen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetStats().quarantined, 1u);
  EXPECT_EQ(store->GetStats().queues[0].tail, 6u);
  EXPECT_EQ(ReadNumbers(store.get()), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  ASSERT_TRUE(store->Close().ok());
  store.reset();

  // A checkpoint record of the wrong size: the same.
  Damage([](rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cf) {
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), cf[kMeta], MetaKey('C', 0), "\x07")
            .ok());
  });
  store = Reopen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetStats().quarantined, 1u);
  EXPECT_EQ(ReadNumbers(store.get()), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  // The queue goes on: a new checkpoint replaces the corrupt record.
  ASSERT_TRUE(store->Checkpoint(0, 6).ok());
  ASSERT_TRUE(store->Close().ok());
  store = Reopen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetStats().quarantined, 0u);
  EXPECT_TRUE(ReadNumbers(store.get()).empty());
}

// A queue record whose priority OpenQueue would refuse: no router reads
// such a queue, so its messages would wait forever. The open says so.
TEST_F(StoreCorruptionTest, QueueRecordWithImpossiblePriorityIsDataLoss) {
  Fill(2);
  Damage([](rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cf) {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cf[kMeta], MetaKey('Q', 0),
                        std::string("\x0bq"))
                    .ok());
  });
  absl::StatusOr<std::unique_ptr<Store>> broken = Store::Open(options_);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kDataLoss)
      << broken.status();
  EXPECT_NE(broken.status().message().find("queue 0"), std::string::npos)
      << broken.status();
}

TEST_F(StoreCorruptionTest, RepairRemovesDamagedRecordsAndRecounts) {
  Fill(6);
  {
    std::unique_ptr<Store> store = Reopen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Checkpoint(0, 1).ok());
    ASSERT_TRUE(store->Close().ok());
  }
  Damage([](rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& cf) {
    Flip(db, cf[kPayloads], SeqKey(3), 5);  // message 2
    ASSERT_TRUE(                            // message 4's reference: truncated
        db->Put(rocksdb::WriteOptions(), cf[kRefs], RefKey(0, 5), "xx").ok());
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), cf[kPayloadRefs], SeqKey(2), "\x01")
            .ok());
    Flip(db, cf[kMeta], MetaKey('C', 0), 0);
  });
  absl::StatusOr<std::string> report = RepairStore(options_.directory);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_NE(report->find("2 references and 2 payloads removed, 1 reference "
                         "counts rewritten, 1 checkpoint records fixed"),
            std::string::npos)
      << *report;
  EXPECT_NE(report->find("queue 'q' offset 3: payload 3 is missing or not a "
                         "valid message (removed)"),
            std::string::npos)
      << *report;
  std::unique_ptr<Store> store = Reopen();
  ASSERT_NE(store, nullptr);
  // Nothing left to quarantine; the rest delivers (from the start again:
  // the checkpoint was corrupt).
  EXPECT_EQ(ReadNumbers(store.get()), (std::vector<int>{0, 1, 3, 5}));
  Store::Stats stats = store->GetStats();
  EXPECT_EQ(stats.quarantined, 0u);
  EXPECT_EQ(stats.payloads, 4u);
  ASSERT_TRUE(store->Checkpoint(0, 6).ok());
  ASSERT_TRUE(store->RunCleanup(true).ok());
  EXPECT_EQ(store->GetStats().payloads, 0u);
  EXPECT_EQ(store->GetStats().stored_bytes, 0u);
}

TEST_F(StoreCorruptionTest,
       UnreadableStoreGivesAClearErrorAndRepairRebuildsIt) {
  Fill(5);
  {
    FILE* current = std::fopen((options_.directory + "/CURRENT").c_str(), "wb");
    ASSERT_NE(current, nullptr);
    std::fputs("garbage", current);
    std::fclose(current);
  }
  absl::StatusOr<std::unique_ptr<Store>> broken = Store::Open(options_);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kDataLoss)
      << broken.status();
  EXPECT_NE(broken.status().message().find("edgeroute store repair"),
            std::string::npos)
      << broken.status();
  absl::StatusOr<std::string> report = RepairStore(options_.directory);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_NE(report->find("CURRENT was damaged"), std::string::npos) << *report;
  std::unique_ptr<Store> store = Reopen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ReadNumbers(store.get()), (std::vector<int>{0, 1, 2, 3, 4}));
}

// Damaged table files: RocksDB's RepairDB rebuilds the database from what
// is readable, then the records are checked; the store opens and reads.
TEST_F(StoreCorruptionTest, RepairRebuildsDamagedTableFiles) {
  {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options_);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<uint32_t> q = (*store)->OpenQueue({"q", 0});
    ASSERT_TRUE(q.ok());
    for (int i = 0; i < 300; ++i) {
      const std::string m = MakeMessage(i);
      QueueTarget target{*q, -1};
      AppendItem item{{reinterpret_cast<const uint8_t*>(m.data()), m.size()},
                      absl::MakeConstSpan(&target, 1)};
      ASSERT_TRUE((*store)->Append(absl::MakeConstSpan(&item, 1)).ok());
      if (i == 149) {  // A table file
        ASSERT_TRUE((*store)->RunCleanup(true).ok());
      }
    }
    ASSERT_TRUE((*store)->RunCleanup(true).ok());  // and another.
    ASSERT_TRUE((*store)->Close().ok());
  }
  // Overwrite the middle of the largest table file.
  std::string largest;
  int64_t largest_size = 0;
  DIR* d = opendir(options_.directory.c_str());
  ASSERT_NE(d, nullptr);
  while (struct dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() < 4 || name.substr(name.size() - 4) != ".sst") continue;
    struct stat st;
    const std::string path = options_.directory + "/" + name;
    if (stat(path.c_str(), &st) == 0 && st.st_size > largest_size) {
      largest_size = st.st_size;
      largest = path;
    }
  }
  closedir(d);
  ASSERT_FALSE(largest.empty());
  {
    FILE* file = std::fopen(largest.c_str(), "r+b");
    ASSERT_NE(file, nullptr);
    std::fseek(file, largest_size / 3, SEEK_SET);
    const std::string junk(largest_size / 4, 'X');
    std::fwrite(junk.data(), 1, junk.size(), file);
    std::fclose(file);
  }
  absl::StatusOr<std::string> report = RepairStore(options_.directory);
  ASSERT_TRUE(report.ok()) << report.status();
  std::unique_ptr<Store> store = Reopen();
  ASSERT_NE(store, nullptr);
  std::vector<StoredMessage> out;
  absl::Status s = store->Read(0, 1000, &out);
  EXPECT_TRUE(s.ok()) << s << "\n" << *report;
  EXPECT_EQ(store->GetStats().quarantined, 0u) << *report;
  // Not while it is open; once closed, a second repair finds nothing to do.
  EXPECT_EQ(RepairStore(options_.directory).status().code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE(store->Close().ok());
  report = RepairStore(options_.directory);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_NE(report->find("0 references and 0 payloads removed"),
            std::string::npos)
      << *report;
}

TEST_F(StoreCorruptionTest, RepairRefusesWhatIsNotAStore) {
  const std::string dir = TestDir("not-a-store");
  ASSERT_EQ(
      std::system(
          ("mkdir -p '" + dir + "' && touch '" + dir + "/notes.txt'").c_str()),
      0);
  EXPECT_EQ(RepairStore(dir).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace edgeroute::store
