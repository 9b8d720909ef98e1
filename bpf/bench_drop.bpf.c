// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* The baseline of the XDP benchmark: the cheapest program there is. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int sluice_bench_drop(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
