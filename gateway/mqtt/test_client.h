// A blocking MQTT client for tests, built on the codec: sends encoded
// packets and reads decoded ones, every read bounded by a timeout so that a
// broken server fails a test instead of hanging it. Plain TCP only.

#ifndef EDGEROUTE_GATEWAY_MQTT_TEST_CLIENT_H_
#define EDGEROUTE_GATEWAY_MQTT_TEST_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/mqtt/codec.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {

class TestClient {
 public:
  static absl::StatusOr<std::unique_ptr<TestClient>> Open(
      int port, int timeout_ms = 10000);
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  absl::Status Write(absl::string_view bytes);
  // The next packet. Its fields view into the client and stay valid until
  // the next Read.
  absl::StatusOr<Packet> Read();
  // True when the server closes the connection before sending another
  // packet (within the timeout).
  bool ReadsEof();

  // CONNECT (username "hub/{client_id}/?api-version=2021-04-12" unless
  // given) and the CONNACK's code; session_present is set from it.
  absl::StatusOr<ConnectCode> Connect(absl::string_view client_id,
                                      bool clean_session = true,
                                      uint16_t keep_alive = 60,
                                      const std::string* username = nullptr,
                                      const std::string* password = nullptr);
  bool session_present = false;

  // PUBLISH; with qos 1 waits for its PUBACK (skipping other packets).
  absl::Status Publish(absl::string_view topic, absl::string_view payload,
                       uint8_t qos, uint16_t packet_id = 1);
  // SUBSCRIBE to one filter; returns the SUBACK code.
  absl::StatusOr<uint8_t> Subscribe(absl::string_view filter, uint8_t qos,
                                    uint16_t packet_id = 1);
  absl::Status Puback(uint16_t packet_id);

 private:
  TestClient(int fd, int timeout_ms) : fd_(fd), timeout_ms_(timeout_ms) {}
  // Reads more bytes into buffer_; false on EOF, error or timeout.
  bool Fill();

  int fd_;
  int timeout_ms_;
  std::string buffer_;
  std::string last_;
};

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_MQTT_TEST_CLIENT_H_
