/* SVG plot of NAS results (report.h): size or throughput against accuracy,
 * every evaluated sub-network as a faint dot, each state's Pareto front as
 * ringed dots joined by its attainment (step) line, the full model as a
 * black diamond. Plain SVG 1.1, no scripts, readable in any browser. */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"
#include "nas/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->failed = true;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + (size_t)k + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* Text with &, <, >, " escaped. */
static void sb_text(sbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        default: sb_printf(b, "%c", *s);
        }
    }
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about n ticks. */
static double nice_step(double range, int n) {
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static double x_of(const slm_nas_state *s, const slm_nas_eval *e) {
    return s->params.objective == SLM_NAS_OBJ_THROUGHPUT ? e->tokens_per_s : (double)e->params / 1e6;
}

/* Data -> pixel mapping of the plot area. */
typedef struct axes {
    double x0, x1, y0, y1, ml, mt, pw, ph;
} axes;
static double px(const axes *a, double v) { return a->ml + (v - a->x0) / (a->x1 - a->x0) * a->pw; }
static double py(const axes *a, double v) { return a->mt + a->ph - (v - a->y0) / (a->y1 - a->y0) * a->ph; }

static const char *const k_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

char *slm_nas_svg(const slm_nas_state *const *states, const char *const *names, int n, const char *title) {
    const double W = 760, H = 500, ml = 75, mr = 25, mt = 45, mb = 60;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        const slm_nas_state *s = states[i];
        for (int k = -1; k < s->n_ev; k++) {
            const slm_nas_eval *e = k < 0 ? &s->ref : &s->ev[k];
            if (k < 0 && !s->have_ref) continue;
            double x = x_of(s, e);
            if (!isfinite(x) || !isfinite(e->accuracy)) continue;
            x0 = fmin(x0, x);
            x1 = fmax(x1, x);
            y0 = fmin(y0, e->accuracy);
            y1 = fmax(y1, e->accuracy);
        }
    }
    if (!(x1 >= x0)) x0 = 0, x1 = 1;
    if (!(y1 >= y0)) y0 = 0, y1 = 1;
    double dx = (x1 - x0) > 0 ? (x1 - x0) : fabs(x0) * 0.1 + 1, dy = (y1 - y0) > 0 ? (y1 - y0) : 0.05;
    x0 -= 0.06 * dx;
    x1 += 0.06 * dx;
    y0 -= 0.08 * dy;
    y1 += 0.12 * dy; /* room for the legend */
    double pw = W - ml - mr, ph = H - mt - mb;
    const axes ax = {x0, x1, y0, y1, ml, mt, pw, ph};
    sbuf b = {0};
    sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              W, H, W, H);
    sb_printf(&b, "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
    sb_text(&b, title);
    sb_printf(&b, "</text>\n");
    /* grid and ticks */
    double sx = nice_step(x1 - x0, 6), sy = nice_step(y1 - y0, 6);
    for (double t = ceil(x0 / sx) * sx; t <= x1 + 1e-12; t += sx) {
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", px(&ax, t), mt, px(&ax, t), mt + ph);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", px(&ax, t), mt + ph + 16, t);
    }
    for (double t = ceil(y0 / sy) * sy; t <= y1 + 1e-12; t += sy) {
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", ml, py(&ax, t), ml + pw, py(&ax, t));
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", ml - 6, py(&ax, t) + 4, t);
    }
    sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", ml, mt, pw, ph);
    bool tput = n > 0 && states[0]->params.objective == SLM_NAS_OBJ_THROUGHPUT;
    sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", ml + pw / 2, H - 18,
              tput ? "prefill throughput (tokens/s)" : "parameters (millions)");
    sb_printf(&b, "<text transform=\"translate(18,%.1f) rotate(-90)\" text-anchor=\"middle\">accuracy</text>\n", mt + ph / 2);
    /* each state: dots, then its front */
    for (int i = 0; i < n; i++) {
        const slm_nas_state *s = states[i];
        const char *col = k_colors[i % 6];
        for (int k = 0; k < s->n_ev; k++) {
            double x = x_of(s, &s->ev[k]);
            if (isfinite(x))
                sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\" fill-opacity=\"0.35\"/>\n", px(&ax, x),
                          py(&ax, s->ev[k].accuracy), col);
        }
        int *front = malloc(((size_t)s->n_ev + 1) * sizeof *front);
        int nf = front && s->have_ref ? slm_nas_front(s, front) : 0;
        if (nf > 0) {
            sb_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", col);
            for (int k = 0; k < nf; k++) {
                const slm_nas_eval *e = &s->ev[front[k]];
                if (k) sb_printf(&b, "%.1f,%.1f ", px(&ax, x_of(s, e)), py(&ax, s->ev[front[k - 1]].accuracy));
                sb_printf(&b, "%.1f,%.1f ", px(&ax, x_of(s, e)), py(&ax, e->accuracy));
            }
            sb_printf(&b, "\"/>\n");
            for (int k = 0; k < nf; k++) {
                const slm_nas_eval *e = &s->ev[front[k]];
                sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.8\"/>\n",
                          px(&ax, x_of(s, e)), py(&ax, e->accuracy), col);
            }
        }
        free(front);
        /* legend row */
        double ly = mt + 16 + 18 * i;
        sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.8\"/>\n", ml + 14, ly,
                  col);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\">", ml + 26, ly + 4);
        sb_text(&b, names && names[i] ? names[i] : "search");
        sb_printf(&b, " (%d evaluated, %d on the front, hypervolume %.4f)</text>\n", s->n_ev, nf,
                  slm_nas_state_hypervolume(s));
    }
    /* the full model (of the first state) */
    if (n > 0 && states[0]->have_ref && isfinite(x_of(states[0], &states[0]->ref))) {
        double x = px(&ax, x_of(states[0], &states[0]->ref)), y = py(&ax, states[0]->ref.accuracy);
        sb_printf(&b, "<path d=\"M %.1f %.1f l 7 7 l -7 7 l -7 -7 z\" fill=\"black\"/>\n", x, y - 7);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">full model</text>\n", x - 10, y + 4);
        double ly = mt + 16 + 18 * n;
        sb_printf(&b, "<path d=\"M %.1f %.1f l 6 6 l -6 6 l -6 -6 z\" fill=\"black\"/>\n", ml + 14, ly - 6);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\">full model (reference)</text>\n", ml + 26, ly + 4);
    }
    sb_printf(&b, "</svg>\n");
    if (b.failed) {
        free(b.p);
        slm_fail(SLM_ERR_NOMEM, "SVG: out of memory");
        return NULL;
    }
    return b.p;
}
