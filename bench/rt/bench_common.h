/*
 * bench_common — helpers shared by the runtime benchmarks in bench/rt/: worker count,
 * clocks, resident memory, the one-shot "done" signal from an actor to main(), and the
 * RESULT line every benchmark prints.
 *
 * Everything is `static inline` (each benchmark is one translation unit and one executable), so
 * no prototypes are exported and -Wmissing-prototypes stays quiet.
 *
 * Threads: bench_done_post may be called from a behaviour (it never blocks); the rest from
 * main() only.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include "rt_actor.h"
#include "rt_sched.h"

#include <errno.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* No benchmark may run longer than this; a hang is reported, never waited out. */
#define BENCH_TIMEOUT_S 120

/* Workers: HERMES_WORKERS if set and valid, else 2 (the benchmark machine has 2 cores). */
static inline int bench_workers(void)
{
    const char *env = getenv("HERMES_WORKERS");
    if (env && *env) {
        char *end = NULL;
        errno = 0;
        long n = strtol(env, &end, 10);
        if (errno == 0 && end && *end == '\0' && n >= 1 && n <= RT_MAX_WORKERS)
            return (int)n;
        fprintf(stderr, "bench: ignoring HERMES_WORKERS=%s (want 1..%d)\n", env, RT_MAX_WORKERS);
    }
    return 2;
}

static inline rt_runtime *bench_runtime_new(uint32_t batch)
{
    rt_options o = {.workers = bench_workers(), .batch = batch};
    return rt_runtime_new(&o);
}

static inline int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Current resident set in KiB, from /proc/self/statm (second field, in pages). */
static inline long bench_rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!f)
        return -1;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    if (n != 2)
        return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Peak resident set in KiB (VmHWM in /proc/self/status). */
static inline long bench_peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            char *end = NULL;
            kb = strtol(line + 6, &end, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* A one-shot signal from an actor to main(). sem_post never blocks, so it is safe in a
 * behaviour, and it orders the actor's writes to the result before main reads them. */
typedef struct bench_done {
    sem_t sem;
} bench_done;

static inline void bench_done_init(bench_done *d)
{
    if (sem_init(&d->sem, 0, 0) != 0) {
        perror("bench: sem_init");
        exit(1);
    }
}

static inline void bench_done_post(bench_done *d)
{
    (void)sem_post(&d->sem); /* cannot fail below SEM_VALUE_MAX posts */
}

/* Wait for the signal, at most BENCH_TIMEOUT_S seconds; exits with an error on timeout. */
static inline void bench_done_wait(bench_done *d, const char *bench)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl); /* sem_timedwait takes a CLOCK_REALTIME deadline */
    dl.tv_sec += BENCH_TIMEOUT_S;
    for (;;) {
        if (sem_timedwait(&d->sem, &dl) == 0)
            return;
        if (errno == EINTR)
            continue;
        printf("RESULT bench=%s impl=hermes error=timeout_%ds\n", bench, BENCH_TIMEOUT_S);
        fflush(stdout);
        exit(2);
    }
}

static inline void bench_done_fini(bench_done *d)
{
    sem_destroy(&d->sem);
}

#endif /* BENCH_COMMON_H */
