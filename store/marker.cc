#include "store/marker.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "store/disk_reserve.h"
#include "store/format.h"

namespace edgeroute::store::internal {
namespace {

namespace f = format;

absl::Status ErrnoStatus(int error, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", std::strerror(error));
  if (error == EACCES || error == EPERM) {
    return absl::PermissionDeniedError(message);
  }
  if (error == ENOSPC) return absl::ResourceExhaustedError(message);
  return absl::UnavailableError(message);
}

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Entries of `directory` other than ".", ".." and the files the store
// itself may leave before the marker is in place.
absl::Status ListForeignEntries(const std::string& directory, bool* exists,
                                std::vector<std::string>* entries) {
  DIR* dir = opendir(directory.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) {
      *exists = false;
      return absl::OkStatus();
    }
    return ErrnoStatus(errno,
                       absl::StrCat("cannot read store directory ", directory));
  }
  *exists = true;
  const std::string marker_tmp = absl::StrCat(kMarkerFileName, ".tmp");
  while (struct dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == ".." || name == marker_tmp ||
        name == DiskReserve::kFileName) {
      continue;
    }
    entries->push_back(name);
  }
  closedir(dir);
  return absl::OkStatus();
}

// A store of an earlier edgeroute: its column families and format record.
bool IsEarlierStore(const std::string& directory) {
  if (!FileExists(absl::StrCat(directory, "/CURRENT"))) return false;
  rocksdb::DBOptions options;
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(options, directory, &names).ok()) {
    return false;
  }
  for (const char* cf :
       {f::kMetaCf, f::kPayloadsCf, f::kPayloadRefsCf, f::kRefsCf}) {
    if (std::find(names.begin(), names.end(), cf) == names.end()) return false;
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::OpenForReadOnly(options, directory, descriptors, &handles,
                                    &raw)
           .ok()) {
    return false;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string value;
  const bool ours =
      db->Get(rocksdb::ReadOptions(), handles[0], f::kFormatKey, &value).ok() &&
      value.compare(0, std::strlen(f::kFormatMagic), f::kFormatMagic) == 0;
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  db->Close().PermitUncheckedError();
  return ours;
}

absl::Status WriteMarker(const std::string& directory) {
  const std::string path = absl::StrCat(directory, "/", kMarkerFileName);
  const std::string tmp = absl::StrCat(path, ".tmp");
  const int fd =
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("creating ", tmp));
  const size_t size = std::strlen(kMarkerText);
  const bool written =
      write(fd, kMarkerText, size) == static_cast<ssize_t>(size) &&
      fsync(fd) == 0;
  const int error = errno;
  close(fd);
  if (!written) {
    unlink(tmp.c_str());
    return ErrnoStatus(error, absl::StrCat("writing ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("renaming ", tmp));
  }
  const int dir_fd = open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

absl::Status NotAStore(const std::string& directory,
                       const std::vector<std::string>& entries) {
  std::string some;
  for (size_t i = 0; i < entries.size() && i < 3; ++i) {
    absl::StrAppend(&some, i == 0 ? "" : ", ", entries[i]);
  }
  if (entries.size() > 3) absl::StrAppend(&some, ", ...");
  return absl::FailedPreconditionError(
      absl::StrCat(directory, " is not an edgeroute store: it has no ",
                   kMarkerFileName, " file and is not empty (", some,
                   "). Refusing to use it; give an empty or new directory"));
}

absl::Status Check(const std::string& directory, bool claim) {
  bool exists = false;
  std::vector<std::string> entries;
  absl::Status listed = ListForeignEntries(directory, &exists, &entries);
  if (!listed.ok()) return listed;
  if (!exists) {
    if (!claim) {
      return absl::NotFoundError(absl::StrCat(directory, " does not exist"));
    }
    if (mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("creating ", directory));
    }
    return WriteMarker(directory);
  }
  if (std::find(entries.begin(), entries.end(), kMarkerFileName) !=
      entries.end()) {
    return absl::OkStatus();
  }
  if (entries.empty()) {
    if (!claim) {
      return absl::NotFoundError(absl::StrCat(directory, " is empty"));
    }
    return WriteMarker(directory);
  }
  if (!IsEarlierStore(directory)) return NotAStore(directory, entries);
  return claim ? WriteMarker(directory) : absl::OkStatus();
}

}  // namespace

absl::Status ClaimStoreDirectory(const std::string& directory) {
  return Check(directory, /*claim=*/true);
}

absl::Status CheckStoreDirectory(const std::string& directory) {
  return Check(directory, /*claim=*/false);
}

}  // namespace edgeroute::store::internal
