#include "gateway/mqtt/iothub.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/percent_encoding.h"
#include "base/utf8.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {
namespace {

constexpr absl::string_view kDevices = "devices/";
constexpr absl::string_view kEvents = "messages/events";
constexpr absl::string_view kTwinPrefix = "$iothub/twin/";
constexpr absl::string_view kMethodResponsePrefix = "$iothub/methods/res/";

// Bag keys and the system properties they stand for, both ways.
struct SystemKey {
  absl::string_view bag_key;
  absl::string_view property;
};
constexpr SystemKey kSystemKeys[] = {
    {"$.mid", "messageId"},
    {"$.cid", "cid"},
    {"$.uid", "userId"},
    {"$.ct", "contentType"},
    {"$.ce", "contentEncoding"},
    {"$.to", "to"},
    {"$.exp", "absolute-expiry-time"},
    {"$.ctime", "creationTime"},
    {"$.schema", "messageSchema"},
    {"$.ifid", "interfaceId"},
};
// Sent to modules with their inputs, but never taken from a client.
constexpr SystemKey kIdentityKeys[] = {
    {"$.cdid", "connectionDeviceId"},
    {"$.cmid", "connectionModuleId"},
};
constexpr absl::string_view kOutputNameKey = "$.on";

// Splits the first level off `*rest`. False when `*rest` is empty.
bool NextLevel(absl::string_view* rest, absl::string_view* level) {
  if (rest->empty()) return false;
  const size_t slash = rest->find('/');
  if (slash == absl::string_view::npos) {
    *level = *rest;
    *rest = absl::string_view();
  } else {
    *level = rest->substr(0, slash);
    rest->remove_prefix(slash + 1);
  }
  return true;
}

// "messages/events" followed by nothing, or by '/' and the bag.
bool TakeEvents(absl::string_view rest, absl::string_view* bag) {
  if (!absl::StartsWith(rest, kEvents)) return false;
  rest.remove_prefix(kEvents.size());
  if (rest.empty()) {
    *bag = rest;
    return true;
  }
  if (rest[0] != '/') return false;
  rest.remove_prefix(1);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  *bag = rest;
  return true;
}

// The raw value of `$rid` in a query "k=v&k=v" ("%24rid" also names it).
absl::string_view FindRid(absl::string_view query) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const absl::string_view pair = query.substr(0, amp);
    query = amp == absl::string_view::npos ? absl::string_view()
                                           : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    const absl::string_view key = pair.substr(0, eq);
    if ((key == "$rid" || absl::EqualsIgnoreCase(key, "%24rid")) &&
        eq != absl::string_view::npos) {
      return pair.substr(eq + 1);
    }
  }
  return absl::string_view();
}

}  // namespace

PublishTopic ClassifyPublishTopic(absl::string_view topic) {
  PublishTopic result;
  if (absl::StartsWith(topic, kDevices)) {
    absl::string_view rest = topic.substr(kDevices.size());
    absl::string_view device, level, module;
    if (!NextLevel(&rest, &device) || device.empty()) return result;
    if (TakeEvents(rest, &result.bag)) {
      result.kind = TopicKind::kTelemetry;
      result.device_id = device;
      return result;
    }
    if (!NextLevel(&rest, &level) || level != "modules" ||
        !NextLevel(&rest, &module) || module.empty() ||
        !TakeEvents(rest, &result.bag)) {
      result.bag = absl::string_view();
      return result;
    }
    result.kind = TopicKind::kTelemetry;
    result.device_id = device;
    result.module_id = module;
    return result;
  }
  if (absl::StartsWith(topic, kTwinPrefix)) {
    absl::string_view rest = topic.substr(kTwinPrefix.size());
    const size_t q = rest.find('?');
    if (q == absl::string_view::npos) return result;
    absl::string_view path = rest.substr(0, q);
    if (!path.empty() && path.back() == '/') path.remove_suffix(1);
    if (absl::EqualsIgnoreCase(path, "GET")) {
      result.kind = TopicKind::kTwinGet;
    } else if (absl::EqualsIgnoreCase(path, "PATCH/properties/reported")) {
      result.kind = TopicKind::kTwinPatchReported;
    } else {
      return result;
    }
    result.rid = FindRid(rest.substr(q + 1));
    return result;
  }
  if (absl::StartsWith(topic, kMethodResponsePrefix)) {
    const absl::string_view rest = topic.substr(kMethodResponsePrefix.size());
    const size_t q = rest.find('?');
    if (q == absl::string_view::npos) return result;
    result.kind = TopicKind::kMethodResponse;
    result.rid = FindRid(rest.substr(q + 1));
    return result;
  }
  return result;
}

FilterGrant ClassifyFilter(absl::string_view filter, IdentityRef identity) {
  FilterGrant grant;
  if (filter == "$iothub/twin/res/#") {
    grant.kind = FilterKind::kTwinResponses;
  } else if (filter == "$iothub/twin/PATCH/properties/desired/#") {
    grant.kind = FilterKind::kTwinDesired;
  } else if (filter == "$iothub/methods/POST/#") {
    grant.kind = FilterKind::kMethods;
  } else if (absl::StartsWith(filter, kDevices)) {
    absl::string_view rest = filter.substr(kDevices.size());
    if (!absl::ConsumePrefix(&rest, identity.device_id) ||
        !absl::ConsumePrefix(&rest, "/")) {
      return grant;
    }
    if (identity.module_id.empty()) {
      if (rest == "messages/devicebound/#") {
        grant.kind = FilterKind::kCloudToDevice;
      }
      return grant;
    }
    if (!absl::ConsumePrefix(&rest, "modules/") ||
        !absl::ConsumePrefix(&rest, identity.module_id) ||
        !absl::ConsumePrefix(&rest, "/")) {
      return grant;
    }
    if (rest == "#" || rest == "inputs/#") {
      grant.kind = FilterKind::kInputs;
    } else if (absl::ConsumePrefix(&rest, "inputs/") &&
               absl::ConsumeSuffix(&rest, "/#") && !rest.empty() &&
               rest.find_first_of("/+#") == absl::string_view::npos) {
      grant.kind = FilterKind::kInputs;
      grant.input = rest;
    }
  }
  return grant;
}

void UrlDecode(absl::string_view text, std::string* out) {
  const size_t start = out->size();
  PercentDecode(text, PercentDecoding::kLenient, out);
  // Repair what is not UTF-8 (only escapes can produce it: the codec
  // refuses topics that are not UTF-8).
  const absl::string_view decoded = absl::string_view(*out).substr(start);
  if (IsValidUtf8(decoded)) return;
  std::string fixed;
  ReplaceInvalidUtf8(decoded, &fixed);
  out->resize(start);
  out->append(fixed);
}

void UrlEncode(absl::string_view text, std::string* out) {
  PercentEncode(text, out);
}

bool BuildTelemetry(IdentityRef identity, absl::string_view bag,
                    absl::string_view payload, MessageBuilder* builder,
                    std::string* output, std::string* scratch, bool keep_hops) {
  output->clear();
  if (!bag.empty() &&
      static_cast<size_t>(std::count(bag.begin(), bag.end(), '&')) + 1 >
          kMaxBagProperties) {
    return false;
  }
  builder->Clear();
  builder->SetBody(payload);
  while (!bag.empty()) {
    const size_t amp = bag.find('&');
    const absl::string_view pair = bag.substr(0, amp);
    bag = amp == absl::string_view::npos ? absl::string_view()
                                         : bag.substr(amp + 1);
    const size_t eq = pair.find('=');
    scratch->clear();
    UrlDecode(pair.substr(0, eq), scratch);
    const size_t key_size = scratch->size();
    if (key_size == 0) continue;
    const bool has_value = eq != absl::string_view::npos;
    if (has_value) UrlDecode(pair.substr(eq + 1), scratch);
    const absl::string_view key(scratch->data(), key_size);
    const absl::string_view value =
        absl::string_view(*scratch).substr(key_size);
    if (absl::StartsWith(key, "$.")) {
      if (key == kOutputNameKey) {
        output->assign(value.data(), value.size());
        continue;
      }
      if (key == kHopsBagKey) {
        int hops = 0;
        if (keep_hops && has_value && absl::SimpleAtoi(value, &hops) &&
            hops >= 1 && hops <= kMaxHops) {
          builder->AddSystemProperty(kHopsProperty, absl::StrCat(hops));
        }
        continue;
      }
      bool handled = false;
      for (const SystemKey& k : kIdentityKeys) handled |= key == k.bag_key;
      for (const SystemKey& k : kSystemKeys) {
        if (key != k.bag_key) continue;
        if (has_value) builder->AddSystemProperty(k.property, value);
        handled = true;
        break;
      }
      if (handled) continue;
    }
    if (has_value) {
      builder->AddProperty(key, value);
    } else {
      builder->AddNullProperty(key);
    }
  }
  builder->AddSystemProperty("connectionDeviceId", identity.device_id);
  if (!identity.module_id.empty()) {
    builder->AddSystemProperty("connectionModuleId", identity.module_id);
  }
  if (!output->empty()) builder->AddSystemProperty("outputName", *output);
  builder->Finish();
  return true;
}

namespace {

// The bag AppendInputTopic and AppendTelemetryBag write: the system keys
// (interfaceId with `with_interface_id`), then `extra` (each written only
// when the message has it), then the application properties.
template <size_t N>
void AppendBag(const MessageView& message, bool with_interface_id,
               const SystemKey (&extra)[N], std::string* out) {
  const size_t bag_start = out->size();
  auto system = [&](const SystemKey& k) {
    const PropertyValue v = message.FindSystemProperty(k.property);
    if (!v.has_string()) return;
    if (out->size() > bag_start) out->push_back('&');
    out->append("%24");
    out->append(k.bag_key.data() + 1, k.bag_key.size() - 1);
    out->push_back('=');
    UrlEncode(v.value, out);
  };
  for (const SystemKey& k : kSystemKeys) {
    if (with_interface_id || k.bag_key != "$.ifid") system(k);
  }
  for (const SystemKey& k : extra) system(k);
  for (size_t i = 0; i < message.property_count(); ++i) {
    const auto [key, value] = message.property(i);
    if (out->size() > bag_start) out->push_back('&');
    UrlEncode(key, out);
    if (value.has_string()) {
      out->push_back('=');
      UrlEncode(value.value, out);
    }
  }
}

constexpr SystemKey kOutputNameKeys[] = {{kOutputNameKey, "outputName"}};

}  // namespace

void AppendInputTopic(IdentityRef target, absl::string_view input,
                      const MessageView& message, std::string* out) {
  absl::StrAppend(out, kDevices, target.device_id, "/modules/",
                  target.module_id, "/inputs/", input, "/");
  AppendBag(message, /*with_interface_id=*/false, kIdentityKeys, out);
}

void AppendTelemetryBag(const MessageView& message, std::string* out) {
  AppendBag(message, /*with_interface_id=*/true, kOutputNameKeys, out);
}

void AppendTwinResponseTopic(int status, absl::string_view rid, int64_t version,
                             std::string* out) {
  absl::StrAppend(out, "$iothub/twin/res/", status, "/?$rid=", rid);
  if (version >= 0) absl::StrAppend(out, "&$version=", version);
}

void AppendDesiredPatchTopic(int64_t version, std::string* out) {
  absl::StrAppend(out,
                  "$iothub/twin/PATCH/properties/desired/?$version=", version);
}

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute
