#pragma once
/*
 * The C side of randsnat's netfilter adapter: libiptc/libip6tc (Debian libiptc-dev) and the kernel's
 * UAPI headers for the structures randsnat puts into rules (set, comment, statistic matches; NAT
 * ranges), reads from others' rules (mark, addrtype matches) and for netlink (ipset, nf_tables).
 * No code lives here except what Swift cannot import:
 * XT_ALIGN is a macro over a struct alignment, so it is given a name below.
 */
#include <sys/socket.h>
#include <sys/file.h>
#include <netinet/in.h>
#include <libiptc/libiptc.h>
#include <libiptc/libip6tc.h>
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
