/*
 * pyro-sandbox-init: the in-sandbox helper of pyro's gVisor engine, bind-mounted read-only
 * into every sandbox at /.pyro/init (see docs/architecture.md, "Deadlines").
 *
 * Why it exists: a command's deadline must hold even when the pyro process that started it
 * is killed (kill -9, a closed terminal). The host side cannot promise that, so the deadline
 * travels into the sandbox with the command:
 *
 *   init run --deadline-ms N -- PROG ARGS...
 *       Starts PROG as the leader of a new session and waits for it. At the deadline (or on
 *       SIGTERM/SIGHUP/SIGINT) it kills PROG's whole process group. Exits with PROG's status
 *       (128+signal when PROG was killed by a signal). A program that cannot be started is
 *       reported the way a shell does: exit 127 (not found) or 126 (not executable).
 *       Used for `runsc exec` in workspaces and as the container's init for one-shot runs,
 *       where, as PID 1, it also reaps orphans so the sandbox ends the moment PROG does.
 *
 *   init idle [--expires-file F [--expires-file-present]] [--listen SOCK]
 *       The init of a persistent sandbox: reaps orphaned processes (so `runsc delete` does not
 *       wait on zombies) and, when F holds a Unix time in seconds that has passed, ends the
 *       sandbox (the TTL holds with no pyro process alive). F is re-read every few seconds.
 *       --expires-file-present: F was written before the sandbox started, so F missing at
 *       any read (not only after one that found it) means its state dir was removed.
 *       With --listen it also serves commands on the Unix socket SOCK (created on the host
 *       through runsc's --host-uds=create, in a directory only root can enter): the host's
 *       exec without a `runsc exec` (a Go program starting per command, ~25 ms here). One
 *       connection per command, frames of [type byte][u32 LE length][bytes]:
 *         host -> init: A arg (repeated), E NAME=VALUE (repeated, the whole environment),
 *                       C cwd, U "UID GID", T deadline ms, I stdin bytes, G go (last)
 *         init -> host: 1 stdout bytes, 2 stderr bytes, X exit code (decimal text), last;
 *                       P (empty) once the sandbox is at its process limit (--pids-limit)
 *         A request that is only H (a ping) is answered V with the init's version.
 *       With --pids-limit N every command gets RLIMIT_NPROC N (see command_limits); a command
 *       that ran into it has its whole session killed when it ends (a fork bomb's leftovers).
 *       The command leads a session of its own, as with `run`; its group is killed at the
 *       deadline or when the host closes the connection first (a cancelled or killed caller),
 *       never when it merely exits (a job it left in the background keeps running).
 *
 *   init supervise --dir D [--pty COLS ROWS] [--ring-bytes N] -- PROG [ARGS...]
 *       A shell (with --pty) or a service (without): started detached (`runsc exec --detach`),
 *       it outlives every pyro process. D (under /.pyro/run, a host directory pyro reads and
 *       writes directly, never /workspace) is the whole interface, plain files, so no runsc
 *       call is needed to talk to it:
 *         in    bytes for PROG's terminal, appended by the host; read from a kept offset
 *         ctl   lines appended by the host: "signal N", "resize COLS ROWS", "stop GRACE_MS"
 *         out/  PROG's output (terminal, or stdout+stderr) as segment files named by the
 *               byte offset they start at; the oldest are deleted past N bytes (a ring)
 *         pid   PROG's pid, written once it runs;  exit  its exit code, written last
 *       PROG leads its own session; signals and stop go to its whole process group.
 *
 *       With --daemon (QEMU, where no runsc keeps it) it first leaves the caller's session.
 *       With --redact-dir S every secret value in S (a file per secret, named by it) is
 *       replaced by "[REDACTED:NAME]" before it reaches out/ (read before PROG starts).
 *
 *   init files DIR read CURSOR MAX | init files DIR append in|ctl HEX
 *       The same directory for a host that cannot read it (QEMU: through the agent's exec):
 *       a header line "TOTAL OLDEST PID EXIT" then output from CURSOR; or an append.
 *
 *   init probe tcp PORT | init probe http URL
 *       Readiness probes for services: exit 0 when 127.0.0.1:PORT accepts a connection, or
 *       when URL (http://HOST[:PORT]/PATH, HOST numeric or localhost) answers with a status
 *       below 500.
 *
 *   init watch --pid P --marker M --expires-file F
 *       Run on the HOST, detached, beside a microVM: kills process P (only while its command
 *       line still contains M, so a reused pid is never hit) once the time in F has passed,
 *       and exits when P is gone. The QEMU engine's equivalent of `idle`'s expiry.
 *
 * Built static: cc -static -O2 -o dist/guest/pyro-sandbox-init guest/sandbox-init.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <grp.h>
#include <termios.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define INIT_VERSION "pyro-sandbox-init 4"
#define EXPIRY_POLL_MS 5000

extern char **environ;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(void) {
  fprintf(stderr,
          "usage: init run [--deadline-ms N] [--pids-limit N] -- PROG [ARGS...]\n"
          "       init idle [--expires-file FILE] [--listen SOCK] [--pids-limit N]\n"
          "       init supervise --dir DIR [--pty COLS ROWS] [--ring-bytes N] [--redact-dir DIR] -- PROG [ARGS...]\n"
          "       init probe tcp PORT | init probe http URL\n"
          "       init files DIR read CURSOR MAX | init files DIR append in|ctl HEX\n"
          "       init watch --pid PID --marker TEXT --expires-file FILE\n");
  exit(2);
}

static sigset_t handled_signals(void) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGCHLD);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGHUP);
  sigaddset(&s, SIGINT);
  return s;
}

/* Reaps every finished child; returns 1 and sets *status when `main_pid` was among them. */
static int reap_children(pid_t main_pid, int *status) {
  int found = 0;
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p <= 0) break;
    if (p == main_pid) {
      *status = st;
      found = 1;
    }
  }
  return found;
}

static int exit_code_of(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 255;
}

static void kill_group(pid_t pid, int sig) {
  kill(-pid, sig);
  kill(pid, sig);
}

/*
 * The sandbox's process limit (--pids-limit N, 0: none). Every command gets RLIMIT_NPROC = N,
 * soft and hard (without CAP_SYS_RESOURCE it cannot raise it), so a fork bomb's forks fail
 * with EAGAIN inside the sandbox, and gVisor never asks the host for a process per guest
 * process past it. The init itself, its exec server and handlers keep no limit: they still
 * fork when the commands' processes have taken every slot, so pyro can always reach the
 * sandbox (and kill what holds it).
 */
static long pids_limit;

/* Only system calls: a vfork child calls it. */
static void command_limits(void) {
  if (pids_limit <= 0) return;
  struct rlimit r = {(rlim_t)pids_limit, (rlim_t)pids_limit};
  setrlimit(RLIMIT_NPROC, &r);
}

/* Processes in the sandbox now (the numeric entries of /proc; threads are not counted). */
static long count_processes(void) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  long n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9') n++;
  closedir(d);
  return n;
}

/* Close enough to the limit that forks fail: RLIMIT_NPROC counts the user's tasks, which
 * include the init's own few processes (root too, but never refused). */
#define PIDS_LIMIT_SLACK 8
static long pids_seen; /* processes at the last look */
static int at_pids_limit(void) {
  if (pids_limit <= 0) return 0;
  pids_seen = count_processes();
  return pids_seen >= pids_limit - PIDS_LIMIT_SLACK;
}

/* Session `sid` read from /proc/PID/stat (field 6, after the command name in parentheses). */
static pid_t session_of(const char *pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%s/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  int ppid, pgrp, sid;
  char state;
  if (!p || sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &sid) != 4) return -1;
  /* A zombie is dead already (its parent reaps it): not counted as left running. */
  return state == 'Z' ? -1 : (pid_t)sid;
}

/*
 * Kills every process of session `sid` (a command's whole tree: a fork bomb moves its
 * processes between groups, never out of the session unless it calls setsid), again until
 * none is left or `ms` have passed; returns how many kills were sent.
 */
static long kill_session(pid_t sid, int ms) {
  long killed = 0;
  int64_t until = now_ms() + ms;
  for (;;) {
    long found = 0;
    DIR *d = opendir("/proc");
    if (!d) break;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
      if (session_of(e->d_name) != sid) continue;
      pid_t p = (pid_t)atoi(e->d_name);
      if (p == getpid()) continue;
      kill(p, SIGKILL);
      found++;
    }
    closedir(d);
    killed += found;
    if (found == 0 || now_ms() >= until) break;
    usleep(10000);
  }
  return killed;
}

static int cmd_run(int argc, char **argv) {
  int64_t deadline_ms = 0;
  int i = 0;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--deadline-ms") == 0 && i + 1 < argc) {
      deadline_ms = strtoll(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--pids-limit") == 0 && i + 1 < argc) {
      pids_limit = strtol(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else {
      usage();
    }
  }
  if (i >= argc) usage();
  char **prog = argv + i;

  sigset_t sigs = handled_signals();
  sigprocmask(SIG_BLOCK, &sigs, NULL);
  int64_t deadline = deadline_ms > 0 ? now_ms() + deadline_ms : 0;

  /* posix_spawn (clone with CLONE_VFORK under glibc) rather than fork: no address-space copy,
   * which under gVisor halves what the wrapper costs an exec. */
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
  /* The limit is inherited by the command; `run` itself forks nothing after this. */
  command_limits();
  pid_t pid;
  int e = posix_spawnp(&pid, prog[0], NULL, &attr, prog, environ);
  posix_spawnattr_destroy(&attr);
  if (e != 0) {
    fprintf(stderr, "pyro: %s: %s\n", prog[0], e == ENOENT ? "not found" : strerror(e));
    return e == ENOENT ? 127 : 126;
  }

  int status = 0;
  int killed = 0;
  for (;;) {
    if (reap_children(pid, &status)) break;
    struct timespec ts, *tsp = NULL;
    if (deadline) {
      int64_t left = deadline - now_ms();
      if (left <= 0) {
        if (!killed) kill_group(pid, SIGKILL);
        killed = 1;
        left = 1000; /* wait for the kill to land */
        deadline = now_ms() + left;
      }
      ts.tv_sec = left / 1000;
      ts.tv_nsec = (left % 1000) * 1000000;
      tsp = &ts;
    }
    siginfo_t si;
    int sig = sigtimedwait(&sigs, &si, tsp);
    if (sig == SIGTERM || sig == SIGHUP || sig == SIGINT) {
      /* The caller went away or asked to stop: the command and everything it started go. */
      kill_group(pid, SIGKILL);
      killed = 1;
    }
  }
  /* As PID 1 of a one-shot sandbox, returning ends the sandbox and everything left in it. */
  return exit_code_of(status);
}

/* The expiry (unix seconds); 0 when unreadable or empty; -1 when the file is gone. */
static int64_t read_expiry(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) return errno == ENOENT ? -1 : 0;
  long long v = 0;
  if (fscanf(f, "%lld", &v) != 1) v = 0;
  fclose(f);
  return (int64_t)v;
}

/* The expiry file is replaced by rename, never removed, while pyro knows the sandbox: gone
 * (read_expiry -1) for two polls after it was there means its state dir was removed, so
 * nothing could find, expire or delete the sandbox any more. `seen`/`gone`: the caller's. */
static int expiry_file_gone(int64_t at, int *seen, int *gone) {
  if (at > 0) *seen = 1;
  if (at >= 0) {
    *gone = 0;
    return 0;
  }
  return *seen && ++*gone >= 2;
}

/*
 * idle's watchdog for the process limit. A fork bomb held at the limit does not stop: its
 * shells retry their forks and take every slot and all the CPU the sandbox has, so nothing
 * else gets to run (measured: `exec true` timed out). When the sandbox is at its limit on two
 * looks in a row, the session with the most processes (a command's whole tree; the init's own
 * session never) is killed, and the sandbox is usable again. Returns how many were killed.
 */
#define PIDS_WATCH_MS 500
/* A sandbox far below its limit is looked at this seldom: each look reads /proc, which in
 * gVisor is the sentry's work, and twice a second that was nearly all an idle workspace cost
 * (0.19 % of a core each, against 0.03 % without the watch; bench/idle.ts). A fork bomb
 * reaches the limit within one such interval and is then looked at every PIDS_WATCH_MS. */
#define PIDS_IDLE_WATCH_MS 5000
static long pids_watch(int *strikes) {
  if (!at_pids_limit()) {
    *strikes = 0;
    return 0;
  }
  if (++*strikes < 2) return 0;
  *strikes = 0;
  /* Processes per session, in a table as large as the limit (sessions <= processes). */
  size_t cap = (size_t)pids_limit * 2 + 64;
  pid_t *sid = calloc(cap, sizeof *sid);
  long *n = calloc(cap, sizeof *n);
  long killed = 0;
  if (sid && n) {
    pid_t own = getsid(0);
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
      if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
      pid_t s = session_of(e->d_name);
      if (s <= 0 || s == own) continue;
      size_t h = (size_t)s % cap;
      while (sid[h] != 0 && sid[h] != s) h = (h + 1) % cap;
      sid[h] = s;
      n[h]++;
    }
    if (d) closedir(d);
    size_t best = cap;
    for (size_t h = 0; h < cap; h++)
      if (sid[h] && (best == cap || n[h] > n[best])) best = h;
    if (best < cap) {
      killed = kill_session(sid[best], 2000);
      fprintf(stderr, "pyro: the sandbox reached its process limit (%ld); killed session %d (%ld processes)\n",
              pids_limit, (int)sid[best], killed);
    }
  }
  free(sid);
  free(n);
  return killed;
}

/* ---- idle's exec channel (--listen) ---- */

#define EXIT_DRAIN_MS 250
#define PIDS_SAMPLE_MS 250
#define MAX_REQUEST_BYTES (256u << 20)

static int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The request arrives in a few segments: read in large pieces, not a syscall per field (each
 * read of a host-backed socket is a round trip through the sentry). */
struct rbuf {
  int fd;
  char b[65536];
  size_t off, len;
};

static int rbuf_read(struct rbuf *r, void *dst, size_t n) {
  char *p = dst;
  while (n > 0) {
    if (r->off == r->len) {
      ssize_t k = read(r->fd, r->b, sizeof r->b);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return -1;
      r->off = 0;
      r->len = (size_t)k;
    }
    size_t take = r->len - r->off < n ? r->len - r->off : n;
    memcpy(p, r->b + r->off, take);
    r->off += take;
    p += take;
    n -= take;
  }
  return 0;
}

static int send_frame(int fd, char type, const void *data, uint32_t n) {
  unsigned char h[5] = {(unsigned char)type, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >> 24) & 0xff};
  if (write_all(fd, h, 5) < 0) return -1;
  return n ? write_all(fd, data, n) : 0;
}

struct strv {
  char **v;
  size_t n, cap;
};

static void strv_push(struct strv *s, char *x) {
  if (s->n + 2 > s->cap) {
    s->cap = s->cap ? s->cap * 2 : 16;
    s->v = realloc(s->v, s->cap * sizeof(char *));
    if (!s->v) _exit(70);
  }
  s->v[s->n++] = x;
  s->v[s->n] = NULL;
}

/* A command starts as from a shell: no signal blocked, SIGPIPE at its default. Only system
 * calls, so a vfork child may call it. */
static void command_signals(void) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
}

/* Tells the server this handler is taken (once), so it forks a replacement. */
static int busy_fd = -1;
static void notify_busy(void) {
  if (busy_fd < 0) return;
  char b = 1;
  if (write(busy_fd, &b, 1) < 0) {
  }
  close(busy_fd);
  busy_fd = -1;
}

/* One connection: read the request, run the command, relay its output, send its exit. */
static int serve_one(int c) {
  struct strv args = {0}, envs = {0};
  char *cwd = NULL, *stdin_buf = NULL;
  size_t stdin_n = 0, total = 0;
  int64_t deadline_ms = 0;
  long uid = -1, gid = -1;
  static struct rbuf in_buf;
  in_buf.fd = c;
  for (;;) {
    unsigned char h[5];
    if (rbuf_read(&in_buf, h, 5) < 0) return 1;
    uint32_t n = h[1] | (h[2] << 8) | ((uint32_t)h[3] << 16) | ((uint32_t)h[4] << 24);
    total += n;
    if (total > MAX_REQUEST_BYTES) return 1;
    char *d = malloc((size_t)n + 1);
    if (!d || (n && rbuf_read(&in_buf, d, n) < 0)) return 1;
    d[n] = 0;
    switch (h[0]) {
      case 'A': strv_push(&args, d); break;
      case 'E': strv_push(&envs, d); break;
      case 'C': cwd = d; break;
      case 'U': sscanf(d, "%ld %ld", &uid, &gid); free(d); break;
      case 'T': deadline_ms = strtoll(d, NULL, 10); free(d); break;
      case 'I': stdin_buf = d; stdin_n = n; break;
      case 'G': free(d); goto go;
      /* A ping (the host's create waits for one answer): the version, nothing run. */
      case 'H': free(d); return send_frame(c, 'V', INIT_VERSION, (uint32_t)strlen(INIT_VERSION)) < 0;
      default: return 1;
    }
  }
go:
  if (args.n == 0) return 1;
  if (!envs.v) strv_push(&envs, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  int out[2], err[2], in[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return 1;
  if (stdin_buf && pipe2(in, O_CLOEXEC)) return 1;
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  pid_t pid = vfork();
  if (pid < 0) return 1;
  if (pid == 0) {
    setsid();
    int null = open("/dev/null", O_RDONLY);
    dup2(stdin_buf ? in[0] : null, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    command_signals();
    command_limits();
    /* A vfork child shares the handler's memory: no stdio or malloc here, only a stack
     * buffer and write(2). */
    char msg[512];
    if (cwd && chdir(cwd) != 0) {
      int n = snprintf(msg, sizeof msg, "pyro: cannot enter %s: %s\n", cwd, strerror(errno));
      if (write(2, msg, n > 0 && n < (int)sizeof msg ? (size_t)n : sizeof msg - 1) < 0) {
      }
      _exit(126);
    }
    if (gid >= 0 && (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0)) _exit(126);
    if (uid >= 0 && setuid((uid_t)uid) != 0) _exit(126);
    /* execvpe searches the PATH of the caller's environment: the command's own here. */
    environ = envs.v;
    execvpe(args.v[0], args.v, envs.v);
    int e = errno;
    int n = snprintf(msg, sizeof msg, "pyro: %s: %s\n", args.v[0], e == ENOENT ? "not found" : strerror(e));
    if (write(2, msg, n > 0 && n < (int)sizeof msg ? (size_t)n : sizeof msg - 1) < 0) {
    }
    _exit(e == ENOENT ? 127 : 126);
  }
  /* The command runs: only now is the server told (its fork would compete with the exec). */
  notify_busy();
  close(out[1]);
  close(err[1]);
  if (in[0] >= 0) close(in[0]);
  size_t stdin_off = 0;
  if (in[1] >= 0) fcntl(in[1], F_SETFL, O_NONBLOCK);
  int64_t deadline = deadline_ms > 0 ? now_ms() + deadline_ms : 0;
  int64_t drain_until = 0;
  int status = 0, exited = 0, killed = 0, host_gone = 0;
  /* The process limit is looked at now and then while the command runs (a /proc listing):
   * a command whose forks may have failed for it is told so (frame P) at once, so a caller
   * that times out still learns it. */
  int at_limit = 0;
  int64_t next_sample = now_ms() + PIDS_SAMPLE_MS;
  int fds_open[2] = {out[0], err[0]};
  char buf[65536];
  for (;;) {
    if (exited && fds_open[0] < 0 && fds_open[1] < 0) break;
    if (exited && now_ms() >= drain_until) break;
    struct pollfd p[5];
    int np = 0;
    int i_io[2] = {-1, -1}, i_in = -1, i_sig, i_c;
    for (int s = 0; s < 2; s++)
      if (fds_open[s] >= 0) {
        i_io[s] = np;
        p[np++] = (struct pollfd){fds_open[s], POLLIN, 0};
      }
    if (in[1] >= 0) { i_in = np; p[np++] = (struct pollfd){in[1], POLLOUT, 0}; }
    i_sig = np;
    p[np++] = (struct pollfd){sfd, POLLIN, 0};
    i_c = np;
    p[np++] = (struct pollfd){c, POLLIN, 0};
    int timeout = -1;
    if (exited) timeout = (int)(drain_until - now_ms());
    if (deadline && !exited) {
      int64_t left = deadline - now_ms();
      if (left <= 0) {
        if (!killed) {
          kill_group(pid, SIGKILL);
          kill_session(pid, 2000);
        }
        killed = 1;
        deadline = now_ms() + 1000;
        left = 1000;
      }
      if (timeout < 0 || left < timeout) timeout = (int)left;
    }
    if (pids_limit > 0 && !exited && !at_limit) {
      int64_t left = next_sample - now_ms();
      if (left <= 0) {
        if (at_pids_limit()) {
          at_limit = 1;
          if (send_frame(c, 'P', NULL, 0) < 0) host_gone = 1;
        }
        next_sample = now_ms() + PIDS_SAMPLE_MS;
        left = PIDS_SAMPLE_MS;
      }
      if (timeout < 0 || left < timeout) timeout = (int)left;
    }
    if (timeout < 0 && exited) timeout = 0;
    int r = poll(p, np, timeout);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    /* stdout as frames of type '1', stderr as '2'. */
    for (int s = 0; s < 2; s++) {
      if (i_io[s] < 0 || !p[i_io[s]].revents) continue;
      ssize_t k = read(fds_open[s], buf, sizeof buf);
      if (k > 0) {
        if (send_frame(c, (char)('1' + s), buf, (uint32_t)k) < 0) host_gone = 1;
      } else if (k == 0 || errno != EINTR) {
        close(fds_open[s]);
        fds_open[s] = -1;
      }
    }
    if (i_in >= 0 && p[i_in].revents) {
      if (p[i_in].revents & (POLLERR | POLLHUP)) {
        close(in[1]);
        in[1] = -1;
      } else {
        ssize_t w = write(in[1], stdin_buf + stdin_off, stdin_n - stdin_off);
        if (w > 0) stdin_off += (size_t)w;
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || stdin_off >= stdin_n) {
          close(in[1]);
          in[1] = -1;
        }
      }
    }
    if (p[i_sig].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      if (!exited && reap_children(pid, &status)) {
        exited = 1;
        drain_until = now_ms() + EXIT_DRAIN_MS;
      } else {
        int ignored;
        reap_children(-1, &ignored);
      }
    }
    if (p[i_c].revents) {
      /* The host sends nothing after G: readable means it closed (cancelled, timed out, died). */
      char x;
      ssize_t k = recv(c, &x, 1, MSG_DONTWAIT);
      if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) host_gone = 1;
    }
    if (host_gone) {
      if (!exited) {
        kill_group(pid, SIGKILL);
        /* Whatever of it left the group (setpgid: timeout(1), a fork bomb's shells). */
        kill_session(pid, 2000);
      }
      return 1;
    }
  }
  /* A command that ran into the limit: what it left running (a fork bomb) holds the slots
   * every later command needs, so its whole session goes now. Not a hit: background jobs
   * live on, as ever. */
  if (!at_limit && at_pids_limit()) {
    at_limit = 1;
    send_frame(c, 'P', NULL, 0);
  }
  if (at_limit) kill_session(pid, 2000);
  char code[16];
  int len = snprintf(code, sizeof code, "%d", exit_code_of(status));
  send_frame(c, 'X', code, (uint32_t)len);
  return 0;
}

static int listen_unix(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) return -1;
  strcpy(a.sun_path, path);
  unlink(path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/*
 * The server, a child of the init: handlers forked ahead of need, each waiting in accept()
 * on the shared socket and serving one connection (a fork under gVisor costs milliseconds:
 * off the command's path). A handler that accepted says so on `busy`; the server forks
 * its replacement.
 */
#define SPARE_HANDLERS 2
#define REPLACE_DELAY_MS 100

static pid_t spare_handler(int fd, int busy_w) {
  pid_t h = fork();
  if (h != 0) return h;
  signal(SIGCHLD, SIG_DFL);
  int c;
  for (;;) {
    c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) break;
    if (errno != EINTR) usleep(10000);
  }
  close(fd);
  busy_fd = busy_w;
  int rc = serve_one(c);
  notify_busy();
  _exit(rc);
}

static void serve(int fd) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* Handlers are reaped by the kernel; each handler waits for its own command. */
  signal(SIGCHLD, SIG_IGN);
  int busy[2];
  if (pipe2(busy, O_CLOEXEC) != 0) _exit(1);
  for (int i = 0; i < SPARE_HANDLERS; i++) spare_handler(fd, busy[1]);
  /* A replacement is forked at once only when no spare is left; otherwise a little later, so
   * the fork does not compete with the command that was just accepted (most finish by then). */
  int spares = SPARE_HANDLERS, owed = 0;
  for (;;) {
    struct pollfd p = {busy[0], POLLIN, 0};
    int r = poll(&p, 1, owed ? REPLACE_DELAY_MS : -1);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      for (; owed > 0; owed--, spares++) spare_handler(fd, busy[1]);
      continue;
    }
    char b[64];
    ssize_t n = read(busy[0], b, sizeof b);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(1);
    spares -= (int)n;
    owed += (int)n;
    if (spares <= 0)
      for (; owed > 0; owed--, spares++) spare_handler(fd, busy[1]);
  }
}

static pid_t start_server(int fd) {
  pid_t p = fork();
  if (p == 0) {
    serve(fd);
    _exit(1);
  }
  return p;
}

static int cmd_idle(int argc, char **argv) {
  const char *expires_file = NULL, *listen_path = NULL;
  int present = 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--expires-file") == 0 && i + 1 < argc) expires_file = argv[++i];
    else if (strcmp(argv[i], "--expires-file-present") == 0) present = 1;
    else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) listen_path = argv[++i];
    else if (strcmp(argv[i], "--pids-limit") == 0 && i + 1 < argc) pids_limit = strtol(argv[++i], NULL, 10);
    else usage();
  }
  sigset_t sigs = handled_signals();
  sigprocmask(SIG_BLOCK, &sigs, NULL);
  int lfd = -1;
  pid_t server = -1;
  if (listen_path) {
    lfd = listen_unix(listen_path);
    /* Without the channel the host falls back to `runsc exec`: not fatal. */
    if (lfd < 0) fprintf(stderr, "pyro: cannot listen on %s: %s\n", listen_path, strerror(errno));
    else server = start_server(lfd);
    /* The sandbox's first program costs more than later ones (the sentry reads the loader
     * and libc from the image for the first time): paid now, before any command waits. */
    /* Not waited for here: the loop below reaps it, and reads the expiry file right away. */
    char *warm[] = {"true", NULL};
    pid_t w;
    posix_spawnp(&w, "true", NULL, NULL, warm, environ);
  }
  /* Seen from the start when the host wrote it first: a state dir removed before this
   * loop's first read (a busy host can start the init late) still stops the sandbox. */
  int seen = present, gone = 0;
  int strikes = 0;
  int64_t next_watch = now_ms() + PIDS_WATCH_MS, next_expiry = 0;
  for (;;) {
    int st;
    if (server > 0 && reap_children(server, &st)) server = start_server(lfd);
    if (pids_limit > 0 && now_ms() >= next_watch) {
      pids_watch(&strikes);
      int far = strikes == 0 && pids_seen * 2 < pids_limit;
      next_watch = now_ms() + (far ? PIDS_IDLE_WATCH_MS : PIDS_WATCH_MS);
    }
    /* Every EXPIRY_POLL_MS, however often the loop wakes (children ending, the watchdog). */
    if (expires_file && now_ms() >= next_expiry) {
      next_expiry = now_ms() + EXPIRY_POLL_MS;
      int64_t at = read_expiry(expires_file);
      if (at > 0 && (int64_t)time(NULL) >= at) {
        fprintf(stderr, "pyro: sandbox past its expiry (%lld); stopping\n", (long long)at);
        return 0;
      }
      if (expiry_file_gone(at, &seen, &gone)) {
        fprintf(stderr, "pyro: the sandbox's expiry file is gone (state removed); stopping\n");
        return 0;
      }
    }
    int64_t until_watch = next_watch - now_ms();
    int wait_ms = pids_limit > 0 && until_watch < EXPIRY_POLL_MS ? (int)(until_watch > 0 ? until_watch : 0)
                                                                   : EXPIRY_POLL_MS;
    struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
    siginfo_t si;
    int sig = sigtimedwait(&sigs, &si, expires_file || pids_limit > 0 ? &ts : NULL);
    if (sig == SIGTERM || sig == SIGHUP || sig == SIGINT) return 0;
  }
}


/* ---- supervise: shells and services ---- */

#define RING_SEGMENTS 4

static const char *sv_dir;
static int64_t sv_total;      /* bytes of output so far: the next byte's offset */
static int64_t sv_seg_start;  /* offset the current segment starts at */
static int64_t sv_seg_bytes;  /* max bytes per segment */
static int sv_seg_fd = -1;
static int64_t sv_segs[RING_SEGMENTS + 1];
static int sv_nsegs;

static void sv_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", sv_dir, name); }

static void write_file_atomic(const char *name, const char *text) {
  char path[4096], tmp[4096];
  sv_path(path, sizeof path, name);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t ignored = write(fd, text, strlen(text));
  (void)ignored;
  close(fd);
  rename(tmp, path);
}

static void seg_name(char *buf, size_t n, int64_t start) { snprintf(buf, n, "%s/out/%016lld", sv_dir, (long long)start); }

static void seg_open(void) {
  char path[4096];
  seg_name(path, sizeof path, sv_total);
  sv_seg_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  sv_seg_start = sv_total;
  sv_segs[sv_nsegs++] = sv_total;
  while (sv_nsegs > RING_SEGMENTS) {
    seg_name(path, sizeof path, sv_segs[0]);
    unlink(path);
    memmove(sv_segs, sv_segs + 1, sizeof(int64_t) * (size_t)(--sv_nsegs));
  }
}

static void out_append(const char *buf, size_t n) {
  while (n > 0) {
    if (sv_seg_fd < 0 || sv_total - sv_seg_start >= sv_seg_bytes) {
      if (sv_seg_fd >= 0) close(sv_seg_fd);
      seg_open();
    }
    size_t room = (size_t)(sv_seg_bytes - (sv_total - sv_seg_start));
    size_t k = n < room ? n : room;
    if (sv_seg_fd >= 0) {
      ssize_t ignored = write(sv_seg_fd, buf, k);
      (void)ignored;
    }
    sv_total += (int64_t)k;
    buf += k;
    n -= k;
  }
}

/* Reads whatever was appended to `fd` since `*off`, into buf; returns the byte count. */
static ssize_t read_new(int fd, int64_t *off, char *buf, size_t n) {
  if (fd < 0) return 0;
  ssize_t r = pread(fd, buf, n, (off_t)*off);
  if (r > 0) *off += r;
  return r;
}

/* ---- redaction of secret values in a supervisor's output ----
 * The same algorithm as the host's StreamRedactor (src/secrets/redactor.ts): each value in
 * --redact-dir (one file per secret, named by it) becomes "[REDACTED:NAME]" before a byte
 * reaches the ring, which under gVisor is a host directory. Only the longest tail that could
 * still start a value is held back; overlapping values are replaced as one span. */

#define RD_MAX 128
#define RD_MIN_BYTES 4
#define RD_MAX_BYTES 65536

struct rd_pattern {
  char name[72];
  unsigned char *v;
  size_t n;
};
static struct rd_pattern rd[RD_MAX];
static int rd_count;
static unsigned char *rd_pend;
static size_t rd_pend_n, rd_pend_cap;

static void rd_add(const char *name, const unsigned char *v, size_t n) {
  if (n < RD_MIN_BYTES || rd_count >= RD_MAX) return;
  for (int k = 0; k < rd_count; k++)
    if (rd[k].n == n && memcmp(rd[k].v, v, n) == 0) return;
  unsigned char *copy = malloc(n);
  if (!copy) return;
  memcpy(copy, v, n);
  snprintf(rd[rd_count].name, sizeof rd[rd_count].name, "%s", name);
  rd[rd_count].v = copy;
  rd[rd_count].n = n;
  rd_count++;
}

static int rd_longer_first(const void *a, const void *b) {
  size_t x = ((const struct rd_pattern *)a)->n, y = ((const struct rd_pattern *)b)->n;
  return x < y ? 1 : x > y ? -1 : 0;
}

static void rd_load(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return; /* a workspace without secrets */
  struct dirent *e;
  static unsigned char buf[RD_MAX_BYTES + 1];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || strlen(e->d_name) > 64) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf && (r = read(fd, buf + n, sizeof buf - n)) > 0) n += (size_t)r;
    close(fd);
    if (n > RD_MAX_BYTES) continue;
    /* Without trailing newlines, as the host does (see patternsOf). */
    size_t t = n;
    while (t > 0 && (buf[t - 1] == '\n' || buf[t - 1] == '\r')) t--;
    rd_add(e->d_name, buf, t >= RD_MIN_BYTES ? t : n);
  }
  closedir(d);
  qsort(rd, (size_t)rd_count, sizeof rd[0], rd_longer_first);
}

/* At b[i]: the index of the longest value that matches, -2 when a value could still match
 * once more bytes come (never when final), -1 for none. */
static int rd_at(const unsigned char *b, size_t len, size_t i, int final) {
  for (int k = 0; k < rd_count; k++) {
    if (b[i] != rd[k].v[0]) continue;
    size_t avail = len - i;
    if (avail >= rd[k].n) {
      if (memcmp(b + i, rd[k].v, rd[k].n) == 0) return k;
    } else if (!final && memcmp(b + i, rd[k].v, avail) == 0) {
      return -2;
    }
  }
  return -1;
}

static void out_append(const char *buf, size_t n);

static void rd_marker(const char *name) {
  char m[96];
  int k = snprintf(m, sizeof m, "[REDACTED:%s]", name);
  out_append(m, (size_t)k);
}

static void rd_run(int final) {
  unsigned char *b = rd_pend;
  size_t n = rd_pend_n, i = 0, from = 0;
  while (i < n) {
    int k = rd_at(b, n, i, final);
    if (k == -1) {
      i++;
      continue;
    }
    if (k == -2) break;
    size_t end = i + rd[k].n;
    int names[8], nn = 0, undecided = 0;
    names[nn++] = k;
    for (size_t j = i + 1; j < end; j++) {
      int o = rd_at(b, n, j, final);
      if (o == -2) {
        undecided = 1;
        break;
      }
      if (o >= 0 && j + rd[o].n > end) {
        end = j + rd[o].n;
        int dup = 0;
        for (int q = 0; q < nn; q++) dup |= strcmp(rd[names[q]].name, rd[o].name) == 0;
        if (!dup && nn < 8) names[nn++] = o;
      }
    }
    if (undecided) break;
    if (i > from) out_append((const char *)b + from, i - from);
    for (int q = 0; q < nn; q++) rd_marker(rd[names[q]].name);
    i = end;
    from = end;
  }
  if (i > from) out_append((const char *)b + from, i - from);
  memmove(b, b + i, n - i);
  rd_pend_n = n - i;
}

/* PROG's output: redacted into the ring. */
static void rd_feed(const char *buf, size_t n) {
  if (rd_count == 0) {
    out_append(buf, n);
    return;
  }
  if (rd_pend_n + n > rd_pend_cap) {
    size_t cap = (rd_pend_n + n) * 2;
    unsigned char *p = realloc(rd_pend, cap);
    if (!p) {
      /* No memory to hold back: drop the output rather than risk writing a value. */
      return;
    }
    rd_pend = p;
    rd_pend_cap = cap;
  }
  memcpy(rd_pend + rd_pend_n, buf, n);
  rd_pend_n += n;
  rd_run(0);
}

static void rd_flush(void) {
  if (rd_count && rd_pend_n) rd_run(1);
}

static int cmd_supervise(int argc, char **argv) {
  int pty = 0, cols = 80, rows = 24, daemonize = 0;
  int64_t ring = 1 << 20;
  int i = 0;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) sv_dir = argv[++i];
    else if (strcmp(argv[i], "--pty") == 0 && i + 2 < argc) {
      pty = 1;
      cols = atoi(argv[++i]);
      rows = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--ring-bytes") == 0 && i + 1 < argc) ring = strtoll(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--daemon") == 0) daemonize = 1;
    else if (strcmp(argv[i], "--pids-limit") == 0 && i + 1 < argc) pids_limit = strtol(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--redact-dir") == 0 && i + 1 < argc) rd_load(argv[++i]);
    else if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else usage();
  }
  if (!sv_dir || i >= argc) usage();
  if (daemonize) {
    /* Where no runsc keeps the process (QEMU's agent): leave the caller's session and stdio,
     * so the exec that started us returns at once and nothing of its ends us. */
    pid_t d = fork();
    if (d < 0) return 1;
    if (d > 0) _exit(0);
    setsid();
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      if (devnull > 2) close(devnull);
    }
  }
  if (ring < 4096) ring = 4096;
  sv_seg_bytes = ring / RING_SEGMENTS;
  char **prog = argv + i;
  char path[4096];
  snprintf(path, sizeof path, "%s/out", sv_dir);
  mkdir(path, 0755);

  int master = -1, slave = -1, pipefd[2] = {-1, -1};
  if (pty) {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
      fprintf(stderr, "pyro: no pseudo-terminal: %s\n", strerror(errno));
      return 1;
    }
    struct winsize ws = {(unsigned short)rows, (unsigned short)cols, 0, 0};
    ioctl(master, TIOCSWINSZ, &ws);
    slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    if (slave < 0) {
      fprintf(stderr, "pyro: cannot open the terminal: %s\n", strerror(errno));
      return 1;
    }
  } else if (pipe2(pipefd, O_CLOEXEC) < 0) {
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  /* Input is read only by the supervisor, so the host never blocks on a full pipe. */
  sv_path(path, sizeof path, "in");
  int in_fd = open(path, O_RDONLY | O_CLOEXEC);
  sv_path(path, sizeof path, "ctl");
  int ctl_fd = open(path, O_RDONLY | O_CLOEXEC);

  pid_t pid = vfork();
  if (pid < 0) return 1;
  if (pid == 0) {
    setsid();
    if (pty) {
      ioctl(slave, TIOCSCTTY, 0);
      dup2(slave, 0);
      dup2(slave, 1);
      dup2(slave, 2);
      if (slave > 2) close(slave);
    } else {
      int devnull = open("/dev/null", O_RDONLY);
      dup2(devnull, 0);
      dup2(pipefd[1], 1);
      dup2(pipefd[1], 2);
    }
    command_signals();
    command_limits();
    execvp(prog[0], prog);
    fprintf(stderr, "pyro: %s: %s\n", prog[0], errno == ENOENT ? "not found" : strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  int out_fd = pty ? master : pipefd[0];
  if (pty) close(slave);
  else close(pipefd[1]);
  char text[64];
  snprintf(text, sizeof text, "%d\n", (int)pid);
  write_file_atomic("pid", text);

  int64_t in_off = 0, ctl_off = 0;
  char buf[65536];
  char ctl_line[256];
  size_t ctl_len = 0;
  int status = 0, exited = 0, out_open = 1;
  int64_t kill_at = 0;
  int idle_ms = 2;
  for (;;) {
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0)
      if (p == pid) {
        status = st;
        exited = 1;
      }
    int activity = 0;
    if (out_open) {
      struct pollfd pf = {out_fd, POLLIN, 0};
      int n = poll(&pf, 1, exited ? 0 : idle_ms);
      if (n > 0) {
        ssize_t r = read(out_fd, buf, sizeof buf);
        if (r > 0) {
          rd_feed(buf, (size_t)r);
          activity = 1;
        } else if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
          out_open = 0; /* EOF (pipe) or EIO (terminal: every holder of it closed it) */
        }
      } else if (exited) {
        out_open = 0; /* PROG is gone and nothing is left to read */
      }
    } else if (!exited) {
      struct timespec ts = {0, idle_ms * 1000000L};
      nanosleep(&ts, NULL);
    }
    if (exited && !out_open) break;
    ssize_t r = read_new(in_fd, &in_off, buf, sizeof buf);
    if (r > 0) {
      activity = 1;
      if (pty) {
        for (ssize_t w = 0; w < r;) {
          ssize_t k = write(master, buf + w, (size_t)(r - w));
          if (k <= 0) break;
          w += k;
        }
      }
    }
    while ((r = read_new(ctl_fd, &ctl_off, buf, sizeof buf)) > 0) {
      activity = 1;
      for (ssize_t j = 0; j < r; j++) {
        if (buf[j] != '\n') {
          if (ctl_len < sizeof ctl_line - 1) ctl_line[ctl_len++] = buf[j];
          continue;
        }
        ctl_line[ctl_len] = 0;
        ctl_len = 0;
        int a = 0, b = 0;
        if (sscanf(ctl_line, "signal %d", &a) == 1 && a > 0 && a < 65) {
          /* To the terminal's foreground group (what ^C reaches), else PROG's group. */
          pid_t fg = pty ? tcgetpgrp(master) : -1;
          kill_group(fg > 0 ? fg : pid, a);
          if (fg > 0 && fg != pid && a == SIGKILL) kill_group(pid, a);
        } else if (sscanf(ctl_line, "resize %d %d", &a, &b) == 2 && pty) {
          struct winsize ws = {(unsigned short)b, (unsigned short)a, 0, 0};
          ioctl(master, TIOCSWINSZ, &ws);
        } else if (sscanf(ctl_line, "stop %d", &a) == 1) {
          kill_group(pid, SIGTERM);
          if (pty) kill_group(pid, SIGHUP);
          kill_at = now_ms() + (a > 0 ? a : 0);
        }
      }
    }
    if (kill_at && !exited && now_ms() >= kill_at) {
      kill_group(pid, SIGKILL);
      kill_at = 0;
    }
    /* Quick while things happen, then back off: a shell that waits costs little. */
    idle_ms = activity ? 2 : (idle_ms < 20 ? idle_ms + 1 : 20);
  }
  rd_flush();
  /* Everything PROG started goes with it. */
  kill_group(pid, SIGKILL);
  snprintf(text, sizeof text, "%d\n", exit_code_of(status));
  write_file_atomic("exit", text);
  return 0;
}


/* ---- files: a supervisor's directory, for hosts that cannot read it directly (QEMU) ---- */

static int64_t small_file(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  long long v = -1;
  if (fscanf(f, "%lld", &v) != 1) v = -1;
  fclose(f);
  return (int64_t)v;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/*
 * files DIR read CURSOR MAX: one line "TOTAL OLDEST PID EXIT" (-1 for no pid/exit yet), then
 * up to MAX bytes of output from max(CURSOR, OLDEST).
 * files DIR append in|ctl HEX: appends the hex-decoded bytes.
 */
static int cmd_files(int argc, char **argv) {
  if (argc < 2) usage();
  const char *dir = argv[0];
  if (strcmp(argv[1], "append") == 0 && argc == 4) {
    if (strcmp(argv[2], "in") != 0 && strcmp(argv[2], "ctl") != 0) usage();
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, argv[2]);
    size_t n = strlen(argv[3]) / 2;
    unsigned char *buf = malloc(n + 1);
    if (!buf) return 1;
    for (size_t k = 0; k < n; k++) {
      int hi = hexval(argv[3][2 * k]), lo = hexval(argv[3][2 * k + 1]);
      if (hi < 0 || lo < 0) return 2;
      buf[k] = (unsigned char)(hi << 4 | lo);
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      fprintf(stderr, "pyro: %s: %s\n", path, strerror(errno));
      return 1;
    }
    ssize_t w = write(fd, buf, n);
    close(fd);
    return w == (ssize_t)n ? 0 : 1;
  }
  if (strcmp(argv[1], "read") != 0 || argc != 4) usage();
  int64_t cursor = strtoll(argv[2], NULL, 10), max = strtoll(argv[3], NULL, 10);
  char path[4096];
  snprintf(path, sizeof path, "%s/out", dir);
  int64_t starts[64];
  int n = 0;
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
      if (strlen(e->d_name) == 16 && strspn(e->d_name, "0123456789") == 16) starts[n++] = strtoll(e->d_name, NULL, 10);
    closedir(d);
  }
  qsort(starts, (size_t)n, sizeof starts[0], cmp_i64);
  int64_t total = 0, oldest = 0;
  if (n > 0) {
    struct stat st;
    char seg[4096];
    snprintf(seg, sizeof seg, "%s/out/%016lld", dir, (long long)starts[n - 1]);
    total = starts[n - 1] + (stat(seg, &st) == 0 ? st.st_size : 0);
    oldest = starts[0];
  }
  printf("%lld %lld %lld %lld\n", (long long)total, (long long)oldest, (long long)small_file(dir, "pid"),
         (long long)small_file(dir, "exit"));
  int64_t pos = cursor < oldest ? oldest : cursor;
  char buf[65536];
  for (int k = 0; k < n && max > 0; k++) {
    int64_t end = k + 1 < n ? starts[k + 1] : total;
    if (end <= pos) continue;
    char seg[4096];
    snprintf(seg, sizeof seg, "%s/out/%016lld", dir, (long long)starts[k]);
    int fd = open(seg, O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    while (max > 0) {
      ssize_t r = pread(fd, buf, (size_t)(max < (int64_t)sizeof buf ? max : (int64_t)sizeof buf), (off_t)(pos - starts[k]));
      if (r <= 0) break;
      fwrite(buf, 1, (size_t)r, stdout);
      pos += r;
      max -= r;
    }
    close(fd);
    if (pos < end) break; /* segment shorter than listed: stop at what was read */
  }
  fflush(stdout);
  return 0;
}

/* ---- probe: service readiness ---- */

static int connect_to(const char *host, int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return -2;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int cmd_probe(int argc, char **argv) {
  if (argc != 2) usage();
  if (strcmp(argv[0], "tcp") == 0) {
    int fd = connect_to("127.0.0.1", atoi(argv[1]));
    if (fd < 0) return 1;
    close(fd);
    return 0;
  }
  if (strcmp(argv[0], "http") != 0) usage();
  const char *url = argv[1];
  if (strncmp(url, "http://", 7) != 0) {
    fprintf(stderr, "pyro: only http:// URLs can be probed\n");
    return 2;
  }
  char host[256];
  const char *h = url + 7;
  size_t hl = strcspn(h, ":/");
  if (hl == 0 || hl >= sizeof host) return 2;
  memcpy(host, h, hl);
  host[hl] = 0;
  int port = 80;
  const char *rest = h + hl;
  if (*rest == ':') port = (int)strtol(rest + 1, (char **)&rest, 10);
  const char *path = *rest == '/' ? rest : "/";
  int fd = connect_to(host, port);
  if (fd == -2) {
    fprintf(stderr, "pyro: %s: give a numeric IPv4 address or localhost\n", host);
    return 2;
  }
  if (fd < 0) return 1;
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char req[2048];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
  if (n <= 0 || n >= (int)sizeof req || write(fd, req, (size_t)n) != n) {
    close(fd);
    return 1;
  }
  char resp[64];
  ssize_t got = 0;
  while (got < (ssize_t)sizeof resp - 1) {
    ssize_t r = read(fd, resp + got, sizeof resp - 1 - (size_t)got);
    if (r <= 0) break;
    got += r;
  }
  /* Read the rest before closing: unread data would make the close a reset, which servers log. */
  char sink[4096];
  for (int k = 0; k < 256 && read(fd, sink, sizeof sink) > 0; k++) {
  }
  close(fd);
  resp[got] = 0;
  int code = 0;
  if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1) return 1;
  return code > 0 && code < 500 ? 0 : 1;
}

/* Whether `pid` is alive and its command line contains `marker`. */
static int process_matches(pid_t pid, const char *marker) {
  char path[64], buf[8192];
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  return n > 0 && memmem(buf, n, marker, strlen(marker)) != NULL;
}

static int cmd_watch(int argc, char **argv) {
  pid_t pid = 0;
  const char *marker = NULL, *expires_file = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc) pid = (pid_t)atoi(argv[++i]);
    else if (strcmp(argv[i], "--marker") == 0 && i + 1 < argc) marker = argv[++i];
    else if (strcmp(argv[i], "--expires-file") == 0 && i + 1 < argc) expires_file = argv[++i];
    else usage();
  }
  if (pid <= 0 || !marker || !expires_file) usage();
  setsid();
  signal(SIGHUP, SIG_IGN);
  int seen = 0, gone = 0;
  for (;;) {
    if (!process_matches(pid, marker)) return 0;
    int64_t at = read_expiry(expires_file);
    if (at > 0 && (int64_t)time(NULL) >= at) {
      kill(pid, SIGKILL);
      return 0;
    }
    if (expiry_file_gone(at, &seen, &gone)) {
      kill(pid, SIGKILL);
      return 0;
    }
    sleep(EXPIRY_POLL_MS / 1000);
  }
}

/* Exit codes of a refused file read: the same as the shell scripts' (src/workspaces/guest.ts). */
#define READ_OUTSIDE 10
#define READ_MISSING 11
#define READ_IS_DIR 12
#define READ_NOT_REGULAR 15

static int in_workspace(const char *p) {
  return strcmp(p, "/workspace") == 0 || strncmp(p, "/workspace/", 11) == 0;
}

/*
 * init read --max N [--deadline-ms T] PATH
 *   The file tools' plain read in one exec (no shell, no head): PATH's real location must be
 *   inside /workspace and a regular file; writes at most N+1 bytes of it to stdout (one more
 *   than the budget, so the host can tell "over"). Carries its own deadline (alarm), so the
 *   engine runs it without the `run` wrapper. Refusals use the shell scripts' exit codes.
 */
static int cmd_read(int argc, char **argv) {
  long long max = -1, deadline_ms = 60000;
  const char *path = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--max") == 0 && i + 1 < argc) max = strtoll(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--deadline-ms") == 0 && i + 1 < argc) deadline_ms = strtoll(argv[++i], NULL, 10);
    else if (!path) path = argv[i];
    else usage();
  }
  if (!path || max < 0) usage();
  if (deadline_ms > 0) alarm((unsigned)((deadline_ms + 999) / 1000)); /* SIGALRM ends us */
  char dir[PATH_MAX], real[PATH_MAX];
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
  if (dir[0] == 0) snprintf(dir, sizeof dir, "/");
  if (strcmp(path, "/workspace") != 0) {
    if (!realpath(dir, real)) {
      fprintf(stderr, "no such directory: %s\n", dir);
      return READ_MISSING;
    }
    if (!in_workspace(real)) {
      fprintf(stderr, "resolves to %s/%s, outside /workspace\n", real, base);
      return READ_OUTSIDE;
    }
  }
  struct stat st;
  if (lstat(path, &st) < 0) {
    fprintf(stderr, "no such file or directory\n");
    return READ_MISSING;
  }
  if (!realpath(path, real)) {
    fprintf(stderr, "a dangling symlink\n");
    return READ_MISSING;
  }
  if (!in_workspace(real)) {
    fprintf(stderr, "resolves to %s, outside /workspace\n", real);
    return READ_OUTSIDE;
  }
  int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0 || fstat(fd, &st) < 0) {
    fprintf(stderr, "cannot open %s: %s\n", real, strerror(errno));
    return READ_MISSING;
  }
  if (S_ISDIR(st.st_mode)) {
    fprintf(stderr, "is a directory\n");
    return READ_IS_DIR;
  }
  if (!S_ISREG(st.st_mode)) {
    fprintf(stderr, "not a regular file\n");
    return READ_NOT_REGULAR;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  long long left = max + 1;
  char buf[65536];
  while (left > 0) {
    ssize_t n = read(fd, buf, left < (long long)sizeof buf ? (size_t)left : sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(1, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return 1;
      off += w;
    }
    left -= n;
  }
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
    puts(INIT_VERSION);
    return 0;
  }
  if (argc >= 2 && strcmp(argv[1], "run") == 0) return cmd_run(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "idle") == 0) return cmd_idle(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "supervise") == 0) return cmd_supervise(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "files") == 0) return cmd_files(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "probe") == 0) return cmd_probe(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "watch") == 0) return cmd_watch(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "read") == 0) return cmd_read(argc - 2, argv + 2);
  usage();
  return 2;
}
