// Notices when a manifest file changes, so the gateway can reload it without
// a SIGHUP.
//
// The watch is on the file's directory, not the file: editors and
// configuration tools replace a file by writing a new one and renaming it
// over the old, which a watch on the old inode would never see. Changes are
// debounced (kManifestDebounce of quiet after the last event) so that a
// write followed by a rename, or a burst of writes, causes one callback.
// Where inotify is unavailable (limits, seccomp, some network file systems)
// the file's identity, size and modification time are polled every
// kManifestPollInterval instead, with the same debounce.
//
// The callback only says "look again": the caller reads the file and decides
// whether its text changed. Spurious calls are therefore harmless.

#ifndef EDGEROUTE_GATEWAY_MANIFEST_WATCHER_H_
#define EDGEROUTE_GATEWAY_MANIFEST_WATCHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace edgeroute {
namespace gateway {

inline constexpr absl::Duration kManifestDebounce = absl::Milliseconds(200);
inline constexpr absl::Duration kManifestPollInterval = absl::Seconds(1);

enum class ManifestWatch {
  kAuto,  // inotify on the directory; polling if that cannot be set up
  kPoll,  // polling only
  kOff,
};

// Thread-safety: Create and the destructor from one thread; the callback
// runs on the watcher's own thread, never after the destructor returned.
class ManifestWatcher {
 public:
  // Starts watching `path` (kAuto or kPoll). `on_change` runs on the
  // watcher thread once changes settled. `log` receives one line when
  // inotify is not used.
  static absl::StatusOr<std::unique_ptr<ManifestWatcher>> Create(
      const std::string& path, ManifestWatch mode,
      std::function<void()> on_change,
      std::function<void(const std::string&)> log);
  ~ManifestWatcher();
  ManifestWatcher(const ManifestWatcher&) = delete;
  ManifestWatcher& operator=(const ManifestWatcher&) = delete;

 private:
  ManifestWatcher(std::string path, std::function<void()> on_change,
                  std::function<void(const std::string&)> log);
  void Run();
  // Reads every pending inotify event; true if one may concern the file.
  bool DrainEvents();

  const std::string path_;
  std::string directory_;
  std::string name_;
  const std::function<void()> on_change_;
  const std::function<void(const std::string&)> log_;
  // Taken before the thread starts, so that a change right after Create
  // returns is never mistaken for the starting state.
  struct Fingerprint {
    bool exists = false;
    uint64_t device = 0;
    uint64_t inode = 0;
    int64_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const Fingerprint& o) const {
      return exists == o.exists && device == o.device && inode == o.inode &&
             size == o.size && mtime_ns == o.mtime_ns;
    }
    bool operator!=(const Fingerprint& o) const { return !(*this == o); }
  };
  static Fingerprint Stat(const std::string& path);
  Fingerprint initial_;
  // Watcher thread only (after Create); -1 while polling.
  int inotify_fd_ = -1;
  // An eventfd written by the destructor to end Run.
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace gateway
}  // namespace edgeroute

#endif  // EDGEROUTE_GATEWAY_MANIFEST_WATCHER_H_
