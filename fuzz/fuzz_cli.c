/* Fuzz target: the gradcam command's option parsers. The input is the command line, one argument
 * per line ("explain\nm.onnx\n-c\n3,cat\n--size\n9x9"); it runs through the real main() (renamed
 * gradcam_cli_main in the fuzz build) in an empty private folder, so the model path never exists
 * and each run stops at loading it, after every option has been parsed and checked. Arguments
 * holding '/' are refused so that no path outside that folder is ever touched. stdout and stderr
 * go to /dev/null (sanitizer and libFuzzer reports still reach fd 2). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_tmp.h"

int gradcam_cli_main(int argc, char **argv);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (fuzz_tmp_init("cli", NULL) || chdir(g_dir) != 0) abort();
    FILE *null_out = fopen("/dev/null", "w"), *null_err = fopen("/dev/null", "w");
    if (!null_out || !null_err) abort();
    stdout = null_out;
    stderr = null_err;
    return 0;
}

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096 || memchr(data, '/', size)) return 0;
    char *copy = malloc(size + 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    copy[size] = 0;
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "gradcam";
    for (char *p = copy, *tok; argc < MAX_ARGS + 1 && (tok = strsep(&p, "\n")) != NULL;) argv[argc++] = tok;
    argv[argc] = NULL;
    if (argc > 1 && strcmp(argv[1], "serve") == 0) { /* a server blocks (and re-executes itself): its */
        free(copy);                                   /* requests are fuzzed by tests/serve_load.py */
        return 0;
    }
    int rc = gradcam_cli_main(argc, argv);
    if (rc < 0 || rc > 3) abort(); /* documented exit codes only */
    fflush(stdout);
    fflush(stderr);
    free(copy);
    return 0;
}
