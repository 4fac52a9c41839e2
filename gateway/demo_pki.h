// Throw-away TLS material for the demo and for tests: a certificate
// authority and certificates it signs (ECDSA P-256, SHA-256), made with
// OpenSSL at run time so that no key is ever stored in the repository.
//
// Not for production: real deployments bring their own CA (see
// gateway/auth/README.md for the openssl commands).
//
// Thread-safety: pure functions.

#ifndef EDGEROUTE_GATEWAY_DEMO_PKI_H_
#define EDGEROUTE_GATEWAY_DEMO_PKI_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgeroute {
namespace gateway {

// A certificate and its private key, PEM-encoded.
struct PemPair {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed CA certificate (CN `common_name`), valid for `days`.
absl::StatusOr<PemPair> MakeCertificateAuthority(absl::string_view common_name,
                                                 int days);

// A leaf certificate signed by `ca`, with subject CN `common_name` and the
// subject alternative names `dns_names` / `ip_addresses` (server
// certificates; may be empty for client certificates).
absl::StatusOr<PemPair> MakeSignedCertificate(
    const PemPair& ca, absl::string_view common_name,
    const std::vector<std::string>& dns_names,
    const std::vector<std::string>& ip_addresses, int days);

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_DEMO_PKI_H_
