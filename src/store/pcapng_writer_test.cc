#include "store/pcapng_writer.h"

#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "capture/pcap_common.h"

namespace jarvis {
namespace {

class PcapngWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/jarvis-pcapng-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/out.pcapng";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  std::vector<uint8_t> ReadAll() {
    std::ifstream in(path_, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::string dir_, path_;
};

uint32_t Le32(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

TEST_F(PcapngWriterTest, LibpcapReadsBackBytesLengthsAndNanoseconds) {
  std::vector<uint8_t> p1(61), p2(1514), p3(3);
  for (size_t i = 0; i < p1.size(); ++i) p1[i] = static_cast<uint8_t>(i);
  for (size_t i = 0; i < p2.size(); ++i) p2[i] = static_cast<uint8_t>(255 - i);
  p3 = {0xAA, 0xBB, 0xCC};
  struct Want {
    const std::vector<uint8_t>* bytes;
    uint32_t wirelen;
    TimestampNs ts;
  };
  const std::vector<Want> want = {
      {&p1, 61, 1'700'000'000'123'456'789},
      {&p2, 9000, 1'700'000'001'000'000'001},  // cut by a snaplen: wirelen > caplen
      {&p3, 3, 1'700'000'002'999'999'999},
  };
  {
    auto w = PcapngWriter::Create(path_, "jarvis-capture test");
    ASSERT_TRUE(w) << w.error().message();
    auto id = w->AddInterface({DLT_EN10MB, 9000, "veth0", "test interface"});
    ASSERT_TRUE(id);
    EXPECT_EQ(*id, 0u);
    for (const Want& p : want) {
      PacketView v{p.bytes->data(), static_cast<uint32_t>(p.bytes->size()), p.wirelen, p.ts, 0};
      ASSERT_TRUE(w->WritePacket(v, *id));
    }
    EXPECT_EQ(w->packets_written(), 3u);
    ASSERT_TRUE(w->Close());
  }

  char errbuf[PCAP_ERRBUF_SIZE];
  PcapHandle p(pcap_open_offline_with_tstamp_precision(path_.c_str(),
                                                       PCAP_TSTAMP_PRECISION_NANO, errbuf));
  ASSERT_TRUE(p) << errbuf;
  EXPECT_EQ(pcap_datalink(p.get()), DLT_EN10MB);
  EXPECT_EQ(pcap_snapshot(p.get()), 9000);
  pcap_pkthdr* hdr;
  const u_char* data;
  for (const Want& w : want) {
    ASSERT_EQ(pcap_next_ex(p.get(), &hdr, &data), 1);
    EXPECT_EQ(hdr->caplen, w.bytes->size());
    EXPECT_EQ(hdr->len, w.wirelen);
    EXPECT_EQ(PcapNanos(*hdr), w.ts);
    EXPECT_EQ(std::memcmp(data, w.bytes->data(), w.bytes->size()), 0);
  }
  EXPECT_EQ(pcap_next_ex(p.get(), &hdr, &data), PCAP_ERROR_BREAK);
}

TEST_F(PcapngWriterTest, BlocksAreFramedAndPaddedToFourBytes) {
  {
    auto w = PcapngWriter::Create(path_, "");
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->AddInterface({DLT_EN10MB, 0, "", ""}));
    const uint8_t five[5] = {1, 2, 3, 4, 5};
    ASSERT_TRUE(w->WritePacket({five, 5, 5, 42, 0}, 0));
    ASSERT_TRUE(w->Close());
  }
  std::vector<uint8_t> b = ReadAll();
  // Walk the blocks: each starts with type and length and ends with the same length.
  std::vector<uint32_t> types;
  size_t off = 0;
  while (off < b.size()) {
    ASSERT_LE(off + 12, b.size());
    uint32_t len = Le32(b, off + 4);
    ASSERT_EQ(len % 4, 0u);
    ASSERT_LE(off + len, b.size());
    EXPECT_EQ(Le32(b, off + len - 4), len);
    types.push_back(Le32(b, off));
    off += len;
  }
  EXPECT_EQ(off, b.size());
  ASSERT_EQ(types, (std::vector<uint32_t>{0x0A0D0D0A, 1, 6}));
  EXPECT_EQ(Le32(b, 8), 0x1A2B3C4Du);  // byte-order magic
  // The enhanced packet block: 28-byte header, 5 bytes padded to 8, 4-byte trailer.
  const size_t epb = b.size() - 40;
  EXPECT_EQ(Le32(b, epb + 4), 40u);
  EXPECT_EQ(Le32(b, epb + 16), 42u);  // timestamp low word, in nanoseconds
  EXPECT_EQ(Le32(b, epb + 20), 5u);
  EXPECT_EQ(b[epb + 28 + 5], 0);
  EXPECT_EQ(b[epb + 28 + 7], 0);
}

// Blocks larger than the writer's buffer, after a run of small ones, come out whole and in
// order: every length framed, every byte where it was.
TEST_F(PcapngWriterTest, BlocksBeyondTheBufferStayWholeAndInOrder) {
  std::vector<uint8_t> big(3 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
  const uint32_t sizes[] = {61, 3, 1 << 20, 2, static_cast<uint32_t>(big.size()), 63};
  {
    auto w = PcapngWriter::Create(path_, "");
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->AddInterface({DLT_EN10MB, 0, "", ""}));
    for (uint32_t n : sizes) ASSERT_TRUE(w->WritePacket({big.data(), n, n, n, 0}, 0));
    ASSERT_TRUE(w->Close());
  }
  std::vector<uint8_t> b = ReadAll();
  size_t off = 0;
  std::vector<uint32_t> caplens;
  while (off < b.size()) {
    ASSERT_LE(off + 12, b.size());
    const uint32_t len = Le32(b, off + 4);
    ASSERT_LE(off + len, b.size());
    EXPECT_EQ(Le32(b, off + len - 4), len);
    if (Le32(b, off) == 6) {
      const uint32_t caplen = Le32(b, off + 20);
      caplens.push_back(caplen);
      EXPECT_EQ(len, 32 + ((caplen + 3) & ~3u));
      EXPECT_EQ(std::memcmp(b.data() + off + 28, big.data(), caplen), 0) << caplen;
      for (uint32_t pad = caplen; pad < ((caplen + 3) & ~3u); ++pad) {
        EXPECT_EQ(b[off + 28 + pad], 0);
      }
    }
    off += len;
  }
  EXPECT_EQ(off, b.size());
  EXPECT_EQ(caplens, std::vector<uint32_t>(std::begin(sizes), std::end(sizes)));
}

TEST_F(PcapngWriterTest, RawIpIsStoredAsLinktypeRaw) {
  EXPECT_EQ(DltToLinktype(DLT_RAW), 101);
  EXPECT_EQ(DltToLinktype(DLT_EN10MB), 1);
  EXPECT_EQ(DltToLinktype(DLT_LINUX_SLL2), 276);
  {
    auto w = PcapngWriter::Create(path_, "t");
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->AddInterface({DLT_RAW, 0, "", ""}));
    const uint8_t ip[20] = {0x45};
    ASSERT_TRUE(w->WritePacket({ip, 20, 20, 1, 0}, 0));
  }  // the destructor flushes
  char errbuf[PCAP_ERRBUF_SIZE];
  PcapHandle p(pcap_open_offline(path_.c_str(), errbuf));
  ASSERT_TRUE(p) << errbuf;
  EXPECT_EQ(pcap_datalink(p.get()), DLT_RAW);
}

TEST_F(PcapngWriterTest, UnknownInterfaceAndClosedWriterAreErrors) {
  auto w = PcapngWriter::Create(path_, "t");
  ASSERT_TRUE(w);
  const uint8_t b[1] = {0};
  Status st = w->WritePacket({b, 1, 1, 0, 0}, 0);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(w->AddInterface({DLT_EN10MB, 0, "", ""}));
  ASSERT_TRUE(w->Close());
  EXPECT_FALSE(w->WritePacket({b, 1, 1, 0, 0}, 0));
}

TEST(PcapngWriterCreateTest, UnwritablePathIsAnErrorNamingThePath) {
  auto w = PcapngWriter::Create("/nonexistent-dir/x.pcapng", "t");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(w.error().message().find("/nonexistent-dir/x.pcapng"), std::string::npos);
}

}  // namespace
}  // namespace jarvis
