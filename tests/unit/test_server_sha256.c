/*
 * tests/unit/test_server_sha256.c — server/sha256.c against the NIST
 * example vectors of FIPS 180-4 (CSRC "Examples with Intermediate Values":
 * "abc", the empty string, the 448- and 896-bit messages, one million 'a'),
 * fed whole and in every split, so the block-boundary code is exercised.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

static void hex(const uint8_t d[32], char out[65])
{
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static const struct {
    const char *msg;
    const char *digest;
} vectors[] = {
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

static void test_vectors(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof vectors / sizeof vectors[0]; v++) {
        const char *m = vectors[v].msg;
        size_t n = strlen(m);
        uint8_t d[32];
        char h[65];
        mk_sha256(m, n, d);
        hex(d, h);
        assert_string_equal(h, vectors[v].digest);
        /* every two-piece split gives the same digest */
        for (size_t cut = 0; cut <= n; cut++) {
            mk_sha256_ctx c;
            mk_sha256_init(&c);
            mk_sha256_update(&c, m, cut);
            mk_sha256_update(&c, m + cut, n - cut);
            mk_sha256_final(&c, d);
            hex(d, h);
            assert_string_equal(h, vectors[v].digest);
        }
    }
}

static void test_million_a(void **state)
{
    (void)state;
    char chunk[1000];
    memset(chunk, 'a', sizeof chunk);
    mk_sha256_ctx c;
    mk_sha256_init(&c);
    /* odd-sized pieces so partial blocks are carried over */
    size_t left = 1000000, piece = 1;
    while (left) {
        size_t k = piece < left ? piece : left;
        if (k > sizeof chunk) k = sizeof chunk;
        mk_sha256_update(&c, chunk, k);
        left -= k;
        piece = piece * 7 % 997 + 1;
    }
    uint8_t d[32];
    char h[65];
    mk_sha256_final(&c, d);
    hex(d, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_hex_and_equal(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    mk_sha256("abc", 3, a);
    assert_int_equal(mk_sha256_from_hex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", 64, b), 0);
    assert_true(mk_sha256_equal(a, b));
    b[31] ^= 1;
    assert_false(mk_sha256_equal(a, b));
    assert_int_equal(mk_sha256_from_hex("ba78", 4, b), -1);
    assert_int_equal(mk_sha256_from_hex("zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 64, b), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vectors), cmocka_unit_test(test_million_a),
                                       cmocka_unit_test(test_hex_and_equal)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
