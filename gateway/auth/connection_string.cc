#include "gateway/auth/connection_string.h"

#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace edgeroute {
namespace gateway {
namespace auth {

std::string ConnectionString::ToString() const {
  std::string out =
      absl::StrCat("HostName=", host_name, ";DeviceId=", identity.device_id);
  if (!identity.module_id.empty()) {
    absl::StrAppend(&out, ";ModuleId=", identity.module_id);
  }
  if (x509) {
    absl::StrAppend(&out, ";x509=true");
  } else {
    absl::StrAppend(&out, ";SharedAccessKey=", shared_access_key);
  }
  if (!gateway_host_name.empty()) {
    absl::StrAppend(&out, ";GatewayHostName=", gateway_host_name);
  }
  return out;
}

absl::StatusOr<ConnectionString> ConnectionString::Parse(
    absl::string_view text) {
  ConnectionString out;
  std::optional<std::string> host, device, module, key, x509, gateway;
  for (absl::string_view field : absl::StrSplit(text, ';', absl::SkipEmpty())) {
    const size_t eq = field.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "connection string: a field without '=' (expected Key=value;...)");
    }
    const absl::string_view name = field.substr(0, eq);
    const absl::string_view value = field.substr(eq + 1);
    std::optional<std::string>* slot = nullptr;
    if (absl::EqualsIgnoreCase(name, "HostName")) {
      slot = &host;
    } else if (absl::EqualsIgnoreCase(name, "DeviceId")) {
      slot = &device;
    } else if (absl::EqualsIgnoreCase(name, "ModuleId")) {
      slot = &module;
    } else if (absl::EqualsIgnoreCase(name, "SharedAccessKey")) {
      slot = &key;
    } else if (absl::EqualsIgnoreCase(name, "x509")) {
      slot = &x509;
    } else if (absl::EqualsIgnoreCase(name, "GatewayHostName")) {
      slot = &gateway;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "connection string: unknown field '", absl::CHexEscape(name),
          "' (expected HostName, DeviceId, ModuleId, SharedAccessKey, x509, "
          "GatewayHostName)"));
    }
    if (slot->has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("connection string: field '", absl::CHexEscape(name),
                       "' appears twice"));
    }
    *slot = std::string(value);
  }
  if (!host.has_value() || host->empty() || !device.has_value() ||
      device->empty()) {
    return absl::InvalidArgumentError(
        "connection string: HostName and DeviceId are required");
  }
  out.x509 = x509.has_value() && absl::EqualsIgnoreCase(*x509, "true");
  if (out.x509 == (key.has_value() && !key->empty())) {
    return absl::InvalidArgumentError(
        "connection string: give either SharedAccessKey or x509=true");
  }
  out.host_name = std::move(*host);
  out.identity.device_id = std::move(*device);
  if (module.has_value()) out.identity.module_id = std::move(*module);
  if (key.has_value()) out.shared_access_key = std::move(*key);
  if (gateway.has_value()) out.gateway_host_name = std::move(*gateway);
  return out;
}

}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute
