// Durable store-and-forward for edgeroute: per-(endpoint, priority) queues of
// message references on RocksDB, with TTL, checkpoints, crash recovery and a
// disk-usage limit. The on-disk format is described in store/FORMAT.md.
//
// A message is written once (its FlatBuffers bytes) however many queues
// reference it; each queue holds small references with monotonic 64-bit
// offsets. A payload is deleted when its last reference is removed. A
// background cleanup removes delivered and expired references and gives the
// disk space back.
//
// Usage:
//   StoreOptions options;
//   options.directory = dir;
//   EDGEROUTE_ASSIGN_OR_RETURN(std::unique_ptr<Store> store,
//                              Store::Open(options));
//   EDGEROUTE_ASSIGN_OR_RETURN(uint32_t q, store->OpenQueue({"upstream", 0}));
//   QueueTarget target{q, /*ttl_secs=*/7200};
//   AppendItem item{message_bytes, absl::MakeConstSpan(&target, 1)};
//   EDGEROUTE_RETURN_IF_ERROR(store->Append(absl::MakeConstSpan(&item, 1)));
//   std::vector<StoredMessage> batch;
//   EDGEROUTE_RETURN_IF_ERROR(store->Read(q, 100, &batch));
//   ... deliver ...
//   EDGEROUTE_RETURN_IF_ERROR(store->Checkpoint(q, batch.back().offset));

#ifndef EDGEROUTE_STORE_STORE_H_
#define EDGEROUTE_STORE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/clock.h"
#include "store/options.h"

namespace edgeroute::store {

// Names one queue: an endpoint and a priority (0-9, or kDefaultPriority).
struct QueueId {
  std::string endpoint_id;
  uint8_t priority = kDefaultPriority;

  friend bool operator==(const QueueId& a, const QueueId& b) {
    return a.priority == b.priority && a.endpoint_id == b.endpoint_id;
  }
};

// One queue a message goes to.
struct QueueTarget {
  // A handle returned by Store::OpenQueue.
  uint32_t queue = 0;
  // Time to live from the append time, in seconds; fixed at enqueue time.
  // <= 0 means infinite (edgeHub's -1 default).
  int64_t ttl_secs = -1;
};

// One message and every queue it goes to. The spans are only read during
// Append.
struct AppendItem {
  // The message's FlatBuffers bytes (message/message.h), stored as is.
  // REQUIRES: the bytes were built or verified by the caller; the store
  // verifies them again when they are read back from disk.
  absl::Span<const uint8_t> message;
  // Queues the message is appended to; an item without targets is ignored.
  absl::Span<const QueueTarget> targets;
};

// A message read back from a queue.
struct StoredMessage {
  // The message's offset in its queue (the first offset is 1).
  uint64_t offset = 0;
  // Store append time, microseconds since the epoch (Clock::NowMicros()).
  int64_t enqueue_time_us = 0;
  // When the reference expires; INT64_MAX for an infinite TTL.
  int64_t expiry_us = 0;
  // The message bytes, verified as a message (MessageView::Verify) after
  // being read. std::string storage is suitably aligned for
  // MessageView::FromTrustedBytes on the usual allocators only; verify with
  // a copy into aligned storage if in doubt.
  std::string bytes;
};

// The store. Thread-safety: every method may be called concurrently from any
// thread, except Close() and destruction, which must not race other calls.
// Full disk: appends are refused (ResourceExhausted, "disk nearly full")
// while the disk still holds what RocksDB needs to flush the memtables plus
// a little, so a disk the store fills itself never makes RocksDB fail a
// write; a refused append first cleans up what was delivered or expired and
// tries once more. A failed write all the same (the disk filled by someone
// else, an I/O error) does not need a restart: every write path resumes the
// database first, and a disk reserve (StoreOptions::reserve_bytes) lets
// checkpoints and cleanup free space.
// Ordering: the offsets of one queue are assigned in commit order; a
// message is visible to Read only after its Append returned (or is about to
// return) OK.
class Store {
 public:
  // Opens or creates the store in options.directory and recovers every
  // queue (head, tail, checkpoint). A directory that exists, is not empty
  // and has no EDGEROUTE-STORE marker is refused unless it holds a store of
  // an earlier edgeroute (FORMAT.md, "Directory"). Corrupt records are
  // quarantined (see Read), not errors. Errors: InvalidArgument (bad
  // options), DataLoss (RocksDB cannot open the database; the message names
  // the damage and `edgeroute store repair`), FailedPrecondition (not an
  // edgeroute store, or an unknown format version), PermissionDenied,
  // Unavailable (locked by another process, I/O errors).
  static absl::StatusOr<std::unique_ptr<Store>> Open(
      const StoreOptions& options);

  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Creates the queue `id` or returns the handle of the existing one. Handles
  // are small integers, stable for the life of the store directory.
  // Errors: InvalidArgument (priority > kDefaultPriority, empty endpoint id).
  virtual absl::StatusOr<uint32_t> OpenQueue(const QueueId& id) = 0;

  // Every queue of the store, indexed by handle.
  virtual std::vector<QueueId> ListQueues() const = 0;

  // Appends every item of `batch` to its queues in ONE RocksDB WriteBatch:
  // each message is in all of its queues or in none. Returns when the batch
  // has the store's durability. Errors: InvalidArgument (unknown queue
  // handle), ResourceExhausted (max_bytes reached under kReject, or the disk
  // is full: nothing of the batch was written, retry later), Unavailable
  // (I/O error).
  virtual absl::Status Append(absl::Span<const AppendItem> batch) = 0;

  // Replaces *out with up to `max` unexpired messages that follow the
  // queue's checkpoint, in offset order. Messages still in the read cache
  // (StoreOptions::read_cache_bytes: the most recent appends, while the
  // reader keeps up) come from memory, as they were appended; the others
  // from RocksDB, verified as described below. Expired references are skipped and
  // counted (Stats::expired), never returned. A corrupt record (a reference
  // that does not decode, a payload that is missing, fails its checksum or
  // does not verify as a message) is quarantined: logged on stderr with
  // queue and offset, counted once (Stats::quarantined) and skipped, so the
  // queue moves on; cleanup removes it once the checkpoint passes it.
  // Errors: InvalidArgument (unknown queue), Unavailable/DataLoss (the
  // database could not be read; counted in Stats::read_errors).
  virtual absl::Status Read(uint32_t queue, size_t max,
                            std::vector<StoredMessage>* out) = 0;

  // Like Read, but starts after `after_offset` instead of the checkpoint
  // (for readers that keep several batches in flight).
  virtual absl::Status ReadAfter(uint32_t queue, uint64_t after_offset,
                                 size_t max,
                                 std::vector<StoredMessage>* out) = 0;

  // Marks every message of `queue` with offset <= `offset` as delivered.
  // A checkpoint never moves back (a smaller offset is a no-op). Written to
  // the write-ahead log without fsync: after a power loss a checkpoint may
  // step back, which re-delivers (at-least-once), never loses.
  // Errors: InvalidArgument (unknown queue, offset beyond the tail).
  virtual absl::Status Checkpoint(uint32_t queue, uint64_t offset) = 0;

  struct QueueStats {
    QueueId id;
    // Offset of the first reference still stored (tail + 1 when empty).
    uint64_t head = 0;
    // Offset of the last reference appended (0 before the first).
    uint64_t tail = 0;
    // Everything <= checkpoint is delivered.
    uint64_t checkpoint = 0;
    // References after the checkpoint, expired ones included until cleanup.
    uint64_t depth = 0;
    // Enqueue time of the first reference after the checkpoint; 0 if none.
    int64_t oldest_enqueue_us = 0;
  };
  struct Stats {
    std::vector<QueueStats> queues;
    // Size of every file in the directory except the disk reserve
    // (StoreOptions::reserve_bytes).
    uint64_t bytes_on_disk = 0;
    // Bytes counted against max_bytes.
    uint64_t stored_bytes = 0;
    // Payloads stored (each once, however many references).
    uint64_t payloads = 0;
    // Counters since Open: expired references skipped by reads or removed by
    // cleanup (each counted once per Open), references dropped by
    // kDropOldest, appends rejected for lack of space.
    uint64_t expired = 0;
    uint64_t dropped_full = 0;
    uint64_t rejected_full = 0;
    // Corrupt records skipped (references, payloads, reference counts and
    // checkpoints; each counted once per Open).
    uint64_t quarantined = 0;
    // Failed operations since Open, by kind: appends that failed for a
    // reason other than the size limit (a full disk, an I/O error), reads,
    // checkpoint writes, and cleanup runs (including drop-oldest).
    uint64_t append_errors = 0;
    uint64_t read_errors = 0;
    uint64_t checkpoint_errors = 0;
    uint64_t cleanup_errors = 0;
    // Bytes RocksDB wrote to files since Open (write-ahead log, flushes,
    // compactions): the numerator of write amplification.
    uint64_t bytes_written_to_disk = 0;
    // What the store asked of RocksDB since Open (RocksDB's statistics), to
    // count the cost of a message: write calls (one per append group,
    // checkpoint or cleanup chunk), records written (puts, deletes, range
    // deletes) and their bytes, write-ahead log bytes and syncs, and
    // records read (point and multi-get lookups, iterator seeks and steps).
    uint64_t db_writes = 0;
    uint64_t db_records_written = 0;
    uint64_t db_bytes_written = 0;
    uint64_t wal_bytes = 0;
    uint64_t wal_syncs = 0;
    uint64_t db_records_read = 0;
  };
  // Control plane: takes a few file-system and RocksDB calls.
  virtual Stats GetStats() const = 0;

  // Removes delivered and expired references, deletes payloads nobody
  // references, and compacts what was deleted once compact_after_bytes is
  // reached (or when `force_compaction`). Runs in the background every
  // cleanup_interval_ms as well, and (without compacting) as soon as a
  // checkpoint follows half a write buffer (write_buffer_bytes) of appends,
  // so that delivered messages are deleted before their memtable is
  // flushed and never reach a table file; never blocks Append except under
  // kDropOldest when the store is full.
  virtual absl::Status RunCleanup(bool force_compaction = false) = 0;

  // Stops the background cleanup and closes the database. Further calls
  // fail with FailedPrecondition. Idempotent; also done by the destructor.
  virtual absl::Status Close() = 0;

 protected:
  Store() = default;
};

// True when `status` is an error that Store::Append returned (callers such
// as the router pass it on unchanged): ResourceExhausted = the store is full
// (its size limit or the disk), anything else = the store failed. Lets a
// gateway answer "store full" / "store unavailable" instead of its own
// errors.
bool IsStoreError(const absl::Status& status);

// A human-readable report of the store in `directory` (queues, depths,
// checkpoints, oldest message age, bytes on disk), for
// `edgeroute store inspect DIR`. Opens the store read-only, so it works while
// another process has it open. `clock` gives "now" for message ages.
absl::StatusOr<std::string> InspectStore(const std::string& directory,
                                         Clock* clock = SystemClock());

// Repairs the store in `directory` for `edgeroute store repair DIR`. No
// process may have it open. Where RocksDB cannot open or read the database
// (a damaged table file, MANIFEST or CURRENT) RocksDB's RepairDB rebuilds it
// from what is readable first. Then every record is checked as Open and
// Read check them: references that do not decode, point at a missing or
// invalid payload or at an unknown queue are removed, payloads nobody
// references are removed, reference counts are recounted, and corrupt
// checkpoints are reset (re-delivering, never losing). Returns a report
// (counts, and the first removed records with queue and offset).
// Errors: FailedPrecondition (not an edgeroute store), Unavailable (locked
// by another process, I/O errors), DataLoss (unreadable even after
// RepairDB).
absl::StatusOr<std::string> RepairStore(const std::string& directory);

}  // namespace edgeroute::store

#endif  // EDGEROUTE_STORE_STORE_H_
