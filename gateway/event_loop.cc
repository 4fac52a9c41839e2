#include "gateway/event_loop.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "gateway/net/tls.h"
#include "message/status.h"

namespace edgeroute {
namespace gateway {
namespace {

// Frames start at this offset of a receive buffer (8-byte aligned storage),
// so that the payload after the 4-byte prefix of a padded frame is 8-byte
// aligned.
constexpr size_t kRecvBase = 4;

// Plaintext bytes asked of OpenSSL per read: one TLS record at most.
constexpr size_t kTlsReadBytes = 16u << 10;
// Plaintext bytes encrypted per refill of a connection's send buffer.
constexpr size_t kTlsWriteBytes = 64u << 10;
// An idle connection's output strings keep at most this capacity.
constexpr size_t kKeepOutputBytes = 2u << 10;

// 8-byte aligned, uninitialized storage for at least `bytes` bytes.
std::unique_ptr<uint64_t[]> AlignedBytes(size_t bytes) {
  return std::unique_ptr<uint64_t[]>(new uint64_t[(bytes + 7) / 8]);
}

// ---------------------------------------------------------------------------
// Sockets (shared by both backends).

absl::StatusOr<int> OpenTcpListener(absl::string_view host, int port,
                                    bool non_blocking, int* bound_port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const std::string host_str(host.empty() ? "127.0.0.1" : host);
  if (inet_pton(AF_INET, host_str.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an IPv4 address: '", host_str, "'"));
  }
  const int type =
      SOCK_STREAM | SOCK_CLOEXEC | (non_blocking ? SOCK_NONBLOCK : 0);
  const int fd = socket(AF_INET, type, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket(AF_INET)");
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    close(fd);
    return ErrnoToStatus(e, absl::StrCat("bind ", host_str, ":", port));
  }
  if (listen(fd, SOMAXCONN) != 0) {
    const int e = errno;
    close(fd);
    return ErrnoToStatus(e, "listen");
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *bound_port = ntohs(addr.sin_port);
  return fd;
}

absl::StatusOr<int> OpenUnixListener(absl::string_view path,
                                     bool non_blocking) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Unix socket path must be 1..", sizeof(addr.sun_path) - 1,
                     " bytes: '", path, "'"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  // Replace a stale socket file, but never another kind of file.
  struct stat st;
  if (lstat(addr.sun_path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::AlreadyExistsError(
          absl::StrCat("'", path, "' exists and is not a socket"));
    }
    unlink(addr.sun_path);
  }
  const int type =
      SOCK_STREAM | SOCK_CLOEXEC | (non_blocking ? SOCK_NONBLOCK : 0);
  const int fd = socket(AF_UNIX, type, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket(AF_UNIX)");
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    close(fd);
    return ErrnoToStatus(e, absl::StrCat("bind '", path, "'"));
  }
  // Owner only: any local process that can connect could claim a module
  // (without an identities file). Set before listen(), so that no one can
  // connect in between.
  if (chmod(addr.sun_path, 0600) != 0) {
    const int e = errno;
    close(fd);
    unlink(addr.sun_path);
    return ErrnoToStatus(e, absl::StrCat("chmod '", path, "'"));
  }
  if (listen(fd, SOMAXCONN) != 0) {
    const int e = errno;
    close(fd);
    return ErrnoToStatus(e, "listen");
  }
  return fd;
}

void TuneAccepted(int fd) {
  const int one = 1;
  // Harmless (ENOPROTOOPT) on Unix-domain sockets.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // A peer that vanished (power cut, cable pulled) leaves a connection that
  // is idle forever: TCP finds it. Keep-alive probes start after 60 s of
  // silence, every 10 s, and 3 unanswered close it; data unacknowledged for
  // 90 s closes it too. Not an application idle timeout: the native
  // protocol has no ping, and a subscriber may rightly be silent for hours
  // (MQTT has its own keep-alive on top).
  const int idle_s = 60, interval_s = 10, probes = 3;
  const unsigned user_timeout_ms = 90'000;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(idle_s));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof(interval_s));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
             sizeof(user_timeout_ms));
}

// Fills the address fields of `peer` for the accepted socket `fd`;
// `unix_path` is the listener's path for Unix-domain listeners.
void DescribePeer(int fd, const std::string& unix_path, PeerInfo* peer) {
  if (!unix_path.empty()) {
    peer->address = absl::StrCat("unix:", unix_path);
    peer->loopback = true;
    return;
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    peer->address = "unknown";
    return;
  }
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    peer->address = absl::StrCat(text, ":", ntohs(in->sin_port));
    // 127.0.0.0/8
    peer->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    peer->address = absl::StrCat("[", text, "]:", ntohs(in6->sin6_port));
    peer->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
                     (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
                      in6->sin6_addr.s6_addr[12] == 127);
  } else {
    peer->address = "unknown";
  }
}

// ---------------------------------------------------------------------------
// LoopBase: connections, framing, output queues, closing, Post/Stop. The
// backends only move bytes.

class LoopBase : public EventLoop {
 public:
  LoopBase(const LoopOptions& options, LoopHandler* handler)
      : options_(options), handler_(handler) {}

  ~LoopBase() override {
    if (spare_fd_ >= 0) close(spare_fd_);
    for (auto& entry : connections_) close(entry.second->fd);
    for (int fd : listen_fds_) close(fd);
    for (const Listener& l : listeners_) {
      if (!l.unix_path.empty()) unlink(l.unix_path.c_str());
    }
    if (wake_fd_ >= 0) close(wake_fd_);
    if (tick_fd_ >= 0) close(tick_fd_);
  }

  absl::StatusOr<int> ListenTcp(
      absl::string_view host, int port,
      std::shared_ptr<TlsServerContext> tls) override {
    int bound = 0;
    EDGEROUTE_ASSIGN_OR_RETURN(
        int fd, OpenTcpListener(host, port, NonBlockingSockets(), &bound));
    listen_fds_.push_back(fd);
    listeners_.push_back(Listener{std::move(tls), std::string()});
    return bound;
  }

  absl::Status ListenUnix(absl::string_view path) override {
    EDGEROUTE_ASSIGN_OR_RETURN(int fd,
                               OpenUnixListener(path, NonBlockingSockets()));
    listen_fds_.push_back(fd);
    listeners_.push_back(Listener{nullptr, std::string(path)});
    return absl::OkStatus();
  }

  void Stop() override {
    // Release: pairs with the acquire load in the loop; nothing else is
    // published through it.
    stop_.store(true, std::memory_order_release);
    Wake();
  }

  void Post(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(post_mu_);
      posted_.push_back(std::move(fn));
    }
    Wake();
  }

  std::string* BeginSend(ConnectionId id) override {
    Connection* c = Find(id);
    return c == nullptr || !c->open ? nullptr : &c->out;
  }

  bool EndSend(ConnectionId id) override {
    Connection* c = Find(id);
    if (c == nullptr || !c->open) return false;
    if (Queued(*c) > options_.max_send_queue_bytes) {
      BeginClose(c, CloseReason::kSlowConsumer, /*flush=*/false);
      return false;
    }
    if (c->tls != nullptr && c->out.size() > c->out_taken &&
        (c->record_ends.empty() || c->record_ends.back() < c->out.size())) {
      c->record_ends.push_back(c->out.size());
    }
    MarkDirty(c);
    return true;
  }

  void Close(ConnectionId id, bool flush) override {
    Connection* c = Find(id);
    if (c != nullptr) BeginClose(c, CloseReason::kByHandler, flush);
  }

  bool PauseReading(ConnectionId id) override {
    Connection* c = Find(id);
    if (c == nullptr || c->read_paused) return false;
    c->read_paused = true;
    paused_.push_back(id);
    SetReading(c, false);
    return true;
  }

  void ResumeAllReading() override {
    std::vector<ConnectionId> paused;
    paused.swap(paused_);
    for (ConnectionId id : paused) ResumeReading(id);
  }

  size_t PausedCount() const override { return paused_.size(); }

  void ForgetPaused(ConnectionId id) {
    auto it = std::find(paused_.begin(), paused_.end(), id);
    if (it != paused_.end()) paused_.erase(it);
  }

  void ResumeReading(ConnectionId id) override {
    Connection* c = Find(id);
    if (c == nullptr || !c->read_paused) return;
    c->read_paused = false;
    ForgetPaused(id);
    if (!c->open || c->terminated) return;
    // What arrived while paused first, in order.
    if (c->rbeg != c->rend) DeliverPending(c);
    if (c->open && !c->read_paused) SetReading(c, true);
  }

  size_t QueuedBytes(ConnectionId id) const override {
    auto it = connections_.find(id);
    return it == connections_.end() ? 0 : Queued(*it->second);
  }

  size_t ConnectionCount() const override { return open_count_; }

  uint64_t RefusedConnections() const override {
    // Relaxed: a statistic.
    return refused_.load(std::memory_order_relaxed);
  }

  const PeerInfo* Peer(ConnectionId id) const override {
    const Connection* c = Find(id);
    return c == nullptr ? nullptr : &c->peer;
  }

 protected:
  // What listen_fds_[i] was opened with.
  struct Listener {
    std::shared_ptr<TlsServerContext> tls;
    std::string unix_path;  // empty for TCP
  };

  struct Connection {
    ConnectionId id = 0;
    int fd = -1;
    // Received bytes (plaintext, with TLS) that the handler has not
    // consumed, in [rbeg, rend) of `pending` (rcap bytes). Freed whenever
    // it runs empty: the kernel reads into buffers of the loop, and only a
    // partial frame or packet is kept here.
    std::unique_ptr<uint64_t[]> pending;
    size_t rcap = 0;
    size_t rbeg = kRecvBase;
    size_t rend = kRecvBase;
    // Bytes the next frame needs in total, once its prefix is known.
    size_t need = 0;
    // Appended by the handler (plaintext, with TLS), not yet handed to the
    // kernel; with TLS, the first `out_taken` bytes are already encrypted.
    std::string out;
    size_t out_taken = 0;
    // With TLS: where in `out` each of the handler's writes (BeginSend ..
    // EndSend, one protocol packet) ends, ascending; the ones before
    // `next_record_end` are encrypted already. Each write becomes its own
    // TLS record(s), as a broker that writes packet by packet produces:
    // clients that poll the socket once per packet (libmosquitto does) stall
    // when the next packet hides in the tail of a record already read.
    std::vector<size_t> record_ends;
    size_t next_record_end = 0;
    // Handed to the kernel; `sent` bytes of it are done.
    std::string sending;
    size_t sent = 0;
    // The TLS state of a connection accepted on a TLS listener.
    std::unique_ptr<TlsConnection> tls;
    // False once closing started; no more input or output is accepted.
    bool open = true;
    // Close once everything queued has been sent.
    bool flush_then_close = false;
    bool dirty = false;
    bool notified = false;    // OnClose delivered
    bool terminated = false;  // the socket is being (or was) torn down
    CloseReason reason = CloseReason::kPeerClosed;
    // io_uring: operations in flight that reference this connection.
    int ops = 0;
    bool recv_armed = false;
    bool send_armed = false;
    // epoll: EPOLLOUT is registered.
    bool want_write = false;
    // A TCP socket (not Unix-domain): acknowledged at once on every read.
    bool tcp = false;
    // PauseReading: no reads, and no bytes to the handler.
    bool read_paused = false;
    PeerInfo peer;

    uint8_t* bytes() { return reinterpret_cast<uint8_t*>(pending.get()); }
  };

  static size_t Queued(const Connection& c) {
    return (c.out.size() - c.out_taken) + (c.sending.size() - c.sent) +
           (c.tls != nullptr ? c.tls->PendingCiphertext() : 0);
  }

  // Whether listeners and accepted sockets are non-blocking (epoll).
  virtual bool NonBlockingSockets() const = 0;
  // Hands queued output to the kernel.
  virtual void FlushOutput(Connection* c) = 0;
  // Starts or stops reading from the socket (PauseReading).
  virtual void SetReading(Connection* c, bool on) = 0;
  // Starts tearing down the socket of a closed connection; the backend calls
  // Erase when no operation references it any more.
  virtual void Terminate(Connection* c) = 0;
  // Wakes a loop blocked in the kernel.
  void Wake() {
    // acq_rel: a Post that sees `true` knows the loop has not yet reset the
    // flag and will drain the queue after it does.
    if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
      const uint64_t one = 1;
      ssize_t ignored = write(wake_fd_, &one, sizeof(one));
      (void)ignored;
    }
  }

  absl::Status CreateWakeFd(bool non_blocking) {
    wake_fd_ = eventfd(0, EFD_CLOEXEC | (non_blocking ? EFD_NONBLOCK : 0));
    if (wake_fd_ < 0) return ErrnoToStatus(errno, "eventfd");
    OpenSpare();
    return absl::OkStatus();
  }

  // A periodic timerfd for OnTick when options_.tick_interval_ms > 0 (else
  // tick_fd_ stays -1).
  absl::Status CreateTickFd(bool non_blocking) {
    if (options_.tick_interval_ms == 0) return absl::OkStatus();
    tick_fd_ = timerfd_create(CLOCK_MONOTONIC,
                              TFD_CLOEXEC | (non_blocking ? TFD_NONBLOCK : 0));
    if (tick_fd_ < 0) return ErrnoToStatus(errno, "timerfd_create");
    itimerspec spec{};
    spec.it_interval.tv_sec = options_.tick_interval_ms / 1000;
    spec.it_interval.tv_nsec =
        static_cast<long>(options_.tick_interval_ms % 1000) * 1'000'000;
    spec.it_value = spec.it_interval;
    if (timerfd_settime(tick_fd_, 0, &spec, nullptr) != 0) {
      return ErrnoToStatus(errno, "timerfd_settime");
    }
    return absl::OkStatus();
  }

  bool stopping() const {
    // Acquire: pairs with Stop().
    return stop_.load(std::memory_order_acquire);
  }

  // Runs the functions posted so far. Called after the wake fd fired.
  void RunPosted() {
    // Reset before draining: a Post that lands after this writes the eventfd
    // again, so nothing is stranded.
    wake_pending_.store(false, std::memory_order_release);
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard<std::mutex> lock(post_mu_);
      batch.swap(posted_);
    }
    for (auto& fn : batch) fn();
  }

  // A socket accepted on listen_fds_[listener]; null (and the socket
  // closed) when the loop is full or its TLS state cannot be allocated.
  Connection* AddConnection(int fd, size_t listener) {
    if (options_.max_connections > 0 &&
        open_count_ >= options_.max_connections) {
      Refuse(fd, listener, "connection limit reached");
      return nullptr;
    }
    auto owned = std::make_unique<Connection>();
    Connection* c = owned.get();
    if (listeners_[listener].tls != nullptr) {
      c->tls = TlsConnection::Create(listeners_[listener].tls);
      if (c->tls == nullptr) {
        std::fprintf(stderr, "edgeroute gateway: out of memory for TLS\n");
        close(fd);
        return nullptr;
      }
      c->peer.tls = true;
    }
    c->id = next_id_++;
    c->fd = fd;
    DescribePeer(fd, listeners_[listener].unix_path, &c->peer);
    c->tcp = listeners_[listener].unix_path.empty();
    connections_.emplace(c->id, std::move(owned));
    ++open_count_;
    TuneAccepted(fd);
    handler_->OnOpen(c->id);
    return c;
  }

  // Answers a connection the loop has no room for and closes it.
  void Refuse(int fd, size_t listener, absl::string_view why) {
    if (listeners_[listener].tls == nullptr) {
      const std::string bytes = handler_->RefusalBytes();
      // Best effort: a fresh socket's send buffer takes a few bytes at once.
      if (!bytes.empty()) {
        ssize_t ignored =
            send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)ignored;
      }
    }
    // Counted before the close, so that a peer that saw its connection end
    // finds it counted.
    const uint64_t n = refused_.fetch_add(1, std::memory_order_relaxed) + 1;
    close(fd);
    // The first refusal, then one in a thousand: a flood must not flood the
    // log.
    if (n == 1 || n % 1000 == 0) {
      std::fprintf(stderr,
                   "edgeroute gateway: refused a connection (%.*s; %llu "
                   "refused so far)\n",
                   static_cast<int>(why.size()), why.data(),
                   static_cast<unsigned long long>(n));
    }
  }

  // accept() failed with EMFILE/ENFILE: the pending connection would keep
  // the listener readable forever. Frees the spare descriptor to accept it,
  // refuses it, and takes the spare back. Returns false when nothing was
  // pending.
  bool ShedOnePending(size_t listener) {
    pollfd p{listen_fds_[listener], POLLIN, 0};
    if (poll(&p, 1, 0) != 1) return false;
    if (spare_fd_ >= 0) {
      close(spare_fd_);
      spare_fd_ = -1;
    }
    const int fd = accept4(listen_fds_[listener], nullptr, nullptr,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) Refuse(fd, listener, "no file descriptor left");
    OpenSpare();
    return fd >= 0;
  }

  // Keeps one descriptor in reserve for ShedOnePending.
  void OpenSpare() {
    if (spare_fd_ < 0) spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }

  Connection* Find(ConnectionId id) const {
    auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : it->second.get();
  }

  // ---- Input. The backends read into buffers of the loop and call
  // OnWireInput; bytes the handler does not consume yet move to the
  // connection's `pending` buffer.

  // `n` bytes arrived from the socket at `data` (a loop buffer, 8-byte
  // aligned + kRecvBase, valid during the call).
  void OnWireInput(Connection* c, const uint8_t* data, size_t n) {
    if (!c->open) return;
    // Acknowledge what arrived now rather than after the kernel's delayed-ACK
    // timer (up to 40 ms): a client with Nagle's algorithm on (most MQTT
    // clients) holds its next small packet -- typically the PUBACKs that
    // complete a delivery batch -- until its previous segment is
    // acknowledged, and a server that has nothing to send until those
    // PUBACKs arrive would otherwise wait out the timer on every batch.
    // Linux clears quick-ack mode by itself, so it is renewed per read.
    if (c->tcp) {
      const int one = 1;
      setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
    if (c->tls != nullptr) {
      OnCiphertext(c, data, n);
    } else {
      OnPlaintext(c, data, n);
    }
  }

  // Plaintext at `data` (a transient buffer), to hand to the handler.
  void OnPlaintext(Connection* c, const uint8_t* data, size_t n) {
    if (c->rbeg == c->rend) {
      const size_t used = Deliver(c, data, n);
      if (c->open && used < n) Stash(c, data + used, n - used);
    } else {
      Reserve(c, n);
      std::memcpy(c->bytes() + c->rend, data, n);
      c->rend += n;
      DeliverPending(c);
    }
  }

  // Hands the pending bytes to the handler; frees the buffer once empty.
  void DeliverPending(Connection* c) {
    c->rbeg += Deliver(c, c->bytes() + c->rbeg, c->rend - c->rbeg);
    if (c->rbeg == c->rend || !c->open) ReleasePending(c);
  }

  // Hands `n` bytes at `data` to the handler as frames or as a stream;
  // returns how many it consumed. May close the connection.
  size_t Deliver(Connection* c, const uint8_t* data, size_t n) {
    return options_.framing == Framing::kStream ? DeliverStream(c, data, n)
                                                : DeliverFrames(c, data, n);
  }

  size_t DeliverStream(Connection* c, const uint8_t* data, size_t n) {
    size_t used = 0;
    while (c->open && !c->read_paused && used < n) {
      size_t consumed = 0;
      const bool keep = handler_->OnStream(
          c->id, absl::MakeConstSpan(data + used, n - used), &consumed);
      used += std::min(consumed, n - used);
      if (!keep) {
        BeginClose(c, CloseReason::kByHandler, /*flush=*/true);
        return used;
      }
      if (consumed == 0) break;
    }
    // (While paused the rest is simply not offered yet.)
    if (c->open && !c->read_paused &&
        n - used > options_.max_frame_bytes + 16) {
      BeginClose(c, CloseReason::kBadFrame, /*flush=*/true);
    }
    return used;
  }

  size_t DeliverFrames(Connection* c, const uint8_t* data, size_t n) {
    size_t used = 0;
    while (c->open && !c->read_paused) {
      absl::Span<const uint8_t> stream(data + used, n - used);
      absl::Span<const uint8_t> payload;
      size_t consumed = 0;
      const SplitResult r =
          SplitFrame(stream, options_.max_frame_bytes, &payload, &consumed);
      if (r == SplitResult::kNeedMore) {
        c->need = consumed;
        break;
      }
      if (r != SplitResult::kFrame) {
        handler_->OnBadPrefix(c->id, r);
        BeginClose(c, CloseReason::kBadFrame, /*flush=*/true);
        break;
      }
      used += consumed;
      c->need = 0;
      if (!handler_->OnFrame(c->id, payload)) {
        BeginClose(c, CloseReason::kByHandler, /*flush=*/true);
        break;
      }
    }
    return used;
  }

  // Keeps `n` unconsumed bytes (the connection has none pending yet).
  void Stash(Connection* c, const uint8_t* data, size_t n) {
    Reserve(c, n);
    std::memcpy(c->bytes() + c->rend, data, n);
    c->rend += n;
  }

  // Makes room for `extra` more bytes after the pending ones: compacts to
  // kRecvBase (keeping frames aligned), then grows by doubling, so a large
  // frame arriving in pieces costs amortized linear copying and a prefix
  // alone reserves nothing for the size it announces.
  void Reserve(Connection* c, size_t extra) {
    const size_t unread = c->rend - c->rbeg;
    if (c->rcap >= c->rend + extra) return;
    if (c->rbeg > kRecvBase && c->rcap >= kRecvBase + unread + extra) {
      std::memmove(c->bytes() + kRecvBase, c->bytes() + c->rbeg, unread);
    } else {
      const size_t cap = std::max(
          kRecvBase + unread + extra,
          std::min(2 * c->rcap, kRecvBase + unread + extra + (1 << 20)));
      std::unique_ptr<uint64_t[]> grown = AlignedBytes(cap);
      if (unread > 0) {
        std::memcpy(reinterpret_cast<uint8_t*>(grown.get()) + kRecvBase,
                    c->bytes() + c->rbeg, unread);
      }
      c->pending = std::move(grown);
      c->rcap = cap;
    }
    c->rbeg = kRecvBase;
    c->rend = kRecvBase + unread;
  }

  void ReleasePending(Connection* c) {
    c->pending.reset();
    c->rcap = 0;
    c->rbeg = c->rend = kRecvBase;
  }

  // ---- TLS.

  void OnCiphertext(Connection* c, const uint8_t* data, size_t n) {
    if (!c->tls->Feed(absl::MakeConstSpan(data, n))) {
      Fail(c, CloseReason::kIoError);
      return;
    }
    PumpTls(c);
  }

  // Runs the handshake and hands decrypted bytes to the handler until
  // OpenSSL needs more input.
  void PumpTls(Connection* c) {
    while (c->open) {
      // Decrypt behind pending bytes, or into the loop's buffer when there
      // are none (the common case: no copy, nothing kept).
      const bool behind_pending = c->rbeg != c->rend;
      uint8_t* into;
      size_t room;
      if (behind_pending) {
        Reserve(c, kTlsReadBytes);
        into = c->bytes() + c->rend;
        room = c->rcap - c->rend;
      } else {
        into = tls_plaintext() + kRecvBase;
        room = kTlsReadBytes;
      }
      const bool handshake_was_done = c->tls->handshake_done();
      size_t n = 0;
      const TlsConnection::ReadResult r =
          c->tls->Read(absl::MakeSpan(into, room), &n);
      if (!handshake_was_done && c->tls->handshake_done()) {
        OnHandshakeDone(c);
      }
      if (r == TlsConnection::ReadResult::kData) {
        if (behind_pending) {
          c->rend += n;
          DeliverPending(c);
        } else {
          OnPlaintext(c, into, n);
        }
        continue;
      }
      if (r == TlsConnection::ReadResult::kClosed) {
        Fail(c, CloseReason::kPeerClosed);
      } else if (r == TlsConnection::ReadResult::kFailed) {
        FailTls(c);
      }
      break;
    }
    if (c->tls->PendingCiphertext() > 0) MarkDirty(c);
  }

  void OnHandshakeDone(Connection* c) {
    TlsPeerDetails details = c->tls->PeerDetails();
    c->peer.tls_version = std::move(details.version);
    c->peer.client_cert_verified = details.client_cert_verified;
    c->peer.client_cert_sha256_hex = std::move(details.client_cert_sha256_hex);
    c->peer.client_cert_subject_cn = std::move(details.client_cert_subject_cn);
    // Output the handler queued before the handshake can go now.
    if (!c->out.empty()) MarkDirty(c);
  }

  // A TLS error: logs it (rate-limited by the context) and closes after
  // sending OpenSSL's alert.
  void FailTls(Connection* c) {
    if (c->tls->should_log_failure()) {
      std::fprintf(stderr, "edgeroute gateway: TLS %s with %s failed: %s\n",
                   c->tls->handshake_done() ? "connection" : "handshake",
                   c->peer.address.c_str(), c->tls->error().c_str());
    }
    if (c->open) {
      BeginClose(c, CloseReason::kTlsFailed, /*flush=*/true);
    } else {
      Fail(c, CloseReason::kTlsFailed);
    }
  }

  // TLS loop buffer for decrypted bytes (8-byte aligned storage).
  uint8_t* tls_plaintext() {
    if (tls_plaintext_ == nullptr) {
      tls_plaintext_ = AlignedBytes(kRecvBase + kTlsReadBytes);
    }
    return reinterpret_cast<uint8_t*>(tls_plaintext_.get());
  }

  // ---- Output.

  // Refills c->sending, all of which the kernel has taken, with the next
  // bytes for the socket: the handler's bytes, or (TLS) the next piece of
  // them encrypted. Returns false when there is nothing to send; then the
  // connection's output strings shrink back to a small size.
  bool RefillSending(Connection* c) {
    c->sending.clear();
    c->sent = 0;
    if (c->tls == nullptr) {
      c->sending.swap(c->out);
    } else {
      // Encrypt write by write until about kTlsWriteBytes wait for the
      // kernel: one send carries many records.
      while (c->tls->handshake_done() && c->out_taken < c->out.size() &&
             c->tls->PendingCiphertext() < kTlsWriteBytes) {
        while (c->next_record_end < c->record_ends.size() &&
               c->record_ends[c->next_record_end] <= c->out_taken) {
          ++c->next_record_end;
        }
        const size_t end = c->next_record_end < c->record_ends.size()
                               ? c->record_ends[c->next_record_end]
                               : c->out.size();
        if (!c->tls->Write(absl::string_view(c->out).substr(
                c->out_taken, end - c->out_taken))) {
          ClearOutput(c);
          FailTls(c);
          break;
        }
        c->out_taken = end;
      }
      if (c->out_taken == c->out.size()) ClearOutput(c);
      c->tls->TakeCiphertext(&c->sending);
    }
    if (!c->sending.empty()) return true;
    if (c->sending.capacity() > kKeepOutputBytes)
      std::string().swap(c->sending);
    if (c->out.empty() && c->out.capacity() > kKeepOutputBytes) {
      std::string().swap(c->out);
      std::vector<size_t>().swap(c->record_ends);
    }
    return false;
  }

  // Forgets the handler's output (all of it encrypted, or unsendable).
  static void ClearOutput(Connection* c) {
    c->out.clear();
    c->out_taken = 0;
    c->record_ends.clear();
    c->next_record_end = 0;
  }

  void MarkDirty(Connection* c) {
    if (!c->dirty) {
      c->dirty = true;
      dirty_.push_back(c->id);
    }
  }

  void BeginClose(Connection* c, CloseReason reason, bool flush) {
    if (!c->open) return;
    c->open = false;
    c->reason = reason;
    if (c->tls != nullptr) {
      // Encrypt what is queued, then close_notify; without a handshake (or
      // after a TLS error) plaintext cannot be sent and only OpenSSL's
      // alert, if any, goes out.
      if (flush && c->tls->handshake_done() &&
          reason != CloseReason::kTlsFailed) {
        if (c->out_taken < c->out.size() &&
            !c->tls->Write(absl::string_view(c->out).substr(c->out_taken))) {
          flush = false;
        } else {
          c->tls->Shutdown();
        }
      }
      ClearOutput(c);
    }
    c->flush_then_close = flush && Queued(*c) > 0;
    if (c->flush_then_close) MarkDirty(c);
    --open_count_;
    closing_.push_back(c->id);
  }

  // End of a pass over kernel events: flush output, deliver OnClose, start
  // tearing down closed sockets. Handlers may queue more work while this
  // runs, so it repeats until quiet.
  void AfterPass() {
    while (!dirty_.empty() || !closing_.empty()) {
      std::vector<ConnectionId> dirty;
      dirty.swap(dirty_);
      for (ConnectionId id : dirty) {
        Connection* c = Find(id);
        if (c == nullptr) continue;
        c->dirty = false;
        if (!c->terminated) FlushOutput(c);
      }
      std::vector<ConnectionId> closing;
      closing.swap(closing_);
      for (ConnectionId id : closing) {
        Connection* c = Find(id);
        if (c == nullptr) continue;
        if (!c->notified) {
          c->notified = true;
          handler_->OnClose(id, c->reason);
        }
        MaybeTerminate(c);
      }
    }
  }

  // Tears the socket down once nothing more needs sending.
  void MaybeTerminate(Connection* c) {
    if (c->open || c->terminated) return;
    if (c->flush_then_close && Queued(*c) > 0) return;
    c->terminated = true;
    if (c->reason == CloseReason::kSlowConsumer) {
      // Abortive close (RST): drop what the kernel still holds for a peer
      // that does not read, instead of trickling it out.
      linger abort{};
      abort.l_onoff = 1;
      abort.l_linger = 0;
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
    }
    Terminate(c);
  }

  // An I/O error or EOF on a connection.
  void Fail(Connection* c, CloseReason reason) {
    if (c->open) {
      BeginClose(c, reason, /*flush=*/false);
    } else {
      c->flush_then_close = false;  // nothing more can be sent
      closing_.push_back(c->id);
    }
  }

  void Erase(Connection* c) {
    if (c->read_paused) ForgetPaused(c->id);
    close(c->fd);
    connections_.erase(c->id);
    // A descriptor just freed: take the spare back if it was lost.
    OpenSpare();
  }

  // Closes every connection for shutdown.
  void CloseAll() {
    std::vector<Connection*> all;
    for (auto& entry : connections_) all.push_back(entry.second.get());
    for (Connection* c : all) {
      BeginClose(c, CloseReason::kShutdown, /*flush=*/false);
      c->flush_then_close = false;
      if (!c->notified) closing_.push_back(c->id);
    }
    AfterPass();
  }

  const LoopOptions options_;
  LoopHandler* const handler_;
  std::vector<int> listen_fds_;
  std::vector<Listener> listeners_;  // parallel to listen_fds_
  int wake_fd_ = -1;
  int tick_fd_ = -1;
  // A descriptor held in reserve for refusing connections when the process
  // runs out (ShedOnePending).
  int spare_fd_ = -1;
  // Connections with read_paused set (few: producers held back briefly).
  std::vector<ConnectionId> paused_;
  std::atomic<uint64_t> refused_{0};
  // Decrypted bytes land here first (TLS connections).
  std::unique_ptr<uint64_t[]> tls_plaintext_;
  absl::flat_hash_map<ConnectionId, std::unique_ptr<Connection>> connections_;
  std::vector<ConnectionId> dirty_;
  std::vector<ConnectionId> closing_;
  ConnectionId next_id_ = 1;
  size_t open_count_ = 0;

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> wake_pending_{false};
  // std::mutex rather than absl::Mutex: the system Abseil is not built with
  // ThreadSanitizer annotations, so TSan would not see its synchronization.
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(post_mu_);
};

// ---------------------------------------------------------------------------
// io_uring backend.

class UringLoop final : public LoopBase {
 public:
  UringLoop(const LoopOptions& options, LoopHandler* handler)
      : LoopBase(options, handler) {}

  ~UringLoop() override {
    // Unregisters the buffer ring before its memory goes.
    if (ring_ready_) io_uring_queue_exit(&ring_);
    if (buf_ring_ != nullptr) munmap(buf_ring_, BufRingBytes());
  }

  absl::Status Init() {
    io_uring_params params{};
    // Completions are only reaped by the loop thread: no need for the kernel
    // to interrupt it to run task work.
    params.flags = IORING_SETUP_COOP_TASKRUN;
    int rc = io_uring_queue_init_params(options_.ring_entries, &ring_, &params);
    if (rc == -EINVAL) {
      params = io_uring_params{};
      rc = io_uring_queue_init_params(options_.ring_entries, &ring_, &params);
    }
    if (rc < 0) return ErrnoToStatus(-rc, "io_uring_queue_init");
    ring_ready_ = true;
    EDGEROUTE_RETURN_IF_ERROR(SetUpBufferRing());
    EDGEROUTE_RETURN_IF_ERROR(CreateWakeFd(/*non_blocking=*/false));
    return CreateTickFd(/*non_blocking=*/false);
  }

  IoBackend backend() const override { return IoBackend::kIoUring; }

  void Run() override {
    accepts_.resize(listen_fds_.size());
    for (size_t i = 0; i < listen_fds_.size(); ++i) ArmAccept(i);
    ArmWake();
    if (tick_fd_ >= 0) ArmTick();
    while (!stopping()) {
      const int rc = io_uring_submit_and_wait(&ring_, 1);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        std::fprintf(stderr,
                     "edgeroute gateway: io_uring_submit_and_wait: %s\n",
                     std::strerror(-rc));
        break;
      }
      ReapCompletions();
      RearmStarved();
      AfterPass();
    }
    Shutdown();
  }

 private:
  enum Kind : uintptr_t {
    kRecv = 1,
    kSend = 2,
    kAccept = 3,
    kWake = 4,
    kCancel = 5,
    kTick = 6,
    kAcceptRetry = 7,  // accept ran out of descriptors: wait for a client
  };

  static uint64_t Tag(const void* p, Kind kind) {
    return reinterpret_cast<uintptr_t>(p) | kind;
  }

  bool NonBlockingSockets() const override { return false; }

  // Receives use buffers the kernel picks from a ring of the loop's
  // (IOSQE_BUFFER_SELECT) when data arrives, so an idle connection with a
  // receive in flight holds no buffer. Buffers return to the ring as soon
  // as their bytes were handed out.
  // A power of two. Only the pages that data reached are resident: small
  // messages touch one page per buffer, bulk transfers all of them.
  static constexpr unsigned kRingBuffers = 128;
  static constexpr uint16_t kBufferGroup = 0;

  size_t BufRingBytes() const { return kRingBuffers * sizeof(io_uring_buf); }
  size_t BufferStride() const {
    return (kRecvBase + options_.recv_chunk_bytes + 7) / 8 * 8;
  }
  uint8_t* BufferData(unsigned id) {
    return reinterpret_cast<uint8_t*>(buffers_.get()) + id * BufferStride() +
           kRecvBase;
  }

  absl::Status SetUpBufferRing() {
    void* ring = mmap(nullptr, BufRingBytes(), PROT_READ | PROT_WRITE,
                      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring == MAP_FAILED) return ErrnoToStatus(errno, "mmap(buffer ring)");
    buf_ring_ = static_cast<io_uring_buf_ring*>(ring);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uintptr_t>(ring);
    reg.ring_entries = kRingBuffers;
    reg.bgid = kBufferGroup;
    const int rc = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (rc < 0) {
      // Kernels before 5.19; kAuto then uses epoll.
      return ErrnoToStatus(-rc, "io_uring_register_buf_ring");
    }
    io_uring_buf_ring_init(buf_ring_);
    // Untouched pages of this allocation cost no memory until used.
    buffers_ = AlignedBytes(kRingBuffers * BufferStride());
    for (unsigned id = 0; id < kRingBuffers; ++id) {
      io_uring_buf_ring_add(buf_ring_, BufferData(id),
                            static_cast<unsigned>(options_.recv_chunk_bytes),
                            static_cast<unsigned short>(id),
                            io_uring_buf_ring_mask(kRingBuffers),
                            static_cast<int>(id));
    }
    io_uring_buf_ring_advance(buf_ring_, kRingBuffers);
    return absl::OkStatus();
  }

  void RecycleBuffer(unsigned id) {
    io_uring_buf_ring_add(buf_ring_, BufferData(id),
                          static_cast<unsigned>(options_.recv_chunk_bytes),
                          static_cast<unsigned short>(id),
                          io_uring_buf_ring_mask(kRingBuffers), 0);
    io_uring_buf_ring_advance(buf_ring_, 1);
  }

  // Re-arms the receives that found the ring empty (all buffers are back
  // by now).
  void RearmStarved() {
    if (starved_.empty()) return;
    std::vector<ConnectionId> starved;
    starved.swap(starved_);
    for (ConnectionId id : starved) {
      Connection* c = Find(id);
      if (c != nullptr) ArmRecv(c);
    }
  }

  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      // Submission queue full: hand what we have to the kernel.
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  // Aligned so that its address can carry a 3-bit tag.
  struct alignas(8) Accept {
    int fd = -1;
    // See ArmAcceptRetry.
    __kernel_timespec retry_after{0, 100'000'000};
  };

  // io_uring's accept fails with EMFILE at once, pending connection or not:
  // re-arming it straight away would spin. After a failure that refused
  // nothing, accepting resumes when the next client is pending (then it is
  // accepted if a descriptor freed meanwhile, else refused at once), so a
  // client is not left waiting for a timer. Only when a client is pending
  // already -- it could not be refused, the spare descriptor being lost --
  // does accepting resume after a pause instead, which a poll would not
  // make.
  void ArmAcceptRetry(size_t index) {
    Accept& a = accepts_[index];
    io_uring_sqe* sqe = Sqe();
    pollfd pending{listen_fds_[index], POLLIN, 0};
    if (poll(&pending, 1, 0) == 1) {
      io_uring_prep_timeout(sqe, &a.retry_after, 0, 0);
    } else {
      io_uring_prep_poll_add(sqe, listen_fds_[index], POLLIN);
    }
    io_uring_sqe_set_data64(sqe, Tag(&a, kAcceptRetry));
    ++inflight_;
  }

  void ArmAccept(size_t index) {
    Accept& a = accepts_[index];
    a.fd = listen_fds_[index];
    io_uring_sqe* sqe = Sqe();
    // One accept at a time, re-armed per connection: a multishot accept on
    // a process out of descriptors was seen to stop completing at all
    // (pending connections hung), and a Unix listener refused it.
    io_uring_prep_accept(sqe, a.fd, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, Tag(&a, kAccept));
    ++inflight_;
  }

  void ArmWake() {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
    io_uring_sqe_set_data64(sqe, Tag(&wake_value_, kWake));
    ++inflight_;
  }

  void ArmTick() {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_read(sqe, tick_fd_, &tick_value_, sizeof(tick_value_), 0);
    io_uring_sqe_set_data64(sqe, Tag(&tick_value_, kTick));
    ++inflight_;
  }

  void SetReading(Connection* c, bool on) override {
    // Stopping needs nothing: a paused connection is not re-armed, and what
    // a receive already in flight brings is held.
    if (on) ArmRecv(c);
  }

  void ArmRecv(Connection* c) {
    if (c->recv_armed || !c->open || c->terminated || c->read_paused) return;
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_recv(sqe, c->fd, nullptr, options_.recv_chunk_bytes, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(sqe, Tag(c, kRecv));
    c->recv_armed = true;
    ++c->ops;
    ++inflight_;
  }

  void FlushOutput(Connection* c) override {
    if (c->send_armed) return;  // its completion continues the flush
    if (c->sent == c->sending.size() && !RefillSending(c)) return;
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_send(sqe, c->fd, c->sending.data() + c->sent,
                       c->sending.size() - c->sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, Tag(c, kSend));
    c->send_armed = true;
    ++c->ops;
    ++inflight_;
  }

  void Terminate(Connection* c) override {
    // Completes the recv (and fails a pending send) so the buffers are free.
    shutdown(c->fd, SHUT_RDWR);
    if (c->ops == 0) Erase(c);
  }

  void ReapCompletions() {
    unsigned head;
    unsigned count = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++count;
      Complete(cqe->user_data, cqe->res, cqe->flags);
    }
    io_uring_cq_advance(&ring_, count);
  }

  void Complete(uint64_t data, int res, unsigned flags) {
    const Kind kind = static_cast<Kind>(data & 7);
    void* p = reinterpret_cast<void*>(data & ~uint64_t{7});
    if (kind == kCancel) return;
    if (kind == kAccept && (flags & IORING_CQE_F_MORE)) {
      // Multishot accept stays armed; not a completed operation.
    } else {
      --inflight_;
    }
    switch (kind) {
      case kAccept:
        OnAccept(static_cast<Accept*>(p), res, flags);
        break;
      case kAcceptRetry:
        if (!draining_) {
          ArmAccept(
              static_cast<size_t>(static_cast<Accept*>(p) - accepts_.data()));
        }
        break;
      case kWake:
        RunPosted();
        if (!draining_) ArmWake();
        break;
      case kTick:
        if (!draining_) {
          if (res > 0) handler_->OnTick();
          ArmTick();
        }
        break;
      case kRecv:
        OnRecv(static_cast<Connection*>(p), res, flags);
        break;
      case kSend:
        OnSend(static_cast<Connection*>(p), res);
        break;
      case kCancel:
        break;
    }
  }

  void OnAccept(Accept* a, int res, unsigned flags) {
    if (res >= 0) {
      if (draining_) {
        close(res);
      } else {
        Connection* c =
            AddConnection(res, static_cast<size_t>(a - accepts_.data()));
        if (c != nullptr) ArmRecv(c);
      }
    } else if ((res == -EMFILE || res == -ENFILE) && !draining_) {
      const size_t index = static_cast<size_t>(a - accepts_.data());
      // Progress (a pending connection refused): accept again at once;
      // otherwise wait, since the failure would repeat immediately.
      if (!ShedOnePending(index) && !(flags & IORING_CQE_F_MORE)) {
        ArmAcceptRetry(index);
        return;
      }
    } else if (res != -ECANCELED && !draining_) {
      std::fprintf(stderr, "edgeroute gateway: accept: %s\n",
                   std::strerror(-res));
    }
    if (!(flags & IORING_CQE_F_MORE) && !draining_) {
      ArmAccept(static_cast<size_t>(a - accepts_.data()));
    }
  }

  void OnRecv(Connection* c, int res, unsigned flags) {
    c->recv_armed = false;
    --c->ops;
    const bool has_buffer = (flags & IORING_CQE_F_BUFFER) != 0;
    const unsigned buffer = flags >> IORING_CQE_BUFFER_SHIFT;
    if (res > 0 && c->open && has_buffer) {
      OnWireInput(c, BufferData(buffer), static_cast<size_t>(res));
      ArmRecv(c);
    } else if (res == -ENOBUFS && c->open) {
      starved_.push_back(c->id);
    } else if (c->open) {
      Fail(c, res == 0 ? CloseReason::kPeerClosed : CloseReason::kIoError);
    }
    if (has_buffer) RecycleBuffer(buffer);
    if (c->terminated && c->ops == 0) Erase(c);
  }

  void OnSend(Connection* c, int res) {
    c->send_armed = false;
    --c->ops;
    if (res < 0) {
      Fail(c, CloseReason::kIoError);
    } else {
      c->sent += static_cast<size_t>(res);
      if (!c->terminated) {
        FlushOutput(c);
        if (!c->open && !c->send_armed) closing_.push_back(c->id);
      }
    }
    if (c->terminated && c->ops == 0) Erase(c);
  }

  // Cancels everything in flight and waits for the kernel to let go of our
  // buffers before they are freed.
  void Shutdown() {
    draining_ = true;
    for (int fd : listen_fds_) shutdown(fd, SHUT_RDWR);
    CloseAll();
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_cancel64(sqe, 0,
                           IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, Tag(nullptr, kCancel));
    for (int i = 0; i < 100 && (inflight_ > 0 || !connections_.empty()); ++i) {
      __kernel_timespec ts{0, 50'000'000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      ReapCompletions();
      AfterPass();
    }
    RunPosted();
  }

  io_uring ring_{};
  bool ring_ready_ = false;
  bool draining_ = false;
  std::vector<Accept> accepts_;
  alignas(8) uint64_t wake_value_ = 0;
  alignas(8) uint64_t tick_value_ = 0;
  io_uring_buf_ring* buf_ring_ = nullptr;
  std::unique_ptr<uint64_t[]> buffers_;
  // Connections whose receive found no buffer, to re-arm after this pass.
  std::vector<ConnectionId> starved_;
  // Operations submitted and not yet completed.
  int64_t inflight_ = 0;
};

// ---------------------------------------------------------------------------
// epoll backend.

class EpollLoop final : public LoopBase {
 public:
  EpollLoop(const LoopOptions& options, LoopHandler* handler)
      : LoopBase(options, handler) {}

  ~EpollLoop() override {
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  absl::Status Init() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return ErrnoToStatus(errno, "epoll_create1");
    EDGEROUTE_RETURN_IF_ERROR(CreateWakeFd(/*non_blocking=*/true));
    EDGEROUTE_RETURN_IF_ERROR(Add(wake_fd_, EPOLLIN, Tag(nullptr, kWake)));
    EDGEROUTE_RETURN_IF_ERROR(CreateTickFd(/*non_blocking=*/true));
    if (tick_fd_ >= 0) {
      EDGEROUTE_RETURN_IF_ERROR(Add(tick_fd_, EPOLLIN, Tag(nullptr, kTick)));
    }
    return absl::OkStatus();
  }

  IoBackend backend() const override { return IoBackend::kEpoll; }

  void Run() override {
    for (size_t i = 0; i < listen_fds_.size(); ++i) {
      Add(listen_fds_[i], EPOLLIN, (i << 3) | kAccept).IgnoreError();
    }
    epoll_event events[128];
    while (!stopping()) {
      const int n = epoll_wait(epoll_fd_, events, 128, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::fprintf(stderr, "edgeroute gateway: epoll_wait: %s\n",
                     std::strerror(errno));
        break;
      }
      for (int i = 0; i < n; ++i) Handle(events[i]);
      AfterPass();
    }
    CloseAll();
    RunPosted();
  }

 private:
  enum Kind : uint64_t { kConn = 1, kAccept = 2, kWake = 3, kTick = 4 };

  static uint64_t Tag(const void* p, Kind kind) {
    return reinterpret_cast<uintptr_t>(p) | kind;
  }

  bool NonBlockingSockets() const override { return true; }

  absl::Status Add(int fd, uint32_t events, uint64_t data) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = data;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return ErrnoToStatus(errno, "epoll_ctl(ADD)");
    }
    return absl::OkStatus();
  }

  void Handle(const epoll_event& ev) {
    const Kind kind = static_cast<Kind>(ev.data.u64 & 7);
    if (kind == kWake) {
      uint64_t value;
      ssize_t ignored = read(wake_fd_, &value, sizeof(value));
      (void)ignored;
      RunPosted();
      return;
    }
    if (kind == kTick) {
      uint64_t expirations = 0;
      if (read(tick_fd_, &expirations, sizeof(expirations)) > 0) {
        handler_->OnTick();
      }
      return;
    }
    if (kind == kAccept) {
      AcceptAll(static_cast<size_t>(ev.data.u64 >> 3));
      return;
    }
    Connection* c = reinterpret_cast<Connection*>(ev.data.u64 & ~uint64_t{7});
    if (c->terminated) return;
    if (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ReadSome(c);
    if (!c->terminated && (ev.events & EPOLLOUT)) {
      FlushOutput(c);
      if (!c->open) closing_.push_back(c->id);
    }
  }

  void AcceptAll(size_t listener) {
    for (int i = 0; i < 64; ++i) {
      const int fd = accept4(listen_fds_[listener], nullptr, nullptr,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
          if (ShedOnePending(listener)) continue;
          return;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          std::fprintf(stderr, "edgeroute gateway: accept: %s\n",
                       std::strerror(errno));
        }
        return;
      }
      Connection* c = AddConnection(fd, listener);
      if (c == nullptr) continue;
      if (!Add(fd, EPOLLIN | EPOLLRDHUP, Tag(c, kConn)).ok()) {
        Fail(c, CloseReason::kIoError);
      }
    }
  }

  void ReadSome(Connection* c) {
    // A few reads per readiness event keep one busy peer from starving the
    // others; level triggering brings us back. Every connection reads into
    // the one loop buffer, so an idle connection holds none.
    if (recv_buffer_ == nullptr) {
      recv_buffer_ = AlignedBytes(kRecvBase + options_.recv_chunk_bytes);
    }
    uint8_t* space = reinterpret_cast<uint8_t*>(recv_buffer_.get()) + kRecvBase;
    for (int i = 0; i < 4 && c->open && (i == 0 || !c->read_paused); ++i) {
      const ssize_t n = recv(c->fd, space, options_.recv_chunk_bytes, 0);
      if (n > 0) {
        OnWireInput(c, space, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < options_.recv_chunk_bytes) break;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0 && errno == EINTR) continue;
      Fail(c, n == 0 ? CloseReason::kPeerClosed : CloseReason::kIoError);
      return;
    }
    if (!c->open && !c->flush_then_close) closing_.push_back(c->id);
  }

  void FlushOutput(Connection* c) override {
    while (true) {
      if (c->sent == c->sending.size() && !RefillSending(c)) break;
      const ssize_t n = send(c->fd, c->sending.data() + c->sent,
                             c->sending.size() - c->sent, MSG_NOSIGNAL);
      if (n >= 0) {
        c->sent += static_cast<size_t>(n);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        SetWantWrite(c, true);
        return;
      }
      Fail(c, CloseReason::kIoError);
      return;
    }
    SetWantWrite(c, false);
  }

  void SetWantWrite(Connection* c, bool want) {
    if (c->want_write == want) return;
    c->want_write = want;
    UpdateEvents(c);
  }

  void SetReading(Connection* c, bool on) override {
    UpdateEvents(c);
    // Level triggering reports bytes that arrived while paused again.
    (void)on;
  }

  // Registers the events the connection waits for: input unless paused
  // (hang-ups and errors are reported regardless, and then read), output
  // while the kernel's buffer is full.
  void UpdateEvents(Connection* c) {
    epoll_event ev{};
    ev.events = (c->read_paused ? 0u : (EPOLLIN | EPOLLRDHUP)) |
                (c->want_write ? EPOLLOUT : 0u);
    ev.data.u64 = Tag(c, kConn);
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
  }

  void Terminate(Connection* c) override {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
    // Events for it may still sit in this pass's array; free after the pass.
    Erase(c);
  }

  int epoll_fd_ = -1;
  // What every connection reads into.
  std::unique_ptr<uint64_t[]> recv_buffer_;
};

}  // namespace

const char* IoBackendName(IoBackend backend) {
  switch (backend) {
    case IoBackend::kAuto:
      return "auto";
    case IoBackend::kIoUring:
      return "io_uring";
    case IoBackend::kEpoll:
      return "epoll";
  }
  return "unknown";
}

const char* CloseReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kPeerClosed:
      return "peer closed";
    case CloseReason::kIoError:
      return "I/O error";
    case CloseReason::kBadFrame:
      return "bad frame";
    case CloseReason::kByHandler:
      return "closed by gateway";
    case CloseReason::kSlowConsumer:
      return "slow consumer";
    case CloseReason::kShutdown:
      return "shutdown";
    case CloseReason::kTlsFailed:
      return "TLS failure";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create(
    const LoopOptions& options, LoopHandler* handler) {
  IoBackend backend = options.backend;
  if (backend == IoBackend::kAuto) {
    const char* env = std::getenv("EDGEROUTE_IO_BACKEND");
    if (env != nullptr && std::strcmp(env, "epoll") == 0) {
      backend = IoBackend::kEpoll;
    } else if (env != nullptr && std::strcmp(env, "io_uring") == 0) {
      backend = IoBackend::kIoUring;
    }
  }
  if (backend != IoBackend::kEpoll) {
    auto loop = std::make_unique<UringLoop>(options, handler);
    absl::Status status = loop->Init();
    if (status.ok()) return std::unique_ptr<EventLoop>(std::move(loop));
    if (backend == IoBackend::kIoUring) return status;
    std::fprintf(stderr,
                 "edgeroute gateway: io_uring unavailable (%s); using epoll\n",
                 std::string(status.message()).c_str());
  }
  auto loop = std::make_unique<EpollLoop>(options, handler);
  EDGEROUTE_RETURN_IF_ERROR(loop->Init());
  return std::unique_ptr<EventLoop>(std::move(loop));
}

}  // namespace gateway
}  // namespace edgeroute
