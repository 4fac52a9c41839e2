#include "gateway/manifest_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "message/status.h"

namespace edgeroute {
namespace gateway {
namespace {

int ToPollTimeout(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return 0;
  return static_cast<int>(absl::ToInt64Milliseconds(d)) + 1;
}

}  // namespace

// What polling compares: a rename changes the inode, an in-place write the
// size or the modification time.
ManifestWatcher::Fingerprint ManifestWatcher::Stat(const std::string& path) {
  Fingerprint f;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return f;
  f.exists = true;
  f.device = static_cast<uint64_t>(st.st_dev);
  f.inode = static_cast<uint64_t>(st.st_ino);
  f.size = static_cast<int64_t>(st.st_size);
  f.mtime_ns =
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return f;
}

absl::StatusOr<std::unique_ptr<ManifestWatcher>> ManifestWatcher::Create(
    const std::string& path, ManifestWatch mode,
    std::function<void()> on_change,
    std::function<void(const std::string&)> log) {
  if (mode == ManifestWatch::kOff) {
    return absl::InvalidArgumentError("ManifestWatch::kOff watches nothing");
  }
  std::unique_ptr<ManifestWatcher> w(
      new ManifestWatcher(path, std::move(on_change), std::move(log)));
  w->initial_ = Stat(path);
  w->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->stop_fd_ < 0) return ErrnoToStatus(errno, "eventfd");
  if (mode == ManifestWatch::kAuto) {
    w->inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int e = errno;
    // Not IN_MODIFY: it fires for every write() of a file still being
    // written; IN_CLOSE_WRITE says the writer is done.
    constexpr uint32_t kEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                                 IN_CREATE | IN_DELETE | IN_ATTRIB;
    if (w->inotify_fd_ >= 0 &&
        inotify_add_watch(w->inotify_fd_, w->directory_.c_str(), kEvents) < 0) {
      e = errno;
      close(w->inotify_fd_);
      w->inotify_fd_ = -1;
    }
    if (w->inotify_fd_ < 0 && w->log_) {
      w->log_(absl::StrCat("cannot watch '", w->directory_, "' with inotify (",
                           std::strerror(e), "); polling the manifest every ",
                           absl::FormatDuration(kManifestPollInterval)));
    }
  }
  w->thread_ = std::thread([raw = w.get()] { raw->Run(); });
  return w;
}

ManifestWatcher::ManifestWatcher(std::string path,
                                 std::function<void()> on_change,
                                 std::function<void(const std::string&)> log)
    : path_(std::move(path)),
      on_change_(std::move(on_change)),
      log_(std::move(log)) {
  const size_t slash = path_.rfind('/');
  if (slash == std::string::npos) {
    directory_ = ".";
    name_ = path_;
  } else {
    directory_ = slash == 0 ? "/" : path_.substr(0, slash);
    name_ = path_.substr(slash + 1);
  }
}

ManifestWatcher::~ManifestWatcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    // One write cannot overflow the eventfd counter, and a broken fd makes
    // poll() return with an error, which ends Run as well.
    const ssize_t written = write(stop_fd_, &one, sizeof(one));
    static_cast<void>(written);
    thread_.join();
  }
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

bool ManifestWatcher::DrainEvents() {
  alignas(inotify_event) char buffer[4096];
  bool relevant = false;
  for (;;) {
    const ssize_t n = read(inotify_fd_, buffer, sizeof(buffer));
    if (n <= 0) return relevant;
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      if (event->mask & IN_IGNORED) {
        // The directory itself went away (deleted, unmounted): nothing more
        // will come from this watch.
        close(inotify_fd_);
        inotify_fd_ = -1;
        if (log_) {
          log_(absl::StrCat("'", directory_,
                            "' is no longer watched; polling the manifest "
                            "every ",
                            absl::FormatDuration(kManifestPollInterval)));
        }
        return true;
      }
      const absl::string_view name =
          event->len > 0 ? absl::string_view(event->name) : "";
      // The file itself, or a "..name" entry: Kubernetes swaps a "..data"
      // symlink to update mounted configuration atomically. An overflowed
      // queue may have lost an event for the file.
      if ((event->mask & IN_Q_OVERFLOW) || name == name_ ||
          absl::StartsWith(name, "..")) {
        relevant = true;
      }
    }
  }
}

void ManifestWatcher::Run() {
  Fingerprint last = initial_;
  // One look right away: the file may have changed between the caller's
  // first read and the watch being set up.
  bool pending = true;
  absl::Time quiet_until = absl::Now();
  for (;;) {
    const bool inotify = inotify_fd_ >= 0;
    int timeout_ms = -1;
    if (pending) {
      timeout_ms = ToPollTimeout(quiet_until - absl::Now());
    } else if (!inotify) {
      timeout_ms = ToPollTimeout(kManifestPollInterval);
    }
    pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int n = poll(fds, inotify ? 2 : 1, timeout_ms);
    if (n < 0 && errno != EINTR) return;
    if (n > 0 && fds[0].revents != 0) return;
    bool changed = false;
    if (inotify) {
      if (n > 0 && fds[1].revents != 0) changed = DrainEvents();
    } else {
      const Fingerprint now = Stat(path_);
      if (now != last) {
        last = now;
        changed = true;
      }
    }
    if (changed) {
      pending = true;
      quiet_until = absl::Now() + kManifestDebounce;
      continue;
    }
    if (pending && absl::Now() >= quiet_until) {
      pending = false;
      on_change_();
    }
  }
}

}  // namespace gateway
}  // namespace edgeroute
