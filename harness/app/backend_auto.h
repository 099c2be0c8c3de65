/*
 * `--backend auto`, the default of train and generate: the first backend of a fixed preference
 * order that opens and creates an instance with the requested threads and options. The order is
 * the measured one: fastest first at 2 threads in the committed complete bench run (README,
 * "Results on this machine"); `randygpt backends` shows the pick and why.
 */
#ifndef RANDYGPT_BACKEND_AUTO_H
#define RANDYGPT_BACKEND_AUTO_H

#include <stddef.h>

#include "app/backend_args.h"

#define RG_BACKEND_AUTO "auto"
/* The preference order and where it was measured, for the messages. */
#define RG_AUTO_ORDER_TEXT "openmp, pthreads, openblas, blis, single"
#define RG_AUTO_SOURCE                                                                          \
    "fastest first at 2 threads in results/intel-xeon-processor-2c/20261124T024603Z: 77.8, "   \
    "80.7, 84.7, 89.8 ms/step, single 1719 ms at 1 thread"

/* Opens the first backend of the order that loads and takes a's threads and options (a->backend
 * is ignored). why gets one line: which was picked, and the reason each one before it was
 * skipped. Returns 0, or -1 with one line in err when none of them loads. */
int rg_backend_auto_open(const rg_backend_args *a, rg_plugin *p, rg_ops *ops, char *why,
                         size_t why_n, char *err, size_t n);

#endif /* RANDYGPT_BACKEND_AUTO_H */
