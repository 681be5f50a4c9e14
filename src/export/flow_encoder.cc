#include "export/flow_encoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace jarvis {

// ---------------------------------------------------------------------------------------------
// Common part: records into units, units into messages, the clock.

void FlowEncoder::MakeUnits(const FlowRecord& r, std::vector<Unit>& units) {
  if (options_.biflow) {
    units.push_back({&r, r.src_addr, r.dst_addr, r.src_port, r.dst_port, r.tcp_flags_fwd,
                     r.packets_fwd, r.bytes_fwd});
    return;
  }
  if (r.packets_fwd > 0) {
    units.push_back({&r, r.src_addr, r.dst_addr, r.src_port, r.dst_port, r.tcp_flags_fwd,
                     r.packets_fwd, r.bytes_fwd});
  }
  if (r.packets_rev > 0) {
    const bool icmp = r.protocol == 1 || r.protocol == 58;
    units.push_back({&r, r.dst_addr, r.src_addr, icmp ? uint16_t{0} : r.dst_port,
                     icmp ? r.icmp_type_code_rev : r.src_port, r.tcp_flags_rev, r.packets_rev,
                     r.bytes_rev});
  }
}

void FlowEncoder::Add(std::span<const FlowRecord> records, MessageBuffer& out) {
  for (const FlowRecord& r : records) {
    units_.clear();
    MakeUnits(r, units_);
    if (units_.empty()) continue;
    ++counters_.flows_encoded;
    AdvanceClock(r.last_ns);
    ClockMs();  // fixes boot before the first Uptime()
    for (const Unit& u : units_) {
      if (!open_) StartMessage(out);
      if (!Put(u)) {
        CloseInto(out);
        StartMessage(out);
        // Create() checked that a record fits in a message that starts with the templates.
        Put(u);
      }
      ++msg_records_;
      ++counters_.records_encoded;
    }
  }
}

void FlowEncoder::Flush(MessageBuffer& out) {
  if (open_) CloseInto(out);
  if (templates_due_ && HasTemplates() && clock_ns_ != 0) {
    StartMessage(out);
    CloseInto(out);
  }
}

void FlowEncoder::StartMessage(MessageBuffer& out) {
  if (options_.template_refresh_packets != 0 &&
      since_templates_ >= options_.template_refresh_packets) {
    templates_due_ = true;
  }
  if (templates_due_ && HasTemplates()) BeforeTemplates(out);
  msg_.clear();
  msg_records_ = 0;
  OpenMessage();
  open_ = true;
}

void FlowEncoder::CloseInto(MessageBuffer& out) {
  CloseMessage();
  out.messages.push_back(
      {static_cast<uint32_t>(out.bytes.size()), static_cast<uint32_t>(msg_.size()), msg_records_});
  out.bytes.insert(out.bytes.end(), msg_.begin(), msg_.end());
  ++counters_.messages_encoded;
  counters_.octets_encoded += msg_.size();
  ++since_templates_;
  open_ = false;
}

int64_t FlowEncoder::ClockMs() {
  const int64_t ms = clock_ns_ / 1'000'000;
  if (boot_ms_ == 0 && ms > 0) boot_ms_ = ms - kUptimeLead;
  return ms;
}

uint32_t FlowEncoder::Uptime(TimestampNs t) {
  const int64_t rel = t / 1'000'000 - boot_ms_;
  if (rel < 0) {
    ++counters_.times_clamped;
    return 0;
  }
  return static_cast<uint32_t>(rel);  // wraps after 49.7 days, as a router's uptime does
}

namespace {

constexpr bool IsIcmp(uint8_t proto) { return proto == 1 || proto == 58; }
constexpr size_t Align4(size_t n) { return (n + 3) & ~size_t{3}; }

// ---------------------------------------------------------------------------------------------
// NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records; IPv4 only; 32-bit counters.

class NetflowV5Encoder final : public FlowEncoder {
 public:
  static constexpr size_t kHeader = 24;
  static constexpr size_t kRecord = 48;
  static constexpr uint32_t kMaxRecords = 30;
  static constexpr uint64_t kMaxCount = 0xFFFFFFFFu;

  explicit NetflowV5Encoder(const EncoderOptions& o) : FlowEncoder(o) { templates_due_ = false; }

 private:
  bool HasTemplates() const override { return false; }

  // IPv6 flows are left out (counted); a direction whose packets or octets exceed 32 bits is
  // cut into pieces that each fit, with the same times, whose sums are the direction's counts.
  void MakeUnits(const FlowRecord& r, std::vector<Unit>& units) override {
    if (r.ip_version != 4) {
      ++counters_.skipped_ipv6;
      return;
    }
    std::vector<Unit> dirs;
    FlowEncoder::MakeUnits(r, dirs);
    for (const Unit& d : dirs) {
      const uint64_t pieces =
          std::max((d.packets + kMaxCount - 1) / kMaxCount, (d.octets + kMaxCount - 1) / kMaxCount);
      if (pieces <= 1) {
        units.push_back(d);
        continue;
      }
      counters_.split_records += pieces - 1;
      for (uint64_t i = 0; i < pieces; ++i) {
        Unit u = d;
        // Even shares, the remainder spread over the first pieces: each share is at most
        // ceil(total / pieces), which fits in 32 bits by the choice of `pieces`.
        u.packets = d.packets / pieces + (i < d.packets % pieces ? 1 : 0);
        u.octets = d.octets / pieces + (i < d.octets % pieces ? 1 : 0);
        units.push_back(u);
      }
    }
  }

  void OpenMessage() override { Grow(kHeader); }

  bool Put(const Unit& u) override {
    if (msg_records_ >= kMaxRecords || Room() < kRecord) return false;
    uint8_t* p = Grow(kRecord);
    const FlowRecord& f = *u.flow;
    std::memcpy(p + 0, u.src, 4);
    std::memcpy(p + 4, u.dst, 4);
    // nexthop (8), input (12) and output (14) interface: 0
    Store32(p + 16, static_cast<uint32_t>(u.packets));
    Store32(p + 20, static_cast<uint32_t>(u.octets));
    Store32(p + 24, Uptime(f.first_ns));
    Store32(p + 28, Uptime(f.last_ns));
    Store16(p + 32, u.sport);
    Store16(p + 34, u.dport);
    p[37] = u.tcp_flags;
    p[38] = f.protocol;
    // tos, AS numbers, masks and padding: 0
    return true;
  }

  void CloseMessage() override {
    const int64_t now_ms = ClockMs();
    uint8_t* h = msg_.data();
    Store16(h + 0, 5);
    Store16(h + 2, static_cast<uint16_t>(msg_records_));
    Store32(h + 4, static_cast<uint32_t>(now_ms - boot_ms()));
    Store32(h + 8, static_cast<uint32_t>(now_ms / 1000));
    Store32(h + 12, static_cast<uint32_t>(now_ms % 1000) * 1'000'000u);
    Store32(h + 16, sequence_);                                 // flows sent before this packet
    h[20] = 0;                                                  // engine type
    h[21] = static_cast<uint8_t>(options_.observation_domain);  // engine id
    Store16(h + 22, 0);                                         // sampling: none
    sequence_ += msg_records_;
  }
};

// ---------------------------------------------------------------------------------------------
// Template-based formats (v9, IPFIX): a template is a list of fields, each with the element
// that carries it on the wire and the record value it takes.

enum class Value : uint8_t {
  kSrc4,
  kDst4,
  kSrc6,
  kDst6,
  kSport,
  kDport,
  kProto,
  kTcpFlags,
  kVlan,
  kOctets,
  kPackets,
  kStartMs,
  kEndMs,
  kFirstUptime,
  kLastUptime,
  kEndReason,
  kIcmp,
  kRevOctets,
  kRevPackets,
  kRevTcpFlags,
  kRevIcmp,
  kBiflowDirection,
};

struct Field {
  uint16_t element;  // v9 field type or IPFIX information element id
  uint16_t length;
  bool reverse;  // IPFIX: enterprise bit with PEN 29305 (RFC 5103 reverse element)
  Value value;
};

struct Template {
  uint16_t id;
  std::vector<Field> fields;
  uint16_t record_size = 0;
};

constexpr uint32_t kReversePen = 29305;

// Which template a unit uses: IPv4/IPv6 times ports/ICMP.
size_t TemplateIndex(const FlowRecord& r) {
  return (r.ip_version == 6 ? 2 : 0) + (IsIcmp(r.protocol) ? 1 : 0);
}

class TemplateEncoder : public FlowEncoder {
 protected:
  TemplateEncoder(const EncoderOptions& o, std::vector<Template> templates, size_t header)
      : FlowEncoder(o), templates_(std::move(templates)), header_(header) {
    for (Template& t : templates_) {
      t.record_size = 0;
      for (const Field& f : t.fields) t.record_size += f.length;
    }
  }

  bool HasTemplates() const override { return true; }

  bool Put(const Unit& u) override {
    const Template& t = templates_[TemplateIndex(*u.flow)];
    const bool new_set = set_id_ != t.id;
    const size_t need = t.record_size + (new_set ? 4 : 0);
    if (Fits(need) == false) return false;
    if (new_set) {
      CloseSet();
      set_at_ = msg_.size();
      set_id_ = t.id;
      uint8_t* s = Grow(4);
      Store16(s, t.id);
    }
    uint8_t* p = Grow(t.record_size);
    for (const Field& f : t.fields) p = WriteField(f, u, p);
    return true;
  }

  // True when `need` more bytes (and the set's padding, for v9) fit in the open message.
  virtual bool Fits(size_t need) const = 0;
  // Pads the open data set, as the format wants, and writes its length.
  virtual void CloseSet() = 0;

  uint8_t* WriteField(const Field& f, const Unit& u, uint8_t* p) {
    const FlowRecord& r = *u.flow;
    switch (f.value) {
      case Value::kSrc4:
        std::memcpy(p, u.src, 4);
        break;
      case Value::kDst4:
        std::memcpy(p, u.dst, 4);
        break;
      case Value::kSrc6:
        std::memcpy(p, u.src, 16);
        break;
      case Value::kDst6:
        std::memcpy(p, u.dst, 16);
        break;
      case Value::kSport:
        Store16(p, u.sport);
        break;
      case Value::kDport:
        Store16(p, u.dport);
        break;
      case Value::kIcmp:
        Store16(p, u.dport);
        break;
      case Value::kProto:
        p[0] = r.protocol;
        break;
      case Value::kTcpFlags:
        WriteUint(p, f.length, u.tcp_flags);
        break;
      case Value::kVlan:
        Store16(p, r.vlan);
        break;
      case Value::kOctets:
        WriteUint(p, f.length, u.octets);
        break;
      case Value::kPackets:
        WriteUint(p, f.length, u.packets);
        break;
      case Value::kStartMs:
        Store64(p, static_cast<uint64_t>(r.first_ns / 1'000'000));
        break;
      case Value::kEndMs:
        Store64(p, static_cast<uint64_t>(r.last_ns / 1'000'000));
        break;
      case Value::kFirstUptime:
        Store32(p, Uptime(r.first_ns));
        break;
      case Value::kLastUptime:
        Store32(p, Uptime(r.last_ns));
        break;
      case Value::kEndReason:
        p[0] = static_cast<uint8_t>(r.end_reason);
        break;
      case Value::kRevOctets:
        WriteUint(p, f.length, r.bytes_rev);
        break;
      case Value::kRevPackets:
        WriteUint(p, f.length, r.packets_rev);
        break;
      case Value::kRevTcpFlags:
        WriteUint(p, f.length, r.tcp_flags_rev);
        break;
      case Value::kRevIcmp:
        Store16(p, r.icmp_type_code_rev);
        break;
      case Value::kBiflowDirection:
        p[0] = 1;
        break;  // initiator: src is the initiator
    }
    return p + f.length;
  }

  static void WriteUint(uint8_t* p, uint16_t length, uint64_t v) {
    switch (length) {
      case 1:
        p[0] = static_cast<uint8_t>(v);
        break;
      case 2:
        Store16(p, static_cast<uint16_t>(v));
        break;
      case 4:
        Store32(p, static_cast<uint32_t>(v));
        break;
      default:
        Store64(p, v);
        break;
    }
  }

  // Template records as the format writes them: id, field count, then each field.
  void AppendTemplateRecord(const Template& t, std::vector<uint8_t>& out) const {
    Put16(out, t.id);
    Put16(out, static_cast<uint16_t>(t.fields.size()));
    for (const Field& f : t.fields) {
      Put16(out, static_cast<uint16_t>(f.element | (f.reverse ? 0x8000 : 0)));
      Put16(out, f.length);
      if (f.reverse) Put32(out, kReversePen);
    }
  }

  std::vector<Template> templates_;
  size_t header_;
  uint16_t set_id_ = 0;  // id of the open data set, 0 for none
  size_t set_at_ = 0;    // its offset in msg_
};

// ---------------------------------------------------------------------------------------------
// NetFlow v9 (RFC 3954).

class NetflowV9Encoder final : public TemplateEncoder {
 public:
  static constexpr size_t kHeader = 20;

  explicit NetflowV9Encoder(const EncoderOptions& o) : TemplateEncoder(o, Templates(), kHeader) {
    Put16(template_set_, 0);  // template FlowSet id
    Put16(template_set_, 0);  // length, below
    for (const Template& t : templates_) AppendTemplateRecord(t, template_set_);
    Store16(template_set_.data() + 2, static_cast<uint16_t>(template_set_.size()));
  }

  static std::vector<Template> Templates() {
    // Counters are 8 bytes (RFC 3954 allows lengths other than the default 4).
    auto make = [](uint16_t id, bool v6, bool icmp) {
      Template t{id, {}};
      t.fields.push_back({8, 4, false, Value::kSrc4});   // IPV4_SRC_ADDR
      t.fields.push_back({12, 4, false, Value::kDst4});  // IPV4_DST_ADDR
      if (v6) {
        t.fields[0] = {27, 16, false, Value::kSrc6};  // IPV6_SRC_ADDR
        t.fields[1] = {28, 16, false, Value::kDst6};  // IPV6_DST_ADDR
      }
      if (icmp) {
        t.fields.push_back({32, 2, false, Value::kIcmp});  // ICMP_TYPE: type * 256 + code
      } else {
        t.fields.push_back({7, 2, false, Value::kSport});   // L4_SRC_PORT
        t.fields.push_back({11, 2, false, Value::kDport});  // L4_DST_PORT
      }
      t.fields.push_back({4, 1, false, Value::kProto});                // PROTOCOL
      if (!icmp) t.fields.push_back({6, 1, false, Value::kTcpFlags});  // TCP_FLAGS
      t.fields.push_back({58, 2, false, Value::kVlan});                // SRC_VLAN
      t.fields.push_back({1, 8, false, Value::kOctets});               // IN_BYTES
      t.fields.push_back({2, 8, false, Value::kPackets});              // IN_PKTS
      t.fields.push_back({22, 4, false, Value::kFirstUptime});         // FIRST_SWITCHED
      t.fields.push_back({21, 4, false, Value::kLastUptime});          // LAST_SWITCHED
      return t;
    };
    return {make(256, false, false), make(257, false, true), make(258, true, false),
            make(259, true, true)};
  }

  size_t TemplateBytes() const { return template_set_.size(); }

 private:
  void OpenMessage() override {
    Grow(kHeader);
    msg_all_records_ = 0;
    set_id_ = 0;
    if (templates_due_) {
      msg_.insert(msg_.end(), template_set_.begin(), template_set_.end());
      msg_all_records_ += static_cast<uint32_t>(templates_.size());
      templates_due_ = false;
      since_templates_ = 0;
      ++counters_.template_messages;
    }
  }

  bool Fits(size_t need) const override {
    return Align4(msg_.size() + need) <= options_.max_message_bytes;
  }

  bool Put(const Unit& u) override {
    if (!TemplateEncoder::Put(u)) return false;
    ++msg_all_records_;
    return true;
  }

  // FlowSets are padded with zeros to a 4-byte boundary; the length includes the padding.
  void CloseSet() override {
    if (set_id_ == 0) return;
    Grow(Align4(msg_.size()) - msg_.size());
    Store16(msg_.data() + set_at_ + 2, static_cast<uint16_t>(msg_.size() - set_at_));
    set_id_ = 0;
  }

  void CloseMessage() override {
    CloseSet();
    const int64_t now_ms = ClockMs();
    const int64_t secs = now_ms / 1000;
    uint8_t* h = msg_.data();
    Store16(h + 0, 9);
    Store16(h + 2, static_cast<uint16_t>(msg_all_records_));  // templates and data records
    // sysUptime from the whole seconds in unix_secs, so that unix_secs * 1000 - sysUptime is
    // boot to the millisecond.
    Store32(h + 4, static_cast<uint32_t>(secs * 1000 - boot_ms()));
    Store32(h + 8, static_cast<uint32_t>(secs));
    Store32(h + 12, sequence_);  // export packets sent before this one
    Store32(h + 16, options_.observation_domain);
    ++sequence_;
  }

  std::vector<uint8_t> template_set_;
  uint32_t msg_all_records_ = 0;
};

// ---------------------------------------------------------------------------------------------
// IPFIX (RFC 7011, 7012; RFC 5103 biflows).

class IpfixEncoder final : public TemplateEncoder {
 public:
  static constexpr size_t kHeader = 16;
  static constexpr uint16_t kOptionsTemplateId = 264;

  explicit IpfixEncoder(const EncoderOptions& o)
      : TemplateEncoder(o, Templates(o.biflow), kHeader) {
    Put16(template_set_, 2);  // template set
    Put16(template_set_, 0);
    for (const Template& t : templates_) AppendTemplateRecord(t, template_set_);
    Store16(template_set_.data() + 2, static_cast<uint16_t>(template_set_.size()));
    // Options template: scope exportingProcessId; the exporter's totals.
    Put16(options_template_set_, 3);  // options template set
    Put16(options_template_set_, 0);
    Put16(options_template_set_, kOptionsTemplateId);
    Put16(options_template_set_, 6);                               // field count
    Put16(options_template_set_, 1);                               // scope field count
    for (auto [ie, len] : {std::pair<uint16_t, uint16_t>{144, 4},  // exportingProcessId
                           {41, 8},                                // exportedMessageTotalCount
                           {42, 8},                                // exportedFlowRecordTotalCount
                           {40, 8},                                // exportedOctetTotalCount
                           {166, 8},                               // notSentFlowTotalCount
                           {160, 8}})                              // systemInitTimeMilliseconds
    {
      Put16(options_template_set_, ie);
      Put16(options_template_set_, len);
    }
    Store16(options_template_set_.data() + 2, static_cast<uint16_t>(options_template_set_.size()));
  }

  static constexpr size_t kOptionsSet = 4 + 4 + 5 * 8;

  static std::vector<Template> Templates(bool biflow) {
    auto make = [biflow](uint16_t id, bool v6, bool icmp) {
      Template t{id, {}};
      if (v6) {
        t.fields.push_back({27, 16, false, Value::kSrc6});  // sourceIPv6Address
        t.fields.push_back({28, 16, false, Value::kDst6});  // destinationIPv6Address
      } else {
        t.fields.push_back({8, 4, false, Value::kSrc4});   // sourceIPv4Address
        t.fields.push_back({12, 4, false, Value::kDst4});  // destinationIPv4Address
      }
      const uint16_t icmp_ie = v6 ? 139 : 32;  // icmpTypeCodeIPv6 / icmpTypeCodeIPv4
      if (icmp) {
        t.fields.push_back({icmp_ie, 2, false, Value::kIcmp});
      } else {
        t.fields.push_back({7, 2, false, Value::kSport});   // sourceTransportPort
        t.fields.push_back({11, 2, false, Value::kDport});  // destinationTransportPort
      }
      t.fields.push_back({4, 1, false, Value::kProto});                // protocolIdentifier
      if (!icmp) t.fields.push_back({6, 2, false, Value::kTcpFlags});  // tcpControlBits
      t.fields.push_back({58, 2, false, Value::kVlan});                // vlanId
      t.fields.push_back({1, 8, false, Value::kOctets});               // octetDeltaCount
      t.fields.push_back({2, 8, false, Value::kPackets});              // packetDeltaCount
      t.fields.push_back({152, 8, false, Value::kStartMs});            // flowStartMilliseconds
      t.fields.push_back({153, 8, false, Value::kEndMs});              // flowEndMilliseconds
      t.fields.push_back({136, 1, false, Value::kEndReason});          // flowEndReason
      if (biflow) {
        t.fields.push_back({1, 8, true, Value::kRevOctets});   // reverseOctetDeltaCount
        t.fields.push_back({2, 8, true, Value::kRevPackets});  // reversePacketDeltaCount
        if (icmp) {
          t.fields.push_back({icmp_ie, 2, true, Value::kRevIcmp});  // reverseIcmpTypeCode...
        } else {
          t.fields.push_back({6, 2, true, Value::kRevTcpFlags});  // reverseTcpControlBits
        }
        t.fields.push_back({239, 1, false, Value::kBiflowDirection});  // biflowDirection
      }
      return t;
    };
    const uint16_t base = biflow ? 260 : 256;
    return {make(base, false, false), make(base + 1, false, true), make(base + 2, true, false),
            make(base + 3, true, true)};
  }

  size_t TemplateBytes() const { return template_set_.size(); }
  size_t OptionsMessageBytes() const {
    return kHeader + options_template_set_.size() + kOptionsSet;
  }

 private:
  // The exporter's own statistics travel in observation domain 0, as RFC 7011 §3.1 advises
  // for "Exporting Process Statistics": a message with the options template and one options
  // data record, with its own sequence counter. So the flow domain's sequence number counts
  // exactly its flow records, which is what collectors (nfdump among them) check.
  void BeforeTemplates(MessageBuffer& out) override {
    std::vector<uint8_t> m;
    m.reserve(OptionsMessageBytes());
    Put16(m, 10);
    Put16(m, static_cast<uint16_t>(OptionsMessageBytes()));
    Put32(m, static_cast<uint32_t>(ClockMs() / 1000));
    Put32(m, options_sequence_);
    Put32(m, 0);  // observation domain 0: the exporting process itself
    m.insert(m.end(), options_template_set_.begin(), options_template_set_.end());
    Put16(m, kOptionsTemplateId);
    Put16(m, static_cast<uint16_t>(kOptionsSet));
    Put32(m, options_.exporting_process_id);
    Put64(m, counters_.messages_encoded);
    Put64(m, counters_.records_encoded);
    Put64(m, counters_.octets_encoded);
    Put64(m, not_sent_flows_);
    Put64(m, static_cast<uint64_t>(std::max<int64_t>(boot_ms() + kUptimeLead, 0)));
    ++options_sequence_;
    out.messages.push_back(
        {static_cast<uint32_t>(out.bytes.size()), static_cast<uint32_t>(m.size()), 0});
    out.bytes.insert(out.bytes.end(), m.begin(), m.end());
    ++counters_.messages_encoded;
    counters_.octets_encoded += m.size();
  }

  void OpenMessage() override {
    Grow(kHeader);
    set_id_ = 0;
    if (templates_due_) {
      msg_.insert(msg_.end(), template_set_.begin(), template_set_.end());
      templates_due_ = false;
      since_templates_ = 0;
      ++counters_.template_messages;
    }
  }

  bool Fits(size_t need) const override { return msg_.size() + need <= options_.max_message_bytes; }

  // IPFIX sets need no padding.
  void CloseSet() override {
    if (set_id_ == 0) return;
    Store16(msg_.data() + set_at_ + 2, static_cast<uint16_t>(msg_.size() - set_at_));
    set_id_ = 0;
  }

  void CloseMessage() override {
    CloseSet();
    uint8_t* h = msg_.data();
    Store16(h + 0, 10);
    Store16(h + 2, static_cast<uint16_t>(msg_.size()));
    Store32(h + 4, static_cast<uint32_t>(ClockMs() / 1000));  // export time
    Store32(h + 8, sequence_);  // data records sent before this message, this domain
    Store32(h + 12, options_.observation_domain);
    sequence_ += msg_records_;
  }

  std::vector<uint8_t> template_set_;
  std::vector<uint8_t> options_template_set_;
  uint32_t options_sequence_ = 0;  // options data records sent before, domain 0
};

size_t LargestRecord(const std::vector<Template>& ts) {
  size_t n = 0;
  for (const Template& t : ts) {
    size_t s = 0;
    for (const Field& f : t.fields) s += f.length;
    n = std::max(n, s);
  }
  return n;
}

}  // namespace

Result<std::unique_ptr<FlowEncoder>> FlowEncoder::Create(const EncoderOptions& o) {
  if (o.biflow && o.version != ExportVersion::kIpfix) {
    return MakeError(ErrorCode::kInvalidArgument, "biflow records need IPFIX (version 10)");
  }
  if (o.version == ExportVersion::kIpfix && o.observation_domain == 0) {
    return std::unexpected(Error(ErrorCode::kInvalidArgument,
                                 "IPFIX observation domain 0 is reserved for the exporter's "
                                 "own statistics")
                               .WithField("observation_domain"));
  }
  size_t need = 0;
  std::unique_ptr<FlowEncoder> enc;
  switch (o.version) {
    case ExportVersion::kNetflow5:
      need = NetflowV5Encoder::kHeader + NetflowV5Encoder::kRecord;
      enc = std::make_unique<NetflowV5Encoder>(o);
      break;
    case ExportVersion::kNetflow9: {
      auto v9 = std::make_unique<NetflowV9Encoder>(o);
      need = Align4(NetflowV9Encoder::kHeader + v9->TemplateBytes() + 4 +
                    LargestRecord(NetflowV9Encoder::Templates()));
      enc = std::move(v9);
      break;
    }
    case ExportVersion::kIpfix: {
      auto ipfix = std::make_unique<IpfixEncoder>(o);
      need = std::max(IpfixEncoder::kHeader + ipfix->TemplateBytes() + 4 +
                          LargestRecord(IpfixEncoder::Templates(o.biflow)),
                      ipfix->OptionsMessageBytes());
      enc = std::move(ipfix);
      break;
    }
    default:
      return std::unexpected(
          Error(ErrorCode::kInvalidArgument,
                fmt::format("export version {} is not 5, 9 or 10", static_cast<int>(o.version)))
              .WithField("netflow_version"));
  }
  if (o.max_message_bytes < need || o.max_message_bytes > 65535) {
    return std::unexpected(
        Error(ErrorCode::kInvalidArgument,
              fmt::format("message size {} bytes is outside {}..65535 (a message must hold the "
                          "header, the templates and one record)",
                          o.max_message_bytes, need))
            .WithField("mtu"));
  }
  enc->msg_.reserve(o.max_message_bytes);
  return enc;
}

}  // namespace jarvis
