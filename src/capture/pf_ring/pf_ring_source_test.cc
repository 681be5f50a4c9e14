#include "capture/pf_ring/pf_ring_source.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace jarvis {
namespace {

TEST(PfRingTest, SaysWhichPartIsMissing) {
  pf_ring::Probe probe;
  probe.libraries = {"/nonexistent/libpfring.so"};
  probe.module_proc = "/nonexistent/proc/net/pf_ring";
  const std::string why = pf_ring::UnavailableReason(probe);
  EXPECT_NE(why.find("libpfring is not installed (tried /nonexistent/libpfring.so)"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("the pf_ring kernel module is not loaded (no "
                     "/nonexistent/proc/net/pf_ring)"),
            std::string::npos)
      << why;

  // A library that loads but is not libpfring: the missing functions are named.
  probe.libraries = {"libc.so.6"};
  probe.module_proc = "/proc/self";  // exists: only the library is blamed
  const std::string lacks = pf_ring::UnavailableReason(probe);
  EXPECT_EQ(lacks.rfind("libpfring lacks pfring_open, pfring_close", 0), 0u) << lacks;
  EXPECT_EQ(lacks.find("kernel module"), std::string::npos) << lacks;
}

TEST(PfRingTest, ListedUnavailableWhereAbsentAndOpenRefuses) {
  const bool here = std::filesystem::exists("/proc/net/pf_ring");
  const std::string why = PfRingUnavailableReason();
  if (here && why.empty()) GTEST_SKIP() << "PF_RING is installed on this host";
  EXPECT_FALSE(why.empty());
  SourceOptions o;
  o.target = "lo";
  auto src = OpenSource("pf_ring", o);
  ASSERT_FALSE(src);
  EXPECT_EQ(src.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(src.error().message().find(why), std::string::npos) << src.error().message();
}

}  // namespace
}  // namespace jarvis
