// Store benchmarks. Run with -c opt:
//   bazel run -c opt //bench:store_bench -- --benchmark_format=console
//
// BM_Append/<level>/<bytes>/<queues>: edgeroute Store::Append, batches of
// kBatch messages of <bytes> bytes, each referenced by <queues> queues.
// BM_RawRocksDbBatch/<level>/<bytes>/<queues>: the same bytes (payload,
// reference-count record, one 36-byte reference per queue) written with a
// plain RocksDB WriteBatch per batch, on the same RocksDB options and sync
// setting: the baseline the store is compared with. "threads:N" variants run
// N concurrent appenders (group commit).
// BM_Drain: read + checkpoint of a backlog (EDGEROUTE_DRAIN_MESSAGES,
// default 1,000,000).
//
// Counters: wamp = bytes RocksDB wrote to files (WAL, flush, compaction) per
// payload byte appended; disk_B_per_msg = directory size per stored message.
// Directories go under $TMPDIR (default /tmp) and are deleted afterwards.

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "message/message.h"
#include "rocksdb/db.h"
#include "rocksdb/statistics.h"
#include "rocksdb/write_batch.h"
#include "store/rocksdb_options.h"
#include "store/store.h"

namespace edgeroute::store {
namespace {

constexpr int kBatch = 16;

std::string BenchDir(const std::string& name) {
  std::string dir =
      (std::filesystem::temp_directory_path() /
       absl::StrCat("edgeroute_store_bench_", getpid(), "_", name))
          .string();
  std::filesystem::remove_all(dir);
  return dir;
}

uint64_t DirBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file()) total += entry.file_size();
  }
  return total;
}

// A message of about `size` bytes with a JSON-like, partly random body.
std::string MakeMessage(size_t size, uint64_t seed) {
  MessageBuilder builder;
  builder.Clear();
  builder.AddSystemProperty("connectionDeviceId", "sensor-17");
  builder.AddSystemProperty("contentType", "application/json");
  builder.AddProperty("level", "info");
  std::string body = "{\"temperature\":";
  std::mt19937_64 random(seed);
  while (body.size() + 120 < size) {
    absl::StrAppend(&body, random() % 1000, ".", random() % 100, ",\"x\":");
  }
  body += "0}";
  builder.SetBody(body);
  absl::Span<const uint8_t> bytes = builder.Finish();
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Shared state of one benchmark run (all threads).
struct Fixture {
  std::string dir;
  std::unique_ptr<Store> store;
  std::vector<uint32_t> queues;
  // Raw baseline.
  std::unique_ptr<rocksdb::DB> raw;
  std::shared_ptr<rocksdb::Statistics> raw_stats;
  std::atomic<uint64_t> raw_next{1};
  std::vector<std::string> messages;
  std::atomic<uint64_t> payload_bytes{0};
  std::atomic<uint64_t> stored{0};
};
Fixture* fixture = nullptr;

void SetUpFixture(bool raw, bool power, size_t bytes, int queues) {
  fixture = new Fixture;
  fixture->dir = BenchDir(raw ? "raw" : "store");
  for (int i = 0; i < 64; ++i)
    fixture->messages.push_back(MakeMessage(bytes, i));
  StoreOptions options;
  options.directory = fixture->dir;
  options.durability = power ? Durability::kPower : Durability::kProcess;
  options.cleanup_interval_ms = 0;
  if (raw) {
    rocksdb::Options db_options = MakeRocksDbOptions(options);
    fixture->raw_stats = db_options.statistics;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(db_options, fixture->dir, &db);
    if (!s.ok()) std::abort();
    fixture->raw.reset(db);
  } else {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    if (!store.ok()) std::abort();
    fixture->store = std::move(*store);
    for (int q = 0; q < queues; ++q) {
      fixture->queues.push_back(*fixture->store->OpenQueue(
          {absl::StrCat("ep", q), kDefaultPriority}));
    }
  }
}

// Google Benchmark's Setup takes a plain function: one instantiation per
// configuration keeps the benchmark names free of argument suffixes.
template <bool kRaw, int kLevel, int kBytes, int kQueues>
void SetUp(const benchmark::State&) {
  SetUpFixture(kRaw, kLevel == 1, kBytes, kQueues);
}

void TearDown(const benchmark::State&) {
  if (fixture->store != nullptr) fixture->store->Close().IgnoreError();
  if (fixture->raw != nullptr) fixture->raw->Close().PermitUncheckedError();
  std::filesystem::remove_all(fixture->dir);
  delete fixture;
  fixture = nullptr;
}

void ReportCounters(benchmark::State& state, uint64_t written_to_disk) {
  if (state.thread_index() != 0) return;
  const double payload = static_cast<double>(fixture->payload_bytes.load());
  const double stored = static_cast<double>(fixture->stored.load());
  if (payload > 0) {
    state.counters["wamp"] = static_cast<double>(written_to_disk) / payload;
  }
  if (stored > 0) {
    state.counters["disk_B_per_msg"] =
        static_cast<double>(DirBytes(fixture->dir)) / stored;
  }
}

void BM_Append(benchmark::State& state, int queues) {
  std::vector<QueueTarget> targets;
  for (int q = 0; q < queues; ++q) targets.push_back({fixture->queues[q], -1});
  std::vector<AppendItem> items(kBatch);
  size_t next = state.thread_index() * 7;
  for (auto _ : state) {
    uint64_t bytes = 0;
    for (AppendItem& item : items) {
      const std::string& m = fixture->messages[next++ % 64];
      item.message = {reinterpret_cast<const uint8_t*>(m.data()), m.size()};
      item.targets = targets;
      bytes += m.size();
    }
    if (!fixture->store->Append(items).ok()) {
      state.SkipWithError("append failed");
      break;
    }
    // Inside the loop, so every thread's totals are in before thread 0
    // reports (the loop ends with a barrier across threads).
    fixture->payload_bytes.fetch_add(bytes, std::memory_order_relaxed);
    fixture->stored.fetch_add(kBatch, std::memory_order_relaxed);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  ReportCounters(state, fixture->store->GetStats().bytes_written_to_disk);
}

void BM_RawRocksDbBatch(benchmark::State& state, bool power, int queues) {
  rocksdb::WriteOptions wo;
  wo.sync = power;
  rocksdb::WriteBatch wb;
  size_t next = state.thread_index() * 7;
  char ref[36] = {};
  char count[16] = {};
  for (auto _ : state) {
    uint64_t bytes = 0;
    wb.Clear();
    // Keys from a shared counter, as the store's sequences are; every key
    // (8-byte payload and count keys, 12-byte reference keys = counter + 4
    // zero bytes) sorts after the previous one, so the baseline appends at
    // the end of the memtable like the store does.
    uint64_t key = fixture->raw_next.fetch_add(kBatch * (queues + 2));
    for (int i = 0; i < kBatch; ++i) {
      const std::string& m = fixture->messages[next++ % 64];
      char k[8];
      for (int b = 0; b < 8; ++b) k[b] = static_cast<char>(key >> (56 - 8 * b));
      ++key;
      wb.Put(rocksdb::Slice(k, 8), m);
      for (int b = 0; b < 8; ++b)
        count[b] = static_cast<char>(key >> (56 - 8 * b));
      ++key;
      wb.Put(rocksdb::Slice(count, 8), rocksdb::Slice(count + 8, 8));
      for (int q = 0; q < queues; ++q) {
        for (int b = 0; b < 8; ++b)
          ref[b] = static_cast<char>(key >> (56 - 8 * b));
        ++key;
        wb.Put(rocksdb::Slice(ref, 12), rocksdb::Slice(ref + 12, 24));
      }
      bytes += m.size();
    }
    if (!fixture->raw->Write(wo, &wb).ok()) {
      state.SkipWithError("write failed");
      break;
    }
    fixture->payload_bytes.fetch_add(bytes, std::memory_order_relaxed);
    fixture->stored.fetch_add(kBatch, std::memory_order_relaxed);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  ReportCounters(
      state,
      fixture->raw_stats->getTickerCount(rocksdb::WAL_FILE_BYTES) +
          fixture->raw_stats->getTickerCount(rocksdb::FLUSH_WRITE_BYTES) +
          fixture->raw_stats->getTickerCount(rocksdb::COMPACT_WRITE_BYTES));
}

template <bool kRaw, int kLevel, int kBytes, int kQueues>
void Register() {
  const std::string name = absl::StrCat(
      kRaw ? "BM_RawRocksDbBatch/" : "BM_Append/",
      kLevel == 0 ? "process" : "power", "/", kBytes, "/", kQueues);
  benchmark::internal::Benchmark* b =
      kRaw ? benchmark::RegisterBenchmark(name.c_str(), BM_RawRocksDbBatch,
                                          kLevel == 1, kQueues)
           : benchmark::RegisterBenchmark(name.c_str(), BM_Append, kQueues);
  b->Setup(SetUp<kRaw, kLevel, kBytes, kQueues>)
      ->Teardown(TearDown)
      ->UseRealTime();
  if (kLevel == 1) {
    b->Threads(1)->Threads(4)->Threads(16);
  } else {
    b->Threads(1);
  }
}

template <int kLevel, int kBytes, int kQueues>
void RegisterPair() {
  Register<false, kLevel, kBytes, kQueues>();
  Register<true, kLevel, kBytes, kQueues>();
}

void RegisterPairs() {
  RegisterPair<0, 256, 1>();
  RegisterPair<0, 256, 3>();
  RegisterPair<0, 1024, 1>();
  RegisterPair<0, 1024, 3>();
  RegisterPair<1, 256, 1>();
  RegisterPair<1, 256, 3>();
  RegisterPair<1, 1024, 1>();
  RegisterPair<1, 1024, 3>();
}

// Drain: a backlog of N messages in one queue, read in batches of 100 and
// checkpointed after each batch; then cleanup reclaims everything.
void BM_Drain(benchmark::State& state) {
  const char* env = std::getenv("EDGEROUTE_DRAIN_MESSAGES");
  const int64_t n = env != nullptr ? std::atoll(env) : 1'000'000;
  for (auto _ : state) {
    state.PauseTiming();
    StoreOptions options;
    options.directory = BenchDir("drain");
    options.cleanup_interval_ms = 0;
    std::unique_ptr<Store> store = std::move(*Store::Open(options));
    uint32_t q = *store->OpenQueue({"upstream", 0});
    std::vector<std::string> messages;
    for (int i = 0; i < 64; ++i) messages.push_back(MakeMessage(256, i));
    QueueTarget target{q, -1};
    std::vector<AppendItem> items(100);
    uint64_t payload = 0;
    for (int64_t i = 0; i < n; i += 100) {
      for (int k = 0; k < 100; ++k) {
        const std::string& m = messages[(i + k) % 64];
        items[k] = {{reinterpret_cast<const uint8_t*>(m.data()), m.size()},
                    absl::MakeConstSpan(&target, 1)};
        payload += m.size();
      }
      if (!store->Append(items).ok()) std::abort();
    }
    store->RunCleanup(true).IgnoreError();  // Flush: measure table files.
    const double disk_per_msg =
        static_cast<double>(DirBytes(options.directory)) / n;
    state.ResumeTiming();

    std::vector<StoredMessage> batch;
    int64_t drained = 0;
    for (;;) {
      if (!store->Read(q, 100, &batch).ok()) std::abort();
      if (batch.empty()) break;
      drained += batch.size();
      if (!store->Checkpoint(q, batch.back().offset).ok()) std::abort();
    }

    state.PauseTiming();
    if (drained != n) state.SkipWithError("drained fewer than appended");
    store->RunCleanup(true).IgnoreError();
    Store::Stats stats = store->GetStats();
    state.counters["disk_B_per_msg"] = disk_per_msg;
    state.counters["written_B_per_msg"] =
        static_cast<double>(stats.bytes_written_to_disk) / n;
    state.counters["wamp"] =
        static_cast<double>(stats.bytes_written_to_disk) / payload;
    state.counters["disk_B_after"] =
        static_cast<double>(DirBytes(options.directory));
    state.SetItemsProcessed(n);
    store->Close().IgnoreError();
    std::filesystem::remove_all(options.directory);
    state.ResumeTiming();
  }
}
BENCHMARK(BM_Drain)->Iterations(1)->UseRealTime()->Unit(
    benchmark::kMillisecond);

}  // namespace
}  // namespace edgeroute::store

int main(int argc, char** argv) {
  edgeroute::store::RegisterPairs();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
