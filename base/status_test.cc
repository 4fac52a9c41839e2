#include "base/status.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace edgeroute {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status UseAssign(int x, int* out) {
  EDGEROUTE_ASSIGN_OR_RETURN(int half, Half(x));
  EDGEROUTE_ASSIGN_OR_RETURN(*out, Half(half));
  return absl::OkStatus();
}

absl::Status UseReturn(bool fail) {
  EDGEROUTE_RETURN_IF_ERROR(fail ? absl::UnavailableError("down") : absl::OkStatus());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturn) {
  int out = 0;
  EXPECT_TRUE(UseAssign(8, &out).ok());
  EXPECT_EQ(out, 2);
  EXPECT_EQ(UseAssign(6, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(UseAssign(7, &out).code(), absl::StatusCode::kInvalidArgument);
}

TEST(StatusMacrosTest, ReturnIfError) {
  EXPECT_TRUE(UseReturn(false).ok());
  EXPECT_EQ(UseReturn(true).code(), absl::StatusCode::kUnavailable);
}

TEST(ErrnoToStatusTest, Mapping) {
  EXPECT_TRUE(ErrnoToStatus(0, "x").ok());
  EXPECT_EQ(ErrnoToStatus(ENOENT, "open").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoToStatus(ENOSPC, "write").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoToStatus(EACCES, "open").code(), absl::StatusCode::kPermissionDenied);
  absl::Status s = ErrnoToStatus(ENOSPC, "write /tmp/x");
  EXPECT_NE(s.message().find("write /tmp/x: "), std::string::npos);
  EXPECT_NE(s.message().find("space"), std::string::npos);
}

}  // namespace
}  // namespace edgeroute
