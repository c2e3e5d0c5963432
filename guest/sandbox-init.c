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
 *   init idle [--expires-file F]
 *       The init of a persistent sandbox: reaps orphaned processes (so `runsc delete` does not
 *       wait on zombies) and, when F holds a Unix time in seconds that has passed, ends the
 *       sandbox (the TTL holds with no pyro process alive). F is re-read every few seconds.
 *
 *   init watch --pid P --marker M --expires-file F
 *       Run on the HOST, detached, beside a microVM: kills process P (only while its command
 *       line still contains M, so a reused pid is never hit) once the time in F has passed,
 *       and exits when P is gone. The QEMU engine's equivalent of `idle`'s expiry.
 *
 * Built static: cc -static -O2 -o dist/guest/pyro-sandbox-init guest/sandbox-init.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define INIT_VERSION "pyro-sandbox-init 1"
#define EXPIRY_POLL_MS 5000

extern char **environ;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(void) {
  fprintf(stderr,
          "usage: init run [--deadline-ms N] -- PROG [ARGS...]\n"
          "       init idle [--expires-file FILE]\n"
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

static int cmd_run(int argc, char **argv) {
  int64_t deadline_ms = 0;
  int i = 0;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--deadline-ms") == 0 && i + 1 < argc) {
      deadline_ms = strtoll(argv[++i], NULL, 10);
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

static int64_t read_expiry(const char *path) {
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  long long v = 0;
  if (fscanf(f, "%lld", &v) != 1) v = 0;
  fclose(f);
  return (int64_t)v;
}

static int cmd_idle(int argc, char **argv) {
  const char *expires_file = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--expires-file") == 0 && i + 1 < argc) expires_file = argv[++i];
    else usage();
  }
  sigset_t sigs = handled_signals();
  sigprocmask(SIG_BLOCK, &sigs, NULL);
  for (;;) {
    int ignored;
    reap_children(-1, &ignored);
    if (expires_file) {
      int64_t at = read_expiry(expires_file);
      if (at > 0 && (int64_t)time(NULL) >= at) {
        fprintf(stderr, "pyro: sandbox past its expiry (%lld); stopping\n", (long long)at);
        return 0;
      }
    }
    struct timespec ts = {EXPIRY_POLL_MS / 1000, (EXPIRY_POLL_MS % 1000) * 1000000};
    siginfo_t si;
    int sig = sigtimedwait(&sigs, &si, expires_file ? &ts : NULL);
    if (sig == SIGTERM || sig == SIGHUP || sig == SIGINT) return 0;
  }
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
  for (;;) {
    if (!process_matches(pid, marker)) return 0;
    int64_t at = read_expiry(expires_file);
    if (at > 0 && (int64_t)time(NULL) >= at) {
      kill(pid, SIGKILL);
      return 0;
    }
    sleep(EXPIRY_POLL_MS / 1000);
  }
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
    puts(INIT_VERSION);
    return 0;
  }
  if (argc >= 2 && strcmp(argv[1], "run") == 0) return cmd_run(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "idle") == 0) return cmd_idle(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "watch") == 0) return cmd_watch(argc - 2, argv + 2);
  usage();
  return 2;
}
