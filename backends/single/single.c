/* Backend `single`: the core's reference kernels, one thread, packaged as a plugin so that even the
 * baseline goes through the loader. */
#include "randygpt/ops.h"

RG_BACKEND_ENTRY { return &rg_reference_backend; }
