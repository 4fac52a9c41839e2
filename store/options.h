// The options of the store-and-forward store (store.h): what survives a
// crash, the disk limit and what happens at it, cleanup and RocksDB sizing.
// Every field documents its default.

#ifndef EDGEROUTE_STORE_OPTIONS_H_
#define EDGEROUTE_STORE_OPTIONS_H_

#include <cstdint>
#include <string>

#include "base/clock.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace edgeroute::store {

// When Append returns OK, the batch survives:
enum class Durability : uint8_t {
  // ...a crash of this process (RocksDB write-ahead log, no fsync). What
  // edgeHub gives. A power loss may lose the most recent batches.
  kProcess,
  // ...a power loss (the write-ahead log is fsynced before Append returns).
  // Concurrent appenders are group-committed: one fsync covers every batch
  // that was waiting while the previous fsync ran.
  kPower,
};

// What Append does when the store holds max_bytes.
enum class FullPolicy : uint8_t {
  // Fail the batch with ResourceExhausted; nothing is written.
  kReject,
  // Remove the oldest references of the lowest-priority queue (largest
  // priority number, the default priority last of all), counted in
  // Stats::dropped_full, until the batch fits. Fails with ResourceExhausted
  // only if the batch does not fit even in an empty store.
  kDropOldest,
};

// The default priority (a route without "priority"): lower than 0..9.
inline constexpr uint8_t kDefaultPriority = 10;

struct StoreOptions {
  // The directory holding the store; created if missing. Required.
  std::string directory;

  // Default: kProcess.
  Durability durability = Durability::kProcess;

  // Upper bound on the stored bytes (payloads + references + keys, counted
  // exactly by the store), 0 = unlimited. The files on disk exceed it by the
  // RocksDB overhead not yet compacted away (bounded by the write buffer,
  // write-ahead log limits below and pending compactions). Default: 0.
  uint64_t max_bytes = 0;
  // Default: kReject.
  FullPolicy full_policy = FullPolicy::kReject;

  // Disk space the store keeps in reserve (a file in the directory,
  // DiskReserve): when the disk is full it is given back so that
  // checkpoints, cleanup and the compaction that returns space can still
  // write; appends are refused (ResourceExhausted) until it can be taken
  // again. A full disk is recoverable without outside help only if the
  // reserve holds what cleanup writes (the memtables, see
  // write_buffer_bytes, are flushed by the recovery). 0 = no reserve.
  // Default: 4 MiB.
  uint64_t reserve_bytes = 4u << 20;

  // Time source for enqueue times and TTL. Not owned; must outlive the store.
  // Default: SystemClock().
  Clock* clock = SystemClock();

  // Period of the background cleanup, in milliseconds of real time. 0 = no
  // background cleanup (call RunCleanup() yourself). Besides, the background
  // thread cleans up (without compacting) whenever a checkpoint follows half
  // a write buffer of appends (Store::RunCleanup). Default: 30 s.
  int64_t cleanup_interval_ms = 30'000;

  // Cleanup compacts the ranges it deleted (returning the space to the file
  // system) once at least this many bytes were removed since the last
  // compaction. Larger values mean fewer rewrites of flash. Default: 4 MiB.
  uint64_t compact_after_bytes = 4u << 20;

  // Memory for the read cache: the bytes of the most recent appends, from
  // which a reader that keeps up with the appenders is served instead of
  // RocksDB (plus an index of up to 40 bytes per cached message and queue).
  // 0 = no cache. Default: 8 MiB.
  uint64_t read_cache_bytes = 8u << 20;

  // RocksDB memtable size per column family; also bounds how much
  // un-flushed data a recovery replays. Default: 16 MiB.
  uint64_t write_buffer_bytes = 16u << 20;
  // Write-ahead log limit: column families are flushed when the logs pass
  // it. Default: 64 MiB (edgeHub: 512 MiB).
  uint64_t max_wal_bytes = 64u << 20;
  // RocksDB's informational LOG: rotated at this size, at most
  // `keep_log_files` kept. Default: 1 MiB, 2 files.
  uint64_t max_info_log_bytes = 1u << 20;
  uint32_t keep_log_files = 2;

  // For fault-injection tests only: the RocksDB environment to use. Not
  // owned; must outlive the store. Default: nullptr (the default Env).
  rocksdb::Env* env = nullptr;
};

}  // namespace edgeroute::store

#endif  // EDGEROUTE_STORE_OPTIONS_H_
