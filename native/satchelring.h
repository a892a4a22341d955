/* satchelring: a pair of single-producer single-consumer byte rings in one POSIX shared-memory
 * segment, with futex wait/wake. The byte layout and the protocol are specified in docs/protocol.md;
 * this header is the C ABI that Python loads through ctypes (no Python C-API, no C++ runtime).
 *
 * One side *creates* the segment (the caller), the other *attaches* by name (the worker). Ring 0
 * carries requests (creator -> attacher), ring 1 responses (attacher -> creator). A handle is used by
 * one thread at a time, except sr_shutdown(), which any thread may call to wake and stop the others.
 */
#ifndef SATCHELRING_H
#define SATCHELRING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SR_ABI_VERSION 1       /* of this C interface (bumped when a signature changes) */
#define SR_LAYOUT_VERSION 1    /* of the segment's byte layout (docs/protocol.md) */
#define SR_MAGIC "SATCHRNG"    /* the first 8 bytes of every segment */
#define SR_NAME_PREFIX "/satchel-"
#define SR_HEADER_SIZE 4096u
#define SR_MIN_CAPACITY 4096u
#define SR_DEFAULT_CAPACITY (1u << 20)

/* Return codes. Non-negative: an outcome; negative: an error (see sr_strerror). */
enum {
    SR_OK = 0,
    SR_TIMEOUT = 1,     /* nothing (more) within the timeout; the operation can be resumed */
    SR_CLOSED = 2,      /* the peer closed its end */
    SR_PEER_DEAD = 3,   /* the peer process is gone (or never attached and its liveness fd hung up) */
    SR_MORE = 4,        /* sr_recv: the message is larger than the buffer given; continue with sr_recv_into */
    SR_SELF_CLOSED = 5, /* this handle was shut down (sr_shutdown) */
    SR_ERR_OS = -1,     /* a system call failed; sr_last_errno() says which errno */
    SR_ERR_INVAL = -2,  /* bad argument (capacity not a power of two, name too long, no message pending...) */
    SR_ERR_FORMAT = -3, /* the segment is not a satchel ring of a layout this library reads */
    SR_ERR_CORRUPT = -4 /* the ring holds an impossible length or counter */
};

/* Side flags (the `flags` word of a side block). */
#define SR_FLAG_NO_FUTEX 1u /* this side neither sleeps in FUTEX_WAIT nor issues FUTEX_WAKE: poll it */

typedef struct sr_ring sr_ring;

typedef struct sr_part {
    const void *ptr;
    uint64_t len;
} sr_part;

typedef struct sr_info {
    uint64_t capacity;
    uint64_t segment_size;
    int32_t side; /* 0 creator, 1 attacher */
    int32_t creator_pid;
    int32_t attacher_pid;
    uint32_t creator_flags;
    uint32_t attacher_flags;
    uint32_t creator_state;
    uint32_t attacher_state;
    uint32_t reserved;
} sr_info;

/* What this handle's waits did (counted per handle). */
typedef struct sr_stats {
    uint64_t waits;          /* calls that had to wait for data or room */
    uint64_t spins;          /* of those, the ones that spun first */
    uint64_t spin_successes; /* and the spins that ended with data or room */
    uint64_t sleeps;         /* FUTEX_WAIT calls */
    uint64_t wakes;          /* FUTEX_WAKE calls (made only when the peer was parked) */
} sr_stats;

int sr_abi_version(void);
const char *sr_source_hash(void); /* set at build time (-DSR_SOURCE_HASH=...), "" if not */
const char *sr_strerror(int code);
int sr_last_errno(void); /* errno of the last SR_ERR_OS in this thread */

/* Creator: a new segment named `name` (NULL: "/satchel-<pid>-<random>"), `capacity` bytes per ring
 * (0: the default; else a power of two >= SR_MIN_CAPACITY). `peer_fd` (or -1): a descriptor that
 * hangs up when the peer process is gone (the read end of a pipe whose write end only the peer holds);
 * the handle owns it and closes it. `flags`: SR_FLAG_* announced for this side. */
int sr_create(const char *name, uint64_t capacity, int peer_fd, uint32_t flags, sr_ring **out);
/* Attacher: map the segment `name` created by the peer; unlinks the name (it is no longer needed). */
int sr_attach(const char *name, uint32_t flags, sr_ring **out);

const char *sr_name(const sr_ring *r);
/* The mapped segment (header first), for inspection and conformance tests; valid until sr_close. */
const void *sr_segment(const sr_ring *r);
int sr_info_get(const sr_ring *r, sr_info *info);
int sr_stats_get(const sr_ring *r, sr_stats *stats);

/* Send one message made of `nparts` parts (concatenated). Waits for space up to `timeout_ns`
 * (< 0: forever). On SR_TIMEOUT the message is partly written: call again with the same parts to
 * resume (nothing else may be sent in between). */
int sr_send(sr_ring *r, const sr_part *parts, uint32_t nparts, int64_t timeout_ns);
/* The same with two parts given directly (the envelope header and its payload). */
int sr_send2(sr_ring *r, const void *p0, uint64_t n0, const void *p1, uint64_t n1, int64_t timeout_ns);

/* Receive the next message. If its length is <= `cap` it is copied into `buf`: SR_OK, *len set.
 * Otherwise SR_MORE, *len = its length: continue with sr_recv_into and a buffer of that length.
 * On SR_TIMEOUT a message may be partly received into `buf`: call again with the same buffer. */
int sr_recv(sr_ring *r, void *buf, uint64_t cap, uint64_t *len, int64_t timeout_ns);
/* Continue the pending large message into `buf` (of its full length); SR_OK when complete. */
int sr_recv_into(sr_ring *r, void *buf, int64_t timeout_ns);
/* Bytes of the pending message received so far (0 when none is pending). */
uint64_t sr_recv_progress(const sr_ring *r);
/* 1 while a message has started (its length was read) and is not yet complete. */
int sr_recv_started(const sr_ring *r);

/* Mark this side closed and wake every waiter (of both processes) on the segment; later calls on the
 * handle return SR_SELF_CLOSED. Safe to call from another thread while one is blocked in a call. */
void sr_shutdown(sr_ring *r);
/* Shut down (unless already), unmap, close descriptors, unlink the name if this side created it, and
 * free the handle. No other thread may be using the handle. In a forked child (another pid than the
 * one that opened it) only unmaps: the parent's channel is left as it is. */
void sr_close(sr_ring *r);

/* A hint for a large buffer about to receive a message (>= 4 MiB): back it with transparent huge pages
 * where the system allows it (madvise MADV_HUGEPAGE), so filling it faults 2 MiB at a time. */
void sr_advise_buffer(void *buf, uint64_t len);

/* Whether process `pid` is gone (1), alive (0), or unknown (-1); zombies count as gone. */
int sr_pid_gone(int32_t pid);

/* Tuning and introspection (process-wide). The spin budget adapts to the machine (about twice the
 * wake-up latency, within 10 us .. 1 ms) unless overridden: SATCHEL_RING_SPIN_US, or sr_set_spin_ns
 * (>= 0: a fixed budget, 0 never spins; < 0: adaptive again). sr_get_spin_ns: the override, -1 if none. */
void sr_set_spin_ns(int64_t spin_ns);
int64_t sr_get_spin_ns(void);
/* The wake-up latency estimate (ns): measured once per process, on first need, by a futex ping-pong
 * between two threads; sr_probe_wake_ns measures it again now. */
int64_t sr_wake_ns(void);
int64_t sr_probe_wake_ns(void);
/* The budget a wait would spin for now, if nothing tells it not to (ns). */
int64_t sr_spin_budget_ns(void);

/* The adaptive spin's state machine (one per handle and direction; exposed so it can be tested alone).
 * Before a wait, sr_spin_plan gives its budget (0: sleep at once); after it, sr_spin_learn says what
 * happened. The budget starts at twice the wake-up latency; it doubles (up to 1 ms) when the peer
 * answered within 4 budgets of the wait's start, and follows twice the typical wait a spin ended. A spin
 * that did not end its wait otherwise makes the next 1, 2, 4 ... waits skip spinning, never more than
 * SR_SPIN_MAX_SKIP in a row, so spinning is always tried again; one that did resets that. */
#define SR_SPIN_MAX_SKIP 64u
typedef struct sr_spin_state {
    uint32_t backoff;   /* how many waits the next failed spin makes skip (0: none failed lately) */
    uint32_t skip;      /* waits left that sleep at once */
    int64_t budget_ns;  /* the learnt budget (0: not yet; never below twice the wake-up latency) */
    int64_t typical_ns; /* average length of the waits a spin ended */
} sr_spin_state;
int64_t sr_spin_plan(sr_spin_state *s, int64_t wake_ns, int64_t override_ns);
void sr_spin_learn(sr_spin_state *s, int64_t wake_ns, int64_t override_ns, int spun, int spin_ended_it,
                   int64_t waited_ns);

#ifdef __cplusplus
}
#endif
#endif
