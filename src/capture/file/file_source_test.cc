#include "capture/file/file_source.h"

#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace jarvis {
namespace {

// A classic nanosecond pcap written record by record, so tests control every field.
class PcapFile {
 public:
  explicit PcapFile(uint32_t snaplen = 262144) {
    char tmpl[] = "/tmp/jarvis-file-source-XXXXXX";
    int fd = ::mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    ::close(fd);
    path_ = tmpl;
    f_ = std::fopen(path_.c_str(), "wb");
    const uint32_t hdr[6] = {0xA1B23C4D, 0x00040002, 0, 0, snaplen, DLT_EN10MB};
    std::fwrite(hdr, 1, 24, f_);  // (version 2.4 packed as two 16-bit halves, little endian)
  }
  ~PcapFile() {
    if (f_ != nullptr) std::fclose(f_);
    ::unlink(path_.c_str());
  }
  // An Ethernet/IPv4/UDP frame of `len` bytes whose UDP destination port is `dport`.
  void AddUdp(uint32_t len, uint16_t dport, TimestampNs ts, uint32_t wirelen = 0) {
    std::vector<uint8_t> f(len, 0);
    f[12] = 0x08;
    f[14] = 0x45;
    const uint16_t ip_len = static_cast<uint16_t>(len - 14);
    f[16] = ip_len >> 8;
    f[17] = ip_len & 0xFF;
    f[23] = 17;
    f[36] = dport >> 8;
    f[37] = dport & 0xFF;
    for (uint32_t i = 42; i < len; ++i) f[i] = static_cast<uint8_t>(i * 7 + records_);
    AddRecord(f, ts, wirelen ? wirelen : len);
  }
  void AddRecord(const std::vector<uint8_t>& bytes, TimestampNs ts, uint32_t wirelen) {
    const uint32_t rec[4] = {static_cast<uint32_t>(ts / kNanosPerSecond),
                             static_cast<uint32_t>(ts % kNanosPerSecond),
                             static_cast<uint32_t>(bytes.size()), wirelen};
    std::fwrite(rec, 1, 16, f_);
    std::fwrite(bytes.data(), 1, bytes.size(), f_);
    ++records_;
  }
  // Appends the first `n` bytes of a record header only: a file cut short by a crash.
  void AddTornRecordHeader(size_t n) {
    const uint8_t junk[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    std::fwrite(junk, 1, n, f_);
  }
  const std::string& Close() {
    std::fclose(f_);
    f_ = nullptr;
    return path_;
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint32_t records_ = 0;
};

struct Drained {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<uint32_t> wirelens;
  std::vector<TimestampNs> times;
  std::vector<uint32_t> batch_sizes;
  std::optional<Error> error;  // the error that ended the stream, unless kEndOfStream
};

Drained DrainAll(CaptureSource& src) {
  Drained d;
  PacketBatch batch;
  for (;;) {
    auto n = src.Receive(batch, std::chrono::milliseconds(100));
    if (!n) {
      if (n.error().code() != ErrorCode::kEndOfStream) d.error = n.error();
      break;
    }
    d.batch_sizes.push_back(*n);
    EXPECT_EQ(*n, batch.size());
    for (const PacketView& v : batch.packets()) {
      d.bytes.emplace_back(v.data, v.data + v.caplen);
      d.wirelens.push_back(v.wirelen);
      d.times.push_back(v.ts_ns);
    }
  }
  return d;
}

TEST(FileSourceTest, DeliversEveryRecordInOrderAcrossBatches) {
  PcapFile f;
  const int kRecords = 1000;
  for (int i = 0; i < kRecords; ++i) {
    f.AddUdp(60 + (i % 1400), 1000 + i % 3, 1'600'000'000'000'000'000 + i * 1'000'001LL);
  }
  auto src = OpenFileSource({.target = f.Close()});
  ASSERT_TRUE(src) << src.error().message();
  EXPECT_EQ((*src)->link_type(), DLT_EN10MB);
  Drained d = DrainAll(**src);
  ASSERT_FALSE(d.error) << d.error->message();
  ASSERT_EQ(d.bytes.size(), static_cast<size_t>(kRecords));
  EXPECT_GT(d.batch_sizes.size(), 1u);
  for (uint32_t n : d.batch_sizes) EXPECT_LE(n, PacketBatch::kMaxBurst);
  for (int i = 0; i < kRecords; ++i) {
    EXPECT_EQ(d.bytes[i].size(), static_cast<size_t>(60 + (i % 1400)));
    EXPECT_EQ(d.times[i], 1'600'000'000'000'000'000 + i * 1'000'001LL);
    EXPECT_EQ(d.bytes[i][37], (1000 + i % 3) & 0xFF);
  }
  auto stats = (*src)->Stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->packets, static_cast<uint64_t>(kRecords));
  EXPECT_EQ(stats->filtered_out, 0u);
  // The stream stays ended.
  PacketBatch batch;
  auto again = (*src)->Receive(batch, std::chrono::milliseconds(1));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kEndOfStream);
}

// Records what a source hands its batch's visitor.
class RecordingVisitor final : public PacketVisitor {
 public:
  void Visit(int link_type, const PacketView& pkt, uint32_t index) override {
    EXPECT_EQ(link_type, DLT_EN10MB);
    EXPECT_EQ(index, next_index);  // in packet order, from 0 in each batch
    ++next_index;
    seen.push_back({pkt.data, pkt.caplen, pkt.wirelen, pkt.ts_ns});
  }
  struct Seen {
    const uint8_t* data;
    uint32_t caplen, wirelen;
    TimestampNs ts;
  };
  uint32_t next_index = 0;
  std::vector<Seen> seen;
};

// The source hands every packet to the batch's visitor as it appends it, on both of its paths
// (records taken in bulk from the read buffer, and one at a time when a filter or a refill is
// involved), and the visitor sees exactly the views the batch then holds.
TEST(FileSourceTest, VisitorSeesEveryPacketAsItIsAppended) {
  PcapFile f;
  const int kRecords = 3000;  // about 2.2 MB: the reader refills its buffer several times
  for (int i = 0; i < kRecords; ++i) f.AddUdp(60 + (i * 37 % 1400), 1000 + i % 3, 1'000 + i);
  const std::string path = f.Close();
  for (const std::string filter : {"", "udp dst port 1001"}) {
    SCOPED_TRACE("filter '" + filter + "'");
    auto src = OpenFileSource({.target = path, .filter = filter});
    ASSERT_TRUE(src) << src.error().message();
    RecordingVisitor visitor;
    PacketBatch batch;
    batch.set_visitor(&visitor);
    size_t packets = 0;
    for (;;) {
      visitor.next_index = 0;
      visitor.seen.clear();
      auto n = (*src)->Receive(batch, std::chrono::milliseconds(100));
      if (!n) {
        EXPECT_EQ(n.error().code(), ErrorCode::kEndOfStream) << n.error().message();
        break;
      }
      EXPECT_EQ(batch.visited(), batch.size());
      ASSERT_EQ(visitor.seen.size(), batch.size());
      for (uint32_t i = 0; i < batch.size(); ++i) {
        EXPECT_EQ(visitor.seen[i].data, batch[i].data);
        EXPECT_EQ(visitor.seen[i].caplen, batch[i].caplen);
        EXPECT_EQ(visitor.seen[i].wirelen, batch[i].wirelen);
        EXPECT_EQ(visitor.seen[i].ts, batch[i].ts_ns);
      }
      packets += batch.size();
    }
    EXPECT_EQ(packets, filter.empty() ? static_cast<size_t>(kRecords) : kRecords / 3u);
  }
}

TEST(FileSourceTest, FilterCountsWhatItExcludes) {
  PcapFile f;
  for (int i = 0; i < 300; ++i) f.AddUdp(100, i % 3 == 0 ? 9999 : 53, i);
  auto src = OpenFileSource({.target = f.Close(), .filter = "udp dst port 9999"});
  ASSERT_TRUE(src) << src.error().message();
  Drained d = DrainAll(**src);
  EXPECT_EQ(d.bytes.size(), 100u);
  for (const auto& b : d.bytes) EXPECT_EQ(b[36] << 8 | b[37], 9999);
  auto stats = (*src)->Stats();
  ASSERT_TRUE(stats);
  EXPECT_TRUE(stats->has_filtered_out);
  EXPECT_EQ(stats->packets, 100u);
  EXPECT_EQ(stats->filtered_out, 200u);
}

TEST(FileSourceTest, RecordsLargerThanTheCopyArenaAreDeliveredIntact) {
  // 4 MiB of arena holds 15 of these; the rest must go out in later batches, unharmed.
  PcapFile f;
  const uint32_t kBig = 262144;
  for (int i = 0; i < 40; ++i) f.AddUdp(kBig, static_cast<uint16_t>(i), i);
  auto src = OpenFileSource({.target = f.Close()});
  ASSERT_TRUE(src) << src.error().message();
  Drained d = DrainAll(**src);
  ASSERT_FALSE(d.error);
  ASSERT_EQ(d.bytes.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(d.bytes[i].size(), kBig);
    EXPECT_EQ(d.bytes[i][37], i);
    EXPECT_EQ(d.bytes[i][kBig - 1], static_cast<uint8_t>((kBig - 1) * 7 + i));
  }
}

TEST(FileSourceTest, SnaplenCutsWhatIsHandedOutButKeepsWireLength) {
  PcapFile f;
  f.AddUdp(1000, 1, 0);
  f.AddUdp(50, 1, 1);
  auto src = OpenFileSource({.target = f.Close(), .snaplen = 64});
  ASSERT_TRUE(src);
  EXPECT_EQ((*src)->snaplen(), 64u);
  Drained d = DrainAll(**src);
  ASSERT_EQ(d.bytes.size(), 2u);
  EXPECT_EQ(d.bytes[0].size(), 64u);
  EXPECT_EQ(d.wirelens[0], 1000u);
  EXPECT_EQ(d.bytes[1].size(), 50u);
}

TEST(FileSourceTest, CutShortFileYieldsCompletePacketsThenCorruptData) {
  PcapFile f;
  for (int i = 0; i < 5; ++i) f.AddUdp(80, 7, i);
  f.AddTornRecordHeader(9);
  auto src = OpenFileSource({.target = f.Close()});
  ASSERT_TRUE(src);
  Drained d = DrainAll(**src);
  EXPECT_EQ(d.bytes.size(), 5u);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->code(), ErrorCode::kCorruptData);
  EXPECT_NE(d.error->message().find("after 5 complete packets"), std::string::npos)
      << d.error->message();
  auto stats = (*src)->Stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->truncated_records, 1u);
}

TEST(FileSourceTest, RecordedPaceStillDeliversEverythingInOrder) {
  // Pacing is wall-clock behaviour, which tests do not time; they check it loses nothing.
  PcapFile f;
  for (int i = 0; i < 20; ++i) f.AddUdp(64, 1, 1'000'000'000LL + i * 1'000'000LL);
  auto src = OpenFileSource({.target = f.Close(), .replay_speed = 100.0});
  ASSERT_TRUE(src);
  Drained d = DrainAll(**src);
  ASSERT_FALSE(d.error);
  ASSERT_EQ(d.times.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(d.times[i], 1'000'000'000LL + i * 1'000'000LL);
}

TEST(FileSourceTest, OpenErrorsSayWhatIsWrong) {
  auto missing = OpenFileSource({.target = "/nonexistent/x.pcap"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);

  auto dir = OpenFileSource({.target = "/tmp"});
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code(), ErrorCode::kInvalidArgument);

  PcapFile f;
  f.AddUdp(64, 1, 0);
  auto bad_filter = OpenFileSource({.target = f.Close(), .filter = "udp port"});
  ASSERT_FALSE(bad_filter);
  EXPECT_EQ(bad_filter.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_filter.error().message().find("bad filter expression"), std::string::npos);

  char tmpl[] = "/tmp/jarvis-not-pcap-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "hello, this is not a capture file at all", 40), 40);
  ::close(fd);
  auto junk = OpenFileSource({.target = tmpl});
  ::unlink(tmpl);
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().code(), ErrorCode::kCorruptData);
}

}  // namespace
}  // namespace jarvis
