/* Events and one-way posts from C: `events_client TICKER COPYDATA`.
 *
 * Subscribes to the `tick` events of the ticker service (examples/src/ticker.rs) and prints
 * the first two, as JSON (`{"event", "args", "missed"}`); then posts the one-way
 * `copy_data(7, "from C")` to the copy-data service (examples/src/copydata.rs), the
 * WM_COPYDATA of old: it returns once the message is queued, and the service prints it. */
#include <stdio.h>

#include "lpc.h"

static int report(const char *what, lpc_error *err) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)lpc_error_status(err),
            lpc_error_message(err));
    lpc_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    lpc_error *err = NULL;
    lpc_subscription *ticks;
    lpc_client *copydata;
    int i;
    if (argc != 3) {
        fprintf(stderr, "usage: events_client TICKER COPYDATA\n");
        return 2;
    }
    ticks = lpc_subscribe(argv[1], "tick", NULL, &err);
    if (ticks == NULL) {
        return report("subscribe", err);
    }
    for (i = 0; i < 2; i++) {
        char *event = NULL;
        if (lpc_subscription_next(ticks, 5000, &event, &err) != LPC_OK) {
            return report("next event", err);
        }
        printf("%s\n", event);
        lpc_string_free(event);
    }
    lpc_subscription_free(ticks);

    copydata = lpc_connect(argv[2], NULL, &err);
    if (copydata == NULL) {
        return report("connect", err);
    }
    /* Vec<u8> in JSON: the bytes as an array of numbers ("from C"). */
    if (lpc_post_json(copydata, "copy_data", "[7, [102, 114, 111, 109, 32, 67]]", &err) != LPC_OK) {
        return report("post", err);
    }
    printf("posted copy_data\n");
    lpc_client_free(copydata);
    return 0;
}
