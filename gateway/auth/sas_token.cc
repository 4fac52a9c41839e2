#include "gateway/auth/sas_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/percent_encoding.h"

namespace edgeroute {
namespace gateway {
namespace auth {
namespace {

constexpr absl::string_view kSasPrefix = "SharedAccessSignature ";
// Longest `se` accepted: int64 seconds.
constexpr size_t kMaxExpiryDigits = 18;

bool IsBase64Char(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' ||
         c == '/';
}

// HMAC-SHA256 of `data` under `key`, or nullopt when OpenSSL fails.
std::optional<std::string> HmacSha256(absl::string_view key,
                                      absl::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(),
           mac, &mac_length) == nullptr ||
      mac_length != kSignatureBytes) {
    return std::nullopt;
  }
  return std::string(reinterpret_cast<const char*>(mac), mac_length);
}

std::string SignedText(absl::string_view encoded_resource,
                       absl::string_view expiry_text) {
  return absl::StrCat(encoded_resource, "\n", expiry_text);
}

}  // namespace

std::string Base64Encode(absl::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  out.resize(written < 0 ? 0 : static_cast<size_t>(written));
  return out;
}

std::optional<std::string> Base64Decode(absl::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  if (absl::EndsWith(text, "==")) {
    padding = 2;
  } else if (absl::EndsWith(text, "=")) {
    padding = 1;
  }
  for (size_t i = 0; i < text.size() - padding; ++i) {
    if (!IsBase64Char(text[i])) return std::nullopt;
  }
  if (text.empty()) return std::string();
  // EVP_DecodeBlock decodes whole quanta and counts padding as zero bytes;
  // the padding checked above is taken off afterwards.
  std::string out(3 * (text.size() / 4), '\0');
  const int written =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(text.data()),
                      static_cast<int>(text.size()));
  if (written < 0 || static_cast<size_t>(written) != out.size()) {
    return std::nullopt;
  }
  out.resize(out.size() - padding);
  return out;
}

std::string UrlEncode(absl::string_view text) {
  std::string out;
  PercentEncode(text, &out);
  return out;
}

std::optional<std::string> UrlDecode(absl::string_view text) {
  std::string out;
  if (!PercentDecode(text, PercentDecoding::kStrict, &out)) return std::nullopt;
  return out;
}

std::string SasResourceUri(absl::string_view hub, const Identity& identity) {
  std::string uri = absl::StrCat(hub, "/devices/", identity.device_id);
  if (!identity.module_id.empty()) {
    absl::StrAppend(&uri, "/modules/", identity.module_id);
  }
  return uri;
}

std::string MakeSasToken(absl::string_view resource_uri,
                         absl::string_view base64_key, absl::Time expiry) {
  const std::optional<std::string> key = Base64Decode(base64_key);
  if (!key.has_value()) return "";
  const std::string encoded_resource = UrlEncode(resource_uri);
  const std::string expiry_text = absl::StrCat(absl::ToUnixSeconds(expiry));
  const std::optional<std::string> mac =
      HmacSha256(*key, SignedText(encoded_resource, expiry_text));
  if (!mac.has_value()) return "";
  return absl::StrCat(kSasPrefix, "sr=", encoded_resource,
                      "&sig=", UrlEncode(Base64Encode(*mac)),
                      "&se=", expiry_text);
}

absl::StatusOr<SasToken> ParseSasToken(absl::string_view token) {
  if (token.size() > kMaxSasTokenBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("SAS token longer than ", kMaxSasTokenBytes, " bytes"));
  }
  if (!absl::StartsWith(token, kSasPrefix)) {
    return absl::InvalidArgumentError(
        "not a SAS token: it must start with 'SharedAccessSignature '");
  }
  const absl::string_view fields = token.substr(kSasPrefix.size());
  for (char c : fields) {
    if (c <= ' ' || c >= 0x7f) {
      return absl::InvalidArgumentError(
          "malformed SAS token: white space or a byte outside printable "
          "ASCII in its fields");
    }
  }
  std::optional<absl::string_view> sr, sig, se, skn;
  for (absl::string_view field :
       absl::StrSplit(fields, '&', absl::SkipEmpty())) {
    const size_t eq = field.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "malformed SAS token: a field without '='");
    }
    const absl::string_view name = field.substr(0, eq);
    const absl::string_view value = field.substr(eq + 1);
    std::optional<absl::string_view>* slot = nullptr;
    if (absl::EqualsIgnoreCase(name, "sr")) {
      slot = &sr;
    } else if (absl::EqualsIgnoreCase(name, "sig")) {
      slot = &sig;
    } else if (absl::EqualsIgnoreCase(name, "se")) {
      slot = &se;
    } else if (absl::EqualsIgnoreCase(name, "skn")) {
      slot = &skn;
    } else {
      return absl::InvalidArgumentError(
          name.size() <= 16
              ? absl::StrCat("malformed SAS token: unknown field '", name,
                             "' (expected sr, sig, se, skn)")
              : "malformed SAS token: unknown field (expected sr, sig, se, "
                "skn)");
    }
    if (slot->has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed SAS token: field '",
                       absl::AsciiStrToLower(name), "' appears twice"));
    }
    *slot = value;
  }
  for (auto [name, value] :
       {std::pair{"sr", &sr}, std::pair{"sig", &sig}, std::pair{"se", &se}}) {
    if (!value->has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed SAS token: no '", name, "' field"));
    }
  }
  SasToken out;
  out.encoded_resource = std::string(*sr);
  std::optional<std::string> resource = UrlDecode(*sr);
  if (!resource.has_value() || resource->empty()) {
    return absl::InvalidArgumentError(
        "malformed SAS token: 'sr' is empty or has a bad %-escape");
  }
  out.resource = std::move(*resource);
  out.expiry_text = std::string(*se);
  if (se->empty() || se->size() > kMaxExpiryDigits ||
      !std::all_of(se->begin(), se->end(),
                   [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(*se, &out.expiry_unix_seconds)) {
    return absl::InvalidArgumentError(
        "malformed SAS token: 'se' must be the expiry in decimal Unix "
        "seconds");
  }
  std::optional<std::string> sig_base64 = UrlDecode(*sig);
  std::optional<std::string> signature;
  if (sig_base64.has_value()) signature = Base64Decode(*sig_base64);
  if (!signature.has_value() || signature->size() != kSignatureBytes) {
    return absl::InvalidArgumentError(
        "malformed SAS token: 'sig' must be the URL-encoded base64 of a "
        "32-byte HMAC-SHA256");
  }
  out.signature = std::move(*signature);
  if (skn.has_value()) {
    std::optional<std::string> key_name = UrlDecode(*skn);
    if (!key_name.has_value()) {
      return absl::InvalidArgumentError(
          "malformed SAS token: 'skn' has a bad %-escape");
    }
    out.key_name = std::move(*key_name);
  }
  return out;
}

bool SasSignatureMatches(const SasToken& token, absl::string_view base64_key) {
  const std::optional<std::string> key = Base64Decode(base64_key);
  if (!key.has_value() || token.signature.size() != kSignatureBytes) {
    return false;
  }
  const std::optional<std::string> mac =
      HmacSha256(*key, SignedText(token.encoded_resource, token.expiry_text));
  return mac.has_value() && CRYPTO_memcmp(mac->data(), token.signature.data(),
                                          kSignatureBytes) == 0;
}

}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute
