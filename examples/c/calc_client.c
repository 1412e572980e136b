/* A C client of the Rust calc service (examples/src/calc.rs): `calc_client [NAME]`.
 *
 * Calls `add(10, 20)` twice — by name with JSON, and by method id with the binary encoding
 * a Rust client sends (postcard: each i32 a zigzag varint) — then `checked_div(1, 0)`, whose
 * application error comes back in the JSON reply, and a method the service does not have. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lpc.h"

/* Appends the postcard encoding of an i32 (zigzag, then a varint) to buf; returns its end. */
static uint8_t *put_i32(uint8_t *buf, int32_t v) {
    uint32_t z = ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
    while (z >= 0x80) {
        *buf++ = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    *buf++ = (uint8_t)z;
    return buf;
}

/* Decodes a postcard i32 from bytes[0..len); returns 0 on success. */
static int get_i32(const uint8_t *bytes, size_t len, int32_t *out) {
    uint32_t z = 0;
    size_t i;
    for (i = 0; i < len && i < 5; i++) {
        z |= (uint32_t)(bytes[i] & 0x7f) << (7 * i);
        if (!(bytes[i] & 0x80)) {
            *out = (int32_t)((z >> 1) ^ (~(z & 1) + 1));
            return i + 1 == len ? 0 : -1;
        }
    }
    return -1;
}

static int report(const char *what, lpc_error *err) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)lpc_error_status(err),
            lpc_error_message(err));
    lpc_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "calc";
    lpc_error *err = NULL;
    lpc_client *calc = lpc_connect(name, NULL, &err);
    if (calc == NULL) {
        return report("connect", err);
    }

    char *reply = NULL;
    if (lpc_call_json(calc, "add", "[10, 20]", &reply, &err) != LPC_OK) {
        return report("add (JSON)", err);
    }
    printf("json: add(10, 20) -> %s\n", reply);
    lpc_string_free(reply);

    uint32_t add_id;
    if (lpc_method_id(calc, "add", &add_id, &err) != LPC_OK) {
        return report("method id", err);
    }
    uint8_t args[10];
    uint8_t *end = put_i32(put_i32(args, 10), 20);
    uint8_t *result = NULL;
    size_t result_len = 0;
    if (lpc_call(calc, add_id, args, (size_t)(end - args), &result, &result_len, &err) != LPC_OK) {
        return report("add (binary)", err);
    }
    int32_t sum;
    if (get_i32(result, result_len, &sum) != 0) {
        fprintf(stderr, "add (binary): the result is not an i32\n");
        return 1;
    }
    lpc_bytes_free(result, result_len);
    printf("binary: add(10, 20) = %d\n", (int)sum);

    if (lpc_call_json(calc, "checked_div", "{\"a\": 1, \"b\": 0}", &reply, &err) != LPC_OK) {
        return report("checked_div", err);
    }
    printf("json: checked_div(1, 0) -> %s\n", reply);
    lpc_string_free(reply);

    if (lpc_call_json(calc, "sqrt", "[2]", &reply, &err) == LPC_OK) {
        fprintf(stderr, "sqrt should not exist\n");
        return 1;
    }
    printf("sqrt: status %d: %s\n", (int)lpc_error_status(err), lpc_error_message(err));
    lpc_error_free(err);

    lpc_client_free(calc);
    return 0;
}
