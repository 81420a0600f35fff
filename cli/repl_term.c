/*
 * repl_term — the interactive CLI's terminal: libedit for the input line, and output printed
 * above it while it is on screen (repl_int.h, invariant 2).
 *
 * Signals: libedit's own handling is off (EL_SIGNAL 0). SIGINT is blocked in every thread and
 * read by the reactor (rt_signal), so Ctrl+C — which the tty driver turns into SIGINT, ISIG
 * staying on in libedit's edit mode — reaches the main thread as a REV_SIGNAL event like any
 * other, whatever it is doing: editing, answering a question or waiting for a reply.
 *
 * Input: libedit reads characters through getc_fn, which polls the terminal and the event
 * pipe together; events are handled as they come (the screen is updated, el_wgets keeps the
 * line being typed), and getc_fn returns "end of input" when the loop must take over
 * (break_edit: a question, a queued command, leaving). The edit-mode tty settings are changed
 * so that Enter reads as ^M (submit) and Ctrl+J as ^J (a newline in the input), and Alt+Enter
 * (ESC ^M) also inserts a newline; Tab completes slash commands.
 *
 * Output while editing: erase the region (the unfinished output line and the prompt with the
 * input, counting the rows the way libedit lays them out), print, end the unfinished line on a
 * row of its own and let libedit draw the prompt and input again (EL_REFRESH). Streamed text
 * has control characters removed and tabs expanded, so its width is known; an unfinished line
 * is kept to its last screen row (the rows before it are final).
 */
#include "repl_int.h"

#include "chat_session.h"
#include "rt_alloc.h"
#include "rt_util.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

#define PROMPT_IDLE      "\1\033[1m\1❯ \1\033[0m\1"
#define PROMPT_BUSY      "\1\033[2;3m\1⚕ ❯ \1\033[0m\1"
#define PROMPT_IDLE_COLS 2
#define PROMPT_BUSY_COLS 4
#define ANSWER_MAX       4096

static repl *self_of(EditLine *el)
{
    void *p = NULL;
    el_get(el, EL_CLIENTDATA, &p);
    return p;
}

int term_cols(repl *r)
{
    struct winsize ws;
    int c = ioctl(fileno(r->out), TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;
    return c >= 20 ? c : c > 0 ? 20 : 80;
}

/* ============================================================ layout */

/* Advance (row, col) over one character as libedit lays the input out: a wide character
 * that does not fit starts the next row, a full row wraps at once. */
static void advance(int *row, int *col, wchar_t c, int cols)
{
    if (c == L'\n') {
        (*row)++;
        *col = 0;
        return;
    }
    int w;
    if (c == L'\t')
        w = 8 - *col % 8;
    else if (c < 0x20 || c == 0x7f)
        w = 2; /* ^X */
    else
        w = wcwidth(c);
    if (w <= 0)
        return;
    if (*col + w > cols) {
        (*row)++;
        *col = 0;
    }
    *col += w;
    if (*col >= cols) {
        (*row)++;
        *col = 0;
    }
}

/* Rows from the top of the input area to the cursor. */
static int rows_to_cursor(repl *r)
{
    const LineInfoW *li = el_wline(r->el);
    int row = 0, col = r->busy_prompt_shown ? PROMPT_BUSY_COLS : PROMPT_IDLE_COLS;
    for (const wchar_t *p = li->buffer; p < li->cursor; p++)
        advance(&row, &col, *p, r->cols);
    return row;
}

/* Erase the region and print the unfinished output line again: the cursor ends where output
 * continues, as if the input were not there. */
static void region_erase(repl *r)
{
    int up = rows_to_cursor(r) + (r->partial.len ? 1 : 0);
    fputs("\r", r->out);
    if (up > 0)
        fprintf(r->out, "\033[%dA", up);
    fputs("\033[J", r->out);
    if (r->partial.len)
        fwrite(r->partial.data, 1, r->partial.len, r->out);
}

/* Draw the region again below the output. */
static void region_redraw(repl *r)
{
    if (r->partial.len)
        fputs("\r\n", r->out);
    r->busy_prompt_shown = r->busy;
    int cols = term_cols(r);
    if (cols != r->cols) {
        r->cols = cols;
        el_resize(r->el);
    }
    fflush(r->out);
    el_set(r->el, EL_REFRESH);
}

static void begin_output(repl *r)
{
    if (r->editing && !r->erased) {
        region_erase(r);
        r->erased = true;
    }
}

void term_batch_end(repl *r)
{
    if (r->editing && r->erased) {
        r->erased = false;
        region_redraw(r);
    }
    fflush(r->out);
}

/* ============================================================ output */

static void partial_reset(repl *r)
{
    rt_buf_reset(&r->partial);
    r->pcol = 0;
}

void term_endline(repl *r)
{
    begin_output(r);
    if (r->partial.len)
        fputs("\n", r->out);
    partial_reset(r);
}

void term_line(repl *r, const char *fmt, ...)
{
    term_endline(r);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->out, fmt, ap);
    va_end(ap);
    fputs("\n", r->out);
    if (!r->editing)
        fflush(r->out);
}

void term_blank(repl *r)
{
    term_line(r, "%s", "");
}

/* One printable character of streamed text, w columns wide, bytes s[0..n). */
static void put_char(repl *r, const char *s, size_t n, int w)
{
    if (r->pcol + w > r->cols) { /* the terminal wraps before it: the row above is final */
        partial_reset(r);
    }
    fwrite(s, 1, n, r->out);
    if (rt_buf_append(&r->partial, s, n) != 0)
        partial_reset(r); /* cannot happen below 4096 columns */
    r->pcol += w;
    if (r->pcol >= r->cols) {
        /* The row is full and the cursor waits to wrap; end it for good so that nothing we
         * erase later reaches into it. */
        fputs("\r\n", r->out);
        partial_reset(r);
    }
}

void term_text(repl *r, const char *s, size_t n)
{
    begin_output(r);
    if (r->cols <= 0)
        r->cols = term_cols(r);
    mbstate_t st;
    memset(&st, 0, sizeof(st));
    size_t i = 0;
    while (i < n) {
        wchar_t c;
        size_t k = mbrtowc(&c, s + i, n - i, &st);
        if (k == (size_t)-1 || k == (size_t)-2) { /* not UTF-8: skip the byte */
            memset(&st, 0, sizeof(st));
            i++;
            continue;
        }
        if (k == 0)
            k = 1;
        if (c == L'\n') {
            fputs("\n", r->out);
            partial_reset(r);
        } else if (c == L'\t') {
            for (int sp = 8 - r->pcol % 8; sp > 0; sp--)
                put_char(r, " ", 1, 1);
        } else if (c >= 0x20 && c != 0x7f && !(c >= 0x80 && c < 0xa0)) {
            int w = wcwidth(c);
            if (w >= 0)
                put_char(r, s + i, k, w);
        }
        i += k;
    }
    if (!r->editing)
        fflush(r->out);
}

void term_clear_screen(repl *r)
{
    partial_reset(r);
    fputs("\033[H\033[2J\033[3J", r->out);
    fflush(r->out);
}

/* ============================================================ input */

bool term_input_empty(repl *r)
{
    const LineInfoW *li = el_wline(r->el);
    return li->lastchar == li->buffer;
}

static void delete_input(repl *r)
{
    const LineInfoW *li = el_wline(r->el);
    el_cursor(r->el, (int)(li->lastchar - li->cursor));
    li = el_wline(r->el);
    el_wdeletestr(r->el, (int)(li->cursor - li->buffer));
}

void term_clear_input(repl *r)
{
    if (!r->editing)
        return;
    begin_output(r);
    delete_input(r);
}

/* The input line goes aside while the loop asks a question; getc_fn puts it back. */
static void stash_input(repl *r)
{
    const LineInfoW *li = el_wline(r->el);
    size_t n = (size_t)(li->lastchar - li->buffer);
    rt_free(r->stash);
    r->stash = NULL;
    if (n == 0)
        return;
    r->stash = rt_xcalloc(n + 1, sizeof(wchar_t));
    wmemcpy(r->stash, li->buffer, n);
}

/* getc_fn is about to end el_wgets: take the region off the screen. */
static void leave(repl *r)
{
    begin_output(r);
    stash_input(r);
    delete_input(r);
    r->erased = false;
    r->editing = false;
    fflush(r->out);
}

static void restore_stash(repl *r)
{
    begin_output(r);
    el_winsertstr(r->el, r->stash);
    rt_free(r->stash);
    r->stash = NULL;
    term_batch_end(r);
}

/* Decode one character from inbuf: 1 done, 0 need more bytes. */
static int decode(repl *r, wchar_t *wc)
{
    while (r->inlen) {
        mbstate_t st;
        memset(&st, 0, sizeof(st));
        size_t k = mbrtowc(wc, r->inbuf, r->inlen, &st);
        if (k == (size_t)-2 && r->inlen < MB_LEN_MAX)
            return 0;
        if (k == (size_t)-1 || k == (size_t)-2)
            k = 0; /* invalid: drop the byte below */
        else if (k == 0)
            k = 1; /* NUL */
        size_t drop = k ? k : 1;
        memmove(r->inbuf, r->inbuf + drop, r->inlen - drop);
        r->inlen -= drop;
        if (k)
            return 1;
    }
    return 0;
}

/* Read what the terminal has: 1 read something, 0 end of input, -1 retry. */
static int fill(repl *r)
{
    if (r->inlen >= sizeof(r->inbuf))
        return 1;
    ssize_t n = read(0, r->inbuf + r->inlen, sizeof(r->inbuf) - r->inlen);
    if (n > 0) {
        r->inlen += (size_t)n;
        return 1;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return -1;
    return 0;
}

static int getc_fn(EditLine *el, wchar_t *wc)
{
    repl *r = self_of(el);
    if (r->stash)
        restore_stash(r);
    for (;;) {
        if (r->break_edit || r->quit) {
            leave(r);
            return 0;
        }
        if (decode(r, wc))
            return 1;
        struct pollfd p[2] = {{.fd = 0, .events = POLLIN},
                              {.fd = r->bye ? -1 : r->evr, .events = POLLIN}};
        int rc = poll(p, 2, -1);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc <= 0)
            continue;
        if (p[1].revents) {
            repl_drain(r);
            continue;
        }
        if (p[0].revents && fill(r) == 0) {
            r->eof = true;
            leave(r);
            return 0;
        }
    }
}

char *term_read_line(repl *r)
{
    if (r->partial.len) /* the prompt starts on a row of its own */
        fputs("\r\n", r->out);
    r->cols = term_cols(r);
    r->busy_prompt_shown = r->busy;
    r->editing = true;
    r->erased = false;
    int n = 0;
    const wchar_t *w = el_wgets(r->el, &n);
    bool broke = r->break_edit || r->quit;
    r->editing = false;
    r->break_edit = false;
    if (!w || n <= 0) {
        if (!broke && !r->eof) {
            r->eof = true; /* Ctrl+D on an empty line */
            fputs("\n", r->out);
        }
        partial_reset(r);
        fflush(r->out);
        return NULL;
    }
    partial_reset(r); /* that line stays above the input in the scrollback */
    rt_buf b;
    rt_buf_init(&b, REPL_LINE_MAX);
    mbstate_t st;
    memset(&st, 0, sizeof(st));
    bool toolong = false;
    for (int i = 0; i < n && !toolong; i++) {
        char mb[MB_LEN_MAX];
        size_t k = wcrtomb(mb, w[i], &st);
        if (k != (size_t)-1)
            toolong = rt_buf_append(&b, mb, k) != 0;
    }
    if (toolong) {
        term_line(r, "(._.) That input is too long (more than %d bytes); it was not sent.",
                  REPL_LINE_MAX);
        rt_buf_fini(&b);
        return rt_xstrdup("");
    }
    size_t len = 0;
    char *s = rt_buf_steal(&b, &len);
    if (!s)
        return rt_xstrdup("");
    if (len && s[len - 1] == '\n')
        s[--len] = '\0';
    return s;
}

char *term_read_answer(repl *r, int64_t deadline, bool secret)
{
    struct termios saved;
    bool restore = false;
    if (secret && tcgetattr(0, &saved) == 0) {
        struct termios t = saved;
        t.c_lflag &= ~(tcflag_t)ECHO;
        restore = tcsetattr(0, TCSANOW, &t) == 0;
    }
    r->answering = true;
    r->answer_cancel = false;
    char buf[ANSWER_MAX];
    size_t len = 0;
    bool got = false, end = false;
    while (!got && !end) {
        while (r->inlen && !got) { /* typed ahead, or read below */
            char c = r->inbuf[0];
            memmove(r->inbuf, r->inbuf + 1, --r->inlen);
            if (c == '\r' || c == '\n')
                got = true;
            else if ((c == 0x7f || c == 0x08) && len)
                len--;
            else if ((unsigned char)c >= 0x20 && c != 0x7f && len + 1 < sizeof(buf))
                buf[len++] = c;
        }
        int64_t left = deadline - repl_now_ms();
        if (got || r->answer_cancel || r->quit || left <= 0)
            break;
        struct pollfd p[2] = {{.fd = 0, .events = POLLIN},
                              {.fd = r->bye ? -1 : r->evr, .events = POLLIN}};
        int rc = poll(p, 2, left > 1000 ? 1000 : (int)left);
        if (rc <= 0)
            continue;
        if (p[1].revents)
            repl_drain(r);
        if (p[0].revents && fill(r) == 0)
            end = true; /* Ctrl+D: no answer */
    }
    r->answering = false;
    if (restore) {
        (void)tcsetattr(0, TCSANOW, &saved);
        fputs("\n", r->out);
    }
    fflush(r->out);
    if (!got)
        return NULL;
    buf[len] = '\0';
    return rt_xstrdup(buf);
}

/* ============================================================ key bindings */

static unsigned char fn_newline(EditLine *el, int ch)
{
    el_winsertstr(el, L"\n");
    return CC_REFRESH;
}

static void list_matches(repl *r, const char *prefix)
{
    begin_output(r);
    term_endline(r);
    for (const repl_cmd_info *c = repl_cmd_list; c->name; c++)
        if (strncmp(c->name + 1, prefix, strlen(prefix)) == 0)
            term_line(r, "  %-15s - %s", c->name, c->desc);
    term_batch_end(r);
}

/* Tab: complete the slash command being typed at the start of the input. */
static unsigned char fn_complete(EditLine *el, int ch)
{
    repl *r = self_of(el);
    const LineInfoW *li = el_wline(el);
    if (li->buffer == li->lastchar || li->buffer[0] != L'/')
        return CC_NORM;
    char prefix[64];
    size_t n = 0;
    for (const wchar_t *p = li->buffer + 1; p < li->cursor; p++) {
        if (*p <= L' ' || *p > 0x7e || n + 1 >= sizeof(prefix))
            return CC_NORM; /* past the command word, or not a command */
        prefix[n++] = (char)*p;
    }
    prefix[n] = '\0';
    const char *first = NULL;
    size_t common = 0, count = 0;
    for (const repl_cmd_info *c = repl_cmd_list; c->name; c++) {
        const char *name = c->name + 1;
        if (strncmp(name, prefix, n) != 0)
            continue;
        if (!first) {
            first = name;
            common = strlen(name);
        } else {
            size_t k = 0;
            while (k < common && first[k] == name[k])
                k++;
            common = k;
        }
        count++;
    }
    if (!count)
        return CC_REFRESH_BEEP;
    if (count > 1 && common <= n) {
        list_matches(r, prefix);
        return CC_NORM;
    }
    char add[64];
    size_t k = 0;
    for (size_t i = n; i < common && k + 2 < sizeof(add); i++)
        add[k++] = first[i];
    if (count == 1 && li->cursor == li->lastchar)
        add[k++] = ' ';
    add[k] = '\0';
    el_insertstr(el, add);
    return CC_REFRESH;
}

static char *prompt_fn(EditLine *el)
{
    repl *r = self_of(el);
    static char idle[] = PROMPT_IDLE, busy[] = PROMPT_BUSY;
    return r->busy_prompt_shown ? busy : idle;
}

int term_init(repl *r)
{
    r->out = stdout;
    rt_buf_init(&r->partial, REPL_PARTIAL_MAX);
    r->el = el_init("hermes", stdin, stdout, stderr);
    if (!r->el)
        return -EIO;
    el_set(r->el, EL_CLIENTDATA, r);
    el_set(r->el, EL_EDITOR, "emacs");
    el_set(r->el, EL_SIGNAL, 0);
    el_set(r->el, EL_PROMPT_ESC, prompt_fn, '\1');
    el_set(r->el, EL_GETCFN, getc_fn);
    r->hist = history_init();
    HistEvent ev;
    history(r->hist, &ev, H_SETSIZE, 1000);
    history(r->hist, &ev, H_SETUNIQUE, 1);
    el_set(r->el, EL_HIST, history, r->hist);
    (void)el_source(r->el, NULL); /* the user's ~/.editrc, if any; our keys below win */
    /* Enter reads as ^M and Ctrl+J as ^J, so that they can differ. */
    el_set(r->el, EL_SETTY, "-d", "-icrnl", "-inlcr", NULL);
    /* The wide call: libedit keeps these pointers as they are (the narrow el_set would leak
     * the wide copies it makes of them). */
    el_wset(r->el, EL_ADDFN, L"hermes-newline", L"insert a newline into the input", fn_newline);
    el_wset(r->el, EL_ADDFN, L"hermes-complete", L"complete a slash command", fn_complete);
    el_set(r->el, EL_BIND, "^M", "ed-newline", NULL);
    el_set(r->el, EL_BIND, "^J", "hermes-newline", NULL);
    el_set(r->el, EL_BIND, "^[^M", "hermes-newline", NULL);
    el_set(r->el, EL_BIND, "^[^J", "hermes-newline", NULL);
    el_set(r->el, EL_BIND, "^I", "hermes-complete", NULL);
    r->cols = term_cols(r);
    return 0;
}

void term_fini(repl *r)
{
    if (r->el)
        el_end(r->el);
    if (r->hist)
        history_end(r->hist);
    r->el = NULL;
    r->hist = NULL;
    rt_free(r->stash);
    r->stash = NULL;
    rt_buf_fini(&r->partial);
    fflush(r->out);
}
