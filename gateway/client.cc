#include "gateway/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "message/status.h"

namespace edgeroute {
namespace gateway {
namespace {

// As in the event loop: frames start at 4 mod 8 so padded payloads are
// 8-byte aligned.
constexpr size_t kRecvBase = 4;
constexpr size_t kRecvChunk = 64u << 10;

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<int> Dial(absl::string_view address) {
  if (absl::ConsumePrefix(&address, "unix:")) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (address.empty() || address.size() >= sizeof(addr.sun_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad Unix socket path '", address, "'"));
    }
    std::memcpy(addr.sun_path, address.data(), address.size());
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoToStatus(errno, "socket");
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      const int e = errno;
      close(fd);
      return ErrnoToStatus(e, absl::StrCat("connect unix:", address));
    }
    return fd;
  }
  absl::ConsumePrefix(&address, "tcp:");
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address must be unix:PATH, tcp:HOST:PORT or HOST:PORT, got '", address,
        "'"));
  }
  std::string host(address.substr(0, colon));
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an IPv4 address: '", host, "'"));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    close(fd);
    return ErrnoToStatus(e, absl::StrCat("connect ", host, ":", port));
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    absl::string_view address, const ClientOptions& options) {
  EDGEROUTE_ASSIGN_OR_RETURN(int fd, Dial(address));
  return std::unique_ptr<Client>(new Client(fd, options));
}

Client::Client(int fd, const ClientOptions& options)
    : fd_(fd),
      options_(options),
      decoder_(options.max_frame_bytes),
      rbuf_((kRecvChunk + kRecvBase + 7) / 8),
      rbeg_(kRecvBase),
      rend_(kRecvBase) {}

Client::~Client() { close(fd_); }

absl::Status Client::Flush() {
  size_t done = 0;
  while (done < out_.size()) {
    const ssize_t n =
        send(fd_, out_.data() + done, out_.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      if (poll(&p, 1, options_.timeout_ms) == 0) {
        out_.erase(0, done);
        return absl::DeadlineExceededError("gateway is not reading");
      }
      continue;
    }
    out_.clear();
    return ErrnoToStatus(errno, "send to gateway");
  }
  out_.clear();
  return absl::OkStatus();
}

absl::Status Client::MaybeFlush() {
  return out_.size() >= options_.send_buffer_bytes ? Flush() : absl::OkStatus();
}

absl::Status Client::ReadMore(int timeout_ms) {
  if (rbeg_ == rend_) rbeg_ = rend_ = kRecvBase;
  const size_t capacity = rbuf_.size() * sizeof(uint64_t);
  if (capacity - rend_ < kRecvChunk) {
    const size_t unread = rend_ - rbeg_;
    uint8_t* base = reinterpret_cast<uint8_t*>(rbuf_.data());
    if (rbeg_ > kRecvBase) {
      std::memmove(base + kRecvBase, base + rbeg_, unread);
      rbeg_ = kRecvBase;
      rend_ = kRecvBase + unread;
    }
    if (capacity - rend_ < kRecvChunk) {
      rbuf_.resize((rend_ + kRecvChunk + 7) / 8);
    }
  }
  pollfd p{fd_, POLLIN, 0};
  const int ready = poll(&p, 1, timeout_ms);
  if (ready < 0 && errno != EINTR) return ErrnoToStatus(errno, "poll");
  if (ready <= 0) return absl::DeadlineExceededError("no data from gateway");
  uint8_t* base = reinterpret_cast<uint8_t*>(rbuf_.data());
  const ssize_t n =
      recv(fd_, base + rend_, rbuf_.size() * sizeof(uint64_t) - rend_, 0);
  if (n == 0) return absl::UnavailableError("gateway closed the connection");
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return absl::OkStatus();
    return ErrnoToStatus(errno, "recv from gateway");
  }
  rend_ += static_cast<size_t>(n);
  return absl::OkStatus();
}

absl::Status Client::ErrorStatus(const DecodedFrame& frame) const {
  const fb::ErrorCode code = frame.error()->code();
  const std::string text = absl::StrCat("gateway error ", ErrorCodeName(code),
                                        ": ", FieldView(frame.error()->text()));
  switch (code) {
    case fb::ErrorCode::kBadFrame:
    case fb::ErrorCode::kFrameTooLarge:
      return absl::InvalidArgumentError(text);
    case fb::ErrorCode::kOverloaded:
    case fb::ErrorCode::kSlowConsumer:
      return absl::ResourceExhaustedError(text);
    case fb::ErrorCode::kShuttingDown:
    case fb::ErrorCode::kReplaced:
      return absl::UnavailableError(text);
    case fb::ErrorCode::kNotAuthorized:
      return absl::PermissionDeniedError(text);
    default:
      return absl::FailedPreconditionError(text);
  }
}

absl::StatusOr<bool> Client::NextDeliver(Delivery* out) {
  rbeg_ += consume_after_;
  consume_after_ = 0;
  while (true) {
    const uint8_t* base = reinterpret_cast<const uint8_t*>(rbuf_.data());
    absl::Span<const uint8_t> payload;
    size_t consumed = 0;
    const SplitResult r =
        SplitFrame(absl::MakeConstSpan(base + rbeg_, rend_ - rbeg_),
                   options_.max_frame_bytes, &payload, &consumed);
    if (r == SplitResult::kNeedMore) {
      // Make sure a frame larger than the buffer fits.
      if (consumed > 0 && kRecvBase + consumed > rbuf_.size() * 8) {
        const size_t unread = rend_ - rbeg_;
        std::vector<uint64_t> bigger((kRecvBase + consumed + kRecvChunk + 7) /
                                     8);
        std::memcpy(reinterpret_cast<uint8_t*>(bigger.data()) + kRecvBase,
                    base + rbeg_, unread);
        rbuf_.swap(bigger);
        rbeg_ = kRecvBase;
        rend_ = kRecvBase + unread;
      }
      return false;
    }
    if (r != SplitResult::kFrame) {
      return absl::DataLossError("gateway sent a malformed frame prefix");
    }
    DecodedFrame frame;
    DecodeError error;
    if (!decoder_.Decode(payload, &frame, &error)) {
      return absl::DataLossError(
          absl::StrCat("gateway sent a bad frame: ", error.reason));
    }
    switch (frame.type) {
      case fb::Body::HelloAck:
        hello_acked_ = true;
        server_max_frame_ = frame.hello_ack()->max_frame_bytes();
        break;
      case fb::Body::TelemetryAck:
        ++acks_received_;
        if (frame.telemetry_ack()->code() != fb::ErrorCode::kUnknown) {
          ++acks_refused_;
          last_refusal_ = frame.telemetry_ack()->code();
        }
        break;
      case fb::Body::Error:
        return ErrorStatus(frame);
      case fb::Body::Deliver:
        out->delivery_id = frame.deliver()->delivery_id();
        out->input = FieldView(frame.deliver()->input());
        out->message = frame.message;
        consume_after_ = consumed;
        return true;
      default:
        break;  // nothing else is sent to clients; ignore
    }
    rbeg_ += consumed;
  }
}

absl::Status Client::Hello(absl::string_view device_id,
                           absl::string_view module_id,
                           uint32_t protocol_version) {
  encoder_.Hello(device_id, module_id, &out_, protocol_version,
                 options_.sas_token);
  EDGEROUTE_RETURN_IF_ERROR(Flush());
  const int64_t deadline = NowMillis() + options_.timeout_ms;
  while (!hello_acked_) {
    Delivery ignored;
    EDGEROUTE_ASSIGN_OR_RETURN(bool got, NextDeliver(&ignored));
    if (got) return absl::DataLossError("Deliver before HelloAck");
    if (hello_acked_) break;
    const int64_t left = deadline - NowMillis();
    if (left <= 0) return absl::DeadlineExceededError("no HelloAck");
    EDGEROUTE_RETURN_IF_ERROR(ReadMore(static_cast<int>(left)));
  }
  return absl::OkStatus();
}

absl::Status Client::Subscribe(
    std::initializer_list<absl::string_view> inputs) {
  return Subscribe(absl::MakeConstSpan(inputs.begin(), inputs.size()));
}

absl::Status Client::Subscribe(absl::Span<const absl::string_view> inputs) {
  encoder_.Subscribe(inputs, &out_);
  return Flush();
}

absl::StatusOr<uint64_t> Client::SendTelemetry(
    absl::string_view output, absl::Span<const uint8_t> message,
    bool want_ack) {
  const uint64_t sequence = want_ack ? next_sequence_++ : 0;
  encoder_.Telemetry(output, message, sequence, &out_);
  EDGEROUTE_RETURN_IF_ERROR(MaybeFlush());
  return sequence;
}

absl::Status Client::WaitForAcks(uint64_t count) {
  EDGEROUTE_RETURN_IF_ERROR(Flush());
  const int64_t deadline = NowMillis() + options_.timeout_ms;
  while (acks_received_ < count) {
    Delivery d;
    EDGEROUTE_ASSIGN_OR_RETURN(bool got, NextDeliver(&d));
    if (got) {
      // Leave the Deliver frame in the buffer for Receive.
      consume_after_ = 0;
      return absl::FailedPreconditionError(
          "a Deliver arrived while waiting for TelemetryAcks; call Receive");
    }
    if (acks_received_ >= count) break;
    const int64_t left = deadline - NowMillis();
    if (left <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "got ", acks_received_, " of ", count, " TelemetryAcks"));
    }
    EDGEROUTE_RETURN_IF_ERROR(ReadMore(static_cast<int>(left)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Delivery> Client::Receive(int timeout_ms) {
  EDGEROUTE_RETURN_IF_ERROR(Flush());
  const int64_t deadline = NowMillis() + timeout_ms;
  while (true) {
    Delivery d;
    EDGEROUTE_ASSIGN_OR_RETURN(bool got, NextDeliver(&d));
    if (got) return d;
    const int64_t left = deadline - NowMillis();
    if (left <= 0) return absl::DeadlineExceededError("no delivery");
    EDGEROUTE_RETURN_IF_ERROR(ReadMore(static_cast<int>(left)));
  }
}

absl::Status Client::Ack(uint64_t delivery_id) {
  encoder_.Ack(delivery_id, &out_);
  return MaybeFlush();
}

absl::Status Client::Nack(uint64_t delivery_id, bool retry) {
  encoder_.Nack(delivery_id, retry, &out_);
  return MaybeFlush();
}

}  // namespace gateway
}  // namespace edgeroute
