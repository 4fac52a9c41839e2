// libFuzzer target: a message (properties and system properties from the
// input) and a topic template become a PUBLISH in each dialect. Whatever
// PublishBuilder agrees to send must be a PUBLISH libmosquitto accepts: a
// valid, wildcard-free UTF-8 topic of at most 65535 bytes and MQTT 5
// properties that pass mosquitto_property_check_all; a message at the hop
// limit is never sent; nothing crashes.
//
// Input: lines. Line 0 is the topic template (used when
// ValidateTopicTemplate accepts it); line 1's first byte picks the dialect
// and protocol; then "k=v" lines: keys starting with '$' are system
// properties (without the '$'), others application properties; a line
// without '=' is a null application property.

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "gateway/upstream/options.h"
#include "gateway/upstream/publish.h"
#include "message/message.h"

namespace {

using edgeroute::MessageBuilder;
using edgeroute::gateway::upstream::Dialect;
using edgeroute::gateway::upstream::kMaxHops;
using edgeroute::gateway::upstream::kMaxTopicBytes;
using edgeroute::gateway::upstream::Publish;
using edgeroute::gateway::upstream::PublishBuilder;
using edgeroute::gateway::upstream::ValidateTopicTemplate;
using edgeroute::gateway::upstream::Verdict;

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  auto next_line = [&input]() {
    const size_t nl = input.find('\n');
    const absl::string_view line = input.substr(0, nl);
    input = nl == absl::string_view::npos ? absl::string_view()
                                          : input.substr(nl + 1);
    return line;
  };
  std::string topic_template(next_line());
  if (!ValidateTopicTemplate(topic_template).ok()) {
    topic_template = "edgeroute/{deviceId}/{moduleId}/{outputName}";
  }
  const absl::string_view mode_line = next_line();
  const uint8_t mode = mode_line.empty() ? 0 : mode_line[0];
  const Dialect dialect = (mode & 1) ? Dialect::kIotHub : Dialect::kMqtt;
  const int protocol = (mode & 2) ? 4 : 5;

  MessageBuilder builder;
  builder.Clear();
  builder.SetBody("payload");
  while (!input.empty()) {
    const absl::string_view line = next_line();
    const size_t eq = line.find('=');
    if (!line.empty() && line[0] == '$') {
      const absl::string_view key = line.substr(
          1, eq == absl::string_view::npos ? absl::string_view::npos : eq - 1);
      if (eq == absl::string_view::npos) {
        builder.AddNullSystemProperty(key);
      } else {
        builder.AddSystemProperty(key, line.substr(eq + 1));
      }
    } else if (eq == absl::string_view::npos) {
      builder.AddNullProperty(line);
    } else {
      builder.AddProperty(line.substr(0, eq), line.substr(eq + 1));
    }
  }
  builder.Finish();
  const edgeroute::MessageView message = builder.view();

  const PublishBuilder publisher(dialect, protocol, topic_template);
  Publish publish;
  const int64_t now = 1'700'000'000'000'000;
  const int64_t expiries[] = {std::numeric_limits<int64_t>::max(), now - 5,
                              now + 1'500'000};
  for (const int64_t expiry : expiries) {
    const Verdict verdict = publisher.Build(message, expiry, now, &publish);
    const int hops = PublishBuilder::Hops(message);
    Check(hops >= 0, "negative hop count");
    if (hops + 1 >= kMaxHops) {
      Check(verdict == Verdict::kHopLimit, "sent a message at the hop limit");
    }
    if (verdict != Verdict::kSend) continue;
    const std::string& topic = publish.topic();
    Check(!topic.empty() && topic.size() <= kMaxTopicBytes, "topic length");
    Check(mosquitto_validate_utf8(
              topic.data(), static_cast<int>(topic.size())) == MOSQ_ERR_SUCCESS,
          "topic is not UTF-8");
    Check(mosquitto_pub_topic_check2(topic.data(), topic.size()) ==
              MOSQ_ERR_SUCCESS,
          "topic has wildcards");
    if (dialect == Dialect::kIotHub) {
      Check(absl::StartsWith(topic, "devices/"), "IoT Hub topic prefix");
      Check(absl::StrContains(topic, "/messages/events/"), "events topic");
      Check(absl::StrContains(topic, "%24.hops="), "no hop count");
    }
    if (dialect == Dialect::kIotHub || protocol == 4) {
      Check(publish.properties() == nullptr, "properties on MQTT 3.1.1");
    } else if (publish.properties() != nullptr) {
      Check(mosquitto_property_check_all(CMD_PUBLISH, publish.properties()) ==
                MOSQ_ERR_SUCCESS,
            "properties libmosquitto refuses");
    }
    if (protocol == 5 && dialect == Dialect::kMqtt &&
        expiry != std::numeric_limits<int64_t>::max()) {
      uint32_t interval = 0;
      Check(mosquitto_property_read_int32(publish.properties(),
                                          MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                                          &interval, false) != nullptr &&
                interval >= 1,
            "no message expiry interval");
    }
  }
  return 0;
}
