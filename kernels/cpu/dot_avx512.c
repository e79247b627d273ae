// SPDX-License-Identifier: MIT
#include "kern.h"

const struct tm_kern tm_kern_avx512 = { .name = "avx512" };
const struct tm_kern tm_kern_avx512vnni = { .name = "avx512" };
