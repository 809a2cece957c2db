/* gradcam eval: the table on the terminal, eval.csv, eval.json and eval.html (with the curves
 * drawn as inline SVG: no script, no external resource). */
#include <math.h>

#include "eval.h"
#include "explain/method_table.h"

const char *ev_method_title(gcam_method m) {
    const gc_method_info *i = gc_method_info_of(m);
    return i ? i->plain_title : "?";
}

static double ratio(double a, int64_t n) { return n > 0 ? a / (double)n : NAN; }

void ev_row_of(const ev_method_result *r, ev_row *row) {
    row->loc_error = ratio((double)r->loc_err, r->loc_n);
    double s = 0;
    for (int64_t i = 0; i < r->n_ious; i++) s += r->ious[i];
    row->iou_mean = ratio(s, r->n_ious);
    row->iou_median = NAN;
    if (r->n_ious) {
        double *tmp = malloc(sizeof(double) * (size_t)r->n_ious);
        if (tmp) {
            memcpy(tmp, r->ious, sizeof(double) * (size_t)r->n_ious);
            row->iou_median = gc_median(tmp, r->n_ious);
            free(tmp);
        }
    }
    row->pointing = ratio((double)r->pt_hit, r->pt_n);
    row->energy = ratio(r->energy_sum, r->energy_n);
    row->discrimination = ratio((double)r->cd_hit, r->cd_n);
    row->deletion = ratio(r->del_sum, r->fa_n);
    row->insertion = ratio(r->ins_sum, r->fa_n);
}

static double sanity_sp(const ev_method_result *r, int d) { return ratio(r->sp_sum[d], r->sp_n[d]); }
static double sanity_ss(const ev_method_result *r, int d) { return ratio(r->ss_sum[d], r->ss_n[d]); }

/* ---- terminal ---- */

static void print_sanity(FILE *f, const ev_summary *s, const ev_method_result *res, int n);

static void cell(FILE *f, double v, int width) {
    if (isnan(v)) fprintf(f, "%*s", width, "-");
    else fprintf(f, "%*.3f", width, v);
}

/* --task detect: per class (those with a box or a detection), the matching's counts. */
static void print_det_classes(FILE *f, const ev_det_summary *d) {
    fprintf(f, "%-24s %8s %8s %8s %8s %8s %10s\n", "class", "boxes", "matched", "missed", "recall", "dets", "false pos.");
    for (int64_t c = 0; c < d->K; c++) {
        const ev_det_counts *k = &d->per_class[c];
        if (!k->gt && !k->dets) continue;
        char name[64];
        const char *lb = c < d->n_labels && d->labels[c][0] ? d->labels[c] : NULL;
        if (lb) snprintf(name, sizeof name, "%lld %.40s", (long long)c, lb);
        else snprintf(name, sizeof name, "%lld", (long long)c);
        fprintf(f, "%-24s %8lld %8lld %8lld", name, (long long)k->gt, (long long)k->matched, (long long)k->missed);
        cell(f, ratio((double)k->matched, k->gt), 9);
        fprintf(f, " %8lld %10lld\n", (long long)k->dets, (long long)k->fp);
    }
}

/* --task detect: per method the pointing game and energy of the matched detections' maps. */
static void print_det_table(FILE *f, const ev_summary *s, const ev_method_result *res, int n) {
    const ev_det_summary *d = &s->det;
    fprintf(f, "%-22s %8s %8s %8s %8s %8s\n", "method", "matched", "pointing", "energy", "IoU", "IoU med");
    for (int i = 0; i < n; i++) {
        const ev_method_result *r = &res[i];
        if (r->skipped) {
            fprintf(f, "%-22s skipped: %.90s\n", ev_method_title(r->method), r->skip_reason);
            continue;
        }
        ev_row w;
        ev_row_of(r, &w);
        fprintf(f, "%-22s %8lld", ev_method_title(r->method), (long long)(r->pt_n ? r->pt_n : r->n_ious));
        cell(f, w.pointing, 9);
        cell(f, w.energy, 9);
        cell(f, w.iou_mean, 9);
        cell(f, w.iou_median, 9);
        fputc('\n', f);
    }
    fprintf(f, "(%d images; %lld ground-truth boxes: %lld matched, %lld missed, recall %.3f at IoU %.2g; %lld detections, "
               "%lld false positives)\n\n",
            s->n_images, (long long)d->all.gt, (long long)d->all.matched, (long long)d->all.missed,
            ratio((double)d->all.matched, d->all.gt), d->match_iou, (long long)d->all.dets, (long long)d->all.fp);
    print_det_classes(f, d);
}

void ev_print_table(FILE *f, const ev_summary *s, const ev_method_result *res, int n) {
    if (s->task == CLI_TASK_DETECT) {
        print_det_table(f, s, res, n);
        print_sanity(f, s, res, n);
        return;
    }
    fprintf(f, "%-22s %8s %8s %8s %8s %8s %8s %9s %9s\n", "method", "loc.err", "IoU", "IoU med", "pointing", "energy",
            "discrim", "deletion", "insertion");
    for (int i = 0; i < n; i++) {
        const ev_method_result *r = &res[i];
        if (r->skipped) {
            fprintf(f, "%-22s skipped: %.90s\n", ev_method_title(r->method), r->skip_reason);
            continue;
        }
        ev_row w;
        ev_row_of(r, &w);
        fprintf(f, "%-22s", ev_method_title(r->method));
        cell(f, w.loc_error, 9);
        cell(f, w.iou_mean, 9);
        cell(f, w.iou_median, 9);
        cell(f, w.pointing, 9);
        cell(f, w.energy, 9);
        cell(f, w.discrimination, 9);
        cell(f, w.deletion, 10);
        cell(f, w.insertion, 10);
        fputc('\n', f);
    }
    fprintf(f, "(%d images, %d image-class cases, %d class pairs; deletion: lower is better, insertion: higher)\n",
            s->n_images, s->n_cases, s->n_pairs);
    print_sanity(f, s, res, n);
}

/* The sanity check's table (when it ran). */
static void print_sanity(FILE *f, const ev_summary *s, const ev_method_result *res, int n) {
    if (!(s->metrics & EV_M_SANITY) || !s->n_depths) return;
    fprintf(f, "\nSanity check: Spearman / SSIM between the maps of the model and of the model with its top k\n"
               "parameterised layers randomised (%d cases; low = the method depends on the weights)\n", s->sanity_cases);
    fprintf(f, "%4s  %-28s", "k", "down to layer");
    for (int i = 0; i < n; i++)
        if (!res[i].skipped) fprintf(f, " %15.15s", ev_method_title(res[i].method));
    fputc('\n', f);
    for (int d = 0; d < s->n_depths; d++) {
        fprintf(f, "%4d  %-28.28s", s->depths[d], s->depth_layer[d]);
        for (int i = 0; i < n; i++) {
            if (res[i].skipped) continue;
            char c[40];
            double a = sanity_sp(&res[i], d), b = sanity_ss(&res[i], d);
            if (isnan(a)) snprintf(c, sizeof c, "-");
            else snprintf(c, sizeof c, "%.3f / %.3f", a, b);
            fprintf(f, " %15s", c);
        }
        fputc('\n', f);
    }
}

/* ---- CSV ---- */

static void csv_num(gc_buf *b, double v) {
    gc_buf_puts(b, ",");
    if (!isnan(v) && isfinite(v)) gc_buf_printf(b, "%.9g", v);
}

static void csv_str(gc_buf *b, const char *s) {
    gc_buf_puts(b, "\"");
    for (; *s; s++) gc_buf_put(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
    gc_buf_puts(b, "\"");
}

/* --task detect: one row per method (the matching's counts repeated on each). */
static void write_csv_det(gc_buf *b, const ev_summary *s, const ev_method_result *res, int n) {
    const ev_det_counts *a = &s->det.all;
    gc_buf_puts(b, "method,title,images,matched_cases,pointing_game,pointing_energy,iou_mean,iou_median,gt_boxes,matched,"
                   "missed,recall,detections,false_positives");
    if (s->metrics & EV_M_SANITY)
        for (int d = 0; d < s->n_depths; d++) gc_buf_printf(b, ",spearman_top%d,ssim_top%d", s->depths[d], s->depths[d]);
    gc_buf_puts(b, "\n");
    for (int i = 0; i < n; i++) {
        const ev_method_result *r = &res[i];
        if (r->skipped) continue;
        ev_row w;
        ev_row_of(r, &w);
        gc_buf_puts(b, gcam_method_name(r->method));
        gc_buf_puts(b, ",");
        csv_str(b, ev_method_title(r->method));
        gc_buf_printf(b, ",%d,%lld", s->n_images, (long long)(r->pt_n ? r->pt_n : r->n_ious));
        csv_num(b, w.pointing);
        csv_num(b, w.energy);
        csv_num(b, w.iou_mean);
        csv_num(b, w.iou_median);
        gc_buf_printf(b, ",%lld,%lld,%lld", (long long)a->gt, (long long)a->matched, (long long)a->missed);
        csv_num(b, ratio((double)a->matched, a->gt));
        gc_buf_printf(b, ",%lld,%lld", (long long)a->dets, (long long)a->fp);
        if (s->metrics & EV_M_SANITY)
            for (int d = 0; d < s->n_depths; d++) {
                csv_num(b, sanity_sp(r, d));
                csv_num(b, sanity_ss(r, d));
            }
        gc_buf_puts(b, "\n");
    }
}

static void write_csv(gc_buf *b, const ev_summary *s, const ev_method_result *res, int n) {
    if (s->task == CLI_TASK_DETECT) {
        write_csv_det(b, s, res, n);
        return;
    }
    gc_buf_puts(b, "method,title,images,cases,localisation_error,iou_mean,iou_median,pointing_game,pointing_energy,"
                   "class_discrimination,discrimination_cases,deletion_auc,insertion_auc");
    if (s->metrics & EV_M_SANITY)
        for (int d = 0; d < s->n_depths; d++) gc_buf_printf(b, ",spearman_top%d,ssim_top%d", s->depths[d], s->depths[d]);
    gc_buf_puts(b, "\n");
    for (int i = 0; i < n; i++) {
        const ev_method_result *r = &res[i];
        if (r->skipped) continue;
        ev_row w;
        ev_row_of(r, &w);
        gc_buf_puts(b, gcam_method_name(r->method));
        gc_buf_puts(b, ",");
        csv_str(b, ev_method_title(r->method));
        gc_buf_printf(b, ",%d,%lld", s->n_images, (long long)r->pt_n);
        csv_num(b, w.loc_error);
        csv_num(b, w.iou_mean);
        csv_num(b, w.iou_median);
        csv_num(b, w.pointing);
        csv_num(b, w.energy);
        csv_num(b, w.discrimination);
        gc_buf_printf(b, ",%lld", (long long)r->cd_n);
        csv_num(b, w.deletion);
        csv_num(b, w.insertion);
        if (s->metrics & EV_M_SANITY)
            for (int d = 0; d < s->n_depths; d++) {
                csv_num(b, sanity_sp(r, d));
                csv_num(b, sanity_ss(r, d));
            }
        gc_buf_puts(b, "\n");
    }
}

/* ---- JSON ---- */

static void jnum(gc_json *j, const char *k, double v) {
    gc_json_key(j, k);
    gc_json_number(j, v);
}

static void jint(gc_json *j, const char *k, int64_t v) {
    gc_json_key(j, k);
    gc_json_int(j, v);
}

/* The run: model, inputs, options, counts. */
static void json_run(gc_json *j, const ev_summary *s) {
    gc_json_key(j, "gradcam_version");
    gc_json_string(j, gcam_version());
    gc_json_key(j, "task");
    gc_json_string(j, s->task == CLI_TASK_DETECT ? "detect" : "classify");
    gc_json_key(j, "model");
    gc_json_string(j, s->model);
    gc_json_key(j, "images_dir");
    gc_json_string(j, s->images_dir);
    gc_json_key(j, "boxes");
    gc_json_string(j, s->boxes);
    gc_json_key(j, "preprocessing");
    gc_json_string(j, s->preprocess);
    gc_json_key(j, "layers");
    gc_json_string(j, s->layers);
    gc_json_key(j, "options");
    gc_json_begin_object(j);
    jnum(j, "threshold", s->threshold);
    jnum(j, "tolerance", s->tolerance);
    if (s->task == CLI_TASK_DETECT) {
        gc_json_key(j, "detections");
        gc_json_string(j, s->det.layout);
        gc_json_key(j, "score_threshold"); /* floats as given (0.45, not 0.449999988) */
        gc_json_number_f(j, (float)s->det.score_threshold);
        gc_json_key(j, "iou_threshold");
        gc_json_number_f(j, (float)s->det.iou_threshold);
        jint(j, "max_detections", s->det.max_detections);
        jnum(j, "match_iou", s->det.match_iou);
    } else {
        jint(j, "steps", s->steps);
        gc_json_key(j, "substrate");
        gc_json_string(j, s->substrate);
        jnum(j, "blur_sigma", s->blur_sigma);
    }
    jint(j, "seed", (int64_t)s->seed);
    gc_json_end_object(j);
    gc_json_key(j, "counts");
    gc_json_begin_object(j);
    jint(j, "images", s->n_images);
    jint(j, "failed", s->n_failed);
    jint(j, "cases", s->n_cases);
    jint(j, "class_pairs", s->n_pairs);
    jint(j, "boxes_outside_view", s->n_boxes_dropped);
    jint(j, "parameterised_layers", s->n_param_layers);
    jint(j, "sanity_cases", s->sanity_cases);
    gc_json_end_object(j);
    jnum(j, "seconds", s->seconds);
}

/* The counts of the detection section (overall, or one class). */
static void json_det_counts(gc_json *j, const ev_det_counts *c) {
    jint(j, "ground_truth_boxes", c->gt);
    jint(j, "matched", c->matched);
    jint(j, "missed", c->missed);
    jnum(j, "recall", ratio((double)c->matched, c->gt));
    jint(j, "detections", c->dets);
    jint(j, "false_positives", c->fp);
    jnum(j, "precision", ratio((double)c->matched, c->dets));
}

/* --task detect: "detection": the matching's counts, overall and per class, and per method the
 * pointing game and energy over the matched boxes. */
static void json_detection(gc_json *j, const ev_summary *s, const ev_method_result *res, int n) {
    const ev_det_summary *d = &s->det;
    gc_json_key(j, "detection");
    gc_json_begin_object(j);
    gc_json_key(j, "layout");
    gc_json_string(j, d->layout);
    jnum(j, "match_iou", d->match_iou);
    json_det_counts(j, &d->all);
    gc_json_key(j, "per_class");
    gc_json_begin_array(j);
    for (int64_t c = 0; c < d->K; c++) {
        if (!d->per_class[c].gt && !d->per_class[c].dets) continue;
        gc_json_begin_object(j);
        jint(j, "class", c);
        gc_json_key(j, "label");
        gc_json_string(j, c < d->n_labels && d->labels[c][0] ? d->labels[c] : NULL);
        json_det_counts(j, &d->per_class[c]);
        gc_json_end_object(j);
    }
    gc_json_end_array(j);
    gc_json_key(j, "methods");
    gc_json_begin_array(j);
    for (int i = 0; i < n; i++) {
        const ev_method_result *r = &res[i];
        if (r->skipped) continue;
        gc_json_begin_object(j);
        gc_json_key(j, "method");
        gc_json_string(j, gcam_method_name(r->method));
        jint(j, "matched_cases", r->pt_n ? r->pt_n : r->n_ious);
        if (s->metrics & EV_M_POINT) {
            jnum(j, "pointing_accuracy", ratio((double)r->pt_hit, r->pt_n));
            jnum(j, "energy_mean", ratio(r->energy_sum, r->energy_n));
            jint(j, "energy_cases", r->energy_n);
        }
        gc_json_end_object(j);
    }
    gc_json_end_array(j);
    gc_json_key(j, "not_applicable");
    gc_json_begin_array_inline(j);
    gc_json_string(j, "top-1 localisation error");
    gc_json_string(j, "class discrimination");
    gc_json_string(j, "deletion");
    gc_json_string(j, "insertion");
    gc_json_end_array(j);
    gc_json_end_object(j);
}

/* One method's numbers (classify: every metric; detect: the matched boxes' maps). */
static void json_method(gc_json *j, const ev_summary *s, const ev_method_result *r) {
    ev_row w;
    ev_row_of(r, &w);
    if (s->metrics & EV_M_LOC) {
        gc_json_key(j, "localisation");
        gc_json_begin_object(j);
        if (s->task != CLI_TASK_DETECT) {
            jint(j, "images", r->loc_n);
            jnum(j, "error", w.loc_error);
        }
        jint(j, "iou_cases", r->n_ious);
        jnum(j, "iou_mean", w.iou_mean);
        jnum(j, "iou_median", w.iou_median);
        gc_json_end_object(j);
    }
    if (s->metrics & EV_M_POINT) {
        gc_json_key(j, "pointing");
        gc_json_begin_object(j);
        jint(j, "cases", r->pt_n);
        jnum(j, "accuracy", w.pointing);
        jnum(j, "energy", w.energy);
        gc_json_end_object(j);
    }
    if (s->metrics & EV_M_DISCR) {
        gc_json_key(j, "discrimination");
        gc_json_begin_object(j);
        jint(j, "cases", r->cd_n);
        jnum(j, "accuracy", w.discrimination);
        gc_json_end_object(j);
    }
    if (s->metrics & EV_M_FAITH) {
        gc_json_key(j, "faithfulness");
        gc_json_begin_object(j);
        jint(j, "cases", r->fa_n);
        jnum(j, "deletion_auc", w.deletion);
        jnum(j, "insertion_auc", w.insertion);
        gc_json_key(j, "deletion_curve");
        gc_json_begin_array_inline(j);
        for (int q = 0; q <= s->steps; q++) gc_json_number(j, ratio(r->del_curve[q], r->fa_n));
        gc_json_end_array(j);
        gc_json_key(j, "insertion_curve");
        gc_json_begin_array_inline(j);
        for (int q = 0; q <= s->steps; q++) gc_json_number(j, ratio(r->ins_curve[q], r->fa_n));
        gc_json_end_array(j);
        gc_json_end_object(j);
    }
    if (s->metrics & EV_M_SANITY) {
        gc_json_key(j, "sanity");
        gc_json_begin_array(j);
        for (int d = 0; d < s->n_depths; d++) {
            gc_json_begin_object(j);
            jint(j, "randomised_layers", s->depths[d]);
            gc_json_key(j, "down_to");
            gc_json_string(j, s->depth_layer[d]);
            jint(j, "cases", r->sp_n[d]);
            jnum(j, "spearman", sanity_sp(r, d));
            jnum(j, "ssim", sanity_ss(r, d));
            gc_json_end_object(j);
        }
        gc_json_end_array(j);
    }
}

static void write_json(gc_buf *b, const ev_summary *s, const ev_method_result *res, int n, gc_buf *cases) {
    gc_json j;
    gc_json_init(&j, b, 2);
    gc_json_begin_object(&j);
    json_run(&j, s);
    if (s->task == CLI_TASK_DETECT) json_detection(&j, s, res, n);
    gc_json_key(&j, "methods");
    gc_json_begin_array(&j);
    for (int i = 0; i < n; i++) {
        const ev_method_result *r = &res[i];
        gc_json_begin_object(&j);
        gc_json_key(&j, "method");
        gc_json_string(&j, gcam_method_name(r->method));
        gc_json_key(&j, "title");
        gc_json_string(&j, ev_method_title(r->method));
        if (r->skipped) {
            gc_json_key(&j, "skipped");
            gc_json_string(&j, r->skip_reason);
        } else {
            json_method(&j, s, r);
        }
        gc_json_end_object(&j);
    }
    gc_json_end_array(&j);
    gc_json_key(&j, "cases");
    gc_json_raw(&j, cases->p ? cases->p : "[]");
    gc_json_key(&j, "failures");
    gc_json_begin_array(&j);
    for (int i = 0; i < s->n_failures; i++) gc_json_string(&j, s->failures[i]);
    gc_json_end_array(&j);
    gc_json_end_object(&j);
    gc_buf_puts(b, "\n");
    if (j.bad) b->oom = 1;
}

/* ---- HTML ---- */

static const char *const palette[10] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

static const char PAGE_CSS[] =
    "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"DejaVu Sans\",Arial,sans-serif;margin:0 auto;"
    "max-width:1200px;padding:16px 24px 48px;color:#1b1b1b;background:#fff;line-height:1.4}\n"
    "h1{font-size:1.5rem;margin:.2rem 0 .6rem}h2{font-size:1.15rem;margin:1.6rem 0 .4rem}\n"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:.9rem;margin:0}\n"
    "dt{color:#555}dd{margin:0;overflow-wrap:anywhere}\n"
    "table{border-collapse:collapse;font-size:.9rem;margin:.4rem 0 .6rem}\n"
    "th,td{padding:3px 10px;border-bottom:1px solid #e6e6e6;text-align:right}\n"
    "th{font-weight:600;background:#f4f4f4}td.name,th.name{text-align:left}\n"
    "td{font-variant-numeric:tabular-nums}p.note{color:#555;font-size:.9rem}\n"
    ".plots{display:flex;flex-wrap:wrap;gap:20px}svg{background:#fff;border:1px solid #ddd}\n"
    "span.sw{display:inline-block;width:14px;height:4px;margin-right:6px;vertical-align:middle}\n"
    "ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 18px;font-size:.9rem}\n"
    "li.fail{color:#b00020}footer{margin-top:2rem;color:#777;font-size:.8rem}\n";

static void td(gc_buf *b, double v) {
    if (isnan(v)) gc_buf_puts(b, "<td>&#8211;</td>");
    else gc_buf_printf(b, "<td>%.3f</td>", v);
}

static void dl_item(gc_buf *b, const char *k, const char *v) {
    gc_buf_puts(b, "<dt>");
    gc_html_escape(b, k);
    gc_buf_puts(b, "</dt><dd>");
    gc_html_escape(b, v);
    gc_buf_puts(b, "</dd>\n");
}

/* A line plot: curves[c][0..n) over x = xs (or 0..1 evenly when xs is NULL), y in [y0, y1]. */
typedef struct ev_plot {
    const char *title, *xlabel, *ylabel;
    double y0, y1;
    int n;                 /* points per curve */
    const double *xs;      /* NULL: evenly spaced on [0, 1] */
    double x0, x1;
    const char *const *xticks; /* labels at xs (categorical), or NULL for 0, .25, .., 1 */
} ev_plot;

static void svg_plot(gc_buf *b, const ev_plot *p, const double *const *curves, const int *colour, int n_curves,
                     const char *klass) {
    const double W = 460, H = 320, ml = 56, mr = 16, mt = 30, mb = 50;
    const double pw = W - ml - mr, ph = H - mt - mb;
#define PX(x) (ml + ((x) - p->x0) / (p->x1 - p->x0) * pw)
#define PY(y) (mt + (1 - ((y) - p->y0) / (p->y1 - p->y0)) * ph)
    gc_buf_printf(b, "<svg class=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                     "font-family=\"sans-serif\" font-size=\"12\">\n",
                  klass, W, H, W, H);
    gc_buf_puts(b, "<title>");
    gc_html_escape(b, p->title);
    gc_buf_puts(b, "</title>\n");
    gc_buf_printf(b, "<text x=\"%.1f\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"600\">", W / 2);
    gc_html_escape(b, p->title);
    gc_buf_puts(b, "</text>\n");
    /* grid and ticks */
    for (int k = 0; k <= 4; k++) {
        double yv = p->y0 + (p->y1 - p->y0) * k / 4.0;
        gc_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                         "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n",
                      ml, PY(yv), ml + pw, PY(yv), ml - 6, PY(yv) + 4, yv);
    }
    if (p->xticks) {
        for (int k = 0; k < p->n; k++)
            gc_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", PX(p->xs[k]), mt + ph + 16,
                          p->xticks[k]);
    } else {
        for (int k = 0; k <= 4; k++) {
            double xv = p->x0 + (p->x1 - p->x0) * k / 4.0;
            gc_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                             "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.2f</text>\n",
                          PX(xv), mt, PX(xv), mt + ph, PX(xv), mt + ph + 16, xv);
        }
    }
    gc_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#888\"/>\n", ml, mt, pw, ph);
    gc_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", ml + pw / 2, H - 10);
    gc_html_escape(b, p->xlabel);
    gc_buf_puts(b, "</text>\n");
    gc_buf_printf(b, "<text transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\">", mt + ph / 2);
    gc_html_escape(b, p->ylabel);
    gc_buf_puts(b, "</text>\n");
    for (int c = 0; c < n_curves; c++) {
        gc_buf_printf(b, "<polyline class=\"curve\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", palette[colour[c] % 10]);
        int first = 1;
        for (int k = 0; k < p->n; k++) {
            double y = curves[c][k];
            if (!isfinite(y)) continue;
            double x = p->xs ? p->xs[k] : (p->n > 1 ? (double)k / (p->n - 1) : 0);
            y = fmin(fmax(y, p->y0), p->y1);
            gc_buf_printf(b, "%s%.1f,%.1f", first ? "" : " ", PX(x), PY(y));
            first = 0;
        }
        gc_buf_puts(b, "\"/>\n");
    }
    gc_buf_puts(b, "</svg>\n");
#undef PX
#undef PY
}

/* Closes a plots <div> and lists the methods res[idx[0..n-1]] in their plot colours. */
static void html_legend(gc_buf *b, const ev_method_result *res, const int *idx, int n) {
    gc_buf_puts(b, "</div>\n<ul class=\"legend\">\n");
    for (int c = 0; c < n; c++) {
        gc_buf_printf(b, "<li><span class=\"sw\" style=\"background:%s\"></span>", palette[idx[c] % 10]);
        gc_html_escape(b, ev_method_title(res[idx[c]].method));
        gc_buf_puts(b, "</li>\n");
    }
    gc_buf_puts(b, "</ul>\n");
}

/* report.html's head: title, style, and the run's settings. */
static void html_head(gc_buf *b, const ev_summary *s) {
    gc_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                   "<meta name=\"generator\" content=\"gradcam " GCAM_VERSION_STRING "\">\n<title>gradcam eval: ");
    const char *base = strrchr(s->model, '/');
    gc_html_escape(b, base ? base + 1 : s->model);
    gc_buf_puts(b, "</title>\n<style>\n");
    gc_buf_puts(b, PAGE_CSS);
    gc_buf_puts(b, "</style>\n</head>\n<body>\n<h1>gradcam eval: ");
    gc_html_escape(b, base ? base + 1 : s->model);
    gc_buf_puts(b, "</h1>\n<dl>\n");
    char tmp[512];
    dl_item(b, "model", s->model);
    dl_item(b, "images", s->images_dir);
    dl_item(b, "boxes", s->boxes);
    const ev_det_summary *d = &s->det;
    if (s->task == CLI_TASK_DETECT)
        snprintf(tmp, sizeof tmp, "%d evaluated (%d failed), %lld ground-truth boxes (%lld matched), %lld detections, %d box%s "
                 "outside the model's view", s->n_images, s->n_failed, (long long)d->all.gt, (long long)d->all.matched,
                 (long long)d->all.dets, s->n_boxes_dropped, s->n_boxes_dropped == 1 ? "" : "es");
    else
        snprintf(tmp, sizeof tmp, "%d evaluated (%d failed), %d image-class cases, %d class pairs, %d box%s outside the model's view",
                 s->n_images, s->n_failed, s->n_cases, s->n_pairs, s->n_boxes_dropped, s->n_boxes_dropped == 1 ? "" : "es");
    dl_item(b, "counts", tmp);
    dl_item(b, "preprocessing", s->preprocess);
    dl_item(b, "CAM layer", s->layers);
    if (s->task == CLI_TASK_DETECT)
        snprintf(tmp, sizeof tmp, "task detect: %s layout, score >= %g, class-wise NMS at IoU > %g, at most %d per image; "
                 "matched at IoU >= %g; threshold %.3g of the maximum, pointing tolerance %.3g px", d->layout,
                 (double)(float)d->score_threshold, (double)(float)d->iou_threshold, d->max_detections, d->match_iou,
                 s->threshold, s->tolerance);
    else
        snprintf(tmp, sizeof tmp, "threshold %.3g of the maximum, pointing tolerance %.3g px, %d steps, substrate %s",
                 s->threshold, s->tolerance, s->steps, s->substrate);
    if (s->task != CLI_TASK_DETECT && strcmp(s->substrate, "blur") == 0) {
        size_t u = strlen(tmp);
        snprintf(tmp + u, sizeof tmp - u, " (sigma %.3g px)", s->blur_sigma);
    }
    dl_item(b, "options", tmp);
    snprintf(tmp, sizeof tmp, "%.1f s", s->seconds);
    dl_item(b, "time", tmp);
    gc_buf_puts(b, "</dl>\n");
}

/* The results table, and the mean deletion and insertion curves. */
static void html_results(gc_buf *b, const ev_summary *s, const ev_method_result *res, int n) {
    gc_buf_puts(b, "<h2>Results</h2>\n<table class=\"results\">\n<thead><tr><th class=\"name\">method</th>"
                   "<th>localisation error</th><th>IoU mean</th><th>IoU median</th><th>pointing game</th>"
                   "<th>pointing (energy)</th><th>class discrimination</th><th>deletion AUC &#8595;</th>"
                   "<th>insertion AUC &#8593;</th></tr></thead>\n<tbody>\n");
    int colour[GCAM_METHOD_COUNT], nc = 0;
    const double *del[GCAM_METHOD_COUNT], *ins[GCAM_METHOD_COUNT];
    double *mean_curves = calloc((size_t)(2 * n * (s->steps + 1)) + 1, sizeof(double));
    for (int i = 0; i < n; i++) {
        const ev_method_result *r = &res[i];
        gc_buf_puts(b, "<tr><td class=\"name\">");
        gc_html_escape(b, ev_method_title(r->method));
        if (r->skipped) {
            gc_buf_puts(b, "</td><td colspan=\"8\" class=\"name\">skipped: ");
            gc_html_escape(b, r->skip_reason);
            gc_buf_puts(b, "</td></tr>\n");
            continue;
        }
        gc_buf_puts(b, "</td>");
        ev_row w;
        ev_row_of(r, &w);
        td(b, w.loc_error);
        td(b, w.iou_mean);
        td(b, w.iou_median);
        td(b, w.pointing);
        td(b, w.energy);
        td(b, w.discrimination);
        td(b, w.deletion);
        td(b, w.insertion);
        gc_buf_puts(b, "</tr>\n");
        if (mean_curves && r->fa_n) {
            double *d = mean_curves + (size_t)(2 * nc) * (size_t)(s->steps + 1), *in = d + s->steps + 1;
            for (int q = 0; q <= s->steps; q++) {
                d[q] = r->del_curve[q] / (double)r->fa_n;
                in[q] = r->ins_curve[q] / (double)r->fa_n;
            }
            del[nc] = d;
            ins[nc] = in;
            colour[nc++] = i;
        }
    }
    gc_buf_puts(b, "</tbody>\n</table>\n<p class=\"note\">Localisation error: share of images whose top-1 class is "
                   "not in the ground truth or whose map's box (threshold, largest 8-connected region) has IoU &lt; 0.5 "
                   "with every box of that class. Pointing game: the map's maximum within the tolerance of a box of the "
                   "class; energy: share of the map's positive mass inside the class's boxes. Class discrimination: "
                   "share of (A, B) class pairs on an image where A's map puts more mass in A's boxes than in B's. "
                   "Definitions: docs/evaluation.md.</p>\n");
    if (nc) {
        gc_buf_puts(b, "<h2>Deletion and insertion</h2>\n<div class=\"plots\">\n");
        ev_plot p = {.title = "Deletion (most important pixels first)", .xlabel = "fraction of pixels deleted",
                     .ylabel = "probability of the class", .y0 = 0, .y1 = 1, .n = s->steps + 1, .x0 = 0, .x1 = 1};
        svg_plot(b, &p, del, colour, nc, "deletion");
        p.title = "Insertion (most important pixels first)";
        p.xlabel = "fraction of pixels inserted";
        svg_plot(b, &p, ins, colour, nc, "insertion");
        html_legend(b, res, colour, nc);
        gc_buf_puts(b, "<p class=\"note\">Mean curves over every image-class case. The substrate replaces deleted "
                       "pixels (deletion) and is the starting image (insertion).</p>\n");
    }
    free(mean_curves);
}

/* The sanity check's table: Spearman / SSIM per depth and method. */
static void html_sanity_table(gc_buf *b, const ev_summary *s, const ev_method_result *res, int n) {
    gc_buf_printf(b, "<h2>Sanity check: cascading randomisation</h2>\n<p class=\"note\">Spearman rank correlation / "
                     "SSIM between each method's map on the model and on copies whose top k parameterised layers "
                     "(of %d) have random weights (seed %llu), over %d cases. A method that explains the model "
                     "should lose its map as the weights go.</p>\n",
                  s->n_param_layers, (unsigned long long)s->seed, s->sanity_cases);
    gc_buf_puts(b, "<table class=\"sanity\">\n<thead><tr><th>k</th><th class=\"name\">down to layer</th>");
    for (int i = 0; i < n; i++)
        if (!res[i].skipped) {
            gc_buf_puts(b, "<th>");
            gc_html_escape(b, ev_method_title(res[i].method));
            gc_buf_puts(b, "</th>");
        }
    gc_buf_puts(b, "</tr></thead>\n<tbody>\n");
    for (int d = 0; d < s->n_depths; d++) {
        gc_buf_printf(b, "<tr><td>%d</td><td class=\"name\">", s->depths[d]);
        gc_html_escape(b, s->depth_layer[d]);
        gc_buf_puts(b, "</td>");
        for (int i = 0; i < n; i++) {
            if (res[i].skipped) continue;
            double a = sanity_sp(&res[i], d), c = sanity_ss(&res[i], d);
            if (isnan(a)) gc_buf_puts(b, "<td>&#8211;</td>");
            else gc_buf_printf(b, "<td>%.3f / %.3f</td>", a, c);
        }
        gc_buf_puts(b, "</tr>\n");
    }
    gc_buf_puts(b, "</tbody>\n</table>\n");
}

/* The sanity check's Spearman curves against depth. */
static void html_sanity_curves(gc_buf *b, const ev_summary *s, const ev_method_result *res, int n) {
    double *xs = malloc(sizeof(double) * (size_t)s->n_depths);
    double *vals = malloc(sizeof(double) * (size_t)(n * s->n_depths) + 1);
    char(*labels)[16] = malloc(sizeof(*labels) * (size_t)s->n_depths);
    const char **lp = malloc(sizeof(char *) * (size_t)s->n_depths);
    const double *cv[GCAM_METHOD_COUNT];
    int cc[GCAM_METHOD_COUNT], ncv = 0;
    if (xs && vals && labels && lp) {
        double ymin = 0;
        for (int d = 0; d < s->n_depths; d++) {
            xs[d] = d;
            snprintf(labels[d], sizeof labels[d], "%d", s->depths[d]);
            lp[d] = labels[d];
        }
        for (int i = 0; i < n; i++) {
            if (res[i].skipped) continue;
            double *v = vals + (size_t)ncv * (size_t)s->n_depths;
            for (int d = 0; d < s->n_depths; d++) {
                v[d] = sanity_sp(&res[i], d);
                if (v[d] < ymin) ymin = v[d];
            }
            cv[ncv] = v;
            cc[ncv++] = i;
        }
        ymin = ymin < 0 ? -1 : 0;
        ev_plot p = {.title = "Spearman correlation with the original map", .xlabel = "top layers randomised (k)",
                     .ylabel = "Spearman rank correlation", .y0 = ymin, .y1 = 1, .n = s->n_depths, .xs = xs,
                     .x0 = -0.5, .x1 = s->n_depths - 0.5, .xticks = lp};
        gc_buf_puts(b, "<div class=\"plots\">\n");
        svg_plot(b, &p, cv, cc, ncv, "sanity");
        html_legend(b, res, cc, ncv);
    }
    free(xs);
    free(vals);
    free(labels);
    free(lp);
}

/* One row of the detection counts table. */
static void html_det_row(gc_buf *b, const char *cls, const char *label, const ev_det_counts *c) {
    gc_buf_puts(b, "<tr><td class=\"name\">");
    gc_html_escape(b, cls);
    gc_buf_puts(b, "</td><td class=\"name\">");
    gc_html_escape(b, label ? label : "");
    gc_buf_printf(b, "</td><td>%lld</td><td>%lld</td><td>%lld</td>", (long long)c->gt, (long long)c->matched,
                  (long long)c->missed);
    td(b, ratio((double)c->matched, c->gt));
    gc_buf_printf(b, "<td>%lld</td><td>%lld</td></tr>\n", (long long)c->dets, (long long)c->fp);
}

/* --task detect: per method the matched detections' pointing game, energy and IoU; the matching's
 * counts overall and per class. */
static void html_results_det(gc_buf *b, const ev_summary *s, const ev_method_result *res, int n) {
    const ev_det_summary *d = &s->det;
    gc_buf_puts(b, "<h2>Results: the maps of matched detections</h2>\n<table class=\"results detection\">\n<thead><tr>"
                   "<th class=\"name\">method</th><th>matched boxes</th><th>pointing game</th><th>pointing (energy)</th>"
                   "<th>IoU mean</th><th>IoU median</th></tr></thead>\n<tbody>\n");
    for (int i = 0; i < n; i++) {
        const ev_method_result *r = &res[i];
        gc_buf_puts(b, "<tr><td class=\"name\">");
        gc_html_escape(b, ev_method_title(r->method));
        if (r->skipped) {
            gc_buf_puts(b, "</td><td colspan=\"5\" class=\"name\">skipped: ");
            gc_html_escape(b, r->skip_reason);
            gc_buf_puts(b, "</td></tr>\n");
            continue;
        }
        ev_row w;
        ev_row_of(r, &w);
        gc_buf_printf(b, "</td><td>%lld</td>", (long long)(r->pt_n ? r->pt_n : r->n_ious));
        td(b, w.pointing);
        td(b, w.energy);
        td(b, w.iou_mean);
        td(b, w.iou_median);
        gc_buf_puts(b, "</tr>\n");
    }
    gc_buf_printf(b, "</tbody>\n</table>\n<p class=\"note\">Each ground-truth box is matched to the detection of its "
                     "class with the highest IoU (&#8805; %g; each detection at most once, greedy by IoU). For a matched "
                     "box, the map explaining that detection's score: pointing game, its maximum within the tolerance of "
                     "the box; energy, the share of its positive mass inside the box; IoU, its localisation box against "
                     "the box. Top-1 localisation error, class discrimination, deletion and insertion do not apply to "
                     "detections. Definitions: docs/evaluation.md.</p>\n", d->match_iou);
    gc_buf_puts(b, "<h2>Detections</h2>\n<table class=\"counts\">\n<thead><tr><th class=\"name\">class</th>"
                   "<th class=\"name\">label</th><th>boxes</th><th>matched</th><th>missed</th><th>recall</th>"
                   "<th>detections</th><th>false positives</th></tr></thead>\n<tbody>\n");
    html_det_row(b, "all", NULL, &d->all);
    for (int64_t c = 0; c < d->K; c++) {
        if (!d->per_class[c].gt && !d->per_class[c].dets) continue;
        char idx[32];
        snprintf(idx, sizeof idx, "%lld", (long long)c);
        html_det_row(b, idx, c < d->n_labels && d->labels[c][0] ? d->labels[c] : NULL, &d->per_class[c]);
    }
    gc_buf_printf(b, "</tbody>\n</table>\n<p class=\"note\">Recall at IoU %g: matched / boxes. A detection matching no "
                     "box is a false positive.</p>\n", d->match_iou);
}

static void write_html(gc_buf *b, const ev_summary *s, const ev_method_result *res, int n) {
    html_head(b, s);
    if (s->task == CLI_TASK_DETECT) html_results_det(b, s, res, n);
    else html_results(b, s, res, n);
    if ((s->metrics & EV_M_SANITY) && s->n_depths) {
        html_sanity_table(b, s, res, n);
        html_sanity_curves(b, s, res, n);
    }
    if (s->n_failures) {
        gc_buf_puts(b, "<h2>Failures</h2>\n<ul>\n");
        for (int i = 0; i < s->n_failures; i++) {
            gc_buf_puts(b, "<li class=\"fail\">");
            gc_html_escape(b, s->failures[i]);
            gc_buf_puts(b, "</li>\n");
        }
        gc_buf_puts(b, "</ul>\n");
    }
    gc_buf_puts(b, "<footer>gradcam " GCAM_VERSION_STRING " &#183; eval.csv and eval.json hold the same numbers.</footer>\n"
                   "</body>\n</html>\n");
}

int ev_write_reports(const char *out_dir, const ev_summary *s, const ev_method_result *res, int n, gc_buf *cases,
                     char *msg, size_t msg_size) {
    static const char *const names[3] = {"eval.csv", "eval.json", "eval.html"};
    for (int k = 0; k < 3; k++) {
        gc_buf b = {0};
        if (k == 0) write_csv(&b, s, res, n);
        else if (k == 1) write_json(&b, s, res, n, cases);
        else write_html(&b, s, res, n);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", out_dir, names[k]);
        gc_err err = {0};
        if (b.oom || !b.p) {
            gc_buf_free(&b);
            snprintf(msg, msg_size, "%s: out of memory", path);
            return -1;
        }
        gcam_status rc = gc_write_file_atomic(path, b.p, b.n, &err);
        gc_buf_free(&b);
        if (rc) {
            snprintf(msg, msg_size, "%s", err.msg);
            return -1;
        }
    }
    return 0;
}
