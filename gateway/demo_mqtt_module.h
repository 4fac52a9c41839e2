// A module as Azure IoT Edge modules talk to their hub, for the demo: MQTT
// 3.1.1 over TLS in the IoT Hub dialect, signed in with a SAS token, built
// on libmosquitto (Eclipse Mosquitto's client library) so that the demo's
// modules use a client nobody here wrote.
//
//   Send     -- QoS 1 PUBLISH of one output event (`$.on`, properties in
//               the topic's property bag); the gateway's PUBACK counts as
//               its acknowledgement (admitted, durable with a store).
//   Receive  -- the next input message (SubscribeInputs first). libmosquitto
//               acknowledges a QoS 1 delivery when it arrives.
//
// Thread-safety: Send, Receive and the counters may be called from any one
// thread at a time each; libmosquitto's network thread fills the queues.

#ifndef EDGEROUTE_GATEWAY_DEMO_MQTT_MODULE_H_
#define EDGEROUTE_GATEWAY_DEMO_MQTT_MODULE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgeroute {
namespace gateway {

using PropertyList = std::vector<std::pair<std::string, std::string>>;

struct DemoMqttOptions {
  std::string host = "127.0.0.1";
  int port = 8883;
  // PEM file of the CA that signed the gateway's certificate.
  std::string ca_file;
  std::string hub;
  std::string device_id;
  std::string module_id;
  // "SharedAccessSignature sr=...&sig=...&se=..."
  std::string sas_token;
  int keepalive_seconds = 60;
  int connect_timeout_ms = 10000;
};

struct DemoInput {
  std::string input;        // the module input it was routed to
  PropertyList properties;  // application and system ($.xx) properties
  std::string body;
};

class DemoMqttModule {
 public:
  // Connects (TLS, CONNECT with the token) and waits for the CONNACK.
  static absl::StatusOr<std::unique_ptr<DemoMqttModule>> Connect(
      const DemoMqttOptions& options);
  // Disconnects and joins libmosquitto's thread.
  ~DemoMqttModule();
  DemoMqttModule(const DemoMqttModule&) = delete;
  DemoMqttModule& operator=(const DemoMqttModule&) = delete;

  // Publishes `body` on `output` with `properties` (QoS 1). `content_json`
  // adds $.ct=application/json and $.ce=utf-8 so routes can read $body.
  absl::Status Send(absl::string_view output, const PropertyList& properties,
                    absl::string_view body, bool content_json);
  // PUBACKs received for Sends so far (the gateway acknowledges in order).
  uint64_t acks() const;
  // Waits until acks() >= n; DeadlineExceeded after `timeout_ms`.
  absl::Status WaitForAcks(uint64_t n, int timeout_ms);

  // Subscribes devices/{d}/modules/{m}/inputs/# and waits for the SUBACK.
  absl::Status SubscribeInputs(int timeout_ms);
  // The next input message; DeadlineExceeded after `timeout_ms`.
  absl::StatusOr<DemoInput> Receive(int timeout_ms);

  // OK while connected; the reason once the connection is lost.
  absl::Status status() const;

  struct State;  // shared with libmosquitto's callbacks

 private:
  explicit DemoMqttModule(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_DEMO_MQTT_MODULE_H_
