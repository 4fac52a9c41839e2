#include "store/rocksdb_options.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "rocksdb/convenience.h"
#include "rocksdb/listener.h"
#include "rocksdb/statistics.h"

namespace edgeroute::store {
namespace {

// Turns RocksDB's automatic recovery from a full disk off: the store resumes
// the database itself on the next append (DB::Resume), so recovery happens
// as soon as space returns instead of on RocksDB's polling timer, and
// Resume() never answers Busy because a background recovery is running.
class ManualRecoveryListener : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "EdgerouteManualRecovery"; }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/,
                            rocksdb::Status /*bg_error*/,
                            bool* auto_recovery) override {
    *auto_recovery = false;
  }
};

}  // namespace

rocksdb::Options MakeRocksDbOptions(const StoreOptions& options) {
  rocksdb::Options db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  if (options.env != nullptr) db.env = options.env;
  // Bounded informational logging (edgeHub's grows without limit).
  db.max_log_file_size = options.max_info_log_bytes;
  db.keep_log_file_num = std::max<uint32_t>(1, options.keep_log_files);
  db.recycle_log_file_num = 0;
  // Bounded write-ahead log: flush column families once the logs pass it.
  db.max_total_wal_size = options.max_wal_bytes;
  db.write_buffer_size = options.write_buffer_bytes;
  db.max_write_buffer_number = 2;
  db.max_background_jobs = 2;
  db.max_open_files = 256;
  db.max_manifest_file_size = 16u << 20;
  // Fewer, larger files: less metadata churn on flash.
  db.target_file_size_base = 32u << 20;
  db.level_compaction_dynamic_level_bytes = true;
  db.paranoid_checks = true;
  // After a write error (e.g. a full disk) the store calls DB::Resume()
  // itself on the next append.
  db.max_bgerror_resume_count = 0;
  db.listeners.push_back(std::make_shared<ManualRecoveryListener>());
  db.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // Message bodies are mostly JSON: compressing them writes less to flash.
  std::vector<rocksdb::CompressionType> supported =
      rocksdb::GetSupportedCompressions();
  if (std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) !=
      supported.end()) {
    db.compression = rocksdb::kLZ4Compression;
  } else if (std::find(supported.begin(), supported.end(),
                       rocksdb::kSnappyCompression) != supported.end()) {
    db.compression = rocksdb::kSnappyCompression;
  } else {
    db.compression = rocksdb::kNoCompression;
  }
  db.statistics = rocksdb::CreateDBStatistics();
  db.statistics->set_stats_level(rocksdb::StatsLevel::kExceptTimers);
  return db;
}

}  // namespace edgeroute::store
