// Runs the built `edgeroute` binary over the conformance files in data/ and
// reports every case whose result differs from the expected one:
//   conditions.tsv, conditions-generated.tsv -> edgeroute eval --tsv
//   routes.tsv                               -> edgeroute route --tsv
//   routes-generated.jsonl                   -> edgeroute route --jsonl
//   sources.tsv                              -> edgeroute match-source --tsv
// Usage (Bazel passes these): conformance_test EDGEROUTE_BINARY DATA_DIR
// (this main() takes precedence over the one in the static gmock_main).

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "simdjson.h"

namespace {

std::string g_binary;
std::string g_data_dir;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

// Runs `edgeroute <args>` with the file as stdin; returns its output lines.
std::vector<std::string> RunEdgeroute(const std::string& args,
                                      const std::string& input_file,
                                      const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string out_file =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, ".out");
  const std::string command =
      absl::StrCat(ShellQuote(g_binary), " ", args, " < ",
                   ShellQuote(input_file), " > ", ShellQuote(out_file));
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << command;
  return Lines(ReadFile(out_file));
}

bool IsPassThrough(const std::string& line) {
  return line.empty() || line[0] == '#' ||
         line.find_first_not_of(" \t\r") == std::string::npos;
}

std::string FirstField(const std::string& line) {
  return line.substr(0, line.find('\t'));
}

struct Tally {
  std::string file;
  int passed = 0;
  int failed = 0;
  int shown = 0;

  void Check(size_t line_number, const std::string& input,
             const std::string& expected, const std::string& got) {
    if (expected == got) {
      ++passed;
      return;
    }
    ++failed;
    // Every mismatch counts; the first 200 per file are shown in full.
    if (++shown <= 200) {
      ADD_FAILURE() << file << ":" << line_number << ": case " << input
                    << "\n    expected: " << expected
                    << "\n    got:      " << got;
    }
  }
  ~Tally() {
    std::cout << "[conformance] " << file << ": " << passed << " passed, "
              << failed << " failed\n";
  }
};

// TSV files: the expected result is column `expected_column` (0-based); the
// tool's result is its first output field.
void RunTsv(const std::string& file, const std::string& args,
            size_t expected_column) {
  const std::string path = absl::StrCat(g_data_dir, "/", file);
  const std::vector<std::string> input = Lines(ReadFile(path));
  ASSERT_FALSE(input.empty()) << path;
  const std::vector<std::string> output = RunEdgeroute(args, path, file);
  ASSERT_EQ(output.size(), input.size())
      << "edgeroute must print one line per input line";
  Tally tally{file};
  for (size_t i = 0; i < input.size(); ++i) {
    if (IsPassThrough(input[i])) {
      EXPECT_EQ(output[i], input[i]) << "line " << i + 1 << " not echoed";
      continue;
    }
    std::vector<std::string> columns = absl::StrSplit(input[i], '\t');
    ASSERT_GT(columns.size(), expected_column) << file << ":" << i + 1;
    std::string expected = columns[expected_column];
    if (!expected.empty() && expected.back() == '\r') expected.pop_back();
    std::string case_text = columns[0];
    if (expected_column > 1) absl::StrAppend(&case_text, "  ON  ", columns[1]);
    tally.Check(i + 1, case_text, expected, FirstField(output[i]));
  }
}

TEST(Conformance, Conditions) { RunTsv("conditions.tsv", "eval --tsv", 2); }

TEST(Conformance, ConditionsGenerated) {
  RunTsv("conditions-generated.tsv", "eval --tsv", 2);
}

TEST(Conformance, Routes) { RunTsv("routes.tsv", "route --tsv", 1); }

TEST(Conformance, Sources) { RunTsv("sources.tsv", "match-source --tsv", 2); }

// {"route": R, "expect": "error" | {"source", "condition", "sink"}}.
std::string ExpectedJsonResult(simdjson::dom::element expect) {
  std::string_view s;
  if (expect.get_string().get(s) == simdjson::SUCCESS) return std::string(s);
  std::string_view source, condition, sink;
  if (expect["source"].get_string().get(source) != simdjson::SUCCESS ||
      expect["condition"].get_string().get(condition) != simdjson::SUCCESS ||
      expect["sink"].get_string().get(sink) != simdjson::SUCCESS) {
    return "<malformed expectation>";
  }
  return std::string("source=") + std::string(source) +
         "|condition=" + std::string(condition) + "|sink=" + std::string(sink);
}

// The tool's output line in the same form as ExpectedJsonResult.
std::string GotJsonResult(const std::string& line) {
  simdjson::dom::parser parser;
  simdjson::dom::element out;
  if (parser.parse(line).get(out) != simdjson::SUCCESS) {
    return absl::StrCat("<not JSON: ", line, ">");
  }
  simdjson::dom::element error;
  if (out["error"].get(error) == simdjson::SUCCESS) return "error";
  return ExpectedJsonResult(out);
}

TEST(Conformance, RoutesGenerated) {
  const std::string file = "routes-generated.jsonl";
  const std::string path = absl::StrCat(g_data_dir, "/", file);
  const std::vector<std::string> input = Lines(ReadFile(path));
  ASSERT_FALSE(input.empty()) << path;
  const std::vector<std::string> output =
      RunEdgeroute("route --jsonl", path, file);
  ASSERT_EQ(output.size(), input.size());
  Tally tally{file};
  simdjson::dom::parser parser;
  for (size_t i = 0; i < input.size(); ++i) {
    if (IsPassThrough(input[i])) continue;
    simdjson::dom::element root, expect;
    ASSERT_EQ(parser.parse(input[i]).get(root), simdjson::SUCCESS)
        << file << ":" << i + 1;
    ASSERT_EQ(root["expect"].get(expect), simdjson::SUCCESS)
        << file << ":" << i + 1;
    std::string_view route;
    ASSERT_EQ(root["route"].get_string().get(route), simdjson::SUCCESS);
    const std::string expected = ExpectedJsonResult(expect);
    tally.Check(i + 1, std::string(route), expected, GotJsonResult(output[i]));
  }
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (argc != 3) {
    std::cerr << "usage: conformance_test EDGEROUTE_BINARY DATA_DIR\n";
    return 2;
  }
  g_binary = argv[1];
  g_data_dir = argv[2];
  return RUN_ALL_TESTS();
}
