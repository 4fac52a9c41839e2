#include "store/read_cache.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace edgeroute::store::internal {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Adds `text` as offset `offset` of `queue` (enqueue time = offset,
// expiry = 1000 + offset).
void Add(ReadCache* cache, uint32_t queue, uint64_t offset,
         const std::string& text) {
  const uint64_t handle = cache->AddPayload(Bytes(text));
  cache->AddRef(queue, offset, static_cast<int64_t>(offset),
                static_cast<int64_t>(1000 + offset), handle,
                static_cast<uint32_t>(text.size()));
}

// The texts of [from, through], or "miss".
std::vector<std::string> Read(ReadCache* cache, uint32_t queue, uint64_t from,
                              uint64_t through) {
  std::vector<std::string> texts;
  uint64_t expected = from;
  const bool hit =
      cache->Visit(queue, from, through, [&](const ReadCache::Ref& ref) {
        EXPECT_EQ(ref.offset, expected++);
        EXPECT_EQ(ref.enqueue_us, static_cast<int64_t>(ref.offset));
        EXPECT_EQ(ref.expiry_us, static_cast<int64_t>(1000 + ref.offset));
        texts.emplace_back(ref.bytes);
        return true;
      });
  if (!hit) return {"miss"};
  return texts;
}

TEST(ReadCacheTest, ServesContiguousRangesOnly) {
  ReadCache cache(1 << 16);
  Add(&cache, 0, 5, "five");
  Add(&cache, 0, 6, "six");
  Add(&cache, 1, 1, "one");
  Add(&cache, 0, 7, "seven");
  EXPECT_EQ(Read(&cache, 0, 5, 7),
            (std::vector<std::string>{"five", "six", "seven"}));
  EXPECT_EQ(Read(&cache, 0, 6, 6), (std::vector<std::string>{"six"}));
  EXPECT_EQ(Read(&cache, 1, 1, 1), (std::vector<std::string>{"one"}));
  // Before the first cached offset, beyond the last, or an unknown queue.
  EXPECT_EQ(Read(&cache, 0, 4, 7), (std::vector<std::string>{"miss"}));
  EXPECT_EQ(Read(&cache, 0, 5, 8), (std::vector<std::string>{"miss"}));
  EXPECT_EQ(Read(&cache, 2, 1, 1), (std::vector<std::string>{"miss"}));
}

TEST(ReadCacheTest, VisitStopsWhenAsked) {
  ReadCache cache(1 << 16);
  for (uint64_t o = 1; o <= 10; ++o) Add(&cache, 0, o, absl::StrCat(o));
  int calls = 0;
  EXPECT_TRUE(cache.Visit(0, 1, 10,
                          [&](const ReadCache::Ref&) { return ++calls < 3; }));
  EXPECT_EQ(calls, 3);
}

TEST(ReadCacheTest, GapRestartsTheQueue) {
  ReadCache cache(1 << 16);
  Add(&cache, 0, 1, "a");
  Add(&cache, 0, 2, "b");
  Add(&cache, 0, 4, "d");  // 3 was never cached
  EXPECT_EQ(Read(&cache, 0, 1, 2), (std::vector<std::string>{"miss"}));
  EXPECT_EQ(Read(&cache, 0, 4, 4), (std::vector<std::string>{"d"}));
}

TEST(ReadCacheTest, TooLargeRestartsTheQueue) {
  ReadCache cache(1024);
  Add(&cache, 0, 1, "a");
  Add(&cache, 0, 2, std::string(300, 'x'));  // more than a quarter
  Add(&cache, 0, 3, "c");
  EXPECT_EQ(Read(&cache, 0, 1, 1), (std::vector<std::string>{"miss"}));
  EXPECT_EQ(Read(&cache, 0, 2, 3), (std::vector<std::string>{"miss"}));
  EXPECT_EQ(Read(&cache, 0, 3, 3), (std::vector<std::string>{"c"}));
}

TEST(ReadCacheTest, ForgetDropsDeliveredOffsets) {
  ReadCache cache(1 << 16);
  for (uint64_t o = 1; o <= 5; ++o) Add(&cache, 0, o, absl::StrCat("m", o));
  cache.Forget(0, 3);
  EXPECT_EQ(Read(&cache, 0, 3, 5), (std::vector<std::string>{"miss"}));
  EXPECT_EQ(Read(&cache, 0, 4, 5), (std::vector<std::string>{"m4", "m5"}));
  cache.Forget(0, 99);
  EXPECT_EQ(Read(&cache, 0, 5, 5), (std::vector<std::string>{"miss"}));
  // Appends after a full Forget are cached again.
  Add(&cache, 0, 6, "m6");
  EXPECT_EQ(Read(&cache, 0, 6, 6), (std::vector<std::string>{"m6"}));
}

TEST(ReadCacheTest, OverwrittenBytesAreNeverServed) {
  // 4 KiB ring, 100-byte messages: about 40 fit.
  ReadCache cache(4096);
  for (uint64_t o = 1; o <= 200; ++o) {
    Add(&cache, 0, o, std::string(100, static_cast<char>('a' + o % 26)));
  }
  Add(&cache, 1, 1, std::string(100, 'q'));
  // The oldest are gone; the newest are intact, byte for byte.
  EXPECT_EQ(Read(&cache, 0, 1, 200), (std::vector<std::string>{"miss"}));
  std::vector<std::string> newest = Read(&cache, 0, 190, 200);
  ASSERT_EQ(newest.size(), 11u);
  for (uint64_t o = 190; o <= 200; ++o) {
    EXPECT_EQ(newest[o - 190],
              std::string(100, static_cast<char>('a' + o % 26)));
  }
  EXPECT_EQ(Read(&cache, 1, 1, 1),
            (std::vector<std::string>{std::string(100, 'q')}));
  // Each index never grows past what the ring can hold (64 entries).
  EXPECT_LE(cache.MemoryBytes(), (2u << 20) + 2 * 64 * 48);
}

TEST(ReadCacheTest, ManyLaggingQueuesShareOneBoundedIndex) {
  // 64 KiB ring: at most 1024 index entries in all, however many queues
  // hold references nobody reads.
  ReadCache cache(64 << 10);
  const std::string text(10, 'x');  // small: the ring alone bounds little
  for (uint32_t queue = 0; queue < 100; ++queue) {
    for (uint64_t o = 1; o <= 1000; ++o) Add(&cache, queue, o, text);
  }
  EXPECT_LE(cache.MemoryBytes(), (2u << 20) + 2 * 1024 * 48 + 100 * 64 * 48);
  // The newest references of the last queue are still served.
  EXPECT_EQ(Read(&cache, 99, 1000, 1000), (std::vector<std::string>{text}));
  // A queue whose reader catches up gives its index back.
  cache.Forget(99, 1000);
  EXPECT_EQ(Read(&cache, 99, 1000, 1000), (std::vector<std::string>{"miss"}));
}

TEST(ReadCacheTest, DisabledCachesNothing) {
  ReadCache cache(0);
  EXPECT_FALSE(cache.enabled());
  Add(&cache, 0, 1, "a");
  EXPECT_EQ(Read(&cache, 0, 1, 1), (std::vector<std::string>{"miss"}));
  EXPECT_EQ(cache.MemoryBytes(), 0u);
}

}  // namespace
}  // namespace edgeroute::store::internal
