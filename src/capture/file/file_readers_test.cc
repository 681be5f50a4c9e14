// The file backend's two readers must be indistinguishable: every file is opened twice, once
// as the backend chooses (the fast classic-pcap reader where it applies) and once through
// libpcap (SourceOptions::force_libpcap_reader), both are drained, and everything a caller can
// observe is compared: packets (bytes, caplen, wirelen, timestamp), link type, snaplen, and
// how the stream ends (end of stream, or kCorruptData after the same number of packets).
//
// Files: every file of the shared corpus (JARVIS_PCAP_DIR), and synthetic ones for what the
// corpus lacks: big-endian files, records longer than the file's snaplen or than libpcap's
// maximum, files cut inside a record header or its data, snaplen 0 in the file header,
// timestamps whose seconds field has the top bit set.
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "capture/file/file_source.h"

#ifndef JARVIS_PCAP_DIR
#define JARVIS_PCAP_DIR ""
#endif

namespace jarvis {
namespace {

namespace fs = std::filesystem;

struct Drained {
  std::optional<ErrorCode> open_error;  // set when OpenFileSource failed
  std::string reader;
  int link_type = -1;
  uint32_t snaplen = 0;
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<uint32_t> wirelens;
  std::vector<TimestampNs> times;
  bool batch_link_types_agree = true;  // every batch carries the source's link type
  std::optional<ErrorCode> end_error;  // how the stream ended, unless kEndOfStream
  std::string end_message;
};

Drained Drain(const std::string& path, bool force_libpcap, const SourceOptions& extra = {}) {
  SourceOptions options = extra;
  options.target = path;
  options.force_libpcap_reader = force_libpcap;
  Drained d;
  auto src = OpenFileSource(options);
  if (!src) {
    d.open_error = src.error().code();
    d.end_message = src.error().message();
    return d;
  }
  CaptureSource& s = **src;
  d.reader = std::string(s.reader_name());
  d.link_type = s.link_type();
  d.snaplen = s.snaplen();
  PacketBatch batch;
  for (;;) {
    auto n = s.Receive(batch, std::chrono::milliseconds(100));
    if (!n) {
      if (n.error().code() != ErrorCode::kEndOfStream) {
        d.end_error = n.error().code();
        d.end_message = n.error().message();
      }
      break;
    }
    if (batch.link_type() != d.link_type) d.batch_link_types_agree = false;
    for (const PacketView& v : batch.packets()) {
      d.bytes.emplace_back(v.data, v.data + v.caplen);
      d.wirelens.push_back(v.wirelen);
      d.times.push_back(v.ts_ns);
    }
  }
  return d;
}

// Compares the two drains; reports the first differing packet rather than thousands.
void ExpectSame(const Drained& fast, const Drained& lib) {
  ASSERT_EQ(fast.open_error.has_value(), lib.open_error.has_value())
      << "default: " << fast.end_message << "; libpcap: " << lib.end_message;
  if (fast.open_error) {
    EXPECT_EQ(*fast.open_error, *lib.open_error);
    return;
  }
  EXPECT_EQ(lib.reader, "libpcap");
  EXPECT_EQ(fast.link_type, lib.link_type);
  EXPECT_EQ(fast.snaplen, lib.snaplen);
  EXPECT_TRUE(fast.batch_link_types_agree);
  EXPECT_TRUE(lib.batch_link_types_agree);
  EXPECT_EQ(fast.bytes.size(), lib.bytes.size()) << "packets delivered";
  const size_t n = std::min(fast.bytes.size(), lib.bytes.size());
  for (size_t i = 0; i < n; ++i) {
    if (fast.bytes[i] != lib.bytes[i] || fast.wirelens[i] != lib.wirelens[i] ||
        fast.times[i] != lib.times[i]) {
      ADD_FAILURE() << "packet " << i << " differs: caplen " << fast.bytes[i].size() << " vs "
                    << lib.bytes[i].size() << ", wirelen " << fast.wirelens[i] << " vs "
                    << lib.wirelens[i] << ", ts_ns " << fast.times[i] << " vs " << lib.times[i]
                    << (fast.bytes[i] == lib.bytes[i] ? "" : ", bytes differ");
      break;
    }
  }
  ASSERT_EQ(fast.end_error.has_value(), lib.end_error.has_value())
      << "default ends with '" << fast.end_message << "', libpcap with '" << lib.end_message << "'";
  if (fast.end_error) {
    EXPECT_EQ(*fast.end_error, ErrorCode::kCorruptData) << fast.end_message;
    EXPECT_EQ(*fast.end_error, *lib.end_error) << fast.end_message << " / " << lib.end_message;
  }
}

// Whether the fast reader must take a file: classic pcap 2.4, microsecond or nanosecond magic
// in either byte order, no FCS bits, a link type the decoder knows. This is the contract of
// PcapFastReader::CanRead, restated here independently of it.
bool ClassicPcapTheFastReaderTakes(const std::string& path) {
  uint8_t h[24];
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(h), sizeof h)) return false;
  const uint32_t le = h[0] | h[1] << 8 | h[2] << 16 | static_cast<uint32_t>(h[3]) << 24;
  const uint32_t be = h[3] | h[2] << 8 | h[1] << 16 | static_cast<uint32_t>(h[0]) << 24;
  bool big;
  if (le == 0xA1B2C3D4 || le == 0xA1B23C4D) {
    big = false;
  } else if (be == 0xA1B2C3D4 || be == 0xA1B23C4D) {
    big = true;
  } else {
    return false;
  }
  const auto u16 = [&](int o) { return big ? h[o] << 8 | h[o + 1] : h[o + 1] << 8 | h[o]; };
  const auto u32 = [&](int o) {
    return big ? static_cast<uint32_t>(u16(o)) << 16 | u16(o + 2)
               : static_cast<uint32_t>(u16(o + 2)) << 16 | u16(o);
  };
  if (u16(4) != 2 || u16(6) != 4) return false;
  const uint32_t linktype = u32(20);
  // NULL, Ethernet, PPP, raw, PPP-HDLC, C-HDLC, LOOP, SLL, IPv4, IPv6, SLL2.
  for (uint32_t known : {0u, 1u, 9u, 101u, 50u, 104u, 108u, 113u, 228u, 229u, 276u}) {
    if (linktype == known) return true;
  }
  return false;
}

TEST(FileReadersTest, BothReadersYieldIdenticalPacketsOnTheCorpus) {
  const fs::path dir = JARVIS_PCAP_DIR;
  if (dir.empty() || !fs::is_directory(dir)) {
    GTEST_SKIP() << "no capture corpus at '" << dir.string() << "' (JARVIS_PCAP_DIR)";
  }
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".pcap" || ext == ".pcapng" || ext == ".cap")) {
      files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty()) << "no capture files in " << dir;
  int fast_files = 0, packets = 0, errors = 0;
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    const Drained chosen = Drain(path, false);
    const Drained lib = Drain(path, true);
    ExpectSame(chosen, lib);
    if (ClassicPcapTheFastReaderTakes(path)) {
      EXPECT_EQ(chosen.reader, "pcap-fast");
      ++fast_files;
    } else if (!chosen.open_error) {
      EXPECT_EQ(chosen.reader, "libpcap");
    }
    packets += static_cast<int>(chosen.bytes.size());
    errors += chosen.end_error.has_value() || chosen.open_error.has_value();
    // The same with a snaplen cut and a filter, which the source applies over either reader.
    const SourceOptions cut{.snaplen = 60, .filter = "tcp or udp"};
    ExpectSame(Drain(path, false, cut), Drain(path, true, cut));
  }
  // The comparison means something only if the fast reader ran on real files.
  EXPECT_GE(fast_files, 30);
  EXPECT_GT(packets, 1000);
  std::printf("%zu files, %d through the fast reader, %d packets, %d ending in an error\n",
              files.size(), fast_files, packets, errors);
}

// A classic pcap file written field by field, so that tests control every header value.
class SyntheticPcap {
 public:
  struct Options {
    bool big_endian = false;
    bool nanos = false;
    uint32_t snaplen = 65535;
    uint32_t linktype = DLT_EN10MB;
    uint16_t version_minor = 4;
  };

  explicit SyntheticPcap(Options o) : o_(o) {
    Put32(o.nanos ? 0xA1B23C4D : 0xA1B2C3D4);
    Put16(2);
    Put16(o.version_minor);
    Put32(0);  // thiszone
    Put32(0);  // sigfigs
    Put32(o.snaplen);
    Put32(o.linktype);
  }
  ~SyntheticPcap() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  // A record whose header states `caplen` and carries `data_len` bytes of data (default: as
  // many as it states). The data is an Ethernet/IPv4/UDP frame, then a pattern.
  void Add(uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t wirelen,
           std::optional<uint32_t> data_len = std::nullopt) {
    Put32(sec);
    Put32(frac);
    Put32(caplen);
    Put32(wirelen);
    const uint32_t n = data_len.value_or(caplen);
    for (uint32_t i = 0; i < n; ++i) {
      uint8_t b = static_cast<uint8_t>(i * 31 + records_ * 7);
      if (i == 12) b = 0x08;
      if (i == 13) b = 0x00;
      if (i == 14) b = 0x45;
      if (i == 23) b = 17;
      buf_.push_back(b);
    }
    ++records_;
  }
  // Appends raw bytes (part of a record header, say).
  void AddRaw(size_t n) {
    for (size_t i = 0; i < n; ++i) buf_.push_back(static_cast<uint8_t>(0x10 + i));
  }
  // Writes the file, cut to its first `keep` bytes when given.
  const std::string& Write(std::optional<size_t> keep = std::nullopt) {
    char tmpl[] = "/tmp/jarvis-readers-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    path_ = tmpl;
    const size_t n = std::min(keep.value_or(buf_.size()), buf_.size());
    EXPECT_EQ(::write(fd, buf_.data(), n), static_cast<ssize_t>(n));
    ::close(fd);
    return path_;
  }
  size_t size() const { return buf_.size(); }

 private:
  void Put16(uint16_t v) {
    const uint8_t b[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
    if (o_.big_endian) {
      buf_.insert(buf_.end(), {b[1], b[0]});
    } else {
      buf_.insert(buf_.end(), {b[0], b[1]});
    }
  }
  void Put32(uint32_t v) {
    if (o_.big_endian) {
      Put16(static_cast<uint16_t>(v >> 16));
      Put16(static_cast<uint16_t>(v));
    } else {
      Put16(static_cast<uint16_t>(v));
      Put16(static_cast<uint16_t>(v >> 16));
    }
  }

  Options o_;
  std::vector<uint8_t> buf_;
  uint32_t records_ = 0;
  std::string path_;
};

// Opens the file both ways, expects the fast reader on the default path, compares, and returns
// the libpcap drain for checks of libpcap's own behaviour.
Drained CompareBoth(const std::string& path, const char* expected_reader = "pcap-fast") {
  const Drained chosen = Drain(path, false);
  const Drained lib = Drain(path, true);
  if (!chosen.open_error) {
    EXPECT_EQ(chosen.reader, expected_reader);
  }
  ExpectSame(chosen, lib);
  return lib;
}

// A few records of every size class, with microsecond or nanosecond fractions.
void AddMixedRecords(SyntheticPcap& f, bool nanos) {
  const uint32_t scale = nanos ? 1000 : 1;
  for (uint32_t i = 0; i < 50; ++i) {
    const uint32_t len = 42 + (i * 97) % 1500;
    f.Add(1'700'000'000 + i, (i * 12'345) % 1'000'000 * scale, len, len + (i % 3) * 10);
  }
}

TEST(FileReadersTest, LittleAndBigEndianMicroAndNanoFiles) {
  for (bool big : {false, true}) {
    for (bool nanos : {false, true}) {
      SCOPED_TRACE(std::string(big ? "big" : "little") + "-endian, " + (nanos ? "ns" : "us"));
      SyntheticPcap f({.big_endian = big, .nanos = nanos});
      AddMixedRecords(f, nanos);
      const Drained d = CompareBoth(f.Write());
      ASSERT_EQ(d.bytes.size(), 50u);
      EXPECT_FALSE(d.end_error);
      EXPECT_EQ(d.times[1], 1'700'000'001LL * kNanosPerSecond + 12'345'000);
      EXPECT_EQ(d.bytes[1].size(), 139u);
      EXPECT_EQ(d.wirelens[1], 149u);
    }
  }
}

TEST(FileReadersTest, RecordLongerThanTheFileSnaplenIsCutToIt) {
  for (bool big : {false, true}) {
    SCOPED_TRACE(big ? "big-endian" : "little-endian");
    SyntheticPcap f({.big_endian = big, .snaplen = 100});
    f.Add(1, 0, 80, 80);
    f.Add(2, 0, 300, 1500);  // libpcap keeps the first 100 bytes and skips the rest
    f.Add(3, 0, 100, 100);
    const Drained d = CompareBoth(f.Write());
    ASSERT_EQ(d.bytes.size(), 3u);
    EXPECT_EQ(d.snaplen, 100u);
    EXPECT_EQ(d.bytes[1].size(), 100u);
    EXPECT_EQ(d.wirelens[1], 1500u);
    EXPECT_EQ(d.times[2], 3 * kNanosPerSecond);  // the record after it is read in step
    EXPECT_FALSE(d.end_error);
  }
}

TEST(FileReadersTest, CaptureLengthAboveTheMaximumIsCorruptData) {
  SyntheticPcap f({.snaplen = 262144});
  f.Add(1, 0, 60, 60);
  f.Add(2, 0, 262144, 262144);  // the largest record libpcap accepts
  f.Add(3, 0, 262145, 262145, 64);
  f.Add(4, 0, 60, 60);
  const Drained d = CompareBoth(f.Write());
  EXPECT_EQ(d.bytes.size(), 2u);
  ASSERT_TRUE(d.end_error);
  EXPECT_EQ(*d.end_error, ErrorCode::kCorruptData);
}

TEST(FileReadersTest, FileCutInsideARecordHeaderOrItsData) {
  for (bool big : {false, true}) {
    for (size_t header_bytes : {1u, 8u, 15u}) {
      SCOPED_TRACE(std::to_string(header_bytes) + " bytes of the last record header");
      SyntheticPcap f({.big_endian = big});
      AddMixedRecords(f, false);
      f.AddRaw(header_bytes);
      const Drained d = CompareBoth(f.Write());
      EXPECT_EQ(d.bytes.size(), 50u);
      ASSERT_TRUE(d.end_error);
      EXPECT_EQ(*d.end_error, ErrorCode::kCorruptData);
    }
    for (uint32_t data_bytes : {0u, 1u, 599u}) {
      SCOPED_TRACE(std::to_string(data_bytes) + " of 600 data bytes of the last record");
      SyntheticPcap f({.big_endian = big});
      AddMixedRecords(f, false);
      f.Add(9, 9, 600, 600, data_bytes);
      const Drained d = CompareBoth(f.Write());
      EXPECT_EQ(d.bytes.size(), 50u);
      ASSERT_TRUE(d.end_error);
      EXPECT_EQ(*d.end_error, ErrorCode::kCorruptData);
    }
  }
}

TEST(FileReadersTest, LargeFileCutShortAfterManyRefills) {
  // Several MiB: the fast reader refills its buffer many times, and the last record is cut.
  SyntheticPcap f({.nanos = true, .snaplen = 262144});
  uint32_t records = 0;
  while (f.size() < (6u << 20)) {
    const uint32_t len = records % 500 == 0 ? 65'000 + records : 60 + (records * 13) % 1454;
    f.Add(1'600'000'000 + records / 1000, records % 1'000'000'000, len, len);
    ++records;
  }
  const size_t whole = f.size();
  f.Add(1'700'000'000, 0, 1000, 1000);
  const Drained d = CompareBoth(f.Write(whole + 16 + 500));
  EXPECT_EQ(d.bytes.size(), records);
  ASSERT_TRUE(d.end_error);
  EXPECT_EQ(*d.end_error, ErrorCode::kCorruptData);
}

TEST(FileReadersTest, SnaplenZeroOrHugeInTheFileHeader) {
  for (uint32_t snaplen : {0u, 262145u, 0xFFFFFFFFu}) {
    SCOPED_TRACE("file snaplen " + std::to_string(snaplen));
    SyntheticPcap f({.snaplen = snaplen});
    f.Add(1, 0, 1500, 1500);
    f.Add(2, 0, 9000, 9000);
    const Drained d = CompareBoth(f.Write());
    ASSERT_EQ(d.bytes.size(), 2u);
    EXPECT_EQ(d.bytes[1].size(), 9000u);
    EXPECT_FALSE(d.end_error);
  }
}

TEST(FileReadersTest, TimestampFieldsWithTheTopBitSet) {
  // libpcap reads both fields as signed 32-bit values in a file of the host's byte order (2^31
  // seconds is 1901) and as unsigned ones in a byte-swapped file (2^31 seconds is 2038); the
  // fast reader must do the same.
  for (bool big : {false, true}) {
    for (bool nanos : {false, true}) {
      SCOPED_TRACE(std::string(big ? "big" : "little") + "-endian, " + (nanos ? "ns" : "us"));
      const bool swapped = big != (std::endian::native == std::endian::big);
      SyntheticPcap f({.big_endian = big, .nanos = nanos});
      f.Add(0x80000000u, 1, 60, 60);
      f.Add(0xFFFFFFFFu, nanos ? 999'999'999u : 999'999u, 60, 60);
      f.Add(0x7FFFFFFFu, 0, 60, 60);
      f.Add(5, 0xFFFFFFFFu, 60, 60);  // a fraction out of range: passed through, not fixed
      f.Add(6, nanos ? 1'500'000'000u : 1'500'000u, 60, 60);
      const Drained d = CompareBoth(f.Write());
      ASSERT_EQ(d.times.size(), 5u);
      const int64_t unit = nanos ? 1 : 1000;
      EXPECT_EQ(d.times[0], (swapped ? 2147483648LL : -2147483648LL) * kNanosPerSecond + unit);
      EXPECT_EQ(d.times[1] < 0, !swapped);
      EXPECT_EQ(d.times[2], 2147483647LL * kNanosPerSecond);
      EXPECT_EQ(d.times[3], 5 * kNanosPerSecond + (swapped ? 0xFFFFFFFFLL : -1) * unit);
      EXPECT_EQ(d.times[4], 6 * kNanosPerSecond + 1'500'000'000LL);
    }
  }
}

TEST(FileReadersTest, OddRecordsPassThroughAlike) {
  SyntheticPcap f({});
  f.Add(1, 0, 0, 0);     // an empty record
  f.Add(2, 0, 60, 10);   // wirelen below caplen
  f.Add(3, 0, 0, 1500);  // nothing captured of a 1500-byte frame
  f.Add(4, 0, 60, 0xFFFFFFFFu);
  const Drained d = CompareBoth(f.Write());
  ASSERT_EQ(d.bytes.size(), 4u);
  EXPECT_TRUE(d.bytes[0].empty());
  EXPECT_FALSE(d.end_error);
}

TEST(FileReadersTest, HeaderOnlyAndShortHeaderFiles) {
  {
    SyntheticPcap f({.big_endian = true, .nanos = true});
    const Drained d = CompareBoth(f.Write());
    EXPECT_FALSE(d.open_error);
    EXPECT_TRUE(d.bytes.empty());
    EXPECT_FALSE(d.end_error);
  }
  {
    SyntheticPcap f({});
    const Drained d = CompareBoth(f.Write(20), "libpcap");  // no fast reader without 24 bytes
    ASSERT_TRUE(d.open_error);
    EXPECT_EQ(*d.open_error, ErrorCode::kCorruptData);
  }
}

TEST(FileReadersTest, FilesTheFastReaderLeavesToLibpcap) {
  // Version 2.3, a link type the decoder does not know, FCS bits in the link type field.
  const SyntheticPcap::Options cases[] = {
      {.version_minor = 3},
      {.linktype = 147},
      {.big_endian = true, .linktype = 0x10000000u | DLT_EN10MB},
  };
  for (const auto& o : cases) {
    SyntheticPcap f(o);
    f.Add(1, 2, 60, 60);
    const Drained d = CompareBoth(f.Write(), "libpcap");
    EXPECT_FALSE(d.open_error) << d.end_message;
    EXPECT_EQ(d.bytes.size(), 1u);
  }
}

}  // namespace
}  // namespace jarvis
