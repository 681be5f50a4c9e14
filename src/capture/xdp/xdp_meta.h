// What the project's XDP program (xdp_redirect.bpf.c) writes in front of each packet it hands
// to an AF_XDP socket, and the names both sides agree on. Included by the BPF program (C,
// clang -target bpf) and by the backend (C++), so it holds plain C only.
#pragma once

#include <linux/types.h>

// The program's name as the kernel shows it (BPF_OBJ_NAME_LEN is 16, so at most 15 bytes).
// Also how a program of ours left on an interface is recognised.
#define JARVIS_XDP_PROG_NAME "jarvis_xsk"
// The XSKMAP: RX queue index -> AF_XDP socket.
#define JARVIS_XDP_MAP_NAME "jarvis_xsks"

// "jxts" in ASCII: marks metadata written by this program. The backend clears it after
// reading, so a frame whose metadata could not be written is never taken for a fresh one.
#define JARVIS_XDP_META_MAGIC 0x7374786aU

// Placed immediately before the packet's first byte (XDP data_meta). 16 bytes, a multiple of
// 4 as bpf_xdp_adjust_meta requires.
struct jarvis_xdp_meta {
  __u64 mono_ns;  // bpf_ktime_get_ns(): CLOCK_MONOTONIC when the packet reached the hook
  __u32 reserved;
  __u32 magic;  // JARVIS_XDP_META_MAGIC, last so it sits right before the packet
};
