#include "message/message.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace edgeroute {
namespace {

// Copies bytes into 8-byte aligned storage, as a caller from outside would.
class AlignedBuffer {
 public:
  explicit AlignedBuffer(absl::Span<const uint8_t> bytes)
      : storage_((bytes.size() + 7) / 8 + 1), size_(bytes.size()) {
    if (!bytes.empty()) std::memcpy(storage_.data(), bytes.data(), bytes.size());
  }
  uint8_t* data() { return reinterpret_cast<uint8_t*>(storage_.data()); }
  absl::Span<const uint8_t> span() const {
    return {reinterpret_cast<const uint8_t*>(storage_.data()), size_};
  }

 private:
  std::vector<uint64_t> storage_;
  size_t size_;
};

TEST(MessageTest, RoundTrip) {
  MessageBuilder builder;
  builder.SetBody(R"({"temperature": 51.5})");
  builder.AddProperty("level", "critical");
  builder.AddNullProperty("nothing");
  builder.AddSystemProperty("contentType", "application/json");
  builder.AddSystemProperty("connectionModuleId", "sensor");
  builder.AddSystemProperty("outputName", "temps");
  builder.SetEnqueueTimeMicros(1234567);
  builder.SetSequenceNumber(42);
  AlignedBuffer copy(builder.Finish());

  absl::StatusOr<MessageView> view = MessageView::Verify(copy.span());
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->body(), R"({"temperature": 51.5})");
  EXPECT_EQ(view->source(), "/messages/modules/sensor/outputs/temps");
  EXPECT_EQ(view->enqueue_time_us(), 1234567);
  EXPECT_EQ(view->sequence_number(), 42u);
  ASSERT_EQ(view->property_count(), 2u);
  EXPECT_EQ(view->property(0).first, "level");
  EXPECT_EQ(view->property(0).second.value, "critical");
  EXPECT_TRUE(view->property(1).second.is_null());
  ASSERT_EQ(view->system_property_count(), 3u);
  EXPECT_EQ(view->system_property(2).first, "outputName");
}

TEST(MessageTest, CaseInsensitiveLookup) {
  MessageBuilder builder;
  builder.AddProperty("Level", "critical");
  builder.AddSystemProperty("contentType", "application/json");
  builder.Finish();
  MessageView view = builder.view();
  EXPECT_EQ(view.FindProperty("level").value, "critical");
  EXPECT_EQ(view.FindProperty("LEVEL").value, "critical");
  EXPECT_TRUE(view.FindProperty("levels").missing());
  EXPECT_TRUE(view.FindProperty("leve").missing());
  EXPECT_EQ(view.FindSystemProperty("CONTENTTYPE").value, "application/json");
  // Application and system properties are separate namespaces.
  EXPECT_TRUE(view.FindProperty("contentType").missing());
  EXPECT_TRUE(view.FindSystemProperty("level").missing());
}

TEST(MessageTest, AnyPropertyKeyStartsWith) {
  MessageBuilder builder;
  builder.AddProperty("level", "critical");
  builder.AddSystemProperty("$sys", "x");
  builder.AddProperty("", "empty key");
  builder.Finish();
  // Only application properties count.
  EXPECT_FALSE(builder.view().AnyPropertyKeyStartsWith('$'));
  EXPECT_TRUE(builder.view().AnyPropertyKeyStartsWith('l'));
  builder.Clear();
  builder.AddProperty("a", "1");
  builder.AddNullProperty("$body.x");
  builder.Finish();
  EXPECT_TRUE(builder.view().AnyPropertyKeyStartsWith('$'));
  EXPECT_FALSE(MessageView().AnyPropertyKeyStartsWith('$'));
}

TEST(MessageTest, FirstOfDuplicateKeysWins) {
  MessageBuilder builder;
  builder.AddProperty("k", "first");
  builder.AddProperty("K", "second");
  builder.Finish();
  EXPECT_EQ(builder.view().FindProperty("k").value, "first");
}

TEST(MessageTest, NullMissingAndEmptyAreDistinct) {
  MessageBuilder builder;
  builder.AddNullProperty("n");
  builder.AddProperty("e", "");
  builder.AddNullSystemProperty("cid");
  builder.Finish();
  MessageView view = builder.view();
  EXPECT_TRUE(view.FindProperty("n").is_null());
  EXPECT_FALSE(view.FindProperty("n").missing());
  EXPECT_TRUE(view.FindProperty("e").has_string());
  EXPECT_EQ(view.FindProperty("e").value, "");
  EXPECT_TRUE(view.FindProperty("x").missing());
  EXPECT_FALSE(view.FindProperty("x").is_null());
  EXPECT_TRUE(view.FindSystemProperty("cid").is_null());
}

TEST(MessageTest, EmptyBodyAndBinaryBody) {
  MessageBuilder builder;
  builder.Finish();
  EXPECT_EQ(builder.view().body(), "");
  builder.Clear();
  const std::string binary("a\0b\xff", 4);
  builder.SetBody(binary);
  builder.Finish();
  EXPECT_EQ(builder.view().body(), binary);
}

TEST(MessageTest, SourceDerivation) {
  MessageBuilder builder;
  builder.Finish();
  EXPECT_EQ(builder.view().source(), "/messages");

  builder.Clear();
  builder.AddSystemProperty("connectionDeviceId", "dev");
  builder.AddSystemProperty("connectionModuleId", "filter");
  builder.Finish();
  EXPECT_EQ(builder.view().source(), "/messages/modules/filter");

  builder.Clear();
  builder.AddSystemProperty("messageType", "twinChangeNotification");
  builder.AddSystemProperty("connectionModuleId", "filter");
  builder.Finish();
  EXPECT_EQ(builder.view().source(), "/twinChangeNotifications");

  builder.Clear();
  builder.AddSystemProperty("connectionModuleId", "filter");
  builder.SetSource("/messages/custom");
  builder.Finish();
  EXPECT_EQ(builder.view().source(), "/messages/custom");
}

TEST(MessageTest, BuilderReuseGivesIndependentMessages) {
  MessageBuilder builder;
  builder.AddProperty("a", "1");
  builder.SetSequenceNumber(7);
  builder.Finish();
  builder.Clear();
  builder.AddProperty("b", "2");
  builder.Finish();
  MessageView view = builder.view();
  EXPECT_TRUE(view.FindProperty("a").missing());
  EXPECT_EQ(view.FindProperty("b").value, "2");
  EXPECT_EQ(view.sequence_number(), 0u);
}

TEST(MessageTest, FinishedBufferIsAligned) {
  MessageBuilder builder;
  for (int i = 0; i < 50; ++i) {
    builder.Clear();
    builder.SetBody(std::string(i * 37, 'x'));
    builder.AddProperty(std::string(i, 'k'), "v");
    absl::Span<const uint8_t> bytes = builder.Finish();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(bytes.data()) % 8, 0u);
    EXPECT_TRUE(MessageView::Verify(bytes).ok());
  }
}

TEST(MessageVerifyTest, RejectsEmptyAndForeignBuffers) {
  EXPECT_EQ(MessageView::Verify({}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<uint64_t> zeros(8, 0);
  absl::Span<const uint8_t> span(reinterpret_cast<const uint8_t*>(zeros.data()), 64);
  absl::Status status = MessageView::Verify(span).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("ERM1"), std::string::npos);
}

TEST(MessageVerifyTest, RejectsEveryTruncation) {
  MessageBuilder builder;
  builder.SetBody("{\"a\":1}");
  builder.AddProperty("level", "critical");
  builder.AddSystemProperty("contentType", "application/json");
  AlignedBuffer full(builder.Finish());
  const size_t size = full.span().size();
  int rejected = 0;
  for (size_t len = 0; len < size; ++len) {
    AlignedBuffer truncated(full.span().subspan(0, len));
    absl::StatusOr<MessageView> view = MessageView::Verify(truncated.span());
    if (!view.ok()) {
      ++rejected;
      continue;
    }
    // Only trailing alignment padding may be cut without losing content.
    EXPECT_GE(len, size - 8) << "length " << len;
    EXPECT_EQ(view->body(), "{\"a\":1}");
    EXPECT_EQ(view->FindProperty("level").value, "critical");
  }
  EXPECT_GE(rejected, static_cast<int>(size) - 8);
  EXPECT_TRUE(MessageView::Verify(full.span()).ok());
}

TEST(MessageVerifyTest, CorruptedBytesNeverCrash) {
  MessageBuilder builder;
  builder.SetBody("{\"a\":1}");
  builder.AddProperty("level", "critical");
  builder.AddNullProperty("n");
  AlignedBuffer full(builder.Finish());
  const size_t size = full.span().size();
  int rejected = 0;
  for (size_t i = 0; i < size; ++i) {
    for (uint8_t flip : {0x01, 0x80, 0xff}) {
      AlignedBuffer corrupt(full.span());
      corrupt.data()[i] ^= flip;
      absl::StatusOr<MessageView> view = MessageView::Verify(corrupt.span());
      if (!view.ok()) {
        ++rejected;
        continue;
      }
      // Accepted corruption (e.g. inside string bytes) must still be safe to read.
      (void)view->body();
      (void)view->FindProperty("level");
      for (size_t p = 0; p < view->property_count(); ++p) (void)view->property(p);
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(MessageVerifyTest, EnforcesLimits) {
  MessageBuilder builder;
  for (int i = 0; i < 10; ++i) builder.AddProperty("k" + std::to_string(i), "v");
  absl::Span<const uint8_t> bytes = builder.Finish();
  VerifyLimits limits;
  limits.max_properties = 5;
  EXPECT_EQ(MessageView::Verify(bytes, limits).status().code(),
            absl::StatusCode::kInvalidArgument);
  limits = VerifyLimits();
  limits.max_bytes = 16;
  EXPECT_EQ(MessageView::Verify(bytes, limits).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MessageVerifyTest, RejectsUnalignedBuffer) {
  MessageBuilder builder;
  absl::Span<const uint8_t> bytes = builder.Finish();
  std::vector<uint64_t> storage(bytes.size() / 8 + 2);
  uint8_t* unaligned = reinterpret_cast<uint8_t*>(storage.data()) + 1;
  std::memcpy(unaligned, bytes.data(), bytes.size());
  EXPECT_EQ(MessageView::Verify({unaligned, bytes.size()}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MessageTest, EqualsIgnoreAsciiCase) {
  EXPECT_TRUE(EqualsIgnoreAsciiCase("ContentType", "contenttype"));
  EXPECT_FALSE(EqualsIgnoreAsciiCase("a", "ab"));
  EXPECT_FALSE(EqualsIgnoreAsciiCase("[", "{"));  // '[' is 'A'-1+... not a letter
  EXPECT_TRUE(EqualsIgnoreAsciiCase("", ""));
}

}  // namespace
}  // namespace edgeroute
