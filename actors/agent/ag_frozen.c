/*
 * ag_frozen — the transcript as the model sees it (see ag_frozen.h).
 */
#include "ag_frozen.h"

#include "rt_alloc.h"

#include <stdatomic.h>
#include <stdbool.h>

struct ag_frozen {
    _Atomic size_t refs;
    cJSON *msgs; /* array of deep copies, never written after the run is made */
};

static ag_frozen *run_new(void)
{
    ag_frozen *f = rt_xcalloc(1, sizeof(*f));
    atomic_init(&f->refs, 1);
    f->msgs = cJSON_CreateArray();
    return f;
}

static ag_frozen *run_ref(ag_frozen *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

static void run_unref(ag_frozen *f)
{
    /* acq_rel: whoever frees the run sees every other holder's reads done. */
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        cJSON_Delete(f->msgs);
        rt_free(f);
    }
}

static void add_copy(ag_frozen *f, const cJSON *m, const char *strip)
{
    cJSON *c = cJSON_Duplicate(m, 1);
    if (strip)
        cJSON_DeleteItemFromObjectCaseSensitive(c, strip);
    cJSON_AddItemToArray(f->msgs, c);
}

void ag_frozen_reset(ag_frozen ***runs, size_t *nruns, int *upto)
{
    for (size_t i = 0; i < *nruns; i++)
        run_unref((*runs)[i]);
    rt_free(*runs);
    *runs = NULL;
    *nruns = 0;
    *upto = 0;
}

ag_frozen_keep *ag_frozen_refer(ag_frozen ***runs, size_t *nruns, int *upto,
                                const cJSON *transcript, const char *strip, cJSON *out)
{
    int n = cJSON_GetArraySize(transcript);
    if (*upto < 0 || *upto > n)
        ag_frozen_reset(runs, nruns, upto);
    if (n > *upto) {
        /* Too many runs: one new run with everything, so requests stay cheap to keep. */
        bool merge = *nruns >= AG_FROZEN_MAX_RUNS;
        ag_frozen *f = run_new();
        const cJSON *m = transcript->child;
        for (int i = 0; m && i < n; i++, m = m->next)
            if (merge || i >= *upto)
                add_copy(f, m, strip);
        if (merge)
            ag_frozen_reset(runs, nruns, upto);
        *runs = rt_xrealloc(*runs, (*nruns + 1) * sizeof(**runs));
        (*runs)[(*nruns)++] = f;
        *upto = n;
    }
    if (!*nruns)
        return NULL;
    ag_frozen_keep *k = rt_xcalloc(1, sizeof(*k));
    k->runs = rt_xcalloc(*nruns, sizeof(*k->runs));
    for (size_t i = 0; i < *nruns; i++) {
        k->runs[k->n++] = run_ref((*runs)[i]);
        const cJSON *m;
        cJSON_ArrayForEach(m, (*runs)[i]->msgs)
            cJSON_AddItemToArray(out, cJSON_CreateObjectReference(m->child));
    }
    return k;
}

void ag_frozen_keep_drop(void *keep)
{
    ag_frozen_keep *k = keep;
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++)
        run_unref(k->runs[i]);
    rt_free(k->runs);
    rt_free(k);
}
