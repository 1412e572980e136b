/* A C client driving the drawing demo's window through the stubs `lpc gen c` writes for its
 * interface (draw.h, draw.c): `draw_client [NAME]`. Each call runs in the drawing service's
 * process and paints its window; `snapshot` brings the window's pixels back, and the client
 * checks one inside and one outside the rectangle. */
#include <stdio.h>
#include <stdlib.h>

#include "draw.h"

static int report(const char *what, lpc_error *err) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)lpc_error_status(err),
            lpc_error_message(err));
    lpc_error_free(err);
    return 1;
}

/* The red byte of pixel x, y of an RGBA snapshot. */
static int red_at(const draw_Snapshot *s, uint32_t x, uint32_t y) {
    return s->rgba.data[((size_t)y * s->width + x) * 4];
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "draw";
    lpc_client *draw = NULL;
    lpc_error *err = NULL;
    draw_Snapshot shot;

    if (draw_connect(name, NULL, &draw, &err) != LPC_OK) {
        return report("connect", err);
    }
    if (draw_clear(draw, &err) != LPC_OK || draw_set_color(draw, 200, 30, 30, &err) != LPC_OK ||
        draw_draw_rectangle(draw, 10, 100, 210, 150, &err) != LPC_OK ||
        draw_set_color(draw, 20, 20, 160, &err) != LPC_OK ||
        draw_draw_line(draw, 10, 200, 300, 200, &err) != LPC_OK ||
        draw_draw_text(draw, 10, 220, "drawn from C", &err) != LPC_OK) {
        return report("drawing", err);
    }
    if (draw_snapshot(draw, &shot, &err) != LPC_OK) {
        return report("snapshot", err);
    }
    printf("snapshot %ux%u: inside the rectangle red=%d, outside red=%d\n", (unsigned)shot.width,
           (unsigned)shot.height, red_at(&shot, 100, 120), red_at(&shot, 300, 50));
    draw_free_Snapshot(&shot);
    lpc_client_free(draw);
    return 0;
}
