/* `--backend auto`: the first backend of the measured order that loads (see backend_auto.h). */
#include "app/backend_auto.h"

#include <stdio.h>
#include <string.h>

#include "randygpt/text.h"

static const char *const order[] = {"openmp", "pthreads", "openblas", "blis", "single"};

int rg_backend_auto_open(const rg_backend_args *a, rg_plugin *p, rg_ops *ops, char *why,
                         size_t why_n, char *err, size_t n) {
    char skipped[RG_ERR_LEN] = "";
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        rg_backend_args one = *a;
        one.backend = order[k];
        char e[RG_ERR_LEN];
        if (rg_backend_args_open(&one, p, ops, e, sizeof e) == 0) {
            rg_errf(why, why_n, "auto picked %s: the first of %s that loads here (%s)%s%s",
                    order[k], RG_AUTO_ORDER_TEXT, RG_AUTO_SOURCE, skipped[0] ? "; skipped " : "",
                    skipped);
            return 0;
        }
        rg_errf_append(skipped, sizeof skipped, "%s%s (%s)", skipped[0] ? ", " : "", order[k], e);
    }
    rg_errf(err, n, "--backend auto: none of %s loads: %s", RG_AUTO_ORDER_TEXT, skipped);
    return -1;
}
