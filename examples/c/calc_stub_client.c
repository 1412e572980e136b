/* A C client of the calc service through the typed stubs `lpc gen c` writes (calc.h, calc.c):
 * `calc_stub_client [NAME]`. One C function per method, C types for the interface's types,
 * the binary encoding a Rust client uses, and the interface checked at connect. */
#include <stdbool.h>
#include <stdio.h>

#include "calc.h"

static int report(const char *what, lpc_error *err) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)lpc_error_status(err),
            lpc_error_message(err));
    lpc_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "calc";
    lpc_client *calc = NULL;
    lpc_error *err = NULL;
    int32_t sum, quotient;
    int64_t total;
    bool failed;
    calc_CalcError why;
    int64_t values[] = {1, 2, 3, -10, 1099511627776};
    calc_seq_int64 seq = {values, 5};
    int64_t many[64];
    calc_seq_int64 long_seq = {many, 64};
    size_t i;

    if (calc_connect(name, NULL, &calc, &err) != LPC_OK) {
        return report("connect", err);
    }
    if (calc_add(calc, 10, 20, &sum, &err) != LPC_OK) {
        return report("add", err);
    }
    printf("add(10, 20) = %d\n", (int)sum);
    if (calc_checked_div(calc, 7, 2, &quotient, &failed, &why, &err) != LPC_OK) {
        return report("checked_div", err);
    }
    printf("checked_div(7, 2) = %s %d\n", failed ? "error" : "ok", (int)quotient);
    if (calc_checked_div(calc, 1, 0, &quotient, &failed, &why, &err) != LPC_OK) {
        return report("checked_div", err);
    }
    printf("checked_div(1, 0) = %s %s\n", failed ? "error" : "ok",
           why == CALC_CALC_ERROR_DIVISION_BY_ZERO ? "DivisionByZero" : "?");
    if (calc_sum(calc, &seq, &total, &err) != LPC_OK) {
        return report("sum", err);
    }
    printf("sum = %lld\n", (long long)total);
    /* 64 values of 2^40 take more room than the stub keeps on its stack for arguments. */
    for (i = 0; i < 64; i++) {
        many[i] = 1099511627776;
    }
    if (calc_sum(calc, &long_seq, &total, &err) != LPC_OK) {
        return report("sum", err);
    }
    printf("sum of 64 = %lld\n", (long long)total);
    lpc_client_free(calc);
    return 0;
}
