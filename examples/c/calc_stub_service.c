/* The calc service in C on the skeleton `lpc gen c` writes: `calc_stub_service [NAME]`.
 * Implements the calc_impl_* functions calc.h declares; calc_serve binds, decodes, calls them
 * and encodes their results. Prints `ready` once clients can connect; stops on SIGTERM. */
#include <stdio.h>

#include "calc.h"

int32_t calc_impl_add(void *context, int32_t a, int32_t b, int32_t *out) {
    (void)context;
    *out = (int32_t)((uint32_t)a + (uint32_t)b); /* wrapping, as in Rust */
    return 0;
}

int32_t calc_impl_checked_div(void *context, int32_t a, int32_t b, int32_t *out, bool *failed,
                              calc_CalcError *error) {
    (void)context;
    if (b == 0) {
        *failed = true;
        *error = CALC_CALC_ERROR_DIVISION_BY_ZERO;
    } else if (a == INT32_MIN && b == -1) {
        *failed = true;
        *error = CALC_CALC_ERROR_OVERFLOW;
    } else {
        *out = a / b;
    }
    return 0;
}

int32_t calc_impl_sum(void *context, const calc_seq_int64 *values, int64_t *out) {
    uint64_t total = 0;
    size_t i;
    (void)context;
    for (i = 0; i < values->len; i++) {
        total += (uint64_t)values->items[i]; /* wrapping, as in Rust */
    }
    *out = (int64_t)total;
    return 0;
}

static void ready(void *context) {
    printf("ready: service `%s` (C, generated stubs)\n", (const char *)context);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "calc";
    lpc_error *err = NULL;
    if (calc_serve(name, NULL, (void *)name, ready, &err) != LPC_OK) {
        fprintf(stderr, "serve failed (status %d): %s\n", (int)lpc_error_status(err),
                lpc_error_message(err));
        lpc_error_free(err);
        return 1;
    }
    return 0;
}
