/*
 * pyro-agent: the guest side of pyro's microVM engines (see guest/README.md).
 *
 * Runs as PID 1 of the guest (after the initramfs switch_root) and serves one host client
 * at a time over a virtio-serial port, with a framed, binary-safe protocol:
 *   exec (argv, cwd, env, timeout that kills the process group, optional stdin),
 *   separate capped stdout/stderr, exit status, put-archive (tar stream into a dir),
 *   hello (session start: nonce, wall clock, entropy) as the readiness check.
 *
 * Built static: cc -static -O2 -o dist/guest/pyro-agent guest/agent.c
 * Test mode: `pyro-agent --fd N` serves on an inherited stream socket and exits on EOF.
 * Firecracker: `pyro-agent --vsock PORT` listens on AF_VSOCK and serves one connection at a time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AGENT_VERSION "pyro-agent 1"
#define PORT_NAME "org.pyro.agent"

#define MAGIC 0x50595231u /* "PYR1" */
#define HDR 12
#define MAX_PAYLOAD (1u << 20)

/* host -> guest */
#define T_HELLO 0x01
#define T_EXEC 0x02
#define T_STDIN 0x03
#define T_PUT 0x04
#define T_KILL 0x05
/* guest -> host */
#define T_HELLO_OK 0x81
#define T_STDOUT 0x82
#define T_STDERR 0x83
#define T_EXIT 0x84
#define T_ERROR 0x85

#define EXEC_F_STDIN 1u
#define EXIT_F_TIMED_OUT 1u
#define EXIT_F_STDOUT_TRUNC 2u
#define EXIT_F_STDERR_TRUNC 4u
#define EXIT_F_KILLED 8u

#define TX_CAP (512u * 1024u)
#define CHUNK (32u * 1024u)
#define DRAIN_MS 250
#define HUP_RETRY_MS 100

extern char **environ;

static int port_fd = -1;
static int test_mode;   /* --fd: EOF ends the agent */
static int listen_fd = -1; /* --vsock: a connection ends, the next one is accepted */
static int vm_mode;     /* PID 1 in a VM: set clock, add entropy */
static int host_gone;   /* virtio-serial: no host connected */
static int64_t hup_retry_at;
/* One-shot VMs (HELLO flag 1): when the host goes away and does not come back within
 * ORPHAN_MS, the guest reboots, which ends QEMU (-no-reboot): a killed `pyro run` leaves no VM. */
#define HELLO_F_ONESHOT 1u
#define ORPHAN_MS 2000
static int oneshot;
static int64_t orphan_reboot_at;

static uint8_t rx[HDR + MAX_PAYLOAD + CHUNK];
static size_t rx_len;
static uint8_t tx[TX_CAP];
static size_t tx_len;
static int session;
static uint32_t session_gen; /* bumped by every hello: a job's output goes only to its own client */

struct job {
  int active;
  pid_t pid;
  int out_fd, err_fd, in_fd;
  uint8_t *in_buf;
  size_t in_len, in_off;
  int in_eof; /* host sent end of stdin */
  uint32_t max_out;
  uint64_t out_n, err_n;
  int out_trunc, err_trunc;
  int64_t started, deadline, drain_deadline;
  int exited, status, timed_out, killed;
  uint32_t gen;
};
static struct job job;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logmsg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("pyro-agent: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}
static uint32_t get32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Queues one frame; returns 0 when the transmit buffer has no room (caller retries later). */
static int send_frame(uint8_t type, const void *payload, uint32_t len) {
  if (tx_len + HDR + len > TX_CAP) return 0;
  uint8_t *h = tx + tx_len;
  put32(h, MAGIC);
  h[4] = type;
  h[5] = h[6] = h[7] = 0;
  put32(h + 8, len);
  if (len) memcpy(h + HDR, payload, len);
  tx_len += HDR + len;
  return 1;
}

static void send_error(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  send_frame(T_ERROR, msg, (uint32_t)n);
}

/* ---- payload reader (bounds-checked) ---- */
struct rd {
  const uint8_t *p;
  size_t n, off;
  int bad;
};
static uint32_t rd32(struct rd *r) {
  if (r->off + 4 > r->n) {
    r->bad = 1;
    return 0;
  }
  uint32_t v = get32(r->p + r->off);
  r->off += 4;
  return v;
}
/* A length-prefixed string, copied and NUL-terminated; embedded NULs are refused. */
static char *rdstr(struct rd *r) {
  uint32_t len = rd32(r);
  if (r->bad || r->off + len > r->n || memchr(r->p + r->off, 0, len)) {
    r->bad = 1;
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    r->bad = 1;
    return NULL;
  }
  memcpy(s, r->p + r->off, len);
  s[len] = 0;
  r->off += len;
  return s;
}
static void freev(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}
static char **rdvec(struct rd *r) {
  uint32_t n = rd32(r);
  if (r->bad || n > 65536) {
    r->bad = 1;
    return NULL;
  }
  char **v = calloc(n + 1, sizeof *v);
  if (!v) {
    r->bad = 1;
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    v[i] = rdstr(r);
    if (r->bad) {
      freev(v);
      return NULL;
    }
  }
  return v;
}

/* ---- jobs ---- */
static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void kill_job(int sig) {
  if (!job.active || job.exited) return;
  kill(-job.pid, sig);
  kill(job.pid, sig);
}

static void drop_stdin(void) {
  close_fd(&job.in_fd);
  free(job.in_buf);
  job.in_buf = NULL;
  job.in_len = job.in_off = 0;
}

static void reset_job(void) {
  close_fd(&job.out_fd);
  close_fd(&job.err_fd);
  drop_stdin();
  memset(&job, 0, sizeof job);
  job.out_fd = job.err_fd = job.in_fd = -1;
}

static int mkdirs(const char *path) {
  char buf[PATH_MAX];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
  struct stat st;
  if (stat(buf, &st) < 0) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

static const char *const DEFAULT_ENV[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "TERM=dumb",
    NULL,
};

/* Default environment overlaid with the request's KEY=VALUE entries. */
static char **merge_env(char **extra) {
  size_t n = 0, m = 0;
  while (DEFAULT_ENV[n]) n++;
  while (extra && extra[m]) m++;
  char **env = calloc(n + m + 1, sizeof *env);
  if (!env) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const char *eq = strchr(DEFAULT_ENV[i], '=');
    size_t kl = (size_t)(eq - DEFAULT_ENV[i]) + 1;
    int overridden = 0;
    for (size_t j = 0; j < m; j++)
      if (strncmp(extra[j], DEFAULT_ENV[i], kl) == 0) overridden = 1;
    if (!overridden) env[k++] = (char *)DEFAULT_ENV[i];
  }
  for (size_t j = 0; j < m; j++)
    if (strchr(extra[j], '=')) env[k++] = extra[j];
  env[k] = NULL;
  return env;
}

/* Starts argv as the leader of a new session (its own process group). */
static int start_job(char **argv, char **envv, const char *cwd, uint32_t timeout_ms, uint32_t max_out, int with_stdin) {
  int out[2], err[2], in[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) < 0) return -1;
  if (pipe2(err, O_CLOEXEC) < 0) {
    close(out[0]);
    close(out[1]);
    return -1;
  }
  if (with_stdin && pipe2(in, O_CLOEXEC) < 0) {
    close(out[0]);
    close(out[1]);
    close(err[0]);
    close(err[1]);
    return -1;
  }
  char **env = merge_env(envv);
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    int nullfd = open("/dev/null", O_RDWR);
    dup2(with_stdin ? in[0] : nullfd, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    if (nullfd > 2) close(nullfd);
    if (cwd && *cwd && chdir(cwd) < 0) {
      dprintf(2, "pyro-agent: cannot enter %s: %s\n", cwd, strerror(errno));
      _exit(126);
    }
    if (env) environ = env;
    execvp(argv[0], argv);
    int e = errno;
    dprintf(2, "pyro-agent: %s: %s\n", argv[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
  }
  free(env);
  close(out[1]);
  close(err[1]);
  if (with_stdin) close(in[0]);
  if (pid < 0) {
    close(out[0]);
    close(err[0]);
    if (with_stdin) close(in[1]);
    return -1;
  }
  reset_job();
  job.active = 1;
  job.pid = pid;
  job.out_fd = out[0];
  job.err_fd = err[0];
  job.in_fd = with_stdin ? in[1] : -1;
  if (job.in_fd >= 0) fcntl(job.in_fd, F_SETFL, O_NONBLOCK);
  fcntl(job.out_fd, F_SETFL, O_NONBLOCK);
  fcntl(job.err_fd, F_SETFL, O_NONBLOCK);
  job.max_out = max_out;
  job.gen = session_gen;
  job.started = now_ms();
  job.deadline = timeout_ms ? job.started + timeout_ms : 0;
  return 0;
}

static void finish_job(void) {
  uint8_t p[16];
  int32_t code, sig = 0;
  if (WIFEXITED(job.status)) {
    code = WEXITSTATUS(job.status);
  } else if (WIFSIGNALED(job.status)) {
    sig = WTERMSIG(job.status);
    code = 128 + sig;
  } else {
    code = 255;
  }
  uint32_t flags = (job.timed_out ? EXIT_F_TIMED_OUT : 0) | (job.out_trunc ? EXIT_F_STDOUT_TRUNC : 0) |
                   (job.err_trunc ? EXIT_F_STDERR_TRUNC : 0) | (job.killed ? EXIT_F_KILLED : 0);
  put32(p, (uint32_t)code);
  put32(p + 4, (uint32_t)sig);
  put32(p + 8, flags);
  put32(p + 12, (uint32_t)(now_ms() - job.started));
  if (!send_frame(T_EXIT, p, sizeof p)) return; /* retried when tx drains */
  reset_job();
}

/* Forwards what a pipe has, up to the cap; beyond the cap output is read and dropped. */
static void pump_output(int *fd, uint8_t type, uint64_t *count, int *trunc) {
  uint8_t buf[CHUNK];
  while (*fd >= 0 && tx_len + HDR + CHUNK <= TX_CAP) {
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      close_fd(fd);
      return;
    }
    uint64_t room = *count < job.max_out ? job.max_out - *count : 0;
    size_t fwd = (uint64_t)n < room ? (size_t)n : (size_t)room;
    if (fwd < (size_t)n) *trunc = 1;
    if (fwd) send_frame(type, buf, (uint32_t)fwd);
    *count += (uint64_t)n;
  }
}

static void pump_stdin(void) {
  while (job.in_fd >= 0 && job.in_off < job.in_len) {
    ssize_t n = write(job.in_fd, job.in_buf + job.in_off, job.in_len - job.in_off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) { /* the child closed its stdin: the rest is dropped */
      drop_stdin();
      return;
    }
    job.in_off += (size_t)n;
  }
  if (job.in_off >= job.in_len) {
    free(job.in_buf);
    job.in_buf = NULL;
    job.in_len = job.in_off = 0;
    if (job.in_eof) close_fd(&job.in_fd);
  }
}

/* ---- requests ---- */
static void handle_hello(const uint8_t *p, uint32_t n) {
  if (n < 24) return;
  if (job.active) { /* a new client means the previous one is gone */
    kill_job(SIGKILL);
    job.killed = 1;
  }
  tx_len = 0;
  session = 1;
  session_gen++;
  orphan_reboot_at = 0;
  if (vm_mode) {
    uint32_t elen0 = get32(p + 20);
    if (elen0 <= 512 && 24 + elen0 + 4 <= n && (get32(p + 24 + elen0) & HELLO_F_ONESHOT)) oneshot = 1;
    int64_t sec = ((int64_t)get32(p + 8) << 32) | get32(p + 12);
    struct timespec ts = {.tv_sec = sec, .tv_nsec = get32(p + 16) % 1000000000u};
    if (sec > 0) clock_settime(CLOCK_REALTIME, &ts);
    uint32_t elen = get32(p + 20);
    if (elen > 0 && elen <= 512 && 24 + elen <= n) {
      struct {
        int count, size;
        unsigned char buf[512];
      } ent;
      ent.count = (int)elen * 8;
      ent.size = (int)elen;
      memcpy(ent.buf, p + 24, elen);
      int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        if (ioctl(fd, RNDADDENTROPY, &ent) < 0 && write(fd, ent.buf, elen) < 0) { /* best effort */
        }
        /* VMs restored from one snapshot share the RNG state they were saved with: reseed now. */
        ioctl(fd, RNDRESEEDCRNG);
        close(fd);
      }
    }
  }
  uint8_t out[8 + sizeof AGENT_VERSION];
  memcpy(out, p, 8);
  memcpy(out + 8, AGENT_VERSION, sizeof AGENT_VERSION - 1);
  send_frame(T_HELLO_OK, out, 8 + sizeof AGENT_VERSION - 1);
}

static void handle_exec(const uint8_t *p, uint32_t n) {
  if (job.active) {
    send_error("busy: a command is already running in this session");
    return;
  }
  struct rd r = {p, n, 0, 0};
  uint32_t timeout_ms = rd32(&r), max_out = rd32(&r), flags = rd32(&r);
  char **argv = rdvec(&r);
  char **envv = r.bad ? NULL : rdvec(&r);
  char *cwd = r.bad ? NULL : rdstr(&r);
  if (r.bad || !argv || !argv[0]) {
    send_error("malformed exec request");
  } else if (start_job(argv, envv, cwd, timeout_ms, max_out, flags & EXEC_F_STDIN) < 0) {
    send_error("cannot start %s: %s", argv[0], strerror(errno));
  }
  freev(argv);
  freev(envv);
  free(cwd);
}

static void handle_put(const uint8_t *p, uint32_t n) {
  if (job.active) {
    send_error("busy: a command is already running in this session");
    return;
  }
  struct rd r = {p, n, 0, 0};
  uint32_t timeout_ms = rd32(&r);
  char *dest = rdstr(&r);
  if (r.bad || !dest || dest[0] != '/') {
    send_error("malformed put-archive request");
  } else if (mkdirs(dest) < 0) {
    send_error("cannot create %s: %s", dest, strerror(errno));
  } else {
    /* The guest's own tar unpacks, so the archive is interpreted inside the VM only. */
    char *gnu[] = {"tar", "-x", "--no-same-owner", "-C", dest, "-f", "-", NULL};
    char *bb[] = {"/run/pyro/busybox", "tar", "-x", "-o", "-C", dest, "-f", "-", NULL};
    char **argv = access("/bin/tar", X_OK) == 0 || access("/usr/bin/tar", X_OK) == 0 ? gnu : bb;
    if (start_job(argv, NULL, "/", timeout_ms, 64 * 1024, 1) < 0) send_error("cannot start tar: %s", strerror(errno));
  }
  free(dest);
}

static void handle_stdin(const uint8_t *p, uint32_t n) {
  if (!job.active || job.exited || job.in_fd < 0) return; /* nobody reads it any more */
  if (n == 0) {
    job.in_eof = 1;
    if (!job.in_buf) close_fd(&job.in_fd);
    return;
  }
  job.in_buf = malloc(n);
  if (!job.in_buf) {
    drop_stdin();
    return;
  }
  memcpy(job.in_buf, p, n);
  job.in_len = n;
  job.in_off = 0;
  pump_stdin();
}

static void handle_frame(uint8_t type, const uint8_t *p, uint32_t n) {
  if (type == T_HELLO) {
    handle_hello(p, n);
    return;
  }
  if (!session) return; /* stale bytes from a client that is gone */
  switch (type) {
  case T_EXEC:
    handle_exec(p, n);
    break;
  case T_PUT:
    handle_put(p, n);
    break;
  case T_STDIN:
    handle_stdin(p, n);
    break;
  case T_KILL:
    if (job.active && !job.exited) {
      job.killed = 1;
      kill_job(SIGKILL);
    }
    break;
  default:
    send_error("unknown request type %u", type);
  }
}

/* Parses complete frames out of rx; resynchronises on the magic after garbage. */
static void parse_rx(void) {
  size_t off = 0;
  while (rx_len - off >= HDR && !job.in_buf) {
    uint8_t *h = rx + off;
    uint32_t len = get32(h + 8);
    if (get32(h) != MAGIC || len > MAX_PAYLOAD) {
      off++;
      continue;
    }
    if (rx_len - off < HDR + len) break;
    handle_frame(h[4], h + HDR, len);
    off += HDR + len;
  }
  memmove(rx, rx + off, rx_len - off);
  rx_len -= off;
}

static void end_session(void) {
  session = 0;
  rx_len = 0;
  tx_len = 0;
  if (job.active && !job.exited) {
    job.killed = 1;
    kill_job(SIGKILL);
  }
  drop_stdin();
}

static void on_port_hup(void) {
  if (test_mode) exit(0);
  if (oneshot && vm_mode && session) orphan_reboot_at = now_ms() + ORPHAN_MS;
  if (listen_fd >= 0) {
    if (session) end_session();
    close(port_fd);
    port_fd = -1;
    return;
  }
  if (session) end_session();
  host_gone = 1;
  hup_retry_at = now_ms() + HUP_RETRY_MS;
}

static void read_port(void) {
  for (;;) {
    if (job.in_buf) return; /* backpressure: the child has not taken the last chunk yet */
    size_t room = sizeof rx - rx_len;
    if (room == 0) {
      rx_len = 0; /* cannot happen with MAX_PAYLOAD framing; drop garbage */
      room = sizeof rx;
    }
    ssize_t n = read(port_fd, rx + rx_len, room > CHUNK ? CHUNK : room);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      on_port_hup();
      return;
    }
    host_gone = 0;
    rx_len += (size_t)n;
    parse_rx();
  }
}

static void flush_tx(void) {
  while (tx_len > 0 && port_fd >= 0) {
    ssize_t n = write(port_fd, tx, tx_len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) {
      on_port_hup();
      return;
    }
    memmove(tx, tx + n, tx_len - (size_t)n);
    tx_len -= (size_t)n;
  }
}

static void reap(void) {
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p <= 0) return;
    if (job.active && p == job.pid && !job.exited) {
      job.exited = 1;
      job.status = st;
      job.drain_deadline = now_ms() + DRAIN_MS;
      drop_stdin();
    }
  }
}

/* ---- port discovery ---- */
static int open_port(void) {
  const char *direct = "/dev/virtio-ports/" PORT_NAME;
  for (int tries = 0; tries < 300; tries++) {
    int fd = open(direct, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) return fd;
    DIR *d = opendir("/sys/class/virtio-ports");
    if (d) {
      struct dirent *e;
      while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], name[128] = {0};
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f) continue;
        if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
        fclose(f);
        if (strcmp(name, PORT_NAME) != 0) continue;
        snprintf(path, sizeof path, "/dev/%s", e->d_name);
        fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
          closedir(d);
          return fd;
        }
      }
      closedir(d);
    }
    usleep(20000);
  }
  return -1;
}

int main(int argc, char **argv) {
  vm_mode = getpid() == 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--fd") == 0 && i + 1 < argc) {
      port_fd = atoi(argv[++i]);
      test_mode = 1;
    } else if (strcmp(argv[i], "--vsock") == 0 && i + 1 < argc) {
      struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = (unsigned)atoi(argv[++i])};
      listen_fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listen_fd, 4) < 0) {
        logmsg("cannot listen on vsock port %u: %s", addr.svm_port, strerror(errno));
        return 1;
      }
    } else if (strcmp(argv[i], "--vm") == 0) {
      vm_mode = 1;
    } else if (strcmp(argv[i], "--version") == 0) {
      puts(AGENT_VERSION);
      return 0;
    }
  }
  setvbuf(stderr, NULL, _IONBF, 0);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGIO);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  reset_job();

  if (getpid() == 1) mkdirs("/workspace");
  if (listen_fd >= 0) {
    /* connections are accepted in the loop */
  } else if (port_fd < 0) {
    port_fd = open_port();
    if (port_fd < 0) {
      logmsg("no virtio-serial port named %s", PORT_NAME);
      return 1;
    }
    /* SIGIO arrives when a host client connects, so a disconnected port is not polled in a loop. */
    fcntl(port_fd, F_SETOWN, getpid());
    fcntl(port_fd, F_SETFL, fcntl(port_fd, F_GETFL) | O_ASYNC | O_NONBLOCK);
  } else {
    fcntl(port_fd, F_SETFD, FD_CLOEXEC);
    fcntl(port_fd, F_SETFL, fcntl(port_fd, F_GETFL) | O_NONBLOCK);
  }
  logmsg("ready (%s)", AGENT_VERSION);

  for (;;) {
    struct pollfd fds[6];
    int nf = 0, i_sig = -1, i_port = -1, i_out = -1, i_err = -1, i_in = -1, i_listen = -1;
    int64_t now = now_ms();
    int timeout = -1;
#define WAKE_AT(t)                                                   \
  do {                                                               \
    int64_t d_ = (t) - now;                                          \
    if (d_ < 0) d_ = 0;                                              \
    if (timeout < 0 || d_ < timeout) timeout = (int)d_;              \
  } while (0)

    fds[nf] = (struct pollfd){sfd, POLLIN, 0};
    i_sig = nf++;
    if (port_fd < 0) {
      fds[nf] = (struct pollfd){listen_fd, POLLIN, 0};
      i_listen = nf++;
    } else if (!host_gone || now >= hup_retry_at) {
      short ev = (job.in_buf ? 0 : POLLIN) | (tx_len ? POLLOUT : 0);
      fds[nf] = (struct pollfd){port_fd, ev, 0};
      i_port = nf++;
    } else {
      WAKE_AT(hup_retry_at);
    }
    int room = tx_len + HDR + CHUNK <= TX_CAP;
    if (job.out_fd >= 0 && room) {
      fds[nf] = (struct pollfd){job.out_fd, POLLIN, 0};
      i_out = nf++;
    }
    if (job.err_fd >= 0 && room) {
      fds[nf] = (struct pollfd){job.err_fd, POLLIN, 0};
      i_err = nf++;
    }
    if (job.in_fd >= 0 && job.in_buf) {
      fds[nf] = (struct pollfd){job.in_fd, POLLOUT, 0};
      i_in = nf++;
    }
    if (job.active && !job.exited && job.deadline) WAKE_AT(job.deadline);
    if (orphan_reboot_at) WAKE_AT(orphan_reboot_at);
    if (job.active && job.exited && (job.out_fd >= 0 || job.err_fd >= 0)) WAKE_AT(job.drain_deadline);

    int r = poll(fds, nf, timeout);
    if (r < 0 && errno != EINTR) {
      logmsg("poll: %s", strerror(errno));
      usleep(10000);
      continue;
    }
    now = now_ms();
    if (r > 0 && (fds[i_sig].revents & POLLIN)) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGIO) hup_retry_at = 0;
      }
      reap();
    }
    if (i_listen >= 0 && (fds[i_listen].revents & POLLIN)) {
      port_fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      host_gone = 0;
    }
    if (i_port >= 0 && r > 0) {
      short re = fds[i_port].revents;
      if (re & POLLIN) read_port();
      else if (re & (POLLHUP | POLLERR)) on_port_hup();
      if (!host_gone && (re & POLLOUT)) flush_tx();
    }
    if (i_out >= 0 && fds[i_out].revents) pump_output(&job.out_fd, T_STDOUT, &job.out_n, &job.out_trunc);
    if (i_err >= 0 && fds[i_err].revents) pump_output(&job.err_fd, T_STDERR, &job.err_n, &job.err_trunc);
    if (i_in >= 0 && fds[i_in].revents) pump_stdin();
    if (job.in_buf == NULL && rx_len >= HDR) parse_rx(); /* frames held back by stdin backpressure */

    if (orphan_reboot_at && now >= orphan_reboot_at && !session) {
      logmsg("one-shot VM lost its host; shutting down");
      sync();
      reboot(RB_AUTOBOOT);
    }
    if (job.active && !job.exited && job.deadline && now >= job.deadline && !job.timed_out) {
      job.timed_out = 1;
      kill_job(SIGKILL);
    }
    if (job.active && job.exited) {
      int drained = job.out_fd < 0 && job.err_fd < 0;
      if (!drained && now >= job.drain_deadline) {
        /* Background processes still hold the pipes: report what we have. */
        pump_output(&job.out_fd, T_STDOUT, &job.out_n, &job.out_trunc);
        pump_output(&job.err_fd, T_STDERR, &job.err_n, &job.err_trunc);
        close_fd(&job.out_fd);
        close_fd(&job.err_fd);
        drained = 1;
      }
      if (drained) {
        if (session && job.gen == session_gen) finish_job();
        else reset_job();
      }
    }
    if (tx_len && !host_gone && port_fd >= 0) flush_tx();
  }
}
