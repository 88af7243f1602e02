/*
 * ipvs_shim: an LD_PRELOAD library that lets keepalived's checker process run on a kernel
 * without IPVS (no ip_vs module), so that its TCP_CHECKs can be measured beside halo's.
 *
 * keepalived 2.2.7 (keepalived/check/libipvs.c) first tries IPVS over generic netlink; on a
 * kernel without ip_vs the family "IPVS" does not resolve, so it falls back to the
 * IP_VS_SO_SET_* / IP_VS_SO_GET_* socket options on a raw IPv4 socket. Those are what this
 * shim answers: GET_INFO / GET_VERSION / GET_TIMEOUT / GET_DAEMON as an empty IPVS table,
 * GET_SERVICES / GET_DESTS as empty lists, GET_SERVICE as "no such service", and every
 * SET_* (service and destination add/edit/delete, flush, timeouts, sync daemon) as a
 * success. Since ipvs_init() then succeeds, keepalived never runs "modprobe ip_vs".
 *
 * Nothing else is touched: other levels and option numbers go to the real libc calls.
 * With IPVS_SHIM_LOG=<file> each faked SET_* call is appended there as one line
 * ("ADDDEST 192.0.2.13:20000 weight 1"), so a test can see keepalived add and remove
 * real servers.
 *
 * Build: gcc -shared -fPIC -O2 -o ipvs_shim.so ipvs_shim.c -ldl
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <linux/ip_vs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*getsockopt_fn)(int, int, int, void *, socklen_t *);
typedef int (*setsockopt_fn)(int, int, int, const void *, socklen_t);

static int is_ipvs_get(int level, int optname)
{
	return level == IPPROTO_IP && optname >= IP_VS_SO_GET_VERSION && optname <= IP_VS_SO_GET_MAX;
}

static int is_ipvs_set(int level, int optname)
{
	return level == IPPROTO_IP && optname >= IP_VS_BASE_CTL && optname <= IP_VS_SO_SET_MAX;
}

static const char *set_name(int optname)
{
	switch (optname) {
	case IP_VS_SO_SET_ADD: return "ADD";
	case IP_VS_SO_SET_EDIT: return "EDIT";
	case IP_VS_SO_SET_DEL: return "DEL";
	case IP_VS_SO_SET_FLUSH: return "FLUSH";
	case IP_VS_SO_SET_ADDDEST: return "ADDDEST";
	case IP_VS_SO_SET_DELDEST: return "DELDEST";
	case IP_VS_SO_SET_EDITDEST: return "EDITDEST";
	case IP_VS_SO_SET_TIMEOUT: return "TIMEOUT";
	case IP_VS_SO_SET_STARTDAEMON: return "STARTDAEMON";
	case IP_VS_SO_SET_STOPDAEMON: return "STOPDAEMON";
	case IP_VS_SO_SET_ZERO: return "ZERO";
	default: return "SET";
	}
}

/* One line per faked SET_* call; only when IPVS_SHIM_LOG names a file. */
static void log_set(int optname, const void *optval, socklen_t optlen)
{
	const char *path = getenv("IPVS_SHIM_LOG");
	FILE *fh;
	char addr[INET_ADDRSTRLEN] = "";

	if (!path || !*path || !(fh = fopen(path, "a")))
		return;
	if (optval && optlen >= sizeof(struct ip_vs_service_user) + sizeof(struct ip_vs_dest_user)
	    && (optname == IP_VS_SO_SET_ADDDEST || optname == IP_VS_SO_SET_DELDEST
		|| optname == IP_VS_SO_SET_EDITDEST)) {
		const struct ip_vs_dest_user *dest = (const struct ip_vs_dest_user *)
			((const char *)optval + sizeof(struct ip_vs_service_user));
		inet_ntop(AF_INET, &dest->addr, addr, sizeof(addr));
		fprintf(fh, "%s %s:%u weight %d\n", set_name(optname), addr, ntohs(dest->port),
			dest->weight);
	} else if (optval && optlen >= sizeof(struct ip_vs_service_user)
		   && (optname == IP_VS_SO_SET_ADD || optname == IP_VS_SO_SET_EDIT
		       || optname == IP_VS_SO_SET_DEL)) {
		const struct ip_vs_service_user *svc = optval;
		inet_ntop(AF_INET, &svc->addr, addr, sizeof(addr));
		fprintf(fh, "%s %s:%u\n", set_name(optname), addr, ntohs(svc->port));
	} else {
		fprintf(fh, "%s\n", set_name(optname));
	}
	fclose(fh);
}

static int fill(void *optval, socklen_t *optlen, const void *value, socklen_t size)
{
	if (!optval || !optlen || *optlen < size) {
		errno = EINVAL;
		return -1;
	}
	memcpy(optval, value, size);
	*optlen = size;
	return 0;
}

int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
{
	static getsockopt_fn real;

	if (!is_ipvs_get(level, optname)) {
		if (!real)
			real = (getsockopt_fn)dlsym(RTLD_NEXT, "getsockopt");
		return real(fd, level, optname, optval, optlen);
	}
	switch (optname) {
	case IP_VS_SO_GET_VERSION: {
		char version[64];
		memset(version, 0, sizeof(version));
		snprintf(version, sizeof(version), "IP Virtual Server version 1.2.1 (size=4096)");
		if (!optval || !optlen || *optlen == 0) {
			errno = EINVAL;
			return -1;
		}
		socklen_t n = *optlen < sizeof(version) ? *optlen : sizeof(version);
		memcpy(optval, version, n);
		((char *)optval)[n - 1] = '\0';
		*optlen = n;
		return 0;
	}
	case IP_VS_SO_GET_INFO: {
		struct ip_vs_getinfo info = { .version = IP_VS_VERSION_CODE, .size = 4096,
					      .num_services = 0 };
		return fill(optval, optlen, &info, sizeof(info));
	}
	case IP_VS_SO_GET_TIMEOUT: {
		/* the kernel's defaults: 900 s, 120 s, 300 s */
		struct ip_vs_timeout_user timeouts = { .tcp_timeout = 900, .tcp_fin_timeout = 120,
						       .udp_timeout = 300 };
		return fill(optval, optlen, &timeouts, sizeof(timeouts));
	}
	case IP_VS_SO_GET_DAEMON: {
		struct ip_vs_daemon_user daemons[2];
		memset(daemons, 0, sizeof(daemons));
		return fill(optval, optlen, daemons, sizeof(daemons));
	}
	case IP_VS_SO_GET_SERVICES: {
		/* the caller's header says how many it expects; the table is empty */
		if (!optval || !optlen || *optlen < sizeof(struct ip_vs_get_services)) {
			errno = EINVAL;
			return -1;
		}
		((struct ip_vs_get_services *)optval)->num_services = 0;
		return 0;
	}
	case IP_VS_SO_GET_DESTS: {
		if (!optval || !optlen || *optlen < sizeof(struct ip_vs_get_dests)) {
			errno = EINVAL;
			return -1;
		}
		((struct ip_vs_get_dests *)optval)->num_dests = 0;
		return 0;
	}
	default: /* GET_SERVICE, GET_DEST: nothing is stored, so nothing is found */
		errno = ESRCH;
		return -1;
	}
}

int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
{
	static setsockopt_fn real;

	if (!is_ipvs_set(level, optname)) {
		if (!real)
			real = (setsockopt_fn)dlsym(RTLD_NEXT, "setsockopt");
		return real(fd, level, optname, optval, optlen);
	}
	log_set(optname, optval, optlen);
	return 0;
}
