/* Defaults, the JSON file, listen addresses, validation and the command line. */
#include "check_harness.h"
#include "cio_config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* A scratch directory per test, made and removed by the parent so that a
 * failing (forked) test still cleans up. */
static char tmpdir[64];

static void tmp_setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/cio_config_XXXXXX");
    if (!mkdtemp(tmpdir))
        abort();
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void tmp_teardown(void)
{
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Every test gets a fresh scratch directory. */
#define C_CASE(suite, fn, timeout) T_CASE_FIXTURE(suite, fn, timeout, tmp_setup, tmp_teardown)

#define LISTEN_HINT "(expected IPv4:port, [IPv6]:port, *:port or localhost:port)"
#define ORIGIN_HINT "expected \"null\" or scheme://host[:port] with scheme http or https"

static char err[512];

/* tmpdir/name; a few rotating buffers so two paths can be live at once. */
static const char *tpath(const char *name)
{
    static char bufs[4][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
    return p;
}

static const char *write_file(const char *name, const char *text)
{
    const char *p = tpath(name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    return p;
}

static int load(cio_config *c, const char *json)
{
    err[0] = '\0';
    return cio_config_load_string(c, json, "test.json", err, sizeof(err));
}

/* Loads json on top of the defaults and expects an error containing want. */
static void expect_load_error(const char *json, const char *want)
{
    cio_config c;
    cio_config_defaults(&c);
    int r = load(&c, json);
    ck_assert_msg(r == -EINVAL, "accepted %s", json);
    ck_assert_msg(strstr(err, want), "for %s: got \"%s\", want \"%s\"", json, err, want);
    ck_assert_ptr_null(strchr(err, '\n'));
    cio_config_free(&c);
}

static int argc_of(char **argv)
{
    int n = 0;
    while (argv[n])
        n++;
    return n;
}

static cio_config_action action;

/* from_args(c, "--flag", "value", ...): argv[0] is "corio". */
#define from_args(c, ...) from_argv((c), (char *[]){"corio", __VA_ARGS__, NULL})

static int from_argv(cio_config *c, char **argv)
{
    err[0] = '\0';
    action = (cio_config_action)-1;
    return cio_config_from_args(c, argc_of(argv), argv, &action, err, sizeof(err));
}

static void expect_args_error(char **argv, const char *want)
{
    cio_config c;
    int r = from_argv(&c, argv);
    ck_assert_int_eq(r, -EINVAL);
    ck_assert_msg(strstr(err, want), "got \"%s\", want \"%s\"", err, want);
    cio_config_free(&c);
}

static void assert_listen(const cio_listen *l, int family, const char *addr, unsigned port)
{
    char buf[INET6_ADDRSTRLEN];
    ck_assert_int_eq(l->addr.ss_family, family);
    if (family == AF_INET) {
        const struct sockaddr_in *sa = (const struct sockaddr_in *)&l->addr;
        ck_assert_int_eq(l->addrlen, sizeof(*sa));
        ck_assert_uint_eq(ntohs(sa->sin_port), port);
        inet_ntop(AF_INET, &sa->sin_addr, buf, sizeof(buf));
    } else {
        const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *)&l->addr;
        ck_assert_int_eq(l->addrlen, sizeof(*sa));
        ck_assert_uint_eq(ntohs(sa->sin6_port), port);
        inet_ntop(AF_INET6, &sa->sin6_addr, buf, sizeof(buf));
    }
    ck_assert_str_eq(buf, addr);
}

/* ---- defaults ---- */

START_TEST(defaults_match_header)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_uint_eq(c.nlisten, 1);
    ck_assert_str_eq(c.listen[0].text, "0.0.0.0:8080");
    assert_listen(&c.listen[0], AF_INET, "0.0.0.0", 8080);
    ck_assert_ptr_null(c.root);
    ck_assert(!c.serve_dotfiles);
    ck_assert_uint_eq(c.pool_threads, 0);
    ck_assert_uint_eq(c.pool_queue, 1024);
    ck_assert_uint_eq(c.limits.max_connections, 100000);
    ck_assert_uint_eq(c.limits.max_header_bytes, 8192);
    ck_assert_uint_eq(c.limits.max_uri_bytes, 8192);
    ck_assert_uint_eq(c.limits.max_body_bytes, 1048576);
    ck_assert_uint_eq(c.limits.max_requests_per_connection, 0);
    ck_assert_uint_eq(c.limits.max_connections_per_ip, 0);
    ck_assert_uint_eq(c.limits.max_buffered_bytes, 0);
    ck_assert_uint_eq(c.timeouts.header_ms, 10000);
    ck_assert_uint_eq(c.timeouts.body_ms, 30000);
    ck_assert_uint_eq(c.timeouts.keepalive_ms, 75000);
    ck_assert_uint_eq(c.timeouts.write_ms, 30000);
    ck_assert_uint_eq(c.timeouts.handler_ms, 60000);
    ck_assert_uint_eq(c.timeouts.pool_wait_ms, 1000);
    ck_assert_uint_eq(c.timeouts.drain_ms, 10000);
    ck_assert_int_eq(c.log.level, 2);
    ck_assert_str_eq(c.log.access, "-");
    ck_assert_uint_eq(c.websocket.max_message_bytes, 1048576);
    ck_assert_uint_eq(c.websocket.ping_interval_ms, 30000);
    ck_assert_uint_eq(c.websocket.idle_timeout_ms, 120000);
    ck_assert_uint_eq(c.websocket.send_queue_bytes, 2097152);
    ck_assert_uint_eq(c.websocket.norigins, 0);
    ck_assert_ptr_null(c.websocket.origins[0]);
    ck_assert(c.websocket.compression);
    ck_assert_uint_eq(c.websocket.compression_window_bits, 12);
    cio_config_free(&c);
}
END_TEST

START_TEST(defaults_are_valid)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(cio_config_validate(&c, err, sizeof(err)), 0);
    cio_config_free(&c);
}
END_TEST

START_TEST(free_is_idempotent_and_config_reusable)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"root\": \"/tmp\", \"websocket\": {\"origins\":"
                              " [\"https://a.example\", \"null\"]}}"),
                     0);
    cio_config_free(&c);
    ck_assert_ptr_null(c.root);
    ck_assert_ptr_null(c.log.access);
    ck_assert_uint_eq(c.websocket.norigins, 0);
    ck_assert_ptr_null(c.websocket.origins[0]);
    ck_assert_ptr_null(c.websocket.origins[1]);
    cio_config_free(&c);
    cio_config_defaults(&c);
    ck_assert_str_eq(c.log.access, "-");
    cio_config_free(&c);
}
END_TEST

/* ---- JSON: each key ---- */

START_TEST(json_listen_replaces_default_list)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"listen\": [\"127.0.0.1:80\", \"[::1]:8443\"]}"), 0);
    ck_assert_uint_eq(c.nlisten, 2);
    ck_assert_str_eq(c.listen[0].text, "127.0.0.1:80");
    assert_listen(&c.listen[0], AF_INET, "127.0.0.1", 80);
    ck_assert_str_eq(c.listen[1].text, "[::1]:8443");
    assert_listen(&c.listen[1], AF_INET6, "::1", 8443);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_listen_accepts_sixteen)
{
    char doc[1024] = "{\"listen\": [";
    for (int i = 0; i < CIO_CONFIG_MAX_LISTEN; i++)
        snprintf(doc + strlen(doc), sizeof(doc) - strlen(doc), "%s\"127.0.0.1:%d\"", i ? ", " : "",
                 9000 + i);
    strcat(doc, "]}");
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, doc), 0);
    ck_assert_uint_eq(c.nlisten, CIO_CONFIG_MAX_LISTEN);
    assert_listen(&c.listen[15], AF_INET, "127.0.0.1", 9015);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_root_set_and_cleared_by_null)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"root\": \"/srv/www\"}"), 0);
    ck_assert_str_eq(c.root, "/srv/www");
    ck_assert_int_eq(load(&c, "{\"root\": \"/srv/other\"}"), 0);
    ck_assert_str_eq(c.root, "/srv/other");
    ck_assert_int_eq(load(&c, "{\"root\": null}"), 0);
    ck_assert_ptr_null(c.root);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_pool_threads)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"pool_threads\": 1024}"), 0);
    ck_assert_uint_eq(c.pool_threads, 1024);
    ck_assert_int_eq(load(&c, "{\"pool_threads\": 0}"), 0);
    ck_assert_uint_eq(c.pool_threads, 0);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_limits_every_key)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"limits\": {\"max_connections\": 11, \"max_header_bytes\": 22,"
                              " \"max_uri_bytes\": 33, \"max_body_bytes\": 1073741824,"
                              " \"max_requests_per_connection\": 55,"
                              " \"max_connections_per_ip\": 66,"
                              " \"max_buffered_bytes\": 77}}"),
                     0);
    ck_assert_uint_eq(c.limits.max_connections, 11);
    ck_assert_uint_eq(c.limits.max_header_bytes, 22);
    ck_assert_uint_eq(c.limits.max_uri_bytes, 33);
    ck_assert_uint_eq(c.limits.max_body_bytes, UINT64_C(1073741824));
    ck_assert_uint_eq(c.limits.max_requests_per_connection, 55);
    ck_assert_uint_eq(c.limits.max_connections_per_ip, 66);
    ck_assert_uint_eq(c.limits.max_buffered_bytes, 77);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_timeouts_every_key)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"timeouts\": {\"header_ms\": 1, \"body_ms\": 2,"
                              " \"keepalive_ms\": 0, \"write_ms\": 4, \"drain_ms\": 5,"
                              " \"handler_ms\": 6, \"pool_wait_ms\": 7}}"),
                     0);
    ck_assert_uint_eq(c.timeouts.header_ms, 1);
    ck_assert_uint_eq(c.timeouts.body_ms, 2);
    ck_assert_uint_eq(c.timeouts.keepalive_ms, 0);
    ck_assert_uint_eq(c.timeouts.write_ms, 4);
    ck_assert_uint_eq(c.timeouts.drain_ms, 5);
    ck_assert_uint_eq(c.timeouts.handler_ms, 6);
    ck_assert_uint_eq(c.timeouts.pool_wait_ms, 7);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_pool_queue)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"pool_queue\": 1}"), 0);
    ck_assert_uint_eq(c.pool_queue, 1);
    ck_assert_int_eq(load(&c, "{\"pool_queue\": 1048576}"), 0);
    ck_assert_uint_eq(c.pool_queue, 1048576);
    cio_config_free(&c);
}
END_TEST

/* Checked while loading: the field is an unsigned, and 2^32 + 1 must not
 * wrap around to a valid 1. */
START_TEST(json_pool_queue_out_of_range)
{
    expect_load_error("{\"pool_queue\": 0}",
                      "test.json: pool_queue: 0 is out of range (1..1048576)");
    expect_load_error("{\"pool_queue\": 1048577}", "pool_queue: 1048577 is out of range");
    expect_load_error("{\"pool_queue\": 4294967297}", "pool_queue: 4294967297 is out of range");
}
END_TEST

START_TEST(json_serve_dotfiles)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"serve_dotfiles\": true}"), 0);
    ck_assert(c.serve_dotfiles);
    ck_assert_int_eq(load(&c, "{\"serve_dotfiles\": false}"), 0);
    ck_assert(!c.serve_dotfiles);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_serve_dotfiles_must_be_boolean)
{
    static const char *const values[] = {"1", "0", "\"true\"", "null", "[]", "{}"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char doc[64];
        snprintf(doc, sizeof(doc), "{\"serve_dotfiles\": %s}", values[i]);
        expect_load_error(doc, "test.json: serve_dotfiles: expected true or false");
    }
}
END_TEST

START_TEST(json_log_levels_and_access)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    cio_config c;
    cio_config_defaults(&c);
    for (int i = 0; i < 4; i++) {
        char doc[64];
        snprintf(doc, sizeof(doc), "{\"log\": {\"level\": \"%s\"}}", names[i]);
        ck_assert_int_eq(load(&c, doc), 0);
        ck_assert_int_eq(c.log.level, i);
    }
    ck_assert_int_eq(load(&c, "{\"log\": {\"access\": \"/var/log/corio/access.log\"}}"), 0);
    ck_assert_str_eq(c.log.access, "/var/log/corio/access.log");
    ck_assert_int_eq(load(&c, "{\"log\": {\"access\": \"off\"}}"), 0);
    ck_assert_str_eq(c.log.access, "off");
    cio_config_free(&c);
}
END_TEST

START_TEST(json_partial_objects_keep_other_keys)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c,
                          "{\"limits\": {\"max_body_bytes\": 7}, \"timeouts\": {\"body_ms\": 9},"
                          " \"log\": {\"level\": \"debug\"}}"),
                     0);
    ck_assert_uint_eq(c.limits.max_body_bytes, 7);
    ck_assert_uint_eq(c.limits.max_connections, 100000);
    ck_assert_uint_eq(c.limits.max_header_bytes, 8192);
    ck_assert_uint_eq(c.timeouts.body_ms, 9);
    ck_assert_uint_eq(c.timeouts.header_ms, 10000);
    ck_assert_int_eq(c.log.level, 3);
    ck_assert_str_eq(c.log.access, "-");
    ck_assert_uint_eq(c.nlisten, 1);
    ck_assert_str_eq(c.listen[0].text, "0.0.0.0:8080");
    cio_config_free(&c);
}
END_TEST

START_TEST(json_empty_object_changes_nothing)
{
    cio_config c, d;
    cio_config_defaults(&c);
    cio_config_defaults(&d);
    ck_assert_int_eq(load(&c, "{}"), 0);
    ck_assert_int_eq(load(&c, "{\"limits\": {}, \"timeouts\": {}, \"log\": {}, \"websocket\": {}}"),
                     0);
    ck_assert_mem_eq(&c.limits, &d.limits, sizeof(c.limits));
    ck_assert_mem_eq(&c.timeouts, &d.timeouts, sizeof(c.timeouts));
    ck_assert_mem_eq(&c.websocket, &d.websocket, sizeof(c.websocket));
    ck_assert_int_eq(c.log.level, d.log.level);
    cio_config_free(&c);
    cio_config_free(&d);
}
END_TEST

START_TEST(json_later_document_overrides_earlier)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"limits\": {\"max_connections\": 5}}"), 0);
    ck_assert_int_eq(load(&c, "{\"limits\": {\"max_connections\": 6}}"), 0);
    ck_assert_uint_eq(c.limits.max_connections, 6);
    cio_config_free(&c);
}
END_TEST

/* ---- JSON: errors ---- */

START_TEST(json_unknown_top_level_key)
{
    expect_load_error("{\"listen\": [\"*:80\"], \"lisen\": 1}", "test.json: unknown key \"lisen\"");
}
END_TEST

START_TEST(json_unknown_nested_key_names_path)
{
    expect_load_error("{\"limits\": {\"max_bodybytes\": 1}}",
                      "unknown key \"limits.max_bodybytes\"");
    expect_load_error("{\"timeouts\": {\"idle_ms\": 1}}", "unknown key \"timeouts.idle_ms\"");
    expect_load_error("{\"log\": {\"formats\": \"json\"}}", "unknown key \"log.formats\"");
    expect_load_error("{\"websocket\": {\"max_frame_bytes\": 1}}",
                      "test.json: unknown key \"websocket.max_frame_bytes\"");
    expect_load_error("{\"websocket\": {\"compression\": true, \"origin\": []}}",
                      "unknown key \"websocket.origin\"");
}
END_TEST

START_TEST(json_integers_reject_wrong_types)
{
    static const char *const values[] = {"-1",   "1.5",  "1.0", "1e3", "\"10\"",
                                         "true", "null", "[]",  "{}"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char doc[128];
        snprintf(doc, sizeof(doc), "{\"limits\": {\"max_body_bytes\": %s}}", values[i]);
        expect_load_error(doc, "test.json: limits.max_body_bytes: expected a non-negative integer");
        snprintf(doc, sizeof(doc), "{\"timeouts\": {\"drain_ms\": %s}}", values[i]);
        expect_load_error(doc, "timeouts.drain_ms: expected a non-negative integer");
        snprintf(doc, sizeof(doc), "{\"pool_threads\": %s}", values[i]);
        expect_load_error(doc, "pool_threads: expected a non-negative integer");
        snprintf(doc, sizeof(doc), "{\"pool_queue\": %s}", values[i]);
        expect_load_error(doc, "pool_queue: expected a non-negative integer");
        snprintf(doc, sizeof(doc), "{\"timeouts\": {\"handler_ms\": %s}}", values[i]);
        expect_load_error(doc, "timeouts.handler_ms: expected a non-negative integer");
        snprintf(doc, sizeof(doc), "{\"timeouts\": {\"pool_wait_ms\": %s}}", values[i]);
        expect_load_error(doc, "timeouts.pool_wait_ms: expected a non-negative integer");
        static const char *const ws_keys[] = {"max_message_bytes", "ping_interval_ms",
                                              "idle_timeout_ms", "send_queue_bytes"};
        for (size_t k = 0; k < sizeof(ws_keys) / sizeof(ws_keys[0]); k++) {
            char want[96];
            snprintf(doc, sizeof(doc), "{\"websocket\": {\"%s\": %s}}", ws_keys[k], values[i]);
            snprintf(want, sizeof(want), "test.json: websocket.%s: expected a non-negative integer",
                     ws_keys[k]);
            expect_load_error(doc, want);
        }
    }
}
END_TEST

START_TEST(json_integer_too_big_is_an_error)
{
    expect_load_error("{\"limits\": {\"max_body_bytes\": 99999999999999999999}}", "test.json:1:");
    expect_load_error("{\"pool_threads\": 1025}", "pool_threads: 1025 is out of range (0..1024)");
}
END_TEST

START_TEST(json_wrong_types_name_the_key)
{
    expect_load_error("{\"log\": {\"level\": \"verbose\"}}",
                      "log.level: expected one of error, warn, info, debug");
    expect_load_error("{\"log\": {\"level\": 2}}",
                      "log.level: expected one of error, warn, info, debug");
    expect_load_error("{\"log\": {\"access\": false}}", "log.access: expected a string");
    expect_load_error("{\"log\": \"debug\"}", "log: expected an object");
    expect_load_error("{\"limits\": 5}", "limits: expected an object");
    expect_load_error("{\"timeouts\": []}", "timeouts: expected an object");
    expect_load_error("{\"root\": 5}", "root: expected a directory path or null");
    expect_load_error("{\"root\": \"\"}", "root: expected a directory path or null");
    expect_load_error("{\"websocket\": true}", "test.json: websocket: expected an object");
    expect_load_error("{\"websocket\": []}", "websocket: expected an object");
}
END_TEST

START_TEST(json_listen_errors)
{
    expect_load_error("{\"listen\": \"0.0.0.0:80\"}", "listen: expected an array");
    expect_load_error("{\"listen\": []}", "listen: expected at least one address");
    expect_load_error("{\"listen\": [80]}", "listen[0]: expected a string");
    expect_load_error("{\"listen\": [\"1.2.3.4:80\", \"foo\"]}",
                      "test.json: listen[1]: invalid address \"foo\" " LISTEN_HINT);
    char doc[1024] = "{\"listen\": [";
    for (int i = 0; i <= CIO_CONFIG_MAX_LISTEN; i++)
        strcat(doc, i ? ", \"*:80\"" : "\"*:80\"");
    strcat(doc, "]}");
    expect_load_error(doc, "listen: too many addresses (17, at most 16)");
}
END_TEST

START_TEST(json_error_leaves_config_unchanged)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"root\": \"/a\"}"), 0);
    ck_assert_int_eq(load(&c, "{\"root\": \"/b\", \"pool_threads\": 4, \"listen\": [\"*:1\"],"
                              " \"log\": {\"access\": \"x.log\"},"
                              " \"limits\": {\"max_connections\": 5, \"bogus\": 1}}"),
                     -EINVAL);
    ck_assert_str_eq(c.root, "/a");
    ck_assert_uint_eq(c.pool_threads, 0);
    ck_assert_str_eq(c.listen[0].text, "0.0.0.0:8080");
    ck_assert_str_eq(c.log.access, "-");
    ck_assert_uint_eq(c.limits.max_connections, 100000);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_syntax_error_gives_line_and_column)
{
    const char *p = write_file("bad.json", "{\n  \"listen\": [\"*:80\"],\n  \"root\": x\n}\n");
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(cio_config_load_file(&c, p, err, sizeof(err)), -EINVAL);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof(want), "%s:3:11: ", p);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got \"%s\"", err);
    ck_assert_ptr_nonnull(strstr(err, "invalid token"));
    cio_config_free(&c);
}
END_TEST

START_TEST(json_syntax_error_in_string_uses_name)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(cio_config_load_string(&c, "{\"root\": \"/x\",}", "inline", err, sizeof(err)),
                     -EINVAL);
    ck_assert_msg(strncmp(err, "inline:1:15: ", 13) == 0, "got \"%s\"", err);
    ck_assert_int_eq(cio_config_load_string(&c, "{", NULL, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strncmp(err, "<string>:1:", 11) == 0, "got \"%s\"", err);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_duplicate_key_is_an_error)
{
    expect_load_error("{\"root\": \"/a\",\n \"root\": \"/b\"}", "test.json:2:");
    expect_load_error("{\"limits\": {\"max_connections\": 1, \"max_connections\": 2}}",
                      "duplicate object key");
}
END_TEST

START_TEST(json_top_level_must_be_an_object)
{
    expect_load_error("[1, 2]", "test.json: expected a JSON object at the top level");
    expect_load_error("\"x\"", "test.json:1:");
    expect_load_error("", "test.json");
}
END_TEST

START_TEST(load_file_applies_document)
{
    const char *p = write_file("ok.json", "{\"listen\": [\"[::]:443\"], \"pool_threads\": 8}");
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(cio_config_load_file(&c, p, err, sizeof(err)), 0);
    ck_assert_uint_eq(c.pool_threads, 8);
    ck_assert_uint_eq(c.nlisten, 1);
    assert_listen(&c.listen[0], AF_INET6, "::", 443);
    cio_config_free(&c);
}
END_TEST

START_TEST(load_file_missing)
{
    const char *p = tpath("nope.json");
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s: No such file or directory", p);
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(cio_config_load_file(&c, p, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, want);
    cio_config_free(&c);
}
END_TEST

START_TEST(load_file_directory)
{
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s: Is a directory", tmpdir);
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(cio_config_load_file(&c, tmpdir, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, want);
    cio_config_free(&c);
}
END_TEST

START_TEST(errors_are_one_line_and_truncated_safely)
{
    expect_load_error("{\"a\\nb\\u0001\": 1}", "unknown key \"a?b?\"");
    cio_config c;
    cio_config_defaults(&c);
    char small[12];
    memset(small, 'z', sizeof(small));
    ck_assert_int_eq(cio_config_load_string(&c, "{\"bogus\": 1}", "name", small, sizeof(small)),
                     -EINVAL);
    ck_assert_str_eq(small, "name: unkno");
    char tiny[1] = {'z'};
    ck_assert_int_eq(cio_config_load_string(&c, "{\"bogus\": 1}", "n", tiny, sizeof(tiny)),
                     -EINVAL);
    ck_assert_int_eq(tiny[0], '\0');
    ck_assert_int_eq(cio_config_load_string(&c, "{\"bogus\": 1}", "n", NULL, 0), -EINVAL);
    cio_config_free(&c);
}
END_TEST

START_TEST(errors_never_split_utf8)
{
    cio_config c;
    cio_config_defaults(&c);
    /* "n: unknown key \"" is 16 bytes; the buffer leaves room for 1 byte of
     * the 2-byte e-acute, which must not be written. */
    char buf[18];
    ck_assert_int_eq(cio_config_load_string(&c, "{\"\xc3\xa9\": 1}", "n", buf, sizeof(buf)),
                     -EINVAL);
    ck_assert_str_eq(buf, "n: unknown key \"");
    cio_config_free(&c);
}
END_TEST

/* ---- listen addresses ---- */

START_TEST(listen_parse_good)
{
    static const struct {
        const char *text;
        int family;
        const char *addr;
        unsigned port;
    } cases[] = {
        {"1.2.3.4:80", AF_INET, "1.2.3.4", 80},
        {"0.0.0.0:8080", AF_INET, "0.0.0.0", 8080},
        {"255.255.255.255:65535", AF_INET, "255.255.255.255", 65535},
        {"127.0.0.1:0", AF_INET, "127.0.0.1", 0},
        {"*:8080", AF_INET, "0.0.0.0", 8080},
        {"localhost:8080", AF_INET, "127.0.0.1", 8080},
        {"[::1]:8080", AF_INET6, "::1", 8080},
        {"[::]:80", AF_INET6, "::", 80},
        {"[2001:db8::1]:443", AF_INET6, "2001:db8::1", 443},
        {"[::ffff:10.0.0.1]:1", AF_INET6, "::ffff:10.0.0.1", 1},
        {"10.0.0.1:00080", AF_INET, "10.0.0.1", 80},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cio_listen l;
        ck_assert_msg(cio_listen_parse(cases[i].text, &l) == 0, "rejected %s", cases[i].text);
        assert_listen(&l, cases[i].family, cases[i].addr, cases[i].port);
        ck_assert_str_eq(l.text, cases[i].text);
    }
}
END_TEST

START_TEST(listen_parse_bad)
{
    static const char *const cases[] = {
        "",
        "80",
        ":80",
        "1.2.3.4",
        "1.2.3.4:",
        "1.2.3.4:80x",
        "1.2.3.4:-1",
        "1.2.3.4:+80",
        "1.2.3.4: 80",
        "1.2.3.4:65536",
        "1.2.3.4:99999999999999999999",
        "1.2.3.256:80",
        "1.2.3:80",
        "01.2.3.4:80",
        "example.com:80",
        "::1:80",
        "::1",
        "[::1]",
        "[::1]80",
        "[::1]:",
        "[::1:80",
        "[]:80",
        "[1.2.3.4]:80",
        "[::g]:80",
        "[fe80::1%lo]:80",
        "*:",
        "**:80",
        "localhost",
        " 1.2.3.4:80",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cio_listen l;
        ck_assert_msg(cio_listen_parse(cases[i], &l) == -EINVAL, "accepted \"%s\"", cases[i]);
    }
    cio_listen l;
    ck_assert_int_eq(cio_listen_parse(NULL, &l), -EINVAL);
}
END_TEST

START_TEST(listen_parse_failure_leaves_output_alone)
{
    cio_listen l;
    ck_assert_int_eq(cio_listen_parse("[::1]:1", &l), 0);
    ck_assert_int_eq(cio_listen_parse("1.2.3.4:65536", &l), -EINVAL);
    assert_listen(&l, AF_INET6, "::1", 1);
    ck_assert_str_eq(l.text, "[::1]:1");
}
END_TEST

START_TEST(listen_parse_truncates_long_text)
{
    char text[128] = "1.2.3.4:";
    memset(text + 8, '0', 80);
    strcpy(text + 88, "80");
    cio_listen l;
    ck_assert_int_eq(cio_listen_parse(text, &l), 0);
    assert_listen(&l, AF_INET, "1.2.3.4", 80);
    ck_assert_uint_eq(strlen(l.text), sizeof(l.text) - 1);
    ck_assert_int_eq(strncmp(l.text, text, sizeof(l.text) - 1), 0);
}
END_TEST

/* ---- validation ---- */

/* The defaults with max_uri_bytes lowered so max_header_bytes can reach its
 * own lower bound without tripping the uri <= header rule, and the websocket
 * idle timeout off and send queue at its maximum so that ping_interval_ms and
 * max_message_bytes can reach their upper bounds alone. */
static void valid_base(cio_config *c)
{
    cio_config_defaults(c);
    c->limits.max_uri_bytes = 16;
    c->websocket.idle_timeout_ms = 0;
    c->websocket.send_queue_bytes = UINT64_C(2147483648);
}

static void expect_valid(const cio_config *c, const char *what)
{
    err[0] = '\0';
    ck_assert_msg(cio_config_validate(c, err, sizeof(err)) == 0, "%s: %s", what, err);
}

static void expect_invalid(const cio_config *c, const char *want)
{
    err[0] = '\0';
    ck_assert_int_eq(cio_config_validate(c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, want), "got \"%s\", want \"%s\"", err, want);
}

/* The uint64_t at off is valid at lo and hi, invalid just outside and at
 * UINT64_MAX, the message naming key. */
static void expect_u64_range(const char *key, size_t off, uint64_t lo, uint64_t hi)
{
    cio_config c;
    valid_base(&c);
    uint64_t *v = (uint64_t *)((char *)&c + off);
    char want[128];
    *v = lo;
    expect_valid(&c, key);
    *v = hi;
    expect_valid(&c, key);
    *v = hi + 1;
    snprintf(want, sizeof(want), "%s: %" PRIu64 " is out of range", key, *v);
    expect_invalid(&c, want);
    if (lo > 0) {
        *v = lo - 1;
        snprintf(want, sizeof(want), "%s: %" PRIu64 " is out of range", key, *v);
        expect_invalid(&c, want);
    }
    *v = UINT64_MAX;
    expect_invalid(&c, key);
    cio_config_free(&c);
}

START_TEST(validate_integer_ranges_both_sides)
{
    static const struct {
        const char *key;
        size_t off;
        uint64_t lo, hi;
    } cases[] = {
        {"limits.max_connections", offsetof(cio_config, limits.max_connections), 1, 1000000},
        {"limits.max_connections_per_ip", offsetof(cio_config, limits.max_connections_per_ip), 0,
         1000000},
        {"limits.max_header_bytes", offsetof(cio_config, limits.max_header_bytes), 1024, 1048576},
        {"limits.max_body_bytes", offsetof(cio_config, limits.max_body_bytes), 1,
         UINT64_C(1073741824)},
        {"limits.max_buffered_bytes", offsetof(cio_config, limits.max_buffered_bytes), 0,
         UINT64_C(1099511627776)},
        {"timeouts.header_ms", offsetof(cio_config, timeouts.header_ms), 1, 86400000},
        {"timeouts.body_ms", offsetof(cio_config, timeouts.body_ms), 1, 86400000},
        {"timeouts.keepalive_ms", offsetof(cio_config, timeouts.keepalive_ms), 0, 86400000},
        {"timeouts.write_ms", offsetof(cio_config, timeouts.write_ms), 1, 86400000},
        {"timeouts.drain_ms", offsetof(cio_config, timeouts.drain_ms), 0, 86400000},
        {"websocket.max_message_bytes", offsetof(cio_config, websocket.max_message_bytes), 1,
         UINT64_C(1073741824)},
        {"websocket.ping_interval_ms", offsetof(cio_config, websocket.ping_interval_ms), 0,
         86400000},
        {"websocket.idle_timeout_ms", offsetof(cio_config, websocket.idle_timeout_ms), 0, 86400000},
        {"websocket.compression_window_bits",
         offsetof(cio_config, websocket.compression_window_bits), 9, 15},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_u64_range(cases[i].key, cases[i].off, cases[i].lo, cases[i].hi);
}
END_TEST

START_TEST(validate_handler_ms_range)
{
    expect_u64_range("timeouts.handler_ms", offsetof(cio_config, timeouts.handler_ms), 0, 86400000);
}
END_TEST

START_TEST(validate_pool_wait_ms_range)
{
    expect_u64_range("timeouts.pool_wait_ms", offsetof(cio_config, timeouts.pool_wait_ms), 0,
                     86400000);
}
END_TEST

START_TEST(validate_pool_queue_range)
{
    cio_config c;
    valid_base(&c);
    c.pool_queue = 1;
    expect_valid(&c, "1");
    c.pool_queue = 1048576;
    expect_valid(&c, "1048576");
    c.pool_queue = 0;
    expect_invalid(&c, "pool_queue: 0 is out of range (1..1048576)");
    c.pool_queue = 1048577;
    expect_invalid(&c, "pool_queue: 1048577 is out of range (1..1048576)");
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_uri_bytes_bounded_by_header_bytes)
{
    cio_config c;
    valid_base(&c);
    c.limits.max_uri_bytes = 16;
    expect_valid(&c, "16");
    c.limits.max_uri_bytes = 15;
    expect_invalid(&c, "limits.max_uri_bytes: 15 is out of range (16..8192");
    c.limits.max_uri_bytes = 8192;
    expect_valid(&c, "8192");
    c.limits.max_uri_bytes = 8193;
    expect_invalid(&c, "limits.max_uri_bytes: 8193 is out of range (16..8192");
    c.limits.max_header_bytes = 65536;
    expect_valid(&c, "header raised");
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_requests_per_connection_unbounded)
{
    cio_config c;
    valid_base(&c);
    c.limits.max_requests_per_connection = UINT64_MAX;
    expect_valid(&c, "max");
    c.limits.max_requests_per_connection = 0;
    expect_valid(&c, "0");
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_pool_threads_and_log)
{
    cio_config c;
    valid_base(&c);
    c.pool_threads = 1024;
    expect_valid(&c, "1024 threads");
    c.pool_threads = 1025;
    expect_invalid(&c, "pool_threads: 1025 is out of range (0..1024)");
    c.pool_threads = 0;
    c.log.level = 4;
    expect_invalid(&c, "log.level");
    c.log.level = -1;
    expect_invalid(&c, "log.level");
    c.log.level = 0;
    free(c.log.access);
    c.log.access = strdup("");
    expect_invalid(&c, "log.access");
    free(c.log.access);
    c.log.access = NULL;
    expect_invalid(&c, "log.access");
    c.log.access = strdup("off");
    expect_valid(&c, "off");
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_listen_count_and_duplicates)
{
    cio_config c;
    valid_base(&c);
    c.nlisten = 0;
    expect_invalid(&c, "listen: at least one address");
    ck_assert_int_eq(cio_listen_parse("*:80", &c.listen[0]), 0);
    ck_assert_int_eq(cio_listen_parse("0.0.0.0:80", &c.listen[1]), 0);
    c.nlisten = 2;
    expect_invalid(&c, "listen[1]: \"0.0.0.0:80\" duplicates listen[0] \"*:80\"");
    ck_assert_int_eq(cio_listen_parse("[::]:80", &c.listen[1]), 0);
    expect_valid(&c, "v4 and v6");
    ck_assert_int_eq(cio_listen_parse("*:0", &c.listen[0]), 0);
    ck_assert_int_eq(cio_listen_parse("0.0.0.0:0", &c.listen[1]), 0);
    expect_valid(&c, "two ephemeral ports");
    cio_config_free(&c);
}
END_TEST

/* c listens on the two addresses given. */
static void listen_on(cio_config *c, const char *a, const char *b)
{
    ck_assert_int_eq(cio_listen_parse(a, &c->listen[0]), 0);
    ck_assert_int_eq(cio_listen_parse(b, &c->listen[1]), 0);
    c->nlisten = 2;
}

START_TEST(validate_listen_ipv4_wildcard_overlaps_specific_address)
{
    cio_config c;
    valid_base(&c);
    listen_on(&c, "0.0.0.0:8081", "127.0.0.1:8081");
    expect_invalid(&c, "listen[1]: \"127.0.0.1:8081\" overlaps listen[0] \"0.0.0.0:8081\" (the "
                       "wildcard address takes port 8081 on every IPv4 address)");
    listen_on(&c, "10.1.2.3:8081", "*:8081");
    expect_invalid(&c, "listen[1]: \"*:8081\" overlaps listen[0] \"10.1.2.3:8081\"");
    /* Only on one port of one family. */
    listen_on(&c, "0.0.0.0:8081", "127.0.0.1:8082");
    expect_valid(&c, "another port");
    listen_on(&c, "0.0.0.0:0", "127.0.0.1:0");
    expect_valid(&c, "port 0");
    listen_on(&c, "0.0.0.0:8081", "[::1]:8081");
    expect_valid(&c, "IPv6 specific");
    listen_on(&c, "127.0.0.1:8081", "127.0.0.2:8081");
    expect_valid(&c, "two specific addresses");
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_listen_ipv6_wildcard_overlaps_specific_address)
{
    cio_config c;
    valid_base(&c);
    listen_on(&c, "[::]:8081", "[::1]:8081");
    expect_invalid(&c, "listen[1]: \"[::1]:8081\" overlaps listen[0] \"[::]:8081\" (the wildcard "
                       "address takes port 8081 on every IPv6 address)");
    listen_on(&c, "[2001:db8::1]:443", "[::]:443");
    expect_invalid(&c, "listen[1]: \"[::]:443\" overlaps listen[0] \"[2001:db8::1]:443\"");
    /* IPv6 sockets are IPv6-only: no overlap with IPv4. */
    listen_on(&c, "[::]:8081", "127.0.0.1:8081");
    expect_valid(&c, "IPv4 specific");
    listen_on(&c, "[::]:0", "[::1]:0");
    expect_valid(&c, "port 0");
    cio_config_free(&c);
}
END_TEST

/* valid_base() with log.access set to path. */
static void access_log_at(cio_config *c, const char *path)
{
    valid_base(c);
    free(c->log.access);
    c->log.access = strdup(path);
}

/* cio_config_validate(c) in a child without the power to override file
 * permissions (root drops to nobody), so that permission checks mean the same
 * for every user; err gets its message. */
static int validate_unprivileged(const cio_config *c)
{
    ck_assert_int_eq(chmod(tmpdir, 0755), 0); /* so that nobody may reach it */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0))
            _exit(3);
        char msg[sizeof(err)] = "";
        int r = cio_config_validate(c, msg, sizeof(msg));
        if (write(fds[1], msg, strlen(msg)) < 0)
            _exit(4);
        _exit(r == 0 ? 0 : r == -EINVAL ? 1 : 2);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t k;
    while (n < sizeof(err) - 1 && (k = read(fds[0], err + n, sizeof(err) - 1 - n)) > 0)
        n += (size_t)k;
    err[n] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) <= 1, "child status %d", status);
    return WEXITSTATUS(status) == 0 ? 0 : -EINVAL;
}

START_TEST(validate_access_log_new_file_judged_by_its_directory)
{
    cio_config c;
    char want[PATH_MAX * 2 + 64];
    access_log_at(&c, tpath("nodir/access.log"));
    snprintf(want, sizeof(want),
             "log.access: %s: cannot create it in %s: No such file or directory", c.log.access,
             tpath("nodir"));
    expect_invalid(&c, want);
    cio_config_free(&c);
    write_file("file", "x");
    access_log_at(&c, tpath("file/access.log"));
    snprintf(want, sizeof(want), "log.access: %s: Not a directory", c.log.access);
    expect_invalid(&c, want);
    cio_config_free(&c);
    access_log_at(&c, tpath("access.log"));
    expect_valid(&c, "new file in tmpdir");
    ck_assert_int_eq(access(c.log.access, F_OK), -1); /* judged, not created */
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_access_log_directory_not_writable)
{
    ck_assert_int_eq(mkdir(tpath("ro"), 0555), 0);
    cio_config c;
    access_log_at(&c, tpath("ro/access.log"));
    ck_assert_int_eq(validate_unprivileged(&c), -EINVAL);
    char want[PATH_MAX * 2 + 64];
    snprintf(want, sizeof(want), "log.access: %s: cannot create it in %s: Permission denied",
             c.log.access, tpath("ro"));
    ck_assert_str_eq(err, want);
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_access_log_file_must_be_writable)
{
    const char *p = write_file("access.log", "");
    cio_config c;
    access_log_at(&c, p);
    ck_assert_int_eq(chmod(p, 0666), 0);
    ck_assert_msg(validate_unprivileged(&c) == 0, "%s", err);
    ck_assert_int_eq(chmod(p, 0444), 0);
    ck_assert_int_eq(validate_unprivileged(&c), -EINVAL);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "log.access: %s: Permission denied", p);
    ck_assert_str_eq(err, want);
    cio_config_free(&c);
}
END_TEST

/* What open(O_WRONLY | O_APPEND) takes: files, devices, pipes (/dev/stdout). */
START_TEST(validate_access_log_must_be_a_file_device_or_pipe)
{
    cio_config c;
    char want[PATH_MAX + 64];
    access_log_at(&c, tmpdir);
    snprintf(want, sizeof(want), "log.access: %s: Is a directory", tmpdir);
    expect_invalid(&c, want);
    cio_config_free(&c);

    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tpath("sock"));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    access_log_at(&c, sa.sun_path);
    snprintf(want, sizeof(want), "log.access: %s: not a regular file, character device or pipe",
             sa.sun_path);
    expect_invalid(&c, want);
    cio_config_free(&c);
    close(fd);

    access_log_at(&c, "/dev/null");
    expect_valid(&c, "character device");
    cio_config_free(&c);
    ck_assert_int_eq(mkfifo(tpath("fifo"), 0600), 0);
    access_log_at(&c, tpath("fifo"));
    expect_valid(&c, "fifo");
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_root_missing)
{
    cio_config c;
    valid_base(&c);
    c.root = strdup(tpath("missing"));
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "root: %s: No such file or directory", c.root);
    ck_assert_int_eq(cio_config_validate(&c, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, want);
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_root_not_a_directory)
{
    cio_config c;
    valid_base(&c);
    c.root = strdup(write_file("file", "x"));
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "root: %s: not a directory", c.root);
    ck_assert_int_eq(cio_config_validate(&c, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, want);
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_root_directory_ok)
{
    cio_config c;
    valid_base(&c);
    c.root = strdup(tmpdir);
    expect_valid(&c, "tmpdir");
    cio_config_free(&c);
}
END_TEST

/* ---- command line ---- */

START_TEST(args_none_gives_defaults)
{
    cio_config c;
    ck_assert_int_eq(from_argv(&c, (char *[]){"corio", NULL}), 0);
    ck_assert_int_eq(action, CIO_CONFIG_RUN);
    ck_assert_uint_eq(c.nlisten, 1);
    ck_assert_str_eq(c.listen[0].text, "0.0.0.0:8080");
    ck_assert_str_eq(c.log.access, "-");
    cio_config_free(&c);
}
END_TEST

/* Its access log is in tmpdir: validation judges it, wherever the tests run. */
static const char *sample_file(void)
{
    char json[PATH_MAX + 256];
    snprintf(json, sizeof(json),
             "{\"listen\": [\"127.0.0.1:1\", \"127.0.0.1:2\"],"
             " \"log\": {\"level\": \"error\", \"access\": \"%s\"},"
             " \"limits\": {\"max_connections\": 77}}",
             tpath("file.log"));
    return write_file("corio.json", json);
}

START_TEST(args_flags_override_file_whatever_the_order)
{
    const char *p = sample_file();
    char *dir = tmpdir;
    for (int order = 0; order < 2; order++) {
        cio_config c;
        int r = order == 0 ? from_args(&c, "--config", (char *)p, "--listen", "[::1]:9",
                                       "--log-level", "debug", "--access-log", "off", "--root", dir)
                           : from_args(&c, "--listen", "[::1]:9", "--log-level", "debug",
                                       "--access-log", "off", "--root", dir, "--config", (char *)p);
        ck_assert_msg(r == 0, "order %d: %s", order, err);
        ck_assert_int_eq(action, CIO_CONFIG_RUN);
        ck_assert_uint_eq(c.nlisten, 1);
        assert_listen(&c.listen[0], AF_INET6, "::1", 9);
        ck_assert_int_eq(c.log.level, 3);
        ck_assert_str_eq(c.log.access, "off");
        ck_assert_str_eq(c.root, tmpdir);
        ck_assert_uint_eq(c.limits.max_connections, 77); /* from the file */
        cio_config_free(&c);
    }
}
END_TEST

START_TEST(args_file_applies_without_flags)
{
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--config", (char *)sample_file()), 0);
    ck_assert_uint_eq(c.nlisten, 2);
    ck_assert_str_eq(c.listen[1].text, "127.0.0.1:2");
    ck_assert_int_eq(c.log.level, 0);
    ck_assert_str_eq(c.log.access, tpath("file.log"));
    cio_config_free(&c);
}
END_TEST

START_TEST(args_repeated_listen_replaces_then_appends)
{
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--listen", "*:1", "--config", (char *)sample_file(), "--listen",
                               "[::]:2", "--listen=localhost:3"),
                     0);
    ck_assert_uint_eq(c.nlisten, 3);
    assert_listen(&c.listen[0], AF_INET, "0.0.0.0", 1);
    assert_listen(&c.listen[1], AF_INET6, "::", 2);
    assert_listen(&c.listen[2], AF_INET, "127.0.0.1", 3);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_listen_at_most_sixteen)
{
    char *argv[2 + 2 * (CIO_CONFIG_MAX_LISTEN + 1)];
    char ports[CIO_CONFIG_MAX_LISTEN + 1][32];
    int n = 0;
    argv[n++] = "corio";
    for (int i = 0; i < CIO_CONFIG_MAX_LISTEN; i++) {
        snprintf(ports[i], sizeof(ports[i]), "127.0.0.1:%d", 100 + i);
        argv[n++] = "--listen";
        argv[n++] = ports[i];
    }
    argv[n] = NULL;
    cio_config c;
    ck_assert_int_eq(from_argv(&c, argv), 0);
    ck_assert_uint_eq(c.nlisten, CIO_CONFIG_MAX_LISTEN);
    cio_config_free(&c);
    snprintf(ports[CIO_CONFIG_MAX_LISTEN], 32, "127.0.0.1:99");
    argv[n++] = "--listen";
    argv[n++] = ports[CIO_CONFIG_MAX_LISTEN];
    argv[n] = NULL;
    expect_args_error(argv, "--listen: too many addresses (at most 16)");
}
END_TEST

START_TEST(args_unique_abbreviation_accepted)
{
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--lis", "*:3", "--log-l=warn"), 0);
    assert_listen(&c.listen[0], AF_INET, "0.0.0.0", 3);
    ck_assert_int_eq(c.log.level, 1);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_short_options)
{
    cio_config c;
    ck_assert_int_eq(from_args(&c, "-c", (char *)sample_file(), "-l", "[::]:7", "-r", tmpdir, "-t"),
                     0);
    ck_assert_int_eq(action, CIO_CONFIG_CHECK);
    assert_listen(&c.listen[0], AF_INET6, "::", 7);
    ck_assert_str_eq(c.root, tmpdir);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_check_config_action)
{
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--check-config", "--log-level=warn"), 0);
    ck_assert_int_eq(action, CIO_CONFIG_CHECK);
    ck_assert_int_eq(c.log.level, 1);
    cio_config_free(&c);
    /* A check that fails is an error, not a CHECK action. */
    ck_assert_int_eq(from_args(&c, "--check-config", "--root", (char *)tpath("none")), -EINVAL);
    ck_assert_int_ne(action, CIO_CONFIG_CHECK);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_help_and_version_need_no_valid_config)
{
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--config", (char *)tpath("missing.json"), "--help"), 0);
    ck_assert_int_eq(action, CIO_CONFIG_HELP);
    cio_config_free(&c);
    ck_assert_int_eq(from_args(&c, "-h"), 0);
    ck_assert_int_eq(action, CIO_CONFIG_HELP);
    cio_config_free(&c);
    ck_assert_int_eq(from_args(&c, "--listen", "bogus", "--version"), 0);
    ck_assert_int_eq(action, CIO_CONFIG_VERSION);
    cio_config_free(&c);
    ck_assert_int_eq(from_args(&c, "--version", "--help"), 0);
    ck_assert_int_eq(action, CIO_CONFIG_HELP);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_unknown_option)
{
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--lissten", "*:80"), -EINVAL);
    ck_assert_str_eq(err, "unknown option \"--lissten\" (see --help)");
    cio_config_free(&c);
    expect_args_error((char *[]){"corio", "--root", "/", "--lissten=*:80", NULL},
                      "unknown option \"--lissten\" (see --help)");
    expect_args_error((char *[]){"corio", "-x", NULL}, "unknown option \"-x\" (see --help)");
    expect_args_error((char *[]){"corio", "--help", "-tx", NULL},
                      "unknown option \"-x\" (see --help)");
    expect_args_error((char *[]){"corio", "--c", "x", NULL},
                      "ambiguous option \"--c\" (see --help)");
}
END_TEST

START_TEST(args_missing_argument)
{
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--listen"), -EINVAL);
    ck_assert_str_eq(err, "option \"--listen\" requires an argument (see --help)");
    cio_config_free(&c);
    expect_args_error((char *[]){"corio", "--root", "/", "--config", NULL},
                      "option \"--config\" requires an argument (see --help)");
    expect_args_error((char *[]){"corio", "--log-level", NULL},
                      "option \"--log-level\" requires an argument");
    expect_args_error((char *[]){"corio", "-c", NULL}, "option \"-c\" requires an argument");
    expect_args_error((char *[]){"corio", "-tl", NULL}, "option \"-l\" requires an argument");
}
END_TEST

START_TEST(args_argument_to_flag_without_one)
{
    expect_args_error((char *[]){"corio", "--check-config=yes", NULL},
                      "option \"--check-config\" takes no argument (see --help)");
}
END_TEST

START_TEST(args_positional_is_an_error)
{
    expect_args_error((char *[]){"corio", "serve", NULL}, "unexpected argument \"serve\"");
    expect_args_error((char *[]){"corio", "--log-level", "info", "x", "--help", NULL},
                      "unexpected argument \"x\" (see --help)");
    expect_args_error((char *[]){"corio", "--", "--help", NULL}, "unexpected argument \"--help\"");
}
END_TEST

START_TEST(args_bad_values)
{
    expect_args_error((char *[]){"corio", "--listen", "nope", NULL},
                      "--listen: invalid address \"nope\" " LISTEN_HINT);
    expect_args_error((char *[]){"corio", "--log-level", "loud", NULL},
                      "--log-level: expected one of error, warn, info, debug (got \"loud\")");
    expect_args_error((char *[]){"corio", "--access-log", "", NULL}, "--access-log:");
    expect_args_error((char *[]){"corio", "--root", "", NULL}, "--root:");
    expect_args_error((char *[]){"corio", "--root", (char *)tpath("none"), NULL}, "root: /tmp/");
}
END_TEST

START_TEST(args_file_errors_propagate)
{
    const char *bad = write_file("bad.json", "{\"limits\": {\"max_connections\": 0}}");
    expect_args_error((char *[]){"corio", "--config", (char *)bad, NULL},
                      "limits.max_connections: 0 is out of range (1..1000000)");
    const char *typo = write_file("typo.json", "{\"timeout\": {}}");
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s: unknown key \"timeout\"", typo);
    expect_args_error((char *[]){"corio", "--config", (char *)typo, NULL}, want);
    snprintf(want, sizeof(want), "%s: No such file or directory", tpath("none.json"));
    expect_args_error((char *[]){"corio", "-c", (char *)tpath("none.json"), NULL}, want);
}
END_TEST

/* from_args() with only "--config" and a file holding json; the expected
 * error is "<file>: " + want. */
static void expect_file_error(const char *json, const char *want)
{
    const char *p = write_file("corio.json", json);
    char full[PATH_MAX + 256];
    snprintf(full, sizeof(full), "%s: %s", p, want);
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--config", (char *)p), -EINVAL);
    ck_assert_str_eq(err, full);
    cio_config_free(&c);
}

START_TEST(args_range_error_names_the_file)
{
    expect_file_error("{\"limits\": {\"max_connections\": 0}}",
                      "limits.max_connections: 0 is out of range (1..1000000)");
}
END_TEST

/* The file set max_header_bytes, which made the default max_uri_bytes too big. */
START_TEST(args_cross_field_error_names_the_file)
{
    expect_file_error("{\"limits\": {\"max_header_bytes\": 4096}}",
                      "limits.max_uri_bytes: 8192 is out of range (16..4096, at most "
                      "limits.max_header_bytes)");
}
END_TEST

START_TEST(args_root_error_names_the_file)
{
    const char *f = write_file("file", "x");
    char json[PATH_MAX + 32], want[PATH_MAX + 64];
    snprintf(json, sizeof(json), "{\"root\": \"%s\"}", f);
    snprintf(want, sizeof(want), "root: %s: not a directory", f);
    expect_file_error(json, want);
}
END_TEST

START_TEST(args_root_error_names_the_flag)
{
    const char *f = write_file("file", "x");
    const char *p = write_file("corio.json", "{\"pool_threads\": 2}");
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "--root: %s: not a directory", f);
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--config", (char *)p, "--root", (char *)f), -EINVAL);
    ck_assert_str_eq(err, want);
    cio_config_free(&c);
    ck_assert_int_eq(from_args(&c, "--root", (char *)tpath("none")), -EINVAL);
    snprintf(want, sizeof(want), "--root: %s: No such file or directory", tpath("none"));
    ck_assert_str_eq(err, want);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_listen_error_names_the_file)
{
    expect_file_error("{\"listen\": [\"*:80\", \"0.0.0.0:80\"]}",
                      "listen[1]: \"0.0.0.0:80\" duplicates listen[0] \"*:80\"");
}
END_TEST

/* The flags replaced the file's list, so the file is not to blame. */
START_TEST(args_listen_error_names_the_flag)
{
    const char *p = write_file("corio.json", "{\"listen\": [\"*:1\"]}");
    cio_config c;
    ck_assert_int_eq(
        from_args(&c, "--config", (char *)p, "--listen", "*:80", "--listen", "0.0.0.0:80"),
        -EINVAL);
    ck_assert_str_eq(err, "--listen: \"0.0.0.0:80\" duplicates \"*:80\"");
    cio_config_free(&c);
}
END_TEST

START_TEST(args_listen_overlap_names_both_flags)
{
    expect_args_error((char *[]){"corio", "--listen", "[::]:80", "--listen", "[::1]:80", NULL},
                      "--listen: \"[::1]:80\" overlaps \"[::]:80\" (");
}
END_TEST

START_TEST(args_access_log_error_names_the_flag)
{
    const char *p = tpath("nodir/access.log");
    char want[PATH_MAX * 2 + 64];
    snprintf(want, sizeof(want), "--access-log: %s: cannot create it in %s: ", p, tpath("nodir"));
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--access-log", (char *)p), -EINVAL);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got \"%s\"", err);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_access_log_error_names_the_file)
{
    char json[PATH_MAX + 64], want[PATH_MAX + 64];
    snprintf(json, sizeof(json), "{\"log\": {\"access\": \"%s\"}}", tmpdir);
    snprintf(want, sizeof(want), "log.access: %s: Is a directory", tmpdir);
    expect_file_error(json, want);
}
END_TEST

START_TEST(args_error_truncated_within_the_file_name)
{
    const char *p = write_file("corio.json", "{\"limits\": {\"max_connections\": 0}}");
    char *argv[] = {"corio", "--config", (char *)p, NULL};
    char small[8];
    cio_config c;
    ck_assert_int_eq(cio_config_from_args(&c, 3, argv, NULL, small, sizeof(small)), -EINVAL);
    ck_assert_int_eq(strncmp(small, p, sizeof(small) - 1), 0);
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_can_be_parsed_repeatedly)
{
    cio_config c;
    /* Leave getopt mid-group, then mid-argv: the next call starts afresh. */
    ck_assert_int_eq(from_args(&c, "-hxt"), -EINVAL);
    cio_config_free(&c);
    ck_assert_int_eq(from_args(&c, "--log-level", "debug", "--bogus", "--listen", "*:1"), -EINVAL);
    cio_config_free(&c);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(from_args(&c, "--listen", "*:5", "--check-config"), 0);
        ck_assert_int_eq(action, CIO_CONFIG_CHECK);
        assert_listen(&c.listen[0], AF_INET, "0.0.0.0", 5);
        ck_assert_int_eq(c.log.level, 2); /* nothing left over from the earlier calls */
        cio_config_free(&c);
    }
}
END_TEST

START_TEST(usage_lists_flags_and_keys)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    cio_config_usage(f, "/usr/sbin/corio");
    fclose(f);
    static const char *const want[] = {"Usage: corio ",
                                       "--config FILE",
                                       "--listen ADDR:PORT",
                                       "--root DIR",
                                       "--log-level",
                                       "--access-log",
                                       "--check-config",
                                       "--version",
                                       "--help",
                                       "\"listen\"",
                                       "\"root\"",
                                       "\"serve_dotfiles\": false",
                                       "\"pool_threads\": 0,                   0..1024",
                                       "\"pool_queue\": 1024,                  1..1048576",
                                       "\"max_connections\": 100000",
                                       "\"max_header_bytes\": 8192",
                                       "\"max_uri_bytes\": 8192",
                                       "\"max_body_bytes\": 1048576",
                                       "\"max_requests_per_connection\": 0",
                                       "\"header_ms\": 10000",
                                       "\"body_ms\": 30000",
                                       "\"keepalive_ms\": 75000",
                                       "\"write_ms\": 30000",
                                       "\"handler_ms\": 60000",
                                       "\"pool_wait_ms\": 1000",
                                       "\"drain_ms\": 10000",
                                       "\"level\": \"info\"",
                                       "\"access\": \"-\""};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(text, want[i]), "usage lacks %s", want[i]);
    free(text);
}
END_TEST

START_TEST(pool_priority_key)
{
    cio_config c;
    char msg[256];
    cio_config_defaults(&c);
    ck_assert_int_eq(c.pool_priority, CIO_CONFIG_POOL_LOW);
    ck_assert_int_eq(
        cio_config_load_string(&c, "{\"pool_priority\": \"idle\"}", "t", msg, sizeof(msg)), 0);
    ck_assert_int_eq(c.pool_priority, CIO_CONFIG_POOL_IDLE);
    ck_assert_int_eq(
        cio_config_load_string(&c, "{\"pool_priority\": \"fast\"}", "t", msg, sizeof(msg)),
        -EINVAL);
    ck_assert_ptr_nonnull(strstr(msg, "pool_priority: expected one of low, idle, normal"));
    ck_assert_int_eq(c.pool_priority, CIO_CONFIG_POOL_IDLE); /* unchanged on error */
    cio_config_free(&c);
}
END_TEST

/* ---- websocket ---- */

/* Every websocket key with its default and range. */
START_TEST(usage_lists_websocket_keys)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    cio_config_usage(f, "corio");
    fclose(f);
    static const char *const want[] = {
        "\"websocket\": {",
        "\"max_message_bytes\": 1048576,      1..1073741824 (1 GiB)",
        "\"ping_interval_ms\": 30000,         0..86400000",
        "\"idle_timeout_ms\": 120000,         0..86400000",
        "more than ping_interval_ms",
        "\"send_queue_bytes\": 2097152,       max_message_bytes + 14..2147483648",
        "\"origins\": [],                     allowed Origin values, at most 64",
        "\"null\" or scheme://host[:port], scheme",
        "\"compression\": true,               true or false",
        "\"compression_window_bits\": 12      9..15",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(text, want[i]), "usage lacks %s", want[i]);
    free(text);
}
END_TEST

START_TEST(json_websocket_every_key)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"websocket\": {\"max_message_bytes\": 67108864,"
                              " \"ping_interval_ms\": 0, \"idle_timeout_ms\": 5,"
                              " \"send_queue_bytes\": 67108878,"
                              " \"origins\": [\"https://example.com\", \"null\"],"
                              " \"compression\": false, \"compression_window_bits\": 9}}"),
                     0);
    ck_assert_uint_eq(c.websocket.max_message_bytes, UINT64_C(67108864));
    ck_assert_uint_eq(c.websocket.ping_interval_ms, 0);
    ck_assert_uint_eq(c.websocket.idle_timeout_ms, 5);
    ck_assert_uint_eq(c.websocket.send_queue_bytes, UINT64_C(67108878));
    ck_assert_uint_eq(c.websocket.norigins, 2);
    ck_assert_str_eq(c.websocket.origins[0], "https://example.com");
    ck_assert_str_eq(c.websocket.origins[1], "null");
    ck_assert(!c.websocket.compression);
    ck_assert_uint_eq(c.websocket.compression_window_bits, 9);
    ck_assert_int_eq(load(&c, "{\"websocket\": {\"compression\": true}}"), 0);
    ck_assert(c.websocket.compression);
    ck_assert_uint_eq(c.websocket.norigins, 2); /* the other keys are kept */
    ck_assert_uint_eq(c.websocket.max_message_bytes, UINT64_C(67108864));
    ck_assert_int_eq(cio_config_validate(&c, err, sizeof(err)), 0);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_websocket_compression_must_be_boolean)
{
    static const char *const values[] = {"1", "0", "\"true\"", "null", "[]", "{}"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char doc[80];
        snprintf(doc, sizeof(doc), "{\"websocket\": {\"compression\": %s}}", values[i]);
        expect_load_error(doc, "test.json: websocket.compression: expected true or false");
    }
}
END_TEST

/* Each origin is stored as RFC 6454 serialises it, which is what a browser
 * sends in its Origin header. */
START_TEST(json_websocket_origins_stored_canonical)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"https://example.com", "https://example.com"},
        {"http://example.com", "http://example.com"},
        {"HTTPS://Example.COM", "https://example.com"},
        {"https://example.com:443", "https://example.com"},
        {"http://example.com:80", "http://example.com"},
        {"http://example.com:443", "http://example.com:443"},
        {"https://example.com:80", "https://example.com:80"},
        {"https://example.com:08443", "https://example.com:8443"},
        {"http://localhost:3000", "http://localhost:3000"},
        {"https://a-b_c.d1.example", "https://a-b_c.d1.example"},
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
        {"https://[::1]", "https://[::1]"},
        {"https://[2001:DB8:0:0:0:0:0:1]:8443", "https://[2001:db8::1]:8443"},
        {"https://[2001:db8:0:1:0:0:0:1]", "https://[2001:db8:0:1::1]"},
        {"https://[2001:db8:0:1:1:1:1:1]", "https://[2001:db8:0:1:1:1:1:1]"},
        {"https://[0:0:0:0:0:0:0:0]", "https://[::]"},
        {"https://[1:0:0:2:0:0:0:3]", "https://[1:0:0:2::3]"},
        {"https://[1:0:0:0:0:0:0:0]:443", "https://[1::]"},
        {"null", "null"},
        {"NULL", "null"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[256];
        snprintf(doc, sizeof(doc), "{\"websocket\": {\"origins\": [\"%s\"]}}", cases[i].in);
        cio_config c;
        cio_config_defaults(&c);
        ck_assert_msg(load(&c, doc) == 0, "rejected %s: %s", cases[i].in, err);
        ck_assert_uint_eq(c.websocket.norigins, 1);
        ck_assert_str_eq(c.websocket.origins[0], cases[i].out);
        expect_valid(&c, cases[i].in);
        cio_config_free(&c);
    }
}
END_TEST

START_TEST(json_websocket_origins_invalid)
{
    static const struct {
        const char *in, *why;
    } cases[] = {
        {"", ORIGIN_HINT},
        {"example.com", ORIGIN_HINT},
        {"ftp://example.com", ORIGIN_HINT},
        {"wss://example.com", ORIGIN_HINT},
        {"https:/example.com", ORIGIN_HINT},
        {"*", ORIGIN_HINT},
        {"https://example.com/", "an origin has no trailing slash"},
        {"https://example.com:8443/", "an origin has no trailing slash"},
        {"https://example.com/app", "an origin has no path, query or fragment"},
        {"https://example.com//", "an origin has no path, query or fragment"},
        {"https://example.com?x", "an origin has no path, query or fragment"},
        {"https://example.com#x", "an origin has no path, query or fragment"},
        {"https://user@example.com", "an origin has no user name or password"},
        {"https://user:pw@example.com", "an origin has no user name or password"},
        {"https://", "no host"},
        {"https://:443", "no host"},
        {"https://exa mple.com", "invalid host name"},
        {"https://*.example.com", "invalid host name"},
        {"https://example..com", "invalid host name"},
        {"https://.example.com", "invalid host name"},
        {"https://example.com.", "invalid host name"},
        {"https://ex\xc3\xa4mple.com", "invalid host name"},
        {"https://1.2.3.256", "invalid IPv4 address"},
        {"https://1.2.3", "invalid IPv4 address"},
        {"https://01.2.3.4", "invalid IPv4 address"},
        {"https://example.123", "invalid IPv4 address"},
        {"https://[::1", "invalid IPv6 address"},
        {"https://[]", "invalid IPv6 address"},
        {"https://[::g]", "invalid IPv6 address"},
        {"https://[fe80::1%lo]", "invalid IPv6 address"},
        {"https://::1", "no host"},
        {"https://example.com:", "invalid port (expected 1..65535)"},
        {"https://example.com:0", "invalid port (expected 1..65535)"},
        {"https://example.com:65536", "invalid port (expected 1..65535)"},
        {"https://example.com:-1", "invalid port (expected 1..65535)"},
        {"https://example.com:44 3", "invalid port (expected 1..65535)"},
        {"https://example.com:443:443", "invalid port (expected 1..65535)"},
        {"https://[::1]x", "invalid port (expected 1..65535)"},
        {"nul", ORIGIN_HINT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[256], want[256];
        snprintf(doc, sizeof(doc), "{\"websocket\": {\"origins\": [\"null\", \"%s\"]}}",
                 cases[i].in);
        snprintf(want, sizeof(want), "test.json: websocket.origins[1]: invalid origin \"%s\": %s",
                 cases[i].in, cases[i].why);
        expect_load_error(doc, want);
    }
    /* A 63-byte label is a host name, a 64-byte one is not; 253 bytes in all
     * are, 254 are not. */
    char host[300], doc[400];
    memset(host, 'a', 63);
    strcpy(host + 63, ".example");
    snprintf(doc, sizeof(doc), "{\"websocket\": {\"origins\": [\"https://%s\"]}}", host);
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_msg(load(&c, doc) == 0, "%s", err);
    memset(host, 'a', 64);
    strcpy(host + 64, ".example");
    snprintf(doc, sizeof(doc), "{\"websocket\": {\"origins\": [\"https://%s\"]}}", host);
    expect_load_error(doc, "invalid host name");
    memset(host, 'a', 253); /* labels of 63, 63, 63 and 61 bytes */
    host[63] = host[127] = host[191] = '.';
    host[253] = '\0';
    snprintf(doc, sizeof(doc), "{\"websocket\": {\"origins\": [\"https://%s:8443\"]}}", host);
    ck_assert_msg(load(&c, doc) == 0, "%s", err);
    ck_assert_uint_eq(strlen(c.websocket.origins[0]), strlen("https://:8443") + 253);
    host[253] = 'a';
    host[254] = '\0';
    snprintf(doc, sizeof(doc), "{\"websocket\": {\"origins\": [\"https://%s\"]}}", host);
    expect_load_error(doc, "invalid host name");
    cio_config_free(&c);
}
END_TEST

START_TEST(json_websocket_origins_errors)
{
    expect_load_error("{\"websocket\": {\"origins\": \"https://example.com\"}}",
                      "test.json: websocket.origins: expected an array of strings");
    expect_load_error("{\"websocket\": {\"origins\": null}}",
                      "websocket.origins: expected an array of strings");
    expect_load_error("{\"websocket\": {\"origins\": [\"null\", 5]}}",
                      "test.json: websocket.origins[1]: expected a string");
    expect_load_error("{\"websocket\": {\"origins\": [[\"https://example.com\"]]}}",
                      "websocket.origins[0]: expected a string");
    /* One origin written twice, as the user wrote them. */
    expect_load_error("{\"websocket\": {\"origins\": [\"https://a.example\", \"null\","
                      " \"HTTPS://A.example:443\"]}}",
                      "test.json: websocket.origins[2]: \"HTTPS://A.example:443\" duplicates "
                      "websocket.origins[0] \"https://a.example\"");
    expect_load_error("{\"websocket\": {\"origins\": [\"null\", \"null\"]}}",
                      "websocket.origins[1]: \"null\" duplicates websocket.origins[0] \"null\"");
}
END_TEST

START_TEST(json_websocket_origins_at_most_64)
{
    char doc[4096] = "{\"websocket\": {\"origins\": [";
    for (int i = 0; i < CIO_CONFIG_MAX_ORIGINS; i++)
        snprintf(doc + strlen(doc), sizeof(doc) - strlen(doc), "%s\"https://h%d.example\"",
                 i ? ", " : "", i);
    char *end = doc + strlen(doc);
    strcpy(end, "]}}");
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_msg(load(&c, doc) == 0, "%s", err);
    ck_assert_uint_eq(c.websocket.norigins, 64);
    ck_assert_str_eq(c.websocket.origins[63], "https://h63.example");
    expect_valid(&c, "64 origins");
    strcpy(end, ", \"https://h64.example\"]}}");
    expect_load_error(doc, "test.json: websocket.origins: too many origins (65, at most 64)");
    cio_config_free(&c);
}
END_TEST

/* A later list replaces an earlier one; [] empties it (any origin again); a
 * document with an error leaves the list as it was. */
START_TEST(json_websocket_origins_replaced)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"websocket\": {\"origins\": [\"http://a.example\","
                              " \"http://b.example\", \"http://c.example\"]}}"),
                     0);
    ck_assert_int_eq(load(&c, "{\"websocket\": {\"origins\": [\"http://d.example\"]}}"), 0);
    ck_assert_uint_eq(c.websocket.norigins, 1);
    ck_assert_str_eq(c.websocket.origins[0], "http://d.example");
    ck_assert_ptr_null(c.websocket.origins[1]);
    ck_assert_int_eq(load(&c, "{\"websocket\": {\"origins\": [\"http://e.example\","
                              " \"http://f.example/\"]}}"),
                     -EINVAL);
    ck_assert_int_eq(load(&c, "{\"websocket\": {\"origins\": [\"http://e.example\"],"
                              " \"ping_interval_ms\": 1, \"compression\": 0}}"),
                     -EINVAL);
    ck_assert_uint_eq(c.websocket.norigins, 1);
    ck_assert_str_eq(c.websocket.origins[0], "http://d.example");
    ck_assert_uint_eq(c.websocket.ping_interval_ms, 30000);
    ck_assert(c.websocket.compression);
    ck_assert_int_eq(load(&c, "{\"websocket\": {\"origins\": []}}"), 0);
    ck_assert_uint_eq(c.websocket.norigins, 0);
    ck_assert_ptr_null(c.websocket.origins[0]);
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_websocket_idle_timeout_above_ping_interval)
{
    cio_config c;
    cio_config_defaults(&c);
    c.websocket.idle_timeout_ms = 30000;
    expect_invalid(&c, "websocket.idle_timeout_ms: 30000 must be greater than "
                       "websocket.ping_interval_ms (30000), or 0 (never)");
    c.websocket.idle_timeout_ms = 1;
    expect_invalid(&c, "websocket.idle_timeout_ms: 1 must be greater than "
                       "websocket.ping_interval_ms (30000)");
    c.websocket.idle_timeout_ms = 30001;
    expect_valid(&c, "idle just above ping");
    c.websocket.idle_timeout_ms = 0;
    expect_valid(&c, "no idle timeout");
    c.websocket.idle_timeout_ms = 1;
    c.websocket.ping_interval_ms = 0;
    expect_valid(&c, "no pings");
    c.websocket.ping_interval_ms = 86400000;
    c.websocket.idle_timeout_ms = 86400000;
    expect_invalid(&c, "websocket.idle_timeout_ms: 86400000 must be greater than "
                       "websocket.ping_interval_ms (86400000)");
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_websocket_send_queue_holds_a_largest_frame)
{
    cio_config c;
    cio_config_defaults(&c);
    c.websocket.send_queue_bytes = 1048576 + 14;
    expect_valid(&c, "max_message_bytes + 14");
    c.websocket.send_queue_bytes = 1048576 + 13;
    expect_invalid(&c, "websocket.send_queue_bytes: 1048589 is out of range "
                       "(1048590..2147483648, at least websocket.max_message_bytes + 14)");
    c.websocket.send_queue_bytes = 0;
    expect_invalid(&c, "websocket.send_queue_bytes: 0 is out of range (1048590..");
    c.websocket.send_queue_bytes = UINT64_C(2147483648);
    expect_valid(&c, "2 GiB");
    c.websocket.send_queue_bytes = UINT64_C(2147483649);
    expect_invalid(&c, "websocket.send_queue_bytes: 2147483649 is out of range (1048590..");
    c.websocket.send_queue_bytes = UINT64_MAX;
    expect_invalid(&c, "websocket.send_queue_bytes: 18446744073709551615 is out of range");
    /* The issue's 64 MiB messages, and the 1 GiB bound. */
    c.websocket.max_message_bytes = UINT64_C(67108864);
    c.websocket.send_queue_bytes = 2097152;
    expect_invalid(&c, "websocket.send_queue_bytes: 2097152 is out of range (67108878..");
    c.websocket.send_queue_bytes = UINT64_C(67108878);
    expect_valid(&c, "64 MiB messages");
    c.websocket.max_message_bytes = UINT64_C(1073741824);
    c.websocket.send_queue_bytes = UINT64_C(1073741838);
    expect_valid(&c, "1 GiB messages");
    c.websocket.send_queue_bytes = UINT64_C(1073741837);
    expect_invalid(&c, "websocket.send_queue_bytes: 1073741837 is out of range (1073741838..");
    c.websocket.max_message_bytes = 1;
    c.websocket.send_queue_bytes = 15;
    expect_valid(&c, "1-byte messages");
    cio_config_free(&c);
}
END_TEST

/* What a program that fills the struct itself may get wrong. */
START_TEST(validate_websocket_origins)
{
    cio_config c;
    cio_config_defaults(&c);
    c.websocket.origins[0] = strdup("https://a.example");
    c.websocket.origins[1] = strdup("HTTPS://B.example:443"); /* valid, if not canonical */
    c.websocket.norigins = 2;
    expect_valid(&c, "two origins");
    free(c.websocket.origins[1]);
    c.websocket.origins[1] = strdup("https://A.EXAMPLE:443");
    expect_invalid(&c, "websocket.origins[1]: \"https://A.EXAMPLE:443\" duplicates "
                       "websocket.origins[0] \"https://a.example\"");
    free(c.websocket.origins[1]);
    c.websocket.origins[1] = strdup("https://a.example/");
    expect_invalid(&c, "websocket.origins[1]: invalid origin \"https://a.example/\": an origin "
                       "has no trailing slash");
    free(c.websocket.origins[1]);
    c.websocket.origins[1] = NULL;
    expect_invalid(&c, "websocket.origins[1]: expected a string");
    c.websocket.norigins = 1;
    expect_valid(&c, "one origin");
    c.websocket.norigins = CIO_CONFIG_MAX_ORIGINS + 1;
    expect_invalid(&c, "websocket.origins: too many origins (65, at most 64)");
    c.websocket.norigins = 1;
    cio_config_free(&c);
    ck_assert_ptr_null(c.websocket.origins[0]);
}
END_TEST

START_TEST(args_websocket_errors_name_the_file)
{
    expect_file_error("{\"websocket\": {\"max_message_bytes\": 67108864}}",
                      "websocket.send_queue_bytes: 2097152 is out of range (67108878..2147483648, "
                      "at least websocket.max_message_bytes + 14)");
    expect_file_error("{\"websocket\": {\"ping_interval_ms\": 120000}}",
                      "websocket.idle_timeout_ms: 120000 must be greater than "
                      "websocket.ping_interval_ms (120000), or 0 (never)");
    expect_file_error("{\"websocket\": {\"max_message_bytes\": 1073741825}}",
                      "websocket.max_message_bytes: 1073741825 is out of range (1..1073741824)");
    expect_file_error("{\"websocket\": {\"origins\": [\"https://example.com/\"]}}",
                      "websocket.origins[0]: invalid origin \"https://example.com/\": an origin "
                      "has no trailing slash");
    expect_file_error("{\"websocket\": {\"ping\": 1}}", "unknown key \"websocket.ping\"");
    const char *p = write_file("corio.json", "{\"websocket\": {\"max_message_bytes\": 67108864,"
                                             " \"send_queue_bytes\": 67108878, \"origins\":"
                                             " [\"https://example.com\"]}}");
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--config", (char *)p, "--check-config"), 0);
    ck_assert_int_eq(action, CIO_CONFIG_CHECK);
    ck_assert_uint_eq(c.websocket.max_message_bytes, UINT64_C(67108864));
    ck_assert_str_eq(c.websocket.origins[0], "https://example.com");
    cio_config_free(&c);
}
END_TEST

/* ---- servers and discovery (issue 9) ---- */

START_TEST(defaults_servers_and_discovery)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_ptr_null(c.servers);
    ck_assert_uint_eq(c.nservers, 0);
    ck_assert_uint_eq(c.discovery.interval_ms, 1000);
    ck_assert_uint_eq(c.discovery.window_ms, 60000);
    ck_assert_uint_eq(c.discovery.request_timeout_ms, 1000);
    ck_assert(!c.discovery.require_self);
    cio_config_free(&c);
}
END_TEST

static void assert_server(const cio_server_entry *e, const char *text, const char *host,
                          unsigned port, bool bare)
{
    ck_assert_str_eq(e->text, text);
    ck_assert_str_eq(e->host, host);
    ck_assert_uint_eq(e->port, port);
    ck_assert_int_eq(e->bare, bare);
}

START_TEST(json_servers_host_port)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"host0.example.com:8080\", \"10.0.0.2:1\","
                              " \"Host_1.Example:65535\"]}"),
                     0);
    ck_assert_uint_eq(c.nservers, 3);
    assert_server(&c.servers[0], "host0.example.com:8080", "host0.example.com", 8080, false);
    assert_server(&c.servers[1], "10.0.0.2:1", "10.0.0.2", 1, false);
    assert_server(&c.servers[2], "Host_1.Example:65535", "Host_1.Example", 65535, false);
    expect_valid(&c, "host:port");
    cio_config_free(&c);
}
END_TEST

START_TEST(json_servers_bracketed_ipv6)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"[::1]:8081\", \"[FE80::1:2]:80\"]}"), 0);
    ck_assert_uint_eq(c.nservers, 2);
    assert_server(&c.servers[0], "[::1]:8081", "::1", 8081, false);
    assert_server(&c.servers[1], "[FE80::1:2]:80", "FE80::1:2", 80, false);
    expect_valid(&c, "IPv6");
    cio_config_free(&c);
}
END_TEST

/* Loading leaves a bare name's port 0: the listen address may still change. */
START_TEST(json_servers_bare_name_has_no_port_yet)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"host2\", \"10.0.0.3\"]}"), 0);
    assert_server(&c.servers[0], "host2", "host2", 0, true);
    assert_server(&c.servers[1], "10.0.0.3", "10.0.0.3", 0, true);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_bare_server_takes_first_listen_port)
{
    const char *p = write_file("corio.json", "{\"listen\": [\"127.0.0.1:8090\", \"[::1]:9000\"],"
                                             " \"servers\": [\"host0:8080\", \"host2\"]}");
    cio_config c;
    ck_assert_msg(from_args(&c, "--config", (char *)p) == 0, "%s", err);
    assert_server(&c.servers[0], "host0:8080", "host0", 8080, false);
    assert_server(&c.servers[1], "host2", "host2", 8090, true);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_bare_server_takes_port_of_listen_flag)
{
    const char *p = write_file("corio.json", "{\"listen\": [\"127.0.0.1:8090\"],"
                                             " \"servers\": [\"host0:8080\", \"host2\"]}");
    cio_config c;
    ck_assert_msg(from_args(&c, "--listen", "[::]:9443", "--config", (char *)p) == 0, "%s", err);
    assert_server(&c.servers[0], "host0:8080", "host0", 8080, false);
    assert_server(&c.servers[1], "host2", "host2", 9443, true);
    cio_config_free(&c);
}
END_TEST

/* For callers of load_file/load_string: again after the listen list changed. */
START_TEST(resolve_bare_servers_follows_listen)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"host0:81\", \"host1\"]}"), 0);
    cio_config_resolve_bare_servers(&c);
    ck_assert_uint_eq(c.servers[0].port, 81);
    ck_assert_uint_eq(c.servers[1].port, 8080);
    expect_valid(&c, "resolved");
    ck_assert_int_eq(load(&c, "{\"listen\": [\"*:82\"]}"), 0);
    cio_config_resolve_bare_servers(&c);
    ck_assert_uint_eq(c.servers[0].port, 81);
    ck_assert_uint_eq(c.servers[1].port, 82);
    c.nlisten = 0;
    cio_config_resolve_bare_servers(&c);
    ck_assert_uint_eq(c.servers[1].port, 0);
    cio_config_free(&c);
    cio_config_resolve_bare_servers(&c); /* no servers: nothing to do */
}
END_TEST

START_TEST(json_servers_port_errors)
{
    expect_load_error("{\"servers\": [\"a:1\", \"host0:99999\"]}",
                      "test.json: servers[1]: \"host0:99999\": port out of range (1..65535)");
    expect_load_error("{\"servers\": [\"host0:0\"]}",
                      "servers[0]: \"host0:0\": port out of range (1..65535)");
    expect_load_error("{\"servers\": [\"host0:99999999999999999999999\"]}",
                      "servers[0]: \"host0:99999999999999999999999\": port out of range");
    expect_load_error("{\"servers\": [\"host0:\"]}", "servers[0]: \"host0:\": missing port");
    expect_load_error("{\"servers\": [\"[::1]:\"]}", "servers[0]: \"[::1]:\": missing port");
    static const char *const bad[] = {"host0:+80", "host0:-1", "host0:8a", "host0: 80",
                                      "[::1]:0x50"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char doc[128], want[128];
        snprintf(doc, sizeof(doc), "{\"servers\": [\"%s\"]}", bad[i]);
        snprintf(want, sizeof(want), "servers[0]: \"%s\": invalid port (expected 1..65535)",
                 bad[i]);
        expect_load_error(doc, want);
    }
}
END_TEST

START_TEST(json_servers_empty_entry)
{
    expect_load_error("{\"servers\": [\"\"]}", "test.json: servers[0]: \"\": empty entry");
    expect_load_error("{\"servers\": [\"a:1\", \":80\"]}", "servers[1]: \":80\": empty host");
}
END_TEST

START_TEST(json_servers_ipv6_needs_brackets)
{
    expect_load_error("{\"servers\": [\"a:1\", \"b:1\", \"fe80::1:8080\"]}",
                      "test.json: servers[2]: \"fe80::1:8080\": an IPv6 address needs brackets: "
                      "\"[fe80::1]:8080\"");
    expect_load_error("{\"servers\": [\"::1\"]}",
                      "servers[0]: \"::1\": an IPv6 address needs brackets: \"[::1]:PORT\"");
    expect_load_error("{\"servers\": [\"a:b:c\"]}",
                      "servers[0]: \"a:b:c\": too many ':' (an IPv6 address needs brackets");
}
END_TEST

START_TEST(json_servers_bracket_errors)
{
    expect_load_error("{\"servers\": [\"[::1]\"]}",
                      "servers[0]: \"[::1]\": a bracketed IPv6 address needs a port: "
                      "\"[::1]:PORT\"");
    expect_load_error("{\"servers\": [\"[::1:80\"]}", "servers[0]: \"[::1:80\": missing ']'");
    expect_load_error("{\"servers\": [\"[::1]80\"]}",
                      "servers[0]: \"[::1]80\": expected ':' and a port after ']'");
    expect_load_error("{\"servers\": [\"[::g]:80\"]}",
                      "servers[0]: \"[::g]:80\": invalid IPv6 address");
    expect_load_error("{\"servers\": [\"[host0]:80\"]}",
                      "servers[0]: \"[host0]:80\": invalid IPv6 address");
    expect_load_error("{\"servers\": [\"[]:80\"]}", "servers[0]: \"[]:80\": invalid IPv6 address");
}
END_TEST

START_TEST(json_servers_host_errors)
{
    static const struct {
        const char *entry, *why;
    } cases[] = {
        {"-host0:80", "invalid host name: a label starts or ends with '-'"},
        {"host0-.example:80", "invalid host name: a label starts or ends with '-'"},
        {"a..b:80", "invalid host name: empty label"},
        {"host0.:80", "invalid host name: empty label"},
        {".host0", "invalid host name: empty label"},
        {"host 0:80", "invalid host name: letters, digits, '-', '_' and '.' only"},
        {"h\xc3\xa9te:80", "invalid host name: letters, digits, '-', '_' and '.' only"},
        {"10.0.0.256:80", "invalid IPv4 address"},
        {"010.0.0.1:80", "invalid IPv4 address"},
        {"example.123", "invalid IPv4 address"},
        {"8080", "invalid IPv4 address"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[128], want[192];
        snprintf(doc, sizeof(doc), "{\"servers\": [\"a:1\", \"%s\"]}", cases[i].entry);
        snprintf(want, sizeof(want), "test.json: servers[1]: \"%s\": %s", cases[i].entry,
                 cases[i].why);
        expect_load_error(doc, want);
    }
}
END_TEST

/* Labels of 63 bytes, 253 bytes in all; one more is refused. */
START_TEST(json_servers_host_name_lengths)
{
    char label[64], name[300], doc[512];
    memset(label, 'a', 63);
    label[63] = '\0';
    snprintf(doc, sizeof(doc), "{\"servers\": [\"%s:80\"]}", label);
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, doc), 0);
    ck_assert_str_eq(c.servers[0].host, label);
    snprintf(doc, sizeof(doc), "{\"servers\": [\"%sa:80\"]}", label);
    expect_load_error(doc, "invalid host name: a label is longer than 63 bytes");
    /* 3 * 64 + 61 = 253 */
    snprintf(name, sizeof(name), "%s.%s.%s.%.61s", label, label, label, label);
    ck_assert_uint_eq(strlen(name), 253);
    snprintf(doc, sizeof(doc), "{\"servers\": [\"%s\"]}", name);
    ck_assert_int_eq(load(&c, doc), 0);
    ck_assert_str_eq(c.servers[0].host, name);
    ck_assert(c.servers[0].bare);
    snprintf(doc, sizeof(doc), "{\"servers\": [\"%sa:80\"]}", name);
    expect_load_error(doc, "invalid host name: longer than 253 bytes");
    cio_config_free(&c);
    char longest[301];
    memset(longest, 'a', 300);
    longest[300] = '\0';
    snprintf(doc, sizeof(doc), "{\"servers\": [\"%s\"]}", longest);
    expect_load_error(doc, "\": too long (at most 299 bytes)");
}
END_TEST

START_TEST(json_servers_wrong_types)
{
    expect_load_error("{\"servers\": \"host0:80\"}",
                      "test.json: servers: expected an array of strings");
    expect_load_error("{\"servers\": {}}", "servers: expected an array of strings");
    expect_load_error("{\"servers\": [\"a:1\", 80]}", "test.json: servers[1]: expected a string");
    expect_load_error("{\"servers\": [null]}", "servers[0]: expected a string");
    expect_load_error("{\"servers\": [[\"a:1\"]]}", "servers[0]: expected a string");
}
END_TEST

START_TEST(json_servers_at_most_64)
{
    char doc[4096] = "{\"servers\": [";
    for (int i = 0; i < CIO_CONFIG_MAX_SERVERS; i++)
        snprintf(doc + strlen(doc), sizeof(doc) - strlen(doc), "%s\"h%d:80\"", i ? ", " : "", i);
    char *end = doc + strlen(doc);
    strcpy(end, "]}");
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, doc), 0);
    ck_assert_uint_eq(c.nservers, 64);
    ck_assert_str_eq(c.servers[63].host, "h63");
    expect_valid(&c, "64 servers");
    cio_config_free(&c);
    strcpy(end, ", \"h64:80\"]}");
    expect_load_error(doc, "test.json: servers: at most 64 entries");
}
END_TEST

START_TEST(json_servers_empty_array_is_standalone)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"a:1\", \"b:2\"]}"), 0);
    ck_assert_int_eq(load(&c, "{\"servers\": []}"), 0);
    ck_assert_uint_eq(c.nservers, 0);
    ck_assert_ptr_null(c.servers);
    expect_valid(&c, "standalone");
    cio_config_free(&c);
}
END_TEST

/* A later list replaces an earlier one; a document with an error leaves it. */
START_TEST(json_servers_replaced)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"a:1\", \"b:2\", \"c:3\"]}"), 0);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"d:4\"]}"), 0);
    ck_assert_uint_eq(c.nservers, 1);
    assert_server(&c.servers[0], "d:4", "d", 4, false);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"e:5\", \"f:0\"]}"), -EINVAL);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"e:5\"], \"discovery\": {\"x\": 1}}"), -EINVAL);
    ck_assert_uint_eq(c.nservers, 1);
    assert_server(&c.servers[0], "d:4", "d", 4, false);
    ck_assert_int_eq(load(&c, "{\"pool_threads\": 2}"), 0); /* copied along */
    assert_server(&c.servers[0], "d:4", "d", 4, false);
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_servers_duplicates)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"host0:8080\", \"host1:8080\", \"HOST0:8080\"]}"),
                     0);
    expect_invalid(&c, "servers[2]: \"HOST0:8080\" duplicates servers[0] \"host0:8080\"");
    ck_assert_int_eq(load(&c, "{\"servers\": [\"host0:8080\", \"host0:8081\"]}"), 0);
    expect_valid(&c, "two ports of one host");
    ck_assert_int_eq(load(&c, "{\"servers\": [\"[::1]:80\", \"[0:0::1]:80\"]}"), 0);
    expect_invalid(&c, "servers[1]: \"[0:0::1]:80\" duplicates servers[0] \"[::1]:80\"");
    cio_config_free(&c);
}
END_TEST

/* "host0" takes the port 8080 of the default listen address. */
START_TEST(args_bare_server_duplicates_host_port)
{
    expect_file_error("{\"servers\": [\"host0:8080\", \"host1\", \"host0\"]}",
                      "servers[2]: \"host0\" duplicates servers[0] \"host0:8080\" (a bare name "
                      "takes port 8080 of the first listen address)");
    expect_file_error("{\"servers\": [\"HOST0\", \"host0:8080\"]}",
                      "servers[1]: \"host0:8080\" duplicates servers[0] \"HOST0\" (a bare name "
                      "takes port 8080 of the first listen address)");
    const char *p = write_file("corio.json", "{\"servers\": [\"host0:8080\", \"host0\"]}");
    cio_config c;
    ck_assert_msg(from_args(&c, "--config", (char *)p, "--listen", "*:8081") == 0, "%s", err);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_bare_server_needs_a_listen_port)
{
    expect_file_error("{\"listen\": [\"*:0\", \"*:80\"], \"servers\": [\"host0\"]}",
                      "servers[0]: \"host0\": a bare name takes the port of the first listen "
                      "address, which is 0 (any free port): write host0:PORT");
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--listen", "*:0", "--server", "a:1", "--server", "host0"),
                     -EINVAL);
    ck_assert_str_eq(err, "--server: \"host0\": a bare name takes the port of the first listen "
                          "address, which is 0 (any free port): write host0:PORT");
    cio_config_free(&c);
}
END_TEST

/* What a program that fills the list itself may get wrong. */
START_TEST(validate_servers_filled_by_a_program)
{
    cio_config c;
    cio_config_defaults(&c);
    c.servers = calloc(2, sizeof(*c.servers));
    ck_assert_ptr_nonnull(c.servers);
    c.nservers = 2;
    strcpy(c.servers[0].text, "a:1");
    strcpy(c.servers[0].host, "a");
    c.servers[0].port = 1;
    strcpy(c.servers[1].text, "b");
    strcpy(c.servers[1].host, "b");
    c.servers[1].bare = true;
    expect_invalid(&c, "servers[1]: \"b\": a bare name not yet given the port of the first "
                       "listen address (8080; see cio_config_resolve_bare_servers)");
    cio_config_resolve_bare_servers(&c);
    expect_valid(&c, "resolved");
    c.servers[1].bare = false;
    c.servers[1].port = 0;
    expect_invalid(&c, "servers[1]: \"b\": port out of range (1..65535)");
    c.servers[1].port = 2;
    strcpy(c.servers[1].host, "b..c");
    expect_invalid(&c, "servers[1]: \"b\": invalid host name: empty label");
    strcpy(c.servers[1].host, "");
    expect_invalid(&c, "servers[1]: \"b\": empty host");
    c.nservers = CIO_CONFIG_MAX_SERVERS + 1;
    expect_invalid(&c, "servers: at most 64 entries (got 65)");
    cio_config_free(&c);
    c.nservers = 1;
    expect_invalid(&c, "servers: nservers is 1 but the list is NULL");
    c.nservers = 0;
    cio_config_free(&c);
}
END_TEST

START_TEST(json_discovery_every_key)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"discovery\": {\"interval_ms\": 10, \"window_ms\": 0,"
                              " \"request_timeout_ms\": 60000, \"require_self\": true}}"),
                     0);
    ck_assert_uint_eq(c.discovery.interval_ms, 10);
    ck_assert_uint_eq(c.discovery.window_ms, 0);
    ck_assert_uint_eq(c.discovery.request_timeout_ms, 60000);
    ck_assert(c.discovery.require_self);
    expect_valid(&c, "discovery bounds");
    ck_assert_int_eq(load(&c, "{\"discovery\": {\"window_ms\": 5}}"), 0);
    ck_assert_uint_eq(c.discovery.interval_ms, 10); /* the other keys kept */
    ck_assert(c.discovery.require_self);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_discovery_errors)
{
    expect_load_error("{\"discovery\": {\"interval\": 1}}",
                      "test.json: unknown key \"discovery.interval\"");
    expect_load_error("{\"discovery\": []}", "test.json: discovery: expected an object");
    expect_load_error("{\"discovery\": {\"window_ms\": -1}}",
                      "discovery.window_ms: expected a non-negative integer");
    expect_load_error("{\"discovery\": {\"interval_ms\": \"1s\"}}",
                      "discovery.interval_ms: expected a non-negative integer");
    expect_load_error("{\"discovery\": {\"require_self\": 1}}",
                      "discovery.require_self: expected true or false");
}
END_TEST

START_TEST(validate_discovery_ranges)
{
    expect_u64_range("discovery.interval_ms", offsetof(cio_config, discovery.interval_ms), 10,
                     3600000);
    expect_u64_range("discovery.window_ms", offsetof(cio_config, discovery.window_ms), 0, 86400000);
    expect_u64_range("discovery.request_timeout_ms",
                     offsetof(cio_config, discovery.request_timeout_ms), 1, 60000);
    expect_file_error("{\"discovery\": {\"interval_ms\": 9}}",
                      "discovery.interval_ms: 9 is out of range (10..3600000)");
}
END_TEST

START_TEST(args_require_self)
{
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--require-self"), 0);
    ck_assert(c.discovery.require_self);
    cio_config_free(&c);
    ck_assert_int_eq(from_args(&c, "--listen", "*:1"), 0);
    ck_assert(!c.discovery.require_self);
    cio_config_free(&c);
    expect_args_error((char *[]){"corio", "--require-self=yes", NULL},
                      "option \"--require-self\" takes no argument (see --help)");
}
END_TEST

START_TEST(args_server_replaces_file_list)
{
    const char *p = write_file("corio.json", "{\"servers\": [\"a:1\", \"b:2\", \"c:3\"]}");
    cio_config c;
    ck_assert_msg(
        from_args(&c, "--server", "[::1]:8081", "--config", (char *)p, "--server=host2") == 0, "%s",
        err);
    ck_assert_uint_eq(c.nservers, 2);
    assert_server(&c.servers[0], "[::1]:8081", "::1", 8081, false);
    assert_server(&c.servers[1], "host2", "host2", 8080, true);
    cio_config_free(&c);
    ck_assert_int_eq(from_args(&c, "--config", (char *)p), 0);
    ck_assert_uint_eq(c.nservers, 3);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_server_errors)
{
    expect_args_error((char *[]){"corio", "--server", "a:1", "--server", "host0:99999", NULL},
                      "--server: \"host0:99999\": port out of range (1..65535)");
    expect_args_error((char *[]){"corio", "--server", "", NULL}, "--server: \"\": empty entry");
    expect_args_error((char *[]){"corio", "--server", "fe80::1:8080", NULL},
                      "--server: \"fe80::1:8080\": an IPv6 address needs brackets: "
                      "\"[fe80::1]:8080\"");
    expect_args_error((char *[]){"corio", "--server", NULL},
                      "option \"--server\" requires an argument");
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--server", "host0:8080", "--server", "HOST0:8080"), -EINVAL);
    ck_assert_str_eq(err, "--server: \"HOST0:8080\" duplicates \"host0:8080\"");
    cio_config_free(&c);
}
END_TEST

START_TEST(args_server_at_most_64)
{
    char *argv[2 + 2 * (CIO_CONFIG_MAX_SERVERS + 1)];
    char names[CIO_CONFIG_MAX_SERVERS + 1][32];
    int n = 0;
    argv[n++] = "corio";
    for (int i = 0; i < CIO_CONFIG_MAX_SERVERS; i++) {
        snprintf(names[i], sizeof(names[i]), "h%d:80", i);
        argv[n++] = "--server";
        argv[n++] = names[i];
    }
    argv[n] = NULL;
    cio_config c;
    ck_assert_msg(from_argv(&c, argv) == 0, "%s", err);
    ck_assert_uint_eq(c.nservers, CIO_CONFIG_MAX_SERVERS);
    cio_config_free(&c);
    snprintf(names[CIO_CONFIG_MAX_SERVERS], 32, "h64:80");
    argv[n++] = "--server";
    argv[n++] = names[CIO_CONFIG_MAX_SERVERS];
    argv[n] = NULL;
    expect_args_error(argv, "--server: at most 64 entries");
}
END_TEST

START_TEST(free_releases_servers)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"servers\": [\"a:1\", \"[::1]:2\", \"c\"]}"), 0);
    ck_assert_ptr_nonnull(c.servers);
    cio_config_free(&c);
    ck_assert_ptr_null(c.servers);
    ck_assert_uint_eq(c.nservers, 0);
    cio_config_free(&c);
}
END_TEST

START_TEST(usage_lists_servers_and_discovery)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    cio_config_usage(f, "corio");
    fclose(f);
    static const char *const want[] = {
        "--server HOST[:PORT] a cluster member; repeat for up to 64",
        "--require-self",
        "\"servers\": [],                       the cluster's members",
        "[] = standalone",
        "\"discovery\": {",
        "\"interval_ms\": 1000,               10..3600000",
        "\"window_ms\": 60000,                0..86400000",
        "0 =\n                                         search forever",
        "\"request_timeout_ms\": 1000,        1..60000",
        "\"require_self\": false              true or false",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(text, want[i]), "usage lacks %s", want[i]);
    free(text);
}
END_TEST

/* ---- operations (issue 10) ---- */

START_TEST(defaults_operations)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert(!c.listen[0].proxy_protocol);
    ck_assert_uint_eq(c.nadmin_listen, 0);
    ck_assert_uint_eq(c.workers, 1);
    ck_assert(!c.daemon);
    ck_assert_ptr_null(c.pidfile);
    ck_assert_ptr_null(c.user);
    ck_assert_ptr_null(c.group);
    ck_assert_int_eq(c.log.format, CIO_CONFIG_LOG_COMBINED);
    ck_assert_str_eq(c.log.error, "-");
    ck_assert_uint_eq(c.health.stall_ms, 5000);
    ck_assert_uint_eq(c.debug.slow_ms, 100);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_daemon)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"daemon\": true}"), 0);
    ck_assert(c.daemon);
    ck_assert_int_eq(load(&c, "{\"daemon\": false}"), 0);
    ck_assert(!c.daemon);
    cio_config_free(&c);
    expect_load_error("{\"daemon\": 1}", "test.json: daemon: expected true or false");
    expect_load_error("{\"daemon\": \"yes\"}", "daemon: expected true or false");
}
END_TEST

START_TEST(args_daemon)
{
    const char *p = write_file("corio.json", "{\"daemon\": false}");
    cio_config c;
    ck_assert_msg(from_args(&c, "--daemon", "--config", (char *)p) == 0, "%s", err);
    ck_assert(c.daemon);
    cio_config_free(&c);
    expect_args_error((char *[]){"corio", "--daemon=yes", NULL},
                      "option \"--daemon\" takes no argument (see --help)");
}
END_TEST

START_TEST(json_pidfile_set_and_cleared_by_null)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"pidfile\": \"/run/corio.pid\"}"), 0);
    ck_assert_str_eq(c.pidfile, "/run/corio.pid");
    expect_valid(&c, "pidfile");
    ck_assert_int_eq(load(&c, "{\"pidfile\": null}"), 0);
    ck_assert_ptr_null(c.pidfile);
    cio_config_free(&c);
    expect_load_error("{\"pidfile\": \"\"}", "test.json: pidfile: expected a file path or null");
    expect_load_error("{\"pidfile\": 5}", "pidfile: expected a file path or null");
    expect_load_error("{\"pidfile\": [\"/run/corio.pid\"]}",
                      "pidfile: expected a file path or null");
}
END_TEST

START_TEST(args_pidfile)
{
    const char *p = write_file("corio.json", "{\"pidfile\": \"/run/a.pid\"}");
    cio_config c;
    ck_assert_msg(from_args(&c, "--pidfile", "/run/b.pid", "--config", (char *)p) == 0, "%s", err);
    ck_assert_str_eq(c.pidfile, "/run/b.pid");
    cio_config_free(&c);
    expect_args_error((char *[]){"corio", "--pidfile", "", NULL},
                      "--pidfile: expected a file path");
    expect_args_error((char *[]){"corio", "--pidfile", NULL},
                      "option \"--pidfile\" requires an argument");
}
END_TEST

START_TEST(validate_pidfile_not_empty)
{
    cio_config c;
    valid_base(&c);
    c.pidfile = strdup("");
    expect_invalid(&c, "pidfile: expected a file path");
    cio_config_free(&c);
}
END_TEST

START_TEST(json_user_and_group)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"user\": \"root\", \"group\": \"0\"}"), 0);
    ck_assert_str_eq(c.user, "root");
    ck_assert_str_eq(c.group, "0");
    expect_valid(&c, "root and 0");
    ck_assert_int_eq(load(&c, "{\"user\": null, \"group\": null}"), 0);
    ck_assert_ptr_null(c.user);
    ck_assert_ptr_null(c.group);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_user_and_group_wrong_types)
{
    expect_load_error("{\"user\": 0}",
                      "test.json: user: expected a user name, a numeric uid or null");
    expect_load_error("{\"user\": \"\"}", "user: expected a user name, a numeric uid or null");
    expect_load_error("{\"group\": false}",
                      "test.json: group: expected a group name, a numeric gid or null");
    expect_load_error("{\"group\": \"\"}", "group: expected a group name, a numeric gid or null");
}
END_TEST

START_TEST(args_user_and_group)
{
    const char *p =
        write_file("corio.json", "{\"user\": \"corio-no-such-user\", \"group\": \"x\"}");
    cio_config c;
    ck_assert_msg(from_args(&c, "--config", (char *)p, "--user", "0", "--group", "root") == 0, "%s",
                  err);
    ck_assert_str_eq(c.user, "0");
    ck_assert_str_eq(c.group, "root");
    cio_config_free(&c);
    expect_args_error((char *[]){"corio", "--user", "", NULL},
                      "--user: expected a user name or a numeric uid");
    expect_args_error((char *[]){"corio", "--group", "", NULL},
                      "--group: expected a group name or a numeric gid");
}
END_TEST

START_TEST(validate_user_exists)
{
    cio_config c;
    valid_base(&c);
    c.user = strdup("root");
    expect_valid(&c, "root");
    free(c.user);
    c.user = strdup("0");
    expect_valid(&c, "uid 0");
    free(c.user);
    c.user = strdup("corio-no-such-user");
    expect_invalid(&c, "user: \"corio-no-such-user\": no such user");
    free(c.user);
    c.user = strdup("4294967295"); /* (uid_t)-1: "leave unchanged" */
    expect_invalid(&c, "user: \"4294967295\": no such user");
    free(c.user);
    c.user = strdup("-1");
    expect_invalid(&c, "user: \"-1\": no such user");
    cio_config_free(&c);
}
END_TEST

/* Nothing tells which group a uid without a passwd entry would switch to. */
START_TEST(validate_numeric_uid_without_entry_needs_group)
{
    cio_config c;
    valid_base(&c);
    c.user = strdup("3999999999");
    expect_invalid(&c, "user: \"3999999999\": no such user (a uid without a passwd entry needs "
                       "\"group\" as well)");
    c.group = strdup("3999999999"); /* a gid needs no entry */
    expect_valid(&c, "uid and gid");
    cio_config_free(&c);
}
END_TEST

START_TEST(validate_group_exists)
{
    cio_config c;
    valid_base(&c);
    c.group = strdup("root"); /* without user: allowed */
    expect_valid(&c, "root");
    free(c.group);
    c.group = strdup("0");
    expect_valid(&c, "gid 0");
    free(c.group);
    c.group = strdup("corio-no-such-group");
    expect_invalid(&c, "group: \"corio-no-such-group\": no such group");
    c.user = strdup("root");
    expect_invalid(&c, "group: \"corio-no-such-group\": no such group");
    cio_config_free(&c);
}
END_TEST

START_TEST(args_user_error_names_the_flag_or_file)
{
    expect_args_error((char *[]){"corio", "--user", "corio-no-such-user", NULL},
                      "--user: \"corio-no-such-user\": no such user");
    expect_args_error((char *[]){"corio", "--group", "corio-no-such-group", NULL},
                      "--group: \"corio-no-such-group\": no such group");
    expect_file_error("{\"user\": \"corio-no-such-user\"}",
                      "user: \"corio-no-such-user\": no such user");
    expect_file_error("{\"group\": \"corio-no-such-group\"}",
                      "group: \"corio-no-such-group\": no such group");
}
END_TEST

START_TEST(json_workers)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"workers\": 0}"), 0);
    ck_assert_uint_eq(c.workers, 0);
    ck_assert_int_eq(load(&c, "{\"workers\": 1024}"), 0);
    ck_assert_uint_eq(c.workers, 1024);
    expect_valid(&c, "1024 workers");
    cio_config_free(&c);
    expect_load_error("{\"workers\": 1025}", "test.json: workers: 1025 is out of range (0..1024)");
    expect_load_error("{\"workers\": 4294967297}", "workers: 4294967297 is out of range (0..1024)");
    static const char *const values[] = {"-1", "1.5", "\"2\"", "true", "null", "[]"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char doc[64];
        snprintf(doc, sizeof(doc), "{\"workers\": %s}", values[i]);
        expect_load_error(doc, "workers: expected a non-negative integer");
    }
}
END_TEST

START_TEST(args_workers)
{
    const char *p = write_file("corio.json", "{\"workers\": 4}");
    cio_config c;
    ck_assert_msg(from_args(&c, "--workers", "0", "--config", (char *)p) == 0, "%s", err);
    ck_assert_uint_eq(c.workers, 0);
    cio_config_free(&c);
    ck_assert_int_eq(from_args(&c, "--workers=1024"), 0);
    ck_assert_uint_eq(c.workers, 1024);
    cio_config_free(&c);
    expect_args_error((char *[]){"corio", "--workers", "1025", NULL},
                      "--workers: 1025 is out of range (0..1024)");
    expect_args_error((char *[]){"corio", "--workers", "99999999999999999999999", NULL},
                      "--workers: 99999999999999999999999 is out of range (0..1024)");
    static const char *const bad[] = {"", "-1", "+2", "2x", " 2", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[96];
        snprintf(want, sizeof(want), "--workers: expected a non-negative integer (got \"%s\")",
                 bad[i]);
        expect_args_error((char *[]){"corio", "--workers", (char *)bad[i], NULL}, want);
    }
}
END_TEST

START_TEST(validate_workers_range)
{
    cio_config c;
    valid_base(&c);
    c.workers = 1024;
    expect_valid(&c, "1024");
    c.workers = 1025;
    expect_invalid(&c, "workers: 1025 is out of range (0..1024)");
    cio_config_free(&c);
}
END_TEST

START_TEST(json_admin_listen)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"admin_listen\": [\"127.0.0.1:9090\", \"[::1]:9090\"]}"), 0);
    ck_assert_uint_eq(c.nadmin_listen, 2);
    assert_listen(&c.admin_listen[0], AF_INET, "127.0.0.1", 9090);
    assert_listen(&c.admin_listen[1], AF_INET6, "::1", 9090);
    ck_assert_str_eq(c.admin_listen[1].text, "[::1]:9090");
    ck_assert(!c.admin_listen[0].proxy_protocol);
    ck_assert_uint_eq(c.nlisten, 1); /* listen untouched */
    expect_valid(&c, "admin on its own port");
    ck_assert_int_eq(load(&c, "{\"admin_listen\": []}"), 0);
    ck_assert_uint_eq(c.nadmin_listen, 0);
    expect_valid(&c, "none");
    cio_config_free(&c);
}
END_TEST

START_TEST(json_admin_listen_errors)
{
    expect_load_error("{\"admin_listen\": \"127.0.0.1:9090\"}",
                      "test.json: admin_listen: expected an array of addresses");
    expect_load_error("{\"admin_listen\": [9090]}",
                      "admin_listen[0]: expected a string or an object");
    expect_load_error("{\"admin_listen\": [\"*:1\", \"nope\"]}",
                      "test.json: admin_listen[1]: invalid address \"nope\" " LISTEN_HINT);
    char doc[1024] = "{\"admin_listen\": [";
    for (int i = 0; i <= CIO_CONFIG_MAX_LISTEN; i++)
        strcat(doc, i ? ", \"*:80\"" : "\"*:80\"");
    strcat(doc, "]}");
    expect_load_error(doc, "admin_listen: too many addresses (17, at most 16)");
}
END_TEST

START_TEST(validate_admin_listen_overlaps_listen)
{
    cio_config c;
    valid_base(&c);
    ck_assert_int_eq(cio_listen_parse("127.0.0.1:8080", &c.admin_listen[0]), 0);
    c.nadmin_listen = 1;
    expect_invalid(&c,
                   "admin_listen[0]: \"127.0.0.1:8080\" overlaps listen[0] \"0.0.0.0:8080\" (the "
                   "wildcard address takes port 8080 on every IPv4 address)");
    ck_assert_int_eq(cio_listen_parse("*:8080", &c.admin_listen[0]), 0);
    expect_invalid(&c, "admin_listen[0]: \"*:8080\" duplicates listen[0] \"0.0.0.0:8080\"");
    ck_assert_int_eq(cio_listen_parse("[::1]:8080", &c.admin_listen[0]), 0);
    expect_valid(&c, "IPv6 admin on the IPv4 listen port");
    ck_assert_int_eq(cio_listen_parse("127.0.0.1:8081", &c.admin_listen[0]), 0);
    expect_valid(&c, "another port");
    ck_assert_int_eq(cio_listen_parse("127.0.0.1:8081", &c.admin_listen[1]), 0);
    c.nadmin_listen = 2;
    expect_invalid(&c, "admin_listen[1]: \"127.0.0.1:8081\" duplicates admin_listen[0] "
                       "\"127.0.0.1:8081\"");
    listen_on(&c, "*:0", "127.0.0.1:0");
    ck_assert_int_eq(cio_listen_parse("127.0.0.1:0", &c.admin_listen[0]), 0);
    c.nadmin_listen = 1;
    expect_valid(&c, "port 0");
    cio_config_free(&c);
}
END_TEST

START_TEST(args_admin_listen_replaces_file_list)
{
    const char *p =
        write_file("corio.json", "{\"admin_listen\": [\"127.0.0.1:1\", \"127.0.0.1:2\"]}");
    cio_config c;
    ck_assert_msg(from_args(&c, "--admin-listen", "[::1]:9", "--config", (char *)p,
                            "--admin-listen=127.0.0.1:10") == 0,
                  "%s", err);
    ck_assert_uint_eq(c.nadmin_listen, 2);
    assert_listen(&c.admin_listen[0], AF_INET6, "::1", 9);
    assert_listen(&c.admin_listen[1], AF_INET, "127.0.0.1", 10);
    cio_config_free(&c);
    ck_assert_int_eq(from_args(&c, "--config", (char *)p), 0);
    ck_assert_uint_eq(c.nadmin_listen, 2);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_admin_listen_errors)
{
    expect_args_error((char *[]){"corio", "--admin-listen", "nope", NULL},
                      "--admin-listen: invalid address \"nope\" " LISTEN_HINT);
    expect_args_error((char *[]){"corio", "--admin-listen", NULL},
                      "option \"--admin-listen\" requires an argument");
    char *argv[2 + 2 * (CIO_CONFIG_MAX_LISTEN + 1)];
    char ports[CIO_CONFIG_MAX_LISTEN + 1][32];
    int n = 0;
    argv[n++] = "corio";
    for (int i = 0; i <= CIO_CONFIG_MAX_LISTEN; i++) {
        snprintf(ports[i], sizeof(ports[i]), "127.0.0.1:%d", 100 + i);
        argv[n++] = "--admin-listen";
        argv[n++] = ports[i];
    }
    argv[n] = NULL;
    expect_args_error(argv, "--admin-listen: too many addresses (at most 16)");
}
END_TEST

/* Each side named as it was given: by the flag, or by its index in a list. */
START_TEST(args_admin_listen_overlap_names_both)
{
    cio_config c;
    ck_assert_int_eq(from_args(&c, "--listen", "0.0.0.0:8080", "--admin-listen", "127.0.0.1:8080"),
                     -EINVAL);
    ck_assert_str_eq(err, "--admin-listen: \"127.0.0.1:8080\" overlaps --listen \"0.0.0.0:8080\" "
                          "(the wildcard address takes port 8080 on every IPv4 address)");
    cio_config_free(&c);
    ck_assert_int_eq(from_args(&c, "--admin-listen", "127.0.0.1:8080"), -EINVAL);
    ck_assert_str_eq(err, "--admin-listen: \"127.0.0.1:8080\" overlaps listen[0] \"0.0.0.0:8080\" "
                          "(the wildcard address takes port 8080 on every IPv4 address)");
    cio_config_free(&c);
    expect_args_error(
        (char *[]){"corio", "--admin-listen", "127.0.0.1:9", "--admin-listen", "127.0.0.1:9", NULL},
        "--admin-listen: \"127.0.0.1:9\" duplicates \"127.0.0.1:9\"");
    expect_file_error("{\"admin_listen\": [\"127.0.0.1:8080\"]}",
                      "admin_listen[0]: \"127.0.0.1:8080\" overlaps listen[0] \"0.0.0.0:8080\" "
                      "(the wildcard address takes port 8080 on every IPv4 address)");
}
END_TEST

START_TEST(json_listen_object_with_proxy_protocol)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"listen\": [{\"address\": \"0.0.0.0:8080\", \"proxy_protocol\":"
                              " true}, \"[::]:8080\", {\"address\": \"127.0.0.1:8081\"}],"
                              " \"admin_listen\": [{\"proxy_protocol\": true, \"address\":"
                              " \"127.0.0.1:9090\"}]}"),
                     0);
    ck_assert_uint_eq(c.nlisten, 3);
    assert_listen(&c.listen[0], AF_INET, "0.0.0.0", 8080);
    ck_assert_str_eq(c.listen[0].text, "0.0.0.0:8080");
    ck_assert(c.listen[0].proxy_protocol);
    ck_assert(!c.listen[1].proxy_protocol);
    ck_assert(!c.listen[2].proxy_protocol);
    ck_assert(c.admin_listen[0].proxy_protocol);
    expect_valid(&c, "objects");
    /* A later plain string is proxy_protocol false again. */
    ck_assert_int_eq(load(&c, "{\"listen\": [\"0.0.0.0:8080\"]}"), 0);
    ck_assert(!c.listen[0].proxy_protocol);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_listen_object_errors)
{
    expect_load_error("{\"listen\": [{\"address\": \"*:80\", \"port\": 80}]}",
                      "test.json: unknown key \"listen[0].port\"");
    expect_load_error("{\"listen\": [\"*:1\", {\"proxy_protocol\": true}]}",
                      "test.json: listen[1]: missing \"address\"");
    expect_load_error("{\"listen\": [{}]}", "listen[0]: missing \"address\"");
    expect_load_error("{\"listen\": [{\"address\": 80}]}", "listen[0].address: expected a string");
    expect_load_error("{\"listen\": [{\"address\": \"*:80\", \"proxy_protocol\": 1}]}",
                      "listen[0].proxy_protocol: expected true or false");
    expect_load_error("{\"listen\": [{\"address\": \"nope\"}]}",
                      "listen[0].address: invalid address \"nope\" " LISTEN_HINT);
    expect_load_error("{\"listen\": [[\"*:80\"]]}", "listen[0]: expected a string or an object");
    expect_load_error("{\"listen\": [null]}", "listen[0]: expected a string or an object");
    expect_load_error("{\"admin_listen\": [{\"address\": \"*:81\", \"proxy\": true}]}",
                      "unknown key \"admin_listen[0].proxy\"");
    expect_load_error("{\"admin_listen\": [{\"proxy_protocol\": false}]}",
                      "admin_listen[0]: missing \"address\"");
}
END_TEST

START_TEST(json_health_and_debug)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"health\": {\"stall_ms\": 100}, \"debug\": {\"slow_ms\": 0}}"), 0);
    ck_assert_uint_eq(c.health.stall_ms, 100);
    ck_assert_uint_eq(c.debug.slow_ms, 0);
    expect_valid(&c, "lower bounds");
    ck_assert_int_eq(load(&c, "{\"health\": {}, \"debug\": {}}"), 0);
    ck_assert_uint_eq(c.health.stall_ms, 100);
    ck_assert_uint_eq(c.debug.slow_ms, 0);
    cio_config_free(&c);
}
END_TEST

START_TEST(json_health_and_debug_errors)
{
    expect_load_error("{\"health\": {\"stall\": 1}}", "test.json: unknown key \"health.stall\"");
    expect_load_error("{\"debug\": {\"slow_ms\": 1, \"x\": 1}}", "unknown key \"debug.x\"");
    expect_load_error("{\"health\": 5000}", "test.json: health: expected an object");
    expect_load_error("{\"debug\": []}", "debug: expected an object");
    expect_load_error("{\"health\": {\"stall_ms\": -1}}",
                      "health.stall_ms: expected a non-negative integer");
    expect_load_error("{\"debug\": {\"slow_ms\": \"100ms\"}}",
                      "debug.slow_ms: expected a non-negative integer");
}
END_TEST

START_TEST(validate_health_and_debug_ranges)
{
    expect_u64_range("health.stall_ms", offsetof(cio_config, health.stall_ms), 100, 3600000);
    expect_u64_range("debug.slow_ms", offsetof(cio_config, debug.slow_ms), 0, 60000);
    expect_file_error("{\"health\": {\"stall_ms\": 99}}",
                      "health.stall_ms: 99 is out of range (100..3600000)");
}
END_TEST

START_TEST(json_log_format)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"log\": {\"format\": \"json\"}}"), 0);
    ck_assert_int_eq(c.log.format, CIO_CONFIG_LOG_JSON);
    ck_assert_str_eq(c.log.access, "-"); /* the other keys kept */
    ck_assert_int_eq(load(&c, "{\"log\": {\"format\": \"combined\"}}"), 0);
    ck_assert_int_eq(c.log.format, CIO_CONFIG_LOG_COMBINED);
    cio_config_free(&c);
    expect_load_error("{\"log\": {\"format\": \"common\"}}",
                      "test.json: log.format: expected one of combined, json");
    expect_load_error("{\"log\": {\"format\": 1}}", "log.format: expected one of combined, json");
    expect_load_error("{\"log\": {\"format\": \"JSON\"}}",
                      "log.format: expected one of combined, json");
}
END_TEST

START_TEST(validate_log_format_range)
{
    cio_config c;
    valid_base(&c);
    c.log.format = 2;
    expect_invalid(&c, "log.format: 2 is out of range (0..1)");
    c.log.format = -1;
    expect_invalid(&c, "log.format: -1 is out of range (0..1)");
    cio_config_free(&c);
}
END_TEST

START_TEST(json_log_error)
{
    cio_config c;
    cio_config_defaults(&c);
    char doc[PATH_MAX + 64];
    snprintf(doc, sizeof(doc), "{\"log\": {\"error\": \"%s\"}}", tpath("error.log"));
    ck_assert_int_eq(load(&c, doc), 0);
    ck_assert_str_eq(c.log.error, tpath("error.log"));
    expect_valid(&c, "a new file");
    ck_assert_int_eq(load(&c, "{\"log\": {\"error\": \"-\"}}"), 0);
    ck_assert_str_eq(c.log.error, "-");
    cio_config_free(&c);
    expect_load_error("{\"log\": {\"error\": null}}",
                      "test.json: log.error: expected a string (\"-\" or a path)");
}
END_TEST

START_TEST(validate_log_error)
{
    cio_config c;
    valid_base(&c);
    free(c.log.error);
    c.log.error = strdup("off");
    expect_invalid(&c, "log.error: \"off\" is not allowed (expected \"-\" or a file path)");
    free(c.log.error);
    c.log.error = strdup("");
    expect_invalid(&c, "log.error: expected \"-\" or a file path");
    free(c.log.error);
    c.log.error = NULL;
    expect_invalid(&c, "log.error: expected \"-\" or a file path");
    c.log.error = strdup(tmpdir);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "log.error: %s: Is a directory", tmpdir);
    expect_invalid(&c, want);
    cio_config_free(&c);
}
END_TEST

START_TEST(args_error_log)
{
    const char *p = write_file("corio.json", "{\"log\": {\"error\": \"off\"}}");
    cio_config c;
    ck_assert_msg(from_args(&c, "--error-log", (char *)tpath("e.log"), "--config", (char *)p) == 0,
                  "%s", err);
    ck_assert_str_eq(c.log.error, tpath("e.log"));
    cio_config_free(&c);
    expect_file_error("{\"log\": {\"error\": \"off\"}}",
                      "log.error: \"off\" is not allowed (expected \"-\" or a file path)");
    expect_args_error((char *[]){"corio", "--error-log", "off", NULL},
                      "--error-log: \"off\" is not allowed (expected \"-\" or a file path)");
    expect_args_error((char *[]){"corio", "--error-log", "", NULL},
                      "--error-log: expected \"-\" or a file path");
    const char *missing = tpath("nodir/error.log");
    char want[PATH_MAX * 2 + 64];
    snprintf(want, sizeof(want), "--error-log: %s: cannot create it in %s: ", missing,
             tpath("nodir"));
    expect_args_error((char *[]){"corio", "--error-log", (char *)missing, NULL}, want);
}
END_TEST

/* ---- cio_config_diff ---- */

static cio_config_change changes[64];

START_TEST(diff_identical_configs)
{
    cio_config a, b;
    cio_config_defaults(&a);
    cio_config_defaults(&b);
    ck_assert_uint_eq(cio_config_diff(&a, &b, changes, 64), 0);
    static const char doc[] =
        "{\"root\": \"/tmp\", \"user\": \"root\", \"servers\": [\"a:1\", \"b\"],"
        " \"websocket\": {\"origins\": [\"null\", \"https://a.example\"]},"
        " \"listen\": [{\"address\": \"*:1\", \"proxy_protocol\": true}],"
        " \"admin_listen\": [\"127.0.0.1:2\"]}";
    ck_assert_int_eq(load(&a, doc), 0);
    ck_assert_int_eq(load(&b, doc), 0);
    ck_assert_uint_eq(cio_config_diff(&a, &b, changes, 64), 0);
    ck_assert_uint_eq(cio_config_diff(&a, &a, NULL, 0), 0);
    cio_config_free(&a);
    cio_config_free(&b);
}
END_TEST

START_TEST(diff_log_level_is_live)
{
    cio_config a, b;
    cio_config_defaults(&a);
    cio_config_defaults(&b);
    ck_assert_int_eq(load(&b, "{\"log\": {\"level\": \"debug\"}}"), 0);
    ck_assert_uint_eq(cio_config_diff(&a, &b, changes, 64), 1);
    ck_assert_str_eq(changes[0].key, "log.level");
    ck_assert(!changes[0].restart);
    cio_config_free(&a);
    cio_config_free(&b);
}
END_TEST

START_TEST(diff_listen_needs_restart)
{
    cio_config a, b;
    cio_config_defaults(&a);
    cio_config_defaults(&b);
    ck_assert_int_eq(load(&b, "{\"listen\": [\"0.0.0.0:8081\"]}"), 0);
    ck_assert_uint_eq(cio_config_diff(&a, &b, changes, 64), 1);
    ck_assert_str_eq(changes[0].key, "listen");
    ck_assert(changes[0].restart);
    cio_config_free(&a);
    cio_config_free(&b);
}
END_TEST

/* Lists differ when an element does (its order included), not by how an
 * address is written. */
START_TEST(diff_lists_element_wise)
{
    cio_config a, b;
    cio_config_defaults(&a);
    cio_config_defaults(&b);
    ck_assert_int_eq(load(&b, "{\"listen\": [\"*:8080\"]}"), 0);
    ck_assert_uint_eq(cio_config_diff(&a, &b, changes, 64), 0);
    ck_assert_int_eq(
        load(&b, "{\"listen\": [{\"address\": \"*:8080\", \"proxy_protocol\": true}]}"), 0);
    ck_assert_uint_eq(cio_config_diff(&a, &b, changes, 64), 1);
    ck_assert_str_eq(changes[0].key, "listen");
    ck_assert_int_eq(load(&a, "{\"listen\": [\"*:1\", \"*:2\"], \"servers\": [\"a:1\", \"b:2\"],"
                              " \"websocket\": {\"origins\": [\"null\", \"http://a\"]}}"),
                     0);
    ck_assert_int_eq(load(&b, "{\"listen\": [\"*:2\", \"*:1\"], \"servers\": [\"a:1\", \"b:3\"],"
                              " \"websocket\": {\"origins\": [\"http://a\", \"null\"]}}"),
                     0);
    ck_assert_uint_eq(cio_config_diff(&a, &b, changes, 64), 3);
    ck_assert_str_eq(changes[0].key, "listen");
    ck_assert_str_eq(changes[1].key, "websocket.origins");
    ck_assert(!changes[1].restart);
    ck_assert_str_eq(changes[2].key, "servers");
    ck_assert(changes[2].restart);
    ck_assert_int_eq(load(&b, "{\"listen\": [\"*:1\"]}"), 0); /* one fewer */
    ck_assert_uint_eq(cio_config_diff(&a, &b, NULL, 0), 3);
    cio_config_free(&a);
    cio_config_free(&b);
}
END_TEST

START_TEST(diff_several_in_fixed_order)
{
    cio_config a, b;
    cio_config_defaults(&a);
    cio_config_defaults(&b);
    /* Written in another order than the one reported. */
    ck_assert_int_eq(load(&b, "{\"debug\": {\"slow_ms\": 0}, \"timeouts\": {\"drain_ms\": 1},"
                              " \"user\": \"root\", \"limits\": {\"max_connections\": 5}}"),
                     0);
    ck_assert_uint_eq(cio_config_diff(&a, &b, changes, 64), 4);
    ck_assert_str_eq(changes[0].key, "user");
    ck_assert(changes[0].restart);
    ck_assert_str_eq(changes[1].key, "limits.max_connections");
    ck_assert(!changes[1].restart);
    ck_assert_str_eq(changes[2].key, "timeouts.drain_ms");
    ck_assert(!changes[2].restart);
    ck_assert_str_eq(changes[3].key, "debug.slow_ms");
    ck_assert(!changes[3].restart);
    /* Either way round. */
    ck_assert_uint_eq(cio_config_diff(&b, &a, changes, 64), 4);
    ck_assert_str_eq(changes[0].key, "user");
    cio_config_free(&a);
    cio_config_free(&b);
}
END_TEST

START_TEST(diff_max_smaller_than_count)
{
    cio_config a, b;
    cio_config_defaults(&a);
    cio_config_defaults(&b);
    ck_assert_int_eq(
        load(&b, "{\"root\": \"/tmp\", \"workers\": 3, \"health\": {\"stall_ms\": 1}}"), 0);
    cio_config_change two[3] = {{NULL, false}, {NULL, false}, {"untouched", true}};
    ck_assert_uint_eq(cio_config_diff(&a, &b, two, 2), 3);
    ck_assert_str_eq(two[0].key, "root");
    ck_assert(!two[0].restart);
    ck_assert_str_eq(two[1].key, "workers");
    ck_assert(two[1].restart);
    ck_assert_str_eq(two[2].key, "untouched"); /* past max: not written */
    ck_assert_uint_eq(cio_config_diff(&a, &b, NULL, 0), 3);
    cio_config_free(&a);
    cio_config_free(&b);
}
END_TEST

/* Every leaf key changed at once: the whole order, and which ones are live. */
START_TEST(diff_every_key_in_order_with_restart)
{
    static const struct {
        const char *key;
        bool restart;
    } want[] = {
        {"listen", true},
        {"admin_listen", true},
        {"root", false},
        {"serve_dotfiles", false},
        {"pool_threads", true},
        {"pool_queue", true},
        {"pool_priority", true},
        {"workers", true},
        {"daemon", true},
        {"pidfile", true},
        {"user", true},
        {"group", true},
        {"limits.max_connections", false},
        {"limits.max_header_bytes", false},
        {"limits.max_uri_bytes", false},
        {"limits.max_body_bytes", false},
        {"limits.max_requests_per_connection", false},
        {"limits.max_connections_per_ip", false},
        {"limits.max_buffered_bytes", false},
        {"timeouts.header_ms", false},
        {"timeouts.body_ms", false},
        {"timeouts.keepalive_ms", false},
        {"timeouts.write_ms", false},
        {"timeouts.handler_ms", false},
        {"timeouts.pool_wait_ms", false},
        {"timeouts.drain_ms", false},
        {"log.level", false},
        {"log.access", false},
        {"log.format", false},
        {"log.error", true},
        {"websocket.max_message_bytes", false},
        {"websocket.ping_interval_ms", false},
        {"websocket.idle_timeout_ms", false},
        {"websocket.send_queue_bytes", false},
        {"websocket.origins", false},
        {"websocket.compression", false},
        {"websocket.compression_window_bits", false},
        {"servers", true},
        {"discovery.interval_ms", true},
        {"discovery.window_ms", true},
        {"discovery.request_timeout_ms", true},
        {"discovery.require_self", true},
        {"health.stall_ms", false},
        {"debug.slow_ms", false},
    };
    cio_config a, b;
    cio_config_defaults(&a);
    cio_config_defaults(&b);
    ck_assert_int_eq(
        load(&b, "{\"listen\": [\"*:1\"], \"admin_listen\": [\"*:2\"], \"root\": \"/\","
                 " \"serve_dotfiles\": true, \"pool_threads\": 2, \"pool_queue\": 2,"
                 " \"pool_priority\": \"idle\", \"workers\": 2, \"daemon\": true,"
                 " \"pidfile\": \"p\", \"user\": \"u\", \"group\": \"g\","
                 " \"limits\": {\"max_connections\": 2, \"max_header_bytes\": 2,"
                 " \"max_uri_bytes\": 2, \"max_body_bytes\": 2, \"max_requests_per_connection\": 2,"
                 " \"max_connections_per_ip\": 2, \"max_buffered_bytes\": 2},"
                 " \"timeouts\": {\"header_ms\": 2, \"body_ms\": 2, \"keepalive_ms\": 2,"
                 " \"write_ms\": 2, \"handler_ms\": 2, \"pool_wait_ms\": 2, \"drain_ms\": 2},"
                 " \"log\": {\"level\": \"error\", \"access\": \"off\", \"format\": \"json\","
                 " \"error\": \"e\"},"
                 " \"websocket\": {\"max_message_bytes\": 2, \"ping_interval_ms\": 2,"
                 " \"idle_timeout_ms\": 2, \"send_queue_bytes\": 2, \"origins\": [\"null\"],"
                 " \"compression\": false, \"compression_window_bits\": 9},"
                 " \"servers\": [\"a:1\"], \"discovery\": {\"interval_ms\": 2, \"window_ms\": 2,"
                 " \"request_timeout_ms\": 2, \"require_self\": true},"
                 " \"health\": {\"stall_ms\": 2}, \"debug\": {\"slow_ms\": 2}}"),
        0);
    size_t n = sizeof(want) / sizeof(want[0]);
    ck_assert_uint_eq(cio_config_diff(&a, &b, changes, 64), n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(strcmp(changes[i].key, want[i].key) == 0, "change %zu: %s, want %s", i,
                      changes[i].key, want[i].key);
        ck_assert_msg(changes[i].restart == want[i].restart, "%s: restart %d", want[i].key,
                      changes[i].restart);
    }
    cio_config_free(&a);
    cio_config_free(&b);
}
END_TEST

/* Under ASan: the new strings are released, copied along by a later load,
 * and kept by a load that fails. */
START_TEST(free_releases_operations_strings)
{
    cio_config c;
    cio_config_defaults(&c);
    ck_assert_int_eq(load(&c, "{\"pidfile\": \"/run/corio.pid\", \"user\": \"root\","
                              " \"group\": \"root\", \"log\": {\"error\": \"/tmp/e.log\"}}"),
                     0);
    ck_assert_int_eq(load(&c, "{\"pidfile\": \"/run/other.pid\", \"workers\": -1}"), -EINVAL);
    ck_assert_int_eq(load(&c, "{\"workers\": 2}"), 0);
    ck_assert_str_eq(c.pidfile, "/run/corio.pid");
    ck_assert_str_eq(c.user, "root");
    ck_assert_str_eq(c.group, "root");
    ck_assert_str_eq(c.log.error, "/tmp/e.log");
    cio_config_free(&c);
    ck_assert_ptr_null(c.pidfile);
    ck_assert_ptr_null(c.user);
    ck_assert_ptr_null(c.group);
    ck_assert_ptr_null(c.log.error);
    cio_config_free(&c);
}
END_TEST

START_TEST(usage_lists_operations)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    cio_config_usage(f, "corio");
    fclose(f);
    static const char *const want[] = {
        "--admin-listen ADDR:PORT\n",
        "--error-log FILE     append the error/info log to FILE; - = stderr",
        "--workers N          0..1024",
        "--daemon             detach into the background",
        "--pidfile FILE",
        "--user NAME",
        "--group NAME",
        "\"proxy_protocol\": true}",
        "\"admin_listen\": [],                  0..16 addresses",
        "\"workers\": 1,                        0..1024",
        "\"daemon\": false,",
        "\"pidfile\": null,",
        "\"user\": null,",
        "\"group\": null,",
        "\"format\": \"combined\",              the access log's: combined or json",
        "\"error\": \"-\"                       the error/info log",
        "\"health\": {",
        "\"stall_ms\": 5000                   100..3600000",
        "\"debug\": {",
        "\"slow_ms\": 100                     0..60000",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(text, want[i]), "usage lacks %s", want[i]);
    free(text);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    C_CASE(s, defaults_match_header, 10);
    C_CASE(s, defaults_are_valid, 10);
    C_CASE(s, free_is_idempotent_and_config_reusable, 10);
    C_CASE(s, json_listen_replaces_default_list, 10);
    C_CASE(s, json_listen_accepts_sixteen, 10);
    C_CASE(s, json_root_set_and_cleared_by_null, 10);
    C_CASE(s, json_pool_threads, 10);
    C_CASE(s, json_limits_every_key, 10);
    C_CASE(s, json_timeouts_every_key, 10);
    C_CASE(s, json_pool_queue, 10);
    C_CASE(s, json_pool_queue_out_of_range, 10);
    C_CASE(s, json_serve_dotfiles, 10);
    C_CASE(s, json_serve_dotfiles_must_be_boolean, 10);
    C_CASE(s, json_log_levels_and_access, 10);
    C_CASE(s, json_partial_objects_keep_other_keys, 10);
    C_CASE(s, json_empty_object_changes_nothing, 10);
    C_CASE(s, json_later_document_overrides_earlier, 10);
    C_CASE(s, json_unknown_top_level_key, 10);
    C_CASE(s, json_unknown_nested_key_names_path, 10);
    C_CASE(s, json_integers_reject_wrong_types, 10);
    C_CASE(s, json_integer_too_big_is_an_error, 10);
    C_CASE(s, json_wrong_types_name_the_key, 10);
    C_CASE(s, json_listen_errors, 10);
    C_CASE(s, json_error_leaves_config_unchanged, 10);
    C_CASE(s, json_syntax_error_gives_line_and_column, 10);
    C_CASE(s, json_syntax_error_in_string_uses_name, 10);
    C_CASE(s, json_duplicate_key_is_an_error, 10);
    C_CASE(s, json_top_level_must_be_an_object, 10);
    C_CASE(s, load_file_applies_document, 10);
    C_CASE(s, load_file_missing, 10);
    C_CASE(s, load_file_directory, 10);
    C_CASE(s, errors_are_one_line_and_truncated_safely, 10);
    C_CASE(s, errors_never_split_utf8, 10);
    C_CASE(s, listen_parse_good, 10);
    C_CASE(s, listen_parse_bad, 10);
    C_CASE(s, listen_parse_failure_leaves_output_alone, 10);
    C_CASE(s, listen_parse_truncates_long_text, 10);
    C_CASE(s, validate_integer_ranges_both_sides, 10);
    C_CASE(s, validate_handler_ms_range, 10);
    C_CASE(s, validate_pool_wait_ms_range, 10);
    C_CASE(s, validate_pool_queue_range, 10);
    C_CASE(s, validate_uri_bytes_bounded_by_header_bytes, 10);
    C_CASE(s, validate_requests_per_connection_unbounded, 10);
    C_CASE(s, validate_pool_threads_and_log, 10);
    C_CASE(s, validate_listen_count_and_duplicates, 10);
    C_CASE(s, validate_listen_ipv4_wildcard_overlaps_specific_address, 10);
    C_CASE(s, validate_listen_ipv6_wildcard_overlaps_specific_address, 10);
    C_CASE(s, validate_access_log_new_file_judged_by_its_directory, 10);
    C_CASE(s, validate_access_log_directory_not_writable, 10);
    C_CASE(s, validate_access_log_file_must_be_writable, 10);
    C_CASE(s, validate_access_log_must_be_a_file_device_or_pipe, 10);
    C_CASE(s, validate_root_missing, 10);
    C_CASE(s, validate_root_not_a_directory, 10);
    C_CASE(s, validate_root_directory_ok, 10);
    C_CASE(s, args_none_gives_defaults, 10);
    C_CASE(s, args_flags_override_file_whatever_the_order, 10);
    C_CASE(s, args_file_applies_without_flags, 10);
    C_CASE(s, args_repeated_listen_replaces_then_appends, 10);
    C_CASE(s, args_listen_at_most_sixteen, 10);
    C_CASE(s, args_unique_abbreviation_accepted, 10);
    C_CASE(s, args_short_options, 10);
    C_CASE(s, args_check_config_action, 10);
    C_CASE(s, args_help_and_version_need_no_valid_config, 10);
    C_CASE(s, args_unknown_option, 10);
    C_CASE(s, args_missing_argument, 10);
    C_CASE(s, args_argument_to_flag_without_one, 10);
    C_CASE(s, args_positional_is_an_error, 10);
    C_CASE(s, args_bad_values, 10);
    C_CASE(s, args_file_errors_propagate, 10);
    C_CASE(s, args_range_error_names_the_file, 10);
    C_CASE(s, args_cross_field_error_names_the_file, 10);
    C_CASE(s, args_root_error_names_the_file, 10);
    C_CASE(s, args_root_error_names_the_flag, 10);
    C_CASE(s, args_listen_error_names_the_file, 10);
    C_CASE(s, args_listen_error_names_the_flag, 10);
    C_CASE(s, args_listen_overlap_names_both_flags, 10);
    C_CASE(s, args_access_log_error_names_the_flag, 10);
    C_CASE(s, args_access_log_error_names_the_file, 10);
    C_CASE(s, args_error_truncated_within_the_file_name, 10);
    C_CASE(s, args_can_be_parsed_repeatedly, 10);
    C_CASE(s, usage_lists_flags_and_keys, 10);
    C_CASE(s, pool_priority_key, 10);
    C_CASE(s, json_websocket_every_key, 10);
    C_CASE(s, json_websocket_compression_must_be_boolean, 10);
    C_CASE(s, json_websocket_origins_stored_canonical, 10);
    C_CASE(s, json_websocket_origins_invalid, 10);
    C_CASE(s, json_websocket_origins_errors, 10);
    C_CASE(s, json_websocket_origins_at_most_64, 10);
    C_CASE(s, json_websocket_origins_replaced, 10);
    C_CASE(s, validate_websocket_idle_timeout_above_ping_interval, 10);
    C_CASE(s, validate_websocket_send_queue_holds_a_largest_frame, 10);
    C_CASE(s, validate_websocket_origins, 10);
    C_CASE(s, args_websocket_errors_name_the_file, 10);
    C_CASE(s, usage_lists_websocket_keys, 10);
    C_CASE(s, defaults_servers_and_discovery, 10);
    C_CASE(s, json_servers_host_port, 10);
    C_CASE(s, json_servers_bracketed_ipv6, 10);
    C_CASE(s, json_servers_bare_name_has_no_port_yet, 10);
    C_CASE(s, args_bare_server_takes_first_listen_port, 10);
    C_CASE(s, args_bare_server_takes_port_of_listen_flag, 10);
    C_CASE(s, resolve_bare_servers_follows_listen, 10);
    C_CASE(s, json_servers_port_errors, 10);
    C_CASE(s, json_servers_empty_entry, 10);
    C_CASE(s, json_servers_ipv6_needs_brackets, 10);
    C_CASE(s, json_servers_bracket_errors, 10);
    C_CASE(s, json_servers_host_errors, 10);
    C_CASE(s, json_servers_host_name_lengths, 10);
    C_CASE(s, json_servers_wrong_types, 10);
    C_CASE(s, json_servers_at_most_64, 10);
    C_CASE(s, json_servers_empty_array_is_standalone, 10);
    C_CASE(s, json_servers_replaced, 10);
    C_CASE(s, validate_servers_duplicates, 10);
    C_CASE(s, args_bare_server_duplicates_host_port, 10);
    C_CASE(s, args_bare_server_needs_a_listen_port, 10);
    C_CASE(s, validate_servers_filled_by_a_program, 10);
    C_CASE(s, json_discovery_every_key, 10);
    C_CASE(s, json_discovery_errors, 10);
    C_CASE(s, validate_discovery_ranges, 10);
    C_CASE(s, args_require_self, 10);
    C_CASE(s, args_server_replaces_file_list, 10);
    C_CASE(s, args_server_errors, 10);
    C_CASE(s, args_server_at_most_64, 10);
    C_CASE(s, free_releases_servers, 10);
    C_CASE(s, usage_lists_servers_and_discovery, 10);
    C_CASE(s, defaults_operations, 10);
    C_CASE(s, json_daemon, 10);
    C_CASE(s, args_daemon, 10);
    C_CASE(s, json_pidfile_set_and_cleared_by_null, 10);
    C_CASE(s, args_pidfile, 10);
    C_CASE(s, validate_pidfile_not_empty, 10);
    C_CASE(s, json_user_and_group, 10);
    C_CASE(s, json_user_and_group_wrong_types, 10);
    C_CASE(s, args_user_and_group, 10);
    C_CASE(s, validate_user_exists, 10);
    C_CASE(s, validate_numeric_uid_without_entry_needs_group, 10);
    C_CASE(s, validate_group_exists, 10);
    C_CASE(s, args_user_error_names_the_flag_or_file, 10);
    C_CASE(s, json_workers, 10);
    C_CASE(s, args_workers, 10);
    C_CASE(s, validate_workers_range, 10);
    C_CASE(s, json_admin_listen, 10);
    C_CASE(s, json_admin_listen_errors, 10);
    C_CASE(s, validate_admin_listen_overlaps_listen, 10);
    C_CASE(s, args_admin_listen_replaces_file_list, 10);
    C_CASE(s, args_admin_listen_errors, 10);
    C_CASE(s, args_admin_listen_overlap_names_both, 10);
    C_CASE(s, json_listen_object_with_proxy_protocol, 10);
    C_CASE(s, json_listen_object_errors, 10);
    C_CASE(s, json_health_and_debug, 10);
    C_CASE(s, json_health_and_debug_errors, 10);
    C_CASE(s, validate_health_and_debug_ranges, 10);
    C_CASE(s, json_log_format, 10);
    C_CASE(s, validate_log_format_range, 10);
    C_CASE(s, json_log_error, 10);
    C_CASE(s, validate_log_error, 10);
    C_CASE(s, args_error_log, 10);
    C_CASE(s, diff_identical_configs, 10);
    C_CASE(s, diff_log_level_is_live, 10);
    C_CASE(s, diff_listen_needs_restart, 10);
    C_CASE(s, diff_lists_element_wise, 10);
    C_CASE(s, diff_several_in_fixed_order, 10);
    C_CASE(s, diff_max_smaller_than_count, 10);
    C_CASE(s, diff_every_key_in_order_with_restart, 10);
    C_CASE(s, free_releases_operations_strings, 10);
    C_CASE(s, usage_lists_operations, 10);
    return s;
}

T_MAIN(config_suite)
