/* LINAS-style multi-objective search over a slm_nas_space (LLaMA-NAS,
 * Sarah et al. 2024; LINAS, Cummings et al. 2022):
 *
 *   1. the full model is measured once as the reference;
 *   2. n_init sub-networks drawn uniformly at random are evaluated for real;
 *   3. each round: predictors (ridge or RBF SVR, chosen by K-fold MAPE,
 *      predict.h) are fitted on everything evaluated, for accuracy and, when
 *      the second objective is throughput, for tokens/s (parameters are
 *      computed exactly); an inner NSGA-II (nsga2.h: population 50, SBX p
 *      0.9 eta 15, PM p 0.02 eta 20) runs on the predicted objectives, seeded
 *      with the evaluated Pareto set; the per_round members of its final
 *      population with the best (rank, crowding) that were never evaluated
 *      are evaluated for real;
 *   until `evals` sub-networks have been evaluated. The random baseline
 *   (params.random) evaluates the same number drawn uniformly at random.
 *
 * A real evaluation applies the sub-network's plan to the model (no copy),
 * counts parameters / weight bytes / MACs, measures prefill throughput
 * (tput_tokens tokens in one decode call, best of tput_reps, tokens/s) and
 * calls the accuracy function (the CLI runs the zero-shot harness on a task
 * subset), then restores the full plan.
 *
 * Objectives, all minimised inside: (x, 1 - accuracy) with x = params /
 * reference params, or x = reference tokens/s / tokens/s. The same
 * normalisation gives the hypervolume against (1, 1): the area a front
 * dominates between zero accuracy and the full model's size (or speed).
 *
 * The state is checkpointed after every real evaluation through a
 * callback (the CLI writes search_json.c's JSON atomically); a resumed
 * state continues where it stopped, with the same random stream.
 */
#ifndef SLM_NAS_SEARCH_H
#define SLM_NAS_SEARCH_H

#include "nas/predict.h"
#include "nas/space.h"

typedef enum slm_nas_objective {
    SLM_NAS_OBJ_PARAMS = 0, /* (params, accuracy) */
    SLM_NAS_OBJ_THROUGHPUT  /* (tokens/s, accuracy) */
} slm_nas_objective;
const char *slm_nas_objective_name(slm_nas_objective o); /* "params,accuracy", "throughput,accuracy" */
slm_status slm_nas_objective_parse(const char *s, slm_nas_objective *out);

typedef struct slm_nas_params {
    slm_nas_objective objective;
    int evals;        /* real evaluations, the reference not counted (250) */
    int n_init;       /* random ones before the predictors take over (0: evals / 5; at least 3) */
    int per_round;    /* candidates evaluated per round (0: max(1, evals / 10)) */
    int population;   /* inner NSGA-II population (50) */
    int generations;  /* inner NSGA-II generations per round (100) */
    int folds;        /* predictor cross-validation folds (5) */
    bool random;      /* random search: every evaluation drawn at random */
    uint64_t seed;
    int tput_tokens;  /* tokens per throughput measurement (128; 0: not measured) */
    int tput_reps;    /* best of (3) */
    bool quiet;
} slm_nas_params;
slm_nas_params slm_nas_default_params(void);

/* One sub-network evaluated for real. */
typedef struct slm_nas_eval {
    int *genes;            /* [1 + L] canonical */
    int *widths;           /* [L] MLP width, 0 = dropped */
    int n_blocks;
    int64_t params, bytes, macs;
    double accuracy;
    double loss;           /* extra measurement of the accuracy function (e.g. calibration NLL), NAN if none */
    double tokens_per_s;   /* NAN when not measured */
    double seconds;        /* wall time of the evaluation */
    int round;             /* -1 reference, 0 initial / random, r >= 1 predictor round */
    double pred_accuracy;  /* what the predictor said when it was chosen (NAN: random) */
    double pred_tps;
} slm_nas_eval;

/* A candidate chosen by a round and not evaluated yet. */
typedef struct slm_nas_pending {
    int *genes;
    double pred_accuracy, pred_tps;
} slm_nas_pending;

/* Predictor fits of one round. */
typedef struct slm_nas_fit {
    int round, n_points;
    slm_pred_kind acc_kind;
    slm_pred_report acc;
    slm_pred_kind tps_kind; /* throughput objective only */
    slm_pred_report tps;
} slm_nas_fit;

typedef struct slm_nas_state {
    slm_nas_space space;   /* owned */
    slm_nas_params params;
    bool have_ref;
    slm_nas_eval ref;
    slm_nas_eval *ev;
    int n_ev, cap_ev;
    slm_nas_pending *pend;
    int n_pend, cap_pend;
    slm_nas_fit *fits;
    int n_fits, cap_fits;
    int round;
    uint64_t rng;
} slm_nas_state;

/* A fresh state; takes ownership of *space (cleared). */
slm_status slm_nas_state_init(slm_nas_state *s, slm_nas_space *space, const slm_nas_params *p);
void slm_nas_state_free(slm_nas_state *s);

/* Accuracy of m with its current plan (higher is better); *loss may be
 * set to a side measurement that is recorded but not optimised (it is NAN
 * on entry). */
typedef slm_status (*slm_nas_accuracy_fn)(void *user, const slm_model *m, double *accuracy, double *loss);
/* Called after every real evaluation (and once at the start); a failure
 * stops the search. */
typedef slm_status (*slm_nas_checkpoint_fn)(void *user, const slm_nas_state *s);

/* Runs (or resumes) the search on m until s->params.evals sub-networks are
 * evaluated; m's plan is full again on return. */
slm_status slm_nas_search_run(slm_nas_state *s, slm_model *m, slm_nas_accuracy_fn acc, void *acc_user,
                              slm_nas_checkpoint_fn ckpt, void *ckpt_user);

/* Evaluates one architecture (widths[L]) for real. */
slm_status slm_nas_evaluate(slm_model *m, const int *widths, const slm_nas_params *p, slm_nas_accuracy_fn acc,
                            void *acc_user, slm_nas_eval *out);
/* Prefill throughput of m: tokens/s of the best of reps decodes of n tokens. */
slm_status slm_nas_throughput(const slm_model *m, int n, int reps, double *tps);

/* Grows *v (elements of elem bytes, capacity *cap) to hold need. */
slm_status slm_nas_grow(void **v, int *cap, int need, size_t elem);

/* ---- results ------------------------------------------------------------------------- */

/* The normalised objective pair of e (see above) against the reference. */
void slm_nas_objectives(const slm_nas_state *s, const slm_nas_eval *e, double f[2]);
/* Indices of the evaluated set's Pareto front (by the normalised
 * objectives), sorted by size/speed; returns the count (-1: no memory). */
int slm_nas_front(const slm_nas_state *s, int *idx);
/* Hypervolume of the evaluated set against (1, 1) in normalised objectives. */
double slm_nas_state_hypervolume(const slm_nas_state *s);
/* prob[L][n_widths + 1]: among the front members, the fraction of those
 * keeping block i at width index w (last column: dropped). */
void slm_nas_width_probability(const slm_nas_state *s, const int *front, int n_front, double *prob);

#endif
