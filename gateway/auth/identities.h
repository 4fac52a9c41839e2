// The identities a gateway lets in, and how a connection proves it is one of
// them: SAS tokens signed with an identity's symmetric key, or TLS client
// certificates (by SHA-256 thumbprint, or CA-signed with the device id as
// subject CN) -- as IoT Hub and edgeHub check them.
//
// The identities file (README.md in this folder says how to issue one):
//
//   {"hub": "myhub.azure-devices.net",
//    "identities": [
//      {"deviceId": "edge-gw", "moduleId": "sensor",
//       "primaryKey": "<base64>", "secondaryKey": "<base64>"},
//      {"deviceId": "leaf-1", "primaryKey": "<base64>"},
//      {"deviceId": "leaf-2", "x509Thumbprint": "<sha256 hex>"},
//      {"deviceId": "leaf-3", "x509": "ca"},
//      {"deviceId": "child-gw", "primaryKey": "<base64>", "gateway": true},
//      {"deviceId": "leaf-4", "parent": "child-gw"}]}
//
// `hub` is the host name that SAS tokens name in their resource. Nested
// gateways: "gateway": true marks a device that forwards its children's
// messages (it may publish under their identities, see MayActFor), and
// "parent" names the gateway a device is connected under; an entry with a
// parent may have no credential at all (it only describes scope and cannot
// sign in). Every other entry
// has exactly one kind of credential: keys (primaryKey, optionally
// secondaryKey: base64 of 16 to 64 bytes), an x509Thumbprint (64 hex digits,
// SHA-256 of the certificate's DER), or "x509": "ca" (devices only: a
// certificate that verifies against the listener's client CA bundle whose
// subject CN is the device id). Ids follow IoT Hub's rules: 1 to 128 ASCII
// letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '.

#ifndef EDGEROUTE_GATEWAY_AUTH_IDENTITIES_H_
#define EDGEROUTE_GATEWAY_AUTH_IDENTITIES_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/auth/identity.h"
#include "gateway/auth/sas_token.h"

namespace edgeroute {
namespace gateway {

struct PeerInfo;  // gateway/event_loop.h

namespace auth {

// Longest device or module id (IoT Hub's limit).
inline constexpr size_t kMaxIdBytes = 128;
// Most "parent" links followed from a device up to a gateway (edgeHub's
// hierarchies have at most 5 layers).
inline constexpr int kMaxGatewayDepth = 8;
// Largest identities file LoadFile reads.
inline constexpr size_t kMaxIdentitiesFileBytes = 16u << 20;

// One entry of the identities file.
struct IdentityEntry {
  // kScopeOnly: no credential; the entry only says where a device sits in a
  // gateway hierarchy ("parent"), and cannot sign in.
  enum class Kind { kSymmetricKey, kX509Thumbprint, kX509Ca, kScopeOnly };

  Identity identity;
  std::string primary_key;      // base64; empty unless kSymmetricKey
  std::string secondary_key;    // base64; may be empty
  std::string x509_thumbprint;  // 64 lower-case hex digits; or empty
  bool x509_ca = false;
  // Nested gateways (devices only): the device id of the child gateway this
  // device or gateway is connected under ("parent"), and whether this
  // device is itself a gateway that forwards for others ("gateway").
  std::string parent;
  bool gateway = false;

  Kind kind() const {
    if (!x509_thumbprint.empty()) return Kind::kX509Thumbprint;
    if (x509_ca) return Kind::kX509Ca;
    return primary_key.empty() ? Kind::kScopeOnly : Kind::kSymmetricKey;
  }
};

// What an MQTT CONNECT offers as proof of identity.
struct Credentials {
  // "{deviceId}" or "{deviceId}/{moduleId}".
  absl::string_view client_id;
  // "{hub}/{client_id}/?api-version=..." (or without the '?').
  absl::string_view username;
  // A SAS token; absent (or empty) with an X.509 client certificate.
  std::optional<std::string> password;
  // The connection's peer (TLS client certificate); may be null.
  const PeerInfo* peer = nullptr;
};

// OK when `id` is a valid IoT Hub device or module id; otherwise
// InvalidArgument naming `what` ("deviceId") and the rule broken.
absl::Status ValidateId(absl::string_view what, absl::string_view id);

// The identity an MQTT CONNECT claims: client id "{device}" or
// "{device}/{module}" (valid ids), and a user name that names the same
// identity after a first segment that is ignored (the hub), followed by a
// query with an api-version key, with or without a leading '?':
//   {hub}/{device}[/{module}]/?api-version=...[&...]
//   {hub}/{device}[/{module}]/api-version=...[&DeviceClientType=...]
// Unauthenticated (CONNACK 4) when malformed or inconsistent.
absl::StatusOr<Identity> ParseMqttIdentity(absl::string_view client_id,
                                           absl::string_view username);

// A fresh random symmetric key (OpenSSL RAND_bytes), base64. `bytes` must be
// 16..64 (InvalidArgument otherwise); Internal when the generator fails.
absl::StatusOr<std::string> GenerateSymmetricKey(size_t bytes = 32);

// The validated contents of an identities file.
//
// Thread-safety: immutable once created; safe for concurrent use. A gateway
// that reloads the file swaps a std::shared_ptr<const IdentityRegistry>.
class IdentityRegistry {
 public:
  // Parses and validates an identities file's text. InvalidArgument
  // "LINE:COL: message" for the first problem: malformed JSON, a missing,
  // unknown (misspelt) or repeated field, a value of the wrong type, a bad
  // host name, id, key or thumbprint, an entry with no or two kinds of
  // credential, an identity listed twice.
  static absl::StatusOr<std::shared_ptr<const IdentityRegistry>> Parse(
      absl::string_view json_text);
  // Reads and parses `path` (at most kMaxIdentitiesFileBytes); errors name
  // the path.
  static absl::StatusOr<std::shared_ptr<const IdentityRegistry>> LoadFile(
      const std::string& path);
  // The same validation for entries built in code (errors name the entry by
  // index and id instead of a position).
  static absl::StatusOr<std::shared_ptr<const IdentityRegistry>> Create(
      std::string hub, std::vector<IdentityEntry> entries);

  IdentityRegistry(const IdentityRegistry&) = delete;
  IdentityRegistry& operator=(const IdentityRegistry&) = delete;

  // Checks an MQTT CONNECT: ParseMqttIdentity, then Verify with the password
  // as the SAS token. Returns the proven identity. Unauthenticated (CONNACK
  // 4) for a malformed client id or user name, or one that disagrees with
  // the client id; PermissionDenied (CONNACK 5) for an unknown identity, a
  // malformed, expired, wrong-resource or wrong-signature token, or a
  // missing or unmatched certificate. Messages name the identity and the
  // reason, never a key, signature or password.
  absl::StatusOr<Identity> Authenticate(const Credentials& credentials,
                                        absl::Time now) const;

  // Checks that a connection may act as `claimed` (whose ids the caller has
  // parsed): with a SAS token (`sas_token`; nullopt or "" = none) for a key
  // identity, or with the certificate in `peer` (may be null) for an X.509
  // identity. A token must name exactly `claimed` ("{hub}/devices/{d}" or
  // ".../modules/{m}" after URL-decoding, the host compared
  // case-insensitively), be signed with its primary or secondary key, and
  // not have expired more than kMaxClockSkew before `now`. OK or
  // PermissionDenied, as for Authenticate.
  absl::Status Verify(const Identity& claimed,
                      std::optional<absl::string_view> sas_token,
                      const PeerInfo* peer, absl::Time now) const;

  // The host name SAS tokens must name.
  const std::string& hub() const { return hub_; }
  // The entries in file order.
  const std::vector<IdentityEntry>& entries() const { return entries_; }
  // The entry for `identity`, or null.
  const IdentityEntry* Find(const Identity& identity) const;

  // Nested gateways: whether `gateway` (a signed-in device whose entry says
  // "gateway": true) may publish telemetry on behalf of `origin`. Its scope
  // is its own device and modules, and every device whose entry names it as
  // "parent" -- transitively, through devices that are gateways themselves,
  // so a leaf under a grandchild gateway is in scope -- with their modules.
  // False for a module, a device that is not a gateway, or an identity
  // outside the scope (the walk up "parent" links stops after
  // kMaxGatewayDepth steps, so a cycle in the file cannot loop).
  bool MayActFor(const Identity& gateway, const Identity& origin) const;

  // The identities file for this registry (one identity per line), which
  // Parse reads back to an equal registry.
  std::string ToJson() const;

 private:
  IdentityRegistry(std::string hub, std::vector<IdentityEntry> entries);

  std::string hub_;
  std::vector<IdentityEntry> entries_;
  // "{device}" or "{device}/{module}" -> index in entries_.
  absl::flat_hash_map<std::string, size_t> index_;
};

}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_AUTH_IDENTITIES_H_
