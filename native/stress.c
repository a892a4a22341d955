/* A C-only stress test of the ring: two processes (fork) exchange messages of random sizes through a
 * small ring (so most wrap and many stream in chunks), both directions at once, and check every byte.
 *
 *   cc -O1 -g -std=c11 -fsanitize=address,undefined -o /tmp/ringstress native/stress.c native/satchelring.c -lrt
 *   /tmp/ringstress [messages] [capacity]
 *
 * Not part of the Python test suite (tests/native/ covers the same ground through the real transport);
 * run it after changing satchelring.c. Exit status 0 when every message arrived intact.
 */
#define _GNU_SOURCE
#include "satchelring.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t size_of(uint64_t i, uint64_t cap) {
    uint64_t x = i * 2654435761u % 1000;
    if (x < 600) return x % 64;             /* tiny: around the length prefix */
    if (x < 900) return x * 7 % cap;         /* up to the ring */
    return cap + x * 131 % (3 * cap);        /* larger than the ring: streamed */
}

static void fill(uint8_t *buf, uint64_t n, uint64_t seed) {
    for (uint64_t k = 0; k < n; k++) buf[k] = (uint8_t)(seed * 31 + k * 7 + (k >> 8));
}

typedef struct {
    sr_ring *r;
    uint64_t count, cap;
    int failed;
} job;

static void *sender(void *arg) {
    job *j = arg;
    uint8_t *buf = malloc(4 * j->cap + 64);
    for (uint64_t i = 0; i < j->count; i++) {
        uint64_t n = size_of(i, j->cap);
        fill(buf, n, i);
        uint64_t half = n / 2;
        int rc;
        do rc = sr_send2(j->r, buf, half, buf + half, n - half, 1000000000); while (rc == SR_TIMEOUT);
        if (rc != SR_OK) {
            fprintf(stderr, "send %llu: %s\n", (unsigned long long)i, sr_strerror(rc));
            j->failed = 1;
            break;
        }
    }
    free(buf);
    return NULL;
}

static void *receiver(void *arg) {
    job *j = arg;
    uint8_t *buf = malloc(4 * j->cap + 64), *want = malloc(4 * j->cap + 64);
    for (uint64_t i = 0; i < j->count; i++) {
        uint64_t len = 0;
        int rc;
        do rc = sr_recv(j->r, buf, 256, &len, 1000000000); while (rc == SR_TIMEOUT);
        if (rc == SR_MORE) do rc = sr_recv_into(j->r, buf, 1000000000); while (rc == SR_TIMEOUT);
        uint64_t n = size_of(i, j->cap);
        fill(want, n, i);
        if (rc != SR_OK || len != n || memcmp(buf, want, n) != 0) {
            fprintf(stderr, "recv %llu: rc %d, %llu bytes, expected %llu\n", (unsigned long long)i, rc,
                    (unsigned long long)len, (unsigned long long)n);
            j->failed = 1;
            break;
        }
    }
    free(buf);
    free(want);
    return NULL;
}

static int run(sr_ring *r, uint64_t count, uint64_t cap) {
    job s = {r, count, cap, 0}, v = {r, count, cap, 0};
    pthread_t ts, tv;
    pthread_create(&ts, NULL, sender, &s);
    pthread_create(&tv, NULL, receiver, &v);
    pthread_join(ts, NULL);
    pthread_join(tv, NULL);
    return s.failed || v.failed;
}

int main(int argc, char **argv) {
    uint64_t count = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000;
    uint64_t cap = argc > 2 ? strtoull(argv[2], NULL, 10) : 4096;
    sr_ring *r;
    int rc = sr_create(NULL, cap, -1, 0, &r);
    if (rc != SR_OK) {
        fprintf(stderr, "create: %s\n", sr_strerror(rc));
        return 2;
    }
    char name[128];
    snprintf(name, sizeof name, "%s", sr_name(r));
    pid_t child = fork();
    if (child == 0) {
        sr_ring *w;
        if (sr_attach(name, 0, &w) != SR_OK) _exit(3);
        int failed = run(w, count, cap);
        sr_close(w);
        _exit(failed);
    }
    int failed = run(r, count, cap);
    int status = 0;
    waitpid(child, &status, 0);
    sr_close(r);
    failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    printf("%s: %llu messages each way, capacity %llu\n", failed ? "FAILED" : "ok", (unsigned long long)count,
           (unsigned long long)cap);
    return failed;
}
