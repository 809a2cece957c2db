#include <stdio.h>
#include "gradcam.h"
int main(void) { printf("gradcam %s\n", gcam_version()); return 0; }
