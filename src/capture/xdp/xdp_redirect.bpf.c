// The XDP program of the `xdp` backend. Built by the project with `clang -O2 -g -target bpf`
// into xdp_redirect.bpf.o beside the jarvis-capture binary (see CMakeLists.txt and
// docs/BACKENDS.md).
//
// Each packet is stamped (CLOCK_MONOTONIC, in the metadata area in front of it) and redirected
// to the AF_XDP socket bound to the RX queue it arrived on. A queue with no socket in the map
// falls back to XDP_PASS, so the kernel stack keeps the packet. The user's BPF filter is not
// run here: the backend runs it in user space (docs/BACKENDS.md says why).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdp_meta.h"

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, 64);  // resized by the loader to the interface's RX queue count
  __type(key, __u32);
  __type(value, __u32);
} jarvis_xsks SEC(".maps");

SEC("xdp")
int jarvis_xsk(struct xdp_md *ctx) {
  // The timestamp is best effort: a driver without metadata support still gets the redirect,
  // and the backend stamps those packets when it reads them.
  if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct jarvis_xdp_meta)) == 0) {
    void *data = (void *)(long)ctx->data;
    struct jarvis_xdp_meta *meta = (void *)(long)ctx->data_meta;
    if ((void *)(meta + 1) <= data) {
      meta->mono_ns = bpf_ktime_get_ns();
      meta->reserved = 0;
      meta->magic = JARVIS_XDP_META_MAGIC;
    }
  }
  return bpf_redirect_map(&jarvis_xsks, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
