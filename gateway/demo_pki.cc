#include "gateway/demo_pki.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"

namespace edgeroute {
namespace gateway {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <typename T>
using Owned = std::unique_ptr<T, Free>;

absl::Status OpenSslError(absl::string_view what) {
  char buf[256] = "unknown error";
  const unsigned long code = ERR_get_error();
  if (code != 0) ERR_error_string_n(code, buf, sizeof buf);
  ERR_clear_error();
  return absl::InternalError(absl::StrCat(what, ": ", buf));
}

absl::StatusOr<std::string> ToPem(X509* cert, EVP_PKEY* key) {
  Owned<BIO> bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr) return OpenSslError("BIO_new");
  const int ok = cert != nullptr
                     ? PEM_write_bio_X509(bio.get(), cert)
                     : PEM_write_bio_PrivateKey(bio.get(), key, nullptr,
                                                nullptr, 0, nullptr, nullptr);
  if (ok != 1) return OpenSslError("PEM_write_bio");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid,
                          const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Owned<X509_EXTENSION> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(absl::StrCat("certificate extension ", value));
  }
  return absl::OkStatus();
}

// An unsigned certificate for `key` named `common_name`, issued by
// `issuer` (by itself when null), valid from an hour ago for `days`.
absl::StatusOr<Owned<X509>> NewCertificate(EVP_PKEY* key,
                                           absl::string_view common_name,
                                           X509* issuer, int days) {
  Owned<X509> cert(X509_new());
  if (cert == nullptr) return OpenSslError("X509_new");
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return OpenSslError("RAND_bytes");
  serial[0] &= 0x7F;  // a positive serial number
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  const bool serial_ok =
      bn != nullptr &&
      BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(bn);
  if (!serial_ok) return OpenSslError("serial number");
  const std::string cn(common_name);
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_set_version(cert.get(), 2) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * days) ==
          nullptr ||
      X509_set_pubkey(cert.get(), key) != 1 ||
      X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), issuer != nullptr
                                           ? X509_get_subject_name(issuer)
                                           : name) != 1) {
    return OpenSslError("certificate fields");
  }
  return cert;
}

using Extensions = std::vector<std::pair<int, std::string>>;

// Adds `extensions` (issued by `issuer`) to `cert`, signs it with
// `issuer_key` and returns it with `key` as PEM.
absl::StatusOr<PemPair> SignAndExport(X509* cert, X509* issuer,
                                      EVP_PKEY* issuer_key, EVP_PKEY* key,
                                      const Extensions& extensions) {
  for (const auto& [nid, value] : extensions) {
    EDGEROUTE_RETURN_IF_ERROR(AddExtension(cert, issuer, nid, value));
  }
  if (X509_sign(cert, issuer_key, EVP_sha256()) == 0) {
    return OpenSslError("X509_sign");
  }
  PemPair out;
  EDGEROUTE_ASSIGN_OR_RETURN(out.cert_pem, ToPem(cert, nullptr));
  EDGEROUTE_ASSIGN_OR_RETURN(out.key_pem, ToPem(nullptr, key));
  return out;
}

absl::StatusOr<Owned<EVP_PKEY>> NewKey() {
  Owned<EVP_PKEY> key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError("EVP_EC_gen");
  return key;
}

}  // namespace

absl::StatusOr<PemPair> MakeCertificateAuthority(absl::string_view common_name,
                                                 int days) {
  EDGEROUTE_ASSIGN_OR_RETURN(Owned<EVP_PKEY> key, NewKey());
  EDGEROUTE_ASSIGN_OR_RETURN(
      Owned<X509> cert, NewCertificate(key.get(), common_name, nullptr, days));
  return SignAndExport(cert.get(), cert.get(), key.get(), key.get(),
                       {{NID_basic_constraints, "critical,CA:TRUE"},
                        {NID_key_usage, "critical,keyCertSign,cRLSign"},
                        {NID_subject_key_identifier, "hash"}});
}

absl::StatusOr<PemPair> MakeSignedCertificate(
    const PemPair& ca, absl::string_view common_name,
    const std::vector<std::string>& dns_names,
    const std::vector<std::string>& ip_addresses, int days) {
  Owned<BIO> ca_cert_bio(BIO_new_mem_buf(ca.cert_pem.data(),
                                         static_cast<int>(ca.cert_pem.size())));
  Owned<BIO> ca_key_bio(
      BIO_new_mem_buf(ca.key_pem.data(), static_cast<int>(ca.key_pem.size())));
  if (ca_cert_bio == nullptr || ca_key_bio == nullptr) {
    return OpenSslError("BIO_new_mem_buf");
  }
  Owned<X509> ca_cert(
      PEM_read_bio_X509(ca_cert_bio.get(), nullptr, nullptr, nullptr));
  Owned<EVP_PKEY> ca_key(
      PEM_read_bio_PrivateKey(ca_key_bio.get(), nullptr, nullptr, nullptr));
  if (ca_cert == nullptr || ca_key == nullptr) {
    return OpenSslError("reading the CA certificate and key");
  }
  EDGEROUTE_ASSIGN_OR_RETURN(Owned<EVP_PKEY> key, NewKey());
  EDGEROUTE_ASSIGN_OR_RETURN(
      Owned<X509> cert,
      NewCertificate(key.get(), common_name, ca_cert.get(), days));
  std::vector<std::string> names;
  for (const std::string& d : dns_names) names.push_back("DNS:" + d);
  for (const std::string& ip : ip_addresses) names.push_back("IP:" + ip);
  Extensions extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
      {NID_ext_key_usage, "serverAuth,clientAuth"},
      {NID_authority_key_identifier, "keyid"}};
  if (!names.empty()) {
    extensions.push_back({NID_subject_alt_name, absl::StrJoin(names, ",")});
  }
  return SignAndExport(cert.get(), ca_cert.get(), ca_key.get(), key.get(),
                       extensions);
}

}  // namespace gateway
}  // namespace edgeroute
