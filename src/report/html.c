/* report.html: one self-contained page (images inline as base64 PNG data URIs, no script, no
 * external resource), streamed input by input and renamed into place at the end. */
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
    "footer{margin-top:2rem;color:#777;font-size:.8rem}\n"
    "</style>\n";

gcam_status gc_report_begin(gc_report *r, const char *path, const char *title, const char *const *keys,
                            const char *const *values, int n_summary, gc_err *err) {
    memset(r, 0, sizeof *r);
    r->panel_px = 224;
    gcam_status rc = gc_afile_open(&r->file, path, err);
    if (rc) return rc;
    gc_buf *b = &r->buf;
    gc_buf_puts(b, PAGE_HEAD);
    gc_buf_puts(b, "<title>");
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
    gc_afile_write_buf(&r->file, b);
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
    if (p->caption) {
        gc_buf_puts(b, "<small>");
        gc_html_escape(b, p->caption);
        gc_buf_puts(b, "</small>");
    }
    gc_buf_puts(b, "</figcaption></figure>\n");
    return GCAM_OK;
}

gcam_status gc_report_add(gc_report *r, const gc_report_input *in, gc_err *err) {
    gc_buf *b = &r->buf;
    r->n_inputs++;
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

gcam_status gc_report_finish(gc_report *r, const char *const *failures, int n_failures, gc_err *err) {
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
                   "connected region above 15% of the map's maximum (Selvaraju et al., section 4.1).</footer>\n"
                   "</body>\n</html>\n");
    gc_afile_write_buf(&r->file, b);
    gc_buf_free(b);
    return gc_afile_commit(&r->file, err);
}

void gc_report_abort(gc_report *r) {
    gc_afile_abort(&r->file);
    gc_buf_free(&r->buf);
}
