/* A C client of the compare service through stubs `lpc gen c` writes (compare.h, compare.c):
 * `compare_client [NAME]`. `compare_image` takes `&mut MyInfo`: the C stub passes a pointer,
 * and the service's new value is written back into the caller's struct. */
#include <stdio.h>

#include "compare.h"

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "compare";
    lpc_client *compare = NULL;
    lpc_error *err = NULL;
    compare_MyInfo info = {2.1, 0.9};
    compare_Verdict verdict;
    if (compare_connect(name, NULL, &compare, &err) != LPC_OK ||
        compare_compare_image(compare, &info, &verdict, &err) != LPC_OK) {
        fprintf(stderr, "failed (status %d): %s\n", (int)lpc_error_status(err),
                lpc_error_message(err));
        lpc_error_free(err);
        return 1;
    }
    printf("verdict %s; the service wrote red=%.2f blue=%.2f\n",
           verdict == COMPARE_VERDICT_SIMILAR ? "Similar" : "Different", info.red, info.blue);
    lpc_client_free(compare);
    return 0;
}
