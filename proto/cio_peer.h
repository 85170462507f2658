/*
 * cio_peer.h - the peer-ID self-discovery protocol (the Paxos example's
 * "real life example"; MongoDB's replica sets do the same).
 *
 * Every member of a cluster gets the same list of servers, but a host has
 * several names and addresses and cannot tell which entry is itself. So
 * each member draws a random id at start and serves it at GET /server_id
 * (a JSON string); it queries /server_id of every entry, itself included:
 * the entry that answers with its own id is itself.
 *
 * Discovery runs rounds: the first at cio_discovery_start() (right after
 * the server listens, so a member that is up finds itself within a loopback
 * round trip), then one every interval. In each round every entry is
 * queried at once, each query with its own timeout, so a slow or dead
 * entry delays no other; an entry whose query of the last round is still
 * out skips a round. Self is the first entry in list order among those
 * that answered with our id in the round where our id was first seen
 * (decided as soon as the entries before it have answered that round);
 * any other entry that answers with our id is an alias of self. Until self
 * is found, what needs it awaits it (cio_discovery_await_self). When the
 * window ends without a match the search has failed: the entries and what
 * each answered are logged, and awaiting self fails with -ESRCH.
 *
 * Queries carry the asking member's id (header Corio-Peer-Id); a server
 * that hears an id it does not know queries everyone at once (see
 * cio_discovery_heard). After the search, and meanwhile, every entry is
 * still queried every interval: the view (cio_discovery_peer) says which are up, their ids,
 * when each was last seen, and how many times each restarted (came back
 * with a new id).
 */
#ifndef CIO_PEER_H
#define CIO_PEER_H

#include "cio_http.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API: see LIBRARY in cio.h */

/* A member's id: 128 bits from the kernel's CSPRNG, as 32 lowercase hex
 * characters and a NUL. */
typedef struct cio_peer_id {
    char hex[33];
} cio_peer_id;

/* Generates a new id. May block at boot until the kernel's random pool is
 * initialised (call it at startup, not on a busy loop). 0 or -errno. */
int cio_peer_id_generate(cio_peer_id *out);

/* An answer of GET /server_id: a JSON string of 32 lowercase hex digits,
 * with optional whitespace around. true with *out set. */
bool cio_peer_id_parse(const char *body, size_t len, cio_peer_id *out);

enum cio_peer_state {
    CIO_PEER_STANDALONE, /* no servers listed: nothing to find */
    CIO_PEER_SEARCHING,
    CIO_PEER_FOUND,
    CIO_PEER_FAILED, /* the window ended without an entry answering our id */
};

/* "standalone", "searching", "found", "failed". */
const char *cio_peer_state_name(enum cio_peer_state s);

/* One entry of the server list. */
typedef struct cio_peer_member {
    const char *name; /* the entry as listed ("host0:8080", "host0"): names it in the view */
    const char *host; /* the name or address to query */
    uint16_t port;
} cio_peer_member;

typedef struct cio_discovery_opts {
    const cio_peer_member *members; /* copied */
    size_t nmembers;                /* 0: standalone */
    cio_peer_id id;                 /* this server's id */
    cio_http_client *client;        /* the queries go through it (needed with members) */
    cio_time interval;              /* between rounds (default 1 s) */
    cio_time window;                /* the search for self gives up after this, from
                                       start (default 60 s; CIO_NEVER: never) */
    cio_time request_timeout;       /* one query (default 1 s) */
} cio_discovery_opts;

/* What is known of one entry. */
typedef struct cio_peer_info {
    const char *name;
    bool has_id;          /* an id was ever received */
    cio_peer_id id;       /* the latest id received */
    bool up;              /* the latest query got an id */
    bool pending;         /* a query is out */
    bool self;            /* the entry found to be this server */
    bool alias;           /* another entry that reaches this server */
    cio_time last_seen;   /* when an id last came (cio_now() time), 0 = never */
    uint32_t restarts;    /* times it came back with a different id */
    int last_error;       /* the latest query's -errno (0: an answer came) */
    int last_status;      /* the latest answer's HTTP status (0: none) */
    char last_answer[48]; /* the latest answer that was not an id, printable */
} cio_peer_info;

typedef struct cio_discovery cio_discovery;

/* Creates discovery on loop (NULL = current); nothing runs before
 * cio_discovery_start. 0, -EINVAL (members without a client) or -ENOMEM. */
int cio_discovery_create(cio_loop *loop, const cio_discovery_opts *opts, cio_discovery **out);

/* Starts the rounds (the first at once); the window counts from now.
 * No-op when standalone. 0 or -ENOMEM. */
int cio_discovery_start(cio_discovery *d);

/* [awaits] Stops the rounds and waits for the queries in flight to end
 * (they are cancelled). A search not finished fails waiters with
 * -ESHUTDOWN. */
void cio_discovery_stop(cio_discovery *d);

/* Frees a stopped (or never started) discovery. No task may be awaiting self. */
void cio_discovery_destroy(cio_discovery *d);

/* A member asked for our id and sent its own (the Corio-Peer-Id header
 * that discovery's queries carry; id: 32 hex digits). An id that is not in
 * the view is a member that has just started, or restarted: every entry is
 * queried now instead of at the next round, so that the view converges
 * within a round trip rather than an interval (at most one early round
 * per 100 ms, none when the regular one is as near). */
void cio_discovery_heard(cio_discovery *d, const char *id);

/* [awaits] Waits until self is found and sets *entry to its name (NULL when
 * standalone: at once). 0, -ESRCH (the search failed), -ESHUTDOWN (it was
 * stopped), -ETIMEDOUT (deadline), -ECANCELED (the task's scope). */
int cio_discovery_await_self(cio_discovery *d, const char **entry, cio_time deadline);

enum cio_peer_state cio_discovery_state(const cio_discovery *d);

/* The index of self in the list, or -1. */
int cio_discovery_self(const cio_discovery *d);

/* Time from start to self found (0 while not found). */
cio_time cio_discovery_found_after(const cio_discovery *d);

/* The round self was found in: 1 when the first round found it (0 while
 * not found). */
uint64_t cio_discovery_found_round(const cio_discovery *d);

/* The view: one entry per listed server, in list order. i < count. */
size_t cio_discovery_count(const cio_discovery *d);
const cio_peer_info *cio_discovery_peer(const cio_discovery *d, size_t i);

/* What the entry's latest query got, for people: "id 3f2a...", "connection
 * refused", "timed out", "HTTP 404", "HTTP 200 \"hello\"" (not an id), "no
 * answer yet" (the first query is out), "not queried yet". Returns out. */
const char *cio_peer_answer(const cio_peer_info *p, char *out, size_t len);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
