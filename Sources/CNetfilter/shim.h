#pragma once
/*
 * libiptc/libip6tc (Debian libiptc-dev): the legacy xtables tables read and committed whole.
 * Imported by Netfilter/IPTCTable.swift alone; the kernel's structures and numbers are CNetfilterUAPI.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <libiptc/libiptc.h>
#include <libiptc/libip6tc.h>
