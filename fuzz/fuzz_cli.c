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

int gradcam_cli_main(int argc, char **argv);

static char g_dir[512];

/* The private folder: under $GCAM_FUZZ_TMP (fuzz/run.sh points it into the build folder, since
 * libFuzzer ends processes with _Exit and the atexit clean-up does not always run), else /tmp. */
static void set_template(const char *kind) {
    const char *root = getenv("GCAM_FUZZ_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/gcam-fuzz-%s-XXXXXX", root && *root ? root : "/tmp", kind);
}

static void cleanup(void) { rmdir(g_dir); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    set_template("cli");
    if (!mkdtemp(g_dir) || chdir(g_dir) != 0) abort();
    atexit(cleanup);
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
    int rc = gradcam_cli_main(argc, argv);
    if (rc < 0 || rc > 3) abort(); /* documented exit codes only */
    fflush(stdout);
    fflush(stderr);
    free(copy);
    return 0;
}
