/*
 * main.c — d4ctl, the operator's command-line tool.
 *
 *   d4ctl <command> [options]
 *
 * Each command lives in its own file and gets argv from its own name on, so
 * that it parses its options with getopt_long like a small program.
 */
#include <stdio.h>
#include <string.h>

#include "d4ctl.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{"decode", cmd_decode, "print the frames of a saved D4 stream, check HMACs"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: d4ctl <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'd4ctl <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return D4CTL_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return D4CTL_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "d4ctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return D4CTL_USAGE;
}
