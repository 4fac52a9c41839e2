#include "gateway/demo_mqtt_module.h"

#include <mosquitto.h>

#include <deque>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/auth/sas_token.h"

namespace edgeroute {
namespace gateway {

struct DemoMqttModule::State {
  DemoMqttOptions options;
  std::string client_id;
  std::string inputs_prefix;  // devices/{d}/modules/{m}/inputs/
  mosquitto* mosq = nullptr;

  mutable absl::Mutex mu;
  bool connected ABSL_GUARDED_BY(mu) = false;
  int connack ABSL_GUARDED_BY(mu) = -1;
  absl::Status status ABSL_GUARDED_BY(mu);
  uint64_t acks ABSL_GUARDED_BY(mu) = 0;
  int subscribe_mid ABSL_GUARDED_BY(mu) = -1;
  int granted_qos ABSL_GUARDED_BY(mu) = -1;
  std::deque<DemoInput> inputs ABSL_GUARDED_BY(mu);
};

namespace {

using State = DemoMqttModule::State;

void OnConnect(mosquitto*, void* obj, int rc) {
  State* s = static_cast<State*>(obj);
  absl::MutexLock lock(&s->mu);
  s->connack = rc;
  s->connected = rc == 0;
}

void OnDisconnect(mosquitto*, void* obj, int rc) {
  State* s = static_cast<State*>(obj);
  absl::MutexLock lock(&s->mu);
  s->connected = false;
  if (rc != 0 && s->status.ok()) {
    s->status = absl::UnavailableError(absl::StrCat(
        s->client_id, ": connection lost (", mosquitto_strerror(rc), ")"));
  }
}

void OnPublish(mosquitto*, void* obj, int /*mid*/) {
  State* s = static_cast<State*>(obj);
  absl::MutexLock lock(&s->mu);
  ++s->acks;
}

void OnSubscribe(mosquitto*, void* obj, int mid, int count,
                 const int* granted) {
  State* s = static_cast<State*>(obj);
  absl::MutexLock lock(&s->mu);
  if (mid == s->subscribe_mid && count > 0) s->granted_qos = granted[0];
}

void OnMessage(mosquitto*, void* obj, const mosquitto_message* m) {
  State* s = static_cast<State*>(obj);
  absl::string_view topic(m->topic);
  if (!absl::ConsumePrefix(&topic, s->inputs_prefix)) return;
  DemoInput in;
  const size_t slash = topic.find('/');
  in.input = std::string(topic.substr(0, slash));
  const absl::string_view bag =
      slash == absl::string_view::npos ? "" : topic.substr(slash + 1);
  for (absl::string_view pair : absl::StrSplit(bag, '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    std::optional<std::string> key = auth::UrlDecode(pair.substr(0, eq));
    std::optional<std::string> value =
        eq == absl::string_view::npos ? std::string()
                                      : auth::UrlDecode(pair.substr(eq + 1));
    if (key && value) in.properties.emplace_back(*key, *value);
  }
  in.body.assign(static_cast<const char*>(m->payload),
                 static_cast<size_t>(m->payloadlen));
  absl::MutexLock lock(&s->mu);
  s->inputs.push_back(std::move(in));
}

std::once_flag lib_once;

}  // namespace

absl::StatusOr<std::unique_ptr<DemoMqttModule>> DemoMqttModule::Connect(
    const DemoMqttOptions& options) {
  std::call_once(lib_once, [] { mosquitto_lib_init(); });
  auto state = std::make_unique<State>();
  State* s = state.get();
  s->options = options;
  s->client_id = options.module_id.empty()
                     ? options.device_id
                     : absl::StrCat(options.device_id, "/", options.module_id);
  s->inputs_prefix = absl::StrCat("devices/", options.device_id, "/modules/",
                                  options.module_id, "/inputs/");
  s->mosq = mosquitto_new(s->client_id.c_str(), /*clean_session=*/true, s);
  if (s->mosq == nullptr) return absl::InternalError("mosquitto_new failed");
  std::unique_ptr<DemoMqttModule> module(new DemoMqttModule(std::move(state)));
  mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  mosquitto_connect_callback_set(s->mosq, OnConnect);
  mosquitto_disconnect_callback_set(s->mosq, OnDisconnect);
  mosquitto_publish_callback_set(s->mosq, OnPublish);
  mosquitto_subscribe_callback_set(s->mosq, OnSubscribe);
  mosquitto_message_callback_set(s->mosq, OnMessage);
  // Unlimited in-flight QoS 1 messages: the gateway's own window applies.
  mosquitto_int_option(s->mosq, MOSQ_OPT_SEND_MAXIMUM, 65535);
  const std::string username =
      absl::StrCat(options.hub, "/", s->client_id, "/?api-version=2021-04-12");
  int rc = mosquitto_username_pw_set(s->mosq, username.c_str(),
                                     options.sas_token.c_str());
  if (rc == MOSQ_ERR_SUCCESS) {
    rc = mosquitto_tls_set(s->mosq, options.ca_file.c_str(), nullptr, nullptr,
                           nullptr, nullptr);
  }
  if (rc == MOSQ_ERR_SUCCESS) {
    rc = mosquitto_connect(s->mosq, options.host.c_str(), options.port,
                           options.keepalive_seconds);
  }
  if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_loop_start(s->mosq);
  if (rc != MOSQ_ERR_SUCCESS) {
    return absl::UnavailableError(absl::StrCat(
        s->client_id, ": cannot connect to ", options.host, ":", options.port,
        ": ", rc == MOSQ_ERR_ERRNO ? "system error" : mosquitto_strerror(rc)));
  }
  absl::MutexLock lock(&s->mu);
  auto answered = [s]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
    return s->connack >= 0 || !s->status.ok();
  };
  s->mu.AwaitWithTimeout(absl::Condition(&answered),
                         absl::Milliseconds(options.connect_timeout_ms));
  if (s->connack != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        s->client_id, ": ",
        s->connack < 0 ? "no CONNACK" : mosquitto_connack_string(s->connack)));
  }
  return module;
}

DemoMqttModule::DemoMqttModule(std::unique_ptr<State> state)
    : state_(std::move(state)) {}

DemoMqttModule::~DemoMqttModule() {
  mosquitto_disconnect(state_->mosq);
  mosquitto_loop_stop(state_->mosq, /*force=*/false);
  mosquitto_destroy(state_->mosq);
}

absl::Status DemoMqttModule::Send(absl::string_view output,
                                  const PropertyList& properties,
                                  absl::string_view body, bool content_json) {
  const DemoMqttOptions& o = state_->options;
  std::string topic = absl::StrCat("devices/", o.device_id, "/modules/",
                                   o.module_id, "/messages/events/");
  absl::StrAppend(&topic, "%24.on=", auth::UrlEncode(output));
  if (content_json) {
    absl::StrAppend(&topic, "&%24.ct=application%2Fjson&%24.ce=utf-8");
  }
  for (const auto& [key, value] : properties) {
    absl::StrAppend(&topic, "&", auth::UrlEncode(key), "=",
                    auth::UrlEncode(value));
  }
  const int rc = mosquitto_publish(state_->mosq, nullptr, topic.c_str(),
                                   static_cast<int>(body.size()), body.data(),
                                   /*qos=*/1, /*retain=*/false);
  if (rc != MOSQ_ERR_SUCCESS) {
    absl::MutexLock lock(&state_->mu);
    if (!state_->status.ok()) return state_->status;
    return absl::UnavailableError(
        absl::StrCat(state_->client_id, ": ", mosquitto_strerror(rc)));
  }
  return absl::OkStatus();
}

uint64_t DemoMqttModule::acks() const {
  absl::MutexLock lock(&state_->mu);
  return state_->acks;
}

absl::Status DemoMqttModule::WaitForAcks(uint64_t n, int timeout_ms) {
  State* s = state_.get();
  absl::MutexLock lock(&s->mu);
  auto done = [s, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
    return s->acks >= n || !s->status.ok();
  };
  if (!s->mu.AwaitWithTimeout(absl::Condition(&done),
                              absl::Milliseconds(timeout_ms))) {
    return absl::DeadlineExceededError(
        absl::StrCat(s->client_id, ": ", s->acks, " of ", n, " acknowledged"));
  }
  return s->status;
}

absl::Status DemoMqttModule::SubscribeInputs(int timeout_ms) {
  State* s = state_.get();
  const std::string filter = absl::StrCat(s->inputs_prefix, "#");
  int mid = 0;
  {
    // Hold the lock so that the SUBACK cannot be seen before the mid is set.
    absl::MutexLock lock(&s->mu);
    const int rc =
        mosquitto_subscribe(s->mosq, &mid, filter.c_str(), /*qos=*/1);
    if (rc != MOSQ_ERR_SUCCESS) {
      return absl::UnavailableError(
          absl::StrCat(s->client_id, ": ", mosquitto_strerror(rc)));
    }
    s->subscribe_mid = mid;
    auto answered = [s]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
      return s->granted_qos >= 0 || !s->status.ok();
    };
    s->mu.AwaitWithTimeout(absl::Condition(&answered),
                           absl::Milliseconds(timeout_ms));
    if (!s->status.ok()) return s->status;
    if (s->granted_qos < 0 || s->granted_qos > 2) {
      return absl::PermissionDeniedError(
          absl::StrCat(s->client_id, ": subscription to ", filter,
                       s->granted_qos < 0 ? " not answered" : " refused"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DemoInput> DemoMqttModule::Receive(int timeout_ms) {
  State* s = state_.get();
  absl::MutexLock lock(&s->mu);
  auto ready = [s]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
    return !s->inputs.empty() || !s->status.ok();
  };
  s->mu.AwaitWithTimeout(absl::Condition(&ready),
                         absl::Milliseconds(timeout_ms));
  if (!s->inputs.empty()) {
    DemoInput in = std::move(s->inputs.front());
    s->inputs.pop_front();
    return in;
  }
  if (!s->status.ok()) return s->status;
  return absl::DeadlineExceededError("no input message");
}

absl::Status DemoMqttModule::status() const {
  absl::MutexLock lock(&state_->mu);
  return state_->status;
}

}  // namespace gateway
}  // namespace edgeroute
