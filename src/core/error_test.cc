#include "core/error.h"

#include <gtest/gtest.h>

namespace jarvis {
namespace {

TEST(ErrorTest, FromErrnoMapsCodeAndNamesTheCall) {
  Error e = Error::FromErrno(ENOENT, "open /nope");
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_EQ(e.message(), "open /nope: No such file or directory");
  EXPECT_EQ(Error::FromErrno(EPERM, "x").code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(Error::FromErrno(EOPNOTSUPP, "x").code(), ErrorCode::kUnavailable);
  EXPECT_EQ(Error::FromErrno(EIO, "x").code(), ErrorCode::kIoError);
}

TEST(ErrorTest, ContextIsPrepended) {
  Result<int> r = MakeError(ErrorCode::kIoError, "socket: boom");
  Result<int> c = WithContext(std::move(r), "opening eth9");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message(), "opening eth9: socket: boom");
  EXPECT_EQ(c.error().code(), ErrorCode::kIoError);
  Result<int> ok = WithContext(Result<int>(7), "unused");
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 7);
}

TEST(ErrorTest, NegErrnoWrapsNegativeReturns) {
  EXPECT_TRUE(NegErrno(0, "call"));
  EXPECT_TRUE(NegErrno(5, "call"));
  Status s = NegErrno(-EPERM, "xsk_umem__create");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(s.error().message(), "xsk_umem__create: Operation not permitted");
}

}  // namespace
}  // namespace jarvis
