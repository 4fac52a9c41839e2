#include "message/message.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace edgeroute {
namespace {

inline char FoldAscii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

absl::string_view ToView(const flatbuffers::String* s) {
  return s == nullptr ? absl::string_view() : absl::string_view(s->c_str(), s->size());
}

PropertyValue ToPropertyValue(const fb::Property* p) {
  PropertyValue v;
  if (p == nullptr) return v;
  if (p->value() == nullptr) {
    v.state = PropertyValue::State::kNull;
  } else {
    v.state = PropertyValue::State::kString;
    v.value = ToView(p->value());
  }
  return v;
}

PropertyValue Find(const flatbuffers::Vector<flatbuffers::Offset<fb::Property>>* props,
                   absl::string_view key) {
  if (props == nullptr) return {};
  for (const fb::Property* p : *props) {
    const flatbuffers::String* k = p->key();
    // Keys are usually spelled as asked: a memcmp before the case folding.
    if (k->size() == key.size() &&
        (key.empty() || std::memcmp(k->data(), key.data(), key.size()) == 0 ||
         EqualsIgnoreAsciiCase(ToView(k), key))) {
      return ToPropertyValue(p);
    }
  }
  return {};
}

constexpr absl::string_view kTwinChangeNotification = "twinChangeNotification";

}  // namespace

bool EqualsIgnoreAsciiCase(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (FoldAscii(a[i]) != FoldAscii(b[i])) return false;
  }
  return true;
}

void AppendMessageSource(PropertyValue message_type, PropertyValue module_id,
                         PropertyValue output_name, std::string* out) {
  // edgeHub compares messageType with the constant exactly (ordinal).
  if (message_type.has_string() && message_type.value == kTwinChangeNotification) {
    out->append("/twinChangeNotifications");
    return;
  }
  if (module_id.has_string() && !module_id.value.empty()) {
    out->append("/messages/modules/");
    out->append(module_id.value.data(), module_id.value.size());
    if (output_name.has_string() && !output_name.value.empty()) {
      out->append("/outputs/");
      out->append(output_name.value.data(), output_name.value.size());
    }
    return;
  }
  out->append("/messages");
}

// ---------------------------------------------------------------- MessageView

absl::StatusOr<MessageView> MessageView::Verify(absl::Span<const uint8_t> bytes,
                                                const VerifyLimits& limits) {
  if (bytes.data() == nullptr || bytes.empty()) {
    return absl::InvalidArgumentError("message buffer is empty");
  }
  if (bytes.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("message buffer is ", bytes.size(),
                                                   " bytes, over the limit of ",
                                                   limits.max_bytes));
  }
  if (reinterpret_cast<uintptr_t>(bytes.data()) % 8 != 0) {
    return absl::InvalidArgumentError("message buffer is not 8-byte aligned");
  }
  if (bytes.size() < sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength ||
      !fb::MessageBufferHasIdentifier(bytes.data())) {
    return absl::InvalidArgumentError(
        "not an edgeroute message buffer (file identifier \"ERM1\" missing)");
  }
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), limits.max_depth,
                                 limits.max_tables);
  if (!fb::VerifyMessageBuffer(verifier)) {
    return absl::InvalidArgumentError(
        "message buffer failed FlatBuffers verification (corrupt, truncated or "
        "over the depth/table limits)");
  }
  const fb::Message* message = fb::GetMessage(bytes.data());
  if (message->properties() != nullptr &&
      message->properties()->size() > limits.max_properties) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message has ", message->properties()->size(),
        " application properties, over the limit of ", limits.max_properties));
  }
  if (message->system_properties() != nullptr &&
      message->system_properties()->size() > limits.max_properties) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message has ", message->system_properties()->size(),
        " system properties, over the limit of ", limits.max_properties));
  }
  return MessageView(message, bytes);
}

MessageView MessageView::FromTrustedBytes(absl::Span<const uint8_t> bytes) {
  return MessageView(fb::GetMessage(bytes.data()), bytes);
}

absl::string_view MessageView::body() const {
  if (message_ == nullptr || message_->body() == nullptr) return {};
  return absl::string_view(reinterpret_cast<const char*>(message_->body()->data()),
                           message_->body()->size());
}

absl::string_view MessageView::source() const {
  return message_ == nullptr ? absl::string_view() : ToView(message_->source());
}

int64_t MessageView::enqueue_time_us() const {
  return message_ == nullptr ? 0 : message_->enqueue_time_us();
}

uint64_t MessageView::sequence_number() const {
  return message_ == nullptr ? 0 : message_->sequence_number();
}

PropertyValue MessageView::FindProperty(absl::string_view key) const {
  return message_ == nullptr ? PropertyValue() : Find(message_->properties(), key);
}

PropertyValue MessageView::FindSystemProperty(absl::string_view key) const {
  return message_ == nullptr ? PropertyValue() : Find(message_->system_properties(), key);
}

bool MessageView::AnyPropertyKeyStartsWith(char c) const {
  if (message_ == nullptr || message_->properties() == nullptr) return false;
  for (const fb::Property* p : *message_->properties()) {
    const flatbuffers::String* k = p->key();
    if (k->size() != 0 && k->c_str()[0] == c) return true;
  }
  return false;
}

size_t MessageView::property_count() const {
  return message_ == nullptr || message_->properties() == nullptr
             ? 0
             : message_->properties()->size();
}

std::pair<absl::string_view, PropertyValue> MessageView::property(size_t i) const {
  const fb::Property* p = message_->properties()->Get(static_cast<flatbuffers::uoffset_t>(i));
  return {ToView(p->key()), ToPropertyValue(p)};
}

size_t MessageView::system_property_count() const {
  return message_ == nullptr || message_->system_properties() == nullptr
             ? 0
             : message_->system_properties()->size();
}

std::pair<absl::string_view, PropertyValue> MessageView::system_property(size_t i) const {
  const fb::Property* p =
      message_->system_properties()->Get(static_cast<flatbuffers::uoffset_t>(i));
  return {ToView(p->key()), ToPropertyValue(p)};
}

// ------------------------------------------------------------- MessageBuilder

MessageBuilder::MessageBuilder() : fbb_(1024) {
  // Always write the 8-byte scalars, so every buffer is 8-byte aligned
  // (FlatBuffers aligns the whole buffer to its largest scalar).
  fbb_.ForceDefaults(true);
  Clear();
}

void MessageBuilder::Clear() {
  fbb_.Clear();
  properties_.clear();
  system_properties_.clear();
  body_ = 0;
  source_.clear();
  source_set_ = false;
  has_module_id_ = has_output_name_ = has_message_type_ = false;
  enqueue_time_us_ = 0;
  sequence_ = 0;
  finished_ = false;
}

void MessageBuilder::SetBody(absl::string_view body) {
  body_ = fbb_.CreateVector(reinterpret_cast<const uint8_t*>(body.data()), body.size());
}

flatbuffers::Offset<fb::Property> MessageBuilder::MakeProperty(
    absl::string_view key, const absl::string_view* value) {
  auto key_offset = fbb_.CreateString(key.data(), key.size());
  flatbuffers::Offset<flatbuffers::String> value_offset = 0;
  if (value != nullptr) value_offset = fbb_.CreateString(value->data(), value->size());
  fb::PropertyBuilder pb(fbb_);
  pb.add_key(key_offset);
  if (value != nullptr) pb.add_value(value_offset);
  return pb.Finish();
}

void MessageBuilder::AddProperty(absl::string_view key, absl::string_view value) {
  properties_.push_back(MakeProperty(key, &value));
}

void MessageBuilder::AddNullProperty(absl::string_view key) {
  properties_.push_back(MakeProperty(key, nullptr));
}

void MessageBuilder::AddSystemProperty(absl::string_view key, absl::string_view value) {
  system_properties_.push_back(MakeProperty(key, &value));
  // Remember what the source derives from; the first occurrence wins, as in
  // lookups.
  if (!has_module_id_ && EqualsIgnoreAsciiCase(key, "connectionModuleId")) {
    module_id_.assign(value.data(), value.size());
    has_module_id_ = true;
  } else if (!has_output_name_ && EqualsIgnoreAsciiCase(key, "outputName")) {
    output_name_.assign(value.data(), value.size());
    has_output_name_ = true;
  } else if (!has_message_type_ && EqualsIgnoreAsciiCase(key, "messageType")) {
    message_type_.assign(value.data(), value.size());
    has_message_type_ = true;
  }
}

void MessageBuilder::AddNullSystemProperty(absl::string_view key) {
  system_properties_.push_back(MakeProperty(key, nullptr));
}

void MessageBuilder::SetSource(absl::string_view source) {
  source_.assign(source.data(), source.size());
  source_set_ = true;
}

absl::Span<const uint8_t> MessageBuilder::Finish() {
  if (!source_set_) {
    auto as_value = [](bool has, const std::string& s) {
      PropertyValue v;
      if (has) {
        v.state = PropertyValue::State::kString;
        v.value = s;
      }
      return v;
    };
    AppendMessageSource(as_value(has_message_type_, message_type_),
                        as_value(has_module_id_, module_id_),
                        as_value(has_output_name_, output_name_), &source_);
  }
  auto source = fbb_.CreateString(source_.data(), source_.size());
  auto props = fbb_.CreateVector(properties_);
  auto sys_props = fbb_.CreateVector(system_properties_);
  fb::MessageBuilder mb(fbb_);
  if (!body_.IsNull()) mb.add_body(body_);
  mb.add_properties(props);
  mb.add_system_properties(sys_props);
  mb.add_source(source);
  mb.add_enqueue_time_us(enqueue_time_us_);
  mb.add_sequence_number(sequence_);
  fbb_.Finish(mb.Finish(), fb::MessageIdentifier());
  finished_ = true;
  return absl::Span<const uint8_t>(fbb_.GetBufferPointer(), fbb_.GetSize());
}

MessageView MessageBuilder::view() const {
  return MessageView::FromTrustedBytes(
      absl::Span<const uint8_t>(fbb_.GetBufferPointer(), fbb_.GetSize()));
}

}  // namespace edgeroute
