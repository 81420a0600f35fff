/*
 * ft_tool — what the four file tools (read_file, write_file, patch, search_files) share at
 * the tool level: the path arguments in the session's terms, and the "step" message by
 * which a long job (a search, a linter run) is cut into slices.
 *
 * Slices: the file tools run in detached actors (tool_def.blocking), one thread per call.
 * A job that may take long does a slice of work (about FT_STEP_SLICE_MS), sends
 * FT_MSG_STEP to itself and returns, so an interrupt, which arrives on the urgent lane, is
 * seen between two slices instead of after the whole job.
 *
 * Threads: the call's actor.
 */
#ifndef FT_TOOL_H
#define FT_TOOL_H

#include "tool.h"

/* Self-addressed message of the file tools (module TOOL, block 0x0F00). */
#define FT_MSG_STEP      RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 0x0F01)
#define FT_STEP_SLICE_MS 50

/* Ask for the next slice. */
void ft_tool_step(rt_ctx *cx);

/* The display form (~ expanded, relative kept) and the absolute form (relative to the
 * session's cwd) of a path argument. Both new strings. */
void ft_tool_path(const tool_run *run, const char *arg, char **display, char **abs);

#endif /* FT_TOOL_H */
