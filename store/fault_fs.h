// Test-only: a RocksDB FileSystem that runs out of space on command and
// loses power at a chosen call, for fault-injection tests of the store
// (ENOSPC, I/O errors, power cuts).

#ifndef EDGEROUTE_STORE_FAULT_FS_H_
#define EDGEROUTE_STORE_FAULT_FS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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

  // Power cuts. After ArmPowerCut(n) the n-th mutating call from now
  // (append, sync, file creation, rename, delete, directory fsync) and
  // every one after it fail with an I/O error: the machine is off. Then,
  // with the store closed, PowerCut() leaves the directories as a power
  // loss would: every file is cut back to its synced size, and file
  // creations, renames and deletes not yet made durable by an fsync of
  // their directory are undone (newest first: created files disappear,
  // renamed ones go back, deleted ones return). Revive() switches the file
  // system on again.
  void ArmPowerCut(uint64_t ops);
  // Called once, on the thread whose call found the power off, before that
  // call fails. A process simulating a real power loss cuts (PowerCut) and
  // exits right there, so that nothing -- no error path of the database --
  // runs after the moment of the cut. Set before arming.
  void SetPowerOffHandler(std::function<void()> handler) {
    power_off_handler_ = std::move(handler);
  }
  bool dead() const { return dead_.load(std::memory_order_acquire); }
  // Returns the number of files cut plus directory operations undone.
  int PowerCut();
  void Revive();

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
  rocksdb::IOStatus RenameFile(const std::string& src,
                               const std::string& target,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name,
                                 const rocksdb::IOOptions& io_opts,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  // Counts a mutating call against an armed power cut; false once the
  // power is off (the call must fail).
  bool PowerOn();
  // A directory was fsynced: its pending creations, renames and deletes
  // are durable.
  void RecordDirSync(const std::string& dir);
  // The budget while one is set (the disk's free space in this model).
  rocksdb::IOStatus GetFreeSpace(const std::string& path,
                                 const rocksdb::IOOptions& options,
                                 uint64_t* free_bytes,
                                 rocksdb::IODebugContext* dbg) override;

 private:
  std::atomic<int64_t> budget_{-1};
  std::atomic<bool> deletes_free_space_{false};
  std::atomic<bool> dead_{false};
  std::function<void()> power_off_handler_;
  // Mutating calls left before the power goes; negative = not armed.
  std::atomic<int64_t> ops_left_{-1};
  // A file creation, rename or delete not yet made durable by an fsync of
  // its directory. `backup` is a hard link to what a rename replaced or a
  // delete removed (empty if nothing).
  struct DirOp {
    enum Kind { kCreate, kRename, kDelete } kind;
    std::string dir, path, target, backup;
  };
  std::vector<DirOp> pending_dir_ops_;  // Guarded by mu_; oldest first.
  uint64_t backups_ = 0;                // Guarded by mu_.
  // A hard link to `path` under a fresh name; empty if it does not exist.
  // REQUIRES: mu_ held.
  std::string BackupLocked(const std::string& path);
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
