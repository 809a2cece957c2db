/* Shared pieces of the gradcam command. */
#ifndef GC_CLI_H
#define GC_CLI_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcam.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_BAD_INPUT = 3 };

extern const char *g_prog;

int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_status_exit(gcam_status s);
/* Loads with the message printed on failure; max_memory caps constants folded at load (0: default). */
gcam_status cli_load_model(gcam_model **m, const char *path, int allow_unsupported, size_t max_memory);
/* "1x3x224x224" -> dims; 0 on success. */
int cli_parse_dims(const char *s, int64_t *dims, int *ndim);

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_eval(int argc, char **argv);

#endif
