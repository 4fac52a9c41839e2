// What the upstream connector (connector.h) connects to and how: the
// `--upstream*` flags of `edgeroute run`, parsed and checked.
//
//   --upstream mqtt://HOST[:PORT]     any MQTT broker, plain TCP (1883)
//   --upstream mqtts://HOST[:PORT]    any MQTT broker over TLS (8883)
//   --upstream iothub://HOST[:PORT]   a parent hub in the IoT Hub dialect over
//                                     TLS (8883): a parent edgeroute or IoT Hub
// Repeatable: the URLs are tried in turn (all of one kind).
//
// Thread-safety: plain values and pure functions.

#ifndef EDGEROUTE_GATEWAY_UPSTREAM_OPTIONS_H_
#define EDGEROUTE_GATEWAY_UPSTREAM_OPTIONS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace edgeroute {
namespace gateway {
namespace upstream {

// The topic of a message for an MQTT broker (mqtt:// and mqtts://).
inline constexpr absl::string_view kDefaultTopicTemplate =
    "edgeroute/{deviceId}/{moduleId}/{outputName}";
// The api-version the IoT Hub dialect's user name carries.
inline constexpr absl::string_view kIotHubApiVersion = "2021-04-12";
// A message that would cross this many gateways is not forwarded (edgeHub's
// five layers; also what stops a routing loop).
inline constexpr int kMaxHops = 5;

// Lifetime of the SAS tokens made from --upstream-key (IoT Hub's SDKs use
// the same hour), and the range --upstream-token-ttl accepts.
inline constexpr absl::Duration kDefaultTokenLifetime = absl::Hours(1);
inline constexpr absl::Duration kMinTokenLifetime = absl::Seconds(5);
inline constexpr absl::Duration kMaxTokenLifetime = absl::Hours(24 * 365);

enum class Dialect : uint8_t {
  kMqtt,    // mqtt:// and mqtts://: topic template, MQTT 5 or 3.1.1
  kIotHub,  // iothub://: devices/{d}[/modules/{m}]/messages/events/{bag}
};

struct UpstreamUrl {
  Dialect dialect = Dialect::kMqtt;
  bool tls = false;
  std::string host;
  int port = 0;
  // As given, for log lines.
  std::string text;
};

// Parses mqtt://HOST[:PORT], mqtts://HOST[:PORT] or iothub://HOST[:PORT]
// (HOST may be an [IPv6] literal). InvalidArgument otherwise, saying why.
absl::StatusOr<UpstreamUrl> ParseUpstreamUrl(absl::string_view text);

struct UpstreamOptions {
  // Parsed --upstream URLs, tried in turn. Empty: no connector.
  std::vector<UpstreamUrl> urls;
  // MQTT protocol for mqtt:// and mqtts://: 5 (default) or 4 (3.1.1).
  // iothub:// always speaks 3.1.1.
  int protocol_level = 5;
  // mqtt:// and mqtts://: user name and password (optional).
  std::string username;
  std::string password;
  // mqtt:// and mqtts://: {deviceId}, {moduleId} and {outputName} are
  // replaced by the message's connectionDeviceId, connectionModuleId and
  // outputName system properties (URL-encoded; absent: empty).
  std::string topic_template = std::string(kDefaultTopicTemplate);
  // iothub://: this gateway's device id (--device); the client id.
  std::string device_id;
  // iothub://: hub name in the user name and the SAS token resource
  // (default: the URL's host).
  std::string hub;
  // iothub://: the device's symmetric key (base64): SAS tokens are made
  // from it, valid for token_lifetime (--upstream-token-ttl SECONDS) and
  // renewed (by reconnecting) after 80% of it.
  std::string key_base64;
  absl::Duration token_lifetime = kDefaultTokenLifetime;
  // A client certificate and its key (PEM files): the credential for
  // iothub:// without a key, optional for mqtts://.
  std::string cert_path;
  std::string cert_key_path;
  // CA bundle (PEM) that TLS servers are checked against; empty: the
  // system's trusted CAs.
  std::string ca_path;

  // Most PUBLISHes waiting for their PUBACK (lowered to the receive maximum
  // an MQTT 5 broker announces).
  int max_in_flight = 1000;
  int keep_alive_seconds = 60;
  // Reconnect delay after the n-th failure in a row: min(initial * 2^(n-1),
  // max), times a random factor in [0.5, 1] (jitter).
  absl::Duration backoff_initial = absl::Milliseconds(200);
  absl::Duration backoff_max = absl::Seconds(15);
  // A connection attempt (TCP, TLS and CONNACK) that takes longer fails.
  absl::Duration connect_timeout = absl::Seconds(15);

  // One line per event (connects, failures, drops). Not per message.
  std::function<void(absl::string_view)> log;
};

// Applies one `--upstream*` flag of `edgeroute run` (name with its leading
// dashes, e.g. "--upstream-topic") to `options`. NotFound for a name that is
// not an upstream flag; InvalidArgument for a bad value.
absl::Status SetUpstreamFlag(absl::string_view name, absl::string_view value,
                             UpstreamOptions* options);

// Checks the options as a whole once every flag is set (`device_id`
// included): URLs of one dialect, the credentials each dialect needs, a
// valid topic template. InvalidArgument saying what is wrong.
absl::Status ValidateUpstreamOptions(const UpstreamOptions& options);

// Checks a topic template: placeholders are {deviceId}, {moduleId} and
// {outputName}; no MQTT wildcards; not empty.
absl::Status ValidateTopicTemplate(absl::string_view topic_template);

}  // namespace upstream
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_UPSTREAM_OPTIONS_H_
