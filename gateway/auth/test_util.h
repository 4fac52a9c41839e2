// Test helpers: SAS tokens and HMACs computed outside this package, by
// python3's standard library (hmac, hashlib, base64, urllib.parse) and by the
// openssl command line, so that tests compare against an independent
// implementation.

#ifndef EDGEROUTE_GATEWAY_AUTH_TEST_UTIL_H_
#define EDGEROUTE_GATEWAY_AUTH_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace edgeroute {
namespace gateway {
namespace auth {
namespace testing {

// Runs `argv` (argv[0] looked up on PATH) with `input` on its stdin; returns
// true when it exits with 0, with its stdout in *out.
bool RunProgram(const std::vector<std::string>& argv, absl::string_view input,
                std::string* out);

// A SAS token made by python3: sr = quote(resource, safe=''), sig =
// quote(base64(HMAC-SHA256(b64decode(key), sr + "\n" + se)), safe=''), the
// fields joined in `order` (a comma-separated list of sr, sig, se, skn; skn
// gets `key_name`). Empty on failure.
std::string PythonSasToken(absl::string_view resource,
                           absl::string_view base64_key, int64_t expiry,
                           absl::string_view order = "sr,sig,se",
                           absl::string_view key_name = "");

// base64(HMAC-SHA256) of `text` with the key given as hex, by
// `openssl dgst -sha256 -mac HMAC -macopt hexkey:...` and `openssl base64`.
// Empty on failure.
std::string OpenSslHmacBase64(absl::string_view key_hex,
                              absl::string_view text);
// base64 of the bytes given as hex, by `openssl base64 -A`.
std::string OpenSslBase64(absl::string_view hex);

}  // namespace testing
}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_AUTH_TEST_UTIL_H_
