// TLS for the gateway's listeners (OpenSSL), driven over memory BIOs so that
// the event loop keeps owning the sockets: the loop feeds the ciphertext it
// received into a TlsConnection, reads plaintext out of it, and sends the
// ciphertext the connection produced. No thread, no socket and no blocking
// call in here.
//
//   TlsServerContext -- the listener's configuration: certificate chain and
//                       key, protocol versions (TLS 1.2 minimum, TLS 1.3),
//                       optional client-certificate verification. Immutable
//                       after Create; shared by every loop and connection
//                       (thread-safe).
//   TlsConnection    -- one connection's handshake and record layer.
//                       Not thread-safe: used by one loop thread.
//
// Callers normally only create a context and hand it to
// EventLoop::ListenTcp (gateway/event_loop.h); the loop does the rest.

#ifndef EDGEROUTE_GATEWAY_NET_TLS_H_
#define EDGEROUTE_GATEWAY_NET_TLS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// OpenSSL's types, so that users of this header need not include OpenSSL.
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace edgeroute {
namespace gateway {

struct TlsServerOptions {
  // PEM file with the server certificate first, then any intermediate CA
  // certificates (sent to clients in this order). Required.
  std::string cert_chain_pem_path;
  // PEM file with the server certificate's private key (not encrypted).
  // Required.
  std::string private_key_pem_path;
  // PEM bundle of the CAs that client certificates must chain to. When set,
  // every client is asked for a certificate; one that is presented is
  // verified against the bundle and a certificate that fails verification
  // fails the handshake. A client that presents none still connects (SAS
  // tokens use the same port). Empty: no client certificates are asked for.
  std::string client_ca_pem_path;
  // Asks for client certificates even without a CA bundle and admits one
  // that does not verify (self-signed device certificates named by their
  // thumbprint), reporting it with client_cert_verified = false. The
  // handshake still proves that the client holds the certificate's private
  // key. Default: off (see client_ca_pem_path).
  bool admit_unverified_client_certs = false;
};

// Counters of one context over all its connections (relaxed atomics: each
// value is exact, the set is not a snapshot).
struct TlsStats {
  uint64_t handshakes_completed = 0;
  // Handshakes that failed (bad ClientHello, no common version or cipher,
  // a client certificate that failed verification, ...). Connections closed
  // before their handshake finished are not counted.
  uint64_t handshakes_failed = 0;
  // Record-layer errors after the handshake (bad MAC, unexpected message).
  uint64_t record_errors = 0;
};

class TlsServerContext {
 public:
  // Loads the certificate chain, key and CA bundle; fails with
  // InvalidArgument (naming the file and OpenSSL's reason) when one cannot
  // be read or the key does not match the certificate.
  static absl::StatusOr<std::shared_ptr<TlsServerContext>> Create(
      const TlsServerOptions& options);

  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;

  // Whether clients are asked for a certificate.
  bool requests_client_certs() const { return requests_client_certs_; }
  // Whether client certificates are verified against a CA bundle.
  bool verifies_client_certs() const { return verifies_client_certs_; }

  TlsStats stats() const;

 private:
  friend class TlsConnection;
  TlsServerContext(SSL_CTX* ctx, bool requests, bool verifies)
      : ctx_(ctx),
        requests_client_certs_(requests),
        verifies_client_certs_(verifies) {}

  SSL_CTX* const ctx_;
  const bool requests_client_certs_;
  const bool verifies_client_certs_;
  std::atomic<uint64_t> handshakes_completed_{0};
  std::atomic<uint64_t> handshakes_failed_{0};
  std::atomic<uint64_t> record_errors_{0};
};

// What a completed handshake established about the client.
struct TlsPeerDetails {
  std::string version;  // "TLSv1.2" or "TLSv1.3"
  // A client certificate was presented and verified against the CA bundle.
  bool client_cert_verified = false;
  // SHA-256 of the presented client certificate's DER, lower-case hex;
  // empty when the client presented none.
  std::string client_cert_sha256_hex;
  // The certificate subject's common name; empty without a certificate, or
  // when the subject has no CN, several, or one with a NUL byte.
  std::string client_cert_subject_cn;
};

// One server-side TLS connection over a pair of memory BIOs: ciphertext in
// (Feed), plaintext out (Read), plaintext in (Write), ciphertext out
// (TakeCiphertext). The BIOs' buffers are released whenever they run empty,
// and OpenSSL's record buffers while idle (SSL_MODE_RELEASE_BUFFERS), so an
// idle connection holds little more than the SSL object and its session.
//
// Thread-safety: none; one thread at a time (the loop thread).
class TlsConnection {
 public:
  // Null when OpenSSL cannot allocate the connection.
  static std::unique_ptr<TlsConnection> Create(
      std::shared_ptr<TlsServerContext> context);
  ~TlsConnection();
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  // Appends ciphertext received from the peer. False when out of memory.
  bool Feed(absl::Span<const uint8_t> ciphertext);

  enum class ReadResult : uint8_t {
    kData,       // *n > 0 plaintext bytes were written to `out`
    kWantInput,  // everything fed so far is processed; Feed more
    kClosed,     // the peer sent close_notify
    kFailed,     // handshake or record error (see error()); final
  };
  // Advances the handshake and decrypts up to out.size() plaintext bytes.
  // Call until it returns something other than kData. Afterwards, check
  // PendingCiphertext(): the handshake, alerts, session tickets and key
  // updates produce output to send.
  ReadResult Read(absl::Span<uint8_t> out, size_t* n);

  // Encrypts `plaintext` (after the handshake). False on error.
  // REQUIRES: handshake_done().
  bool Write(absl::string_view plaintext);
  // Queues a close_notify alert (after the handshake).
  void Shutdown();

  // Ciphertext waiting to be sent.
  size_t PendingCiphertext() const;
  // Appends the waiting ciphertext to `out` and forgets it.
  void TakeCiphertext(std::string* out);

  bool handshake_done() const { return handshake_done_; }
  // Filled when the handshake completes. REQUIRES: handshake_done().
  TlsPeerDetails PeerDetails() const;
  // OpenSSL's reason for the last kFailed or Write failure (no secrets:
  // library reason strings only).
  const std::string& error() const { return error_; }
  // Whether the last failure should be logged: the first few failures of a
  // context, then one in a thousand, so that a flood of bad handshakes
  // cannot flood the log (all are counted in TlsStats).
  bool should_log_failure() const { return should_log_failure_; }

 private:
  TlsConnection(std::shared_ptr<TlsServerContext> context, SSL* ssl)
      : context_(std::move(context)), ssl_(ssl) {}
  // Replaces a drained BIO whose buffer grew past a small size, so idle
  // connections keep no high-water buffers.
  void ReleaseDrainedBio(bool read_side);
  // Takes OpenSSL's error queue into error_ and counts the failure.
  void Fail(int ssl_error);

  const std::shared_ptr<TlsServerContext> context_;
  SSL* const ssl_;
  bool handshake_done_ = false;
  // A fatal error happened; the connection is unusable.
  bool failed_ = false;
  bool should_log_failure_ = false;
  std::string error_;
};

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_NET_TLS_H_
