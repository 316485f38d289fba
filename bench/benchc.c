/* benchc: the benchmark's load client, compiled by bench/run.py at bench time.
 *
 * It speaks FTPD/1 ("ftpd") and just enough FTP ("ftp": anonymous, EPSV,
 * RETR, STOR) so both servers are driven by the same C code and the client
 * never is the bottleneck. Each mode prints one JSON object on stdout.
 *
 *   benchc get      PROTO HOST PORT NAME
 *   benchc put      PROTO HOST PORT NAME FILE [SHA256]
 *   benchc sessions PROTO HOST PORT NAME COUNT INFLIGHT
 *   benchc burst    PROTO HOST PORT COUNT TIMEOUT_S
 *   benchc latency  PROTO HOST PORT COUNT
 *
 * Every loop is bounded by a count, and every wait by SO_RCVTIMEO/SO_SNDTIMEO
 * or a poll deadline, so a stuck server makes it fail, never hang.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_S 60
#define BIG (4 << 20)

typedef struct {
    int fd;
    char buf[8192];
    size_t len;
} conn_t;

static int is_ftp;
static const char *host;
static int port;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set_timeouts(int fd) {
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int dial(int to_port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(to_port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) return -1;
    set_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { close(fd); return -1; }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int send_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int sendf(conn_t *c, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    return send_all(c->fd, line, (size_t)n);
}

/* One line (LF removed, CR too) into out; -1 on EOF, timeout or overflow. */
static int read_line(conn_t *c, char *out, size_t cap) {
    for (;;) {
        char *lf = memchr(c->buf, '\n', c->len);
        if (lf) {
            size_t n = (size_t)(lf - c->buf);
            if (n && c->buf[n - 1] == '\r') n--;
            if (n >= cap) return -1;
            memcpy(out, c->buf, n);
            out[n] = 0;
            c->len -= (size_t)(lf + 1 - c->buf);
            memmove(c->buf, lf + 1, c->len);
            return 0;
        }
        if (c->len == sizeof c->buf) return -1;
        ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (got <= 0) return -1;
        c->len += (size_t)got;
    }
}

/* FTP: the code of the final line of a (possibly multi-line) reply. */
static int ftp_reply(conn_t *c) {
    char line[1024];
    for (int lines = 0; lines < 100; lines++) {
        if (read_line(c, line, sizeof line) < 0) return -1;
        if (strlen(line) >= 4 && line[3] == ' ') return atoi(line);
    }
    return -1;
}

static int ftpd_ok(conn_t *c, char *line, size_t cap) {
    if (read_line(c, line, cap) < 0) return -1;
    return strncmp(line, "OK", 2) == 0 && (line[2] == ' ' || line[2] == 0) ? 0 : -1;
}

static int greet(conn_t *c) {
    char line[1024];
    if (is_ftp) return ftp_reply(c) == 220 ? 0 : -1;
    return ftpd_ok(c, line, sizeof line);
}

static int open_session(conn_t *c) {
    c->len = 0;
    c->fd = dial(port);
    if (c->fd < 0) return -1;
    if (greet(c) < 0) return -1;
    if (!is_ftp) return 0;
    int code = sendf(c, "USER anonymous\r\n") < 0 ? -1 : ftp_reply(c);
    if (code == 331)    /* 230 at once where the server wants no password */
        code = sendf(c, "PASS bench@\r\n") < 0 ? -1 : ftp_reply(c);
    if (code != 230) return -1;
    return sendf(c, "TYPE I\r\n") < 0 || ftp_reply(c) != 200 ? -1 : 0;
}

static void close_session(conn_t *c) {
    char line[1024];
    if (is_ftp) {
        if (sendf(c, "QUIT\r\n") == 0) ftp_reply(c);
    } else if (sendf(c, "Q\n") == 0) {
        read_line(c, line, sizeof line);
    }
    close(c->fd);
}

/* FTP: EPSV, connect the data channel, send the command, expect 150/125. */
static int ftp_data(conn_t *c, const char *verb, const char *name) {
    char line[1024];
    if (sendf(c, "EPSV\r\n") < 0 || read_line(c, line, sizeof line) < 0) return -1;
    char *bar = strstr(line, "(|||");
    if (strncmp(line, "229", 3) != 0 || !bar) return -1;
    int data = dial(atoi(bar + 4));
    if (data < 0) return -1;
    int code = sendf(c, "%s %s\r\n", verb, name) < 0 ? -1 : ftp_reply(c);
    if (code != 150 && code != 125) { close(data); return -1; }
    return data;
}

static long long drain(int fd, char *buf, long long want) {
    long long got = 0;
    while (want < 0 || got < want) {
        size_t ask = want < 0 || want - got > BIG ? BIG : (size_t)(want - got);
        ssize_t n = recv(fd, buf, ask, 0);
        if (n <= 0) break;
        got += n;
    }
    return got;
}

/* Download NAME once on an open session; the byte count, or -1. */
static long long get_file(conn_t *c, const char *name, char *buf) {
    char line[1024];
    if (is_ftp) {
        int data = ftp_data(c, "RETR", name);
        if (data < 0) return -1;
        long long got = drain(data, buf, -1);
        close(data);
        return ftp_reply(c) == 226 ? got : -1;
    }
    if (sendf(c, "G %s\n", name) < 0 || ftpd_ok(c, line, sizeof line) < 0) return -1;
    long long size = atoll(line + 3), got = (long long)c->len;
    if (got > size) return -1;   /* nothing was pipelined, so nothing may follow */
    c->len = 0;
    got += drain(c->fd, buf, size - got);
    return got == size ? got : -1;
}

static long long put_file(conn_t *c, const char *name, const char *path, const char *sha) {
    char line[1024];
    int file = open(path, O_RDONLY | O_CLOEXEC), data = c->fd;
    struct stat st;
    if (file < 0 || fstat(file, &st) < 0) return -1;
    if (is_ftp) {
        data = ftp_data(c, "STOR", name);
    } else if (sendf(c, "P %s %lld%s%s\n", name, (long long)st.st_size, sha ? " " : "",
                     sha ? sha : "") < 0 || ftpd_ok(c, line, sizeof line) < 0) {
        data = -1;
    }
    off_t off = 0;
    while (data >= 0 && off < st.st_size) {
        ssize_t n = sendfile(data, file, &off, (size_t)(st.st_size - off));
        if (n <= 0) break;
    }
    close(file);
    if (data < 0 || off != st.st_size) return -1;
    if (is_ftp) {
        close(data);
        return ftp_reply(c) == 226 ? off : -1;
    }
    return ftpd_ok(c, line, sizeof line) < 0 ? -1 : off;
}

static int cmd_transfer(int put, char **argv, int argc) {
    conn_t c;
    char *buf = malloc(BIG);
    double t0 = now();
    long long n = -1;
    if (open_session(&c) == 0) {
        n = put ? put_file(&c, argv[0], argv[1], argc > 2 ? argv[2] : NULL)
                : get_file(&c, argv[0], buf);
        close_session(&c);
    }
    printf("{\"seconds\": %.6f, \"bytes\": %lld, \"errors\": %d}\n", now() - t0, n, n < 0);
    return n < 0;
}

/* -- sessions: COUNT sessions, INFLIGHT at a time, each connect+get+quit -- */

static const char *s_name;
static int s_count, s_next, s_errors;
static long long s_expected = -1;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;

static void *session_worker(void *arg) {
    char *buf = malloc(BIG);
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&s_lock);
        int mine = s_next < s_count ? s_next++ : -1;
        pthread_mutex_unlock(&s_lock);
        if (mine < 0) break;
        conn_t *c = malloc(sizeof *c);
        long long n = open_session(c) == 0 ? get_file(c, s_name, buf) : -1;
        if (c->fd >= 0 && n >= 0) close_session(c); else if (c->fd >= 0) close(c->fd);
        pthread_mutex_lock(&s_lock);
        if (n < 0 || (s_expected >= 0 && n != s_expected)) s_errors++;
        if (s_expected < 0 && n >= 0) s_expected = n;
        pthread_mutex_unlock(&s_lock);
        free(c);
    }
    free(buf);
    return NULL;
}

static int cmd_sessions(char **argv) {
    s_name = argv[0];
    s_count = atoi(argv[1]);
    int inflight = atoi(argv[2]);
    if (inflight < 1 || inflight > 1024) return 2;
    pthread_t threads[1024];
    double t0 = now();
    for (int i = 0; i < inflight; i++) pthread_create(&threads[i], NULL, session_worker, NULL);
    for (int i = 0; i < inflight; i++) pthread_join(threads[i], NULL);
    double took = now() - t0;
    printf("{\"seconds\": %.6f, \"sessions\": %d, \"errors\": %d, \"per_second\": %.1f}\n",
           took, s_count, s_errors, s_count / took);
    return s_errors != 0;
}

/* -- burst: COUNT non-blocking connects at once, then wait for greetings -- */

static int raise_nofile(int need) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)need) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)need ? rl.rlim_max : (rlim_t)need;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur >= (rlim_t)need ? 0 : -1;
}

static int start_connect(void) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1 served, 0 refused by the server, -1 broken; only the first byte matters. */
static int judge_greeting(int fd) {
    char first;
    ssize_t n = recv(fd, &first, 1, MSG_PEEK);
    if (n <= 0) return -1;
    if (is_ftp) return first == '2' ? 1 : 0;
    return first == 'O' ? 1 : 0;
}

static int cmd_burst(char **argv) {
    int count = atoi(argv[0]);
    double limit = atof(argv[1]);
    if (count < 1 || raise_nofile(count + 64) < 0) return 2;
    struct pollfd *fds = calloc((size_t)count, sizeof *fds);
    int served = 0, refused = 0, errors = 0, pending = 0;
    double t0 = now();
    for (int i = 0; i < count; i++) {
        fds[i].fd = start_connect();
        fds[i].events = POLLIN;
        if (fds[i].fd < 0) errors++; else pending++;
    }
    while (pending && now() - t0 < limit) {
        int left_ms = (int)((limit - (now() - t0)) * 1000) + 1;
        if (poll(fds, (nfds_t)count, left_ms) <= 0) continue;
        for (int i = 0; i < count; i++) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            int verdict = judge_greeting(fds[i].fd);
            served += verdict == 1;
            refused += verdict == 0;
            errors += verdict < 0;
            fds[i].events = 0;            /* judged: keep it open, stop watching */
            fds[i].fd = -fds[i].fd - 1;   /* poll ignores negative fds */
            pending--;
        }
    }
    double took = now() - t0;
    for (int i = 0; i < count; i++) {
        int fd = fds[i].fd < -1 ? -fds[i].fd - 1 : fds[i].fd;
        if (fd >= 0) {
            send(fd, is_ftp ? "QUIT\r\n" : "Q\n", is_ftp ? 6 : 2, MSG_NOSIGNAL);
            close(fd);
        }
    }
    printf("{\"seconds\": %.6f, \"connects\": %d, \"served\": %d, \"refused\": %d, "
           "\"errors\": %d, \"timed_out\": %d}\n", took, count, served, refused, errors, pending);
    return served != count;
}

/* -- latency: COUNT sequential connects, time from connect() to greeting -- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_latency(char **argv) {
    int count = atoi(argv[0]), errors = 0, ok = 0;
    if (count < 1) return 2;
    double *ms = calloc((size_t)count, sizeof *ms);
    for (int i = 0; i < count; i++) {
        conn_t c = {.len = 0};
        double t0 = now();
        c.fd = dial(port);
        if (c.fd < 0 || greet(&c) < 0) {
            errors++;
            if (c.fd >= 0) close(c.fd);
            continue;
        }
        ms[ok++] = (now() - t0) * 1000;
        send(c.fd, is_ftp ? "QUIT\r\n" : "Q\n", is_ftp ? 6 : 2, MSG_NOSIGNAL);
        close(c.fd);
    }
    qsort(ms, (size_t)ok, sizeof *ms, cmp_double);
    double p50 = ok ? ms[(ok - 1) / 2] : -1, p99 = ok ? ms[(int)((ok - 1) * 0.99)] : -1;
    printf("{\"p50_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f, \"count\": %d, "
           "\"errors\": %d}\n", p50, p99, ok ? ms[ok - 1] : -1, ok, errors);
    return errors != 0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: benchc MODE PROTO HOST PORT ARGS... (see the source)\n");
        return 2;
    }
    const char *mode = argv[1];
    is_ftp = strcmp(argv[2], "ftp") == 0;
    host = argv[3];
    port = atoi(argv[4]);
    char **rest = argv + 5;
    int nrest = argc - 5;
    if (!strcmp(mode, "get")) return cmd_transfer(0, rest, nrest);
    if (!strcmp(mode, "put") && nrest >= 2) return cmd_transfer(1, rest, nrest);
    if (!strcmp(mode, "sessions") && nrest >= 3) return cmd_sessions(rest);
    if (!strcmp(mode, "burst") && nrest >= 2) return cmd_burst(rest);
    if (!strcmp(mode, "latency")) return cmd_latency(rest);
    fprintf(stderr, "benchc: bad mode or arguments\n");
    return 2;
}
