// RepairStore: `edgeroute store repair DIR`.

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "message/message.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "store/format.h"
#include "store/marker.h"
#include "store/rocksdb_options.h"
#include "store/rocksdb_status.h"
#include "store/store.h"

namespace edgeroute::store {
namespace {

namespace f = format;

// At most this many removed records are listed one by one in the report.
constexpr int kListedRecords = 20;

struct Repair {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*>
      cfs;  // meta, payloads, refs cnt, refs
  rocksdb::WriteBatch batch;
  std::string report;
  int listed = 0;
  uint64_t refs_removed = 0, payloads_removed = 0, counts_rewritten = 0,
           markers_fixed = 0;

  void Note(const std::string& line) {
    if (listed++ < kListedRecords) absl::StrAppend(&report, "  ", line, "\n");
  }
};

struct QueueInfo {
  std::string name;
  bool has_checkpoint = false;
  uint64_t checkpoint = 0, removed = 0, last_ref = 0;
};

// Scans every record and queues the fixes in r->batch. A corrupt table
// block shows up as an iterator error (returned; the caller runs RepairDB).
rocksdb::Status Scan(Repair* r) {
  std::map<uint32_t, QueueInfo> queues;
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  {
    std::unique_ptr<rocksdb::Iterator> it(r->db->NewIterator(ro, r->cfs[0]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const rocksdb::Slice key = it->key(), value = it->value();
      if (key.size() != 5) continue;
      const uint32_t q = f::GetBe32(key.data() + 1);
      QueueInfo& info = queues[q];
      if (key[0] == f::kQueueTag && value.size() >= 2) {
        info.name.assign(value.data() + 1, value.size() - 1);
      } else if (key[0] == f::kCheckpointTag || key[0] == f::kRemovedTag) {
        if (value.size() != 8) {
          r->batch.Delete(r->cfs[0], key);
          ++r->markers_fixed;
          r->Note(absl::StrCat("queue handle ", q,
                               key[0] == f::kCheckpointTag
                                   ? ": corrupt checkpoint removed (its "
                                     "messages are delivered again)"
                                   : ": corrupt removal marker removed"));
          continue;
        }
        if (key[0] == f::kCheckpointTag) {
          info.checkpoint = f::GetBe64(value.data());
          info.has_checkpoint = true;
        } else {
          info.removed = f::GetBe64(value.data());
        }
      }
    }
    if (!it->status().ok()) return it->status();
  }
  // Payload verdicts: sequence -> size, or absent when unreadable.
  std::map<uint64_t, bool> readable;
  std::map<uint64_t, uint32_t> sizes;
  std::map<uint64_t, uint32_t> live;  // sequence -> references
  {
    std::unique_ptr<rocksdb::Iterator> it(r->db->NewIterator(ro, r->cfs[3]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const rocksdb::Slice key = it->key();
      f::RefValue ref;
      std::string why;
      uint32_t q = 0;
      uint64_t offset = 0;
      if (key.size() != f::kRefKeySize) {
        why = "reference key is corrupt";
      } else {
        q = f::GetBe32(key.data());
        offset = f::GetBe64(key.data() + 4);
        if (queues.count(q) == 0 || queues[q].name.empty()) {
          why = "reference to an unknown queue";
        } else if (!ref.Decode({it->value().data(), it->value().size()})) {
          why = "reference record is corrupt";
        }
      }
      if (why.empty()) {
        auto [verdict, fresh] = readable.emplace(ref.payload_seq, false);
        if (fresh) {
          std::string payload;
          f::SeqKey seq_key(ref.payload_seq);
          rocksdb::Status s =
              r->db->Get(ro, r->cfs[1],
                         rocksdb::Slice(seq_key.view().data(), 8), &payload);
          if (s.ok()) {
            verdict->second =
                MessageView::Verify(
                    {reinterpret_cast<const uint8_t*>(payload.data()),
                     payload.size()})
                    .ok();
            sizes[ref.payload_seq] = static_cast<uint32_t>(payload.size());
          } else if (!s.IsNotFound() && !s.IsCorruption()) {
            return s;
          }
        }
        if (!verdict->second) {
          why = absl::StrCat("payload ", ref.payload_seq,
                             " is missing or not a valid message");
        }
      }
      if (!why.empty()) {
        r->batch.Delete(r->cfs[3], key);
        ++r->refs_removed;
        r->Note(key.size() == f::kRefKeySize
                    ? absl::StrCat("queue '", queues[q].name, "' offset ",
                                   offset, ": ", why, " (removed)")
                    : why + " (removed)");
        continue;
      }
      ++live[ref.payload_seq];
      queues[q].last_ref = std::max(queues[q].last_ref, offset);
    }
    if (!it->status().ok()) return it->status();
  }
  // Payloads nobody (readable) references go; counts are recounted.
  {
    std::unique_ptr<rocksdb::Iterator> it(r->db->NewIterator(ro, r->cfs[1]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const uint64_t seq =
          it->key().size() == 8 ? f::GetBe64(it->key().data()) : 0;
      if (seq != 0 && live.count(seq) != 0) continue;
      r->batch.Delete(r->cfs[1], it->key());
      ++r->payloads_removed;
    }
    if (!it->status().ok()) return it->status();
  }
  {
    std::unique_ptr<rocksdb::Iterator> it(r->db->NewIterator(ro, r->cfs[2]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const uint64_t seq =
          it->key().size() == 8 ? f::GetBe64(it->key().data()) : 0;
      auto found = live.find(seq);
      if (seq == 0 || found == live.end()) {
        r->batch.Delete(r->cfs[2], it->key());
        continue;
      }
      f::PayloadRefsValue pr;
      if (pr.Decode({it->value().data(), it->value().size()}) &&
          pr.refs == found->second && pr.size == sizes[seq]) {
        found->second = 0;  // Correct as stored.
      }
    }
    if (!it->status().ok()) return it->status();
  }
  for (const auto& [seq, refs] : live) {
    if (refs == 0) continue;
    f::PayloadRefsValue pr;
    pr.refs = refs;
    pr.size = sizes[seq];
    char value[f::kPayloadRefsValueSize];
    pr.Encode(value);
    f::SeqKey key(seq);
    r->batch.Put(r->cfs[2], rocksdb::Slice(key.view().data(), 8),
                 rocksdb::Slice(value, sizeof(value)));
    ++r->counts_rewritten;
    r->Note(absl::StrCat("payload ", seq, ": reference count set to ", refs));
  }
  // A checkpoint past the last offset appended is corrupt (FORMAT.md).
  for (const auto& [q, info] : queues) {
    if (!info.has_checkpoint ||
        info.checkpoint <= std::max(info.last_ref, info.removed)) {
      continue;
    }
    r->batch.Put(r->cfs[0], f::QueueMetaKey(f::kCheckpointTag, q),
                 f::Be64String(info.removed));
    ++r->markers_fixed;
    r->Note(absl::StrCat("queue '", info.name, "': checkpoint ",
                         info.checkpoint, " is beyond the last offset, set to ",
                         info.removed));
  }
  return rocksdb::Status::OK();
}

// CURRENT names the live MANIFEST. When it is damaged but a MANIFEST is
// there, pointing CURRENT at the newest one loses nothing (RepairDB would
// drop what is only in the write-ahead log of the non-default column
// families). True if CURRENT was rewritten.
bool FixCurrent(const std::string& directory, std::string* note) {
  DIR* dir = opendir(directory.c_str());
  if (dir == nullptr) return false;
  uint64_t newest = 0;
  std::string newest_name;
  while (struct dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    uint64_t number = 0;
    if (name.rfind("MANIFEST-", 0) == 0 &&
        absl::SimpleAtoi(name.substr(9), &number) && number >= newest) {
      newest = number;
      newest_name = name;
    }
  }
  closedir(dir);
  if (newest_name.empty()) return false;
  const std::string current = absl::StrCat(directory, "/CURRENT");
  const std::string wanted = newest_name + "\n";
  std::ifstream in(current, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (text == wanted) return false;
  const std::string tmp = current + ".repair";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << wanted;
    out.flush();
    if (!out) return false;
  }
  const int fd = open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  if (rename(tmp.c_str(), current.c_str()) != 0) return false;
  *note =
      absl::StrCat("CURRENT was damaged; it names ", newest_name, " again; ");
  return true;
}

void CloseDb(Repair* r) {
  if (r->db == nullptr) return;
  for (auto* cf : r->cfs) {
    r->db->DestroyColumnFamilyHandle(cf).PermitUncheckedError();
  }
  r->cfs.clear();
  r->db->Close().PermitUncheckedError();
  delete r->db;
  r->db = nullptr;
}

}  // namespace

absl::StatusOr<std::string> RepairStore(const std::string& directory) {
  EDGEROUTE_RETURN_IF_ERROR(internal::CheckStoreDirectory(directory));
  StoreOptions store_options;
  store_options.directory = directory;
  rocksdb::Options options = MakeRocksDbOptions(store_options);
  options.create_if_missing = false;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name :
       {f::kMetaCf, f::kPayloadsCf, f::kPayloadRefsCf, f::kRefsCf}) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions(options));
  }
  Repair r;
  bool rebuilt = false;
  bool current_fixed = false;
  std::string current_note;
  for (;;) {
    rocksdb::Status s = rocksdb::DB::Open(
        rocksdb::DBOptions(options), directory, descriptors, &r.cfs, &r.db);
    if (s.ok()) {
      s = Scan(&r);
      if (s.ok()) break;
      CloseDb(&r);
    }
    // Locked by a running gateway: not to be touched.
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return RocksDbToStatus(
          s, absl::StrCat("opening store ", directory,
                          " (stop the process that has it open)"));
    }
    if (!current_fixed && !rebuilt) {
      current_fixed = true;
      if (FixCurrent(directory, &current_note)) {
        r = Repair();
        continue;
      }
    }
    if (rebuilt) {
      return RocksDbToStatus(
          s, absl::StrCat("store ", directory,
                          " is still unreadable after RocksDB's RepairDB"));
    }
    // The database itself is damaged (a table, the MANIFEST, CURRENT):
    // RocksDB rebuilds it from the table files and logs that are readable.
    r = Repair();
    rocksdb::Status repaired =
        rocksdb::RepairDB(directory, options, descriptors);
    if (!repaired.ok()) {
      return RocksDbToStatus(repaired,
                             absl::StrCat("RepairDB of store ", directory));
    }
    rebuilt = true;
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = r.db->Write(wo, &r.batch);
  CloseDb(&r);
  if (!s.ok()) {
    return RocksDbToStatus(s, absl::StrCat("writing repairs to ", directory));
  }
  std::string report = absl::StrCat("repaired ", directory, ": ", current_note);
  if (rebuilt) {
    absl::StrAppend(&report,
                    "database rebuilt by RocksDB's RepairDB from its table "
                    "files (unreadable files moved to lost/; what was only "
                    "in the write-ahead log is lost); ");
  }
  absl::StrAppend(&report, r.refs_removed, " references and ",
                  r.payloads_removed, " payloads removed, ", r.counts_rewritten,
                  " reference counts rewritten, ", r.markers_fixed,
                  " checkpoint records fixed\n", r.report);
  if (r.listed > kListedRecords) {
    absl::StrAppend(&report, "  ... and ", r.listed - kListedRecords,
                    " more\n");
  }
  return report;
}

}  // namespace edgeroute::store
