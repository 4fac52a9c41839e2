#include "gateway/auth/test_util.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace edgeroute {
namespace gateway {
namespace auth {
namespace testing {
namespace {

constexpr char kPythonToken[] = R"py(
import base64, hashlib, hmac, sys, urllib.parse
resource, key, expiry, order, key_name = sys.argv[1:6]
sr = urllib.parse.quote(resource, safe='')
mac = hmac.new(base64.b64decode(key, validate=True),
               (sr + '\n' + expiry).encode('utf-8'), hashlib.sha256).digest()
fields = {'sr': sr, 'sig': urllib.parse.quote(base64.b64encode(mac), safe=''),
          'se': expiry, 'skn': urllib.parse.quote(key_name, safe='')}
print('SharedAccessSignature ' +
      '&'.join(n + '=' + fields[n] for n in order.split(',')), end='')
)py";

std::string Python() {
  return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

std::string TempPath(absl::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, ".", getpid());
}

bool WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(file);
}

}  // namespace

bool RunProgram(const std::vector<std::string>& argv, absl::string_view input,
                std::string* out) {
  out->clear();
  int to_child[2];
  int from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0) return false;
  if (pipe2(from_child, O_CLOEXEC) != 0) {
    close(to_child[0]);
    close(to_child[1]);
    return false;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
  posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
  std::vector<char*> args;
  for (const std::string& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned =
      posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(to_child[0]);
  close(from_child[1]);
  if (spawned == 0) {
    // Inputs are small (a pipe buffer holds them), so write, then read.
    size_t written = 0;
    while (written < input.size()) {
      const ssize_t n =
          write(to_child[1], input.data() + written, input.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      written += static_cast<size_t>(n);
    }
  }
  close(to_child[1]);
  if (spawned == 0) {
    char buffer[4096];
    for (;;) {
      const ssize_t n = read(from_child[0], buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      out->append(buffer, static_cast<size_t>(n));
    }
  }
  close(from_child[0]);
  if (spawned != 0) return false;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string PythonSasToken(absl::string_view resource,
                           absl::string_view base64_key, int64_t expiry,
                           absl::string_view order,
                           absl::string_view key_name) {
  std::string out;
  if (!RunProgram({Python(), "-c", kPythonToken, std::string(resource),
                   std::string(base64_key), absl::StrCat(expiry),
                   std::string(order), std::string(key_name)},
                  "", &out)) {
    return "";
  }
  return out;
}

std::string OpenSslHmacBase64(absl::string_view key_hex,
                              absl::string_view text) {
  const std::string text_path = TempPath("hmac-text");
  const std::string mac_path = TempPath("hmac-mac");
  std::string out;
  if (!WriteFile(text_path, text) ||
      !RunProgram({"openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt",
                   absl::StrCat("hexkey:", key_hex), "-binary", "-out",
                   mac_path, text_path},
                  "", &out) ||
      !RunProgram({"openssl", "base64", "-A", "-in", mac_path}, "", &out)) {
    out.clear();
  }
  unlink(text_path.c_str());
  unlink(mac_path.c_str());
  return std::string(absl::StripTrailingAsciiWhitespace(out));
}

std::string OpenSslBase64(absl::string_view hex) {
  std::string out;
  if (!RunProgram({"openssl", "base64", "-A"}, absl::HexStringToBytes(hex),
                  &out)) {
    return "";
  }
  return std::string(absl::StripTrailingAsciiWhitespace(out));
}

}  // namespace testing
}  // namespace auth
}  // namespace gateway
}  // namespace edgeroute
