#pragma once
/*
 * Kernel UAPI headers for randsnat's netlink layer (the transport; nfnetlink's header and subsystems;
 * rtnetlink: links, addresses, routes; veth and bridge attributes) and setns(2). Headers only: the layer itself is Swift (Sources/Netlink).
 */
#include <linux/sched.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/netfilter/nfnetlink.h>  /* nfgenmsg, NFNL_SUBSYS_* */
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/veth.h>
#include <pthread.h>
#include <sys/statfs.h>       /* fstatfs: is a path a namespace (NSFS_MAGIC) */
#include <spawn.h>
#include <sys/wait.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <poll.h>
#include <dirent.h>
#include <signal.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

/*
 * setns(2), pipe2(2) and unshare(2) are declared by glibc only under _GNU_SOURCE, and defining that here would
 * give this module other struct layouts (fd_set) than Swift's Glibc module, which is built without
 * it. So their prototypes are repeated here, exactly as glibc has them.
 */
extern int setns(int fd, int nstype);
extern int pipe2(int pipefd[2], int flags);
/* unshare(2), for the same reason: the doctor's probe makes a private network namespace on a thread. */
extern int unshare(int flags);
