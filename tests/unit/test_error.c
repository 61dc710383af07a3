/* tests/unit/test_error.c — the error list's values never change once
 * released: checked against this committed table, not against the header. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "meerkat/meerkat.h"

static const struct { int val; const char *name; } released[] = {
    {0, "MK_OK"},         {1, "MK_EINVAL"},     {2, "MK_ENOMEM"},     {3, "MK_EIO"},
    {4, "MK_ENOSPC"},     {5, "MK_ECORRUPT"},   {6, "MK_ENOTOURS"},   {7, "MK_ETOONEW"},
    {8, "MK_ELOCKED"},    {9, "MK_ENOTFOUND"},  {10, "MK_ECOLLISION"}, {11, "MK_EPARSE"},
    {12, "MK_ESTRING"},   {13, "MK_ERANGE"},    {14, "MK_ELIMIT"},    {15, "MK_EREADONLY"},
    {16, "MK_EINTERNAL"}, {17, "MK_EEXIST"},
};

static void test_values_stable(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof released / sizeof released[0]; i++) {
        assert_string_equal(mk_err_name(released[i].val), released[i].name);
        assert_non_null(mk_strerror(released[i].val));
        assert_true(strlen(mk_strerror(released[i].val)) > 0);
    }
    assert_int_equal(MK_ECORRUPT, 5);
    assert_int_equal(MK_ELOCKED, 8);
}

static void test_unknown_never_null(void **state)
{
    (void)state;
    assert_string_equal(mk_strerror(-1), "unknown error");
    assert_string_equal(mk_strerror(99999), "unknown error");
    assert_string_equal(mk_err_name(12345), "MK_UNKNOWN");
}

static void test_version(void **state)
{
    (void)state;
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", MK_VERSION_MAJOR, MK_VERSION_MINOR, MK_VERSION_PATCH);
    assert_string_equal(mk_version(), buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_stable),
        cmocka_unit_test(test_unknown_never_null),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
