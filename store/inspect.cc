// InspectStore: a read-only report of a store directory.

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "rocksdb/db.h"
#include "store/disk_reserve.h"
#include "store/format.h"
#include "store/rocksdb_status.h"
#include "store/store.h"
#include "store/store_internal.h"

namespace edgeroute::store {
namespace internal {

uint64_t DirectoryBytes(const std::string& directory) {
  DIR* dir = opendir(directory.c_str());
  if (dir == nullptr) return 0;
  uint64_t total = 0;
  while (struct dirent* entry = readdir(dir)) {
    // The reserve is free space held for recovery, not stored data.
    if (std::strcmp(entry->d_name, DiskReserve::kFileName) == 0) continue;
    std::string path = directory + "/" + entry->d_name;
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<uint64_t>(st.st_size);
    }
  }
  closedir(dir);
  return total;
}

}  // namespace internal

namespace {

namespace f = format;

struct QueueReport {
  QueueId id;
  bool known = false;
  uint64_t checkpoint = 0, removed = 0, head = 0, tail = 0;
  uint64_t refs = 0, pending = 0, expired = 0;
  int64_t oldest_us = 0;
};

std::string FormatAge(int64_t micros) {
  int64_t s = micros / 1'000'000;
  if (s < 0) s = 0;
  return absl::StrFormat("%dd%02dh%02dm%02ds", s / 86400, (s / 3600) % 24,
                         (s / 60) % 60, s % 60);
}

}  // namespace

absl::StatusOr<std::string> InspectStore(const std::string& directory,
                                         Clock* clock) {
  struct stat st;
  if (stat(directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(
        absl::StrCat("no store directory at ", directory));
  }
  rocksdb::DBOptions db_options;
  db_options.info_log_level = rocksdb::InfoLogLevel::HEADER_LEVEL;
  db_options.max_log_file_size = 1 << 20;
  db_options.keep_log_file_num = 2;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name :
       {f::kMetaCf, f::kPayloadsCf, f::kPayloadRefsCf, f::kRefsCf}) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(db_options, directory,
                                                   descriptors, &cfs, &raw);
  if (!s.ok()) {
    return RocksDbToStatus(s, absl::StrCat("opening store ", directory));
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  auto cleanup = [&] {
    for (auto* cf : cfs)
      db->DestroyColumnFamilyHandle(cf).PermitUncheckedError();
  };

  std::string report;
  std::string format_value;
  s = db->Get(rocksdb::ReadOptions(), cfs[0], f::kFormatKey, &format_value);
  if (!s.ok() || format_value != f::FormatValue()) {
    cleanup();
    return absl::FailedPreconditionError(
        absl::StrCat(directory, " is not an edgeroute store (format ",
                     f::kFormatVersion, ")"));
  }
  const int64_t now = clock->NowMicros();
  std::vector<QueueReport> queues;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), cfs[0]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 5) continue;
      uint32_t q = f::GetBe32(it->key().data() + 1);
      if (q >= (1u << 20)) continue;
      if (q >= queues.size()) queues.resize(q + 1);
      rocksdb::Slice v = it->value();
      switch (it->key()[0]) {
        case f::kQueueTag:
          if (v.size() >= 2) {
            queues[q].known = true;
            queues[q].id.priority = static_cast<uint8_t>(v[0]);
            queues[q].id.endpoint_id.assign(v.data() + 1, v.size() - 1);
          }
          break;
        case f::kCheckpointTag:
          if (v.size() == 8) queues[q].checkpoint = f::GetBe64(v.data());
          break;
        case f::kRemovedTag:
          if (v.size() == 8) queues[q].removed = f::GetBe64(v.data());
          break;
      }
    }
  }
  uint64_t refs_total = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), cfs[3]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != f::kRefKeySize) continue;
      uint32_t q = f::GetBe32(it->key().data());
      uint64_t offset = f::GetBe64(it->key().data() + 4);
      // A corrupt handle (as in the metadata scan above): never size the
      // report by it.
      if (q >= (1u << 20)) continue;
      if (q >= queues.size()) queues.resize(q + 1);
      QueueReport& r = queues[q];
      f::RefValue ref;
      if (!ref.Decode({it->value().data(), it->value().size()})) continue;
      ++refs_total;
      ++r.refs;
      if (r.head == 0) r.head = offset;
      r.tail = std::max(r.tail, offset);
      if (offset <= r.checkpoint) continue;
      if (ref.expiry_us <= now) {
        ++r.expired;
        continue;
      }
      ++r.pending;
      if (r.oldest_us == 0) r.oldest_us = ref.enqueue_us;
    }
    if (!it->status().ok()) {
      s = it->status();
    }
  }
  uint64_t payloads = 0, payload_bytes = 0;
  if (s.ok()) {
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), cfs[2]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      f::PayloadRefsValue pr;
      if (!pr.Decode({it->value().data(), it->value().size()})) continue;
      ++payloads;
      payload_bytes += pr.size;
    }
    if (!it->status().ok()) s = it->status();
  }
  cleanup();
  if (!s.ok()) return RocksDbToStatus(s, absl::StrCat("reading ", directory));

  absl::StrAppend(&report, "store ", directory, " (format ", f::kFormatVersion,
                  ")\n");
  absl::StrAppend(&report,
                  "bytes on disk: ", internal::DirectoryBytes(directory), "\n");
  absl::StrAppend(&report, "payloads: ", payloads, " (", payload_bytes,
                  " message bytes), references: ", refs_total, "\n");
  absl::StrAppend(&report, "queues: ", queues.size(), "\n");
  absl::StrAppend(
      &report, absl::StrFormat("%-32s %4s %10s %10s %10s %8s %8s %s\n",
                               "endpoint", "prio", "checkpoint", "tail",
                               "pending", "expired", "stored", "oldest age"));
  for (const QueueReport& r : queues) {
    std::string prio = r.id.priority == kDefaultPriority
                           ? std::string("def")
                           : absl::StrCat(r.id.priority);
    uint64_t tail = std::max({r.tail, r.checkpoint, r.removed});
    absl::StrAppend(
        &report,
        absl::StrFormat("%-32s %4s %10d %10d %10d %8d %8d %s\n",
                        r.known ? r.id.endpoint_id : "<missing record>", prio,
                        r.checkpoint, tail, r.pending, r.expired, r.refs,
                        r.oldest_us == 0 ? "-" : FormatAge(now - r.oldest_us)));
  }
  return report;
}

}  // namespace edgeroute::store
