/* Text generation: sliding-window inference with temperature and top-p sampling (see textgen.h). */
#include "app/textgen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "randygpt/text.h"

int rg_encode(const rg_vocab *vocab, const uint8_t *text, size_t n, int32_t *tokens, char *err,
              size_t err_len) {
    for (size_t i = 0; i < n; i++) {
        int tok = vocab->token[text[i]];
        if (tok < 0) {
            int c = text[i];
            char shown[8] = "";
            if (c >= 32 && c < 127) snprintf(shown, sizeof shown, " '%c'", c);
            rg_errf(err, err_len, "prompt byte 0x%02x%s at offset %zu is not in the model's "
                    "vocabulary of %d bytes", c, shown, i, vocab->V);
            return -1;
        }
        tokens[i] = tok;
    }
    return 0;
}

typedef struct ranked {
    double p;
    int tok;
} ranked;

static int by_prob_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->tok - y->tok;  /* ties in token order, so a draw is reproducible */
}

int rg_sample_token(const float *logits, int V, float temperature, float top_p, rg_rng *rng) {
    ranked r[256];
    int best = 0;
    for (int i = 1; i < V; i++) best = logits[i] > logits[best] ? i : best;
    if (temperature == 0) return best;  /* greedy: the first most likely token, no draw */
    double mx = logits[best];
    double sum = 0;
    for (int i = 0; i < V; i++) {
        r[i].p = exp((logits[i] - mx) / temperature);
        r[i].tok = i;
        sum += r[i].p;
    }
    qsort(r, (size_t)V, sizeof r[0], by_prob_desc);
    int keep = 0;
    double kept = 0;
    while (keep < V && (keep == 0 || kept < top_p * sum)) kept += r[keep++].p;
    double u = rg_rng_uniform(rng) * kept;
    for (int i = 0; i < keep; i++) {
        u -= r[i].p;
        if (u < 0) return r[i].tok;
    }
    return r[keep - 1].tok;
}

int rg_generate(rg_model *m, rg_ops *ops, const rg_vocab *vocab, const int32_t *context, int len,
                int n_new, float temperature, float top_p, rg_rng *rng, FILE *out, char *err,
                size_t err_len) {
    int maxT = m->cfg.maxT, V = m->cfg.V;
    if (m->B < 1 || m->T < maxT) {
        if (rg_model_set_batch(m, 1, maxT, err, err_len) != 0) return -1;
    }
    /* window holds the last maxT tokens */
    int32_t *window = malloc((size_t)maxT * sizeof *window);
    if (!window) {
        rg_errf(err, err_len, "out of memory for the generation window");
        return -1;
    }
    int T = len < maxT ? len : maxT;
    memcpy(window, context + (len - T), (size_t)T * sizeof *window);
    for (int k = 0; k < n_new; k++) {
        rg_model_forward(m, ops, window, NULL, 1, T);
        int tok = rg_sample_token(m->acts.logits + (size_t)(T - 1) * V, V, temperature, top_p, rng);
        if (fputc(vocab->bytes[tok], out) == EOF) break; /* reported below */
        if (T == maxT) {
            memmove(window, window + 1, (size_t)(maxT - 1) * sizeof *window);
            T--;
        }
        window[T++] = tok;
    }
    free(window);
    if (fflush(out) != 0 || ferror(out)) {
        rg_errf(err, err_len, "cannot write the generated text: %s", strerror(errno));
        return -1;
    }
    return 0;
}
