/*
 * ak_event — what adapters do to a neutral event before it goes to the gateway (ak_event.h).
 */
#include "ak_event.h"

#include "rt_alloc.h"

#include <string.h>

void ak_event_attach(gw_msg_event *ev, char **paths, char *const *mimes, const bool *ok, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ok[i];
    if (!k)
        return;
    ev->media = rt_xcalloc(k, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        ev->media[ev->nmedia++] = paths[i];
        paths[i] = NULL;
    }
    const char *m = mimes[0] ? mimes[0] : "";
    ev->kind = strncmp(m, "image/", 6) == 0   ? GW_KIND_PHOTO
               : strncmp(m, "audio/", 6) == 0 ? GW_KIND_VOICE
               : strncmp(m, "video/", 6) == 0 ? GW_KIND_VIDEO
                                              : GW_KIND_DOCUMENT;
}
