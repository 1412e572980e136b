/* The ticker service written in C: `ticker_service INTERFACE_JSON [NAME]`.
 *
 * Serves examples' Ticker interface and emits its `tick` events — a counter and a timestamp
 * every 10 ms, from a thread of its own — described by INTERFACE_JSON (what
 * `lpc describe --json ticker` writes; examples/c/ticker.interface.json), so that Rust
 * subscribers of TickerEvents, typed or not, and `lpc watch`, receive them as from the Rust
 * ticker. `job(steps)` answers the job number 1 (its progress events are left to the Rust
 * ticker). Prints `ready` once clients can connect; stops on SIGTERM. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime, nanosleep */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lpc.h"

static lpc_events *EVENTS;

static void *ticks(void *unused) {
    unsigned long long counter;
    (void)unused;
    for (counter = 1;; counter++) {
        struct timespec now, pause = {0, 10 * 1000 * 1000};
        char args[96];
        lpc_error *err = NULL;
        clock_gettime(CLOCK_REALTIME, &now);
        snprintf(args, sizeof args, "{\"counter\": %llu, \"at_ns\": %llu}", counter,
                 (unsigned long long)now.tv_sec * 1000000000ull + (unsigned long long)now.tv_nsec);
        if (lpc_events_emit_json(EVENTS, "tick", args, NULL, &err) != LPC_OK) {
            fprintf(stderr, "emit: %s\n", lpc_error_message(err));
            exit(1);
        }
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static int32_t dispatch(void *context, uint32_t method, const uint8_t *args, size_t len,
                        lpc_reply *reply) {
    /* The interface's only method is job(steps: u32) -> u32: answer job 1. */
    uint8_t one = 1;
    (void)context;
    (void)method;
    if (len < 1) {
        return 1;
    }
    (void)args;
    lpc_reply_write(reply, &one, 1);
    return 0;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    char *text;
    long size;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (text = malloc((size_t)size + 1)) == NULL) {
        return NULL;
    }
    if (fread(text, 1, (size_t)size, f) != (size_t)size) {
        return NULL;
    }
    text[size] = '\0';
    fclose(f);
    return text;
}

int main(int argc, char **argv) {
    const char *name = argc > 2 ? argv[2] : "ticker";
    lpc_error *err = NULL;
    lpc_server *server;
    pthread_t thread;
    char *doc = argc > 1 ? read_file(argv[1]) : NULL;
    if (doc == NULL) {
        fprintf(stderr, "usage: ticker_service INTERFACE_JSON [NAME]\n");
        return 2;
    }
    EVENTS = lpc_events_new(doc, &err);
    server = EVENTS ? lpc_server_bind(name, NULL, &err) : NULL;
    if (server == NULL || lpc_server_emit(server, EVENTS, &err) != LPC_OK) {
        fprintf(stderr, "failed (status %d): %s\n", (int)lpc_error_status(err),
                lpc_error_message(err));
        return 1;
    }
    if (pthread_create(&thread, NULL, ticks, NULL) != 0) {
        return 1;
    }
    printf("ready: service `%s` (in C, with events)\n", name);
    fflush(stdout);
    if (lpc_server_serve(server, doc, dispatch, NULL, &err) != LPC_OK) {
        fprintf(stderr, "serve failed: %s\n", lpc_error_message(err));
        return 1;
    }
    return 0;
}
