/*
 * active.c — which (sensor uuid, type) sessions are open, across all workers.
 *
 * d4-core allows one connection per (uuid, type) outside 2/254. With several
 * ingest workers sharing a port, two connections of one sensor may land in
 * different processes, so the table lives in memory shared by the workers
 * (an anonymous MAP_SHARED mapping made before fork), guarded by a
 * process-shared robust mutex: a worker that dies holding it does not wedge
 * the others, and the parent then drops the dead worker's claims.
 *
 * Types 2 and 254 are not exclusive (a sensor may hold several meta-type
 * sessions): their entry, under type 254, counts sessions instead.
 *
 * It is an open-addressing hash table with linear probing and backward-shift
 * deletion (no tombstones, so probe lengths do not grow with churn), sized at
 * twice the connection limit. Uuids are random, so their first bytes are the
 * hash.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "d4_bytes.h"
#include "ingest.h"

struct active_slot {
	uint8_t used;
	uint8_t type;
	uint16_t shared; /* sessions holding a shared (2/254) entry; 0 for exclusive ones */
	uint8_t uuid[D4_UUID_SIZE];
	int32_t pid;
	uint64_t session;
};

struct active_table {
	pthread_mutex_t lock;
	size_t map_len;
	unsigned mask; /* slots - 1, slots a power of two */
	unsigned count;
	struct active_slot slot[];
};

struct active_table *active_create(unsigned slots)
{
	unsigned n = 1024;
	while (n < slots && n < (1u << 24))
		n <<= 1;
	size_t len = sizeof(struct active_table) + (size_t)n * sizeof(struct active_slot);
	struct active_table *a =
		mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return NULL;
	memset(a, 0, sizeof(*a));
	a->map_len = len;
	a->mask = n - 1;
	pthread_mutexattr_t at;
	if (pthread_mutexattr_init(&at) != 0)
		goto err;
	if (pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST) != 0 ||
	    pthread_mutex_init(&a->lock, &at) != 0) {
		pthread_mutexattr_destroy(&at);
		goto err;
	}
	pthread_mutexattr_destroy(&at);
	return a;
err:
	munmap(a, len);
	return NULL;
}

void active_destroy(struct active_table *a)
{
	if (a)
		munmap(a, a->map_len);
}

static void lock(struct active_table *a)
{
	if (pthread_mutex_lock(&a->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&a->lock); /* the parent drops the dead worker's claims */
}

static void unlock(struct active_table *a)
{
	pthread_mutex_unlock(&a->lock);
}

static unsigned home(const struct active_table *a, const uint8_t uuid[D4_UUID_SIZE], uint8_t type)
{
	uint32_t h = d4_le32(uuid) ^ d4_le32(uuid + 10) ^ ((uint32_t)type * 0x9e3779b1u);
	return h & a->mask;
}

/* Index of the slot holding (uuid, type), or of the empty slot where it would go. */
static unsigned find(const struct active_table *a, const uint8_t uuid[D4_UUID_SIZE], uint8_t type)
{
	unsigned i = home(a, uuid, type);
	while (a->slot[i].used &&
	       !(a->slot[i].type == type && memcmp(a->slot[i].uuid, uuid, D4_UUID_SIZE) == 0))
		i = (i + 1) & a->mask;
	return i;
}

/* Backward-shift deletion: pull later entries of the cluster into the hole. */
static void remove_at(struct active_table *a, unsigned hole)
{
	a->slot[hole].used = 0;
	a->count--;
	unsigned i = hole;
	for (;;) {
		i = (i + 1) & a->mask;
		if (!a->slot[i].used)
			return;
		unsigned h = home(a, a->slot[i].uuid, a->slot[i].type);
		/* can slot i move to the hole? only if its home is not in (hole, i] */
		bool stays = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i);
		if (stays)
			continue;
		a->slot[hole] = a->slot[i];
		a->slot[i].used = 0;
		hole = i;
	}
}

static bool is_shared(uint8_t type)
{
	return type == D4_TYPE_META_HEADER || type == D4_TYPE_META_DEFINED;
}

int active_claim(struct active_table *a, const uint8_t uuid[D4_UUID_SIZE], uint8_t type,
                 uint64_t session, bool replace, int *owner_pid, uint64_t *owner_session)
{
	int rc;
	bool shared = is_shared(type);
	if (shared)
		type = D4_TYPE_META_DEFINED;
	lock(a);
	unsigned i = find(a, uuid, type);
	struct active_slot *s = &a->slot[i];
	if (s->used && shared) {
		rc = s->shared < UINT16_MAX ? (s->shared++, 0) : -ENOSPC;
	} else if (s->used) {
		*owner_pid = s->pid;
		*owner_session = s->session;
		if (!replace) {
			rc = -EEXIST;
		} else {
			s->pid = (int32_t)getpid();
			s->session = session;
			rc = 1;
		}
	} else if (a->count + 1 > (a->mask + 1) / 4 * 3) {
		rc = -ENOSPC; /* keep the load under 3/4 */
	} else {
		s->used = 1;
		s->type = type;
		s->shared = shared ? 1 : 0;
		memcpy(s->uuid, uuid, D4_UUID_SIZE);
		s->pid = (int32_t)getpid();
		s->session = session;
		a->count++;
		rc = 0;
	}
	unlock(a);
	return rc;
}

void active_release(struct active_table *a, const uint8_t uuid[D4_UUID_SIZE], uint8_t type,
                    uint64_t session)
{
	bool shared = is_shared(type);
	if (shared)
		type = D4_TYPE_META_DEFINED;
	lock(a);
	unsigned i = find(a, uuid, type);
	if (a->slot[i].used && shared) {
		if (--a->slot[i].shared == 0)
			remove_at(a, i);
	} else if (a->slot[i].used && a->slot[i].session == session) {
		remove_at(a, i);
	}
	unlock(a);
}

bool active_owns(struct active_table *a, const uint8_t uuid[D4_UUID_SIZE], uint8_t type,
                 uint64_t session)
{
	if (is_shared(type))
		return true; /* never taken over */
	lock(a);
	unsigned i = find(a, uuid, type);
	bool owns = a->slot[i].used && a->slot[i].session == session;
	unlock(a);
	return owns;
}

unsigned active_count(struct active_table *a, const uint8_t uuid[D4_UUID_SIZE])
{
	unsigned n = 0;
	lock(a);
	for (unsigned type = 0; type < D4_TYPES; type++) {
		if (!d4_type_is_known(type) || type == D4_TYPE_META_HEADER)
			continue;
		unsigned i = find(a, uuid, (uint8_t)type);
		if (a->slot[i].used)
			n += a->slot[i].shared ? a->slot[i].shared : 1;
	}
	unlock(a);
	return n;
}

void active_release_pid(struct active_table *a, int pid)
{
	lock(a);
	/* restart after each removal: the backward shift moves entries */
	for (unsigned i = 0; i <= a->mask;) {
		if (a->slot[i].used && a->slot[i].pid == pid) {
			remove_at(a, i);
			continue;
		}
		i++;
	}
	unlock(a);
}
