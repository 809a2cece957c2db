/* report.html, streamed input by input and renamed into place at the end. Embedded mode (here):
 * one self-contained page, images inline as base64 PNG data URIs, no script, no external
 * resource. Linked mode: html_link.c (the head, the failures and the footer are shared). */
#include "report.h"

static const char PAGE_HEAD[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"generator\" content=\"gradcam " GCAM_VERSION_STRING "\">\n"
    "<style>\n"
    "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"DejaVu Sans\",Arial,sans-serif;margin:0 auto;"
    "max-width:1320px;padding:16px 24px 48px;color:#1b1b1b;background:#fff;line-height:1.4}\n"
    "h1{font-size:1.5rem;margin:.2rem 0 .6rem}\n"
    "h2{font-size:1.15rem;margin:1.6rem 0 .4rem;padding-top:1rem;border-top:2px solid #d8d8d8;"
    "overflow-wrap:anywhere}\n"
    "h3{font-size:1rem;margin:.8rem 0 .4rem}\n"
    "dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:.9rem;margin:0}\n"
    "dl.summary dt{color:#555}dl.summary dd{margin:0;overflow-wrap:anywhere}\n"
    "p.note{color:#555;font-size:.9rem;margin:.2rem 0}\n"
    "table.preds{border-collapse:collapse;font-size:.9rem;margin:.4rem 0 .6rem}\n"
    "table.preds th,table.preds td{padding:3px 10px;border-bottom:1px solid #e6e6e6;text-align:left}\n"
    "table.preds th{font-weight:600;background:#f4f4f4}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "span.bar{display:inline-block;height:.65em;background:#3f6fbf;margin-right:6px;vertical-align:baseline}\n"
    ".panels{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}\n"
    "figure{margin:0;width:var(--panel)}\n"
    "figure img{width:100%;height:auto;display:block;border:1px solid #c8c8c8;background:#eee}\n"
    "img.px{image-rendering:pixelated}\n"
    "figcaption{font-size:.85rem;margin-top:4px;font-weight:600}\n"
    "figcaption small{display:block;font-weight:400;color:#555;overflow-wrap:anywhere}\n"
    ".warn{color:#8a5a00;font-size:.9rem}\n"
    "section.failures li{color:#b00020;overflow-wrap:anywhere}\n"
    ".det{position:relative;display:inline-block;max-width:100%;width:var(--pic);border:1px solid #c8c8c8}\n"
    ".det img{width:100%;height:auto;display:block;border:0}\n"
    ".det svg{position:absolute;left:0;top:0;width:100%;height:100%}\n"
    "footer{margin-top:2rem;color:#777;font-size:.8rem}\n";

void gc_report_put_head(gc_report *r, const char *title, const char *extra_css, const char *const *keys,
                        const char *const *values, int n_summary) {
    gc_buf *b = &r->buf;
    gc_buf_puts(b, PAGE_HEAD);
    if (extra_css) gc_buf_puts(b, extra_css);
    gc_buf_puts(b, "</style>\n<title>");
    gc_html_escape(b, title);
    gc_buf_printf(b, "</title>\n</head>\n<body style=\"--panel:%lldpx\">\n<h1>", (long long)r->panel_px);
    gc_html_escape(b, title);
    gc_buf_puts(b, "</h1>\n<dl class=\"summary\">\n");
    for (int i = 0; i < n_summary; i++) {
        gc_buf_puts(b, "<dt>");
        gc_html_escape(b, keys[i]);
        gc_buf_puts(b, "</dt><dd>");
        gc_html_escape(b, values[i]);
        gc_buf_puts(b, "</dd>\n");
    }
    gc_buf_puts(b, "</dl>\n");
}

gcam_status gc_report_begin(gc_report *r, const char *path, gc_report_mode mode, const char *title,
                            const char *const *keys, const char *const *values, int n_summary, gc_err *err) {
    memset(r, 0, sizeof *r);
    r->panel_px = 224;
    r->mode = mode == GC_REPORT_LINK ? GC_REPORT_LINK : GC_REPORT_EMBED;
    gcam_status rc = gc_afile_open(&r->file, path, err);
    if (rc) return rc;
    if (r->mode == GC_REPORT_LINK) gc_report_link_begin(r, title, keys, values, n_summary);
    else gc_report_put_head(r, title, NULL, keys, values, n_summary);
    gc_afile_write_buf(&r->file, &r->buf);
    return GCAM_OK;
}

static gcam_status put_panel(gc_report *r, const gc_report_panel *p, gc_err *err) {
    gc_buf *b = &r->buf;
    uint8_t *png = NULL;
    size_t png_n = 0;
    gcam_status rc = p->img ? gc_image_encode_png(p->img, &png, &png_n, err) : GCAM_OK;
    if (rc) return rc;
    gc_buf_puts(b, "<figure>");
    if (png) {
        gc_buf_printf(b, "<img%s width=\"%lld\" height=\"%lld\" alt=\"", p->img->w < r->panel_px / 2 ? " class=\"px\"" : "",
                      (long long)p->img->w, (long long)p->img->h);
        gc_html_escape(b, p->title);
        gc_buf_puts(b, "\" src=\"data:image/png;base64,");
        gc_base64(b, png, png_n);
        gc_buf_puts(b, "\">");
        free(png);
    }
    gc_buf_puts(b, "<figcaption>");
    gc_html_escape(b, p->title);
    if (p->caption || p->box_caption) {
        gc_buf_puts(b, "<small>");
        if (p->caption) gc_html_escape(b, p->caption);
        if (p->box_caption)
            gc_buf_printf(b, "%sbox x %lld..%lld, y %lld..%lld", p->caption ? "; " : "", (long long)p->box[0],
                          (long long)p->box[2], (long long)p->box[1], (long long)p->box[3]);
        gc_buf_puts(b, "</small>");
    }
    gc_buf_puts(b, "</figcaption></figure>\n");
    return GCAM_OK;
}

/* Detection colours, by class (distinct on a photo and under a heat map). */
static const char *const DET_COLOURS[] = {"#00e640", "#ff3b30", "#2f80ff", "#ffcc00", "#ff2dd4", "#00d8ff", "#ff8a00", "#a35cff"};

/* The detections' table and the picture with their boxes: one SVG over the image, labels inside. */
static gcam_status put_detections(gc_report *r, const gc_report_input *in, gc_err *err) {
    gc_buf *b = &r->buf;
    if (in->dets_note) {
        gc_buf_puts(b, "<p class=\"note\">");
        gc_html_escape(b, in->dets_note);
        gc_buf_puts(b, "</p>\n");
    }
    if (in->n_dets == 0) {
        gc_buf_puts(b, "<p class=\"note nodet\">No detection.</p>\n");
        return GCAM_OK;
    }
    gc_buf_puts(b, "<table class=\"preds dets\">\n<thead><tr><th>#</th><th>class</th><th>label</th><th>score</th>"
                   "<th>box x0, y0, x1, y1</th></tr></thead>\n<tbody>\n");
    for (int i = 0; i < in->n_dets; i++) {
        const gc_report_det *d = &in->dets[i];
        gc_buf_printf(b, "<tr><td class=\"num\">%d</td><td class=\"num\">%lld</td><td>", i, (long long)d->index);
        gc_html_escape(b, d->label ? d->label : "");
        gc_buf_printf(b, "</td><td class=\"num\">%.3f</td><td class=\"num\">%.1f, %.1f, %.1f, %.1f</td></tr>\n", d->score,
                      d->x0, d->y0, d->x1, d->y1);
    }
    gc_buf_puts(b, "</tbody>\n</table>\n");
    if (!in->picture || !in->picture->px) return GCAM_OK;
    uint8_t *png = NULL;
    size_t png_n = 0;
    gcam_status rc = gc_image_encode_png(in->picture, &png, &png_n, err);
    if (rc) return rc;
    int64_t W = in->picture->w, H = in->picture->h, shown = W < 448 ? 448 : W > 896 ? 896 : W;
    double k = (double)W / (double)shown, fs = 13 * k, sw = 2 * k; /* 13 px labels, 2 px lines as shown */
    gc_buf_printf(b, "<div class=\"det\" style=\"--pic:%lldpx\"><img alt=\"detections\" width=\"%lld\" height=\"%lld\" "
                     "src=\"data:image/png;base64,", (long long)shown, (long long)W, (long long)H);
    gc_base64(b, png, png_n);
    free(png);
    gc_buf_printf(b, "\"><svg viewBox=\"0 0 %lld %lld\" preserveAspectRatio=\"none\" role=\"img\">\n", (long long)W, (long long)H);
    for (int i = 0; i < in->n_dets; i++) {
        const gc_report_det *d = &in->dets[i];
        const char *col = DET_COLOURS[(d->index < 0 ? 0 : d->index) % (int64_t)(sizeof DET_COLOURS / sizeof *DET_COLOURS)];
        gc_buf_printf(b, "<g class=\"box\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
                         "stroke=\"%s\" stroke-width=\"%.2f\"/>", d->x0, d->y0, d->x1 - d->x0, d->y1 - d->y0, col, sw);
        double ty = d->y0 - sw > fs ? d->y0 - sw : d->y0 + fs;
        gc_buf_printf(b, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" fill=\"%s\" stroke=\"#000\" stroke-width=\"%.2f\" "
                         "paint-order=\"stroke\" font-family=\"sans-serif\">%d ", d->x0, ty, fs, col, fs / 6, i);
        if (d->label) gc_html_escape(b, d->label);
        else gc_buf_printf(b, "class %lld", (long long)d->index);
        gc_buf_printf(b, " %.2f</text></g>\n", d->score);
    }
    gc_buf_puts(b, "</svg></div>\n");
    return GCAM_OK;
}

gcam_status gc_report_add(gc_report *r, const gc_report_input *in, gc_err *err) {
    gc_buf *b = &r->buf;
    r->n_inputs++;
    if (r->mode == GC_REPORT_LINK) return gc_report_link_add(r, in, err);
    gc_buf_puts(b, "<section class=\"input\">\n<h2>");
    gc_html_escape(b, in->path);
    gc_buf_puts(b, "</h2>\n");
    if (in->note) {
        gc_buf_puts(b, "<p class=\"note\">");
        gc_html_escape(b, in->note);
        gc_buf_puts(b, "</p>\n");
    }
    for (int i = 0; i < in->n_warnings; i++) {
        gc_buf_puts(b, "<p class=\"warn\">");
        gc_html_escape(b, in->warnings[i]);
        gc_buf_puts(b, "</p>\n");
    }
    if (in->n_preds > 0) {
        gc_buf_puts(b, "<table class=\"preds\">\n<thead><tr><th>rank</th><th>class</th><th>label</th>"
                       "<th>score</th><th>probability</th></tr></thead>\n<tbody>\n");
        for (int i = 0; i < in->n_preds; i++) {
            const gc_report_pred *p = &in->preds[i];
            double pr = p->probability >= 0 && p->probability <= 1 ? p->probability : 0;
            gc_buf_printf(b, "<tr><td class=\"num\">%d</td><td class=\"num\">%lld</td><td>", i + 1, (long long)p->index);
            gc_html_escape(b, p->label ? p->label : "");
            gc_buf_printf(b, "</td><td class=\"num\">%.4g</td><td class=\"num\"><span class=\"bar\" style=\"width:%dpx\">"
                             "</span>%.2f%%</td></tr>\n",
                          p->score, (int)(pr * 120 + 0.5), pr * 100);
        }
        gc_buf_puts(b, "</tbody>\n</table>\n");
    }
    if (in->dets_shown) {
        gcam_status rc = put_detections(r, in, err);
        if (rc) {
            gc_buf_clear(b);
            return rc;
        }
    }
    gc_afile_write_buf(&r->file, b);
    for (int i = 0; i < in->n_rows; i++) {
        const gc_report_row *row = &in->rows[i];
        gc_buf_puts(b, "<div class=\"row\">\n<h3>");
        gc_html_escape(b, row->title);
        gc_buf_puts(b, "</h3>\n<div class=\"panels\">\n");
        for (int p = 0; p < row->n_panels; p++) {
            gcam_status rc = put_panel(r, &row->panels[p], err);
            if (rc) {
                gc_buf_clear(b);
                return rc;
            }
            gc_afile_write_buf(&r->file, b); /* one panel at a time: bounded memory */
        }
        gc_buf_puts(b, "</div>\n</div>\n");
    }
    gc_buf_puts(b, "</section>\n");
    gc_afile_write_buf(&r->file, b);
    return GCAM_OK;
}

void gc_report_put_tail(gc_report *r, const char *const *failures, int n_failures) {
    gc_buf *b = &r->buf;
    if (n_failures > 0) {
        gc_buf_printf(b, "<section class=\"failures\">\n<h2>Failed inputs (%d)</h2>\n<ul>\n", n_failures);
        for (int i = 0; i < n_failures; i++) {
            gc_buf_puts(b, "<li>");
            gc_html_escape(b, failures[i]);
            gc_buf_puts(b, "</li>\n");
        }
        gc_buf_puts(b, "</ul>\n</section>\n");
    }
    if (r->n_inputs == 0 && n_failures == 0) gc_buf_puts(b, "<p class=\"note\">No inputs.</p>\n");
    gc_buf_puts(b, "<footer>Written by gradcam " GCAM_VERSION_STRING
                   ". Heat maps are min-max normalised per map; the box on Grad-CAM panels is the largest "
                   "connected region above 15% of the map's maximum (Selvaraju et al., section 4.1).</footer>\n");
}

gcam_status gc_report_finish(gc_report *r, const char *const *failures, int n_failures, gc_err *err) {
    gc_buf *b = &r->buf;
    if (r->mode == GC_REPORT_LINK) gc_report_link_end(r);
    gc_report_put_tail(r, failures, n_failures);
    if (r->mode == GC_REPORT_LINK) gc_report_link_script(r);
    gc_buf_puts(b, "</body>\n</html>\n");
    gc_afile_write_buf(&r->file, b);
    gc_buf_free(b);
    gc_buf_free(&r->tmp);
    gc_buf_free(&r->tpl);
    gc_buf_free(&r->strs);
    gc_report_link_free(r);
    return gc_afile_commit(&r->file, err);
}

void gc_report_abort(gc_report *r) {
    gc_afile_abort(&r->file);
    gc_buf_free(&r->buf);
    gc_buf_free(&r->tmp);
    gc_buf_free(&r->tpl);
    gc_buf_free(&r->strs);
    gc_report_link_free(r);
}
