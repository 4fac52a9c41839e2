#include "gateway/upstream/options.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace edgeroute {
namespace gateway {
namespace upstream {
namespace {

struct Scheme {
  absl::string_view prefix;
  Dialect dialect;
  bool tls;
  int default_port;
};
constexpr Scheme kSchemes[] = {
    {"mqtt://", Dialect::kMqtt, false, 1883},
    {"mqtts://", Dialect::kMqtt, true, 8883},
    {"iothub://", Dialect::kIotHub, true, 8883},
};

constexpr absl::string_view kPlaceholders[] = {"{deviceId}", "{moduleId}",
                                               "{outputName}"};

}  // namespace

absl::StatusOr<UpstreamUrl> ParseUpstreamUrl(absl::string_view text) {
  const Scheme* scheme = nullptr;
  for (const Scheme& s : kSchemes) {
    if (absl::StartsWith(text, s.prefix)) scheme = &s;
  }
  auto bad = [text](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--upstream wants mqtt://HOST[:PORT], mqtts://HOST[:PORT] or "
        "iothub://HOST[:PORT] (got '",
        text, "'): ", why));
  };
  if (scheme == nullptr) return bad("unknown scheme");
  UpstreamUrl url;
  url.dialect = scheme->dialect;
  url.tls = scheme->tls;
  url.port = scheme->default_port;
  url.text = std::string(text);
  absl::string_view rest = text.substr(scheme->prefix.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  absl::string_view host = rest;
  absl::string_view port;
  if (absl::StartsWith(rest, "[")) {
    const size_t close = rest.find(']');
    if (close == absl::string_view::npos) return bad("unclosed '['");
    host = rest.substr(1, close - 1);
    absl::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("junk after ']'");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else {
    const size_t colon = rest.rfind(':');
    if (colon != absl::string_view::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      if (port.empty()) return bad("empty port");
    }
  }
  if (host.empty()) return bad("no host");
  if (host.find_first_of("/?#@ ") != absl::string_view::npos) {
    return bad("a host name cannot have a path, query, user or spaces");
  }
  if (!port.empty() && (!absl::SimpleAtoi(port, &url.port) || url.port < 1 ||
                        url.port > 65535)) {
    return bad("port is not 1..65535");
  }
  url.host = std::string(host);
  return url;
}

absl::Status ValidateTopicTemplate(absl::string_view topic_template) {
  if (topic_template.empty()) {
    return absl::InvalidArgumentError("--upstream-topic is empty");
  }
  if (topic_template.find_first_of("+#") != absl::string_view::npos ||
      topic_template.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--upstream-topic '", topic_template,
                     "': a topic to publish to cannot hold '+', '#' or NUL"));
  }
  absl::string_view rest = topic_template;
  while (true) {
    const size_t open = rest.find('{');
    const size_t close = rest.find('}');
    if (open == absl::string_view::npos) {
      if (close == absl::string_view::npos) break;
      return absl::InvalidArgumentError(absl::StrCat(
          "--upstream-topic '", topic_template, "': '}' without '{'"));
    }
    const size_t end = rest.find('}', open);
    if (end == absl::string_view::npos || close < open) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--upstream-topic '", topic_template, "': unbalanced braces"));
    }
    const absl::string_view name = rest.substr(open, end - open + 1);
    bool known = false;
    for (absl::string_view p : kPlaceholders) known |= name == p;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--upstream-topic '", topic_template, "': unknown placeholder ", name,
          " (there are {deviceId}, {moduleId}, {outputName})"));
    }
    rest.remove_prefix(end + 1);
  }
  return absl::OkStatus();
}

absl::Status SetUpstreamFlag(absl::string_view name, absl::string_view value,
                             UpstreamOptions* options) {
  if (name == "--upstream") {
    absl::StatusOr<UpstreamUrl> url = ParseUpstreamUrl(value);
    if (!url.ok()) return url.status();
    options->urls.push_back(*std::move(url));
  } else if (name == "--upstream-protocol") {
    if (value == "5" || value == "5.0") {
      options->protocol_level = 5;
    } else if (value == "3.1.1") {
      options->protocol_level = 4;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--upstream-protocol wants 5 or 3.1.1 (got '", value, "')"));
    }
  } else if (name == "--upstream-username") {
    options->username = std::string(value);
  } else if (name == "--upstream-password") {
    options->password = std::string(value);
  } else if (name == "--upstream-topic") {
    options->topic_template = std::string(value);
  } else if (name == "--upstream-key") {
    options->key_base64 = std::string(value);
  } else if (name == "--upstream-cert") {
    options->cert_path = std::string(value);
  } else if (name == "--upstream-cert-key") {
    options->cert_key_path = std::string(value);
  } else if (name == "--upstream-ca") {
    options->ca_path = std::string(value);
  } else if (name == "--upstream-hub") {
    options->hub = std::string(value);
  } else if (name == "--upstream-token-ttl") {
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(value, &seconds) ||
        seconds < absl::ToInt64Seconds(kMinTokenLifetime) ||
        seconds > absl::ToInt64Seconds(kMaxTokenLifetime)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--upstream-token-ttl wants seconds, ",
          absl::ToInt64Seconds(kMinTokenLifetime), "..",
          absl::ToInt64Seconds(kMaxTokenLifetime), " (got '", value, "')"));
    }
    options->token_lifetime = absl::Seconds(seconds);
  } else if (name == "--upstream-max-in-flight") {
    int window = 0;
    if (!absl::SimpleAtoi(value, &window) || window < 1 || window > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--upstream-max-in-flight wants 1..65535 (got '", value, "')"));
    }
    options->max_in_flight = window;
  } else {
    return absl::NotFoundError(
        absl::StrCat("'", name, "' is not an --upstream flag"));
  }
  return absl::OkStatus();
}

absl::Status ValidateUpstreamOptions(const UpstreamOptions& options) {
  if (options.urls.empty()) {
    const bool any =
        !options.username.empty() || !options.password.empty() ||
        options.topic_template != kDefaultTopicTemplate ||
        !options.key_base64.empty() || !options.cert_path.empty() ||
        !options.cert_key_path.empty() || !options.ca_path.empty() ||
        !options.hub.empty() || options.protocol_level != 5 ||
        options.token_lifetime != kDefaultTokenLifetime;
    return any ? absl::InvalidArgumentError(
                     "--upstream-* flags need --upstream URL")
               : absl::OkStatus();
  }
  const Dialect dialect = options.urls.front().dialect;
  for (const UpstreamUrl& url : options.urls) {
    if (url.dialect != dialect) {
      return absl::InvalidArgumentError(
          "--upstream URLs are tried in turn, so they must all be iothub:// "
          "or all mqtt:// / mqtts://");
    }
  }
  if (options.cert_path.empty() != options.cert_key_path.empty()) {
    return absl::InvalidArgumentError(
        "--upstream-cert and --upstream-cert-key go together");
  }
  bool any_tls = false;
  for (const UpstreamUrl& url : options.urls) any_tls |= url.tls;
  if (!any_tls && (!options.cert_path.empty() || !options.ca_path.empty())) {
    return absl::InvalidArgumentError(
        "--upstream-cert and --upstream-ca need a TLS upstream (mqtts:// or "
        "iothub://)");
  }
  if (options.token_lifetime != kDefaultTokenLifetime &&
      (dialect != Dialect::kIotHub || options.key_base64.empty())) {
    return absl::InvalidArgumentError(
        "--upstream-token-ttl applies to iothub:// with --upstream-key");
  }
  if (options.token_lifetime < kMinTokenLifetime ||
      options.token_lifetime > kMaxTokenLifetime) {
    return absl::InvalidArgumentError("--upstream-token-ttl is out of range");
  }
  if (dialect == Dialect::kIotHub) {
    if (options.device_id.empty()) {
      return absl::InvalidArgumentError("iothub:// needs --device");
    }
    if (options.key_base64.empty() == options.cert_path.empty()) {
      return absl::InvalidArgumentError(
          "iothub:// signs in with --upstream-key BASE64 or with "
          "--upstream-cert PEM --upstream-cert-key PEM (one of the two)");
    }
    if (!options.username.empty() || !options.password.empty() ||
        options.topic_template != kDefaultTopicTemplate ||
        options.protocol_level != 5) {
      return absl::InvalidArgumentError(
          "--upstream-username, --upstream-password, --upstream-topic and "
          "--upstream-protocol apply to mqtt:// and mqtts:// (iothub:// "
          "speaks the IoT Hub dialect of MQTT 3.1.1)");
    }
  } else {
    if (!options.key_base64.empty() || !options.hub.empty()) {
      return absl::InvalidArgumentError(
          "--upstream-key and --upstream-hub apply to iothub://");
    }
    if (options.password.size() > 65535 || options.username.size() > 65535) {
      return absl::InvalidArgumentError(
          "--upstream-username/--upstream-password: at most 65535 bytes");
    }
    absl::Status s = ValidateTopicTemplate(options.topic_template);
    if (!s.ok()) return s;
  }
  if (options.max_in_flight < 1 || options.max_in_flight > 65535) {
    return absl::InvalidArgumentError(
        "--upstream-max-in-flight wants 1..65535");
  }
  return absl::OkStatus();
}

}  // namespace upstream
}  // namespace gateway
}  // namespace edgeroute
