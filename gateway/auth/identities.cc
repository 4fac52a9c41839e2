#include "gateway/auth/identities.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "gateway/auth/json_positions.h"
#include "gateway/event_loop.h"
#include "nlohmann/json.hpp"

namespace edgeroute {
namespace gateway {
namespace auth {
namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kMinKeyBytes = 16;
constexpr size_t kMaxKeyBytes = 64;
constexpr size_t kThumbprintHexDigits = 64;
constexpr size_t kMaxHostBytes = 255;
constexpr absl::string_view kFieldList =
    "deviceId, moduleId, primaryKey, secondaryKey, x509Thumbprint, x509, "
    "parent, gateway";

std::string Key(const Identity& identity) {
  return identity.module_id.empty()
             ? identity.device_id
             : absl::StrCat(identity.device_id, "/", identity.module_id);
}

// Text from outside (a file, a client) made safe for a message: escaped and
// cut to a readable length.
std::string Quoted(absl::string_view text) {
  constexpr size_t kMaxShown = 64;
  std::string shown = absl::CHexEscape(text.substr(0, kMaxShown));
  if (text.size() > kMaxShown) shown += "...";
  return absl::StrCat("'", shown, "'");
}

bool IsIdChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  switch (c) {
    case '-':
    case ':':
    case '.':
    case '+':
    case '%':
    case '_':
    case '#':
    case '*':
    case '?':
    case '!':
    case '(':
    case ')':
    case ',':
    case '=':
    case '@':
    case ';':
    case '$':
    case '\'':
      return true;
    default:
      return false;
  }
}

absl::Status ValidateHub(absl::string_view hub) {
  if (hub.empty() || hub.size() > kMaxHostBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hub must be a host name of 1 to ", kMaxHostBytes, " characters"));
  }
  for (absl::string_view label : absl::StrSplit(hub, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' ||
        label.back() == '-' ||
        !std::all_of(label.begin(), label.end(), [](char c) {
          return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-';
        })) {
      return absl::InvalidArgumentError(absl::StrCat(
          "hub ", Quoted(hub),
          " is not a host name (dot-separated labels of letters, digits "
          "and inner '-', e.g. myhub.azure-devices.net)"));
    }
  }
  return absl::OkStatus();
}

// The key's problem, or OK. The message never shows the key.
absl::Status ValidateKey(absl::string_view field, absl::string_view key) {
  const std::optional<std::string> bytes = Base64Decode(key);
  if (!bytes.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field,
                     " is not valid base64 (A-Z a-z 0-9 + /, '=' padding to a "
                     "multiple of 4 characters)"));
  }
  if (bytes->size() < kMinKeyBytes || bytes->size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " decodes to ", bytes->size(), " bytes; a key must have ",
        kMinKeyBytes, " to ", kMaxKeyBytes, " (edgeroute identity add makes ",
        "32-byte keys)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateThumbprint(absl::string_view thumbprint) {
  if (thumbprint.size() != kThumbprintHexDigits ||
      !std::all_of(thumbprint.begin(), thumbprint.end(), [](char c) {
        return absl::ascii_isxdigit(static_cast<unsigned char>(c));
      })) {
    return absl::InvalidArgumentError(
        "x509Thumbprint must be the SHA-256 of the certificate's DER as 64 "
        "hex digits, without colons (openssl x509 -noout -fingerprint "
        "-sha256, colons removed)");
  }
  return absl::OkStatus();
}

// Checks what cannot be checked field by field.
absl::Status ValidateCredentialKinds(const IdentityEntry& entry) {
  const bool keys = !entry.primary_key.empty() || !entry.secondary_key.empty();
  const int kinds =
      int{keys} + int{!entry.x509_thumbprint.empty()} + int{entry.x509_ca};
  if (!entry.identity.module_id.empty() &&
      (!entry.parent.empty() || entry.gateway)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "identity ", Key(entry.identity),
        ": parent and gateway describe devices; a module belongs to its "
        "device's place in the hierarchy"));
  }
  if (entry.parent == entry.identity.device_id && !entry.parent.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "identity ", Key(entry.identity), " names itself as its parent"));
  }
  // A scope entry: where a device sits, with no way to sign in.
  if (kinds == 0 && !entry.parent.empty()) return absl::OkStatus();
  if (kinds != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "identity ", Key(entry.identity),
        kinds == 0 ? " has no credential" : " has more than one credential",
        ": give primaryKey (and optionally secondaryKey), x509Thumbprint, or "
        "\"x509\": \"ca\" (only an entry with a \"parent\" may have none)"));
  }
  if (keys && entry.primary_key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity ", Key(entry.identity),
                     " has a secondaryKey but no primaryKey"));
  }
  if (entry.x509_ca && !entry.identity.module_id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "identity ", Key(entry.identity),
        ": \"x509\": \"ca\" is for devices (the certificate's CN names a "
        "device, not a module); give the module keys or an x509Thumbprint"));
  }
  return absl::OkStatus();
}

// "LINE:COL: message" of `status` at `where`.
absl::Status At(const std::string& where, const absl::Status& status) {
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": ", status.message()));
}

std::string ExpectedPath(const Identity& identity) {
  std::string path = absl::StrCat("devices/", identity.device_id);
  if (!identity.module_id.empty()) {
    absl::StrAppend(&path, "/modules/", identity.module_id);
  }
  return path;
}

// One identity entry of a parsed file.
absl::StatusOr<IdentityEntry> ParseEntry(const PositionedJson& doc,
                                         const Json& value,
                                         const std::string& pointer) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(doc.WhereValue(pointer),
                     ": an identity must be an object {\"deviceId\": ...}"));
  }
  IdentityEntry entry;
  bool has_device = false;
  for (const auto& [name, field] : value.items()) {
    const std::string field_pointer = PositionedJson::Pointer(pointer, name);
    std::string* target = nullptr;
    if (name == "deviceId") {
      target = &entry.identity.device_id;
      has_device = true;
    } else if (name == "moduleId") {
      target = &entry.identity.module_id;
    } else if (name == "primaryKey") {
      target = &entry.primary_key;
    } else if (name == "secondaryKey") {
      target = &entry.secondary_key;
    } else if (name == "x509Thumbprint") {
      target = &entry.x509_thumbprint;
    } else if (name == "parent") {
      target = &entry.parent;
    } else if (name == "gateway") {
      if (!field.is_boolean()) {
        return absl::InvalidArgumentError(absl::StrCat(
            doc.WhereValue(field_pointer), ": gateway must be true or false"));
      }
      entry.gateway = field.get<bool>();
      continue;
    } else if (name != "x509") {
      return absl::InvalidArgumentError(
          absl::StrCat(doc.WhereName(field_pointer), ": unknown field ",
                       Quoted(name), " (an identity has ", kFieldList, ")"));
    }
    if (!field.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          doc.WhereValue(field_pointer), ": ", name, " must be a string"));
    }
    const std::string& text = field.get_ref<const std::string&>();
    absl::Status valid;
    if (name == "deviceId" || name == "moduleId" || name == "parent") {
      valid = ValidateId(name, text);
    } else if (name == "primaryKey" || name == "secondaryKey") {
      valid = ValidateKey(name, text);
    } else if (name == "x509Thumbprint") {
      valid = ValidateThumbprint(text);
    } else if (text != "ca") {
      valid = absl::InvalidArgumentError(
          "x509 must be \"ca\" (a CA-signed certificate with the device id "
          "as subject CN); for a self-signed certificate give "
          "x509Thumbprint instead");
    } else {
      entry.x509_ca = true;
    }
    if (!valid.ok()) return At(doc.WhereValue(field_pointer), valid);
    if (target != nullptr) *target = text;
  }
  if (!has_device) {
    return absl::InvalidArgumentError(
        absl::StrCat(doc.WhereValue(pointer), ": identity without a deviceId"));
  }
  entry.x509_thumbprint = absl::AsciiStrToLower(entry.x509_thumbprint);
  absl::Status kinds = ValidateCredentialKinds(entry);
  if (!kinds.ok()) return At(doc.WhereValue(pointer), kinds);
  return entry;
}

}  // namespace

absl::Status ValidateId(absl::string_view what, absl::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must have 1 to ", kMaxIdBytes, " characters"));
  }
  for (char c : id) {
    if (!IsIdChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " ", Quoted(id), " has the character ",
          Quoted(absl::string_view(&c, 1)),
          "; ids are ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ "
          "; $ '"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Identity> ParseMqttIdentity(absl::string_view client_id,
                                           absl::string_view username) {
  Identity identity;
  const std::vector<absl::string_view> ids = absl::StrSplit(client_id, '/');
  if (ids.size() > 2) {
    return absl::UnauthenticatedError(
        "client id must be {deviceId} or {deviceId}/{moduleId}");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    absl::Status valid = ValidateId(
        i == 0 ? "client id's device id" : "client id's module id", ids[i]);
    if (!valid.ok()) return absl::UnauthenticatedError(valid.message());
  }
  identity.device_id = std::string(ids[0]);
  if (ids.size() == 2) identity.module_id = std::string(ids[1]);

  const size_t slash = username.find('/');
  if (slash == absl::string_view::npos) {
    return absl::UnauthenticatedError(
        "user name must be {hub}/{deviceId}[/{moduleId}]/?api-version=...");
  }
  absl::string_view rest = username.substr(slash + 1);
  if (!absl::ConsumePrefix(&rest, client_id) ||
      !absl::ConsumePrefix(&rest, "/")) {
    return absl::UnauthenticatedError(absl::StrCat(
        "user name does not name the client id's identity ", Key(identity),
        " (expected {hub}/", Key(identity), "/?api-version=...)"));
  }
  absl::ConsumePrefix(&rest, "?");
  bool has_api_version = false;
  for (absl::string_view pair : absl::StrSplit(rest, '&')) {
    has_api_version |= absl::StartsWith(pair, "api-version=");
  }
  if (!has_api_version) {
    return absl::UnauthenticatedError(
        absl::StrCat("user name for ", Key(identity),
                     " has no api-version after the identity (expected {hub}/",
                     Key(identity), "/?api-version=...)"));
  }
  return identity;
}

absl::StatusOr<std::string> GenerateSymmetricKey(size_t bytes) {
  if (bytes < kMinKeyBytes || bytes > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a key must have ", kMinKeyBytes, " to ", kMaxKeyBytes, " bytes"));
  }
  unsigned char key[kMaxKeyBytes];
  if (RAND_bytes(key, static_cast<int>(bytes)) != 1) {
    return absl::InternalError("OpenSSL's random generator failed");
  }
  std::string out =
      Base64Encode(absl::string_view(reinterpret_cast<char*>(key), bytes));
  OPENSSL_cleanse(key, sizeof(key));
  return out;
}

IdentityRegistry::IdentityRegistry(std::string hub,
                                   std::vector<IdentityEntry> entries)
    : hub_(std::move(hub)), entries_(std::move(entries)) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    index_.emplace(Key(entries_[i].identity), i);
  }
}

absl::StatusOr<std::shared_ptr<const IdentityRegistry>> IdentityRegistry::Parse(
    absl::string_view json_text) {
  EDGEROUTE_ASSIGN_OR_RETURN(const PositionedJson doc,
                             PositionedJson::Parse(json_text));
  const Json& root = doc.root();
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(doc.WhereValue(""),
                     ": the identities file must be an object {\"hub\": ..., "
                     "\"identities\": [...]}"));
  }
  std::string hub;
  bool has_hub = false;
  bool has_identities = false;
  std::vector<IdentityEntry> entries;
  absl::flat_hash_map<std::string, std::string> first_seen;  // key -> where
  for (const auto& [name, value] : root.items()) {
    const std::string pointer = PositionedJson::Pointer("", name);
    if (name == "hub") {
      if (!value.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(doc.WhereValue(pointer), ": hub must be a string"));
      }
      hub = value.get<std::string>();
      absl::Status valid = ValidateHub(hub);
      if (!valid.ok()) return At(doc.WhereValue(pointer), valid);
      has_hub = true;
    } else if (name == "identities") {
      if (!value.is_array()) {
        return absl::InvalidArgumentError(absl::StrCat(
            doc.WhereValue(pointer), ": identities must be an array"));
      }
      has_identities = true;
      for (size_t i = 0; i < value.size(); ++i) {
        const std::string entry_pointer = PositionedJson::Pointer(pointer, i);
        EDGEROUTE_ASSIGN_OR_RETURN(IdentityEntry entry,
                                   ParseEntry(doc, value[i], entry_pointer));
        const std::string where = doc.WhereValue(entry_pointer);
        auto [it, inserted] =
            first_seen.try_emplace(Key(entry.identity), where);
        if (!inserted) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": identity ", Key(entry.identity),
                           " is listed twice (first at ", it->second, ")"));
        }
        entries.push_back(std::move(entry));
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(doc.WhereName(pointer), ": unknown field ", Quoted(name),
                       " (the identities file has hub and identities)"));
    }
  }
  if (!has_hub || !has_identities) {
    return absl::InvalidArgumentError(
        absl::StrCat(doc.WhereValue(""), ": the identities file has no ",
                     has_hub ? "identities" : "hub", " field"));
  }
  return std::shared_ptr<const IdentityRegistry>(
      new IdentityRegistry(std::move(hub), std::move(entries)));
}

absl::StatusOr<std::shared_ptr<const IdentityRegistry>>
IdentityRegistry::LoadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoToStatus(errno, absl::StrCat("identities file '", path, "'"));
  }
  std::string text;
  char buffer[64 << 10];
  absl::Status status;
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status =
          ErrnoToStatus(errno, absl::StrCat("identities file '", path, "'"));
      break;
    }
    if (n == 0) break;
    if (text.size() + static_cast<size_t>(n) > kMaxIdentitiesFileBytes) {
      status = absl::InvalidArgumentError(
          absl::StrCat("identities file '", path, "' is larger than ",
                       kMaxIdentitiesFileBytes, " bytes"));
      break;
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  EDGEROUTE_RETURN_IF_ERROR(status);
  absl::StatusOr<std::shared_ptr<const IdentityRegistry>> registry =
      Parse(text);
  if (!registry.ok()) {
    return absl::Status(registry.status().code(),
                        absl::StrCat("identities file '", path,
                                     "':", registry.status().message()));
  }
  return registry;
}

absl::StatusOr<std::shared_ptr<const IdentityRegistry>>
IdentityRegistry::Create(std::string hub, std::vector<IdentityEntry> entries) {
  EDGEROUTE_RETURN_IF_ERROR(ValidateHub(hub));
  absl::flat_hash_map<std::string, size_t> first_seen;
  for (size_t i = 0; i < entries.size(); ++i) {
    IdentityEntry& entry = entries[i];
    const std::string where = absl::StrCat("identity ", i + 1);
    auto fail = [&](const absl::Status& status) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", status.message()));
    };
    absl::Status valid = ValidateId("deviceId", entry.identity.device_id);
    if (valid.ok() && !entry.identity.module_id.empty()) {
      valid = ValidateId("moduleId", entry.identity.module_id);
    }
    if (valid.ok() && !entry.primary_key.empty()) {
      valid = ValidateKey("primaryKey", entry.primary_key);
    }
    if (valid.ok() && !entry.secondary_key.empty()) {
      valid = ValidateKey("secondaryKey", entry.secondary_key);
    }
    if (valid.ok() && !entry.x509_thumbprint.empty()) {
      valid = ValidateThumbprint(entry.x509_thumbprint);
    }
    if (valid.ok() && !entry.parent.empty()) {
      valid = ValidateId("parent", entry.parent);
    }
    if (valid.ok()) valid = ValidateCredentialKinds(entry);
    if (!valid.ok()) return fail(valid);
    entry.x509_thumbprint = absl::AsciiStrToLower(entry.x509_thumbprint);
    auto [it, inserted] = first_seen.try_emplace(Key(entry.identity), i);
    if (!inserted) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat(Key(entry.identity), " is listed twice (first as ",
                       "identity ", it->second + 1, ")")));
    }
  }
  return std::shared_ptr<const IdentityRegistry>(
      new IdentityRegistry(std::move(hub), std::move(entries)));
}

const IdentityEntry* IdentityRegistry::Find(const Identity& identity) const {
  auto it = index_.find(Key(identity));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

bool IdentityRegistry::MayActFor(const Identity& gateway,
                                 const Identity& origin) const {
  if (!gateway.module_id.empty()) return false;
  const IdentityEntry* self = Find(gateway);
  if (self == nullptr || !self->gateway) return false;
  // Walk up from the origin's device: it is in scope when the walk meets
  // the gateway, passing only through gateways on the way.
  std::string device = origin.device_id;
  for (int depth = 0; depth <= kMaxGatewayDepth; ++depth) {
    if (device == gateway.device_id) return true;
    const IdentityEntry* entry = Find(Identity{device, ""});
    if (entry == nullptr || entry->parent.empty()) return false;
    if (depth > 0 && !entry->gateway) return false;
    device = entry->parent;
  }
  return false;
}

absl::StatusOr<Identity> IdentityRegistry::Authenticate(
    const Credentials& credentials, absl::Time now) const {
  EDGEROUTE_ASSIGN_OR_RETURN(
      Identity identity,
      ParseMqttIdentity(credentials.client_id, credentials.username));
  std::optional<absl::string_view> token;
  if (credentials.password.has_value()) token = *credentials.password;
  EDGEROUTE_RETURN_IF_ERROR(Verify(identity, token, credentials.peer, now));
  return identity;
}

absl::Status IdentityRegistry::Verify(
    const Identity& claimed, std::optional<absl::string_view> sas_token,
    const PeerInfo* peer, absl::Time now) const {
  const IdentityEntry* entry = Find(claimed);
  const std::string name = Key(claimed);
  if (entry == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        "identity ", Quoted(name), " is not in the identities file"));
  }
  const bool has_token = sas_token.has_value() && !sas_token->empty();
  switch (entry->kind()) {
    case IdentityEntry::Kind::kSymmetricKey:
      break;
    case IdentityEntry::Kind::kScopeOnly:
      return absl::PermissionDeniedError(absl::StrCat(
          "identity ", name,
          " has no credential in the identities file (its entry only names "
          "its parent gateway): it connects through that gateway"));
    case IdentityEntry::Kind::kX509Thumbprint:
    case IdentityEntry::Kind::kX509Ca: {
      if (has_token) {
        return absl::PermissionDeniedError(absl::StrCat(
            "identity ", name,
            " authenticates with an X.509 client certificate, not a SAS "
            "token"));
      }
      const bool thumbprint =
          entry->kind() == IdentityEntry::Kind::kX509Thumbprint;
      if (peer == nullptr || peer->client_cert_sha256_hex.empty()) {
        return absl::PermissionDeniedError(absl::StrCat(
            "identity ", name,
            " authenticates with an X.509 client certificate and the "
            "connection presented none",
            thumbprint ? "" : " that verifies against the client CA bundle"));
      }
      if (thumbprint) {
        if (!absl::EqualsIgnoreCase(peer->client_cert_sha256_hex,
                                    entry->x509_thumbprint)) {
          return absl::PermissionDeniedError(absl::StrCat(
              "identity ", name,
              ": the client certificate's SHA-256 thumbprint is not the "
              "identity's x509Thumbprint"));
        }
        return absl::OkStatus();
      }
      if (!peer->client_cert_verified) {
        return absl::PermissionDeniedError(absl::StrCat(
            "identity ", name,
            ": the client certificate does not verify against the client CA "
            "bundle"));
      }
      if (peer->client_cert_subject_cn != claimed.device_id) {
        return absl::PermissionDeniedError(absl::StrCat(
            "identity ", name, ": the client certificate's subject CN ",
            Quoted(peer->client_cert_subject_cn), " is not the device id"));
      }
      return absl::OkStatus();
    }
  }
  if (!has_token) {
    return absl::PermissionDeniedError(absl::StrCat(
        "identity ", name,
        " authenticates with a SAS token (the password) and none was given"));
  }
  absl::StatusOr<SasToken> token = ParseSasToken(*sas_token);
  if (!token.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("identity ", name, ": ", token.status().message()));
  }
  // The resource: "{host}/devices/{d}[/modules/{m}]", host case-insensitive.
  const size_t slash = token->resource.find('/');
  const absl::string_view host =
      absl::string_view(token->resource).substr(0, slash);
  const absl::string_view path =
      slash == std::string::npos
          ? absl::string_view()
          : absl::string_view(token->resource).substr(slash + 1);
  if (!absl::EqualsIgnoreCase(host, hub_) || path != ExpectedPath(claimed)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "identity ", name, ": the SAS token's resource ",
        Quoted(token->resource), " is not ", SasResourceUri(hub_, claimed)));
  }
  if (!SasSignatureMatches(*token, entry->primary_key) &&
      (entry->secondary_key.empty() ||
       !SasSignatureMatches(*token, entry->secondary_key))) {
    return absl::PermissionDeniedError(absl::StrCat(
        "identity ", name,
        ": the SAS token's signature matches neither the primary nor the "
        "secondary key"));
  }
  const absl::Time expiry = absl::FromUnixSeconds(token->expiry_unix_seconds);
  if (expiry + kMaxClockSkew < now) {
    return absl::PermissionDeniedError(absl::StrCat(
        "identity ", name, ": the SAS token expired at ",
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", expiry, absl::UTCTimeZone())));
  }
  return absl::OkStatus();
}

std::string IdentityRegistry::ToJson() const {
  std::vector<std::string> lines;
  for (const IdentityEntry& entry : entries_) {
    std::vector<std::string> fields;
    auto field = [&fields](absl::string_view name, const std::string& value) {
      fields.push_back(absl::StrCat("\"", name, "\": ", Json(value).dump()));
    };
    field("deviceId", entry.identity.device_id);
    if (!entry.identity.module_id.empty()) {
      field("moduleId", entry.identity.module_id);
    }
    switch (entry.kind()) {
      case IdentityEntry::Kind::kSymmetricKey:
        field("primaryKey", entry.primary_key);
        if (!entry.secondary_key.empty()) {
          field("secondaryKey", entry.secondary_key);
        }
        break;
      case IdentityEntry::Kind::kX509Thumbprint:
        field("x509Thumbprint", entry.x509_thumbprint);
        break;
      case IdentityEntry::Kind::kX509Ca:
        field("x509", "ca");
        break;
      case IdentityEntry::Kind::kScopeOnly:
        break;
    }
    if (!entry.parent.empty()) field("parent", entry.parent);
    if (entry.gateway) fields.push_back("\"gateway\": true");
    lines.push_back(absl::StrCat("    {", absl::StrJoin(fields, ", "), "}"));
  }
  return absl::StrCat("{\n  \"hub\": ", Json(hub_).dump(),
                      ",\n  \"identities\": [", lines.empty() ? "" : "\n",
                      absl::StrJoin(lines, ",\n"),
                      lines.empty() ? "]\n}\n" : "\n  ]\n}\n");
}

}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute
