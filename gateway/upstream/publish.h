// How one routed message becomes one MQTT PUBLISH upstream: its topic, its
// MQTT 5 properties, and whether it may go at all (the hop limit).
//
//   mqtt://, MQTT 5:   topic = the template expanded; application properties
//                      -> user properties, contentType -> content type, cid
//                      -> correlation data, remaining TTL -> message expiry
//                      interval (whole seconds, rounded up).
//   mqtt://, 3.1.1:    topic = the template expanded + "/" + the IoT Hub
//                      property bag (mqtt/iothub.h), when there is one.
//   iothub://:         devices/{cdid}[/modules/{cmid}]/messages/events/{bag}
//                      with $.hops={h+1} in the bag (h: the message's "hops"
//                      system property, decimal, absent = 0).
// Every dialect: a message with h+1 >= kMaxHops is not sent (kHopLimit).
//
// Thread-safety: a PublishBuilder is immutable after construction; a
// Publish is used by one thread at a time.

#ifndef EDGEROUTE_GATEWAY_UPSTREAM_PUBLISH_H_
#define EDGEROUTE_GATEWAY_UPSTREAM_PUBLISH_H_

#include <mosquitto.h>

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "gateway/upstream/options.h"
#include "message/message.h"

namespace edgeroute {
namespace gateway {
namespace upstream {

// The system property a parent hub stamps with the number of gateways a
// message has crossed (from the $.hops key of the bag).
inline constexpr absl::string_view kHopsProperty = "hops";
inline constexpr absl::string_view kHopsBagKey = "%24.hops";
// Longest topic MQTT can carry.
inline constexpr size_t kMaxTopicBytes = 65535;

// One PUBLISH, rebuilt for every message (its buffers are reused).
// Move-only: owns its libmosquitto property list.
class Publish {
 public:
  Publish() = default;
  ~Publish() { mosquitto_property_free_all(&properties_); }
  Publish(const Publish&) = delete;
  Publish& operator=(const Publish&) = delete;

  const std::string& topic() const { return topic_; }
  // MQTT 5 properties (nullptr: none). Owned by this Publish.
  const mosquitto_property* properties() const { return properties_; }

 private:
  friend class PublishBuilder;
  std::string topic_;
  mosquitto_property* properties_ = nullptr;
};

enum class Verdict : uint8_t {
  kSend,        // publish it
  kHopLimit,    // crossed too many gateways: drop (acknowledged), count
  kBadMessage,  // cannot be expressed in MQTT (topic too long, not UTF-8,
                // a property libmosquitto refuses): reject, count
};

class PublishBuilder {
 public:
  // REQUIRES: options passed ValidateUpstreamOptions (the template is
  // valid). `dialect` and `protocol_level` as in UpstreamOptions.
  PublishBuilder(Dialect dialect, int protocol_level,
                 absl::string_view topic_template);

  // Fills *out for `message`, which expires at `expires_wall_us`
  // (INT64_MAX = never) and is sent at `now_wall_us` (both microseconds
  // since the Unix epoch).
  Verdict Build(const MessageView& message, int64_t expires_wall_us,
                int64_t now_wall_us, Publish* out) const;

  // The message's hop count: its "hops" system property as a decimal
  // number; 0 when absent, not a number, or negative.
  static int Hops(const MessageView& message);

 private:
  void ExpandTemplate(const MessageView& message, std::string* out) const;
  bool AddProperties(const MessageView& message, int64_t expires_wall_us,
                     int64_t now_wall_us, mosquitto_property** list) const;

  const Dialect dialect_;
  const int protocol_level_;
  const std::string topic_template_;
};

}  // namespace upstream
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_UPSTREAM_PUBLISH_H_
