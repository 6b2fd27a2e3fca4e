// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * lvsfwd's XDP program: decides, per received frame on the data-plane NIC,
 * whether the frame belongs to the balancer (redirect into the AF_XDP socket
 * of its rx queue) or to the kernel (XDP_PASS), so that ARP, ping, SSH, VRRP,
 * health-check replies and the director's own traffic keep working on the
 * same NIC.
 *
 * Redirected:
 *  - TCP/UDP to a virtual service: (proto, dst, dport) or (proto, dst, 0)
 *    in `services`;                                      -> REDIR_SERVICE
 *  - any IP fragment (v4 MF/offset, v6 fragment header) whose destination is
 *    a VIP or a FULLNAT local address, or whose source is a NAT real server
 *    and destination not the director's own;             -> REDIR_FRAGMENT
 *  - ICMP/ICMPv6 errors (v4 3, 11, 12; v6 1-4) to a VIP or a local address,
 *    or from a NAT real server's address to an address that is not the
 *    director's own;                                     -> REDIR_ICMP
 *  - TCP/UDP to a FULLNAT local address, and TCP/UDP from a NAT real server
 *    (proto, src, sport) or (proto, src, 0) in `nat_rs` to an address that
 *    is not the director's own (replies of NAT connections; health-check
 *    replies go to an own address and stay with the kernel). -> REDIR_REPLY
 * Everything else, including frames too short to classify, is passed.
 * Later fragments carry no ports, so only the VIP / local-address rule
 * applies to them (the data plane hands other ones to the kernel too).
 * Bounds: at most 2 VLAN tags (802.1Q / 802.1ad) and 4 IPv6 extension
 * headers (hop-by-hop, routing, destination options, fragment; AH and ESP
 * are not skipped); a frame beyond them is passed. An address that is both
 * a local address and an own one counts as local.
 *
 * Map keys (struct lf_key, 20 bytes, no padding): the address in `addr`
 * (IPv4 in the first 4 bytes, the other 12 zero), `port` in NETWORK byte
 * order exactly as on the wire (0 = any port / address-only key), `proto`
 * the IP protocol number (0 in address-only keys), `family` 4 or 6.
 * `addrs` holds address-only keys whose value is a bit set of ADDR_* roles,
 * so one lookup answers "VIP? local? own?" for a destination.
 *
 * Counters (per-CPU array, u64 each, indexed by enum counter): one of the
 * five decision counters per frame; REDIRECT_FAILED is counted in addition
 * to the decision when bpf_redirect_map found no socket for the rx queue
 * and the frame fell back to XDP_PASS.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Both kept in step with src/xsk/prog.rs. */
struct lf_key {
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 family;
};

enum addr_role {
	ADDR_VIP = 1,
	ADDR_LOCAL = 2,
	ADDR_OWN = 4,
	ADDR_NAT_RS = 8,
};

enum counter {
	C_REDIR_SERVICE = 0,
	C_REDIR_REPLY = 1,
	C_REDIR_ICMP = 2,
	C_REDIR_FRAGMENT = 3,
	C_PASSED = 4,
	C_REDIRECT_FAILED = 5,
	C_MAX = 6,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct lf_key);
	__type(value, __u8);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct lf_key);
	__type(value, __u8);
} nat_rs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct lf_key);
	__type(value, __u32);
} addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

#define VLAN_MAX 2
#define IPV6_EXT_MAX 4

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_ICMPV6_ 58

enum frag {
	FRAG_NONE,
	FRAG_FIRST,
	FRAG_LATER,
};

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

/* The fields a decision needs, filled by the parsers. */
struct pkt {
	struct lf_key src; /* address only; proto/port filled per lookup */
	struct lf_key dst;
	__u8 proto;
	__u8 frag;
	void *l4;
};

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		*c += 1; /* per-CPU slot: no other writer */
}

static __always_inline __u32 roles(struct lf_key *k)
{
	__u32 *r;

	k->proto = 0;
	k->port = 0;
	r = bpf_map_lookup_elem(&addrs, k);
	return r ? *r : 0;
}

/* (proto, addr, port) or (proto, addr, 0) in `map`. */
static __always_inline int has_port(void *map, struct lf_key *k, __u8 proto,
				    __u16 port_be)
{
	k->proto = proto;
	k->port = port_be;
	if (bpf_map_lookup_elem(map, k))
		return 1;
	k->port = 0;
	return bpf_map_lookup_elem(map, k) != NULL;
}

/* Returns 0 when the frame is not IPv4 or too short to classify. */
static __always_inline int parse_ipv4(void *l3, void *end, struct pkt *p)
{
	struct iphdr *ip = l3;
	__u32 hlen;
	__u16 fo;

	if ((void *)(ip + 1) > end)
		return 0;
	if (ip->version != 4)
		return 0;
	hlen = ip->ihl * 4;
	if (hlen < sizeof(*ip))
		return 0;
	if (l3 + hlen > end)
		return 0;
	__builtin_memcpy(p->src.addr, &ip->saddr, 4);
	__builtin_memcpy(p->dst.addr, &ip->daddr, 4);
	p->src.family = 4;
	p->dst.family = 4;
	p->proto = ip->protocol;
	fo = bpf_ntohs(ip->frag_off);
	if (fo & 0x1fff)
		p->frag = FRAG_LATER;
	else if (fo & 0x2000)
		p->frag = FRAG_FIRST;
	else
		p->frag = FRAG_NONE;
	p->l4 = l3 + hlen;
	return 1;
}

/* Returns 0 when the frame is not IPv6 or too short to classify. */
static __always_inline int parse_ipv6(void *l3, void *end, struct pkt *p)
{
	struct ipv6hdr *ip6 = l3;
	void *pos;
	__u8 nh;
	int i;

	if ((void *)(ip6 + 1) > end)
		return 0;
	if (ip6->version != 6)
		return 0;
	__builtin_memcpy(p->src.addr, &ip6->saddr, 16);
	__builtin_memcpy(p->dst.addr, &ip6->daddr, 16);
	p->src.family = 6;
	p->dst.family = 6;
	p->frag = FRAG_NONE;
	nh = ip6->nexthdr;
	pos = ip6 + 1;

#pragma unroll
	for (i = 0; i < IPV6_EXT_MAX; i++) {
		if (nh == IPPROTO_FRAGMENT_) {
			__u8 *fh = pos;
			__u16 fo;

			if ((void *)(fh + 8) > end)
				return 0;
			fo = ((__u16)fh[2] << 8) | fh[3];
			if (fo & 0xfff8) {
				/* Later fragment: no transport header follows. */
				p->frag = FRAG_LATER;
				p->proto = fh[0];
				/* Never read for a later fragment, but always a
				 * packet pointer so the verifier sees one type. */
				p->l4 = fh + 8;
				return 1;
			}
			/* Offset 0 without M is an atomic fragment: whole. */
			if (fo & 1)
				p->frag = FRAG_FIRST;
			nh = fh[0];
			pos = fh + 8;
		} else if (nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_ROUTING_ ||
			   nh == IPPROTO_DSTOPTS_) {
			__u8 *oh = pos;

			if ((void *)(oh + 2) > end)
				return 0;
			nh = oh[0];
			pos = oh + ((__u32)oh[1] + 1) * 8;
			if (pos > end)
				return 0;
		} else {
			break;
		}
	}
	p->proto = nh;
	p->l4 = pos;
	return 1;
}

static __always_inline int icmp_is_error(__u8 family, __u8 type)
{
	if (family == 4)
		return type == 3 || type == 11 || type == 12;
	return type >= 1 && type <= 4;
}

static __always_inline enum counter decide(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct pkt p = {};
	void *l3;
	__u16 ethertype;
	__u32 dst_roles;
	int i;

	if ((void *)(eth + 1) > end)
		return C_PASSED;
	ethertype = eth->h_proto;
	l3 = eth + 1;
#pragma unroll
	for (i = 0; i < VLAN_MAX; i++) {
		struct vlan_tag *v = l3;

		if (ethertype != bpf_htons(ETH_P_8021Q) &&
		    ethertype != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(v + 1) > end)
			return C_PASSED;
		ethertype = v->proto;
		l3 = v + 1;
	}

	if (ethertype == bpf_htons(ETH_P_IP)) {
		if (!parse_ipv4(l3, end, &p))
			return C_PASSED;
	} else if (ethertype == bpf_htons(ETH_P_IPV6)) {
		if (!parse_ipv6(l3, end, &p))
			return C_PASSED;
	} else {
		return C_PASSED;
	}

	dst_roles = roles(&p.dst);
	if (p.frag != FRAG_NONE && (dst_roles & (ADDR_VIP | ADDR_LOCAL)))
		return C_REDIR_FRAGMENT;
	/* Every fragment of a NAT real server's packet to an address that is
	 * not the director's own: the data plane reassembles replies. */
	if (p.frag != FRAG_NONE && !(dst_roles & ADDR_OWN) &&
	    (roles(&p.src) & ADDR_NAT_RS))
		return C_REDIR_FRAGMENT;
	if (p.frag == FRAG_LATER)
		return C_PASSED;

	if (p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP) {
		__u32 need = p.proto == IPPROTO_TCP ? 20 : 8;
		__be16 *ports = p.l4;

		if (p.l4 + need > end)
			return C_PASSED;
		if (has_port(&services, &p.dst, p.proto, ports[1]))
			return C_REDIR_SERVICE;
		if (dst_roles & ADDR_LOCAL)
			return C_REDIR_REPLY;
		if (!(dst_roles & ADDR_OWN) &&
		    has_port(&nat_rs, &p.src, p.proto, ports[0]))
			return C_REDIR_REPLY;
		return C_PASSED;
	}

	if ((p.dst.family == 4 && p.proto == IPPROTO_ICMP) ||
	    (p.dst.family == 6 && p.proto == IPPROTO_ICMPV6_)) {
		__u8 *icmp = p.l4;

		/* Type, code, checksum and the 4-byte rest of the header. */
		if ((void *)(icmp + 8) > end)
			return C_PASSED;
		if (!icmp_is_error(p.dst.family, icmp[0]))
			return C_PASSED;
		if (dst_roles & (ADDR_VIP | ADDR_LOCAL))
			return C_REDIR_ICMP;
		if (!(dst_roles & ADDR_OWN) && (roles(&p.src) & ADDR_NAT_RS))
			return C_REDIR_ICMP;
	}
	return C_PASSED;
}

SEC("xdp")
int xdp_lvsfwd(struct xdp_md *ctx)
{
	enum counter d = decide(ctx);
	int act;

	count(d);
	if (d == C_PASSED)
		return XDP_PASS;
	/* Falls back to XDP_PASS when no socket serves this rx queue. */
	act = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (act != XDP_REDIRECT)
		count(C_REDIRECT_FAILED);
	return act;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
