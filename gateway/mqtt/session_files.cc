#include "gateway/mqtt/session_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "nlohmann/json.hpp"
#include "openssl/sha.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {
namespace {

constexpr absl::string_view kPrefix = "session-";
constexpr absl::string_view kSuffix = ".json";
// A session file holds a client id and at most kMaxFiltersPerSession
// filters of at most 64 KiB each; anything larger is not ours.
constexpr size_t kMaxFileBytes = 1u << 20;

// File names are the SHA-256 of the client id in hex: any byte may appear
// in a client id, and it may be longer than a file name may be.
std::string NameHash(absl::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (const unsigned char b : digest) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0F]);
  }
  return out;
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("write ", path));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SessionFiles>> SessionFiles::Open(
    std::string dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, absl::StrCat("mkdir ", dir));
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("stat ", dir));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is not a directory"));
  }
  return std::unique_ptr<SessionFiles>(new SessionFiles(std::move(dir)));
}

std::string SessionFiles::PathFor(absl::string_view client_id) const {
  return absl::StrCat(dir_, "/", kPrefix, NameHash(client_id), kSuffix);
}

std::vector<std::pair<std::string, std::vector<Subscription>>>
SessionFiles::LoadAll(std::vector<std::string>* problems) const {
  std::vector<std::pair<std::string, std::vector<Subscription>>> sessions;
  auto problem = [problems](std::string text) {
    if (problems != nullptr) problems->push_back(std::move(text));
  };
  DIR* d = opendir(dir_.c_str());
  if (d == nullptr) {
    problem(ErrnoToStatus(errno, absl::StrCat("opendir ", dir_)).ToString());
    return sessions;
  }
  while (const struct dirent* entry = readdir(d)) {
    const absl::string_view name = entry->d_name;
    if (!absl::StartsWith(name, kPrefix) || !absl::EndsWith(name, kSuffix)) {
      continue;  // "." "..", and leftover temporary files
    }
    if (sessions.size() >= kMaxSessions) {
      problem(absl::StrCat(dir_, ": more than ", kMaxSessions,
                           " sessions; the rest are ignored"));
      break;
    }
    const std::string path = absl::StrCat(dir_, "/", name);
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in || text.str().size() > kMaxFileBytes) {
      problem(absl::StrCat(path, ": cannot be read or is too large"));
      continue;
    }
    const nlohmann::json doc =
        nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object() || !doc.contains("clientId") ||
        !doc["clientId"].is_string() || !doc.contains("subscriptions") ||
        !doc["subscriptions"].is_array() ||
        doc["subscriptions"].size() > kMaxFiltersPerSession) {
      problem(absl::StrCat(path, ": not a session file"));
      continue;
    }
    std::vector<Subscription> subscriptions;
    bool ok = true;
    for (const nlohmann::json& s : doc["subscriptions"]) {
      if (!s.is_object() || !s.contains("filter") || !s["filter"].is_string() ||
          !s.contains("qos") || !s["qos"].is_number_unsigned() ||
          s["qos"].get<uint64_t>() > 1 ||
          !IsValidTopicFilter(s["filter"].get<std::string>())) {
        ok = false;
        break;
      }
      subscriptions.push_back(
          Subscription{s["filter"].get<std::string>(),
                       static_cast<uint8_t>(s["qos"].get<uint64_t>())});
    }
    const std::string client_id = doc["clientId"].get<std::string>();
    if (!ok || PathFor(client_id) != path) {
      problem(absl::StrCat(path, ": not a session file"));
      continue;
    }
    sessions.emplace_back(client_id, std::move(subscriptions));
  }
  closedir(d);
  return sessions;
}

absl::Status SessionFiles::Save(
    absl::string_view client_id,
    const std::vector<Subscription>& subscriptions) {
  if (subscriptions.empty()) return Remove(client_id);
  nlohmann::json doc;
  doc["clientId"] = std::string(client_id);
  doc["subscriptions"] = nlohmann::json::array();
  for (const Subscription& s : subscriptions) {
    doc["subscriptions"].push_back({{"filter", s.filter}, {"qos", s.qos}});
  }
  const std::string text =
      doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const std::string path = PathFor(client_id);
  const std::string tmp = path + ".tmp";
  const int fd =
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", tmp));
  absl::Status status = WriteAll(fd, text, tmp);
  if (status.ok() && fdatasync(fd) != 0) {
    status = ErrnoToStatus(errno, absl::StrCat("fdatasync ", tmp));
  }
  close(fd);
  if (status.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoToStatus(errno, absl::StrCat("rename ", tmp));
  }
  if (!status.ok()) unlink(tmp.c_str());
  return status;
}

absl::Status SessionFiles::Remove(absl::string_view client_id) {
  const std::string path = PathFor(client_id);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, absl::StrCat("unlink ", path));
  }
  return absl::OkStatus();
}

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute
