/*
 * tcp_servers: the real servers of bench/checks/per_check.py. Listens on every port given,
 * accepts and closes each connection, and counts the connections of each peer address
 * (IPv4); every 100 ms it rewrites COUNTS_FILE as JSON: {"t": <unix time>, "by_peer":
 * {"192.0.2.12": 1234, ...}}. In C because a Python accept loop could not keep up with two
 * checkers at 5,000 checks/s each, and its lag became the checkers' time-outs.
 *
 * Usage: tcp_servers COUNTS_FILE PORT...    (runs until killed)
 * Build: gcc -O2 -o tcp_servers tcp_servers.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PEERS 64

static struct { uint32_t addr; unsigned long count; } peers[MAX_PEERS];
static int npeers;

static void count(uint32_t addr)
{
	for (int i = 0; i < npeers; i++)
		if (peers[i].addr == addr) {
			peers[i].count++;
			return;
		}
	if (npeers < MAX_PEERS) {
		peers[npeers].addr = addr;
		peers[npeers++].count = 1;
	}
}

static void publish(const char *path)
{
	char tmp[4096], addr[INET_ADDRSTRLEN];
	struct timespec now;
	FILE *fh;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(fh = fopen(tmp, "w")))
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	fprintf(fh, "{\"t\": %ld.%06ld, \"by_peer\": {", (long)now.tv_sec, now.tv_nsec / 1000);
	for (int i = 0; i < npeers; i++) {
		inet_ntop(AF_INET, &peers[i].addr, addr, sizeof(addr));
		fprintf(fh, "%s\"%s\": %lu", i ? ", " : "", addr, peers[i].count);
	}
	fprintf(fh, "}}\n");
	fclose(fh);
	rename(tmp, path);
}

int main(int argc, char **argv)
{
	struct rlimit limit;
	struct epoll_event ev, events[256];
	struct timespec last = {0, 0}, now;
	int ep, one = 1;

	if (argc < 3) {
		fprintf(stderr, "usage: tcp_servers COUNTS_FILE PORT...\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		setrlimit(RLIMIT_NOFILE, &limit);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 2; i < argc; i++) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[i])) };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 4096)) {
			fprintf(stderr, "tcp_servers: port %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		ev.events = EPOLLIN;
		ev.data.fd = fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
	publish(argv[1]);
	for (;;) {
		int n = epoll_wait(ep, events, 256, 100);
		for (int i = 0; i < n; i++) {
			struct sockaddr_in peer;
			socklen_t len = sizeof(peer);
			int conn;
			while ((conn = accept4(events[i].data.fd, (struct sockaddr *)&peer, &len,
					       SOCK_CLOEXEC)) >= 0) {
				close(conn);
				count(peer.sin_addr.s_addr);
				len = sizeof(peer);
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000 >= 100) {
			publish(argv[1]);
			last = now;
		}
	}
}
