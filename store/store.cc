// The RocksDB store. Layout: store/FORMAT.md. Concurrency design:
//
//  * Appends use a leader/follower group commit (as LevelDB's DBImpl::Write):
//    appenders queue under mu_; the appender at the front becomes the leader,
//    takes every queued batch, assigns payload sequences and queue offsets in
//    queue order, writes ONE RocksDB WriteBatch with mu_ released, then
//    publishes the new tails and wakes the followers. Only one leader writes
//    at a time, so offsets are committed in order and a reader never sees
//    offset n+1 before offset n. With Durability::kPower one fsync covers the
//    whole group.
//  * Readers take mu_ only to read a queue's tail and checkpoint, then read a
//    RocksDB snapshot, so cleanup can delete concurrently.
//  * Reference counts are only decremented under cleanup_mu_ (cleanup and
//    drop-oldest); appends only create new payload sequences. So the cleanup's
//    read-modify-write of a count never races another writer of that key.

#include "store/store.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "message/message.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/perf_level.h"
#include "rocksdb/statistics.h"
#include "rocksdb/write_batch.h"
#include "store/disk_reserve.h"
#include "store/format.h"
#include "store/marker.h"
#include "store/read_cache.h"
#include "store/rocksdb_options.h"
#include "store/rocksdb_status.h"
#include "store/store_internal.h"

namespace edgeroute::store {
namespace {

namespace f = format;

constexpr int64_t kInfinite = std::numeric_limits<int64_t>::max();
// A leader takes at most this many queued appenders into one WriteBatch.
constexpr size_t kMaxGroupWriters = 256;
// Cleanup writes its deletions in batches of at most this many references.
constexpr size_t kCleanupChunk = 16384;
// Cleanup reads reference counts with MultiGets of this many keys: what
// RocksDB's MultiGet handles on the stack (MultiGetContext::MAX_BATCH_SIZE).
constexpr size_t kCountsPerMultiGet = 32;
// Free space the store keeps beyond its memtables' size (CheckFreeSpace):
// for RocksDB's MANIFEST and OPTIONS writes and its info log. At most a
// quarter of the reserve.
constexpr uint64_t kFreeSpaceSlackBytes = 128u << 10;
// Quarantine key "queue" of a corrupt reference count (payload_refs).
constexpr uint32_t kNoQueue = UINT32_MAX;
// Offsets and payload sequences count appends from 1; one at or past 2^63
// (never reached: 2^63 appends) can only come from a corrupt record, and
// taken as a tail or a floor it would make the next one wrap to 0.
constexpr uint64_t kMaxSaneCounter = uint64_t{1} << 63;
// Payload sequences start at 1: 0 stands for "unknown" (a corrupt reference).
constexpr uint64_t kUnknownSeq = 0;

rocksdb::Slice ToSlice(absl::string_view s) { return {s.data(), s.size()}; }

// RocksDB counts every key comparison and more in a thread-local perf
// context at its default level; the store never reads those counts, so its
// callers' threads switch them off (once per thread).
void QuietRocksDbPerfContext() {
  thread_local bool quiet = false;
  if (!quiet) {
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
    quiet = true;
  }
}

int64_t ExpiryFor(int64_t now_us, int64_t ttl_secs) {
  if (ttl_secs <= 0) return kInfinite;  // Negative or zero TTL: infinite.
  if (ttl_secs > (kInfinite - now_us) / 1'000'000) return kInfinite;
  return now_us + ttl_secs * 1'000'000;
}

struct QueueState {
  QueueId id;
  // Offset of the last committed reference; readers stop here.
  uint64_t tail = 0;
  // Next offset to assign (tail + 1 outside a leader's write).
  uint64_t next_offset = 1;
  uint64_t checkpoint = 0;
  // Every reference <= removed_through is deleted (FORMAT.md: 'R' key).
  uint64_t removed_through = 0;
  // Every reference in (checkpoint, expired_skip_through] has expired and
  // was counted; reads from the checkpoint start after it.
  uint64_t expired_skip_through = 0;
  // Every expired reference <= expired_counted_through that a read skipped
  // has been counted. Reads go forward in offset order, so an expired
  // reference below it was either counted when a read passed it or was
  // handed out before it expired (the router then re-checks its TTL).
  uint64_t expired_counted_through = 0;
};

// A reference being appended (leader scratch space).
struct PendingRef {
  uint32_t queue;
  uint64_t offset;
  format::RefValue value;
  // Index of its message in the group (StoreImpl::leader_payloads_).
  uint32_t payload_index;
};

// One waiting Append.
struct Writer {
  explicit Writer(absl::Span<const AppendItem> b) : batch(b) {}
  absl::Span<const AppendItem> batch;
  absl::Status status;
  bool done = false;
  // Set by the leader when the group was refused by CheckFreeSpace (and
  // nothing was written): the writer may clean up and try once more.
  bool refused_for_space = false;
  std::condition_variable cv;
};

class StoreImpl final : public Store {
 public:
  explicit StoreImpl(const StoreOptions& options)
      : options_(options), read_cache_(options.read_cache_bytes) {}
  ~StoreImpl() override { Close().IgnoreError(); }

  absl::Status Init();

  absl::StatusOr<uint32_t> OpenQueue(const QueueId& id) override;
  std::vector<QueueId> ListQueues() const override;
  absl::Status Append(absl::Span<const AppendItem> batch) override;
  // One attempt of Append; the status is not yet marked (MarkStoreError).
  // `retry`: the previous attempt was refused for space. Sets
  // `*refused_for_space` when CheckFreeSpace refused the group (nothing
  // was written).
  absl::Status AppendOnce(absl::Span<const AppendItem> batch, bool retry,
                          bool* refused_for_space);
  absl::Status Read(uint32_t queue, size_t max,
                    std::vector<StoredMessage>* out) override {
    return ReadImpl(queue, /*after=*/0, /*from_checkpoint=*/true, max, out);
  }
  absl::Status ReadAfter(uint32_t queue, uint64_t after_offset, size_t max,
                         std::vector<StoredMessage>* out) override {
    return ReadImpl(queue, after_offset, /*from_checkpoint=*/false, max, out);
  }
  absl::Status Checkpoint(uint32_t queue, uint64_t offset) override;
  Stats GetStats() const override;
  absl::Status RunCleanup(bool force_compaction) override;
  absl::Status Close() override;

 private:
  absl::Status ReadImpl(uint32_t queue, uint64_t after, bool from_checkpoint,
                        size_t max, std::vector<StoredMessage>* out);
  // Leader part of Append. REQUIRES: mu_ held, `self` at the front.
  void LeadGroup(Writer* self, std::unique_lock<std::mutex>& lock)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Frees space for `needed` more stored bytes. REQUIRES: mu_ held (released
  // and re-acquired inside).
  void MakeRoom(uint64_t needed, std::unique_lock<std::mutex>& lock)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `may_compact` false: compacts only if forced (the early cleanup that
  // Checkpoint asks for leaves compaction to the periodic one).
  absl::Status CleanupLocked(bool force_compaction, bool may_compact = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(cleanup_mu_);
  // Removes the references [first..last] of `queue` (`refs` lists them with
  // their payloads) plus point deletions, updating counts and payloads.
  absl::Status RemoveRefs(uint32_t queue, uint64_t prefix_through,
                          const std::vector<std::pair<uint64_t, uint64_t>>&
                              refs /* offset, payload seq */,
                          size_t prefix_count, uint64_t newly_expired,
                          uint64_t dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(cleanup_mu_);
  absl::Status DropOldestLocked(uint64_t needed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(cleanup_mu_);
  absl::Status CompactLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(cleanup_mu_);
  // RunCleanup, counting errors; `may_compact` as for CleanupLocked.
  absl::Status CleanUp(bool force_compaction, bool may_compact);
  void BackgroundLoop();
  // Every write to RocksDB goes through write_mu_, so RocksDB never forms a
  // write group of its own: appends are already grouped by our leader, and
  // RocksDB's merging of concurrent writers' batches happens in code that
  // ThreadSanitizer cannot see (the system library is not instrumented).
  // The cost is that a checkpoint or cleanup write may wait for an append's
  // fsync.
  // A write that finds the disk full gives the reserve back (DiskReserve);
  // checkpoints and cleanup (`may_use_reserve`) then try once more, appends
  // do not (Append refuses them until the reserve is taken again).
  rocksdb::Status Write(const rocksdb::WriteOptions& wo,
                        rocksdb::WriteBatch* batch,
                        bool may_use_reserve = true) {
    std::lock_guard<std::mutex> lock(write_mu_);
    rocksdb::Status s = WriteLocked(wo, batch);
    if (s.IsNoSpace() && reserve_ != nullptr && reserve_->Release() &&
        may_use_reserve) {
      s = WriteLocked(wo, batch);
    }
    return s;
  }
  rocksdb::Status Put(const rocksdb::WriteOptions& wo,
                      rocksdb::ColumnFamilyHandle* cf,
                      const rocksdb::Slice& key, const rocksdb::Slice& value) {
    rocksdb::WriteBatch batch;
    rocksdb::Status s = batch.Put(cf, key, value);
    if (!s.ok()) return s;
    return Write(wo, &batch);
  }
  // After a failed write (a full disk, an I/O error) RocksDB refuses every
  // write until DB::Resume() (its own automatic recovery is off, see
  // rocksdb_options.cc). Every write path -- append, checkpoint, cleanup,
  // queue creation -- resumes first, so each recovers as soon as space
  // returns, whoever freed it. REQUIRES: write_mu_ held.
  rocksdb::Status ResumeLocked() {
    if (!needs_resume_) return rocksdb::Status::OK();
    rocksdb::Status s = db_->Resume();
    if (s.ok()) needs_resume_ = false;
    return s;
  }
  rocksdb::Status WriteLocked(const rocksdb::WriteOptions& wo,
                              rocksdb::WriteBatch* batch) {
    const bool was_stopped = needs_resume_;
    rocksdb::Status s = ResumeLocked();
    if (s.ok()) s = db_->Write(wo, batch);
    if (!s.ok() && !was_stopped && !s.IsNoSpace()) {
      // Not this write's own failure but a background job's (a flush or
      // compaction that met a full disk a moment ago) that stopped the
      // database: resume once and write again, rather than fail a write
      // the disk has room for.
      needs_resume_ = true;
      s = ResumeLocked();
      if (s.ok()) s = db_->Write(wo, batch);
    }
    if (!s.ok()) needs_resume_ = true;
    return s;
  }
  // For flushes and compactions (not run under write_mu_: they take long).
  rocksdb::Status ResumeIfNeeded() {
    std::lock_guard<std::mutex> lock(write_mu_);
    return ResumeLocked();
  }
  void NoteFailedBackgroundWrite() {
    std::lock_guard<std::mutex> lock(write_mu_);
    needs_resume_ = true;
  }
  // Logs and counts a corrupt record once; true the first time.
  // REQUIRES: mu_ held.
  bool QuarantineLocked(uint32_t queue, uint64_t offset, absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True if a checkpoint moved since the last cleanup or a reference may
  // have expired: a cleanup could free something.
  bool MayFreeSpace() {
    std::lock_guard<std::mutex> lock(mu_);
    return checkpoint_moved_ || min_expiry_hint_ <= options_.clock->NowMicros();
  }
  // Counts failed operations (Stats::*_errors).
  enum Op { kAppendOp, kReadOp, kCheckpointOp, kCleanupOp, kOpCount };
  void CountError(Op op) {
    // Relaxed: independent counters, read for metrics only.
    errors_[op].fetch_add(1, std::memory_order_relaxed);
  }
  rocksdb::WriteOptions AppendWriteOptions() const {
    rocksdb::WriteOptions wo;
    wo.sync = options_.durability == Durability::kPower;
    return wo;
  }

  const StoreOptions options_;
  const bool read_cache_enabled_ = options_.read_cache_bytes > 0;
  std::unique_ptr<rocksdb::DB> db_;
  std::shared_ptr<rocksdb::FileSystem> fs_;
  std::unique_ptr<internal::DiskReserve> reserve_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* payloads_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* payload_refs_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* refs_cf_ = nullptr;
  std::shared_ptr<rocksdb::Statistics> statistics_;

  // Mutexes are std::mutex (not absl::Mutex): the system Abseil is not built
  // with ThreadSanitizer annotations, so TSan could not see its ordering.
  mutable std::mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<QueueState> queues_ ABSL_GUARDED_BY(mu_);
  std::deque<Writer*> writers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t stored_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t payload_count_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t expired_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_full_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rejected_full_ ABSL_GUARDED_BY(mu_) = 0;
  // Earliest expiry among references appended or seen by cleanup, and
  // whether a checkpoint moved since the last cleanup: the append path runs
  // a cleanup when full only if one of them says it can free something.
  int64_t min_expiry_hint_ ABSL_GUARDED_BY(mu_) = kInfinite;
  bool checkpoint_moved_ ABSL_GUARDED_BY(mu_) = false;
  // Bytes appended since the last cleanup took its snapshot, and whether
  // the background thread was asked to clean up early (Checkpoint).
  uint64_t appended_since_cleanup_ ABSL_GUARDED_BY(mu_) = 0;
  bool cleanup_requested_ ABSL_GUARDED_BY(mu_) = false;
  // Earliest expiry appended since the running cleanup took its snapshot.
  int64_t appended_min_expiry_ ABSL_GUARDED_BY(mu_) = kInfinite;
  // Corrupt records already logged and counted: (queue, offset) of
  // references and payloads; (kNoQueue, sequence) of reference counts.
  std::set<std::pair<uint32_t, uint64_t>> quarantined_ ABSL_GUARDED_BY(mu_);
  uint64_t quarantined_count_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> errors_[kOpCount] = {};

  // The disk-space guard. RocksDB turns ENOSPC in a WAL write or a flush
  // into a "hard" error that only DB::Resume() clears, and Resume in the
  // RocksDB this builds on (7.8) can wait forever for a flush that a
  // background job, failing at the same moment, left unscheduled. So
  // appends stop a little before the disk is full -- while it still holds
  // what the memtables need to flush -- and the database never sees
  // ENOSPC from a disk the store fills itself.
  //
  // OK when the disk has room for `group_bytes` more after keeping
  // kFreeSpaceSlackBytes plus the memtables' size free, and then
  // `*spare_bytes` is how much more may be appended before the next check;
  // ResourceExhausted (saying how much is free and how much is kept)
  // otherwise. OK as well when the file system cannot report free space
  // (the reserve still guards).
  absl::Status CheckFreeSpace(uint64_t group_bytes, uint64_t* spare_bytes);
  // True after an append was refused for space: the next Append checks
  // (and cleans up) before it queues. Relaxed: a hint, rechecked.
  std::atomic<bool> low_space_{false};

  // Scratch space of the current group-commit leader; only the writer at
  // the front of writers_ uses it (so no lock is needed while it writes).
  // Bytes the leaders may still append before the free space is read again
  // (CheckFreeSpace); 0 = read it now.
  uint64_t leader_space_budget_ = 0;
  std::vector<Writer*> leader_group_;
  std::vector<uint64_t> leader_sizes_;
  std::vector<std::pair<uint32_t, uint64_t>> leader_saved_offsets_;
  rocksdb::WriteBatch leader_batch_;
  std::vector<PendingRef> leader_refs_;
  // The group's messages in sequence order, and their read cache handles.
  std::vector<absl::Span<const uint8_t>> leader_payloads_;
  std::vector<uint64_t> leader_cache_handles_;

  // The most recent appends, for readers that keep up (read_cache.h).
  // Never held together with mu_.
  std::mutex cache_mu_;
  internal::ReadCache read_cache_ ABSL_GUARDED_BY(cache_mu_);

  // Held around every RocksDB write (see Write()). Innermost lock.
  std::mutex write_mu_;
  // After a failed write (e.g. ENOSPC) RocksDB refuses writes until resumed.
  bool needs_resume_ ABSL_GUARDED_BY(write_mu_) = false;

  // Serialises checkpoint writes so that they reach RocksDB in order.
  std::mutex checkpoint_mu_;

  std::mutex cleanup_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  uint64_t freed_since_compaction_ ABSL_GUARDED_BY(cleanup_mu_) = 0;
  // Key ranges deleted since the last compaction.
  uint64_t dirty_seq_min_ ABSL_GUARDED_BY(cleanup_mu_) = UINT64_MAX;
  uint64_t dirty_seq_max_ ABSL_GUARDED_BY(cleanup_mu_) = 0;
  uint32_t dirty_queue_min_ ABSL_GUARDED_BY(cleanup_mu_) = UINT32_MAX;
  uint32_t dirty_queue_max_ ABSL_GUARDED_BY(cleanup_mu_) = 0;

  std::mutex bg_mu_;
  bool bg_stop_ ABSL_GUARDED_BY(bg_mu_) = false;
  bool bg_early_ ABSL_GUARDED_BY(bg_mu_) = false;
  std::condition_variable bg_cv_;
  std::thread bg_thread_;
};

constexpr absl::string_view kStoreErrorPayload = "edgeroute.dev/store-error";

// Tags an error of Append for IsStoreError (bad arguments and a closed
// store are the caller's errors, not the store's).
absl::Status MarkStoreError(absl::Status status) {
  if (status.ok() || status.code() == absl::StatusCode::kInvalidArgument ||
      status.code() == absl::StatusCode::kFailedPrecondition) {
    return status;
  }
  status.SetPayload(kStoreErrorPayload, absl::Cord("append"));
  return status;
}

absl::Status IterStatus(rocksdb::Iterator* it, absl::string_view what) {
  if (it->status().ok()) return absl::OkStatus();
  return RocksDbToStatus(it->status(), what);
}

absl::Status StoreImpl::Init() {
  if (options_.directory.empty()) {
    return absl::InvalidArgumentError("StoreOptions.directory is empty");
  }
  if (options_.clock == nullptr) {
    return absl::InvalidArgumentError("StoreOptions.clock is null");
  }
  // Never adopt a directory that is not ours (nor let RocksDB create files
  // in one).
  EDGEROUTE_RETURN_IF_ERROR(internal::ClaimStoreDirectory(options_.directory));
  rocksdb::Options db_options = MakeRocksDbOptions(options_);
  statistics_ = db_options.statistics;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name :
       {f::kMetaCf, f::kPayloadsCf, f::kPayloadRefsCf, f::kRefsCf}) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions(db_options));
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(rocksdb::DBOptions(db_options), options_.directory,
                        descriptors, &cfs_, &raw);
  if (!s.ok()) {
    absl::Status status = RocksDbToStatus(
        s, absl::StrCat("opening store in ", options_.directory));
    if (status.code() == absl::StatusCode::kDataLoss) {
      return absl::DataLossError(
          absl::StrCat(status.message(),
                       " -- the store is damaged; `edgeroute store "
                       "repair ",
                       options_.directory, "` recovers what is readable"));
    }
    return status;
  }
  db_.reset(raw);
  meta_cf_ = cfs_[0];
  payloads_cf_ = cfs_[1];
  payload_refs_cf_ = cfs_[2];
  refs_cf_ = cfs_[3];

  // Format version.
  std::string value;
  s = db_->Get(rocksdb::ReadOptions(), meta_cf_, f::kFormatKey, &value);
  if (s.IsNotFound()) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db_->Put(wo, meta_cf_, f::kFormatKey, f::FormatValue());
    if (!s.ok()) return RocksDbToStatus(s, "writing the format version");
  } else if (!s.ok()) {
    return RocksDbToStatus(s, "reading the format version");
  } else if (value != f::FormatValue()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store in ", options_.directory,
        " has an unknown format (expected \"edgeroute-store\" version ",
        f::kFormatVersion, ")"));
  }

  fs_ = (options_.env != nullptr ? options_.env : rocksdb::Env::Default())
            ->GetFileSystem();
  reserve_ = std::make_unique<internal::DiskReserve>(
      fs_.get(), options_.directory, options_.reserve_bytes);
  // Without room for the reserve the store opens anyway; appends wait for
  // it (Append).
  reserve_->Acquire().IgnoreError();

  std::lock_guard<std::mutex> lock(mu_);
  // Checkpoint and removal records of the wrong size: (queue, tag).
  std::vector<std::pair<uint32_t, char>> corrupt_markers;
  // Queues, checkpoints, removal markers.
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      rocksdb::Slice key = it->key();
      rocksdb::Slice val = it->value();
      if (key.size() != 5) continue;  // "format", "payload_floor"
      char tag = key[0];
      uint32_t q = f::GetBe32(key.data() + 1);
      if (q >= (1u << 20)) {
        return absl::DataLossError(
            absl::StrCat("metadata key for queue handle ", q, " is corrupt"));
      }
      if (q >= queues_.size()) queues_.resize(q + 1);
      QueueState& state = queues_[q];
      if (tag == f::kQueueTag) {
        // A priority OpenQueue would refuse is as corrupt as a short
        // record (the router would never read the queue).
        if (val.size() < 2 || static_cast<uint8_t>(val[0]) > kDefaultPriority) {
          return absl::DataLossError(
              absl::StrCat("queue ", q, ": metadata record is corrupt"));
        }
        state.id.priority = static_cast<uint8_t>(val[0]);
        state.id.endpoint_id.assign(val.data() + 1, val.size() - 1);
      } else if (tag == f::kCheckpointTag || tag == f::kRemovedTag) {
        if (val.size() != 8 || f::GetBe64(val.data()) >= kMaxSaneCounter) {
          // Checked after the reference scan (a missing checkpoint
          // re-delivers from the removal marker: at-least-once).
          corrupt_markers.emplace_back(q, tag);
          continue;
        }
        (tag == f::kCheckpointTag ? state.checkpoint : state.removed_through) =
            f::GetBe64(val.data());
      }
    }
    EDGEROUTE_RETURN_IF_ERROR(IterStatus(it.get(), "reading store metadata"));
    for (size_t q = 0; q < queues_.size(); ++q) {
      if (queues_[q].id.endpoint_id.empty()) {
        return absl::DataLossError(absl::StrCat(
            "queue handle ", q, " has a checkpoint but no queue record"));
      }
    }
  }
  // Reference scan: tails, expiry hint, reference bytes.
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), refs_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      rocksdb::Slice key = it->key();
      f::RefValue ref;
      if (key.size() != f::kRefKeySize) {
        return absl::DataLossError("a reference key is corrupt");
      }
      uint32_t q = f::GetBe32(key.data());
      if (q >= queues_.size()) {
        return absl::DataLossError(
            absl::StrCat("reference for unknown queue handle ", q));
      }
      const uint64_t offset = f::GetBe64(key.data() + 4);
      if (offset >= kMaxSaneCounter) {
        // Not a tail: the next append would wrap. Left where it is.
        QuarantineLocked(q, offset, "reference key's offset is corrupt");
        continue;
      }
      queues_[q].tail = std::max(queues_[q].tail, offset);
      stored_bytes_ += f::kRefBytes;
      if (!ref.Decode({it->value().data(), it->value().size()})) {
        // Skipped by reads and removed by cleanup.
        QuarantineLocked(q, offset, "reference record is corrupt");
        continue;
      }
      min_expiry_hint_ = std::min(min_expiry_hint_, ref.expiry_us);
    }
    EDGEROUTE_RETURN_IF_ERROR(IterStatus(it.get(), "reading references"));
  }
  for (const auto& [q, tag] : corrupt_markers) {
    QuarantineLocked(q, 0,
                     tag == f::kCheckpointTag
                         ? "checkpoint record is corrupt; delivering again "
                           "from the removal marker"
                         : "removal marker is corrupt");
  }
  for (uint32_t qi = 0; qi < queues_.size(); ++qi) {
    QueueState& state = queues_[qi];
    // A checkpoint never passes the last offset appended, which is a
    // stored reference or, once cleanup removed it, the removal marker
    // (FORMAT.md). One that does is corrupt: deliver again from the marker.
    if (state.checkpoint > std::max(state.tail, state.removed_through)) {
      QuarantineLocked(qi, 0,
                       absl::StrCat("checkpoint ", state.checkpoint,
                                    " is beyond the last offset appended (",
                                    std::max(state.tail, state.removed_through),
                                    "), corrupt; delivering again from offset ",
                                    state.removed_through + 1));
      state.checkpoint = state.removed_through;
    }
    state.tail =
        std::max({state.tail, state.checkpoint, state.removed_through});
    state.next_offset = state.tail + 1;
  }
  // Payload counts and sizes.
  {
    s = db_->Get(rocksdb::ReadOptions(), meta_cf_, f::kPayloadFloorKey, &value);
    if (s.ok() && value.size() == 8) {
      // Sequences start at 1 (0 is no payload): the floor only raises it.
      const uint64_t floor = f::GetBe64(value.data());
      if (floor < kMaxSaneCounter) {
        next_seq_ = std::max(next_seq_, floor);
      } else {
        QuarantineLocked(kNoQueue, 0, "payload floor record is corrupt");
      }
    }
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), payload_refs_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      f::PayloadRefsValue pr;
      if (it->key().size() != 8) {
        return absl::DataLossError("a payload reference count key is corrupt");
      }
      const uint64_t seq = f::GetBe64(it->key().data());
      if (seq >= kMaxSaneCounter) {
        QuarantineLocked(kNoQueue, seq, "payload sequence is corrupt");
        continue;
      }
      if (!pr.Decode({it->value().data(), it->value().size()})) {
        next_seq_ = std::max(next_seq_, seq + 1);
        QuarantineLocked(kNoQueue, seq, "reference count record is corrupt");
        continue;
      }
      next_seq_ = std::max(next_seq_, seq + 1);
      stored_bytes_ += pr.size + f::kPayloadOverheadBytes;
      ++payload_count_;
    }
    EDGEROUTE_RETURN_IF_ERROR(
        IterStatus(it.get(), "reading payload reference counts"));
  }
  if (options_.cleanup_interval_ms > 0) {
    bg_thread_ = std::thread([this] { BackgroundLoop(); });
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> StoreImpl::OpenQueue(const QueueId& id) {
  if (id.endpoint_id.empty()) {
    return absl::InvalidArgumentError("queue endpoint id is empty");
  }
  if (id.priority > kDefaultPriority) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue priority ", id.priority, " is not 0-9 or ",
                     kDefaultPriority, " (default)"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return absl::FailedPreconditionError("store is closed");
  for (size_t q = 0; q < queues_.size(); ++q) {
    if (queues_[q].id == id) return static_cast<uint32_t>(q);
  }
  uint32_t handle = static_cast<uint32_t>(queues_.size());
  std::string value(1, static_cast<char>(id.priority));
  value += id.endpoint_id;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s =
      Put(wo, meta_cf_, f::QueueMetaKey(f::kQueueTag, handle), value);
  if (!s.ok()) {
    return RocksDbToStatus(s, absl::StrCat("creating queue ", id.endpoint_id));
  }
  QueueState state;
  state.id = id;
  queues_.push_back(std::move(state));
  return handle;
}

std::vector<QueueId> StoreImpl::ListQueues() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<QueueId> ids;
  ids.reserve(queues_.size());
  for (const QueueState& q : queues_) ids.push_back(q.id);
  return ids;
}

absl::Status StoreImpl::Append(absl::Span<const AppendItem> batch) {
  QuietRocksDbPerfContext();
  bool refused_for_space = false;
  absl::Status status = AppendOnce(batch, /*retry=*/false, &refused_for_space);
  if (refused_for_space) {
    // Refused for space as the group was about to be written: the space
    // check (with a cleanup, when one can free something) runs now, and
    // the batch, of which nothing was written, goes once more.
    status = AppendOnce(batch, /*retry=*/true, &refused_for_space);
  }
  return MarkStoreError(std::move(status));
}

absl::Status StoreImpl::AppendOnce(absl::Span<const AppendItem> batch,
                                   bool retry, bool* refused_for_space) {
  if (retry || !reserve_->held() ||
      low_space_.load(std::memory_order_relaxed)) {
    // The disk filled up: appends wait until the reserve is back and the
    // disk has room again, so that the space kept stays free for what
    // frees space.
    uint64_t spare = 0;
    uint64_t charge = 0;  // As the leader reckons it (LeadGroup).
    for (const AppendItem& item : batch) {
      charge += 2 * (item.message.size() + f::kPayloadOverheadBytes +
                     item.targets.size() * f::kRefBytes);
    }
    auto has_room = [&]() -> absl::Status {
      absl::Status reserved = reserve_->Acquire();
      if (!reserved.ok()) {
        return absl::ResourceExhaustedError(
            absl::StrCat("disk full: no space left on device for the store's ",
                         options_.reserve_bytes, " byte reserve (",
                         reserved.message(), ")"));
      }
      return CheckFreeSpace(charge, &spare);
    };
    absl::Status room = has_room();
    // A retry cleans up even when the check passes now: the memtables were
    // flushed meanwhile, but the disk is as full as it was.
    if ((retry || !room.ok()) && MayFreeSpace()) {
      // Delivered or expired messages: cleanup and the compaction of what
      // it deleted give their space back now rather than at the next
      // background cleanup.
      std::lock_guard<std::mutex> cleanup_lock(cleanup_mu_);
      if (!CleanupLocked(/*force_compaction=*/true).ok()) {
        CountError(kCleanupOp);
      }
      room = has_room();
    }
    if (!room.ok()) {
      CountError(kAppendOp);
      return room;
    }
    low_space_.store(false, std::memory_order_relaxed);
  }
  Writer w(batch);
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return absl::FailedPreconditionError("store is closed");
  writers_.push_back(&w);
  while (!w.done && writers_.front() != &w) w.cv.wait(lock);
  if (!w.done) LeadGroup(&w, lock);
  *refused_for_space = w.refused_for_space;
  return std::move(w.status);
}

void StoreImpl::LeadGroup(Writer* self, std::unique_lock<std::mutex>& lock) {
  (void)self;
  // Take the group and validate each writer's batch. The leader_* buffers
  // are reused across groups (only the current leader touches them).
  std::vector<Writer*>& group = leader_group_;
  std::vector<uint64_t>& sizes = leader_sizes_;
  group.clear();
  sizes.clear();
  for (size_t i = 0; i < writers_.size() && i < kMaxGroupWriters; ++i) {
    Writer* w = writers_[i];
    uint64_t bytes = 0;
    for (const AppendItem& item : w->batch) {
      if (item.targets.empty()) continue;
      if (item.message.size() > UINT32_MAX) {
        w->status = absl::InvalidArgumentError("message larger than 4 GiB");
        break;
      }
      bytes += item.message.size() + f::kPayloadOverheadBytes;
      for (const QueueTarget& t : item.targets) {
        if (t.queue >= queues_.size()) {
          w->status = absl::InvalidArgumentError(
              absl::StrCat("unknown queue handle ", t.queue));
          break;
        }
        bytes += f::kRefBytes;
      }
      if (!w->status.ok()) break;
    }
    group.push_back(w);
    sizes.push_back(bytes);
  }

  // Space: admit writers in order while they fit.
  uint64_t admitted_bytes = 0;
  if (options_.max_bytes > 0) {
    for (size_t i = 0; i < group.size(); ++i) {
      Writer* w = group[i];
      if (!w->status.ok()) continue;
      if (sizes[i] > options_.max_bytes) {
        w->status = absl::ResourceExhaustedError(absl::StrCat(
            "batch of ", sizes[i], " bytes exceeds the store limit of ",
            options_.max_bytes, " bytes"));
        ++rejected_full_;
        continue;
      }
      if (stored_bytes_ + admitted_bytes + sizes[i] > options_.max_bytes) {
        MakeRoom(admitted_bytes + sizes[i], lock);
      }
      if (stored_bytes_ + admitted_bytes + sizes[i] > options_.max_bytes) {
        w->status = absl::ResourceExhaustedError(absl::StrCat(
            "store is full: ", stored_bytes_, " of ", options_.max_bytes,
            " bytes used, batch needs ", sizes[i]));
        ++rejected_full_;
        continue;
      }
      admitted_bytes += sizes[i];
    }
  } else {
    for (size_t i = 0; i < group.size(); ++i) {
      if (group[i]->status.ok()) admitted_bytes += sizes[i];
    }
  }

  // Assign sequences and offsets in queue order and build one WriteBatch.
  const uint64_t first_seq = next_seq_;
  std::vector<std::pair<uint32_t, uint64_t>>& saved_offsets =
      leader_saved_offsets_;
  saved_offsets.clear();
  rocksdb::WriteBatch& wb = leader_batch_;
  wb.Clear();
  std::vector<PendingRef>& refs = leader_refs_;
  refs.clear();
  std::vector<absl::Span<const uint8_t>>& payload_bytes = leader_payloads_;
  payload_bytes.clear();
  const int64_t now = options_.clock->NowMicros();
  uint64_t payloads = 0;
  int64_t min_expiry = kInfinite;
  char ref_value[f::kRefValueSize];
  char counts[f::kPayloadRefsValueSize];
  for (Writer* w : group) {
    if (!w->status.ok()) continue;
    for (const AppendItem& item : w->batch) {
      if (item.targets.empty()) continue;
      const uint64_t seq = next_seq_++;
      ++payloads;
      payload_bytes.push_back(item.message);
      f::SeqKey seq_key(seq);
      wb.Put(payloads_cf_, ToSlice(seq_key.view()),
             rocksdb::Slice(reinterpret_cast<const char*>(item.message.data()),
                            item.message.size()));
      f::PayloadRefsValue pr;
      pr.refs = static_cast<uint32_t>(item.targets.size());
      pr.size = static_cast<uint32_t>(item.message.size());
      pr.Encode(counts);
      wb.Put(payload_refs_cf_, ToSlice(seq_key.view()),
             rocksdb::Slice(counts, sizeof(counts)));
      for (const QueueTarget& t : item.targets) {
        QueueState& q = queues_[t.queue];
        if (q.next_offset == q.tail + 1) {
          saved_offsets.emplace_back(t.queue, q.next_offset);
        }
        PendingRef ref;
        ref.queue = t.queue;
        ref.offset = q.next_offset++;
        ref.value.payload_seq = seq;
        ref.value.enqueue_us = now;
        ref.value.expiry_us = ExpiryFor(now, t.ttl_secs);
        ref.payload_index = static_cast<uint32_t>(payload_bytes.size() - 1);
        min_expiry = std::min(min_expiry, ref.value.expiry_us);
        refs.push_back(ref);
      }
    }
  }
  // References go into the batch queue by queue: consecutive memtable
  // inserts then land right after each other, which RocksDB's skip list
  // does without a search (interleaving queues costs a search per insert).
  std::sort(
      refs.begin(), refs.end(), [](const PendingRef& a, const PendingRef& b) {
        return a.queue != b.queue ? a.queue < b.queue : a.offset < b.offset;
      });
  for (const PendingRef& ref : refs) {
    f::RefKey key(ref.queue, ref.offset);
    ref.value.Encode(ref_value);
    wb.Put(refs_cf_, ToSlice(key.view()),
           rocksdb::Slice(ref_value, sizeof(ref_value)));
  }

  absl::Status status;
  bool refused_for_space = false;
  if (wb.Count() > 0) {
    lock.unlock();
    // The batch goes to the WAL and, later, from the memtable into a table
    // file: twice its size, before compression.
    const uint64_t charge = 2 * static_cast<uint64_t>(wb.GetDataSize());
    if (charge > leader_space_budget_) {
      status = CheckFreeSpace(charge, &leader_space_budget_);
    }
    if (status.ok()) {
      leader_space_budget_ -= std::min(leader_space_budget_, charge);
      rocksdb::Status s =
          Write(AppendWriteOptions(), &wb, /*may_use_reserve=*/false);
      if (!s.ok()) status = RocksDbToStatus(s, "appending to the store");
      if (status.ok() && read_cache_enabled_) {
        // Before the tails are published below: a reader that sees a tail
        // finds everything up to it cached.
        std::lock_guard<std::mutex> cache_lock(cache_mu_);
        std::vector<uint64_t>& handles = leader_cache_handles_;
        handles.clear();
        for (absl::Span<const uint8_t> bytes : payload_bytes) {
          handles.push_back(read_cache_.AddPayload(bytes));
        }
        for (const PendingRef& ref : refs) {
          read_cache_.AddRef(
              ref.queue, ref.offset, ref.value.enqueue_us, ref.value.expiry_us,
              handles[ref.payload_index],
              static_cast<uint32_t>(payload_bytes[ref.payload_index].size()));
        }
      }
    } else {
      leader_space_budget_ = 0;
      refused_for_space = true;
      low_space_.store(true, std::memory_order_relaxed);
    }
    lock.lock();
    if (!status.ok()) CountError(kAppendOp);
  }
  // Do not keep a huge buffer alive after an exceptionally large group.
  if (wb.GetDataSize() > (8u << 20)) {
    wb = rocksdb::WriteBatch();
    refs = std::vector<PendingRef>();
  }
  if (status.ok()) {
    for (const auto& [queue, first] : saved_offsets) {
      (void)first;
      queues_[queue].tail = queues_[queue].next_offset - 1;
    }
    stored_bytes_ += admitted_bytes;
    appended_since_cleanup_ += admitted_bytes;
    payload_count_ += payloads;
    min_expiry_hint_ = std::min(min_expiry_hint_, min_expiry);
    appended_min_expiry_ = std::min(appended_min_expiry_, min_expiry);
  } else {
    // Nothing was written: give the offsets and sequences back.
    for (const auto& [queue, first] : saved_offsets) {
      queues_[queue].next_offset = first;
    }
    next_seq_ = first_seq;
  }
  for (Writer* w : group) {
    if (w->status.ok()) {
      w->status = status;
      w->refused_for_space = refused_for_space;
    }
    writers_.pop_front();
    w->done = true;
    if (w != self) w->cv.notify_one();
  }
  if (!writers_.empty()) writers_.front()->cv.notify_one();
}

absl::Status StoreImpl::CheckFreeSpace(uint64_t group_bytes,
                                       uint64_t* spare_bytes) {
  *spare_bytes = 0;
  uint64_t free_bytes = 0;
  if (!fs_->GetFreeSpace(options_.directory, rocksdb::IOOptions(), &free_bytes,
                         nullptr)
           .ok()) {
    // Not every file system reports free space: then only the reserve and
    // RocksDB's own error handling guard. Read again after 64 MiB.
    *spare_bytes = 64u << 20;
    return absl::OkStatus();
  }
  uint64_t memtable_bytes = 0;
  for (rocksdb::ColumnFamilyHandle* cf : cfs_) {
    uint64_t bytes = 0;
    if (db_->GetIntProperty(cf, rocksdb::DB::Properties::kCurSizeAllMemTables,
                            &bytes)) {
      memtable_bytes += bytes;
    }
  }
  // A store configured without a reserve (tests, tiny disks) keeps less.
  const uint64_t kept =
      memtable_bytes +
      std::min<uint64_t>(kFreeSpaceSlackBytes, options_.reserve_bytes / 4);
  if (free_bytes < kept + group_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "disk nearly full: ", free_bytes, " bytes free; the store keeps ", kept,
        " free to flush what it holds in memory and needs ", group_bytes,
        " more"));
  }
  // Half of what is left before the next read: compactions and other
  // writers use the disk as well.
  *spare_bytes = (free_bytes - kept) / 2;
  return absl::OkStatus();
}

void StoreImpl::MakeRoom(uint64_t needed, std::unique_lock<std::mutex>& lock) {
  const int64_t now = options_.clock->NowMicros();
  const bool may_free = checkpoint_moved_ || min_expiry_hint_ <= now;
  if (!may_free && options_.full_policy == FullPolicy::kReject) return;
  lock.unlock();
  {
    std::lock_guard<std::mutex> cleanup_lock(cleanup_mu_);
    if (may_free && !CleanupLocked(/*force_compaction=*/false).ok()) {
      CountError(kCleanupOp);
    }
    if (options_.full_policy == FullPolicy::kDropOldest &&
        !DropOldestLocked(needed).ok()) {
      CountError(kCleanupOp);
    }
  }
  lock.lock();
}

bool StoreImpl::QuarantineLocked(uint32_t queue, uint64_t offset,
                                 absl::string_view what) {
  if (!quarantined_.emplace(queue, offset).second) return false;
  ++quarantined_count_;
  std::string where;
  if (queue == kNoQueue) {
    where = absl::StrCat("payload ", offset);
  } else if (queue < queues_.size()) {
    where = absl::StrCat("queue '", queues_[queue].id.endpoint_id,
                         "' priority ", queues_[queue].id.priority);
    if (offset != 0) absl::StrAppend(&where, " offset ", offset);
  } else {
    where = absl::StrCat("queue handle ", queue, " offset ", offset);
  }
  std::fprintf(stderr, "edgeroute store %s: quarantined %s: %s\n",
               options_.directory.c_str(), where.c_str(),
               std::string(what).c_str());
  return true;
}

absl::Status StoreImpl::ReadImpl(uint32_t queue, uint64_t after,
                                 bool from_checkpoint, size_t max,
                                 std::vector<StoredMessage>* out) {
  QuietRocksDbPerfContext();
  out->clear();
  uint64_t tail;
  QueueId id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return absl::FailedPreconditionError("store is closed");
    if (queue >= queues_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown queue handle ", queue));
    }
    const QueueState& q = queues_[queue];
    if (from_checkpoint) after = std::max(q.checkpoint, q.expired_skip_through);
    after = std::max(after, q.removed_through);
    tail = q.tail;
    id = q.id;
  }
  if (after >= tail || max == 0) return absl::OkStatus();

  const int64_t now = options_.clock->NowMicros();
  // Expired references at the start of the range (nothing live before
  // them): counted once and skipped by later reads.
  std::vector<uint64_t> expired_prefix;
  // Every expired reference the read skips, prefix or not (ReadAfter skips
  // them in the middle of a queue): counted once each below.
  std::vector<uint64_t> expired_skipped;
  const bool may_count = from_checkpoint;
  // Corrupt records met by this read (offset, what is wrong): quarantined
  // below, never returned.
  std::vector<std::pair<uint64_t, std::string>> corrupt;
  absl::Status status;
  // A reader that keeps up finds the range in the read cache: the bytes
  // this store wrote, so neither RocksDB nor a verification is needed.
  bool cached = false;
  if (read_cache_enabled_) {
    std::lock_guard<std::mutex> cache_lock(cache_mu_);
    cached = read_cache_.Visit(
        queue, after + 1, tail, [&](const internal::ReadCache::Ref& ref) {
          if (out->size() >= max) return false;
          if (ref.expiry_us <= now) {
            if (may_count && out->empty()) expired_prefix.push_back(ref.offset);
            expired_skipped.push_back(ref.offset);
            return true;
          }
          out->emplace_back();
          StoredMessage& m = out->back();
          m.offset = ref.offset;
          m.enqueue_time_us = ref.enqueue_us;
          m.expiry_us = ref.expiry_us;
          m.bytes.assign(ref.bytes.data(), ref.bytes.size());
          return true;
        });
  }
  if (!cached) {
    const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot;
    f::RefKey upper(queue, tail + 1);
    rocksdb::Slice upper_slice = ToSlice(upper.view());
    std::vector<uint64_t> seqs;
    std::vector<bool> keep;
    // One pass reads up to `max` references from `after`. A pass that skipped
    // corrupt records and stopped at its limit runs again from where it
    // stopped, so corrupt records never make a read come back short (the
    // router takes a short read for "nothing more").
    for (;;) {
      const size_t first_new = out->size();
      const size_t corrupt_before = corrupt.size();
      bool hit_limit = false;
      uint64_t last_scanned = after;
      seqs.clear();
      {
        ro.iterate_upper_bound = &upper_slice;
        std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, refs_cf_));
        f::RefKey start(queue, after + 1);
        for (it->Seek(ToSlice(start.view())); it->Valid(); it->Next()) {
          if (out->size() >= max) {
            hit_limit = true;
            break;
          }
          const uint64_t offset = f::GetBe64(it->key().data() + 4);
          last_scanned = offset;
          f::RefValue ref;
          if (!ref.Decode({it->value().data(), it->value().size()})) {
            corrupt.emplace_back(offset, "reference record is corrupt");
            continue;
          }
          if (ref.expiry_us <= now) {
            if (may_count && out->empty()) expired_prefix.push_back(offset);
            expired_skipped.push_back(offset);
            continue;
          }
          StoredMessage m;
          m.offset = offset;
          m.enqueue_time_us = ref.enqueue_us;
          m.expiry_us = ref.expiry_us;
          out->push_back(std::move(m));
          seqs.push_back(ref.payload_seq);
        }
        if (!it->status().ok()) {
          status = RocksDbToStatus(
              it->status(),
              absl::StrCat("reading queue '", id.endpoint_id, "'"));
        }
      }
      if (status.ok() && !seqs.empty()) {
        std::vector<f::SeqKey> keys;
        keys.reserve(seqs.size());
        std::vector<rocksdb::Slice> slices;
        slices.reserve(seqs.size());
        for (uint64_t seq : seqs) {
          keys.emplace_back(seq);
          slices.push_back(ToSlice(keys.back().view()));
        }
        std::vector<rocksdb::PinnableSlice> values(seqs.size());
        std::vector<rocksdb::Status> statuses(seqs.size());
        ro.iterate_upper_bound = nullptr;
        db_->MultiGet(ro, payloads_cf_, seqs.size(), slices.data(),
                      values.data(), statuses.data(), /*sorted_input=*/false);
        keep.assign(seqs.size(), true);
        for (size_t i = 0; i < seqs.size() && status.ok(); ++i) {
          StoredMessage& m = (*out)[first_new + i];
          if (statuses[i].IsNotFound()) {
            corrupt.emplace_back(
                m.offset, absl::StrCat("payload ", seqs[i], " is missing"));
            keep[i] = false;
          } else if (statuses[i].IsCorruption()) {
            corrupt.emplace_back(m.offset,
                                 absl::StrCat("payload ", seqs[i], ": ",
                                              statuses[i].ToString()));
            keep[i] = false;
          } else if (!statuses[i].ok()) {
            status = RocksDbToStatus(
                statuses[i],
                absl::StrCat("queue '", id.endpoint_id, "' offset ", m.offset,
                             ": payload ", seqs[i]));
          } else {
            m.bytes.assign(values[i].data(), values[i].size());
            absl::StatusOr<MessageView> view = MessageView::Verify(
                {reinterpret_cast<const uint8_t*>(m.bytes.data()),
                 m.bytes.size()});
            if (!view.ok()) {
              corrupt.emplace_back(
                  m.offset,
                  absl::StrCat("payload ", seqs[i], " is not a valid message: ",
                               view.status().message()));
              keep[i] = false;
            }
          }
        }
        if (corrupt.size() > corrupt_before) {
          size_t kept = first_new;
          for (size_t i = 0; i < seqs.size(); ++i) {
            if (!keep[i]) continue;
            if (kept != first_new + i)
              (*out)[kept] = std::move((*out)[first_new + i]);
            ++kept;
          }
          out->resize(kept);
        }
      }
      if (!status.ok() || corrupt.size() == corrupt_before || !hit_limit) break;
      after = last_scanned;
    }
    db_->ReleaseSnapshot(snapshot);
  }
  if (!corrupt.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [offset, what] : corrupt) {
      QuarantineLocked(queue, offset, what);
    }
  }
  if (!status.ok()) {
    out->clear();
    CountError(kReadOp);
    return status;
  }
  if (!expired_skipped.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    QueueState& q = queues_[queue];
    const uint64_t counted =
        std::max(q.expired_skip_through, q.expired_counted_through);
    for (uint64_t offset : expired_skipped) {
      if (offset > counted) ++expired_;
    }
    q.expired_counted_through =
        std::max(q.expired_counted_through, expired_skipped.back());
    if (!expired_prefix.empty()) {
      q.expired_skip_through =
          std::max(q.expired_skip_through, expired_prefix.back());
    }
  }
  return absl::OkStatus();
}

absl::Status StoreImpl::Checkpoint(uint32_t queue, uint64_t offset) {
  QuietRocksDbPerfContext();
  std::lock_guard<std::mutex> ckpt_lock(checkpoint_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return absl::FailedPreconditionError("store is closed");
    if (queue >= queues_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown queue handle ", queue));
    }
    const QueueState& q = queues_[queue];
    if (offset > q.tail) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint ", offset, " is beyond the tail ", q.tail,
                       " of queue '", q.id.endpoint_id, "'"));
    }
    if (offset <= q.checkpoint) return absl::OkStatus();
  }
  rocksdb::Status s =
      Put(rocksdb::WriteOptions(), meta_cf_,
          f::QueueMetaKey(f::kCheckpointTag, queue), f::Be64String(offset));
  if (!s.ok()) {
    CountError(kCheckpointOp);
    return RocksDbToStatus(s, "writing a checkpoint");
  }
  bool early_cleanup = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queues_[queue].checkpoint = std::max(queues_[queue].checkpoint, offset);
    checkpoint_moved_ = true;
    // Half a memtable of appends since the last cleanup, and something was
    // delivered: clean up now, so that delivered messages are deleted
    // while their memtable is still in memory -- its flush then drops
    // them instead of writing them to a table file.
    if (options_.cleanup_interval_ms > 0 && !cleanup_requested_ &&
        appended_since_cleanup_ >= options_.write_buffer_bytes / 2) {
      cleanup_requested_ = true;
      early_cleanup = true;
    }
  }
  if (early_cleanup) {
    std::lock_guard<std::mutex> lock(bg_mu_);
    bg_early_ = true;
    bg_cv_.notify_all();
  }
  if (read_cache_enabled_) {
    std::lock_guard<std::mutex> cache_lock(cache_mu_);
    read_cache_.Forget(queue, offset);
  }
  return absl::OkStatus();
}

absl::Status StoreImpl::RemoveRefs(
    uint32_t queue, uint64_t prefix_through,
    const std::vector<std::pair<uint64_t, uint64_t>>& refs, size_t prefix_count,
    uint64_t newly_expired, uint64_t dropped) {
  uint64_t old_removed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old_removed = queues_[queue].removed_through;
  }
  rocksdb::WriteBatch wb;
  if (prefix_through > old_removed) {
    f::RefKey from(queue, old_removed + 1);
    f::RefKey to(queue, prefix_through + 1);
    wb.DeleteRange(refs_cf_, ToSlice(from.view()), ToSlice(to.view()));
    wb.Put(meta_cf_, f::QueueMetaKey(f::kRemovedTag, queue),
           f::Be64String(prefix_through));
  }
  for (size_t i = prefix_count; i < refs.size(); ++i) {
    f::RefKey key(queue, refs[i].first);
    wb.Delete(refs_cf_, ToSlice(key.view()));
  }
  // Reference counts: (payload sequence, references removed), ascending.
  // A queue's sequences ascend with its offsets, so this is nearly sorted.
  std::vector<std::pair<uint64_t, uint32_t>> decrements;
  decrements.reserve(refs.size());
  for (const auto& [offset, seq] : refs) {
    (void)offset;
    if (seq != kUnknownSeq) decrements.emplace_back(seq, 1);
  }
  std::sort(decrements.begin(), decrements.end());
  size_t unique = 0;
  for (size_t i = 0; i < decrements.size(); ++i) {
    if (unique > 0 && decrements[unique - 1].first == decrements[i].first) {
      ++decrements[unique - 1].second;
    } else {
      decrements[unique++] = decrements[i];
    }
  }
  decrements.resize(unique);
  uint64_t freed = refs.size() * f::kRefBytes;
  uint64_t payloads_deleted = 0;
  char counts[f::kPayloadRefsValueSize];
  // Payloads whose last reference goes, deleted by runs of consecutive
  // sequences: a run of several is one range deletion per column family
  // instead of a tombstone per payload (one queue's messages usually have
  // consecutive sequences). Every sequence in a run is in this batch, so
  // no live payload is inside one.
  uint64_t run_first = 0, run_last = 0;
  auto flush_run = [&] {
    if (run_first == 0) return;
    if (run_first == run_last) {
      f::SeqKey key(run_first);
      wb.Delete(payloads_cf_, ToSlice(key.view()));
      wb.Delete(payload_refs_cf_, ToSlice(key.view()));
    } else {
      f::SeqKey from(run_first), to(run_last + 1);
      wb.DeleteRange(payloads_cf_, ToSlice(from.view()), ToSlice(to.view()));
      wb.DeleteRange(payload_refs_cf_, ToSlice(from.view()),
                     ToSlice(to.view()));
    }
    run_first = run_last = 0;
  };
  // The counts are read with sorted MultiGets of kCountsPerMultiGet keys
  // rather than a Get each; RocksDB handles that many without allocating.
  char count_keys[kCountsPerMultiGet][8];
  rocksdb::Slice count_slices[kCountsPerMultiGet];
  rocksdb::PinnableSlice count_values[kCountsPerMultiGet];
  rocksdb::Status count_statuses[kCountsPerMultiGet];
  for (size_t i = 0; i < decrements.size(); ++i) {
    const size_t slot = i % kCountsPerMultiGet;
    if (slot == 0) {
      const size_t n = std::min(kCountsPerMultiGet, decrements.size() - i);
      for (size_t k = 0; k < n; ++k) {
        f::PutBe64(count_keys[k], decrements[i + k].first);
        count_slices[k] = rocksdb::Slice(count_keys[k], sizeof(count_keys[k]));
        count_values[k].Reset();
      }
      db_->MultiGet(rocksdb::ReadOptions(), payload_refs_cf_, n, count_slices,
                    count_values, count_statuses, /*sorted_input=*/true);
    }
    const uint64_t seq = decrements[i].first;
    const uint32_t dec = decrements[i].second;
    const rocksdb::Status& s = count_statuses[slot];
    f::PayloadRefsValue pr;
    if (s.IsNotFound()) continue;  // Already gone: nothing to free.
    if (!s.ok()) return RocksDbToStatus(s, "reading a reference count");
    if (!pr.Decode({count_values[slot].data(), count_values[slot].size()})) {
      // Left alone (other queues may still read the payload); `edgeroute
      // store repair` recounts it.
      std::lock_guard<std::mutex> lock(mu_);
      QuarantineLocked(kNoQueue, seq, "reference count record is corrupt");
      continue;
    }
    if (pr.refs <= dec) {
      if (run_first != 0 && run_last + 1 == seq) {
        run_last = seq;
      } else {
        flush_run();
        run_first = run_last = seq;
      }
      freed += pr.size + f::kPayloadOverheadBytes;
      ++payloads_deleted;
      dirty_seq_min_ = std::min(dirty_seq_min_, seq);
      dirty_seq_max_ = std::max(dirty_seq_max_, seq);
    } else {
      pr.refs -= dec;
      pr.Encode(counts);
      f::SeqKey key(seq);
      wb.Put(payload_refs_cf_, ToSlice(key.view()),
             rocksdb::Slice(counts, sizeof(counts)));
    }
  }
  flush_run();
  {
    std::lock_guard<std::mutex> lock(mu_);
    wb.Put(meta_cf_, f::kPayloadFloorKey, f::Be64String(next_seq_));
  }
  rocksdb::Status s = Write(rocksdb::WriteOptions(), &wb);
  if (!s.ok()) return RocksDbToStatus(s, "removing references");
  dirty_queue_min_ = std::min(dirty_queue_min_, queue);
  dirty_queue_max_ = std::max(dirty_queue_max_, queue);
  freed_since_compaction_ += freed;
  uint64_t removed_through;
  {
    std::lock_guard<std::mutex> lock(mu_);
    QueueState& q = queues_[queue];
    q.removed_through = std::max(q.removed_through, prefix_through);
    removed_through = q.removed_through;
    quarantined_.erase(quarantined_.lower_bound({queue, 1}),
                       quarantined_.upper_bound({queue, q.removed_through}));
    stored_bytes_ -= std::min(stored_bytes_, freed);
    payload_count_ -= std::min(payload_count_, payloads_deleted);
    expired_ += newly_expired;
    dropped_full_ += dropped;
  }
  if (read_cache_enabled_) {
    std::lock_guard<std::mutex> cache_lock(cache_mu_);
    read_cache_.Forget(queue, removed_through);
  }
  return absl::OkStatus();
}

absl::Status StoreImpl::CleanupLocked(bool force_compaction, bool may_compact) {
  std::vector<QueueState> queues;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return absl::FailedPreconditionError("store is closed");
    queues = queues_;
    checkpoint_moved_ = false;
    appended_min_expiry_ = kInfinite;
    appended_since_cleanup_ = 0;
    cleanup_requested_ = false;
  }
  const int64_t now = options_.clock->NowMicros();
  int64_t min_expiry = kInfinite;
  for (uint32_t qi = 0; qi < queues.size(); ++qi) {
    const QueueState& q = queues[qi];
    if (q.tail <= q.removed_through) continue;
    rocksdb::ReadOptions ro;
    f::RefKey upper(qi, q.tail + 1);
    rocksdb::Slice upper_slice = ToSlice(upper.view());
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, refs_cf_));
    f::RefKey start(qi, q.removed_through + 1);
    std::vector<std::pair<uint64_t, uint64_t>> refs;
    size_t prefix_count = 0;
    bool in_prefix = true;
    uint64_t prefix_through = q.removed_through;
    uint64_t newly_expired = 0;
    for (it->Seek(ToSlice(start.view())); it->Valid(); it->Next()) {
      const uint64_t offset = f::GetBe64(it->key().data() + 4);
      f::RefValue ref;
      // A corrupt reference cannot be delivered: it is removed like an
      // expired one (its payload, unknown, is left to `store repair`).
      const bool corrupt =
          !ref.Decode({it->value().data(), it->value().size()});
      if (corrupt) {
        std::lock_guard<std::mutex> lock(mu_);
        QuarantineLocked(qi, offset, "reference record is corrupt");
        ref.payload_seq = kUnknownSeq;
        ref.expiry_us = now;
      }
      const bool delivered = offset <= q.checkpoint;
      const bool expired = ref.expiry_us <= now;
      if (!delivered && !expired) {
        in_prefix = false;
        min_expiry = std::min(min_expiry, ref.expiry_us);
        continue;
      }
      if (!delivered && !corrupt &&
          offset >
              std::max(q.expired_skip_through, q.expired_counted_through)) {
        ++newly_expired;
      }
      refs.emplace_back(offset, ref.payload_seq);
      if (in_prefix) {
        ++prefix_count;
        prefix_through = offset;
      }
      if (refs.size() >= kCleanupChunk) {
        EDGEROUTE_RETURN_IF_ERROR(RemoveRefs(qi, prefix_through, refs,
                                             prefix_count, newly_expired, 0));
        refs.clear();
        prefix_count = 0;
        newly_expired = 0;
      }
    }
    EDGEROUTE_RETURN_IF_ERROR(IterStatus(it.get(), "cleaning up a queue"));
    if (in_prefix) prefix_through = std::max(prefix_through, q.checkpoint);
    prefix_through = std::min(prefix_through, q.tail);
    if (!refs.empty() || prefix_through > q.removed_through) {
      EDGEROUTE_RETURN_IF_ERROR(
          RemoveRefs(qi, prefix_through, refs, prefix_count, newly_expired, 0));
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Appends made after the queue snapshot were not scanned.
    min_expiry_hint_ = std::min(min_expiry, appended_min_expiry_);
  }
  if (force_compaction || (may_compact && freed_since_compaction_ >=
                                              options_.compact_after_bytes)) {
    return CompactLocked();
  }
  return absl::OkStatus();
}

absl::Status StoreImpl::DropOldestLocked(uint64_t needed) {
  // Queues by ascending importance: largest priority number first.
  std::vector<uint32_t> order;
  std::vector<QueueState> queues;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queues = queues_;
  }
  for (uint32_t q = 0; q < queues.size(); ++q) order.push_back(q);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return queues[a].id.priority > queues[b].id.priority;
  });
  for (uint32_t qi : order) {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stored_bytes_ + needed <= options_.max_bytes) {
          return absl::OkStatus();
        }
      }
      QueueState q;
      {
        std::lock_guard<std::mutex> lock(mu_);
        q = queues_[qi];
      }
      if (q.tail <= q.removed_through) break;
      std::unique_ptr<rocksdb::Iterator> it(
          db_->NewIterator(rocksdb::ReadOptions(), refs_cf_));
      f::RefKey start(qi, q.removed_through + 1);
      std::vector<std::pair<uint64_t, uint64_t>> refs;
      uint64_t dropped = 0;
      uint64_t through = q.removed_through;
      for (it->Seek(ToSlice(start.view())); it->Valid() && refs.size() < 64 &&
                                            f::GetBe32(it->key().data()) == qi;
           it->Next()) {
        f::RefValue ref;
        const uint64_t offset = f::GetBe64(it->key().data() + 4);
        if (offset > q.tail) break;
        if (!ref.Decode({it->value().data(), it->value().size()})) {
          std::lock_guard<std::mutex> lock(mu_);
          QuarantineLocked(qi, offset, "reference record is corrupt");
          ref.payload_seq = kUnknownSeq;
        }
        refs.emplace_back(offset, ref.payload_seq);
        if (offset > q.checkpoint) ++dropped;
        through = offset;
      }
      EDGEROUTE_RETURN_IF_ERROR(IterStatus(it.get(), "dropping references"));
      if (refs.empty()) through = q.tail;
      EDGEROUTE_RETURN_IF_ERROR(
          RemoveRefs(qi, through, refs, refs.size(), 0, dropped));
    }
  }
  return absl::OkStatus();
}

absl::Status StoreImpl::CompactLocked() {
  rocksdb::FlushOptions fo;
  rocksdb::Status s = ResumeIfNeeded();
  if (s.ok()) s = db_->Flush(fo, cfs_);
  if (s.IsNoSpace() && reserve_->Release()) {
    NoteFailedBackgroundWrite();
    s = ResumeIfNeeded();
    if (s.ok()) s = db_->Flush(fo, cfs_);
  }
  if (!s.ok()) {
    NoteFailedBackgroundWrite();
    return RocksDbToStatus(s, "flushing before compaction");
  }
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction =
      rocksdb::BottommostLevelCompaction::kForceOptimized;
  if (dirty_seq_min_ <= dirty_seq_max_) {
    f::SeqKey from(dirty_seq_min_), to(dirty_seq_max_ + 1);
    rocksdb::Slice a = ToSlice(from.view()), b = ToSlice(to.view());
    for (rocksdb::ColumnFamilyHandle* cf : {payloads_cf_, payload_refs_cf_}) {
      s = db_->CompactRange(co, cf, &a, &b);
      if (!s.ok()) {
        NoteFailedBackgroundWrite();
        return RocksDbToStatus(s, "compacting payloads");
      }
    }
  }
  if (dirty_queue_min_ <= dirty_queue_max_) {
    f::RefKey from(dirty_queue_min_, 0), to(dirty_queue_max_ + 1, 0);
    rocksdb::Slice a = ToSlice(from.view()), b = ToSlice(to.view());
    s = db_->CompactRange(co, refs_cf_, &a, &b);
    if (!s.ok()) {
      NoteFailedBackgroundWrite();
      return RocksDbToStatus(s, "compacting references");
    }
  }
  freed_since_compaction_ = 0;
  dirty_seq_min_ = UINT64_MAX;
  dirty_seq_max_ = 0;
  dirty_queue_min_ = UINT32_MAX;
  dirty_queue_max_ = 0;
  return absl::OkStatus();
}

absl::Status StoreImpl::RunCleanup(bool force_compaction) {
  return CleanUp(force_compaction, /*may_compact=*/true);
}

absl::Status StoreImpl::CleanUp(bool force_compaction, bool may_compact) {
  QuietRocksDbPerfContext();
  std::lock_guard<std::mutex> lock(cleanup_mu_);
  absl::Status status = CleanupLocked(force_compaction, may_compact);
  if (!status.ok() && status.code() != absl::StatusCode::kFailedPrecondition) {
    CountError(kCleanupOp);
  }
  return status;
}

void StoreImpl::BackgroundLoop() {
  const auto period = std::chrono::milliseconds(options_.cleanup_interval_ms);
  auto next_periodic = std::chrono::steady_clock::now() + period;
  std::unique_lock<std::mutex> lock(bg_mu_);
  while (!bg_stop_) {
    bg_cv_.wait_until(lock, next_periodic,
                      [&] { return bg_stop_ || bg_early_; });
    if (bg_stop_) break;
    // An early cleanup (Checkpoint asked) only deletes; the periodic one
    // also compacts what was deleted, once there is enough of it.
    const bool periodic = std::chrono::steady_clock::now() >= next_periodic;
    bg_early_ = false;
    lock.unlock();
    // Errors are counted; the next run retries.
    CleanUp(/*force_compaction=*/false, /*may_compact=*/periodic).IgnoreError();
    lock.lock();
    if (periodic) next_periodic = std::chrono::steady_clock::now() + period;
  }
}

Store::Stats StoreImpl::GetStats() const {
  Stats stats;
  std::vector<QueueState> queues;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queues = queues_;
    stats.stored_bytes = stored_bytes_;
    stats.payloads = payload_count_;
    stats.expired = expired_;
    stats.dropped_full = dropped_full_;
    stats.rejected_full = rejected_full_;
    stats.quarantined = quarantined_count_;
    // Relaxed: plain counters.
    stats.append_errors = errors_[kAppendOp].load(std::memory_order_relaxed);
    stats.read_errors = errors_[kReadOp].load(std::memory_order_relaxed);
    stats.checkpoint_errors =
        errors_[kCheckpointOp].load(std::memory_order_relaxed);
    stats.cleanup_errors = errors_[kCleanupOp].load(std::memory_order_relaxed);
    if (closed_) return stats;
  }
  for (uint32_t qi = 0; qi < queues.size(); ++qi) {
    const QueueState& q = queues[qi];
    QueueStats qs;
    qs.id = q.id;
    qs.tail = q.tail;
    qs.checkpoint = q.checkpoint;
    const uint64_t done = std::max(q.checkpoint, q.removed_through);
    qs.depth = q.tail > done ? q.tail - done : 0;
    qs.head = q.tail + 1;
    rocksdb::ReadOptions ro;
    f::RefKey upper(qi, q.tail + 1);
    rocksdb::Slice upper_slice = ToSlice(upper.view());
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, refs_cf_));
    it->Seek(ToSlice(f::RefKey(qi, q.removed_through + 1).view()));
    if (it->Valid()) qs.head = f::GetBe64(it->key().data() + 4);
    it->Seek(ToSlice(f::RefKey(qi, done + 1).view()));
    f::RefValue ref;
    if (it->Valid() && ref.Decode({it->value().data(), it->value().size()})) {
      qs.oldest_enqueue_us = ref.enqueue_us;
    }
    stats.queues.push_back(std::move(qs));
  }
  stats.bytes_on_disk = internal::DirectoryBytes(options_.directory);
  if (statistics_ != nullptr) {
    stats.bytes_written_to_disk =
        statistics_->getTickerCount(rocksdb::WAL_FILE_BYTES) +
        statistics_->getTickerCount(rocksdb::FLUSH_WRITE_BYTES) +
        statistics_->getTickerCount(rocksdb::COMPACT_WRITE_BYTES);
    auto ticker = [&](rocksdb::Tickers t) {
      return statistics_->getTickerCount(t);
    };
    stats.db_writes = ticker(rocksdb::WRITE_DONE_BY_SELF) +
                      ticker(rocksdb::WRITE_DONE_BY_OTHER);
    stats.db_records_written = ticker(rocksdb::NUMBER_KEYS_WRITTEN);
    stats.db_bytes_written = ticker(rocksdb::BYTES_WRITTEN);
    stats.wal_bytes = ticker(rocksdb::WAL_FILE_BYTES);
    stats.wal_syncs = ticker(rocksdb::WAL_FILE_SYNCED);
    stats.db_records_read = ticker(rocksdb::NUMBER_KEYS_READ) +
                            ticker(rocksdb::NUMBER_MULTIGET_KEYS_READ) +
                            ticker(rocksdb::NUMBER_DB_SEEK) +
                            ticker(rocksdb::NUMBER_DB_NEXT);
  }
  return stats;
}

absl::Status StoreImpl::Close() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    bg_stop_ = true;
    bg_cv_.notify_all();
  }
  if (bg_thread_.joinable()) bg_thread_.join();
  std::lock_guard<std::mutex> cleanup_lock(cleanup_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return absl::OkStatus();
  closed_ = true;
  // Appenders still queued would be a caller bug (Close races calls).
  absl::Status status;
  if (db_ != nullptr) {
    for (rocksdb::ColumnFamilyHandle* cf : cfs_) {
      db_->DestroyColumnFamilyHandle(cf).PermitUncheckedError();
    }
    cfs_.clear();
    rocksdb::Status s = db_->Close();
    if (!s.ok()) status = RocksDbToStatus(s, "closing the store");
    db_.reset();
  }
  return status;
}

}  // namespace

bool IsStoreError(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kStoreErrorPayload).has_value();
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(
    const StoreOptions& options) {
  auto store = std::make_unique<StoreImpl>(options);
  EDGEROUTE_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace edgeroute::store
