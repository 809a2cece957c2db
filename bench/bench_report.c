/* A linked report.html of N inputs written by the report writer gradcam explain uses
 * (src/report/, gc_report_* in linked mode), without running N explanations: each input's record
 * is shaped as the command makes it for `-k 2 -m gradcam,guided-backprop,guided-gradcam` on an
 * ImageNet classifier and a photo (5 predictions, two rows of five panels: model input, Guided
 * Backprop, Grad-CAM with its box, Guided Grad-CAM, Grad-CAM on the photo), and the PNG files it
 * names are hard links to six small pictures, so that every image of the page loads.
 *
 * Usage: bench_report OUT_DIR N
 * Prints "inputs N bytes B peak_rss_kb K seconds S". bench/bench_report.py opens the page. */
#include <errno.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "report/report.h"


static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The six pictures every input's files link to: a 224x224 gradient in a tint of each kind. */
static const char *const KINDS[] = {"input", "gb", "overlay", "heatmap", "ggc", "photo"};

static int write_templates(const char *dir) {
    gc_image im = {.w = 224, .h = 224};
    im.px = malloc((size_t)(im.w * im.h * 3)); /* (h, w, 3) */
    if (!im.px) return -1;
    for (int k = 0; k < 6; k++) {
        for (int64_t y = 0; y < im.h; y++)
            for (int64_t x = 0; x < im.w; x++) {
                uint8_t *p = im.px + (y * im.w + x) * 3;
                p[0] = (uint8_t)(x + 40 * k);
                p[1] = (uint8_t)(y + 20 * k);
                p[2] = (uint8_t)(255 - 40 * k);
            }
        char path[4200];
        gc_err err = {0};
        snprintf(path, sizeof path, "%s/_template_%s.png", dir, KINDS[k]);
        if (gc_image_write_png(path, &im, &err)) {
            fprintf(stderr, "bench_report: %s\n", err.msg);
            free(im.px);
            return -1;
        }
    }
    free(im.px);
    return 0;
}

static int link_file(const char *dir, const char *name, int kind) {
    char from[4200], to[4200];
    snprintf(from, sizeof from, "%s/_template_%s.png", dir, KINDS[kind]);
    snprintf(to, sizeof to, "%s/%s", dir, name);
    unlink(to);
    if (link(from, to) != 0) {
        fprintf(stderr, "bench_report: %s: %s\n", to, strerror(errno));
        return -1;
    }
    return 0;
}

/* One input's record, as ex_report_input fills it for a classifier (cmd_explain.c's texts). */
static int add_input(gc_report *r, const char *dir, int i, gc_err *err) {
    char path[64], stem[32], note[160], titles[2][200], files[10][96], caps[2][2][80];
    snprintf(stem, sizeof stem, "img_%05d", i);
    snprintf(path, sizeof path, "photos/%s.jpg", stem);
    snprintf(note, sizeof note, "224x224 model input from a 640x480 image (resized to 256, centre crop 224)");
    gc_report_pred preds[5];
    uint32_t h = (uint32_t)i * 2654435761u;
    for (int k = 0; k < 5; k++) {
        int64_t c = (int64_t)((h >> 7) + (uint32_t)k * 397u) % 1000;
        preds[k] = (gc_report_pred){.index = c, .label = gc_imagenet_labels[c], .score = 12.0 - 1.7 * k - (i % 13) * 0.01,
                                    .probability = 0.5 / (1 << k)};
    }
    gc_report_panel panels[2][5];
    gc_report_row rows[2];
    for (int a = 0; a < 2; a++) {
        int64_t c = preds[a].index;
        snprintf(titles[a], sizeof titles[a], "class %lld \xC2\xB7 %s (score %.4g, probability %.2f%%)", (long long)c,
                 preds[a].label, preds[a].score, preds[a].probability * 100);
        snprintf(files[a * 5 + 0], sizeof files[0], "%s_input.png", stem);
        snprintf(files[a * 5 + 1], sizeof files[0], "%s_c%lld_guided-backprop.png", stem, (long long)c);
        snprintf(files[a * 5 + 2], sizeof files[0], "%s_c%lld_gradcam_overlay.png", stem, (long long)c);
        snprintf(files[a * 5 + 3], sizeof files[0], "%s_c%lld_guided-gradcam.png", stem, (long long)c);
        snprintf(files[a * 5 + 4], sizeof files[0], "%s_c%lld_gradcam_photo.png", stem, (long long)c);
        snprintf(caps[a][0], sizeof caps[a][0], "layer /layer4/layer4.2/relu_2/Relu_output_0");
        snprintf(caps[a][1], sizeof caps[a][1], "Grad-CAM layer /layer4/layer4.2/relu_2/Relu_output_0");
        int64_t x0 = (i * 7 + a * 31) % 100, y0 = (i * 11 + a * 17) % 100;
        panels[a][0] = (gc_report_panel){.title = "Model input", .caption = "224x224", .file = files[a * 5 + 0], .file_w = 224, .file_h = 224};
        panels[a][1] = (gc_report_panel){.title = "Guided Backprop", .file = files[a * 5 + 1], .file_w = 224, .file_h = 224};
        panels[a][2] = (gc_report_panel){.title = "Grad-CAM", .caption = caps[a][0], .file = files[a * 5 + 2], .file_w = 224,
                                         .file_h = 224, .box_caption = 1, .box_drawn = 1, .box = {x0, y0, x0 + 90, y0 + 110}};
        panels[a][3] = (gc_report_panel){.title = "Guided Grad-CAM", .caption = caps[a][1], .file = files[a * 5 + 3], .file_w = 224,
                                         .file_h = 224};
        panels[a][4] = (gc_report_panel){.title = "Grad-CAM on the photo", .caption = "640x480", .file = files[a * 5 + 4],
                                         .file_w = 224, .file_h = 224};
        rows[a] = (gc_report_row){.title = titles[a], .cls = c, .label = preds[a].label, .panels = panels[a], .n_panels = 5};
        static const int kind[5] = {0, 1, 2, 4, 5};
        for (int q = a ? 1 : 0; q < 5; q++) /* (the model input is one file for both rows) */
            if (link_file(dir, files[a * 5 + q], kind[q])) return -1;
    }
    gc_report_input in = {.path = path, .stem = stem, .note = note, .preds = preds, .n_preds = 5, .rows = rows, .n_rows = 2};
    return gc_report_add(r, &in, err) ? -1 : 0;
}

int main(int argc, char **argv) {
    if (argc != 3 || atoi(argv[2]) < 1) {
        fprintf(stderr, "usage: bench_report OUT_DIR N\n");
        return 2;
    }
    const char *dir = argv[1];
    int n = atoi(argv[2]);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_report: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (write_templates(dir)) return 1;
    char path[4200], count[32];
    snprintf(path, sizeof path, "%s/report.html", dir);
    snprintf(count, sizeof count, "%d", n);
    const char *keys[] = {"model", "inputs", "methods", "explained"};
    const char *vals[] = {"resnet50.onnx (synthetic records: bench/bench_report.c)", count,
                          "gradcam, guided-backprop, guided-gradcam", "the class score (before any final Softmax/Sigmoid)"};
    gc_report r;
    gc_err err = {0};
    double t0 = now_s();
    if (gc_report_begin(&r, path, GC_REPORT_LINK, "gradcam: resnet50.onnx", keys, vals, 4, &err)) {
        fprintf(stderr, "bench_report: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < n; i++)
        if (add_input(&r, dir, i, &err)) {
            fprintf(stderr, "bench_report: input %d: %s\n", i, err.msg[0] ? err.msg : "cannot link");
            gc_report_abort(&r);
            return 1;
        }
    const char *fails[] = {"photos/broken.jpg: not a PNG or JPEG file"};
    if (gc_report_finish(&r, fails, 1, &err)) {
        fprintf(stderr, "bench_report: %s\n", err.msg);
        return 1;
    }
    double t = now_s() - t0;
    struct stat st;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (stat(path, &st) != 0) return 1;
    printf("inputs %d bytes %lld peak_rss_kb %ld seconds %.3f\n", n, (long long)st.st_size, ru.ru_maxrss, t);
    return 0;
}
