/*
 * cio_log.h - non-blocking log writers and the process log.
 */
#ifndef CIO_LOG_H
#define CIO_LOG_H

#include <stddef.h>
#include <stdint.h>
#include "cio_loop.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

/* ------------------------------------------------------------------------ */
/* Non-blocking writers and logging                                          */
/* ------------------------------------------------------------------------ */

/* An append-only writer for logs: appends are copied into a buffer and never
 * block; the loop writes the buffer through the ring at the end of each turn,
 * one write in flight at a time. When max_buffer bytes are waiting (a slow
 * disk or a stalled pipe), further appends are dropped and counted. */
typedef struct cio_log_writer cio_log_writer;

/* Creates a writer on fd for loop (NULL = current). The fd stays the
 * caller's. max_buffer 0 means 1 MiB. Returns 0, -ENOMEM or -EINVAL. */
int cio_log_writer_create(cio_loop *loop, int fd, size_t max_buffer, cio_log_writer **out);
/* Copies n bytes in; returns 0 or -ENOBUFS (dropped). */
int cio_log_writer_append(cio_log_writer *w, const void *data, size_t n);
/* Room for n bytes to format into directly, or NULL (dropped); then commit. */
char *cio_log_writer_reserve(cio_log_writer *w, size_t n);
void cio_log_writer_commit(cio_log_writer *w, size_t n);
/* Bytes dropped so far. */
uint64_t cio_log_writer_dropped(const cio_log_writer *w);
/* Lines dropped so far (a reservation refused is one line; a failed write
 * drops the lines it held). */
uint64_t cio_log_writer_dropped_lines(const cio_log_writer *w);
/* Lines of the process log that loop's writer dropped. */
uint64_t cio_log_dropped_lines(const cio_loop *loop);
/* Writes what is buffered (blocking, for shutdown) and frees w. Safe on NULL. */
void cio_log_writer_destroy(cio_log_writer *w);

enum cio_log_level { CIO_LOG_ERROR, CIO_LOG_WARN, CIO_LOG_INFO, CIO_LOG_DEBUG };

void cio_log_set_level(enum cio_log_level level);
enum cio_log_level cio_log_get_level(void);
/* Parses "error", "warn", "info", "debug". Returns the level or -EINVAL. */
int cio_log_parse_level(const char *s);
/* Writes one line to the process log (stderr) if level is enabled. On a loop
 * thread the line is queued and written through the ring, never blocking. */
void cio_log(enum cio_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cio_error(...) cio_log(CIO_LOG_ERROR, __VA_ARGS__)
#define cio_warn(...)  cio_log(CIO_LOG_WARN, __VA_ARGS__)
#define cio_info(...)  cio_log(CIO_LOG_INFO, __VA_ARGS__)
#define cio_debug(...) cio_log(CIO_LOG_DEBUG, __VA_ARGS__)

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif /* CIO_LOG_H */
