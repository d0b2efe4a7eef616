/* NSGA-II (Deb, Pratap, Agarwal, Meyarivan 2002) for LLaMA-NAS's search:
 * fast non-dominated sorting, crowding distance, binary tournament on
 * (rank, crowding), SBX crossover and polynomial mutation in Deb's bounded
 * forms, optional integer variables, duplicate elimination, and the 2-D
 * hypervolume used to compare fronts. Every objective is minimised.
 *
 * Variation (per pair of parents, as Deb's reference code and pymoo do):
 *   SBX with probability p_crossover (0.9): each variable is recombined with
 *     probability 0.5 (spread factor from eta_c = 15, bounded form), and the
 *     two children swap that variable with probability 0.5;
 *   polynomial mutation of each child variable with probability p_mutation
 *     (0.02; <= 0 means 1/n_var), bounded form with eta_m = 20.
 * Integer variables (problem.integer) follow DyNAS-T / pymoo's int_sbx and
 * int_pm: the operators run on the real interval widened by 0.5 - 1e-9 on
 * each side, so every integer has an equal share, and children are rounded.
 *
 * Duplicates: a child equal (after the problem's canon, when given) to a
 * member of the parent population, to an earlier child, or excluded by the
 * problem (e.g. already evaluated for real) is drawn again from new parents,
 * up to dup_retries times; after that one of its variables is reset
 * uniformly at random and it is tried again (a small space may hold fewer
 * new points than the population: after dup_retries resets it is kept).
 *
 * Randomness: one splitmix64 state (a single uint64, so a search can save it
 * and resume exactly).
 */
#ifndef SLM_NAS_NSGA2_H
#define SLM_NAS_NSGA2_H

#include "slimlm.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- random numbers ----------------------------------------------------------------- */

uint64_t slm_nas_rng_next(uint64_t *state);
/* Uniform in [0, 1). */
double slm_nas_rng_uniform(uint64_t *state);
/* Uniform integer in [0, n), n >= 1. */
int slm_nas_rng_int(uint64_t *state, int n);

/* ---- building blocks ------------------------------------------------------------------ */

/* true when a dominates b (<= in every objective, < in one); a, b [m]. */
bool slm_nsga2_dominates(const double *a, const double *b, int m);
/* rank[i] = index of the non-dominated front of point i (0 = best) among
 * f[n][m]. Returns the number of fronts, or -1 when out of memory. */
int slm_nsga2_sort(const double *f, int n, int m, int *rank);
/* Crowding distance of the k points idx[0..k) of one front (f[n][m]);
 * crowd is indexed by point (crowd[idx[j]]). Boundary points get INFINITY;
 * an objective with no spread adds nothing. */
void slm_nsga2_crowding(const double *f, int m, const int *idx, int k, double *crowd);
/* Hypervolume of the points f[n][2] against ref (both minimised): the area
 * dominated by the set and bounded by ref. Points not strictly better than
 * ref in both objectives add nothing. */
double slm_nas_hypervolume2(const double *f, int n, const double ref[2]);
/* Indices of the non-dominated points of f[n][m] (duplicates of a kept
 * point are dropped) written to idx, sorted by the first objective;
 * returns their number (-1: out of memory). */
int slm_nas_pareto_front(const double *f, int n, int m, int *idx);

/* ---- the algorithm -------------------------------------------------------------------- */

typedef struct slm_nsga2_problem {
    int n_var, n_obj;
    const double *lo, *hi; /* [n_var] bounds (inclusive) */
    bool integer;          /* every variable is an integer */
    /* f[n][n_obj] of x[n][n_var] */
    slm_status (*evaluate)(void *user, const double *x, int n, double *f);
    /* optional: a canonical copy of x used to find duplicates (e.g. genes of
     * dropped blocks cleared); NULL compares x itself */
    void (*canon)(void *user, const double *x, double *out);
    /* optional: true when x must not be produced (already evaluated) */
    bool (*excluded)(void *user, const double *x);
    void *user;
} slm_nsga2_problem;

typedef struct slm_nsga2_params {
    int pop_size;       /* 50 */
    int generations;    /* 100 */
    double p_crossover; /* 0.9 */
    double eta_c;       /* 15 */
    double p_mutation;  /* 0.02 per variable; <= 0: 1/n_var */
    double eta_m;       /* 20 */
    int dup_retries;    /* 20 */
} slm_nsga2_params;
slm_nsga2_params slm_nsga2_default_params(void);

typedef struct slm_nsga2_result {
    int n;          /* population size at the end */
    double *x;      /* [n][n_var] */
    double *f;      /* [n][n_obj] */
    int *rank;      /* [n] front index */
    double *crowd;  /* [n] crowding distance within its front */
    int64_t evaluations;
} slm_nsga2_result;
void slm_nsga2_result_free(slm_nsga2_result *r);

/* Runs NSGA-II from n_init given points (may be 0; more than pop_size are
 * cut) completed by uniform random ones, for params.generations
 * generations; *rng is advanced. The result holds the final population,
 * sorted by (rank, -crowding). */
slm_status slm_nsga2_run(const slm_nsga2_problem *p, const slm_nsga2_params *pp, const double *init_x, int n_init,
                         uint64_t *rng, slm_nsga2_result *out);

#endif
