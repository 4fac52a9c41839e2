// libFuzzer target: arbitrary bytes as a test message ({"props","sys",
// "body"}) and as JSON read by the positioned reader. Build and run: see
// message/FUZZING.md.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "absl/strings/string_view.h"
#include "base/json_reader.h"
#include "message/message.h"
#include "message/message_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  static edgeroute::MessageBuilder* builder = new edgeroute::MessageBuilder;
  auto view = edgeroute::BuildMessageFromJson(text, builder);
  if (view.ok()) {
    // Read everything back.
    volatile size_t n = view->body().size() + view->source().size();
    for (size_t i = 0; i < view->property_count(); ++i) {
      n = n + view->property(i).first.size();
    }
    (void)n;
  }
  // Every node the reader returns lies inside the input, after its parent's
  // start, and a string's offsets map into the text.
  edgeroute::JsonNode root;
  edgeroute::JsonReadError error;
  if (edgeroute::ReadJson(text, edgeroute::MessageJsonReaderOptions(), &root,
                          &error)) {
    std::vector<const edgeroute::JsonNode*> stack = {&root};
    while (!stack.empty()) {
      const edgeroute::JsonNode* node = stack.back();
      stack.pop_back();
      if (node->begin >= node->end || node->end > text.size()) std::abort();
      for (const auto& child : node->children) {
        if (child.begin < node->begin || child.end > node->end) std::abort();
        stack.push_back(&child);
      }
    }
  } else if (error.at > text.size() || error.message.empty()) {
    std::abort();
  }
  return 0;
}
