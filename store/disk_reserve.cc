#include "store/disk_reserve.h"

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "store/rocksdb_status.h"

namespace edgeroute::store::internal {

DiskReserve::DiskReserve(rocksdb::FileSystem* fs, const std::string& directory,
                         uint64_t bytes)
    : fs_(fs),
      directory_(directory),
      path_(absl::StrCat(directory, "/", kFileName)),
      bytes_(bytes) {}

absl::Status DiskReserve::Acquire() {
  std::lock_guard<std::mutex> lock(mu_);
  if (held_.load(std::memory_order_relaxed)) return absl::OkStatus();
  if (bytes_ == 0) {
    held_.store(true, std::memory_order_release);
    return absl::OkStatus();
  }
  const rocksdb::IOOptions io;
  uint64_t size = 0;
  if (fs_->GetFileSize(path_, io, &size, nullptr).ok() && size == bytes_) {
    held_.store(true, std::memory_order_release);
    return absl::OkStatus();
  }
  // Only with room to spare: writing the reserve into the last free bytes
  // would fail, or succeed and let the next append fail again -- a loop
  // that rewrites megabytes of flash per refused append.
  uint64_t free_bytes = 0;
  const uint64_t needed = bytes_ + bytes_ / 4;
  if (fs_->GetFreeSpace(directory_, io, &free_bytes, nullptr).ok() &&
      free_bytes < needed) {
    return absl::ResourceExhaustedError(absl::StrCat(
        free_bytes, " bytes free on the disk, the reserve needs ", needed));
  }
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s =
      fs_->NewWritableFile(path_, rocksdb::FileOptions(), &file, nullptr);
  // Real bytes, not fallocate: a sparse or lazily allocated file would not
  // hold the space on every file system.
  const std::string zeros(64u << 10, '\0');
  for (uint64_t written = 0; s.ok() && written < bytes_;) {
    const uint64_t n = std::min<uint64_t>(zeros.size(), bytes_ - written);
    s = file->Append(rocksdb::Slice(zeros.data(), n), io, nullptr);
    written += n;
  }
  if (s.ok()) s = file->Fsync(io, nullptr);
  if (file != nullptr) {
    rocksdb::IOStatus closed = file->Close(io, nullptr);
    if (s.ok()) s = closed;
  }
  if (!s.ok()) {
    fs_->DeleteFile(path_, io, nullptr).PermitUncheckedError();
    return RocksDbToStatus(
        s, absl::StrCat("reserving ", bytes_, " bytes of disk in ", path_));
  }
  held_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

bool DiskReserve::Release() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!held_.load(std::memory_order_relaxed)) return false;
  held_.store(false, std::memory_order_release);
  if (bytes_ == 0) return false;
  fs_->DeleteFile(path_, rocksdb::IOOptions(), nullptr).PermitUncheckedError();
  return true;
}

}  // namespace edgeroute::store::internal
