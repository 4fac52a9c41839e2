// Shared access signature (SAS) tokens as IoT Hub issues and checks them, and
// the encodings they are made of (base64 and URL percent-encoding, both from
// or in the manner of OpenSSL and RFC 3986).
//
//   SharedAccessSignature
//   sr={resource}&sig={signature}&se={expiry}[&skn={policy}]
//
// {resource} is the URL-encoded "{hub}/devices/{deviceId}" or
// "{hub}/devices/{deviceId}/modules/{moduleId}"; {expiry} is Unix seconds;
// {signature} is the URL-encoded base64 of HMAC-SHA256, keyed with the
// base64-decoded symmetric key, over "{sr as sent}\n{se as sent}".
//
// Thread-safety: every function here is pure and safe to call concurrently.

#ifndef EDGEROUTE_GATEWAY_AUTH_SAS_TOKEN_H_
#define EDGEROUTE_GATEWAY_AUTH_SAS_TOKEN_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/auth/identity.h"

namespace edgeroute {
namespace gateway {
namespace auth {

// Bytes of an HMAC-SHA256 signature.
inline constexpr size_t kSignatureBytes = 32;
// Longest SAS token accepted (an IoT Hub token for two 128-character ids and
// a 255-character host name is about 700 bytes).
inline constexpr size_t kMaxSasTokenBytes = 4096;
// How long after its expiry a token is still accepted, for clocks that
// disagree a little (IoT Hub's SDKs allow the same five minutes).
inline constexpr absl::Duration kMaxClockSkew = absl::Minutes(5);

// Standard base64 (RFC 4648 section 4, with '=' padding) of `bytes`.
std::string Base64Encode(absl::string_view bytes);
// Decodes standard base64 with correct padding: length a multiple of 4,
// alphabet A-Z a-z 0-9 + /, at most two trailing '='. Returns nullopt for
// anything else (including whitespace).
std::optional<std::string> Base64Decode(absl::string_view text);

// Percent-encodes every byte outside RFC 3986's unreserved set
// (A-Z a-z 0-9 - _ . ~), upper-case hex: what the SDKs send ("/" -> "%2F",
// "=" -> "%3D").
std::string UrlEncode(absl::string_view text);
// Decodes %XX escapes (either case); other bytes, '+' included, stand for
// themselves. Returns nullopt for a '%' not followed by two hex digits.
std::optional<std::string> UrlDecode(absl::string_view text);

// The resource a token for `identity` names, not encoded:
// "{hub}/devices/{device}" or "{hub}/devices/{device}/modules/{module}".
std::string SasResourceUri(absl::string_view hub, const Identity& identity);

// A token for `resource_uri` (not encoded; see SasResourceUri) signed with
// `base64_key`, valid until `expiry` (whole seconds; rounded down):
// "SharedAccessSignature sr={UrlEncode(resource)}&sig={..}&se={..}".
// Returns "" when `base64_key` is not valid base64 (see Base64Decode).
std::string MakeSasToken(absl::string_view resource_uri,
                         absl::string_view base64_key, absl::Time expiry);

// The fields of a token, as parsed by ParseSasToken.
struct SasToken {
  std::string encoded_resource;  // `sr` exactly as sent (the signed text)
  std::string resource;          // `sr` URL-decoded
  std::string expiry_text;       // `se` exactly as sent (the signed text)
  int64_t expiry_unix_seconds = 0;
  std::string signature;  // `sig` decoded: kSignatureBytes bytes
  std::string key_name;   // `skn` URL-decoded; "" when absent
};

// Parses "SharedAccessSignature " (exactly; one space) followed by
// '&'-separated name=value fields in any order: sr, sig and se required, skn
// optional; names are matched case-insensitively, as IoT Hub does; empty
// fields ("&&") are skipped. InvalidArgument for anything else (a missing,
// repeated or unknown field, a bad escape, `se` not decimal seconds, `sig` not
// the base64 of 32 bytes, a token longer than kMaxSasTokenBytes). Messages
// never contain the signature.
absl::StatusOr<SasToken> ParseSasToken(absl::string_view token);

// True when `token` was signed with `base64_key`: HMAC-SHA256 over
// encoded_resource + "\n" + expiry_text, compared in constant time
// (CRYPTO_memcmp). False for a key that is not valid base64.
bool SasSignatureMatches(const SasToken& token, absl::string_view base64_key);

}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_AUTH_SAS_TOKEN_H_
