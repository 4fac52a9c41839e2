#include "gateway/net/tls.h"

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace edgeroute {
namespace gateway {
namespace {

// Largest client certificate chain accepted (OpenSSL's default is 100 KiB):
// bounds what a client can make a connection hold during its handshake.
constexpr long kMaxClientCertChainBytes = 32 << 10;

// A drained memory BIO keeps its buffer up to this size; a larger one is
// replaced by a fresh BIO, so that an idle connection holds no high-water
// buffers.
constexpr size_t kKeepBioBytes = 1024;

// The reasons on OpenSSL's error queue ("; "-separated, at most three),
// then clears it. Reason strings name what went wrong, never key material.
std::string TakeOpenSslErrors() {
  std::string text;
  int taken = 0;
  while (const unsigned long code = ERR_get_error()) {
    if (taken++ >= 3) continue;  // still drain the queue
    const char* reason = ERR_reason_error_string(code);
    if (!text.empty()) text += "; ";
    if (reason != nullptr) {
      text += reason;
    } else {
      char buf[256];
      ERR_error_string_n(code, buf, sizeof(buf));
      text += buf;
    }
  }
  ERR_clear_error();
  return text;
}

absl::Status FileError(absl::string_view what, absl::string_view path) {
  std::string reason = TakeOpenSslErrors();
  if (reason.empty()) reason = "unreadable";
  return absl::InvalidArgumentError(
      absl::StrCat(what, " '", path, "': ", reason));
}

// Refuses to prompt for a pass phrase: the gateway runs unattended.
int NoPassPhrase(char*, int, int, void*) { return -1; }

// Marks an SSL whose client certificate failed a check (as its "app data")
// for PeerDetails, when the context admits unverified certificates.
char verify_failed_tag;

// Verification callback of contexts that admit unverified certificates:
// notes a failed check and carries on.
int AdmitUnverifiedClientCert(int preverify_ok, X509_STORE_CTX* store) {
  if (!preverify_ok) {
    SSL* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(
        store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    if (ssl != nullptr) SSL_set_app_data(ssl, &verify_failed_tag);
  }
  return 1;
}

BIO* NewMemoryBio(bool read_side) {
  BIO* bio = BIO_new(BIO_s_mem());
  // An empty read BIO means "more to come", not end of stream.
  if (bio != nullptr && read_side) BIO_set_mem_eof_return(bio, -1);
  return bio;
}

}  // namespace

// ---------------------------------------------------------------------------
// TlsServerContext

absl::StatusOr<std::shared_ptr<TlsServerContext>> TlsServerContext::Create(
    const TlsServerOptions& options) {
  if (options.cert_chain_pem_path.empty()) {
    return absl::InvalidArgumentError("TLS needs a certificate chain file");
  }
  if (options.private_key_pem_path.empty()) {
    return absl::InvalidArgumentError("TLS needs a private key file");
  }
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    return absl::InternalError(
        absl::StrCat("SSL_CTX_new: ", TakeOpenSslErrors()));
  }
  // Owns ctx until it is handed to the context object.
  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> owner(ctx, SSL_CTX_free);

  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  // Client-initiated renegotiation costs the server a handshake at the
  // client's whim; nothing here needs it.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
  // Free the record buffers (~34 KiB) while a connection is idle.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // Resumption by stateless tickets only: a server-side session cache would
  // hold memory for every client that ever connected.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  static const unsigned char kSessionContext[] = "edgeroute";
  SSL_CTX_set_session_id_context(ctx, kSessionContext,
                                 sizeof(kSessionContext) - 1);
  SSL_CTX_set_max_cert_list(ctx, kMaxClientCertChainBytes);
  SSL_CTX_set_default_passwd_cb(ctx, NoPassPhrase);

  if (SSL_CTX_use_certificate_chain_file(
          ctx, options.cert_chain_pem_path.c_str()) != 1) {
    return FileError("TLS certificate chain", options.cert_chain_pem_path);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, options.private_key_pem_path.c_str(),
                                  SSL_FILETYPE_PEM) != 1) {
    return FileError("TLS private key (PEM, not encrypted)",
                     options.private_key_pem_path);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    TakeOpenSslErrors();
    return absl::InvalidArgumentError(
        absl::StrCat("TLS private key '", options.private_key_pem_path,
                     "' does not belong to the certificate in '",
                     options.cert_chain_pem_path, "'"));
  }

  const bool verifies = !options.client_ca_pem_path.empty();
  const bool requests = verifies || options.admit_unverified_client_certs;
  if (verifies) {
    if (SSL_CTX_load_verify_locations(ctx, options.client_ca_pem_path.c_str(),
                                      nullptr) != 1) {
      return FileError("TLS client CA bundle", options.client_ca_pem_path);
    }
    // Tells clients which CAs are accepted, so that one holding several
    // certificates picks the right one.
    STACK_OF(X509_NAME)* names =
        SSL_load_client_CA_file(options.client_ca_pem_path.c_str());
    if (names == nullptr) {
      return FileError("TLS client CA bundle", options.client_ca_pem_path);
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify_depth(ctx, 8);
  }
  if (requests) {
    // No SSL_VERIFY_FAIL_IF_NO_PEER_CERT: clients without a certificate
    // connect and authenticate otherwise (SAS tokens).
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE,
                       options.admit_unverified_client_certs
                           ? AdmitUnverifiedClientCert
                           : nullptr);
  }
  ERR_clear_error();
  return std::shared_ptr<TlsServerContext>(
      new TlsServerContext(owner.release(), requests, verifies));
}

TlsServerContext::~TlsServerContext() { SSL_CTX_free(ctx_); }

TlsStats TlsServerContext::stats() const {
  TlsStats s;
  s.handshakes_completed =
      handshakes_completed_.load(std::memory_order_relaxed);
  s.handshakes_failed = handshakes_failed_.load(std::memory_order_relaxed);
  s.record_errors = record_errors_.load(std::memory_order_relaxed);
  return s;
}

// ---------------------------------------------------------------------------
// TlsConnection

std::unique_ptr<TlsConnection> TlsConnection::Create(
    std::shared_ptr<TlsServerContext> context) {
  SSL* ssl = SSL_new(context->ctx_);
  if (ssl == nullptr) {
    ERR_clear_error();
    return nullptr;
  }
  BIO* in = NewMemoryBio(/*read_side=*/true);
  BIO* out = NewMemoryBio(/*read_side=*/false);
  if (in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_bio(ssl, in, out);  // the SSL owns both from here
  SSL_set_accept_state(ssl);
  return std::unique_ptr<TlsConnection>(
      new TlsConnection(std::move(context), ssl));
}

TlsConnection::~TlsConnection() { SSL_free(ssl_); }

bool TlsConnection::Feed(absl::Span<const uint8_t> ciphertext) {
  BIO* in = SSL_get_rbio(ssl_);
  while (!ciphertext.empty()) {
    const int chunk =
        static_cast<int>(std::min<size_t>(ciphertext.size(), INT_MAX));
    const int written = BIO_write(in, ciphertext.data(), chunk);
    if (written <= 0) {
      error_ = "out of memory";
      ERR_clear_error();
      return false;
    }
    ciphertext.remove_prefix(static_cast<size_t>(written));
  }
  return true;
}

TlsConnection::ReadResult TlsConnection::Read(absl::Span<uint8_t> out,
                                              size_t* n) {
  *n = 0;
  if (failed_) return ReadResult::kFailed;
  ERR_clear_error();
  const int want = static_cast<int>(std::min<size_t>(out.size(), INT_MAX));
  const int r = SSL_read(ssl_, out.data(), want);
  if (!handshake_done_ && SSL_is_init_finished(ssl_)) {
    handshake_done_ = true;
    context_->handshakes_completed_.fetch_add(1, std::memory_order_relaxed);
  }
  if (r > 0) {
    *n = static_cast<size_t>(r);
    return ReadResult::kData;
  }
  const int error = SSL_get_error(ssl_, r);
  switch (error) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:  // memory BIOs never refuse a write
      ERR_clear_error();
      ReleaseDrainedBio(/*read_side=*/true);
      return ReadResult::kWantInput;
    case SSL_ERROR_ZERO_RETURN:
      ERR_clear_error();
      return ReadResult::kClosed;
    default:
      Fail(error);
      return ReadResult::kFailed;
  }
}

bool TlsConnection::Write(absl::string_view plaintext) {
  if (failed_) return false;
  ERR_clear_error();
  while (!plaintext.empty()) {
    const int chunk =
        static_cast<int>(std::min<size_t>(plaintext.size(), INT_MAX));
    const int r = SSL_write(ssl_, plaintext.data(), chunk);
    if (r <= 0) {
      Fail(SSL_get_error(ssl_, r));
      return false;
    }
    plaintext.remove_prefix(static_cast<size_t>(r));
  }
  return true;
}

void TlsConnection::Shutdown() {
  if (!handshake_done_) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

size_t TlsConnection::PendingCiphertext() const {
  return BIO_ctrl_pending(SSL_get_wbio(ssl_));
}

void TlsConnection::TakeCiphertext(std::string* out) {
  BIO* bio = SSL_get_wbio(ssl_);
  const size_t pending = BIO_ctrl_pending(bio);
  if (pending == 0) return;
  const size_t old_size = out->size();
  out->resize(old_size + pending);
  const int r = BIO_read(bio, &(*out)[old_size],
                         static_cast<int>(std::min<size_t>(pending, INT_MAX)));
  out->resize(old_size + (r > 0 ? static_cast<size_t>(r) : 0));
  ReleaseDrainedBio(/*read_side=*/false);
}

void TlsConnection::ReleaseDrainedBio(bool read_side) {
  // During the handshake OpenSSL may stack a buffering BIO on the write
  // side; the handshake's buffers are bounded anyway, so wait for its end.
  if (!handshake_done_) return;
  BIO* bio = read_side ? SSL_get_rbio(ssl_) : SSL_get_wbio(ssl_);
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  if (mem == nullptr || mem->length != 0 || mem->max <= kKeepBioBytes) return;
  BIO* fresh = NewMemoryBio(read_side);
  if (fresh == nullptr) {
    ERR_clear_error();
    return;  // keep the old one
  }
  if (read_side) {
    SSL_set0_rbio(ssl_, fresh);
  } else {
    SSL_set0_wbio(ssl_, fresh);
  }
}

void TlsConnection::Fail(int ssl_error) {
  failed_ = true;
  std::string reason = TakeOpenSslErrors();
  const long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    if (!reason.empty()) reason += ": ";
    reason += X509_verify_cert_error_string(verify);
  }
  if (reason.empty()) {
    reason = ssl_error == SSL_ERROR_SYSCALL ? "unexpected end of stream"
                                            : "TLS error";
  }
  error_ = std::move(reason);
  uint64_t count;
  if (handshake_done_) {
    count = context_->record_errors_.fetch_add(1, std::memory_order_relaxed);
  } else {
    count =
        context_->handshakes_failed_.fetch_add(1, std::memory_order_relaxed);
  }
  should_log_failure_ = count < 10 || count % 1000 == 0;
}

TlsPeerDetails TlsConnection::PeerDetails() const {
  TlsPeerDetails details;
  details.version = SSL_get_version(ssl_);
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr) return details;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &digest_len) == 1) {
    static const char kHex[] = "0123456789abcdef";
    details.client_cert_sha256_hex.reserve(2 * digest_len);
    for (unsigned int i = 0; i < digest_len; ++i) {
      details.client_cert_sha256_hex += kHex[digest[i] >> 4];
      details.client_cert_sha256_hex += kHex[digest[i] & 15];
    }
  }
  details.client_cert_verified = context_->verifies_client_certs() &&
                                 SSL_get_app_data(ssl_) != &verify_failed_tag &&
                                 SSL_get_verify_result(ssl_) == X509_V_OK;
  // Exactly one CN, as UTF-8 without NUL bytes; otherwise none.
  X509_NAME* subject = X509_get_subject_name(cert);
  const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at >= 0 && X509_NAME_get_index_by_NID(subject, NID_commonName, at) < 0) {
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(
        &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
    if (len > 0) {
      std::string cn(reinterpret_cast<const char*>(utf8),
                     static_cast<size_t>(len));
      if (cn.find('\0') == std::string::npos) {
        details.client_cert_subject_cn = std::move(cn);
      }
    }
    OPENSSL_free(utf8);
  }
  ERR_clear_error();
  return details;
}

}  // namespace gateway
}  // namespace edgeroute
