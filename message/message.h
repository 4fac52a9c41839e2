// The canonical edgeroute message: one FlatBuffers encoding (message.fbs)
// that is built once, then evaluated, stored and delivered without being
// re-encoded.
//
//   MessageBuilder  -- builds the bytes; one per thread, reused with Clear().
//   MessageView     -- a read-only view of the bytes. Buffers that come from
//                      outside the process (C ABI, sockets, the store) are
//                      checked by MessageView::Verify before any field is read.
//
// Property lookups are case-insensitive (ASCII letters fold; other bytes
// compare exactly) and distinguish three states: missing, null, and a string.

#ifndef EDGEROUTE_MESSAGE_MESSAGE_H_
#define EDGEROUTE_MESSAGE_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "flatbuffers/flatbuffers.h"
#include "message/message_generated.h"

namespace edgeroute {

// The value of one property lookup. `value` points into the message buffer
// and is valid as long as the buffer is.
struct PropertyValue {
  enum class State : uint8_t { kMissing, kNull, kString };

  State state = State::kMissing;
  absl::string_view value;

  bool missing() const { return state == State::kMissing; }
  bool is_null() const { return state == State::kNull; }
  bool has_string() const { return state == State::kString; }
};

// Limits applied by MessageView::Verify to buffers from outside. The defaults
// admit every message edgeHub admits (256 KiB of properties + body) with a
// wide margin and bound the verifier's work on hostile input.
struct VerifyLimits {
  // Largest accepted buffer, in bytes.
  size_t max_bytes = 4u << 20;
  // FlatBuffers nesting depth and table count budgets.
  uint32_t max_depth = 8;
  uint32_t max_tables = 16384;
  // Largest number of application or system properties.
  uint32_t max_properties = 4096;
};

// ASCII case-insensitive equality, the comparison used for property keys.
bool EqualsIgnoreAsciiCase(absl::string_view a, absl::string_view b);

// The edgeHub message source for a message with these system properties
// (RoutingMessageConverter.GetMessageSource):
//   messageType == "twinChangeNotification" -> /twinChangeNotifications
//   connectionModuleId set, outputName set  -> /messages/modules/{m}/outputs/{o}
//   connectionModuleId set                  -> /messages/modules/{m}
//   otherwise                               -> /messages
// Appends the source to *out.
void AppendMessageSource(PropertyValue message_type, PropertyValue module_id,
                         PropertyValue output_name, std::string* out);

// A read-only view of a message buffer. Cheap to copy (two pointers and a
// size). Does not own the bytes: the caller keeps them alive.
// Thread-safety: const methods may be called concurrently.
class MessageView {
 public:
  // An empty view: no buffer, every lookup missing, empty body and source.
  MessageView() = default;

  // Verifies `bytes` as a message (identifier "ERM1", FlatBuffers verifier
  // with `limits`, property counts) and returns a view of it.
  // Returns InvalidArgument, with the reason, for anything else.
  // REQUIRES: bytes.data() is 8-byte aligned (FlatBuffers alignment); an
  // unaligned buffer is rejected, not read.
  static absl::StatusOr<MessageView> Verify(
      absl::Span<const uint8_t> bytes, const VerifyLimits& limits = {});

  // A view of bytes that were produced by MessageBuilder in this process or
  // verified before. No checks.
  static MessageView FromTrustedBytes(absl::Span<const uint8_t> bytes);

  absl::Span<const uint8_t> bytes() const { return bytes_; }
  bool empty() const { return message_ == nullptr; }

  absl::string_view body() const;
  absl::string_view source() const;
  int64_t enqueue_time_us() const;
  uint64_t sequence_number() const;

  // Case-insensitive lookups. The first property with a matching key wins.
  PropertyValue FindProperty(absl::string_view key) const;
  PropertyValue FindSystemProperty(absl::string_view key) const;

  // Whether some application property's key starts with `c` (one cheap
  // pass; lets callers skip lookups of keys that start with `c`).
  bool AnyPropertyKeyStartsWith(char c) const;

  // Iteration in insertion order.
  size_t property_count() const;
  std::pair<absl::string_view, PropertyValue> property(size_t i) const;
  size_t system_property_count() const;
  std::pair<absl::string_view, PropertyValue> system_property(
      size_t i) const;

 private:
  MessageView(const fb::Message* message, absl::Span<const uint8_t> bytes)
      : message_(message), bytes_(bytes) {}

  const fb::Message* message_ = nullptr;
  absl::Span<const uint8_t> bytes_;
};

// Builds message buffers. After warm-up a reused builder does not allocate
// per message (FlatBufferBuilder and the offset vectors keep their capacity
// across Clear()).
// Thread-safety: none; use one builder per thread.
//
// Usage:
//   builder.Clear();
//   builder.SetBody(json);
//   builder.AddSystemProperty("contentType", "application/json");
//   builder.AddProperty("level", "critical");
//   absl::Span<const uint8_t> bytes = builder.Finish();
class MessageBuilder {
 public:
  MessageBuilder();
  MessageBuilder(const MessageBuilder&) = delete;
  MessageBuilder& operator=(const MessageBuilder&) = delete;

  // Starts a new message; invalidates the bytes of the previous Finish().
  void Clear();

  void SetBody(absl::string_view body);
  void AddProperty(absl::string_view key, absl::string_view value);
  void AddNullProperty(absl::string_view key);
  void AddSystemProperty(absl::string_view key, absl::string_view value);
  void AddNullSystemProperty(absl::string_view key);
  // When no source is set, Finish() derives it from the system properties
  // with AppendMessageSource.
  void SetSource(absl::string_view source);
  void SetEnqueueTimeMicros(int64_t micros) { enqueue_time_us_ = micros; }
  void SetSequenceNumber(uint64_t sequence) { sequence_ = sequence; }

  // Finishes the message and returns its bytes, which stay valid until the
  // next Clear() or the builder's destruction. 8-byte aligned.
  // REQUIRES: not called twice without Clear() in between.
  absl::Span<const uint8_t> Finish();

  // The view of the finished message. REQUIRES: Finish() was called.
  MessageView view() const;

 private:
  flatbuffers::Offset<fb::Property> MakeProperty(absl::string_view key,
                                                 const absl::string_view* value);

  flatbuffers::FlatBufferBuilder fbb_;
  std::vector<flatbuffers::Offset<fb::Property>> properties_;
  std::vector<flatbuffers::Offset<fb::Property>> system_properties_;
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> body_;
  // The source, explicit or derived; capacity reused across messages.
  std::string source_;
  bool source_set_ = false;
  // System properties the source derives from, copied because the
  // FlatBuffers strings are not readable before Finish().
  std::string module_id_, output_name_, message_type_;
  bool has_module_id_ = false, has_output_name_ = false,
       has_message_type_ = false;
  int64_t enqueue_time_us_ = 0;
  uint64_t sequence_ = 0;
  bool finished_ = false;
};

}  // namespace edgeroute

#endif  // EDGEROUTE_MESSAGE_MESSAGE_H_
