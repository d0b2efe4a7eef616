/* The NAS search loop, its checkpoints and its results (src/nas/search.c,
 * report.c), on a random model with a synthetic accuracy so it runs in
 * about a second:
 *  - accuracy(plan) = 0.3 + 0.4 * sum over kept blocks of a_i * width_i / F
 *    / sum a_i (a_i decreasing with depth: early blocks matter more), read
 *    from the model's plan as the search leaves it, so a wrong plan gives a
 *    wrong number;
 *  - both searches (predictor-guided and random, 24 evaluations of a
 *    space of 3 depths x 2^blocks widths) evaluate only distinct, in-space
 *    sub-networks, record params equal to slm_model_get_stats of the plan,
 *    and leave the model at its full plan;
 *  - on this smooth objective the guided search's hypervolume beats the
 *    random one's (goal ratio > 1) and its predicted accuracies are close to
 *    the measured ones (mean |error| < 0.05);
 *  - a search stopped after 9 evaluations (the checkpoint callback fails)
 *    and resumed from its JSON ends with exactly the evaluations of an
 *    uninterrupted run (same sub-networks, same order, same numbers);
 *  - JSON round trip: to_json(from_json(to_json(s))) is the same text;
 *  - the hypervolume and front of the state match a direct computation.
 */
#include "model/forward.h"
#include "nas/nsga2.h"
#include "nas/report.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { L = 8, F = 64 };

static slm_model *random_model(void) {
    slm_config c = {.n_vocab = 61, .d_model = 32, .n_layers = L, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                    .d_ff = F, .max_ctx = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied_embeddings = true,
                    .bos_id = 1, .eos_id = 2};
    slm_model *m = NULL;
    CHECK(slm_model_new_random(&c, 3, &m) == SLM_OK, "random model: %s", slm_last_error());
    return m;
}

static slm_status synth_acc(void *user, const slm_model *m, double *acc, double *loss) {
    int *calls = user;
    (*calls)++;
    double s = 0, z = 0;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        double a = 1.0 / (1 + i);
        z += a;
        if (m->blocks[i].kept) s += a * m->blocks[i].d_ff / (double)m->cfg.d_ff;
    }
    *acc = 0.3 + 0.4 * s / z;
    *loss = 2.0 - *acc; /* recorded only */
    return SLM_OK;
}

static slm_nas_params params(bool random) {
    slm_nas_params p = slm_nas_default_params();
    p.evals = 24;
    p.n_init = 6;
    p.per_round = 3;
    p.population = 20;
    p.generations = 15;
    p.random = random;
    p.seed = 11;
    p.tput_tokens = 4; /* measured, tiny */
    p.tput_reps = 1;
    p.quiet = true;
    return p;
}

static bool init_state(slm_nas_state *s, bool random) {
    slm_nas_space sp;
    slm_nas_params p = params(random);
    return CHECK(slm_nas_space_parse(&sp, L, F, "6,7,8", "32,64", "first") == SLM_OK &&
                     slm_nas_state_init(s, &sp, &p) == SLM_OK,
                 "state: %s", slm_last_error());
}

static void check_run(const slm_nas_state *s, slm_model *m, const char *what) {
    int dup = 0, bad_params = 0, out = 0;
    int ng = slm_nas_n_genes(&s->space), back[1 + L];
    for (int i = 0; i < s->n_ev; i++) {
        const slm_nas_eval *e = &s->ev[i];
        for (int j = 0; j < i; j++) dup += memcmp(e->genes, s->ev[j].genes, sizeof(int) * ng) == 0;
        if (slm_nas_encode(&s->space, e->widths, back) || memcmp(back, e->genes, sizeof back)) out++;
        slm_nas_apply(m, e->widths);
        if (slm_model_get_stats(m, 1).n_params != e->params) bad_params++;
    }
    int full[L];
    slm_nas_full_widths(m, full);
    slm_nas_apply(m, full);
    CHECK(s->n_ev == 24 && s->have_ref && dup == 0 && out == 0 && bad_params == 0,
          "%s: %d evaluations, %d duplicates, %d outside the space, %d wrong parameter counts", what, s->n_ev, dup, out,
          bad_params);
}

static void test_search(void) {
    slm_model *m = random_model();
    if (!m) return;
    slm_nas_state g, r;
    int calls = 0;
    if (!init_state(&g, false) || !init_state(&r, true)) goto out;
    CHECK(slm_nas_search_run(&g, m, synth_acc, &calls, NULL, NULL) == SLM_OK, "guided: %s", slm_last_error());
    CHECK(calls == 25, "25 accuracy calls (24 + reference), got %d", calls);
    bool full = true;
    for (int i = 0; i < L; i++) full &= m->blocks[i].kept && m->blocks[i].d_ff == F;
    CHECK(full, "the model is back at its full plan");
    CHECK(slm_nas_search_run(&r, m, synth_acc, &calls, NULL, NULL) == SLM_OK, "random: %s", slm_last_error());
    check_run(&g, m, "guided");
    check_run(&r, m, "random");
    double hg = slm_nas_state_hypervolume(&g), hr = slm_nas_state_hypervolume(&r), err = 0;
    int np = 0;
    for (int i = 0; i < g.n_ev; i++)
        if (g.ev[i].round > 0) {
            err += fabs(g.ev[i].pred_accuracy - g.ev[i].accuracy);
            np++;
        }
    err /= np ? np : 1;
    printf("synthetic objective: hypervolume guided %.5f, random %.5f, ratio %.3f; %d predicted candidates, mean "
           "|predicted - measured| accuracy %.4f; %d predictor fits (last: %s, CV MAPE %.2f%%)\n",
           hg, hr, hg / hr, np, err, g.n_fits, g.n_fits ? slm_pred_kind_name(g.fits[g.n_fits - 1].acc_kind) : "-",
           g.n_fits ? fmin(g.fits[g.n_fits - 1].acc.ridge_mape, g.fits[g.n_fits - 1].acc.svr_mape) : NAN);
    CHECK(hg > hr, "guided hypervolume %g should beat random %g on a smooth objective", hg, hr);
    CHECK(np >= 12 && err < 0.05, "%d predicted, mean error %g", np, err);
    CHECK(r.n_fits == 0, "random search fits no predictor");

    /* front and hypervolume against a direct computation */
    int front[32];
    int nf = slm_nas_front(&g, front);
    double f[64], pts[2 * 32];
    for (int i = 0; i < g.n_ev; i++) {
        f[2 * i] = (double)g.ev[i].params / g.ref.params;
        f[2 * i + 1] = 1 - g.ev[i].accuracy;
    }
    int nondom = 0;
    for (int i = 0; i < g.n_ev; i++) {
        bool dom = false;
        for (int j = 0; j < g.n_ev && !dom; j++) dom = slm_nsga2_dominates(f + 2 * j, f + 2 * i, 2);
        nondom += !dom;
    }
    for (int k = 0; k < nf; k++) {
        pts[2 * k] = f[2 * front[k]];
        pts[2 * k + 1] = f[2 * front[k] + 1];
    }
    const double ref[2] = {1, 1};
    CHECK(nf == nondom && fabs(slm_nas_hypervolume2(pts, nf, ref) - hg) < 1e-12, "front %d vs %d non-dominated", nf, nondom);
    slm_nas_state_free(&r);

    /* JSON round trip */
    int32_t *order = malloc(sizeof(int32_t) * L * F);
    for (int i = 0; i < L * F; i++) order[i] = F - 1 - i % F;
    cJSON *j1 = slm_nas_state_to_json(&g, NULL, order);
    char *t1 = cJSON_Print(j1);
    slm_nas_state g2;
    int32_t *order2 = NULL;
    cJSON *cfg = NULL;
    if (CHECK(slm_nas_state_from_json(j1, "mem", &g2, &cfg, &order2) == SLM_OK, "from json: %s", slm_last_error())) {
        cJSON *j2 = slm_nas_state_to_json(&g2, cfg, order2);
        char *t2 = cJSON_Print(j2);
        CHECK(strcmp(t1, t2) == 0, "JSON round trip changes the text");
        CHECK(order2 && memcmp(order, order2, sizeof(int32_t) * L * F) == 0, "channel order round trip");
        free(t2);
        cJSON_Delete(j2);
        slm_nas_state_free(&g2);
    }
    /* malformed files are refused with the file's name */
    cJSON *gen = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j1, "evaluated"), 0), "genes");
    cJSON_ReplaceItemInArray(gen, 1, cJSON_CreateNumber(5));
    CHECK(slm_nas_state_from_json(j1, "bad.json", &g2, NULL, NULL) != SLM_OK && strstr(slm_last_error(), "bad.json: "),
          "bad genes: %s", slm_last_error());
    free(order);
    free(order2);
    free(t1);
    cJSON_Delete(j1);
    slm_nas_state_free(&g);
out:
    slm_model_free(m);
}

/* ---- checkpoint / resume ------------------------------------------------------------------ */

typedef struct saver {
    char *json; /* last checkpoint */
    int stop_after;
} saver;

static slm_status save_ckpt(void *user, const slm_nas_state *s) {
    saver *sv = user;
    cJSON *j = slm_nas_state_to_json(s, NULL, NULL);
    free(sv->json);
    sv->json = cJSON_Print(j);
    cJSON_Delete(j);
    if (sv->stop_after && s->n_ev >= sv->stop_after) return slm_fail(SLM_ERR_STATE, "interrupted");
    return SLM_OK;
}

static void test_resume(void) {
    slm_model *m = random_model();
    if (!m) return;
    slm_nas_state a, b, c;
    int calls = 0;
    saver sv = {NULL, 9};
    if (!init_state(&a, false) || !init_state(&b, false)) goto out;
    CHECK(slm_nas_search_run(&a, m, synth_acc, &calls, NULL, NULL) == SLM_OK, "uninterrupted: %s", slm_last_error());
    CHECK(slm_nas_search_run(&b, m, synth_acc, &calls, save_ckpt, &sv) == SLM_ERR_STATE, "stopped");
    slm_nas_state_free(&b);
    cJSON *j = cJSON_Parse(sv.json);
    if (!CHECK(j && slm_nas_state_from_json(j, "ckpt", &c, NULL, NULL) == SLM_OK, "resume state: %s", slm_last_error()))
        goto out_j;
    CHECK(c.n_ev == 9, "checkpoint holds %d evaluations (want 9)", c.n_ev);
    c.params.quiet = true;
    CHECK(slm_nas_search_run(&c, m, synth_acc, &calls, NULL, NULL) == SLM_OK, "resumed: %s", slm_last_error());
    int diff = c.n_ev != a.n_ev;
    for (int i = 0; i < a.n_ev && i < c.n_ev; i++)
        diff += memcmp(a.ev[i].genes, c.ev[i].genes, sizeof(int) * (1 + L)) != 0 || a.ev[i].accuracy != c.ev[i].accuracy ||
                a.ev[i].params != c.ev[i].params || a.ev[i].round != c.ev[i].round ||
                !(a.ev[i].pred_accuracy == c.ev[i].pred_accuracy ||
                  (isnan(a.ev[i].pred_accuracy) && isnan(c.ev[i].pred_accuracy)) ||
                  fabs(a.ev[i].pred_accuracy - c.ev[i].pred_accuracy) < 1e-12);
    CHECK(diff == 0 && a.rng == c.rng, "resumed run differs from the uninterrupted one in %d evaluations", diff);
    slm_nas_state_free(&c);
out_j:
    cJSON_Delete(j);
    slm_nas_state_free(&a);
out:
    free(sv.json);
    slm_model_free(m);
}

int main(void) {
    slm_set_threads(1); /* tiny model: threads only add synchronisation */
    test_search();
    test_resume();
    return slm_test_finish();
}
