#include "export/export_config.h"

#include <gtest/gtest.h>

namespace jarvis {
namespace {

TEST(ParseExportUrl, SchemesHostsAndPorts) {
  auto c = ParseExportUrl("ipfix://127.0.0.1:4739");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->version, ExportVersion::kIpfix);
  EXPECT_EQ(c->collector_host, "127.0.0.1");
  EXPECT_EQ(c->collector_port, 4739);
  EXPECT_FALSE(c->biflow);

  c = ParseExportUrl("netflow9://collector.example:9996");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->version, ExportVersion::kNetflow9);
  EXPECT_EQ(c->collector_host, "collector.example");
  EXPECT_EQ(c->collector_port, 9996);

  c = ParseExportUrl("netflow5://10.0.0.1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->version, ExportVersion::kNetflow5);
  EXPECT_EQ(c->collector_port, 2055);

  c = ParseExportUrl("ipfix://[::1]?biflow=1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->collector_host, "::1");
  EXPECT_EQ(c->collector_port, 4739);
  EXPECT_TRUE(c->biflow);
  EXPECT_EQ(c->Url(), "ipfix://[::1]:4739?biflow=1");

  c = ParseExportUrl(
      "ipfix://[2001:db8::5]:9000?mtu=9000&rate=0&domain=3&template_refresh=2"
      "&template_packets=10&queue=100&source_port=40000");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->collector_host, "2001:db8::5");
  EXPECT_EQ(c->collector_port, 9000);
  EXPECT_EQ(c->mtu, 9000u);
  EXPECT_EQ(c->max_datagrams_per_sec, 0u);
  EXPECT_EQ(c->observation_domain, 3u);
  EXPECT_EQ(c->template_refresh_sec, 2u);
  EXPECT_EQ(c->template_refresh_packets, 10u);
  EXPECT_EQ(c->queue_capacity, 100u);
  EXPECT_EQ(c->source_port, 40000);
}

TEST(ParseExportUrl, ClearErrors) {
  const struct {
    const char* url;
    const char* says;
  } cases[] = {
      {"127.0.0.1:4739", "expected SCHEME://"},
      {"sflow://127.0.0.1", "unknown scheme 'sflow'"},
      {"ipfix://", "no collector host"},
      {"ipfix://:4739", "no collector host"},
      {"ipfix://127.0.0.1:", "empty port"},
      {"ipfix://127.0.0.1:70000", "port '70000'"},
      {"ipfix://127.0.0.1:0", "port '0'"},
      {"ipfix://::1:4739", "in brackets"},
      {"ipfix://[::1:4739", "closing ']'"},
      {"ipfix://[::1]4739", "':PORT'"},
      {"ipfix://127.0.0.1?color=red", "unknown parameter 'color'"},
      {"ipfix://127.0.0.1?mtu=big", "bad value 'big' for mtu"},
      {"ipfix://127.0.0.1?mtu=100", "mtu 100 is outside"},
      {"netflow9://127.0.0.1?biflow=1", "biflow records need IPFIX"},
      {"ipfix://127.0.0.1?domain=0", "domain 0 is reserved"},
  };
  for (const auto& c : cases) {
    auto r = ParseExportUrl(c.url);
    ASSERT_FALSE(r.has_value()) << c.url;
    EXPECT_NE(r.error().message().find(c.says), std::string::npos)
        << c.url << ": " << r.error().message();
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(ValidateExportConfig, NamesTheField) {
  ExportConfig c;
  c.collector_host = "127.0.0.1";
  EXPECT_TRUE(ValidateExportConfig(c).has_value());
  c.version = static_cast<ExportVersion>(8);
  auto s = ValidateExportConfig(c);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().field(), "netflow_version");
  c.version = ExportVersion::kNetflow5;
  c.collector_host.clear();
  s = ValidateExportConfig(c);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().field(), "collector_ip");
}

}  // namespace
}  // namespace jarvis
