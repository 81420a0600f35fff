/*
 * ak_event — what adapters do to a neutral event before it goes to the gateway.
 *
 * Threads: pure functions on a message the caller owns, any thread.
 */
#ifndef AK_EVENT_H
#define AK_EVENT_H

#include "gw.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * Attach the downloaded files of a message to ev: paths[i] for each i < n with ok[i] is
 * moved into ev->media (the slot is set to NULL), and ev->kind follows the first file's MIME
 * type (mimes[0], may be NULL): image/ photo, audio/ voice, video/ video, else document.
 * Nothing changes when no file is ok.
 */
void ak_event_attach(gw_msg_event *ev, char **paths, char *const *mimes, const bool *ok, size_t n);

#endif /* AK_EVENT_H */
