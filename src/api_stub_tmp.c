#include "common.h"
const char *gcam_version(void) { return GCAM_VERSION_STRING; }
