/* `--backend auto`: the first backend of the measured order that loads (see backend_auto.h). */
#include "app/backend_auto.h"

#include <stdio.h>
#include <string.h>

static const char *const order[] = {"openmp", "pthreads", "openblas", "blis", "single"};

int rg_backend_auto_open(const rg_backend_args *a, rg_plugin *p, rg_ops *ops, char *why,
                         size_t why_n, char *err, size_t n) {
    char skipped[2048] = "";
    size_t used = 0;
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        rg_backend_args one = *a;
        one.backend = order[k];
        char e[1024];
        if (rg_backend_args_open(&one, p, ops, e, sizeof e) == 0) {
            snprintf(why, why_n, "auto picked %s: the first of %s that loads here (%s)%s%s",
                     order[k], RG_AUTO_ORDER_TEXT, RG_AUTO_SOURCE, used ? "; skipped " : "",
                     skipped);
            return 0;
        }
        if (used < sizeof skipped) {
            int w = snprintf(skipped + used, sizeof skipped - used, "%s%s (%s)", used ? ", " : "",
                             order[k], e);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    snprintf(err, n, "--backend auto: none of %s loads: %s", RG_AUTO_ORDER_TEXT, skipped);
    return -1;
}
