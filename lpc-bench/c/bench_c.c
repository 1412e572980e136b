/* The C client's side of `lpc-bench --only c`: `bench_c NAME typed|json SAMPLES OUT`.
 *
 * Connects to the bench service NAME and calls `add` SAMPLES times (after as many untimed),
 * through the typed stubs `lpc gen c` wrote for the Bench interface (bench.h, bench.c) or by
 * name with JSON, timing each call with CLOCK_MONOTONIC; writes the latencies (ns, one per
 * line) to OUT, then `done N WALL_NS` on stdout. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int call(lpc_client *c, int json, int32_t a, lpc_error **err) {
    if (json) {
        char args[32];
        char *reply = NULL;
        snprintf(args, sizeof args, "[%d, 1]", (int)a);
        if (lpc_call_json(c, "add", args, &reply, err) != LPC_OK) {
            return -1;
        }
        lpc_string_free(reply);
        return 0;
    } else {
        int32_t sum;
        if (bench_add(c, a, 1, &sum, err) != LPC_OK) {
            return -1;
        }
        return sum == a + 1 ? 0 : -2;
    }
}

int main(int argc, char **argv) {
    lpc_client *c = NULL;
    lpc_error *err = NULL;
    long samples, i;
    int json;
    uint64_t *latencies, started;
    FILE *out;
    if (argc != 5) {
        fprintf(stderr, "usage: bench_c NAME typed|json SAMPLES OUT\n");
        return 2;
    }
    json = strcmp(argv[2], "json") == 0;
    samples = atol(argv[3]);
    latencies = malloc(sizeof *latencies * (size_t)(samples > 0 ? samples : 1));
    if (latencies == NULL || samples <= 0) {
        return 2;
    }
    if (bench_connect(argv[1], NULL, &c, &err) != LPC_OK) {
        fprintf(stderr, "connect: %s\n", lpc_error_message(err));
        return 1;
    }
    for (i = 0; i < samples; i++) {
        if (call(c, json, (int32_t)i, &err) != 0) {
            fprintf(stderr, "warm-up call %ld: %s\n", i, err ? lpc_error_message(err) : "wrong sum");
            return 1;
        }
    }
    started = now_ns();
    for (i = 0; i < samples; i++) {
        uint64_t t = now_ns();
        if (call(c, json, (int32_t)i, &err) != 0) {
            fprintf(stderr, "call %ld: %s\n", i, err ? lpc_error_message(err) : "wrong sum");
            return 1;
        }
        latencies[i] = now_ns() - t;
    }
    started = now_ns() - started;
    out = fopen(argv[4], "w");
    if (out == NULL) {
        return 1;
    }
    for (i = 0; i < samples; i++) {
        fprintf(out, "%llu\n", (unsigned long long)latencies[i]);
    }
    fclose(out);
    printf("done %ld %llu\n", samples, (unsigned long long)started);
    lpc_client_free(c);
    return 0;
}
