// The IoT Hub dialect of MQTT (../shared/spec/IOTHUB-MQTT.md): what topics
// mean, who may use them, and how property bags map to message properties.
//
//   ClassifyPublishTopic  -- telemetry, twin request, method response, or
//                            something else, for a topic a client publishes.
//   ClassifyFilter        -- what a SUBSCRIBE filter asks for, and whether
//                            the identity may have it.
//   BuildTelemetry        -- a telemetry PUBLISH (bag + payload) as a message.
//   AppendInputTopic      -- the topic a module input delivery is published
//                            on, with the message's properties in its bag.
//   UrlDecode / UrlEncode -- the bag's percent-encoding.
//
// Thread-safety: pure functions.

#ifndef EDGEROUTE_GATEWAY_MQTT_IOTHUB_H_
#define EDGEROUTE_GATEWAY_MQTT_IOTHUB_H_

#include <string>

#include "absl/strings/string_view.h"
#include "message/message.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {

// Who is connected: device_id, and module_id for a module ("" for a device).
struct IdentityRef {
  absl::string_view device_id;
  absl::string_view module_id;
};

enum class TopicKind : uint8_t {
  kTelemetry,          // devices/{d}[/modules/{m}]/messages/events/{bag}
  kTwinGet,            // $iothub/twin/GET/?$rid={rid}
  kTwinPatchReported,  // $iothub/twin/PATCH/properties/reported/?$rid={rid}
  kMethodResponse,     // $iothub/methods/res/{status}/?$rid={rid}
  kUnknown,            // anything else (refused)
};

struct PublishTopic {
  TopicKind kind = TopicKind::kUnknown;
  // kTelemetry: the identity the topic names (compare with the connection's).
  absl::string_view device_id;
  absl::string_view module_id;
  // kTelemetry: the property bag (may be empty), one trailing '/' removed.
  absl::string_view bag;
  // Twin requests and method responses: the request id as sent ($rid).
  absl::string_view rid;
};

// Parses a topic a client published to. Twin verbs match case-insensitively.
PublishTopic ClassifyPublishTopic(absl::string_view topic);

enum class FilterKind : uint8_t {
  kRefused,        // not a topic this identity may read
  kInputs,         // module inputs: all of them, or `input`
  kTwinResponses,  // $iothub/twin/res/#
  kTwinDesired,    // $iothub/twin/PATCH/properties/desired/#
  kMethods,        // $iothub/methods/POST/#
  kCloudToDevice,  // devices/{d}/messages/devicebound/# (devices only)
};

struct FilterGrant {
  FilterKind kind = FilterKind::kRefused;
  // kInputs: the one input the filter names, or empty for all inputs
  // (devices/{d}/modules/{m}/# and devices/{d}/modules/{m}/inputs/#).
  absl::string_view input;
};

// What `filter` subscribes to for `identity`. A module may read its own
// inputs (all, or one by name: devices/{d}/modules/{m}/inputs/{i}/#), its
// twin responses and desired-property patches, and its method calls; a
// device its twin, methods and cloud-to-device messages. Everything else
// is kRefused.
FilterGrant ClassifyFilter(absl::string_view filter, IdentityRef identity);

// Appends `text` with every %XX escape decoded; a '%' not followed by two
// hex digits stays as it is. Byte sequences that are not UTF-8 after
// decoding are repaired by the project's one rule (base/utf8.h: each
// maximal ill-formed subsequence becomes one U+FFFD).
void UrlDecode(absl::string_view text, std::string* out);
// Appends `text` percent-encoded: every byte but A-Z a-z 0-9 - . _ ~ as %XX.
void UrlEncode(absl::string_view text, std::string* out);

// Most properties a telemetry bag may carry (MessageView::Verify's limit).
inline constexpr size_t kMaxBagProperties = 4096;

// Builds the message of a telemetry PUBLISH from `identity` in `builder`
// (Clear()ed first): body = payload; bag keys $.mid, $.cid, $.uid, $.ct,
// $.ce, $.to, $.exp, $.ctime, $.schema, $.ifid become the system
// properties messageId, cid, userId, contentType, contentEncoding, to,
// absolute-expiry-time, creationTime, messageSchema, interfaceId; $.on is
// the output name; $.cdid and $.cmid are dropped (the identity comes from
// the connection); every other key is an application property (a key
// without '=' has a null value). connectionDeviceId, connectionModuleId and
// outputName are set from `identity` and $.on. *output receives the output
// name ("" without $.on). Returns false, building nothing, when the bag
// holds more than kMaxBagProperties properties.
//
// Nested gateways: `$.hops` (how many gateways forwarded the message to
// here) becomes the system property `hops` when `keep_hops` (the publisher
// is a gateway) and is a decimal number 1..kMaxHops; otherwise it is
// dropped like $.cdid.
bool BuildTelemetry(IdentityRef identity, absl::string_view bag,
                    absl::string_view payload, MessageBuilder* builder,
                    std::string* output, std::string* scratch,
                    bool keep_hops = false);

// The system property that counts the gateways a message was forwarded
// through, and its bag key.
inline constexpr absl::string_view kHopsProperty = "hops";
inline constexpr absl::string_view kHopsBagKey = "$.hops";
// Largest hop count accepted from a child gateway.
inline constexpr int kMaxHops = 255;

// Appends devices/{d}/modules/{m}/inputs/{input}/{bag} for `message`: the
// bag holds the system properties messageId, cid, userId, contentType,
// contentEncoding, to, absolute-expiry-time, creationTime, messageSchema,
// connectionDeviceId and connectionModuleId as $.mid, $.cid, $.uid, $.ct,
// $.ce, $.to, $.exp, $.ctime, $.schema, $.cdid, $.cmid ('$' written %24),
// then every application property (a null value as a key without '=').
void AppendInputTopic(IdentityRef target, absl::string_view input,
                      const MessageView& message, std::string* out);

// Appends the telemetry property bag of `message` (no leading '/'), as a
// device or module would send it and BuildTelemetry reads it: the system
// properties messageId, cid, userId, contentType, contentEncoding, to,
// absolute-expiry-time, creationTime, messageSchema, interfaceId and
// outputName as $.mid, $.cid, $.uid, $.ct, $.ce, $.to, $.exp, $.ctime,
// $.schema, $.ifid, $.on ('$' written %24), then every application property
// (a null value as a key without '='). The identity is not in it (the topic
// names it). For forwarding a message to a parent hub.
void AppendTelemetryBag(const MessageView& message, std::string* out);

// Twin topics: $iothub/twin/res/{status}/?$rid={rid}[&$version={version}]
// (version < 0: none) and $iothub/twin/PATCH/properties/desired/?$version=n.
void AppendTwinResponseTopic(int status, absl::string_view rid, int64_t version,
                             std::string* out);
void AppendDesiredPatchTopic(int64_t version, std::string* out);

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_MQTT_IOTHUB_H_
