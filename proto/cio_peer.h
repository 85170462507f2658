/*
 * cio_peer.h - the peer-ID self-discovery protocol (issue 9; the Paxos
 * example's "real life example"): every member of a cluster generates a
 * random id at start and serves it at GET /server_id; querying every listed
 * server, itself included, the one entry that answers with its own id is
 * itself. This header grows with the protocol; so far: the id.
 */
#ifndef CIO_PEER_H
#define CIO_PEER_H

#ifdef __cplusplus
extern "C" {
#endif

/* A member's id: 128 bits from the kernel's CSPRNG, as 32 lowercase hex
 * characters and a NUL. */
typedef struct cio_peer_id {
    char hex[33];
} cio_peer_id;

/* Generates a new id. May block at boot until the kernel's random pool is
 * initialised (call it at startup, not on a busy loop). 0 or -errno. */
int cio_peer_id_generate(cio_peer_id *out);

#ifdef __cplusplus
}
#endif
#endif
