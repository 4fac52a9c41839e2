// libFuzzer target for everything the store decodes from disk: the input is
// a list of RocksDB records (column family, key, value; see FUZZING.md for
// the encoding), written into a fresh database with RocksDB itself, which
// the store then opens, reads, checkpoints, cleans up and opens again --
// optionally also `edgeroute store inspect` and `repair` on it.
//
// Beyond "no crash, no sanitizer report" it checks:
//  * round trips of the record encodings of format.h: a reference value, a
//    reference count value and every key that decodes encodes back to the
//    same bytes;
//  * a differential model: what Open lists as queues is exactly the queue
//    records of the input, and what Read returns for each queue is exactly
//    the input's references after the checkpoint that decode, have not
//    expired and point at a payload that verifies as a message -- same
//    offsets, times and bytes, in offset order;
//  * Open fails only with the documented codes (DataLoss,
//    FailedPrecondition), never crashes;
//  * what the store wrote itself (a checkpoint, cleanup) opens again, and
//    every message read and checkpointed stays delivered;
//  * after `repair`, the store opens.
//
// Replayed as a test by //store:record_fuzzer_replay_test; build and run
// with clang: bash scripts/fuzz.sh store_records SECONDS.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/clock.h"
#include "message/message.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/options.h"
#include "store/format.h"
#include "store/options.h"
#include "store/store.h"

namespace edgeroute::store {
namespace {

namespace f = format;

// "Now" for every run (the seeds were made at this time, some with
// references that expire before it).
constexpr int64_t kNowMicros = 1'700'000'000'000'000;
// Records taken from one input, and messages read per queue: bounds the
// time one input can take.
constexpr size_t kMaxRecords = 512;
constexpr size_t kMaxReadPerQueue = 4096;

// Flags byte: bit 1 forces a compaction in the cleanup; a high nibble of
// 5 (one input in 16: a database on disk costs ten times one in memory)
// puts the database on disk and runs inspect and repair on it too.
constexpr uint8_t kFlagForceCompaction = 2;
bool OnDisk(uint8_t flags) { return (flags & 0xf0) == 0x50; }

const char* const kColumnFamilies[] = {f::kMetaCf, f::kPayloadsCf,
                                       f::kPayloadRefsCf, f::kRefsCf};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "record_fuzzer: %s\n", what.c_str());
  std::abort();
}

void Check(bool ok, const std::string& what) {
  if (!ok) Fail(what);
}

struct Record {
  int cf = 0;
  std::string key;
  std::string value;
};

// The input: a flags byte, then records of
//   cf (1 byte, modulo 4) | key length (1 byte) | key | value length (2
//   bytes, big-endian) | value
// A record cut short by the end of the input is dropped.
std::vector<Record> ParseInput(const uint8_t* data, size_t size,
                               uint8_t* flags) {
  std::vector<Record> records;
  *flags = size > 0 ? data[0] : 0;
  size_t at = 1;
  while (at + 2 <= size && records.size() < kMaxRecords) {
    Record r;
    r.cf = data[at] % 4;
    const size_t key_len = data[at + 1];
    at += 2;
    if (at + key_len + 2 > size) break;
    r.key.assign(reinterpret_cast<const char*>(data + at), key_len);
    at += key_len;
    const size_t value_len = (size_t{data[at]} << 8) | data[at + 1];
    at += 2;
    if (at + value_len > size) break;
    r.value.assign(reinterpret_cast<const char*>(data + at), value_len);
    at += value_len;
    records.push_back(std::move(r));
  }
  return records;
}

// What the input's database holds after its writes (a later Put of a key
// replaces an earlier one).
struct Model {
  std::map<std::string, std::string> cf[4];
};

Model BuildModel(const std::vector<Record>& records) {
  Model m;
  for (const Record& r : records) m.cf[r.cf][r.key] = r.value;
  return m;
}

// format.h: whatever decodes encodes back to the same bytes.
void CheckRoundTrips(const Model& m) {
  for (const auto& [key, value] : m.cf[3]) {
    if (key.size() == f::kRefKeySize) {
      f::RefKey again(f::GetBe32(key.data()), f::GetBe64(key.data() + 4));
      Check(again.view() == key, "reference key round trip");
    }
    f::RefValue ref;
    if (ref.Decode(value)) {
      char out[f::kRefValueSize];
      ref.Encode(out);
      Check(absl::string_view(out, sizeof(out)) == value,
            "reference value round trip");
      Check(ref.payload_seq != 0 && ref.enqueue_us >= 0 &&
                ref.expiry_us >= ref.enqueue_us,
            "RefValue::Decode accepted a value the store never writes");
    } else {
      Check(value.size() != f::kRefValueSize || f::GetBe64(value.data()) == 0 ||
                static_cast<int64_t>(f::GetBe64(value.data() + 8)) < 0 ||
                static_cast<int64_t>(f::GetBe64(value.data() + 16)) <
                    static_cast<int64_t>(f::GetBe64(value.data() + 8)),
            "RefValue::Decode refused a valid value");
    }
  }
  for (int cf : {1, 2}) {
    for (const auto& [key, value] : m.cf[cf]) {
      if (key.size() == 8) {
        f::SeqKey again(f::GetBe64(key.data()));
        Check(again.view() == key, "payload key round trip");
      }
      if (cf != 2) continue;
      f::PayloadRefsValue pr;
      Check(pr.Decode(value) == (value.size() == f::kPayloadRefsValueSize),
            "PayloadRefsValue::Decode and the value's size disagree");
      if (value.size() == f::kPayloadRefsValueSize) {
        char out[f::kPayloadRefsValueSize];
        pr.Encode(out);
        Check(absl::string_view(out, sizeof(out)) == value,
              "reference count round trip");
      }
    }
  }
  for (const auto& [key, value] : m.cf[0]) {
    if (key.size() != 5) continue;
    Check(f::QueueMetaKey(key[0], f::GetBe32(key.data() + 1)) == key,
          "queue metadata key round trip");
    if (value.size() == 8) {
      Check(f::Be64String(f::GetBe64(value.data())) == value,
            "checkpoint value round trip");
    }
  }
}

bool VerifiesAsMessage(const std::string& bytes) {
  // Aligned copy, as a reader of the store would make.
  std::vector<uint64_t> storage(bytes.size() / 8 + 1);
  if (!bytes.empty()) std::memcpy(storage.data(), bytes.data(), bytes.size());
  return MessageView::Verify(
             {reinterpret_cast<const uint8_t*>(storage.data()), bytes.size()})
      .ok();
}

// The store directory's marker (FORMAT.md, "Directory").
constexpr char kMarkerFileName[] = "EDGEROUTE-STORE";

// Deletes everything in `dir` of `env` except the marker (on disk, also
// the directory RocksDB's repair leaves behind).
void ClearDirectory(rocksdb::Env* env, const std::string& dir, bool real) {
  std::vector<std::string> children;
  if (!env->GetChildren(dir, &children).ok()) return;
  for (const std::string& name : children) {
    if (name == "." || name == ".." || name == kMarkerFileName) continue;
    if (real) {
      std::error_code ec;
      std::filesystem::remove_all(dir + "/" + name, ec);
    } else {
      env->DeleteFile(dir + "/" + name).PermitUncheckedError();
    }
  }
}

// Writes the records with RocksDB into a new database in `dir`.
void WriteDatabase(rocksdb::Env* env, const std::string& dir,
                   const std::vector<Record>& records) {
  rocksdb::DBOptions options;
  options.env = env;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.info_log_level = rocksdb::InfoLogLevel::HEADER_LEVEL;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const char* name : kColumnFamilies) {
    cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, cfs, &handles, &raw);
  Check(s.ok(), "creating the database: " + s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (const Record& r : records) {
    s = db->Put(rocksdb::WriteOptions(), handles[r.cf], r.key, r.value);
    Check(s.ok(), "writing a record: " + s.ToString());
  }
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    Check(db->DestroyColumnFamilyHandle(h).ok(), "closing a column family");
  }
  Check(db->Close().ok(), "closing the database");
}

// The messages Read must return for queue `q`: the input's references in
// (after, tail] that decode, have not expired and point at a payload that
// verifies, in offset order.
std::vector<StoredMessage> ExpectedMessages(const Model& m, uint32_t q,
                                            uint64_t after, uint64_t tail) {
  std::vector<StoredMessage> out;
  for (const auto& [key, value] : m.cf[3]) {
    if (key.size() != f::kRefKeySize || f::GetBe32(key.data()) != q) continue;
    const uint64_t offset = f::GetBe64(key.data() + 4);
    if (offset <= after || offset > tail) continue;
    f::RefValue ref;
    if (!ref.Decode(value) || ref.expiry_us <= kNowMicros) continue;
    auto payload = m.cf[1].find(std::string(f::SeqKey(ref.payload_seq).view()));
    if (payload == m.cf[1].end() || !VerifiesAsMessage(payload->second)) {
      continue;
    }
    StoredMessage sm;
    sm.offset = offset;
    sm.enqueue_time_us = ref.enqueue_us;
    sm.expiry_us = ref.expiry_us;
    sm.bytes = payload->second;
    out.push_back(std::move(sm));
  }
  return out;
}

// Reads up to kMaxReadPerQueue messages of `q` from its checkpoint.
std::vector<StoredMessage> ReadAll(Store* store, uint32_t q, bool* complete) {
  std::vector<StoredMessage> all, batch;
  absl::Status s = store->Read(q, 64, &batch);
  Check(s.ok(), "Read: " + s.ToString());
  *complete = true;
  while (!batch.empty()) {
    for (StoredMessage& m : batch) all.push_back(std::move(m));
    if (all.size() >= kMaxReadPerQueue) {
      *complete = false;
      break;
    }
    s = store->ReadAfter(q, all.back().offset, 64, &batch);
    Check(s.ok(), "ReadAfter: " + s.ToString());
  }
  return all;
}

StoreOptions Options(rocksdb::Env* env, const std::string& dir,
                     FakeClock* clock) {
  StoreOptions options;
  options.directory = dir;
  options.env = env;
  options.clock = clock;
  options.cleanup_interval_ms = 0;
  options.reserve_bytes = 0;
  options.write_buffer_bytes = 1 << 20;
  return options;
}

bool DocumentedOpenError(const absl::Status& s) {
  return absl::IsDataLoss(s) || absl::IsFailedPrecondition(s);
}

struct Directories {
  std::unique_ptr<rocksdb::Env> mem_env;
  std::string mem_dir;   // a path in mem_env; a marked directory on disk
  std::string real_dir;  // on disk, for inspect and repair
};

const Directories& Dirs() {
  static const Directories* dirs = [] {
    auto* d = new Directories;
    d->mem_env.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string base =
        std::string(tmp != nullptr ? tmp : "/tmp") + "/record_fuzzer_XXXXXX";
    Check(mkdtemp(base.data()) != nullptr, "mkdtemp");
    d->mem_dir = base + "/mem";
    d->real_dir = base + "/disk";
    // A first store in each makes the directory a store directory (its
    // marker is on disk in both cases): later databases written there with
    // RocksDB alone are then opened as stores, whatever their records.
    FakeClock clock(kNowMicros);
    for (const bool real : {false, true}) {
      absl::StatusOr<std::unique_ptr<Store>> store =
          Store::Open(Options(real ? rocksdb::Env::Default() : d->mem_env.get(),
                              real ? d->real_dir : d->mem_dir, &clock));
      Check(store.ok(), "creating a store: " + store.status().ToString());
      Check((*store)->Close().ok(), "closing the first store");
    }
    return d;
  }();
  return *dirs;
}

void Run(const uint8_t* data, size_t size) {
  uint8_t flags = 0;
  const std::vector<Record> records = ParseInput(data, size, &flags);
  const Model model = BuildModel(records);
  CheckRoundTrips(model);

  const Directories& dirs = Dirs();
  const bool real = OnDisk(flags);
  rocksdb::Env* env = real ? rocksdb::Env::Default() : dirs.mem_env.get();
  const std::string& dir = real ? dirs.real_dir : dirs.mem_dir;
  ClearDirectory(env, dir, real);
  WriteDatabase(env, dir, records);

  FakeClock clock(kNowMicros);
  const StoreOptions options = Options(env, dir, &clock);
  absl::StatusOr<std::unique_ptr<Store>> opened = Store::Open(options);
  if (!opened.ok()) {
    Check(
        DocumentedOpenError(opened.status()),
        "Open failed with an undocumented code: " + opened.status().ToString());
    if (real) {
      InspectStore(dir, &clock).IgnoreError();
      RepairStore(dir).IgnoreError();
    }
    return;
  }
  std::unique_ptr<Store> store = std::move(*opened);

  // Queues: exactly the queue records of the input, by handle.
  const std::vector<QueueId> queues = store->ListQueues();
  {
    std::map<uint32_t, QueueId> expected;
    for (const auto& [key, value] : model.cf[0]) {
      if (key.size() == 5 && key[0] == f::kQueueTag) {
        expected[f::GetBe32(key.data() + 1)] = {value.substr(1),
                                                static_cast<uint8_t>(value[0])};
      }
    }
    Check(queues.size() == expected.size(), "queue count differs from model");
    for (const auto& [handle, id] : expected) {
      Check(handle < queues.size() && queues[handle] == id,
            "queue record differs from model");
    }
  }

  // Reads: exactly the model's messages after the checkpoint.
  const Store::Stats stats = store->GetStats();
  Check(stats.queues.size() == queues.size(), "stats per queue");
  std::vector<uint64_t> checkpointed(queues.size(), 0);
  std::vector<bool> complete(queues.size(), false);
  for (uint32_t q = 0; q < queues.size(); ++q) {
    uint64_t removed = 0;
    auto r = model.cf[0].find(f::QueueMetaKey(f::kRemovedTag, q));
    // A marker that leaves no room to append is corrupt, as one of the
    // wrong size is: the store ignores it (and delivers again).
    if (r != model.cf[0].end() && r->second.size() == 8 &&
        f::GetBe64(r->second.data()) < (uint64_t{1} << 63)) {
      removed = f::GetBe64(r->second.data());
    }
    const Store::QueueStats& qs = stats.queues[q];
    Check(qs.checkpoint <= qs.tail, "checkpoint beyond the tail");
    bool all = false;
    const std::vector<StoredMessage> got = ReadAll(store.get(), q, &all);
    complete[q] = all;
    const std::vector<StoredMessage> want =
        ExpectedMessages(model, q, std::max(qs.checkpoint, removed), qs.tail);
    if (all) {
      Check(got.size() == want.size(),
            "Read returned " + std::to_string(got.size()) +
                " messages, model has " + std::to_string(want.size()));
    }
    for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
      Check(
          got[i].offset == want[i].offset &&
              got[i].enqueue_time_us == want[i].enqueue_time_us &&
              got[i].expiry_us == want[i].expiry_us &&
              got[i].bytes == want[i].bytes,
          "Read differs from model at offset " + std::to_string(got[i].offset));
      Check(i == 0 || got[i].offset > got[i - 1].offset, "offset order");
    }
    if (!got.empty()) {
      absl::Status s = store->Checkpoint(q, got.back().offset);
      Check(s.ok(), "Checkpoint: " + s.ToString());
      checkpointed[q] = got.back().offset;
    }
  }
  // A message appended now reaches every queue after what was read.
  if (!queues.empty()) {
    MessageBuilder builder;
    builder.SetBody("{\"appended\":true}");
    const absl::Span<const uint8_t> bytes = builder.Finish();
    std::vector<QueueTarget> targets;
    for (uint32_t q = 0; q < queues.size(); ++q) targets.push_back({q, -1});
    AppendItem item{bytes, targets};
    absl::Status s = store->Append(absl::MakeConstSpan(&item, 1));
    Check(s.ok(), "Append: " + s.ToString());
    const std::string appended(reinterpret_cast<const char*>(bytes.data()),
                               bytes.size());
    for (uint32_t q = 0; q < queues.size(); ++q) {
      if (!complete[q]) continue;
      std::vector<StoredMessage> batch;
      s = store->Read(q, 64, &batch);
      Check(s.ok(), "Read after Append: " + s.ToString());
      Check(batch.size() == 1 && batch[0].bytes == appended &&
                batch[0].offset > checkpointed[q],
            "queue " + std::to_string(q) +
                ": a message appended after open "
                "reads back as " +
                std::to_string(batch.size()) + " messages" +
                (batch.empty() ? std::string()
                               : ", the first at offset " +
                                     std::to_string(batch[0].offset)));
      s = store->Checkpoint(q, batch[0].offset);
      Check(s.ok(), "Checkpoint after Append: " + s.ToString());
      checkpointed[q] = batch[0].offset;
    }
  }
  store->RunCleanup((flags & kFlagForceCompaction) != 0).IgnoreError();
  static_cast<void>(store->GetStats());
  Check(store->Close().ok(), "Close");
  store.reset();

  // What the store wrote itself opens again, and stays delivered.
  opened = Store::Open(options);
  Check(opened.ok(),
        "reopen after checkpoint and cleanup: " + opened.status().ToString());
  store = std::move(*opened);
  Check(store->ListQueues() == queues, "queues changed across a reopen");
  for (uint32_t q = 0; q < queues.size(); ++q) {
    if (!complete[q]) continue;
    std::vector<StoredMessage> batch;
    Check(store->Read(q, 64, &batch).ok(), "Read after reopen");
    Check(batch.empty() || batch.front().offset > checkpointed[q],
          "a checkpointed message came back after a reopen");
  }
  Check(store->Close().ok(), "Close after reopen");
  store.reset();

  if (real) {
    absl::StatusOr<std::string> report = InspectStore(dir, &clock);
    Check(report.ok(), "inspect: " + report.status().ToString());
    report = RepairStore(dir);
    Check(report.ok(), "repair: " + report.status().ToString());
    opened = Store::Open(options);
    Check(opened.ok(), "open after repair: " + opened.status().ToString());
  }
}

}  // namespace
}  // namespace edgeroute::store

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  edgeroute::store::Run(data, size);
  return 0;
}
