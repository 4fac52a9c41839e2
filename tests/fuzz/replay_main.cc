// A main() for libFuzzer targets built without libFuzzer: runs
// LLVMFuzzerTestOneInput once on every file of the corpus directories (or
// single files) named on the command line, so that each checked-in corpus
// -- the fuzzers' findings and saved regressions included -- is replayed as
// an ordinary unit test, under whichever sanitizer the build uses.
// A target aborts (and so fails the test) when an invariant breaks.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool ReadFile(const std::filesystem::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in),
              std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  for (int a = 1; a < argc; ++a) {
    const std::filesystem::path root = argv[a];
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    if (std::filesystem::is_directory(root, ec)) {
      for (const auto& entry :
           std::filesystem::directory_iterator(root, ec)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else if (std::filesystem::is_regular_file(root, ec)) {
      files.push_back(root);
    }
    if (files.empty()) {
      // An empty corpus would make this test pass without checking anything.
      std::fprintf(stderr, "no corpus files at %s\n", root.c_str());
      return 1;
    }
    std::sort(files.begin(), files.end());
    std::string bytes;
    for (const auto& file : files) {
      if (!ReadFile(file, &bytes)) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        return 1;
      }
      // A copy of exactly the input's size, so ASan sees any overread.
      std::vector<uint8_t> input(bytes.begin(), bytes.end());
      LLVMFuzzerTestOneInput(input.data(), input.size());
    }
    std::printf("replayed %zu inputs from %s\n", files.size(), root.c_str());
  }
  return 0;
}
