// Test-only: a RocksDB FileSystem that runs out of space on command, for
// fault-injection tests of the store (ENOSPC, I/O errors).

#ifndef EDGEROUTE_STORE_FAULT_FS_H_
#define EDGEROUTE_STORE_FAULT_FS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace edgeroute::store {

// Wraps the default file system. Every byte appended to a writable file is
// charged to a budget; once the budget is spent, appends fail with
// IOStatus::NoSpace (what RocksDB gets from ENOSPC) until the budget is
// raised again. It also records how much of each file was synced, so that a
// test can simulate a power loss (SyncedSizes at the moment of the "power
// cut", DropUnsynced after closing). Thread-safe.
class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  FaultFileSystem();

  static const char* kClassName() { return "EdgerouteFaultFileSystem"; }
  const char* Name() const override { return kClassName(); }

  // Bytes that may still be written; negative = unlimited (the default).
  void SetBudget(int64_t bytes) {
    // Relaxed: a plain counter; no other data is published through it.
    budget_.store(bytes, std::memory_order_relaxed);
  }
  // Models a disk: a deleted file gives its bytes back to the budget (when
  // a budget is set). Default: off (the budget only shrinks).
  void SetDeletesFreeSpace(bool on) {
    deletes_free_space_.store(on, std::memory_order_relaxed);
  }
  int64_t budget() const { return budget_.load(std::memory_order_relaxed); }
  // Appends that failed for lack of space.
  int64_t failures() const { return failures_.load(std::memory_order_relaxed); }

  // Charges `bytes`; returns false (and counts a failure) if they do not fit.
  bool Charge(size_t bytes);

  // Path -> bytes made durable by Sync/Fsync, for every file written
  // through this file system.
  std::map<std::string, uint64_t> SyncedSizes() const;
  // What a power loss does to the files in `synced`: each one that still
  // exists is cut back to its synced size. Files created later are left
  // alone. Returns the number of files cut.
  static int DropUnsynced(const std::map<std::string, uint64_t>& synced);

  // Bookkeeping used by the wrapped files.
  void RecordCreate(const std::string& fname);
  void RecordAppend(const std::string& fname, uint64_t end);
  void RecordSync(const std::string& fname);

  rocksdb::IOStatus NewWritableFile(
      const std::string& fname, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& fname, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& fname, const std::string& old_fname,
      const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  // The budget while one is set (the disk's free space in this model).
  rocksdb::IOStatus GetFreeSpace(const std::string& path,
                                 const rocksdb::IOOptions& options,
                                 uint64_t* free_bytes,
                                 rocksdb::IODebugContext* dbg) override;

 private:
  std::atomic<int64_t> budget_{-1};
  std::atomic<bool> deletes_free_space_{false};
  std::atomic<int64_t> failures_{0};
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> written_;  // Guarded by mu_.
  std::map<std::string, uint64_t> synced_;   // Guarded by mu_.
};

// An Env whose file system is `fs` (for StoreOptions::env).
std::unique_ptr<rocksdb::Env> NewFaultEnv(
    const std::shared_ptr<FaultFileSystem>& fs);

}  // namespace edgeroute::store

#endif  // EDGEROUTE_STORE_FAULT_FS_H_
