#include "base/clock.h"

#include "gtest/gtest.h"

namespace edgeroute {
namespace {

TEST(ClockTest, FakeClockMovesOnlyWhenTold) {
  FakeClock clock(1000);
  EXPECT_EQ(clock.NowMicros(), 1000);
  EXPECT_EQ(clock.NowMicros(), 1000);
  clock.AdvanceSeconds(2);
  EXPECT_EQ(clock.NowMicros(), 2001000);
  EXPECT_EQ(clock.MonotonicMicros(), 2001000);
  clock.SetMicros(5);
  EXPECT_EQ(clock.NowMicros(), 5);
}

TEST(ClockTest, SystemClockIsPlausible) {
  Clock* clock = SystemClock();
  ASSERT_NE(clock, nullptr);
  EXPECT_EQ(clock, SystemClock());
  // After 2020-01-01 and monotonic readings never go backwards.
  EXPECT_GT(clock->NowMicros(), int64_t{1577836800} * 1000000);
  int64_t a = clock->MonotonicMicros();
  int64_t b = clock->MonotonicMicros();
  EXPECT_LE(a, b);
}

}  // namespace
}  // namespace edgeroute
