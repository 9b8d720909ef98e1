/* SPDX-License-Identifier: Apache-2.0 */
/* Addresses as the maps store them (16 bytes, IPv4 mapped) back to text. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "maps.h"

static const __u8 v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool is_v4_mapped(const __u8 bytes[16])
{
	return memcmp(bytes, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

void addr_format(const __u8 bytes[16], char out[CTL_ADDR_LEN])
{
	if (is_v4_mapped(bytes))
		inet_ntop(AF_INET, bytes + 12, out, CTL_ADDR_LEN);
	else
		inet_ntop(AF_INET6, bytes, out, CTL_ADDR_LEN);
}

void cidr_format(const struct sluice_lpm_key *key, char out[CTL_ADDR_LEN])
{
	char addr[INET6_ADDRSTRLEN];
	__u32 len = key->prefixlen;

	/* An IPv4 prefix is the mapped prefix (96 bits) plus its own length. */
	if (len >= 96 && is_v4_mapped(key->bytes)) {
		inet_ntop(AF_INET, key->bytes + 12, addr, sizeof(addr));
		len -= 96;
	} else {
		inet_ntop(AF_INET6, key->bytes, addr, sizeof(addr));
	}
	snprintf(out, CTL_ADDR_LEN, "%s/%u", addr, len);
}
