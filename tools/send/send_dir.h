/*
 * send_dir — where send_message can send: target parsing and the channel directory, as the
 * original's tools/send_message_tool.py and gateway/channel_directory.py have them
 * (gateway.md §11.5).
 *
 * The directory is ~/.hermes/channel_directory.json when a gateway wrote one; otherwise it is
 * built the way the original builds it for platforms that cannot list their channels (Matrix,
 * Mattermost, …): every chat a session came from, from sessions/sessions.json.
 *
 * Threads: any thread; send_directory reads files (blocking).
 */
#ifndef SEND_DIR_H
#define SEND_DIR_H

#include <cjson/cJSON.h>
#include <stdbool.h>

/* The platforms send_message knows (the original's platform_map keys, in its order),
 * NULL-terminated. */
extern const char *const send_platforms[];
bool send_platform_known(const char *platform);

/*
 * The original's _parse_target_ref: is ref an explicit chat address on platform? Telegram
 * and Discord "<id>[:<thread>]" (numeric), any numeric id, Matrix room ids ("!…") and user ids
 * ("@…"), and (a fix) Mattermost's 26-character channel ids. On true, *chat_id and
 * *thread_id (may be NULL) are new strings.
 */
bool send_parse_ref(const char *platform, const char *ref, char **chat_id, char **thread_id);

/* The directory {"updated_at", "platforms": {name: [{id, name, type, thread_id}]}}: a new
 * object, never NULL (empty when nothing is known). */
cJSON *send_directory(const char *home);

/* format_directory_for_display: the text send_message(action='list') returns. New string. */
char *send_directory_display(const cJSON *dir);

/* resolve_channel_name: a chat's id by its name ("#general", "general (group)", a unique
 * prefix) or by its id; NULL when none matches. New string. */
char *send_resolve_name(const cJSON *dir, const char *platform, const char *name);

/* The home-channel variable of a platform: MATRIX_HOME_ROOM, MATTERMOST_HOME_CHANNEL,
 * <PLATFORM>_HOME_CHANNEL (gateway.md §6.1). Writes buf and returns it. */
const char *send_home_var(const char *platform, char *buf, size_t n);

#endif /* SEND_DIR_H */
