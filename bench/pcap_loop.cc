// The floor every libpcap-based reader stands on: pcap_next_ex() over a file and nothing else.
// Prints "<packets> <seconds>" so bench/flows_offline.py can compute a rate.
#include <pcap/pcap.h>

#include <chrono>
#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  char errbuf[PCAP_ERRBUF_SIZE];
  const auto start = std::chrono::steady_clock::now();
  pcap_t* p = pcap_open_offline(argv[1], errbuf);
  if (p == nullptr) {
    std::fprintf(stderr, "%s\n", errbuf);
    return 1;
  }
  pcap_pkthdr* hdr;
  const u_char* data;
  unsigned long packets = 0;
  while (pcap_next_ex(p, &hdr, &data) == 1) ++packets;
  pcap_close(p);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%lu %.6f\n", packets, secs);
  return 0;
}
