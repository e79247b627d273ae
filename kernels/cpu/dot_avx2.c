// SPDX-License-Identifier: MIT
#include "kern.h"

const struct tm_kern tm_kern_avx2 = { .name = "avx2" };
