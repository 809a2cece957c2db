/* The gradcam command: dispatches to the subcommands (cmd_*.c). Exit codes: 0 ok, 2 usage, 3 bad
 * model or input, 1 other failures. */
#include "cli_common.h"

#include <unistd.h>

static void print_main_help(void) {
    printf("gradcam %s — visual explanations (Grad-CAM and friends) for ONNX CNNs\n\n"
           "Usage: gradcam COMMAND [ARGS...]\n\n"
           "Commands:\n"
           "  info MODEL              inputs, outputs, every layer with its output shape, unsupported ops\n"
           "  run MODEL INPUT.npy     run the model forward; write outputs or named tensors as .npy\n"
           "  explain MODEL INPUT...  Grad-CAM and other explanations: heat maps, results.json, report.html\n"
           "  eval MODEL --images DIR --boxes FILE   score methods on ground-truth boxes: eval.csv/json/html\n"
           "  serve MODEL...          explanations over HTTP: a page for the browser and a JSON API\n\n"
           "Examples:\n"
           "  gradcam info resnet18.onnx\n"
           "  gradcam run resnet18.onnx image.npy -o logits.npy\n"
           "  gradcam run resnet18.onnx image.npy --tensor /layer4/layer4.1/relu_1/Relu_output_0 -o feats.npy\n"
           "  gradcam run resnet18.onnx image.npy -           # summary (shape, range, top-5) on stdout\n"
           "  gradcam explain resnet18.onnx cat.jpg -k 3 -o out/   # out/report.html, out/results.json\n\n"
           "'gradcam COMMAND --help' shows each command's options. Exit status: 0 success, 2 usage error,\n"
           "3 bad model or input, 1 other failure.\n",
           gcam_version());
}

/* OpenBLAS starts its thread pool when it is loaded, and each of its threads spins (sched_yield)
 * for about 0.1 s before it sleeps. gradcam never uses that pool (its GEMMs run on OpenMP threads,
 * with openblas_set_num_threads(1)), but on a 2-core machine the spinning thread takes a core from
 * the first explanation's second thread: resnet50, one input, 0.190 -> 0.131 s. So the one-shot
 * commands that compute re-execute once with OPENBLAS_NUM_THREADS=1, unless it is set or
 * GCAM_NO_REEXEC is (serve lives long: the spin is over before its first request). */
static void reexec_without_blas_pool(char **argv) {
    if (getenv("OPENBLAS_NUM_THREADS") || getenv("GCAM_NO_REEXEC")) return;
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1)) return;
    execv("/proc/self/exe", argv); /* returns only on failure: go on, the same results a little slower */
}

int main(int argc, char **argv) {
    if (argc >= 2 && (strcmp(argv[1], "run") == 0 || strcmp(argv[1], "explain") == 0 || strcmp(argv[1], "eval") == 0))
        reexec_without_blas_pool(argv);
    if (argc < 2) {
        print_main_help();
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        print_main_help();
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("gradcam %s\n", gcam_version());
        return 0;
    }
    if (strcmp(cmd, "info") == 0) return cmd_info(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0) return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "explain") == 0) return cmd_explain(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0) return cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    return cli_usage_error("unknown command '%s'", cmd);
}
