// edgeroute identity: manages the identities file that `edgeroute run
// --identities` checks sign-ins against (gateway/auth/identities.h), and
// prints connection strings and SAS tokens for its identities.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/status.h"
#include "gateway/auth/connection_string.h"
#include "gateway/auth/identities.h"
#include "tools/commands.h"

namespace edgeroute::tools {
namespace {

using gateway::Identity;
using gateway::auth::ConnectionString;
using gateway::auth::IdentityEntry;
using gateway::auth::IdentityRegistry;

constexpr char kUsage[] =
    "usage: edgeroute identity add|token|connection-string|list|remove "
    "--identities FILE ... (edgeroute help)\n";
// Longest token lifetime `identity token` issues: a year.
constexpr int64_t kMaxTtlSeconds = 365 * 24 * 3600;

struct IdentityOptions {
  std::string subcommand;
  std::string identities_path;
  std::string device;
  std::string module;
  std::string hub;
  std::string x509_thumbprint;
  bool x509_ca = false;
  // Nested gateways: the device is a gateway (--gateway), sits under a
  // child gateway (--parent ID), and may have no credential (--scope-only).
  bool gateway = false;
  std::string parent;
  bool scope_only = false;
  std::string gateway_host;
  int64_t ttl_seconds = 3600;
  bool secondary = false;
};

// Parses the subcommand and its flags ("--flag value" or "--flag=value").
// Returns false after reporting a usage error.
bool ParseIdentityOptions(const CommandContext& ctx, IdentityOptions* options) {
  const std::vector<std::string>& a = ctx.args;
  if (a.empty()) {
    *ctx.err << kUsage;
    return false;
  }
  options->subcommand = a[0];
  const std::string& sub = options->subcommand;
  if (sub != "add" && sub != "token" && sub != "connection-string" &&
      sub != "list" && sub != "remove") {
    *ctx.err << "edgeroute: identity: unknown subcommand '" << sub << "'\n"
             << kUsage;
    return false;
  }
  // Which flags each subcommand takes.
  auto allowed = [&sub](absl::string_view flag) {
    if (flag == "--identities") return true;
    if (sub == "list") return false;
    if (flag == "--device" || flag == "--module") return true;
    if (flag == "--hub" || flag == "--x509-thumbprint" || flag == "--x509-ca" ||
        flag == "--gateway" || flag == "--parent" || flag == "--scope-only") {
      return sub == "add";
    }
    if (flag == "--gateway-host") {
      return sub == "add" || sub == "connection-string";
    }
    if (flag == "--secondary") {
      return sub == "token" || sub == "connection-string";
    }
    if (flag == "--ttl") return sub == "token";
    return false;
  };
  std::string ttl;
  for (size_t i = 1; i < a.size(); ++i) {
    const std::string& arg = a[i];
    const size_t eq = arg.find('=');
    const std::string flag = arg.substr(0, eq);
    if (!absl::StartsWith(flag, "--") || !allowed(flag)) {
      *ctx.err << "edgeroute: identity " << sub << ": unknown option " << arg
               << " (see edgeroute help)\n";
      return false;
    }
    if (flag == "--x509-ca" || flag == "--secondary" || flag == "--gateway" ||
        flag == "--scope-only") {
      if (eq != std::string::npos) {
        *ctx.err << "edgeroute: " << flag << " takes no value\n";
        return false;
      }
      bool* target = flag == "--x509-ca"     ? &options->x509_ca
                     : flag == "--secondary" ? &options->secondary
                     : flag == "--gateway"   ? &options->gateway
                                             : &options->scope_only;
      *target = true;
      continue;
    }
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < a.size()) {
      value = a[++i];
    } else {
      *ctx.err << "edgeroute: " << flag << " needs a value\n";
      return false;
    }
    if (flag == "--identities") options->identities_path = value;
    if (flag == "--device") options->device = value;
    if (flag == "--module") options->module = value;
    if (flag == "--hub") options->hub = value;
    if (flag == "--x509-thumbprint") options->x509_thumbprint = value;
    if (flag == "--gateway-host") options->gateway_host = value;
    if (flag == "--parent") options->parent = value;
    if (flag == "--ttl") ttl = value;
  }
  if (options->identities_path.empty()) {
    *ctx.err << "edgeroute: identity " << sub << ": --identities FILE is "
             << "required\n";
    return false;
  }
  if (sub != "list" && options->device.empty()) {
    *ctx.err << "edgeroute: identity " << sub << ": --device ID is required\n";
    return false;
  }
  if (options->scope_only &&
      (options->x509_ca || !options->x509_thumbprint.empty() ||
       options->parent.empty())) {
    *ctx.err << "edgeroute: identity add: --scope-only records where a "
             << "device sits (--parent ID) without a credential; it takes "
             << "no --x509 option\n";
    return false;
  }
  if (options->x509_ca && !options->x509_thumbprint.empty()) {
    *ctx.err << "edgeroute: identity add: --x509-thumbprint and --x509-ca "
             << "exclude each other\n";
    return false;
  }
  if (!ttl.empty() &&
      (!absl::SimpleAtoi(ttl, &options->ttl_seconds) ||
       options->ttl_seconds <= 0 || options->ttl_seconds > kMaxTtlSeconds)) {
    *ctx.err << "edgeroute: --ttl must be 1.." << kMaxTtlSeconds
             << " seconds\n";
    return false;
  }
  return true;
}

// Writes `text` to `path` so that readers see the old or the new file,
// never a part: a private temporary file beside it (mode 0600: it holds
// keys), fsync, rename, fsync of the directory.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view text) {
  const std::string temp = absl::StrCat(path, ".tmp.", getpid());
  const int fd =
      open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create ", temp));
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      close(fd);
      unlink(temp.c_str());
      return ErrnoToStatus(error, absl::StrCat("write ", temp));
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    const int error = errno;
    close(fd);
    unlink(temp.c_str());
    return ErrnoToStatus(error, absl::StrCat("fsync ", temp));
  }
  close(fd);
  if (rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    unlink(temp.c_str());
    return ErrnoToStatus(error, absl::StrCat("rename to ", path));
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  const int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

std::string Name(const Identity& identity) {
  return identity.module_id.empty()
             ? identity.device_id
             : absl::StrCat(identity.device_id, "/", identity.module_id);
}

int Fail(const CommandContext& ctx, absl::string_view what,
         const absl::Status& status) {
  *ctx.err << "edgeroute: identity " << what << ": " << status.message()
           << "\n";
  return kExitInvalid;
}

ConnectionString ConnectionStringFor(const IdentityRegistry& registry,
                                     const IdentityEntry& entry,
                                     const IdentityOptions& options) {
  ConnectionString cs;
  cs.host_name = registry.hub();
  cs.identity = entry.identity;
  cs.gateway_host_name = options.gateway_host;
  if (entry.kind() == IdentityEntry::Kind::kSymmetricKey) {
    cs.shared_access_key = options.secondary && !entry.secondary_key.empty()
                               ? entry.secondary_key
                               : entry.primary_key;
  } else {
    cs.x509 = true;
  }
  return cs;
}

int Add(const CommandContext& ctx, const IdentityOptions& options,
        const Identity& identity) {
  std::string hub = options.hub;
  std::vector<IdentityEntry> entries;
  struct stat st;
  if (stat(options.identities_path.c_str(), &st) == 0) {
    absl::StatusOr<std::shared_ptr<const IdentityRegistry>> existing =
        IdentityRegistry::LoadFile(options.identities_path);
    if (!existing.ok()) return Fail(ctx, "add", existing.status());
    if (!hub.empty() && hub != (*existing)->hub()) {
      return Fail(ctx, "add",
                  absl::InvalidArgumentError(absl::StrCat(
                      "--hub ", hub, " differs from the file's hub ",
                      (*existing)->hub())));
    }
    hub = (*existing)->hub();
    entries = (*existing)->entries();
  } else if (errno != ENOENT) {
    return Fail(ctx, "add", ErrnoToStatus(errno, options.identities_path));
  } else if (hub.empty()) {
    return Fail(ctx, "add",
                absl::NotFoundError(absl::StrCat(
                    options.identities_path,
                    " does not exist; give --hub HOST to create it")));
  }
  for (const IdentityEntry& entry : entries) {
    if (entry.identity == identity) {
      return Fail(
          ctx, "add",
          absl::AlreadyExistsError(absl::StrCat(
              Name(identity), " is already in ", options.identities_path,
              " (edgeroute identity remove first to replace it)")));
    }
  }
  IdentityEntry entry;
  entry.identity = identity;
  entry.gateway = options.gateway;
  entry.parent = options.parent;
  if (options.scope_only) {
    // No credential: the device connects through its parent gateway.
  } else if (!options.x509_thumbprint.empty()) {
    entry.x509_thumbprint = options.x509_thumbprint;
  } else if (options.x509_ca) {
    entry.x509_ca = true;
  } else {
    absl::StatusOr<std::string> primary = gateway::auth::GenerateSymmetricKey();
    absl::StatusOr<std::string> secondary =
        gateway::auth::GenerateSymmetricKey();
    if (!primary.ok()) return Fail(ctx, "add", primary.status());
    if (!secondary.ok()) return Fail(ctx, "add", secondary.status());
    entry.primary_key = std::move(*primary);
    entry.secondary_key = std::move(*secondary);
  }
  entries.push_back(entry);
  absl::StatusOr<std::shared_ptr<const IdentityRegistry>> updated =
      IdentityRegistry::Create(hub, std::move(entries));
  if (!updated.ok()) return Fail(ctx, "add", updated.status());
  absl::Status written =
      WriteFileAtomically(options.identities_path, (*updated)->ToJson());
  if (!written.ok()) return Fail(ctx, "add", written);
  const IdentityEntry* added = (*updated)->Find(identity);
  if (added->kind() == IdentityEntry::Kind::kScopeOnly) {
    *ctx.out << "added " << Name(identity) << " under gateway " << added->parent
             << " (no credential: it connects through it)\n";
    return kExitOk;
  }
  *ctx.out << ConnectionStringFor(**updated, *added, options).ToString()
           << "\n";
  return kExitOk;
}

int Remove(const CommandContext& ctx, const IdentityOptions& options,
           const IdentityRegistry& registry, const Identity& identity) {
  std::vector<IdentityEntry> entries;
  for (const IdentityEntry& entry : registry.entries()) {
    if (entry.identity != identity) entries.push_back(entry);
  }
  absl::StatusOr<std::shared_ptr<const IdentityRegistry>> updated =
      IdentityRegistry::Create(registry.hub(), std::move(entries));
  if (!updated.ok()) return Fail(ctx, "remove", updated.status());
  absl::Status written =
      WriteFileAtomically(options.identities_path, (*updated)->ToJson());
  if (!written.ok()) return Fail(ctx, "remove", written);
  *ctx.out << "removed " << Name(identity) << "\n";
  return kExitOk;
}

const char* KindName(IdentityEntry::Kind kind) {
  switch (kind) {
    case IdentityEntry::Kind::kSymmetricKey:
      return "keys";
    case IdentityEntry::Kind::kX509Thumbprint:
      return "x509-thumbprint";
    case IdentityEntry::Kind::kX509Ca:
      return "x509-ca";
    case IdentityEntry::Kind::kScopeOnly:
      return "scope-only";
  }
  return "?";
}

}  // namespace

int IdentityCommand(const CommandContext& ctx) {
  IdentityOptions options;
  if (!ParseIdentityOptions(ctx, &options)) return kExitUsage;
  const Identity identity{options.device, options.module};
  if (options.subcommand != "list") {
    absl::Status valid =
        gateway::auth::ValidateId("--device", identity.device_id);
    if (valid.ok() && !identity.module_id.empty()) {
      valid = gateway::auth::ValidateId("--module", identity.module_id);
    }
    if (!valid.ok()) return Fail(ctx, options.subcommand, valid);
  }
  if (options.subcommand == "add") return Add(ctx, options, identity);

  absl::StatusOr<std::shared_ptr<const IdentityRegistry>> registry =
      IdentityRegistry::LoadFile(options.identities_path);
  if (!registry.ok()) return Fail(ctx, options.subcommand, registry.status());
  if (options.subcommand == "list") {
    *ctx.out << "# hub " << (*registry)->hub() << "\n";
    for (const IdentityEntry& entry : (*registry)->entries()) {
      *ctx.out << Name(entry.identity) << "\t" << KindName(entry.kind())
               << "\n";
    }
    return kExitOk;
  }
  const IdentityEntry* entry = (*registry)->Find(identity);
  if (entry == nullptr) {
    return Fail(ctx, options.subcommand,
                absl::NotFoundError(absl::StrCat(Name(identity), " is not in ",
                                                 options.identities_path)));
  }
  if (options.subcommand == "remove") {
    return Remove(ctx, options, **registry, identity);
  }
  if (options.subcommand == "connection-string") {
    *ctx.out << ConnectionStringFor(**registry, *entry, options).ToString()
             << "\n";
    return kExitOk;
  }
  // token
  if (entry->kind() != IdentityEntry::Kind::kSymmetricKey) {
    return Fail(ctx, "token",
                absl::FailedPreconditionError(absl::StrCat(
                    Name(identity),
                    " authenticates with an X.509 certificate; it has no key "
                    "to sign a SAS token with")));
  }
  if (options.secondary && entry->secondary_key.empty()) {
    return Fail(ctx, "token",
                absl::FailedPreconditionError(
                    absl::StrCat(Name(identity), " has no secondary key")));
  }
  *ctx.out << gateway::auth::MakeSasToken(
                  gateway::auth::SasResourceUri((*registry)->hub(), identity),
                  options.secondary ? entry->secondary_key : entry->primary_key,
                  absl::Now() + absl::Seconds(options.ttl_seconds))
           << "\n";
  return kExitOk;
}

}  // namespace edgeroute::tools
