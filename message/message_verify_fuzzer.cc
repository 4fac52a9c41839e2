// libFuzzer target: arbitrary bytes through MessageView::Verify, then every
// accessor of an accepted view. Build with clang: bash scripts/fuzz.sh message_verify SECONDS.
#include <cstdint>
#include <cstring>
#include <vector>

#include "message/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Callers must hand in aligned buffers; copy like the C ABI does.
  std::vector<uint64_t> storage(size / 8 + 1);
  if (size > 0) std::memcpy(storage.data(), data, size);
  absl::Span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(storage.data()), size);
  absl::StatusOr<edgeroute::MessageView> view = edgeroute::MessageView::Verify(bytes);
  if (!view.ok()) return 0;
  size_t sink = view->body().size() + view->source().size();
  sink += static_cast<size_t>(view->enqueue_time_us()) + view->sequence_number();
  for (size_t i = 0; i < view->property_count(); ++i) sink += view->property(i).first.size();
  for (size_t i = 0; i < view->system_property_count(); ++i) {
    sink += view->system_property(i).second.value.size();
  }
  sink += view->FindProperty("level").value.size();
  sink += view->FindSystemProperty("contentType").value.size();
  return sink == 0xdeadbeef ? 1 : 0;
}
