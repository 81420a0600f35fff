/*
 * redact — mask API keys, tokens and passwords in text before a model or a log sees it
 * (agent-core §4.5, the original's agent/redact.py).
 *
 * Five passes, in the original's order, each over the previous pass's output:
 *   1. known key prefixes, case-sensitive, as whole tokens (not inside a longer
 *      [A-Za-z0-9_-] run): sk-, ghp_, github_pat_, xox[baprs]-, AIza, pplx-, fal_, fc-,
 *      bb_live_, gAAAA, each followed by a minimum run of token characters;
 *   2. NAME=value where NAME (a run of letters and '_') contains API_KEY, APIKEY, TOKEN,
 *      SECRET, PASSWORD, PASSWD, CREDENTIAL or AUTH (any case); the value is the next
 *      non-blank run, optionally quoted; the text becomes NAME=<mask> (blanks around '='
 *      are dropped, quotes kept);
 *   3. JSON fields "apiKey"/"api_key"/"token"/"secret"/"password"/"access_token"/
 *      "refresh_token"/"auth_token"/"bearer" (any case) with a non-empty string value;
 *   4. "Authorization: Bearer <value>" (any case);
 *   5. Telegram bot tokens: [bot]<8+ digits>:<30+ [-A-Za-z0-9_]> → [bot]<digits>:***.
 * The mask of a value is "***" below 18 characters, else its first 6 and last 4
 * characters around "..." (characters are UTF-8 code points).
 *
 * The matching follows the original's regular expressions exactly (leftmost match,
 * greedy runs with the backtracking those expressions allow), written out by hand so the
 * module is pure C: no global state, no locale, linear in the input (fuzz-friendly).
 *
 * Threads: any thread; re-entrant.
 */
#ifndef REDACT_H
#define REDACT_H

#include <stddef.h>

/*
 * Return a new heap string (free with rt_free) holding text with every secret masked.
 * text is borrowed and may hold any bytes (invalid UTF-8 passes through unchanged). NULL
 * in gives NULL out. Cost: five linear passes; no pass more than doubles the text.
 */
char *redact_secrets(const char *text);

/*
 * The mask of one secret value of n bytes: "***" when it has fewer than 18 code points,
 * else its first 6 and last 4 code points around "...". Writes a NUL-terminated string
 * into out (outlen >= 48 always suffices for the long form); returns out.
 */
const char *redact_mask(const char *value, size_t n, char *out, size_t outlen);

#endif /* REDACT_H */
