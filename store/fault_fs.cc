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
    if (!fs_->PowerOn()) return PowerOff();
    if (!fs_->Charge(data.size())) return NoSpace();
    rocksdb::IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) Appended(data.size());
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (!fs_->PowerOn()) return PowerOff();
    if (!fs_->Charge(data.size())) return NoSpace();
    rocksdb::IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) Appended(data.size());
    return s;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                         rocksdb::IODebugContext* dbg) override {
    if (!fs_->PowerOn()) return PowerOff();
    rocksdb::IOStatus s = target()->Sync(options, dbg);
    if (s.ok()) fs_->RecordSync(fname_);
    return s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (!fs_->PowerOn()) return PowerOff();
    rocksdb::IOStatus s = target()->Fsync(options, dbg);
    if (s.ok()) fs_->RecordSync(fname_);
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (!fs_->PowerOn()) return PowerOff();
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
    if (!fs_->PowerOn()) return PowerOff();
    if (!fs_->Charge(data.size())) return NoSpace();
    rocksdb::IOStatus s =
        target()->PositionedAppend(data, offset, options, info, dbg);
    if (s.ok()) fs_->RecordAppend(fname_, offset + data.size());
    return s;
  }

 private:
  static rocksdb::IOStatus PowerOff() {
    return rocksdb::IOStatus::IOError("injected", "power cut");
  }
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

class FaultDirectory : public rocksdb::FSDirectory {
 public:
  FaultDirectory(std::unique_ptr<rocksdb::FSDirectory> target,
                 FaultFileSystem* fs, std::string name)
      : target_(std::move(target)), fs_(fs), name_(std::move(name)) {}

  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (!fs_->PowerOn()) {
      return rocksdb::IOStatus::IOError("injected", "power cut");
    }
    rocksdb::IOStatus s = target_->Fsync(options, dbg);
    if (s.ok()) fs_->RecordDirSync(name_);
    return s;
  }
  rocksdb::IOStatus FsyncWithDirOptions(
      const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg,
      const rocksdb::DirFsyncOptions& /*dir_fsync_options*/) override {
    return Fsync(options, dbg);
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return target_->Close(options, dbg);
  }
  size_t GetUniqueId(char* id, size_t max_size) const override {
    return target_->GetUniqueId(id, max_size);
  }

 private:
  std::unique_ptr<rocksdb::FSDirectory> target_;
  FaultFileSystem* fs_;
  const std::string name_;
};

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

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
  if (!PowerOn()) return rocksdb::IOStatus::IOError("injected", "power cut");
  {
    // Creating over an existing file replaces it: undone like a delete
    // followed by a creation.
    std::lock_guard<std::mutex> lock(mu_);
    const std::string backup = BackupLocked(fname);
    if (!backup.empty()) {
      // A new inode for the new file; the backup keeps the old one intact.
      unlink(fname.c_str());
      pending_dir_ops_.push_back(
          {DirOp::kDelete, DirOf(fname), fname, "", backup});
    }
    pending_dir_ops_.push_back({DirOp::kCreate, DirOf(fname), fname, "", ""});
  }
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
  if (!PowerOn()) return rocksdb::IOStatus::IOError("injected", "power cut");
  {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string backup = BackupLocked(fname);
    if (!backup.empty()) {
      pending_dir_ops_.push_back(
          {DirOp::kDelete, DirOf(fname), fname, "", backup});
    }
  }
  uint64_t size = 0;
  const bool sized = target()->GetFileSize(fname, options, &size, dbg).ok();
  rocksdb::IOStatus s = target()->DeleteFile(fname, options, dbg);
  if (s.ok() && sized && deletes_free_space_.load(std::memory_order_relaxed)) {
    // Relaxed: see Charge.
    int64_t budget = budget_.load(std::memory_order_relaxed);
    while (budget >= 0 && !budget_.compare_exchange_weak(
                              budget, budget + static_cast<int64_t>(size),
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

rocksdb::IOStatus FaultFileSystem::RenameFile(const std::string& src,
                                              const std::string& target_name,
                                              const rocksdb::IOOptions& options,
                                              rocksdb::IODebugContext* dbg) {
  if (!PowerOn()) return rocksdb::IOStatus::IOError("injected", "power cut");
  std::lock_guard<std::mutex> lock(mu_);
  const std::string backup = BackupLocked(target_name);
  rocksdb::IOStatus s = target()->RenameFile(src, target_name, options, dbg);
  if (!s.ok()) {
    if (!backup.empty()) unlink(backup.c_str());
    return s;
  }
  pending_dir_ops_.push_back(
      {DirOp::kRename, DirOf(target_name), src, target_name, backup});
  // What was synced moves with the name.
  auto moved = [&](std::map<std::string, uint64_t>& sizes) {
    auto it = sizes.find(src);
    if (it == sizes.end()) return;
    sizes[target_name] = it->second;
    sizes.erase(it);
  };
  moved(written_);
  moved(synced_);
  return s;
}

rocksdb::IOStatus FaultFileSystem::NewDirectory(
    const std::string& name, const rocksdb::IOOptions& io_opts,
    std::unique_ptr<rocksdb::FSDirectory>* result,
    rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> dir;
  rocksdb::IOStatus s = target()->NewDirectory(name, io_opts, &dir, dbg);
  if (s.ok()) result->reset(new FaultDirectory(std::move(dir), this, name));
  return s;
}

bool FaultFileSystem::PowerOn() {
  if (dead_.load(std::memory_order_acquire)) return false;
  // Relaxed: a countdown; dead_ publishes the end.
  if (ops_left_.load(std::memory_order_relaxed) < 0) return true;
  if (ops_left_.fetch_sub(1, std::memory_order_relaxed) <= 0) {
    const bool first = !dead_.exchange(true, std::memory_order_acq_rel);
    if (first && power_off_handler_) power_off_handler_();
    return false;
  }
  return true;
}

void FaultFileSystem::ArmPowerCut(uint64_t ops) {
  ops_left_.store(static_cast<int64_t>(ops), std::memory_order_relaxed);
}

void FaultFileSystem::Revive() {
  ops_left_.store(-1, std::memory_order_relaxed);
  dead_.store(false, std::memory_order_release);
}

std::string FaultFileSystem::BackupLocked(const std::string& path) {
  if (!Exists(path)) return "";
  const std::string backup =
      DirOf(path) + "/.fault-fs-backup-" + std::to_string(++backups_);
  if (link(path.c_str(), backup.c_str()) != 0) return "";
  return backup;
}

void FaultFileSystem::RecordDirSync(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<DirOp> still;
  for (DirOp& op : pending_dir_ops_) {
    // A path and its directory name may differ by a trailing slash.
    if (op.dir == dir || op.dir + "/" == dir) {
      if (!op.backup.empty()) unlink(op.backup.c_str());
    } else {
      still.push_back(std::move(op));
    }
  }
  pending_dir_ops_.swap(still);
}

int FaultFileSystem::PowerCut() {
  std::lock_guard<std::mutex> lock(mu_);
  int changed = 0;
  // Unsynced data first, under the names the files have now.
  for (const auto& [path, size] : synced_) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;
    if (static_cast<uint64_t>(st.st_size) <= size) continue;
    if (truncate(path.c_str(), static_cast<off_t>(size)) == 0) ++changed;
  }
  // Then the directory operations, newest first.
  for (auto op = pending_dir_ops_.rbegin(); op != pending_dir_ops_.rend();
       ++op) {
    switch (op->kind) {
      case DirOp::kCreate:
        unlink(op->path.c_str());
        break;
      case DirOp::kRename:
        rename(op->target.c_str(), op->path.c_str());
        if (!op->backup.empty()) rename(op->backup.c_str(), op->target.c_str());
        break;
      case DirOp::kDelete:
        rename(op->backup.c_str(), op->path.c_str());
        break;
    }
    ++changed;
  }
  pending_dir_ops_.clear();
  written_.clear();
  synced_.clear();
  return changed;
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
