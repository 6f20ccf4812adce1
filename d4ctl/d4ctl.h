/*
 * d4ctl.h — the operator's tool: one file per command group, dispatched from main.c.
 */
#ifndef D4CTL_H
#define D4CTL_H

/* Exit statuses shared by every command. */
enum {
	D4CTL_OK = 0,
	D4CTL_FAILED = 1, /* the command ran and found a problem (bad frame, refused ...) */
	D4CTL_USAGE = 2,  /* bad command line */
	D4CTL_ERROR = 3,  /* could not run (file, store, network) */
};

int cmd_decode(int argc, char **argv);

#endif
