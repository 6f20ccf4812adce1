/*
 * dispatch.h — d4-dispatch, the router between d4-ingest and the analyzers:
 * its configuration, its one context struct, and the interfaces between its
 * files.
 *
 *   main.c      options, signals (SIGHUP reload, SIGTERM drain and stop), the loop
 *   conf.c      [dispatch] and [queue.NAME] options into struct dispatch_conf
 *   link.c      the ingest side: listens on the dispatch socket, follows
 *               docs/ipc.md (HELLO, replay, RESUME, counted messages, ACK,
 *               PAUSE/UNPAUSE), keeps the sessions
 *   route.c     which queues (and which instance of each) take a session
 *   queue.c     per-queue buffers: records held until acknowledged, memory
 *               limits, when_full, counters, reload of the queue set
 *   analyzer.c  one analyzer process: spawn, handshake, delivery, ACKs,
 *               restart with backoff (docs/analyzer-protocol.md)
 *   spool.c     an instance's disk spool: segment files of records that did
 *               not fit in memory, read back in order
 *   counters.c  queue counters to the store, at most once a second
 *   control.c   operator requests from the store (queue_ctl): pause, resume, empty
 *   tap.c       live copies of matching frames for `d4ctl tail`
 *
 * Ownership: a D4 frame is copied once from the ingest link into a
 * reference-counted blob shared by every queue that takes it (fan-out costs
 * a pointer, not a copy); each queue instance holds its own list of items
 * (DATA and END) that point at blobs and at their session. A session lives
 * while the link table or an item refers to it. A DATA item whose frame went
 * to the disk spool keeps its place in the list without its blob: it holds
 * the frame's ingest slot through a small `struct slothold` instead, and gets
 * a fresh blob when the record is read back.
 */
#ifndef D4_DISPATCH_H
#define D4_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "d4_anproto.h"
#include "d4_config.h"
#include "d4_daemon.h"
#include "d4_ipc.h"
#include "d4_proto.h"
#include "d4_store.h"
#include "resume.h"

#define DISPATCH_READ_BUF (256u * 1024u)
#define QUEUE_MAX_TYPES 16
#define QUEUE_MAX_LIST 64  /* meta-types, sensors, groups per queue */
#define QUEUE_MAX_ARGS 64
#define QUEUE_MAX_PARAMS 64
#define QUEUE_MAX_INSTANCES 64

enum when_full {
	WHEN_FULL_PAUSE = 0, /* push back on ingest: sensors wait, nothing is lost */
	WHEN_FULL_DROP_OLDEST, /* drop the oldest records not yet written, and count them */
};

struct queue_conf {
	char name[D4_QUEUE_NAME_MAX + 1];
	bool types[D4_TYPES];
	bool any_type;
	char (*meta_types)[D4_META_TYPE_MAX + 1];
	unsigned n_meta_types;
	uint8_t (*sensors)[D4_UUID_SIZE];
	unsigned n_sensors;
	char (*groups)[D4_GROUP_NAME_MAX + 1];
	unsigned n_groups;
	char *command;  /* as written, for messages and change detection */
	char **argv;    /* argv[0] resolved to a path; NULL-terminated */
	unsigned argc;
	char **param_keys, **param_values;
	unsigned n_params;
	unsigned instances;
	uint64_t memory;
	uint64_t spool;   /* bytes on disk past `memory`; 0: no spool */
	enum when_full when_full;
};

struct dispatch_conf {
	uint64_t restart_backoff_max_ms;
	unsigned max_restarts;
	uint64_t restart_window_ms;
	uint64_t ack_bytes;       /* ACK ingest at least every this many bytes */
	uint64_t handshake_timeout_ms;
	uint64_t stop_timeout_ms; /* SIGTERM: time to deliver what is queued */
	uint64_t bye_timeout_ms;  /* BYE: time an analyzer has to answer and exit */
	uint64_t window;          /* bytes written to an analyzer and not yet acknowledged */
	uint32_t resume_window_s; /* resent frames recognised this long after delivery (resume.h) */
	uint32_t resume_frames;   /* at most this many per stream; 0: not recognised */
	struct queue_conf *queues;
	unsigned n_queues;
	char dispatch_socket[D4_PATH_MAX];
	char store[D4_PATH_MAX];
	char data_dir[D4_PATH_MAX];
};

int dispatch_conf_load(struct dispatch_conf *c, const struct d4_daemon *d, char *err,
                       size_t errlen);
void dispatch_conf_free(struct dispatch_conf *c);
void queue_conf_free(struct queue_conf *q);
/* Same program, arguments and params: a running analyzer can be kept. */
bool queue_conf_same_program(const struct queue_conf *a, const struct queue_conf *b);

/* ---- shared frames ---- */

struct stream;

/*
 * The frame's ingest slot, apart from its data: made when a queue spools a
 * frame (the blob's memory goes, the acknowledgement still waits), shared by
 * the blob and every spooled copy; the slot is done when the last lets go.
 */
struct slothold {
	unsigned refs;
	struct stream *st;
	uint64_t slot;
};

struct blob {
	unsigned refs;
	unsigned unheld;   /* refs that do not hold the ingest slot (drop-oldest queues) */
	bool slot_released;
	struct stream *st; /* the ingest stream whose acknowledgement waits for this frame */
	uint64_t slot;     /* its place in that stream (link.c) */
	struct slothold *hold; /* instead of st/slot once a queue spooled the frame */
	size_t len;        /* 62-byte D4 header + payload */
	uint8_t data[];
};

struct blob *blob_new(const uint8_t *header, const uint8_t *payload, size_t payload_len);
/* A blob of len bytes to fill (a record read back from the spool). */
struct blob *blob_alloc(size_t len);
void blob_ref(struct blob *b);
void blob_unref(struct blob *b);
/*
 * A reference that does not keep ingest waiting: a drop-oldest queue may lose
 * the frame by policy anyway, so it must not hold back the acknowledgement
 * of the frames behind it (a stalled analyzer there would pause every sensor).
 * The reference's owner calls blob_rehold() before blob_unref().
 */
void blob_unhold(struct blob *b);
void blob_rehold(struct blob *b);
/* A reference to the blob's ingest slot that outlives its data: *out is NULL when it holds
 * none (or no longer: only references that do not hold it are left). 0, or -1 without
 * memory. */
int blob_hold(struct blob *b, struct slothold **out);
void slothold_release(struct slothold *h);

/* ---- sessions (link.c) ---- */

struct analyzer;

struct route {
	struct analyzer *an;
	uint64_t started; /* the analyzer incarnation that was sent START (0: none) */
};

struct dsession {
	struct dsession *hnext; /* hash chain */
	uint64_t instance;      /* ingest instance */
	uint16_t worker;
	uint64_t id;
	unsigned refs;
	bool in_table;
	bool closed;
	bool routed;            /* routes are decided (at OPEN, or at META for a 254 session) */
	uint64_t closed_ms;
	struct d4_ipc_open open;
	char meta_type[D4_META_TYPE_MAX + 1];
	uint8_t *meta_json;
	size_t meta_json_len;
	uint8_t type;           /* routing type: the OPEN's, 254 once META came */
	struct route *routes;
	unsigned n_routes;
	struct blob **held;     /* type-2 frames of a 254 session, until META routes it */
	unsigned n_held, held_cap;
	struct resume_session resume; /* frames a reconnecting sensor sends again (resume.h) */
};

void session_unref(struct dsession *s);
struct route *session_route(struct dsession *s, const struct analyzer *an);

/* ---- queue items ---- */

enum item_kind { ITEM_DATA = 0, ITEM_END };

struct item {
	struct item *prev, *next;
	struct dsession *sess; /* a reference */
	struct blob *blob;     /* DATA: a reference; NULL while on disk */
	struct slothold *hold; /* DATA on disk: its ingest slot (NULL: none) */
	uint64_t seq;          /* DATA: set when written (0 before) */
	uint64_t end_time;
	uint32_t disk_len;     /* DATA on disk: the frame's length */
	uint8_t end_reason;
	uint8_t kind;
	bool sent;
	bool unheld;           /* DATA: the blob reference does not hold the ingest slot */
	bool on_disk;          /* DATA whose frame is in the spool (never sent) */
};

/* ---- spool.c: an instance's disk spool ---- */

/*
 * A FIFO of records in segment files under <data_dir>/spool/<queue>/<instance>/,
 * each record (u32 length, u64 session id, the D4 frame), little-endian. The
 * first segment is read, the last written; a segment is deleted once read
 * through. Segment files are named by a sequence number unique in the process.
 */
struct spool_seg {
	uint64_t num;
	uint64_t size; /* bytes of whole records written to it */
};

#define SPOOL_DIR_MAX (D4_PATH_MAX + 96) /* <data_dir>/spool/<queue>/<instance> */

struct spool {
	char dir[SPOOL_DIR_MAX];
	uint64_t seg_max;      /* a new segment is begun past this size */
	uint64_t *next_num;    /* the process's segment counter (struct dispatch) */
	struct spool_seg *segs; /* oldest first */
	unsigned n_segs, cap_segs;
	int wfd;               /* the last segment, open for writing; -1: begin a new one */
	int rfd;               /* the first segment, open for reading; -1: not yet */
	uint64_t roff;         /* read offset in the first segment */
	uint64_t records;      /* unread records */
	uint64_t bytes;        /* their bytes on disk (headers included) */
};

#define SPOOL_RECORD_HEAD 12u

void spool_init(struct spool *sp, const char *dir, uint64_t seg_max, uint64_t *next_num);
/* Appends a record; 0, or a negative errno (text in err) and nothing appended. */
int spool_append(struct spool *sp, uint64_t session, const struct blob *b, char *err,
                 size_t errlen);
/* Reads the oldest record (len bytes, of session) into a new blob; 0 or a negative errno
 * (text in err). The record is consumed either way. */
int spool_read(struct spool *sp, uint64_t session, uint32_t len, struct blob **out, char *err,
               size_t errlen);
/* Consumes the oldest record (len bytes) unread. */
void spool_skip(struct spool *sp, uint32_t len);
/* Deletes every segment and the directory; the spool is empty and usable again. */
void spool_clear(struct spool *sp);
/* At start: removes the segment files a previous process left under root (<data_dir>/spool). */
void spool_remove_stale(const char *root);

/* ---- analyzer.c: one instance of a queue ---- */

enum an_state {
	AN_STOPPED = 0,
	AN_STARTING, /* spawned, waiting for REGISTER */
	AN_RUNNING,
	AN_BACKOFF,  /* died, restart pending */
	AN_FAILED,
	AN_BYE,      /* BYE sent, waiting for it to exit */
};

struct queue;

struct analyzer {
	struct queue *q;
	unsigned index;
	enum an_state state;
	uv_process_t proc;
	uv_pipe_t sock;
	uv_timer_t timer; /* handshake, backoff, BYE timeouts */
	bool proc_live, sock_open, timer_init;
	bool sock_eof; /* the analyzer closed its end */
	int pid;
	struct d4_ap_reader reader;
	uint64_t incarnation;  /* +1 per spawn: START is sent again after a restart */
	uint64_t next_seq;     /* seq of the next DATA written */
	uint64_t acked_seq;
	bool no_ack;
	bool restart_now;      /* exit expected (reload): respawn at once, not counted */
	bool stop;             /* exit expected (shutdown, removal): do not respawn */
	bool retiring;         /* no new sessions; stopped once drained */
	uint64_t spawned_ms;
	unsigned fails;        /* consecutive short runs: the backoff exponent */
	struct item *head, *tail, *unsent;
	uint64_t inflight;     /* bytes written and not acknowledged */
	uint64_t held;         /* bytes of DATA held (sent or not) */
	uint64_t n_items;
	struct spool spool;
	struct item *disk_head; /* the oldest DATA on disk: the spool's next record */
	uint64_t n_disk;       /* DATA items on disk */
	uint64_t disk_since_ms; /* when the spool last went from empty to not */
	uint64_t spooled_total; /* records spooled since then, for the log */
	unsigned routes;       /* open sessions routed here */
	unsigned refs;         /* the queue's, plus one per session route: freed at 0 */
	char name[64];         /* what it registered as */
};

struct analyzer *analyzer_new(struct queue *q, unsigned index);
void analyzer_start(struct analyzer *an);
/* Appends an item and writes what the window allows. */
void analyzer_push(struct analyzer *an, struct item *it);
/* Writes queued items while the window allows. */
void analyzer_pump(struct analyzer *an);
/* Orderly stop: BYE (when running), kill after the BYE timeout. restart: respawn after. */
void analyzer_bye(struct analyzer *an, bool restart);
/* Kills now (shutdown deadline). */
void analyzer_kill(struct analyzer *an, const char *why);
/* Drops every held item (counted as dropped). */
void analyzer_drop_all(struct analyzer *an);
/* Operator "empty": discards every DATA not yet written (memory and spool; ENDs and what
 * awaits an ACK stay). The number discarded; *bytes adds their frames' bytes. */
uint64_t analyzer_empty(struct analyzer *an, uint64_t *bytes);
/* Nothing left to deliver that could be delivered now: idle, or the queue is paused and
 * nothing written awaits an acknowledgement (shutdown does not wait for a paused queue). */
bool analyzer_settled(const struct analyzer *an);
/* Drops the oldest DATA not yet written; its size, or 0 when there is none. */
uint64_t analyzer_drop_oldest(struct analyzer *an);
/* Appends a DATA item whose frame goes to the spool; 0, or -1 (logged and counted: the
 * caller keeps the record in memory instead). */
int analyzer_push_spooled(struct analyzer *an, struct item *it, struct blob *b);
/* Reads records back from the spool while the queue's memory allows. */
void analyzer_refill(struct analyzer *an);
/* The queue lets go of it: stopped if needed, freed once no handle and no session is left. */
void analyzer_release(struct analyzer *an);
void analyzer_unref(struct analyzer *an);
bool analyzer_idle(const struct analyzer *an); /* nothing held */
bool analyzer_gone(const struct analyzer *an); /* no process, no handle */
void item_free(struct item *it);

/* ---- queue.c ---- */

struct queue {
	struct queue *next;
	struct dispatch *d;
	struct queue_conf conf;
	struct analyzer *an[QUEUE_MAX_INSTANCES];
	unsigned n_an;        /* every instance, retiring ones after the active ones */
	unsigned n_active;    /* instances new sessions go to (conf.instances) */
	bool removed;         /* gone from the configuration: draining, then freed */
	uint64_t removed_ms;
	bool failed;
	bool paused;          /* an operator paused it (queue_ctl): nothing is written */
	bool ctl_seen;        /* its queue_ctl record was read once (control.c) */
	uint64_t empty_applied; /* the last operator "empty" request carried out */
	uint64_t emptied;     /* DATA records discarded by those requests */
	bool dirty;           /* counters changed since the last flush */
	bool stored;          /* a record exists in the store */
	uint64_t received, delivered, acknowledged, dropped, in_memory;
	uint64_t spooled;     /* bytes of unread records in the instances' spools */
	uint64_t spool_errors;
	uint64_t spool_retry_ms; /* after a spool write error: not used before this time */
	uint32_t restarts;
	uint64_t *restart_times; /* ring of the last max_restarts + 1 restarts (ms) */
	unsigned restart_ring, restart_pos;
	uint64_t last_error_time;
	char last_error[D4_ERROR_TEXT_MAX + 1];
};

struct queue *queue_new(struct dispatch *d, const struct queue_conf *c);
void queue_free(struct queue *q);
/* Takes a frame (or an END) for a session routed to an instance. */
void queue_push_data(struct analyzer *an, struct dsession *s, struct blob *b);
void queue_push_end(struct analyzer *an, struct dsession *s, uint64_t time, uint8_t reason);
/* Memory accounting after items were removed (acknowledged or dropped). */
void queue_released(struct queue *q, uint64_t bytes);
/* The spool may take records now (configured, and no write error in the last while). */
bool queue_spool_usable(const struct queue *q);
/* Whether its analyzers are written to: not while paused (a removed queue drains anyway). */
bool queue_delivering(const struct queue *q);
/* True while this queue is at its limit with when_full = pause (it holds back ingest). */
bool queue_over_limit(const struct queue *q);
/* Operator requests (control.c); pause and resume log, update the counters and pump. */
void queue_set_paused(struct queue *q, bool paused, const char *by);
void queue_empty(struct queue *q, uint64_t seq, const char *by);
void queue_error(struct queue *q, const char *text);
enum d4_queue_state queue_state(const struct queue *q);
/* An instance exited unexpectedly: count it; true when the queue may restart it. */
bool queue_count_restart(struct queue *q);
/* Starts every queue of the configuration. */
int queues_start(struct dispatch *d);
/* SIGHUP: applies a new configuration to the running queues. */
void queues_reload(struct dispatch *d, struct dispatch_conf *nc);
/* Once a second: retire and free drained queues and instances. */
void queues_tick(struct dispatch *d);
bool queues_idle(const struct dispatch *d);
/* True while a queue with when_full = pause is over its memory limit. */
void queues_update_pause(struct dispatch *d);

/* ---- route.c ---- */

/* Decides which queue instances take a session; 0 or -1 (out of memory). */
int route_session(struct dispatch *d, struct dsession *s);

/* ---- link.c ---- */

int link_listen(struct dispatch *d);
void link_stop_reading(struct dispatch *d);
void link_close_all(struct dispatch *d);
/* Tells every ingest connection to stop (true) or resume (false) reading sensors. */
void link_set_pause(struct dispatch *d, bool paused);
/* Once a second: forget sessions closed long ago and streams gone for good. */
void link_tick(struct dispatch *d);
void link_free_sessions(struct dispatch *d);
/* Sends the acknowledgements that frames done with since the last call allow. */
void link_send_acks(struct dispatch *d);

/* ---- tap.c: live copies for `d4ctl tail` ---- */

int tap_listen(struct dispatch *d);
void tap_frame(struct dispatch *d, const uint8_t header[D4_HEADER_SIZE], const uint8_t *payload,
               size_t len);
void tap_close_all(struct dispatch *d);

/* ---- counters.c ---- */

void counters_flush(struct dispatch *d, bool force);

/* ---- control.c ---- */

/*
 * Reads the operator's requests (queue_ctl) for every configured queue and
 * acts on them: once a second from the tick, at start and after a reload
 * (before anything is delivered: a paused queue starts paused).
 */
void control_poll(struct dispatch *d);

/* ---- the context ---- */

struct ilink;
struct stream;

struct dispatch {
	uv_loop_t *loop;
	struct d4_daemon daemon;
	int argc;
	char **argv;
	struct dispatch_conf conf;
	struct d4_store *store;
	uv_pipe_t server;
	bool server_open;
	struct ilink *links;
	struct stream *streams;
	bool acks_due; /* a frame was done with: link_send_acks() at the end of this loop turn */
	struct tap *taps; /* `d4ctl tail` connections */
	unsigned n_taps;
	uv_pipe_t tap_server;
	bool tap_open;
	uv_check_t ack_check;
	struct dsession **stab; /* session hash table */
	size_t stab_cap, stab_used;
	struct queue *queues; /* configured ones first, removed ones draining */
	uv_timer_t tick;
	uv_timer_t stop_timer;
	uv_signal_t sigterm, sigint, sighup;
	bool paused; /* PAUSE sent to ingest */
	bool stopping;
	bool byes_sent;      /* stopping: analyzers got BYE and are not restarted */
	uint64_t byes_ms;
	int counters_last_rc; /* the last store error, logged once */
	int control_last_rc;  /* the same for queue_ctl */
	uint64_t stop_started_ms;
	bool needs_groups; /* a queue filters on sensor groups: read them at OPEN */
	uint64_t spool_seg_num; /* names of spool segments, unique in this process */
	uint64_t frames, bytes, unknown_session_frames;
	struct resume_table *resume; /* made by link_listen() */
	uint8_t read_buf[DISPATCH_READ_BUF];
};

uint64_t dispatch_now(void);
uint64_t dispatch_now_ms(struct dispatch *d);

#endif
