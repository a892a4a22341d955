/* satchelring: see satchelring.h and docs/protocol.md (the normative description of the layout). */
#define _GNU_SOURCE
#include "satchelring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#if !defined(__linux__)
#error "satchelring needs Linux (futex, /dev/shm); other systems use the pipe transport"
#endif
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the ring's layout is little-endian: this host is not"
#endif

#ifndef SR_SOURCE_HASH
#define SR_SOURCE_HASH ""
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every Linux architecture (since 5.3) */
#endif

/* ---------------------------------------------------------------------------------------------- */
/* The segment's layout (docs/protocol.md, "Segment layout"). Offsets are checked below.           */

enum { SIDE_ABSENT = 0, SIDE_OPEN = 1, SIDE_CLOSED = 2 };

typedef struct sr_side_block {
    _Atomic int32_t pid;
    _Atomic uint32_t state;
    _Atomic uint32_t flags;
    uint32_t reserved[13];
} sr_side_block; /* 64 bytes */

typedef struct sr_ctl {
    _Atomic uint64_t head; /* bytes ever written into this ring (the producer's counter) */
    uint8_t pad0[120];
    _Atomic uint64_t tail; /* bytes ever consumed (the consumer's counter) */
    uint8_t pad1[120];
    _Atomic uint32_t data_seq;  /* futex word: the consumer sleeps here waiting for data */
    _Atomic uint32_t data_wait; /* 1 while the consumer is (about to be) asleep on data_seq */
    uint8_t pad2[120];
    _Atomic uint32_t space_seq;  /* futex word: the producer sleeps here waiting for space */
    _Atomic uint32_t space_wait; /* 1 while the producer is (about to be) asleep on space_seq */
    uint8_t pad3[120];
} sr_ctl; /* 512 bytes */

typedef struct sr_header {
    char magic[8];           /* 0 */
    uint32_t layout_version; /* 8 */
    uint32_t header_size;    /* 12 */
    uint64_t capacity;       /* 16 */
    uint64_t segment_size;   /* 24 */
    uint64_t created_ns;     /* 32 */
    uint8_t reserved0[24];   /* 40 */
    sr_side_block side[2];   /* 64: creator, 128: attacher */
    uint8_t reserved1[320];  /* 192 */
    sr_ctl ring[2];          /* 512: requests (creator -> attacher), 1024: responses */
} sr_header;

_Static_assert(sizeof(sr_side_block) == 64, "side block");
_Static_assert(sizeof(sr_ctl) == 512, "ring control block");
_Static_assert(offsetof(sr_header, capacity) == 16, "capacity");
_Static_assert(offsetof(sr_header, created_ns) == 32, "created_ns");
_Static_assert(offsetof(sr_header, side) == 64, "side blocks");
_Static_assert(offsetof(sr_header, ring) == 512, "ring blocks");
_Static_assert(offsetof(sr_ctl, tail) == 128, "tail");
_Static_assert(offsetof(sr_ctl, data_seq) == 256, "data_seq");
_Static_assert(offsetof(sr_ctl, space_seq) == 384, "space_seq");
_Static_assert(sizeof(sr_header) <= SR_HEADER_SIZE, "header fits its page");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4, "atomic sizes");

#define MAX_MESSAGE (UINT64_C(1) << 62) /* a larger announced length means a corrupt ring */
#define SLICE_NS INT64_C(100000000)      /* sleep at most this long between liveness checks */
#define NOFUTEX_MIN_NS INT64_C(20000)    /* polling a peer that cannot wake us: 20 us ... */
#define NOFUTEX_MAX_NS INT64_C(1000000)  /* ... doubling up to 1 ms */

struct sr_ring {
    uint8_t *base;
    uint64_t map_size;
    sr_header *h;
    sr_ctl *tx, *rx;   /* the ring this side produces into / consumes from */
    uint8_t *txd, *rxd; /* their data areas */
    uint64_t cap, mask, chunk;
    int side;
    sr_side_block *me, *peer;
    char name[128];
    int peer_fd; /* hangs up when the peer is gone (creator side, optional) */
    int pidfd;
    int32_t pidfd_pid;
    pid_t owner;
    int unlinked;
    _Atomic int64_t checked_at; /* when the peer's liveness was last checked (CLOCK_MONOTONIC ns) */
    atomic_flag check_lock;     /* a sender and a receiver thread may both look at the peer */
    _Atomic int shut;
    _Atomic int peer_dead; /* sticky: once the peer is known dead, every call says so */
    /* producer state */
    uint64_t tx_head, tx_tail_seen, tx_published;
    int tx_active, tx_prefix;
    uint64_t tx_total, tx_done;
    /* consumer state */
    uint64_t rx_tail, rx_head_seen, rx_published;
    int rx_active;
    uint64_t rx_len, rx_done;
    sr_spin_state spin[2]; /* adaptive spinning, per direction (W_DATA, W_SPACE) */
    struct {
        _Atomic uint64_t waits, spins, spin_successes, sleeps, wakes;
    } stats; /* relaxed counters: a sender and a receiver thread may both count */
};

#define COUNT(r, field) atomic_fetch_add_explicit(&(r)->stats.field, 1, memory_order_relaxed)

static _Thread_local int t_errno;

/* ---------------------------------------------------------------------------------------------- */
/* small helpers                                                                                    */

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static int os_error(void) {
    t_errno = errno;
    return SR_ERR_OS;
}

static long futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    return syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, val, &ts, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr) {
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* After publishing a counter: wake the other side if it is parked (docs/protocol.md, "Waking"). */
static inline int notify(_Atomic uint32_t *seq, _Atomic uint32_t *wait) {
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(wait, memory_order_relaxed)) {
        atomic_fetch_add_explicit(seq, 1, memory_order_release);
        futex_wake(seq);
        return 1;
    }
    return 0;
}

static void copy_in(uint8_t *data, uint64_t cap, uint64_t pos, const uint8_t *src, uint64_t n) {
    uint64_t off = pos & (cap - 1), first = cap - off;
    if (first >= n) {
        memcpy(data + off, src, n);
    } else {
        memcpy(data + off, src, first);
        memcpy(data, src + first, n - first);
    }
}

static void copy_out(uint8_t *dst, const uint8_t *data, uint64_t cap, uint64_t pos, uint64_t n) {
    uint64_t off = pos & (cap - 1), first = cap - off;
    if (first >= n) {
        memcpy(dst, data + off, n);
    } else {
        memcpy(dst, data + off, first);
        memcpy(dst + first, data, n - first);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* process-wide tuning: the spin budget and whether a CPU is free                                  */

static _Atomic int64_t g_spin_ns = -1; /* the override: -1 not read yet, -2 none (adaptive), >= 0 */
static _Atomic int64_t g_wake_ns;      /* the wake-up latency estimate, 0: not measured yet */
static _Atomic long g_ncpu;
static _Atomic int g_loadavg_fd = -2;
static _Atomic int64_t g_running_at;
static _Atomic long g_running;

#define SPIN_MIN_NS INT64_C(10000)   /* an adaptive budget is at least 10 us ... */
#define SPIN_MAX_NS INT64_C(1000000) /* ... and at most 1 ms */
#define WAKE_DEFAULT_NS INT64_C(50000) /* if the wake-up latency cannot be measured */

/* SATCHEL_RING_SPIN_US (or sr_set_spin_ns): a fixed budget; -1 when the budget adapts. */
static int64_t spin_override(void) {
    int64_t v = atomic_load_explicit(&g_spin_ns, memory_order_relaxed);
    if (v != -1) return v == -2 ? -1 : v;
    v = -2;
    const char *env = getenv("SATCHEL_RING_SPIN_US");
    if (env && *env) {
        char *end;
        long long us = strtoll(env, &end, 10);
        if (*end == '\0' && us >= 0 && us <= 10000000) v = (int64_t)us * 1000;
    }
    atomic_store_explicit(&g_spin_ns, v, memory_order_relaxed);
    return v == -2 ? -1 : v;
}

void sr_set_spin_ns(int64_t spin_ns) {
    atomic_store_explicit(&g_spin_ns, spin_ns >= 0 ? spin_ns : -2, memory_order_relaxed);
}

int64_t sr_get_spin_ns(void) { return spin_override(); }

/* The budget that pays for itself: spinning up to about what a sleep costs in latency (a futex wake-up,
 * twice over: 2-competitive) wins whenever the peer answers within it, and loses at most that much CPU
 * when it does not. */
static int64_t budget_for(int64_t wake_ns, int64_t override_ns) {
    if (override_ns >= 0) return override_ns;
    int64_t b = 2 * wake_ns;
    return b < SPIN_MIN_NS ? SPIN_MIN_NS : b > SPIN_MAX_NS ? SPIN_MAX_NS : b;
}

static int64_t current_budget(const sr_spin_state *s, int64_t wake_ns, int64_t override_ns) {
    int64_t base = budget_for(wake_ns, override_ns);
    return override_ns >= 0 || s->budget_ns < base ? base : s->budget_ns;
}

int64_t sr_spin_plan(sr_spin_state *s, int64_t wake_ns, int64_t override_ns) {
    if (override_ns == 0) return 0;
    if (s->skip) { /* backing off after failed spins: sleep at once, for a bounded number of waits */
        s->skip--;
        return 0;
    }
    return current_budget(s, wake_ns, override_ns);
}

void sr_spin_learn(sr_spin_state *s, int64_t wake_ns, int64_t override_ns, int spun, int spin_ended_it,
                   int64_t waited_ns) {
    int64_t base = budget_for(wake_ns, override_ns), cur = current_budget(s, wake_ns, override_ns);
    int adaptive = override_ns < 0;
    if (spun && spin_ended_it) {
        s->backoff = 0; /* the peer answers within the budget: keep spinning */
        s->skip = 0;
        /* follow the peer's turnaround: twice the typical wait a spin ended, never below the base */
        s->typical_ns = s->typical_ns ? s->typical_ns + (waited_ns - s->typical_ns) / 8 : waited_ns;
        int64_t target = 2 * s->typical_ns < base ? base : 2 * s->typical_ns;
        if (adaptive) s->budget_ns = cur + (target - cur) / 8;
    } else if (spun && adaptive && waited_ns < 4 * cur && cur < SPIN_MAX_NS) {
        /* the peer answered soon after the spin gave up (a real wake-up costs more than the probe's):
         * the budget was too short, not the peer too slow */
        s->budget_ns = 2 * cur > SPIN_MAX_NS ? SPIN_MAX_NS : 2 * cur;
    } else if (spun) { /* wasted: skip the next 1, 2, 4 ... SR_SPIN_MAX_SKIP waits, then try again */
        s->backoff = s->backoff ? (s->backoff * 2 > SR_SPIN_MAX_SKIP ? SR_SPIN_MAX_SKIP : s->backoff * 2) : 1;
        s->skip = s->backoff;
    } else if (waited_ns - wake_ns <= cur) {
        /* a sleep that, less its wake-up, was short: a spin would have ended it, so try again now */
        s->backoff = 0;
        s->skip = 0;
    }
}

/* Wake-up latency: half the median round trip of a futex ping-pong between two threads of this process
 * (each side sleeps in FUTEX_WAIT until the other wakes it, as a ring's two sides do). */
#define PROBE_ROUNDS 9
typedef struct {
    _Atomic uint32_t ping, pong;
    int cpu;        /* the CPU the prober runs on (and stays on), -1 if not pinned */
    cpu_set_t mask; /* the process's CPUs */
} probe_words;

/* Run the echo on another CPU than the prober: the wake-up a spin would save is the cross-CPU one (two
 * sides on one CPU never both spin), and it is the slow one where idle CPUs are halted (virtual
 * machines). */
static void pin_elsewhere(probe_words *w) {
    if (w->cpu < 0) return;
    cpu_set_t set = w->mask;
    CPU_CLR(w->cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *probe_echo(void *arg) {
    probe_words *w = arg;
    pin_elsewhere(w);
    for (uint32_t i = 1; i <= PROBE_ROUNDS + 2; i++) {
        while (atomic_load(&w->ping) < i) syscall(SYS_futex, (uint32_t *)&w->ping, FUTEX_WAIT_PRIVATE, i - 1, NULL, NULL, 0);
        atomic_store(&w->pong, i);
        syscall(SYS_futex, (uint32_t *)&w->pong, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    return NULL;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t sr_probe_wake_ns(void) {
    probe_words w = {0, 0, sched_getcpu()};
    pthread_t t;
    int64_t rt[PROBE_ROUNDS];
    cpu_set_t saved, here;
    int pinned = w.cpu >= 0 && sched_getaffinity(0, sizeof saved, &saved) == 0 && CPU_COUNT(&saved) > 1;
    w.mask = saved;
    if (pinned) { /* the prober stays where it is for the probe (restored after) */
        CPU_ZERO(&here);
        CPU_SET(w.cpu, &here);
        pinned = sched_setaffinity(0, sizeof here, &here) == 0;
    }
    if (!pinned) w.cpu = -1;
    int started = pthread_create(&t, NULL, probe_echo, &w) == 0;
    if (!started) {
        if (pinned) sched_setaffinity(0, sizeof saved, &saved);
        atomic_store_explicit(&g_wake_ns, WAKE_DEFAULT_NS, memory_order_relaxed);
        return WAKE_DEFAULT_NS;
    }
    for (uint32_t i = 1; i <= PROBE_ROUNDS + 2; i++) { /* the first two warm up (thread start, caches) */
        int64_t t0 = now_ns();
        atomic_store(&w.ping, i);
        syscall(SYS_futex, (uint32_t *)&w.ping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        while (atomic_load(&w.pong) < i) syscall(SYS_futex, (uint32_t *)&w.pong, FUTEX_WAIT_PRIVATE, i - 1, NULL, NULL, 0);
        if (i > 2) rt[i - 3] = now_ns() - t0;
    }
    pthread_join(t, NULL);
    if (pinned) sched_setaffinity(0, sizeof saved, &saved);
    qsort(rt, PROBE_ROUNDS, sizeof rt[0], cmp64);
    int64_t v = rt[PROBE_ROUNDS / 2] / 2;
    if (v < 1) v = 1;
    atomic_store_explicit(&g_wake_ns, v, memory_order_relaxed);
    return v;
}

int64_t sr_wake_ns(void) {
    int64_t v = atomic_load_explicit(&g_wake_ns, memory_order_relaxed);
    return v ? v : sr_probe_wake_ns(); /* two threads probing at once: both measure, either result is fine */
}

int64_t sr_spin_budget_ns(void) {
    int64_t o = spin_override();
    return o >= 0 ? o : budget_for(sr_wake_ns(), o);
}

/* The CPUs this process may run on (its affinity mask, within those online). */
static long ncpu(void) {
    long n = atomic_load_explicit(&g_ncpu, memory_order_relaxed);
    if (n == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < n) n = CPU_COUNT(&set);
        if (n < 1) n = 1;
        atomic_store_explicit(&g_ncpu, n, memory_order_relaxed);
    }
    return n;
}

/* Runnable tasks on the whole machine right now (the 4th field of /proc/loadavg, "running/total"),
 * -1 if unknown. It counts the calling thread itself. */
static long nr_running(void) {
    int fd = atomic_load_explicit(&g_loadavg_fd, memory_order_acquire);
    if (fd == -2) {
        int opened = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
        int expected = -2;
        if (!atomic_compare_exchange_strong(&g_loadavg_fd, &expected, opened < 0 ? -1 : opened)) {
            if (opened >= 0) close(opened);
        }
        fd = atomic_load_explicit(&g_loadavg_fd, memory_order_acquire);
    }
    if (fd < 0) return -1;
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = '\0';
    const char *p = buf;
    for (int spaces = 0; *p && spaces < 3; p++)
        if (*p == ' ') spaces++;
    char *end;
    long v = strtol(p, &end, 10);
    return (end != p && *end == '/') ? v : -1;
}

/* Runnable tasks other than this thread and its peer, sampled at most once a millisecond. The sample
 * counts the peer only when it is awake, so it is taken out only then: caching the raw count instead
 * would count a peer asleep at sampling time as absent for the next millisecond of waits. */
static long others_running(sr_ring *r, int64_t now) {
    int64_t at = atomic_load_explicit(&g_running_at, memory_order_relaxed);
    if (at && now - at < 1000000) return atomic_load_explicit(&g_running, memory_order_relaxed);
    int peer_asleep = atomic_load_explicit(&r->tx->data_wait, memory_order_relaxed) ||
                      atomic_load_explicit(&r->rx->space_wait, memory_order_relaxed);
    long running = nr_running();
    long others = -1; /* unknown: do not spin */
    if (running >= 0) {
        others = running - 1 - (peer_asleep ? 0 : 1);
        if (others < 0) others = 0;
    }
    atomic_store_explicit(&g_running, others, memory_order_relaxed);
    atomic_store_explicit(&g_running_at, now, memory_order_relaxed);
    return others;
}

/* ---------------------------------------------------------------------------------------------- */
/* liveness                                                                                         */

int sr_pid_gone(int32_t pid) {
    if (pid <= 0) return -1;
    if (kill(pid, 0) == -1 && errno == ESRCH) return 1;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 1 : -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    if (!paren || paren[1] != ' ') return -1;
    return (paren[2] == 'Z' || paren[2] == 'X') ? 1 : 0;
}

static void unlink_name(sr_ring *r) {
    if (!r->unlinked && r->name[0]) {
        shm_unlink(r->name);
        r->unlinked = 1;
    }
}

/* 1 if the peer process is gone (then the name is unlinked: the survivor cleans up). */
static int peer_gone_locked(sr_ring *r);
static int peer_gone(sr_ring *r) {
    while (atomic_flag_test_and_set_explicit(&r->check_lock, memory_order_acquire)) sched_yield();
    int gone = peer_gone_locked(r);
    atomic_flag_clear_explicit(&r->check_lock, memory_order_release);
    return gone;
}

static int peer_gone_locked(sr_ring *r) {
    int gone = 0;
    if (r->peer_fd >= 0) {
        struct pollfd p = {r->peer_fd, POLLIN, 0};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) gone = 1;
    }
    int32_t pid = atomic_load_explicit(&r->peer->pid, memory_order_acquire);
    if (!gone && pid > 0) {
        if (r->pidfd_pid != pid) {
            if (r->pidfd >= 0) close(r->pidfd);
            r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
            r->pidfd_pid = pid;
            if (r->pidfd < 0 && errno == ESRCH) gone = 1;
        }
        if (!gone && r->pidfd >= 0) {
            struct pollfd p = {r->pidfd, POLLIN, 0};
            gone = poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
        } else if (!gone) {
            gone = sr_pid_gone(pid) == 1;
        }
    }
    if (gone) {
        atomic_store(&r->peer_dead, 1);
        unlink_name(r);
    }
    return gone;
}

/* ---------------------------------------------------------------------------------------------- */
/* waiting                                                                                          */

enum { W_DATA = 0, W_SPACE = 1 };

/* How many bytes are there to read (W_DATA) or room to write (W_SPACE); refreshes the cached counter. */
static inline uint64_t available(sr_ring *r, int what) {
    if (what == W_DATA) {
        r->rx_head_seen = atomic_load_explicit(&r->rx->head, memory_order_acquire);
        return r->rx_head_seen - r->rx_tail;
    }
    r->tx_tail_seen = atomic_load_explicit(&r->tx->tail, memory_order_acquire);
    return r->cap - (r->tx_head - r->tx_tail_seen);
}

static inline int closed_state(sr_ring *r) {
    if (atomic_load_explicit(&r->shut, memory_order_acquire)) return SR_SELF_CLOSED;
    if (atomic_load_explicit(&r->peer->state, memory_order_acquire) == SIDE_CLOSED) return SR_CLOSED;
    if (atomic_load_explicit(&r->peer_dead, memory_order_relaxed)) return SR_PEER_DEAD;
    return SR_OK;
}

/* Whether the machine and the peer make a spin sensible now (the budget's history is sr_spin_plan's). */
static int spin_worthwhile(sr_ring *r, int what, int64_t now) {
    if (ncpu() < 2) return 0;
    if (what == W_DATA && atomic_load_explicit(&r->tx->data_wait, memory_order_relaxed) &&
        atomic_load_explicit(&r->tx->head, memory_order_relaxed) ==
            atomic_load_explicit(&r->tx->tail, memory_order_relaxed)) {
        return 0; /* the peer sleeps waiting for us, with nothing to read: it will not answer soon */
    }
    /* Spin only if this thread, the peer and every other runnable task each have a CPU: a spinner must
     * never keep the peer (or anyone) waiting for a CPU. */
    long others = others_running(r, now);
    return others >= 0 && others + 2 <= ncpu();
}

/* Wait until `need` bytes can be read / written. */
static int wait_for(sr_ring *r, int what, uint64_t need, int64_t deadline) {
    if (available(r, what) >= need) return SR_OK;
    int rc = closed_state(r);
    if (rc != SR_OK) {
        if (available(r, what) >= need) return SR_OK;
        return rc;
    }
    int64_t start = now_ns(), now = start;
    if (deadline >= 0 && now >= deadline) return SR_TIMEOUT;
    _Atomic uint32_t *seq = what == W_DATA ? &r->rx->data_seq : &r->tx->space_seq;
    _Atomic uint32_t *wait = what == W_DATA ? &r->rx->data_wait : &r->tx->space_wait;
    int64_t override = spin_override();
    int64_t wake = override >= 0 ? 0 : sr_wake_ns();
    int64_t budget = sr_spin_plan(&r->spin[what], wake, override);
    int result = SR_TIMEOUT, spun = 0, spin_ended_it = 0;

    COUNT(r, waits);
    if (budget > 0 && spin_worthwhile(r, what, now)) {
        COUNT(r, spins);
        spun = 1;
        int64_t spin_end = start + budget, next_yield = start + 5000;
        for (unsigned i = 1;; i++) {
            if (available(r, what) >= need) {
                result = SR_OK;
                spin_ended_it = 1;
                COUNT(r, spin_successes);
                goto done;
            }
            cpu_relax();
            if ((i & 31) == 0) {
                now = now_ns();
                if (now >= spin_end || (deadline >= 0 && now >= deadline)) break;
                if (now >= next_yield) { /* let a runnable task (maybe the peer) have this CPU */
                    sched_yield();
                    next_yield = now + 5000;
                }
            }
        }
    }

    int64_t poll_ns = NOFUTEX_MIN_NS;
    for (;;) {
        if (available(r, what) >= need) {
            result = SR_OK;
            break;
        }
        rc = closed_state(r);
        if (rc != SR_OK) {
            result = available(r, what) >= need ? SR_OK : rc;
            break;
        }
        now = now_ns();
        if (now - atomic_load_explicit(&r->checked_at, memory_order_relaxed) >= SLICE_NS) {
            /* at most every slice, and whenever a whole slice ran out */
            atomic_store_explicit(&r->checked_at, now, memory_order_relaxed);
            if (peer_gone(r)) {
                result = available(r, what) >= need ? SR_OK : SR_PEER_DEAD;
                break;
            }
        }
        if (deadline >= 0 && now >= deadline) {
            result = SR_TIMEOUT;
            break;
        }
        int64_t slice = SLICE_NS;
        if (atomic_load_explicit(&r->peer->flags, memory_order_relaxed) & SR_FLAG_NO_FUTEX) {
            slice = poll_ns; /* the peer will never wake us: look again soon */
            poll_ns = poll_ns * 2 > NOFUTEX_MAX_NS ? NOFUTEX_MAX_NS : poll_ns * 2;
        }
        if (deadline >= 0 && deadline - now < slice) slice = deadline - now;
        uint32_t seen = atomic_load_explicit(seq, memory_order_acquire);
        atomic_store_explicit(wait, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (available(r, what) >= need || closed_state(r) != SR_OK) {
            atomic_store_explicit(wait, 0, memory_order_relaxed);
            continue;
        }
        COUNT(r, sleeps);
        if (futex_wait(seq, seen, slice) == -1 && errno == ETIMEDOUT && slice == SLICE_NS)
            atomic_store_explicit(&r->checked_at, 0, memory_order_relaxed); /* look at the peer now */
        atomic_store_explicit(wait, 0, memory_order_relaxed);
    }
done:
    if (result == SR_OK) sr_spin_learn(&r->spin[what], wake, override, spun, spin_ended_it, now_ns() - start);
    return result;
}

/* ---------------------------------------------------------------------------------------------- */
/* opening and closing                                                                              */

int sr_abi_version(void) { return SR_ABI_VERSION; }
const char *sr_source_hash(void) { return SR_SOURCE_HASH; }
int sr_last_errno(void) { return t_errno; }

const char *sr_strerror(int code) {
    switch (code) {
    case SR_OK: return "ok";
    case SR_TIMEOUT: return "timed out";
    case SR_CLOSED: return "the peer closed the ring";
    case SR_PEER_DEAD: return "the peer process is gone";
    case SR_MORE: return "the message is larger than the buffer";
    case SR_SELF_CLOSED: return "this end of the ring was closed";
    case SR_ERR_OS: return "a system call failed";
    case SR_ERR_INVAL: return "invalid argument";
    case SR_ERR_FORMAT: return "not a satchel ring segment of a known layout";
    case SR_ERR_CORRUPT: return "the ring is corrupt";
    default: return "unknown error";
    }
}

static uint64_t random64(void) {
    uint64_t v = 0;
#ifdef SYS_getrandom
    if (syscall(SYS_getrandom, &v, sizeof v, 0) == (long)sizeof v) return v;
#endif
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, &v, sizeof v);
        close(fd);
        if (n == (ssize_t)sizeof v) return v;
    }
    return (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
}

static sr_ring *new_handle(uint8_t *base, uint64_t map_size, int side, const char *name) {
    sr_ring *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->base = base;
    r->map_size = map_size;
    r->h = (sr_header *)base;
    r->cap = r->h->capacity;
    r->mask = r->cap - 1;
    r->chunk = r->cap / 4;
    r->side = side;
    r->me = &r->h->side[side];
    r->peer = &r->h->side[1 - side];
    r->tx = &r->h->ring[side];      /* the creator produces into ring 0, the attacher into ring 1 */
    r->rx = &r->h->ring[1 - side];
    r->txd = base + SR_HEADER_SIZE + (uint64_t)side * r->cap;
    r->rxd = base + SR_HEADER_SIZE + (uint64_t)(1 - side) * r->cap;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->peer_fd = -1;
    r->pidfd = -1;
    atomic_flag_clear(&r->check_lock);
    r->owner = getpid();
    r->tx_head = r->tx_published = atomic_load(&r->tx->head);
    r->tx_tail_seen = atomic_load(&r->tx->tail);
    r->rx_tail = r->rx_published = atomic_load(&r->rx->tail);
    r->rx_head_seen = atomic_load(&r->rx->head);
    return r;
}

int sr_create(const char *name, uint64_t capacity, int peer_fd, uint32_t flags, sr_ring **out) {
    *out = NULL;
    if (capacity == 0) capacity = SR_DEFAULT_CAPACITY;
    if (capacity < SR_MIN_CAPACITY || (capacity & (capacity - 1)) || capacity > (UINT64_C(1) << 40))
        return SR_ERR_INVAL;
    char made[128];
    if (name == NULL) {
        snprintf(made, sizeof made, "%s%d-%016llx", SR_NAME_PREFIX, (int)getpid(),
                 (unsigned long long)random64());
        name = made;
    }
    if (name[0] != '/' || strlen(name) >= sizeof made || strchr(name + 1, '/')) return SR_ERR_INVAL;
    uint64_t size = SR_HEADER_SIZE + 2 * capacity;
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return os_error();
    if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)size) != 0) {
        int rc = os_error();
        close(fd);
        shm_unlink(name);
        return rc;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (base == MAP_FAILED) {
        int rc = os_error();
        close(fd);
        shm_unlink(name);
        return rc;
    }
    close(fd);
    sr_header *h = base;
    h->layout_version = SR_LAYOUT_VERSION;
    h->header_size = SR_HEADER_SIZE;
    h->capacity = capacity;
    h->segment_size = size;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->created_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    atomic_store(&h->side[0].pid, (int32_t)getpid());
    atomic_store(&h->side[0].flags, flags);
    atomic_store(&h->side[0].state, SIDE_OPEN);
    atomic_thread_fence(memory_order_release);
    memcpy(h->magic, SR_MAGIC, 8); /* last: a reader that sees the magic sees the rest */
    sr_ring *r = new_handle(base, size, 0, name);
    if (!r) {
        munmap(base, size);
        shm_unlink(name);
        errno = ENOMEM;
        return os_error();
    }
    r->peer_fd = peer_fd;
    *out = r;
    return SR_OK;
}

int sr_attach(const char *name, uint32_t flags, sr_ring **out) {
    *out = NULL;
    if (!name || name[0] != '/' || strlen(name) >= 128) return SR_ERR_INVAL;
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return os_error();
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = os_error();
        close(fd);
        return rc;
    }
    if ((uint64_t)st.st_size < SR_HEADER_SIZE + 2 * SR_MIN_CAPACITY) {
        close(fd);
        return SR_ERR_FORMAT;
    }
    uint64_t size = (uint64_t)st.st_size;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    int saved = errno;
    close(fd);
    if (base == MAP_FAILED) {
        errno = saved;
        return os_error();
    }
    sr_header *h = base;
    atomic_thread_fence(memory_order_acquire);
    if (memcmp(h->magic, SR_MAGIC, 8) != 0 || h->layout_version != SR_LAYOUT_VERSION ||
        h->header_size != SR_HEADER_SIZE || h->capacity < SR_MIN_CAPACITY ||
        (h->capacity & (h->capacity - 1)) || h->segment_size != size ||
        h->segment_size != SR_HEADER_SIZE + 2 * h->capacity) {
        munmap(base, size);
        return SR_ERR_FORMAT;
    }
    uint32_t expected = SIDE_ABSENT;
    atomic_store(&h->side[1].pid, (int32_t)getpid());
    atomic_store(&h->side[1].flags, flags);
    if (!atomic_compare_exchange_strong(&h->side[1].state, &expected, SIDE_OPEN)) {
        munmap(base, size);
        errno = EBUSY;
        return os_error();
    }
    sr_ring *r = new_handle(base, size, 1, name);
    if (!r) {
        munmap(base, size);
        errno = ENOMEM;
        return os_error();
    }
    unlink_name(r); /* both sides have it mapped: the name is no longer needed */
    *out = r;
    return SR_OK;
}

const char *sr_name(const sr_ring *r) { return r->name; }
const void *sr_segment(const sr_ring *r) { return r->base; }

int sr_stats_get(const sr_ring *r, sr_stats *stats) {
    stats->waits = atomic_load_explicit(&r->stats.waits, memory_order_relaxed);
    stats->spins = atomic_load_explicit(&r->stats.spins, memory_order_relaxed);
    stats->spin_successes = atomic_load_explicit(&r->stats.spin_successes, memory_order_relaxed);
    stats->sleeps = atomic_load_explicit(&r->stats.sleeps, memory_order_relaxed);
    stats->wakes = atomic_load_explicit(&r->stats.wakes, memory_order_relaxed);
    return SR_OK;
}

int sr_info_get(const sr_ring *r, sr_info *info) {
    memset(info, 0, sizeof *info);
    info->capacity = r->cap;
    info->segment_size = r->map_size;
    info->side = r->side;
    info->creator_pid = atomic_load(&r->h->side[0].pid);
    info->attacher_pid = atomic_load(&r->h->side[1].pid);
    info->creator_flags = atomic_load(&r->h->side[0].flags);
    info->attacher_flags = atomic_load(&r->h->side[1].flags);
    info->creator_state = atomic_load(&r->h->side[0].state);
    info->attacher_state = atomic_load(&r->h->side[1].state);
    return SR_OK;
}

static void wake_all(sr_header *h) {
    for (int i = 0; i < 2; i++) {
        atomic_fetch_add(&h->ring[i].data_seq, 1);
        futex_wake(&h->ring[i].data_seq);
        atomic_fetch_add(&h->ring[i].space_seq, 1);
        futex_wake(&h->ring[i].space_seq);
    }
}

void sr_shutdown(sr_ring *r) {
    if (!r || atomic_exchange(&r->shut, 1)) return;
    if (getpid() != r->owner) return; /* a forked child: the segment is its parent's */
    atomic_store(&r->me->state, SIDE_CLOSED);
    wake_all(r->h);
}

void sr_close(sr_ring *r) {
    if (!r) return;
    if (getpid() == r->owner) {
        sr_shutdown(r);
        if (r->side == 0) unlink_name(r);
    }
    munmap(r->base, r->map_size);
    if (r->peer_fd >= 0) close(r->peer_fd);
    if (r->pidfd >= 0) close(r->pidfd);
    free(r);
}

/* ---------------------------------------------------------------------------------------------- */
/* sending                                                                                          */

static inline void publish_head(sr_ring *r) {
    if (r->tx_head != r->tx_published) {
        atomic_store_explicit(&r->tx->head, r->tx_head, memory_order_release);
        r->tx_published = r->tx_head;
        if (notify(&r->tx->data_seq, &r->tx->data_wait)) COUNT(r, wakes);
    }
}

/* Copy `n` bytes of the concatenation of `parts`, from its offset `from`, to the ring at tx_head. */
static void write_parts(sr_ring *r, const sr_part *parts, uint32_t nparts, uint64_t from, uint64_t n) {
    for (uint32_t i = 0; i < nparts && n; i++) {
        uint64_t len = parts[i].len;
        if (from >= len) {
            from -= len;
            continue;
        }
        uint64_t take = min64(len - from, n);
        copy_in(r->txd, r->cap, r->tx_head, (const uint8_t *)parts[i].ptr + from, take);
        r->tx_head += take;
        n -= take;
        from = 0;
    }
}

static int64_t deadline_of(int64_t timeout_ns) {
    if (timeout_ns < 0) return -1;
    int64_t now = now_ns();
    return timeout_ns > INT64_MAX - now ? -1 : now + timeout_ns;
}

/* Look at the peer if that was not done for a slice (a clock read; a system call every 100 ms). */
static int peer_check_due(sr_ring *r) {
    int64_t now = now_ns();
    if (now - atomic_load_explicit(&r->checked_at, memory_order_relaxed) < SLICE_NS) return 0;
    atomic_store_explicit(&r->checked_at, now, memory_order_relaxed);
    return peer_gone(r);
}

int sr_send(sr_ring *r, const sr_part *parts, uint32_t nparts, int64_t timeout_ns) {
    int rc = closed_state(r);
    if (rc != SR_OK) return rc;
    if (!r->tx_active && peer_check_due(r)) return SR_PEER_DEAD; /* nobody would ever read it */
    if (!r->tx_active) {
        uint64_t total = 0;
        for (uint32_t i = 0; i < nparts; i++) {
            if (parts[i].len > MAX_MESSAGE - total) return SR_ERR_INVAL;
            if (parts[i].len && !parts[i].ptr) return SR_ERR_INVAL;
            total += parts[i].len;
        }
        r->tx_total = total;
        r->tx_done = 0;
        r->tx_prefix = 0;
        r->tx_active = 1;
        /* Fast path: a message of at most a chunk that fits now is written whole, published once. */
        if (total <= r->chunk && r->cap - (r->tx_head - r->tx_tail_seen) < 8 + total)
            available(r, W_SPACE);
        if (total <= r->chunk && r->cap - (r->tx_head - r->tx_tail_seen) >= 8 + total) {
            uint64_t le = total; /* the host is little-endian (checked at compile time) */
            copy_in(r->txd, r->cap, r->tx_head, (const uint8_t *)&le, 8);
            r->tx_head += 8;
            write_parts(r, parts, nparts, 0, total);
            r->tx_active = 0;
            publish_head(r);
            return SR_OK;
        }
    }
    int64_t deadline = deadline_of(timeout_ns);
    if (!r->tx_prefix) {
        if (r->cap - (r->tx_head - r->tx_tail_seen) < 8) {
            publish_head(r);
            rc = wait_for(r, W_SPACE, 8, deadline);
            if (rc != SR_OK) return rc;
        }
        uint64_t le = r->tx_total;
        copy_in(r->txd, r->cap, r->tx_head, (const uint8_t *)&le, 8);
        r->tx_head += 8;
        r->tx_prefix = 1;
    }
    while (r->tx_done < r->tx_total) {
        uint64_t remaining = r->tx_total - r->tx_done;
        uint64_t want = min64(remaining, r->chunk);
        uint64_t space = r->cap - (r->tx_head - r->tx_tail_seen);
        if (space < want) space = available(r, W_SPACE);
        if (space < want) {
            publish_head(r); /* never sleep on unpublished bytes: the reader may be waiting for them */
            rc = wait_for(r, W_SPACE, want, deadline);
            if (rc != SR_OK) return rc;
            space = r->cap - (r->tx_head - r->tx_tail_seen);
        }
        uint64_t piece = min64(want, space);
        write_parts(r, parts, nparts, r->tx_done, piece);
        r->tx_done += piece;
        publish_head(r);
    }
    publish_head(r);
    r->tx_active = 0;
    return SR_OK;
}

int sr_send2(sr_ring *r, const void *p0, uint64_t n0, const void *p1, uint64_t n1, int64_t timeout_ns) {
    sr_part parts[2] = {{p0, n0}, {p1, n1}};
    return sr_send(r, parts, 2, timeout_ns);
}

/* ---------------------------------------------------------------------------------------------- */
/* receiving                                                                                        */

static inline void publish_tail(sr_ring *r) {
    if (r->rx_tail != r->rx_published) {
        atomic_store_explicit(&r->rx->tail, r->rx_tail, memory_order_release);
        r->rx_published = r->rx_tail;
        if (notify(&r->rx->space_seq, &r->rx->space_wait)) COUNT(r, wakes);
    }
}

static int recv_body(sr_ring *r, uint8_t *buf, int64_t deadline) {
    while (r->rx_done < r->rx_len) {
        uint64_t avail = r->rx_head_seen - r->rx_tail;
        if (avail == 0) avail = available(r, W_DATA);
        if (avail == 0) {
            publish_tail(r);
            int rc = wait_for(r, W_DATA, 1, deadline);
            if (rc != SR_OK) return rc;
            avail = r->rx_head_seen - r->rx_tail;
        }
        uint64_t piece = min64(min64(avail, r->rx_len - r->rx_done), r->chunk);
        copy_out(buf + r->rx_done, r->rxd, r->cap, r->rx_tail, piece);
        r->rx_tail += piece;
        r->rx_done += piece;
        if (r->rx_done < r->rx_len) publish_tail(r);
    }
    publish_tail(r);
    r->rx_active = 0;
    return SR_OK;
}

int sr_recv(sr_ring *r, void *buf, uint64_t cap, uint64_t *len, int64_t timeout_ns) {
    if (atomic_load_explicit(&r->shut, memory_order_acquire)) return SR_SELF_CLOSED;
    int64_t deadline = -2;
    if (!r->rx_active) {
        if (r->rx_head_seen - r->rx_tail < 8 && available(r, W_DATA) < 8) {
            deadline = deadline_of(timeout_ns);
            int rc = wait_for(r, W_DATA, 8, deadline);
            if (rc != SR_OK) return rc;
        }
        uint64_t n;
        copy_out((uint8_t *)&n, r->rxd, r->cap, r->rx_tail, 8);
        if (n > MAX_MESSAGE) return SR_ERR_CORRUPT;
        r->rx_tail += 8;
        r->rx_len = n;
        r->rx_done = 0;
        r->rx_active = 1;
    }
    *len = r->rx_len;
    if (r->rx_len > cap) {
        publish_tail(r);
        return SR_MORE;
    }
    if (deadline == -2) deadline = deadline_of(timeout_ns);
    return recv_body(r, buf, deadline);
}

int sr_recv_into(sr_ring *r, void *buf, int64_t timeout_ns) {
    if (atomic_load_explicit(&r->shut, memory_order_acquire)) return SR_SELF_CLOSED;
    if (!r->rx_active) return SR_ERR_INVAL;
    return recv_body(r, buf, deadline_of(timeout_ns));
}

uint64_t sr_recv_progress(const sr_ring *r) { return r->rx_active ? r->rx_done : 0; }
int sr_recv_started(const sr_ring *r) { return r->rx_active; }

void sr_advise_buffer(void *buf, uint64_t len) {
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (len < 2 * huge) return;
    uintptr_t start = ((uintptr_t)buf + huge - 1) & ~(huge - 1);
    uintptr_t end = ((uintptr_t)buf + len) & ~(huge - 1);
    if (end > start) madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)buf;
    (void)len;
#endif
}
