/*
 * ag_frozen — the transcript as the model sees it, copied once and shared by every request.
 *
 * A model call used to deep-copy the whole transcript into its request (the request crosses
 * to the provider actor while the session goes on), which made a conversation's calls
 * O(n^2) in its length. Instead the session freezes its transcript in runs: a run is an
 * immutable, reference-counted array of deep copies of consecutive messages (our bookkeeping
 * removed), made once, when a call first needs those messages. A request's messages are
 * reference items (cJSON_CreateObjectReference) into the runs, and the request holds a
 * reference to each run until it is dropped, so nothing it points to is freed or changed
 * under it; a call copies only what was appended since the previous one.
 *
 * The session's transcript may only grow by appending while runs describe it; any other
 * change (undo, retry, compression, a reload) drops the runs (ag_frozen_reset) and the next
 * call freezes the transcript afresh. Runs are merged into one when there are more than
 * AG_FROZEN_MAX_RUNS, so a request holds a bounded number of references.
 *
 * Threads: runs are made by the session; a run's reference count is atomic, so the last
 * reference may be dropped on the provider's thread. A run's contents are never written
 * after it is made.
 */
#ifndef AG_FROZEN_H
#define AG_FROZEN_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define AG_FROZEN_MAX_RUNS 32

typedef struct ag_frozen ag_frozen;

/* What a request keeps alive: references to runs. Free with ag_frozen_keep_drop. */
typedef struct ag_frozen_keep {
    ag_frozen **runs;
    size_t n;
} ag_frozen_keep;

/*
 * Bring the runs (*runs, *nruns) up to date with transcript, which has grown by appending
 * since *upto messages were frozen (*upto < 0 or larger than the transcript: start over),
 * then append a reference item for every message to out, in order, and return what out's
 * owner must keep alive (NULL when transcript is empty). strip: a member name removed from
 * the copies (our bookkeeping), or NULL.
 */
ag_frozen_keep *ag_frozen_refer(ag_frozen ***runs, size_t *nruns, int *upto,
                                const cJSON *transcript, const char *strip, cJSON *out);

/* Drop every run of the session (the transcript changed other than by appending). */
void ag_frozen_reset(ag_frozen ***runs, size_t *nruns, int *upto);

/* Release what a request kept alive (the drop hook of llm_msg_request). NULL-safe. */
void ag_frozen_keep_drop(void *keep);

#endif /* AG_FROZEN_H */
