#include "gateway/upstream/publish.h"

#include <mqtt_protocol.h>

#include <cstring>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gateway/mqtt/iothub.h"

namespace edgeroute {
namespace gateway {
namespace upstream {
namespace {

constexpr absl::string_view kDeviceIdProperty = "connectionDeviceId";
constexpr absl::string_view kModuleIdProperty = "connectionModuleId";
constexpr absl::string_view kOutputNameProperty = "outputName";
constexpr absl::string_view kContentTypeProperty = "contentType";
constexpr absl::string_view kCorrelationIdProperty = "cid";

absl::string_view SystemString(const MessageView& message,
                               absl::string_view key) {
  const PropertyValue v = message.FindSystemProperty(key);
  return v.has_string() ? v.value : absl::string_view();
}

// A value that can stand as one level of an IoT Hub topic.
bool IsTopicLevel(absl::string_view id) {
  return !id.empty() && id.find_first_of(absl::string_view("/+#\0", 4)) ==
                            absl::string_view::npos;
}

// mosquitto_property_add_* take NUL-terminated strings.
bool HasNul(absl::string_view text) {
  return text.find('\0') != absl::string_view::npos;
}

}  // namespace

PublishBuilder::PublishBuilder(Dialect dialect, int protocol_level,
                               absl::string_view topic_template)
    : dialect_(dialect),
      protocol_level_(dialect == Dialect::kIotHub ? 4 : protocol_level),
      topic_template_(topic_template) {}

int PublishBuilder::Hops(const MessageView& message) {
  const absl::string_view text = SystemString(message, kHopsProperty);
  int hops = 0;
  if (text.empty() || !absl::SimpleAtoi(text, &hops) || hops < 0) return 0;
  return hops;
}

void PublishBuilder::ExpandTemplate(const MessageView& message,
                                    std::string* out) const {
  absl::string_view rest = topic_template_;
  while (!rest.empty()) {
    const size_t open = rest.find('{');
    if (open == absl::string_view::npos) break;
    out->append(rest.data(), open);
    const size_t close = rest.find('}', open);
    // The template was validated: every '{' has its '}'.
    const absl::string_view name = rest.substr(open + 1, close - open - 1);
    absl::string_view key;
    if (name == "deviceId") {
      key = kDeviceIdProperty;
    } else if (name == "moduleId") {
      key = kModuleIdProperty;
    } else {
      key = kOutputNameProperty;
    }
    mqtt::UrlEncode(SystemString(message, key), out);
    rest.remove_prefix(close + 1);
  }
  out->append(rest.data(), rest.size());
}

bool PublishBuilder::AddProperties(const MessageView& message,
                                   int64_t expires_wall_us, int64_t now_wall_us,
                                   mosquitto_property** list) const {
  std::string key_text, value_text;
  for (size_t i = 0; i < message.property_count(); ++i) {
    const auto [key, value] = message.property(i);
    const absl::string_view v = value.has_string() ? value.value : "";
    if (HasNul(key) || HasNul(v)) return false;
    key_text.assign(key.data(), key.size());
    value_text.assign(v.data(), v.size());
    if (mosquitto_property_add_string_pair(
            list, MQTT_PROP_USER_PROPERTY, key_text.c_str(),
            value_text.c_str()) != MOSQ_ERR_SUCCESS) {
      return false;
    }
  }
  const absl::string_view content_type =
      SystemString(message, kContentTypeProperty);
  if (!content_type.empty()) {
    if (HasNul(content_type)) return false;
    value_text.assign(content_type.data(), content_type.size());
    if (mosquitto_property_add_string(list, MQTT_PROP_CONTENT_TYPE,
                                      value_text.c_str()) != MOSQ_ERR_SUCCESS) {
      return false;
    }
  }
  const absl::string_view correlation =
      SystemString(message, kCorrelationIdProperty);
  if (!correlation.empty()) {
    if (correlation.size() > 65535 ||
        mosquitto_property_add_binary(
            list, MQTT_PROP_CORRELATION_DATA, correlation.data(),
            static_cast<uint16_t>(correlation.size())) != MOSQ_ERR_SUCCESS) {
      return false;
    }
  }
  if (expires_wall_us != std::numeric_limits<int64_t>::max()) {
    const int64_t remaining_us = expires_wall_us - now_wall_us;
    // Whole seconds, rounded up; at least 1 (0 would mean "never").
    int64_t seconds =
        remaining_us <= 0 ? 1 : (remaining_us + 999'999) / 1'000'000;
    if (seconds > std::numeric_limits<uint32_t>::max()) {
      seconds = std::numeric_limits<uint32_t>::max();
    }
    if (mosquitto_property_add_int32(list, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                                     static_cast<uint32_t>(seconds)) !=
        MOSQ_ERR_SUCCESS) {
      return false;
    }
  }
  return true;
}

Verdict PublishBuilder::Build(const MessageView& message,
                              int64_t expires_wall_us, int64_t now_wall_us,
                              Publish* out) const {
  mosquitto_property_free_all(&out->properties_);
  out->topic_.clear();
  const int hops = Hops(message);
  if (hops + 1 >= kMaxHops) return Verdict::kHopLimit;

  std::string& topic = out->topic_;
  if (dialect_ == Dialect::kIotHub) {
    const absl::string_view device = SystemString(message, kDeviceIdProperty);
    const absl::string_view module = SystemString(message, kModuleIdProperty);
    if (!IsTopicLevel(device) || (!module.empty() && !IsTopicLevel(module))) {
      return Verdict::kBadMessage;
    }
    absl::StrAppend(&topic, "devices/", device);
    if (!module.empty()) absl::StrAppend(&topic, "/modules/", module);
    topic.append("/messages/events/");
    const size_t bag_start = topic.size();
    mqtt::AppendTelemetryBag(message, &topic);
    if (topic.size() > bag_start) topic.push_back('&');
    absl::StrAppend(&topic, kHopsBagKey, "=", hops + 1);
  } else {
    ExpandTemplate(message, &topic);
    if (protocol_level_ != 5) {
      const size_t before = topic.size();
      topic.push_back('/');
      mqtt::AppendTelemetryBag(message, &topic);
      if (topic.size() == before + 1) topic.resize(before);
    }
  }
  // A template of placeholders only, all absent, leaves nothing to publish
  // to.
  if (topic.empty() || topic.size() > kMaxTopicBytes ||
      mosquitto_validate_utf8(topic.data(), static_cast<int>(topic.size())) !=
          MOSQ_ERR_SUCCESS ||
      mosquitto_pub_topic_check2(topic.data(), topic.size()) !=
          MOSQ_ERR_SUCCESS) {
    topic.clear();
    return Verdict::kBadMessage;
  }
  if (protocol_level_ == 5 && !AddProperties(message, expires_wall_us,
                                             now_wall_us, &out->properties_)) {
    mosquitto_property_free_all(&out->properties_);
    topic.clear();
    return Verdict::kBadMessage;
  }
  return Verdict::kSend;
}

}  // namespace upstream
}  // namespace gateway
}  // namespace edgeroute
