#include "store/fault_fs.h"

#include <memory>
#include <string>
#include <utility>

namespace edgeroute::store {
namespace {

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file,
                    FaultFileSystem* fs)
      : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (!fs_->Charge(data.size())) return NoSpace();
    return target()->Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (!fs_->Charge(data.size())) return NoSpace();
    return target()->Append(data, options, info, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (!fs_->Charge(data.size())) return NoSpace();
    return target()->PositionedAppend(data, offset, options, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    if (!fs_->Charge(data.size())) return NoSpace();
    return target()->PositionedAppend(data, offset, options, info, dbg);
  }

 private:
  static rocksdb::IOStatus NoSpace() {
    rocksdb::IOStatus s =
        rocksdb::IOStatus::NoSpace("injected", "No space left on device");
    return s;
  }
  FaultFileSystem* fs_;
};

}  // namespace

FaultFileSystem::FaultFileSystem()
    : FileSystemWrapper(rocksdb::FileSystem::Default()) {}

bool FaultFileSystem::Charge(size_t bytes) {
  // Relaxed throughout: the budget is a counter; files written by RocksDB
  // are ordered by RocksDB's own locks, not by this value.
  int64_t budget = budget_.load(std::memory_order_relaxed);
  for (;;) {
    if (budget < 0) return true;
    if (static_cast<int64_t>(bytes) > budget) {
      failures_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (budget_.compare_exchange_weak(budget,
                                      budget - static_cast<int64_t>(bytes),
                                      std::memory_order_relaxed)) {
      return true;
    }
  }
}

rocksdb::IOStatus FaultFileSystem::NewWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s = target()->NewWritableFile(fname, options, &file, dbg);
  if (s.ok()) result->reset(new FaultWritableFile(std::move(file), this));
  return s;
}

rocksdb::IOStatus FaultFileSystem::ReopenWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s =
      target()->ReopenWritableFile(fname, options, &file, dbg);
  if (s.ok()) result->reset(new FaultWritableFile(std::move(file), this));
  return s;
}

rocksdb::IOStatus FaultFileSystem::ReuseWritableFile(
    const std::string& fname, const std::string& old_fname,
    const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s =
      target()->ReuseWritableFile(fname, old_fname, options, &file, dbg);
  if (s.ok()) result->reset(new FaultWritableFile(std::move(file), this));
  return s;
}

std::unique_ptr<rocksdb::Env> NewFaultEnv(
    const std::shared_ptr<FaultFileSystem>& fs) {
  return rocksdb::NewCompositeEnv(fs);
}

}  // namespace edgeroute::store
