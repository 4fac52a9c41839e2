#include "store/fault_fs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

namespace edgeroute::store {
namespace {

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file,
                    FaultFileSystem* fs, std::string fname, uint64_t size)
      : FSWritableFileOwnerWrapper(std::move(file)),
        fs_(fs),
        fname_(std::move(fname)),
        size_(size) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (!fs_->Charge(data.size())) return NoSpace();
    rocksdb::IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) Appended(data.size());
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (!fs_->Charge(data.size())) return NoSpace();
    rocksdb::IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) Appended(data.size());
    return s;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                         rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Sync(options, dbg);
    if (s.ok()) fs_->RecordSync(fname_);
    return s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Fsync(options, dbg);
    if (s.ok()) fs_->RecordSync(fname_);
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (!fs_->Charge(data.size())) return NoSpace();
    rocksdb::IOStatus s =
        target()->PositionedAppend(data, offset, options, dbg);
    if (s.ok()) fs_->RecordAppend(fname_, offset + data.size());
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    if (!fs_->Charge(data.size())) return NoSpace();
    rocksdb::IOStatus s =
        target()->PositionedAppend(data, offset, options, info, dbg);
    if (s.ok()) fs_->RecordAppend(fname_, offset + data.size());
    return s;
  }

 private:
  static rocksdb::IOStatus NoSpace() {
    rocksdb::IOStatus s =
        rocksdb::IOStatus::NoSpace("injected", "No space left on device");
    return s;
  }
  void Appended(size_t n) {
    size_ += n;
    fs_->RecordAppend(fname_, size_);
  }

  FaultFileSystem* fs_;
  const std::string fname_;
  uint64_t size_;  // RocksDB does not append to one file concurrently.
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
  if (s.ok()) {
    RecordCreate(fname);
    result->reset(new FaultWritableFile(std::move(file), this, fname, 0));
  }
  return s;
}

rocksdb::IOStatus FaultFileSystem::ReopenWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s =
      target()->ReopenWritableFile(fname, options, &file, dbg);
  if (s.ok()) {
    uint64_t size = 0;
    target()
        ->GetFileSize(fname, rocksdb::IOOptions(), &size, dbg)
        .PermitUncheckedError();
    RecordAppend(fname, size);
    RecordSync(fname);  // What existed before counts as durable.
    result->reset(new FaultWritableFile(std::move(file), this, fname, size));
  }
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
  if (s.ok()) {
    RecordCreate(fname);
    result->reset(new FaultWritableFile(std::move(file), this, fname, 0));
  }
  return s;
}

rocksdb::IOStatus FaultFileSystem::DeleteFile(const std::string& fname,
                                              const rocksdb::IOOptions& options,
                                              rocksdb::IODebugContext* dbg) {
  uint64_t size = 0;
  const bool sized = target()->GetFileSize(fname, options, &size, dbg).ok();
  rocksdb::IOStatus s = target()->DeleteFile(fname, options, dbg);
  if (s.ok() && sized && deletes_free_space_.load(std::memory_order_relaxed)) {
    // Relaxed: see Charge.
    int64_t budget = budget_.load(std::memory_order_relaxed);
    while (budget >= 0 &&
           !budget_.compare_exchange_weak(budget,
                                          budget + static_cast<int64_t>(size),
                                          std::memory_order_relaxed)) {
    }
  }
  return s;
}

rocksdb::IOStatus FaultFileSystem::GetFreeSpace(
    const std::string& path, const rocksdb::IOOptions& options,
    uint64_t* free_bytes, rocksdb::IODebugContext* dbg) {
  const int64_t budget = budget_.load(std::memory_order_relaxed);
  if (budget >= 0) {
    *free_bytes = static_cast<uint64_t>(budget);
    return rocksdb::IOStatus::OK();
  }
  return target()->GetFreeSpace(path, options, free_bytes, dbg);
}

void FaultFileSystem::RecordCreate(const std::string& fname) {
  std::lock_guard<std::mutex> lock(mu_);
  written_[fname] = 0;
  synced_[fname] = 0;
}

void FaultFileSystem::RecordAppend(const std::string& fname, uint64_t end) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t& written = written_[fname];
  if (end > written) written = end;
  synced_.emplace(fname, 0);
}

void FaultFileSystem::RecordSync(const std::string& fname) {
  std::lock_guard<std::mutex> lock(mu_);
  synced_[fname] = written_[fname];
}

std::map<std::string, uint64_t> FaultFileSystem::SyncedSizes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return synced_;
}

int FaultFileSystem::DropUnsynced(
    const std::map<std::string, uint64_t>& synced) {
  int cut = 0;
  for (const auto& [path, size] : synced) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;
    if (static_cast<uint64_t>(st.st_size) <= size) continue;
    if (truncate(path.c_str(), static_cast<off_t>(size)) == 0) ++cut;
  }
  return cut;
}

std::unique_ptr<rocksdb::Env> NewFaultEnv(
    const std::shared_ptr<FaultFileSystem>& fs) {
  return rocksdb::NewCompositeEnv(fs);
}

}  // namespace edgeroute::store
