#include "gateway/demo_mqtt_module.h"

#include <mosquitto.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gateway/auth/sas_token.h"

namespace edgeroute {
namespace gateway {

struct DemoMqttModule::State {
  DemoMqttOptions options;
  std::string client_id;
  std::string inputs_prefix;  // devices/{d}/modules/{m}/inputs/
  mosquitto* mosq = nullptr;

  // std::mutex rather than absl::Mutex: Debian's Abseil carries no
  // ThreadSanitizer annotations, and libmosquitto's thread takes this lock.
  mutable std::mutex mu;
  std::condition_variable changed;  // any field below changed
  // Guarded by mu:
  int connack = -1;
  absl::Status status;
  uint64_t acks = 0;
  int subscribe_mid = -1;
  int granted_qos = -1;
  std::deque<DemoInput> inputs;

  // Waits until `ready()` holds or `timeout_ms` passed; returns ready().
  template <typename Pred>
  bool Await(std::unique_lock<std::mutex>& lock, int timeout_ms, Pred ready) {
    return changed.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready);
  }
};

namespace {

using State = DemoMqttModule::State;

void OnConnect(mosquitto*, void* obj, int rc) {
  State* s = static_cast<State*>(obj);
  std::lock_guard<std::mutex> lock(s->mu);
  s->connack = rc;
  s->changed.notify_all();
}

void OnDisconnect(mosquitto*, void* obj, int rc) {
  State* s = static_cast<State*>(obj);
  std::lock_guard<std::mutex> lock(s->mu);
  if (rc != 0 && s->status.ok()) {
    s->status = absl::UnavailableError(absl::StrCat(
        s->client_id, ": connection lost (", mosquitto_strerror(rc), ")"));
  }
  s->changed.notify_all();
}

void OnPublish(mosquitto*, void* obj, int /*mid*/) {
  State* s = static_cast<State*>(obj);
  std::lock_guard<std::mutex> lock(s->mu);
  ++s->acks;
  s->changed.notify_all();
}

void OnSubscribe(mosquitto*, void* obj, int mid, int count,
                 const int* granted) {
  State* s = static_cast<State*>(obj);
  std::lock_guard<std::mutex> lock(s->mu);
  if (mid == s->subscribe_mid && count > 0) s->granted_qos = granted[0];
  s->changed.notify_all();
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
  std::lock_guard<std::mutex> lock(s->mu);
  s->inputs.push_back(std::move(in));
  s->changed.notify_all();
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
  std::unique_lock<std::mutex> lock(s->mu);
  s->Await(lock, options.connect_timeout_ms,
           [s] { return s->connack >= 0 || !s->status.ok(); });
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
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->status.ok()) return state_->status;
    return absl::UnavailableError(
        absl::StrCat(state_->client_id, ": ", mosquitto_strerror(rc)));
  }
  return absl::OkStatus();
}

uint64_t DemoMqttModule::acks() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->acks;
}

absl::Status DemoMqttModule::WaitForAcks(uint64_t n, int timeout_ms) {
  State* s = state_.get();
  std::unique_lock<std::mutex> lock(s->mu);
  if (!s->Await(lock, timeout_ms,
                [s, n] { return s->acks >= n || !s->status.ok(); })) {
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
    std::unique_lock<std::mutex> lock(s->mu);
    const int rc =
        mosquitto_subscribe(s->mosq, &mid, filter.c_str(), /*qos=*/1);
    if (rc != MOSQ_ERR_SUCCESS) {
      return absl::UnavailableError(
          absl::StrCat(s->client_id, ": ", mosquitto_strerror(rc)));
    }
    s->subscribe_mid = mid;
    s->Await(lock, timeout_ms,
             [s] { return s->granted_qos >= 0 || !s->status.ok(); });
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
  std::unique_lock<std::mutex> lock(s->mu);
  s->Await(lock, timeout_ms,
           [s] { return !s->inputs.empty() || !s->status.ok(); });
  if (!s->inputs.empty()) {
    DemoInput in = std::move(s->inputs.front());
    s->inputs.pop_front();
    return in;
  }
  if (!s->status.ok()) return s->status;
  return absl::DeadlineExceededError("no input message");
}

absl::Status DemoMqttModule::status() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->status;
}

}  // namespace gateway
}  // namespace edgeroute
