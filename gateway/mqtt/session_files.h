// The subscriptions of CleanSession=0 MQTT sessions, kept in a directory so
// that they survive a gateway restart: one small JSON file per client id,
// session-{SHA-256 of the client id, hex}.json holding
// {"clientId": "edge-gw/filter", "subscriptions": [{"filter": ..., "qos": 1}]},
// written to a temporary file, fsync'ed and renamed over the old one.
//
// (The unacknowledged deliveries of such a session need no file: the
// router keeps them in the store until the module's PUBACK completes them,
// and delivers them again when the session resumes.)
//
// Thread-safety: none; one thread (the MQTT server's loop thread) uses it.

#ifndef EDGEROUTE_GATEWAY_MQTT_SESSION_FILES_H_
#define EDGEROUTE_GATEWAY_MQTT_SESSION_FILES_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/mqtt/session.h"

namespace edgeroute {
namespace gateway {
namespace mqtt {

class SessionFiles {
 public:
  // Most sessions, and filters per session, read back (bounds the work a
  // damaged or hostile directory can cause).
  static constexpr size_t kMaxSessions = 100000;
  static constexpr size_t kMaxFiltersPerSession = 256;

  // Opens `dir`, creating it (not its parents) when missing.
  static absl::StatusOr<std::unique_ptr<SessionFiles>> Open(std::string dir);

  // Every saved session: client id -> subscriptions. A file that cannot be
  // read or parsed is skipped and named in *problems (when not null).
  std::vector<std::pair<std::string, std::vector<Subscription>>> LoadAll(
      std::vector<std::string>* problems) const;

  // Writes (or, for no subscriptions, removes) the session of `client_id`.
  absl::Status Save(absl::string_view client_id,
                    const std::vector<Subscription>& subscriptions);
  absl::Status Remove(absl::string_view client_id);

  const std::string& dir() const { return dir_; }

 private:
  explicit SessionFiles(std::string dir) : dir_(std::move(dir)) {}
  std::string PathFor(absl::string_view client_id) const;

  const std::string dir_;
};

}  // namespace mqtt
}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_MQTT_SESSION_FILES_H_
