#include "tools/cli.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "store/store.h"
#include "version.h"

namespace edgeroute::tools {
namespace {

using ::testing::HasSubstr;

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun Edgeroute(std::vector<std::string> args, const std::string& input = "") {
  std::istringstream in(input);
  std::ostringstream out, err;
  const int code = RunEdgeroute(args, in, out, err);
  return CliRun{code, out.str(), err.str()};
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

int CountErrors(const std::string& check_output) {
  int n = 0;
  for (const std::string& line : Lines(check_output)) {
    n += absl::StrContains(line, ": error: ");
  }
  return n;
}

TEST(Cli, HelpAndUsage) {
  CliRun r = Edgeroute({"help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("edgeroute check MANIFEST.json"));
  EXPECT_THAT(r.out, HasSubstr("eval --tsv"));
  EXPECT_EQ(Edgeroute({"--help"}).code, 0);
  EXPECT_EQ(Edgeroute({"check", "--help"}).code, 0);
  EXPECT_EQ(Edgeroute({}).code, 2);
  EXPECT_EQ(Edgeroute({"frobnicate"}).code, 2);
  EXPECT_EQ(Edgeroute({"eval", "--bogus"}).code, 2);
  EXPECT_EQ(Edgeroute({"eval", "--tsv", "--jsonl"}).code, 2);
  EXPECT_EQ(Edgeroute({"eval"}).code, 2);
  EXPECT_EQ(Edgeroute({"route", "--device"}).code, 2);
  EXPECT_EQ(Edgeroute({"check"}).code, 2);
  EXPECT_EQ(Edgeroute({"check", "a.json", "b.json"}).code, 2);
  EXPECT_EQ(Edgeroute({"check", "no/such/file.json"}).code, 2);
  EXPECT_EQ(Edgeroute({"store", "inspect"}).code, 2);
}

TEST(Cli, Version) {
  CliRun r = Edgeroute({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, absl::StrCat("edgeroute ", EDGEROUTE_RELEASE_VERSION, "\n"));
  EXPECT_THAT(r.out,
              testing::MatchesRegex("edgeroute [0-9]+\\.[0-9]+\\.[0-9]+\n"));
}

TEST(Cli, RunAndDemoUsageErrors) {
  EXPECT_THAT(Edgeroute({"help"}).out, HasSubstr("edgeroute run --manifest"));
  EXPECT_THAT(Edgeroute({"help"}).out, HasSubstr("edgeroute demo"));
  // run: the manifest is required; listeners, metrics and I/O are checked.
  CliRun r = Edgeroute({"run"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--manifest"));
  EXPECT_EQ(Edgeroute({"run", "--manifest"}).code, 2);
  EXPECT_EQ(Edgeroute({"run", "--manifest", "m.json", "extra"}).code, 2);
  EXPECT_EQ(Edgeroute({"run", "--manifest=m.json", "--listen", "udp:1"}).code,
            2);
  EXPECT_EQ(
      Edgeroute({"run", "--manifest=m.json", "--listen", "tcp:host"}).code, 2);
  EXPECT_EQ(Edgeroute({"run", "--manifest=m.json", "--listen=tcp:h:1",
                       "--listen=tcp:h:2"})
                .code,
            2);
  EXPECT_EQ(Edgeroute({"run", "--manifest=m.json", "--listen=unix:"}).code, 2);
  // Connection and ack bounds are checked.
  for (const char* bad : {"0", "1000001", "x"}) {
    EXPECT_EQ(
        Edgeroute({"run", "--manifest=m.json", "--max-connections", bad}).code,
        2)
        << bad;
  }
  for (const char* bad : {"-1", "86401", "x"}) {
    EXPECT_EQ(
        Edgeroute({"run", "--manifest=m.json", "--ack-timeout", bad}).code, 2)
        << bad;
  }
  for (const char* bad : {"-1", "257", "x", ""}) {
    const CliRun refused =
        Edgeroute({"run", "--manifest=m.json", "--executor-threads", bad});
    EXPECT_EQ(refused.code, 2) << bad;
    EXPECT_THAT(refused.err, HasSubstr("--executor-threads wants 0..256"))
        << bad;
  }
  for (const char* bad : {"0", "-1", "3601", "1.5", "x", ""}) {
    const CliRun refused =
        Edgeroute({"run", "--manifest=m.json", "--connect-timeout", bad});
    EXPECT_EQ(refused.code, 2) << bad;
    EXPECT_THAT(refused.err, HasSubstr("--connect-timeout wants 1..3600"))
        << bad;
  }
  // A native TLS listener needs the certificate; one TCP listener at most.
  const CliRun tls_alone =
      Edgeroute({"run", "--manifest=m.json", "--listen=tls:127.0.0.1:1"});
  EXPECT_EQ(tls_alone.code, 2);
  EXPECT_THAT(tls_alone.err, HasSubstr("needs --tls-cert"));
  EXPECT_EQ(Edgeroute({"run", "--manifest=m.json", "--listen=tls:h:1",
                       "--listen=tcp:h:2"})
                .code,
            2);
  EXPECT_EQ(
      Edgeroute({"run", "--manifest=m.json", "--metrics", "127.0.0.1:99999"})
          .code,
      2);
  r = Edgeroute({"run", "--manifest=m.json", "--io", "kqueue"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("epoll or uring"));
  r = Edgeroute({"run", "--manifest=m.json", "--watch=inotify"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("auto, poll or off"));
  // run --upstream*: URLs and the credentials each kind needs.
  r = Edgeroute({"run", "--manifest=m.json", "--upstream", "ftp://x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("mqtt://HOST[:PORT]"));
  r = Edgeroute({"run", "--manifest=m.json", "--upstream=iothub://parent"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--upstream-key"));
  r = Edgeroute({"run", "--manifest=m.json", "--upstream-topic=a/#"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("need --upstream"));
  r = Edgeroute({"run", "--manifest=m.json", "--upstream=mqtt://b",
                 "--upstream-protocol", "4"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("5 or 3.1.1"));
  r = Edgeroute({"run", "--manifest=m.json", "--upstream=iothub://parent",
                 "--upstream-key=a2V5", "--upstream-token-ttl", "4"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--upstream-token-ttl wants seconds, 5.."));
  r = Edgeroute({"run", "--manifest=m.json", "--upstream=mqtt://b",
                 "--upstream-token-ttl=60"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("applies to iothub:// with --upstream-key"));
  // demo: bounded options.
  EXPECT_EQ(Edgeroute({"demo", "--seconds", "5"}).code, 2);
  EXPECT_EQ(Edgeroute({"demo", "--seconds=51"}).code, 2);
  EXPECT_EQ(Edgeroute({"demo", "--messages", "0"}).code, 2);
  EXPECT_EQ(Edgeroute({"demo", "--messages"}).code, 2);
  EXPECT_EQ(Edgeroute({"demo", "now"}).code, 2);
}

TEST(Cli, RunStoreFlagsAreChecked) {
  CliRun r = Edgeroute(
      {"run", "--manifest=m.json", "--store=d", "--store-full", "drop_newest"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("reject or drop_oldest"));
  r = Edgeroute(
      {"run", "--manifest=m.json", "--store=d", "--durability", "disk"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("process or power"));
  r = Edgeroute(
      {"run", "--manifest=m.json", "--store=d", "--store-max-bytes=-1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--store-max-bytes wants a number"));
  r = Edgeroute({"run", "--manifest=m.json", "--store-max-bytes", "1000"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("add --store DIR"));
  // Valid flags get past the usage checks (the manifest is missing: 1).
  r = Edgeroute({"run", "--manifest=no/such/m.json", "--store=d",
                 "--store-max-bytes=1000", "--store-full=drop_oldest",
                 "--durability=power", "--listen", "tcp:127.0.0.1:0"});
  EXPECT_EQ(r.code, 1) << r.err;
}

TEST(Cli, CheckSaysWhichStoreLimitApplies) {
  const std::string manifest =
      "{\"schemaVersion\": \"1.1\", \"routes\": {}, "
      "\"storeAndForwardConfiguration\": {\"timeToLiveSecs\": 60, "
      "\"storeLimits\": {\"maxSizeBytes\": 4096}}}";
  CliRun r = Edgeroute({"check", "-"}, manifest);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("store limit: 4096 bytes (manifest "
                               "storeAndForwardConfiguration.storeLimits."
                               "maxSizeBytes)"));
  r = Edgeroute({"check", "-", "--store-max-bytes", "100"}, manifest);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("store limit: 100 bytes (--store-max-bytes; "
                               "the manifest's 4096 bytes do not apply)"));
  r = Edgeroute({"check", "-", "--store-max-bytes=x"}, manifest);
  EXPECT_EQ(r.code, 2);
  r = Edgeroute({"check", "-"},
                "{\"schemaVersion\": \"1.1\", \"routes\": {}, "
                "\"storeAndForwardConfiguration\": {\"timeToLiveSecs\": 60}}");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("store limit: none (no limit given)"));
}

TEST(Cli, RunReportsAMissingManifest) {
  // Past the usage checks, RunGateway fails before listening: exit 1.
  CliRun r = Edgeroute({"run", "--manifest", "no/such/manifest.json",
                        "--listen", "tcp:127.0.0.1:0"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("no/such/manifest.json"));
}

TEST(Cli, EvalTsvEchoesCommentsAndBlankLinesAndNeverStops) {
  const std::string input =
      "# a comment\tstays\n"
      "\n"
      "true\t{\"props\":{}}\ttrue\n"
      "true\t{\"props\":{\"n\":5}}\n"
      "true\tnot json\n"
      "false\t{}\n";
  CliRun r = Edgeroute({"eval", "--tsv"}, input);
  EXPECT_EQ(r.code, 0);
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 6u) << r.out;
  EXPECT_EQ(lines[0], "# a comment\tstays");
  EXPECT_EQ(lines[1], "");
  EXPECT_EQ(lines[2], "true");
  EXPECT_TRUE(absl::StartsWith(lines[3], "error\t")) << lines[3];
  EXPECT_THAT(lines[3], HasSubstr("\"n\""));
  EXPECT_TRUE(absl::StartsWith(lines[4], "error\t")) << lines[4];
  EXPECT_EQ(lines[5], "false");
}

TEST(Cli, EvalTsvResults) {
  const std::string input =
      "k = 'v'\t{\"props\":{\"k\":\"v\"},\"sys\":{}}\n"
      "k = 'v'\t{\"props\":{\"k\":\"w\"},\"sys\":{}}\n"
      "k = 'v'\t{\"props\":{},\"sys\":{}}\n"
      "1 = '1'\t{}\n"
      "$body.t > 50\t{\"sys\":{\"contentType\":\"application/json\","
      "\"contentEncoding\":\"utf-8\"},\"body\":{\"t\":51}}\n"
      "$body.t > 50\t{\"sys\":{\"contentType\":\"application/json\","
      "\"contentEncoding\":\"utf-8\"},\"body\":\"{\\\"t\\\":49}\"}\n";
  CliRun r = Edgeroute({"eval", "--tsv"}, input);
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 6u) << r.out;
  EXPECT_EQ(lines[0], "true");
  EXPECT_EQ(lines[1], "false");
  EXPECT_EQ(lines[2], "undefined");
  EXPECT_TRUE(absl::StartsWith(lines[3], "compile-error\t")) << lines[3];
  EXPECT_EQ(lines[4], "true");
  EXPECT_EQ(lines[5], "false");
}

TEST(Cli, EvalJsonl) {
  const std::string input =
      "{\"condition\": \"k =\\n'v'\", \"message\": {\"props\":{\"k\":\"v\"}}}\n"
      "{\"condition\": \"nosuch(1)\", \"message\": {}}\n"
      "{\"message\": {}}\n"
      "# comment\n";
  CliRun r = Edgeroute({"eval", "--jsonl"}, input);
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_TRUE(absl::StartsWith(lines[0], "{\"result\": \"true\"")) << lines[0];
  EXPECT_TRUE(absl::StartsWith(lines[1], "{\"result\": \"compile-error\""))
      << lines[1];
  EXPECT_THAT(lines[1], HasSubstr("\"line\": 1"));
  EXPECT_THAT(lines[1], HasSubstr("\"column\": 1"));
  EXPECT_THAT(lines[2], HasSubstr("\"result\": \"error\""));
  EXPECT_EQ(lines[3], "# comment");
}

TEST(Cli, RouteTsvAndJsonl) {
  CliRun r = Edgeroute({"route", "--tsv", "--device", "gw"},
                       "FROM /messages/* INTO $upstream\tignored expectation\n"
                       "FROM /messages/modules/a/* WHERE k = 1 INTO "
                       "BrokeredEndpoint(\"/modules/b/inputs/c\")\n"
                       "FROM messages/* INTO $upstream\n");
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0], "source=/messages/|condition=true|sink=iothub");
  // The first stage does not type-check: k = 1 parses.
  EXPECT_EQ(lines[1],
            "source=/messages/modules/a/|condition=k = 1|sink=gw/b/c");
  EXPECT_TRUE(absl::StartsWith(lines[2], "error")) << lines[2];

  r = Edgeroute({"route", "--jsonl"},
                "{\"route\": \"FROM /messages/*\\tINTO\\t$upstream\", "
                "\"expect\": \"x\"}\n"
                "{\"route\": \"FROM /messages/* INTO\"}\n");
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[0],
            "{\"source\": \"/messages/\", \"condition\": \"true\", \"sink\": "
            "\"iothub\"}");
  EXPECT_TRUE(absl::StartsWith(lines[1], "{\"error\": ")) << lines[1];
  EXPECT_THAT(lines[1], HasSubstr("\"line\": 1"));
}

TEST(Cli, MatchSource) {
  CliRun r =
      Edgeroute({"match-source", "--tsv"},
                "/messages/*\t/messages\ttrue\n"
                "/messages/modules/m1/*\t/messages/modules/m10/outputs/o\n");
  EXPECT_EQ(r.out, "true\nfalse\n");
}

TEST(Cli, CheckAcceptsTheValidExamples) {
  for (const char* file :
       {"examples/deployment.json", "examples/edgehub-desired.json"}) {
    CliRun r = Edgeroute({"check", file});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(CountErrors(r.out), 0) << r.out;
    EXPECT_THAT(r.out, HasSubstr(": valid: schema 1."));
  }
  CliRun r = Edgeroute({"check", "examples/deployment.json"});
  EXPECT_THAT(r.out, HasSubstr("4 routes, message TTL 7200 s"));
  EXPECT_THAT(r.out, HasSubstr("alerts: "));
}

TEST(Cli, CheckRejectsInvalidExampleWithEveryError) {
  CliRun r = Edgeroute({"check", "examples/invalid.json"});
  EXPECT_EQ(r.code, 1) << r.out;
  // Each of the five routes has its mistake reported (a route may get a
  // follow-on error too, e.g. NOT's operand and then the comparison).
  std::set<std::string> routes_with_errors;
  for (const std::string& line : Lines(r.out)) {
    const size_t at = line.find(": error: route '");
    if (at == std::string::npos) continue;
    const size_t begin = at + std::strlen(": error: route '");
    routes_with_errors.insert(
        line.substr(begin, line.find('\'', begin) - begin));
  }
  EXPECT_EQ(
      routes_with_errors,
      (std::set<std::string>{"gluedOperator", "notPrecedence", "unknownBuiltin",
                             "badEndpoint", "badPriority"}))
      << r.out;
  EXPECT_GE(CountErrors(r.out), 5);
  EXPECT_THAT(r.out, HasSubstr("examples/invalid.json: invalid: "));
  // The traps are explained with suggestions.
  EXPECT_THAT(r.out, HasSubstr("suggestion: "));
}

TEST(Cli, CheckReportsJsonErrorsWithPositionAndCaret) {
  CliRun r =
      Edgeroute({"check", "-"},
                "{\n  \"schemaVersion\": \"1.1\",\n  \"routes\": {,}\n}\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("<stdin>:3:14: error: invalid JSON"));
  // Excerpts are indented by 4; the caret sits under column 14.
  EXPECT_THAT(r.out, HasSubstr("\n      \"routes\": {,}\n" +
                               std::string(4 + 13, ' ') + "^\n"));
}

TEST(Cli, EvalOneExplains) {
  CliRun r = Edgeroute({"eval", "level = 'critical'", "--message", "-"},
                       "{\"props\":{\"level\":\"critical\"}}");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("result: true"));
  r = Edgeroute({"eval", "nosuch(1)"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("compile-error"));
  r = Edgeroute({"eval", "true", "--message", "-"}, "{\"props\":[]}");
  EXPECT_EQ(r.code, 1);
}

TEST(Cli, StoreInspect) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr);
  const std::string dir = std::string(tmp) + "/inspect-store";
  {
    store::StoreOptions options;
    options.directory = dir;
    absl::StatusOr<std::unique_ptr<store::Store>> s =
        store::Store::Open(options);
    ASSERT_TRUE(s.ok()) << s.status();
    absl::StatusOr<uint32_t> q = (*s)->OpenQueue({"gw/filter/input1", 3});
    ASSERT_TRUE(q.ok()) << q.status();
    MessageBuilder builder;
    builder.SetBody("{\"t\":1}");
    absl::Span<const uint8_t> bytes = builder.Finish();
    store::QueueTarget target{*q, 60};
    store::AppendItem item{bytes, absl::MakeConstSpan(&target, 1)};
    ASSERT_TRUE((*s)->Append(absl::MakeConstSpan(&item, 1)).ok());
    ASSERT_TRUE((*s)->Close().ok());
  }
  CliRun r = Edgeroute({"store", "inspect", dir});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("gw/filter/input1"));
  r = Edgeroute({"store", "inspect", dir + "/does-not-exist"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("edgeroute store inspect: "));
  // repair: a healthy store has nothing to repair.
  r = Edgeroute({"store", "repair", dir});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("0 references and 0 payloads removed"));
  r = Edgeroute({"store", "repair", std::string(tmp)});  // Not a store.
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("is not an edgeroute store"));
  EXPECT_EQ(Edgeroute({"store", "mend", dir}).code, 2);
}

}  // namespace
}  // namespace edgeroute::tools
