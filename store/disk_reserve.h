// Internal: a file of reserved disk space in the store directory. When the
// disk fills up, the store deletes it so that what frees space --
// checkpoints, cleanup's deletions, the flush and compaction after them --
// still has room to write; appends stay refused until the file can be
// written again, so they never eat into the reserve.

#ifndef EDGEROUTE_STORE_DISK_RESERVE_H_
#define EDGEROUTE_STORE_DISK_RESERVE_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "rocksdb/file_system.h"

namespace edgeroute::store::internal {

// Thread-safe. `fs` is not owned and must outlive the reserve.
class DiskReserve {
 public:
  // The file name inside the store directory.
  static constexpr char kFileName[] = "EDGEROUTE-RESERVE";

  DiskReserve(rocksdb::FileSystem* fs, const std::string& directory,
              uint64_t bytes);

  // Writes (and syncs) the file unless it is already there. OK at once when
  // held or when the reserve size is 0. ResourceExhausted, without writing,
  // when the disk has less than 1.25 times the reserve free
  // (FileSystem::GetFreeSpace), or when writing runs out of space (the
  // partial file is removed again).
  absl::Status Acquire();
  // Deletes the file, giving its space back. True if it was held.
  bool Release();
  // Lock-free: false after Release until the next successful Acquire.
  bool held() const { return held_.load(std::memory_order_acquire); }

 private:
  rocksdb::FileSystem* const fs_;
  const std::string directory_;
  const std::string path_;
  const uint64_t bytes_;
  std::mutex mu_;
  std::atomic<bool> held_{false};
};

}  // namespace edgeroute::store::internal

#endif  // EDGEROUTE_STORE_DISK_RESERVE_H_
