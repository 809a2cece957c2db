/* What gradcam explain writes: for each input its model view, heat maps, overlays, photo
 * overlays, pixel-space pictures, .npy maps, results.json record and report.html section; for the
 * run results.json, report.html and the summary line. A failed input's files are removed
 * (ex_end_input_files), so a batch leaves no half-written input behind. */
#include <errno.h>
#include <math.h>
#include <unistd.h>

#include "explain.h"
#include "explain/method_table.h"
#include "image/npy.h"

int ex_one_oom(const ex_one *s, gc_err *err) {
    gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", s->in->path);
    return EX_FAILED;
}

static int panel_order(int method, const ex_opts *o) {
    /* original, Guided Backprop, Grad-CAM, Guided Grad-CAM, the others as asked, the photo */
    if (method == -1) return 0;
    if (method == GCAM_GUIDED_BACKPROP) return 1;
    if (method == GCAM_GRADCAM) return 2;
    if (method == GCAM_GUIDED_GRADCAM) return 3;
    if (method == -2) return 1000;
    for (int i = 0; i < o->n_methods; i++)
        if ((int)o->methods[i] == method) return 10 + i;
    return 999;
}

static int cmp_panel(const void *a, const void *b) {
    const ex_panel *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

ex_panel *ex_panel_new(ex_panels *P, int order) {
    if (P->n == P->cap) {
        int cap = P->cap ? P->cap * 2 : 8;
        ex_panel *v = realloc(P->v, sizeof *v * (size_t)cap);
        if (!v) return NULL;
        P->v = v;
        P->cap = cap;
    }
    ex_panel *p = &P->v[P->n++];
    memset(p, 0, sizeof *p);
    p->order = order;
    return p;
}

void ex_panels_free(ex_panels *P) {
    for (int i = 0; i < P->n; i++) gc_image_free(&P->v[i].img);
    free(P->v);
    memset(P, 0, sizeof *P);
}

/* "class": {"index", "label"} (null for no class): a map's, a detection's or a segment's. */
static void json_class(gc_json *j, const ex_run *R, int64_t cls) {
    gc_json_key(j, "class");
    if (cls < 0) {
        gc_json_null(j);
        return;
    }
    gc_json_begin_object(j);
    gc_json_key(j, "index");
    gc_json_int(j, cls);
    gc_json_key(j, "label");
    gc_json_string(j, ex_label_of(R, cls));
    gc_json_end_object(j);
}

/* Records a file written for the current input (so that a failure later in that input removes
 * it: a failed input leaves no output behind). */
static gcam_status note_written(ex_run *R, const char *path, gc_err *err) {
    if (R->n_written == R->cap_written) {
        int cap = R->cap_written ? 2 * R->cap_written : 16;
        char **w = cap > 0 && (size_t)cap < SIZE_MAX / sizeof *w ? realloc(R->written, sizeof *w * (size_t)cap) : NULL;
        if (!w) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        R->written = w;
        R->cap_written = cap;
    }
    if (!(R->written[R->n_written] = gc_strdup(path))) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    R->n_written++;
    return GCAM_OK;
}

/* The current input is done: keep its files (ok) or remove them (it failed). */
void ex_end_input_files(ex_run *R, int ok) {
    for (int i = 0; i < R->n_written; i++) {
        if (!ok) unlink(R->written[i]);
        free(R->written[i]);
    }
    R->n_written = 0;
}

/* Memory mode: a file of the current input kept (bytes taken over) and listed for the record's
 * "png" / "url" object under key. */
static gcam_status mem_file(ex_run *R, ex_one *s, const char *key, const char *name, uint8_t *bytes, size_t n,
                            gc_err *err) {
    if (R->n_mem_files == R->cap_mem_files) {
        int cap = R->cap_mem_files ? 2 * R->cap_mem_files : 16;
        gcam_tool_file *f = cap > 0 && (size_t)cap < SIZE_MAX / sizeof *f ? realloc(R->mem_files, sizeof *f * (size_t)cap) : NULL;
        if (!f) {
            free(bytes);
            return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        }
        R->mem_files = f;
        R->cap_mem_files = cap;
    }
    char *nm = gc_strdup(name);
    if (!nm) {
        free(bytes);
        return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    }
    R->mem_files[R->n_mem_files] = (gcam_tool_file){.name = nm, .data = bytes, .size = n};
    if (key && s->n_pend < (int)(sizeof s->pend_file / sizeof s->pend_file[0])) {
        s->pend_file[s->n_pend] = R->n_mem_files;
        s->pend_key[s->n_pend++] = key;
    }
    R->n_mem_files++;
    return GCAM_OK;
}

void ex_mem_files_free(ex_run *R) {
    for (int i = 0; i < R->n_mem_files; i++) {
        free(R->mem_files[i].name);
        free(R->mem_files[i].data);
    }
    R->n_mem_files = 0;
}

/* Memory mode: the files listed since the last call as "png": {key: base64} (PNGs, when inline)
 * and "url": {key: URL} (when a prefix is set), in the record being written. */
static void ex_flush_files(ex_run *R, ex_one *s) {
    int n = s->n_pend;
    s->n_pend = 0;
    if (!R->mem || !n) return;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0 ? !R->mem_inline : !R->mem_url) continue;
        int opened = 0;
        for (int i = 0; i < n; i++) {
            const gcam_tool_file *f = &R->mem_files[s->pend_file[i]];
            size_t nl = strlen(f->name);
            if (pass == 0 && !(nl > 4 && strcmp(f->name + nl - 4, ".png") == 0)) continue;
            if (!opened++) {
                gc_json_key(&s->j, pass == 0 ? "png" : "url");
                gc_json_begin_object(&s->j);
            }
            gc_json_key(&s->j, s->pend_key[i]);
            gc_buf v = {0};
            if (pass == 0) {
                gc_buf_puts(&v, "\"");
                gc_base64(&v, f->data, f->size);
                gc_buf_puts(&v, "\"");
            } else {
                gc_buf_printf(&v, "%s%s", R->mem_url, f->name);
            }
            if (v.oom) s->jb.oom = 1;
            else if (pass == 0) gc_json_raw(&s->j, v.p);
            else gc_json_string(&s->j, v.p);
            gc_buf_free(&v);
        }
        if (opened) gc_json_end_object(&s->j);
    }
}

/* An output file of the current input, NAME in the output folder (or kept in memory, see mem_file),
 * never over an input; then "key": NAME in the record (key NULL: not named there). */
static gcam_status out_png(ex_run *R, ex_one *s, const char *key, const char *name, const gc_image *img, gc_err *err) {
    gcam_status rc;
    if (R->mem) {
        uint8_t *b;
        size_t n;
        if ((rc = gc_image_encode_png(img, &b, &n, err)) || (rc = mem_file(R, s, key, name, b, n, err))) return rc;
    } else {
        snprintf(s->path, sizeof s->path, "%s/%s", R->o->base.out, name);
        if (ex_inputs_contains_file(R->list, s->path))
            return gc_fail(err, GCAM_E_ARG, "%s: refusing to overwrite an input file (choose another --out)", s->path);
        if ((rc = gc_image_write_png(s->path, img, err)) || (rc = note_written(R, s->path, err))) return rc;
    }
    if (key) {
        gc_json_key(&s->j, key);
        gc_json_string(&s->j, name);
    }
    return GCAM_OK;
}

/* The raw map as .npy: (h, w) for a one-channel CAM map, else (c, h, w). */
static gcam_status out_npy(ex_run *R, ex_one *s, const char *name, const gcam_map *m, gc_err *err) {
    gc_tensor t = {.dtype = GC_F32, .data = m->raw};
    if (m->c == 1 && gcam_method_is_cam(m->method)) {
        t.shape.ndim = 2;
        t.shape.d[0] = m->h;
        t.shape.d[1] = m->w;
    } else {
        t.shape.ndim = 3;
        t.shape.d[0] = m->c;
        t.shape.d[1] = m->h;
        t.shape.d[2] = m->w;
    }
    gcam_status rc;
    if (R->mem) {
        uint8_t *b;
        size_t n;
        if ((rc = gc_npy_encode(&t, &b, &n, err)) || (rc = mem_file(R, s, "npy", name, b, n, err))) return rc;
    } else {
        snprintf(s->path, sizeof s->path, "%s/%s", R->o->base.out, name);
        if (ex_inputs_contains_file(R->list, s->path))
            return gc_fail(err, GCAM_E_ARG, "%s: refusing to overwrite an input file (choose another --out)", s->path);
        if ((rc = gc_npy_write(s->path, &t, err)) || (rc = note_written(R, s->path, err))) return rc;
    }
    gc_json_key(&s->j, "npy");
    gc_json_string(&s->j, name);
    return GCAM_OK;
}

static void json_box(gc_json *j, const char *key, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
    gc_json_key(j, key);
    gc_json_begin_object(j);
    gc_json_key(j, "x0");
    gc_json_int(j, x0);
    gc_json_key(j, "y0");
    gc_json_int(j, y0);
    gc_json_key(j, "x1");
    gc_json_int(j, x1);
    gc_json_key(j, "y1");
    gc_json_int(j, y1);
    gc_json_end_object(j);
}

/* Parts of the photo the model never saw (outside a centre crop) stay as they are, uncoloured. */
static void keep_unseen(gc_image *po, const gc_image *orig, const gc_geometry *g, int64_t W, int64_t H) {
    double fx0 = g->x0, fx1 = g->x0 + (double)W * g->sx, fy0 = g->y0, fy1 = g->y0 + (double)H * g->sy;
    int64_t x0 = fx0 > 0 ? (int64_t)floor(fx0) : 0, y0 = fy0 > 0 ? (int64_t)floor(fy0) : 0;
    int64_t x1 = fx1 < (double)orig->w ? (int64_t)ceil(fx1) : orig->w, y1 = fy1 < (double)orig->h ? (int64_t)ceil(fy1) : orig->h;
    for (int64_t y = 0; y < orig->h; y++)
        for (int64_t x = 0; x < orig->w; x++)
            if (y < y0 || y >= y1 || x < x0 || x >= x1) memcpy(po->px + (y * orig->w + x) * 3, orig->px + (y * orig->w + x) * 3, 3);
}

/* 5. The input's results.json record up to its maps, and the model's view as a PNG. */
int ex_input_json(ex_run *R, ex_one *s, gc_err *err) {
    ex_input *in = s->in;
    gcam_status rc = GCAM_OK;
    gc_json_init(&s->j, &s->jb, 2);
    s->j.base = 2;
    gc_json_begin_object(&s->j);
    gc_json_key(&s->j, "path");
    gc_json_string(&s->j, in->path);
    gc_json_key(&s->j, "kind");
    gc_json_string(&s->j, in->is_npy ? "tensor" : "image");
    if (!in->is_npy) {
        gc_json_key(&s->j, "width");
        gc_json_int(&s->j, s->orig.w);
        gc_json_key(&s->j, "height");
        gc_json_int(&s->j, s->orig.h);
    }
    gc_json_key(&s->j, "input_shape");
    gc_json_begin_array_inline(&s->j);
    for (int d = 0; d < s->ndim; d++) gc_json_int(&s->j, s->dims[d]);
    gc_json_end_array(&s->j);
    if (s->seen.px) {
        char name[1024];
        snprintf(name, sizeof name, "%s_input.png", in->stem);
        if ((rc = out_png(R, s, "input_image", name, &s->seen, err))) return EX_FAILED;
        ex_flush_files(R, s);
    }
    if (R->o->base.task == CLI_TASK_CAPTION || R->o->base.task == CLI_TASK_VQA) ex_text_json_head(R, s);
    if (R->o->base.task == CLI_TASK_CAPTION) { /* the words' records, each with its maps */
        if (s->seen.px && (rc = gc_image_thumbnail(&s->thumb_seen, &s->seen, 448, err))) return EX_FAILED;
        return 0;
    }
    if (R->o->base.task == CLI_TASK_SEGMENT) {
        gc_json_key(&s->j, "segments");
        gc_json_begin_array(&s->j); /* closed after the maps */
        if (s->seen.px && (rc = gc_image_thumbnail(&s->thumb_seen, &s->seen, 448, err))) return EX_FAILED;
        return 0;
    }
    if (R->o->base.task == CLI_TASK_DETECT) {
        gc_json_key(&s->j, "layout");
        gc_json_string(&s->j, gcam_det_layout_name(s->det_layout));
        gc_json_key(&s->j, "detections");
        gc_json_begin_array(&s->j); /* closed after the maps */
        if (s->seen.px && (rc = gc_image_thumbnail(&s->thumb_seen, &s->seen, 448, err))) return EX_FAILED;
        return 0;
    }
    gc_json_key(&s->j, "predictions");
    gc_json_begin_array(&s->j);
    for (int64_t a = 0; a < s->n_top; a++) {
        int64_t c = s->order[a];
        gc_json_begin_object(&s->j);
        gc_json_key(&s->j, "index");
        gc_json_int(&s->j, c);
        gc_json_key(&s->j, "label");
        gc_json_string(&s->j, ex_label_of(R, c));
        gc_json_key(&s->j, "score");
        gc_json_number_f(&s->j, (float)s->cscore[c]);
        gc_json_key(&s->j, "probability");
        gc_json_number_f(&s->j, (float)s->cprob[c]);
        gc_json_end_object(&s->j);
    }
    gc_json_end_array(&s->j);
    gc_json_key(&s->j, R->o->base.task == CLI_TASK_VQA ? "answers" : "maps"); /* (vqa: an answer's record each) */
    gc_json_begin_array(&s->j);

    if (s->seen.px && (rc = gc_image_thumbnail(&s->thumb_seen, &s->seen, 448, err))) return EX_FAILED;
    return 0;
}

/* The report panels' own pictures are needed only by an embedded report.html (a linked one shows
 * the files, memory mode has no report): skipping them spares a photo's downscaling per map. */
static int panel_pictures(const ex_run *R) {
    return !R->no_report && !R->report_link;
}

/* A CAM-family map's files: heat map, overlay (or the heat map alone), the photo, the box. */
static int one_cam_files(ex_run *R, ex_one *s, gcam_method meth, const char *base, ex_panel *pn, gc_err *err) {
    const ex_opts *o = R->o;
    gcam_status rc = GCAM_OK;
    const float *heat = s->map.normalized; /* (1, 1, H, W) */
    gc_image im = {0};
    char name[1100];
    snprintf(name, sizeof name, "%s_heatmap.png", base);
    if ((rc = gc_heatmap_image(&im, heat, s->map.H, s->map.W, (gc_colormap_id)o->cmap, err)) ||
        (rc = out_png(R, s, "heatmap", name, &im, err))) {
        gc_image_free(&im);
        return EX_FAILED;
    }
    gc_image_free(&im);
    gc_box box; /* x1, y1 exclusive; results.json and the caption print inclusive bounds */
    int64_t area;
    int found = gc_localize_box(s->map.upsampled, s->map.H, s->map.W, 0.15f, &box, &area);
    if (found < 0) return ex_one_oom(s, err);
    gc_image ov = {0};
    snprintf(pn->file, sizeof pn->file, "%s", name); /* the heat map, unless there is an overlay */
    pn->file_w = s->map.W;
    pn->file_h = s->map.H;
    if (s->seen.px && s->seen.w == s->map.W && s->seen.h == s->map.H) {
        snprintf(name, sizeof name, "%s_overlay.png", base);
        snprintf(pn->file, sizeof pn->file, "%s", name);
        if ((rc = gc_overlay(&ov, &s->seen, heat, (gc_colormap_id)o->cmap, o->alpha, err)) ||
            (rc = out_png(R, s, "overlay", name, &ov, err))) {
            gc_image_free(&ov);
            return EX_FAILED;
        }
    } else if ((rc = gc_heatmap_image(&ov, heat, s->map.H, s->map.W, (gc_colormap_id)o->cmap, err))) {
        return EX_FAILED;
    }
    if (s->have_geom) {
        float *ph = gc_malloc2((size_t)(s->orig.w * s->orig.h), sizeof(float));
        gc_image po = {0};
        if (!ph) {
            gc_image_free(&ov);
            return ex_one_oom(s, err);
        }
        snprintf(name, sizeof name, "%s_photo.png", base);
        rc = gc_heat_to_original(ph, heat, s->map.H, s->map.W, &s->geom, err);
        if (!rc) rc = gc_overlay(&po, &s->orig, ph, (gc_colormap_id)o->cmap, o->alpha, err);
        if (!rc) keep_unseen(&po, &s->orig, &s->geom, s->map.W, s->map.H);
        if (!rc) rc = out_png(R, s, "photo", name, &po, err);
        free(ph);
        if (!rc && meth == GCAM_GRADCAM) { /* the photo panel closes the row */
            ex_panel *pp = ex_panel_new(&s->panels, panel_order(-2, o));
            if (!pp) rc = gc_fail(err, GCAM_E_NOMEM, "out of memory");
            else {
                pn = &s->panels.v[s->panels.n - 2]; /* realloc may have moved it */
                snprintf(pp->title, sizeof pp->title, "Grad-CAM on the photo");
                snprintf(pp->caption, sizeof pp->caption, "%lldx%lld", (long long)s->orig.w, (long long)s->orig.h);
                snprintf(pp->file, sizeof pp->file, "%s", name);
                pp->file_w = po.w;
                pp->file_h = po.h;
                if (panel_pictures(R)) rc = gc_image_thumbnail(&pp->img, &po, 448, err);
            }
        }
        gc_image_free(&po);
        if (rc) {
            gc_image_free(&ov);
            return EX_FAILED;
        }
    }
    snprintf(pn->caption, sizeof pn->caption, "layer %s", s->map.layer ? s->map.layer : "?");
    if (found) {
        gc_json_key(&s->j, "box");
        gc_json_begin_object(&s->j);
        gc_json_key(&s->j, "x0");
        gc_json_int(&s->j, box.x0);
        gc_json_key(&s->j, "y0");
        gc_json_int(&s->j, box.y0);
        gc_json_key(&s->j, "x1");
        gc_json_int(&s->j, box.x1 - 1);
        gc_json_key(&s->j, "y1");
        gc_json_int(&s->j, box.y1 - 1);
        gc_json_key(&s->j, "area");
        gc_json_int(&s->j, area);
        gc_json_end_object(&s->j);
        if (s->have_geom) {
            /* input pixel (x, y) covers the photo from (x0 + x sx, y0 + y sy) to one pixel further */
            double fx0 = s->geom.x0 + (double)box.x0 * s->geom.sx, fx1 = s->geom.x0 + (double)box.x1 * s->geom.sx;
            double fy0 = s->geom.y0 + (double)box.y0 * s->geom.sy, fy1 = s->geom.y0 + (double)box.y1 * s->geom.sy;
            int64_t px0 = (int64_t)floor(fx0), px1 = (int64_t)ceil(fx1) - 1;
            int64_t py0 = (int64_t)floor(fy0), py1 = (int64_t)ceil(fy1) - 1;
            px0 = px0 < 0 ? 0 : px0 >= s->orig.w ? s->orig.w - 1 : px0;
            px1 = px1 < px0 ? px0 : px1 >= s->orig.w ? s->orig.w - 1 : px1;
            py0 = py0 < 0 ? 0 : py0 >= s->orig.h ? s->orig.h - 1 : py0;
            py1 = py1 < py0 ? py0 : py1 >= s->orig.h ? s->orig.h - 1 : py1;
            json_box(&s->j, "box_photo", px0, py0, px1, py1);
        }
        /* the report says it after the caption (and a linked one draws it over the picture) */
        pn->box_caption = 1;
        pn->box_drawn = meth == GCAM_GRADCAM;
        pn->box[0] = box.x0;
        pn->box[1] = box.y0;
        pn->box[2] = box.x1 - 1;
        pn->box[3] = box.y1 - 1;
        if (meth == GCAM_GRADCAM) {
            static const uint8_t green[3] = {0, 230, 64};
            int th = (int)(s->map.W / 112 > 1 ? s->map.W / 112 : 1);
            gc_draw_box(&ov, box.x0, box.y0, box.x1 - 1, box.y1 - 1, green, th);
        }
    } else {
        gc_json_key(&s->j, "box");
        gc_json_null(&s->j);
    }
    if (panel_pictures(R)) rc = gc_image_thumbnail(&pn->img, &ov, 448, err);
    gc_image_free(&ov);
    if (rc) return EX_FAILED;

    return 0;
}

/* A pixel-space map's picture (scaled to max |x| = 1 first). */
static int one_pixel_files(ex_run *R, ex_one *s, const char *base, ex_panel *pn, gc_err *err) {
    gcam_status rc = GCAM_OK;
    gc_image im = {0};
    char name[1100];
    snprintf(name, sizeof name, "%s.png", base);
    /* the paper's std + 1e-5 would flatten maps of tiny magnitude (Guided Grad-CAM multiplies
     * two small maps): scale to max |x| = 1 first, so that only the map's shape matters */
    size_t rn = (size_t)(s->map.c * s->map.h * s->map.w);
    float amax = 0, *scaled = gc_malloc2(rn, sizeof(float)); /* (c, h, w) */
    if (!scaled) return ex_one_oom(s, err);
    for (size_t q = 0; q < rn; q++) amax = fmaxf(amax, fabsf(s->map.raw[q]));
    for (size_t q = 0; q < rn; q++) scaled[q] = amax > 0 && isfinite(amax) ? s->map.raw[q] / amax : s->map.raw[q];
    rc = gc_pixelmap_image(&im, scaled, s->map.c, s->map.h, s->map.w, err);
    free(scaled);
    snprintf(pn->file, sizeof pn->file, "%s", name);
    pn->file_w = im.w;
    pn->file_h = im.h;
    if (rc || (rc = out_png(R, s, "image", name, &im, err)) ||
        (panel_pictures(R) && (rc = gc_image_thumbnail(&pn->img, &im, 448, err)))) {
        gc_image_free(&im);
        return EX_FAILED;
    }
    gc_image_free(&im);
    if (s->map.layer) snprintf(pn->caption, sizeof pn->caption, "Grad-CAM layer %s", s->map.layer);

    return 0;
}

/* A detection's target: the output elements whose product is its score, as full indices. */
static void json_product_target(const ex_run *R, gc_json *j, const gcam_target *t) {
    gc_json_key(j, "target");
    gc_json_begin_object(j);
    gc_json_key(j, "kind");
    gc_json_string(j, "product");
    gc_json_key(j, "elements");
    gc_json_begin_array_inline(j);
    for (int e = 0; e < t->n_elements; e++) {
        int64_t idx[GCAM_MAX_DIMS], f = t->elements[e];
        for (int d = R->score_ndim - 1; d >= 0; d--) {
            int64_t ext = R->score_dims[d] > 0 ? R->score_dims[d] : 1;
            idx[d] = f % ext;
            f /= ext;
        }
        gc_json_begin_array_inline(j);
        for (int d = 0; d < R->score_ndim; d++) gc_json_int(j, idx[d]);
        gc_json_end_array(j);
    }
    gc_json_end_array(j);
    gc_json_end_object(j);
}

/* One map's results.json record, its pictures (and .npy) and its report panel. */
int ex_map_files(ex_run *R, ex_one *s, const ex_item *it, gcam_method meth, gc_err *err) {
    const ex_opts *o = R->o;
    gcam_status rc = GCAM_OK;
    const char *mname = gcam_method_name(meth);
    char fm[64];
    ex_method_file_name(fm, sizeof fm, mname);
    char base[1024];
    snprintf(base, sizeof base, "%s_%s_%s", s->in->stem, it->tag, fm);
    gc_json_begin_object(&s->j);
    gc_json_key(&s->j, "method");
    gc_json_string(&s->j, mname);
    json_class(&s->j, R, it->cls);
    if (it->t.kind == GCAM_TARGET_PRODUCT) {
        json_product_target(R, &s->j, &it->t);
    } else if (it->t.kind == GCAM_TARGET_MASK) { /* the segment's record says which pixels */
        gc_json_key(&s->j, "target");
        gc_json_begin_object(&s->j);
        gc_json_key(&s->j, "kind");
        gc_json_string(&s->j, "mask");
        gc_json_end_object(&s->j);
    } else if (it->t.kind != GCAM_TARGET_CLASS) {
        gc_json_key(&s->j, "target");
        gc_json_begin_object(&s->j);
        gc_json_key(&s->j, "kind");
        gc_json_string(&s->j, it->t.kind == GCAM_TARGET_REGION ? "region" : "element");
        if (it->t.kind == GCAM_TARGET_REGION) {
            gc_json_key(&s->j, "y0");
            gc_json_int(&s->j, it->t.y0);
            gc_json_key(&s->j, "x0");
            gc_json_int(&s->j, it->t.x0);
            gc_json_key(&s->j, "y1");
            gc_json_int(&s->j, it->t.y1);
            gc_json_key(&s->j, "x1");
            gc_json_int(&s->j, it->t.x1);
        } else {
            gc_json_key(&s->j, "index");
            gc_json_begin_array_inline(&s->j);
            for (int d = 0; d < R->score_ndim; d++) gc_json_int(&s->j, it->t.index[d]);
            gc_json_end_array(&s->j);
        }
        gc_json_end_object(&s->j);
    }
    /* layer: the CAM family's; pixel-space maps have none, but Guided Grad-CAM names
     * the layer of the Grad-CAM it multiplies by */
    gc_json_key(&s->j, "layer");
    gc_json_string(&s->j, gcam_method_is_cam(meth) ? s->map.layer : NULL);
    if (!gcam_method_is_cam(meth) && s->map.layer) {
        gc_json_key(&s->j, "gradcam_layer");
        gc_json_string(&s->j, s->map.layer);
    }
    if (gcam_method_is_cam(meth) && gcam_explainer_num_layers(R->e) > 1) {
        gc_json_key(&s->j, "layers");
        gc_json_begin_array(&s->j);
        for (int l = 0; l < gcam_explainer_num_layers(R->e); l++) gc_json_string(&s->j, gcam_explainer_layer(R->e, l));
        gc_json_end_array(&s->j);
    }
    gc_json_key(&s->j, "raw_shape");
    gc_json_begin_array_inline(&s->j);
    if (!(s->map.c == 1 && gcam_method_is_cam(meth))) gc_json_int(&s->j, s->map.c);
    gc_json_int(&s->j, s->map.h);
    gc_json_int(&s->j, s->map.w);
    gc_json_end_array(&s->j);
    ex_panel *pn = ex_panel_new(&s->panels, panel_order((int)meth, o));
    if (!pn) return ex_one_oom(s, err);
    snprintf(pn->title, sizeof pn->title, "%s", gc_method_info_of(meth)->title);
    int r = gcam_method_is_cam(meth) ? one_cam_files(R, s, meth, base, pn, err) : one_pixel_files(R, s, base, pn, err);
    if (r) return r;
    if (o->npy) {
        char name[1100];
        snprintf(name, sizeof name, "%s.npy", base);
        if ((rc = out_npy(R, s, name, &s->map, err))) return EX_FAILED;
    }
    ex_flush_files(R, s);
    gc_json_end_object(&s->j);
    return 0;
}

/* --task detect: a detection's record ({box, class, score, ..., "maps": [ ... ]}) around its maps. */
void ex_det_begin(ex_run *R, ex_one *s, const ex_item *it) {
    const gcam_detection *d = &s->dets[it->det];
    double b[4];
    ex_det_box(s, d, b);
    gc_json *j = &s->j;
    gc_json_begin_object(j);
    gc_json_key(j, "box"); /* picture pixels, x1 and y1 exclusive */
    gc_json_begin_array_inline(j);
    for (int k = 0; k < 4; k++) gc_json_number(j, b[k]);
    gc_json_end_array(j);
    gc_json_key(j, "box_input"); /* the model input's pixels, as decoded */
    gc_json_begin_array_inline(j);
    gc_json_number_f(j, d->x0);
    gc_json_number_f(j, d->y0);
    gc_json_number_f(j, d->x1);
    gc_json_number_f(j, d->y1);
    gc_json_end_array(j);
    json_class(j, R, d->cls);
    gc_json_key(j, "score");
    gc_json_number_f(j, d->score);
    gc_json_key(j, "anchor");
    gc_json_int(j, d->anchor);
    gc_json_key(j, "maps");
    gc_json_begin_array(j);
}

/* --task segment: a segment's record ({class, pixels, "maps": [ ... ]}) around its maps. */
void ex_seg_begin(ex_run *R, ex_one *s, const ex_item *it) {
    gc_json *j = &s->j;
    gc_json_begin_object(j);
    json_class(j, R, it->cls);
    gc_json_key(j, "pixels"); /* of the output predicted as that class */
    gc_json_int(j, s->seg_pixels[it->seg]);
    gc_json_key(j, "maps");
    gc_json_begin_array(j);
}

/* The model's view with the segment's pixels tinted (the output's pixels scaled to the view's,
 * nearest), as a report panel. */
int ex_seg_panel(const ex_one *s, const ex_item *it, ex_panel *pn, gc_err *err) {
    static const uint8_t tint[3] = {255, 0, 200};
    gc_image v = {.w = s->seen.w, .h = s->seen.h};
    v.px = gc_malloc2((size_t)(v.w * v.h), 3);
    if (!v.px) return ex_one_oom(s, err);
    memcpy(v.px, s->seen.px, (size_t)(v.w * v.h) * 3);
    const uint8_t *m = s->seg_masks + (size_t)it->seg * (size_t)(s->seg_h * s->seg_w); /* (seg_h, seg_w) */
    for (int64_t y = 0; y < v.h; y++)
        for (int64_t x = 0; x < v.w; x++) {
            int64_t my = y * s->seg_h / v.h, mx = x * s->seg_w / v.w;
            if (!m[my * s->seg_w + mx]) continue;
            uint8_t *p = v.px + (y * v.w + x) * 3;
            for (int c = 0; c < 3; c++) p[c] = (uint8_t)((p[c] + tint[c] + 1) / 2);
        }
    snprintf(pn->title, sizeof pn->title, "Predicted segment");
    snprintf(pn->caption, sizeof pn->caption, "%lld pixels of %lldx%lld", (long long)s->seg_pixels[it->seg],
             (long long)s->seg_w, (long long)s->seg_h);
    gcam_status rc = gc_image_thumbnail(&pn->img, &v, 448, err);
    gc_image_free(&v);
    return rc ? EX_FAILED : 0;
}

void ex_det_end(ex_one *s) {
    gc_json_end_array(&s->j);
    gc_json_end_object(&s->j);
}

/* A linked report's file for a row's first panel (made in cmd_explain.c, it names none): the
 * model's view (a detection's box drawn over it by the page), or for a segment its tinted view,
 * written as STEM_TAG_segment.png (no other output shows it). */
static int link_first_panel(ex_run *R, ex_one *s, const ex_item *it, ex_panel *pn, gc_err *err) {
    if (it->seg >= 0) {
        snprintf(pn->file, sizeof pn->file, "%s_%s_segment.png", s->in->stem, it->tag);
        pn->file_w = pn->img.w;
        pn->file_h = pn->img.h;
        return out_png(R, s, NULL, pn->file, &pn->img, err) ? EX_FAILED : 0;
    }
    snprintf(pn->file, sizeof pn->file, "%s_input.png", s->in->stem);
    pn->file_w = s->seen.w;
    pn->file_h = s->seen.h;
    if (it->det >= 0) { /* the detection's box in the view's pixels (as draw_det draws it) */
        const gcam_detection *d = &s->dets[it->det];
        double b[4] = {d->x0, d->y0, d->x1, d->y1};
        for (int i = 0; i < 4; i++) b[i] = fmin(fmax(b[i], -1e9), 1e9);
        pn->box_drawn = 1;
        pn->box[0] = (int64_t)floor(b[0]);
        pn->box[1] = (int64_t)floor(b[1]);
        pn->box[2] = (int64_t)ceil(b[2]) - 1;
        pn->box[3] = (int64_t)ceil(b[3]) - 1;
    }
    return 0;
}

/* A linked report's detection picture: the model's view as written, or the photo (at most 896
 * pixels a side: the page shows it no larger) as STEM_picture.png. */
static int link_det_picture(ex_run *R, ex_one *s, gc_report_input *ri, char *name, size_t n, gc_err *err) {
    ri->picture = NULL;
    ri->picture_w = s->have_geom ? s->orig.w : s->seen.w;
    ri->picture_h = s->have_geom ? s->orig.h : s->seen.h;
    if (!s->have_geom) {
        if (s->seen.px) snprintf(name, n, "%s_input.png", s->in->stem);
        ri->picture_file = s->seen.px ? name : NULL;
        return 0;
    }
    gc_image th = {0};
    snprintf(name, n, "%s_picture.png", s->in->stem);
    gcam_status rc = gc_image_thumbnail(&th, &s->orig, 896, err);
    if (!rc) rc = out_png(R, s, NULL, name, &th, err);
    gc_image_free(&th);
    ri->picture_file = name;
    return rc ? EX_FAILED : 0;
}

/* 7. The input's section of report.html. */
int ex_report_input(ex_run *R, ex_one *s, gc_err *err) {
    ex_input *in = s->in;
    ex_spill_inputs(R); /* the records of the inputs before this one */
    gc_report_pred preds[64];
    int np = 0;
    for (int64_t a = 0; a < s->n_top && np < 64; a++) {
        int64_t c = s->order[a];
        preds[np++] = (gc_report_pred){.index = c, .label = ex_label_of(R, c), .score = s->cscore[c], .probability = s->cprob[c]};
    }
    gc_report_row rows[EX_MAX_LIST];
    gc_report_panel *rp = calloc((size_t)s->panels.n + 1, sizeof *rp);
    if (!rp) return ex_one_oom(s, err);
    for (int it_i = 0; it_i < s->n_items; it_i++) {
        int a = s->first_panel_of_item[it_i], b = s->first_panel_of_item[it_i + 1];
        qsort(s->panels.v + a, (size_t)(b - a), sizeof *s->panels.v, cmp_panel);
        if (R->report_link && a < b && s->panels.v[a].order == 0 && !s->panels.v[a].file[0] &&
            link_first_panel(R, s, &s->items[it_i], &s->panels.v[a], err)) {
            free(rp);
            return EX_FAILED;
        }
        for (int q = a; q < b; q++) {
            const ex_panel *v = &s->panels.v[q];
            rp[q] = (gc_report_panel){.title = v->title, .caption = v->caption[0] ? v->caption : NULL,
                                      .img = v->img.px ? &v->img : NULL, .file = v->file[0] ? v->file : NULL,
                                      .file_w = v->file_w, .file_h = v->file_h, .box_caption = v->box_caption,
                                      .box_drawn = v->box_drawn, .box = {v->box[0], v->box[1], v->box[2], v->box[3]}};
        }
        rows[it_i] = (gc_report_row){.title = s->items[it_i].title, .cls = s->items[it_i].cls,
                                     .label = ex_label_of(R, s->items[it_i].cls), .panels = rp + a, .n_panels = b - a};
    }
    char note[900];
    snprintf(note, sizeof note, "%s%s%s", s->note, s->note[0] && s->text_note[0] ? "; " : "", s->text_note);
    gc_report_input ri = {.path = in->path, .stem = in->stem, .note = note[0] ? note : NULL, .preds = preds, .n_preds = np,
                          .rows = rows, .n_rows = s->n_items, .warnings = (const char *const *)s->warnings,
                          .n_warnings = s->n_warn};
    gc_report_det *dets = NULL;
    char dnote[256], pic_name[1100];
    if (R->o->base.task == CLI_TASK_DETECT) {
        const gcam_detect_options *dop = &R->o->base.det;
        dets = calloc((size_t)s->n_dets + 1, sizeof *dets);
        if (!dets) {
            free(rp);
            return ex_one_oom(s, err);
        }
        for (int64_t i = 0; i < s->n_dets; i++) {
            double b[4];
            ex_det_box(s, &s->dets[i], b);
            dets[i] = (gc_report_det){.index = s->dets[i].cls, .label = ex_label_of(R, s->dets[i].cls),
                                      .score = s->dets[i].score, .x0 = b[0], .y0 = b[1], .x1 = b[2], .y1 = b[3]};
        }
        if (R->o->have_box)
            snprintf(dnote, sizeof dnote, "%s output; the candidate best overlapping the box %g,%g,%g,%g",
                     gcam_det_layout_name(s->det_layout), R->o->box[0], R->o->box[1], R->o->box[2], R->o->box[3]);
        else
            snprintf(dnote, sizeof dnote, "%s output; score >= %g, class-wise NMS at IoU %g, at most %d detections",
                     gcam_det_layout_name(s->det_layout), dop->score_threshold, dop->iou_threshold, dop->max_detections);
        ri.dets_shown = 1;
        ri.dets = dets;
        ri.n_dets = (int)s->n_dets;
        ri.picture = s->have_geom ? &s->orig : &s->seen;
        ri.dets_note = dnote;
        if (R->report_link && link_det_picture(R, s, &ri, pic_name, sizeof pic_name, err)) {
            free(dets);
            free(rp);
            return EX_FAILED;
        }
    }
    gcam_status rc = gc_report_add(&R->report, &ri, err);
    free(dets);
    free(rp);
    return rc ? EX_STOP + 1 : 0; /* a failed report: the page can no longer be completed */
}

static void write_results_head(ex_run *R, gc_json *j) {
    const ex_opts *o = R->o;
    gc_json_begin_object(j);
    gc_json_key(j, "gradcam_version");
    gc_json_string(j, gcam_version());
    gc_json_key(j, "model");
    gc_json_begin_object(j);
    gc_json_key(j, "path");
    gc_json_string(j, o->model);
    gc_json_key(j, "producer");
    gc_json_string(j, gcam_model_producer(R->m));
    gc_json_key(j, "opset");
    gc_json_int(j, gcam_model_opset(R->m));
    gc_json_key(j, "input");
    gc_json_begin_object(j);
    gc_json_key(j, "name");
    gc_json_string(j, R->in0.name);
    gc_json_key(j, "shape");
    gc_json_begin_array_inline(j);
    for (int d = 0; d < R->in0.ndim; d++) {
        if (R->in0.dims[d] >= 0) gc_json_int(j, R->in0.dims[d]);
        else gc_json_string(j, R->in0.dim_names[d] ? R->in0.dim_names[d] : "?");
    }
    gc_json_end_array(j);
    gc_json_key(j, "layout");
    gc_json_string(j, R->g.nhwc ? "NHWC" : "NCHW");
    gc_json_end_object(j);
    gcam_tensor_info oi;
    const char *out_name = o->output;
    if (!out_name && gcam_model_output(R->m, 0, &oi) == GCAM_OK) out_name = oi.name;
    gc_json_key(j, "output");
    gc_json_string(j, out_name);
    gc_json_key(j, "score");
    gc_json_string(j, R->score_name);
    gc_json_key(j, "layers");
    if (R->e) {
        gc_json_begin_array(j);
        for (int l = 0; l < gcam_explainer_num_layers(R->e); l++) gc_json_string(j, gcam_explainer_layer(R->e, l));
        gc_json_end_array(j);
    } else {
        gc_json_null(j);
    }
    gc_json_key(j, "num_classes");
    if (R->first_done) gc_json_int(j, R->K);
    else gc_json_null(j);
    gc_json_key(j, "labels");
    gc_json_string(j, o->base.labels_path ? o->base.labels_path : R->n_labels == 1000 ? "imagenet (built in)" : NULL);
    gc_json_end_object(j);

    gc_json_key(j, "options");
    gc_json_begin_object(j);
    gc_json_key(j, "methods");
    gc_json_begin_array_inline(j);
    for (int i = 0; i < o->n_methods; i++) gc_json_string(j, gcam_method_name(o->methods[i]));
    gc_json_end_array(j);
    gc_json_key(j, "top_k");
    gc_json_int(j, o->top_k);
    gc_json_key(j, "explained");
    gc_json_string(j, o->probability ? "probability" : "score");
    gc_json_key(j, "preprocess");
    gc_json_string(j, ex_default_imagenet(R) ? "imagenet" : "raw");
    gc_json_key(j, "colormap");
    gc_json_string(j, gc_colormap_name((gc_colormap_id)o->cmap));
    gc_json_key(j, "alpha");
    gc_json_number_f(j, o->alpha);
    gc_json_key(j, "seed");
    gc_json_int(j, (int64_t)o->base.seed);
    gc_json_key(j, "box_threshold");
    gc_json_number(j, 0.15);
    if (o->base.task == CLI_TASK_SEGMENT || ex_text_task(o)) {
        gc_json_key(j, "task");
        gc_json_string(j, o->base.task == CLI_TASK_SEGMENT ? "segment" : o->base.task == CLI_TASK_CAPTION ? "caption" : "vqa");
    }
    if (ex_text_task(o)) {
        gc_json_key(j, "vocab");
        gc_json_string(j, o->vocab_path);
    }
    if (o->base.task == CLI_TASK_DETECT) { /* (classification's record is as it was before tasks) */
        gc_json_key(j, "task");
        gc_json_string(j, "detect");
        gc_json_key(j, "detections");
        gc_json_begin_object(j);
        gc_json_key(j, "layout");
        gc_json_string(j, o->base.det.layout ? gcam_det_layout_name(o->base.det.layout) : "auto");
        gc_json_key(j, "score_threshold");
        gc_json_number_f(j, o->base.det.score_threshold);
        gc_json_key(j, "iou_threshold");
        gc_json_number_f(j, o->base.det.iou_threshold);
        gc_json_key(j, "max_detections");
        gc_json_int(j, o->base.det.max_detections);
        gc_json_end_object(j);
    }
    gc_json_end_object(j);
}

void ex_describe(ex_run *R, gc_buf *b) {
    gc_json j;
    gc_json_init(&j, b, 2);
    write_results_head(R, &j);
    gc_json_end_object(&j);
    if (j.bad) b->oom = 1;
}

int ex_report_opt(void *opts, const char *name, const char *val) {
    ex_opts *o = opts;
    (void)name;
    if (strcmp(val, "auto") == 0) o->report_mode = EX_REPORT_AUTO;
    else if (strcmp(val, "embed") == 0) o->report_mode = EX_REPORT_EMBED;
    else if (strcmp(val, "link") == 0) o->report_mode = EX_REPORT_LINK;
    else return cli_usage_error("--report: '%s' is not auto, embed or link", val);
    return 0;
}

/* report.html begun (written as the inputs are explained), and the inputs' JSON array. */
int ex_open_report(ex_run *R, const ex_inputs *list, gc_err *err) {
    const ex_opts *o = R->o;
    char path[4096], methods[512] = "", inputs_s[64], title[600];
    snprintf(path, sizeof path, "%s/report.html", o->base.out);
    if (ex_inputs_contains_file(list, path)) return cli_usage_error("%s is an input: choose another --out", path);
    size_t u = 0;
    for (int i = 0; i < o->n_methods && u < sizeof methods; i++)
        u += (size_t)snprintf(methods + u, sizeof methods - u, "%s%s", i ? ", " : "", gcam_method_name(o->methods[i]));
    snprintf(inputs_s, sizeof inputs_s, "%d", list->n);
    const char *base = strrchr(o->model, '/');
    snprintf(title, sizeof title, "gradcam: %s", base ? base + 1 : o->model);
    const char *keys[] = {"model", "inputs", "methods", "explained"};
    const char *vals[] = {o->model, inputs_s, methods,
                          o->base.task == CLI_TASK_CAPTION ? "each word's log-probability at its step (after the LogSoftmax), "
                                                             "and the whole caption's"
                          : o->base.task == CLI_TASK_VQA   ? "the answer's score (before the softmax)"
                          : o->base.task == CLI_TASK_DETECT    ? "each detection's score, as the output gives it"
                          : o->base.task == CLI_TASK_SEGMENT ? "each segment: its class's scores summed over its pixels"
                          : o->probability          ? "the probability after the final Softmax/Sigmoid"
                                                    : "the class score (before any final Softmax/Sigmoid)"};
    R->report_link = o->report_mode == EX_REPORT_LINK || (o->report_mode == EX_REPORT_AUTO && list->n > EX_REPORT_EMBED_MAX);
    if (gc_report_begin(&R->report, path, R->report_link ? GC_REPORT_LINK : GC_REPORT_EMBED, title, keys, vals, 4, err))
        return cli_fail(1, "%s", err->msg);
    R->report_open = 1;
    gc_json_init(&R->ij, &R->inputs_json, 2);
    R->ij.base = 1;
    gc_json_begin_array(&R->ij);
    return 0;
}

void ex_spill_inputs(ex_run *R) {
    gc_buf *b = &R->inputs_json;
    if (b->n < (1u << 16) || b->oom || R->spill_errno) return; /* (small runs stay in memory) */
    if (!R->inputs_spill) { /* beside results.json (same disk), unlinked at once: nothing left behind */
        char path[4200];
        snprintf(path, sizeof path, "%s/results.json.inputs-XXXXXX", R->o->base.out);
        int fd = mkstemp(path);
        if (fd < 0) return; /* then they stay in memory */
        unlink(path);
        if (!(R->inputs_spill = fdopen(fd, "w+b"))) {
            close(fd);
            return;
        }
    }
    if (fwrite(b->p, 1, b->n, R->inputs_spill) != b->n) R->spill_errno = errno ? errno : EIO;
    gc_buf_clear(b);
}

/* results.json: doc with a \1 where the inputs' array goes (the spilled part, then the rest). */
static gcam_status write_results_file(ex_run *R, const char *path, const gc_buf *doc, gc_err *err) {
    const char *at = memchr(doc->p, 1, doc->n);
    if (!at) return gc_fail(err, GCAM_E_STATE, "%s: could not be built (internal error)", path);
    gc_afile a;
    gcam_status rc = gc_afile_open(&a, path, err);
    if (rc) return rc;
    gc_afile_write(&a, doc->p, (size_t)(at - doc->p));
    if (R->inputs_spill) {
        char chunk[1 << 16];
        size_t n;
        if (fflush(R->inputs_spill) != 0 || fseek(R->inputs_spill, 0, SEEK_SET) != 0) a.failed = errno ? errno : EIO;
        while (!a.failed && (n = fread(chunk, 1, sizeof chunk, R->inputs_spill)) > 0) gc_afile_write(&a, chunk, n);
        if (ferror(R->inputs_spill) && !a.failed) a.failed = EIO;
    }
    if (R->spill_errno && !a.failed) a.failed = R->spill_errno;
    gc_afile_write(&a, R->inputs_json.p ? R->inputs_json.p : "[]", R->inputs_json.p ? R->inputs_json.n : 2);
    gc_afile_write(&a, at + 1, doc->n - (size_t)(at + 1 - doc->p));
    return gc_afile_commit(&a, err);
}

/* results.json (when anything was explained), then report.html completed or dropped. */
int ex_write_results(ex_run *R, const ex_inputs *list, gc_err *err) {
    const ex_opts *o = R->o;
    int exit_code = 0;
    gc_json_end_array(&R->ij);
    if (!R->n_ok) { /* nothing explained: no results.json or report.html, only the errors */
        gc_report_abort(&R->report);
        R->report_open = 0;
    }
    if (R->n_ok) {
        char path[4096];
        gc_buf doc = {0};
        gc_json j;
        gc_json_init(&j, &doc, 2);
        write_results_head(R, &j);
        gc_json_key(&j, "inputs");
        gc_json_raw(&j, "\1"); /* the records, copied in by write_results_file */
        gc_json_key(&j, "failures");
        gc_json_begin_array(&j);
        for (int i = 0; i < R->n_failures; i++) {
            gc_json_begin_object(&j);
            gc_json_key(&j, "path");
            gc_json_string(&j, R->failure_paths[i]);
            gc_json_key(&j, "error");
            gc_json_string(&j, R->failures[i]);
            gc_json_end_object(&j);
        }
        gc_json_end_array(&j);
        gc_json_end_object(&j);
        gc_buf_puts(&doc, "\n");
        snprintf(path, sizeof path, "%s/results.json", o->base.out);
        if (j.bad || doc.oom || R->ij.bad || R->inputs_json.oom)
            exit_code = cli_fail(1, "%s: could not be built (%s)", path, j.bad || R->ij.bad ? "internal error" : "out of memory");
        else if (ex_inputs_contains_file(list, path))
            exit_code = cli_usage_error("%s is an input: choose another --out", path);
        else if (write_results_file(R, path, &doc, err))
            exit_code = cli_fail(1, "%s", err->msg);
        gc_buf_free(&doc);
    }
    if (R->inputs_spill) fclose(R->inputs_spill);
    R->inputs_spill = NULL;
    if (R->report_open) {
        R->report_open = 0;
        if (gc_report_finish(&R->report, (const char *const *)R->failures, R->n_failures, err) && !exit_code)
            exit_code = cli_fail(1, "%s", err->msg);
    }
    return exit_code;
}

/* The failures, then one line saying what was written; the exit code. */
int ex_summary(const ex_run *R, const ex_inputs *list, int exit_code, double t0) {
    const ex_opts *o = R->o;
    if (R->n_failures) {
        if (list->n == 1) {
            fprintf(stderr, "%s: %s\n", g_prog, R->failures[0]);
        } else {
            fprintf(stderr, "%s: %d of %d inputs failed:\n", g_prog, R->n_failures, list->n);
            for (int i = 0; i < R->n_failures; i++) fprintf(stderr, "  %s\n", R->failures[i]);
        }
        if (!exit_code) exit_code = CLI_BAD_INPUT;
    }
    if (!o->base.quiet && !exit_code) {
        printf("Explained %d input%s (%d map%s) in %.1f s: %s/results.json, %s/report.html\n", R->n_ok,
               R->n_ok == 1 ? "" : "s", R->n_maps, R->n_maps == 1 ? "" : "s", cli_now_s() - t0, o->base.out, o->base.out);
    } else if (!o->base.quiet && R->n_ok) {
        printf("Explained %d of %d inputs (%d maps): %s/results.json, %s/report.html\n", R->n_ok, list->n, R->n_maps,
               o->base.out, o->base.out);
    }
    return exit_code;
}
