#include "gateway/demo.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace edgeroute {
namespace gateway {
namespace {

std::string ReadAll(std::FILE* f) {
  std::string text;
  std::rewind(f);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  return text;
}

TEST(DemoTest, EmbeddedManifestIsTheExampleFile) {
  std::ifstream in("examples/demo-manifest.json", std::ios::binary);
  ASSERT_TRUE(in) << "examples/demo-manifest.json not in the runfiles";
  std::ostringstream text;
  text << in.rdbuf();
  EXPECT_EQ(DemoManifest(), text.str());
}

TEST(DemoTest, RejectsBadOptions) {
  DemoOptions options;
  options.seconds = 2;
  EXPECT_FALSE(RunDemo(options).ok());
  options.seconds = 10;
  options.messages = 0;
  EXPECT_FALSE(RunDemo(options).ok());
}

// The whole story in a short configuration: 6 s, 1000 readings/s. The
// checks fail if the store loses acknowledged messages (nothing acknowledged
// lost), if priority lanes do not overtake the backlog (priority), if TTLs
// do not expire alerts (TTL expiry, nothing acknowledged lost) or if the
// backlog does not drain after the reconnect (store drained).
TEST(DemoTest, ShortRunTellsTheWholeStory) {
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  DemoOptions options;
  options.seconds = 6;
  options.messages = 6000;
  options.out = out;
  absl::StatusOr<DemoReport> report = RunDemo(options);
  const std::string text = ReadAll(out);
  std::fclose(out);
  ASSERT_TRUE(report.ok()) << report.status();
  for (const char* name : {"clients", "priority", "nothing acknowledged lost",
                           "TTL expiry", "store drained"}) {
    const DemoCheck* check = report->Find(name);
    ASSERT_NE(check, nullptr) << name;
    EXPECT_TRUE(check->passed) << name << ": " << check->detail;
  }
  EXPECT_TRUE(report->passed()) << text;
  // The story, for whoever reads the test log.
  std::fputs(text.c_str(), stdout);
  EXPECT_EQ(report->sent, 6000u);
  EXPECT_EQ(report->acknowledged, 6000u);
  // Every reading reached the upstream or expired.
  EXPECT_EQ(report->delivered_upstream + report->expired, report->sent);
  EXPECT_GT(report->backlog_bulk, report->backlog_alerts);
  // The story was printed: banners, report, checks.
  EXPECT_NE(text.find("upstream OFFLINE"), std::string::npos) << text;
  EXPECT_NE(text.find("upstream back"), std::string::npos) << text;
  EXPECT_NE(text.find("alertsToUpstream"), std::string::npos) << text;
  EXPECT_NE(text.find("PASS  priority"), std::string::npos) << text;
  EXPECT_EQ(text.find("FAIL"), std::string::npos) << text;
}

}  // namespace
}  // namespace gateway
}  // namespace edgeroute
