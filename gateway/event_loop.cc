#include "gateway/event_loop.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
#include "message/status.h"

namespace edgeroute {
namespace gateway {
namespace {

// Frames start at this offset of the receive buffer (and at this offset
// modulo 8 after compaction), so that the payload after the 4-byte prefix of
// a padded frame is 8-byte aligned.
constexpr size_t kRecvBase = 4;

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
    if (tls != nullptr) {
      return absl::UnimplementedError("TLS listeners are not available yet");
    }
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
    MarkDirty(c);
    return true;
  }

  void Close(ConnectionId id, bool flush) override {
    Connection* c = Find(id);
    if (c != nullptr) BeginClose(c, CloseReason::kByHandler, flush);
  }

  size_t QueuedBytes(ConnectionId id) const override {
    auto it = connections_.find(id);
    return it == connections_.end() ? 0 : Queued(*it->second);
  }

  size_t ConnectionCount() const override { return open_count_; }

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
    // Receive buffer, 8-byte aligned storage; unread bytes in [rbeg, rend).
    std::vector<uint64_t> rbuf;
    size_t rbeg = kRecvBase;
    size_t rend = kRecvBase;
    // Bytes the next frame needs in total, once its prefix is known.
    size_t need = 0;
    // Appended by the handler, not yet handed to the kernel.
    std::string out;
    // Handed to the kernel; `sent` bytes of it are done.
    std::string sending;
    size_t sent = 0;
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
    PeerInfo peer;

    uint8_t* bytes() { return reinterpret_cast<uint8_t*>(rbuf.data()); }
    size_t capacity() const { return rbuf.size() * sizeof(uint64_t); }
  };

  static size_t Queued(const Connection& c) {
    return c.out.size() + (c.sending.size() - c.sent);
  }

  // Whether listeners and accepted sockets are non-blocking (epoll).
  virtual bool NonBlockingSockets() const = 0;
  // Hands queued output to the kernel.
  virtual void FlushOutput(Connection* c) = 0;
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

  // A socket accepted on listen_fds_[listener].
  Connection* AddConnection(int fd, size_t listener) {
    auto owned = std::make_unique<Connection>();
    Connection* c = owned.get();
    c->id = next_id_++;
    c->fd = fd;
    DescribePeer(fd, listeners_[listener].unix_path, &c->peer);
    connections_.emplace(c->id, std::move(owned));
    ++open_count_;
    TuneAccepted(fd);
    handler_->OnOpen(c->id);
    return c;
  }

  Connection* Find(ConnectionId id) const {
    auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : it->second.get();
  }

  // Free space at the end of the receive buffer, compacting or growing it so
  // that at least one chunk (or the rest of the pending frame) fits.
  absl::Span<uint8_t> RecvSpace(Connection* c) {
    if (c->rbeg == c->rend) c->rbeg = c->rend = kRecvBase;
    const size_t unread = c->rend - c->rbeg;
    size_t want = options_.recv_chunk_bytes;
    if (c->need > unread) want = std::max(want, c->need - unread);
    auto free_bytes = [c] {
      return c->capacity() > c->rend ? c->capacity() - c->rend : 0;
    };
    if (free_bytes() < want && c->rbeg > kRecvBase) {
      std::memmove(c->bytes() + kRecvBase, c->bytes() + c->rbeg, unread);
      c->rbeg = kRecvBase;
      c->rend = kRecvBase + unread;
    }
    if (free_bytes() < want) {
      c->rbuf.resize((c->rend + want + 7) / 8);
    }
    return absl::MakeSpan(c->bytes() + c->rend, c->capacity() - c->rend);
  }

  // `n` bytes arrived at the end of the receive buffer: hand them out.
  void OnReceived(Connection* c, size_t n) {
    c->rend += n;
    if (options_.framing == Framing::kStream) {
      DeliverStream(c);
    } else {
      DeliverFrames(c);
    }
    if (c->rbeg == c->rend) c->rbeg = c->rend = kRecvBase;
  }

  void DeliverStream(Connection* c) {
    while (c->open && c->rbeg < c->rend) {
      const size_t unread = c->rend - c->rbeg;
      size_t consumed = 0;
      const bool keep = handler_->OnStream(
          c->id, absl::MakeConstSpan(c->bytes() + c->rbeg, unread), &consumed);
      c->rbeg += std::min(consumed, unread);
      if (!keep) {
        BeginClose(c, CloseReason::kByHandler, /*flush=*/true);
        return;
      }
      if (consumed == 0) break;
    }
    if (c->open && c->rend - c->rbeg > options_.max_frame_bytes + 16) {
      BeginClose(c, CloseReason::kBadFrame, /*flush=*/true);
    }
  }

  void DeliverFrames(Connection* c) {
    while (c->open) {
      absl::Span<const uint8_t> stream(c->bytes() + c->rbeg, c->rend - c->rbeg);
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
      c->rbeg += consumed;
      c->need = 0;
      if (!handler_->OnFrame(c->id, payload)) {
        BeginClose(c, CloseReason::kByHandler, /*flush=*/true);
        break;
      }
    }
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
    c->flush_then_close = flush && Queued(*c) > 0;
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
    close(c->fd);
    connections_.erase(c->id);
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
    if (ring_ready_) io_uring_queue_exit(&ring_);
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
  };

  static uint64_t Tag(const void* p, Kind kind) {
    return reinterpret_cast<uintptr_t>(p) | kind;
  }

  bool NonBlockingSockets() const override { return false; }

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
    bool multishot = true;
  };

  void ArmAccept(size_t index) {
    Accept& a = accepts_[index];
    a.fd = listen_fds_[index];
    io_uring_sqe* sqe = Sqe();
    if (a.multishot) {
      io_uring_prep_multishot_accept(sqe, a.fd, nullptr, nullptr, SOCK_CLOEXEC);
    } else {
      io_uring_prep_accept(sqe, a.fd, nullptr, nullptr, SOCK_CLOEXEC);
    }
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

  void ArmRecv(Connection* c) {
    if (c->recv_armed || !c->open || c->terminated) return;
    absl::Span<uint8_t> space = RecvSpace(c);
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_recv(sqe, c->fd, space.data(), space.size(), 0);
    io_uring_sqe_set_data64(sqe, Tag(c, kRecv));
    c->recv_armed = true;
    ++c->ops;
    ++inflight_;
  }

  void FlushOutput(Connection* c) override {
    if (c->send_armed) return;  // its completion continues the flush
    if (c->sent == c->sending.size()) {
      if (c->out.empty()) return;
      c->sending.clear();
      c->sent = 0;
      c->sending.swap(c->out);
    }
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
        OnRecv(static_cast<Connection*>(p), res);
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
        ArmRecv(AddConnection(res, static_cast<size_t>(a - accepts_.data())));
      }
    } else if (res == -EINVAL && a->multishot) {
      // Kernel without multishot accept: re-arm single accepts from now on.
      a->multishot = false;
    } else if (res != -ECANCELED && !draining_) {
      std::fprintf(stderr, "edgeroute gateway: accept: %s\n",
                   std::strerror(-res));
    }
    if (!(flags & IORING_CQE_F_MORE) && !draining_) {
      ArmAccept(static_cast<size_t>(a - accepts_.data()));
    }
  }

  void OnRecv(Connection* c, int res) {
    c->recv_armed = false;
    --c->ops;
    if (res > 0 && c->open) {
      OnReceived(c, static_cast<size_t>(res));
      ArmRecv(c);
    } else if (res <= 0 && c->open) {
      Fail(c, res == 0 ? CloseReason::kPeerClosed : CloseReason::kIoError);
    }
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
  // Operations submitted and not yet completed (multishot accepts count
  // once).
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
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          std::fprintf(stderr, "edgeroute gateway: accept: %s\n",
                       std::strerror(errno));
        }
        return;
      }
      Connection* c = AddConnection(fd, listener);
      if (!Add(fd, EPOLLIN | EPOLLRDHUP, Tag(c, kConn)).ok()) {
        Fail(c, CloseReason::kIoError);
      }
    }
  }

  void ReadSome(Connection* c) {
    // A few reads per readiness event keep one busy peer from starving the
    // others; level triggering brings us back.
    for (int i = 0; i < 4 && c->open; ++i) {
      absl::Span<uint8_t> space = RecvSpace(c);
      const ssize_t n = recv(c->fd, space.data(), space.size(), 0);
      if (n > 0) {
        OnReceived(c, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < space.size()) return;
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
      if (c->sent == c->sending.size()) {
        if (c->out.empty()) break;
        c->sending.clear();
        c->sent = 0;
        c->sending.swap(c->out);
      }
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
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u);
    ev.data.u64 = Tag(c, kConn);
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
  }

  void Terminate(Connection* c) override {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
    // Events for it may still sit in this pass's array; free after the pass.
    Erase(c);
  }

  int epoll_fd_ = -1;
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
