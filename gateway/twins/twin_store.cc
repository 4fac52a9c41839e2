#include "gateway/twins/twin_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "nlohmann/json.hpp"

namespace edgeroute::gateway::twins {
namespace {

// ordered_json keeps members in the order they were written, so documents
// come back the way the manifest and the clients wrote them.
using Json = nlohmann::ordered_json;

constexpr char kDesiredFile[] = "desired.json";
constexpr char kReportedPrefix[] = "reported~";
constexpr char kJsonSuffix[] = ".json";
constexpr char kTempSuffix[] = ".tmp";
constexpr size_t kMaxFileNameBytes = 255;  // NAME_MAX on Linux file systems
// A twin file is its document plus a little framing; anything much larger
// was not written by this store.
constexpr size_t kMaxFileBytes = 4 * TwinStore::kMaxDocumentBytes;
// desired.json holds every module's desired properties.
constexpr size_t kMaxDesiredFileBytes = 64 * 1024 * 1024;

struct ModuleDesired {
  int64_t version = 1;
  Json properties = Json::object();
};

struct ReportedTwin {
  std::string device_id;
  std::string module_id;
  int64_t version = 1;
  Json properties = Json::object();
};

// ---------------------------------------------------------------------------
// JSON helpers

// Line and column (1-based, in bytes) of byte `offset` of `text`.
std::string PositionOf(absl::string_view text, size_t offset) {
  if (offset > text.size()) offset = text.size();
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return absl::StrCat("line ", line, ", column ", offset - line_start + 1);
}

// `text` with every byte outside printable ASCII written as \xNN: error
// messages quote the input, which may not even be UTF-8.
std::string Printable(absl::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "\\x", std::string(1, kHex[c >> 4]),
                      std::string(1, kHex[c & 15]));
    }
  }
  return out;
}

// Parses `text` into *out. Errors say where, in `what` ("reported
// properties", "manifest").
absl::Status ParseJson(absl::string_view text, absl::string_view what,
                       Json* out) {
  try {
    *out = Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    // e.byte is the 1-based index of the last byte read: the offending one.
    size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    std::string reason = e.what();
    size_t colon = reason.find(": ");
    if (colon != std::string::npos) reason = reason.substr(colon + 2);
    return absl::InvalidArgumentError(absl::StrCat(what, ": invalid JSON at ",
                                                   PositionOf(text, offset),
                                                   ": ", Printable(reason)));
  } catch (const Json::exception& e) {
    // A number too large for a double ("1e400") carries no position.
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": invalid JSON: ", Printable(e.what())));
  }
  return absl::OkStatus();
}

// Where the JSON text's first value starts (for "not an object" errors).
size_t FirstValueOffset(absl::string_view text) {
  size_t i = 0;
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) i = 3;  // the parser skips a BOM
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t' ||
                             text[i] == '\n' || text[i] == '\r')) {
    ++i;
  }
  return i;
}

std::string Dump(const Json& value) {
  // Strings came through the parser, so they are valid UTF-8; `replace`
  // keeps dump() free of exceptions regardless.
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// "a.b.c" for error messages; top-level names as they are.
std::string Child(absl::string_view path, absl::string_view name) {
  return path.empty() ? std::string(name) : absl::StrCat(path, ".", name);
}

// True when containers nest at most `max_depth` deep below `value` (a
// scalar nests 0 deep; {"a": 1} 0 below itself, {"a": {}} 1).
bool NestsWithin(const Json& value, int max_depth) {
  if (!value.is_structured()) return true;
  for (const Json& element : value) {
    if (!element.is_structured()) continue;
    if (max_depth == 0) return false;
    if (!NestsWithin(element, max_depth - 1)) return false;
  }
  return true;
}

// Removes null members of objects, recursively (null means "absent" in a
// twin). Arrays are values and stay as they are. REQUIRES: bounded depth.
void DropNullMembers(Json* value) {
  if (!value->is_object()) return;
  for (auto it = value->begin(); it != value->end();) {
    if (it->is_null()) {
      it = value->erase(it);
    } else {
      DropNullMembers(&*it);
      ++it;
    }
  }
}

// The JSON merge patch (RFC 7396) that turns `from` into `to`, both objects
// without null members: changed and added members (a changed nested object
// contributes only its changed members), removed members as null.
Json MergeDiff(const Json& from, const Json& to) {
  Json patch = Json::object();
  for (auto it = to.begin(); it != to.end(); ++it) {
    auto old = from.find(it.key());
    if (old == from.end()) {
      patch[it.key()] = it.value();
    } else if (old->is_object() && it->is_object()) {
      Json nested = MergeDiff(*old, *it);
      if (!nested.empty()) patch[it.key()] = std::move(nested);
    } else if (*old != *it) {
      patch[it.key()] = it.value();
    }
  }
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (!to.contains(it.key())) patch[it.key()] = nullptr;
  }
  return patch;
}

// IoT Hub's rules for a reported-properties patch, below `path`, `depth`
// levels below the root object. REQUIRES: value is an object or array.
absl::Status ValidateReported(const Json& value, const std::string& path,
                              int depth) {
  auto problem = [](absl::string_view where, absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("reported properties: ",
                     where.empty() ? std::string("the document")
                                   : absl::StrCat("property '", where, "'"),
                     ": ", what));
  };
  const bool is_object = value.is_object();
  size_t index = 0;
  for (auto it = value.begin(); it != value.end(); ++it, ++index) {
    std::string where;
    if (is_object) {
      const std::string& name = it.key();
      where = Child(path, name);
      if (name.empty()) return problem(where, "empty property name");
      if (name.size() > TwinStore::kMaxNameBytes) {
        // Quote the start of the name, cut before a UTF-8 continuation byte.
        size_t shown = 16;
        while ((static_cast<unsigned char>(name[shown]) & 0xC0) == 0x80) {
          --shown;
        }
        return problem(
            absl::StrCat(path.empty() ? "" : path + ".", name.substr(0, shown),
                         "..."),
            absl::StrCat("name is ", name.size(), " bytes long, more than ",
                         TwinStore::kMaxNameBytes));
      }
      for (unsigned char c : name) {
        if (c == '$' || c == '.' || c == '#' || c == ' ' || c < 0x20 ||
            c == 0x7f) {
          return problem(
              where,
              c == '$' ? std::string("names may not contain '$' (reserved "
                                     "for $version and $metadata)")
              : c < 0x20 || c == 0x7f
                  ? std::string("names may not contain control characters")
                  : absl::StrCat("names may not contain '",
                                 std::string(1, static_cast<char>(c)), "'"));
        }
      }
    } else {
      where = absl::StrCat(path, "[", index, "]");
    }
    const Json& element = it.value();
    if (element.is_string()) {
      size_t bytes = element.get_ref<const std::string&>().size();
      if (bytes > TwinStore::kMaxStringBytes) {
        return problem(where, absl::StrCat("string value is ", bytes,
                                           " bytes long, more than ",
                                           TwinStore::kMaxStringBytes));
      }
    } else if (element.is_number_unsigned()) {
      if (element.get<uint64_t>() >
          static_cast<uint64_t>(TwinStore::kMaxInteger)) {
        return problem(where, absl::StrCat("integer out of range [",
                                           TwinStore::kMinInteger, ", ",
                                           TwinStore::kMaxInteger, "]"));
      }
    } else if (element.is_number_integer()) {
      int64_t number = element.get<int64_t>();
      if (number > TwinStore::kMaxInteger || number < TwinStore::kMinInteger) {
        return problem(where, absl::StrCat("integer out of range [",
                                           TwinStore::kMinInteger, ", ",
                                           TwinStore::kMaxInteger, "]"));
      }
    } else if (element.is_number_float()) {
      if (!std::isfinite(element.get<double>())) {
        return problem(where, "number out of range");
      }
    } else if (element.is_structured()) {
      if (depth + 1 > TwinStore::kMaxDepth) {
        return problem(where,
                       absl::StrCat("nested more than ", TwinStore::kMaxDepth,
                                    " levels deep"));
      }
      absl::Status status = ValidateReported(element, where, depth + 1);
      if (!status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Files

// An I/O error as a status; never InvalidArgument, which PatchReported
// reserves for what is wrong with the patch.
absl::Status IoError(int error_number, absl::string_view context) {
  absl::Status status = ::edgeroute::ErrnoToStatus(error_number, context);
  if (absl::IsInvalidArgument(status)) {
    return absl::InternalError(status.message());
  }
  return status;
}

// Percent-encodes every byte but [A-Za-z0-9_-], so that no id can make a
// path, a hidden file, or a name that collides with another identity's.
std::string EncodeId(absl::string_view id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : id) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '_' || c == '-') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// "reported~{device}.json" or "reported~{device}~{module}.json".
std::string ReportedFileName(absl::string_view device_id,
                             absl::string_view module_id) {
  std::string name = absl::StrCat(kReportedPrefix, EncodeId(device_id));
  if (!module_id.empty()) absl::StrAppend(&name, "~", EncodeId(module_id));
  absl::StrAppend(&name, kJsonSuffix);
  return name;
}

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  return absl::StrCat(dir, "/", name);
}

absl::Status WriteAll(int fd, absl::string_view bytes, absl::string_view path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError(errno, absl::StrCat("twin store: write ", path));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Replaces `name` in the directory with `contents` so that a crash at any
// point leaves either the old file or the new one: write a temporary file,
// fsync it, rename it over the old one, fsync the directory.
absl::Status WriteFileDurably(int dir_fd, absl::string_view dir,
                              const std::string& name,
                              absl::string_view contents) {
  const std::string temp = name + kTempSuffix;
  const std::string temp_path = JoinPath(dir, temp);
  int fd = ::openat(dir_fd, temp.c_str(),
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return IoError(errno, absl::StrCat("twin store: create ", temp_path));
  }
  absl::Status status = WriteAll(fd, contents, temp_path);
  if (status.ok() && ::fsync(fd) != 0) {
    status = IoError(errno, absl::StrCat("twin store: fsync ", temp_path));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = IoError(errno, absl::StrCat("twin store: close ", temp_path));
  }
  if (status.ok() &&
      ::renameat(dir_fd, temp.c_str(), dir_fd, name.c_str()) != 0) {
    status = IoError(errno, absl::StrCat("twin store: rename ", temp_path));
  }
  if (!status.ok()) {
    ::unlinkat(dir_fd, temp.c_str(), 0);
    return status;
  }
  if (::fsync(dir_fd) != 0) {
    return IoError(errno, absl::StrCat("twin store: fsync ", dir));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(int dir_fd, const std::string& name,
                                     const std::string& path,
                                     size_t max_bytes) {
  int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError(errno, absl::StrCat("twin store: open ", path));
  std::string contents;
  char buffer[16384];
  absl::Status status;
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      status = IoError(errno, absl::StrCat("twin store: read ", path));
      break;
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
    if (contents.size() > max_bytes) {
      status = absl::DataLossError(absl::StrCat(
          "twin store: ", path, " is larger than ", max_bytes,
          " bytes, which this store never writes: the file is corrupt (move "
          "it away to start afresh)"));
      break;
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  return contents;
}

absl::Status Corrupt(absl::string_view path, absl::string_view problem) {
  return absl::DataLossError(
      absl::StrCat("twin store: ", path, " is corrupt (", problem,
                   "); move it away to start that twin afresh"));
}

// Reads one member of a twin file's top-level object.
const Json* Member(const Json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

bool ReadVersion(const Json& object, int64_t* version) {
  const Json* value = Member(object, "version");
  if (value == nullptr || !value->is_number_integer()) return false;
  *version = value->get<int64_t>();
  return *version >= 1;
}

// The file format (README.md):
//   {"deviceId": "...", "moduleId": "...", "version": n, "reported": {...}}
std::string SerializeReported(const ReportedTwin& twin) {
  Json file = Json::object();
  file["deviceId"] = twin.device_id;
  file["moduleId"] = twin.module_id;
  file["version"] = twin.version;
  file["reported"] = twin.properties;
  return Dump(file) + "\n";
}

absl::StatusOr<ReportedTwin> ParseReportedFile(absl::string_view contents,
                                               const std::string& name,
                                               const std::string& path) {
  Json file;
  absl::Status parsed = ParseJson(contents, "contents", &file);
  if (!parsed.ok()) return Corrupt(path, parsed.message());
  if (!file.is_object()) return Corrupt(path, "not a JSON object");
  ReportedTwin twin;
  const Json* device = Member(file, "deviceId");
  const Json* module = Member(file, "moduleId");
  const Json* reported = Member(file, "reported");
  if (device == nullptr || !device->is_string() ||
      device->get_ref<const std::string&>().empty() || module == nullptr ||
      !module->is_string()) {
    return Corrupt(path, "no deviceId and moduleId strings");
  }
  twin.device_id = device->get<std::string>();
  twin.module_id = module->get<std::string>();
  if (ReportedFileName(twin.device_id, twin.module_id) != name) {
    return Corrupt(path, "its identity does not match its file name");
  }
  if (!ReadVersion(file, &twin.version)) {
    return Corrupt(path, "no positive integer version");
  }
  if (reported == nullptr || !reported->is_object()) {
    return Corrupt(path, "no reported object");
  }
  absl::Status valid = ValidateReported(*reported, "", 0);
  if (!valid.ok()) return Corrupt(path, valid.message());
  twin.properties = *reported;
  return twin;
}

// desired.json:
//   {"modules": {"{module}": {"version": n, "desired": {...}}, ...}}
std::string SerializeDesired(
    const std::map<std::string, ModuleDesired>& modules) {
  Json file = Json::object();
  Json& out = file["modules"] = Json::object();
  for (const auto& [module_id, desired] : modules) {
    Json entry = Json::object();
    entry["version"] = desired.version;
    entry["desired"] = desired.properties;
    out[module_id] = std::move(entry);
  }
  return Dump(file) + "\n";
}

absl::Status ParseDesiredFile(absl::string_view contents,
                              const std::string& path,
                              std::map<std::string, ModuleDesired>* modules) {
  Json file;
  absl::Status parsed = ParseJson(contents, "contents", &file);
  if (!parsed.ok()) return Corrupt(path, parsed.message());
  const Json* entries = file.is_object() ? Member(file, "modules") : nullptr;
  if (entries == nullptr || !entries->is_object()) {
    return Corrupt(path, "no modules object");
  }
  for (auto it = entries->begin(); it != entries->end(); ++it) {
    ModuleDesired desired;
    const Json* properties = it->is_object() ? Member(*it, "desired") : nullptr;
    if (properties == nullptr || !properties->is_object() ||
        !ReadVersion(*it, &desired.version)) {
      return Corrupt(path, absl::StrCat("module '", it.key(),
                                        "' lacks a version or desired object"));
    }
    if (!NestsWithin(*properties, TwinStore::kMaxDepth)) {
      return Corrupt(path,
                     absl::StrCat("module '", it.key(), "' nests too deep"));
    }
    desired.properties = *properties;
    (*modules)[it.key()] = std::move(desired);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Manifests

// Finds modulesContent in the accepted shapes; null for a bare $edgeHub
// desired-properties object (which has no modules).
absl::StatusOr<const Json*> FindModulesContent(const Json& root) {
  const Json* modules = Member(root, "modulesContent");
  if (modules == nullptr) {
    const Json* content = Member(root, "content");
    if (content != nullptr && content->is_object()) {
      modules = Member(*content, "modulesContent");
    }
  }
  if (modules == nullptr) {
    if (Member(root, "$edgeHub") != nullptr ||
        Member(root, "$edgeAgent") != nullptr) {
      return &root;  // the modulesContent object itself
    }
    return nullptr;
  }
  if (!modules->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest: modulesContent must be an object, found ",
                     modules->type_name()));
  }
  return modules;
}

// Every user module's desired properties in the manifest.
absl::StatusOr<std::map<std::string, Json>> ReadManifestDesired(
    absl::string_view manifest_json) {
  Json root;
  absl::Status parsed = ParseJson(manifest_json, "manifest", &root);
  if (!parsed.ok()) return parsed;
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest: at ",
                     PositionOf(manifest_json, FirstValueOffset(manifest_json)),
                     ": expected a JSON object (a deployment manifest), found ",
                     root.type_name()));
  }
  absl::StatusOr<const Json*> modules = FindModulesContent(root);
  if (!modules.ok()) return modules.status();
  std::map<std::string, Json> result;
  if (*modules == nullptr) return result;
  for (auto it = (*modules)->begin(); it != (*modules)->end(); ++it) {
    const std::string& module_id = it.key();
    if (module_id == "$edgeAgent" || module_id == "$edgeHub") continue;
    const std::string where =
        absl::StrCat("manifest: modulesContent.", module_id);
    if (module_id.empty()) {
      return absl::InvalidArgumentError(
          "manifest: modulesContent has an entry with an empty module name");
    }
    if (!it->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " must be an object, found ", it->type_name()));
    }
    const Json* desired = Member(*it, "properties.desired");
    if (desired == nullptr) {
      const Json* properties = Member(*it, "properties");
      if (properties != nullptr && properties->is_object()) {
        desired = Member(*properties, "desired");
      }
    }
    if (desired == nullptr || desired->is_null()) continue;
    if (!desired->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": \"properties.desired\" must be an object, "
                       "found ",
                       desired->type_name()));
    }
    if (!NestsWithin(*desired, TwinStore::kMaxDepth)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": desired properties nest more than ",
                       TwinStore::kMaxDepth, " levels deep"));
    }
    Json properties = Json::object();
    for (auto member = desired->begin(); member != desired->end(); ++member) {
      if (absl::StartsWith(member.key(), "$")) continue;
      properties[member.key()] = member.value();
    }
    DropNullMembers(&properties);
    size_t bytes = Dump(properties).size();
    if (bytes > TwinStore::kMaxDocumentBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": desired properties are ", bytes,
                       " bytes, more than ", TwinStore::kMaxDocumentBytes));
    }
    result[module_id] = std::move(properties);
  }
  return result;
}

// {...properties, "$version": version}
std::string WithVersion(const Json& properties, int64_t version) {
  Json document = properties;
  document["$version"] = version;
  return Dump(document);
}

}  // namespace

struct TwinStore::State {
  // A manifest was applied (in this run, or in an earlier one with a
  // directory). Until then no patch is due: the first manifest is version 1.
  bool desired_set = false;
  // By module id. Modules that left the manifest stay (with empty
  // properties), so that their versions keep growing if they come back.
  std::map<std::string, ModuleDesired> desired;
  // By file name (ReportedFileName), which is unique per identity.
  absl::flat_hash_map<std::string, ReportedTwin> reported;
};

absl::StatusOr<std::unique_ptr<TwinStore>> TwinStore::Open(
    const TwinStoreOptions& options) {
  auto state = std::make_unique<State>();
  if (options.dir.empty()) {
    return std::unique_ptr<TwinStore>(
        new TwinStore(options, -1, std::move(state)));
  }
  const std::string& dir = options.dir;
  if (::mkdir(dir.c_str(), 0755) == 0) {
    // The new directory's entry must outlive a crash like the files in it.
    size_t slash = dir.find_last_of('/');
    std::string parent = slash == std::string::npos ? "."
                         : slash == 0               ? "/"
                                                    : dir.substr(0, slash);
    int parent_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent_fd < 0 || ::fsync(parent_fd) != 0) {
      int error = errno;
      if (parent_fd >= 0) ::close(parent_fd);
      return IoError(error, absl::StrCat("twin store: fsync ", parent));
    }
    ::close(parent_fd);
  } else if (errno != EEXIST) {
    return IoError(errno, absl::StrCat("twin store: create directory ", dir));
  }
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    return IoError(errno, absl::StrCat("twin store: open directory ", dir));
  }
  auto fail = [dir_fd](absl::Status status) {
    ::close(dir_fd);
    return status;
  };
  if (::flock(dir_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "twin store: ", dir, " is in use by another twin store")));
    }
    return fail(IoError(errno, absl::StrCat("twin store: lock ", dir)));
  }
  int list_fd = ::dup(dir_fd);
  DIR* listing = list_fd < 0 ? nullptr : ::fdopendir(list_fd);
  if (listing == nullptr) {
    int error = errno;
    if (list_fd >= 0) ::close(list_fd);
    return fail(IoError(error, absl::StrCat("twin store: list ", dir)));
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* entry = ::readdir(listing)) {
    names.emplace_back(entry->d_name);
  }
  int list_error = errno;
  ::closedir(listing);
  if (list_error != 0) {
    return fail(IoError(list_error, absl::StrCat("twin store: list ", dir)));
  }
  std::sort(names.begin(), names.end());  // deterministic error reports

  bool removed_temp = false;
  for (const std::string& name : names) {
    const std::string path = JoinPath(dir, name);
    if (absl::EndsWith(name, kTempSuffix)) {
      // An interrupted write: its rename never happened, so the file it
      // was to replace is intact.
      if (::unlinkat(dir_fd, name.c_str(), 0) != 0) {
        return fail(IoError(errno, absl::StrCat("twin store: remove ", path)));
      }
      removed_temp = true;
    } else if (name == kDesiredFile) {
      absl::StatusOr<std::string> contents =
          ReadFile(dir_fd, name, path, kMaxDesiredFileBytes);
      if (!contents.ok()) return fail(contents.status());
      absl::Status parsed = ParseDesiredFile(*contents, path, &state->desired);
      if (!parsed.ok()) return fail(parsed);
      state->desired_set = true;
    } else if (absl::StartsWith(name, kReportedPrefix) &&
               absl::EndsWith(name, kJsonSuffix)) {
      absl::StatusOr<std::string> contents =
          ReadFile(dir_fd, name, path, kMaxFileBytes);
      if (!contents.ok()) return fail(contents.status());
      absl::StatusOr<ReportedTwin> twin =
          ParseReportedFile(*contents, name, path);
      if (!twin.ok()) return fail(twin.status());
      state->reported[name] = *std::move(twin);
    }
  }
  if (removed_temp && ::fsync(dir_fd) != 0) {
    return fail(IoError(errno, absl::StrCat("twin store: fsync ", dir)));
  }
  return std::unique_ptr<TwinStore>(
      new TwinStore(options, dir_fd, std::move(state)));
}

TwinStore::TwinStore(TwinStoreOptions options, int dir_fd,
                     std::unique_ptr<State> state)
    : options_(std::move(options)), dir_fd_(dir_fd), state_(std::move(state)) {}

TwinStore::~TwinStore() {
  if (dir_fd_ >= 0) ::close(dir_fd_);  // releases the lock
}

absl::StatusOr<std::vector<DesiredPatch>> TwinStore::SetDesired(
    absl::string_view manifest_json) {
  absl::StatusOr<std::map<std::string, Json>> manifest =
      ReadManifestDesired(manifest_json);
  if (!manifest.ok()) return manifest.status();

  std::lock_guard<std::mutex> lock(mu_);
  // The next state is built aside and swapped in once it is on disk.
  std::map<std::string, ModuleDesired> next = state_->desired;
  std::vector<DesiredPatch> patches;
  bool changed = !state_->desired_set;
  auto apply = [&](const std::string& module_id, Json properties) {
    ModuleDesired& desired = next[module_id];
    if (!state_->desired_set) {
      desired.properties = std::move(properties);  // version 1 as it was
      return;
    }
    Json patch = MergeDiff(desired.properties, properties);
    if (patch.empty()) return;
    ++desired.version;
    desired.properties = std::move(properties);
    patch["$version"] = desired.version;
    patches.push_back(DesiredPatch{module_id, desired.version, Dump(patch)});
    changed = true;
  };
  for (auto& [module_id, properties] : *manifest) {
    apply(module_id, std::move(properties));
  }
  for (const auto& [module_id, desired] : state_->desired) {
    if (manifest->count(module_id) == 0 && !desired.properties.empty()) {
      apply(module_id, Json::object());
    }
  }
  if (changed && dir_fd_ >= 0) {
    absl::Status written = WriteFileDurably(dir_fd_, options_.dir, kDesiredFile,
                                            SerializeDesired(next));
    if (!written.ok()) return written;
  }
  state_->desired = std::move(next);
  state_->desired_set = true;
  std::sort(patches.begin(), patches.end(),
            [](const DesiredPatch& a, const DesiredPatch& b) {
              return a.module_id < b.module_id;
            });
  return patches;
}

std::string TwinStore::Get(absl::string_view device_id,
                           absl::string_view module_id) const {
  static const Json* const kEmpty = new Json(Json::object());
  std::lock_guard<std::mutex> lock(mu_);
  const Json* desired = kEmpty;
  int64_t desired_version = 1;
  bool own_module = !module_id.empty() && (options_.device_id.empty() ||
                                           device_id == options_.device_id);
  if (own_module) {
    auto it = state_->desired.find(std::string(module_id));
    if (it != state_->desired.end()) {
      desired = &it->second.properties;
      desired_version = it->second.version;
    }
  }
  const Json* reported = kEmpty;
  int64_t reported_version = 1;
  auto it = state_->reported.find(ReportedFileName(device_id, module_id));
  if (it != state_->reported.end()) {
    reported = &it->second.properties;
    reported_version = it->second.version;
  }
  return absl::StrCat(
      "{\"desired\":", WithVersion(*desired, desired_version),
      ",\"reported\":", WithVersion(*reported, reported_version), "}");
}

absl::StatusOr<int64_t> TwinStore::PatchReported(absl::string_view device_id,
                                                 absl::string_view module_id,
                                                 absl::string_view patch_json) {
  if (device_id.empty()) {
    return absl::InvalidArgumentError(
        "reported properties: the identity has no device id");
  }
  const std::string name = ReportedFileName(device_id, module_id);
  if (name.size() + sizeof(kTempSuffix) - 1 > kMaxFileNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reported properties: the identity's device and module ids are too "
        "long to name its twin file (",
        name.size(), " bytes encoded)"));
  }
  if (patch_json.size() > kMaxPatchBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("reported properties: the patch is ", patch_json.size(),
                     " bytes, more than ", kMaxPatchBytes));
  }
  // Parsing and checking need no lock.
  Json patch;
  absl::Status parsed = ParseJson(patch_json, "reported properties", &patch);
  if (!parsed.ok()) return parsed;
  if (!patch.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("reported properties: at ",
                     PositionOf(patch_json, FirstValueOffset(patch_json)),
                     ": expected a JSON object, found ", patch.type_name()));
  }
  absl::Status valid = ValidateReported(patch, "", 0);
  if (!valid.ok()) return valid;

  std::lock_guard<std::mutex> lock(mu_);
  auto existing = state_->reported.find(name);
  const bool is_new = existing == state_->reported.end();
  if (is_new && state_->reported.size() >= options_.max_twins) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "reported properties: the store holds the most twins it may (",
        options_.max_twins, ")"));
  }
  ReportedTwin next;
  if (is_new) {
    next.device_id = std::string(device_id);
    next.module_id = std::string(module_id);
  } else {
    next = existing->second;
  }
  // Both sides nest at most kMaxDepth deep, so the recursion is bounded.
  next.properties.merge_patch(patch);
  const size_t bytes = Dump(next.properties).size();
  if (bytes > kMaxDocumentBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("reported properties: the document would be ", bytes,
                     " bytes, more than ", kMaxDocumentBytes));
  }
  ++next.version;
  if (dir_fd_ >= 0) {
    absl::Status written =
        WriteFileDurably(dir_fd_, options_.dir, name, SerializeReported(next));
    if (!written.ok()) return written;
  }
  const int64_t version = next.version;
  state_->reported[name] = std::move(next);
  return version;
}

}  // namespace edgeroute::gateway::twins
