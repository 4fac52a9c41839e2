#include "gateway/net/tls.h"

#include <malloc.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

// The sanitizers replace malloc; heap statistics mean nothing under them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EDGEROUTE_TLS_TEST_SANITIZED 1
#else
#define EDGEROUTE_TLS_TEST_SANITIZED 0
#endif

namespace edgeroute {
namespace gateway {
namespace {

std::string TestDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string Path(absl::string_view name) {
  return absl::StrCat(TestDir(), "/", name);
}

// Certificates made with the `openssl` program when the tests start (RSA
// here; the event loop's tests use ECDSA ones made with the library): a CA,
// a server certificate, a client certificate with CN "sensor-7", a client
// certificate from a CA the server does not trust, a key that matches no
// certificate here, and an encrypted copy of the server key.
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string d = TestDir();
    const std::string script = absl::StrCat(
        "set -e; cd '", d, "';",
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=test CA'"
        " -keyout ca.key -out ca.pem 2>/dev/null;",
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=test CA'"
        " -keyout rogue-ca.key -out rogue-ca.pem 2>/dev/null;",
        "for n in server client rogue; do",
        "  openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr",
        "    -subj \"/O=edgeroute/CN=$([ $n = server ] && echo localhost ||"
        " echo sensor-7)\" 2>/dev/null;",
        "done;",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key"
        " -CAcreateserial -days 2 -out server.pem 2>/dev/null;",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key"
        " -CAcreateserial -days 2 -out client.pem 2>/dev/null;",
        "openssl x509 -req -in rogue.csr -CA rogue-ca.pem -CAkey rogue-ca.key"
        " -CAcreateserial -days 2 -out rogue.pem 2>/dev/null;",
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
        " -out other.key 2>/dev/null;",
        "openssl pkey -in server.key -aes256 -passout pass:secret"
        " -out encrypted.key;",
        "openssl x509 -in client.pem -outform DER |"
        " openssl dgst -sha256 -r | cut -d' ' -f1 > client.sha256");
    ASSERT_EQ(std::system(script.c_str()), 0) << script;
    FILE* f = fopen(Path("client.sha256").c_str(), "r");
    ASSERT_NE(f, nullptr);
    char hex[65] = {};
    ASSERT_EQ(fread(hex, 1, 64, f), 64u);
    fclose(f);
    client_sha256_ = new std::string(hex);
  }

  static TlsServerOptions Options(bool with_ca = true) {
    TlsServerOptions o;
    o.cert_chain_pem_path = Path("server.pem");
    o.private_key_pem_path = Path("server.key");
    if (with_ca) o.client_ca_pem_path = Path("ca.pem");
    return o;
  }

  static std::string* client_sha256_;
};

std::string* TlsTest::client_sha256_ = nullptr;

// An OpenSSL client and a TlsConnection joined by moving bytes in memory.
class Pair {
 public:
  Pair(std::shared_ptr<TlsServerContext> context, int version,
       const std::string& cert = "", const std::string& key = "") {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(ctx_, 0);  // lets the TLS 1.1 test offer it
    SSL_CTX_set_min_proto_version(ctx_, version);
    SSL_CTX_set_max_proto_version(ctx_, version);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    EXPECT_EQ(
        SSL_CTX_load_verify_locations(ctx_, Path("ca.pem").c_str(), nullptr),
        1);
    if (!cert.empty()) {
      EXPECT_EQ(
          SSL_CTX_use_certificate_file(ctx_, cert.c_str(), SSL_FILETYPE_PEM),
          1);
      EXPECT_EQ(
          SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM), 1);
    }
    client_ = SSL_new(ctx_);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(client_, in_, out_);
    SSL_set_connect_state(client_);
    SSL_set1_host(client_, "localhost");
    server_ = TlsConnection::Create(std::move(context));
  }
  ~Pair() {
    SSL_free(client_);
    SSL_CTX_free(ctx_);
  }

  // Moves bytes until neither side has anything more to say.
  void Run() {
    for (int i = 0; i < 1000 && Step(); ++i) {
    }
  }

  // The client sends `text` (after Run has finished the handshake).
  void ClientWrite(absl::string_view text) {
    ASSERT_EQ(SSL_write(client_, text.data(), static_cast<int>(text.size())),
              static_cast<int>(text.size()));
  }
  void ClientShutdown() { SSL_shutdown(client_); }
  void ServerWrite(absl::string_view text) {
    ASSERT_TRUE(server_->Write(text)) << server_->error();
  }

  // Feeds raw bytes to the server, as if from the socket.
  void FeedRaw(absl::string_view bytes) {
    ASSERT_TRUE(server_->Feed(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())));
    Drain();
  }

  TlsConnection& server() { return *server_; }
  std::unique_ptr<TlsConnection> ReleaseServer() { return std::move(server_); }
  bool client_done() { return SSL_is_init_finished(client_); }
  TlsConnection::ReadResult last() const { return last_; }
  std::string server_plain;
  std::string client_plain;

 private:
  bool Step() {
    bool moved = false;
    if (!SSL_is_init_finished(client_)) SSL_do_handshake(client_);
    char buf[16384];
    // Client -> server.
    while (true) {
      const int n = BIO_read(out_, buf, sizeof(buf));
      if (n <= 0) break;
      moved = true;
      server_->Feed(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(buf),
                                        static_cast<size_t>(n)));
    }
    Drain();
    // Server -> client.
    std::string wire;
    server_->TakeCiphertext(&wire);
    if (!wire.empty()) {
      moved = true;
      BIO_write(in_, wire.data(), static_cast<int>(wire.size()));
    }
    while (true) {
      const int n = SSL_read(client_, buf, sizeof(buf));
      if (n <= 0) break;
      moved = true;
      client_plain.append(buf, static_cast<size_t>(n));
    }
    ERR_clear_error();
    return moved;
  }

  void Drain() {
    uint8_t plain[4096];
    size_t n = 0;
    while ((last_ = server_->Read(absl::MakeSpan(plain), &n)) ==
           TlsConnection::ReadResult::kData) {
      server_plain.append(reinterpret_cast<char*>(plain), n);
    }
  }

  SSL_CTX* ctx_ = nullptr;
  SSL* client_ = nullptr;
  BIO* in_ = nullptr;   // the client reads from it
  BIO* out_ = nullptr;  // the client writes to it
  std::unique_ptr<TlsConnection> server_;
  TlsConnection::ReadResult last_ = TlsConnection::ReadResult::kWantInput;
};

TEST_F(TlsTest, CreateExplainsBadFiles) {
  TlsServerOptions o = Options();
  o.cert_chain_pem_path = Path("missing.pem");
  absl::Status s = TlsServerContext::Create(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "missing.pem")) << s;

  o = Options();
  o.private_key_pem_path = Path("other.key");
  s = TlsServerContext::Create(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "does not belong")) << s;

  // An encrypted key is refused, without prompting for a pass phrase.
  o = Options();
  o.private_key_pem_path = Path("encrypted.key");
  s = TlsServerContext::Create(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "encrypted.key")) << s;

  o = Options();
  o.client_ca_pem_path = Path("server.key");  // not certificates
  s = TlsServerContext::Create(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "client CA")) << s;

  EXPECT_FALSE(TlsServerContext::Create(TlsServerOptions{}).ok());

  auto ok = TlsServerContext::Create(Options());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE((*ok)->requests_client_certs());
  EXPECT_TRUE((*ok)->verifies_client_certs());
  auto no_ca = TlsServerContext::Create(Options(/*with_ca=*/false));
  ASSERT_TRUE(no_ca.ok()) << no_ca.status();
  EXPECT_FALSE((*no_ca)->requests_client_certs());
}

TEST_F(TlsTest, HandshakeAndRecordsBothVersions) {
  auto context = TlsServerContext::Create(Options());
  ASSERT_TRUE(context.ok()) << context.status();
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    Pair pair(*context, version, Path("client.pem"), Path("client.key"));
    pair.Run();
    ASSERT_TRUE(pair.client_done());
    ASSERT_TRUE(pair.server().handshake_done());
    const TlsPeerDetails details = pair.server().PeerDetails();
    EXPECT_EQ(details.version,
              version == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3");
    EXPECT_TRUE(details.client_cert_verified);
    EXPECT_EQ(details.client_cert_sha256_hex, *client_sha256_);
    EXPECT_EQ(details.client_cert_subject_cn, "sensor-7");

    pair.ClientWrite("ping");
    pair.Run();
    EXPECT_EQ(pair.server_plain, "ping");
    pair.ServerWrite("pong");
    pair.Run();
    EXPECT_EQ(pair.client_plain, "pong");
  }
  EXPECT_EQ((*context)->stats().handshakes_completed, 2u);
  EXPECT_EQ((*context)->stats().handshakes_failed, 0u);
}

TEST_F(TlsTest, ClientWithoutCertificate) {
  auto context = TlsServerContext::Create(Options());
  ASSERT_TRUE(context.ok());
  Pair pair(*context, TLS1_3_VERSION);
  pair.Run();
  ASSERT_TRUE(pair.server().handshake_done());
  const TlsPeerDetails details = pair.server().PeerDetails();
  EXPECT_FALSE(details.client_cert_verified);
  EXPECT_EQ(details.client_cert_sha256_hex, "");
  EXPECT_EQ(details.client_cert_subject_cn, "");
}

TEST_F(TlsTest, WithoutCaBundleNoCertificateIsAskedFor) {
  auto context = TlsServerContext::Create(Options(/*with_ca=*/false));
  ASSERT_TRUE(context.ok());
  Pair pair(*context, TLS1_3_VERSION, Path("client.pem"), Path("client.key"));
  pair.Run();
  ASSERT_TRUE(pair.server().handshake_done());
  EXPECT_EQ(pair.server().PeerDetails().client_cert_sha256_hex, "");
}

TEST_F(TlsTest, UntrustedCertificateFailsTheHandshake) {
  auto context = TlsServerContext::Create(Options());
  ASSERT_TRUE(context.ok());
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    Pair pair(*context, version, Path("rogue.pem"), Path("rogue.key"));
    pair.Run();
    EXPECT_FALSE(pair.server().handshake_done());
    EXPECT_EQ(pair.last(), TlsConnection::ReadResult::kFailed);
    EXPECT_TRUE(absl::StrContains(pair.server().error(), "certificate"))
        << pair.server().error();
    EXPECT_TRUE(pair.server().should_log_failure());
  }
  EXPECT_EQ((*context)->stats().handshakes_failed, 2u);
}

TEST_F(TlsTest, UnverifiedCertificateAdmittedOnRequest) {
  TlsServerOptions o = Options();
  o.admit_unverified_client_certs = true;
  auto context = TlsServerContext::Create(o);
  ASSERT_TRUE(context.ok());
  Pair pair(*context, TLS1_2_VERSION, Path("rogue.pem"), Path("rogue.key"));
  pair.Run();
  ASSERT_TRUE(pair.server().handshake_done());
  const TlsPeerDetails details = pair.server().PeerDetails();
  EXPECT_FALSE(details.client_cert_verified);
  EXPECT_EQ(details.client_cert_sha256_hex.size(), 64u);
  EXPECT_EQ(details.client_cert_subject_cn, "sensor-7");
}

TEST_F(TlsTest, OldProtocolVersionIsRefused) {
  auto context = TlsServerContext::Create(Options());
  ASSERT_TRUE(context.ok());
  Pair pair(*context, TLS1_1_VERSION);
  pair.Run();
  EXPECT_FALSE(pair.server().handshake_done());
  EXPECT_EQ(pair.last(), TlsConnection::ReadResult::kFailed);
  EXPECT_EQ((*context)->stats().handshakes_failed, 1u);
}

TEST_F(TlsTest, GarbageFailsAndSaysWhy) {
  auto context = TlsServerContext::Create(Options());
  ASSERT_TRUE(context.ok());
  Pair pair(*context, TLS1_3_VERSION);
  pair.FeedRaw("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(pair.last(), TlsConnection::ReadResult::kFailed);
  EXPECT_FALSE(pair.server().error().empty());
  // Final: no second count, no second try.
  pair.FeedRaw("more");
  EXPECT_EQ(pair.last(), TlsConnection::ReadResult::kFailed);
  EXPECT_EQ((*context)->stats().handshakes_failed, 1u);
}

// A ClientHello that announces 16 MiB fails as soon as its header is read:
// a connection that has not finished its handshake holds bounded memory.
TEST_F(TlsTest, OversizedHandshakeMessageFailsAtOnce) {
  auto context = TlsServerContext::Create(Options());
  ASSERT_TRUE(context.ok());
  Pair pair(*context, TLS1_3_VERSION);
  // Record: handshake, TLS 1.0, 16384 bytes; message: ClientHello, 0xffffff.
  std::string record("\x16\x03\x01\x40\x00\x01\xff\xff\xff", 9);
  record.append(16384 - 4, '\0');
  pair.FeedRaw(record);
  EXPECT_EQ(pair.last(), TlsConnection::ReadResult::kFailed);
  EXPECT_TRUE(absl::StrContains(pair.server().error(), "excessive"))
      << pair.server().error();
}

TEST_F(TlsTest, CloseNotifyEndsTheStream) {
  auto context = TlsServerContext::Create(Options());
  ASSERT_TRUE(context.ok());
  Pair pair(*context, TLS1_3_VERSION);
  pair.Run();
  ASSERT_TRUE(pair.server().handshake_done());
  pair.ClientShutdown();
  pair.Run();
  EXPECT_EQ(pair.last(), TlsConnection::ReadResult::kClosed);
  // And the server's own close_notify reaches the client.
  pair.server().Shutdown();
  EXPECT_GT(pair.server().PendingCiphertext(), 0u);
}

TEST_F(TlsTest, LargeTransfersBothWays) {
  auto context = TlsServerContext::Create(Options());
  ASSERT_TRUE(context.ok());
  Pair pair(*context, TLS1_3_VERSION, Path("client.pem"), Path("client.key"));
  pair.Run();
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>(i);
  pair.ServerWrite(big);
  pair.Run();
  EXPECT_TRUE(pair.client_plain == big);
  for (size_t at = 0; at < big.size(); at += 100000) {
    pair.ClientWrite(absl::string_view(big).substr(at, 100000));
    pair.Run();
  }
  EXPECT_TRUE(pair.server_plain == big);
}

// Heap bytes a TlsConnection keeps once idle after a handshake and traffic
// both ways: the SSL object and its session, no record buffers and no BIO
// buffers beyond a small size. The clients are freed before measuring.
TEST_F(TlsTest, IdleConnectionHoldsLittleMemory) {
  if (EDGEROUTE_TLS_TEST_SANITIZED) GTEST_SKIP() << "heap replaced";
  auto context = TlsServerContext::Create(Options());
  ASSERT_TRUE(context.ok());
  constexpr int kConnections = 200;
  const std::string data(64 << 10, 'd');
  size_t before = 0;
  std::vector<std::unique_ptr<TlsConnection>> idle;
  idle.reserve(kConnections + 1);
  // The first connection also fills OpenSSL's process-wide caches (fetched
  // algorithms, error strings); measure the ones after it.
  for (int i = 0; i <= kConnections; ++i) {
    if (i == 1) {
      malloc_trim(0);
      before = mallinfo2().uordblks;
    }
    auto pair = std::make_unique<Pair>(*context, TLS1_3_VERSION,
                                       Path("client.pem"), Path("client.key"));
    pair->Run();
    ASSERT_TRUE(pair->server().handshake_done());
    pair->ClientWrite(data);
    pair->ServerWrite(data);
    pair->Run();
    ASSERT_EQ(pair->server_plain.size(), data.size());
    idle.push_back(pair->ReleaseServer());  // the server side only
  }
  const size_t after = mallinfo2().uordblks;
  const size_t per_connection = (after - before) / kConnections;
  std::printf("heap bytes per idle TLS 1.3 connection (client cert): %zu\n",
              per_connection);
  // Measured: ~23 KiB with a client certificate and its CA sent along,
  // ~15 KiB without one; record and BIO buffers kept would add 34+ KiB.
  EXPECT_LT(per_connection, 32u << 10);
}

}  // namespace
}  // namespace gateway
}  // namespace edgeroute
