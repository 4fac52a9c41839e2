// libFuzzer target for everything in gateway/auth that reads outside input:
// identities files (with their positions) and what an MQTT CONNECT or a
// native Hello offers (client id, user name, SAS token). Built with clang by
// scripts/fuzz.sh auth; its corpus is replayed as //gateway/auth:auth_fuzzer_replay_test.
//
// The first byte picks the mode; the rest is the input.
//   even: an identities file. Parse never crashes; an error is "L:C: ..."
//         inside the text; a registry survives ToJson -> Parse unchanged;
//         every value's recorded position is where that value starts.
//   odd:  "client id\nuser name\npassword" against a fixed registry.
//         Authenticate answers OK, Unauthenticated or PermissionDenied and
//         never repeats the signature of a token it refused.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gateway/auth/identities.h"
#include "gateway/auth/json_positions.h"
#include "gateway/auth/sas_token.h"

namespace edgeroute {
namespace gateway {
namespace auth {
namespace {

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "auth_fuzzer: invariant broken: %s\n", what);
    std::abort();
  }
}

// The byte offset of a 1-based line and column in `text`.
size_t OffsetOf(absl::string_view text, TextPosition position) {
  size_t line = 1;
  size_t offset = 0;
  while (line < position.line && offset < text.size()) {
    if (text[offset++] == '\n') ++line;
  }
  return offset + position.column - 1;
}

// Every value's position is the first byte of that value.
void CheckPositions(absl::string_view text, const PositionedJson& doc,
                    const nlohmann::ordered_json& value,
                    const std::string& pointer) {
  const size_t offset = OffsetOf(text, doc.ValueAt(pointer));
  Check(offset < text.size(), "value position inside the text");
  const char c = text[offset];
  switch (value.type()) {
    case nlohmann::ordered_json::value_t::object:
      Check(c == '{', "object starts with '{'");
      for (const auto& [name, member] : value.items()) {
        const std::string member_pointer =
            PositionedJson::Pointer(pointer, name);
        const size_t name_offset = OffsetOf(text, doc.NameAt(member_pointer));
        Check(name_offset > offset && name_offset < text.size() &&
                  text[name_offset] == '"',
              "member name starts with '\"'");
        CheckPositions(text, doc, member, member_pointer);
      }
      break;
    case nlohmann::ordered_json::value_t::array:
      Check(c == '[', "array starts with '['");
      for (size_t i = 0; i < value.size(); ++i) {
        CheckPositions(text, doc, value[i],
                       PositionedJson::Pointer(pointer, i));
      }
      break;
    case nlohmann::ordered_json::value_t::string:
      Check(c == '"', "string starts with '\"'");
      break;
    case nlohmann::ordered_json::value_t::boolean:
      Check(c == 't' || c == 'f', "boolean starts with t or f");
      break;
    case nlohmann::ordered_json::value_t::null:
      Check(c == 'n', "null starts with n");
      break;
    default:
      Check(c == '-' || (c >= '0' && c <= '9'),
            "number starts with - or a digit");
      break;
  }
}

void FuzzIdentitiesFile(absl::string_view text) {
  absl::StatusOr<PositionedJson> doc = PositionedJson::Parse(text);
  if (doc.ok()) CheckPositions(text, *doc, doc->root(), "");

  absl::StatusOr<std::shared_ptr<const IdentityRegistry>> registry =
      IdentityRegistry::Parse(text);
  if (!registry.ok()) {
    Check(registry.status().code() == absl::StatusCode::kInvalidArgument,
          "a bad file is InvalidArgument");
    const std::vector<absl::string_view> parts =
        absl::StrSplit(registry.status().message(), absl::MaxSplits(':', 2));
    size_t line = 0, column = 0;
    Check(parts.size() == 3 && absl::SimpleAtoi(parts[0], &line) &&
              absl::SimpleAtoi(parts[1], &column) && line >= 1 && column >= 1,
          "error starts with LINE:COL:");
    Check(OffsetOf(text, TextPosition{line, column}) <= text.size(),
          "error position inside the text (or just past it)");
    return;
  }
  const std::string json = (*registry)->ToJson();
  absl::StatusOr<std::shared_ptr<const IdentityRegistry>> again =
      IdentityRegistry::Parse(json);
  Check(again.ok(), "ToJson parses back");
  Check((*again)->ToJson() == json, "ToJson is stable");
  Check((*again)->entries().size() == (*registry)->entries().size(),
        "same entries");
}

const IdentityRegistry& FixedRegistry() {
  static const std::shared_ptr<const IdentityRegistry> registry = [] {
    IdentityEntry module;
    module.identity = {"dev", "mod"};
    module.primary_key = Base64Encode(std::string(32, 'p'));
    module.secondary_key = Base64Encode(std::string(32, 's'));
    IdentityEntry device;
    device.identity = {"dev", ""};
    device.primary_key = Base64Encode(std::string(16, 'd'));
    IdentityEntry thumbprint;
    thumbprint.identity = {"x", ""};
    thumbprint.x509_thumbprint = std::string(64, 'a');
    IdentityEntry ca;
    ca.identity = {"y", ""};
    ca.x509_ca = true;
    auto created =
        IdentityRegistry::Create("h.example", {module, device, thumbprint, ca});
    Check(created.ok(), "the fixed registry is valid");
    return *created;
  }();
  return *registry;
}

// `token` with the value of its first sig field changed so that every
// parsing decision stays the same: letters rotated within their case, digits
// within the digits, %XX escapes and other bytes kept. nullopt without a sig
// field.
std::optional<std::string> WithOtherSignature(absl::string_view token) {
  constexpr absl::string_view kPrefix = "SharedAccessSignature ";
  if (!absl::StartsWith(token, kPrefix)) return std::nullopt;
  std::string out(token);
  size_t at = kPrefix.size();
  while (at <= out.size()) {
    size_t end = out.find('&', at);
    if (end == std::string::npos) end = out.size();
    const size_t eq = out.find('=', at);
    if (eq != std::string::npos && eq < end &&
        absl::EqualsIgnoreCase(absl::string_view(out).substr(at, eq - at),
                               "sig")) {
      for (size_t i = eq + 1; i < end; ++i) {
        char& c = out[i];
        if (c == '%') {
          i += 2;  // keep the escape
        } else if (c >= 'a' && c <= 'z') {
          c = static_cast<char>('a' + (c - 'a' + 7) % 26);
        } else if (c >= 'A' && c <= 'Z') {
          c = static_cast<char>('A' + (c - 'A' + 7) % 26);
        } else if (c >= '0' && c <= '9') {
          c = static_cast<char>('0' + (c - '0' + 3) % 10);
        }
      }
      return out;
    }
    at = end + 1;
  }
  return std::nullopt;
}

// Whether `token` parses and is signed with one of FixedRegistry's keys.
bool SignedWithAFixedKey(absl::string_view token) {
  absl::StatusOr<SasToken> parsed = ParseSasToken(token);
  if (!parsed.ok()) return false;
  for (char key : {'p', 's'}) {
    if (SasSignatureMatches(*parsed, Base64Encode(std::string(32, key)))) {
      return true;
    }
  }
  return SasSignatureMatches(*parsed, Base64Encode(std::string(16, 'd')));
}

void FuzzCredentials(absl::string_view input) {
  const std::vector<absl::string_view> parts =
      absl::StrSplit(input, absl::MaxSplits('\n', 2));
  Credentials credentials;
  credentials.client_id = parts[0];
  credentials.username = parts.size() > 1 ? parts[1] : absl::string_view();
  if (parts.size() > 2) credentials.password = std::string(parts[2]);
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<Identity> identity =
      FixedRegistry().Authenticate(credentials, now);
  const absl::StatusCode code = identity.status().code();
  Check(code == absl::StatusCode::kOk ||
            code == absl::StatusCode::kUnauthenticated ||
            code == absl::StatusCode::kPermissionDenied,
        "Authenticate answers OK, Unauthenticated or PermissionDenied");
  // A refused token's signature does not show in the answer: with another
  // signature of the same shape the answer is the same. (Comparing answers
  // rather than searching them for the signature's text: messages may quote
  // the client id, the user name and the resource, which can contain it.)
  // (A correctly signed token may be refused later, as expired: not this.)
  if (!identity.ok() && credentials.password.has_value() &&
      !SignedWithAFixedKey(*credentials.password)) {
    const std::optional<std::string> other =
        WithOtherSignature(*credentials.password);
    if (other.has_value() && *other != *credentials.password) {
      Credentials changed = credentials;
      changed.password = *other;
      Check(FixedRegistry().Authenticate(changed, now).status() ==
                identity.status(),
            "a refused token's signature does not show in the answer");
    }
  }
  if (credentials.password.has_value()) {
    absl::StatusOr<SasToken> token = ParseSasToken(*credentials.password);
    if (token.ok()) {
      Check(token->signature.size() == kSignatureBytes, "32-byte signature");
      // A token re-signed with the module's key verifies.
      const std::string key = Base64Encode(std::string(32, 'p'));
      const std::string resigned =
          MakeSasToken(token->resource, key,
                       absl::FromUnixSeconds(token->expiry_unix_seconds));
      absl::StatusOr<SasToken> parsed = ParseSasToken(resigned);
      Check(parsed.ok() && SasSignatureMatches(*parsed, key),
            "MakeSasToken's tokens parse and verify");
    }
  }
  const std::optional<std::string> decoded = UrlDecode(input);
  if (decoded.has_value()) {
    Check(UrlDecode(UrlEncode(*decoded)) == decoded,
          "URL encoding round-trips");
  }
  const std::optional<std::string> bytes = Base64Decode(input);
  if (bytes.has_value()) {
    Check(Base64Decode(Base64Encode(*bytes)) == bytes, "base64 round-trips");
  }
}

}  // namespace
}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view input(reinterpret_cast<const char*>(data) + 1,
                                size - 1);
  if (data[0] % 2 == 0) {
    edgeroute::gateway::auth::FuzzIdentitiesFile(input);
  } else {
    edgeroute::gateway::auth::FuzzCredentials(input);
  }
  return 0;
}
