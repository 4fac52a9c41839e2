// Who a connection is, once it has proven it: the IoT Hub identity a device
// or module connects as. Shared by the protocol heads (native and MQTT), the
// hub and gateway/auth.

#ifndef EDGEROUTE_GATEWAY_AUTH_IDENTITY_H_
#define EDGEROUTE_GATEWAY_AUTH_IDENTITY_H_

#include <string>

namespace edgeroute {
namespace gateway {

// connectionDeviceId and (for a module) connectionModuleId.
struct Identity {
  std::string device_id;
  std::string module_id;  // empty for a device

  friend bool operator==(const Identity& a, const Identity& b) {
    return a.device_id == b.device_id && a.module_id == b.module_id;
  }
  friend bool operator!=(const Identity& a, const Identity& b) {
    return !(a == b);
  }
};

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_AUTH_IDENTITY_H_
