#include "gateway/mqtt/test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {

absl::StatusOr<std::unique_ptr<TestClient>> TestClient::Open(int port,
                                                             int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect: ", e));
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return std::unique_ptr<TestClient>(new TestClient(fd, timeout_ms));
}

TestClient::~TestClient() { close(fd_); }

absl::Status TestClient::Write(absl::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("send: ", errno));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

bool TestClient::Fill() {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, timeout_ms_) <= 0) return false;
  char chunk[65536];
  const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
  if (n <= 0) return false;
  buffer_.append(chunk, static_cast<size_t>(n));
  return true;
}

absl::StatusOr<Packet> TestClient::Read() {
  while (true) {
    Packet packet;
    size_t consumed = 0;
    DecodeError error;
    const DecodeStatus status = DecodePacket(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(buffer_.data()),
                            buffer_.size()),
        1u << 26, &packet, &consumed, &error);
    if (status == DecodeStatus::kError) {
      return absl::DataLossError(absl::StrCat("bad packet: ", error.what));
    }
    if (status == DecodeStatus::kPacket) {
      last_.assign(buffer_, 0, consumed);
      buffer_.erase(0, consumed);
      // Decode again from last_, so that the views outlive buffer_ edits.
      DecodePacket(
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(last_.data()),
                              last_.size()),
          1u << 26, &packet, &consumed, &error);
      return packet;
    }
    if (!Fill()) {
      return absl::DeadlineExceededError("no packet (closed or timed out)");
    }
  }
}

bool TestClient::ReadsEof() {
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms_) <= 0) return false;
    char chunk[4096];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

absl::StatusOr<ConnectCode> TestClient::Connect(absl::string_view client_id,
                                                bool clean_session,
                                                uint16_t keep_alive,
                                                const std::string* username,
                                                const std::string* password) {
  mqtt::Connect c;
  c.client_id = client_id;
  c.clean_session = clean_session;
  c.keep_alive_secs = keep_alive;
  const std::string default_username =
      absl::StrCat("hub/", client_id, "/?api-version=2021-04-12");
  c.has_username = true;
  c.username = username != nullptr ? *username : default_username;
  if (password != nullptr) {
    c.has_password = true;
    c.password = *password;
  }
  std::string bytes;
  EncodeConnect(c, &bytes);
  absl::Status s = Write(bytes);
  if (!s.ok()) return s;
  absl::StatusOr<Packet> p = Read();
  if (!p.ok()) return p.status();
  if (p->type != PacketType::kConnack) {
    return absl::DataLossError("expected CONNACK");
  }
  session_present = p->connack.session_present;
  return p->connack.code;
}

absl::Status TestClient::Publish(absl::string_view topic,
                                 absl::string_view payload, uint8_t qos,
                                 uint16_t packet_id) {
  mqtt::Publish pub;
  pub.topic = topic;
  pub.payload = payload;
  pub.qos = qos;
  pub.packet_id = packet_id;
  std::string bytes;
  EncodePublish(pub, &bytes);
  absl::Status s = Write(bytes);
  if (!s.ok() || qos == 0) return s;
  while (true) {
    absl::StatusOr<Packet> p = Read();
    if (!p.ok()) return p.status();
    if (p->type == PacketType::kPuback && p->packet_id == packet_id) {
      return absl::OkStatus();
    }
  }
}

absl::StatusOr<uint8_t> TestClient::Subscribe(absl::string_view filter,
                                              uint8_t qos, uint16_t packet_id) {
  const TopicRequest request{filter, qos};
  std::string bytes;
  EncodeSubscribe(packet_id, absl::MakeConstSpan(&request, 1), &bytes);
  absl::Status s = Write(bytes);
  if (!s.ok()) return s;
  while (true) {
    absl::StatusOr<Packet> p = Read();
    if (!p.ok()) return p.status();
    if (p->type == PacketType::kSuback && p->packet_id == packet_id) {
      return static_cast<uint8_t>(p->suback_codes[0]);
    }
  }
}

absl::Status TestClient::Puback(uint16_t packet_id) {
  std::string bytes;
  EncodePacketId(PacketType::kPuback, packet_id, &bytes);
  return Write(bytes);
}

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute
