#pragma once
/*
 * The kernel's netfilter UAPI headers (Debian linux-libc-dev), without libiptc: the xtables entry
 * and the structures randsnat puts into rules (set, comment, statistic matches; NAT ranges) or reads
 * from others' rules (mark, addrtype matches), the xtables socket options, and the netlink protocols
 * (ipset, ctnetlink, nf_tables). Imported by Netfilter's xtables codec, the protocol-numbers files and
 * the nf_tables files; libiptc itself is CNetfilter, imported by IPTCTable alone.
 * No code lives here except what Swift cannot import:
 * XT_ALIGN is a macro over a struct alignment, so it is given a name below.
 */
#include <sys/socket.h>
#include <sys/file.h>
#include <netinet/in.h>
#include <net/if.h>      /* before any linux/ header, as libiptc.h has it: one definition of the interface flags in both modules */
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_tables_compat.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/xt_set.h>
#include <linux/netfilter/xt_comment.h>
#include <linux/netfilter/xt_statistic.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_addrtype.h>
#include <linux/netfilter/nf_nat.h>

/* XT_ALIGN rounds a match/target size up to the alignment the kernel's xtables ABI uses. */
static inline unsigned long randsnat_xt_align(unsigned long size) { return XT_ALIGN(size); }

#include <unistd.h>
#include <sys/syscall.h>
#include <linux/membarrier.h>
/* Returns after an RCU grace period (membarrier's MEMBARRIER_CMD_GLOBAL is synchronize_rcu());
 * syscall() is variadic, which Swift cannot call. */
static inline int randsnat_wait_for_grace_period(void) { return (int)syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0); }
