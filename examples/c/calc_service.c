/* The calc service written in C: `calc_service INTERFACE_JSON [NAME]`.
 *
 * Serves the interface of examples/src/calc.rs — `add`, `checked_div`, `sum` — described by
 * INTERFACE_JSON (what `lpc describe --json calc` writes; examples/c/calc.interface.json), so
 * that the Rust calc client, and `lpc call`, use it as they use the Rust service. Arguments
 * and results are postcard: integers as zigzag varints, a sequence as its length then its
 * items, `Result` and enums as a variant index then the value. Prints `ready` once clients can
 * connect; stops on SIGTERM or SIGINT. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lpc.h"

/* A cursor over the arguments. */
typedef struct {
    const uint8_t *at;
    const uint8_t *end;
} reader;

static int get_varint(reader *r, uint64_t *out) {
    uint64_t v = 0;
    int shift;
    for (shift = 0; shift < 70 && r->at < r->end; shift += 7) {
        uint8_t b = *r->at++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int get_i64(reader *r, int64_t *out) {
    uint64_t z;
    if (get_varint(r, &z) != 0) {
        return -1;
    }
    *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    return 0;
}

static int get_i32(reader *r, int32_t *out) {
    int64_t v;
    if (get_i64(r, &v) != 0 || v < INT32_MIN || v > INT32_MAX) {
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

static void put_varint(lpc_reply *reply, uint64_t v) {
    uint8_t buf[10];
    size_t n = 0;
    while (v >= 0x80) {
        buf[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    buf[n++] = (uint8_t)v;
    lpc_reply_write(reply, buf, n);
}

static void put_i64(lpc_reply *reply, int64_t v) {
    put_varint(reply, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* The method ids, looked up by name in the interface at start. */
static uint32_t ADD, CHECKED_DIV, SUM;

static int32_t dispatch(void *context, uint32_t method, const uint8_t *args, size_t len,
                        lpc_reply *reply) {
    reader r = {args, args + len};
    (void)context;
    if (method == ADD) {
        int32_t a, b;
        if (get_i32(&r, &a) || get_i32(&r, &b) || r.at != r.end) {
            return 1;
        }
        put_i64(reply, (int32_t)((uint32_t)a + (uint32_t)b)); /* wrapping, as in Rust */
        return 0;
    }
    if (method == CHECKED_DIV) {
        int32_t a, b;
        if (get_i32(&r, &a) || get_i32(&r, &b) || r.at != r.end) {
            return 1;
        }
        if (b == 0) {
            put_varint(reply, 1); /* Err */
            put_varint(reply, 0); /* CalcError::DivisionByZero */
        } else if (a == INT32_MIN && b == -1) {
            put_varint(reply, 1); /* Err */
            put_varint(reply, 1); /* CalcError::Overflow */
        } else {
            put_varint(reply, 0); /* Ok */
            put_i64(reply, a / b);
        }
        return 0;
    }
    if (method == SUM) {
        uint64_t n, i;
        uint64_t total = 0;
        if (get_varint(&r, &n) != 0) {
            return 1;
        }
        for (i = 0; i < n; i++) {
            int64_t v;
            if (get_i64(&r, &v) != 0) {
                return 1;
            }
            total += (uint64_t)v; /* wrapping, as in Rust */
        }
        if (r.at != r.end) {
            return 1;
        }
        put_i64(reply, (int64_t)total);
        return 0;
    }
    return 2;
}

/* The whole of a file, NUL-terminated, or NULL. */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    char *text;
    long size;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (text = malloc((size_t)size + 1)) == NULL) {
        if (f != NULL) {
            fclose(f);
        }
        return NULL;
    }
    if (fread(text, 1, (size_t)size, f) != (size_t)size) {
        free(text);
        fclose(f);
        return NULL;
    }
    text[size] = '\0';
    fclose(f);
    return text;
}

/* The id of method `name`, found in the interface document's `"name": "…", "id": N`. */
static int method_id(const char *doc, const char *name, uint32_t *id) {
    char key[64];
    const char *at;
    snprintf(key, sizeof key, "\"name\": \"%s\",\n      \"id\": ", name);
    at = strstr(doc, key);
    if (at == NULL) {
        return -1;
    }
    *id = (uint32_t)strtoul(at + strlen(key), NULL, 10);
    return 0;
}

int main(int argc, char **argv) {
    const char *name = argc > 2 ? argv[2] : "calc";
    lpc_error *err = NULL;
    char *doc;
    lpc_server *server;
    if (argc < 2) {
        fprintf(stderr, "usage: calc_service INTERFACE_JSON [NAME]\n");
        return 2;
    }
    doc = read_file(argv[1]);
    if (doc == NULL) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    if (method_id(doc, "add", &ADD) || method_id(doc, "checked_div", &CHECKED_DIV) ||
        method_id(doc, "sum", &SUM)) {
        fprintf(stderr, "%s does not describe the calc interface\n", argv[1]);
        return 1;
    }
    server = lpc_server_bind(name, NULL, &err);
    if (server == NULL) {
        fprintf(stderr, "bind failed (status %d): %s\n", (int)lpc_error_status(err),
                lpc_error_message(err));
        lpc_error_free(err);
        return 1;
    }
    printf("ready: service `%s` (in C)\n", name);
    fflush(stdout);
    if (lpc_server_serve(server, doc, dispatch, NULL, &err) != LPC_OK) {
        fprintf(stderr, "serve failed (status %d): %s\n", (int)lpc_error_status(err),
                lpc_error_message(err));
        lpc_error_free(err);
        return 1;
    }
    free(doc);
    return 0;
}
