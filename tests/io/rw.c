/* Data calls: read/write, readv/writev, send/recv, sendto/recvfrom,
 * sendmsg/recvmsg, sendmmsg/recvmmsg carry one >= 10 MB stream through
 * the echo server, checked by sha256; plus the kernel's answers for a
 * destination address on a connected stream socket and for recvfrom's
 * source address. */
#include "iotest.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define CH 65536
static unsigned char wbuf[CH], rbuf[CH];
static const char *wname[] = {"write", "writev", "send", "sendto", "sendmsg", "sendmmsg"};
static const char *rname[] = {"read", "readv", "recv", "recvfrom", "recvmsg", "recvmmsg"};

/* Sends part of wbuf[0..n) with variant v; returns bytes taken or -1. */
static ssize_t put(int fd, int v, size_t n)
{
	size_t a = n / 3, b = n / 3;
	struct iovec iov[3] = {{wbuf, a}, {wbuf + a, b}, {wbuf + a + b, n - a - b}};
	switch (v) {
	case 0: return write(fd, wbuf, n);
	case 1: return writev(fd, iov, 3);
	case 2: return send(fd, wbuf, n, 0);
	case 3: return sendto(fd, wbuf, n, 0, NULL, 0);
	case 4: {
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
		return sendmsg(fd, &m, 0);
	}
	default: {
		struct mmsghdr mm[2];
		memset(mm, 0, sizeof mm);
		mm[0].msg_hdr.msg_iov = iov;
		mm[0].msg_hdr.msg_iovlen = 1;
		mm[1].msg_hdr.msg_iov = iov + 1;
		mm[1].msg_hdr.msg_iovlen = 2;
		int k = sendmmsg(fd, mm, 2, 0);
		if (k < 0)
			return -1;
		ssize_t t = 0;
		for (int i = 0; i < k; i++)
			t += mm[i].msg_len;
		/* a short first message ends the batch on a stream socket */
		return t;
	}
	}
}

static ssize_t get(int fd, int v, unsigned char *p, size_t n)
{
	size_t a = n / 3 ? n / 3 : 1;
	if (a > n)
		a = n;
	size_t b = (n - a) / 2;
	struct iovec iov[3] = {{p, a}, {p + a, b}, {p + a + b, n - a - b}};
	switch (v) {
	case 0: return read(fd, rbuf, n); /* fortified: __read_chk */
	case 1: return readv(fd, iov, 3);
	case 2: return recv(fd, rbuf, n, 0); /* __recv_chk */
	case 3: {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		ssize_t r = recvfrom(fd, rbuf, n, 0, (struct sockaddr *)&ss, &sl);
		/* the kernel leaves no source address on a connected stream */
		if (r > 0 && sl != 0)
			CHECK(sl == 0, "recvfrom on a stream sets addrlen=0 (got %u)", sl);
		return r;
	}
	case 4: {
		char ctl[64];
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3,
				   .msg_control = ctl, .msg_controllen = sizeof ctl};
		ssize_t r = recvmsg(fd, &m, 0);
		if (r > 0 && (m.msg_flags != 0 || m.msg_controllen != 0))
			CHECK(0, "recvmsg: msg_flags=%d controllen=%zu, kernel says 0/0",
			      m.msg_flags, (size_t)m.msg_controllen);
		return r;
	}
	default: {
		struct mmsghdr mm[2];
		memset(mm, 0, sizeof mm);
		mm[0].msg_hdr.msg_iov = iov;
		mm[0].msg_hdr.msg_iovlen = 1;
		mm[1].msg_hdr.msg_iov = iov + 1;
		mm[1].msg_hdr.msg_iovlen = 2;
		int k = recvmmsg(fd, mm, 2, MSG_WAITFORONE, NULL);
		if (k < 0)
			return -1;
		ssize_t t;
		/* each message is one recvmsg on the stream: a short first one
		 * may be followed by a second; close the gap in p */
		t = mm[0].msg_len;
		if (k == 2) {
			memmove(p + t, p + a, mm[1].msg_len);
			t += mm[1].msg_len;
		}
		return t;
	}
	}
}

static void stream(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	size_t total = io_bytes();
	struct sha256 sw, sr;
	sha256_init(&sw);
	sha256_init(&sr);
	unsigned used_w = 0, used_r = 0;
	uint64_t off = 0;
	int i = 0;
	bool ok = true;
	while (ok && off < total) {
		size_t n = total - off < CH ? total - off : CH;
		io_fill(wbuf, off, n);
		sha256_update(&sw, wbuf, n);
		size_t done = 0;
		int v = i % 6;
		while (done < n) {
			if (done > 0)
				memmove(wbuf, wbuf + done, n - done), n -= done, done = 0;
			ssize_t r = put(fd, v, n);
			if (r <= 0) {
				ok = CHECK(r > 0, "%s of %zu bytes", wname[v], n);
				break;
			}
			used_w |= 1u << v;
			done = (size_t)r;
			if (done == n)
				break;
		}
		n = total - off < CH ? total - off : CH;
		size_t got = 0;
		static unsigned char in[CH];
		int rv = (i + i / 6) % 6;
		while (ok && got < n) {
			ssize_t r = get(fd, rv, in + got, n - got);
			if (r <= 0) {
				ok = CHECK(r > 0, "%s after %llu bytes returned %zd", rname[rv],
					   (unsigned long long)(off + got), r);
				break;
			}
			if (rv == 0 || rv == 2 || rv == 3)
				memcpy(in + got, rbuf, (size_t)r);
			used_r |= 1u << rv;
			got += (size_t)r;
		}
		sha256_update(&sr, in, got);
		off += n;
		i++;
	}
	unsigned char dw[32], dr[32];
	char hw[65], hr[65];
	sha256_final(&sw, dw);
	sha256_final(&sr, dr);
	io_hex(dw, hw);
	io_hex(dr, hr);
	CHECK(ok && memcmp(dw, dr, 32) == 0, "%zu bytes echoed, sha256 sent %s received %s",
	      total, hw, hr);
	CHECK(used_w == 0x3f && used_r == 0x3f,
	      "every send and receive call carried data (w %#x r %#x)", used_w, used_r);
	close(fd);
}

/* A destination address on a connected TCP socket: Linux ignores it and
 * sends on the connection (EISCONN is for datagram-style protocols); the
 * test asserts whatever the kernel does and was validated in plain mode. */
static void sendto_addr(void)
{
	int fd = io_connect(io_port(NULL));
	if (fd < 0)
		return;
	struct sockaddr_storage ss;
	unsigned len;
	io_addr(io_port(NULL), &ss, &len);
	char buf[16];
	ssize_t r = sendto(fd, "abc", 3, 0, (struct sockaddr *)&ss, len);
	CHECK(r == 3, "sendto(peer address) on a connected stream sends (%zd)", r);
	struct sockaddr_in other = {.sin_family = AF_INET, .sin_port = htons(9)};
	other.sin_addr.s_addr = htonl(0x7f000001);
	r = sendto(fd, "def", 3, 0, (struct sockaddr *)&other, sizeof other);
	CHECK(r == 3, "sendto(other address) on a connected stream ignores it (%zd)", r);
	struct iovec iov = {(void *)"ghi", 3};
	struct msghdr m = {.msg_name = &other, .msg_namelen = sizeof other,
			   .msg_iov = &iov, .msg_iovlen = 1};
	r = sendmsg(fd, &m, 0);
	CHECK(r == 3, "sendmsg(msg_name) on a connected stream ignores it (%zd)", r);
	bool got = io_read_all(fd, buf, 9);
	CHECK(got && memcmp(buf, "abcdefghi", 9) == 0, "all three went through the connection");
	/* zero-length calls */
	r = send(fd, "", 0, 0);
	CHECK(r == 0, "send of 0 bytes returns 0 (%zd)", r);
	close(fd);
}

static const struct io_case cases[] = {
	IO_CASE("stream", stream), IO_CASE("sendto-addr", sendto_addr),
	{0},
};

int main(int argc, char **argv)
{
	io_init(argc, argv);
	io_run(cases);
	return io_summary();
}
