/*
 * slow_db.c - two of the "hard questions" from the notes on "Using Asyncio
 * in Python", in corio's API: many clients and a database that allows only
 * a few connections; and a graceful shutdown when a signal arrives.
 *
 * 50 client tasks each run queries in a loop; a semaphore lets at most 3
 * talk to the database (a 20 ms query) at once. SIGINT or SIGTERM, read
 * through the loop, stops the clients from starting new queries; the ones
 * in flight finish within 2 s (the drain), anything left is cancelled.
 *
 *   slow_db [--signal-after N]   runs until Ctrl-C (or sends itself SIGTERM
 *                                after N queries, for unattended runs); exit 0
 */
#include "cio.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define CLIENTS     50
#define CONNECTIONS 3

static cio_sem db;        /* the database's connections */
static cio_event stop;    /* set when a signal arrives */
static int in_db, most_in_db, queries, signal_after;

static intptr_t query(void)
{
    int rc = cio_sem_acquire(&db, CIO_NEVER); /* wait for a free connection */
    if (rc < 0)
        return rc;
    in_db++;
    most_in_db = in_db > most_in_db ? in_db : most_in_db;
    rc = cio_sleep(CIO_MS(20)); /* the query */
    in_db--;
    cio_sem_release(&db);
    if (rc == 0 && ++queries == signal_after)
        kill(getpid(), SIGTERM);
    return rc;
}

static intptr_t client(void *arg)
{
    (void)arg;
    while (!cio_event_is_set(&stop))
        if (query() < 0)
            return -1;
    return 0;
}

/* The drain's deadline: what is still running then is cancelled. */
static intptr_t cut_after_2s(void *group)
{
    if (cio_sleep(CIO_SEC(2)) == 0)
        cio_group_cancel(group);
    return 0;
}

static intptr_t main_task(void *arg)
{
    int sigfd = *(int *)arg;
    cio_group clients;
    cio_group_init(&clients, CIO_NEVER);
    for (int i = 0; i < CLIENTS; i++)
        cio_group_spawn(&clients, NULL, client, NULL);

    struct signalfd_siginfo si;
    cio_read(sigfd, &si, sizeof(si), -1, CIO_NEVER);
    printf("%s: no new queries; %d in flight may finish (2 s)\n", strsignal((int)si.ssi_signo),
           in_db);
    cio_event_set(&stop);
    cio_task *cutter;
    cio_spawn(NULL, &cutter, cut_after_2s, &clients);
    intptr_t r = cio_group_wait(&clients);
    cio_task_cancel(cutter);
    cio_join(cutter, CIO_NEVER);
    printf("%d queries, at most %d at once on %d connections: %s\n", queries, most_in_db,
           CONNECTIONS, r == 0 ? "drained" : "cut short");
    return most_in_db <= CONNECTIONS ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--signal-after") == 0)
        signal_after = atoi(argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL); /* delivered to the signalfd instead */
    int sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    cio_loop *loop;
    if (sigfd < 0 || cio_loop_create(&loop, NULL) < 0)
        return 1;
    cio_sem_init(&db, CONNECTIONS);
    cio_event_init(&stop);
    intptr_t r = cio_run(loop, main_task, &sigfd);
    cio_loop_destroy(loop);
    return (int)r;
}
