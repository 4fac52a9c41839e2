// libFuzzer target: arbitrary bytes as a deployment manifest through
// CompileEdgeHubConfig (the positioned JSON reader, the schema checks, route
// compilation and the mapping of route diagnostics into the manifest).
// Build and run: see tools/FUZZING.md.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "absl/strings/string_view.h"
#include "query/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<edgeroute::query::Diagnostic> diags;
  auto result = edgeroute::query::CompileEdgeHubConfig(
      text, edgeroute::query::CompileOptions{}, &diags);
  for (const auto& d : diags) {
    // Positions are 1-based and every diagnostic says something.
    if (d.line < 1 || d.column < 1 || d.end_column <= d.column ||
        d.message.empty()) {
      std::abort();
    }
  }
  if (result.ok() && result->routes->size() != result->config.routes.size()) {
    std::abort();
  }
  return 0;
}
