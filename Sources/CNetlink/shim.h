#pragma once
/*
 * Kernel UAPI headers for randsnat's netlink layer (rtnetlink: links, addresses, routes; veth and
 * bridge attributes) and setns(2). Headers only: the layer itself is Swift (Sources/Netlink).
 */
#define _GNU_SOURCE 1
#include <sched.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/veth.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <poll.h>
#include <dirent.h>
#include <signal.h>
