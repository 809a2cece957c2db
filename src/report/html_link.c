/* report.html, linked mode: for large runs. The pictures are the PNG files beside the page (named
 * relatively, so the folder can be moved); each input is one compact record of a JSON table
 * streamed into the page as it is explained (a few hundred bytes: repeated strings such as labels,
 * titles and file-name templates are written once and referred to by number); a small script
 * shows one page of inputs at a time (only that page's DOM is built, its images load lazily).
 *
 * The table comes in batches of up to 256 records: a <script type="application/json"
 * class="gc-s"> array of the strings first met in the batch (numbered on from the previous
 * batches'), then a class="gc-r" array of its records. A record ("ref": a string's number, or
 * null for none; records never hold a ref's string itself, so any record decodes alone):
 *   [folder ref (the path up to its last '/', or null), file name, stem (null: the file name
 *    without extension), note ref, [warning ref...] | null,
 *    [class, label ref, score, probability, ...] (four per prediction),
 *    [[row title, panel, ...], ...], detections | null]
 * row title: a string, or [class, label ref, rest] for "class CLS · LABEL" + rest;
 * panel: a template ref, or [template ref, box], or [title, file, caption, width, height] (long form);
 * template: "TITLE\2FILE\2CAPTION\2WIDTH\2HEIGHT", FILE "=" + the part after the stem (the row's
 * class as \1 in "_c\1_"), "!" + a full name, or "" for none; box: [x0, y0, x1, y1, flags]
 * (inclusive; flags 1: said in the caption, 2: drawn over the picture); detections:
 * [note ref, file, picture width, picture height, then per detection class, label ref, score,
 * x0, y0, x1, y1]. */
#include <math.h>

#include "report.h"

static const char LINK_CSS[] =
    "nav.pager{position:sticky;top:0;z-index:2;background:#fff;display:flex;flex-wrap:wrap;gap:6px 12px;"
    "align-items:center;padding:8px 0;margin-top:1rem;border-bottom:1px solid #d8d8d8;font-size:.9rem}\n"
    "nav.pager button,nav.pager input,nav.pager select{font:inherit;padding:2px 8px}\n"
    "nav.pager input.pg{width:5.5em}nav.pager input.find{width:15em}\n"
    ".pic{position:relative;border:1px solid #c8c8c8;background:#eee}\n"
    ".pic img{border:0}\n"
    ".pic .box{position:absolute;border:2px solid #00e640;box-sizing:border-box;pointer-events:none}\n";

static const char LINK_BODY[] =
    "<nav class=\"pager\" id=\"gc-pager\" aria-label=\"Pages of inputs\">\n"
    "<button type=\"button\" id=\"gc-first\" title=\"First page\">&laquo; First</button>\n"
    "<button type=\"button\" id=\"gc-prev\" title=\"Previous page (left arrow)\">&lsaquo; Previous</button>\n"
    "<label>Page <input class=\"pg\" id=\"gc-page\" type=\"number\" min=\"1\" value=\"1\"></label>"
    "<span id=\"gc-pages\">of 1</span>\n"
    "<button type=\"button\" id=\"gc-next\" title=\"Next page (right arrow)\">Next &rsaquo;</button>\n"
    "<button type=\"button\" id=\"gc-last\" title=\"Last page\">Last &raquo;</button>\n"
    "<label>Per page <select id=\"gc-size\"><option>10</option><option>25</option><option selected>50</option>"
    "<option>100</option></select></label>\n"
    "<label>Find <input class=\"find\" id=\"gc-find\" type=\"search\" placeholder=\"file name or class\"></label>\n"
    "<span id=\"gc-count\" role=\"status\" aria-live=\"polite\"></span>\n"
    "</nav>\n"
    "<noscript><p class=\"warn\">This page shows its inputs with a script: allow scripts for this file, or "
    "open the PNG files beside it (results.json lists them).</p></noscript>\n"
    "<div id=\"gc-inputs\"></div>\n";

/* ---- strings written once ------------------------------------------------------------------------ */

static uint32_t str_hash(const char *s) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The string's number; *is_new when it was not met before (or not kept: past the cap). -1: out of
 * memory. */
static int32_t str_ref(gc_report_strings *t, const char *s, int *is_new) {
    *is_new = 1;
    if (!t->s) {
        t->cap = 2 * GC_REPORT_MAX_STRINGS; /* at most half full */
        t->s = calloc((size_t)t->cap, sizeof *t->s);
        t->id = calloc((size_t)t->cap, sizeof *t->id);
        if (!t->s || !t->id) return -1;
    }
    uint32_t i = str_hash(s) & (uint32_t)(t->cap - 1);
    for (; t->s[i]; i = (i + 1) & (uint32_t)(t->cap - 1))
        if (strcmp(t->s[i], s) == 0) {
            *is_new = 0;
            return t->id[i];
        }
    if (t->n < GC_REPORT_MAX_STRINGS) {
        if (!(t->s[i] = gc_strdup(s))) return -1;
        t->id[i] = t->next;
        t->n++;
    }
    return t->next++;
}

void gc_report_link_free(gc_report *r) {
    gc_report_strings *t = &r->strings;
    for (int i = 0; t->s && i < t->cap; i++) free(t->s[i]);
    free(t->s);
    free(t->id);
    memset(t, 0, sizeof *t);
}

/* ---- the record's pieces ----------------------------------------------------------------------- */

/* s as a JSON string safe inside <script> into b: "<" as \u003c, so no "</script" ends a table. */
static void put_str_to(gc_report *r, gc_buf *b, const char *s) {
    gc_buf_clear(&r->tmp);
    gc_json_escape(&r->tmp, s);
    if (r->tmp.oom) {
        b->oom = 1;
        return;
    }
    const char *p = r->tmp.p;
    for (const char *q; (q = strchr(p, '<')); p = q + 1) {
        gc_buf_put(b, p, (size_t)(q - p));
        gc_buf_puts(b, "\\u003c");
    }
    gc_buf_puts(b, p);
}

static void put_str(gc_report *r, const char *s) { put_str_to(r, &r->buf, s); }

/* A string by its number (new ones go to the batch's strings), null for none. */
static void put_ref(gc_report *r, const char *s) {
    if (!s) {
        gc_buf_puts(&r->buf, "null");
        return;
    }
    int is_new;
    int32_t id = str_ref(&r->strings, s, &is_new);
    if (id < 0) {
        r->buf.oom = 1;
        return;
    }
    if (is_new) {
        if (r->strs.n) gc_buf_puts(&r->strs, ",");
        put_str_to(r, &r->strs, s);
    }
    gc_buf_printf(&r->buf, "%d", (int)id);
}

/* A number with `decimals` decimals, or 4 significant digits (decimals < 0), as the embedded page
 * prints it; non-finite: null. */
static void put_num(gc_buf *b, int decimals, double v) {
    if (!isfinite(v)) gc_buf_puts(b, "null");
    else if (decimals < 0) gc_buf_printf(b, "%.4g", v == 0 ? 0.0 : v);
    else gc_buf_printf(b, "%.*f", decimals, v == 0 ? 0.0 : v);
}

/* A file beside the page: the part after the stem (written once), else its full name. */
static void put_file(gc_report *r, const char *stem, const char *file) {
    size_t n = stem ? strlen(stem) : 0;
    if (!file) {
        gc_buf_puts(&r->buf, "null");
    } else if (n && strncmp(file, stem, n) == 0) {
        put_ref(r, file + n);
    } else {
        gc_buf_puts(&r->buf, "[");
        put_str(r, file);
        gc_buf_puts(&r->buf, "]");
    }
}

/* The stem, or null when it is the path's file name without its extension (the script derives it). */
static void put_stem(gc_report *r, const char *path, const char *stem) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot > base ? (size_t)(dot - base) : strlen(base);
    if (!stem || (strlen(stem) == n && strncmp(stem, base, n) == 0)) gc_buf_puts(&r->buf, "null");
    else put_str(r, stem);
}

/* A panel: its template (title, file, caption, size: the same for every input of a run, so written
 * once) and its box, or the long form when a piece holds the template's separators. */
static void put_panel(gc_report *r, const char *stem, const gc_report_panel *p, int64_t cls) {
    gc_buf *b = &r->buf, *t = &r->tpl;
    size_t n = stem ? strlen(stem) : 0;
    const char *pieces[] = {p->title ? p->title : "", p->file ? p->file : "", p->caption ? p->caption : ""};
    int plain = 1;
    for (int i = 0; i < 3; i++) plain &= !strchr(pieces[i], 1) && !strchr(pieces[i], 2);
    int flags = (p->box_caption ? 1 : 0) | (p->box_drawn ? 2 : 0);
    if (flags) gc_buf_puts(b, "[");
    if (plain) {
        gc_buf_clear(t);
        gc_buf_printf(t, "%s\2", pieces[0]);
        if (!p->file) {
        } else if (n && strncmp(p->file, stem, n) == 0) { /* after the stem, the class as \1 */
            char tag[32];
            int tn = snprintf(tag, sizeof tag, "_c%lld_", (long long)cls);
            const char *at = cls >= 0 ? strstr(p->file + n, tag) : NULL;
            if (at) gc_buf_printf(t, "=%.*s_c\1_%s", (int)(at - p->file - n), p->file + n, at + tn);
            else gc_buf_printf(t, "=%s", p->file + n);
        } else {
            gc_buf_printf(t, "!%s", p->file);
        }
        gc_buf_printf(t, "\2%s\2%lld\2%lld", pieces[2], (long long)p->file_w, (long long)p->file_h);
        if (t->oom) b->oom = 1;
        else put_ref(r, t->p);
    } else {
        gc_buf_puts(b, "[");
        put_str(r, p->title);
        gc_buf_puts(b, ",");
        put_str(r, p->file);
        gc_buf_puts(b, ",");
        put_str(r, p->caption);
        gc_buf_printf(b, ",%lld,%lld]", (long long)p->file_w, (long long)p->file_h);
    }
    if (flags)
        gc_buf_printf(b, ",[%lld,%lld,%lld,%lld,%d]]", (long long)p->box[0], (long long)p->box[1], (long long)p->box[2],
                      (long long)p->box[3], flags);
}

/* A row's title: [class, label ref, the rest] when it begins "class CLS · LABEL" (or "class CLS"
 * without a label), else in full. */
static void put_row_title(gc_report *r, const gc_report_row *row) {
    gc_buf *t = &r->tpl;
    gc_buf_clear(t);
    if (row->cls >= 0) {
        gc_buf_printf(t, "class %lld", (long long)row->cls);
        if (row->label) gc_buf_printf(t, " \xC2\xB7 %s", row->label);
    }
    if (row->cls < 0 || t->oom || strncmp(row->title, t->p, t->n) != 0) {
        put_str(r, row->title);
        return;
    }
    const char *rest = row->title + t->n;
    gc_buf_printf(&r->buf, "[%lld,", (long long)row->cls);
    put_ref(r, row->label);
    gc_buf_puts(&r->buf, ",");
    put_str(r, rest);
    gc_buf_puts(&r->buf, "]");
}

static void put_dets(gc_report *r, const gc_report_input *in) {
    gc_buf *b = &r->buf;
    gc_buf_puts(b, "[");
    put_ref(r, in->dets_note);
    gc_buf_puts(b, ",");
    put_file(r, in->stem, in->picture_file);
    gc_buf_printf(b, ",%lld,%lld", (long long)in->picture_w, (long long)in->picture_h);
    for (int i = 0; i < in->n_dets; i++) {
        const gc_report_det *d = &in->dets[i];
        gc_buf_printf(b, ",%lld,", (long long)d->index);
        put_ref(r, d->label);
        gc_buf_puts(b, ",");
        put_num(b, 3, d->score);
        const double c[4] = {d->x0, d->y0, d->x1, d->y1};
        for (int k = 0; k < 4; k++) {
            gc_buf_puts(b, ",");
            put_num(b, 1, c[k]);
        }
    }
    gc_buf_puts(b, "]");
}

/* ---- the page ----------------------------------------------------------------------------------- */

void gc_report_link_begin(gc_report *r, const char *title, const char *const *keys, const char *const *values,
                          int n_summary) {
    gc_report_put_head(r, title, LINK_CSS, keys, values, n_summary);
    gc_buf_puts(&r->buf, LINK_BODY);
}

/* The batch's new strings, then its records, as two JSON arrays (<script> elements of classes
 * gc-s and gc-r): records only refer to strings of this or earlier batches. */
static void flush_batch(gc_report *r) {
    if (!r->batch) return;
    static const char S[] = "<script type=\"application/json\" class=\"gc-s\">[";
    static const char R[] = "]</script>\n<script type=\"application/json\" class=\"gc-r\">[\n";
    static const char E[] = "\n]</script>\n";
    gc_afile_write(&r->file, S, sizeof S - 1);
    gc_afile_write_buf(&r->file, &r->strs);
    gc_afile_write(&r->file, R, sizeof R - 1);
    gc_afile_write_buf(&r->file, &r->buf);
    gc_afile_write(&r->file, E, sizeof E - 1);
    r->batch = 0;
}

gcam_status gc_report_link_add(gc_report *r, const gc_report_input *in, gc_err *err) {
    gc_buf *b = &r->buf;
    if (r->batch == 0) gc_afile_write_buf(&r->file, b); /* (the page's head, the first time) */
    size_t at = b->n, at_strs = r->strs.n;
    if (r->batch) gc_buf_puts(b, ",\n");
    const char *slash = strrchr(in->path, '/'); /* the folder written once, the file name each time */
    gc_buf_puts(b, "[");
    if (slash) {
        gc_buf_clear(&r->tpl);
        gc_buf_put(&r->tpl, in->path, (size_t)(slash + 1 - in->path));
        if (r->tpl.oom) b->oom = 1;
        else put_ref(r, r->tpl.p);
    } else {
        gc_buf_puts(b, "null");
    }
    gc_buf_puts(b, ",");
    put_str(r, slash ? slash + 1 : in->path);
    gc_buf_puts(b, ",");
    put_stem(r, in->path, in->stem);
    gc_buf_puts(b, ",");
    put_ref(r, in->note);
    gc_buf_puts(b, in->n_warnings ? ",[" : ",null");
    for (int i = 0; i < in->n_warnings; i++) {
        if (i) gc_buf_puts(b, ",");
        put_ref(r, in->warnings[i]);
    }
    gc_buf_puts(b, in->n_warnings ? "],[" : ",[");
    for (int i = 0; i < in->n_preds; i++) {
        const gc_report_pred *p = &in->preds[i];
        gc_buf_printf(b, "%s%lld,", i ? "," : "", (long long)p->index);
        put_ref(r, p->label);
        gc_buf_puts(b, ",");
        put_num(b, -1, p->score);
        gc_buf_puts(b, ",");
        put_num(b, -1, p->probability);
    }
    gc_buf_puts(b, "],[");
    for (int i = 0; i < in->n_rows; i++) {
        const gc_report_row *row = &in->rows[i];
        gc_buf_puts(b, i ? ",[" : "[");
        put_row_title(r, row);
        for (int p = 0; p < row->n_panels; p++) {
            gc_buf_puts(b, ",");
            put_panel(r, in->stem, &row->panels[p], row->cls);
        }
        gc_buf_puts(b, "]");
    }
    gc_buf_puts(b, "],");
    if (in->dets_shown) put_dets(r, in);
    else gc_buf_puts(b, "null");
    gc_buf_puts(b, "]");
    if (b->oom || r->strs.oom) {
        b->n = at; /* (the report is dropped: its strings' numbers no longer match) */
        r->strs.n = at_strs;
        return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", in->path);
    }
    if (++r->batch >= 256 || b->n >= (1u << 16)) flush_batch(r); /* bounded memory */
    return GCAM_OK;
}

void gc_report_link_end(gc_report *r) {
    if (r->batch) flush_batch(r);
    else gc_afile_write_buf(&r->file, &r->buf); /* (the head, when no input came) */
}

/* Shows the tables a page at a time: parses them, decodes a record when it is shown (or searched),
 * builds the current page's sections like the embedded page's, pages with the buttons, the page
 * number or the arrow keys, and finds by file name or class (the top prediction's, the explained
 * ones'). data-ready on <html> and window.gcReadyMs mark the first page built, window.gcPaintMs
 * the frame after it (the bench). */
static const char LINK_SCRIPT[] =
    "(function () {\n"
    "'use strict';\n"
    "var T = [];\n"
    "function S(v) { return v == null ? null : T[v]; }\n"
    "function F(v, stem) { return v == null ? null : Array.isArray(v) ? v[0] : stem + T[v]; }\n"
    "var TPL = {};\n"
    "function panel(tpl, stem, cls, box) {\n"
    "  var t = TPL[tpl];\n"
    "  if (!t) {\n"
    "    var v = tpl.split('\\u0002');\n"
    "    t = TPL[tpl] = {title: v[0], file: v[1], cap: v[2] || null, w: +v[3], h: +v[4]};\n"
    "  }\n"
    "  var f = t.file.charAt(0) === '=' ? stem + t.file.slice(1).replace('\\u0001', cls) : t.file.charAt(0) === '!' ? t.file.slice(1) : null;\n"
    "  return {title: t.title, file: f, cap: t.cap, w: t.w, h: t.h, box: box};\n"
    "}\n"
    "function decode(a0) {\n"
    "  var a = a0.slice(1);\n"
    "  a[0] = (S(a0[0]) || '') + a[0]; /* the folder, then the file name */\n"
    "  var path = a[0], stem = a[1];\n"
    "  if (stem == null) {\n"
    "    var b = path.slice(path.lastIndexOf('/') + 1), d = b.lastIndexOf('.');\n"
    "    stem = d > 0 ? b.slice(0, d) : b;\n"
    "  }\n"
    "  var r = {path: path, note: S(a[2]), warns: (a[3] || []).map(S), preds: [], rows: [], det: null}, i, k;\n"
    "  var p = a[4], keys = [path];\n"
    "  for (i = 0; i + 3 < p.length; i += 4) r.preds.push({cls: p[i], label: S(p[i + 1]), score: p[i + 2], prob: p[i + 3]});\n"
    "  if (r.preds.length) keys.push('class ' + r.preds[0].cls + ' \\u00b7 ' + (r.preds[0].label || '')); /* the top one */\n"
    "  for (i = 0; i < a[5].length; i++) {\n"
    "    var row = a[5][i], t = row[0], cls = null, ps = [];\n"
    "    if (Array.isArray(t)) {\n"
    "      cls = t[0];\n"
    "      var lb = S(t[1]);\n"
    "      t = 'class ' + cls + (lb != null ? ' \\u00b7 ' + lb : '') + t[2];\n"
    "    }\n"
    "    for (k = 1; k < row.length; k++) {\n"
    "      var q = row[k];\n"
    "      if (!Array.isArray(q)) ps.push(panel(S(q), stem, cls, null));\n"
    "      else if (q.length === 2) ps.push(panel(S(q[0]), stem, cls, q[1]));\n"
    "      else ps.push({title: q[0], file: q[1], cap: q[2], w: q[3], h: q[4], box: null});\n"
    "    }\n"
    "    r.rows.push({title: t, panels: ps});\n"
    "    keys.push(t || '');\n"
    "  }\n"
    "  var dt = a[6];\n"
    "  if (dt) {\n"
    "    r.det = {note: S(dt[0]), file: F(dt[1], stem), W: dt[2], H: dt[3], list: []};\n"
    "    for (i = 4; i + 6 < dt.length; i += 7) {\n"
    "      r.det.list.push({cls: dt[i], label: S(dt[i + 1]), score: dt[i + 2], b: [dt[i + 3], dt[i + 4], dt[i + 5], dt[i + 6]]});\n"
    "      keys.push('class ' + dt[i] + ' ' + (r.det.list[r.det.list.length - 1].label || ''));\n"
    "    }\n"
    "  }\n"
    "  r.key = keys.join('\\n').toLowerCase();\n"
    "  return r;\n"
    "}\n"
    "function el(tag, cls, text) {\n"
    "  var e = document.createElement(tag);\n"
    "  if (cls) e.className = cls;\n"
    "  if (text != null) e.textContent = text;\n"
    "  return e;\n"
    "}\n"
    "function url(f) { return f.split('/').map(encodeURIComponent).join('/'); }\n"
    "function g4(v) {\n"
    "  if (v == null) return 'nan';\n"
    "  if (v === 0) return '0';\n"
    "  var e = Math.floor(Math.log10(Math.abs(v))), s;\n"
    "  if (e < -4 || e >= 4) {\n"
    "    s = v.toExponential(3).replace(/\\.?0+e/, 'e').replace(/e([+-])(\\d)$/, 'e$10$2');\n"
    "  } else {\n"
    "    s = v.toFixed(Math.max(0, 3 - e));\n"
    "    if (s.indexOf('.') >= 0) s = s.replace(/\\.?0+$/, '');\n"
    "  }\n"
    "  return s;\n"
    "}\n"
    "function fx(v, n) { return v == null ? 'nan' : v.toFixed(n); }\n"
    "function cell(tr, text, num) { tr.appendChild(el('td', num ? 'num' : null, text)); return tr.lastChild; }\n"
    "function table(cls, heads) {\n"
    "  var t = el('table', cls), h = el('thead'), tr = el('tr');\n"
    "  heads.forEach(function (x) { tr.appendChild(el('th', null, x)); });\n"
    "  h.appendChild(tr);\n"
    "  t.appendChild(h);\n"
    "  t.appendChild(el('tbody'));\n"
    "  return t;\n"
    "}\n"
    "var PANEL = parseFloat(getComputedStyle(document.body).getPropertyValue('--panel')) || 224;\n"
    "function pct(v, n) { return (100 * v / n) + '%'; }\n"
    "function figure(p) {\n"
    "  var f = el('figure');\n"
    "  if (p.file) {\n"
    "    var w = el('div', 'pic'), im = el('img');\n"
    "    im.loading = 'lazy';\n"
    "    im.decoding = 'async';\n"
    "    im.width = p.w;\n"
    "    im.height = p.h;\n"
    "    im.alt = p.title || '';\n"
    "    if (p.w < PANEL / 2) im.className = 'px';\n"
    "    im.src = url(p.file);\n"
    "    w.appendChild(im);\n"
    "    if (p.box && (p.box[4] & 2)) {\n"
    "      var b = el('div', 'box');\n"
    "      b.style.left = pct(p.box[0], p.w);\n"
    "      b.style.top = pct(p.box[1], p.h);\n"
    "      b.style.width = pct(p.box[2] - p.box[0] + 1, p.w);\n"
    "      b.style.height = pct(p.box[3] - p.box[1] + 1, p.h);\n"
    "      w.appendChild(b);\n"
    "    }\n"
    "    f.appendChild(w);\n"
    "  }\n"
    "  var c = el('figcaption', null, p.title || ''), cap = p.cap || '';\n"
    "  if (p.box && (p.box[4] & 1))\n"
    "    cap += (cap ? '; ' : '') + 'box x ' + p.box[0] + '..' + p.box[2] + ', y ' + p.box[1] + '..' + p.box[3];\n"
    "  if (cap) c.appendChild(el('small', null, cap));\n"
    "  f.appendChild(c);\n"
    "  return f;\n"
    "}\n"
    "var COLOURS = ['#00e640', '#ff3b30', '#2f80ff', '#ffcc00', '#ff2dd4', '#00d8ff', '#ff8a00', '#a35cff'];\n"
    "var NS = 'http://www.w3.org/2000/svg';\n"
    "function svg(tag, attrs) {\n"
    "  var e = document.createElementNS(NS, tag);\n"
    "  for (var k in attrs) e.setAttribute(k, attrs[k]);\n"
    "  return e;\n"
    "}\n"
    "function detections(s, d) {\n"
    "  if (d.note) s.appendChild(el('p', 'note', d.note));\n"
    "  if (!d.list.length) { s.appendChild(el('p', 'note nodet', 'No detection.')); return; }\n"
    "  var t = table('preds dets', ['#', 'class', 'label', 'score', 'box x0, y0, x1, y1']), tb = t.lastChild;\n"
    "  d.list.forEach(function (x, i) {\n"
    "    var tr = el('tr');\n"
    "    cell(tr, String(i), 1); cell(tr, String(x.cls), 1); cell(tr, x.label || '');\n"
    "    cell(tr, fx(x.score, 3), 1); cell(tr, x.b.map(function (v) { return fx(v, 1); }).join(', '), 1);\n"
    "    tb.appendChild(tr);\n"
    "  });\n"
    "  s.appendChild(t);\n"
    "  if (!d.file) return;\n"
    "  var W = d.W, H = d.H, shown = W < 448 ? 448 : W > 896 ? 896 : W, k = W / shown, fs = 13 * k, sw = 2 * k;\n"
    "  var box = el('div', 'det'), im = el('img');\n"
    "  box.style.setProperty('--pic', shown + 'px');\n"
    "  im.alt = 'detections'; im.loading = 'lazy'; im.width = W; im.height = H; im.src = url(d.file);\n"
    "  box.appendChild(im);\n"
    "  var g = svg('svg', {viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img'});\n"
    "  d.list.forEach(function (x, i) {\n"
    "    var col = COLOURS[(x.cls < 0 ? 0 : x.cls) % COLOURS.length], b = x.b, grp = svg('g', {'class': 'box'});\n"
    "    grp.appendChild(svg('rect', {x: b[0], y: b[1], width: b[2] - b[0], height: b[3] - b[1], fill: 'none', stroke: col,\n"
    "                                 'stroke-width': sw}));\n"
    "    var txt = svg('text', {x: b[0], y: b[1] - sw > fs ? b[1] - sw : b[1] + fs, 'font-size': fs, fill: col, stroke: '#000',\n"
    "                           'stroke-width': fs / 6, 'paint-order': 'stroke', 'font-family': 'sans-serif'});\n"
    "    txt.textContent = i + ' ' + (x.label || 'class ' + x.cls) + ' ' + fx(x.score, 2);\n"
    "    grp.appendChild(txt);\n"
    "    g.appendChild(grp);\n"
    "  });\n"
    "  box.appendChild(g);\n"
    "  s.appendChild(box);\n"
    "}\n"
    "function section(r) {\n"
    "  var s = el('section', 'input');\n"
    "  s.appendChild(el('h2', null, r.path));\n"
    "  if (r.note) s.appendChild(el('p', 'note', r.note));\n"
    "  r.warns.forEach(function (w) { s.appendChild(el('p', 'warn', w)); });\n"
    "  if (r.preds.length) {\n"
    "    var t = table('preds', ['rank', 'class', 'label', 'score', 'probability']), tb = t.lastChild;\n"
    "    r.preds.forEach(function (p, i) {\n"
    "      var tr = el('tr'), pr = p.prob >= 0 && p.prob <= 1 ? p.prob : 0;\n"
    "      cell(tr, String(i + 1), 1); cell(tr, String(p.cls), 1); cell(tr, p.label || ''); cell(tr, g4(p.score), 1);\n"
    "      var td = cell(tr, null, 1), bar = el('span', 'bar');\n"
    "      bar.style.width = Math.round(pr * 120) + 'px';\n"
    "      td.appendChild(bar);\n"
    "      td.appendChild(document.createTextNode((pr * 100).toFixed(2) + '%'));\n"
    "      tb.appendChild(tr);\n"
    "    });\n"
    "    s.appendChild(t);\n"
    "  }\n"
    "  if (r.det) detections(s, r.det);\n"
    "  r.rows.forEach(function (row) {\n"
    "    var d = el('div', 'row'), ps = el('div', 'panels');\n"
    "    d.appendChild(el('h3', null, row.title || ''));\n"
    "    row.panels.forEach(function (p) { ps.appendChild(figure(p)); });\n"
    "    d.appendChild(ps);\n"
    "    s.appendChild(d);\n"
    "  });\n"
    "  return s;\n"
    "}\n"
    "/* the tables, parsed; a record is decoded when shown or searched */\n"
    "var RAW = [], ALL = [], i0;\n"
    "Array.prototype.forEach.call(document.querySelectorAll('script.gc-s'), function (e) {\n"
    "  Array.prototype.push.apply(T, JSON.parse(e.textContent));\n"
    "});\n"
    "Array.prototype.forEach.call(document.querySelectorAll('script.gc-r'), function (e) {\n"
    "  var a = JSON.parse(e.textContent);\n"
    "  for (var i = 0; i < a.length; i++) RAW.push(a[i]);\n"
    "});\n"
    "for (i0 = 0; i0 < RAW.length; i0++) ALL.push(i0);\n"
    "var DEC = new Array(RAW.length), KEYS = null;\n"
    "function rec(i) { return DEC[i] || (DEC[i] = decode(RAW[i])); }\n"
    "var list = ALL, page = 0, size = 50;\n"
    "function $(id) { return document.getElementById(id); }\n"
    "function pages() { return Math.max(1, Math.ceil(list.length / size)); }\n"
    "function show(p, scroll) {\n"
    "  page = Math.min(Math.max(0, p | 0), pages() - 1);\n"
    "  var a = page * size, b = Math.min(list.length, a + size), frag = document.createDocumentFragment();\n"
    "  for (var i = a; i < b; i++) frag.appendChild(section(rec(list[i])));\n"
    "  $('gc-inputs').replaceChildren(frag);\n"
    "  $('gc-page').value = page + 1;\n"
    "  $('gc-page').max = pages();\n"
    "  $('gc-pages').textContent = 'of ' + pages();\n"
    "  $('gc-first').disabled = $('gc-prev').disabled = page === 0;\n"
    "  $('gc-next').disabled = $('gc-last').disabled = page >= pages() - 1;\n"
    "  $('gc-count').textContent = list.length ? 'inputs ' + (a + 1) + '\\u2013' + b + ' of ' + list.length +\n"
    "    (list === ALL ? '' : ' found (' + ALL.length + ' in all)') : (ALL.length ? 'no input found' : '');\n"
    "  document.documentElement.setAttribute('data-page', page + 1);\n"
    "  try { history.replaceState(null, '', '#page=' + (page + 1)); } catch (e) { /* some file: URLs */ }\n"
    "  if (scroll) $('gc-pager').scrollIntoView();\n"
    "}\n"
    "$('gc-first').onclick = function () { show(0, 1); };\n"
    "$('gc-prev').onclick = function () { show(page - 1, 1); };\n"
    "$('gc-next').onclick = function () { show(page + 1, 1); };\n"
    "$('gc-last').onclick = function () { show(pages() - 1, 1); };\n"
    "$('gc-page').onchange = function () { show(parseInt(this.value, 10) - 1, 1); };\n"
    "$('gc-page').onkeydown = function (e) { if (e.key === 'Enter') show(parseInt(this.value, 10) - 1, 1); };\n"
    "$('gc-size').onchange = function () { var first = page * size; size = parseInt(this.value, 10) || 50; show(Math.floor(first / size), 1); };\n"
    "$('gc-find').oninput = function () {\n"
    "  var q = this.value.trim().toLowerCase();\n"
    "  if (q && !KEYS) KEYS = RAW.map(function (x, i) { return rec(i).key; });\n"
    "  list = q ? ALL.filter(function (i) { return KEYS[i].indexOf(q) >= 0; }) : ALL;\n"
    "  show(0, 0);\n"
    "};\n"
    "document.addEventListener('keydown', function (e) {\n"
    "  var t = e.target, tag = t && t.tagName;\n"
    "  if (e.altKey || e.ctrlKey || e.metaKey || tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') return;\n"
    "  if (e.key === 'ArrowRight') { show(page + 1, 1); e.preventDefault(); }\n"
    "  else if (e.key === 'ArrowLeft') { show(page - 1, 1); e.preventDefault(); }\n"
    "});\n"
    "var m = /^#page=(\\d+)$/.exec(location.hash);\n"
    "show(m ? parseInt(m[1], 10) - 1 : 0, 0);\n"
    "window.gcReadyMs = performance.now();\n"
    "document.documentElement.setAttribute('data-ready', '1');\n"
    "requestAnimationFrame(function () { setTimeout(function () { window.gcPaintMs = performance.now(); }, 0); });\n"
    "})();\n";

void gc_report_link_script(gc_report *r) {
    gc_buf_puts(&r->buf, "<script>\n");
    gc_buf_puts(&r->buf, LINK_SCRIPT);
    gc_buf_puts(&r->buf, "</script>\n");
}
