// Writes the seed corpus of record_fuzzer: stores made by the real Store
// (appends to several queues, shared payloads, TTLs, checkpoints, cleanup,
// drop-oldest at a size limit), dumped record by record in the fuzzer's
// input encoding (FUZZING.md). Run once after a format change:
//   bazel run //store:record_fuzzer_seeds -- "$PWD/store/fuzz_corpus/records"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "message/message.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "store/format.h"
#include "store/options.h"
#include "store/store.h"

namespace edgeroute::store {
namespace {

// record_fuzzer's "now"; the seeds are made a little before it.
constexpr int64_t kFuzzerNowMicros = 1'700'000'000'000'000;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "record_fuzzer_seeds: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Fail(absl::StrCat(what, ": ", v.status().ToString()));
  return *std::move(v);
}

void Must(const absl::Status& s, const char* what) {
  if (!s.ok()) Fail(absl::StrCat(what, ": ", s.ToString()));
}

// Appends `n` messages to `targets`, numbered from `first`.
void Append(Store* store, std::vector<QueueTarget> targets, int first, int n,
            int pad = 0) {
  MessageBuilder builder;
  for (int i = first; i < first + n; ++i) {
    builder.Clear();
    builder.SetBody(absl::StrCat("{\"n\":", i, ",\"pad\":\"",
                                 std::string(pad, 'x'), "\"}"));
    builder.AddProperty("n", absl::StrCat(i));
    builder.AddSystemProperty("contentType", "application/json");
    AppendItem item{builder.Finish(), targets};
    Must(store->Append(absl::MakeConstSpan(&item, 1)), "append");
  }
}

// Reads `n` messages of `q` and checkpoints the last.
void Deliver(Store* store, uint32_t q, size_t n) {
  std::vector<StoredMessage> batch;
  Must(store->Read(q, n, &batch), "read");
  if (!batch.empty()) Must(store->Checkpoint(q, batch.back().offset), "ckpt");
}

// Every record of the store in `dir`, in the fuzzer's encoding.
std::string Dump(const std::string& dir, uint8_t flags) {
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const char* name : {format::kMetaCf, format::kPayloadsCf,
                           format::kPayloadRefsCf, format::kRefsCf}) {
    cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir,
                                                   cfs, &handles, &raw);
  if (!s.ok()) Fail("opening " + dir + ": " + s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string out(1, static_cast<char>(flags));
  for (size_t cf = 0; cf < handles.size(); ++cf) {
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), handles[cf]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const rocksdb::Slice k = it->key(), v = it->value();
      if (k.size() > 255 || v.size() > 65535) Fail("record too large");
      out += static_cast<char>(cf);
      out += static_cast<char>(k.size());
      out.append(k.data(), k.size());
      out += static_cast<char>(v.size() >> 8);
      out += static_cast<char>(v.size() & 0xff);
      out.append(v.data(), v.size());
    }
  }
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  return out;
}

struct Scenario {
  const char* name;
  std::function<void(Store*, FakeClock*)> run;
  StoreOptions options;
};

int Main(int argc, char** argv) {
  if (argc != 2) Fail("usage: record_fuzzer_seeds OUTPUT_DIR");
  const std::string out_dir = argv[1];
  char tmpl[] = "/tmp/record_fuzzer_seeds_XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Fail("mkdtemp");
  StoreOptions base;
  base.cleanup_interval_ms = 0;
  base.reserve_bytes = 0;
  StoreOptions limited = base;
  limited.max_bytes = 4096;
  limited.full_policy = FullPolicy::kDropOldest;

  const std::vector<Scenario> scenarios = {
      {"empty", [](Store*, FakeClock*) {}, base},
      {"one_queue",
       [](Store* s, FakeClock*) {
         const uint32_t q = Must(s->OpenQueue({"upstream", 0}), "queue");
         Append(s, {{q, -1}}, 1, 5);
       },
       base},
      {"shared_payloads_checkpoint",
       [](Store* s, FakeClock*) {
         const uint32_t a = Must(s->OpenQueue({"upstream", 0}), "queue");
         const uint32_t b =
             Must(s->OpenQueue({"/modules/f/inputs/in", 10}), "queue");
         Append(s, {{a, -1}, {b, 3600}}, 1, 6);
         Deliver(s, a, 2);
         Deliver(s, b, 4);
       },
       base},
      {"cleanup",
       [](Store* s, FakeClock*) {
         const uint32_t a = Must(s->OpenQueue({"upstream", 0}), "queue");
         const uint32_t b = Must(s->OpenQueue({"alerts", 3}), "queue");
         Append(s, {{a, -1}, {b, -1}}, 1, 8);
         Append(s, {{b, -1}}, 9, 3);
         Deliver(s, a, 5);
         Deliver(s, b, 9);
         Must(s->RunCleanup(true), "cleanup");
       },
       base},
      {"expired",
       [](Store* s, FakeClock* clock) {
         const uint32_t a = Must(s->OpenQueue({"telemetry", 10}), "queue");
         Append(s, {{a, 60}}, 1, 3);
         Append(s, {{a, -1}}, 4, 1);
         Append(s, {{a, 7200}}, 5, 2);
         clock->AdvanceSeconds(120);
         Append(s, {{a, 30}}, 7, 2);
       },
       base},
      {"drop_oldest",
       [](Store* s, FakeClock*) {
         const uint32_t a = Must(s->OpenQueue({"low", 10}), "queue");
         const uint32_t b = Must(s->OpenQueue({"high", 0}), "queue");
         Append(s, {{a, -1}}, 1, 10, 100);
         Append(s, {{b, -1}}, 11, 5, 100);
       },
       limited},
  };
  for (const Scenario& sc : scenarios) {
    // In memory, and on disk with inspect and repair; with and without a
    // forced compaction (record_fuzzer.cc, the flags byte).
    for (const uint8_t flags : {0x00, 0x02, 0x50, 0x52}) {
      const std::string dir = absl::StrCat(tmpl, "/", sc.name, flags);
      // The messages are made two minutes before the fuzzer's "now".
      FakeClock clock(kFuzzerNowMicros - 240'000'000);
      StoreOptions options = sc.options;
      options.directory = dir;
      options.clock = &clock;
      std::unique_ptr<Store> store = Must(Store::Open(options), "open");
      sc.run(store.get(), &clock);
      Must(store->Close(), "close");
      store.reset();
      const std::string bytes = Dump(dir, flags);
      const std::string path =
          absl::StrCat(out_dir, "/seed_", sc.name, "_", int{flags});
      std::ofstream(path, std::ios::binary) << bytes;
      std::printf("%s: %zu bytes\n", path.c_str(), bytes.size());
    }
  }
  return std::system(absl::StrCat("rm -rf '", tmpl, "'").c_str()) == 0 ? 0 : 1;
}

}  // namespace
}  // namespace edgeroute::store

int main(int argc, char** argv) { return edgeroute::store::Main(argc, argv); }
