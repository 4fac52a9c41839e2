// Test-only: a RocksDB FileSystem that runs out of space on command, for
// fault-injection tests of the store (ENOSPC, I/O errors).

#ifndef EDGEROUTE_STORE_FAULT_FS_H_
#define EDGEROUTE_STORE_FAULT_FS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace edgeroute::store {

// Wraps the default file system. Every byte appended to a writable file is
// charged to a budget; once the budget is spent, appends and new files fail
// with IOStatus::NoSpace (what RocksDB gets from ENOSPC) until the budget is
// raised again. Thread-safe.
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
  // Appends that failed for lack of space.
  int64_t failures() const { return failures_.load(std::memory_order_relaxed); }

  // Charges `bytes`; returns false (and counts a failure) if they do not fit.
  bool Charge(size_t bytes);

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

 private:
  std::atomic<int64_t> budget_{-1};
  std::atomic<int64_t> failures_{0};
};

// An Env whose file system is `fs` (for StoreOptions::env).
std::unique_ptr<rocksdb::Env> NewFaultEnv(
    const std::shared_ptr<FaultFileSystem>& fs);

}  // namespace edgeroute::store

#endif  // EDGEROUTE_STORE_FAULT_FS_H_
