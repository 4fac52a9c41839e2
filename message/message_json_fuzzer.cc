// libFuzzer target: arbitrary bytes as a test message ({"props","sys",
// "body"}) and as a JSON-lines object. Build and run: see tools/FUZZING.md.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "message/message.h"
#include "tools/message_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  static edgeroute::MessageBuilder* builder = new edgeroute::MessageBuilder;
  auto view = edgeroute::tools::BuildMessageFromJson(text, builder);
  if (view.ok()) {
    // Read everything back.
    volatile size_t n = view->body().size() + view->source().size();
    for (size_t i = 0; i < view->property_count(); ++i) {
      n = n + view->property(i).first.size();
    }
    (void)n;
  }
  auto members = edgeroute::tools::SplitJsonObject(text);
  if (members.ok()) {
    for (const auto& m : *members) {
      // Raw values are slices of the input.
      if (m.raw_value.data() < text.data() ||
          m.raw_value.data() + m.raw_value.size() > text.data() + text.size()) {
        std::abort();
      }
    }
  }
  return 0;
}
