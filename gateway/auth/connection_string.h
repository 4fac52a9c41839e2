// IoT Hub device and module connection strings, as the Azure IoT SDKs take
// them (Client.fromConnectionString, ModuleClient.fromConnectionString):
//
//   HostName={hub};DeviceId={d}[;ModuleId={m}];SharedAccessKey={base64}
//     [;GatewayHostName={host the client connects to}]
//
// or "x509=true" in place of SharedAccessKey for certificate identities.

#ifndef EDGEROUTE_GATEWAY_AUTH_CONNECTION_STRING_H_
#define EDGEROUTE_GATEWAY_AUTH_CONNECTION_STRING_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/auth/identity.h"

namespace edgeroute {
namespace gateway {
namespace auth {

struct ConnectionString {
  std::string host_name;  // the hub that SAS tokens name
  Identity identity;
  std::string shared_access_key;  // base64; empty with x509
  bool x509 = false;
  std::string gateway_host_name;  // empty: the client connects to host_name

  // The string, fields in the order above; empty fields left out.
  std::string ToString() const;

  // Parses "Key=value;..." (values may contain '='; keys are matched
  // case-insensitively, as the SDKs do). InvalidArgument for an unknown or
  // repeated key, or a string without HostName, DeviceId, and either
  // SharedAccessKey or x509=true. Messages never show the key.
  static absl::StatusOr<ConnectionString> Parse(absl::string_view text);
};

}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_AUTH_CONNECTION_STRING_H_
