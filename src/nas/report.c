/* Search state <-> JSON, and the front as a table (report.h). */
#include "nas/report.h"
#include "core/core.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ---------------------------------------------------------------------------- */

/* A number that reads back as the same double (cJSON's own printing
 * accepts a 15-digit form within an epsilon, which would make a resumed
 * search drift from an uninterrupted one); null when not finite. */
static cJSON *num(double v) {
    if (!isfinite(v)) return cJSON_CreateNull();
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
    return cJSON_CreateRaw(buf);
}

static cJSON *int_array(const int *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *eval_json(const slm_nas_state *s, const slm_nas_eval *e) {
    cJSON *o = cJSON_CreateObject();
    int L = s->space.n_layers;
    if (e->genes) cJSON_AddItemToObject(o, "genes", int_array(e->genes, slm_nas_n_genes(&s->space)));
    cJSON_AddItemToObject(o, "mlp_widths", int_array(e->widths, L));
    cJSON_AddNumberToObject(o, "blocks", e->n_blocks);
    cJSON_AddNumberToObject(o, "params", (double)e->params);
    cJSON_AddNumberToObject(o, "bytes", (double)e->bytes);
    cJSON_AddNumberToObject(o, "macs", (double)e->macs);
    cJSON_AddItemToObject(o, "accuracy", num(e->accuracy));
    cJSON_AddItemToObject(o, "loss", num(e->loss));
    cJSON_AddItemToObject(o, "tokens_per_s", num(e->tokens_per_s));
    cJSON_AddItemToObject(o, "seconds", num(e->seconds));
    cJSON_AddNumberToObject(o, "round", e->round);
    cJSON_AddItemToObject(o, "predicted_accuracy", num(e->pred_accuracy));
    cJSON_AddItemToObject(o, "predicted_tokens_per_s", num(e->pred_tps));
    return o;
}

static cJSON *report_json(const slm_pred_report *r, slm_pred_kind kind) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "chosen", slm_pred_kind_name(kind));
    cJSON_AddItemToObject(o, "ridge_cv_mape", num(r->ridge_mape));
    cJSON_AddItemToObject(o, "svr_cv_mape", num(r->svr_mape));
    cJSON_AddItemToObject(o, "ridge_lambda", num(r->ridge_lambda));
    cJSON_AddItemToObject(o, "svr_C", num(r->svr_C));
    cJSON_AddItemToObject(o, "svr_gamma", num(r->svr_gamma));
    cJSON_AddNumberToObject(o, "folds", r->folds);
    return o;
}

cJSON *slm_nas_state_to_json(const slm_nas_state *s, cJSON *config, const int32_t *channel_order) {
    const slm_nas_space *sp = &s->space;
    const slm_nas_params *p = &s->params;
    int L = sp->n_layers, F = sp->d_ff;
    cJSON *j = cJSON_CreateObject();
    if (!j) {
        cJSON_Delete(config);
        return NULL;
    }
    cJSON_AddStringToObject(j, "format", "slimlm-nas/1");
    cJSON_AddItemToObject(j, "config", config ? config : cJSON_CreateObject());
    cJSON *so = cJSON_AddObjectToObject(j, "space");
    cJSON_AddNumberToObject(so, "n_layers", L);
    cJSON_AddNumberToObject(so, "d_ff", F);
    cJSON_AddItemToObject(so, "depths", int_array(sp->depths, sp->n_depths));
    cJSON_AddItemToObject(so, "widths", int_array(sp->widths, sp->n_widths));
    cJSON_AddStringToObject(so, "order", sp->order);
    cJSON_AddNumberToObject(so, "size", slm_nas_space_size(sp));
    cJSON *po = cJSON_AddObjectToObject(j, "params");
    cJSON_AddStringToObject(po, "objective", slm_nas_objective_name(p->objective));
    cJSON_AddNumberToObject(po, "evals", p->evals);
    cJSON_AddNumberToObject(po, "n_init", p->n_init);
    cJSON_AddNumberToObject(po, "per_round", p->per_round);
    cJSON_AddNumberToObject(po, "population", p->population);
    cJSON_AddNumberToObject(po, "generations", p->generations);
    cJSON_AddNumberToObject(po, "folds", p->folds);
    cJSON_AddBoolToObject(po, "random", p->random);
    cJSON_AddNumberToObject(po, "seed", (double)p->seed);
    cJSON_AddNumberToObject(po, "tput_tokens", p->tput_tokens);
    cJSON_AddNumberToObject(po, "tput_reps", p->tput_reps);
    char hex[32];
    snprintf(hex, sizeof hex, "%016" PRIx64, s->rng);
    cJSON_AddStringToObject(j, "rng", hex);
    cJSON_AddNumberToObject(j, "round", s->round);
    cJSON_AddItemToObject(j, "reference", s->have_ref ? eval_json(s, &s->ref) : cJSON_CreateNull());
    cJSON *ev = cJSON_AddArrayToObject(j, "evaluated");
    for (int i = 0; i < s->n_ev; i++) cJSON_AddItemToArray(ev, eval_json(s, &s->ev[i]));
    cJSON *pe = cJSON_AddArrayToObject(j, "pending");
    for (int i = 0; i < s->n_pend; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "genes", int_array(s->pend[i].genes, slm_nas_n_genes(sp)));
        cJSON_AddItemToObject(o, "predicted_accuracy", num(s->pend[i].pred_accuracy));
        cJSON_AddItemToObject(o, "predicted_tokens_per_s", num(s->pend[i].pred_tps));
        cJSON_AddItemToArray(pe, o);
    }
    cJSON *fo = cJSON_AddArrayToObject(j, "fits");
    for (int i = 0; i < s->n_fits; i++) {
        const slm_nas_fit *f = &s->fits[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "round", f->round);
        cJSON_AddNumberToObject(o, "points", f->n_points);
        cJSON_AddItemToObject(o, "accuracy", report_json(&f->acc, f->acc_kind));
        if (p->objective == SLM_NAS_OBJ_THROUGHPUT) cJSON_AddItemToObject(o, "tokens_per_s", report_json(&f->tps, f->tps_kind));
        cJSON_AddItemToArray(fo, o);
    }
    if (channel_order) {
        cJSON *co = cJSON_AddArrayToObject(j, "channel_order");
        for (int b = 0; b < L; b++) {
            int *row = malloc((size_t)F * sizeof *row);
            if (!row) break;
            for (int k = 0; k < F; k++) row[k] = channel_order[(size_t)b * F + k];
            cJSON_AddItemToArray(co, int_array(row, F));
            free(row);
        }
    } else {
        cJSON_AddNullToObject(j, "channel_order");
    }
    /* summary */
    if (s->have_ref && s->n_ev) {
        int *front = malloc((size_t)s->n_ev * sizeof *front);
        double *prob = malloc((size_t)L * (sp->n_widths + 1) * sizeof *prob);
        int nf = front ? slm_nas_front(s, front) : -1;
        if (nf > 0 && prob) {
            cJSON *sum = cJSON_AddObjectToObject(j, "summary");
            cJSON_AddItemToObject(sum, "front", int_array(front, nf));
            cJSON_AddItemToObject(sum, "hypervolume", num(slm_nas_state_hypervolume(s)));
            cJSON_AddStringToObject(sum, "hypervolume_objectives",
                                    p->objective == SLM_NAS_OBJ_THROUGHPUT
                                        ? "(reference tokens/s / tokens/s, 1 - accuracy) against (1, 1)"
                                        : "(params / reference params, 1 - accuracy) against (1, 1)");
            slm_nas_width_probability(s, front, nf, prob);
            cJSON *wp = cJSON_AddArrayToObject(sum, "width_probability");
            for (int b = 0; b < L; b++) {
                cJSON *row = cJSON_CreateArray();
                for (int w = 0; w <= sp->n_widths; w++) cJSON_AddItemToArray(row, num(prob[(size_t)b * (sp->n_widths + 1) + w]));
                cJSON_AddItemToArray(wp, row);
            }
            cJSON_AddStringToObject(sum, "width_probability_columns", "one per space width, then dropped");
        }
        free(front);
        free(prob);
    }
    return j;
}

/* ---- reading ------------------------------------------------------------------------------ */

slm_status slm_nas_read_json(const char *path, cJSON **out) {
    char *text;
    size_t len;
    *out = NULL;
    slm_status st = slm_read_file(path, &text, &len);
    if (st) return st;
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!*out) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        free(text);
        return slm_fail(SLM_ERR_FORMAT, "%s: malformed JSON near byte %zu", path, off);
    }
    free(text);
    return SLM_OK;
}

typedef struct rd {
    const char *path;
} rd;

static slm_status get_num(const rd *r, const cJSON *o, const char *key, bool nullable, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (nullable && (!x || cJSON_IsNull(x))) {
        *v = NAN;
        return SLM_OK;
    }
    if (cJSON_IsRaw(x) && x->valuestring) { /* a tree made by slm_nas_state_to_json, not parsed */
        char *end;
        *v = strtod(x->valuestring, &end);
        if (!*end) return SLM_OK;
    }
    if (!cJSON_IsNumber(x)) return slm_fail(SLM_ERR_FORMAT, "%s: '%s' missing or not a number", r->path, key);
    *v = x->valuedouble;
    return SLM_OK;
}

static slm_status get_int(const rd *r, const cJSON *o, const char *key, int lo, int hi, int *v) {
    double d = 0;
    slm_status st = get_num(r, o, key, false, &d);
    if (st) return st;
    if (d != floor(d) || d < lo || d > hi)
        return slm_fail(SLM_ERR_FORMAT, "%s: '%s' = %g out of range [%d, %d]", r->path, key, d, lo, hi);
    *v = (int)d;
    return SLM_OK;
}

/* An array node of n integers in [lo, hi]; what names it in messages. */
static slm_status ints_of(const rd *r, const cJSON *a, const char *what, int n, int lo, int hi, int *v) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return slm_fail(SLM_ERR_FORMAT, "%s: '%s' must be an array of %d integers", r->path, what, n);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < lo || x->valuedouble > hi)
            return slm_fail(SLM_ERR_FORMAT, "%s: '%s' entry %d is not an integer in [%d, %d]", r->path, what, i, lo, hi);
        v[i++] = (int)x->valuedouble;
    }
    return SLM_OK;
}

static slm_status get_ints(const rd *r, const cJSON *o, const char *key, int n, int lo, int hi, int *v) {
    return ints_of(r, cJSON_GetObjectItemCaseSensitive(o, key), key, n, lo, hi, v);
}

static slm_status read_eval(const rd *r, const slm_nas_space *sp, const cJSON *o, slm_nas_eval *e, bool need_genes) {
    int L = sp->n_layers, ng = slm_nas_n_genes(sp);
    memset(e, 0, sizeof *e);
    if (!cJSON_IsObject(o)) return slm_fail(SLM_ERR_FORMAT, "%s: an evaluation is not an object", r->path);
    e->widths = slm_malloc((size_t)L * sizeof *e->widths, "evaluation");
    if (!e->widths) return SLM_ERR_NOMEM;
    slm_status st = get_ints(r, o, "mlp_widths", L, 0, sp->d_ff, e->widths);
    if (!st && need_genes) {
        e->genes = slm_malloc((size_t)ng * sizeof *e->genes, "evaluation");
        st = e->genes ? get_ints(r, o, "genes", ng, 0, SLM_NAS_MAX_CHOICES - 1, e->genes) : SLM_ERR_NOMEM;
        int *w = st ? NULL : slm_malloc((size_t)L * sizeof *w, "evaluation");
        if (!st && !w) st = SLM_ERR_NOMEM;
        if (!st && (slm_nas_decode(sp, e->genes, w) || memcmp(w, e->widths, (size_t)L * sizeof *w)))
            st = slm_fail(SLM_ERR_FORMAT, "%s: an evaluation's genes and mlp_widths disagree", r->path);
        free(w);
    }
    double params = 0, bytes = 0, macs = 0;
    if (!st) st = get_int(r, o, "blocks", 1, L, &e->n_blocks);
    if (!st) st = get_num(r, o, "params", false, &params);
    if (!st) st = get_num(r, o, "bytes", false, &bytes);
    if (!st) st = get_num(r, o, "macs", false, &macs);
    if (!st) st = get_num(r, o, "accuracy", false, &e->accuracy);
    if (!st) st = get_num(r, o, "loss", true, &e->loss);
    if (!st) st = get_num(r, o, "tokens_per_s", true, &e->tokens_per_s);
    if (!st) st = get_num(r, o, "seconds", true, &e->seconds);
    if (!st) st = get_int(r, o, "round", -1, 1 << 30, &e->round);
    if (!st) st = get_num(r, o, "predicted_accuracy", true, &e->pred_accuracy);
    if (!st) st = get_num(r, o, "predicted_tokens_per_s", true, &e->pred_tps);
    e->params = (int64_t)params;
    e->bytes = (int64_t)bytes;
    e->macs = (int64_t)macs;
    if (st) {
        free(e->widths);
        free(e->genes);
        memset(e, 0, sizeof *e);
    }
    return st;
}

static slm_status read_fit_report(const rd *r, const cJSON *o, slm_pred_report *rep, slm_pred_kind *kind) {
    if (!cJSON_IsObject(o)) return slm_fail(SLM_ERR_FORMAT, "%s: a predictor fit is not an object", r->path);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "chosen");
    *kind = cJSON_IsString(c) && !strcmp(c->valuestring, "svr") ? SLM_PRED_SVR : SLM_PRED_RIDGE;
    slm_status st = get_num(r, o, "ridge_cv_mape", true, &rep->ridge_mape);
    if (!st) st = get_num(r, o, "svr_cv_mape", true, &rep->svr_mape);
    if (!st) st = get_num(r, o, "ridge_lambda", true, &rep->ridge_lambda);
    if (!st) st = get_num(r, o, "svr_C", true, &rep->svr_C);
    if (!st) st = get_num(r, o, "svr_gamma", true, &rep->svr_gamma);
    if (!st) st = get_int(r, o, "folds", 0, 1 << 30, &rep->folds);
    return st;
}

slm_status slm_nas_state_from_json(const cJSON *j, const char *path, slm_nas_state *s, cJSON **config,
                                   int32_t **order) {
    rd r = {path};
    memset(s, 0, sizeof *s);
    if (config) *config = NULL;
    if (order) *order = NULL;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "slimlm-nas/1"))
        return slm_fail(SLM_ERR_FORMAT, "%s: not a slimlm NAS file (format slimlm-nas/1)", path);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "space"), *po = cJSON_GetObjectItemCaseSensitive(j, "params");
    if (!cJSON_IsObject(so) || !cJSON_IsObject(po)) return slm_fail(SLM_ERR_FORMAT, "%s: missing 'space' or 'params'", path);
    int L, F, d[SLM_NAS_MAX_CHOICES], w[SLM_NAS_MAX_CHOICES];
    slm_status st = get_int(&r, so, "n_layers", 1, 1024, &L);
    if (!st) st = get_int(&r, so, "d_ff", 1, 1 << 20, &F);
    const cJSON *da = cJSON_GetObjectItemCaseSensitive(so, "depths"), *wa = cJSON_GetObjectItemCaseSensitive(so, "widths");
    int nd = cJSON_GetArraySize(da), nw = cJSON_GetArraySize(wa);
    if (!st && (nd < 1 || nd > SLM_NAS_MAX_CHOICES || nw < 1 || nw > SLM_NAS_MAX_CHOICES))
        st = slm_fail(SLM_ERR_FORMAT, "%s: space needs 1..%d depths and widths", path, SLM_NAS_MAX_CHOICES);
    if (!st) st = get_ints(&r, so, "depths", nd, 1, L, d);
    if (!st) st = get_ints(&r, so, "widths", nw, 1, F, w);
    const cJSON *ord = cJSON_GetObjectItemCaseSensitive(so, "order");
    if (!st && !cJSON_IsString(ord)) st = slm_fail(SLM_ERR_FORMAT, "%s: space 'order' must be a string", path);
    slm_nas_space sp;
    if (!st && (st = slm_nas_space_init(&sp, L, F, d, nd, w, nw, ord->valuestring))) slm_error_prefix(path);
    if (st) return st;
    slm_nas_params p = slm_nas_default_params();
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(po, "objective");
    double seed;
    st = slm_nas_objective_parse(cJSON_IsString(obj) ? obj->valuestring : "", &p.objective);
    if (!st) st = get_int(&r, po, "evals", 1, 1 << 30, &p.evals);
    if (!st) st = get_int(&r, po, "n_init", 1, 1 << 30, &p.n_init);
    if (!st) st = get_int(&r, po, "per_round", 1, 1 << 30, &p.per_round);
    if (!st) st = get_int(&r, po, "population", 4, 1 << 20, &p.population);
    if (!st) st = get_int(&r, po, "generations", 1, 1 << 30, &p.generations);
    if (!st) st = get_int(&r, po, "folds", 0, 1 << 20, &p.folds);
    if (!st) st = get_num(&r, po, "seed", false, &seed);
    if (!st) st = get_int(&r, po, "tput_tokens", 0, 1 << 20, &p.tput_tokens);
    if (!st) st = get_int(&r, po, "tput_reps", 0, 1 << 20, &p.tput_reps);
    p.seed = (uint64_t)seed;
    p.random = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(po, "random"));
    if (st) {
        slm_nas_space_free(&sp);
        return st;
    }
    if ((st = slm_nas_state_init(s, &sp, &p))) {
        slm_nas_space_free(&sp);
        slm_nas_state_free(s);
        return st;
    }
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(j, "rng");
    char *end = NULL;
    if (!cJSON_IsString(rng) || strlen(rng->valuestring) != 16 || (s->rng = strtoull(rng->valuestring, &end, 16), *end))
        st = slm_fail(SLM_ERR_FORMAT, "%s: 'rng' must be 16 hex digits", path);
    if (!st) st = get_int(&r, j, "round", 0, 1 << 30, &s->round);
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(j, "reference");
    if (!st && ref && !cJSON_IsNull(ref)) {
        st = read_eval(&r, &s->space, ref, &s->ref, false);
        s->have_ref = !st;
    }
    const cJSON *x, *ev = cJSON_GetObjectItemCaseSensitive(j, "evaluated"), *pe = cJSON_GetObjectItemCaseSensitive(j, "pending");
    if (!st && (!cJSON_IsArray(ev) || !cJSON_IsArray(pe)))
        st = slm_fail(SLM_ERR_FORMAT, "%s: 'evaluated' and 'pending' must be arrays", path);
    if (!st) cJSON_ArrayForEach(x, ev) {
        slm_nas_eval e;
        if ((st = read_eval(&r, &s->space, x, &e, true))) break;
        if ((st = slm_nas_grow((void **)&s->ev, &s->cap_ev, s->n_ev + 1, sizeof *s->ev))) {
            free(e.genes);
            free(e.widths);
            break;
        }
        s->ev[s->n_ev++] = e;
    }
    int ng = slm_nas_n_genes(&s->space);
    if (!st) cJSON_ArrayForEach(x, pe) {
        slm_nas_pending q = {slm_malloc((size_t)ng * sizeof(int), "pending"), 0, 0};
        if (!q.genes) st = SLM_ERR_NOMEM;
        if (!st) st = get_ints(&r, x, "genes", ng, 0, SLM_NAS_MAX_CHOICES - 1, q.genes);
        int *wtmp = st ? NULL : slm_malloc((size_t)s->space.n_layers * sizeof *wtmp, "pending");
        if (!st && (!wtmp || slm_nas_decode(&s->space, q.genes, wtmp)))
            st = wtmp ? slm_fail(SLM_ERR_FORMAT, "%s: a pending candidate is outside the space", path) : SLM_ERR_NOMEM;
        free(wtmp);
        if (!st) st = get_num(&r, x, "predicted_accuracy", true, &q.pred_accuracy);
        if (!st) st = get_num(&r, x, "predicted_tokens_per_s", true, &q.pred_tps);
        if (!st) st = slm_nas_grow((void **)&s->pend, &s->cap_pend, s->n_pend + 1, sizeof *s->pend);
        if (st) {
            free(q.genes);
            break;
        }
        s->pend[s->n_pend++] = q;
    }
    const cJSON *fo = cJSON_GetObjectItemCaseSensitive(j, "fits");
    if (!st && cJSON_IsArray(fo)) cJSON_ArrayForEach(x, fo) {
        slm_nas_fit f = {0};
        if ((st = get_int(&r, x, "round", 0, 1 << 30, &f.round)) || (st = get_int(&r, x, "points", 0, 1 << 30, &f.n_points)) ||
            (st = read_fit_report(&r, cJSON_GetObjectItemCaseSensitive(x, "accuracy"), &f.acc, &f.acc_kind)))
            break;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(x, "tokens_per_s");
        if (t && (st = read_fit_report(&r, t, &f.tps, &f.tps_kind))) break;
        if ((st = slm_nas_grow((void **)&s->fits, &s->cap_fits, s->n_fits + 1, sizeof *s->fits))) break;
        s->fits[s->n_fits++] = f;
    }
    const cJSON *co = cJSON_GetObjectItemCaseSensitive(j, "channel_order");
    if (!st && order && co && !cJSON_IsNull(co)) {
        if (!cJSON_IsArray(co) || cJSON_GetArraySize(co) != L)
            st = slm_fail(SLM_ERR_FORMAT, "%s: 'channel_order' must hold %d rows", path, L);
        int32_t *o = st ? NULL : slm_malloc((size_t)L * F * sizeof *o, "channel order");
        int *row = st ? NULL : slm_malloc((size_t)F * sizeof *row, "channel order");
        if (!st && (!o || !row)) st = SLM_ERR_NOMEM;
        int b = 0;
        if (!st) cJSON_ArrayForEach(x, co) {
            if ((st = ints_of(&r, x, "channel_order", F, 0, F - 1, row))) break;
            for (int k = 0; k < F; k++) o[(size_t)b * F + k] = row[k];
            b++;
        }
        free(row);
        if (st) free(o);
        else *order = o;
    }
    if (!st && config) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "config");
        *config = cJSON_IsObject(c) ? cJSON_Duplicate(c, true) : cJSON_CreateObject();
    }
    if (st) {
        slm_nas_state_free(s);
        if (order) {
            free(*order);
            *order = NULL;
        }
    }
    return st;
}

/* ---- table ------------------------------------------------------------------------------- */

void slm_nas_print_front(FILE *f, const slm_nas_state *s) {
    if (!s->have_ref) return;
    int *front = malloc(((size_t)s->n_ev + 1) * sizeof *front);
    int nf = front ? slm_nas_front(s, front) : 0;
    const slm_nas_eval *r = &s->ref;
    bool tp = isfinite(r->tokens_per_s);
    fprintf(f, "%-10s %6s %10s %9s %9s %8s %10s %8s %6s\n", "", "blocks", "params (M)", "params %", "MB", "accuracy",
            "tokens/s", "speedup", "round");
    fprintf(f, "%-10s %6d %10.2f %8.1f%% %9.1f %8.4f %10.0f %7.2fx %6s\n", "reference", r->n_blocks,
            (double)r->params / 1e6, 100.0, (double)r->bytes / 1e6, r->accuracy, tp ? r->tokens_per_s : NAN, 1.0, "-");
    for (int k = 0; k < nf; k++) {
        const slm_nas_eval *e = &s->ev[front[k]];
        char name[24];
        snprintf(name, sizeof name, "front %d", k + 1);
        fprintf(f, "%-10s %6d %10.2f %8.1f%% %9.1f %8.4f %10.0f %7.2fx %6d\n", name, e->n_blocks,
                (double)e->params / 1e6, 100.0 * (double)e->params / (double)r->params, (double)e->bytes / 1e6,
                e->accuracy, e->tokens_per_s, tp ? e->tokens_per_s / r->tokens_per_s : NAN, e->round);
    }
    fprintf(f, "%d evaluated (%s), %d on the front; hypervolume %.5f (%s)\n", s->n_ev,
            s->params.random ? "random search" : "predictor-guided", nf, slm_nas_state_hypervolume(s),
            slm_nas_objective_name(s->params.objective));
    free(front);
}

void slm_nas_print_width_probability(FILE *f, const slm_nas_state *s) {
    const slm_nas_space *sp = &s->space;
    int L = sp->n_layers, W = sp->n_widths;
    int *front = malloc(((size_t)s->n_ev + 1) * sizeof *front);
    double *prob = malloc((size_t)L * (W + 1) * sizeof *prob);
    int nf = front && prob ? slm_nas_front(s, front) : 0;
    if (nf > 0) {
        slm_nas_width_probability(s, front, nf, prob);
        fprintf(f, "P(MLP width) per block among the %d front members:\nblock", nf);
        for (int w = 0; w < W; w++) fprintf(f, " %7d", sp->widths[w]);
        fprintf(f, " dropped\n");
        for (int b = 0; b < L; b++) {
            fprintf(f, "%5d", b);
            for (int w = 0; w <= W; w++) fprintf(f, " %7.2f", prob[(size_t)b * (W + 1) + w]);
            fprintf(f, "\n");
        }
    }
    free(front);
    free(prob);
}
