/* Which bundled backends this build made (RG_TEST_BUILT_BACKENDS, from CMake): a test of one that
 * was not built (RANDYGPT_WITH_OPENBLAS=OFF, or its library missing) is skipped with the reason,
 * not failed. Include after <cmocka.h>. */
#ifndef RANDYGPT_TEST_BUILT_H
#define RANDYGPT_TEST_BUILT_H

#include <stdio.h>
#include <string.h>

/* 1 when name is in the comma list of built backends. */
static inline int rg_test_backend_built(const char *name) {
    const char *list = RG_TEST_BUILT_BACKENDS;
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        size_t item = strcspn(p, ",");
        if (item == len && !strncmp(p, name, len)) return 1;
        p += item + (p[item] == ',');
    }
    return 0;
}

/* Skips the running test, saying why, when backend name was not built. */
#define RG_SKIP_UNLESS_BUILT(name)                                                              \
    do {                                                                                        \
        if (!rg_test_backend_built(name)) {                                                     \
            print_message("skipped: the %s backend was not built (built: %s)\n", (name),         \
                          RG_TEST_BUILT_BACKENDS);                                              \
            skip();                                                                             \
        }                                                                                       \
    } while (0)

#endif /* RANDYGPT_TEST_BUILT_H */
