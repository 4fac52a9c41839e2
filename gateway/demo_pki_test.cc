#include "gateway/demo_pki.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <string>

#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace {

X509* ReadCert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return cert;
}

// OpenSSL's own verifier accepts the chain, for the names given, and only
// with the CA that signed it.
TEST(DemoPkiTest, ServerCertificateVerifiesAgainstItsCa) {
  auto ca = MakeCertificateAuthority("edgeroute test CA", 2);
  ASSERT_TRUE(ca.ok()) << ca.status();
  auto other_ca = MakeCertificateAuthority("another CA", 2);
  ASSERT_TRUE(other_ca.ok()) << other_ca.status();
  auto server =
      MakeSignedCertificate(*ca, "gateway", {"localhost"}, {"127.0.0.1"}, 2);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_NE(server->key_pem.find("PRIVATE KEY"), std::string::npos);

  for (const auto& [trusted, expect_ok] :
       {std::pair<const PemPair*, bool>{&*ca, true}, {&*other_ca, false}}) {
    X509* ca_cert = ReadCert(trusted->cert_pem);
    X509* leaf = ReadCert(server->cert_pem);
    ASSERT_NE(ca_cert, nullptr);
    ASSERT_NE(leaf, nullptr);
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, ca_cert);
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, nullptr);
    X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), "localhost", 0);
    EXPECT_EQ(X509_verify_cert(ctx) == 1, expect_ok)
        << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
    EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
    EXPECT_NE(X509_check_host(leaf, "example.com", 0, 0, nullptr), 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(leaf);
    X509_free(ca_cert);
  }
}

}  // namespace
}  // namespace gateway
}  // namespace edgeroute
