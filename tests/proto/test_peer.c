/*
 * The peer-ID protocol: ids, and discovery against real HTTP servers on
 * loopback (corio servers on the test's own loop, each serving an id of the
 * test's choosing at /server_id, after a delay the test chooses).
 */
#include "../core/harness.h"
#include "cio_peer.h"

#include <arpa/inet.h>
#include <string.h>

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ID_C "cccccccccccccccccccccccccccccccc"

START_TEST(id_generate_is_32_lowercase_hex_and_differs)
{
    cio_peer_id a, b, p;
    ck_assert_int_eq(cio_peer_id_generate(&a), 0);
    ck_assert_int_eq(cio_peer_id_generate(&b), 0);
    ck_assert_uint_eq(strlen(a.hex), 32);
    ck_assert_str_ne(a.hex, b.hex);
    char json[40];
    snprintf(json, sizeof(json), "\"%s\"", a.hex);
    ck_assert(cio_peer_id_parse(json, strlen(json), &p));
    ck_assert_str_eq(p.hex, a.hex);
}
END_TEST

START_TEST(id_parse_accepts_a_json_string_only)
{
    cio_peer_id p;
    static const char ok[] = " \"" ID_A "\"\n";
    ck_assert(cio_peer_id_parse(ok, sizeof(ok) - 1, &p));
    ck_assert_str_eq(p.hex, ID_A);
    static const char *const bad[] = {
        ID_A,                                     /* not a string */
        "\"" ID_A,                                /* unterminated */
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",   /* upper case */
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",    /* 31 digits */
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaag\"",  /* not hex */
        "\"" ID_A "\" x",                         /* trailing bytes */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!cio_peer_id_parse(bad[i], strlen(bad[i]), &p), "accepted %s", bad[i]);
}
END_TEST

/* ---- servers and discovery on one loop ------------------------------------------------ */


typedef struct member {
    cio_http_server *srv;
    char id[33];
    int delay_ms; /* before answering */
    cio_event *gate; /* the first query waits for it */
    bool fail_first; /* the first query gets a 503 */
    int calls;
    char name[32];
    uint16_t port;
} member;

static int h_server_id(cio_http_req *req, void *ud)
{
    member *m = ud;
    bool first = m->calls++ == 0;
    if (first && m->gate && cio_event_wait(m->gate, CIO_NEVER) < 0)
        return -ECANCELED;
    if (first && m->fail_first)
        return cio_http_respond(req, 503, "text/plain", "not yet\n", 8);
    if (m->delay_ms && cio_sleep(CIO_MS(m->delay_ms)) < 0)
        return -ECANCELED;
    char body[40];
    int n = snprintf(body, sizeof(body), "\"%s\"", m->id);
    return cio_http_respond(req, 200, "application/json", body, (size_t)n);
}

static void member_start(member *m, const char *id, int delay_ms)
{
    snprintf(m->id, sizeof(m->id), "%s", id);
    m->delay_ms = delay_ms;
    cio_http_opts o = {.keepalive_timeout = CIO_SEC(60)};
    ck_assert_int_eq(cio_http_server_create(NULL, &o, &m->srv), 0);
    ck_assert_int_eq(cio_http_route(m->srv, "GET", "/server_id", h_server_id, m), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char text[64];
    ck_assert_int_eq(cio_http_listen(m->srv, (struct sockaddr *)&a, sizeof(a), false, text), 0);
    m->port = (uint16_t)atoi(strrchr(text, ':') + 1);
    snprintf(m->name, sizeof(m->name), "127.0.0.1:%u", m->port);
}

static void member_stop(member *m)
{
    cio_http_server_shutdown(m->srv, cio_after(CIO_MS(100)));
    cio_http_server_destroy(m->srv);
}

typedef struct world {
    member m[3];
    size_t n;
    cio_http_client *client;
    cio_discovery *d;
} world;

/* Members 0..n-1 with the ids and delays given; discovery with our id. */
static void world_start_gated(world *w, size_t n, const char *const *ids, const int *delays,
                              const char *our, cio_time window, cio_time timeout,
                              cio_event *gate0, bool fail_first1)
{
    memset(w, 0, sizeof(*w));
    w->n = n;
    cio_peer_member pm[3];
    for (size_t i = 0; i < n; i++) {
        member_start(&w->m[i], ids[i], delays ? delays[i] : 0);
        w->m[i].gate = i == 0 ? gate0 : NULL;
        w->m[i].fail_first = i == 1 && fail_first1;
        pm[i] = (cio_peer_member){w->m[i].name, "127.0.0.1", w->m[i].port};
    }
    ck_assert_int_eq(cio_http_client_create(NULL, NULL, &w->client), 0);
    cio_discovery_opts o = {.members = pm,
                            .nmembers = n,
                            .client = w->client,
                            .interval = CIO_MS(50),
                            .window = window,
                            .request_timeout = timeout};
    snprintf(o.id.hex, sizeof(o.id.hex), "%s", our);
    ck_assert_int_eq(cio_discovery_create(NULL, &o, &w->d), 0);
    ck_assert_int_eq(cio_discovery_start(w->d), 0);
}

static void world_start(world *w, size_t n, const char *const *ids, const int *delays,
                        const char *our, cio_time window, cio_time timeout)
{
    world_start_gated(w, n, ids, delays, our, window, timeout, NULL, false);
}

/* [awaits] Self is found, and is member i. */
static void expect_self(world *w, size_t i)
{
    const char *self;
    ck_assert_int_eq(cio_discovery_await_self(w->d, &self, cio_after(CIO_MS(T_PATIENCE_MS))), 0);
    ck_assert_str_eq(self, w->m[i].name);
    ck_assert_int_eq(cio_discovery_self(w->d), (int)i);
}

static void world_stop(world *w)
{
    cio_discovery_stop(w->d);
    cio_discovery_destroy(w->d);
    for (size_t i = 0; i < w->n; i++)
        member_stop(&w->m[i]);
    ck_assert_int_eq(cio_http_client_destroy(w->client), 0);
}

static intptr_t t_finds_self(void *arg)
{
    (void)arg;
    world w;
    static const char *const ids[] = {ID_A, ID_B, ID_C};
    world_start(&w, 3, ids, NULL, ID_B, CIO_NEVER, CIO_SEC(5));
    expect_self(&w, 1);
    ck_assert_int_eq(cio_discovery_state(w.d), CIO_PEER_FOUND);
    ck_assert_uint_eq(cio_discovery_found_round(w.d), 1);
    /* The others are known by their ids once their answers are in. */
    ck_assert(T_AWAIT(cio_discovery_peer(w.d, 0)->up && cio_discovery_peer(w.d, 2)->up,
                      T_PATIENCE_MS));
    ck_assert_str_eq(cio_discovery_peer(w.d, 0)->id.hex, ID_A);
    ck_assert_str_eq(cio_discovery_peer(w.d, 2)->id.hex, ID_C);
    ck_assert(cio_discovery_peer(w.d, 1)->self);
    ck_assert(!cio_discovery_peer(w.d, 0)->self && !cio_discovery_peer(w.d, 0)->alias);
    world_stop(&w);
    return 0;
}

T_LOOP_TEST(self_is_the_entry_answering_our_id, t_finds_self, 0)

/* Two entries reach us; the first in list order answers after the second:
 * it is still self, and the other an alias. */
static intptr_t t_first_in_order(void *arg)
{
    (void)arg;
    world w;
    static const char *const ids[] = {ID_A, ID_A};
    static const int delays[] = {300, 0};
    world_start(&w, 2, ids, delays, ID_A, CIO_NEVER, CIO_SEC(5));
    expect_self(&w, 0);
    ck_assert(cio_discovery_peer(w.d, 1)->alias);
    ck_assert(!cio_discovery_peer(w.d, 0)->alias);
    world_stop(&w);
    return 0;
}

T_LOOP_TEST(first_matching_entry_in_list_order_wins, t_first_in_order, 0)

/* An entry after self that never answers within the test does not hold
 * the decision back: its query times out only after 60 s. */
static intptr_t t_slow_after_self(void *arg)
{
    (void)arg;
    world w;
    static const char *const ids[] = {ID_A, ID_B};
    static const int delays[] = {0, 60000};
    world_start(&w, 2, ids, delays, ID_A, CIO_NEVER, CIO_SEC(60));
    expect_self(&w, 0);
    ck_assert(!cio_discovery_peer(w.d, 1)->up);
    world_stop(&w);
    return 0;
}

T_LOOP_TEST(slow_entry_after_self_does_not_delay_it, t_slow_after_self, 0)

/* Entry 0's answer of round 1 (our id) is held back; entry 1 fails round 1
 * and answers our id in a later round. Self was first seen in round 1, at
 * entry 0: the decision waits for it, though it answered later. */
static intptr_t t_earlier_round(void *arg)
{
    (void)arg;
    world w;
    cio_event gate;
    cio_event_init(&gate);
    static const char *const ids[] = {ID_A, ID_A};
    world_start_gated(&w, 2, ids, NULL, ID_A, CIO_NEVER, CIO_SEC(20), &gate, true);
    ck_assert(T_AWAIT(cio_discovery_peer(w.d, 1)->up, T_PATIENCE_MS));
    ck_assert_int_eq(cio_discovery_state(w.d), CIO_PEER_SEARCHING);
    cio_event_set(&gate);
    expect_self(&w, 0);
    ck_assert_uint_eq(cio_discovery_found_round(w.d), 1);
    ck_assert(cio_discovery_peer(w.d, 1)->alias);
    world_stop(&w);
    return 0;
}

T_LOOP_TEST(entry_still_out_with_an_earlier_round_is_waited_for, t_earlier_round, 0)

/* Entry 0 never answers; entry 1, after it in the list, answers our id:
 * the decision waits for entry 0, and the end of the window settles it
 * with what answered. */
static intptr_t t_window_decides(void *arg)
{
    (void)arg;
    world w;
    cio_event gate; /* never set */
    cio_event_init(&gate);
    static const char *const ids[] = {ID_B, ID_A};
    world_start_gated(&w, 2, ids, NULL, ID_A, CIO_MS(300), CIO_SEC(60), &gate, false);
    ck_assert(T_AWAIT(cio_discovery_peer(w.d, 1)->up, T_PATIENCE_MS));
    expect_self(&w, 1);
    ck_assert_int_eq(cio_discovery_state(w.d), CIO_PEER_FOUND);
    world_stop(&w);
    return 0;
}

T_LOOP_TEST(window_end_decides_with_what_answered, t_window_decides, 0)

static intptr_t t_window(void *arg)
{
    (void)arg;
    world w;
    static const char *const ids[] = {ID_A, ID_B};
    world_start(&w, 2, ids, NULL, ID_C, CIO_MS(200), CIO_SEC(1));
    const char *self = "x";
    /* A short deadline ends the wait first; the search goes on. */
    ck_assert_int_eq(cio_discovery_await_self(w.d, &self, cio_after(CIO_MS(1))), -ETIMEDOUT);
    ck_assert_ptr_null(self);
    ck_assert_int_eq(cio_discovery_await_self(w.d, &self, cio_after(CIO_MS(T_PATIENCE_MS))),
                     -ESRCH);
    ck_assert_int_eq(cio_discovery_state(w.d), CIO_PEER_FAILED);
    ck_assert_int_eq(cio_discovery_self(w.d), -1);
    /* The view still says what each entry answered. */
    char a[96];
    ck_assert_str_eq(cio_peer_answer(cio_discovery_peer(w.d, 0), a, sizeof(a)), "id " ID_A);
    world_stop(&w);
    return 0;
}

T_LOOP_TEST(window_ends_the_search_with_esrch, t_window, 0)

static intptr_t t_restart(void *arg)
{
    (void)arg;
    world w;
    static const char *const ids[] = {ID_A, ID_B};
    world_start(&w, 2, ids, NULL, ID_A, CIO_NEVER, CIO_SEC(5));
    expect_self(&w, 0);
    ck_assert(T_AWAIT(cio_discovery_peer(w.d, 1)->up, T_PATIENCE_MS));
    /* The peer comes back with another id. */
    memcpy(w.m[1].id, ID_C, 32);
    ck_assert(T_AWAIT(cio_discovery_peer(w.d, 1)->restarts == 1, T_PATIENCE_MS));
    ck_assert_str_eq(cio_discovery_peer(w.d, 1)->id.hex, ID_C);
    ck_assert(cio_discovery_peer(w.d, 1)->up);
    world_stop(&w);
    return 0;
}

T_LOOP_TEST(peer_with_a_new_id_counts_a_restart, t_restart, 0)

static intptr_t t_down(void *arg)
{
    (void)arg;
    world w;
    static const char *const ids[] = {ID_A, ID_B};
    world_start(&w, 2, ids, NULL, ID_A, CIO_NEVER, CIO_SEC(5));
    ck_assert(T_AWAIT(cio_discovery_peer(w.d, 1)->up, T_PATIENCE_MS));
    member_stop(&w.m[1]);
    w.n = 1;
    ck_assert(T_AWAIT(!cio_discovery_peer(w.d, 1)->up, T_PATIENCE_MS));
    ck_assert_int_eq(cio_discovery_peer(w.d, 1)->last_error, -ECONNREFUSED);
    ck_assert(cio_discovery_peer(w.d, 1)->last_seen > 0); /* it was seen before */
    world_stop(&w);
    return 0;
}

T_LOOP_TEST(peer_that_stops_is_down, t_down, 0)

static intptr_t t_stop_wakes(void *arg)
{
    (void)arg;
    world w;
    static const char *const ids[] = {ID_A};
    world_start(&w, 1, ids, NULL, ID_C, CIO_NEVER, CIO_SEC(1));
    cio_discovery_stop(w.d);
    const char *self;
    ck_assert_int_eq(cio_discovery_await_self(w.d, &self, CIO_NEVER), -ESHUTDOWN);
    world_stop(&w);
    return 0;
}

T_LOOP_TEST(stop_ends_waits_with_eshutdown, t_stop_wakes, 0)

static intptr_t t_standalone(void *arg)
{
    (void)arg;
    cio_discovery *d;
    cio_discovery_opts o = {0};
    ck_assert_int_eq(cio_discovery_create(NULL, &o, &d), 0);
    ck_assert_int_eq(cio_discovery_start(d), 0);
    ck_assert_int_eq(cio_discovery_state(d), CIO_PEER_STANDALONE);
    const char *self = "x";
    ck_assert_int_eq(cio_discovery_await_self(d, &self, CIO_NEVER), 0);
    ck_assert_ptr_null(self);
    ck_assert_uint_eq(cio_discovery_count(d), 0);
    cio_discovery_stop(d);
    cio_discovery_destroy(d);
    return 0;
}

T_LOOP_TEST(standalone_is_ready_at_once, t_standalone, 0)

static Suite *peer_suite(void)
{
    Suite *s = suite_create("peer");
    T_CASE(s, id_generate_is_32_lowercase_hex_and_differs, 30);
    T_CASE(s, id_parse_accepts_a_json_string_only, 30);
    T_CASE(s, self_is_the_entry_answering_our_id, 30);
    T_CASE(s, first_matching_entry_in_list_order_wins, 30);
    T_CASE(s, slow_entry_after_self_does_not_delay_it, 30);
    T_CASE(s, window_ends_the_search_with_esrch, 30);
    T_CASE(s, entry_still_out_with_an_earlier_round_is_waited_for, 30);
    T_CASE(s, window_end_decides_with_what_answered, 30);
    T_CASE(s, peer_with_a_new_id_counts_a_restart, 30);
    T_CASE(s, peer_that_stops_is_down, 30);
    T_CASE(s, stop_ends_waits_with_eshutdown, 30);
    T_CASE(s, standalone_is_ready_at_once, 30);
    return s;
}

T_MAIN(peer_suite)
