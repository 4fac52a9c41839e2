// The gateway's socket layer: one event loop per I/O thread, accepting
// stream connections (Unix-domain and TCP, optionally TLS) and handing what
// they send to a LoopHandler, either split into protocol frames (protocol.h)
// or as a raw byte stream (Framing::kStream, for other protocol heads such as
// MQTT). Two interchangeable backends:
//
//   io_uring -- one ring per loop; accept is multishot when the kernel
//               supports it (otherwise re-armed), every connection has one
//               recv and at most one send in flight, and everything queued
//               during one pass over the completions is submitted with a
//               single io_uring_enter. Receives take a buffer from a ring of
//               the loop's only when data arrives (provided buffers, Linux
//               5.19+).
//   epoll    -- level-triggered epoll with non-blocking sockets; used when
//               io_uring cannot be set up (logged once on stderr) or when
//               forced (LoopOptions::backend or EDGEROUTE_IO_BACKEND=epoll).
//
// Memory: connections read into buffers of the loop; a connection keeps
// only the bytes its handler has not consumed yet (a partial frame or
// packet) and output not yet taken by the kernel, and gives both back when
// they run empty. An idle connection costs its bookkeeping, PeerInfo and,
// with TLS, OpenSSL's connection state.
//
// Thread-safety: Create, Listen* may be called before Run from any thread.
// Run is called by exactly one thread (the loop thread); every LoopHandler
// callback runs on it, and BeginSend/EndSend/Close/connection queries may be
// called only from it (usually from inside a callback). Post and Stop are safe
// from any thread.
//
// TLS (ListenTcp with a TlsServerContext, gateway/net/tls.h): the loop runs
// the handshake and the record layer itself, over memory BIOs, on the loop
// thread; handlers only ever see and write plaintext.

#ifndef EDGEROUTE_GATEWAY_EVENT_LOOP_H_
#define EDGEROUTE_GATEWAY_EVENT_LOOP_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "gateway/protocol.h"

namespace edgeroute {
namespace gateway {

class TlsServerContext;  // gateway/net/tls.h

enum class IoBackend : uint8_t {
  // io_uring when it can be set up, else epoll. The environment variable
  // EDGEROUTE_IO_BACKEND ("epoll" or "io_uring") overrides kAuto.
  kAuto,
  kIoUring,
  kEpoll,
};
const char* IoBackendName(IoBackend backend);

// Unique per loop; never reused while the loop lives.
using ConnectionId = uint64_t;

enum class CloseReason : uint8_t {
  kPeerClosed,    // EOF or connection reset from the peer
  kIoError,       // a socket error
  kBadFrame,      // the stream broke the framing rules (prefix too big/zero)
  kByHandler,     // LoopHandler returned false or called Close
  kSlowConsumer,  // the send queue passed LoopOptions::max_send_queue_bytes
  kShutdown,      // the loop stopped
  kTlsFailed,     // the TLS handshake or record layer failed
};
const char* CloseReasonName(CloseReason reason);

// How a loop turns received bytes into LoopHandler calls.
enum class Framing : uint8_t {
  // The native protocol's length-prefixed frames: OnFrame / OnBadPrefix.
  kLengthPrefixed,
  // Raw bytes: OnStream; the handler does its own framing.
  kStream,
};

// What the loop knows about a connection's peer (EventLoop::Peer).
struct PeerInfo {
  // "ip:port" for TCP ("[ip6]:port" for IPv6), "unix:" + the listener's path
  // for Unix-domain sockets.
  std::string address;
  // The peer is on this machine: a loopback address or a Unix-domain socket.
  bool loopback = false;
  // Accepted on a TLS listener. The fields below are filled once the
  // handshake has completed.
  bool tls = false;
  // "TLSv1.2" or "TLSv1.3".
  std::string tls_version;
  // The client presented a certificate and it verified against the
  // listener's client CA bundle.
  bool client_cert_verified = false;
  // SHA-256 of the client certificate's DER, lower-case hex; empty when the
  // client presented none. A presented certificate that fails verification
  // fails the handshake, unless the listener admits unverified certificates
  // (TlsServerOptions::admit_unverified_client_certs; then this is filled
  // and client_cert_verified is false).
  std::string client_cert_sha256_hex;
  // The client certificate subject's common name; empty without a
  // certificate or without exactly one CN.
  std::string client_cert_subject_cn;
};

// Default LoopOptions::max_connections.
inline constexpr size_t kDefaultMaxConnections = 10000;

struct LoopOptions {
  IoBackend backend = IoBackend::kAuto;
  Framing framing = Framing::kLengthPrefixed;
  // Largest accepted frame payload (length prefix excluded). In stream mode,
  // a connection may hold at most max_frame_bytes + 16 received bytes that
  // the handler has not consumed; beyond that it is closed with kBadFrame.
  size_t max_frame_bytes = kDefaultMaxFrameBytes;
  // Outgoing bytes a connection may have queued (not yet taken by the
  // kernel) before it is disconnected as a slow consumer.
  size_t max_send_queue_bytes = 4u << 20;
  // Bytes requested from the kernel per receive (the size of each of the
  // loop's receive buffers).
  size_t recv_chunk_bytes = 64u << 10;
  // io_uring submission queue entries.
  unsigned ring_entries = 512;
  // LoopHandler::OnTick is called about this often; 0 = never.
  uint32_t tick_interval_ms = 0;
  // Open connections at most (0 = no limit). A connection accepted beyond
  // it is refused: it gets LoopHandler::RefusalBytes (plain listeners) and
  // is closed at once.
  size_t max_connections = kDefaultMaxConnections;
};

// Receives a loop's events. All calls come from the loop thread. A handler
// overrides OnFrame and OnBadPrefix for Framing::kLengthPrefixed, OnStream
// for Framing::kStream (the defaults of the other mode's calls close the
// connection).
class LoopHandler {
 public:
  virtual ~LoopHandler() = default;
  // A connection was accepted (on a TLS listener: before the handshake;
  // EventLoop::Peer has its address already).
  virtual void OnOpen(ConnectionId id) = 0;
  // kLengthPrefixed: one complete frame payload (length prefix removed). The
  // bytes are valid only during the call; when the peer pads its frames
  // (PROTOCOL.md) they are 8-byte aligned. Return false to close the
  // connection after the already-queued output has been sent.
  virtual bool OnFrame(ConnectionId id, absl::Span<const uint8_t> payload) {
    (void)id;
    (void)payload;
    return false;
  }
  // kLengthPrefixed: the stream broke the framing rules (`why` is kTooLarge
  // or kEmpty). The handler may queue an Error frame; the loop then closes
  // after flushing.
  virtual void OnBadPrefix(ConnectionId id, SplitResult why) {
    (void)id;
    (void)why;
  }
  // kStream: `bytes` are all bytes received and not yet consumed (valid only
  // during the call). Set *consumed (0..bytes.size()) to how many the handler
  // used; the loop keeps the rest, in front of what arrives next. While a
  // call consumes something and bytes remain, the loop calls again at once;
  // otherwise it waits for more input. Return false to close the connection
  // after the already-queued output has been sent.
  virtual bool OnStream(ConnectionId id, absl::Span<const uint8_t> bytes,
                        size_t* consumed) {
    (void)id;
    (void)bytes;
    *consumed = 0;
    return false;
  }
  // Called about every LoopOptions::tick_interval_ms (keep-alive, connect
  // deadlines). Not called when the interval is 0.
  virtual void OnTick() {}
  // What a connection refused for lack of room (max_connections, or no file
  // descriptor left) is sent before it is closed, on plain listeners: the
  // protocol's "server busy" answer. Empty: closed without a word.
  virtual std::string RefusalBytes() { return std::string(); }
  // The connection is gone (called once per OnOpen). BeginSend returns null
  // for it from now on; Peer still answers during this call.
  virtual void OnClose(ConnectionId id, CloseReason reason) = 0;
};

class EventLoop {
 public:
  // Sets up the backend chosen by options.backend (see IoBackend::kAuto).
  // With kIoUring explicitly, fails instead of falling back.
  // REQUIRES: handler outlives the loop.
  static absl::StatusOr<std::unique_ptr<EventLoop>> Create(
      const LoopOptions& options, LoopHandler* handler);

  virtual ~EventLoop() = default;
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // The backend actually in use.
  virtual IoBackend backend() const = 0;

  // Listens on `host`:`port` (port 0 picks a free one). Returns the bound
  // port. With `tls`, every connection accepted there speaks TLS: the loop
  // runs the handshake before the handler sees any byte, and encrypts what
  // the handler queues. Call before Run.
  virtual absl::StatusOr<int> ListenTcp(
      absl::string_view host, int port,
      std::shared_ptr<TlsServerContext> tls = nullptr) = 0;
  // Listens on a Unix-domain socket at `path` (an existing socket file there
  // is replaced). Call before Run.
  virtual absl::Status ListenUnix(absl::string_view path) = 0;

  // Runs until Stop(); then closes every connection (OnClose with kShutdown)
  // and returns.
  virtual void Run() = 0;
  // Makes Run return soon. Thread-safe.
  virtual void Stop() = 0;
  // Runs `fn` on the loop thread during Run. Thread-safe. Functions still
  // queued when Run returns are run before it returns.
  virtual void Post(std::function<void()> fn) = 0;

  // Output queue of `id` to append encoded frames to, or null if the
  // connection is closed or closing. Call EndSend(id) after appending.
  virtual std::string* BeginSend(ConnectionId id) = 0;
  // Schedules the appended bytes for sending (batched: sent after the
  // current callback returns). Returns false, and closes the connection with
  // kSlowConsumer, if its queue now exceeds max_send_queue_bytes.
  virtual bool EndSend(ConnectionId id) = 0;
  // Closes `id`; with `flush`, after its queued output has been sent.
  virtual void Close(ConnectionId id, bool flush) = 0;
  // Back-pressure on one producer: while paused, the loop reads nothing
  // more from `id` and hands the handler none of the bytes it already holds
  // (the peer's sends back up into TCP flow control); output continues.
  // Resume hands over what was held and reads again. Loop thread only;
  // unknown ids are ignored. PauseReading returns whether `id` was newly
  // paused.
  virtual bool PauseReading(ConnectionId id) = 0;
  virtual void ResumeReading(ConnectionId id) = 0;
  // Resumes every paused connection; and how many are paused now.
  virtual void ResumeAllReading() = 0;
  virtual size_t PausedCount() const = 0;
  // Bytes queued for `id` and not yet taken by the kernel (0 if unknown id).
  virtual size_t QueuedBytes(ConnectionId id) const = 0;
  // Open connections.
  virtual size_t ConnectionCount() const = 0;
  // Connections refused since Create: over max_connections, or accepted
  // while the process had no file descriptor left (EMFILE/ENFILE: the loop
  // frees a spare descriptor to accept and close them, so a full table
  // never makes it spin). Thread-safe.
  virtual uint64_t RefusedConnections() const = 0;
  // The peer of `id`, or null for an unknown id. Valid until the connection
  // is gone (it still answers during OnClose); the TLS fields are filled
  // before the first OnFrame/OnStream.
  virtual const PeerInfo* Peer(ConnectionId id) const = 0;

 protected:
  EventLoop() = default;
};

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_EVENT_LOOP_H_
