/* Fuzz target: `gradcam explain --labels FILE -c LIST` -- the labels reader and the class-name
 * resolution of src/cli/cmd_explain.c, whose functions are static: this file includes it.
 * Input: the -c list, a NUL byte, then the labels file's bytes (no NUL: the whole input is the
 * labels file and the list is "0,cat"). */
#include "../src/cli/cmd_explain.c"
#include "fuzz_tmp.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (fuzz_tmp_init("labels", "labels.txt")) abort();
    FILE *null_err = fopen("/dev/null", "w");
    if (!null_err) abort();
    stderr = null_err;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *z = memchr(data, 0, size);
    const char *list_src = "0,cat";
    char list[512];
    const uint8_t *lab = data;
    size_t nlab = size;
    if (z) {
        size_t n = (size_t)(z - data);
        if (n >= sizeof list) n = sizeof list - 1;
        memcpy(list, data, n);
        list[n] = 0;
        list_src = list;
        lab = z + 1;
        nlab = size - (size_t)(z - data) - 1;
    }
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (nlab && fwrite(lab, 1, nlab, f) != nlab) abort();
    fclose(f);

    ex_opts o;
    memset(&o, 0, sizeof o);
    o.base.labels_path = g_path;
    char *classes = gc_strdup(list_src);
    if (!classes) abort();
    split_list(classes, o.classes, &o.n_classes, EX_MAX_LIST);
    ex_run R;
    memset(&R, 0, sizeof R);
    R.o = &o;
    if (load_labels(&R, g_path) == 0) {
        /* once against the labels read, once without them against a 1000-class output (the
         * built-in ImageNet names) */
        const char **own_labels = R.labels;
        for (int pass = 0; pass < 2; pass++) {
            int64_t K = pass == 0 ? (R.n_labels > 0 ? R.n_labels : 1) : 1000;
            if (pass == 1) o.base.labels_path = NULL;
            if (resolve_classes(&R, K, "logits") == 0)
                for (int i = 0; i < o.n_classes; i++) {
                    if (R.classes[i] < 0 || R.classes[i] >= K) abort();
                    (void)ex_label_of(&R, R.classes[i]);
                }
        }
        R.labels = own_labels;
    }
    if (R.labels != (const char **)gc_imagenet_labels) free(R.labels);
    free(R.labels_owned);
    free(classes);
    return 0;
}
