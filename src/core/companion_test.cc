#include "core/companion.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace jarvis {
namespace {

TEST(Companion, Candidates) {
  EXPECT_EQ(CompanionCandidates("/opt/jc/bin/jarvis-capture", "xdp_redirect.bpf.o", nullptr),
            (std::vector<std::string>{"/opt/jc/bin/xdp_redirect.bpf.o",
                                      "/opt/jc/bin/../lib/jarvis-capture/xdp_redirect.bpf.o"}));
  EXPECT_EQ(CompanionCandidates("/opt/jc/bin/jarvis-capture", "xdp_redirect.bpf.o", "/x/prog.o"),
            (std::vector<std::string>{"/x/prog.o"}));
  EXPECT_EQ(CompanionCandidates("/opt/jc/bin/jarvis-capture", "x.so", "").size(), 2u);
  EXPECT_TRUE(CompanionCandidates("", "x.so", nullptr).empty());
}

TEST(Companion, FirstRegularFileSkipsWhatIsMissingOrADirectory) {
  char dir[] = "/tmp/jarvis-companion-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string base = dir;
  const std::string missing = base + "/missing.so", subdir = base + "/sub.so",
                    file = base + "/plugin.so";
  ASSERT_EQ(::mkdir(subdir.c_str(), 0700), 0);
  std::FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);

  std::string looked = "stale";
  auto found = FirstRegularFile({missing, subdir, file}, looked);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, file);
  EXPECT_EQ(looked, missing + ", " + subdir);

  EXPECT_FALSE(FirstRegularFile({missing, subdir}, looked).has_value());
  EXPECT_EQ(looked, missing + ", " + subdir);

  ::unlink(file.c_str());
  ::rmdir(subdir.c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace jarvis
