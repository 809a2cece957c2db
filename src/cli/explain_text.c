/* gradcam explain --task caption | vqa (issue #19): text fed beside the picture through the model's
 * integer input, as the Grad-CAM paper explains captions (each word's log-probability at its step,
 * after the LogSoftmax, and the whole caption's) and visual questions (the answer's score before
 * the softmax). The vocabulary file maps words to ids; a captioner's output is (1, L, V) log-
 * probabilities, position t predicting token t + 1 (docs/captioning.md has the contract). */
#include <ctype.h>
#include <errno.h>
#include <math.h>

#include "explain.h"

#define EX_MAX_WORDS (EX_MAX_LIST - 1) /* words explained per caption (one item each, plus the whole) */
#define EX_VOCAB_MAX_BYTES (64u << 20)
#define EX_VOCAB_MAX_TOKENS 1000000

/* ---- the vocabulary ---- */

/* Tokens are found through an open-addressing table (FNV-1a, linear probing, at most half full):
 * a vocabulary of 10^6 tokens loads and checks for repeats in one pass, not 10^12 comparisons. */
static uint64_t vocab_hash(const char *w) {
    uint64_t h = 1469598103934665603ull;
    for (; *w; w++) h = (h ^ (unsigned char)*w) * 1099511628211ull;
    return h;
}

static int64_t vocab_find(const ex_run *R, const char *w) {
    if (!R->vocab_slot) return -1;
    for (uint64_t i = vocab_hash(w) & R->vocab_mask;; i = (i + 1) & R->vocab_mask) {
        int64_t id = R->vocab_slot[i] - 1;
        if (id < 0) return -1;
        if (strcmp(R->vocab[id], w) == 0) return id;
    }
}

/* Token id, just read, into the table: -1 when it is new, or the id it repeats. */
static int64_t vocab_insert(ex_run *R, int64_t id) {
    uint64_t i = vocab_hash(R->vocab[id]) & R->vocab_mask;
    for (; R->vocab_slot[i]; i = (i + 1) & R->vocab_mask)
        if (strcmp(R->vocab[R->vocab_slot[i] - 1], R->vocab[id]) == 0) return R->vocab_slot[i] - 1;
    R->vocab_slot[i] = id + 1;
    return -1;
}

/* One token per line (id = line number from 0), "\r\n" or "\n"; no empty line, no blank or control
 * character in a token, no token twice. 0 or an exit code after one line. */
static int vocab_load(ex_run *R, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return cli_fail(CLI_BAD_INPUT, "%s: cannot open the vocabulary: %s", path, strerror(errno));
    char *buf = malloc(EX_VOCAB_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, EX_VOCAB_MAX_BYTES + 1, f) : 0;
    int bad = !buf || ferror(f) || n > EX_VOCAB_MAX_BYTES;
    fclose(f);
    if (bad) {
        free(buf);
        return buf ? cli_fail(CLI_BAD_INPUT, "%s: cannot read the vocabulary (unreadable or larger than 64 MiB)", path)
                   : cli_fail(1, "out of memory");
    }
    buf[n] = 0;
    int64_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
    lines += n > 0 && buf[n - 1] != '\n';
    if (lines < 1 || lines > EX_VOCAB_MAX_TOKENS) {
        free(buf);
        return cli_fail(CLI_BAD_INPUT, "%s: a vocabulary has 1 to %d tokens, one per line; this has %lld", path,
                        EX_VOCAB_MAX_TOKENS, (long long)lines);
    }
    R->vocab_buf = buf;
    uint64_t slots = 2;
    while (slots < 2 * (uint64_t)lines) slots *= 2; /* (lines <= 10^6: no overflow) */
    R->vocab_mask = slots - 1;
    R->vocab = calloc((size_t)lines, sizeof *R->vocab);
    R->vocab_slot = calloc((size_t)slots, sizeof *R->vocab_slot);
    if (!R->vocab || !R->vocab_slot) return cli_fail(1, "out of memory");
    char *end = buf + n; /* (memchr, not strchr: bounded, and a NUL byte in a token is caught below) */
    for (char *p = buf; R->n_vocab < lines; R->n_vocab++) {
        char *e = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((e ? e : end) - p);
        if (e) *e = 0;
        if (len && p[len - 1] == '\r') p[--len] = 0;
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)p[k] <= ' ' || p[k] == 0x7f)
                return cli_fail(CLI_BAD_INPUT, "%s: line %lld: a token has no blank or control character", path,
                                (long long)R->n_vocab + 1);
        if (!len) return cli_fail(CLI_BAD_INPUT, "%s: line %lld is empty", path, (long long)R->n_vocab + 1);
        R->vocab[R->n_vocab] = p;
        int64_t dup = vocab_insert(R, R->n_vocab);
        if (dup >= 0)
            return cli_fail(CLI_BAD_INPUT, "%s: line %lld: '%s' is line %lld already", path, (long long)R->n_vocab + 1,
                            p, (long long)dup + 1);
        p = e ? e + 1 : end;
    }
    R->tok_bos = vocab_find(R, "<bos>");
    R->tok_eos = vocab_find(R, "<eos>");
    R->tok_unk = vocab_find(R, "<unk>");
    return 0;
}

/* The text's words as ids (lower case; . , ? ! ; : are spaces): *ids (malloc'd), *n. A word not in
 * the vocabulary is <unk> where it has one, and named in *unknown (when given) as "'w', 'v'". <bos>
 * and <pad> are the model's, not words of a text. 0 or an exit code. */
static int tokenize(const ex_run *R, const char *what, const char *text, int64_t **ids, int *n, gc_buf *unknown) {
    *ids = NULL;
    *n = 0;
    char *t = gc_strdup(text);
    int64_t *v = malloc(sizeof *v * (EX_MAX_WORDS + 1));
    if (!t || !v) {
        free(t);
        free(v);
        return cli_fail(1, "out of memory");
    }
    for (char *c = t; *c; c++) *c = strchr(".,?!;:", *c) ? ' ' : (char)tolower((unsigned char)*c);
    int rc = 0;
    for (char *save = NULL, *w = strtok_r(t, " \t\r\n", &save); w && !rc; w = strtok_r(NULL, " \t\r\n", &save)) {
        if (*n == EX_MAX_WORDS) {
            rc = cli_usage_error("%s: more than %d words", what, EX_MAX_WORDS);
            break;
        }
        if (strcmp(w, "<bos>") == 0 || strcmp(w, "<pad>") == 0) {
            rc = cli_usage_error("%s: '%s' is a special token, not a word of the text", what, w);
            break;
        }
        int64_t id = vocab_find(R, w);
        if (id < 0 && R->tok_unk < 0)
            rc = cli_usage_error("%s: '%s' is not in the vocabulary %s (which has no <unk>)", what, w, R->o->vocab_path);
        else if (id < 0 && unknown)
            gc_buf_printf(unknown, "%s'%s'", unknown->n ? ", " : "", w);
        v[(*n)++] = id >= 0 ? id : R->tok_unk;
    }
    if (!rc && *n == 0) rc = cli_usage_error("%s: no word in '%s'", what, text);
    free(t);
    if (rc) {
        free(v);
        *n = 0;
        return rc;
    }
    *ids = v;
    return 0;
}

/* The vocabulary, the model's text input, the text given (checked once, before any picture). */
int ex_text_prepare(ex_run *R) {
    const ex_opts *o = R->o;
    const char *task = o->base.task == CLI_TASK_CAPTION ? "caption" : "vqa";
    if (!o->vocab_path) return cli_usage_error("--task %s needs --vocab FILE (one token per line)", task);
    int rc = vocab_load(R, o->vocab_path);
    if (rc) return rc;
    if (o->base.task == CLI_TASK_CAPTION && (R->tok_bos < 0 || (!o->caption && R->tok_eos < 0)))
        return cli_fail(CLI_BAD_INPUT, "%s: a captioner's vocabulary names <bos>%s", o->vocab_path,
                        o->caption ? "" : " and <eos> (greedy decoding stops there)");
    for (int i = 1; i < gcam_model_num_inputs(R->m) && !R->text_name; i++) {
        gcam_tensor_info ti;
        if (gcam_model_input(R->m, i, &ti) == GCAM_OK && ti.dtype == GCAM_INT64) R->text_name = ti.name;
    }
    if (!R->text_name)
        return cli_fail(CLI_BAD_INPUT, "%s: --task %s feeds the text's ids to an integer input after the picture; "
                        "the model has none", o->model, task);
    if (o->base.task == CLI_TASK_CAPTION) { /* a word's "class" is its id: named by the vocabulary */
        if (R->labels != (const char **)gc_imagenet_labels) free(R->labels);
        R->labels = malloc(sizeof *R->labels * (size_t)R->n_vocab);
        if (!R->labels) return cli_fail(1, "out of memory");
        for (int64_t i = 0; i < R->n_vocab; i++) R->labels[i] = R->vocab[i];
        R->n_labels = R->n_vocab;
    }
    int64_t *ids;
    int n;
    const char *text = o->base.task == CLI_TASK_CAPTION ? o->caption : o->question;
    const char *what = o->base.task == CLI_TASK_CAPTION ? "--caption" : "--question";
    gc_buf unknown = {0};
    if (text && (rc = tokenize(R, what, text, &ids, &n, &unknown))) {
        gc_buf_free(&unknown);
        return rc;
    }
    if (unknown.n && !o->base.quiet) /* (said once here; each input's record lists them in its warnings) */
        fprintf(stderr, "%s: note: %s: %s not in the vocabulary %s: fed as <unk>\n", g_prog, what, unknown.p,
                o->vocab_path);
    gc_buf_free(&unknown);
    if (text) free(ids); /* (made again per input: the checks are what counted here) */
    return 0;
}

/* ---- the text fed ---- */

/* The rows (n, V) of a captioner's output are log-probabilities: each row's exp sums to 1 (within
 * float32 rounding of a LogSoftmax). Words are explained by these values and their gradients, so
 * logits or probabilities in their place would explain something else under the same name. The
 * first row that is not, or -1; its sum of exp in *sum. */
static int64_t bad_logprob_row(const float *lp, int64_t n, int64_t V, double *sum) {
    for (int64_t t = 0; t < n; t++) {
        const float *row = lp + (size_t)t * (size_t)V;
        double m = row[0], e = 0;
        for (int64_t k = 1; k < V; k++) m = row[k] > m ? row[k] : m;
        for (int64_t k = 0; k < V; k++) e += exp((double)row[k] - m);
        double lse = m + log(e);
        if (!(fabs(lse) <= 1e-3)) {
            *sum = exp(lse);
            return t;
        }
    }
    return -1;
}

static void fail_logprobs(gc_err *err, const ex_one *s, const char *name, int64_t t, double sum) {
    if (!isfinite(sum)) {
        gc_fail(err, GCAM_E_NUMERIC, "%s: non-finite log-probabilities at position %lld of '%s'", s->in->path,
                (long long)t, name ? name : "?");
        return;
    }
    gc_fail(err, GCAM_E_FORMAT, "%s: a captioner's output is log-probabilities (a final LogSoftmax); at position %lld "
            "the exp of '%s' sums to %.6g, not 1", s->in->path, (long long)t, name ? name : "?", sum);
}

/* The first output's log-probabilities at the last position of a run with s->tokens: the argmax
 * (ties to the lower id) into *next. */
static int greedy_step(ex_run *R, ex_one *s, int64_t *next, gc_err *err) {
    const ex_opts *o = R->o;
    ex_input_feeds(R, s);
    const gcam_feed *f = s->feeds;
    int nf = s->nf;
    gcam_ctx *c = NULL;
    gcam_ctx_options co = {.n_threads = o->base.threads, .max_memory = o->base.max_memory};
    gcam_status rc = gcam_ctx_create(&c, R->m, f, nf, &co);
    if (!rc) rc = gcam_ctx_run(c, f, nf);
    gcam_tensor_view v;
    if (!rc) rc = o->output ? gcam_ctx_tensor(c, o->output, &v) : gcam_ctx_output(c, 0, &v);
    if (rc) {
        gc_fail(err, rc, "%s: greedy decoding, %lld tokens: %s", s->in->path, (long long)s->n_tokens, gcam_ctx_error(c));
        gcam_ctx_free(c);
        return EX_FAILED;
    }
    if (v.dtype != GCAM_FLOAT32 || v.ndim != 3 || v.dims[0] != 1 || v.dims[1] != s->n_tokens || v.dims[2] != R->n_vocab) {
        gc_fail(err, GCAM_E_SHAPE, "%s: a captioner's output is (1, L, V) with L the tokens fed (%lld) and V the "
                "vocabulary's %lld tokens; '%s' is not", s->in->path, (long long)s->n_tokens, (long long)R->n_vocab,
                v.name ? v.name : "?");
        gcam_ctx_free(c);
        return EX_FAILED;
    }
    const float *row = (const float *)v.data + (size_t)(s->n_tokens - 1) * (size_t)R->n_vocab;
    double sum = 0;
    if (bad_logprob_row(row, 1, R->n_vocab, &sum) >= 0) {
        fail_logprobs(err, s, v.name, s->n_tokens - 1, sum);
        gcam_ctx_free(c);
        return EX_FAILED;
    }
    int64_t best = 0;
    for (int64_t k = 1; k < R->n_vocab; k++)
        if (row[k] > row[best]) best = k;
    int finite = isfinite(row[best]);
    gcam_ctx_free(c); /* (row pointed into it) */
    if (!finite) {
        gc_fail(err, GCAM_E_NUMERIC, "%s: greedy decoding: non-finite log-probabilities", s->in->path);
        return EX_FAILED;
    }
    *next = best;
    return 0;
}

/* The text fed, as words (a caption's <bos> left out). */
static void words_text(const ex_run *R, const ex_one *s, gc_buf *b) {
    for (int64_t t = R->o->base.task == CLI_TASK_VQA ? 0 : 1; t < s->n_tokens; t++) {
        if (b->n) gc_buf_puts(b, " ");
        gc_buf_puts(b, R->vocab[s->tokens[t]]);
    }
}

int ex_text_tokens(ex_run *R, ex_one *s, gc_err *err) {
    const ex_opts *o = R->o;
    int64_t *ids = NULL;
    int n = 0;
    const char *text = o->base.task == CLI_TASK_CAPTION ? o->caption : o->question;
    if (o->base.task == CLI_TASK_VQA && !text) { /* (the tool's requests: the command checks it first) */
        gc_fail(err, GCAM_E_ARG, "%s: a VQA model explains the answers to a question: none was given", s->in->path);
        return EX_FAILED;
    }
    gc_buf unknown = {0};
    if (text && tokenize(R, "text", text, &ids, &n, &unknown)) { /* (checked at the start: only memory can fail) */
        gc_buf_free(&unknown);
        gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", s->in->path);
        return EX_FAILED;
    }
    if (unknown.n && s->n_warn < GCAM_METHOD_COUNT) { /* in the record: the text shows <unk> in their place */
        size_t wl = unknown.n + 64;
        if ((s->warnings[s->n_warn] = malloc(wl)))
            snprintf(s->warnings[s->n_warn++], wl, "%s not in the vocabulary: fed as <unk>", unknown.p);
    }
    int unk_oom = unknown.oom;
    gc_buf_free(&unknown);
    if (unk_oom) {
        free(ids);
        return ex_one_oom(s, err);
    }
    s->tokens = malloc(sizeof *s->tokens * (EX_MAX_WORDS + 2));
    if (!s->tokens) {
        free(ids);
        return ex_one_oom(s, err);
    }
    if (o->base.task == CLI_TASK_VQA) {
        memcpy(s->tokens, ids, sizeof *ids * (size_t)n);
        s->n_tokens = n;
    } else if (text) {
        s->tokens[0] = R->tok_bos;
        memcpy(s->tokens + 1, ids, sizeof *ids * (size_t)n);
        s->n_tokens = 1 + n;
        s->n_words = n;
    } else { /* greedy: the most likely next word until <eos> */
        int max = o->max_words > 0 && o->max_words < EX_MAX_WORDS ? o->max_words : (o->max_words ? EX_MAX_WORDS : 16);
        s->tokens[0] = R->tok_bos;
        s->n_tokens = 1;
        s->generated = 1;
        for (int64_t next = -1; s->n_tokens <= max;) {
            int r = greedy_step(R, s, &next, err);
            if (r) return r;
            if (next == R->tok_eos) break;
            s->tokens[s->n_tokens++] = next;
        }
        s->n_words = (int)s->n_tokens - 1;
        if (!s->n_words) {
            gc_fail(err, GCAM_E_FORMAT, "%s: the model's caption is empty (<eos> first)", s->in->path);
            return EX_FAILED;
        }
    }
    free(ids);
    gc_buf words = {0};
    words_text(R, s, &words);
    if (words.oom) return ex_one_oom(s, err);
    snprintf(s->text_note, sizeof s->text_note, "%s: \"%s\"",
             o->base.task == CLI_TASK_VQA ? "question" : s->generated ? "caption (greedy)" : "caption", words.p ? words.p : "");
    gc_buf_free(&words);
    return 0;
}

/* The caption's log-probabilities (the explained output itself: after the LogSoftmax). */
int ex_caption_scores(ex_run *R, ex_one *s, const gcam_tensor_view *sv, gc_err *err) {
    int64_t L = s->n_tokens, V = R->n_vocab;
    if (sv->ndim != 3 || sv->dims[0] != 1 || sv->dims[1] != L || sv->dims[2] != V) {
        gc_fail(err, GCAM_E_SHAPE, "%s: a captioner's output is (1, L, V) with L = %lld tokens fed and V = %lld in the "
                "vocabulary; '%s' has %d dimensions", s->in->path, (long long)L, (long long)V, sv->name ? sv->name : "?",
                sv->ndim);
        return EX_FAILED;
    }
    double sum = 0;
    int64_t bad = bad_logprob_row(sv->data, L, V, &sum);
    if (bad >= 0) {
        fail_logprobs(err, s, sv->name, bad, sum);
        return EX_FAILED;
    }
    s->word_logprob = calloc((size_t)s->n_words + 1, sizeof *s->word_logprob);
    s->caption_weights = gc_calloc2((size_t)(L * V), sizeof(float));
    if (!s->word_logprob || !s->caption_weights) return ex_one_oom(s, err);
    const float *lp = sv->data;
    for (int t = 1; t <= s->n_words; t++) { /* position t - 1 predicts token t */
        size_t at = (size_t)(t - 1) * (size_t)V + (size_t)s->tokens[t];
        s->word_logprob[t] = lp[at];
        s->word_logprob[0] += lp[at];
        s->caption_weights[at] = 1;
    }
    return 0;
}

/* ---- what is explained, and its records ---- */

void ex_text_items(ex_run *R, ex_one *s) {
    if (R->o->base.task == CLI_TASK_VQA) { /* the answers: class items, made by the classifier's code */
        for (int i = 0; i < s->n_items; i++) s->items[i].text = 1;
        return;
    }
    for (int t = 0; t <= s->n_words && s->n_items < EX_MAX_LIST; t++) {
        int w = t < s->n_words ? t + 1 : 0; /* the words, then the whole caption */
        ex_item *it = &s->items[s->n_items++];
        memset(it, 0, sizeof *it);
        it->det = it->seg = -1;
        it->text = 1;
        it->word = w;
        if (w) {
            it->cls = s->tokens[w];
            it->t = (gcam_target){.kind = GCAM_TARGET_ELEMENT, .index = {0, w - 1, it->cls}};
            snprintf(it->tag, sizeof it->tag, "w%d", w);
            snprintf(it->title, sizeof it->title, "word %d \xC2\xB7 %s (log p %.3f)", w, R->vocab[it->cls], s->word_logprob[w]);
        } else {
            it->cls = -1;
            it->t = (gcam_target){.kind = GCAM_TARGET_WEIGHTS, .weights = s->caption_weights};
            snprintf(it->tag, sizeof it->tag, "caption");
            snprintf(it->title, sizeof it->title, "the whole caption (log p %.3f)", s->word_logprob[0]);
        }
    }
}

/* "caption": {"text", "generated", "logprob", "words": [ ... or "question": text (the answers'
 * array opens after the predictions, where a classifier's "maps" would) */
void ex_text_json_head(ex_run *R, ex_one *s) {
    gc_json *j = &s->j;
    gc_buf text = {0};
    words_text(R, s, &text);
    if (text.oom) s->jb.oom = 1;
    if (R->o->base.task == CLI_TASK_VQA) {
        gc_json_key(j, "question");
        gc_json_string(j, text.p ? text.p : "");
        gc_buf_free(&text);
        return;
    }
    gc_json_key(j, "caption");
    gc_json_begin_object(j);
    gc_json_key(j, "text");
    gc_json_string(j, text.p ? text.p : "");
    gc_json_key(j, "generated");
    gc_json_bool(j, s->generated);
    gc_json_key(j, "logprob");
    gc_json_number(j, s->word_logprob ? s->word_logprob[0] : 0);
    gc_json_key(j, "words");
    gc_json_begin_array(j);
    gc_buf_free(&text);
}

void ex_text_item_begin(ex_run *R, ex_one *s, const ex_item *it) {
    gc_json *j = &s->j;
    if (R->o->base.task == CLI_TASK_CAPTION && it->word == 0) { /* after the words: the whole caption's maps */
        gc_json_end_array(j);
        gc_json_key(j, "maps");
        gc_json_begin_array(j);
        return;
    }
    gc_json_begin_object(j);
    if (R->o->base.task == CLI_TASK_CAPTION) {
        gc_json_key(j, "word");
        gc_json_string(j, R->vocab[it->cls]);
        gc_json_key(j, "step");
        gc_json_int(j, it->word - 1);
        gc_json_key(j, "id");
        gc_json_int(j, it->cls);
        gc_json_key(j, "logprob");
        gc_json_number_f(j, (float)s->word_logprob[it->word]);
    } else {
        gc_json_key(j, "index");
        gc_json_int(j, it->cls);
        gc_json_key(j, "label");
        gc_json_string(j, ex_label_of(R, it->cls));
        gc_json_key(j, "score");
        gc_json_number_f(j, (float)s->cscore[it->cls]);
        gc_json_key(j, "probability");
        gc_json_number_f(j, (float)s->cprob[it->cls]);
    }
    gc_json_key(j, "maps");
    gc_json_begin_array(j);
}

void ex_text_item_end(ex_run *R, ex_one *s, const ex_item *it) {
    if (R->o->base.task == CLI_TASK_CAPTION && it->word == 0) return; /* (closed by ex_text_json_close) */
    gc_json_end_array(&s->j);
    gc_json_end_object(&s->j);
}

void ex_text_json_close(ex_run *R, ex_one *s) {
    if (R->o->base.task == CLI_TASK_CAPTION) gc_json_end_object(&s->j); /* the caption object */
}

void ex_text_free_run(ex_run *R) {
    free(R->vocab);
    free(R->vocab_buf);
    free(R->vocab_slot);
    R->vocab = NULL;
    R->vocab_buf = NULL;
    R->vocab_slot = NULL;
    R->n_vocab = 0;
}

void ex_text_free_one(ex_one *s) {
    free(s->tokens);
    free(s->word_logprob);
    free(s->caption_weights);
}
