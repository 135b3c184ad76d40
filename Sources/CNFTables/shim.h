#pragma once
/*
 * The C side of randsnat's nftables adapter: libnftnl builds and parses nf_tables objects, libmnl
 * carries them over netlink (Debian libnftnl-dev, libmnl-dev). Headers only.
 */
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <netinet/in.h> /* before any kernel header, as in CNetfilter, so both see one in_addr */
#include <linux/netlink.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/batch.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/set.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/udata.h>
